package storage

import (
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
)

func smallSegments() LogConfig {
	c := envCfg
	c.SegmentBytes = 700
	c.IndexIntervalBytes = 100
	return c
}

func TestAppendReadAcrossRolls(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(smallSegments())
	var want [][]byte
	for i := 0; i < 200; i++ {
		b := plain(t, 1+i%4, int64(1000+i))
		res := e.append(l, b)
		if res.LastOffset-res.BaseOffset != int64(i%4) {
			t.Fatalf("append %d: offsets %d..%d", i, res.BaseOffset, res.LastOffset)
		}
		want = append(want, b)
	}
	end := l.LogEndOffset()
	if err := l.Sync(end); err != nil {
		t.Fatal(err)
	}
	if hw := l.HighWatermark(); hw != end {
		t.Fatalf("hw %d, end %d", hw, end)
	}
	if n := len(l.segs); n < 20 {
		t.Fatalf("only %d segments", n)
	}
	sameBatches(t, readAll(t, l, end), want)
	// Offsets inside a batch return that whole batch.
	for off := int64(0); off < end; off++ {
		sl, err := l.Read(off, 1, end)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := sl.ReadAll()
		sl.Release()
		h, err := recordbatch.ParseHeader(b)
		if err != nil || h.BaseOffset > off || h.LastOffset() < off {
			t.Fatalf("read %d got batch %d..%d (%v)", off, h.BaseOffset, h.LastOffset(), err)
		}
	}
	// A large maxBytes returns many batches, bounded.
	sl, err := l.Read(0, 2000, end)
	if err != nil {
		t.Fatal(err)
	}
	if sl.Size > 2000 || sl.Size == 0 || len(sl.Chunks) < 2 {
		t.Fatalf("read 2000 bytes: size %d in %d chunks", sl.Size, len(sl.Chunks))
	}
	sl.Release()
	if _, err := l.Read(end+1, 100, end); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read past end: %v", err)
	}
	if sl, err := l.Read(end, 100, end); err != nil || sl.Size != 0 {
		t.Fatalf("read at end: %v %d", err, sl.Size)
	}
	e.close()
	e.open()
	l = e.m.Get(testID)
	if l == nil || l.LogEndOffset() != end {
		t.Fatalf("reopen lost the log")
	}
	sameBatches(t, readAll(t, l, end), want)
	e.close()
}

func TestReadUpToStopsBeforeBound(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	for i := 0; i < 10; i++ {
		e.append(l, plain(t, 2, 1))
	}
	sl, err := l.Read(0, 1<<20, 6)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := sl.ReadAll()
	sl.Release()
	bs, _ := recordbatch.Split(b)
	if len(bs) != 3 {
		t.Fatalf("got %d batches below offset 6, want 3", len(bs))
	}
	e.close()
}

