package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestRetentionByTime(t *testing.T) {
	e := newEnv(t, true)
	cfg := smallSegments()
	cfg.RetentionMs = 10_000
	l := e.log(cfg)
	for i := 0; i < 60; i++ {
		e.append(l, plain(t, 2, e.clock.ms))
		e.clock.ms += 1000
	}
	l.Sync(l.LogEndOffset())
	nsegs := len(l.segs)
	e.m.RunRetention()
	start := l.LogStartOffset()
	if start == 0 || len(l.segs) >= nsegs {
		t.Fatalf("nothing deleted: start %d, %d→%d segments", start, nsegs, len(l.segs))
	}
	// Every remaining closed segment but the first survivor is young
	// enough, and the first deleted ones were old.
	now := e.clock.ms
	for _, s := range l.segs[:len(l.segs)-1] {
		ts, _ := s.largestTimestamp(s.size, 100)
		if now-ts > cfg.RetentionMs {
			t.Fatalf("segment %d with max ts %d kept at %d", s.base, ts, now)
		}
	}
	if _, err := l.Read(start-1, 10, 1000); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start: %v", err)
	}
	readAll(t, l, l.LogEndOffset())
	// Everything expires: the active segment is rolled and deleted too.
	e.clock.ms += 100_000
	e.m.RunRetention()
	if l.LogStartOffset() != l.LogEndOffset() || l.Size() != 0 {
		t.Fatalf("all expired: start %d end %d size %d", l.LogStartOffset(), l.LogEndOffset(), l.Size())
	}
	end := l.LogEndOffset()
	e.close()
	e.open()
	l = e.m.Get(testID)
	if l.LogStartOffset() != end || l.LogEndOffset() != end {
		t.Fatalf("reopen: %d..%d want %d", l.LogStartOffset(), l.LogEndOffset(), end)
	}
	e.close()
}

func TestRetentionByBytes(t *testing.T) {
	e := newEnv(t, true)
	cfg := smallSegments()
	cfg.RetentionMs = -1
	cfg.RetentionBytes = 2000
	l := e.log(cfg)
	for i := 0; i < 100; i++ {
		e.append(l, plain(t, 2, e.clock.ms))
	}
	e.m.RunRetention()
	if sz := l.Size(); sz > 2000+cfg.SegmentBytes || sz < 2000-cfg.SegmentBytes {
		t.Fatalf("size %d after retention.bytes 2000", sz)
	}
	readAll(t, l, l.LogEndOffset())
	e.close()
}

func TestDeleteRecordsBefore(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(smallSegments())
	for i := 0; i < 100; i++ {
		e.append(l, plain(t, 2, e.clock.ms))
	}
	l.Sync(200)
	if _, err := l.DeleteRecordsBefore(201); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond hw: %v", err)
	}
	start, err := l.DeleteRecordsBefore(101)
	if err != nil || start != 101 {
		t.Fatalf("delete: %d %v", start, err)
	}
	if l.segs[0].base > 101 || (len(l.segs) > 1 && l.segs[1].base <= 101) {
		t.Fatalf("segments not trimmed: first %d", l.segs[0].base)
	}
	if _, err := l.Read(100, 1, 200); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read 100: %v", err)
	}
	sl, err := l.Read(101, 1, 200)
	if err != nil || sl.Size == 0 {
		t.Fatalf("read 101: %v", err)
	}
	sl.Release()
	e.crash(vfs.CrashOptions{})
	l = e.m.Get(testID)
	if l.LogStartOffset() != 101 {
		t.Fatalf("log start after crash %d", l.LogStartOffset())
	}
	e.close()
}

