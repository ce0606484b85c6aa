package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streambus/streambus/internal/journal"
	"github.com/streambus/streambus/internal/vfs"
)

// deleteDirSuffix marks a partition directory being deleted.
const deleteDirSuffix = "-delete"

// Manager owns the partition logs under one data directory, and the
// journal that makes their appends durable (journal.go).
type Manager struct {
	opts    ManagerOptions
	files   *fileCache // every segment and index file of every log
	dataDir dirSyncer
	journal *journal.Journal
	legacy  bool // the data directory predates the journal (OpenManager converts it)

	mu      sync.RWMutex
	logs    map[PartitionID]*Log
	streams map[uint64]PartitionID // journal streams of the logs, to refuse a hash collision
	closed  bool

	// pmu guards the logs with pending appends (and their watched flags)
	// and the streams deleted while the journal could not record it.
	pmu                sync.Mutex
	watching           []*Log
	deletedUnjournaled []uint64

	cpMu      sync.Mutex    // one checkpoint or recovery at a time; before any Log lock
	roundC    chan struct{} // a journal round ended (capacity 1)
	cpKick    chan struct{} // checkpoint now (capacity 1)
	stopLoops chan struct{}
	loops     sync.WaitGroup // durableLoop, checkpointLoop

	bg sync.WaitGroup // background directory removals
}

// OpenManager opens the data directory, removes leftover deleted
// partition directories, opens and recovers every partition directory in
// parallel (at most RecoveryParallelism at once), and replays the journal
// into them. Opening a cleanly closed partition reads its directory
// listing and a few small files and opens no segment file.
func OpenManager(opts ManagerOptions) (*Manager, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		opts: opts, logs: map[PartitionID]*Log{}, streams: map[uint64]PartitionID{},
		files:  newFileCache(opts.MaxOpenFiles),
		roundC: make(chan struct{}, 1), cpKick: make(chan struct{}, 1), stopLoops: make(chan struct{}),
	}
	m.dataDir = dirSyncer{fs: opts.FS, dir: opts.Dir}
	if err := opts.FS.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("storage: create data dir: %w", err)
	}
	if err := opts.FS.SyncDir(filepath.Dir(filepath.Clean(opts.Dir))); err != nil {
		return nil, fmt.Errorf("storage: sync parent of data dir: %w", err)
	}
	ents, err := opts.FS.ReadDir(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("storage: list data dir: %w", err)
	}
	type job struct {
		id  PartitionID
		dir string
	}
	var jobs []job
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		full := filepath.Join(opts.Dir, name)
		if name == journalDirName {
			continue
		}
		if strings.HasSuffix(name, deleteDirSuffix) {
			m.removeInBackground(full)
			continue
		}
		id, ok := ParsePartitionDir(name)
		if !ok {
			opts.Logger.Warn("storage: ignoring unknown directory", "dir", full)
			continue
		}
		jobs = append(jobs, job{id, full})
	}
	jdir := filepath.Join(opts.Dir, journalDirName)
	if _, err := opts.FS.Stat(jdir); errors.Is(err, fs.ErrNotExist) && len(jobs) > 0 {
		m.legacy = true
		opts.Logger.Info("storage: data directory predates the journal; converting it")
	}
	jn, err := journal.Open(journal.Options{
		Dir: jdir, FS: opts.FS, FileSize: opts.JournalFileSize, Logger: opts.Logger,
		ObserveSync: opts.OnFsync, OnRound: m.onRound,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	m.journal = jn
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, opts.RecoveryParallelism)
		lmu  sync.Mutex
		errs []error
	)
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cfg, ok := DefaultLogConfig(), false
			if opts.ConfigFor != nil {
				var c LogConfig
				if c, ok = opts.ConfigFor(j.id); ok {
					cfg = c
				}
			}
			l, err := m.openLog(j.id, j.dir, cfg, true)
			lmu.Lock()
			defer lmu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			m.logs[j.id] = l
		}()
	}
	wg.Wait()
	if err := m.finishRecovery(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		m.Close()
		return nil, err
	}
	// A partition directory created lazily before a process crash may
	// not be durable in the data directory, and its recovered data is now
	// served as durable.
	if err := opts.FS.SyncDir(opts.Dir); err != nil {
		m.Close()
		return nil, fmt.Errorf("storage: sync data dir: %w", err)
	}
	m.loops.Add(2)
	go m.durableLoop()
	go m.checkpointLoop()
	return m, nil
}

