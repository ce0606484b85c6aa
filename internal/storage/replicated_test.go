package storage

import (
	"bytes"
	"errors"
	"math/rand"
	"strings"
	"testing"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
	"pgregory.net/rapid"
)

// readRange returns the bytes of whole batches from offset up to upTo.
func readRange(t tb, l *Log, offset int64, maxBytes int, upTo int64) []byte {
	t.Helper()
	sl, err := l.Read(offset, maxBytes, upTo)
	if err != nil {
		t.Fatalf("read %d: %v", offset, err)
	}
	defer sl.Release()
	b, err := sl.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// replicate copies the leader's batches from the follower's log end on,
// in reads of at most maxBytes, as a fetcher would.
func replicate(t tb, leader, follower *Log, maxBytes int) {
	t.Helper()
	for follower.LogEndOffset() < leader.LogEndOffset() {
		b := readRange(t, leader, follower.LogEndOffset(), maxBytes, leader.LogEndOffset())
		if len(b) == 0 {
			t.Fatalf("leader returned nothing at %d (end %d)", follower.LogEndOffset(), leader.LogEndOffset())
		}
		if _, err := follower.AppendReplicated(b); err != nil {
			t.Fatalf("append replicated at %d: %v", follower.LogEndOffset(), err)
		}
	}
}

func sameEpochs(t tb, a, b *Log, maxEpoch int32) {
	t.Helper()
	if a.LatestEpoch() != b.LatestEpoch() {
		t.Fatalf("latest epoch %d vs %d", a.LatestEpoch(), b.LatestEpoch())
	}
	for e := int32(-1); e <= maxEpoch+1; e++ {
		ae, ao := a.EndOffsetForEpoch(e)
		be, bo := b.EndOffsetForEpoch(e)
		if ae != be || ao != bo {
			t.Fatalf("EndOffsetForEpoch(%d): %d,%d vs %d,%d", e, ae, ao, be, bo)
		}
	}
}

func TestAppendReplicatedCopiesLeaderBytes(t *testing.T) {
	le, fe := newEnv(t, true), newEnv(t, true)
	cfg := envCfg
	cfg.LogAppendTime = true // the leader stamps; the follower must not restamp
	leader, follower := le.log(cfg), fe.log(cfg)
	fe.clock.ms += 5000
	for i, ep := range []int32{1, 1, 3, 3, 4} {
		if _, err := leader.Append(plain(t, 1+i, int64(i)), AppendInput{LeaderEpoch: ep, NowMs: 100 + int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := leader.Append(mkBatch(t, batchSpec{n: 2, pid: 9, epoch: 2, seq: 0}), AppendInput{LeaderEpoch: 4, NowMs: 200}); err != nil {
		t.Fatal(err)
	}
	all := readRange(t, leader, 0, 1<<20, leader.LogEndOffset())
	res, err := follower.AppendReplicated(bytes.Clone(all))
	if err != nil {
		t.Fatal(err)
	}
	if res.BaseOffset != 0 || res.LastOffset != leader.LogEndOffset()-1 || res.LogAppendTime != -1 || res.Duplicate {
		t.Fatalf("result %+v", res)
	}
	if !bytes.Equal(readRange(t, follower, 0, 1<<20, follower.LogEndOffset()), all) {
		t.Fatal("follower bytes differ from the leader's")
	}
	sameEpochs(t, leader, follower, 5)
	if ep, seq, ok := producerOf(t, follower, 9); !ok || ep != 2 || seq != 1 {
		t.Fatalf("follower producer state: %d %d %v", ep, seq, ok)
	}
	// The follower can take over: a retry of the replicated batch is a
	// duplicate there too.
	r, err := follower.Append(mkBatch(t, batchSpec{n: 2, pid: 9, epoch: 2, seq: 0}), AppendInput{LeaderEpoch: 5, NowMs: 300})
	if err != nil || !r.Duplicate || r.BaseOffset != res.LastOffset-1 {
		t.Fatalf("retry on new leader: %+v %v", r, err)
	}
	// Epochs and producers survive a restart of the follower.
	fe.close()
	fe.open()
	follower = fe.m.Get(testID)
	sameEpochs(t, leader, follower, 5)
	le.close()
	fe.close()
}

func TestAppendReplicatedRejects(t *testing.T) {
	e := newEnv(t, false)
	l := e.log(envCfg)
	at := func(b []byte, base int64, epoch int32) []byte {
		recordbatch.SetBaseOffset(b, base)
		recordbatch.SetLeaderEpoch(b, epoch)
		return b
	}
	if _, err := l.AppendReplicated(at(plain(t, 3, 1), 0, 1)); err != nil {
		t.Fatal(err)
	}
	corrupt := at(plain(t, 1, 1), 3, 1)
	corrupt[len(corrupt)-1] ^= 0xff
	two := append(at(plain(t, 2, 1), 3, 1), at(plain(t, 1, 1), 4, 1)...) // overlapping offsets
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"below log end", at(plain(t, 1, 1), 2, 1), ErrUnexpectedAppendOffset},
		{"crc", corrupt, ErrCorrupt},
		{"truncated", at(plain(t, 2, 1), 3, 1)[:70], ErrCorrupt},
		{"empty", nil, ErrCorrupt},
		{"not increasing", two, ErrCorrupt},
		{"negative base", at(plain(t, 1, 1), -5, 1), ErrCorrupt},
	}
	for _, c := range cases {
		if _, err := l.AppendReplicated(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if l.LogEndOffset() != 3 {
		t.Fatalf("rejected appends moved the log end to %d", l.LogEndOffset())
	}
	// A gap (a batch the leader's cleaner emptied) is copied as is.
	if res, err := l.AppendReplicated(at(plain(t, 2, 1), 10, 2)); err != nil || res.BaseOffset != 10 || l.LogEndOffset() != 12 {
		t.Fatalf("gap: %+v %v end %d", res, err, l.LogEndOffset())
	}
	if ep, end := l.EndOffsetForEpoch(1); ep != 1 || end != 10 {
		t.Fatalf("epoch 1 ends at %d,%d", ep, end)
	}
	if got := readAll(t, l, 12); len(got) != 2 {
		t.Fatalf("%d batches", len(got))
	}
	e.close()
}

func TestAppendReplicatedSplitsSegments(t *testing.T) {
	le, fe := newEnv(t, false), newEnv(t, false)
	leader := le.log(envCfg)
	follower := fe.log(smallSegments())
	for i := 0; i < 40; i++ {
		le.append(leader, plain(t, 3, int64(i)))
	}
	replicate(t, leader, follower, 1<<20) // one append of everything
	if len(follower.segs) < 5 {
		t.Fatalf("%d segments", len(follower.segs))
	}
	for _, s := range follower.segs {
		if s.size > smallSegments().SegmentBytes {
			t.Fatalf("segment %d holds %d bytes", s.base, s.size)
		}
	}
	sameBatches(t, readAll(t, follower, follower.LogEndOffset()), readAll(t, leader, leader.LogEndOffset()))
	le.close()
	fe.close()
}

func TestAppendReplicatedDurability(t *testing.T) {
	le, fe := newEnv(t, true), newEnv(t, true)
	leader, follower := le.log(envCfg), fe.log(smallSegments())
	if !follower.FlushOnAck() {
		t.Fatal("FlushOnAck false in ack mode")
	}
	for i := 0; i < 20; i++ {
		le.append(leader, plain(t, 2, int64(i)))
	}
	replicate(t, leader, follower, 300)
	synced := follower.LogEndOffset()
	if err := follower.Sync(synced); err != nil {
		t.Fatal(err)
	}
	if follower.HighWatermark() != synced {
		t.Fatalf("hw %d after sync to %d", follower.HighWatermark(), synced)
	}
	for i := 0; i < 10; i++ {
		le.append(leader, plain(t, 2, int64(i)))
	}
	replicate(t, leader, follower, 300)
	// Hold the flusher so nothing more becomes durable, then crash.
	fe.fs.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpSync {
			return vfs.ErrInjected
		}
		return nil
	})
	fe.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(1))})
	follower = fe.m.Get(testID)
	if follower.LogEndOffset() < synced {
		t.Fatalf("synced data lost: end %d < %d", follower.LogEndOffset(), synced)
	}
	got := readAll(t, follower, follower.LogEndOffset())
	sameBatches(t, got, readAll(t, leader, leader.LogEndOffset())[:len(got)])
	// The follower catches up again after the crash.
	replicate(t, leader, follower, 300)
	sameEpochs(t, leader, follower, 2)
	le.close()
	fe.close()
}

