package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Cross-checks against franz-go, an independent implementation of the same
// format: batches it encodes (and compresses with its own compressors) must
// decode here, and batches built here must decode in its consumer path.

var kgoCodecs = map[Codec]kgo.CompressionCodec{
	CodecGzip:   kgo.GzipCompression(),
	CodecSnappy: kgo.SnappyCompression(),
	CodecLZ4:    kgo.Lz4Compression(),
	CodecZstd:   kgo.ZstdCompression(),
}

// kmsgBatch encodes recs the way kgo's producer does.
func kmsgBatch(t *testing.T, h Header, recs []Record, c Codec) []byte {
	t.Helper()
	var raw []byte
	for _, r := range recs {
		kr := kmsg.Record{
			Attributes:       r.Attributes,
			TimestampDelta64: r.TimestampDelta,
			OffsetDelta:      r.OffsetDelta,
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, hd := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: hd.Key, Value: hd.Value})
		}
		// kmsg writes Length as given: size the body with a 1-byte
		// zero length first.
		kr.Length = int32(len(kr.AppendTo(nil)) - 1)
		raw = kr.AppendTo(raw)
	}
	// Like kgo, maxTimestamp is the largest record timestamp.
	maxTS := h.BaseTimestamp
	for i, r := range recs {
		if i == 0 || h.BaseTimestamp+r.TimestampDelta > maxTS {
			maxTS = h.BaseTimestamp + r.TimestampDelta
		}
	}
	attrs := h.Attributes &^ CodecMask
	if c != CodecNone {
		comp, err := kgo.DefaultCompressor(kgoCodecs[c])
		if err != nil {
			t.Fatal(err)
		}
		out, used := comp.Compress(new(bytes.Buffer), raw)
		if used != kgo.CompressionCodecType(c) {
			t.Fatalf("kgo compressed with %v, want %v", used, c)
		}
		raw = bytes.Clone(out)
		attrs |= int16(c)
	}
	kb := kmsg.RecordBatch{
		FirstOffset:          h.BaseOffset,
		Length:               int32(HeaderSize - LogOverhead + len(raw)),
		PartitionLeaderEpoch: h.PartitionLeaderEpoch,
		Magic:                2,
		Attributes:           attrs,
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       h.BaseTimestamp,
		MaxTimestamp:         maxTS,
		ProducerID:           h.ProducerID,
		ProducerEpoch:        h.ProducerEpoch,
		FirstSequence:        h.BaseSequence,
		NumRecords:           int32(len(recs)),
		Records:              raw,
	}
	b := kb.AppendTo(nil)
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return b
}

func TestDecodeFranzBatches(t *testing.T) {
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			h := sampleHeader()
			want := sampleRecords(100, 5)
			b := kmsgBatch(t, h, want, c)
			got, err := Validate(b)
			if err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got.Codec() != c || got.NumRecords != 100 || got.BaseSequence != h.BaseSequence {
				t.Fatalf("header %+v", got)
			}
			recs, err := Records(b, 1<<20)
			if err != nil {
				t.Fatalf("Records: %v", err)
			}
			recordsEqual(t, recs, want)
			// Re-encoding the decoded records reproduces franz-go's
			// uncompressed bytes exactly.
			if c == CodecNone {
				h.LastOffsetDelta = got.LastOffsetDelta
				h.MaxTimestamp = got.MaxTimestamp
				if again := mustBuild(t, h, recs, CodecNone); !bytes.Equal(again, b) {
					t.Fatal("Build of franz-go's records differs from franz-go's batch")
				}
			}
		})
	}
}

func TestFranzDecodesBuild(t *testing.T) {
	for _, c := range allCodecs {
		t.Run(c.String(), func(t *testing.T) {
			h := sampleHeader()
			want := sampleRecords(100, 6)
			b := mustBuild(t, h, want, c)

			var kb kmsg.RecordBatch
			if err := kb.ReadFrom(b); err != nil {
				t.Fatalf("kmsg ReadFrom: %v", err)
			}
			if int(kb.Length) != len(b)-LogOverhead || kb.NumRecords != 100 || kb.LastOffsetDelta != 99 ||
				kb.Attributes&CodecMask != int16(c) || kb.FirstSequence != h.BaseSequence {
				t.Fatalf("kmsg header %+v", kb)
			}
			if uint32(kb.CRC) != crc32.Checksum(b[offAttributes:], castagnoli) {
				t.Fatal("CRC mismatch")
			}

			fp := fetchWithKgo(t, b)
			if fp.Err != nil {
				t.Fatalf("kgo: %v", fp.Err)
			}
			if len(fp.Records) != len(want) {
				t.Fatalf("kgo decoded %d records, want %d", len(fp.Records), len(want))
			}
			for i, kr := range fp.Records {
				w := &want[i]
				if kr.Offset != h.BaseOffset+int64(w.OffsetDelta) ||
					kr.Timestamp.UnixMilli() != h.BaseTimestamp+w.TimestampDelta ||
					!bytes.Equal(kr.Key, w.Key) || !bytes.Equal(kr.Value, w.Value) ||
					(kr.Value == nil) != (w.Value == nil) || len(kr.Headers) != len(w.Headers) ||
					kr.ProducerID != h.ProducerID || kr.LeaderEpoch != h.PartitionLeaderEpoch {
					t.Fatalf("record %d: kgo %+v, want %+v", i, kr, w)
				}
				for j, hd := range kr.Headers {
					if hd.Key != w.Headers[j].Key || !bytes.Equal(hd.Value, w.Headers[j].Value) {
						t.Fatalf("record %d header %d: %+v", i, j, hd)
					}
				}
			}
		})
	}
}

// kgo must also notice the corruptions Validate notices.
func TestFranzAgreesOnCorruptCRC(t *testing.T) {
	b := mustBuild(t, sampleHeader(), sampleRecords(3, 1), CodecZstd)
	b[len(b)-1] ^= 1
	if _, err := Validate(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Validate: %v", err)
	}
	if fp := fetchWithKgo(t, b); fp.Err == nil {
		t.Fatalf("kgo accepted a batch with a bad CRC (%d records)", len(fp.Records))
	}
}

func fetchWithKgo(t *testing.T, batches []byte) kgo.FetchPartition {
	t.Helper()
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.HighWatermark = 1 << 40
	rp.LastStableOffset = 1 << 40
	rp.RecordBatches = batches
	fp, _ := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{Topic: "t"}, &rp, kgo.DefaultDecompressor(), nil)
	return fp
}
