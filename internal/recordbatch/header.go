// Package recordbatch reads, validates and rewrites Kafka record batches
// (magic v2) as they travel between the wire and the log.
//
// A batch is kept as the bytes the producer sent; this package looks inside
// only where the broker must: to check the CRC, to assign offsets, leader
// epochs and LogAppendTime, and (in records.go) to decode records for
// compaction and timestamp lookups.
//
// Layout of a batch (all integers big-endian). The first 61 bytes are the
// header; bytes [0, 12) are the log overhead and are not part of batchLength.
//
//	offset  size  field
//	     0     8  baseOffset            (set by the broker)
//	     8     4  batchLength           (bytes after this field)
//	    12     4  partitionLeaderEpoch  (set by the broker)
//	    16     1  magic                 (must be 2)
//	    17     4  crc                   (CRC-32C of bytes [21, end))
//	    21     2  attributes
//	    23     4  lastOffsetDelta
//	    27     8  baseTimestamp
//	    35     8  maxTimestamp
//	    43     8  producerId
//	    51     2  producerEpoch
//	    53     4  baseSequence
//	    57     4  recordCount
//	    61     …  records (possibly compressed)
package recordbatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Sizes and offsets that are part of the Kafka on-wire and on-disk format.
const (
	HeaderSize  = 61 // bytes before the records
	LogOverhead = 12 // baseOffset + batchLength

	offLength      = 8
	offLeaderEpoch = 12
	offMagic       = 16
	offCRC         = 17
	offAttributes  = 21
	offLastDelta   = 23
	offBaseTS      = 27
	offMaxTS       = 35
	offProducerID  = 43
	offEpoch       = 51
	offBaseSeq     = 53
	offCount       = 57
)

// Attribute bits.
const (
	CodecMask         = 0x07
	TimestampTypeBit  = 0x08 // set: LogAppendTime
	TransactionalBit  = 0x10
	ControlBit        = 0x20
	DeleteHorizonBit  = 0x40
	supportedAttrMask = CodecMask | TimestampTypeBit | TransactionalBit | ControlBit | DeleteHorizonBit
	maxSupportedCodec = 4
)

// Codec is the compression codec of a batch (attributes bits 0–2).
type Codec int8

const (
	CodecNone Codec = iota
	CodecGzip
	CodecSnappy
	CodecLZ4
	CodecZstd
)

func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecGzip:
		return "gzip"
	case CodecSnappy:
		return "snappy"
	case CodecLZ4:
		return "lz4"
	case CodecZstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors returned for malformed batches. The broker maps ErrCorrupt (and
// anything wrapping it) to CORRUPT_MESSAGE.
var (
	ErrCorrupt   = errors.New("recordbatch: corrupt batch")
	ErrTruncated = fmt.Errorf("%w: truncated", ErrCorrupt)
)

// Header is the decoded fixed part of a batch.
type Header struct {
	BaseOffset           int64
	Length               int32 // batchLength: bytes after the length field
	PartitionLeaderEpoch int32
	Magic                int8
	CRC                  uint32
	Attributes           int16
	LastOffsetDelta      int32
	BaseTimestamp        int64
	MaxTimestamp         int64
	ProducerID           int64
	ProducerEpoch        int16
	BaseSequence         int32
	NumRecords           int32
}

// Size is the whole batch size in bytes, log overhead included.
func (h *Header) Size() int64 { return int64(h.Length) + LogOverhead }

// LastOffset is the offset of the last record slot of the batch.
func (h *Header) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Codec is the compression codec.
func (h *Header) Codec() Codec { return Codec(h.Attributes & CodecMask) }

// IsLogAppendTime reports whether timestamps are broker-assigned.
func (h *Header) IsLogAppendTime() bool { return h.Attributes&TimestampTypeBit != 0 }

// IsTransactional reports the transactional attribute.
func (h *Header) IsTransactional() bool { return h.Attributes&TransactionalBit != 0 }

// IsControl reports the control attribute (transaction markers).
func (h *Header) IsControl() bool { return h.Attributes&ControlBit != 0 }

// HasProducer reports whether the batch carries an idempotent producer ID.
func (h *Header) HasProducer() bool { return h.ProducerID >= 0 }

// LastSequence is the sequence of the last record, wrapping at int32 max as
// Kafka does.
func (h *Header) LastSequence() int32 {
	if h.BaseSequence < 0 {
		return h.BaseSequence
	}
	return int32((int64(h.BaseSequence) + int64(h.LastOffsetDelta)) % (1 << 31))
}

// ParseHeader decodes the fixed header of the batch at the start of b. It
// checks only that the header is present and that the magic byte is 2; it
// does not require the whole batch to be in b. Use Validate for that.
func ParseHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		return h, ErrTruncated
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[0:]))
	h.Length = int32(binary.BigEndian.Uint32(b[offLength:]))
	h.PartitionLeaderEpoch = int32(binary.BigEndian.Uint32(b[offLeaderEpoch:]))
	h.Magic = int8(b[offMagic])
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTS:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTS:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSeq:]))
	h.NumRecords = int32(binary.BigEndian.Uint32(b[offCount:]))
	if h.Magic != 2 {
		return h, fmt.Errorf("%w: magic %d (only magic 2 is supported)", ErrCorrupt, h.Magic)
	}
	if int64(h.Length)+LogOverhead < HeaderSize {
		return h, fmt.Errorf("%w: batch length %d shorter than header", ErrCorrupt, h.Length)
	}
	return h, nil
}

