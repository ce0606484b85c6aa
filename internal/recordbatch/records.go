package recordbatch

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
)

// Records of a magic v2 batch. After the 61-byte header come recordCount
// records, compressed together when the codec bits are set. Each record is
// (zigzag varints; "varint" is int32, "varlong" int64):
//
//	varint   length          bytes after this field
//	int8     attributes      unused, 0
//	varlong  timestampDelta  from baseTimestamp
//	varint   offsetDelta     from baseOffset
//	varint   keyLength       -1: null key
//	bytes    key
//	varint   valueLength     -1: null value
//	bytes    value
//	varint   headerCount
//	headers: varint keyLength, key (never null), varint valueLength (-1: null), value

// Record is one decoded record of a batch.
type Record struct {
	Attributes     int8
	TimestampDelta int64
	OffsetDelta    int32
	Key            []byte // nil: null key
	Value          []byte // nil: null value (a tombstone under compaction)
	Headers        []RecordHeader
}

// RecordHeader is one record header. A nil Value is a null header value.
type RecordHeader struct {
	Key   string
	Value []byte
}

// minRecordSize is the smallest encoded record: a one-byte length and six
// one-byte fields (attributes, timestamp delta, offset delta, key length,
// value length, header count). It bounds how many records the bytes left can
// hold, so a lying count is rejected before anything is allocated for it.
const minRecordSize = 7

// minHeaderSize is the smallest encoded record header: two one-byte lengths.
const minHeaderSize = 2

// Records decodes every record of the batch at the start of batch. It
// decompresses according to the header's codec, producing at most
// maxDecompressed bytes (see Decompress); it does not check the CRC or the
// batch's other header fields (use Validate), only what decoding needs: the
// header, the length, the codec, and that exactly NumRecords well-formed
// records fill the records section.
//
// Key, Value and header values alias batch when the batch is uncompressed,
// and one buffer owned by the result otherwise; batch must not be modified
// while the records are in use. Errors wrap ErrCorrupt.
func Records(batch []byte, maxDecompressed int) ([]Record, error) {
	h, data, err := recordsSection(batch, maxDecompressed, nil)
	if err != nil {
		return nil, err
	}
	if err := checkCount(h.NumRecords, len(data)); err != nil {
		return nil, err
	}
	out := make([]Record, h.NumRecords)
	rd := recordReader{b: data}
	for i := range out {
		if err := rd.record(&out[i], i); err != nil {
			return nil, err
		}
	}
	if len(rd.b) != 0 {
		return nil, fmt.Errorf("recordbatch: %w: %d bytes after %d records", ErrCorrupt, len(rd.b), h.NumRecords)
	}
	return out, nil
}

// ForEachRecord decodes the batch's records one at a time and calls fn with
// each, stopping at the first error (returned unwrapped if it is fn's). It
// checks what Records checks, but holds only one decoded record at a time,
// so scanning a large batch (compaction, key checks) costs no per-record
// allocation beyond header keys. A malformed record is reported when it is
// reached, after fn has seen the records before it.
//
// r, and every slice it references, is valid only until fn returns: the
// Record and the decompression buffer are reused. Copy what must outlive the
// call. Errors from decoding wrap ErrCorrupt.
func ForEachRecord(batch []byte, maxDecompressed int, fn func(r *Record) error) error {
	buf := scratchPool.Get().(*[]byte)
	defer putScratch(buf)
	h, data, err := recordsSection(batch, maxDecompressed, (*buf)[:0])
	if err != nil {
		return err
	}
	if h.Codec() != CodecNone {
		*buf = data // keep the grown buffer for reuse
	}
	if err := checkCount(h.NumRecords, len(data)); err != nil {
		return err
	}
	var r Record
	rd := recordReader{b: data}
	for i := 0; i < int(h.NumRecords); i++ {
		r.Headers = r.Headers[:0]
		if err := rd.record(&r, i); err != nil {
			return err
		}
		if err := fn(&r); err != nil {
			return err
		}
	}
	if len(rd.b) != 0 {
		return fmt.Errorf("recordbatch: %w: %d bytes after %d records", ErrCorrupt, len(rd.b), h.NumRecords)
	}
	return nil
}

// scratchPool holds decompression buffers for ForEachRecord; see codec.go
// for why package-level pools are acceptable here.
var scratchPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledScratch keeps one huge batch from pinning its buffer in the pool.
const maxPooledScratch = 4 << 20

func putScratch(b *[]byte) {
	if cap(*b) <= maxPooledScratch {
		*b = (*b)[:0]
		scratchPool.Put(b)
	}
}

