package producerstate

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
)

// Snapshot format constants; see the package doc for the layout.
const (
	snapshotVersion = 1
	headerLen       = 10 // magic + version + count
	crcLen          = 4
	entryFixedLen   = 19 // producerId + epoch + lastUpdateMs + batch count
	batchLen        = 24
	minEntryLen     = entryFixedLen + batchLen
)

var snapshotMagic = [4]byte{'S', 'B', 'P', 'S'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorruptSnapshot is returned (wrapped with the reason) by
// UnmarshalBinary for a snapshot that is truncated, fails its CRC, has an
// unknown version or holds impossible state. The caller should rebuild the
// table from the log.
var ErrCorruptSnapshot = errors.New("producerstate: corrupt snapshot")

// MarshalBinary encodes the table in the snapshot format described in the
// package doc. The encoding is deterministic: producers are written in
// increasing ID order. It never fails; the error is for encoding.BinaryMarshaler.
func (t *Table) MarshalBinary() ([]byte, error) {
	ids := make([]int64, 0, len(t.producers))
	size := headerLen + crcLen
	for id, e := range t.producers {
		ids = append(ids, id)
		size += entryFixedLen + e.n*batchLen
	}
	slices.Sort(ids)

	b := make([]byte, 0, size)
	b = append(b, snapshotMagic[:]...)
	b = binary.BigEndian.AppendUint16(b, snapshotVersion)
	b = binary.BigEndian.AppendUint32(b, uint32(len(ids)))
	for _, id := range ids {
		e := t.producers[id]
		b = binary.BigEndian.AppendUint64(b, uint64(id))
		b = binary.BigEndian.AppendUint16(b, uint16(e.epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.lastUpdateMs))
		b = append(b, byte(e.n))
		for _, m := range e.batches[:e.n] {
			b = binary.BigEndian.AppendUint32(b, uint32(m.firstSeq))
			b = binary.BigEndian.AppendUint32(b, uint32(m.lastSeq))
			b = binary.BigEndian.AppendUint64(b, uint64(m.baseOffset))
			b = binary.BigEndian.AppendUint64(b, uint64(m.lastOffset))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// UnmarshalBinary replaces the table's contents with the snapshot in data.
// On error (always wrapping ErrCorruptSnapshot) the table is left unchanged.
// It never panics, and allocates only in proportion to len(data).
func (t *Table) UnmarshalBinary(data []byte) error {
	producers, err := decodeSnapshot(data)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCorruptSnapshot, err)
	}
	t.producers = producers
	return nil
}

func decodeSnapshot(data []byte) (map[int64]*entry, error) {
	if len(data) < headerLen+crcLen {
		return nil, fmt.Errorf("%d bytes, shorter than the %d-byte minimum", len(data), headerLen+crcLen)
	}
	body := data[:len(data)-crcLen]
	if want, got := binary.BigEndian.Uint32(data[len(body):]), crc32.Checksum(body, castagnoli); want != got {
		return nil, fmt.Errorf("crc %08x, computed %08x", want, got)
	}
	if [4]byte(body[:4]) != snapshotMagic {
		return nil, fmt.Errorf("bad magic %q", body[:4])
	}
	if v := binary.BigEndian.Uint16(body[4:]); v != snapshotVersion {
		return nil, fmt.Errorf("unknown version %d", v)
	}
	count := uint64(binary.BigEndian.Uint32(body[6:]))
	rest := body[headerLen:]
	// Bound the count by the bytes present before allocating anything.
	if count > uint64(len(rest)/minEntryLen) {
		return nil, fmt.Errorf("%d producers cannot fit in %d bytes", count, len(rest))
	}
	producers := make(map[int64]*entry, count)
	prevID := int64(-1)
	for i := uint64(0); i < count; i++ {
		id, e, n, err := decodeEntry(rest)
		if err != nil {
			return nil, fmt.Errorf("entry %d of %d: %w", i, count, err)
		}
		if id <= prevID {
			return nil, fmt.Errorf("entry %d of %d: producer id %d not above previous %d", i, count, id, prevID)
		}
		prevID = id
		producers[id] = e
		rest = rest[n:]
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d trailing bytes", len(rest))
	}
	return producers, nil
}

// decodeEntry decodes the producer entry at the start of b and returns the
// number of bytes it used.
func decodeEntry(b []byte) (id int64, e *entry, n int, err error) {
	if len(b) < entryFixedLen {
		return 0, nil, 0, errors.New("truncated entry")
	}
	id = int64(binary.BigEndian.Uint64(b))
	if id < 0 {
		return 0, nil, 0, fmt.Errorf("negative producer id %d", id)
	}
	e = &entry{
		epoch:        int16(binary.BigEndian.Uint16(b[8:])),
		lastUpdateMs: int64(binary.BigEndian.Uint64(b[10:])),
		n:            int(b[18]),
	}
	if e.n < 1 || e.n > BatchesRetained {
		return 0, nil, 0, fmt.Errorf("producer %d: %d batches, want 1..%d", id, e.n, BatchesRetained)
	}
	n = entryFixedLen + e.n*batchLen
	if len(b) < n {
		return 0, nil, 0, fmt.Errorf("producer %d: truncated batches", id)
	}
	for j := range e.n {
		p := b[entryFixedLen+j*batchLen:]
		m := batchMeta{
			firstSeq:   int32(binary.BigEndian.Uint32(p)),
			lastSeq:    int32(binary.BigEndian.Uint32(p[4:])),
			baseOffset: int64(binary.BigEndian.Uint64(p[8:])),
			lastOffset: int64(binary.BigEndian.Uint64(p[16:])),
		}
		if err := m.validate(); err != nil {
			return 0, nil, 0, fmt.Errorf("producer %d batch %d: %w", id, j, err)
		}
		e.batches[j] = m
	}
	return id, e, n, nil
}

// validate checks what Update guarantees for every recorded batch.
func (m batchMeta) validate() error {
	if m.firstSeq < 0 || m.lastSeq < 0 {
		return fmt.Errorf("negative sequence %d..%d", m.firstSeq, m.lastSeq)
	}
	if m.baseOffset < 0 || m.lastOffset < m.baseOffset || m.lastOffset-m.baseOffset > math.MaxInt32 {
		return fmt.Errorf("bad offsets %d..%d", m.baseOffset, m.lastOffset)
	}
	delta := m.lastOffset - m.baseOffset
	if want := int32((int64(m.firstSeq) + delta) % (1 << 31)); m.lastSeq != want {
		return fmt.Errorf("last sequence %d, want %d for first sequence %d and %d offsets",
			m.lastSeq, want, m.firstSeq, delta+1)
	}
	return nil
}
