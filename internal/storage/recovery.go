package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/streambus/streambus/internal/producerstate"
	"github.com/streambus/streambus/internal/recordbatch"
)

// openLog opens and recovers the log in dir, creating the directory unless
// found is set (OpenManager found it in the data directory listing).
func (m *Manager) openLog(id PartitionID, dir string, cfg LogConfig, found bool) (*Log, error) {
	if err := validateLogConfig(cfg); err != nil {
		return nil, err
	}
	opts := &m.opts
	l := &Log{
		id: id, dir: dir, fs: opts.FS, opts: opts, cfg: cfg,
		files: m.files, dataDir: &m.dataDir, mgr: m, stream: streamOf(id),
		logger:  opts.Logger.With("partition", fmt.Sprintf("%s-%d", id.Topic, id.Partition)),
		changed: make(chan struct{}),
	}
	if !found {
		if err := l.fs.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("storage: create %s: %w", dir, err)
		}
		l.newDirs = m.dataDir.changed()
	}
	if err := l.recover(); err != nil {
		for _, s := range l.segs {
			s.release()
		}
		return nil, fmt.Errorf("storage: recover %v: %w", id, err)
	}
	return l, nil
}

// dirListing is what recovery takes from one listing of a partition
// directory.
type dirListing struct {
	logs, snapshots []int64 // base offsets, sorted
	marker          bool    // clean-shutdown
	logStart        bool    // log-start-offset.checkpoint
	epochs          bool    // leader-epoch.checkpoint
	recoveryPoint   bool    // recovery-point.checkpoint
}

func listDir(ents []fs.DirEntry) dirListing {
	var ls dirListing
	for _, e := range ents {
		name := e.Name()
		switch name {
		case cleanShutdownFile:
			ls.marker = true
		case logStartFile:
			ls.logStart = true
		case leaderEpochFile:
			ls.epochs = true
		case recoveryPointFile:
			ls.recoveryPoint = true
		default:
			if b, ok := parseBaseName(name, logSuffix); ok {
				ls.logs = append(ls.logs, b)
			} else if b, ok := parseBaseName(name, snapshotSuffix); ok {
				ls.snapshots = append(ls.snapshots, b)
			}
		}
	}
	slices.Sort(ls.logs)
	slices.Sort(ls.snapshots)
	return ls
}

