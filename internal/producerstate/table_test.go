package producerstate

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/streambus/streambus/internal/recordbatch"
)

// batch builds the header of a data batch of n records.
func batch(pid int64, epoch int16, seq int32, n int32, base int64) recordbatch.Header {
	return recordbatch.Header{
		BaseOffset:      base,
		Magic:           2,
		LastOffsetDelta: n - 1,
		NumRecords:      n,
		ProducerID:      pid,
		ProducerEpoch:   epoch,
		BaseSequence:    seq,
	}
}

// appendAll checks and records each batch as the partition log would,
// failing the test if any is rejected or reported as a duplicate.
func appendAll(t *testing.T, tab *Table, hs ...recordbatch.Header) {
	t.Helper()
	for i, h := range hs {
		if _, dup, err := tab.Check(h); err != nil || dup {
			t.Fatalf("setup batch %d (%+v): dup=%v err=%v", i, h, dup, err)
		}
		tab.Update(h, 1000)
	}
}

// five appends batches of 2 records: seqs 0-1, 2-3, …, 8-9 at offsets 100, 110, ….
func five(pid int64, epoch int16) []recordbatch.Header {
	var hs []recordbatch.Header
	for i := range int32(5) {
		hs = append(hs, batch(pid, epoch, 2*i, 2, 100+10*int64(i)))
	}
	return hs
}

