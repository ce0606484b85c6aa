package storage

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"sort"
	"sync"

	"github.com/streambus/streambus/internal/producerstate"
	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
)

// More errors returned by Log methods.
var (
	// ErrInvalidRecord rejects an append the log cannot accept as sent
	// (INVALID_RECORD), e.g. several batches in one append when one of
	// them carries a producer ID, or a bad producer sequence.
	ErrInvalidRecord = errors.New("storage: invalid record")
	// ErrTruncated is returned to Sync callers waiting for offsets that a
	// concurrent Truncate removed.
	ErrTruncated = errors.New("storage: log truncated")
)

// Names of the per-partition files besides segments.
const (
	logStartFile      = "log-start-offset.checkpoint"
	recoveryPointFile = "recovery-point.checkpoint"
	leaderEpochFile   = "leader-epoch.checkpoint"
	cleanShutdownFile = "clean-shutdown"
)

// Log is one partition's log. All methods are safe for concurrent use.
// Append, Truncate and the other writers serialise on the log's lock;
// Read holds it only to pick segments, and does its I/O outside it.
type Log struct {
	id      PartitionID
	dir     string
	fs      vfs.FS
	logger  *slog.Logger
	opts    *ManagerOptions
	files   *fileCache // the Manager's: every segment file is opened through it
	dataDir *dirSyncer // fsyncs the Manager's data directory

	// cpMu serialises checkpoints with truncation, which must lower the
	// recovery point, and with cutting appends whose journal round
	// failed. Lock order: cpMu, then mu, then a segment's idxMu.
	cpMu sync.Mutex
	// cleanMu serialises compaction passes of this log (they share the
	// .cleaned file names). Taken before cpMu and mu.
	cleanMu sync.Mutex

	mu           sync.Mutex
	cfg          LogConfig
	segs         []*segment // sorted by base; the last is the active segment
	logStart     int64
	logEnd       int64
	size         int64
	closed       bool
	failed       error                // an I/O error: the log accepts no more writes until Manager.Recover reopens it
	producers    *producerstate.Table // nil until first needed after a clean open (producersLocked)
	epochs       []epochEntry         // see epochsLocked
	epochsOnDisk bool                 // a clean open left the leader epoch checkpoint unread (epochsLocked)
	unflushed    []*segment           // rolled segments not yet fsynced by a checkpoint; each holds a reference
	dirDirty     bool                 // segment files were created or renamed since the last directory fsync
	newDirs      uint64               // created lazily: the dataDir change to sync before the first append is journaled; 0 once done
	keptMarker   bool                 // opened clean and unchanged since: the clean-shutdown marker is still valid and on disk
	unborn       bool                 // new and unchanged: the directory holds nothing, not even the first segment's file
	changed      chan struct{}
	waiters      []syncWaiter
	rp           recoveryPoint // the last recovery point checkpointed
	cleanedTo    int64         // compaction: offsets below were cleaned by a pass
	tombstoneDue int64         // compaction: when a kept tombstone becomes removable (ms), 0 if none

	gen  uint64       // bumped by every cut of the log's end (cutLocked, resetLocked)
	cuts [8]recentCut // the latest cuts, by gen modulo 8 (SyncAppend)

	// Durability through the Manager's journal (journal.go).
	durable int64           // every offset below is durable (in the journal, or in fsynced segments)
	durSeg  int64           // base of the segment where the durable part ends
	durPos  int64           // and the position in it
	durLSN  int64           // every journal entry of this log up to this LSN is reflected below durable
	lastLSN int64           // LSN of the newest journal entry of this log
	pending []pendingAppend // appends not yet durable, oldest first
	watched bool            // in Manager.watching; guarded by Manager.pmu
	mgr     *Manager
	stream  uint64 // the journal stream (streamOf)
}

// recentCut records where a cut of generation gen left the log end.
type recentCut struct {
	gen uint64
	end int64
}

// noteCutLocked records a cut that left the log end at end.
func (l *Log) noteCutLocked(end int64) {
	l.gen++
	l.cuts[l.gen%uint64(len(l.cuts))] = recentCut{gen: l.gen, end: end}
}