// recover brings the directory to a consistent state and loads it, ready
// for the Manager to replay the journal into it (then finishOpen). An
// empty directory is a new log: nothing is written (absent checkpoints
// mean the defaults), and its first segment's file is created with its
// first data. A clean-shutdown marker that matches the files is trusted
// and kept (see touchLocked). Otherwise the log is cut at its recovery
// point (cutTail), or, in a data directory from before the journal,
// validated after it (scanTail).
func (l *Log) recover() error {
	nowMs := l.opts.Now().UnixMilli()
	ents, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("storage: list %s: %w", l.dir, err)
	}
	if len(ents) == 0 {
		return l.startNew(nowMs)
	}
	if changed, err := l.cleanLeftovers(ents); err != nil {
		return err
	} else if changed {
		if ents, err = l.fs.ReadDir(l.dir); err != nil {
			return fmt.Errorf("storage: list %s: %w", l.dir, err)
		}
	}
	ls := listDir(ents)
	var clean *cleanShutdown
	if ls.marker {
		clean = l.readCleanShutdown()
	}
	l.loadCheckpoints(ls)
	if len(ls.logs) == 0 {
		if ls.marker {
			if err := l.removeMarker(); err != nil {
				return err
			}
			ls.marker, clean = false, nil
		}
		s, err := createSegment(l.fs, l.files, l.dir, l.logStart, nowMs)
		if err != nil {
			return err
		}
		l.segs = []*segment{s}
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("storage: sync dir: %w", err)
		}
	} else {
		if err := l.openSegments(ls.logs); err != nil {
			return err
		}
	}
	l.logStart = max(l.logStart, l.segs[0].base)
	last := l.activeLocked()
	trusted := clean != nil && clean.ActiveBase == last.base && clean.ActiveSize == last.size && clean.LogEnd >= last.base
	if ls.marker && !trusted {
		// Gone for good before recovery changes anything.
		if err := l.removeMarker(); err != nil {
			return err
		}
	}
	legacy := false
	if trusted {
		last.next = clean.LogEnd
		l.keptMarker = true
		l.rp.LSN = clean.LSN
		l.logger.Debug("storage: clean shutdown, no recovery scan")
	} else {
		rp := rpNone
		if ls.recoveryPoint {
			rp = l.readRecoveryPoint()
		}
		legacy = rp.legacy || (rp.Offset < 0 && l.mgr.legacy)
		if legacy {
			err = l.scanTail(rp)
		} else if err = l.cutTail(rp); err == nil {
			// The log start of the recovery point's time: the journal
			// entries after it replay later moves.
			l.rp.LSN = max(rp.LSN, 0)
			l.logStart = max(rp.LogStart, l.segs[0].base)
		}
		if err != nil {
			return err
		}
	}
	for _, s := range l.segs {
		l.size += s.size
	}
	last = l.activeLocked()
	last.createdMs = nowMs
	l.logEnd = last.next
	l.rp = recoveryPoint{Offset: l.logEnd, SegmentBase: last.base, Position: last.size, LSN: l.rp.LSN, LogStart: l.logStart}
	l.lastLSN = l.rp.LSN
	l.durableAtEndLocked()
	if trusted {
		// Close wrote this recovery point before the marker, and left the
		// producer snapshot and epoch checkpoint matching the log: both
		// are read when first needed (producersLocked, epochsLocked).
		return nil
	}
	l.producers = producerstate.New()
	if err := l.loadProducerState(ls.snapshots); err != nil {
		return err
	}
	if err := l.fixEpochs(); err != nil {
		return err
	}
	if !legacy {
		// The recovery point stands: the files were only cut back to it,
		// and the journal holds everything acknowledged after it.
		return nil
	}
	// What recovery read may still sit only in the page cache (after a
	// process crash); make it durable before it is served as durable.
	if err := last.syncLog(); err != nil {
		return fmt.Errorf("storage: sync segment %d: %w", last.base, err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("storage: sync dir: %w", err)
	}
	return writeCheckpoint(l.fs, recoveryPointPath(l.dir), ckKindRecoveryPoint, l.rp.encode())
}

// finishOpen completes recovery after the journal replay.
func (l *Log) finishOpen() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return nil // reported as offline; Manager.Recover retries
	}
	if l.logStart > l.logEnd {
		// The crash took data the log start had moved into: restart the
		// log start at the end, durably, so later appends are visible.
		if err := l.touchLocked(); err != nil {
			return err
		}
		if err := writeCheckpoint(l.fs, filepath.Join(l.dir, logStartFile), ckKindLogStart, putInt64s(l.logEnd)); err != nil {
			return err
		}
		l.logStart = l.logEnd
	}
	l.durableAtEndLocked()
	return nil
}

// adopt takes the state of fresh, a new recovery of the same directory,
// into the failed log l (Manager.Recover), so that those holding l keep
// using it.
func (l *Log) adopt(fresh *Log) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.unflushed {
		s.release()
	}
	for _, s := range l.segs {
		s.retire(s.refs.Load() > 1)
		s.release()
	}
	for _, w := range l.waiters {
		w.ch <- l.failed
	}
	l.waiters = nil
	fresh.mu.Lock()
	defer fresh.mu.Unlock()
	l.segs, l.unflushed = fresh.segs, fresh.unflushed
	l.logStart, l.logEnd, l.size = fresh.logStart, fresh.logEnd, fresh.size
	l.producers, l.epochs, l.epochsOnDisk = fresh.producers, fresh.epochs, fresh.epochsOnDisk
	l.dirDirty, l.newDirs, l.keptMarker, l.unborn = fresh.dirDirty, fresh.newDirs, fresh.keptMarker, fresh.unborn
	l.rp, l.cleanedTo, l.tombstoneDue = fresh.rp, 0, 0
	l.durable, l.durSeg, l.durPos, l.durLSN, l.lastLSN = fresh.durable, fresh.durSeg, fresh.durPos, fresh.durLSN, fresh.lastLSN
	l.pending = nil
	l.failed = nil
	fresh.segs, fresh.unflushed, fresh.closed = nil, nil, true
	l.notifyLocked()
}