func TestCheck(t *testing.T) {
	const pid = 7
	control := batch(pid, 0, -1, 1, 0)
	control.Attributes = recordbatch.ControlBit | recordbatch.TransactionalBit
	transactional := batch(pid, 0, 10, 1, 0)
	transactional.Attributes = recordbatch.TransactionalBit

	type tc struct {
		name    string
		setup   []recordbatch.Header
		h       recordbatch.Header
		wantDup bool
		dupBase int64
		wantErr error
	}
	cases := []tc{
		{name: "no producer id passes", setup: five(pid, 0), h: batch(-1, -1, -1, 3, 0)},
		{name: "no producer id ignores sequence", setup: five(pid, 0), h: batch(-1, 0, 77, 3, 0)},
		{name: "control batch passes", setup: five(pid, 0), h: control},
		{name: "unknown producer sequence 0", h: batch(pid, 0, 0, 1, 0)},
		{name: "unknown producer nonzero sequence", h: batch(pid, 3, 42, 1, 0)},
		{name: "unknown producer beside known one", setup: five(pid, 0), h: batch(pid+1, 0, 42, 1, 0)},
		{name: "next in sequence", setup: five(pid, 0), h: batch(pid, 0, 10, 4, 0)},
		{name: "transactional data batch in sequence", setup: five(pid, 0), h: transactional},
		{name: "gap", setup: five(pid, 0), h: batch(pid, 0, 11, 1, 0), wantErr: ErrOutOfOrderSequence},
		{name: "behind but not a cached batch", setup: five(pid, 0), h: batch(pid, 0, 9, 1, 0), wantErr: ErrOutOfOrderSequence},
		{name: "same first sequence, different range", setup: five(pid, 0), h: batch(pid, 0, 8, 3, 0), wantErr: ErrOutOfOrderSequence},
		{name: "duplicate older than five", setup: append(five(pid, 0), batch(pid, 0, 10, 2, 150)), h: batch(pid, 0, 0, 2, 0), wantErr: ErrOutOfOrderSequence},
		{name: "oldest of five after sixth", setup: append(five(pid, 0), batch(pid, 0, 10, 2, 150)), h: batch(pid, 0, 2, 2, 0), wantDup: true, dupBase: 110},
		{name: "negative sequence", setup: five(pid, 0), h: batch(pid, 0, -1, 1, 0), wantErr: ErrInvalidSequence},
		{name: "negative sequence unknown producer", h: batch(pid, 0, -5, 1, 0), wantErr: ErrInvalidSequence},
		{name: "epoch bump sequence 0", setup: five(pid, 0), h: batch(pid, 1, 0, 1, 0)},
		{name: "epoch bump nonzero sequence", setup: five(pid, 0), h: batch(pid, 1, 10, 1, 0), wantErr: ErrOutOfOrderSequence},
		{name: "epoch jump by several", setup: five(pid, 2), h: batch(pid, 9, 0, 1, 0)},
		{name: "stale epoch", setup: five(pid, 3), h: batch(pid, 2, 10, 1, 0), wantErr: ErrInvalidProducerEpoch},
		{name: "stale epoch sequence 0", setup: five(pid, 3), h: batch(pid, 2, 0, 1, 0), wantErr: ErrInvalidProducerEpoch},
		{name: "stale epoch retry of cached range is not a duplicate", setup: five(pid, 3), h: batch(pid, 2, 8, 2, 0), wantErr: ErrInvalidProducerEpoch},
		{
			name:    "retry from previous epoch after bump",
			setup:   append(five(pid, 0), batch(pid, 1, 0, 2, 200)),
			h:       batch(pid, 0, 8, 2, 0),
			wantErr: ErrInvalidProducerEpoch,
		},
		{
			name:    "epoch bump clears cached batches",
			setup:   append(five(pid, 0), batch(pid, 1, 0, 2, 200)),
			h:       batch(pid, 1, 2, 2, 0),
			wantErr: nil, // follows 0-1 in epoch 1
		},
		{
			name:    "duplicate in new epoch",
			setup:   append(five(pid, 0), batch(pid, 1, 0, 2, 200)),
			h:       batch(pid, 1, 0, 2, 0),
			wantDup: true, dupBase: 200,
		},
		{
			name:  "wraparound after MaxInt32",
			setup: []recordbatch.Header{batch(pid, 0, math.MaxInt32-2, 3, 50)},
			h:     batch(pid, 0, 0, 1, 0),
		},
		{
			name:    "no MaxInt32+1 after wrap point",
			setup:   []recordbatch.Header{batch(pid, 0, math.MaxInt32-2, 3, 50)},
			h:       batch(pid, 0, 1, 1, 0),
			wantErr: ErrOutOfOrderSequence,
		},
		{
			name:  "batch spanning the wrap",
			setup: []recordbatch.Header{batch(pid, 0, math.MaxInt32-1, 5, 50)}, // seqs MaxInt32-1, MaxInt32, 0, 1, 2
			h:     batch(pid, 0, 3, 1, 0),
		},
		{
			name:    "duplicate of batch spanning the wrap",
			setup:   []recordbatch.Header{batch(pid, 0, math.MaxInt32-1, 5, 50), batch(pid, 0, 3, 1, 55)},
			h:       batch(pid, 0, math.MaxInt32-1, 5, 0),
			wantDup: true, dupBase: 50,
		},
	}
	for i := range 5 {
		cases = append(cases, tc{
			name:    fmt.Sprintf("duplicate of cached batch %d", i),
			setup:   five(pid, 0),
			h:       batch(pid, 0, 2*int32(i), 2, 999),
			wantDup: true,
			dupBase: 100 + 10*int64(i),
		})
	}

	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tab := New()
			appendAll(t, tab, c.setup...)
			before, _ := tab.MarshalBinary()
			base, dup, err := tab.Check(c.h)
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
				t.Fatalf("err = %v, want %v", err, c.wantErr)
			}
			if dup != c.wantDup || (dup && base != c.dupBase) {
				t.Fatalf("dup, base = %v, %d; want %v, %d", dup, base, c.wantDup, c.dupBase)
			}
			if after, _ := tab.MarshalBinary(); string(after) != string(before) {
				t.Fatal("Check changed the table")
			}
		})
	}
}

func TestUpdateIgnores(t *testing.T) {
	control := batch(1, 0, -1, 1, 0)
	control.Attributes = recordbatch.ControlBit
	for name, h := range map[string]recordbatch.Header{
		"no producer":      batch(-1, 0, 0, 1, 0),
		"control":          control,
		"negative seq":     batch(1, 0, -1, 1, 0),
		"negative offset":  batch(1, 0, 0, 1, -1),
		"negative delta":   batch(1, 0, 0, 0, 0),
		"offset overflows": batch(1, 0, 0, 3, math.MaxInt64-1),
	} {
		tab := New()
		tab.Update(h, 0)
		if tab.Len() != 0 {
			t.Errorf("%s: Update recorded %+v", name, h)
		}
	}
}

