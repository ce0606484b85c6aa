package storage

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"github.com/streambus/streambus/internal/producerstate"
	"github.com/streambus/streambus/internal/recordbatch"
)

// ErrUnexpectedAppendOffset rejects a replicated append whose first batch
// starts below the log end offset (Kafka's UnexpectedAppendOffsetException):
// the follower fetched from the wrong offset, or the log changed under it.
var ErrUnexpectedAppendOffset = errors.New("storage: replicated batch below the log end offset")

// AppendReplicated writes record batches fetched from the partition
// leader at the end of the log, as a follower does (Kafka's
// appendAsFollower). Unlike Append it keeps the batches byte for byte:
// base offsets and partition leader epochs are the leader's, no
// LogAppendTime is stamped and no producer sequence is checked (the
// leader did that). It does check what a network hop or a confused
// fetcher could break: every batch must be whole, with a valid CRC
// (ErrCorrupt otherwise), base offsets must increase from batch to batch,
// and the first batch must not start below LogEndOffset
// (ErrUnexpectedAppendOffset). A first batch starting above it is
// accepted, as in Kafka: compaction on the leader drops emptied batches,
// so a compacted log has gaps that followers copy.
//
// The leader epoch cache learns every epoch newer than its latest from
// the batches' partitionLeaderEpoch (at that batch's base offset), and
// the producer table records each idempotent batch. Batches are split
// across segments as segment.bytes requires. Like Append it does not
// fsync: in FlushOnAck mode a follower must Sync up to the new log end
// before it reports that offset to the leader (see FlushOnAck). A write
// error fails the log.
func (l *Log) AppendReplicated(records []byte) (AppendResult, error) {
	res := AppendResult{BaseOffset: -1, LastOffset: -1, LogAppendTime: -1}
	hdrs, err := validateReplicated(records)
	if err != nil {
		return res, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return res, ErrClosed
	}
	if l.failed != nil {
		return res, l.failed
	}
	if err := l.journalFailed(); err != nil {
		return res, err
	}
	res.LogStartOffset = l.logStart
	if first := hdrs[0].BaseOffset; first < l.logEnd {
		return res, fmt.Errorf("%w: first batch at %d, log end offset of %v is %d", ErrUnexpectedAppendOffset, first, l.id, l.logEnd)
	}
	prevEnd := l.logEnd
	if err := l.appendReplicatedLocked(records, hdrs); err != nil {
		return res, err
	}
	lsn, err := l.journalAppendLocked(entryAppend, hdrs[0].BaseOffset, records)
	if err != nil {
		return res, l.undoLocked(prevEnd, err)
	}
	res.BaseOffset, res.LastOffset, res.Gen = hdrs[0].BaseOffset, hdrs[len(hdrs)-1].LastOffset(), l.gen
	l.notePendingLocked(lsn)
	return res, nil
}

// appendReplicatedLocked writes validated batches at the end of the log as
// AppendReplicated does, without journaling them (also the replay of an
// append entry).
func (l *Log) appendReplicatedLocked(records []byte, hdrs []recordbatch.Header) error {
	for _, h := range hdrs {
		if h.Size() > l.cfg.SegmentBytes || h.Size() > maxSegmentPosition {
			return fmt.Errorf("%w: batch of %d bytes, segment.bytes %d", ErrRecordTooLarge, h.Size(), l.cfg.SegmentBytes)
		}
	}
	if err := l.touchLocked(); err != nil {
		return err
	}
	for _, h := range hdrs {
		if h.HasProducer() { // loaded before anything is written
			if _, err := l.producersLocked(); err != nil {
				return err
			}
			break
		}
	}
	nowMs := l.opts.Now().UnixMilli()
	if err := l.learnEpochsLocked(hdrs); err != nil {
		return err
	}
	// Write runs of batches that fit the active segment, rolling between
	// runs, so a large fetch does not overfill one segment.
	p := int64(0)
	for i := 0; i < len(hdrs); {
		j, n := i+1, hdrs[i].Size()
		room := l.cfg.SegmentBytes - l.activeLocked().size
		for j < len(hdrs) && n+hdrs[j].Size() <= room {
			n += hdrs[j].Size()
			j++
		}
		if err := l.writeReplicatedLocked(records[p:p+n], hdrs[i:j], nowMs); err != nil {
			return err
		}
		p += n
		i = j
	}
	return nil
}