func TestAppendReplicatedWriteErrorFailsLog(t *testing.T) {
	le, fe := newEnv(t, true), newEnv(t, true)
	leader, follower := le.log(envCfg), fe.log(envCfg)
	le.append(leader, plain(t, 2, 1))
	b := readRange(t, leader, 0, 1<<20, 2)
	fe.fs.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpWrite && strings.HasSuffix(name, logSuffix) {
			return vfs.ErrInjected
		}
		return nil
	})
	if _, err := follower.AppendReplicated(b); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("append: %v", err)
	}
	fe.fs.SetInjector(nil)
	if _, err := follower.AppendReplicated(b); !errors.Is(err, vfs.ErrInjected) {
		t.Fatalf("append after failure: %v", err)
	}
	le.close()
	fe.m.Close()
}

// TestReplicationMatchesLeader is the follower's property: whatever the
// leader does (appends under rising epochs, idempotent producers, leader
// changes that truncate its tail), and whatever happens to the follower
// (crashes with torn writes, restarts), truncating the follower at the
// divergence point found with EndOffsetForEpoch (KIP-101/279) and then
// appending what the leader returns leaves identical bytes, epochs and
// producer state.
func TestReplicationMatchesLeader(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		le, fe := newEnv(t, rapid.Bool().Draw(rt, "leaderAck")), newEnv(t, rapid.Bool().Draw(rt, "followerAck"))
		defer func() { le.m.Close(); fe.m.Close() }()
		cfg := smallSegments()
		cfg.SegmentBytes = int64(rapid.IntRange(700, 3000).Draw(rt, "segmentBytes"))
		leader, follower := le.log(cfg), fe.log(cfg)
		epoch := int32(1)
		seqs := map[int64]int32{}
		diverge := func(rt *rapid.T) {
			// Find the divergence as a follower does: ask the leader where
			// our latest epoch ends, cut there or at our own end of the
			// epoch the leader answered with, and repeat until stable.
			for follower.LogEndOffset() > follower.LogStartOffset() {
				lEpoch, lEnd := leader.EndOffsetForEpoch(follower.LatestEpoch())
				cut := lEnd
				if lEpoch < 0 {
					cut = leader.LogStartOffset()
				} else if _, fEnd := follower.EndOffsetForEpoch(lEpoch); fEnd >= 0 && fEnd < cut {
					cut = fEnd
				}
				if cut >= follower.LogEndOffset() {
					return
				}
				if err := follower.Truncate(cut); err != nil {
					rt.Fatal(err)
				}
			}
		}
		sync := func(rt *rapid.T) {
			diverge(rt)
			replicate(rt, leader, follower, rapid.IntRange(1, 2000).Draw(rt, "fetchBytes"))
			if follower.FlushOnAck() {
				if err := follower.Sync(follower.LogEndOffset()); err != nil {
					rt.Fatal(err)
				}
			}
			got := readAll(rt, follower, follower.LogEndOffset())
			want := readAll(rt, leader, leader.LogEndOffset())
			sameBatches(rt, got, want)
			sameEpochs(rt, leader, follower, epoch)
			for pid := range seqs {
				le, ls, lok := producerOf(rt, leader, pid)
				fe, fs, fok := producerOf(rt, follower, pid)
				if le != fe || ls != fs || lok != fok {
					rt.Fatalf("producer %d: leader %d/%d/%v follower %d/%d/%v", pid, le, ls, lok, fe, fs, fok)
				}
			}
		}
		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				spec := batchSpec{n: rapid.IntRange(1, 4).Draw(rt, "records"), pid: -1, ts: le.clock.ms,
					valSize: rapid.IntRange(0, 80).Draw(rt, "valSize")}
				if pid := rapid.Int64Range(-1, 2).Draw(rt, "pid"); pid >= 0 {
					spec.pid, spec.epoch, spec.seq = pid+1, 0, seqs[pid+1]
				}
				if _, err := leader.Append(mkBatch(t, spec), AppendInput{LeaderEpoch: epoch, NowMs: le.clock.ms}); err != nil {
					rt.Fatal(err)
				}
				if spec.pid > 0 {
					seqs[spec.pid] += int32(spec.n)
				}
			},
			"replicatePart": func(rt *rapid.T) {
				diverge(rt)
				if follower.LogEndOffset() >= leader.LogEndOffset() {
					return
				}
				b := readRange(rt, leader, follower.LogEndOffset(), rapid.IntRange(1, 500).Draw(rt, "partBytes"), leader.LogEndOffset())
				if _, err := follower.AppendReplicated(b); err != nil {
					rt.Fatal(err)
				}
			},
			"leaderChange": func(rt *rapid.T) {
				// A new leader that lacked the tail: the old leader's
				// unreplicated records vanish and a new epoch begins.
				end := leader.LogEndOffset()
				start := leader.LogStartOffset()
				if end > start {
					off := rapid.Int64Range(start, end).Draw(rt, "cut")
					if err := leader.Truncate(off); err != nil {
						rt.Fatal(err)
					}
				}
				epoch += int32(rapid.IntRange(1, 2).Draw(rt, "epochStep"))
				// Producer sequences restart after truncation only for
				// truncated producers; track the leader's view.
				for pid := range seqs {
					if _, s, ok := producerOf(rt, leader, pid); ok {
						seqs[pid] = s + 1
					} else {
						seqs[pid] = 0
					}
				}
			},
			"followerCrash": func(rt *rapid.T) {
				fe.crash(vfs.CrashOptions{Rand: rand.New(rand.NewSource(rapid.Int64().Draw(rt, "seed")))})
				follower = fe.log(cfg) // recreated if it was lost before its first synced data
			},
			"followerRestart": func(rt *rapid.T) {
				fe.close()
				fe.open()
				follower = fe.m.Get(testID)
			},
			"sync": sync,
			"":     func(rt *rapid.T) {},
		})
		sync(rt)
	})
}

