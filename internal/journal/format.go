package journal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Format constants: part of the on-disk format.
const (
	magic         = "SBJL"
	version       = 1
	headerSize    = 16
	frameSize     = 8  // length + CRC
	payloadHeader = 17 // kind + stream + offset
	fileSuffix    = ".wal"

	// MaxPayload bounds one record's payload: a record batch of the
	// largest request the broker accepts, with room to spare.
	MaxPayload = 256 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Entry is one journal record.
type Entry struct {
	Kind   uint8
	Stream uint64
	Offset int64
	Data   []byte
}

// errTorn marks the end of the valid records of a file.
var errTorn = errors.New("journal: torn or corrupt record")

// appendRecord encodes e after b.
func appendRecord(b []byte, e Entry) []byte {
	n := payloadHeader + len(e.Data)
	start := len(b)
	b = append(b, make([]byte, frameSize+payloadHeader)...)
	binary.BigEndian.PutUint32(b[start:], uint32(n))
	p := b[start+frameSize:]
	p[0] = e.Kind
	binary.BigEndian.PutUint64(p[1:], e.Stream)
	binary.BigEndian.PutUint64(p[9:], uint64(e.Offset))
	b = append(b, e.Data...)
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(b[start+frameSize:], castagnoli))
	return b
}

// recordSize is the encoded size of e.
func recordSize(e Entry) int { return frameSize + payloadHeader + len(e.Data) }

// parseRecord decodes the record at the start of b. It returns the entry
// (Data aliases b) and the record's size, or errTorn.
func parseRecord(b []byte) (Entry, int, error) {
	if len(b) < frameSize {
		return Entry{}, 0, errTorn
	}
	n := int64(binary.BigEndian.Uint32(b))
	if n < payloadHeader || n > MaxPayload || n > int64(len(b)-frameSize) {
		return Entry{}, 0, errTorn
	}
	p := b[frameSize : frameSize+n]
	if crc32.Checksum(p, castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return Entry{}, 0, errTorn
	}
	e := Entry{
		Kind:   p[0],
		Stream: binary.BigEndian.Uint64(p[1:]),
		Offset: int64(binary.BigEndian.Uint64(p[9:])),
		Data:   p[payloadHeader:],
	}
	return e, frameSize + int(n), nil
}

func appendHeader(b []byte, lsn int64) []byte {
	b = append(b, magic...)
	b = binary.BigEndian.AppendUint16(b, version)
	b = binary.BigEndian.AppendUint16(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(lsn))
}

func parseHeader(b []byte, lsn int64) error {
	switch {
	case len(b) < headerSize:
		return fmt.Errorf("journal: file %d: short header", lsn)
	case string(b[:4]) != magic:
		return fmt.Errorf("journal: file %d: bad magic %q", lsn, b[:4])
	case binary.BigEndian.Uint16(b[4:]) != version:
		return fmt.Errorf("journal: file %d: unknown version %d", lsn, binary.BigEndian.Uint16(b[4:]))
	case int64(binary.BigEndian.Uint64(b[8:])) != lsn:
		return fmt.Errorf("journal: file %d: header says LSN %d", lsn, binary.BigEndian.Uint64(b[8:]))
	}
	return nil
}

func fileName(lsn int64) string { return fmt.Sprintf("%020d%s", lsn, fileSuffix) }

// parseFileName returns the LSN a journal file name carries.
func parseFileName(name string) (int64, bool) {
	base, ok := strings.CutSuffix(name, fileSuffix)
	if !ok || len(base) != 20 {
		return 0, false
	}
	n, err := strconv.ParseInt(base, 10, 64)
	return n, err == nil && n >= 0
}
