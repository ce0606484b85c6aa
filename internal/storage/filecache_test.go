package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
)

// checkOpen fails if the Manager holds more than bound files, or (on the
// OS filesystem) the process more than fds0+bound descriptors.
func checkOpen(t *testing.T, m *Manager, fsys vfs.FS, fds0, bound int, what string) {
	t.Helper()
	if open, _ := m.OpenFiles(); open > bound {
		t.Fatalf("%s: the cache holds %d files, bound %d", what, open, bound)
	}
	if fsys == vfs.OS && runtime.GOOS == "linux" {
		// Besides the cache's files, the journal keeps its current file
		// open.
		if fds := openFDs(); fds-fds0 > bound+1 {
			t.Fatalf("%s: %d descriptors open beyond the %d before, bound %d and the journal's", what, fds-fds0, fds0, bound)
		}
	}
}

// TestOpenFilesBounded appends to and reads from five times more
// partitions than MaxOpenFiles, with segments rolling (so index files and
// rolled segments are involved), in both flush modes and on both
// filesystems: the files held open never exceed the bound, and everything
// reads back, before and after a restart.
func TestOpenFilesBounded(t *testing.T) {
	const bound, parts = 8, 40
	for _, fsName := range []string{"mem", "os"} {
		for _, ack := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/ack=%v", fsName, ack), func(t *testing.T) {
				var fsys vfs.FS = vfs.NewMem()
				dir := "/data"
				if fsName == "os" {
					fsys, dir = vfs.OS, t.TempDir()
				}
				opts := ManagerOptions{Dir: dir, FS: fsys, FlushOnAck: ack, MaxOpenFiles: bound,
					ConfigFor: func(PartitionID) (LogConfig, bool) { return smallSegments(), true }}
				fds0 := openFDs()
				m, err := OpenManager(opts)
				if err != nil {
					t.Fatal(err)
				}
				rng := rand.New(rand.NewSource(1))
				logs := make([]*Log, parts)
				// Journal rounds and checkpoints run on their own: wait
				// for each log to be durable, so that no round is in
				// flight when descriptors are counted.
				quiesce := func() {
					for _, l := range logs {
						if err := l.Sync(l.LogEndOffset()); err != nil {
							t.Fatal(err)
						}
					}
				}
				want := make([][][]byte, parts)
				for p := range logs {
					if logs[p], err = m.Create(PartitionID{Topic: "fd", Partition: int32(p)}, smallSegments()); err != nil {
						t.Fatal(err)
					}
				}
				checkOpen(t, m, fsys, fds0, bound, "after create")
				for i := 0; i < 600; i++ {
					p := rng.Intn(parts)
					l := logs[p]
					switch rng.Intn(3) {
					case 0, 1:
						b := plain(t, 1+rng.Intn(3), int64(i))
						if _, err := l.Append(b, AppendInput{LeaderEpoch: 1, NowMs: int64(i)}); err != nil {
							t.Fatal(err)
						}
						want[p] = append(want[p], b)
						if rng.Intn(4) == 0 {
							if err := l.Sync(l.LogEndOffset()); err != nil {
								t.Fatal(err)
							}
						}
					case 2:
						if end := l.LogEndOffset(); end > 0 {
							sl, err := l.Read(rng.Int63n(end), 200, end)
							if err != nil {
								t.Fatal(err)
							}
							if _, err := sl.ReadAll(); err != nil {
								t.Fatal(err)
							}
							sl.Release()
						}
					}
					quiesce()
					checkOpen(t, m, fsys, fds0, bound, fmt.Sprintf("op %d", i))
				}
				for p, l := range logs {
					sameBatches(t, readAll(t, l, l.LogEndOffset()), want[p])
					checkOpen(t, m, fsys, fds0, bound, "read back")
				}
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				if m, err = OpenManager(opts); err != nil {
					t.Fatal(err)
				}
				checkOpen(t, m, fsys, fds0, 0, "after a clean restart")
				for p := range logs {
					l := m.Get(PartitionID{Topic: "fd", Partition: int32(p)})
					if len(want[p]) == 0 {
						continue // never written: its directory stayed empty
					}
					sameBatches(t, readAll(t, l, l.LogEndOffset()), want[p])
					checkOpen(t, m, fsys, fds0, bound, "read back after restart")
				}
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				checkOpen(t, m, fsys, fds0, 0, "after close")
			})
		}
	}
}