// Validate checks one whole batch: b must hold exactly one batch whose
// length field matches len(b), with a correct CRC, a supported codec and
// consistent counts. It returns the parsed header.
func Validate(b []byte) (Header, error) {
	h, err := ParseHeader(b)
	if err != nil {
		return h, err
	}
	if h.Size() != int64(len(b)) {
		return h, fmt.Errorf("%w: batch length %d does not match %d bytes", ErrCorrupt, h.Size(), len(b))
	}
	if crc := crc32.Checksum(b[offAttributes:], castagnoli); crc != h.CRC {
		return h, fmt.Errorf("%w: crc %08x, computed %08x", ErrCorrupt, h.CRC, crc)
	}
	if h.Attributes&^supportedAttrMask != 0 {
		return h, fmt.Errorf("%w: unknown attributes %#x", ErrCorrupt, h.Attributes)
	}
	if h.Codec() > maxSupportedCodec {
		return h, fmt.Errorf("%w: unknown codec %d", ErrCorrupt, h.Codec())
	}
	if h.NumRecords < 0 || h.LastOffsetDelta < 0 || (h.NumRecords > 0 && int64(h.LastOffsetDelta) < int64(h.NumRecords)-1) {
		return h, fmt.Errorf("%w: %d records with last offset delta %d", ErrCorrupt, h.NumRecords, h.LastOffsetDelta)
	}
	return h, nil
}

// Split walks a concatenation of batches (a produce request's records, or a
// region of a segment) and returns each batch's bytes, validated. Trailing
// bytes that do not form a whole batch are an error.
func Split(b []byte) ([][]byte, error) {
	var out [][]byte
	for len(b) > 0 {
		h, err := ParseHeader(b)
		if err != nil {
			return nil, err
		}
		if h.Size() > int64(len(b)) {
			return nil, fmt.Errorf("%w: batch of %d bytes with %d remaining", ErrTruncated, h.Size(), len(b))
		}
		one := b[:h.Size()]
		if _, err := Validate(one); err != nil {
			return nil, err
		}
		out = append(out, one)
		b = b[h.Size():]
	}
	return out, nil
}

// SetBaseOffset stores the broker-assigned base offset. The CRC does not
// cover it.
func SetBaseOffset(b []byte, off int64) { binary.BigEndian.PutUint64(b[0:], uint64(off)) }

// SetLeaderEpoch stores the partition leader epoch. The CRC does not cover it.
func SetLeaderEpoch(b []byte, epoch int32) {
	binary.BigEndian.PutUint32(b[offLeaderEpoch:], uint32(epoch))
}

// SetLogAppendTime marks the batch as LogAppendTime with maxTimestamp ts and
// recomputes the CRC, which covers both fields.
func SetLogAppendTime(b []byte, ts int64) {
	attrs := binary.BigEndian.Uint16(b[offAttributes:]) | TimestampTypeBit
	binary.BigEndian.PutUint16(b[offAttributes:], attrs)
	binary.BigEndian.PutUint64(b[offMaxTS:], uint64(ts))
	UpdateCRC(b)
}

// UpdateCRC recomputes and stores the CRC of a whole batch.
func UpdateCRC(b []byte) {
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
}
