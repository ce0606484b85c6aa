package recordbatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"
)

func TestBuildRecordsRoundTrip(t *testing.T) {
	for _, c := range allCodecs {
		for _, n := range []int{0, 1, 3, 200} {
			t.Run(fmt.Sprintf("%v/%d", c, n), func(t *testing.T) {
				h := sampleHeader()
				h.Attributes = TransactionalBit
				want := sampleRecords(n, uint64(n))
				b := mustBuild(t, h, want, c)
				got, err := Validate(b)
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if got.Codec() != c || !got.IsTransactional() || got.NumRecords != int32(n) ||
					got.BaseOffset != h.BaseOffset || got.PartitionLeaderEpoch != h.PartitionLeaderEpoch ||
					got.ProducerID != h.ProducerID || got.ProducerEpoch != h.ProducerEpoch ||
					got.BaseSequence != h.BaseSequence || got.BaseTimestamp != h.BaseTimestamp {
					t.Fatalf("header %+v from %+v", got, h)
				}
				if n > 0 && got.LastOffsetDelta != int32(n-1) {
					t.Fatalf("LastOffsetDelta %d, want %d", got.LastOffsetDelta, n-1)
				}
				recs, err := Records(b, 1<<20)
				if err != nil {
					t.Fatalf("Records: %v", err)
				}
				recordsEqual(t, recs, want)
				var seen []Record
				err = ForEachRecord(b, 1<<20, func(r *Record) error {
					cp := *r
					cp.Key, cp.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
					cp.Headers = nil
					for _, hd := range r.Headers {
						cp.Headers = append(cp.Headers, RecordHeader{hd.Key, bytes.Clone(hd.Value)})
					}
					seen = append(seen, cp)
					return nil
				})
				if err != nil {
					t.Fatalf("ForEachRecord: %v", err)
				}
				recordsEqual(t, seen, want)
			})
		}
	}
}

func TestBuildHeaderRules(t *testing.T) {
	h := sampleHeader()
	h.MaxTimestamp = h.BaseTimestamp + 5
	recs := []Record{{OffsetDelta: 2, TimestampDelta: 100}, {OffsetDelta: 5, TimestampDelta: 3}}

	// MaxTimestamp is raised to the largest record timestamp under CreateTime...
	got, err := Validate(mustBuild(t, h, recs, CodecNone))
	if err != nil || got.MaxTimestamp != h.BaseTimestamp+100 || got.LastOffsetDelta != 5 {
		t.Fatalf("CreateTime: %+v, %v", got, err)
	}
	// ...but kept under LogAppendTime.
	h.Attributes = TimestampTypeBit
	if got, _ = Validate(mustBuild(t, h, recs, CodecNone)); got.MaxTimestamp != h.MaxTimestamp {
		t.Fatalf("LogAppendTime max timestamp %d, want %d", got.MaxTimestamp, h.MaxTimestamp)
	}
	// A compacted batch keeps its original offset range, even when empty.
	h.LastOffsetDelta = 9
	if got, _ = Validate(mustBuild(t, h, recs, CodecNone)); got.LastOffsetDelta != 9 {
		t.Fatalf("compacted LastOffsetDelta %d, want 9", got.LastOffsetDelta)
	}
	if got, err = Validate(mustBuild(t, h, nil, CodecZstd)); err != nil || got.LastOffsetDelta != 9 || got.NumRecords != 0 {
		t.Fatalf("empty batch: %+v, %v", got, err)
	}
	// The codec argument replaces the header's codec bits.
	h.Attributes = int16(CodecGzip)
	if got, _ = Validate(mustBuild(t, h, recs, CodecLZ4)); got.Codec() != CodecLZ4 {
		t.Fatalf("codec %v, want lz4", got.Codec())
	}

	bad := []struct {
		name  string
		h     Header
		recs  []Record
		codec Codec
	}{
		{"decreasing deltas", sampleHeader(), []Record{{OffsetDelta: 3}, {OffsetDelta: 3}}, CodecNone},
		{"negative delta", sampleHeader(), []Record{{OffsetDelta: -1}}, CodecNone},
		{"unknown codec", sampleHeader(), nil, Codec(5)},
		{"unknown attributes", Header{Attributes: 0x100}, nil, CodecNone},
	}
	for _, tc := range bad {
		if _, err := Build(tc.h, tc.recs, tc.codec); err == nil {
			t.Errorf("%s: Build succeeded", tc.name)
		}
	}
}

