package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/streambus/streambus/internal/producerstate"
	"github.com/streambus/streambus/internal/recordbatch"
)

// openLog opens (creating if needed) and recovers the log in dir.
func openLog(opts *ManagerOptions, id PartitionID, dir string, cfg LogConfig) (*Log, error) {
	if err := validateLogConfig(cfg); err != nil {
		return nil, err
	}
	l := &Log{
		id: id, dir: dir, fs: opts.FS, opts: opts, cfg: cfg,
		logger:      opts.Logger.With("partition", fmt.Sprintf("%s-%d", id.Topic, id.Partition)),
		producers:   producerstate.New(),
		changed:     make(chan struct{}),
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		flusherDone: make(chan struct{}),
	}
	if err := l.fs.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create %s: %w", dir, err)
	}
	if err := l.recover(); err != nil {
		for _, s := range l.segs {
			s.release()
		}
		return nil, fmt.Errorf("storage: recover %v: %w", id, err)
	}
	go l.flushLoop()
	return l, nil
}

// recover brings the directory to a consistent state and loads it.
func (l *Log) recover() error {
	nowMs := l.opts.Now().UnixMilli()
	if err := l.cleanLeftovers(); err != nil {
		return err
	}
	clean := l.readCleanShutdown()
	if err := l.loadCheckpoints(); err != nil {
		return err
	}
	bases, err := listBases(l.fs, l.dir, logSuffix)
	if err != nil {
		return err
	}
	if len(bases) == 0 {
		s, err := createSegment(l.fs, l.dir, l.logStart, nowMs)
		if err != nil {
			return err
		}
		l.segs = []*segment{s}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("storage: sync dir: %w", err)
		}
	} else {
		if err := l.openSegments(bases); err != nil {
			return err
		}
	}
	l.logStart = max(l.logStart, l.segs[0].base)
	last := l.activeLocked()
	if clean != nil && clean.ActiveBase == last.base && clean.ActiveSize == last.size && clean.LogEnd >= last.base {
		last.next = clean.LogEnd
		l.logger.Debug("storage: clean shutdown, no recovery scan")
	} else if err := l.scanTail(); err != nil {
		return err
	}
	for _, s := range l.segs {
		l.size += s.size
	}
	last = l.activeLocked()
	last.createdMs = nowMs
	l.logEnd = last.next
	if l.logStart > l.logEnd {
		// The crash took data the log start had moved into: restart the
		// log start at the end, durably, so later appends are visible.
		if err := writeCheckpoint(l.fs, filepath.Join(l.dir, logStartFile), ckKindLogStart, putInt64s(l.logEnd)); err != nil {
			return err
		}
		l.logStart = l.logEnd
	}
	if err := l.loadProducerState(); err != nil {
		return err
	}
	if err := l.fixEpochs(); err != nil {
		return err
	}
	// What recovery read may still sit only in the page cache (after a
	// process crash); make it durable before it is served as durable.
	if clean == nil {
		if err := last.f.Sync(); err != nil {
			return fmt.Errorf("storage: sync segment %d: %w", last.base, err)
		}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("storage: sync dir: %w", err)
		}
	}
	l.durable = l.logEnd
	l.rp = recoveryPoint{Offset: l.logEnd, SegmentBase: last.base, Position: last.size}
	return writeCheckpoint(l.fs, filepath.Join(l.dir, recoveryPointFile), ckKindRecoveryPoint,
		putInt64s(l.rp.Offset, l.rp.SegmentBase, l.rp.Position))
}

// cleanLeftovers removes interrupted writes and finishes interrupted
// compaction swaps.
func (l *Log) cleanLeftovers() error {
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("storage: list %s: %w", l.dir, err)
	}
	changed := false
	for _, e := range ents {
		name := e.Name()
		full := filepath.Join(l.dir, name)
		switch {
		case strings.HasSuffix(name, tmpSuffix), strings.HasSuffix(name, cleanedSuffix):
			if err := l.fs.Remove(full); err != nil {
				return fmt.Errorf("storage: remove leftover %s: %w", name, err)
			}
			changed = true
		case strings.HasSuffix(name, logSuffix+swapSuffix):
			// The swap file was committed (fsynced and renamed) by the
			// cleaner: finish replacing the segment. Its indexes are
			// stale and are rebuilt on first use.
			base, ok := parseBaseName(strings.TrimSuffix(name, swapSuffix), logSuffix)
			if !ok {
				continue
			}
			for _, suf := range []string{indexSuffix, timeIndexSuffix} {
				if err := l.fs.Remove(segmentFile(l.dir, base, suf)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("storage: remove stale index: %w", err)
				}
			}
			if err := l.fs.Rename(full, segmentFile(l.dir, base, logSuffix)); err != nil {
				return fmt.Errorf("storage: finish swap of segment %d: %w", base, err)
			}
			l.logger.Info("storage: completed interrupted compaction swap", "segment", base)
			changed = true
		}
	}
	if changed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("storage: sync dir: %w", err)
		}
	}
	return nil
}

