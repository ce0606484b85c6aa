package storage

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/streambus/streambus/internal/journal"
	"github.com/streambus/streambus/internal/recordbatch"
)

// The data directory's journal (docs/adr/0008): every append of every log
// is written to its segment without fsync and appended to the journal, and
// one journal fdatasync per group-commit round makes a whole round durable.
// Checkpoints fsync the segments and write each log's recovery point with
// the journal LSN it covers; recovery cuts each log back to its recovery
// point and replays the journal entries after it.

// journalDirName is the journal's directory inside the data directory. It
// has no '-', so it is never taken for a partition directory.
const journalDirName = "journal"

// Journal entry kinds: part of the on-disk format (docs/ARCHITECTURE.md).
const (
	// entryAppend: Offset is the first batch's base offset, Data the
	// batches as written to the segment.
	entryAppend uint8 = 1
	// entryTruncate: the log keeps only the batches below Offset
	// (Truncate); Data is truncateFull if it emptied the log and restarted
	// it at Offset, else empty.
	entryTruncate uint8 = 2
	// entryReset: the log is emptied and restarts at Offset
	// (TruncateFullyAndStartAt).
	entryReset uint8 = 3
	// entryDelete: the partition was deleted; its earlier entries belong
	// to a gone incarnation and never replay into a recreated one.
	entryDelete uint8 = 4
	// entryLogStart: the log start moved up to Offset
	// (DeleteRecordsBefore).
	entryLogStart uint8 = 5
)

// truncateFull is the data of a truncate entry that emptied the log.
var truncateFull = []byte{1}

// streamOf is the journal stream of a partition: the 64-bit FNV-1a hash of
// its directory name. The Manager refuses a partition whose stream
// collides with another's.
func streamOf(id PartitionID) uint64 {
	h := fnv.New64a()
	h.Write([]byte(PartitionDirName(id)))
	return h.Sum64()
}

// pendingAppend is a journal entry of the log that is not yet durable.
type pendingAppend struct {
	lsn      int64 // journal LSN just after the entry
	end      int64 // log end offset after it
	seg, pos int64 // segment base and position where it ended
}

// journalAppendLocked appends an entry of the log to the journal. An
// entry the journal cannot take fails nothing but this call.
func (l *Log) journalAppendLocked(kind uint8, offset int64, data []byte) (int64, error) {
	lsn, err := l.mgr.journal.Append(journal.Entry{Kind: kind, Stream: l.stream, Offset: offset, Data: data})
	if errors.Is(err, journal.ErrTooLarge) {
		return 0, fmt.Errorf("%w: %d bytes in one append", ErrRecordTooLarge, len(data))
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %v: %w", ErrStorage, l.id, err)
	}
	l.lastLSN = lsn
	return lsn, nil
}

// journalFailed returns the journal's failure (wrapping ErrStorage),
// or nil.
func (l *Log) journalFailed() error {
	if err := l.mgr.journal.Failed(); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return nil
}

// notePendingLocked records an append that becomes durable with the
// journal up to lsn, and starts a round in the durable mode.
func (l *Log) notePendingLocked(lsn int64) {
	a := l.activeLocked()
	l.pending = append(l.pending, pendingAppend{lsn: lsn, end: l.logEnd, seg: a.base, pos: a.size})
	l.mgr.watch(l)
	if l.opts.FlushOnAck {
		l.mgr.journal.Flush()
	} else {
		l.notifyLocked()
	}
}

// advanceLocked moves the durable offset past every pending append the
// journal made durable (up to lsn), and wakes those waiting for it. It
// reports whether appends are still pending.
func (l *Log) advanceLocked(lsn int64) bool {
	if l.closed {
		l.pending = nil
		return false
	}
	n := 0
	for n < len(l.pending) && l.pending[n].lsn <= lsn {
		n++
	}
	if n > 0 {
		p := l.pending[n-1]
		l.pending = slices.Delete(l.pending, 0, n)
		l.setDurableLocked(p.end, p.seg, p.pos, p.lsn)
		if l.opts.FlushOnAck {
			l.notifyLocked()
		}
		l.wakeWaitersLocked()
	}
	return len(l.pending) > 0
}

// setDurableLocked sets where the durable part of the log ends and the
// journal LSN of its newest entry.
func (l *Log) setDurableLocked(end, seg, pos, lsn int64) {
	l.durable, l.durSeg, l.durPos = end, seg, pos
	l.durLSN = max(l.durLSN, lsn)
}