// TestSliceSurvivesEviction: a Slice's files are pinned until Release, so
// with room for one file in the cache, work on other partitions goes past
// the bound instead of closing them; once released they are evicted.
func TestSliceSurvivesEviction(t *testing.T) {
	for _, fsName := range []string{"mem", "os"} {
		t.Run(fsName, func(t *testing.T) {
			var fsys vfs.FS = vfs.NewMem()
			dir := "/data"
			if fsName == "os" {
				fsys, dir = vfs.OS, t.TempDir()
			}
			m, err := OpenManager(ManagerOptions{Dir: dir, FS: fsys, FlushOnAck: true, MaxOpenFiles: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			a, _ := m.Create(PartitionID{Topic: "a", Partition: 0}, smallSegments())
			var want []byte
			for i := 0; i < 20; i++ { // several segments
				b := plain(t, 2, 1)
				if _, err := a.Append(b, AppendInput{NowMs: 1}); err != nil {
					t.Fatal(err)
				}
				want = append(want, b...) // as stored: offsets assigned
			}
			a.Sync(a.LogEndOffset())
			sl, err := a.Read(0, 1<<20, a.LogEndOffset())
			if err != nil {
				t.Fatal(err)
			}
			pinned := len(sl.Chunks)
			if pinned < 2 {
				t.Fatalf("want a read across segments, got %d chunks", pinned)
			}
			for p := int32(0); p < 10; p++ {
				l, _ := m.Create(PartitionID{Topic: "b", Partition: p}, smallSegments())
				if _, err := l.Append(plain(t, 1, 1), AppendInput{NowMs: 1}); err != nil {
					t.Fatal(err)
				}
				if err := l.Sync(1); err != nil {
					t.Fatal(err)
				}
				readAll(t, l, 1)
				if open, _ := m.OpenFiles(); open > pinned+1 {
					t.Fatalf("%d files open with %d pinned and a bound of 1", open, pinned)
				}
			}
			if open, _ := m.OpenFiles(); open != pinned {
				t.Fatalf("%d files open after the others went idle, want the %d pinned", open, pinned)
			}
			got, err := sl.ReadAll()
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("slice after eviction pressure: %v", err)
			}
			if fsys == vfs.OS {
				for _, c := range sl.Chunks {
					b := make([]byte, c.Len)
					if _, err := c.File.ReadAt(b, c.Pos); err != nil {
						t.Fatalf("sendfile's *os.File unusable while pinned: %v", err)
					}
				}
			}
			sl.Release()
			if open, _ := m.OpenFiles(); open > 1 {
				t.Fatalf("%d files open after Release, bound 1", open)
			}
			// Reopened on demand.
			if got := readAll(t, a, a.LogEndOffset()); len(got) != 20 {
				t.Fatalf("read %d batches after eviction", len(got))
			}
		})
	}
}

// TestSliceSurvivesRetireWhileEvicted: a read that referenced a segment
// whose file the cache had closed still reads it after retention unlinks
// it and a compaction-style rename reuses names: retire opens and keeps
// the file for the holders before the names change.
func TestSliceSurvivesRetireWhileEvicted(t *testing.T) {
	e := newEnv(t, true)
	e.m.files.max = 1
	cfg := smallSegments()
	cfg.RetentionMs = 1
	l := e.log(cfg)
	for i := 0; i < 20; i++ {
		e.append(l, plain(t, 2, 1))
	}
	l.Sync(l.LogEndOffset())
	// Reference the first segment as a read in progress does, with its
	// file closed by the cache.
	l.mu.Lock()
	first := l.segs[0]
	first.acquire()
	size := first.size
	l.mu.Unlock()
	e.m.files.mu.Lock()
	e.m.files.closeLocked(&first.log)
	e.m.files.mu.Unlock()
	e.clock.ms += 10_000
	e.m.RunRetention()
	if l.LogStartOffset() == 0 {
		t.Fatal("retention deleted nothing")
	}
	if _, err := e.fs.Stat(segmentFile(l.dir, first.base, logSuffix)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("segment file still there: %v", err)
	}
	var buf [recordbatch.HeaderSize]byte
	if _, err := first.readHeader(0, size, buf[:]); err != nil {
		t.Fatalf("retired segment unreadable by its holder: %v", err)
	}
	first.release()
	// The rolled active segment went too, held until a checkpoint synced
	// it.
	e.append(l, plain(t, 1, e.clock.ms))
	if err := l.Sync(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if open, _ := e.m.OpenFiles(); open > 1 {
		t.Fatalf("%d files open after the holder released, bound 1", open)
	}
	e.close()
}

// TestCreateWritesNothing: a new partition is a directory; nothing is
// fsynced, its segment file appears with the first append, and a log never
// written is closed and reopened without writing anything.
func TestCreateWritesNothing(t *testing.T) {
	e := newEnv(t, true)
	var ops atomic.Int64
	var names []string
	e.fs.SetInjector(func(op vfs.Op, name string) error {
		if op != vfs.OpRead && op != vfs.OpReadDir && strings.HasPrefix(name, "/data/new-") {
			ops.Add(1)
			names = append(names, op.String()+" "+name)
		}
		return nil
	})
	for p := int32(0); p < 10; p++ {
		if _, err := e.m.Create(PartitionID{Topic: "new", Partition: p}, envCfg); err != nil {
			t.Fatal(err)
		}
	}
	if got := ops.Load(); got != 10 {
		t.Fatalf("creating 10 partitions did %d operations besides reads, want 10 mkdirs: %v", got, names)
	}
	ops.Store(0)
	names = nil
	e.close()
	e.open()
	e.close()
	if got := ops.Load(); got != 0 {
		t.Fatalf("close, open and close of idle new partitions did %d operations on them: %v", got, names)
	}
	e.fs.SetInjector(nil)
	ents, _ := e.fs.ReadDir("/data/new-3")
	if len(ents) != 0 {
		t.Fatalf("never-written partition holds %d files", len(ents))
	}
}

// TestCrashAfterLazyCreate: logs created without any fsync keep what was
// synced through a crash: the first flush makes the partition directory
// and its entry in the data directory durable, once for all logs created
// before it.
func TestCrashAfterLazyCreate(t *testing.T) {
	for _, ack := range []bool{true, false} {
		e := newEnv(t, ack)
		ids := []PartitionID{{Topic: "x", Partition: 0}, {Topic: "x", Partition: 1}, {Topic: "x", Partition: 2}}
		var logs []*Log
		for _, id := range ids {
			l, err := e.m.Create(id, envCfg)
			if err != nil {
				t.Fatal(err)
			}
			logs = append(logs, l)
		}
		var dataDirSyncs atomic.Int64
		e.fs.SetInjector(func(op vfs.Op, name string) error {
			if op == vfs.OpSyncDir && name == "/data" {
				dataDirSyncs.Add(1)
			}
			return nil
		})
		want := map[int][][]byte{}
		for i, l := range logs[:2] {
			b := plain(t, 3, 1)
			e.append(l, b)
			want[i] = [][]byte{b}
			if err := l.Sync(l.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
		}
		e.append(logs[2], plain(t, 1, 1)) // never synced
		if got := dataDirSyncs.Load(); got != 1 {
			t.Fatalf("ack=%v: %d data dir fsyncs for two first syncs of logs created together, want 1", ack, got)
		}
		e.fs.SetInjector(nil)
		e.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(7))})
		for i, id := range ids[:2] {
			l := e.m.Get(id)
			if l == nil {
				t.Fatalf("ack=%v: synced partition %v lost in the crash", ack, id)
			}
			sameBatches(t, readAll(t, l, l.LogEndOffset()), want[i])
		}
		if l := e.m.Get(ids[2]); l != nil && l.LogEndOffset() > 1 {
			t.Fatalf("unsynced partition came back with end %d", l.LogEndOffset())
		}
		e.close()
	}
}