// recordsSection parses the header and returns the records section of the
// batch, decompressed (appended to scratch) if the codec says so.
func recordsSection(batch []byte, maxDecompressed int, scratch []byte) (Header, []byte, error) {
	h, err := ParseHeader(batch)
	if err != nil {
		return h, nil, fmt.Errorf("recordbatch: records: %w", err)
	}
	if h.Size() > int64(len(batch)) {
		return h, nil, fmt.Errorf("recordbatch: records: batch of %d bytes with %d present: %w", h.Size(), len(batch), ErrTruncated)
	}
	data := batch[HeaderSize:h.Size()]
	if h.NumRecords < 0 {
		return h, nil, fmt.Errorf("recordbatch: records: %w: record count %d", ErrCorrupt, h.NumRecords)
	}
	if h.Codec() == CodecNone {
		return h, data, nil
	}
	if h.Codec() > maxSupportedCodec {
		return h, nil, fmt.Errorf("recordbatch: records: %w: unknown codec %d", ErrCorrupt, h.Codec())
	}
	out, err := Decompress(h.Codec(), data, scratch, maxDecompressed)
	if err != nil {
		return h, nil, fmt.Errorf("recordbatch: records at offset %d: %w", h.BaseOffset, err)
	}
	return h, out, nil
}

func checkCount(n int32, size int) error {
	if int64(n)*minRecordSize > int64(size) {
		return fmt.Errorf("recordbatch: %w: %d records cannot fit in %d bytes", ErrCorrupt, n, size)
	}
	return nil
}

// recordReader decodes records from b, consuming it. Every length is checked
// against the bytes left before it is used to slice or allocate.
type recordReader struct {
	b   []byte
	err error
}

// record decodes record number i into r, reusing r.Headers' storage.
func (rd *recordReader) record(r *Record, i int) error {
	length := rd.varint()
	if rd.err != nil || length < 0 || int64(length) > int64(len(rd.b)) {
		return fmt.Errorf("recordbatch: %w: record %d: length %d with %d bytes left", ErrCorrupt, i, length, len(rd.b))
	}
	body := recordReader{b: rd.b[:length]}
	rd.b = rd.b[length:]
	body.decodeBody(r)
	if body.err != nil {
		return fmt.Errorf("recordbatch: record %d: %w", i, body.err)
	}
	if len(body.b) != 0 {
		return fmt.Errorf("recordbatch: %w: record %d: %d bytes after its fields", ErrCorrupt, i, len(body.b))
	}
	return nil
}

func (rd *recordReader) decodeBody(r *Record) {
	r.Attributes = int8(rd.byte())
	r.TimestampDelta = rd.varlong()
	r.OffsetDelta = rd.varint()
	r.Key = rd.nullableBytes()
	r.Value = rd.nullableBytes()
	n := rd.varint()
	if rd.err != nil {
		return
	}
	if n < 0 || int64(n)*minHeaderSize > int64(len(rd.b)) {
		rd.fail("header count %d with %d bytes left", n, len(rd.b))
		return
	}
	if cap(r.Headers) < int(n) {
		r.Headers = make([]RecordHeader, n)
	}
	r.Headers = r.Headers[:n]
	for j := range r.Headers {
		kl := rd.varint()
		if rd.err == nil && kl < 0 {
			// Unlike keys and values, header keys may not be null.
			rd.fail("header %d key length %d", j, kl)
		}
		r.Headers[j].Key = string(rd.take(kl))
		r.Headers[j].Value = rd.nullableBytes()
		if rd.err != nil {
			return
		}
	}
}

// nullableBytes reads a varint length and that many bytes. As in Kafka's
// DefaultRecord, any negative length is null.
func (rd *recordReader) nullableBytes() []byte {
	n := rd.varint()
	if rd.err != nil || n < 0 {
		return nil
	}
	b := rd.take(n)
	if b == nil && rd.err == nil {
		return []byte{} // empty, not null
	}
	return b
}

// take returns the next n bytes, or nil after recording an error if fewer
// are left.
func (rd *recordReader) take(n int32) []byte {
	if rd.err != nil {
		return nil
	}
	if n < 0 || int64(n) > int64(len(rd.b)) {
		rd.fail("field of %d bytes with %d left", n, len(rd.b))
		return nil
	}
	b := rd.b[:n:n]
	rd.b = rd.b[n:]
	return b
}

func (rd *recordReader) byte() byte {
	if rd.err != nil {
		return 0
	}
	if len(rd.b) == 0 {
		rd.fail("attributes missing")
		return 0
	}
	c := rd.b[0]
	rd.b = rd.b[1:]
	return c
}

// varint reads a zigzag varint of at most 5 bytes whose value fits 32 bits,
// as Kafka's ByteUtils.readVarint requires.
func (rd *recordReader) varint() int32 {
	if rd.err != nil {
		return 0
	}
	u, n := binary.Uvarint(rd.b)
	if n <= 0 || n > binary.MaxVarintLen32 || u > math.MaxUint32 {
		rd.fail("bad varint")
		return 0
	}
	rd.b = rd.b[n:]
	x := uint32(u)
	return int32(x>>1) ^ -int32(x&1)
}

// varlong reads a zigzag varint of at most 10 bytes.
func (rd *recordReader) varlong() int64 {
	if rd.err != nil {
		return 0
	}
	v, n := binary.Varint(rd.b)
	if n <= 0 {
		rd.fail("bad varlong")
		return 0
	}
	rd.b = rd.b[n:]
	return v
}

func (rd *recordReader) fail(format string, args ...any) {
	if rd.err == nil {
		rd.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}
