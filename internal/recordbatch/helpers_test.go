package recordbatch

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

var allCodecs = []Codec{CodecNone, CodecGzip, CodecSnappy, CodecLZ4, CodecZstd}

// sampleRecords returns n deterministic records covering null and empty keys
// and values, headers with null values, and negative timestamp deltas.
func sampleRecords(n int, seed uint64) []Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]Record, n)
	for i := range out {
		r := &out[i]
		r.OffsetDelta = int32(i)
		r.TimestampDelta = int64(rng.IntN(10000)) - 100
		switch i % 4 {
		case 0:
			r.Key = nil
		case 1:
			r.Key = []byte{}
		default:
			r.Key = fmt.Appendf(nil, "key-%d", rng.IntN(50))
		}
		if i%7 == 3 {
			r.Value = nil // tombstone
		} else {
			r.Value = bytes.Repeat(fmt.Appendf(nil, "value %d ", i), 1+rng.IntN(20))
		}
		for h := range i % 3 {
			var v []byte
			if h != 1 {
				v = fmt.Appendf(nil, "hv%d", h)
			}
			r.Headers = append(r.Headers, RecordHeader{Key: fmt.Sprintf("h%d", h), Value: v})
		}
	}
	return out
}

func sampleHeader() Header {
	return Header{
		BaseOffset:           1000,
		PartitionLeaderEpoch: 7,
		BaseTimestamp:        1_700_000_000_000,
		MaxTimestamp:         -1,
		ProducerID:           42,
		ProducerEpoch:        3,
		BaseSequence:         10,
	}
}

func mustBuild(t testing.TB, h Header, recs []Record, c Codec) []byte {
	t.Helper()
	b, err := Build(h, recs, c)
	if err != nil {
		t.Fatalf("Build(%v): %v", c, err)
	}
	return b
}

// fataler is what the comparison helpers need of testing.TB and *rapid.T.
type fataler interface {
	Helper()
	Fatalf(format string, args ...any)
}

// recordsEqual compares records, distinguishing nil (null) from empty.
func recordsEqual(t fataler, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := &got[i], &want[i]
		if g.Attributes != w.Attributes || g.TimestampDelta != w.TimestampDelta || g.OffsetDelta != w.OffsetDelta {
			t.Fatalf("record %d: got %+v, want %+v", i, *g, *w)
		}
		bytesEqual(t, fmt.Sprintf("record %d key", i), g.Key, w.Key)
		bytesEqual(t, fmt.Sprintf("record %d value", i), g.Value, w.Value)
		if len(g.Headers) != len(w.Headers) {
			t.Fatalf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
		}
		for j := range w.Headers {
			if g.Headers[j].Key != w.Headers[j].Key {
				t.Fatalf("record %d header %d key %q, want %q", i, j, g.Headers[j].Key, w.Headers[j].Key)
			}
			bytesEqual(t, fmt.Sprintf("record %d header %d value", i, j), g.Headers[j].Value, w.Headers[j].Value)
		}
	}
}

func bytesEqual(t fataler, what string, got, want []byte) {
	t.Helper()
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
		t.Fatalf("%s: got %q (nil %v), want %q (nil %v)", what, got, got == nil, want, want == nil)
	}
}