// TestCleanOpenKeepsMarker: a clean open reads no more than it must and
// keeps the clean-shutdown marker; an idle close writes nothing; the first
// change removes the marker, durably before it could mislead recovery.
func TestCleanOpenKeepsMarker(t *testing.T) {
	marker := "/data/" + PartitionDirName(testID) + "/" + cleanShutdownFile
	setup := func(t *testing.T) (*env, [][]byte) {
		e := newEnv(t, true)
		l := e.log(smallSegments())
		var all [][]byte
		for i := 0; i < 30; i++ {
			b := mkBatch(t, batchSpec{n: 2, ts: int64(i), pid: 5, epoch: 1, seq: int32(2 * i)})
			e.append(l, b)
			all = append(all, b)
		}
		e.close()
		return e, all
	}
	t.Run("idle", func(t *testing.T) {
		e, all := setup(t)
		var writes []string
		e.fs.SetInjector(func(op vfs.Op, name string) error {
			switch op {
			case vfs.OpCreate, vfs.OpWrite, vfs.OpSync, vfs.OpRename, vfs.OpRemove, vfs.OpTruncate:
				writes = append(writes, op.String()+" "+name)
			case vfs.OpOpen:
				if strings.HasSuffix(name, snapshotSuffix) || strings.HasSuffix(name, leaderEpochFile) {
					writes = append(writes, "eager read of "+name)
				}
			}
			return nil
		})
		e.open()
		l := e.m.Get(testID)
		sameBatches(t, readAll(t, l, l.LogEndOffset()), all) // reads only
		e.close()
		e.fs.SetInjector(nil)
		if len(writes) != 0 {
			t.Fatalf("clean open, reads and close of an idle log: %v", writes)
		}
		// The lazily read state is right.
		e.open()
		l = e.m.Get(testID)
		if l.LatestEpoch() != 1 {
			t.Fatalf("latest epoch %d after clean reopen", l.LatestEpoch())
		}
		r, err := l.Append(all[29], AppendInput{LeaderEpoch: 1, NowMs: 1})
		if err != nil || !r.Duplicate || r.BaseOffset != 58 {
			t.Fatalf("retry of the last idempotent batch after a clean reopen: %+v %v", r, err)
		}
		e.close()
	})
	// Each change that could make the old marker lie (its active segment
	// cut or rewritten) first removes it durably: a crash right after the
	// change must not find it. An append made durable by the journal may
	// leave it (stale is set): recovery replays the journal entries after
	// the LSN the marker records.
	for _, c := range []struct {
		name   string
		change func(t *testing.T, l *Log)
		keep   int  // batches that must survive the crash
		stale  bool // the marker may survive the change
	}{
		{"truncate", func(t *testing.T, l *Log) {
			if err := l.Truncate(41); err != nil {
				t.Fatal(err)
			}
		}, 20, false},
		{"truncate-active", func(t *testing.T, l *Log) {
			if err := l.Truncate(59); err != nil { // inside the active segment
				t.Fatal(err)
			}
		}, 29, false},
		{"truncate-fully", func(t *testing.T, l *Log) {
			if err := l.TruncateFullyAndStartAt(100); err != nil {
				t.Fatal(err)
			}
		}, 0, false},
		{"append-sync", func(t *testing.T, l *Log) {
			if _, err := l.Append(plain(t, 1, 1), AppendInput{NowMs: 1}); err != nil {
				t.Fatal(err)
			}
			if err := l.Sync(l.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
		}, 31, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			e, all := setup(t)
			e.opts.FlushOnAck = false // nothing is fsynced unless the change does it
			e.open()
			l := e.m.Get(testID)
			if _, err := e.fs.Stat(marker); err != nil {
				t.Fatalf("marker not kept at a clean open: %v", err)
			}
			c.change(t, l)
			if _, err := e.fs.CrashClone(vfs.CrashOptions{}).Stat(marker); !c.stale && !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("marker still durable after %s: %v", c.name, err)
			}
			for i := 0; i < 10; i++ { // unsynced, torn by the crash
				e.append(l, plain(t, 2, 1))
			}
			e.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(3))})
			l = e.m.Get(testID)
			got := readAll(t, l, l.LogEndOffset())
			if len(got) < c.keep {
				t.Fatalf("%d batches after %s and a crash, want at least %d", len(got), c.name, c.keep)
			}
			sameBatches(t, got[:min(c.keep, 30)], all[:min(c.keep, 30)])
			e.close()
		})
	}
}