func TestFirstBatchLargerThanMaxBytes(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	big := mkBatch(t, batchSpec{n: 3, pid: -1, valSize: 3000})
	e.append(l, big)
	e.append(l, plain(t, 1, 1))
	sl, err := l.Read(1, 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Release()
	if sl.Size != int64(len(big)) {
		t.Fatalf("got %d bytes, want the whole first batch of %d", sl.Size, len(big))
	}
	e.close()
}

func TestLogAppendTimeAndEpochs(t *testing.T) {
	e := newEnv(t, true)
	cfg := envCfg
	cfg.LogAppendTime = true
	l := e.log(cfg)
	res, err := l.Append(plain(t, 2, 5), AppendInput{LeaderEpoch: 3, NowMs: 777})
	if err != nil || res.LogAppendTime != 777 {
		t.Fatalf("append: %+v %v", res, err)
	}
	l.Append(plain(t, 2, 5), AppendInput{LeaderEpoch: 5, NowMs: 778})
	l.Append(plain(t, 2, 5), AppendInput{LeaderEpoch: 5, NowMs: 779})
	sl, _ := l.Read(0, 1<<20, 100)
	b, _ := sl.ReadAll()
	sl.Release()
	bs, err := recordbatch.Split(b)
	if err != nil {
		t.Fatal(err)
	}
	h, _ := recordbatch.ParseHeader(bs[0])
	if !h.IsLogAppendTime() || h.MaxTimestamp != 777 || h.PartitionLeaderEpoch != 3 {
		t.Fatalf("header %+v", h)
	}
	for _, c := range []struct {
		req int32
		ep  int32
		end int64
	}{{3, 3, 2}, {5, 5, 6}, {4, 3, 2}, {1, 1, 0}, {6, -1, -1}, {-1, -1, -1}} {
		ep, end := l.EndOffsetForEpoch(c.req)
		if ep != c.ep || end != c.end {
			t.Errorf("EndOffsetForEpoch(%d) = %d,%d want %d,%d", c.req, ep, end, c.ep, c.end)
		}
	}
	e.close()
	e.open()
	l = e.m.Get(testID)
	if ep, end := l.EndOffsetForEpoch(3); ep != 3 || end != 2 {
		t.Fatalf("after reopen: %d %d", ep, end)
	}
	if err := l.Truncate(3); err != nil {
		t.Fatal(err)
	}
	if ep, end := l.EndOffsetForEpoch(3); ep != 3 || end != 2 {
		t.Fatalf("after truncate: epoch 3 ends %d,%d", ep, end)
	}
	e.close()
}

func TestIdempotentAppend(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	b0 := mkBatch(t, batchSpec{n: 3, pid: 7, epoch: 1, seq: 0})
	r0 := e.append(l, b0)
	dup := mkBatch(t, batchSpec{n: 3, pid: 7, epoch: 1, seq: 0})
	r1, err := l.Append(dup, AppendInput{NowMs: 1})
	if err != nil || !r1.Duplicate || r1.BaseOffset != r0.BaseOffset || r1.LastOffset != r0.LastOffset {
		t.Fatalf("duplicate: %+v %v", r1, err)
	}
	if _, err := l.Append(mkBatch(t, batchSpec{n: 1, pid: 7, epoch: 1, seq: 9}), AppendInput{}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", err)
	}
	e.append(l, mkBatch(t, batchSpec{n: 1, pid: 7, epoch: 2, seq: 0}))
	if _, err := l.Append(mkBatch(t, batchSpec{n: 1, pid: 7, epoch: 1, seq: 3}), AppendInput{}); !errors.Is(err, ErrInvalidProducerEpoch) {
		t.Fatalf("old epoch: %v", err)
	}
	if l.LogEndOffset() != 4 {
		t.Fatalf("end %d", l.LogEndOffset())
	}
	// The state survives a restart (snapshot) and a crash (replay).
	e.close()
	e.open()
	l = e.m.Get(testID)
	if r, err := l.Append(mkBatch(t, batchSpec{n: 1, pid: 7, epoch: 2, seq: 0}), AppendInput{}); err != nil || !r.Duplicate || r.BaseOffset != 3 {
		t.Fatalf("dup after reopen: %+v %v", r, err)
	}
	e.append(l, mkBatch(t, batchSpec{n: 1, pid: 7, epoch: 2, seq: 1}))
	l.Sync(l.LogEndOffset())
	e.crash(vfs.CrashOptions{})
	l = e.m.Get(testID)
	if r, err := l.Append(mkBatch(t, batchSpec{n: 1, pid: 7, epoch: 2, seq: 1}), AppendInput{}); err != nil || !r.Duplicate || r.BaseOffset != 4 {
		t.Fatalf("dup after crash: %+v %v", r, err)
	}
	e.close()
}

func TestCrashDropsUnsyncedData(t *testing.T) {
	e := newEnv(t, false) // interval mode: nothing is fsynced unless asked
	l := e.log(envCfg)
	var want [][]byte
	for i := 0; i < 20; i++ {
		b := plain(t, 2, 1)
		e.append(l, b)
		want = append(want, b)
	}
	if err := l.Sync(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	synced := l.LogEndOffset()
	for i := 0; i < 20; i++ {
		e.append(l, plain(t, 2, 1))
	}
	e.crash(vfs.CrashOptions{})
	l = e.m.Get(testID)
	if l.LogEndOffset() != synced {
		t.Fatalf("end after crash %d, synced %d", l.LogEndOffset(), synced)
	}
	sameBatches(t, readAll(t, l, synced), want)
	// The log continues where it was cut.
	if r := e.append(l, plain(t, 1, 1)); r.BaseOffset != synced {
		t.Fatalf("append after crash at %d", r.BaseOffset)
	}
	e.close()
}

func TestTornWriteRecovery(t *testing.T) {
	for seed := int64(0); seed < 20; seed++ {
		e := newEnv(t, false)
		l := e.log(smallSegments())
		var all [][]byte
		for i := 0; i < 30; i++ {
			b := plain(t, 1+i%3, 1)
			e.append(l, b)
			all = append(all, b)
			if i == 10 {
				l.Sync(l.LogEndOffset())
			}
		}
		e.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(seed))})
		l = e.m.Get(testID)
		got := readAll(t, l, l.LogEndOffset())
		if len(got) < 11 {
			t.Fatalf("seed %d: lost synced batches: %d left", seed, len(got))
		}
		sameBatches(t, got, all[:len(got)])
		e.close()
	}
}

