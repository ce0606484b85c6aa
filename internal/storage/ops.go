package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"github.com/streambus/streambus/internal/producerstate"
	"github.com/streambus/streambus/internal/recordbatch"
)

// EndOffsetForEpoch answers OffsetForLeaderEpoch with Kafka's semantics:
// for the current (latest) epoch, the log end offset; for an older epoch,
// the start offset of the next epoch, with the largest epoch ≤ the
// requested one; (-1, -1) if the epoch is unknown.
func (l *Log) EndOffsetForEpoch(epoch int32) (leaderEpoch int32, endOffset int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return epochsEndOffset(l.epochsLocked(), epoch, l.logEnd)
}

// LatestEpoch returns the newest leader epoch recorded in the log, or -1.
func (l *Log) LatestEpoch() int32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	es := l.epochsLocked()
	if len(es) == 0 {
		return -1
	}
	return es[len(es)-1].Epoch
}

// snapshotViews references the segments (with their current sizes) whose
// offsets may lie in [from, upTo). The caller releases them.
func (l *Log) snapshotViews(from, upTo int64) ([]segView, int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, 0, ErrClosed
	}
	i := max(sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > from })-1, 0)
	var views []segView
	for j := i; j < len(l.segs) && l.segs[j].base < upTo; j++ {
		l.segs[j].acquire()
		views = append(views, segView{l.segs[j], l.segs[j].size})
	}
	return views, l.intervalLocked(), nil
}

func releaseViews(vs []segView) {
	for _, v := range vs {
		v.s.release()
	}
}

// OffsetForTimestamp returns the first offset (below the high watermark)
// whose record timestamp is ≥ ts, with that timestamp, as ListOffsets by
// timestamp does: the first batch whose max timestamp reaches ts is found
// through the time indexes, then its records are decoded for the exact
// record. ok is false if no such record exists.
func (l *Log) OffsetForTimestamp(ts int64) (offset, timestamp int64, ok bool) {
	l.mu.Lock()
	start, hw := l.logStart, l.hwLocked()
	l.mu.Unlock()
	views, interval, err := l.snapshotViews(start, hw)
	if err != nil {
		return -1, -1, false
	}
	defer releaseViews(views)
	var hbuf [recordbatch.HeaderSize]byte
	for _, v := range views {
		maxTs, err := v.s.largestTimestamp(v.size, interval)
		if err != nil || maxTs < ts {
			continue
		}
		pos, err := v.s.timeLookup(ts, v.size, interval)
		if err != nil {
			pos = 0
		}
		for pos < v.size {
			h, err := v.s.readHeader(pos, v.size, hbuf[:])
			if err != nil || h.LastOffset() >= hw {
				return -1, -1, false
			}
			if h.MaxTimestamp >= ts && h.LastOffset() >= start {
				if off, rts, found := l.findRecord(v.s, h, pos, func(rts, off int64) bool { return rts >= ts && off >= start }); found {
					return off, rts, true
				}
			}
			pos += h.Size()
		}
	}
	return -1, -1, false
}