// durableAtEndLocked declares the whole log durable (after recovery, a
// synchronous cut, or Close).
func (l *Log) durableAtEndLocked() {
	a := l.activeLocked()
	l.setDurableLocked(l.logEnd, a.base, a.size, l.lastLSN)
}

// dropPendingLocked forgets the pending appends after the journal failed
// (their callers get err) and cuts them from the segments, so that nothing
// a client was told failed is ever read, nor written after.
func (l *Log) dropPendingLocked(err error) {
	if len(l.pending) == 0 && l.logEnd == l.durable {
		return
	}
	l.pending = nil
	// Their LSNs are reused once the journal is reset.
	l.lastLSN = l.durLSN
	for _, w := range l.waiters {
		w.ch <- err
	}
	l.waiters = nil
	if l.failed != nil || l.closed {
		return
	}
	if cerr := l.cutLocked(l.durable, false, l.durLSN); cerr != nil {
		l.failLocked(fmt.Errorf("storage: cut %v back to %d after a failed journal round: %w", l.id, l.durable, cerr))
		return
	}
	l.logger.Warn("storage: cut appends whose journal round failed", "offset", l.durable)
}

// watch registers a log with pending appends for the durable loop.
func (m *Manager) watch(l *Log) {
	m.pmu.Lock()
	if !l.watched {
		l.watched = true
		m.watching = append(m.watching, l)
	}
	m.pmu.Unlock()
}

// takeWatched returns the logs with pending appends and clears the list.
func (m *Manager) takeWatched() []*Log {
	m.pmu.Lock()
	defer m.pmu.Unlock()
	ls := m.watching
	m.watching = nil
	for _, l := range ls {
		l.watched = false
	}
	return ls
}

// onRound is the journal's OnRound: it wakes the durable loop.
func (m *Manager) onRound() {
	select {
	case m.roundC <- struct{}{}:
	default:
	}
}

// durableLoop is the Manager's goroutine that tells logs what each
// journal round made durable, or that it failed.
func (m *Manager) durableLoop() {
	defer m.loops.Done()
	for {
		select {
		case <-m.stopLoops:
			return
		case <-m.roundC:
		}
		m.afterRound()
		if m.journalBytes() >= m.opts.CheckpointBytes {
			m.kickCheckpoint()
		}
	}
}

// afterRound advances every watched log to the journal's durable LSN, or,
// if the journal failed, cuts their pending appends.
func (m *Manager) afterRound() {
	if err := m.journal.Failed(); err != nil {
		m.dropPending(m.takeWatched(), err)
		return
	}
	d := m.journal.Durable()
	for _, l := range m.takeWatched() {
		l.mu.Lock()
		more := l.advanceLocked(d)
		l.mu.Unlock()
		if more {
			m.watch(l)
		}
	}
}

// dropPending settles the pending appends of logs after the journal
// failed with err: those a round before the failed one made durable (the
// wake-up for them may be this one) advance, the rest are cut.
func (m *Manager) dropPending(logs []*Log, err error) {
	d, serr := m.journal.Durable(), fmt.Errorf("%w: %w", ErrStorage, err)
	for _, l := range logs {
		l.cpMu.Lock()
		l.mu.Lock()
		l.advanceLocked(d)
		l.dropPendingLocked(serr)
		l.mu.Unlock()
		l.cpMu.Unlock()
	}
}

// journalBytes is the size of the journal's records since its oldest
// file.
func (m *Manager) journalBytes() int64 {
	files := m.journal.Files()
	if len(files) == 0 {
		return 0
	}
	return m.journal.End() - files[0]
}

func (m *Manager) kickCheckpoint() {
	select {
	case m.cpKick <- struct{}{}:
	default:
	}
}

// checkpointLoop is the Manager's goroutine that checkpoints every
// CheckpointInterval, when the journal passes CheckpointBytes, and
// recovers a failed journal and failed logs once CanRecover allows.
func (m *Manager) checkpointLoop() {
	defer m.loops.Done()
	t := time.NewTicker(m.opts.CheckpointInterval)
	defer t.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		select {
		case <-m.stopLoops:
			return
		case <-t.C:
		case <-m.cpKick:
		case <-retry.C:
			if !m.needsRecovery() {
				continue
			}
			if m.opts.CanRecover != nil && !m.opts.CanRecover() {
				continue
			}
			if err := m.Recover(); err != nil {
				m.opts.Logger.Warn("storage: recovery after failure", "err", err)
			}
			continue
		}
		if err := m.Checkpoint(); err != nil {
			m.opts.Logger.Warn("storage: checkpoint", "err", err)
		}
	}
}

