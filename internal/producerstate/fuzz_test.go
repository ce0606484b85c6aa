package producerstate

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzUnmarshal feeds arbitrary bytes to UnmarshalBinary. A rejected
// snapshot must leave the table as it was; an accepted one must be canonical
// (re-encode to the same bytes) and leave a table every method can use.
// Each input is also tried with its CRC recomputed, so that mutations reach
// the structural checks behind the CRC.
func FuzzUnmarshal(f *testing.F) {
	empty, _ := New().MarshalBinary()
	f.Add(empty)
	tab := New()
	for _, h := range append(five(10, 2), batch(10, 2, 10, 2, 150), batch(3, 0, 1<<31-2, 5, 200)) {
		tab.Update(h, 1000)
	}
	full, _ := tab.MarshalBinary()
	f.Add(full)
	f.Add(full[:len(full)/2])
	f.Add(reseal(append(append([]byte(nil), full[:6]...), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0)))

	f.Fuzz(func(t *testing.T, data []byte) {
		checkUnmarshal(t, data)
		if len(data) >= crcLen {
			checkUnmarshal(t, reseal(data))
		}
	})
}

func checkUnmarshal(t *testing.T, data []byte) {
	tab := New()
	tab.Update(batch(99, 0, 0, 1, 0), 0)
	before, _ := tab.MarshalBinary()
	if err := tab.UnmarshalBinary(data); err != nil {
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Fatalf("error %v does not wrap ErrCorruptSnapshot", err)
		}
		if after, _ := tab.MarshalBinary(); !bytes.Equal(after, before) {
			t.Fatal("rejected snapshot changed the table")
		}
		return
	}
	again, err := tab.MarshalBinary()
	if err != nil || !bytes.Equal(again, data) {
		t.Fatalf("accepted snapshot re-encodes differently (err %v)", err)
	}
	for id := range tab.producers {
		epoch, seq, ok := tab.Producer(id)
		if !ok {
			t.Fatalf("producer %d listed but not found", id)
		}
		h := batch(id, epoch, seq, 1, 0)
		if _, dup, err := tab.Check(h); err == nil && !dup {
			h.BaseOffset = 1 << 40
			tab.Update(h, 0)
		}
		tab.Check(batch(id, epoch+1, 0, 1, 0))
	}
	tab.Prune(1 << 30)
	tab.Expire(1<<62, 1)
}