// cutSinceLocked reports whether a cut since generation gen went below
// upTo (conservatively true when gen is too old to tell).
func (l *Log) cutSinceLocked(gen uint64, upTo int64) bool {
	if gen == l.gen {
		return false
	}
	if l.gen-gen > uint64(len(l.cuts)) {
		return true
	}
	for g := gen + 1; g <= l.gen; g++ {
		if c := l.cuts[g%uint64(len(l.cuts))]; c.gen != g || c.end < upTo {
			return true
		}
	}
	return false
}

type syncWaiter struct {
	upTo int64
	ch   chan error
}

// ID returns the partition.
func (l *Log) ID() PartitionID { return l.id }

// Dir returns the partition directory.
func (l *Log) Dir() string { return l.dir }

// Config returns the current configuration.
func (l *Log) Config() LogConfig {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cfg
}

// SetConfig replaces the configuration; it applies to later appends,
// retention and compaction passes. An invalid configuration is ignored
// with a logged warning (topicconfig validates before it gets here).
func (l *Log) SetConfig(c LogConfig) {
	if err := validateLogConfig(c); err != nil {
		l.logger.Warn("storage: ignoring invalid log config", "partition", l.id, "err", err)
		return
	}
	l.mu.Lock()
	l.cfg = c
	l.mu.Unlock()
}

// LogStartOffset is the first offset readable.
func (l *Log) LogStartOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.logStart
}

// LogEndOffset is the offset the next append gets.
func (l *Log) LogEndOffset() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.logEnd
}

// Size is the total size of the segment files in bytes.
func (l *Log) Size() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size
}

// HighWatermark is the end of what consumers may read: the durable offset
// in FlushOnAck mode, the log end offset in interval mode.
func (l *Log) HighWatermark() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hwLocked()
}

func (l *Log) hwLocked() int64 {
	if l.opts.FlushOnAck {
		return l.durable
	}
	return l.logEnd
}

// Changed returns a channel closed at the next high-watermark advance (or
// truncation), and when the log is closed or deleted.
func (l *Log) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

func (l *Log) notifyLocked() {
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *Log) activeLocked() *segment { return l.segs[len(l.segs)-1] }

func (l *Log) intervalLocked() int64 { return int64(l.cfg.IndexIntervalBytes) }

