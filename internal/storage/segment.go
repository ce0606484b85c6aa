package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
)

// File name suffixes and sizes that are part of the on-disk format.
const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	snapshotSuffix  = ".snapshot"
	cleanedSuffix   = ".cleaned" // compaction output being written
	swapSuffix      = ".swap"    // compaction output committed, not yet renamed into place
	tmpSuffix       = ".tmp"     // checkpoint being written

	offsetIndexEntrySize = 8  // relOffset u32, position u32
	timeIndexEntrySize   = 12 // timestamp i64, relOffset u32
	baseNameDigits       = 20

	// maxSegmentPosition bounds a segment's size so positions fit the u32
	// index field.
	maxSegmentPosition = math.MaxUint32
)

func segmentFile(dir string, base int64, suffix string) string {
	return filepath.Join(dir, fmt.Sprintf("%0*d%s", baseNameDigits, base, suffix))
}

// parseBaseName parses "<20 digits><suffix>" and returns the base offset.
func parseBaseName(name, suffix string) (int64, bool) {
	if len(name) != baseNameDigits+len(suffix) || name[baseNameDigits:] != suffix {
		return 0, false
	}
	var v int64
	for _, c := range name[:baseNameDigits] {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if v > (math.MaxInt64-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}

type indexEntry struct {
	rel uint32 // offset - segment base of a batch's base offset
	pos uint32 // that batch's position in the log file
}

type timeEntry struct {
	ts  int64  // largest batch max timestamp before the batch at rel
	rel uint32 // a batch that also has an offset index entry
}

// segment is one log file and its two indexes. A segment is shared between
// the Log and readers' Slices: refs counts the Log's own reference plus one
// per holder (a Slice, the flusher, a read in progress), and the segment's
// files are released only when it drops to zero.
//
// The files are opened through the Manager's fileCache: every I/O call
// pins the file it uses (opening it by name if the cache closed it) and
// unpins it after, and a Slice keeps its chunks' log files pinned until
// Release, so a reader never sees an fd closed or reused under it. When
// the segment leaves the log (retire), its names stop being its files.
type segment struct {
	base  int64
	fs    vfs.FS
	dir   string
	files *fileCache
	log   fileRef // N.log
	refs  atomic.Int32

	// Guarded by the owning Log's mu.
	size      int64 // bytes of whole batches written
	next      int64 // offset after the last batch (an upper bound for segments not scanned at open)
	createdMs int64 // for segment.ms

	idxMu           sync.Mutex // guards the fields below; taken after Log.mu when both are held
	idxLoaded       bool
	idx             []indexEntry
	tidx            []timeEntry
	maxTs           int64 // largest batch max timestamp, -1 if none
	maxTsOffset     int64 // base offset of the batch holding maxTs
	bytesSinceIndex int64
	offIdx          fileRef // N.index, written when the indexes are first fsynced with entries
	timeIdx         fileRef // N.timeindex, created with N.index
	idxWritten      bool    // this process wrote the index files: they are fsynced with the segment
	idxDirty        bool    // entries appended since the files were written (flushIndexesLocked)
	retired         bool    // the segment left the log: its file names may be another segment's
}

func newSegment(fsys vfs.FS, files *fileCache, dir string, base int64) *segment {
	s := &segment{base: base, fs: fsys, dir: dir, files: files, next: base, maxTs: -1, maxTsOffset: -1}
	s.refs.Store(1)
	return s
}

// createSegment creates the (empty) log file of a new segment at base. Its
// index files are written when its indexes are first fsynced with entries
// (flushIndexesLocked): a segment without entries has none.
func createSegment(fsys vfs.FS, files *fileCache, dir string, base, nowMs int64) (*segment, error) {
	s := newEmptySegment(fsys, files, dir, base, nowMs)
	if err := s.create(); err != nil {
		return nil, err
	}
	return s, nil
}

// newEmptySegment describes a segment at base with no data and no file yet
// (see create).
func newEmptySegment(fsys vfs.FS, files *fileCache, dir string, base, nowMs int64) *segment {
	s := newSegment(fsys, files, dir, base)
	s.createdMs = nowMs
	s.idxLoaded = true
	return s
}

// create creates the segment's empty log file (truncating any file left
// by an earlier segment at the same base).
func (s *segment) create() error {
	f, err := s.files.openShedding(func() (vfs.File, error) {
		return s.fs.OpenFile(segmentFile(s.dir, s.base, logSuffix), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	})
	if err != nil {
		return fmt.Errorf("storage: create segment %d: %w", s.base, err)
	}
	s.files.adopt(&s.log, f, false)
	return nil
}

// openSegment describes an existing segment without opening it: its log
// file opens on first use, its indexes load on first use.
func openSegment(fsys vfs.FS, files *fileCache, dir string, base int64) (*segment, error) {
	st, err := fsys.Stat(segmentFile(dir, base, logSuffix))
	if err != nil {
		return nil, fmt.Errorf("storage: stat segment %d: %w", base, err)
	}
	s := newSegment(fsys, files, dir, base)
	s.size = st.Size()
	s.createdMs = st.ModTime().UnixMilli() // stands in for the largest timestamp of a segment without any
	return s, nil
}

func (s *segment) acquire() { s.refs.Add(1) }

// release drops a reference; the last one closes the files.
func (s *segment) release() {
	if s.refs.Add(-1) != 0 {
		return
	}
	s.idxMu.Lock()
	s.files.release(&s.offIdx)
	s.files.release(&s.timeIdx)
	s.idxMu.Unlock()
	s.files.release(&s.log)
}

// retire is called under the log lock when the segment leaves the log,
// before its files are unlinked or renamed over or its directory renamed:
// from then on its names are never opened again. keep (others hold the
// segment) keeps the log file open for them until the last release.
func (s *segment) retire(keep bool) {
	s.idxMu.Lock()
	s.retired = true
	s.files.retire(&s.offIdx, false, nil)
	s.files.retire(&s.timeIdx, false, nil)
	s.idxMu.Unlock()
	s.files.retire(&s.log, keep, s.openLog)
}

func (s *segment) openLog() (vfs.File, error) {
	return s.fs.OpenFile(segmentFile(s.dir, s.base, logSuffix), os.O_RDWR, 0)
}

// pinLog returns the log file pinned (see fileCache); the caller unpins it.
func (s *segment) pinLog() (vfs.File, *os.File, error) {
	f, osf, err := s.files.pin(&s.log, s.openLog)
	if err != nil {
		return nil, nil, fmt.Errorf("storage: open segment %d: %w", s.base, err)
	}
	return f, osf, nil
}

func (s *segment) unpinLog() { s.files.unpin(&s.log) }

func (s *segment) readAt(b []byte, pos int64) (int, error) {
	f, _, err := s.pinLog()
	if err != nil {
		return 0, err
	}
	defer s.unpinLog()
	return f.ReadAt(b, pos)
}

// syncLog fsyncs the log file, reopening it if the cache closed it: an
// fsync through any descriptor flushes the file's dirty pages. A retired
// segment whose file is closed holds nothing the log still needs.
func (s *segment) syncLog() error {
	f, _, err := s.files.pin(&s.log, s.openLog)
	if errors.Is(err, errFileGone) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("storage: open segment %d: %w", s.base, err)
	}
	defer s.unpinLog()
	return f.Sync()
}

func (s *segment) truncateLog(size int64) error {
	f, _, err := s.pinLog()
	if err != nil {
		return err
	}
	defer s.unpinLog()
	return f.Truncate(size)
}

// indexFileLocked pins one of the index files, creating it if needed.
func (s *segment) indexFileLocked(r *fileRef, suffix string) (vfs.File, error) {
	f, _, err := s.files.pin(r, func() (vfs.File, error) {
		return s.fs.OpenFile(segmentFile(s.dir, s.base, suffix), os.O_RDWR|os.O_CREATE, 0o644)
	})
	if err != nil {
		return nil, fmt.Errorf("storage: open %s of segment %d: %w", suffix, s.base, err)
	}
	return f, nil
}

// readHeader reads and parses the batch header at pos, which must lie
// within limit bytes of the file.
func (s *segment) readHeader(pos, limit int64, buf []byte) (recordbatch.Header, error) {
	if limit-pos < recordbatch.HeaderSize {
		return recordbatch.Header{}, fmt.Errorf("%w: segment %d: %d bytes left at %d", ErrCorrupt, s.base, limit-pos, pos)
	}
	buf = buf[:recordbatch.HeaderSize]
	if n, err := s.readAt(buf, pos); n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return recordbatch.Header{}, fmt.Errorf("storage: read segment %d at %d: %w", s.base, pos, err)
	}
	h, err := recordbatch.ParseHeader(buf)
	if err != nil {
		return h, fmt.Errorf("%w: segment %d at %d: %v", ErrCorrupt, s.base, pos, err)
	}
	if h.Size() > limit-pos {
		return h, fmt.Errorf("%w: segment %d: batch of %d bytes at %d overruns %d", ErrCorrupt, s.base, h.Size(), pos, limit)
	}
	if h.BaseOffset < s.base || h.LastOffsetDelta < 0 || h.LastOffset()-s.base > math.MaxUint32 {
		return h, fmt.Errorf("%w: segment %d: batch offset %d at %d out of range", ErrCorrupt, s.base, h.BaseOffset, pos)
	}
	return h, nil
}

// walkHeaders calls fn for each batch header in [from, to), trusting the
// data (no CRC check): used for segments known to be valid.
func (s *segment) walkHeaders(from, to int64, fn func(h recordbatch.Header, pos int64) error) error {
	var buf [recordbatch.HeaderSize]byte
	for pos := from; pos < to; {
		h, err := s.readHeader(pos, to, buf[:])
		if err != nil {
			return err
		}
		if err := fn(h, pos); err != nil {
			return err
		}
		pos += h.Size()
	}
	return nil
}

// errStopWalk ends a walk early without error.
var errStopWalk = errors.New("stop walk")

// indexState accumulates index entries while batches are walked or appended.
func (s *segment) noteBatchLocked(h recordbatch.Header, pos int64, interval int64) (newIdx *indexEntry, newT *timeEntry) {
	if s.bytesSinceIndex > interval && pos > 0 {
		e := indexEntry{rel: uint32(h.BaseOffset - s.base), pos: uint32(pos)}
		s.idx = append(s.idx, e)
		newIdx = &e
		if s.maxTs >= 0 && (len(s.tidx) == 0 || s.maxTs > s.tidx[len(s.tidx)-1].ts) {
			t := timeEntry{ts: s.maxTs, rel: e.rel}
			s.tidx = append(s.tidx, t)
			newT = &t
		}
		s.bytesSinceIndex = 0
	}
	s.bytesSinceIndex += h.Size()
	if h.MaxTimestamp > s.maxTs {
		s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.BaseOffset
	}
	return newIdx, newT
}

// appendIndexes records a batch appended at pos in the in-memory indexes.
// The files are written when the segment's indexes are fsynced (a
// checkpoint after a roll, Close): the active segment's indexes are
// rebuilt by recovery, and writing them on every append would keep two
// more files per partition open (or reopening) on the produce path.
func (s *segment) appendIndexes(h recordbatch.Header, pos, interval int64) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if !s.idxLoaded {
		if err := s.loadIndexLocked(pos, interval); err != nil {
			return err
		}
	}
	if ie, _ := s.noteBatchLocked(h, pos, interval); ie != nil && !s.retired {
		s.idxDirty = true
	}
	return nil
}