// findRecord decodes the batch at pos and returns the first record
// matching pred. If the records cannot be decoded it falls back to the
// batch's base offset and max timestamp, which Kafka's shallow lookups
// also return.
func (l *Log) findRecord(s *segment, h recordbatch.Header, pos int64, pred func(ts, off int64) bool) (int64, int64, bool) {
	b, err := s.readBatch(h, pos, nil)
	if err != nil {
		return h.BaseOffset, h.MaxTimestamp, pred(h.MaxTimestamp, h.LastOffset())
	}
	var off, rts int64
	found := false
	err = recordbatch.ForEachRecord(b, l.opts.MaxDecompressedBytes, func(r *recordbatch.Record) error {
		t := h.BaseTimestamp + r.TimestampDelta
		if h.IsLogAppendTime() {
			t = h.MaxTimestamp
		}
		o := h.BaseOffset + int64(r.OffsetDelta)
		if pred(t, o) {
			off, rts, found = o, t, true
			return errStopWalk
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopWalk) {
		return h.BaseOffset, h.MaxTimestamp, pred(h.MaxTimestamp, h.LastOffset())
	}
	return off, rts, found
}

// MaxTimestamp returns the offset and timestamp of the record with the
// largest timestamp below the high watermark (KIP-734), the earliest such
// record on ties; (-1, -1) for an empty log.
func (l *Log) MaxTimestamp() (offset, ts int64) {
	l.mu.Lock()
	start, hw := l.logStart, l.hwLocked()
	l.mu.Unlock()
	views, interval, err := l.snapshotViews(start, hw)
	if err != nil {
		return -1, -1
	}
	defer releaseViews(views)
	bestTs, bestOff := int64(-1), int64(-1)
	var hbuf [recordbatch.HeaderSize]byte
	for _, v := range views {
		if mt, err := v.s.largestTimestamp(v.size, interval); err != nil || mt <= bestTs {
			continue
		}
		// Walk the segment: the batch holding the maximum may lie past
		// the high watermark, or the index may not say which it is.
		for pos := int64(0); pos < v.size; {
			h, err := v.s.readHeader(pos, v.size, hbuf[:])
			if err != nil || h.LastOffset() >= hw {
				break
			}
			if h.MaxTimestamp > bestTs && h.LastOffset() >= start {
				want := h.MaxTimestamp
				if off, rts, ok := l.findRecord(v.s, h, pos, func(t, o int64) bool { return t == want && o >= start }); ok {
					bestTs, bestOff = rts, off
				}
			}
			pos += h.Size()
		}
	}
	if bestOff < 0 {
		return -1, -1
	}
	return bestOff, bestTs
}

// DeleteRecordsBefore moves the log start offset up to offset (-1 means
// the high watermark), checkpointing it, and deletes the segments wholly
// below it. It returns the new log start offset. Offsets above the high
// watermark are ErrOffsetOutOfRange.
func (l *Log) DeleteRecordsBefore(offset int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return -1, ErrClosed
	}
	if l.failed != nil {
		return -1, l.failed
	}
	hw := l.hwLocked()
	if offset == -1 {
		offset = hw
	}
	if offset < 0 || offset > hw {
		return -1, fmt.Errorf("%w: delete records before %d, high watermark %d", ErrOffsetOutOfRange, offset, hw)
	}
	if offset <= l.logStart {
		return l.logStart, nil
	}
	if err := l.touchLocked(); err != nil {
		return -1, err
	}
	lsn, err := l.journalSyncLocked(entryLogStart, offset, nil)
	if err != nil {
		return -1, err
	}
	if err := l.deleteBeforeLocked(offset, lsn); err != nil {
		return -1, err
	}
	return l.logStart, nil
}

// deleteBeforeLocked moves the log start up to offset, as the journal
// entry at lsn asked (DeleteRecordsBefore, or its replay).
func (l *Log) deleteBeforeLocked(offset, lsn int64) error {
	if err := writeCheckpoint(l.fs, filepath.Join(l.dir, logStartFile), ckKindLogStart, putInt64s(offset)); err != nil {
		return l.failLocked(err)
	}
	l.logStart = offset
	l.durLSN = max(l.durLSN, lsn)
	n := 0
	for n+1 < len(l.segs) && l.segs[n+1].base <= offset {
		n++
	}
	return l.dropHeadLocked(n)
}

// dropHeadLocked removes the first n segments (never the active one),
// moving the log start offset to the first remaining segment if it was
// below, and trims producer state and the epoch cache. Files are unlinked
// under the lock; readers holding the segments keep their open handles.
func (l *Log) dropHeadLocked(n int) error {
	if n <= 0 {
		return nil
	}
	n = min(n, len(l.segs)-1)
	gone := l.segs[:n]
	l.segs = append([]*segment(nil), l.segs[n:]...)
	l.logStart = max(l.logStart, l.segs[0].base)
	var firstErr error
	for _, s := range gone {
		l.size -= s.size
		if err := l.unlinkSegmentLocked(s); err != nil && firstErr == nil {
			firstErr = err
		}
		s.release()
	}
	if l.producers != nil { // else pruned when loaded
		l.producers.Prune(l.logStart)
	}
	if es, changed := epochsTruncateStart(l.epochsLocked(), l.logStart); changed {
		l.epochs = es
		if err := writeCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch, encodeEpochs(es)); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if snaps, err := listBases(l.fs, l.dir, snapshotSuffix); err == nil {
		// Keep the newest snapshot at or below the log start: replay
		// starts there.
		for i := 0; i+1 < len(snaps) && snaps[i+1] <= l.logStart; i++ {
			l.fs.Remove(segmentFile(l.dir, snaps[i], snapshotSuffix))
		}
	}
	if firstErr != nil {
		l.logger.Warn("storage: deleting segments", "err", firstErr)
	}
	return nil
}

// unlinkSegmentLocked retires a segment that left the log and removes its
// files by name; readers holding it keep its open file.
func (l *Log) unlinkSegmentLocked(s *segment) error {
	if err := l.touchLocked(); err != nil {
		return err
	}
	s.retire(s.refs.Load() > 1)
	l.dirDirty = true
	return removeSegmentFiles(l.fs, l.dir, s.base)
}

// Truncate removes every batch at or after offset (a batch containing
// offset is removed whole, so the log end may end up below offset). An
// offset below the log start empties the log and restarts it at offset.
// Sync callers waiting for removed offsets get ErrTruncated. The
// truncation is journaled and durable before the files are cut, so that
// recovery never replays appends it removed.
func (l *Log) Truncate(offset int64) error {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return l.failed
	}
	if offset >= l.logEnd {
		return nil
	}
	if offset < 0 {
		return fmt.Errorf("%w: truncate to %d", ErrOffsetOutOfRange, offset)
	}
	if err := l.touchLocked(); err != nil {
		return err
	}
	full := offset <= l.logStart
	var flag []byte
	if full {
		flag = truncateFull
	}
	lsn, err := l.journalSyncLocked(entryTruncate, offset, flag)
	if err != nil {
		return err
	}
	return l.cutLocked(offset, full, lsn)
}

