package recordbatch

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// Builder encodes records into a new, complete batch: log compaction uses it
// to rewrite the records it keeps (feeding it from ForEachRecord), tests use
// it to make batches. A Builder is not safe for concurrent use; its zero
// value is not ready, use NewBuilder (or Reset).
type Builder struct {
	h          Header
	codec      Codec
	records    []byte // encoded records, before compression
	n          int64  // records added
	lastDelta  int32  // offset delta of the last record added
	maxTSDelta int64  // largest timestamp delta added
	err        error  // first error from Add, reported again by Finish
}

// NewBuilder returns a Builder for a batch with the header fields of h,
// compressed with codec. See Finish for which fields are taken from h.
func NewBuilder(h Header, codec Codec) *Builder {
	b := new(Builder)
	b.Reset(h, codec)
	return b
}

// Reset discards the records added so far and starts a new batch, keeping
// the Builder's buffer.
func (b *Builder) Reset(h Header, codec Codec) {
	*b = Builder{h: h, codec: codec, records: b.records[:0], lastDelta: -1}
}

// NumRecords is the number of records added since the last Reset.
func (b *Builder) NumRecords() int { return int(b.n) }

// Add appends a copy of r's encoding. Offset deltas must be non-negative
// and strictly increasing, as Kafka requires within a batch (compaction
// keeps a subsequence, which still increases). The error, if any, is
// sticky: Finish reports it too.
func (b *Builder) Add(r *Record) error {
	if b.err != nil {
		return b.err
	}
	if r.OffsetDelta < 0 || r.OffsetDelta <= b.lastDelta {
		b.err = fmt.Errorf("recordbatch: build: offset delta %d after %d", r.OffsetDelta, b.lastDelta)
		return b.err
	}
	size := recordBodySize(r)
	if size > math.MaxInt32 || b.n == math.MaxInt32 {
		b.err = fmt.Errorf("recordbatch: build: record %d too large (%d bytes)", b.n, size)
		return b.err
	}
	b.records = binary.AppendVarint(b.records, size)
	b.records = append(b.records, byte(r.Attributes))
	b.records = binary.AppendVarint(b.records, r.TimestampDelta)
	b.records = binary.AppendVarint(b.records, int64(r.OffsetDelta))
	b.records = appendNullable(b.records, r.Key)
	b.records = appendNullable(b.records, r.Value)
	b.records = binary.AppendVarint(b.records, int64(len(r.Headers)))
	for i := range r.Headers {
		hd := &r.Headers[i]
		b.records = binary.AppendVarint(b.records, int64(len(hd.Key)))
		b.records = append(b.records, hd.Key...)
		b.records = appendNullable(b.records, hd.Value)
	}
	b.n++
	b.lastDelta = r.OffsetDelta
	if b.n == 1 || r.TimestampDelta > b.maxTSDelta {
		b.maxTSDelta = r.TimestampDelta
	}
	return nil
}

// Finish appends the complete batch to dst and returns it. The Builder is
// unchanged, so Finish may be called again.
//
// Taken from the Header given to NewBuilder: BaseOffset,
// PartitionLeaderEpoch, the attributes other than the codec bits,
// BaseTimestamp, ProducerID, ProducerEpoch and BaseSequence. Computed:
// Length, Magic (2), CRC, NumRecords, and the codec bits. LastOffsetDelta is
// the larger of h's and the last record's, so a compacted batch keeps the
// offset range (and so the producer's last sequence) of the original, as
// Kafka's cleaner does; an empty batch is allowed for the same reason.
// MaxTimestamp is h's, raised to the largest record timestamp for
// CreateTime batches so that it is never below a record's timestamp.
//
// Finish fails if Add failed, if the codec or attributes are unknown, or if
// the batch would exceed the int32 length field.
func (b *Builder) Finish(dst []byte) ([]byte, error) {
	if b.err != nil {
		return nil, b.err
	}
	if b.codec < CodecNone || b.codec > maxSupportedCodec {
		return nil, fmt.Errorf("recordbatch: build: unknown codec %d", int8(b.codec))
	}
	attrs := b.h.Attributes&^CodecMask | int16(b.codec)
	if attrs&^supportedAttrMask != 0 {
		return nil, fmt.Errorf("recordbatch: build: unknown attributes %#x", attrs)
	}
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	var err error
	if dst, err = Compress(b.codec, b.records, dst); err != nil {
		return nil, fmt.Errorf("recordbatch: build: %w", err)
	}
	batch := dst[start:]
	if int64(len(batch))-LogOverhead > math.MaxInt32 {
		return nil, fmt.Errorf("recordbatch: build: batch of %d bytes exceeds the length field", len(batch))
	}
	maxTS := b.h.MaxTimestamp
	if b.n > 0 && b.h.Attributes&TimestampTypeBit == 0 {
		maxTS = max(maxTS, b.h.BaseTimestamp+b.maxTSDelta)
	}
	be := binary.BigEndian
	be.PutUint64(batch[0:], uint64(b.h.BaseOffset))
	be.PutUint32(batch[offLength:], uint32(len(batch)-LogOverhead))
	be.PutUint32(batch[offLeaderEpoch:], uint32(b.h.PartitionLeaderEpoch))
	batch[offMagic] = 2
	be.PutUint16(batch[offAttributes:], uint16(attrs))
	be.PutUint32(batch[offLastDelta:], uint32(max(b.h.LastOffsetDelta, b.lastDelta, 0)))
	be.PutUint64(batch[offBaseTS:], uint64(b.h.BaseTimestamp))
	be.PutUint64(batch[offMaxTS:], uint64(maxTS))
	be.PutUint64(batch[offProducerID:], uint64(b.h.ProducerID))
	be.PutUint16(batch[offEpoch:], uint16(b.h.ProducerEpoch))
	be.PutUint32(batch[offBaseSeq:], uint32(b.h.BaseSequence))
	be.PutUint32(batch[offCount:], uint32(b.n))
	UpdateCRC(batch)
	return dst, nil
}

// Build encodes records into one complete batch; see Builder.Finish for how
// the header is filled in. It round-trips with Records.
func Build(h Header, records []Record, codec Codec) ([]byte, error) {
	b := NewBuilder(h, codec)
	for i := range records {
		if err := b.Add(&records[i]); err != nil {
			return nil, err
		}
	}
	return b.Finish(nil)
}

// recordBodySize is the encoded size of r after its length field.
func recordBodySize(r *Record) int64 {
	n := 1 + varintLen(r.TimestampDelta) + varintLen(int64(r.OffsetDelta)) +
		nullableLen(r.Key) + nullableLen(r.Value) + varintLen(int64(len(r.Headers)))
	for i := range r.Headers {
		n += varintLen(int64(len(r.Headers[i].Key))) + int64(len(r.Headers[i].Key)) +
			nullableLen(r.Headers[i].Value)
	}
	return n
}

// varintLen is the size of x as a zigzag varint.
func varintLen(x int64) int64 {
	u := uint64(x<<1) ^ uint64(x>>63)
	return int64(bits.Len64(u|1)+6) / 7
}

func nullableLen(b []byte) int64 {
	if b == nil {
		return 1 // -1
	}
	return varintLen(int64(len(b))) + int64(len(b))
}

func appendNullable(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}