// learnEpochsLocked adds the epochs of hdrs that are newer than the
// cache's latest, and checkpoints the cache once, before the data is
// written (as Append does).
func (l *Log) learnEpochsLocked(hdrs []recordbatch.Header) error {
	es, changed := l.epochsLocked(), false
	for _, h := range hdrs {
		var c bool
		if es, c = epochsAssign(es, h.PartitionLeaderEpoch, h.BaseOffset); c {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if err := writeCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch, encodeEpochs(es)); err != nil {
		return err
	}
	l.epochs = es
	return nil
}

// writeReplicatedLocked writes records (whole batches, described by hdrs)
// into the active segment after rolling if needed, and records their
// producers.
func (l *Log) writeReplicatedLocked(records []byte, hdrs []recordbatch.Header, nowMs int64) error {
	last := hdrs[len(hdrs)-1].LastOffset()
	if err := l.maybeRollLocked(int64(len(records)), last+1-l.logEnd, nowMs); err != nil {
		return err
	}
	active := l.activeLocked()
	if last-active.base > math.MaxUint32 {
		// Only a gap of 2^32 offsets could do this; the index cannot
		// describe it.
		return fmt.Errorf("%w: batch ending at %d too far past segment %d", ErrCorrupt, last, active.base)
	}
	pos := active.size
	if err := l.writeActiveLocked(records, pos); err != nil {
		return err
	}
	for _, h := range hdrs {
		if err := active.appendIndexes(h, pos, l.intervalLocked()); err != nil {
			return l.failLocked(err)
		}
		pos += h.Size()
	}
	active.size = pos
	active.next = last + 1
	l.size += int64(len(records))
	l.logEnd = last + 1
	// Before the next run's roll, which snapshots the table as of the
	// log end.
	if l.producers != nil { // else no batch has a producer (see AppendReplicated)
		for _, h := range hdrs {
			l.producers.Update(h, nowMs)
		}
	}
	return nil
}

// validateReplicated splits records into whole, CRC-checked batches with
// increasing offsets. The bytes come from another broker over the
// network, so nothing is trusted.
func validateReplicated(records []byte) ([]recordbatch.Header, error) {
	var hdrs []recordbatch.Header
	for p := 0; p < len(records); {
		h, err := recordbatch.ParseHeader(records[p:])
		if err != nil {
			return nil, fmt.Errorf("%w: replicated batch at byte %d: %v", ErrCorrupt, p, err)
		}
		if h.Size() > int64(len(records)-p) {
			return nil, fmt.Errorf("%w: replicated batch of %d bytes with %d left", ErrCorrupt, h.Size(), len(records)-p)
		}
		if _, err := recordbatch.Validate(records[p : p+int(h.Size())]); err != nil {
			return nil, fmt.Errorf("%w: replicated batch at offset %d: %v", ErrCorrupt, h.BaseOffset, err)
		}
		if h.BaseOffset < 0 || h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta)-1 {
			return nil, fmt.Errorf("%w: replicated batch with base offset %d", ErrCorrupt, h.BaseOffset)
		}
		if n := len(hdrs); n > 0 && h.BaseOffset <= hdrs[n-1].LastOffset() {
			return nil, fmt.Errorf("%w: replicated batch at %d does not follow batch ending at %d", ErrCorrupt, h.BaseOffset, hdrs[n-1].LastOffset())
		}
		hdrs = append(hdrs, h)
		p += int(h.Size())
	}
	if len(hdrs) == 0 {
		return nil, fmt.Errorf("%w: no record batch", ErrCorrupt)
	}
	return hdrs, nil
}

// FlushOnAck reports whether the log runs in the durable mode
// (log.flush.mode=ack), where HighWatermark is the fsynced offset. A
// follower in this mode must Sync(LogEndOffset()) after AppendReplicated
// and before its next fetch reports the new end to the leader: the leader
// counts a follower's fetch offset as replicated, and acks=all must not
// count data a follower crash could lose.
func (l *Log) FlushOnAck() bool { return l.opts.FlushOnAck }

// TruncateFullyAndStartAt empties the log and restarts it at offset,
// which may lie beyond the log end: a follower whose log end is below
// its leader's log start (OFFSET_OUT_OF_RANGE) starts over there, as
// Kafka's truncateFullyAndStartAt does. The leader epoch cache and the
// producer state (with every snapshot) are cleared, since nothing of the
// old log remains; Sync callers get ErrTruncated. Crash safety is
// Truncate's full-truncation path.
func (l *Log) TruncateFullyAndStartAt(offset int64) error {
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
	if offset < 0 {
		return fmt.Errorf("%w: start at %d", ErrOffsetOutOfRange, offset)
	}
	if err := l.touchLocked(); err != nil {
		return err
	}
	lsn, err := l.journalSyncLocked(entryReset, offset, nil)
	if err != nil {
		return err
	}
	return l.resetLocked(offset, lsn)
}

// resetLocked empties the log and restarts it at offset (cpMu held), as
// TruncateFullyAndStartAt describes, without journaling it; the log then
// reflects the journal up to lsn.
func (l *Log) resetLocked(offset, lsn int64) error {
	if err := l.touchLocked(); err != nil {
		return err
	}
	if err := l.truncateFullyLocked(offset, lsn); err != nil {
		return l.failLocked(err)
	}
	l.noteCutLocked(offset)
	l.pending = nil
	l.lastLSN = max(l.lastLSN, lsn)
	l.durableAtEndLocked()
	for _, w := range l.waiters {
		w.ch <- fmt.Errorf("%w: waiting for %d, log restarted at %d", ErrTruncated, w.upTo, offset)
	}
	l.waiters = nil
	l.notifyLocked()
	if len(l.epochsLocked()) > 0 {
		if err := writeCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch, encodeEpochs(nil)); err != nil {
			return l.failLocked(err)
		}
		l.epochs = nil
	}
	snaps, err := listBases(l.fs, l.dir, snapshotSuffix)
	if err != nil {
		return l.failLocked(err)
	}
	for _, b := range snaps {
		l.fs.Remove(segmentFile(l.dir, b, snapshotSuffix))
	}
	l.producers = producerstate.New()
	return nil
}
