package recordbatch

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// nullableBytes draws nil, empty or some bytes.
func nullableBytesGen(max int) *rapid.Generator[[]byte] {
	return rapid.Custom(func(t *rapid.T) []byte {
		switch rapid.IntRange(0, 4).Draw(t, "kind") {
		case 0:
			return nil
		case 1:
			return []byte{}
		}
		return rapid.SliceOfN(rapid.Byte(), 1, max).Draw(t, "bytes")
	})
}

func recordsGen() *rapid.Generator[[]Record] {
	return rapid.Custom(func(t *rapid.T) []Record {
		n := rapid.IntRange(0, 30).Draw(t, "n")
		recs := make([]Record, n)
		delta := int32(-1)
		for i := range recs {
			delta += rapid.Int32Range(1, 1000).Draw(t, "gap")
			r := &recs[i]
			r.OffsetDelta = delta
			r.Attributes = rapid.Int8().Draw(t, "attrs")
			r.TimestampDelta = rapid.Int64().Draw(t, "ts")
			r.Key = nullableBytesGen(40).Draw(t, "key")
			r.Value = nullableBytesGen(300).Draw(t, "value")
			for range rapid.IntRange(0, 3).Draw(t, "headers") {
				r.Headers = append(r.Headers, RecordHeader{
					Key:   rapid.String().Draw(t, "hkey"),
					Value: nullableBytesGen(20).Draw(t, "hvalue"),
				})
			}
		}
		return recs
	})
}

// Build then Records is the identity on records, preserves the header fields
// Build takes from its input, and yields a batch Validate and Split accept.
func TestPropertyBuildDecode(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		h := Header{
			BaseOffset:           rapid.Int64Range(0, 1<<50).Draw(t, "baseOffset"),
			PartitionLeaderEpoch: rapid.Int32().Draw(t, "epoch"),
			Attributes:           rapid.SampledFrom([]int16{0, TransactionalBit, TimestampTypeBit, ControlBit | TransactionalBit}).Draw(t, "attrs"),
			BaseTimestamp:        rapid.Int64Range(-1, 1<<45).Draw(t, "baseTS"),
			MaxTimestamp:         rapid.Int64Range(-1, 1<<45).Draw(t, "maxTS"),
			ProducerID:           rapid.Int64Range(-1, 1<<40).Draw(t, "pid"),
			ProducerEpoch:        rapid.Int16().Draw(t, "pepoch"),
			BaseSequence:         rapid.Int32Range(-1, 1<<31-1).Draw(t, "seq"),
		}
		recs := recordsGen().Draw(t, "records")
		c := rapid.SampledFrom(allCodecs).Draw(t, "codec")

		b, err := Build(h, recs, c)
		if err != nil {
			t.Fatalf("Build: %v", err)
		}
		got, err := Validate(b)
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if got.BaseOffset != h.BaseOffset || got.PartitionLeaderEpoch != h.PartitionLeaderEpoch ||
			got.Attributes != h.Attributes|int16(c) || got.BaseTimestamp != h.BaseTimestamp ||
			got.ProducerID != h.ProducerID || got.ProducerEpoch != h.ProducerEpoch ||
			got.BaseSequence != h.BaseSequence || got.NumRecords != int32(len(recs)) {
			t.Fatalf("header %+v from %+v", got, h)
		}
		if len(recs) > 0 && got.LastOffsetDelta != recs[len(recs)-1].OffsetDelta {
			t.Fatalf("LastOffsetDelta %d", got.LastOffsetDelta)
		}
		if got.MaxTimestamp < h.MaxTimestamp {
			t.Fatalf("MaxTimestamp lowered from %d to %d", h.MaxTimestamp, got.MaxTimestamp)
		}
		dec, err := Records(b, len(b)*2+1<<16)
		if err != nil {
			t.Fatalf("Records: %v", err)
		}
		recordsEqual(t, dec, recs)
		if parts, err := Split(append(bytes.Clone(b), b...)); err != nil || len(parts) != 2 {
			t.Fatalf("Split: %d parts, %v", len(parts), err)
		}
		// Re-encoding the decoded records reproduces the batch.
		h2 := got
		if again, err := Build(h2, dec, c); err != nil || (c == CodecNone && !bytes.Equal(again, b)) {
			t.Fatalf("rebuild: equal %v, %v", bytes.Equal(again, b), err)
		}
	})
}

// Compress then Decompress is the identity for every codec.
func TestPropertyCodecRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := rapid.SampledFrom(allCodecs).Draw(t, "codec")
		// Repetitive data exercises back-references; raw bytes the rest.
		unit := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "unit")
		in := bytes.Repeat(unit, rapid.IntRange(0, 2000).Draw(t, "repeat"))
		in = append(in, rapid.SliceOfN(rapid.Byte(), 0, 512).Draw(t, "tail")...)
		comp, err := Compress(c, in, nil)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Decompress(c, comp, nil, len(in))
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("round trip: equal %v, %v", bytes.Equal(out, in), err)
		}
	})
}
