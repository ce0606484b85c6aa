package storage

import (
	"bytes"
	"errors"
	"testing"
)

func TestCheckpointRoundTripAndCorruption(t *testing.T) {
	b := encodeCheckpoint(ckKindRecoveryPoint, putInt64s(1, 2, 3))
	p, err := decodeCheckpoint(ckKindRecoveryPoint, b)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := getInt64s(p, 3); v[0] != 1 || v[1] != 2 || v[2] != 3 {
		t.Fatalf("payload %v", v)
	}
	if _, err := decodeCheckpoint(ckKindLogStart, b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("wrong kind accepted: %v", err)
	}
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := decodeCheckpoint(ckKindRecoveryPoint, c); err == nil {
			t.Fatalf("flipped byte %d accepted", i)
		}
	}
	if _, err := decodeCheckpoint(ckKindRecoveryPoint, b[:len(b)-1]); err == nil {
		t.Fatal("truncated checkpoint accepted")
	}
	es := []epochEntry{{0, 0}, {3, 10}, {4, 10}}
	got, err := decodeEpochs(encodeEpochs(es))
	if err != nil || len(got) != 3 || got[1] != es[1] {
		t.Fatalf("epochs %v %v", got, err)
	}
	if _, err := decodeEpochs(encodeEpochs([]epochEntry{{3, 10}, {2, 11}})); err == nil {
		t.Fatal("non-monotonic epochs accepted")
	}
}

func TestEpochTruncation(t *testing.T) {
	es := []epochEntry{{1, 0}, {2, 10}, {5, 20}}
	if got, _ := epochsTruncateEnd(es, 10); len(got) != 1 {
		t.Fatalf("truncate end 10: %v", got)
	}
	got, changed := epochsTruncateStart(es, 15)
	if !changed || len(got) != 2 || got[0] != (epochEntry{2, 15}) {
		t.Fatalf("truncate start 15: %v", got)
	}
	if _, changed := epochsTruncateStart(es, 0); changed {
		t.Fatal("no-op start truncation reported a change")
	}
}

// FuzzCheckpoint decodes arbitrary bytes as every checkpoint kind: it
// must not panic, and what decodes must re-encode to the same bytes.
func FuzzCheckpoint(f *testing.F) {
	f.Add(encodeCheckpoint(ckKindRecoveryPoint, putInt64s(1, 2, 3)))
	f.Add(encodeCheckpoint(ckKindLeaderEpoch, encodeEpochs([]epochEntry{{1, 0}, {2, 5}})))
	f.Add(encodeCheckpoint(ckKindLogStart, putInt64s(7)))
	f.Add([]byte("SBCK\x01\x03\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []byte{ckKindLogStart, ckKindRecoveryPoint, ckKindLeaderEpoch, ckKindCleanShutdown} {
			p, err := decodeCheckpoint(kind, b)
			if err != nil {
				continue
			}
			if !bytes.Equal(encodeCheckpoint(kind, p), b) {
				t.Fatal("checkpoint does not re-encode to its bytes")
			}
			if kind == ckKindLeaderEpoch {
				if es, err := decodeEpochs(p); err == nil && !bytes.Equal(encodeEpochs(es), p) {
					t.Fatal("epochs do not re-encode")
				}
			}
			getInt64s(p, 3)
		}
	})
}
