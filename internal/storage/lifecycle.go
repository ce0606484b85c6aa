package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"
)

// close makes the log's files durable up to its durable offset, writes
// the producer snapshot, recovery point and clean-shutdown marker, and
// drops the log's segment references (Slices still held keep their files
// open). The Manager has made the journal durable and advanced the log
// before. A log opened clean and not changed since writes nothing (its
// files and marker are still those of the last Close), nor does a new log
// never written (its directory is empty, which opens as an empty log). A
// failed log closes without a marker: its next open recovers it from its
// recovery point and the journal.
func (l *Log) close() error {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	if l.failed == nil && (len(l.pending) > 0 || l.durable < l.logEnd) {
		// The journal could not make them durable: their callers are
		// told so, and they go.
		l.dropPendingLocked(fmt.Errorf("%w: %v: closed before its journal round", ErrStorage, l.id))
	}
	l.closed = true
	if l.failed != nil {
		l.logger.Warn("storage: closing a failed log; it recovers at the next open", "err", l.failed)
		l.shutdownLocked()
		return nil
	}
	if l.keptMarker || l.unborn {
		l.shutdownLocked()
		return nil
	}
	err := l.failed
	if err == nil {
		err = l.flushAllLocked()
	}
	if err == nil {
		err = l.writeSnapshotLocked()
	}
	if err == nil {
		a := l.activeLocked()
		rp := recoveryPoint{Offset: l.logEnd, SegmentBase: a.base, Position: a.size, LSN: l.durLSN, LogStart: l.logStart}
		err = writeCheckpoint(l.fs, recoveryPointPath(l.dir), ckKindRecoveryPoint, rp.encode())
		if err == nil {
			l.rp = rp
			err = writeCheckpoint(l.fs, filepath.Join(l.dir, cleanShutdownFile), ckKindCleanShutdown,
				cleanShutdown{LogEnd: l.logEnd, ActiveBase: a.base, ActiveSize: a.size, LSN: l.durLSN}.encode())
		}
	}
	l.shutdownLocked()
	if err != nil {
		return fmt.Errorf("storage: close %v: %w", l.id, err)
	}
	return nil
}

// flushAllLocked fsyncs every segment that may hold unsynced data and the
// active segment's indexes, and the directory.
func (l *Log) flushAllLocked() error {
	var errs []error
	for _, s := range l.unflushed {
		errs = append(errs, s.syncLog(), s.syncIndexes())
		s.release()
	}
	l.unflushed = nil
	a := l.activeLocked()
	errs = append(errs, a.syncLog(), a.syncIndexes(), l.fs.SyncDir(l.dir))
	if l.newDirs != 0 {
		errs = append(errs, l.dataDir.syncTo(l.newDirs))
		l.newDirs = 0
	}
	return errors.Join(errs...)
}

// shutdownLocked fails remaining waiters, wakes long-pollers and drops
// the segment references. Segments are retired: a directory being deleted
// is renamed next, and readers still holding a segment keep its file.
func (l *Log) shutdownLocked() {
	for _, w := range l.waiters {
		w.ch <- ErrClosed
	}
	l.waiters = nil
	close(l.changed) // and never replaced: every later Changed() is closed
	for _, s := range l.unflushed {
		s.release()
	}
	l.unflushed = nil
	for _, s := range l.segs {
		s.retire(s.refs.Load() > 1)
		s.release()
	}
}

// closeForDelete closes the log without flushing: its directory is about
// to be removed.
func (l *Log) closeForDelete() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.shutdownLocked()
	l.mu.Unlock()
}

// applyRetention deletes closed segments past retention.ms (by their
// largest timestamp) or while the log exceeds retention.bytes, as Kafka's
// deleteRetentionMsBreachedSegments and deleteRetentionSizeBreachedSegments
// do. If every segment including a non-empty active one has expired, the
// active segment is rolled first so it can go too. It returns the number of
// segments deleted.
func (l *Log) applyRetention(now time.Time) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.failed != nil {
		return 0, nil
	}
	if l.producers != nil { // an unread table has nothing to expire in memory
		l.producers.Expire(now.UnixMilli(), l.opts.ProducerIDExpiration.Milliseconds())
	}
	if !l.cfg.Delete {
		return 0, nil
	}
	nowMs := now.UnixMilli()
	interval := l.intervalLocked()
	n := 0
	if l.cfg.RetentionMs >= 0 {
		for n < len(l.segs) {
			s := l.segs[n]
			if s.size == 0 {
				if n == len(l.segs)-1 {
					break // an empty active segment stays
				}
				n++ // emptied by compaction
				continue
			}
			ts, err := s.largestTimestamp(s.size, interval)
			if err != nil {
				return 0, err
			}
			if ts < 0 {
				ts = s.createdMs
			}
			if nowMs-ts <= l.cfg.RetentionMs {
				break
			}
			n++
		}
		if n == len(l.segs) {
			if err := l.rollLocked(nowMs); err != nil {
				return 0, err
			}
		}
	}
	if l.cfg.RetentionBytes >= 0 {
		diff := l.size - l.cfg.RetentionBytes
		for i := 0; i < len(l.segs)-1; i++ {
			if i < n {
				diff -= l.segs[i].size
				continue
			}
			if diff-l.segs[i].size < 0 {
				break
			}
			diff -= l.segs[i].size
			n = i + 1
		}
	}
	n = min(n, len(l.segs)-1)
	if n > 0 {
		l.logger.Info("storage: retention deleting segments", "count", n, "upTo", l.segs[n].base)
	}
	return n, l.dropHeadLocked(n)
}

// rollIfExpired rolls a non-empty active segment older than segment.ms,
// so that retention and compaction can reach idle partitions.
func (l *Log) rollIfExpired(now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.failed != nil {
		return nil
	}
	a := l.activeLocked()
	if a.size > 0 && now.UnixMilli()-a.createdMs >= l.cfg.SegmentMs {
		return l.rollLocked(now.UnixMilli())
	}
	return nil
}