// Checkpoint makes the segments durable up to each log's durable offset,
// writes the recovery points, and releases the journal files no log needs
// any more. It runs on its own (checkpointLoop) and at Close.
func (m *Manager) Checkpoint() error {
	m.cpMu.Lock()
	defer m.cpMu.Unlock()
	bound := m.journal.Durable()
	var errs []error
	for _, l := range m.snapshotLogs() {
		rpLSN, behind, err := l.checkpoint()
		if err != nil {
			errs = append(errs, err)
		}
		if behind {
			bound = min(bound, rpLSN)
		}
	}
	if err := m.journal.Release(bound); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkpoint fsyncs what the log wrote since its last checkpoint and
// writes its recovery point at its durable offset. It returns the journal
// LSN its recovery point covers, and whether the log has journal entries
// after it (which the journal must keep).
func (l *Log) checkpoint() (int64, bool, error) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.mu.Lock()
	behind := l.lastLSN > l.rp.LSN
	if l.closed || l.failed != nil || l.unborn {
		l.mu.Unlock()
		return l.rp.LSN, behind, nil
	}
	rp := recoveryPoint{Offset: l.durable, SegmentBase: l.durSeg, Position: l.durPos, LSN: l.durLSN, LogStart: l.logStart}
	if rp == l.rp && len(l.unflushed) == 0 && !l.dirDirty {
		l.mu.Unlock()
		return l.rp.LSN, behind, nil
	}
	rolled := l.unflushed
	l.unflushed = nil
	active := l.activeLocked()
	active.acquire()
	dirDirty := l.dirDirty
	l.dirDirty = false
	newDirs := l.newDirs
	l.newDirs = 0
	l.mu.Unlock()

	var err error
	for _, s := range rolled {
		if err == nil {
			err = s.syncLog()
		}
		if err == nil {
			err = s.syncIndexes()
		}
		s.release()
	}
	if err == nil {
		err = active.syncLog()
	}
	active.release()
	if err == nil && dirDirty {
		err = l.fs.SyncDir(l.dir)
	}
	if err == nil && newDirs != 0 {
		err = l.dataDir.syncTo(newDirs)
	}
	if err == nil && rp != l.rp {
		err = writeCheckpoint(l.fs, recoveryPointPath(l.dir), ckKindRecoveryPoint, rp.encode())
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		return l.rp.LSN, behind, l.failLocked(fmt.Errorf("storage: checkpoint %v: %w", l.id, err))
	}
	l.rp = rp
	return rp.LSN, l.lastLSN > rp.LSN, nil
}

// needsRecovery reports whether the journal or a log failed.
func (m *Manager) needsRecovery() bool {
	if m.journal.Failed() != nil {
		return true
	}
	for _, l := range m.snapshotLogs() {
		if l.ownFailure() != nil {
			return true
		}
	}
	return false
}

// Recover brings the Manager back after I/O errors, without a restart,
// once the caller knows the cause is gone (space is free again): a failed
// journal is reset (what its failed rounds held was cut from the logs
// already), and every failed log is reopened from its directory and the
// journal, as recovery after a crash would.
func (m *Manager) Recover() error {
	m.cpMu.Lock()
	defer m.cpMu.Unlock()
	if jerr := m.journal.Failed(); jerr != nil {
		// Appends whose journal entry was lost with the failed round
		// and that the durable loop has not seen yet go now: their LSNs
		// are about to be reused.
		m.dropPending(m.snapshotLogs(), jerr)
		if err := m.journal.Reset(); err != nil {
			return err
		}
		m.pmu.Lock()
		deleted := m.deletedUnjournaled
		m.deletedUnjournaled = nil
		m.pmu.Unlock()
		for _, s := range deleted {
			if _, err := m.journal.Append(journal.Entry{Kind: entryDelete, Stream: s}); err != nil {
				return err
			}
		}
		m.opts.Logger.Info("storage: journal usable again")
	}
	var errs []error
	for _, l := range m.snapshotLogs() {
		if l.ownFailure() == nil {
			continue
		}
		if err := m.reopen(l); err != nil {
			errs = append(errs, err)
			continue
		}
		m.opts.Logger.Info("storage: log recovered", "partition", l.id)
	}
	return errors.Join(errs...)
}