// Append writes one or more record batches, already validated by the
// broker, at the end of the log. It rewrites records in place (base
// offsets, leader epoch, LogAppendTime). Idempotent-producer batches are
// checked first: a retry of a batch still remembered returns
// Duplicate with its original offsets and writes nothing; sequence and
// epoch errors wrap ErrOutOfOrderSequence, ErrInvalidProducerEpoch or
// ErrInvalidRecord. Append does not fsync; see Sync. A write error fails
// the log: every later write returns it until the log is reopened.
func (l *Log) Append(records []byte, in AppendInput) (AppendResult, error) {
	res := AppendResult{BaseOffset: -1, LastOffset: -1, LogAppendTime: -1}
	hdrs, err := splitHeaders(records)
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
	total := int64(len(records))
	for _, h := range hdrs {
		if h.Size() > l.cfg.SegmentBytes || h.Size() > maxSegmentPosition {
			return res, fmt.Errorf("%w: batch of %d bytes, segment.bytes %d", ErrRecordTooLarge, h.Size(), l.cfg.SegmentBytes)
		}
		if h.HasProducer() && len(hdrs) > 1 {
			return res, fmt.Errorf("%w: an idempotent batch must be the only batch of its append", ErrInvalidRecord)
		}
	}
	if h := hdrs[0]; h.HasProducer() {
		pt, err := l.producersLocked()
		if err != nil {
			return res, err
		}
		dupBase, dup, err := pt.Check(h)
		if err != nil {
			return res, mapProducerErr(err)
		}
		if dup {
			res.BaseOffset, res.LastOffset, res.Duplicate, res.Gen = dupBase, dupBase+int64(h.LastOffsetDelta), true, l.gen
			return res, nil
		}
	}
	span := int64(0)
	for _, h := range hdrs {
		span += int64(h.LastOffsetDelta) + 1
	}
	if err := l.touchLocked(); err != nil {
		return res, err
	}
	if err := l.maybeRollLocked(total, span, in.NowMs); err != nil {
		return res, err
	}
	if in.LeaderEpoch >= 0 {
		if es, changed := epochsAssign(l.epochsLocked(), in.LeaderEpoch, l.logEnd); changed {
			if err := writeCheckpoint(l.fs, filepath.Join(l.dir, leaderEpochFile), ckKindLeaderEpoch, encodeEpochs(es)); err != nil {
				return res, err
			}
			l.epochs = es
		}
	}
	next, p := l.logEnd, int64(0)
	for i := range hdrs {
		b := records[p : p+hdrs[i].Size()]
		recordbatch.SetBaseOffset(b, next)
		recordbatch.SetLeaderEpoch(b, in.LeaderEpoch)
		if l.cfg.LogAppendTime {
			recordbatch.SetLogAppendTime(b, in.NowMs)
			hdrs[i].MaxTimestamp = in.NowMs
			hdrs[i].Attributes |= recordbatch.TimestampTypeBit
			res.LogAppendTime = in.NowMs
		}
		hdrs[i].BaseOffset, hdrs[i].PartitionLeaderEpoch = next, in.LeaderEpoch
		next += int64(hdrs[i].LastOffsetDelta) + 1
		p += hdrs[i].Size()
	}
	active := l.activeLocked()
	pos := active.size
	if err := l.writeActiveLocked(records, pos); err != nil {
		return res, err
	}
	for _, h := range hdrs {
		if err := active.appendIndexes(h, pos, l.intervalLocked()); err != nil {
			return res, l.failLocked(err)
		}
		pos += h.Size()
	}
	prevEnd := l.logEnd
	active.size = pos
	active.next = next
	l.size += total
	l.logEnd = next
	lsn, err := l.journalAppendLocked(entryAppend, prevEnd, records)
	if err != nil {
		return res, l.undoLocked(prevEnd, err)
	}
	res.BaseOffset, res.LastOffset, res.Gen = prevEnd, next-1, l.gen
	if h := hdrs[0]; h.HasProducer() {
		l.producers.Update(h, in.NowMs)
	}
	l.notePendingLocked(lsn)
	return res, nil
}

// undoLocked removes what an append wrote after the log end was prevEnd,
// when its journal entry could not be appended, and returns err.
func (l *Log) undoLocked(prevEnd int64, err error) error {
	if cerr := l.cutLocked(prevEnd, false, l.durLSN); cerr != nil {
		l.failLocked(fmt.Errorf("storage: undo append to %v: %w", l.id, cerr))
	}
	return err
}

// writeActiveLocked writes records at pos in the active segment. A write
// error fails the log; failing to open the file (evicted by the file cache,
// and the process out of descriptors) wraps ErrStorage but fails only this
// write, since nothing was written.
func (l *Log) writeActiveLocked(records []byte, pos int64) error {
	active := l.activeLocked()
	f, _, err := active.pinLog()
	if err != nil {
		return fmt.Errorf("%w: %v: %w", ErrStorage, l.id, err)
	}
	_, err = f.WriteAt(records, pos)
	active.unpinLog()
	if err != nil {
		return l.failLocked(fmt.Errorf("storage: append to segment %d of %v: %w", active.base, l.id, err))
	}
	return nil
}