func TestPartialWriteFailsLog(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	e.append(l, plain(t, 1, 1))
	l.Sync(1)
	e.fs.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpWrite {
			return &vfs.PartialWriteError{N: 20}
		}
		return nil
	})
	if _, err := l.Append(plain(t, 1, 1), AppendInput{}); err == nil {
		t.Fatal("append with a torn write succeeded")
	}
	e.fs.SetInjector(nil)
	if _, err := l.Append(plain(t, 1, 1), AppendInput{}); err == nil {
		t.Fatal("a failed log accepted an append")
	}
	e.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(1))})
	l = e.m.Get(testID)
	if l.LogEndOffset() != 1 {
		t.Fatalf("end %d after torn write", l.LogEndOffset())
	}
	e.append(l, plain(t, 1, 1))
	if got := readAll(t, l, 2); len(got) != 2 {
		t.Fatalf("%d batches", len(got))
	}
	e.close()
}

// TestGarbledTail: bytes after the recovery point are replaced by the
// journal's copy at recovery, so a garbled (torn) segment tail loses
// nothing that was synced; a garbled journal record cuts the journal
// there, and the log ends before it.
func TestGarbledTail(t *testing.T) {
	for _, where := range []string{"segment", "journal"} {
		t.Run(where, func(t *testing.T) {
			e := newEnv(t, true)
			l := e.log(envCfg)
			var sizes []int
			var all [][]byte
			for i := 0; i < 15; i++ {
				b := plain(t, 1, 1)
				sizes = append(sizes, len(b))
				all = append(all, b)
				e.append(l, b)
			}
			if err := l.Sync(15); err != nil {
				t.Fatal(err)
			}
			// Garble batch 12's payload, or its journal record's.
			name, pos := segmentFile("/data/"+PartitionDirName(testID), 0, logSuffix), int64(30)
			for _, s := range sizes[:12] {
				pos += int64(s)
			}
			if where == "journal" {
				name, pos = "/data/journal/"+journalFileName(t, e), 16+30+8+17
				for _, s := range sizes[:12] {
					pos += int64(8 + 17 + s)
				}
			}
			if err := e.fs.Garble(name, pos, 4, rand.New(rand.NewSource(3))); err != nil {
				t.Fatal(err)
			}
			e.crash(vfs.CrashOptions{})
			l = e.m.Get(testID)
			want := 15
			if where == "journal" {
				want = 12
			}
			if l.LogEndOffset() != int64(want) {
				t.Fatalf("end %d after garbling batch 12 in the %s, want %d", l.LogEndOffset(), where, want)
			}
			sameBatches(t, readAll(t, l, int64(want)), all[:want])
			e.close()
		})
	}
}

// journalFileName returns the name of the only journal file.
func journalFileName(t *testing.T, e *env) string {
	t.Helper()
	ents, err := e.fs.ReadDir("/data/journal")
	if err != nil || len(ents) != 1 {
		t.Fatalf("journal files: %v %v", ents, err)
	}
	return ents[0].Name()
}

func TestIndexRebuilt(t *testing.T) {
	for _, damage := range []string{"delete", "truncate", "garbage", "zeros", "shift"} {
		t.Run(damage, func(t *testing.T) {
			e := newEnv(t, true)
			l := e.log(smallSegments())
			var want [][]byte
			for i := 0; i < 100; i++ {
				b := plain(t, 2, int64(i))
				e.append(l, b)
				want = append(want, b)
			}
			e.close()
			dir := "/data/" + PartitionDirName(testID)
			bases, _ := listBases(e.fs, dir, logSuffix)
			for _, b := range bases {
				for _, suf := range []string{indexSuffix, timeIndexSuffix} {
					name := segmentFile(dir, b, suf)
					switch damage {
					case "delete":
						e.fs.Remove(name)
					case "truncate":
						f, _ := e.fs.OpenFile(name, 2, 0)
						f.Truncate(5)
						f.Close()
					case "garbage":
						e.fs.Garble(name, 0, 64, rand.New(rand.NewSource(b)))
					case "zeros":
						f, _ := e.fs.OpenFile(name, 2, 0)
						f.WriteAt(make([]byte, 48), 0)
						f.Close()
					case "shift":
						f, _ := e.fs.OpenFile(name, 2, 0)
						f.WriteAt([]byte{0, 0, 0, 1, 0, 0, 0, 5}, 0)
						f.Close()
					}
				}
			}
			e.open()
			l = e.m.Get(testID)
			sameBatches(t, readAll(t, l, l.LogEndOffset()), want)
			if off, ts, ok := l.OffsetForTimestamp(50); !ok || ts != 50 || off != 99 {
				t.Fatalf("OffsetForTimestamp(50) = %d %d %v", off, ts, ok)
			}
			e.close()
		})
	}
}