// flushIndexesLocked writes the index files if entries were appended
// since they were last written.
func (s *segment) flushIndexesLocked() error {
	if !s.idxDirty || s.retired {
		return nil
	}
	return s.writeIndexFilesLocked()
}

// loadIndexLocked reads the index files for a segment of size bytes,
// checks them and rebuilds them from the log if they are missing or
// inconsistent. It also computes the segment's largest timestamp.
func (s *segment) loadIndexLocked(size, interval int64) error {
	idx, tidx, ok := s.readIndexFiles(size)
	if ok {
		s.idx, s.tidx = idx, tidx
		if err := s.recomputeTailLocked(size); err == nil {
			s.idxLoaded = true
			return nil
		}
	}
	return s.rebuildIndexLocked(size, interval)
}

// readIndexFiles reads both index files and checks their structure.
func (s *segment) readIndexFiles(size int64) ([]indexEntry, []timeEntry, bool) {
	if s.retired {
		return nil, nil, false // rebuilt in memory from the log file still open
	}
	ib, err := readFile(s.fs, segmentFile(s.dir, s.base, indexSuffix), maxSegmentPosition)
	if err != nil || len(ib)%offsetIndexEntrySize != 0 {
		return nil, nil, false
	}
	tb, err := readFile(s.fs, segmentFile(s.dir, s.base, timeIndexSuffix), maxSegmentPosition)
	if err != nil || len(tb)%timeIndexEntrySize != 0 {
		return nil, nil, false
	}
	idx := make([]indexEntry, len(ib)/offsetIndexEntrySize)
	for i := range idx {
		e := indexEntry{rel: binary.BigEndian.Uint32(ib[8*i:]), pos: binary.BigEndian.Uint32(ib[8*i+4:])}
		if e.pos == 0 || int64(e.pos) >= size || (i > 0 && (e.rel <= idx[i-1].rel || e.pos <= idx[i-1].pos)) {
			return nil, nil, false
		}
		idx[i] = e
	}
	tidx := make([]timeEntry, len(tb)/timeIndexEntrySize)
	j := 0
	for i := range tidx {
		t := timeEntry{ts: int64(binary.BigEndian.Uint64(tb[12*i:])), rel: binary.BigEndian.Uint32(tb[12*i+8:])}
		if t.ts < 0 || (i > 0 && (t.ts <= tidx[i-1].ts || t.rel <= tidx[i-1].rel)) {
			return nil, nil, false
		}
		for j < len(idx) && idx[j].rel < t.rel {
			j++
		}
		if j == len(idx) || idx[j].rel != t.rel {
			return nil, nil, false // every time entry sits on an offset index entry
		}
		tidx[i] = t
	}
	if n := len(idx); n > 0 {
		var buf [recordbatch.HeaderSize]byte
		h, err := s.readHeader(int64(idx[n-1].pos), size, buf[:])
		if err != nil || h.BaseOffset != s.base+int64(idx[n-1].rel) {
			return nil, nil, false
		}
	}
	return idx, tidx, true
}