func TestProducer(t *testing.T) {
	tab := New()
	if _, _, ok := tab.Producer(1); ok {
		t.Fatal("unknown producer reported")
	}
	appendAll(t, tab, batch(1, 4, 0, 3, 0), batch(1, 4, 3, 2, 3), batch(2, 0, math.MaxInt32, 2, 5))
	for _, w := range []struct {
		id    int64
		epoch int16
		seq   int32
	}{{1, 4, 4}, {2, 0, 0}} {
		epoch, seq, ok := tab.Producer(w.id)
		if !ok || epoch != w.epoch || seq != w.seq {
			t.Errorf("Producer(%d) = %d, %d, %v; want %d, %d, true", w.id, epoch, seq, ok, w.epoch, w.seq)
		}
	}
	if tab.Len() != 2 {
		t.Errorf("Len = %d, want 2", tab.Len())
	}
}

func TestPrune(t *testing.T) {
	tab := New()
	appendAll(t, tab,
		batch(1, 0, 0, 10, 0),  // offsets 0-9
		batch(2, 0, 0, 10, 10), // offsets 10-19
		batch(1, 0, 10, 5, 20), // producer 1 now ends at 24
		batch(3, 0, 0, 1, 25),
	)
	tab.Prune(20)
	if _, _, ok := tab.Producer(2); ok {
		t.Error("producer 2 (last offset 19) kept with log start 20")
	}
	if _, _, ok := tab.Producer(1); !ok {
		t.Error("producer 1 (last offset 24) dropped with log start 20")
	}
	tab.Prune(25)
	if _, _, ok := tab.Producer(1); ok {
		t.Error("producer 1 (last offset 24) kept with log start 25")
	}
	if _, _, ok := tab.Producer(3); !ok {
		t.Error("producer 3 (offset 25) dropped with log start 25")
	}
	// A pruned producer is unknown, so any sequence is accepted again.
	if _, _, err := tab.Check(batch(2, 0, 500, 1, 30)); err != nil {
		t.Errorf("pruned producer rejected: %v", err)
	}
}

func TestExpire(t *testing.T) {
	tab := New()
	tab.Update(batch(1, 0, 0, 1, 0), 1000)
	tab.Update(batch(2, 0, 0, 1, 1), 2000)
	tab.Update(batch(3, 0, 0, 1, 2), math.MinInt64)
	tab.Update(batch(4, 0, 0, 1, 3), math.MaxInt64)
	tab.Expire(1999, 1000)
	if _, _, ok := tab.Producer(1); !ok {
		t.Error("producer 1 expired after 999ms idle")
	}
	tab.Expire(2000, 1000)
	if _, _, ok := tab.Producer(1); ok {
		t.Error("producer 1 kept after exactly the expiration time")
	}
	if _, _, ok := tab.Producer(2); !ok {
		t.Error("producer 2 expired after 0ms idle")
	}
	if _, _, ok := tab.Producer(3); ok {
		t.Error("producer 3 (idle since MinInt64) kept")
	}
	if _, _, ok := tab.Producer(4); !ok {
		t.Error("producer 4 (updated in the future) expired")
	}
	tab.Expire(2000+DefaultProducerIDExpirationMs-1, DefaultProducerIDExpirationMs)
	if _, _, ok := tab.Producer(2); !ok {
		t.Error("producer 2 expired before the default expiration")
	}
	tab.Expire(2000+DefaultProducerIDExpirationMs, DefaultProducerIDExpirationMs)
	if _, _, ok := tab.Producer(2); ok {
		t.Error("producer 2 kept at the default expiration")
	}
}

func TestExpireUsesLastUpdate(t *testing.T) {
	tab := New()
	tab.Update(batch(1, 0, 0, 1, 0), 0)
	tab.Update(batch(1, 0, 1, 1, 1), 5000)
	tab.Expire(5999, 1000)
	if tab.Len() != 1 {
		t.Fatal("producer expired though its last update was 999ms ago")
	}
}