func TestOffsetForTimestampAndMax(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(smallSegments())
	// batch i holds 3 records with timestamps 10i, 10i+1, 10i+2, except
	// batch 7, which is in the past.
	for i := 0; i < 40; i++ {
		ts := int64(10 * i)
		if i == 7 {
			ts = 5
		}
		e.append(l, plain(t, 3, ts))
	}
	l.Sync(l.LogEndOffset())
	for _, c := range []struct {
		ts, off, got int64
		ok           bool
	}{{0, 0, 0, true}, {11, 4, 11, true}, {12, 5, 12, true}, {13, 6, 20, true}, {395, 0, 0, false}, {392, 119, 392, true}, {6, 3, 10, true}} {
		off, got, ok := l.OffsetForTimestamp(c.ts)
		if ok != c.ok || (ok && (off != c.off || got != c.got)) {
			t.Errorf("OffsetForTimestamp(%d) = %d,%d,%v want %d,%d,%v", c.ts, off, got, ok, c.off, c.got, c.ok)
		}
	}
	if off, ts := l.MaxTimestamp(); off != 119 || ts != 392 {
		t.Fatalf("MaxTimestamp = %d %d", off, ts)
	}
	e.close()
}

func TestTruncate(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(smallSegments())
	var want [][]byte
	for i := 0; i < 100; i++ {
		b := plain(t, 2, int64(i))
		e.append(l, b)
		want = append(want, b)
	}
	if err := l.Truncate(61); err != nil { // inside batch 30 (offsets 60, 61)
		t.Fatal(err)
	}
	if l.LogEndOffset() != 60 {
		t.Fatalf("end %d", l.LogEndOffset())
	}
	sameBatches(t, readAll(t, l, 60), want[:30])
	b := plain(t, 2, 1)
	if r := e.append(l, b); r.BaseOffset != 60 {
		t.Fatalf("append after truncate at %d", r.BaseOffset)
	}
	want = append(want[:30], b)
	l.Sync(62)
	e.crash(vfs.CrashOptions{})
	l = e.m.Get(testID)
	sameBatches(t, readAll(t, l, 62), want)
	if err := l.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if l.LogEndOffset() != 0 || l.LogStartOffset() != 0 {
		t.Fatalf("after truncate 0: %d %d", l.LogStartOffset(), l.LogEndOffset())
	}
	e.close()
	e.open()
	l = e.m.Get(testID)
	if l.LogEndOffset() != 0 {
		t.Fatalf("reopen after truncate 0: end %d", l.LogEndOffset())
	}
	e.close()
}

func TestSegmentMsRoll(t *testing.T) {
	e := newEnv(t, true)
	cfg := envCfg
	cfg.SegmentMs = 1000
	l := e.log(cfg)
	e.append(l, plain(t, 1, 1))
	e.append(l, plain(t, 1, 1))
	if len(l.segs) != 1 {
		t.Fatalf("%d segments before segment.ms", len(l.segs))
	}
	e.clock.ms += 1000
	e.append(l, plain(t, 1, 1))
	if len(l.segs) != 2 || l.segs[1].base != 2 {
		t.Fatalf("no roll after segment.ms: %d segments", len(l.segs))
	}
	// An idle partition is rolled by the background retention pass.
	e.clock.ms += 1000
	e.m.RunRetention()
	if len(l.segs) != 3 || l.segs[2].size != 0 {
		t.Fatalf("idle segment not rolled: %d segments", len(l.segs))
	}
	e.close()
}