// journalSyncLocked appends an entry without data and waits until the
// journal made it durable, with every entry before it: the log's pending
// appends are durable after it. It returns the entry's LSN.
func (l *Log) journalSyncLocked(kind uint8, offset int64, data []byte) (int64, error) {
	lsn, err := l.journalAppendLocked(kind, offset, data)
	if err != nil {
		return 0, err
	}
	if err := l.mgr.journal.Sync(lsn); err != nil {
		return 0, fmt.Errorf("%w: %v: %w", ErrStorage, l.id, err)
	}
	l.advanceLocked(lsn)
	return lsn, nil
}

// cutLocked removes every batch at or after offset from the files (cpMu
// held) without journaling it: Truncate after its journal entry, replay,
// and the cut of appends whose journal entry was refused or whose round
// failed. full empties the log and restarts it at offset. lsn is the
// journal entry the log reflects after the cut (its own, or durLSN).
func (l *Log) cutLocked(offset int64, full bool, lsn int64) error {
	var err error
	if full || offset < l.segs[0].base {
		err = l.truncateFullyLocked(offset, lsn)
	} else {
		err = l.truncateToLocked(offset, lsn)
	}
	if err != nil {
		return l.failLocked(err)
	}
	l.noteCutLocked(l.logEnd)
	l.pending = slices.DeleteFunc(l.pending, func(p pendingAppend) bool { return p.end > l.logEnd })
	if l.durable > l.logEnd {
		a := l.activeLocked()
		l.setDurableLocked(l.logEnd, a.base, a.size, lsn)
	}
	l.durLSN = max(l.durLSN, lsn)
	keep := l.waiters[:0]
	for _, w := range l.waiters {
		if w.upTo > l.logEnd {
			w.ch <- fmt.Errorf("%w: waiting for %d, log end now %d", ErrTruncated, w.upTo, l.logEnd)
		} else {
			keep = append(keep, w)
		}
	}
	clear(l.waiters[len(keep):])
	l.waiters = keep
	l.wakeWaitersLocked()
	l.notifyLocked()
	if es, changed := epochsTruncateEnd(l.epochsLocked(), l.logEnd); changed {
		l.epochs = es
		if err := writeCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch, encodeEpochs(es)); err != nil {
			return l.failLocked(err)
		}
	}
	if err := l.reloadProducersLocked(); err != nil {
		return l.failLocked(err)
	}
	return nil
}

