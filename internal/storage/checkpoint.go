package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/streambus/streambus/internal/vfs"
)

// Checkpoint files are small and rewritten whole: written to name.tmp,
// fsynced, renamed over name, and the directory fsynced. A leftover .tmp
// file is an interrupted write and is deleted at open.
//
//	offset  size  field
//	     0     4  magic "SBCK"
//	     4     1  version (1)
//	     5     1  kind (see ckKind*)
//	     6     4  payload length P
//	    10     P  payload (kind-specific, below)
//	  10+P     4  CRC-32C of bytes [0, 10+P)
const (
	ckMagic      = "SBCK"
	ckVersion    = 1
	ckHeaderSize = 10
	ckMaxPayload = 1 << 20

	ckKindLogStart      = 1 // payload: logStartOffset i64
	ckKindRecoveryPoint = 2 // payload: offset i64, segmentBase i64, position i64, then journal LSN i64, logStart i64 (both absent before the journal)
	ckKindLeaderEpoch   = 3 // payload: count u32, count × (epoch i32, startOffset i64)
	ckKindCleanShutdown = 4 // payload: logEndOffset i64, activeBase i64, activeSize i64, journal LSN i64 (absent before the journal)
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errNoCheckpoint reports a checkpoint file that does not exist.
var errNoCheckpoint = errors.New("storage: no checkpoint")

func encodeCheckpoint(kind byte, payload []byte) []byte {
	b := make([]byte, 0, ckHeaderSize+len(payload)+4)
	b = append(b, ckMagic...)
	b = append(b, ckVersion, kind)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func decodeCheckpoint(kind byte, b []byte) ([]byte, error) {
	if len(b) < ckHeaderSize+4 || string(b[:4]) != ckMagic {
		return nil, fmt.Errorf("%w: bad checkpoint header", ErrCorrupt)
	}
	if b[4] != ckVersion || b[5] != kind {
		return nil, fmt.Errorf("%w: checkpoint version %d kind %d, want %d/%d", ErrCorrupt, b[4], b[5], ckVersion, kind)
	}
	n := binary.BigEndian.Uint32(b[6:])
	if uint64(n) != uint64(len(b)-ckHeaderSize-4) {
		return nil, fmt.Errorf("%w: checkpoint payload length %d of %d bytes", ErrCorrupt, n, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: checkpoint crc mismatch", ErrCorrupt)
	}
	return body[ckHeaderSize:], nil
}

// writeFileAtomic replaces name with data durably.
func writeFileAtomic(fsys vfs.FS, name string, data []byte) error {
	tmp := name + ".tmp"
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("storage: create %s: %w", tmp, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		return fmt.Errorf("storage: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("storage: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("storage: close %s: %w", tmp, err)
	}
	if err := fsys.Rename(tmp, name); err != nil {
		return fmt.Errorf("storage: rename %s: %w", tmp, err)
	}
	if err := fsys.SyncDir(filepath.Dir(name)); err != nil {
		return fmt.Errorf("storage: sync dir of %s: %w", name, err)
	}
	return nil
}

// readFile reads a whole file of at most limit bytes.
func readFile(fsys vfs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Most files read here (checkpoints, markers) are small: one read and
	// no stat, which counts when thousands of partitions open.
	small := make([]byte, 256)
	n, err := f.ReadAt(small, 0)
	if n < len(small) {
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if int64(n) > limit {
			return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrCorrupt, name, n, limit)
		}
		return small[:n], nil
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrCorrupt, name, st.Size(), limit)
	}
	b := make([]byte, st.Size())
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

func writeCheckpoint(fsys vfs.FS, name string, kind byte, payload []byte) error {
	if err := writeFileAtomic(fsys, name, encodeCheckpoint(kind, payload)); err != nil {
		return fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return nil
}

// readCheckpoint returns the payload, errNoCheckpoint if the file is absent,
// or an error wrapping ErrCorrupt.
func readCheckpoint(fsys vfs.FS, name string, kind byte) ([]byte, error) {
	b, err := readFile(fsys, name, ckMaxPayload+ckHeaderSize+4)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, os.ErrNotExist) {
		return nil, errNoCheckpoint
	}
	if err != nil {
		return nil, err
	}
	return decodeCheckpoint(kind, b)
}

func putInt64s(vs ...int64) []byte {
	b := make([]byte, 0, 8*len(vs))
	for _, v := range vs {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	return b
}

func getInt64s(b []byte, n int) ([]int64, error) {
	if len(b) != 8*n {
		return nil, fmt.Errorf("%w: checkpoint payload of %d bytes, want %d", ErrCorrupt, len(b), 8*n)
	}
	out := make([]int64, n)
	for i := range out {
		out[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
	}
	return out, nil
}

// recoveryPoint says that every batch below Offset is durable and valid:
// segments before SegmentBase entirely, and segment SegmentBase up to
// Position; and that every journal entry of the log up to LSN is
// reflected there and none after it is. Recovery cuts the log at the
// recovery point and replays the journal entries after LSN. A recovery
// point without an LSN (legacy) was written before the data directory had
// a journal: every acknowledged batch was fsynced in its segment then, so
// recovery validates what follows it instead.
//
// Position rpRestart marks a restart point, written before a full
// truncation: the log is empty and starts at Offset, whatever files
// survive.
type recoveryPoint struct {
	Offset, SegmentBase, Position int64
	LSN                           int64
	LogStart                      int64 // the log start offset then (DeleteRecords are journaled after it)
	legacy                        bool
}

const rpRestart = -1

func (rp recoveryPoint) encode() []byte {
	return putInt64s(rp.Offset, rp.SegmentBase, rp.Position, rp.LSN, rp.LogStart)
}

// decodeRecoveryPoint reads the payload of either format.
func decodeRecoveryPoint(b []byte) (recoveryPoint, error) {
	if len(b) == 24 {
		v, err := getInt64s(b, 3)
		if err != nil {
			return rpNone, err
		}
		return recoveryPoint{Offset: v[0], SegmentBase: v[1], Position: v[2], legacy: true}, nil
	}
	v, err := getInt64s(b, 5)
	if err != nil {
		return rpNone, err
	}
	return recoveryPoint{Offset: v[0], SegmentBase: v[1], Position: v[2], LSN: v[3], LogStart: v[4]}, nil
}

func recoveryPointPath(dir string) string { return filepath.Join(dir, recoveryPointFile) }

// cleanShutdown is written by Close after everything was fsynced; its
// presence at open means nothing needs scanning, and that the journal
// entries of the log up to LSN are in the files.
type cleanShutdown struct {
	LogEnd, ActiveBase, ActiveSize int64
	LSN                            int64
}

func (c cleanShutdown) encode() []byte {
	return putInt64s(c.LogEnd, c.ActiveBase, c.ActiveSize, c.LSN)
}

func decodeCleanShutdown(b []byte) (cleanShutdown, error) {
	n := 4
	if len(b) == 24 {
		n = 3
	}
	v, err := getInt64s(b, n)
	if err != nil {
		return cleanShutdown{}, err
	}
	c := cleanShutdown{LogEnd: v[0], ActiveBase: v[1], ActiveSize: v[2]}
	if n == 4 {
		c.LSN = v[3]
	}
	return c, nil
}
