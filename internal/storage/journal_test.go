package storage

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"syscall"
	"testing"

	"github.com/streambus/streambus/internal/vfs"
)

// injectWAL makes every operation op on a journal file fail with err
// while on is set (on may be nil: always).
func injectWAL(fs *vfs.MemFS, op vfs.Op, err error, on func() bool) {
	fs.SetInjector(func(o vfs.Op, name string) error {
		if o == op && strings.HasSuffix(name, ".wal") && (on == nil || on()) {
			return err
		}
		return nil
	})
}

// TestJournalRestoresSegmentWrites: a power cut after the journal round
// and before the segments reached the disk (their writes are never
// fsynced before a checkpoint) loses nothing acknowledged: recovery
// replays the journal into the segments, before and after a checkpoint.
func TestJournalRestoresSegmentWrites(t *testing.T) {
	for _, ack := range []bool{true, false} {
		t.Run(fmt.Sprintf("ack=%v", ack), func(t *testing.T) {
			e := newEnv(t, ack)
			ids := []PartitionID{{Topic: "a", Partition: 0}, {Topic: "a", Partition: 1}, {Topic: "b", Partition: 0}}
			want := map[PartitionID][][]byte{}
			round := func() {
				for i, id := range ids {
					l, err := e.m.Create(id, smallSegments())
					if err != nil {
						t.Fatal(err)
					}
					for j := 0; j < 5+i; j++ {
						b := plain(t, 1+j%3, e.clock.ms)
						e.append(l, b)
						want[id] = append(want[id], b)
					}
					if err := l.Sync(l.LogEndOffset()); err != nil {
						t.Fatal(err)
					}
				}
			}
			round()
			e.crash(vfs.CrashOptions{})
			for _, id := range ids {
				sameBatches(t, readAll(t, e.m.Get(id), e.m.Get(id).LogEndOffset()), want[id])
			}
			if err := e.m.Checkpoint(); err != nil {
				t.Fatal(err)
			}
			round()
			e.crash(vfs.CrashOptions{})
			for _, id := range ids {
				sameBatches(t, readAll(t, e.m.Get(id), e.m.Get(id).LogEndOffset()), want[id])
			}
			e.close()
		})
	}
}

// TestFailedRoundNeverReappears: appends whose journal round failed are
// cut from their segment at once, so neither a read, nor a process crash
// (which keeps everything written), nor a power cut brings them back;
// Recover makes the journal usable again without a reopen.
func TestFailedRoundNeverReappears(t *testing.T) {
	for _, crash := range []vfs.CrashOptions{{Process: true}, {Rand: rand.New(rand.NewSource(7))}} {
		t.Run(fmt.Sprintf("process=%v", crash.Process), func(t *testing.T) {
			e := newEnv(t, true)
			l := e.log(envCfg)
			var good [][]byte
			for i := 0; i < 3; i++ {
				b := plain(t, 2, e.clock.ms)
				e.append(l, b)
				good = append(good, b)
			}
			if err := l.Sync(l.LogEndOffset()); err != nil {
				t.Fatal(err)
			}
			injectWAL(e.fs, vfs.OpWrite, syscall.ENOSPC, nil)
			lost := e.append(l, plain(t, 2, e.clock.ms))
			if err := l.Sync(l.LogEndOffset()); !errors.Is(err, ErrStorage) || !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("sync on a full disk: %v", err)
			}
			if _, err := l.Append(plain(t, 1, e.clock.ms), AppendInput{}); !errors.Is(err, ErrStorage) {
				t.Fatalf("append while the journal is failed: %v", err)
			}
			if end := l.LogEndOffset(); end != 6 {
				t.Fatalf("log end %d after the failed round, want 6", end)
			}
			sameBatches(t, readAll(t, l, l.LogEndOffset()), good)

			e.fs.SetInjector(nil)
			if err := e.m.Recover(); err != nil {
				t.Fatal(err)
			}
			if err := l.Failed(); err != nil {
				t.Fatalf("still failed after Recover: %v", err)
			}
			b := plain(t, 2, e.clock.ms)
			res := e.append(l, b)
			if res.BaseOffset != 6 {
				t.Fatalf("first append after recovery at %d, want 6", res.BaseOffset)
			}
			good = append(good, b)
			if err := l.SyncAppend(res); err != nil {
				t.Fatal(err)
			}
			// The lost append's offsets hold another append now: its
			// producer must still hear that it failed.
			if err := l.SyncAppend(lost); err == nil {
				t.Fatal("SyncAppend of the cut append succeeded once its offsets were taken again")
			}
			e.crash(crash)
			l = e.m.Get(testID)
			sameBatches(t, readAll(t, l, l.LogEndOffset()), good)
			e.close()
		})
	}
}

