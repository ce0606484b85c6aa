package producerstate

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"math"
	"testing"
)

// sample is a table with a producer of each shape: five cached batches after
// a sixth pushed one out, a batch spanning the sequence wrap, one batch.
func sample(t *testing.T) *Table {
	t.Helper()
	tab := New()
	appendAll(t, tab, append(five(10, 2), batch(10, 2, 10, 2, 150))...)
	appendAll(t, tab, batch(3, 0, math.MaxInt32-1, 5, 200))
	appendAll(t, tab, batch(1<<40, -1, 17, 1, 300))
	return tab
}

func TestSnapshotRoundTrip(t *testing.T) {
	for name, tab := range map[string]*Table{"empty": New(), "sample": sample(t)} {
		b, err := tab.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got := New()
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Len() != tab.Len() {
			t.Fatalf("%s: Len %d, want %d", name, got.Len(), tab.Len())
		}
		b2, _ := got.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("%s: re-encoding differs", name)
		}
	}

	// The restored table behaves like the original.
	got := New()
	b, _ := sample(t).MarshalBinary()
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if base, dup, err := got.Check(batch(10, 2, 2, 2, 0)); !dup || base != 110 || err != nil {
		t.Errorf("restored dup check = %d, %v, %v", base, dup, err)
	}
	if _, _, err := got.Check(batch(10, 2, 0, 2, 0)); !errors.Is(err, ErrOutOfOrderSequence) {
		t.Errorf("restored table treats evicted batch as %v", err)
	}
	if _, _, err := got.Check(batch(3, 0, 3, 1, 0)); err != nil {
		t.Errorf("restored wrapped sequence: %v", err)
	}
	if epoch, seq, ok := got.Producer(1 << 40); !ok || epoch != -1 || seq != 17 {
		t.Errorf("restored producer 1<<40 = %d, %d, %v", epoch, seq, ok)
	}
	got.Expire(1000+DefaultProducerIDExpirationMs, DefaultProducerIDExpirationMs)
	if got.Len() != 0 {
		t.Error("restored last-update time lost")
	}
}

// TestSnapshotGolden pins the byte layout documented in the package doc.
func TestSnapshotGolden(t *testing.T) {
	tab := New()
	tab.Update(batch(5, 1, 7, 2, 40), 0x0102)
	b, _ := tab.MarshalBinary()
	want := "53425053" + "0001" + "00000001" + // magic, version, count
		"0000000000000005" + "0001" + "0000000000000102" + "01" + // id, epoch, lastUpdateMs, batches
		"00000007" + "00000008" + "0000000000000028" + "0000000000000029" // seqs 7-8, offsets 40-41
	body, _ := hex.DecodeString(want)
	want += hex.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.Checksum(body, castagnoli)))
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("snapshot\n got %s\nwant %s", got, want)
	}
}

// reseal recomputes the CRC so a test can reach the checks behind it.
func reseal(b []byte) []byte {
	body := b[:len(b)-crcLen]
	return binary.BigEndian.AppendUint32(append([]byte(nil), body...), crc32.Checksum(body, castagnoli))
}

func TestSnapshotCorrupt(t *testing.T) {
	good, _ := sample(t).MarshalBinary()
	check := func(name string, b []byte) {
		t.Helper()
		tab := sample(t)
		err := tab.UnmarshalBinary(b)
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("%s: err = %v, want ErrCorruptSnapshot", name, err)
		}
		if after, _ := tab.MarshalBinary(); !bytes.Equal(after, good) {
			t.Errorf("%s: failed Unmarshal changed the table", name)
		}
	}
	for n := range len(good) {
		check("truncated", good[:n])
	}
	for i := range good {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		check("bit flip", b)
	}
	check("trailing byte", reseal(append(bytes.Clone(good), 0, 0, 0, 0, 0)))

	// Structural damage behind a valid CRC. Offsets follow the package doc:
	// the first entry (producer 3, one batch) starts at 10.
	mutate := func(name string, f func(b []byte)) {
		t.Helper()
		b := bytes.Clone(good)
		f(b)
		check(name, reseal(b))
	}
	mutate("version", func(b []byte) { b[5] = 2 })
	mutate("magic", func(b []byte) { b[0] = 'X' })
	mutate("huge count", func(b []byte) { binary.BigEndian.PutUint32(b[6:], math.MaxUint32) })
	mutate("count one too many", func(b []byte) { binary.BigEndian.PutUint32(b[6:], 4) })
	mutate("count one too few", func(b []byte) { binary.BigEndian.PutUint32(b[6:], 2) })
	mutate("negative id", func(b []byte) { binary.BigEndian.PutUint64(b[10:], math.MaxUint64) })
	mutate("ids out of order", func(b []byte) { binary.BigEndian.PutUint64(b[10:], 11) })
	mutate("duplicate id", func(b []byte) { binary.BigEndian.PutUint64(b[10:], 10) })
	mutate("zero batches", func(b []byte) { b[28] = 0 })
	mutate("six batches", func(b []byte) { b[28] = 6 })
	mutate("negative first seq", func(b []byte) { binary.BigEndian.PutUint32(b[29:], math.MaxUint32) })
	mutate("inconsistent last seq", func(b []byte) { binary.BigEndian.PutUint32(b[33:], 3) })
	mutate("negative base offset", func(b []byte) { binary.BigEndian.PutUint64(b[37:], math.MaxUint64) })
	mutate("last offset below base", func(b []byte) { binary.BigEndian.PutUint64(b[45:], 199) })
	mutate("delta beyond int32", func(b []byte) { binary.BigEndian.PutUint64(b[45:], 200+math.MaxInt32+1) })
}

func TestSnapshotCountBoundBeforeAllocation(t *testing.T) {
	// A header claiming 2^32-1 producers with no entries must fail at once,
	// not allocate a map for them.
	b := binary.BigEndian.AppendUint32([]byte("SBPS\x00\x01"), math.MaxUint32)
	b = reseal(append(b, 0, 0, 0, 0))
	allocs := testing.AllocsPerRun(10, func() {
		if err := New().UnmarshalBinary(b); err == nil {
			t.Fatal("accepted")
		}
	})
	if allocs > 20 {
		t.Errorf("%v allocations for a rejected header", allocs)
	}
}