// startNew starts an empty log in an empty directory. Nothing is written:
// the first segment's file is created by the log's first change
// (touchLocked), the directory entries become durable before its first
// data does (newDirs), and a crash before that loses only an empty log. An
// empty directory opens as an empty log, so a log never written is closed
// without writing anything either.
func (l *Log) startNew(nowMs int64) error {
	l.segs = []*segment{newEmptySegment(l.fs, l.files, l.dir, 0, nowMs)}
	l.producers = producerstate.New()
	l.unborn = true
	if l.newDirs == 0 {
		l.newDirs = l.dataDir.changed()
	}
	l.rp = recoveryPoint{SegmentBase: 0}
	l.durableAtEndLocked()
	return nil
}

// cleanLeftovers removes interrupted writes and finishes interrupted
// compaction swaps found in the listing, and reports whether it changed
// anything.
func (l *Log) cleanLeftovers(ents []fs.DirEntry) (bool, error) {
	changed := false
	for _, e := range ents {
		name := e.Name()
		full := filepath.Join(l.dir, name)
		switch {
		case strings.HasSuffix(name, tmpSuffix), strings.HasSuffix(name, cleanedSuffix):
			if err := l.fs.Remove(full); err != nil {
				return false, fmt.Errorf("storage: remove leftover %s: %w", name, err)
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
					return false, fmt.Errorf("storage: remove stale index: %w", err)
				}
			}
			if err := l.fs.Rename(full, segmentFile(l.dir, base, logSuffix)); err != nil {
				return false, fmt.Errorf("storage: finish swap of segment %d: %w", base, err)
			}
			l.logger.Info("storage: completed interrupted compaction swap", "segment", base)
			changed = true
		}
	}
	if changed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return false, fmt.Errorf("storage: sync dir: %w", err)
		}
	}
	return changed, nil
}

// readCleanShutdown reads the clean-shutdown marker; nil if it is corrupt.
func (l *Log) readCleanShutdown() *cleanShutdown {
	b, err := readCheckpoint(l.fs, filepath.Join(l.dir, cleanShutdownFile), ckKindCleanShutdown)
	if err == nil {
		var c cleanShutdown
		if c, err = decodeCleanShutdown(b); err == nil {
			return &c
		}
	}
	if !errors.Is(err, errNoCheckpoint) {
		l.logger.Warn("storage: ignoring corrupt clean-shutdown marker", "err", err)
	}
	return nil
}

// removeMarker removes the clean-shutdown marker durably: the directory
// is in use, and a crash must not find the marker.
func (l *Log) removeMarker() error {
	if err := l.fs.Remove(filepath.Join(l.dir, cleanShutdownFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("storage: remove clean-shutdown marker: %w", err)
	}
	if err := l.fs.SyncDir(l.dir); err != nil {
		return fmt.Errorf("storage: sync dir: %w", err)
	}
	return nil
}

var rpNone = recoveryPoint{Offset: -1}

// loadCheckpoints reads the log start checkpoint if the listing holds one,
// and notes the leader epoch checkpoint for epochsLocked; a corrupt one
// is ignored (logged).
func (l *Log) loadCheckpoints(ls dirListing) {
	l.epochsOnDisk = ls.epochs
	if ls.logStart {
		if b, err := readCheckpoint(l.fs, filepath.Join(l.dir, logStartFile), ckKindLogStart); err == nil {
			if v, err := getInt64s(b, 1); err == nil && v[0] >= 0 {
				l.logStart = v[0]
			}
		} else if !errors.Is(err, errNoCheckpoint) {
			l.logger.Warn("storage: ignoring log start checkpoint", "err", err)
		}
	}
}

// readEpochs reads the leader epoch checkpoint; a corrupt one is ignored
// (logged).
func (l *Log) readEpochs() {
	if b, err := readCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch); err == nil {
		if es, err := decodeEpochs(b); err == nil {
			l.epochs = es
		} else {
			l.logger.Warn("storage: ignoring leader epoch checkpoint", "err", err)
		}
	} else if !errors.Is(err, errNoCheckpoint) {
		l.logger.Warn("storage: ignoring leader epoch checkpoint", "err", err)
	}
}