// readCleanShutdown reads and removes the clean-shutdown marker: from now
// on the directory is in use, and a crash must not find the marker.
func (l *Log) readCleanShutdown() *cleanShutdown {
	name := filepath.Join(l.dir, cleanShutdownFile)
	b, err := readCheckpoint(l.fs, name, ckKindCleanShutdown)
	if errors.Is(err, errNoCheckpoint) {
		return nil
	}
	var out *cleanShutdown
	if err == nil {
		if v, err2 := getInt64s(b, 3); err2 == nil {
			out = &cleanShutdown{LogEnd: v[0], ActiveBase: v[1], ActiveSize: v[2]}
		}
	}
	if out == nil {
		l.logger.Warn("storage: ignoring corrupt clean-shutdown marker", "err", err)
	}
	if rerr := l.fs.Remove(name); rerr == nil {
		if serr := l.fs.SyncDir(l.dir); serr != nil {
			return nil
		}
	} else {
		return nil
	}
	return out
}

var rpNone = recoveryPoint{Offset: -1}

func (l *Log) loadCheckpoints() error {
	if b, err := readCheckpoint(l.fs, filepath.Join(l.dir, logStartFile), ckKindLogStart); err == nil {
		if v, err := getInt64s(b, 1); err == nil && v[0] >= 0 {
			l.logStart = v[0]
		}
	} else if !errors.Is(err, errNoCheckpoint) {
		l.logger.Warn("storage: ignoring log start checkpoint", "err", err)
	}
	if b, err := readCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch); err == nil {
		if es, err := decodeEpochs(b); err == nil {
			l.epochs = es
		} else {
			l.logger.Warn("storage: ignoring leader epoch checkpoint", "err", err)
		}
	} else if !errors.Is(err, errNoCheckpoint) {
		l.logger.Warn("storage: ignoring leader epoch checkpoint", "err", err)
	}
	return nil
}

func (l *Log) readRecoveryPoint() recoveryPoint {
	b, err := readCheckpoint(l.fs, filepath.Join(l.dir, recoveryPointFile), ckKindRecoveryPoint)
	if err != nil {
		if !errors.Is(err, errNoCheckpoint) {
			l.logger.Warn("storage: ignoring recovery point", "err", err)
		}
		return rpNone
	}
	v, err := getInt64s(b, 3)
	if err != nil {
		return rpNone
	}
	return recoveryPoint{Offset: v[0], SegmentBase: v[1], Position: v[2]}
}

// openSegments opens the segment files, deleting those wholly below the
// log start offset.
func (l *Log) openSegments(bases []int64) error {
	for i, b := range bases {
		if i+1 < len(bases) && bases[i+1] <= l.logStart {
			if err := removeSegmentFiles(l.fs, l.dir, b); err != nil {
				return err
			}
			continue
		}
		s, err := openSegment(l.fs, l.dir, b)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
	}
	for i := 0; i+1 < len(l.segs); i++ {
		l.segs[i].next = l.segs[i+1].base
	}
	return nil
}

func removeSegmentFiles(fsys interface{ Remove(string) error }, dir string, base int64) error {
	for _, suf := range []string{logSuffix, indexSuffix, timeIndexSuffix} {
		if err := fsys.Remove(segmentFile(dir, base, suf)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("storage: remove segment %d: %w", base, err)
		}
	}
	return nil
}