// truncateToLocked cuts the log inside it.
func (l *Log) truncateToLocked(offset, lsn int64) error {
	i := max(sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })-1, 0)
	s := l.segs[i]
	// Find the first batch whose last offset is ≥ offset.
	pos, err := s.lookup(offset, s.size, l.intervalLocked())
	if err != nil {
		return err
	}
	cutPos, cutOff := s.size, s.next
	var hbuf [recordbatch.HeaderSize]byte
	for pos < s.size {
		h, err := s.readHeader(pos, s.size, hbuf[:])
		if err != nil {
			return err
		}
		if h.LastOffset() >= offset {
			cutPos, cutOff = pos, h.BaseOffset
			break
		}
		pos += h.Size()
	}
	if cutPos == 0 && i > 0 {
		// Nothing of this segment survives: drop it too.
		i--
		s = l.segs[i]
		cutPos, cutOff = s.size, s.next
		if i+1 < len(l.segs) {
			cutOff = min(cutOff, l.segs[i+1].base)
		}
	}
	// Lower the recovery point first (to the cut, which reflects the
	// journal up to lsn, the durable entry that asked for it), so that a
	// crash part-way through recovers the cut log, not a prefix of the old
	// one that the journal entries after the old recovery point would not
	// fit.
	if l.rp.Offset > cutOff || l.rp.SegmentBase > s.base {
		if err := l.setRecoveryPointLocked(recoveryPoint{Offset: cutOff, SegmentBase: s.base, Position: cutPos, LSN: max(l.rp.LSN, lsn), LogStart: min(l.logStart, cutOff)}); err != nil {
			return err
		}
	}
	// Newest first: whatever survives a crash is a contiguous prefix.
	for j := len(l.segs) - 1; j > i; j-- {
		later := l.segs[j]
		l.size -= later.size
		l.segs = l.segs[:j]
		if err := l.unlinkSegmentLocked(later); err != nil {
			later.release()
			return err
		}
		later.release()
	}
	if cutPos < s.size {
		if err := s.truncateLog(cutPos); err != nil {
			return fmt.Errorf("storage: truncate segment %d: %w", s.base, err)
		}
		if err := s.truncateIndexes(cutPos, cutOff, l.intervalLocked()); err != nil {
			return err
		}
		l.size -= s.size - cutPos
		s.size = cutPos
	}
	s.next = cutOff
	if err := s.syncLog(); err != nil {
		return fmt.Errorf("storage: sync segment %d: %w", s.base, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("storage: sync dir: %w", err)
	}
	l.dirDirty = false
	l.logEnd = cutOff
	if l.logStart > l.logEnd {
		// The batch holding the log start was cut: a stale checkpoint
		// would hide the offsets appended next.
		if err := writeCheckpoint(l.fs, filepath.Join(l.dir, logStartFile), ckKindLogStart, putInt64s(l.logEnd)); err != nil {
			return err
		}
		l.logStart = l.logEnd
	}
	s.createdMs = l.opts.Now().UnixMilli()
	return nil
}

// truncateFullyLocked deletes every segment and starts an empty log at
// offset, which reflects the journal up to lsn (the entry that asked for
// it, durable before). Crash safety: the recovery point first says so (a
// restart point, which recovery applies to whatever files survive), then
// segments are unlinked and the new one created.
func (l *Log) truncateFullyLocked(offset, lsn int64) error {
	if err := l.setRecoveryPointLocked(recoveryPoint{Offset: offset, SegmentBase: offset, Position: rpRestart, LSN: max(l.rp.LSN, lsn), LogStart: offset}); err != nil {
		return err
	}
	for j := len(l.segs) - 1; j >= 0; j-- {
		s := l.segs[j]
		l.segs = l.segs[:j]
		l.size -= s.size
		err := l.unlinkSegmentLocked(s)
		s.release()
		if err != nil {
			return err
		}
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("storage: sync dir: %w", err)
	}
	ns, err := createSegment(l.fs, l.files, l.dir, offset, l.opts.Now().UnixMilli())
	if err != nil {
		return err
	}
	l.segs = []*segment{ns}
	l.size = 0
	if err := ns.syncLog(); err != nil {
		return fmt.Errorf("storage: sync segment %d: %w", offset, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("storage: sync dir: %w", err)
	}
	l.dirDirty = false
	if err := writeCheckpoint(l.fs, filepath.Join(l.dir, logStartFile), ckKindLogStart, putInt64s(offset)); err != nil {
		return err
	}
	l.logStart, l.logEnd = offset, offset
	return l.setRecoveryPointLocked(recoveryPoint{Offset: offset, SegmentBase: offset, LSN: max(l.rp.LSN, lsn), LogStart: offset})
}

// setRecoveryPointLocked checkpoints rp (cpMu held).
func (l *Log) setRecoveryPointLocked(rp recoveryPoint) error {
	if err := writeCheckpoint(l.fs, recoveryPointPath(l.dir), ckKindRecoveryPoint, rp.encode()); err != nil {
		return err
	}
	l.rp = rp
	return nil
}

// reloadProducersLocked rebuilds producer state after a truncation from
// the newest snapshot at or below the new end.
func (l *Log) reloadProducersLocked() error {
	snaps, err := listBases(l.fs, l.dir, snapshotSuffix)
	if err != nil {
		return err
	}
	for _, b := range snaps {
		if b > l.logEnd {
			l.fs.Remove(segmentFile(l.dir, b, snapshotSuffix))
		}
	}
	l.producers = producerstate.New()
	return l.loadProducerState(slices.DeleteFunc(snaps, func(b int64) bool { return b > l.logEnd }))
}