func (l *Log) readRecoveryPoint() recoveryPoint {
	b, err := readCheckpoint(l.fs, recoveryPointPath(l.dir), ckKindRecoveryPoint)
	var rp recoveryPoint
	if err == nil {
		rp, err = decodeRecoveryPoint(b)
	}
	if err != nil {
		if !errors.Is(err, errNoCheckpoint) {
			l.logger.Error("storage: ignoring recovery point", "err", err)
		}
		return rpNone
	}
	return rp
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
		s, err := openSegment(l.fs, l.files, l.dir, b)
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

// scanTail validates every batch after a legacy recovery point (rpNone if
// there is none), truncates the log at the first torn or corrupt batch,
// and rebuilds the indexes of the segments it scanned.
func (l *Log) scanTail(rp recoveryPoint) error {
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

// cutTail cuts the log at its recovery point (rpNone: the log was never
// checkpointed, and starts again empty at offset 0): what follows was written after the
// last checkpoint, so it is in the journal if it was acknowledged and is
// replayed from there, and what the journal does not hold was never
// acknowledged. The indexes are rebuilt from the recovery point on.
func (l *Log) cutTail(rp recoveryPoint) error {
	if rp.Offset < 0 || rp.Position == rpRestart {
		// Never checkpointed (the journal holds the log's whole history:
		// start again from a new log's state), or fully truncated.
		base := int64(0)
		if rp.Offset >= 0 {
			base = rp.Offset
		}
		for j := len(l.segs) - 1; j >= 0; j-- {
			s := l.segs[j]
			l.segs = l.segs[:j]
			s.release()
			if err := removeSegmentFiles(l.fs, l.dir, s.base); err != nil {
				return err
			}
		}
		s, err := createSegment(l.fs, l.files, l.dir, base, l.opts.Now().UnixMilli())
		if err != nil {
			return err
		}
		l.segs = []*segment{s}
		return nil
	}
	i := slices.IndexFunc(l.segs, func(s *segment) bool { return s.base == rp.SegmentBase })
	pos := rp.Position
	if i < 0 || pos > l.segs[i].size {
		// The recovery point's segment is gone (retention) or shorter than
		// it says: cut at its offset instead.
		i = max(sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > rp.Offset })-1, 0)
		s := l.segs[i]
		var hbuf [recordbatch.HeaderSize]byte
		for pos = 0; pos < s.size; {
			h, err := s.readHeader(pos, s.size, hbuf[:])
			if err != nil || h.BaseOffset >= rp.Offset {
				break // a torn batch ends what the recovery point covers too
			}
			pos += h.Size()
		}
		l.logger.Warn("storage: recovery point not found in its segment; cutting at its offset", "offset", rp.Offset, "segment", s.base, "position", pos)
	}
	for j := len(l.segs) - 1; j > i; j-- {
		later := l.segs[j]
		l.segs = l.segs[:j]
		later.release()
		if err := removeSegmentFiles(l.fs, l.dir, later.base); err != nil {
			return err
		}
	}
	s := l.segs[i]
	if pos < s.size {
		if err := s.truncateLog(pos); err != nil {
			return fmt.Errorf("storage: cut segment %d: %w", s.base, err)
		}
		s.size = pos
	}
	minBase := s.base
	if i > 0 {
		minBase = max(minBase, l.segs[i-1].next)
	}
	_, err := s.recoverSegment(pos, minBase, l.intervalLocked())
	return err
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
		if err := s.truncateLog(pos); err != nil {
			return false, fmt.Errorf("storage: truncate segment %d: %w", s.base, err)
		}
		if err := s.syncLog(); err != nil {
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

// loadProducerState loads the newest of the producer snapshots (snaps,
// sorted) not beyond the log end and replays the batches after it.
func (l *Log) loadProducerState(snaps []int64) error {
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
	es, c1 := epochsTruncateEnd(l.epochsLocked(), l.logEnd)
	es, c2 := epochsTruncateStart(es, l.logStart)
	l.epochs = es
	if c1 || c2 {
		if err := l.touchLocked(); err != nil {
			return err
		}
		return writeCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch, encodeEpochs(es))
	}
	return nil
}
