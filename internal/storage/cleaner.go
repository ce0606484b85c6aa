package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"

	"github.com/streambus/streambus/internal/recordbatch"
)

// Compaction (cleanup.policy=compact), after Kafka's LogCleaner, one pass:
//
//  1. Pick the cleanable segments: closed segments wholly before the
//     segment where the durable part of the log ends (so no failed
//     journal round can cut them), in order, up to
//     the first whose largest timestamp is newer than now −
//     min.compaction.lag.ms.
//  2. Map every key in them to its last offset (bounded by
//     CleanerMapBytes: the pass covers as many whole segments as fit), and
//     note each producer's last batch anywhere in the log.
//  3. Rewrite each segment that changes into N.log.cleaned: keep a record
//     if its key has no later offset in the map; drop a tombstone (null
//     value) if its segment's largest timestamp is older than now −
//     delete.retention.ms. Batches keep their base offset, offset range,
//     producer fields and codec; a batch left empty is dropped unless it is
//     its producer's last (kept empty so producer state can be rebuilt
//     from the log). Control batches and batches that cannot be decoded
//     are kept as they are. Null-key records are kept.
//  4. Swap, under the log lock: fsync the .cleaned file, rename it to
//     N.log.swap, fsync the directory (the commit point), delete N.index
//     and N.timeindex, rename N.log.swap over N.log, write fresh index
//     files, fsync the directory. Open finishes a swap it finds (see
//     recovery). Readers holding the old segment keep its open file.
//
// Segments are not merged, so a pass never changes segment boundaries.

// Compact runs one cleaner pass if the log is compacted and has work, and
// returns the number of segments rewritten. It holds the log lock only to
// pick segments and to swap each rewritten one in.
func (l *Log) Compact(ctx context.Context) (int, error) {
	l.cleanMu.Lock()
	defer l.cleanMu.Unlock()
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return 0, ErrClosed
	}
	if !l.cfg.Compact || l.failed != nil {
		l.mu.Unlock()
		return 0, nil
	}
	cfg := l.cfg
	nowMs := l.opts.Now().UnixMilli()
	interval := l.intervalLocked()
	var views []segView
	for _, s := range l.segs[:len(l.segs)-1] {
		if s.base >= l.durSeg {
			break
		}
		s.acquire()
		views = append(views, segView{s, s.size})
	}
	var later []segView // the rest of the log, for producers' last batches
	for _, s := range l.segs[len(views):] {
		s.acquire()
		later = append(later, segView{s, s.size})
	}
	cleanedTo := l.cleanedTo
	l.mu.Unlock()
	defer func() { releaseViews(views); releaseViews(later) }()

	// Minimum compaction lag.
	for i, v := range views {
		ts, err := v.s.largestTimestamp(v.size, interval)
		if err != nil {
			return 0, err
		}
		if cfg.MinCompactionLagMs > 0 && ts > nowMs-cfg.MinCompactionLagMs {
			later = append(append([]segView(nil), views[i:]...), later...)
			views = views[:i]
			break
		}
	}
	if len(views) == 0 {
		return 0, nil
	}
	dirty := false
	for _, v := range views {
		if v.s.base >= cleanedTo {
			dirty = true
		}
	}
	if !dirty && !l.tombstonesDue(nowMs) {
		return 0, nil
	}

	c := &cleaner{l: l, cfg: cfg, nowMs: nowMs, keys: map[string]int64{}, lastProducerBatch: map[int64]int64{}, interval: interval}
	n, err := c.buildMap(ctx, views)
	if err != nil {
		return 0, err
	}
	mapped := views[:n]
	if err := c.noteProducers(append(append([]segView(nil), views[n:]...), later...)); err != nil {
		return 0, err
	}
	rewritten := 0
	for _, v := range mapped {
		if err := ctx.Err(); err != nil {
			return rewritten, err
		}
		ok, err := c.cleanSegment(v)
		if err != nil {
			return rewritten, err
		}
		if ok {
			rewritten++
		}
	}
	l.mu.Lock()
	last := mapped[len(mapped)-1].s
	l.cleanedTo = max(l.cleanedTo, last.next)
	l.tombstoneDue = c.nextTombstoneDue
	l.mu.Unlock()
	return rewritten, nil
}

func (l *Log) tombstonesDue(nowMs int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tombstoneDue > 0 && nowMs >= l.tombstoneDue
}