func TestIntervalModeHighWatermark(t *testing.T) {
	e := newEnv(t, false)
	l := e.log(envCfg)
	ch := l.Changed()
	e.append(l, plain(t, 3, 1))
	select {
	case <-ch:
	default:
		t.Fatal("Changed not closed by an append in interval mode")
	}
	if l.HighWatermark() != 3 {
		t.Fatalf("hw %d, want the log end", l.HighWatermark())
	}
	e.m.FlushAll()
	if err := l.Sync(3); err != nil {
		t.Fatal(err)
	}
	e.close()
}

func TestFlushOnAckHighWatermarkIsDurable(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	block := make(chan struct{})
	e.fs.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && strings.HasSuffix(name, logSuffix) {
			<-block // hold the flusher inside the segment fsync
		}
		return nil
	})
	e.append(l, plain(t, 3, 1))
	if hw := l.HighWatermark(); hw != 0 {
		t.Fatalf("hw %d before any fsync completed", hw)
	}
	if sl, err := l.Read(0, 1<<20, l.HighWatermark()); err != nil || sl.Size != 0 {
		t.Fatalf("read below hw: %v %d", err, sl.Size)
	}
	ch := l.Changed()
	close(block)
	if err := l.Sync(3); err != nil {
		t.Fatal(err)
	}
	<-ch
	if l.HighWatermark() != 3 {
		t.Fatalf("hw %d after sync", l.HighWatermark())
	}
	e.fs.SetInjector(nil)
	e.close()
}

// TestFsyncErrorFailsLog: a failed journal fdatasync fails the waiting
// Sync and later appends with ErrStorage, the failed append is cut and
// never read, also after a reopen, and the Manager still closes cleanly.
func TestFsyncErrorFailsLog(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	e.append(l, plain(t, 1, 1))
	if err := l.Sync(1); err != nil {
		t.Fatal(err)
	}
	e.fs.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpSync && strings.HasSuffix(name, ".wal") {
			return vfs.ErrInjected
		}
		return nil
	})
	e.append(l, plain(t, 1, 1))
	if err := l.Sync(2); !errors.Is(err, vfs.ErrInjected) || !errors.Is(err, ErrStorage) {
		t.Fatalf("sync: %v, want ErrStorage wrapping the fsync error", err)
	}
	if _, err := l.Append(plain(t, 1, 1), AppendInput{}); !errors.Is(err, vfs.ErrInjected) || !errors.Is(err, ErrStorage) {
		t.Fatalf("append after fsync failure: %v, want ErrStorage wrapping the fsync error", err)
	}
	if err := l.Failed(); !errors.Is(err, ErrStorage) {
		t.Fatalf("Failed() = %v while the journal is failed", err)
	}
	if end := l.LogEndOffset(); end != 1 {
		t.Fatalf("log end %d after the failed round, want 1", end)
	}
	e.fs.SetInjector(nil)
	if err := e.m.Close(); err != nil {
		t.Fatalf("close with a failed journal: %v", err)
	}
	e.open()
	l = e.m.Get(testID)
	if end := l.LogEndOffset(); end != 1 {
		t.Fatalf("log end %d after reopen, want 1", end)
	}
	e.close()
}

func TestCrashDuringTruncate(t *testing.T) {
	for _, target := range []int64{0, 31} { // full truncation, and a cut inside segment 1+
		for step := 0; step < 12; step++ {
			e := newEnv(t, true)
			l := e.log(smallSegments())
			var all [][]byte
			for i := 0; i < 30; i++ {
				b := plain(t, 2, 1)
				e.append(l, b)
				all = append(all, b)
			}
			l.Sync(60)
			count := 0
			e.fs.SetInjector(func(op vfs.Op, name string) error {
				switch op {
				case vfs.OpRemove, vfs.OpSyncDir, vfs.OpSync, vfs.OpTruncate, vfs.OpCreate, vfs.OpRename:
					count++
					if count == step+1 {
						return vfs.ErrInjected
					}
				}
				return nil
			})
			err := l.Truncate(target)
			e.fs.SetInjector(nil)
			e.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(int64(step)))})
			l = e.m.Get(testID)
			got := readAll(t, l, l.LogEndOffset())
			keep := int(target / 2)
			if len(got) > len(all) || (len(got) < keep) {
				t.Fatalf("target %d step %d (%v): %d batches survive", target, step, err, len(got))
			}
			if err == nil && len(got) != keep {
				t.Fatalf("target %d: completed truncation left %d batches", target, len(got))
			}
			sameBatches(t, got, all[:len(got)])
			e.close()
		}
	}
}