// reopen replaces a failed log's state with a fresh recovery of its
// directory and journal entries (cpMu held, so no journal file is
// released meanwhile).
func (m *Manager) reopen(l *Log) error {
	// The failed log's pending appends are in the journal: let their
	// round decide them first, so that the replay below covers them.
	l.mu.Lock()
	last := l.lastLSN
	l.mu.Unlock()
	if err := m.journal.Sync(last); err != nil {
		return fmt.Errorf("storage: reopen %v: %w", l.id, err)
	}
	m.afterRound()
	cfg := l.Config()
	fresh, err := m.openLog(l.id, l.dir, cfg, true)
	if err != nil {
		return err
	}
	upTo := m.journal.Durable()
	floors, err := m.deleteFloors(upTo)
	if err == nil {
		err = m.replay(map[uint64]*Log{fresh.stream: fresh}, floors, upTo)
	}
	if err == nil {
		err = fresh.finishOpen()
	}
	if err == nil {
		err = fresh.ownFailure()
	}
	if err != nil {
		fresh.closeForDelete()
		return fmt.Errorf("storage: reopen %v: %w", l.id, err)
	}
	l.adopt(fresh)
	return nil
}

// deleteFloors reads the journal up to upTo and returns, per stream, the
// LSN of its last delete entry: entries at or below it are of a deleted
// incarnation.
func (m *Manager) deleteFloors(upTo int64) (map[uint64]int64, error) {
	floors := map[uint64]int64{}
	err := m.journal.Replay(func(lsn int64, e journal.Entry) error {
		if lsn <= upTo && e.Kind == entryDelete {
			floors[e.Stream] = lsn
		}
		return nil
	})
	return floors, err
}

// replay applies the journal entries up to upTo to the logs of their
// streams, each from after its recovery point. An entry a log cannot
// apply fails that log (reported as offline) and not the others.
func (m *Manager) replay(logs map[uint64]*Log, floors map[uint64]int64, upTo int64) error {
	n := 0
	err := m.journal.Replay(func(lsn int64, e journal.Entry) error {
		l := logs[e.Stream]
		if l == nil || lsn > upTo || lsn <= floors[e.Stream] || lsn <= l.rp.LSN {
			return nil
		}
		n++
		l.applyEntry(lsn, e)
		return nil
	})
	if n > 0 {
		m.opts.Logger.Info("storage: replayed journal", "entries", n)
	}
	return err
}

// applyEntry applies one journal entry during recovery.
func (l *Log) applyEntry(lsn int64, e journal.Entry) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed != nil {
		return
	}
	var err error
	switch e.Kind {
	case entryAppend:
		var hdrs []recordbatch.Header
		if hdrs, err = validateReplicated(e.Data); err != nil {
			break
		}
		if hdrs[len(hdrs)-1].LastOffset() < l.logEnd {
			// Below the first segment kept at open, which dropped the
			// segments wholly below the log start: deleted records.
			break
		}
		if e.Offset < l.logEnd {
			// Never after a consistent recovery point; cut anyway.
			l.logger.Warn("storage: journal append below the log end", "offset", e.Offset, "end", l.logEnd)
			if err = l.cutLocked(e.Offset, e.Offset < l.segs[0].base, lsn); err != nil {
				break
			}
		}
		err = l.appendReplicatedLocked(e.Data, hdrs)
	case entryTruncate:
		if full := len(e.Data) == 1 && e.Data[0] == truncateFull[0]; full || e.Offset < l.logEnd {
			err = l.cutLocked(e.Offset, full, lsn)
		}
	case entryReset:
		err = l.resetLocked(e.Offset, lsn)
	case entryLogStart:
		if e.Offset > l.logStart {
			err = l.deleteBeforeLocked(e.Offset, lsn)
		}
	case entryDelete:
	default:
		err = fmt.Errorf("%w: journal entry of kind %d", ErrCorrupt, e.Kind)
	}
	if err != nil {
		l.failLocked(fmt.Errorf("storage: replay journal entry at LSN %d into %v: %w", lsn, l.id, err))
		return
	}
	l.lastLSN = lsn
	l.durableAtEndLocked()
}