func TestTruncateFullyAndStartAt(t *testing.T) {
	e := newEnv(t, true)
	l := e.log(smallSegments())
	for i := 0; i < 10; i++ {
		e.append(l, mkBatch(t, batchSpec{n: 2, pid: 4, seq: int32(2 * i)}))
	}
	l.Sync(l.LogEndOffset())
	l.mu.Lock()
	l.rollLocked(e.clock.ms) // a producer snapshot on disk
	l.mu.Unlock()
	if err := l.TruncateFullyAndStartAt(100); err != nil {
		t.Fatal(err)
	}
	check := func(what string) {
		if l.LogStartOffset() != 100 || l.LogEndOffset() != 100 || l.LatestEpoch() != -1 || l.HighWatermark() != 100 {
			t.Fatalf("%s: start %d end %d epoch %d hw %d", what, l.LogStartOffset(), l.LogEndOffset(), l.LatestEpoch(), l.HighWatermark())
		}
		if _, _, ok := producerOf(t, l, 4); ok {
			t.Fatalf("%s: producer state of the old log survived", what)
		}
	}
	check("after")
	b := mkBatch(t, batchSpec{n: 1, pid: -1})
	recordbatch.SetBaseOffset(b, 100)
	recordbatch.SetLeaderEpoch(b, 7)
	if _, err := l.AppendReplicated(b); err != nil {
		t.Fatal(err)
	}
	if err := l.Truncate(100); err != nil { // back to empty at 100
		t.Fatal(err)
	}
	e.crash(vfs.CrashOptions{})
	l = e.m.Get(testID)
	check("after crash")
	e.close()
}