// finishRecovery checks the opened logs against the journal, replays it
// into them, and converts a data directory from before the journal.
func (m *Manager) finishRecovery() error {
	byStream := make(map[uint64]*Log, len(m.logs))
	end := m.journal.End()
	for id, l := range m.logs {
		if other, ok := m.streams[l.stream]; ok {
			return fmt.Errorf("storage: partitions %v and %v have the same journal stream %#x", id, other, l.stream)
		}
		m.streams[l.stream] = id
		byStream[l.stream] = l
		if l.rp.LSN > end {
			return fmt.Errorf("storage: %v was checkpointed at journal LSN %d, but the journal in %s ends at %d: the journal was lost or replaced",
				id, l.rp.LSN, filepath.Join(m.opts.Dir, journalDirName), end)
		}
	}
	floors, err := m.deleteFloors(end)
	if err != nil {
		return err
	}
	if err := m.replay(byStream, floors, end); err != nil {
		return err
	}
	var errs []error
	for _, l := range m.logs {
		if err := l.finishOpen(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.legacy {
		// The logs were validated and fsynced by recovery; their recovery
		// points now name the journal's start.
		for _, l := range m.logs {
			l.mu.Lock()
			rp := l.rp
			rp.LSN, rp.legacy = end, false
			if err := writeCheckpoint(l.fs, recoveryPointPath(l.dir), ckKindRecoveryPoint, rp.encode()); err != nil {
				errs = append(errs, err)
			} else {
				l.rp = rp
				l.durLSN, l.lastLSN = end, end
			}
			l.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// PartitionDirName is the directory name of a partition: <topic>-<partition>.
func PartitionDirName(id PartitionID) string {
	return fmt.Sprintf("%s-%d", id.Topic, id.Partition)
}

// ParsePartitionDir parses a partition directory name. Topic names may
// contain '-', so the partition is what follows the last one.
func ParsePartitionDir(name string) (PartitionID, bool) {
	i := strings.LastIndexByte(name, '-')
	if i <= 0 {
		return PartitionID{}, false
	}
	p, err := strconv.ParseInt(name[i+1:], 10, 32)
	if err != nil || p < 0 || strconv.FormatInt(p, 10) != name[i+1:] {
		return PartitionID{}, false
	}
	return PartitionID{Topic: name[:i], Partition: int32(p)}, true
}

func (m *Manager) removeInBackground(dir string) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		if err := m.opts.FS.RemoveAll(dir); err != nil {
			m.opts.Logger.Warn("storage: removing deleted partition", "dir", dir, "err", err)
		}
	}()
}

// Get returns the partition's log, or nil.
func (m *Manager) Get(id PartitionID) *Log {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.logs[id]
}

// Create returns the partition's log, creating it with cfg if absent. A
// new log costs a directory and no fsync: its first segment's file is
// created by its first write, its directory entries are made durable
// before its first data is (with a data directory fsync shared by the logs
// created meanwhile), and a crash before that loses an empty log.
func (m *Manager) Create(id PartitionID, cfg LogConfig) (*Log, error) {
	if id.Topic == "" || id.Partition < 0 || strings.ContainsAny(id.Topic, "/\\") || id.Topic == "." || id.Topic == ".." {
		return nil, fmt.Errorf("storage: invalid partition %q/%d", id.Topic, id.Partition)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if l := m.logs[id]; l != nil {
		return l, nil
	}
	stream := streamOf(id)
	if other, ok := m.streams[stream]; ok {
		return nil, fmt.Errorf("storage: %v has the journal stream %#x of %v; choose another topic name", id, stream, other)
	}
	m.pmu.Lock()
	unjournaled := slices.Contains(m.deletedUnjournaled, stream)
	m.pmu.Unlock()
	if unjournaled {
		return nil, fmt.Errorf("%w: %v was deleted while the journal was failed; it can be created again once the journal recovers", ErrStorage, id)
	}
	l, err := m.openLog(id, filepath.Join(m.opts.Dir, PartitionDirName(id)), cfg, false)
	if err != nil {
		return nil, err
	}
	m.logs[id] = l
	m.streams[stream] = id
	return l, nil
}

// OpenFiles reports how many segment and index files the Manager holds
// open, and its bound (MaxOpenFiles), which in-use files may exceed.
func (m *Manager) OpenFiles() (open, max int) { return m.files.stats() }

// dirSyncer makes a directory's entries durable for many callers with few
// fsyncs: a caller notes each change it made (changed, after the change)
// and later waits for syncTo with what changed returned. One fsync covers
// every change noted before it started, so logs created together share
// one.
type dirSyncer struct {
	fs  vfs.FS
	dir string

	noted  atomic.Uint64 // changes noted
	mu     sync.Mutex    // one fsync at a time
	synced atomic.Uint64 // changes covered by a finished fsync
}

// changed notes a change to the directory's entries, made before the
// call, and returns what to pass to syncTo.
func (d *dirSyncer) changed() uint64 { return d.noted.Add(1) }

// syncTo returns once an fsync that started after change n has finished.
func (d *dirSyncer) syncTo(n uint64) error {
	if d.synced.Load() >= n {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.synced.Load() >= n {
		return nil
	}
	upTo := d.noted.Load()
	if err := d.fs.SyncDir(d.dir); err != nil {
		return fmt.Errorf("storage: sync data dir: %w", err)
	}
	d.synced.Store(upTo)
	return nil
}

// Delete removes the partition: its directory is renamed to
// <name>.<nanos>-delete, the log is closed (Slices still held stay
// readable), and the directory is removed in the background.
func (m *Manager) Delete(id PartitionID) error {
	// Held throughout, so that a concurrent Create of the same partition
	// cannot open the directory before it is renamed away.
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.logs[id]
	delete(m.logs, id)
	if l == nil {
		return nil
	}
	delete(m.streams, l.stream)
	l.closeForDelete()
	// Later entries of the stream belong to a recreated partition.
	if _, err := m.journal.Append(journal.Entry{Kind: entryDelete, Stream: l.stream}); err != nil {
		m.pmu.Lock()
		m.deletedUnjournaled = append(m.deletedUnjournaled, l.stream)
		m.pmu.Unlock()
	}
	gone := filepath.Join(m.opts.Dir, fmt.Sprintf("%s.%d%s", PartitionDirName(id), m.opts.Now().UnixNano(), deleteDirSuffix))
	if err := m.opts.FS.Rename(l.dir, gone); err != nil {
		return fmt.Errorf("storage: delete %v: %w", id, err)
	}
	if err := m.opts.FS.SyncDir(m.opts.Dir); err != nil {
		return fmt.Errorf("storage: delete %v: %w", id, err)
	}
	m.removeInBackground(gone)
	return nil
}

// Partitions lists the open partitions, sorted.
func (m *Manager) Partitions() []PartitionID {
	m.mu.RLock()
	out := make([]PartitionID, 0, len(m.logs))
	for id := range m.logs {
		out = append(out, id)
	}
	m.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Topic != out[j].Topic {
			return out[i].Topic < out[j].Topic
		}
		return out[i].Partition < out[j].Partition
	})
	return out
}

func (m *Manager) snapshotLogs() []*Log {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]*Log, 0, len(m.logs))
	for _, l := range m.logs {
		out = append(out, l)
	}
	return out
}

// TotalSize is the size of every log.
func (m *Manager) TotalSize() int64 {
	var n int64
	for _, l := range m.snapshotLogs() {
		n += l.Size()
	}
	return n
}

// Run does the background work until ctx is done: retention and
// segment.ms rolling every RetentionCheckInterval, compaction every
// CompactionInterval, and, in interval mode, flushing every FlushInterval.
// It runs everything on its own goroutine, one log at a time.
func (m *Manager) Run(ctx context.Context) {
	retention := time.NewTicker(m.opts.RetentionCheckInterval)
	defer retention.Stop()
	compaction := time.NewTicker(m.opts.CompactionInterval)
	defer compaction.Stop()
	var flushC <-chan time.Time
	if !m.opts.FlushOnAck {
		t := time.NewTicker(m.opts.FlushInterval)
		defer t.Stop()
		flushC = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-flushC:
			m.FlushAll()
		case <-retention.C:
			m.RunRetention()
		case <-compaction.C:
			m.RunCompaction(ctx)
		}
	}
}