// TestMaxOpenFilesOption checks the default and validation.
func TestMaxOpenFilesOption(t *testing.T) {
	o := ManagerOptions{Dir: "/x"}
	o.EnsureDefaults()
	if o.MaxOpenFiles != 10000 {
		t.Fatalf("default MaxOpenFiles %d", o.MaxOpenFiles)
	}
	o.MaxOpenFiles = -1
	if err := o.Validate(); err == nil {
		t.Fatal("negative MaxOpenFiles accepted")
	}
}

// TestOSFileCountProbe makes sure the descriptor count the tests rely on
// sees files this process opens.
func TestOSFileCountProbe(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc/self/fd")
	}
	before := openFDs()
	f, err := os.Create(filepath.Join(t.TempDir(), "x"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if openFDs() != before+1 {
		t.Fatal("/proc/self/fd does not count an open file")
	}
}

// TestOutOfDescriptorsShedsCache: when the process runs out of
// descriptors, the cache gives back its idle ones and the open is retried.
func TestOutOfDescriptorsShedsCache(t *testing.T) {
	e := newEnv(t, false)
	var logs []*Log
	for p := int32(0); p < 5; p++ {
		l, _ := e.m.Create(PartitionID{Topic: "emfile", Partition: p}, envCfg)
		e.append(l, plain(t, 1, 1))
		logs = append(logs, l)
	}
	if open, _ := e.m.OpenFiles(); open != 5 {
		t.Fatalf("%d files open", open)
	}
	var failed atomic.Bool
	e.fs.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpCreate && strings.HasPrefix(name, "/data/emfile-9/") && failed.CompareAndSwap(false, true) {
			return syscall.EMFILE
		}
		return nil
	})
	l, _ := e.m.Create(PartitionID{Topic: "emfile", Partition: 9}, envCfg)
	e.append(l, plain(t, 1, 1)) // creates its segment file: EMFILE, shed, retry
	e.fs.SetInjector(nil)
	if !failed.Load() {
		t.Fatal("no EMFILE injected")
	}
	if open, _ := e.m.OpenFiles(); open != 1 {
		t.Fatalf("%d files open after shedding, want the new one", open)
	}
	for _, l := range logs {
		readAll(t, l, 1) // reopened on demand
	}
	e.close()
}