// TestSegmentAheadOfJournal: what reached a segment but not the journal
// (interval mode, no round yet) is cut at recovery even when the crash
// kept it, and the log continues from the journal's end.
func TestSegmentAheadOfJournal(t *testing.T) {
	e := newEnv(t, false)
	l := e.log(envCfg)
	var good [][]byte
	for i := 0; i < 4; i++ {
		b := plain(t, 1, e.clock.ms)
		e.append(l, b)
		good = append(good, b)
	}
	if err := l.Sync(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	injectWAL(e.fs, vfs.OpWrite, syscall.EIO, nil) // no later round reaches the journal
	for i := 0; i < 3; i++ {
		e.append(l, plain(t, 1, e.clock.ms))
	}
	e.fs.SetInjector(nil)
	e.crash(vfs.CrashOptions{Process: true})
	l = e.m.Get(testID)
	sameBatches(t, readAll(t, l, l.LogEndOffset()), good)
	if res := e.append(l, plain(t, 1, e.clock.ms)); res.BaseOffset != 4 {
		t.Fatalf("append after recovery at %d, want 4", res.BaseOffset)
	}
	e.close()
}

// TestRecreatedPartitionGetsNoOldEntries: a partition deleted and created
// again under the same name never receives the journal entries of the
// deleted one.
func TestRecreatedPartitionGetsNoOldEntries(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(envCfg)
	for i := 0; i < 5; i++ {
		e.append(l, plain(t, 3, e.clock.ms))
	}
	if err := l.Sync(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Delete(testID); err != nil {
		t.Fatal(err)
	}
	l = e.log(envCfg)
	b := plain(t, 1, e.clock.ms)
	e.append(l, b)
	if err := l.Sync(1); err != nil {
		t.Fatal(err)
	}
	e.crash(vfs.CrashOptions{})
	l = e.m.Get(testID)
	sameBatches(t, readAll(t, l, l.LogEndOffset()), [][]byte{b})
	e.close()
}

// TestPowerCutLosesNothingAcknowledged drives several logs with appends,
// syncs, truncations, checkpoints and power cuts that keep a random part
// of what was not fsynced (of the journal and of every segment): each log
// must come back as a prefix of what was appended that holds at least
// everything a Sync acknowledged.
func TestPowerCutLosesNothingAcknowledged(t *testing.T) {
	for seed := int64(1); seed <= 30; seed++ {
		rng := rand.New(rand.NewSource(seed))
		e := newEnv(t, seed%2 == 0)
		const parts = 5
		ids := make([]PartitionID, parts)
		model := make([][][]byte, parts)
		acked := make([]int, parts)
		for p := range ids {
			ids[p] = PartitionID{Topic: "pc", Partition: int32(p)}
		}
		get := func(p int) *Log {
			l, err := e.m.Create(ids[p], smallSegments())
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		for step := 0; step < 200; step++ {
			p := rng.Intn(parts)
			l := get(p)
			switch r := rng.Intn(20); {
			case r < 12:
				b := plain(t, 1+rng.Intn(3), e.clock.ms)
				e.append(l, b)
				model[p] = append(model[p], b)
			case r < 16:
				if err := l.Sync(l.LogEndOffset()); err != nil {
					t.Fatal(err)
				}
				acked[p] = len(model[p])
			case r < 17:
				if err := e.m.Checkpoint(); err != nil {
					t.Fatal(err)
				}
			case r < 18 && len(model[p]) > 0:
				k := rng.Intn(len(model[p]))
				if err := l.Truncate(endOfBatches(t, model[p][:k])); err != nil {
					t.Fatal(err)
				}
				model[p] = model[p][:k]
				acked[p] = min(acked[p], k)
			default:
				e.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(rng.Int63()))})
				for q := range ids {
					l := get(q)
					got := readAll(t, l, l.LogEndOffset())
					if len(got) < acked[q] || len(got) > len(model[q]) {
						t.Fatalf("seed %d step %d: %v has %d batches, acknowledged %d of %d", seed, step, ids[q], len(got), acked[q], len(model[q]))
					}
					sameBatches(t, got, model[q][:len(got)])
					model[q] = model[q][:len(got)]
					acked[q] = len(got)
				}
			}
		}
		e.close()
	}
}

