package storage

import (
	"bytes"
	"math/rand"
	"testing"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
	"pgregory.net/rapid"
)

// TestLogMatchesModel drives a log with random appends, syncs, rolls,
// truncations, clean restarts and crashes (with torn writes), and checks
// it against a list of batches: after a crash the log must hold a prefix
// of the model at least as long as what was synced.
func TestLogMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		e := newEnv(t, rapid.Bool().Draw(rt, "flushOnAck"))
		defer func() { e.m.Close() }()
		cfg := smallSegments()
		cfg.SegmentBytes = int64(rapid.IntRange(700, 3000).Draw(rt, "segmentBytes"))
		cfg.IndexIntervalBytes = int32(rapid.IntRange(0, 300).Draw(rt, "indexInterval"))
		l := e.log(cfg)
		var model [][]byte // batches as stored
		synced := 0        // model[:synced] is durable
		check := func(what string) {
			got := readAll(rt, l, l.LogEndOffset())
			if len(got) != len(model) {
				rt.Fatalf("%s: log has %d batches, model %d", what, len(got), len(model))
			}
			for i := range got {
				if !bytes.Equal(got[i], model[i]) {
					rt.Fatalf("%s: batch %d differs", what, i)
				}
			}
		}
		modelStart := int64(0) // the log end when the model is empty
		endOf := func(n int) int64 {
			if n == 0 {
				return modelStart
			}
			h, _ := recordbatch.ParseHeader(model[n-1])
			return h.LastOffset() + 1
		}
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				b := mkBatch(t, batchSpec{n: rapid.IntRange(1, 5).Draw(rt, "records"), pid: -1,
					ts: e.clock.ms, valSize: rapid.IntRange(0, 100).Draw(rt, "valSize")})
				res, err := l.Append(b, AppendInput{LeaderEpoch: 1, NowMs: e.clock.ms})
				if err != nil {
					rt.Fatal(err)
				}
				if res.BaseOffset != endOf(len(model)) {
					rt.Fatalf("appended at %d, want %d", res.BaseOffset, endOf(len(model)))
				}
				model = append(model, b)
			},
			"sync": func(rt *rapid.T) {
				if err := l.Sync(l.LogEndOffset()); err != nil {
					rt.Fatal(err)
				}
				synced = len(model)
			},
			"roll": func(rt *rapid.T) {
				l.mu.Lock()
				err := l.rollLocked(e.clock.ms)
				l.mu.Unlock()
				if err != nil {
					rt.Fatal(err)
				}
			},
			"truncate": func(rt *rapid.T) {
				if len(model) == 0 {
					return
				}
				k := rapid.IntRange(0, len(model)-1).Draw(rt, "keep")
				h, _ := recordbatch.ParseHeader(model[k])
				off := h.BaseOffset + int64(rapid.IntRange(0, int(h.LastOffsetDelta)).Draw(rt, "inside"))
				if err := l.Truncate(off); err != nil {
					rt.Fatal(err)
				}
				if off <= l.LogStartOffset() || k == 0 {
					// A full truncation restarts the log at off; cutting
					// the first batch leaves the log end at its base.
					modelStart = off
					if k == 0 && off > l.LogStartOffset() {
						modelStart = h.BaseOffset
					}
				}
				if off <= l.LogStartOffset() {
					modelStart = off
				}
				model = model[:k] // the batch holding off goes whole
				synced = min(synced, len(model))
				if l.LogEndOffset() != endOf(len(model)) {
					rt.Fatalf("truncate to %d: end %d want %d", off, l.LogEndOffset(), endOf(len(model)))
				}
			},
			"deleteRecords": func(rt *rapid.T) {
				if err := l.Sync(l.LogEndOffset()); err != nil {
					rt.Fatal(err)
				}
				synced = len(model)
				k := rapid.IntRange(0, len(model)).Draw(rt, "deleteBefore")
				off := endOf(k)
				if k < len(model) {
					h, _ := recordbatch.ParseHeader(model[k])
					off = h.BaseOffset + int64(rapid.IntRange(0, int(h.LastOffsetDelta)).Draw(rt, "inside"))
				}
				start, err := l.DeleteRecordsBefore(off)
				if err != nil {
					rt.Fatal(err)
				}
				if want := max(off, l.LogStartOffset()); start != want {
					rt.Fatalf("DeleteRecordsBefore(%d) = %d", off, start)
				}
				// Batches wholly below the new start are gone from reads;
				// the batch holding it is still returned whole.
				if k == len(model) {
					modelStart = endOf(len(model))
				}
				model = model[k:]
				synced = len(model)
			},
			"restart": func(rt *rapid.T) {
				e.close()
				e.open()
				l = e.m.Get(testID)
				synced = len(model)
				check("restart")
			},
			"crash": func(rt *rapid.T) {
				e.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(rapid.Int64().Draw(rt, "seed")))})
				l = e.log(cfg) // a new log lost before its first synced data is recreated, as the host does
				got := readAll(rt, l, l.LogEndOffset())
				if len(got) < synced || len(got) > len(model) {
					rt.Fatalf("crash: %d batches survive, synced %d of %d", len(got), synced, len(model))
				}
				model = model[:len(got)]
				synced = len(model)
				check("crash")
			},
			"": func(rt *rapid.T) { check("state") },
		})
	})
}