// recomputeTailLocked derives maxTs and bytesSinceIndex from the last time
// index entry and a header walk of the batches after the last index entry.
func (s *segment) recomputeTailLocked(size int64) error {
	s.maxTs, s.maxTsOffset = -1, -1
	from := int64(0)
	if n := len(s.idx); n > 0 {
		from = int64(s.idx[n-1].pos)
	}
	if n := len(s.tidx); n > 0 {
		// The entry's ts was reached by some batch before it; find which
		// only if asked (MaxTimestamp), here the offset of the entry is a
		// lower bound good enough for retention.
		s.maxTs, s.maxTsOffset = s.tidx[n-1].ts, -1
	}
	s.bytesSinceIndex = 0
	return s.walkHeaders(from, size, func(h recordbatch.Header, pos int64) error {
		s.bytesSinceIndex += h.Size()
		if h.MaxTimestamp > s.maxTs {
			s.maxTs, s.maxTsOffset = h.MaxTimestamp, h.BaseOffset
		}
		return nil
	})
}

// rebuildIndexLocked rebuilds both indexes from the log file and rewrites
// their files.
func (s *segment) rebuildIndexLocked(size, interval int64) error {
	s.idx, s.tidx = nil, nil
	s.maxTs, s.maxTsOffset, s.bytesSinceIndex = -1, -1, 0
	err := s.walkHeaders(0, size, func(h recordbatch.Header, pos int64) error {
		s.noteBatchLocked(h, pos, interval)
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: rebuild index of segment %d: %w", s.base, err)
	}
	if err := s.writeIndexFilesLocked(); err != nil {
		return err
	}
	s.idxLoaded = true
	return nil
}

// writeIndexFilesLocked rewrites both index files from memory. Empty
// indexes are stored as no files, as a segment has before its first entry.
// A retired segment keeps its indexes in memory only.
func (s *segment) writeIndexFilesLocked() error {
	if s.retired {
		return nil
	}
	if len(s.idx) == 0 && len(s.tidx) == 0 {
		s.files.drop(&s.offIdx)
		s.files.drop(&s.timeIdx)
		for _, suf := range []string{indexSuffix, timeIndexSuffix} {
			if err := s.fs.Remove(segmentFile(s.dir, s.base, suf)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("storage: remove empty index of segment %d: %w", s.base, err)
			}
		}
		s.idxWritten, s.idxDirty = false, false
		return nil
	}
	ib := make([]byte, 0, len(s.idx)*offsetIndexEntrySize)
	for _, e := range s.idx {
		ib = binary.BigEndian.AppendUint32(ib, e.rel)
		ib = binary.BigEndian.AppendUint32(ib, e.pos)
	}
	tb := make([]byte, 0, len(s.tidx)*timeIndexEntrySize)
	for _, t := range s.tidx {
		tb = binary.BigEndian.AppendUint64(tb, uint64(t.ts))
		tb = binary.BigEndian.AppendUint32(tb, t.rel)
	}
	for _, w := range []struct {
		r   *fileRef
		suf string
		b   []byte
	}{{&s.offIdx, indexSuffix, ib}, {&s.timeIdx, timeIndexSuffix, tb}} {
		if err := s.rewriteIndexLocked(w.r, w.suf, w.b); err != nil {
			return err
		}
	}
	s.idxWritten, s.idxDirty = true, false
	return nil
}

func (s *segment) rewriteIndexLocked(r *fileRef, suffix string, b []byte) error {
	f, err := s.indexFileLocked(r, suffix)
	if err != nil {
		return err
	}
	defer s.files.unpin(r)
	if err := f.Truncate(int64(len(b))); err != nil {
		return fmt.Errorf("storage: rewrite %s of segment %d: %w", suffix, s.base, err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("storage: rewrite %s of segment %d: %w", suffix, s.base, err)
	}
	return nil
}

// closeIndexFilesLocked closes the index files if no one uses them; they
// reopen by name.
func (s *segment) closeIndexFilesLocked() {
	s.files.drop(&s.offIdx)
	s.files.drop(&s.timeIdx)
}

// ensureIndex loads the indexes if needed.
func (s *segment) ensureIndex(size, interval int64) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if s.idxLoaded {
		return nil
	}
	return s.loadIndexLocked(size, interval)
}

// lookup returns the position of the last indexed batch whose base offset
// is ≤ offset (0 if none). It checks the entry against the log and rebuilds
// the indexes if they disagree.
func (s *segment) lookup(offset, size, interval int64) (int64, error) {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	for attempt := 0; ; attempt++ {
		if !s.idxLoaded {
			if err := s.loadIndexLocked(size, interval); err != nil {
				return 0, err
			}
		}
		i := sort.Search(len(s.idx), func(i int) bool { return s.base+int64(s.idx[i].rel) > offset }) - 1
		if i < 0 {
			return 0, nil
		}
		e := s.idx[i]
		if int64(e.pos) < size {
			var buf [recordbatch.HeaderSize]byte
			h, err := s.readHeader(int64(e.pos), size, buf[:])
			if err == nil && h.BaseOffset == s.base+int64(e.rel) {
				return int64(e.pos), nil
			}
		} else {
			// An entry beyond the caller's view of the segment (written
			// after its snapshot): fall back to an earlier one.
			for i >= 0 && int64(s.idx[i].pos) >= size {
				i--
			}
			if i < 0 {
				return 0, nil
			}
			return int64(s.idx[i].pos), nil
		}
		if attempt > 0 {
			return 0, fmt.Errorf("%w: segment %d index disagrees with log after rebuild", ErrCorrupt, s.base)
		}
		s.idxLoaded = false
		if err := s.rebuildIndexLocked(size, interval); err != nil {
			return 0, err
		}
	}
}

// timeLookup returns a position from which scanning finds the first batch
// whose max timestamp is ≥ ts: every batch before it has a smaller one.
func (s *segment) timeLookup(ts, size, interval int64) (int64, error) {
	if err := s.ensureIndex(size, interval); err != nil {
		return 0, err
	}
	s.idxMu.Lock()
	i := sort.Search(len(s.tidx), func(i int) bool { return s.tidx[i].ts >= ts }) - 1
	var rel uint32
	if i >= 0 {
		rel = s.tidx[i].rel
	}
	s.idxMu.Unlock()
	if i < 0 {
		return 0, nil
	}
	return s.lookup(s.base+int64(rel), size, interval)
}

// largestTimestamp returns the segment's largest batch max timestamp
// (loading the indexes if needed), or -1.
func (s *segment) largestTimestamp(size, interval int64) (int64, error) {
	if err := s.ensureIndex(size, interval); err != nil {
		return -1, err
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	return s.maxTs, nil
}

// truncateIndexesLocked drops index entries for batches at or after
// position size (whose first removed batch had offset cut) and recomputes
// the tail state.
func (s *segment) truncateIndexes(size, cut, interval int64) error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	if !s.idxLoaded {
		if err := s.loadIndexLocked(size, interval); err != nil {
			return err
		}
	}
	n := sort.Search(len(s.idx), func(i int) bool { return int64(s.idx[i].pos) >= size })
	s.idx = s.idx[:n:n]
	m := sort.Search(len(s.tidx), func(i int) bool { return s.base+int64(s.tidx[i].rel) >= cut })
	s.tidx = s.tidx[:m:m]
	if err := s.recomputeTailLocked(size); err != nil {
		return err
	}
	return s.writeIndexFilesLocked()
}

// syncIndexes writes the index files if needed and fsyncs them.
func (s *segment) syncIndexes() error {
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	return s.syncIndexesLocked()
}

func (s *segment) syncIndexesLocked() error {
	if err := s.flushIndexesLocked(); err != nil {
		return err
	}
	if !s.idxWritten || s.retired {
		return nil
	}
	for _, x := range []struct {
		r   *fileRef
		suf string
	}{{&s.offIdx, indexSuffix}, {&s.timeIdx, timeIndexSuffix}} {
		f, err := s.indexFileLocked(x.r, x.suf)
		if err != nil {
			return err
		}
		err = f.Sync()
		s.files.unpin(x.r)
		if err != nil {
			return fmt.Errorf("storage: sync index of segment %d: %w", s.base, err)
		}
	}
	return nil
}

// readBatch reads the whole batch whose header h sits at pos.
func (s *segment) readBatch(h recordbatch.Header, pos int64, buf []byte) ([]byte, error) {
	n := int(h.Size())
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if m, err := s.readAt(buf, pos); m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("storage: read segment %d at %d: %w", s.base, pos, err)
	}
	return buf, nil
}