// endOfBatches is the offset after the last of batches appended from 0.
func endOfBatches(t *testing.T, batches [][]byte) int64 {
	t.Helper()
	end := int64(0)
	for _, b := range batches {
		hs, err := splitHeaders(b)
		if err != nil {
			t.Fatal(err)
		}
		end += int64(hs[0].LastOffsetDelta) + 1
	}
	return end
}

// FuzzJournalReplay opens a data directory whose journal file holds
// arbitrary bytes after its header (the journal's own torn-tail handling
// sees them first; entries that pass its CRC reach storage's replay). It
// must not panic, and every log must read back whole batches.
func FuzzJournalReplay(f *testing.F) {
	e := newEnv(f, true)
	l := e.log(envCfg)
	for i := 0; i < 3; i++ {
		e.append(l, plain(f, 2, 1))
	}
	if err := l.Sync(6); err != nil {
		f.Fatal(err)
	}
	name := "/data/journal/" + func() string {
		ents, err := e.fs.ReadDir("/data/journal")
		if err != nil || len(ents) != 1 {
			f.Fatalf("journal files: %v %v", ents, err)
		}
		return ents[0].Name()
	}()
	jf, err := e.fs.Open(name)
	if err != nil {
		f.Fatal(err)
	}
	st, _ := jf.Stat()
	valid := make([]byte, st.Size())
	jf.ReadAt(valid, 0)
	jf.Close()
	e.close()
	f.Add(valid[16:])
	f.Add(valid[16 : len(valid)-5])
	f.Add(append(bytes.Clone(valid[16:]), valid[16:60]...))
	f.Fuzz(func(t *testing.T, body []byte) {
		fsys := vfs.NewMem()
		m, err := OpenManager(ManagerOptions{Dir: "/d", FS: fsys, FlushOnAck: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Create(testID, envCfg); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		// The clean marker would skip nothing: replay still applies
		// every entry after its LSN (0 for a log never written).
		ents, err := fsys.ReadDir("/d/journal")
		if err != nil || len(ents) != 1 {
			t.Fatalf("journal files: %v %v", ents, err)
		}
		jf, err := fsys.OpenFile("/d/journal/"+ents[0].Name(), 2, 0)
		if err != nil {
			t.Fatal(err)
		}
		// Keep the file's own header (its LSN) and put the body after it.
		jf.Truncate(16)
		jf.WriteAt(body, 16)
		jf.Sync()
		jf.Close()
		m, err = OpenManager(ManagerOptions{Dir: "/d", FS: fsys, FlushOnAck: true})
		if err != nil {
			return // refused with an error, not a panic
		}
		defer m.Close()
		for _, id := range m.Partitions() {
			l := m.Get(id)
			if l.Failed() != nil {
				continue
			}
			readAll(t, l, l.LogEndOffset())
		}
	})
}