// scanTail validates every batch after the recovery point, truncates the
// log at the first torn or corrupt batch, and rebuilds the indexes of the
// segments it scanned.
func (l *Log) scanTail() error {
	rp := l.readRecoveryPoint()
	start, from := 0, int64(0)
	if rp.Offset >= 0 {
		for i, s := range l.segs {
			if s.base == rp.SegmentBase && rp.Position <= s.size && rp.Offset >= s.base {
				start, from = i, rp.Position
				break
			}
		}
	}
	interval := l.intervalLocked()
	for i := start; i < len(l.segs); i++ {
		s := l.segs[i]
		prefix := int64(0)
		if i == start {
			prefix = from
		}
		minBase := s.base
		if i > 0 {
			minBase = max(minBase, l.segs[i-1].next)
		}
		cut, err := s.recoverSegment(prefix, minBase, interval)
		if err != nil {
			return err
		}
		// Segments after the recovery point are never compacted, so a gap
		// before the next segment means this one lost its unsynced tail
		// while a later file kept data: the later data must go too.
		gap := i+1 < len(l.segs) && s.next < l.segs[i+1].base
		if cut || gap {
			l.logger.Warn("storage: truncated torn or corrupt log tail", "segment", s.base, "size", s.size)
			for _, later := range l.segs[i+1:] {
				later.release()
				if err := removeSegmentFiles(l.fs, l.dir, later.base); err != nil {
					return err
				}
			}
			l.segs = l.segs[:i+1]
			if err := l.fs.SyncDir(l.dir); err != nil {
				return fmt.Errorf("storage: sync dir: %w", err)
			}
			break
		}
	}
	return nil
}

// recoverSegment trusts the first prefix bytes (header walk only),
// validates every batch after it (framing, CRC, increasing offsets ≥
// minBase), truncates the file after the last valid batch, and rebuilds
// the indexes. It reports whether it cut anything.
func (s *segment) recoverSegment(prefix, minBase, interval int64) (bool, error) {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	s.idx, s.tidx = nil, nil
	s.maxTs, s.maxTsOffset, s.bytesSinceIndex = -1, -1, 0
	next := minBase
	note := func(h recordbatch.Header, pos int64) error {
		s.noteBatchLocked(h, pos, interval)
		next = h.LastOffset() + 1
		return nil
	}
	pos := prefix
	if err := s.walkHeaders(0, prefix, note); err != nil {
		// The trusted prefix does not parse: validate everything.
		s.idx, s.tidx = nil, nil
		s.maxTs, s.maxTsOffset, s.bytesSinceIndex = -1, -1, 0
		pos, next = 0, minBase
	}
	var hbuf [recordbatch.HeaderSize]byte
	var buf []byte
	for pos < s.size {
		h, err := s.readHeader(pos, s.size, hbuf[:])
		if err != nil || h.BaseOffset < next {
			break
		}
		b, err := s.readBatch(h, pos, buf)
		if err != nil {
			break
		}
		buf = b
		if _, err := recordbatch.Validate(b); err != nil {
			break
		}
		note(h, pos)
		pos += h.Size()
	}
	cut := pos < s.size
	if cut {
		if err := s.f.Truncate(pos); err != nil {
			return false, fmt.Errorf("storage: truncate segment %d: %w", s.base, err)
		}
		if err := s.f.Sync(); err != nil {
			return false, fmt.Errorf("storage: sync segment %d: %w", s.base, err)
		}
		s.size = pos
	}
	s.next = max(next, s.base)
	if err := s.writeIndexFilesLocked(); err != nil {
		return false, err
	}
	s.idxLoaded = true
	return cut, nil
}

// loadProducerState loads the newest producer snapshot not beyond the log
// end and replays the batches after it.
func (l *Log) loadProducerState() error {
	snaps, err := listBases(l.fs, l.dir, snapshotSuffix)
	if err != nil {
		return err
	}
	from := l.logStart
	for i := len(snaps) - 1; i >= 0; i-- {
		name := segmentFile(l.dir, snaps[i], snapshotSuffix)
		if snaps[i] > l.logEnd {
			l.fs.Remove(name)
			continue
		}
		b, err := readFile(l.fs, name, 1<<30)
		if err == nil {
			err = l.producers.UnmarshalBinary(b)
		}
		if err != nil {
			l.logger.Warn("storage: ignoring producer snapshot", "snapshot", snaps[i], "err", err)
			continue
		}
		from = max(snaps[i], l.logStart)
		break
	}
	if from >= l.logEnd {
		return nil
	}
	for _, s := range l.segs {
		if s.next <= from && s != l.activeLocked() {
			continue
		}
		err := s.walkHeaders(0, s.size, func(h recordbatch.Header, _ int64) error {
			if h.BaseOffset >= from {
				l.producers.Update(h, h.MaxTimestamp)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("storage: replay producer state: %w", err)
		}
	}
	l.producers.Prune(l.logStart)
	return nil
}

// fixEpochs trims the leader epoch cache to the recovered log.
func (l *Log) fixEpochs() error {
	es, c1 := epochsTruncateEnd(l.epochs, l.logEnd)
	es, c2 := epochsTruncateStart(es, l.logStart)
	l.epochs = es
	if c1 || c2 {
		return writeCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch, encodeEpochs(es))
	}
	return nil
}