func TestSliceSurvivesDeletion(t *testing.T) {
	dir := t.TempDir()
	for _, fsys := range []vfs.FS{vfs.NewMem(), vfs.OS} {
		m, err := OpenManager(ManagerOptions{Dir: filepath.Join(dir, "d"), FS: fsys, FlushOnAck: true})
		if err != nil {
			t.Fatal(err)
		}
		cfg := smallSegments()
		cfg.RetentionMs = 1
		l, _ := m.Create(testID, cfg)
		for i := 0; i < 30; i++ {
			l.Append(plain(t, 2, 1), AppendInput{NowMs: 1})
		}
		l.Sync(60)
		sl, err := l.Read(0, 1<<20, 60)
		if err != nil {
			t.Fatal(err)
		}
		if fsys == vfs.OS && sl.Chunks[0].File == nil {
			t.Fatal("no *os.File for sendfile on the OS filesystem")
		}
		want, _ := sl.ReadAll()
		m.RunRetention() // deletes every closed segment
		if l.LogStartOffset() == 0 {
			t.Fatal("retention deleted nothing")
		}
		if err := m.Delete(testID); err != nil {
			t.Fatal(err)
		}
		if m.Get(testID) != nil {
			t.Fatal("deleted log still there")
		}
		if _, err := l.Append(plain(t, 1, 1), AppendInput{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("append after delete: %v", err)
		}
		select {
		case <-l.Changed():
		default:
			t.Fatal("Changed not closed by delete")
		}
		got, err := sl.ReadAll()
		if err != nil || string(got) != string(want) {
			t.Fatalf("slice unreadable after deletion: %v", err)
		}
		if _, err := recordbatch.Split(got); err != nil {
			t.Fatal(err)
		}
		sl.Release()
		sl.Release()
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		ents, _ := fsys.ReadDir(filepath.Join(dir, "d"))
		for _, e := range ents {
			if e.Name() != journalDirName {
				t.Fatalf("deleted partition dir left behind: %v", e.Name())
			}
		}
	}
}

func TestConcurrentAppendReadSync(t *testing.T) {
	for _, ack := range []bool{true, false} {
		e := newEnv(t, ack)
		l := e.log(smallSegments())
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		const writers, per = 4, 50
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < per; i++ {
					res, err := l.Append(plain(t, 2, 1), AppendInput{NowMs: 1})
					if err != nil {
						t.Error(err)
						return
					}
					if err := l.Sync(res.LastOffset + 1); err != nil {
						t.Error(err)
						return
					}
					if hw := l.HighWatermark(); ack && hw <= res.LastOffset {
						t.Errorf("hw %d after sync of %d", hw, res.LastOffset)
					}
				}
			}()
		}
		var rg sync.WaitGroup
		for r := 0; r < 2; r++ {
			rg.Add(1)
			go func() {
				defer rg.Done()
				off := int64(0)
				for ctx.Err() == nil {
					ch := l.Changed()
					hw := l.HighWatermark()
					if off >= hw {
						select {
						case <-ch:
						case <-ctx.Done():
						}
						continue
					}
					sl, err := l.Read(off, 300, hw)
					if err != nil {
						t.Error(err)
						return
					}
					b, err := sl.ReadAll()
					sl.Release()
					if err != nil {
						t.Error(err)
						return
					}
					bs, err := recordbatch.Split(b)
					if err != nil {
						t.Error(err)
						return
					}
					for _, x := range bs {
						h, _ := recordbatch.ParseHeader(x)
						if h.BaseOffset != off {
							t.Errorf("reader expected %d got %d", off, h.BaseOffset)
							return
						}
						off = h.LastOffset() + 1
					}
				}
			}()
		}
		rg.Add(1)
		go func() { // retention and compaction in the background
			defer rg.Done()
			for ctx.Err() == nil {
				e.m.RunRetention()
				e.m.RunCompaction(ctx)
				time.Sleep(time.Millisecond)
			}
		}()
		wg.Wait()
		if err := l.Sync(l.LogEndOffset()); err != nil {
			t.Fatal(err)
		}
		if l.HighWatermark() < writers*per*2 {
			t.Fatalf("hw %d", l.HighWatermark())
		}
		cancel()
		rg.Wait()
		e.close()
	}
}

