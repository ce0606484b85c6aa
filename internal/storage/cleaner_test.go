package storage

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
)

func compactCfg() LogConfig {
	c := smallSegments()
	c.SegmentBytes = 400
	c.Compact, c.Delete = true, false
	c.DeleteRetentionMs = 1000
	return c
}

// latest reads the whole log and returns key → (value, offset) of the
// last record per key, and the number of records.
func latest(t *testing.T, l *Log) (map[string]string, int) {
	t.Helper()
	out := map[string]string{}
	n := 0
	for _, b := range readAll(t, l, l.LogEndOffset()) {
		err := recordbatch.ForEachRecord(b, 1<<20, func(r *recordbatch.Record) error {
			n++
			if r.Value == nil {
				out[string(r.Key)] = "<nil>"
			} else {
				out[string(r.Key)] = string(r.Value)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out, n
}

func TestCompactionKeepsLatestPerKey(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(compactCfg())
	// 60 batches of 3 records over 10 keys; key k3 is deleted half-way.
	for i := 0; i < 60; i++ {
		i := i
		spec := batchSpec{n: 3, ts: e.clock.ms, pid: -1,
			key:   func(j int) []byte { return []byte(fmt.Sprintf("k%d", (3*i+j)%10)) },
			value: func(j int) []byte { return []byte(fmt.Sprintf("v%d", 3*i+j)) }}
		if i == 10 || i == 30 {
			spec.key = func(int) []byte { return []byte("gone") }
			spec.n = 1
		}
		if i == 30 {
			spec.value = func(int) []byte { return nil }
		}
		e.append(l, mkBatch(t, spec))
	}
	before, nBefore := latest(t, l)
	end := l.LogEndOffset()
	if err := l.Sync(end); err != nil {
		t.Fatal(err)
	}
	n, err := l.Compact(context.Background())
	if err != nil || n == 0 {
		t.Fatalf("compact: %d %v", n, err)
	}
	after, nAfter := latest(t, l)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("latest values changed:\n%v\n%v", before, after)
	}
	if nAfter >= nBefore || l.LogEndOffset() != end {
		t.Fatalf("records %d → %d, end %d → %d", nBefore, nAfter, end, l.LogEndOffset())
	}
	// Every key appears at most once in the cleaned part plus the rest.
	// Offsets are preserved: each batch's records still read back at
	// increasing offsets, and reads from any offset work.
	for off := int64(0); off < end; off++ {
		sl, err := l.Read(off, 1, end)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		sl.Release()
	}
	// Tombstone still there: delete.retention.ms not passed.
	if after["gone"] != "<nil>" {
		t.Fatal("tombstone removed too early")
	}
	// After delete.retention.ms, the tombstone goes (if k3 was not
	// written again after it).
	e.clock.ms += 5000
	for i := 0; i < 20; i++ { // roll the tombstone's segment into the cleanable range
		e.append(l, mkBatch(t, batchSpec{n: 1, ts: e.clock.ms, pid: -1, key: func(int) []byte { return []byte("z") }}))
	}
	l.Sync(l.LogEndOffset())
	if _, err := l.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	final, _ := latest(t, l)
	if _, ok := final["gone"]; ok {
		t.Fatal("old tombstone kept")
	}
	// The cleaned log survives a restart and a crash.
	e.close()
	e.open()
	l = e.m.Get(testID)
	reopened, _ := latest(t, l)
	if fmt.Sprint(reopened) != fmt.Sprint(final) {
		t.Fatal("compacted log changed on reopen")
	}
	e.close()
}

func TestCompactionCrashDuringSwap(t *testing.T) {
	// Fail each step of the swap in turn, crash, and check the log reads
	// back either the old or the cleaned content, never a mix or a loss.
	for step := 0; step < 12; step++ {
		t.Run(fmt.Sprint(step), func(t *testing.T) {
			e := newEnv(t, true)
			l := e.log(compactCfg())
			for i := 0; i < 40; i++ {
				i := i
				e.append(l, mkBatch(t, batchSpec{n: 2, ts: e.clock.ms, pid: -1,
					key:   func(j int) []byte { return []byte(fmt.Sprintf("k%d", (2*i+j)%7)) },
					value: func(j int) []byte { return []byte(fmt.Sprintf("v%d", 2*i+j)) }}))
			}
			l.Sync(l.LogEndOffset())
			want, _ := latest(t, l)
			count := 0
			e.fs.SetInjector(func(op vfs.Op, name string) error {
				if op == vfs.OpRename || op == vfs.OpSyncDir || op == vfs.OpRemove || op == vfs.OpSync {
					count++
					if count == step+1 {
						return vfs.ErrInjected
					}
				}
				return nil
			})
			n, err := l.Compact(context.Background())
			t.Logf("compact: %d %v (%d ops)", n, err, count)
			e.fs.SetInjector(nil)
			e.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(int64(step)))})
			l = e.m.Get(testID)
			got, _ := latest(t, l)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("after crash at step %d:\n got %v\nwant %v", step, got, want)
			}
			e.close()
		})
	}
}

func TestCompactionKeepsProducersLastBatch(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(compactCfg())
	key := func(int) []byte { return []byte("k") }
	// Producer 9's only batch is superseded by plain writes of the same key.
	e.append(l, mkBatch(t, batchSpec{n: 1, pid: 9, epoch: 0, seq: 1, key: key, ts: e.clock.ms}))
	for i := 0; i < 30; i++ {
		e.append(l, mkBatch(t, batchSpec{n: 1, pid: -1, key: key, ts: e.clock.ms, valSize: 50}))
	}
	l.Sync(l.LogEndOffset())
	if n, err := l.Compact(context.Background()); err != nil || n == 0 {
		t.Fatalf("compact: %d %v", n, err)
	}
	bs := readAll(t, l, l.LogEndOffset())
	h, _ := recordbatch.ParseHeader(bs[0])
	if h.ProducerID != 9 || h.NumRecords != 0 || h.BaseOffset != 0 || h.LastOffsetDelta != 0 {
		t.Fatalf("producer's last batch not kept empty: %+v", h)
	}
	for _, b := range bs[1:] {
		if h, _ := recordbatch.ParseHeader(b); h.NumRecords == 0 {
			t.Fatalf("empty non-producer batch at %d kept", h.BaseOffset)
		}
	}
	// The producer's sequence survives a restart that replays the log.
	e.close()
	e.open()
	l = e.m.Get(testID)
	if _, err := l.Append(mkBatch(t, batchSpec{n: 1, pid: 9, epoch: 0, seq: 5}), AppendInput{}); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap after compaction: %v", err)
	}
	e.close()
}

func TestCompactionMinLag(t *testing.T) {
	e := newEnv(t, true)
	cfg := compactCfg()
	cfg.MinCompactionLagMs = 60_000
	l := e.log(cfg)
	for i := 0; i < 30; i++ {
		e.append(l, mkBatch(t, batchSpec{n: 1, pid: -1, key: func(int) []byte { return []byte("k") }, ts: e.clock.ms, valSize: 50}))
	}
	l.Sync(l.LogEndOffset())
	if n, _ := l.Compact(context.Background()); n != 0 {
		t.Fatalf("compacted %d segments younger than min.compaction.lag.ms", n)
	}
	e.clock.ms += 60_001
	if n, _ := l.Compact(context.Background()); n == 0 {
		t.Fatal("nothing compacted after the lag")
	}
	e.close()
}