type cleaner struct {
	l                 *Log
	cfg               LogConfig
	nowMs             int64
	interval          int64
	keys              map[string]int64
	mapBytes          int64
	lastProducerBatch map[int64]int64 // producer ID → base offset of its last batch
	nextTombstoneDue  int64           // earliest time a kept tombstone becomes removable, 0 if none
}

// cleanerEntryOverhead approximates a map entry's memory beyond its key.
const cleanerEntryOverhead = 48

// forEachBatch walks the whole batches of a segment view.
func forEachBatch(v segView, fn func(h recordbatch.Header, pos int64, b []byte) error) error {
	var hbuf [recordbatch.HeaderSize]byte
	var buf []byte
	for pos := int64(0); pos < v.size; {
		h, err := v.s.readHeader(pos, v.size, hbuf[:])
		if err != nil {
			return err
		}
		b, err := v.s.readBatch(h, pos, buf)
		if err != nil {
			return err
		}
		buf = b
		if err := fn(h, pos, b); err != nil {
			return err
		}
		pos += h.Size()
	}
	return nil
}

// buildMap maps keys of as many whole segments as fit the memory bound
// (at least one) and notes producers' batches in them; it returns how many.
func (c *cleaner) buildMap(ctx context.Context, views []segView) (int, error) {
	for i, v := range views {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if i > 0 && c.mapBytes >= c.l.opts.CleanerMapBytes {
			return i, nil
		}
		err := forEachBatch(v, func(h recordbatch.Header, _ int64, b []byte) error {
			if h.HasProducer() {
				c.lastProducerBatch[h.ProducerID] = h.BaseOffset
			}
			if h.IsControl() {
				return nil
			}
			err := recordbatch.ForEachRecord(b, c.l.opts.MaxDecompressedBytes, func(r *recordbatch.Record) error {
				if r.Key == nil {
					return nil
				}
				off := h.BaseOffset + int64(r.OffsetDelta)
				if _, ok := c.keys[string(r.Key)]; !ok {
					c.mapBytes += int64(len(r.Key)) + cleanerEntryOverhead
				}
				c.keys[string(r.Key)] = off
				return nil
			})
			if err != nil {
				c.l.logger.Warn("storage: cleaner cannot decode batch, keeping it", "offset", h.BaseOffset, "err", err)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("storage: cleaner map segment %d: %w", v.s.base, err)
		}
	}
	return len(views), nil
}

// noteProducers records producers' last batches in the rest of the log.
func (c *cleaner) noteProducers(views []segView) error {
	for _, v := range views {
		err := v.s.walkHeaders(0, v.size, func(h recordbatch.Header, _ int64) error {
			if h.HasProducer() {
				c.lastProducerBatch[h.ProducerID] = h.BaseOffset
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage: cleaner scan segment %d: %w", v.s.base, err)
		}
	}
	return nil
}

// cleanSegment rewrites one segment if compaction changes it, and swaps
// the result in. It reports whether it did.
func (c *cleaner) cleanSegment(v segView) (bool, error) {
	segMax, err := v.s.largestTimestamp(v.size, c.interval)
	if err != nil {
		return false, err
	}
	dropTombstones := segMax < c.nowMs-c.cfg.DeleteRetentionMs
	if !dropTombstones {
		due := segMax + c.cfg.DeleteRetentionMs + 1
		if c.nextTombstoneDue == 0 || due < c.nextTombstoneDue {
			c.nextTombstoneDue = due
		}
	}
	var out [][]byte
	changed := false
	var kept []recordbatch.Record
	err = forEachBatch(v, func(h recordbatch.Header, _ int64, b []byte) error {
		if h.IsControl() {
			out = append(out, append([]byte(nil), b...))
			return nil
		}
		kept = kept[:0]
		total := 0
		err := recordbatch.ForEachRecord(b, c.l.opts.MaxDecompressedBytes, func(r *recordbatch.Record) error {
			total++
			off := h.BaseOffset + int64(r.OffsetDelta)
			if r.Key != nil {
				if latest, ok := c.keys[string(r.Key)]; ok && latest > off {
					return nil
				}
				if r.Value == nil && dropTombstones {
					return nil
				}
			}
			kept = append(kept, cloneRecord(r))
			return nil
		})
		if err != nil || len(kept) == total {
			out = append(out, append([]byte(nil), b...))
			return nil
		}
		changed = true
		if len(kept) == 0 && !(h.HasProducer() && c.lastProducerBatch[h.ProducerID] == h.BaseOffset) {
			return nil
		}
		nb, err := recordbatch.Build(h, kept, h.Codec())
		if err != nil {
			return fmt.Errorf("storage: cleaner rebuild batch %d: %w", h.BaseOffset, err)
		}
		out = append(out, nb)
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: clean segment %d: %w", v.s.base, err)
	}
	if !changed {
		return false, nil
	}
	return c.l.swapSegment(v, out)
}

func cloneRecord(r *recordbatch.Record) recordbatch.Record {
	cp := *r
	if r.Key != nil {
		cp.Key = append([]byte{}, r.Key...)
	}
	if r.Value != nil {
		cp.Value = append([]byte{}, r.Value...)
	}
	cp.Headers = nil
	for _, h := range r.Headers {
		hv := h
		if h.Value != nil {
			hv.Value = append([]byte{}, h.Value...)
		}
		cp.Headers = append(cp.Headers, hv)
	}
	return cp
}

// swapSegment writes batches as the new content of segment v and swaps it
// in (see the protocol above). It reports false if the segment left the
// log meanwhile (retention, truncation).
func (l *Log) swapSegment(v segView, batches [][]byte) (bool, error) {
	old := v.s
	cleaned := segmentFile(l.dir, old.base, logSuffix+cleanedSuffix)
	f, err := l.fs.OpenFile(cleaned, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return false, fmt.Errorf("storage: create %s: %w", cleaned, err)
	}
	// The new segment's file stays pinned until it is installed: until
	// then its name is not N.log.
	ns := newSegment(l.fs, l.files, l.dir, old.base)
	l.files.adopt(&ns.log, f, true)
	abandon := func() {
		ns.unpinLog()
		ns.release()
	}
	ns.idxLoaded = true
	pos := int64(0)
	for _, b := range batches {
		h, err := recordbatch.ParseHeader(b)
		if err == nil {
			_, err = f.WriteAt(b, pos)
		}
		if err != nil {
			abandon()
			l.fs.Remove(cleaned)
			return false, fmt.Errorf("storage: write %s: %w", cleaned, err)
		}
		ns.noteBatchLocked(h, pos, int64(l.Config().IndexIntervalBytes))
		pos += h.Size()
	}
	ns.size = pos
	if err := f.Sync(); err != nil {
		abandon()
		l.fs.Remove(cleaned)
		return false, fmt.Errorf("storage: sync %s: %w", cleaned, err)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base >= old.base })
	if l.closed || l.failed != nil || i >= len(l.segs)-1 || l.segs[i] != old || old.size != v.size {
		abandon()
		l.fs.Remove(cleaned)
		return false, nil
	}
	if err := l.touchLocked(); err != nil {
		abandon()
		l.fs.Remove(cleaned)
		return false, err
	}
	ns.next, ns.createdMs = old.next, old.createdMs
	swap := segmentFile(l.dir, old.base, logSuffix+swapSuffix)
	if err := l.fs.Rename(cleaned, swap); err != nil {
		abandon()
		return false, l.failLocked(fmt.Errorf("storage: cleaner swap segment %d: %w", old.base, err))
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		abandon()
		return false, l.failLocked(fmt.Errorf("storage: cleaner swap segment %d: %w", old.base, err))
	}
	// Committed: from here recovery completes the swap if we crash. The
	// old segment's names are about to be the new one's; it stays
	// readable through its open file until it is released.
	old.retire(true)
	for _, suf := range []string{indexSuffix, timeIndexSuffix} {
		if err := l.fs.Remove(segmentFile(l.dir, old.base, suf)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			abandon()
			return false, l.failLocked(fmt.Errorf("storage: cleaner swap segment %d: %w", old.base, err))
		}
	}
	if err := l.fs.Rename(swap, segmentFile(l.dir, old.base, logSuffix)); err != nil {
		abandon()
		return false, l.failLocked(fmt.Errorf("storage: cleaner swap segment %d: %w", old.base, err))
	}
	ns.idxMu.Lock()
	err = ns.writeIndexFilesLocked()
	if err == nil {
		err = ns.syncIndexesLocked()
	}
	ns.closeIndexFilesLocked()
	ns.idxMu.Unlock()
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		abandon()
		return false, l.failLocked(fmt.Errorf("storage: cleaner swap segment %d: %w", old.base, err))
	}
	l.segs[i] = ns
	l.size += ns.size - old.size
	ns.unpinLog()
	old.release()
	return true, nil
}
