package producerstate

import (
	"errors"
	"math"
	"testing"

	"github.com/streambus/streambus/internal/recordbatch"
	"pgregory.net/rapid"
)

// model is the naive twin of Table: it keeps every appended batch and
// re-derives each answer from the whole history, applying Kafka's rules in
// the most literal way.
type model struct {
	log       []modelRec
	forgotten map[int64]int // producer ID -> index in log where its history restarts
}

type modelRec struct {
	pid                 int64
	epoch               int16
	firstSeq, lastSeq   int32
	base, last, updated int64
}

func (m *model) history(pid int64) []modelRec {
	var out []modelRec
	for _, r := range m.log[m.forgotten[pid]:] {
		if r.pid == pid {
			out = append(out, r)
		}
	}
	return out
}

// cached is the producer's last five batches in its current epoch.
func (m *model) cached(pid int64) []modelRec {
	h := m.history(pid)
	if len(h) == 0 {
		return nil
	}
	epoch := h[len(h)-1].epoch
	i := len(h)
	for i > 0 && h[i-1].epoch == epoch {
		i--
	}
	h = h[i:]
	return h[max(0, len(h)-BatchesRetained):]
}

func (m *model) check(h recordbatch.Header) (int64, bool, error) {
	if h.ProducerID < 0 || h.IsControl() {
		return 0, false, nil
	}
	if h.BaseSequence < 0 {
		return 0, false, ErrInvalidSequence
	}
	c := m.cached(h.ProducerID)
	if len(c) == 0 {
		return 0, false, nil
	}
	cur := c[len(c)-1]
	for _, r := range c {
		if h.ProducerEpoch == r.epoch && r.firstSeq == h.BaseSequence && r.lastSeq == h.LastSequence() {
			return r.base, true, nil
		}
	}
	switch {
	case h.ProducerEpoch < cur.epoch:
		return 0, false, ErrInvalidProducerEpoch
	case h.ProducerEpoch > cur.epoch && h.BaseSequence != 0:
		return 0, false, ErrOutOfOrderSequence
	case h.ProducerEpoch == cur.epoch && int64(h.BaseSequence) != (int64(cur.lastSeq)+1)%(1<<31):
		return 0, false, ErrOutOfOrderSequence
	}
	return 0, false, nil
}

func (m *model) forgetIf(keep func(last modelRec) bool) {
	for _, pid := range modelPIDs {
		if h := m.history(pid); len(h) > 0 && !keep(h[len(h)-1]) {
			m.forgotten[pid] = len(m.log)
		}
	}
}

var modelPIDs = []int64{0, 1, 2}

func errClass(err error) error {
	for _, e := range []error{ErrOutOfOrderSequence, ErrInvalidProducerEpoch, ErrInvalidSequence} {
		if errors.Is(err, e) {
			return e
		}
	}
	return err
}

func TestTableMatchesModel(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		tab := New()
		m := &model{forgotten: map[int64]int{}}
		var leo, logStart, now int64

		produce := func(rt *rapid.T) {
			pid := rapid.SampledFrom(append(modelPIDs, -1)).Draw(rt, "pid")
			n := rapid.Int32Range(1, 4).Draw(rt, "records")
			epoch := int16(rapid.IntRange(0, 3).Draw(rt, "epoch"))
			var seq int32
			c := m.cached(pid)
			switch kind := rapid.IntRange(0, 9).Draw(rt, "seqKind"); {
			case kind <= 4 && len(c) > 0: // in sequence
				seq = int32((int64(c[len(c)-1].lastSeq) + 1) % (1 << 31))
				epoch = c[len(c)-1].epoch
			case kind <= 6 && len(c) > 0: // retry of a cached batch, possibly under another epoch
				r := rapid.SampledFrom(c).Draw(rt, "retry")
				seq, n = r.firstSeq, int32(r.last-r.base+1)
				if kind == 5 {
					epoch = r.epoch
				}
			case kind == 7:
				seq = rapid.SampledFrom([]int32{0, math.MaxInt32 - 2, math.MaxInt32, -1}).Draw(rt, "special")
			default:
				seq = rapid.Int32Range(0, 20).Draw(rt, "seq")
			}
			h := batch(pid, epoch, seq, n, 0)
			if rapid.IntRange(0, 9).Draw(rt, "control") == 0 {
				h.Attributes = recordbatch.ControlBit | recordbatch.TransactionalBit
			}
			now += rapid.Int64Range(0, 100).Draw(rt, "elapsed")

			gotBase, gotDup, gotErr := tab.Check(h)
			wantBase, wantDup, wantErr := m.check(h)
			if gotDup != wantDup || gotBase != wantBase || errClass(gotErr) != wantErr {
				rt.Fatalf("Check(%+v) = %d, %v, %v; model %d, %v, %v",
					h, gotBase, gotDup, gotErr, wantBase, wantDup, wantErr)
			}
			if gotErr != nil || gotDup {
				return
			}
			h.BaseOffset = leo
			leo += int64(n)
			tab.Update(h, now)
			if h.ProducerID >= 0 && !h.IsControl() {
				m.log = append(m.log, modelRec{
					pid: pid, epoch: epoch, firstSeq: seq, lastSeq: h.LastSequence(),
					base: h.BaseOffset, last: h.LastOffset(), updated: now,
				})
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			// Bursts, so that producers get past five cached batches.
			"produce": func(rt *rapid.T) {
				for range rapid.IntRange(1, 12).Draw(rt, "burst") {
					produce(rt)
				}
			},
			"prune": func(rt *rapid.T) {
				logStart = rapid.Int64Range(logStart, leo).Draw(rt, "logStart")
				tab.Prune(logStart)
				m.forgetIf(func(r modelRec) bool { return r.last >= logStart })
			},
			"expire": func(rt *rapid.T) {
				exp := rapid.Int64Range(1, 400).Draw(rt, "expirationMs")
				tab.Expire(now, exp)
				m.forgetIf(func(r modelRec) bool { return now-r.updated < exp })
			},
			"snapshot": func(rt *rapid.T) {
				b, err := tab.MarshalBinary()
				if err != nil {
					rt.Fatal(err)
				}
				tab = New()
				if err := tab.UnmarshalBinary(b); err != nil {
					rt.Fatalf("own snapshot rejected: %v", err)
				}
			},
			"": func(rt *rapid.T) {
				known := 0
				for _, pid := range modelPIDs {
					c := m.cached(pid)
					epoch, lastSeq, ok := tab.Producer(pid)
					if ok != (len(c) > 0) {
						rt.Fatalf("producer %d known=%v, model %v", pid, ok, len(c) > 0)
					}
					if ok {
						known++
						if cur := c[len(c)-1]; epoch != cur.epoch || lastSeq != cur.lastSeq {
							rt.Fatalf("producer %d = epoch %d seq %d, model %d %d", pid, epoch, lastSeq, cur.epoch, cur.lastSeq)
						}
					}
				}
				if tab.Len() != known {
					rt.Fatalf("Len %d, model %d", tab.Len(), known)
				}
			},
		})
	})
}
