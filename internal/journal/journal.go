package journal

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/streambus/streambus/internal/vfs"
)

// Errors of the journal.
var (
	// ErrFailed wraps the I/O error that failed the journal (see Reset).
	ErrFailed = errors.New("journal: failed")
	// ErrClosed: the journal was closed.
	ErrClosed = errors.New("journal: closed")
	// ErrTooLarge: an entry's data exceeds MaxPayload.
	ErrTooLarge = errors.New("journal: entry too large")
)

// Options configures a Journal. Zero fields take the defaults listed.
type Options struct {
	// Dir is the journal directory; created if missing. Required.
	Dir string
	// FS is the file system. Default vfs.OS.
	FS vfs.FS
	// FileSize is the size past which the next round goes to a new file.
	// Default 64 MiB.
	FileSize int64
	// Logger receives recovery and failure events. Default: discard.
	Logger *slog.Logger
	// ObserveSync, if set, is told the duration of every fdatasync.
	ObserveSync func(time.Duration)
	// OnRound, if set, is called by the flusher after every round that
	// wrote something, successful or not (then Failed is set), outside the
	// journal's locks. It must not block: the next round waits for it.
	OnRound func()
}

func (o *Options) ensureDefaults() {
	if o.FS == nil {
		o.FS = vfs.OS
	}
	if o.FileSize <= 0 {
		o.FileSize = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Journal is a write-ahead journal; see the package doc. Its methods are
// safe for concurrent use.
type Journal struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	buf      []byte // records appended and not yet taken by the flusher
	spare    []byte // the buffer of the previous round, for reuse
	bufStart int64  // LSN of buf[0]
	failed   error
	closed   bool
	waiters  []waiter
	durable  atomic.Int64 // LSN up to which records are durable; written under mu

	// ioMu serializes file I/O: the flusher's rounds, Reset and Release.
	ioMu    sync.Mutex
	f       vfs.File // the current file
	fileLSN int64    // LSN of the current file's first record
	files   []int64  // LSNs of every file, ascending; the last is current

	kick chan struct{} // capacity 1: a round is wanted
	stop chan struct{}
	done chan struct{}
}

type waiter struct {
	lsn int64
	ch  chan error // capacity 1
}

// Open opens the journal in opts.Dir, creating it if missing, cuts a torn
// tail (see the package doc) and starts the flusher. Call Replay before
// the first Append to read what it holds.
func Open(opts Options) (*Journal, error) {
	opts.ensureDefaults()
	if opts.Dir == "" {
		return nil, errors.New("journal: Options.Dir is required")
	}
	if err := opts.FS.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("journal: create %s: %w", opts.Dir, err)
	}
	// The directory's own entry must be durable before anything in it is.
	if err := opts.FS.SyncDir(filepath.Dir(opts.Dir)); err != nil {
		return nil, fmt.Errorf("journal: sync %s: %w", filepath.Dir(opts.Dir), err)
	}
	j := &Journal{opts: opts, log: opts.Logger, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	end, err := j.recover()
	if err != nil {
		return nil, err
	}
	j.bufStart = end
	j.durable.Store(end)
	go j.flusher()
	return j, nil
}

// recover finds the files, cuts the first torn record and everything after
// it, and opens the last file for appending. It returns the end LSN.
func (j *Journal) recover() (int64, error) {
	fsys, dir := j.opts.FS, j.opts.Dir
	ents, err := fsys.ReadDir(dir)
	if err != nil {
		return 0, fmt.Errorf("journal: list %s: %w", dir, err)
	}
	for _, e := range ents {
		if lsn, ok := parseFileName(e.Name()); ok {
			j.files = append(j.files, lsn)
		}
	}
	slices.Sort(j.files)
	for i, lsn := range j.files {
		valid, size, err := j.scanFile(lsn, nil)
		if err != nil {
			return 0, err
		}
		last := i == len(j.files)-1
		whole := valid == size && valid >= headerSize
		if whole && last {
			break
		}
		if whole && j.files[i+1] == lsn+recordBytes(valid) {
			continue
		}
		// A torn record, a bad header, or a gap before the next file:
		// the journal ends here.
		if last {
			j.log.Warn("journal: torn tail cut", "file", fileName(lsn), "valid_bytes", valid, "size", size)
		} else {
			j.log.Error("journal: records missing or corrupt before the last file; later files removed",
				"file", fileName(lsn), "valid_bytes", valid, "size", size)
		}
		if err := j.cutFile(lsn, valid); err != nil {
			return 0, err
		}
		for _, later := range j.files[i+1:] {
			if err := fsys.Remove(filepath.Join(dir, fileName(later))); err != nil {
				return 0, fmt.Errorf("journal: remove %s: %w", fileName(later), err)
			}
		}
		j.files = j.files[:i+1]
		if err := fsys.SyncDir(dir); err != nil {
			return 0, fmt.Errorf("journal: sync %s: %w", dir, err)
		}
		break
	}
	if len(j.files) == 0 {
		if err := j.newFile(0); err != nil {
			return 0, err
		}
		return 0, nil
	}
	lsn := j.files[len(j.files)-1]
	f, err := fsys.OpenFile(filepath.Join(dir, fileName(lsn)), os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("journal: open %s: %w", fileName(lsn), err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, fmt.Errorf("journal: stat %s: %w", fileName(lsn), err)
	}
	j.f, j.fileLSN = f, lsn
	return lsn + recordBytes(st.Size()), nil
}

// recordBytes is the LSN span of a file of size bytes.
func recordBytes(size int64) int64 { return max(size-headerSize, 0) }

// scanFile reads file lsn and calls fn (if set) for each valid record with
// the LSN after it. It returns the size of the valid prefix (header and
// whole records; 0 when the header itself is bad) and the file's size.
func (j *Journal) scanFile(lsn int64, fn func(end int64, e Entry) error) (valid, size int64, err error) {
	name := filepath.Join(j.opts.Dir, fileName(lsn))
	f, err := j.opts.FS.Open(name)
	if err != nil {
		return 0, 0, fmt.Errorf("journal: open %s: %w", name, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("journal: stat %s: %w", name, err)
	}
	size = st.Size()
	data := make([]byte, size)
	if _, err := f.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		return 0, 0, fmt.Errorf("journal: read %s: %w", name, err)
	}
	if parseHeader(data, lsn) != nil {
		return 0, size, nil
	}
	pos := int64(headerSize)
	for pos < size {
		e, n, err := parseRecord(data[pos:])
		if err != nil {
			break
		}
		pos += int64(n)
		if fn != nil {
			if err := fn(lsn+recordBytes(pos), e); err != nil {
				return pos, size, err
			}
		}
	}
	return pos, size, nil
}

// cutFile truncates file lsn to its valid prefix; a file without a valid
// header is rewritten as an empty file.
func (j *Journal) cutFile(lsn, valid int64) error {
	name := filepath.Join(j.opts.Dir, fileName(lsn))
	f, err := j.opts.FS.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("journal: open %s: %w", name, err)
	}
	defer f.Close()
	if valid < headerSize {
		if err := f.Truncate(0); err != nil {
			return fmt.Errorf("journal: cut %s: %w", name, err)
		}
		if _, err := f.WriteAt(appendHeader(nil, lsn), 0); err != nil {
			return fmt.Errorf("journal: cut %s: %w", name, err)
		}
	} else if err := f.Truncate(valid); err != nil {
		return fmt.Errorf("journal: cut %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("journal: cut %s: %w", name, err)
	}
	return nil
}

// newFile creates file lsn with its header, durably (file and directory
// entry), and makes it the current file. Called with ioMu held, or before
// the flusher starts.
func (j *Journal) newFile(lsn int64) error {
	name := filepath.Join(j.opts.Dir, fileName(lsn))
	f, err := j.opts.FS.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("journal: create %s: %w", name, err)
	}
	if _, err := f.WriteAt(appendHeader(nil, lsn), 0); err != nil {
		f.Close()
		return fmt.Errorf("journal: write %s: %w", name, err)
	}
	if err := j.sync(f); err != nil {
		f.Close()
		return fmt.Errorf("journal: sync %s: %w", name, err)
	}
	if err := j.opts.FS.SyncDir(j.opts.Dir); err != nil {
		f.Close()
		return fmt.Errorf("journal: sync %s: %w", j.opts.Dir, err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.fileLSN = f, lsn
	if n := len(j.files); n == 0 || j.files[n-1] != lsn {
		j.files = append(j.files, lsn)
	}
	return nil
}

func (j *Journal) sync(f vfs.File) error {
	start := time.Now()
	err := f.Sync()
	if j.opts.ObserveSync != nil {
		j.opts.ObserveSync(time.Since(start))
	}
	return err
}

// Replay calls fn, in journal order, for every entry with the LSN just
// after it. Data is valid only during the call. Call it before Append.
func (j *Journal) Replay(fn func(lsn int64, e Entry) error) error {
	j.ioMu.Lock()
	files := slices.Clone(j.files)
	j.ioMu.Unlock()
	for _, lsn := range files {
		if _, _, err := j.scanFile(lsn, fn); err != nil {
			return err
		}
	}
	return nil
}

// Append adds e to the journal and returns the LSN just after its record:
// the entry is durable once Sync of that LSN returns nil. It does no I/O.
func (j *Journal) Append(e Entry) (int64, error) {
	if len(e.Data) > MaxPayload-payloadHeader {
		return 0, ErrTooLarge
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	switch {
	case j.closed:
		return 0, ErrClosed
	case j.failed != nil:
		return 0, j.failed
	}
	j.buf = appendRecord(j.buf, e)
	return j.bufStart + int64(len(j.buf)), nil
}

// Flush starts a round for what was appended, without waiting for it.
func (j *Journal) Flush() {
	select {
	case j.kick <- struct{}{}:
	default:
	}
}

// End is the LSN after the last appended record.
func (j *Journal) End() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.bufStart + int64(len(j.buf))
}

// Durable is the LSN up to which records are durable.
func (j *Journal) Durable() int64 { return j.durable.Load() }

// Sync blocks until the records up to lsn are durable, or the journal
// fails or closes.
func (j *Journal) Sync(lsn int64) error {
	return <-j.SyncAsync(lsn)
}

// SyncAsync is Sync without blocking: the channel receives nil once the
// records up to lsn are durable, or the error.
func (j *Journal) SyncAsync(lsn int64) <-chan error {
	ch := make(chan error, 1)
	j.mu.Lock()
	switch {
	case j.durable.Load() >= lsn:
		ch <- nil
	case j.failed != nil:
		ch <- j.failed
	case j.closed:
		ch <- ErrClosed
	default:
		j.waiters = append(j.waiters, waiter{lsn, ch})
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	j.mu.Unlock()
	return ch
}

// flusher runs group-commit rounds until Close.
func (j *Journal) flusher() {
	defer close(j.done)
	for {
		select {
		case <-j.kick:
		case <-j.stop:
			j.round()
			return
		}
		j.round()
	}
}

// round runs one group-commit round and then tells OnRound.
func (j *Journal) round() {
	if j.writeRound() && j.opts.OnRound != nil {
		j.opts.OnRound()
	}
}

// writeRound writes what was appended and fdatasyncs it; it reports
// whether there was anything to write.
func (j *Journal) writeRound() bool {
	j.ioMu.Lock()
	defer j.ioMu.Unlock()
	j.mu.Lock()
	if len(j.buf) == 0 || j.failed != nil {
		j.mu.Unlock()
		return false
	}
	take, start := j.buf, j.bufStart
	j.buf, j.spare = j.spare[:0], nil
	j.bufStart = start + int64(len(take))
	j.mu.Unlock()

	err := j.writeLocked(take, start)
	if err != nil {
		// Cut what the failed round may have written at once (a cut
		// needs no free space), so that a crash before Reset cannot
		// bring back records whose callers were told they failed.
		if terr := j.f.Truncate(headerSize + start - j.fileLSN); terr == nil {
			j.f.Sync()
		} else {
			j.log.Error("journal: cannot cut a failed round", "err", terr)
		}
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	if j.spare == nil && cap(take) <= 4<<20 {
		j.spare = take[:0]
	}
	if err != nil {
		j.failLocked(err)
		return true
	}
	end := start + int64(len(take))
	j.durable.Store(end)
	kept := j.waiters[:0]
	for _, w := range j.waiters {
		if w.lsn <= end {
			w.ch <- nil
		} else {
			kept = append(kept, w)
		}
	}
	clear(j.waiters[len(kept):])
	j.waiters = kept
	if len(j.waiters) > 0 {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	return true
}

// writeLocked writes records starting at LSN start to the current file,
// first rotating to a new file when the current one is full, then
// fdatasyncs.
func (j *Journal) writeLocked(recs []byte, start int64) error {
	pos := headerSize + (start - j.fileLSN)
	if pos > headerSize && pos+int64(len(recs)) > j.opts.FileSize {
		if err := j.newFile(start); err != nil {
			return err
		}
		pos = headerSize
	}
	if _, err := j.f.WriteAt(recs, pos); err != nil {
		return fmt.Errorf("journal: write %s: %w", j.f.Name(), err)
	}
	if err := j.sync(j.f); err != nil {
		return fmt.Errorf("journal: fdatasync %s: %w", j.f.Name(), err)
	}
	return nil
}

// failLocked fails the journal: every waiter and later call get the error.
func (j *Journal) failLocked(err error) {
	if j.failed == nil {
		j.failed = fmt.Errorf("%w: %w", ErrFailed, err)
		j.log.Error("journal failed", "err", err)
	}
	for _, w := range j.waiters {
		w.ch <- j.failed
	}
	j.waiters = nil
	j.buf = j.buf[:0]
	j.bufStart = j.durable.Load()
}

// Failed returns the error that failed the journal, or nil.
func (j *Journal) Failed() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.failed
}

// Reset makes a failed journal usable again: the current file is cut
// back to the durable LSN (what a failed round may have written is
// removed) and appends are accepted from there. The caller decides when
// (space is available again); a Reset that fails leaves the journal
// failed.
func (j *Journal) Reset() error {
	j.ioMu.Lock()
	defer j.ioMu.Unlock()
	j.mu.Lock()
	failed := j.failed
	j.mu.Unlock()
	if failed == nil {
		return nil
	}
	durable := j.durable.Load()
	if durable < j.fileLSN {
		return fmt.Errorf("journal: reset: durable LSN %d before the current file %d", durable, j.fileLSN)
	}
	if err := j.f.Truncate(headerSize + durable - j.fileLSN); err != nil {
		return fmt.Errorf("journal: reset: %w", err)
	}
	if err := j.sync(j.f); err != nil {
		return fmt.Errorf("journal: reset: %w", err)
	}
	j.mu.Lock()
	j.failed = nil
	j.buf = j.buf[:0]
	j.bufStart = durable
	j.mu.Unlock()
	j.log.Info("journal reset", "lsn", durable)
	return nil
}

// Release removes the files holding only records below lsn (never the
// current file), once the caller has made them redundant.
func (j *Journal) Release(lsn int64) error {
	j.ioMu.Lock()
	defer j.ioMu.Unlock()
	removed := 0
	for len(j.files) > 1 && j.files[1] <= lsn {
		name := filepath.Join(j.opts.Dir, fileName(j.files[0]))
		if err := j.opts.FS.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("journal: release %s: %w", name, err)
		}
		j.files = j.files[1:]
		removed++
	}
	if removed > 0 {
		if err := j.opts.FS.SyncDir(j.opts.Dir); err != nil {
			return fmt.Errorf("journal: release: %w", err)
		}
	}
	return nil
}

// Files lists the LSNs of the journal files, oldest first.
func (j *Journal) Files() []int64 {
	j.ioMu.Lock()
	defer j.ioMu.Unlock()
	return slices.Clone(j.files)
}

// Close makes everything appended durable (if it can), stops the flusher
// and closes the file. Later calls return ErrClosed.
func (j *Journal) Close() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	j.closed = true
	j.mu.Unlock()
	close(j.stop)
	<-j.done
	j.mu.Lock()
	err := j.failed
	for _, w := range j.waiters {
		w.ch <- ErrClosed
	}
	j.waiters = nil
	j.mu.Unlock()
	j.ioMu.Lock()
	defer j.ioMu.Unlock()
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("journal: close: %w", cerr)
	}
	return err
}
