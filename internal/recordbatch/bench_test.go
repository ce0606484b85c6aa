package recordbatch

import (
	"testing"
)

// benchRecords returns about size bytes of realistic records: short keys,
// JSON-ish values that compress a few times over.
func benchRecords(size int) []Record {
	var recs []Record
	for total := 0; total < size; {
		rs := sampleRecords(1, uint64(len(recs)))
		rs[0].OffsetDelta = int32(len(recs))
		recs = append(recs, rs[0])
		total += len(rs[0].Key) + len(rs[0].Value) + 10
	}
	return recs
}

func BenchmarkValidate(b *testing.B) {
	batch := mustBuild(b, sampleHeader(), benchRecords(16<<10), CodecNone)
	b.SetBytes(int64(len(batch)))
	for b.Loop() {
		if _, err := Validate(batch); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecompress(b *testing.B) {
	raw := mustBuild(b, sampleHeader(), benchRecords(64<<10), CodecNone)[HeaderSize:]
	for _, c := range allCodecs {
		comp, err := Compress(c, raw, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportMetric(float64(len(raw))/float64(len(comp)), "ratio")
			dst := make([]byte, 0, len(raw))
			for b.Loop() {
				if _, err := Decompress(c, comp, dst[:0], 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCompress(b *testing.B) {
	raw := mustBuild(b, sampleHeader(), benchRecords(64<<10), CodecNone)[HeaderSize:]
	for _, c := range allCodecs {
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			dst := make([]byte, 0, 2*len(raw))
			for b.Loop() {
				if _, err := Compress(c, raw, dst[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkForEachRecord is the compaction scan: decompress and walk the
// records of a 64 KiB batch without keeping them.
func BenchmarkForEachRecord(b *testing.B) {
	for _, c := range []Codec{CodecNone, CodecZstd} {
		batch := mustBuild(b, sampleHeader(), benchRecords(64<<10), c)
		b.Run(c.String(), func(b *testing.B) {
			b.SetBytes(int64(len(batch)))
			for b.Loop() {
				n := 0
				if err := ForEachRecord(batch, 1<<20, func(r *Record) error { n += len(r.Key); return nil }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