// FlushAll starts a journal round for everything appended (the
// interval-mode flush).
func (m *Manager) FlushAll() { m.journal.Flush() }

// RunRetention rolls expired active segments and applies retention to
// every log once.
func (m *Manager) RunRetention() {
	now := m.opts.Now()
	for _, l := range m.snapshotLogs() {
		if err := l.rollIfExpired(now); err != nil {
			l.logger.Warn("storage: segment.ms roll", "err", err)
		}
		if _, err := l.applyRetention(now); err != nil {
			l.logger.Warn("storage: retention", "err", err)
		}
	}
}

// RunCompaction runs one cleaner pass over every compacted log.
func (m *Manager) RunCompaction(ctx context.Context) {
	for _, l := range m.snapshotLogs() {
		if ctx.Err() != nil {
			return
		}
		if _, err := l.Compact(ctx); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
			l.logger.Warn("storage: compaction", "err", err)
		}
	}
}

// Close makes everything appended durable, closes every log (fsync,
// producer snapshots, recovery points, clean-shutdown markers), releases
// the journal files no failed log needs, closes the journal and waits for
// background removals.
func (m *Manager) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	logs := make([]*Log, 0, len(m.logs))
	for _, l := range m.logs {
		logs = append(logs, l)
	}
	m.logs = map[PartitionID]*Log{}
	m.mu.Unlock()
	if m.journal == nil {
		m.bg.Wait()
		return nil
	}
	close(m.stopLoops)
	m.loops.Wait()
	if err := m.journal.Sync(m.journal.End()); err != nil && !errors.Is(err, journal.ErrFailed) {
		m.opts.Logger.Warn("storage: final journal round", "err", err)
	}
	m.afterRound()
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
		sem  = make(chan struct{}, m.opts.RecoveryParallelism)
	)
	for _, l := range logs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := l.close(); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	// A log that did not close cleanly recovers from the journal.
	bound := m.journal.Durable()
	for _, l := range logs {
		l.mu.Lock()
		if l.failed != nil || l.lastLSN > l.rp.LSN {
			bound = min(bound, l.rp.LSN)
		}
		l.mu.Unlock()
	}
	if m.journal.Failed() == nil {
		if err := m.journal.Release(bound); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.journal.Close(); err != nil && !errors.Is(err, journal.ErrFailed) {
		errs = append(errs, err)
	}
	m.bg.Wait()
	return errors.Join(errs...)
}