func TestManagerOpenParallelAndLeftovers(t *testing.T) {
	e := newEnv(t, true)
	for p := int32(0); p < 6; p++ {
		l, err := e.m.Create(PartitionID{Topic: "a-b", Partition: p}, envCfg)
		if err != nil {
			t.Fatal(err)
		}
		for i := int32(0); i <= p; i++ {
			e.append(l, plain(t, 1, 1))
		}
	}
	if again, _ := e.m.Create(PartitionID{Topic: "a-b", Partition: 2}, envCfg); again.LogEndOffset() != 3 {
		t.Fatal("Create did not return the existing log")
	}
	e.fs.MkdirAll("/data/x-0.123-delete", 0o755)
	f, _ := e.fs.Create("/data/x-0.123-delete/00000000000000000000.log")
	f.Close()
	e.close()
	e.open()
	ids := e.m.Partitions()
	if len(ids) != 6 || ids[0] != (PartitionID{Topic: "a-b", Partition: 0}) {
		t.Fatalf("partitions %v", ids)
	}
	for _, id := range ids {
		if got := e.m.Get(id).LogEndOffset(); got != int64(id.Partition)+1 {
			t.Fatalf("%v end %d", id, got)
		}
	}
	e.close()
	if _, err := e.fs.Stat("/data/x-0.123-delete"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("leftover delete dir: %v", err)
	}
	if e.m.TotalSize() != 0 {
		t.Fatal("closed manager reports size")
	}
}

func TestParsePartitionDir(t *testing.T) {
	for name, want := range map[string]string{
		"a-0": "a/0", "my-topic-12": "my-topic/12", "x-": "", "-1": "", "a-01": "", "a-b": "", "a--1": "a-/1",
	} {
		id, ok := ParsePartitionDir(name)
		got := ""
		if ok {
			got = fmt.Sprintf("%s/%d", id.Topic, id.Partition)
		}
		if got != want {
			t.Errorf("%q → %q want %q", name, got, want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	var o ManagerOptions
	o.EnsureDefaults()
	if err := o.Validate(); err == nil {
		t.Fatal("missing Dir accepted")
	}
	o.Dir = "/x"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.FlushInterval != time.Second || o.RetentionCheckInterval != 5*time.Minute || o.MaxDecompressedBytes != 64<<20 {
		t.Fatalf("defaults %+v", o)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	e := newEnv(t, false)
	e.m.opts.FlushInterval = time.Millisecond
	e.m.opts.RetentionCheckInterval = time.Millisecond
	e.m.opts.CompactionInterval = time.Millisecond
	l := e.log(compactCfg())
	e.append(l, plain(t, 1, 1))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.m.Run(ctx); close(done) }()
	if err := l.Sync(1); err != nil { // served by the flusher, woken by Run or Sync
		t.Fatal(err)
	}
	cancel()
	<-done
	e.close()
}

func TestProducerExpiry(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	e.append(l, mkBatch(t, batchSpec{n: 1, pid: 4, epoch: 0, seq: 0}))
	e.clock.ms += (25 * time.Hour).Milliseconds()
	e.m.RunRetention()
	// Forgotten: any sequence is accepted again (KIP-360 behaviour of an unknown producer).
	if _, err := l.Append(mkBatch(t, batchSpec{n: 1, pid: 4, epoch: 0, seq: 7}), AppendInput{NowMs: e.clock.ms}); err != nil {
		t.Fatalf("expired producer: %v", err)
	}
	e.close()
}

func TestDeleteThenRecreate(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	e.append(l, plain(t, 5, 1))
	if err := e.m.Delete(testID); err != nil {
		t.Fatal(err)
	}
	l2 := e.log(envCfg)
	if l2 == l || l2.LogEndOffset() != 0 {
		t.Fatalf("recreated log not fresh: end %d", l2.LogEndOffset())
	}
	e.append(l2, plain(t, 1, 1))
	e.close()
	e.open()
	if got := e.m.Get(testID).LogEndOffset(); got != 1 {
		t.Fatalf("recreated log end %d after reopen", got)
	}
	e.close()
}