// The Builder can be reused and fed from ForEachRecord, as compaction does.
func TestBuilderCompactionRewrite(t *testing.T) {
	h := sampleHeader()
	src := mustBuild(t, h, sampleRecords(50, 9), CodecSnappy)
	srcHdr, _ := Validate(src)
	b := NewBuilder(h, CodecNone) // deliberately different, then Reset
	b.Reset(srcHdr, CodecZstd)
	var kept []Record
	err := ForEachRecord(src, 1<<20, func(r *Record) error {
		if r.OffsetDelta%3 != 0 {
			return nil
		}
		cp := *r
		cp.Key, cp.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
		cp.Headers = append([]RecordHeader(nil), r.Headers...)
		kept = append(kept, cp)
		return b.Add(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := b.Finish(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Validate(out)
	if err != nil || got.LastOffsetDelta != 49 || got.NumRecords != int32(len(kept)) || got.Codec() != CodecZstd {
		t.Fatalf("rewritten header %+v, %v", got, err)
	}
	recs, err := Records(out, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	recordsEqual(t, recs, kept)
}

func TestForEachRecordStopsOnError(t *testing.T) {
	b := mustBuild(t, sampleHeader(), sampleRecords(10, 1), CodecGzip)
	stop := errors.New("stop")
	calls := 0
	err := ForEachRecord(b, 1<<20, func(*Record) error {
		calls++
		if calls == 4 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 4 {
		t.Fatalf("err %v after %d calls, want stop after 4", err, calls)
	}
}

func TestValidateCRC(t *testing.T) {
	b := mustBuild(t, sampleHeader(), sampleRecords(5, 2), CodecNone)
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 0x01
		_, err := Validate(bad)
		if i < offCRC && i != offMagic && (i < offLength || i >= offLeaderEpoch) {
			// baseOffset and leader epoch are outside the CRC.
			if err != nil {
				t.Fatalf("flip at %d (outside CRC): %v", i, err)
			}
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("flip at %d: got %v, want ErrCorrupt", i, err)
		}
	}
}

func TestTruncated(t *testing.T) {
	for _, c := range allCodecs {
		b := mustBuild(t, sampleHeader(), sampleRecords(20, 3), c)
		for n := range len(b) {
			if _, err := Validate(b[:n]); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: Validate of %d/%d bytes: %v", c, n, len(b), err)
			}
			if _, err := Records(b[:n], 1<<20); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: Records of %d/%d bytes: %v", c, n, len(b), err)
			}
			if _, err := Split(b[:n]); n > 0 && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("%v: Split of %d/%d bytes: %v", c, n, len(b), err)
			}
		}
	}
}

// rawBatch assembles a batch whose records section is body (compressed with
// c) and whose record count is count, with a correct length and CRC, so that
// only the records themselves lie.
func rawBatch(t *testing.T, c Codec, body []byte, count int32) []byte {
	t.Helper()
	b := mustBuild(t, sampleHeader(), nil, CodecNone)[:HeaderSize]
	b, err := Compress(c, body, b)
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(b[offLength:], uint32(len(b)-LogOverhead))
	binary.BigEndian.PutUint16(b[offAttributes:], uint16(c))
	binary.BigEndian.PutUint32(b[offLastDelta:], uint32(max(count-1, 0)))
	binary.BigEndian.PutUint32(b[offCount:], uint32(count))
	UpdateCRC(b)
	if _, err := Validate(b); err != nil {
		t.Fatalf("rawBatch is not a valid batch: %v", err)
	}
	return b
}

func varint(x int64) []byte { return binary.AppendVarint(nil, x) }

func TestLyingRecords(t *testing.T) {
	one := mustBuild(t, Header{}, []Record{{Key: []byte("k"), Value: []byte("v")}}, CodecNone)[HeaderSize:]
	// one: len=7 | attr | ts | off | keylen=1 'k' | vallen=1 'v' | hdrs=0
	body := func(fields ...[]byte) []byte {
		inner := bytes.Join(fields, nil)
		return append(varint(int64(len(inner))), inner...)
	}
	cases := []struct {
		name  string
		body  []byte
		count int32
	}{
		{"count one too many", one, 2},
		{"count one too few (trailing bytes)", append(bytes.Clone(one), one...), 1},
		{"count huge", one, math.MaxInt32},
		{"record length past end", append(varint(100), one[1:]...), 1},
		{"negative record length", append(varint(-5), one[1:]...), 1},
		{"record length too long for fields", body([]byte{0, 0, 0}, varint(-1), varint(-1), varint(0), []byte{0}), 1},
		{"key length past end", body([]byte{0, 0, 0}, varint(1000), []byte("k")), 1},
		{"value length past end", body([]byte{0, 0, 0}, varint(-1), varint(1<<30)), 1},
		{"header count huge", body([]byte{0, 0, 0}, varint(-1), varint(-1), varint(math.MaxInt32)), 1},
		{"negative header count", body([]byte{0, 0, 0}, varint(-1), varint(-1), varint(-1)), 1},
		{"null header key", body([]byte{0, 0, 0}, varint(-1), varint(-1), varint(1), varint(-1), varint(-1)), 1},
		{"header value past end", body([]byte{0, 0, 0}, varint(-1), varint(-1), varint(1), varint(0), varint(9)), 1},
		{"varint too long", body([]byte{0, 0}, []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, varint(-1), varint(-1), varint(0)), 1},
		{"varint over 32 bits", body([]byte{0, 0}, []byte{0xff, 0xff, 0xff, 0xff, 0x7f}, varint(-1), varint(-1), varint(0)), 1},
		{"missing attributes", body(), 1},
		{"empty section", nil, 1},
	}
	for _, c := range []Codec{CodecNone, CodecZstd} {
		for _, tc := range cases {
			t.Run(c.String()+"/"+tc.name, func(t *testing.T) {
				b := rawBatch(t, c, tc.body, tc.count)
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				_, err := Records(b, 1<<20)
				runtime.ReadMemStats(&after)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Records: got %v, want ErrCorrupt", err)
				}
				if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 1<<20 {
					t.Fatalf("Records allocated %d bytes for a lying batch", alloc)
				}
				if err := ForEachRecord(b, 1<<20, func(*Record) error { return nil }); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("ForEachRecord: got %v, want ErrCorrupt", err)
				}
			})
		}
	}
	// The well-formed version of the same hand-made body decodes, so the
	// cases above fail for the reason they name.
	ok := body([]byte{0, 0, 0}, varint(-1), varint(2), []byte("hi"), varint(1), varint(1), []byte("h"), varint(-1))
	recs, err := Records(rawBatch(t, CodecNone, ok, 1), 100)
	if err != nil {
		t.Fatal(err)
	}
	recordsEqual(t, recs, []Record{{Value: []byte("hi"), Headers: []RecordHeader{{Key: "h"}}}})
}

func TestRecordsDecompressionBound(t *testing.T) {
	recs := []Record{{Value: bytes.Repeat([]byte{'a'}, 10000)}}
	for _, c := range allCodecs[1:] {
		b := mustBuild(t, Header{}, recs, c)
		if _, err := Records(b, 5000); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%v: got %v, want ErrTooLarge", c, err)
		}
		if _, err := Records(b, 20000); err != nil {
			t.Errorf("%v: %v", c, err)
		}
	}
}

func TestRecordsUnknownCodec(t *testing.T) {
	b := mustBuild(t, Header{}, sampleRecords(2, 1), CodecNone)
	binary.BigEndian.PutUint16(b[offAttributes:], 6)
	if _, err := Records(b, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("got %v, want ErrCorrupt", err)
	}
}

func TestSplitConcatenation(t *testing.T) {
	var all []byte
	var want [][]byte
	for i, c := range allCodecs {
		h := sampleHeader()
		h.BaseOffset = int64(i * 100)
		b := mustBuild(t, h, sampleRecords(i+1, uint64(i)), c)
		want = append(want, b)
		all = append(all, b...)
	}
	got, err := Split(all)
	if err != nil || len(got) != len(want) {
		t.Fatalf("Split: %d batches, %v", len(got), err)
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("batch %d differs", i)
		}
	}
}