// touchLocked is called before every change to the log's files, and does
// what the first one needs. A new log creates its first segment's file
// (until then its directory is empty, which opens as an empty log), and
// makes its directory's entry in the data directory durable (one fsync
// shared by the logs created meanwhile): recovery replays the journal into
// the partition directories it finds, so a directory must be durable
// before any journal entry of its log is.
//
// A log opened clean removes its clean-shutdown marker, which stays valid
// until then, so opening and closing an idle log writes nothing. A stale
// marker left by a crash is harmless: recovery trusts it only while the
// active segment is as it describes, and replays the journal entries after
// the LSN it records either way.
//
// Its errors wrap ErrStorage; nothing was changed, so the log is not
// failed.
func (l *Log) touchLocked() error {
	if l.unborn {
		if err := l.activeLocked().create(); err != nil {
			return fmt.Errorf("%w: %v: %w", ErrStorage, l.id, err)
		}
		l.unborn = false
		l.dirDirty = true
	}
	if l.newDirs != 0 {
		if err := l.dataDir.syncTo(l.newDirs); err != nil {
			return fmt.Errorf("%w: %v: %w", ErrStorage, l.id, err)
		}
		l.newDirs = 0
	}
	if l.keptMarker {
		if err := l.fs.Remove(filepath.Join(l.dir, cleanShutdownFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: remove clean-shutdown marker of %v: %w", ErrStorage, l.id, err)
		}
		l.keptMarker = false
		l.dirDirty = true
	}
	return nil
}

// splitHeaders parses the batch headers of records; the broker validated
// the CRCs, so only the framing is checked here.
func splitHeaders(records []byte) ([]recordbatch.Header, error) {
	var hdrs []recordbatch.Header
	for p := 0; p < len(records); {
		h, err := recordbatch.ParseHeader(records[p:])
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		if h.Size() > int64(len(records)-p) || h.LastOffsetDelta < 0 {
			return nil, fmt.Errorf("%w: batch of %d bytes with %d left", ErrCorrupt, h.Size(), len(records)-p)
		}
		hdrs = append(hdrs, h)
		p += int(h.Size())
	}
	if len(hdrs) == 0 {
		return nil, fmt.Errorf("%w: no record batch", ErrCorrupt)
	}
	return hdrs, nil
}

func mapProducerErr(err error) error {
	switch {
	case errors.Is(err, producerstate.ErrOutOfOrderSequence):
		return fmt.Errorf("%w: %w", ErrOutOfOrderSequence, err)
	case errors.Is(err, producerstate.ErrInvalidProducerEpoch):
		return fmt.Errorf("%w: %w", ErrInvalidProducerEpoch, err)
	default:
		return fmt.Errorf("%w: %w", ErrInvalidRecord, err)
	}
}

// failLocked marks the log failed after an I/O error. Its pending appends
// stay pending: they are in the journal, whose round decides their fate
// (and wakes their waiters) as for any other log.
func (l *Log) failLocked(err error) error {
	if l.failed == nil {
		if !errors.Is(err, ErrStorage) {
			err = fmt.Errorf("%w: %w", ErrStorage, err)
		}
		l.failed = err
		l.logger.Error("storage: log failed", "partition", l.id, "err", err)
	}
	return l.failed
}

// maybeRollLocked starts a new segment if appending bytes (covering span
// offsets) to the active one would break segment.bytes, segment.ms or the
// index field widths.
func (l *Log) maybeRollLocked(bytes, span, nowMs int64) error {
	a := l.activeLocked()
	if a.size == 0 {
		return nil
	}
	if a.size+bytes > l.cfg.SegmentBytes || a.size+bytes > maxSegmentPosition ||
		nowMs-a.createdMs >= l.cfg.SegmentMs || l.logEnd+span-1-a.base > math.MaxUint32 {
		return l.rollLocked(nowMs)
	}
	return nil
}

// rollLocked closes the active segment and starts a new one at the log
// end; it snapshots the producer state under the new base offset. The old
// segment is made durable by the next checkpoint.
func (l *Log) rollLocked(nowMs int64) error {
	old := l.activeLocked()
	if old.size == 0 {
		old.createdMs = nowMs
		return nil
	}
	if err := l.touchLocked(); err != nil {
		return err
	}
	s, err := createSegment(l.fs, l.files, l.dir, l.logEnd, nowMs)
	if err != nil {
		return l.failLocked(err)
	}
	l.segs = append(l.segs, s)
	old.acquire()
	l.unflushed = append(l.unflushed, old)
	l.dirDirty = true
	if err := l.writeSnapshotLocked(); err != nil {
		l.logger.Warn("storage: producer snapshot failed", "partition", l.id, "err", err)
	}
	return nil
}

// Sync blocks until every offset below upTo (clamped to the log end) is
// durable: its journal entry was fdatasynced by a group-commit round of
// the Manager's journal, which serves every log's waiters at once. A
// round that fails cuts the appends it held and returns an error wrapping
// ErrStorage.
func (l *Log) Sync(upTo int64) error {
	l.mu.Lock()
	return l.syncLocked(min(upTo, l.logEnd))
}

// SyncAppend blocks until the append that returned res is durable, like
// Sync; it fails (wrapping ErrStorage, or ErrTruncated) if the append was
// cut meanwhile, by a failed journal round or a truncation, even when
// later appends have taken its offsets since.
func (l *Log) SyncAppend(res AppendResult) error {
	upTo := res.LastOffset + 1
	l.mu.Lock()
	if l.cutSinceLocked(res.Gen, upTo) {
		err := l.failed
		if err == nil {
			err = l.journalFailed()
		}
		if err == nil {
			err = fmt.Errorf("%w: offsets %d to %d of %v were cut before they became durable", ErrTruncated, res.BaseOffset, res.LastOffset, l.id)
		}
		l.mu.Unlock()
		return err
	}
	return l.syncLocked(upTo)
}

// syncLocked is Sync with l.mu held, which it releases.
func (l *Log) syncLocked(upTo int64) error {
	if l.durable < upTo {
		l.advanceLocked(l.mgr.journal.Durable())
	}
	if l.durable >= upTo {
		l.mu.Unlock()
		return nil
	}
	if l.failed != nil && len(l.pending) == 0 {
		l.mu.Unlock()
		return l.failed
	}
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	if err := l.journalFailed(); err != nil {
		l.mu.Unlock()
		return err
	}
	w := syncWaiter{upTo: upTo, ch: make(chan error, 1)}
	l.waiters = append(l.waiters, w)
	l.mu.Unlock()
	l.mgr.journal.Flush()
	return <-w.ch
}

func (l *Log) wakeWaitersLocked() {
	keep := l.waiters[:0]
	for _, w := range l.waiters {
		if w.upTo <= l.durable {
			w.ch <- nil
		} else {
			keep = append(keep, w)
		}
	}
	clear(l.waiters[len(keep):])
	l.waiters = keep
}

// producersLocked returns the producer table, which a clean open leaves
// unread until first needed (idempotent appends, replicated appends of
// idempotent batches, producer snapshots): then it loads the newest
// snapshot not beyond the log end and replays the batches after it, as
// recovery does. Errors wrap ErrStorage.
func (l *Log) producersLocked() (*producerstate.Table, error) {
	if l.producers != nil {
		return l.producers, nil
	}
	snaps, err := listBases(l.fs, l.dir, snapshotSuffix)
	if err == nil {
		l.producers = producerstate.New()
		if err = l.loadProducerState(snaps); err != nil {
			l.producers = nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: load producer state of %v: %w", ErrStorage, l.id, err)
	}
	l.producers.Prune(l.logStart)
	return l.producers, nil
}

// epochsLocked returns the leader epoch cache, which a clean open leaves
// unread until first needed. Close left the checkpoint trimmed to the log
// (see fixEpochs), except for a failed trim of its start after retention
// or DeleteRecords, which is redone here in memory, as fixEpochs would.
func (l *Log) epochsLocked() []epochEntry {
	if l.epochsOnDisk {
		l.epochsOnDisk = false
		l.readEpochs()
		l.epochs, _ = epochsTruncateStart(l.epochs, l.logStart)
	}
	return l.epochs
}

// writeSnapshotLocked writes the producer state as <logEnd>.snapshot and
// keeps only the three newest snapshots.
func (l *Log) writeSnapshotLocked() error {
	pt, err := l.producersLocked()
	if err != nil {
		return err
	}
	b, err := pt.MarshalBinary()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(l.fs, segmentFile(l.dir, l.logEnd, snapshotSuffix), b); err != nil {
		return err
	}
	snaps, err := listBases(l.fs, l.dir, snapshotSuffix)
	if err != nil {
		return err
	}
	for i := 0; i+3 < len(snaps); i++ {
		l.fs.Remove(segmentFile(l.dir, snaps[i], snapshotSuffix))
	}
	return nil
}

// listBases returns the base offsets of the files in dir with suffix,
// sorted.
func listBases(fsys vfs.FS, dir, suffix string) ([]int64, error) {
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: list %s: %w", dir, err)
	}
	var out []int64
	for _, e := range ents {
		if b, ok := parseBaseName(e.Name(), suffix); ok {
			out = append(out, b)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

// Slice is the result of Read: byte ranges of segment files holding whole
// batches. The caller must call Release when done with it (after the
// bytes were sent); until then the files stay open (pinned in the file
// cache) even if the segments are deleted.
type Slice struct {
	Chunks []Chunk
	Size   int64
	segs   []*segment
}

// Release drops the Slice's references and unpins its files. It is
// idempotent.
func (s *Slice) Release() {
	for _, seg := range s.segs {
		seg.unpinLog()
		seg.release()
	}
	s.segs = nil
}

// ReadAll copies the slice's bytes into one buffer (for tests and small
// reads).
func (s *Slice) ReadAll() ([]byte, error) {
	out := make([]byte, 0, s.Size)
	for _, c := range s.Chunks {
		b := make([]byte, c.Len)
		if n, err := c.R.ReadAt(b, c.Pos); int64(n) < c.Len {
			return nil, fmt.Errorf("storage: read chunk: %w", err)
		}
		out = append(out, b...)
	}
	return out, nil
}

type segView struct {
	s    *segment
	size int64
}

// Read returns whole batches starting with the one containing offset and
// ending before upTo (an exclusive offset bound such as the high
// watermark) and within maxBytes, except that the first batch is returned
// whole even if larger (KIP-74). offset == upTo gives an empty Slice;
// offset below the log start or above the log end is ErrOffsetOutOfRange.
func (l *Log) Read(offset int64, maxBytes int, upTo int64) (Slice, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return Slice{}, ErrClosed
	}
	if offset < l.logStart || offset > l.logEnd {
		start, end := l.logStart, l.logEnd
		l.mu.Unlock()
		return Slice{}, fmt.Errorf("%w: %d not in [%d, %d] of %v", ErrOffsetOutOfRange, offset, start, end, l.id)
	}
	if upTo > l.logEnd {
		upTo = l.logEnd
	}
	if offset >= upTo {
		l.mu.Unlock()
		return Slice{}, nil
	}
	i := max(sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })-1, 0)
	// Segment i, then later ones only while they may still fit maxBytes:
	// a read references a bounded number of segments however long the log.
	var views []segView
	after := int64(0)
	for j := i; j < len(l.segs) && l.segs[j].base < upTo && (j == i || after < int64(maxBytes)); j++ {
		l.segs[j].acquire()
		views = append(views, segView{l.segs[j], l.segs[j].size})
		if j > i {
			after += l.segs[j].size
		}
	}
	interval := l.intervalLocked()
	l.mu.Unlock()
	return readViews(views, offset, int64(maxBytes), upTo, interval)
}

func readViews(views []segView, offset, maxBytes, upTo, interval int64) (Slice, error) {
	var sl Slice
	var buf [recordbatch.HeaderSize]byte
	var firstErr error
	done := false
	for vi, v := range views {
		if done {
			v.s.release()
			continue
		}
		// Pinned for the walk and, if it yields a chunk, until Release.
		f, osf, err := v.s.pinLog()
		if err != nil {
			firstErr, done = err, true
			v.s.release()
			continue
		}
		pos := int64(0)
		if vi == 0 {
			p, err := v.s.lookup(offset, v.size, interval)
			if err != nil {
				firstErr, done = err, true
				v.s.unpinLog()
				v.s.release()
				continue
			}
			pos = p
		}
		start := int64(-1)
		for pos < v.size {
			h, err := v.s.readHeader(pos, v.size, buf[:])
			if err != nil {
				firstErr, done = err, true
				break
			}
			if h.LastOffset() < offset {
				pos += h.Size()
				continue
			}
			if h.LastOffset() >= upTo || (sl.Size > 0 && sl.Size+h.Size() > maxBytes) {
				done = true
				break
			}
			if start < 0 {
				start = pos
			}
			pos += h.Size()
			sl.Size += h.Size()
		}
		if start < 0 {
			v.s.unpinLog()
			v.s.release()
			continue
		}
		sl.Chunks = append(sl.Chunks, Chunk{File: osf, R: f, Pos: start, Len: pos - start})
		sl.segs = append(sl.segs, v.s)
	}
	if sl.Size == 0 && firstErr != nil {
		sl.Release()
		return Slice{}, firstErr
	}
	return sl, nil
}
