package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Op names a MemFS operation, for fault injection.
type Op int

// Operations passed to an Injector.
const (
	OpOpen Op = iota
	OpCreate
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpRemove
	OpRename
	OpMkdir
	OpReadDir
	OpSyncDir
)

func (o Op) String() string {
	return [...]string{"open", "create", "read", "write", "sync", "truncate", "remove", "rename", "mkdir", "readdir", "syncdir"}[o]
}

// ErrInjected is the error MemFS returns for an injected fault (unless the
// Injector returns its own error).
var ErrInjected = errors.New("vfs: injected error")

// PartialWriteError, returned by an Injector for OpWrite, makes the write
// store its first N bytes and then fail: a torn write.
type PartialWriteError struct{ N int }

func (e *PartialWriteError) Error() string {
	return fmt.Sprintf("vfs: injected partial write of %d bytes", e.N)
}

// Unwrap makes errors.Is(err, ErrInjected) true.
func (e *PartialWriteError) Unwrap() error { return ErrInjected }

// Injector decides whether an operation on name fails. It is called with
// the MemFS lock held and must not call back into the MemFS.
type Injector func(op Op, name string) error

// MemFS is an in-memory FS that tracks, per file, the data written and the
// data last fsynced, and per directory, the entries present and the entries
// last made durable by SyncDir. CrashClone returns what a machine crash
// would leave behind. Directories created by MkdirAll are, like files, only
// durable once their parent is synced; the root always exists.
//
// All methods are safe for concurrent use; a single lock serialises them,
// which is fine for tests.
type MemFS struct {
	mu     sync.Mutex
	root   *memNode
	inject Injector
}

type memNode struct {
	isDir          bool
	data, synced   []byte
	clean          int // data[:clean] equals synced[:clean]: Sync copies only the rest
	children       map[string]*memNode
	syncedChildren map[string]*memNode
	modTime        time.Time
}

func newDir() *memNode {
	return &memNode{isDir: true, children: map[string]*memNode{}, syncedChildren: map[string]*memNode{}, modTime: time.Unix(0, 0)}
}

// NewMem returns an empty MemFS.
func NewMem() *MemFS { return &MemFS{root: newDir()} }

// SetInjector installs (or, with nil, removes) a fault injector.
func (m *MemFS) SetInjector(inj Injector) {
	m.mu.Lock()
	m.inject = inj
	m.mu.Unlock()
}

func (m *MemFS) faultLocked(op Op, name string) error {
	if m.inject == nil {
		return nil
	}
	return m.inject(op, name)
}

func split(name string) []string {
	clean := filepath.ToSlash(filepath.Clean(name))
	var parts []string
	for _, p := range strings.Split(clean, "/") {
		if p != "" && p != "." {
			parts = append(parts, p)
		}
	}
	return parts
}

// lookupLocked returns the node at name, or nil.
func (m *MemFS) lookupLocked(name string) *memNode {
	n := m.root
	for _, p := range split(name) {
		if !n.isDir {
			return nil
		}
		n = n.children[p]
		if n == nil {
			return nil
		}
	}
	return n
}

// parentLocked returns the directory holding name and the base name.
func (m *MemFS) parentLocked(name string) (*memNode, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", fmt.Errorf("vfs: invalid path %q", name)
	}
	dir := m.root
	for _, p := range parts[:len(parts)-1] {
		next := dir.children[p]
		if next == nil || !next.isDir {
			return nil, "", &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		dir = next
	}
	return dir, parts[len(parts)-1], nil
}

// OpenFile implements FS. Supported flags: O_RDONLY, O_RDWR, O_WRONLY,
// O_CREATE, O_EXCL, O_TRUNC, O_APPEND.
func (m *MemFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	op := OpOpen
	if flag&os.O_CREATE != 0 {
		op = OpCreate
	}
	if err := m.faultLocked(op, name); err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	dir, base, err := m.parentLocked(name)
	if err != nil {
		return nil, err
	}
	n := dir.children[base]
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case n != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case n != nil && n.isDir:
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("is a directory")}
	case n == nil:
		n = &memNode{modTime: time.Now()}
		dir.children[base] = n
	}
	if flag&os.O_TRUNC != 0 {
		n.data = n.data[:0:0]
		n.clean = 0
	}
	return &memFile{fs: m, n: n, name: name, flag: flag}, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	return m.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) { return m.OpenFile(name, os.O_RDONLY, 0) }

// Remove implements FS: it removes a file or an empty directory.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpRemove, name); err != nil {
		return &fs.PathError{Op: "remove", Path: name, Err: err}
	}
	dir, base, err := m.parentLocked(name)
	if err != nil {
		return err
	}
	n := dir.children[base]
	if n == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	if n.isDir && len(n.children) > 0 {
		return &fs.PathError{Op: "remove", Path: name, Err: errors.New("directory not empty")}
	}
	delete(dir.children, base)
	return nil
}

// RemoveAll implements FS.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpRemove, name); err != nil {
		return &fs.PathError{Op: "removeall", Path: name, Err: err}
	}
	dir, base, err := m.parentLocked(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	delete(dir.children, base)
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpRename, oldname); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	odir, obase, err := m.parentLocked(oldname)
	if err != nil {
		return err
	}
	n := odir.children[obase]
	if n == nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: fs.ErrNotExist}
	}
	ndir, nbase, err := m.parentLocked(newname)
	if err != nil {
		return err
	}
	if old := ndir.children[nbase]; old != nil && old.isDir && (!n.isDir || len(old.children) > 0) {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: errors.New("target is a directory")}
	}
	delete(odir.children, obase)
	ndir.children[nbase] = n
	return nil
}

// MkdirAll implements FS.
func (m *MemFS) MkdirAll(dir string, perm fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpMkdir, dir); err != nil {
		return &fs.PathError{Op: "mkdir", Path: dir, Err: err}
	}
	n := m.root
	for _, p := range split(dir) {
		c := n.children[p]
		if c == nil {
			c = newDir()
			n.children[p] = c
		} else if !c.isDir {
			return &fs.PathError{Op: "mkdir", Path: dir, Err: errors.New("not a directory")}
		}
		n = c
	}
	return nil
}

// ReadDir implements FS.
func (m *MemFS) ReadDir(dir string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpReadDir, dir); err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: err}
	}
	n := m.lookupLocked(dir)
	if n == nil || !n.isDir {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	out := make([]fs.DirEntry, 0, len(n.children))
	for name, c := range n.children {
		out = append(out, fs.FileInfoToDirEntry(infoOf(name, c)))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.lookupLocked(name)
	if n == nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return infoOf(filepath.Base(name), n), nil
}

// SyncDir implements FS: the directory's current entries become durable.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.faultLocked(OpSyncDir, dir); err != nil {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: err}
	}
	n := m.lookupLocked(dir)
	if n == nil || !n.isDir {
		return &fs.PathError{Op: "syncdir", Path: dir, Err: fs.ErrNotExist}
	}
	n.syncedChildren = make(map[string]*memNode, len(n.children))
	for k, v := range n.children {
		n.syncedChildren[k] = v
	}
	return nil
}

// CrashOptions shape what CrashClone keeps beyond the synced state.
type CrashOptions struct {
	// Rand, when set, makes each file with unsynced data keep a random
	// prefix of it (possibly none, possibly all): a torn write. Nil keeps
	// exactly the synced data.
	Rand *rand.Rand
	// Process, when set, keeps everything, synced or not, as a process
	// crash does (the page cache survives it). Rand is then ignored.
	Process bool
}

// CrashClone returns a new MemFS holding what survives a crash now: the
// durable directory entries and, in each file, its fsynced data (plus,
// with opts.Rand, a random prefix of its unsynced data). m itself is not
// changed, so handles open on it keep working against the old state.
func (m *MemFS) CrashClone(opts CrashOptions) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	return &MemFS{root: crashCopy(m.root, opts)}
}

func crashCopy(n *memNode, opts CrashOptions) *memNode {
	if n.isDir {
		d := newDir()
		entries := n.syncedChildren
		if opts.Process {
			entries = n.children
		}
		for name, c := range entries {
			cc := crashCopy(c, opts)
			d.children[name] = cc
			d.syncedChildren[name] = cc
		}
		return d
	}
	data := append([]byte(nil), n.synced...)
	if rng := opts.Rand; opts.Process {
		data = append([]byte(nil), n.data...)
	} else if rng != nil && len(n.data) > len(n.synced) && rng.Intn(2) == 0 {
		keep := len(n.synced) + rng.Intn(len(n.data)-len(n.synced)+1)
		data = append([]byte(nil), n.data[:keep]...)
	}
	return &memNode{data: data, synced: append([]byte(nil), data...), clean: len(data), modTime: n.modTime}
}

// Garble overwrites n bytes of name at off with garbage, in both the
// current and the synced state: on-disk corruption that survives a crash.
// Bytes beyond the end of the file are ignored.
func (m *MemFS) Garble(name string, off int64, n int, rng *rand.Rand) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	node := m.lookupLocked(name)
	if node == nil || node.isDir {
		return &fs.PathError{Op: "garble", Path: name, Err: fs.ErrNotExist}
	}
	for i := off; i < off+int64(n); i++ {
		x := byte(rng.Intn(255) + 1) // never zero, so every byte changes
		if i < int64(len(node.data)) {
			node.data[i] ^= x
		}
		if i < int64(len(node.synced)) {
			node.synced[i] ^= x
		}
	}
	return nil
}

type memInfo struct {
	name  string
	size  int64
	isDir bool
	mod   time.Time
}

func infoOf(name string, n *memNode) memInfo {
	return memInfo{name: name, size: int64(len(n.data)), isDir: n.isDir, mod: n.modTime}
}

func (i memInfo) Name() string { return i.name }
func (i memInfo) Size() int64  { return i.size }
func (i memInfo) Mode() fs.FileMode {
	if i.isDir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (i memInfo) ModTime() time.Time { return i.mod }
func (i memInfo) IsDir() bool        { return i.isDir }
func (i memInfo) Sys() any           { return nil }

type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	flag   int
	pos    int64
	closed bool
}

var errClosed = errors.New("vfs: file already closed")

func (f *memFile) Name() string { return f.name }

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return 0, errClosed
	}
	if err := f.fs.faultLocked(OpRead, f.name); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, errors.New("vfs: negative offset")
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) writable() bool { return f.flag&(os.O_WRONLY|os.O_RDWR) != 0 }

func (f *memFile) writeAtLocked(p []byte, off int64) (int, error) {
	if f.closed {
		return 0, errClosed
	}
	if !f.writable() {
		return 0, errors.New("vfs: file not open for writing")
	}
	var injected error
	if err := f.fs.faultLocked(OpWrite, f.name); err != nil {
		var pw *PartialWriteError
		if !errors.As(err, &pw) {
			return 0, err
		}
		injected = err
		p = p[:min(max(pw.N, 0), len(p))]
	}
	f.n.clean = int(min(int64(f.n.clean), off))
	end := off + int64(len(p))
	if end > int64(len(f.n.data)) {
		if end > int64(cap(f.n.data)) {
			grown := make([]byte, end, max(end, 2*int64(cap(f.n.data))))
			copy(grown, f.n.data)
			f.n.data = grown
		} else {
			f.n.data = f.n.data[:end]
		}
	}
	copy(f.n.data[off:], p)
	if injected != nil {
		return len(p), injected
	}
	return len(p), nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.flag&os.O_APPEND != 0 {
		return 0, errors.New("vfs: WriteAt on O_APPEND file")
	}
	return f.writeAtLocked(p, off)
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	off := f.pos
	if f.flag&os.O_APPEND != 0 {
		off = int64(len(f.n.data))
	}
	n, err := f.writeAtLocked(p, off)
	f.pos = off + int64(n)
	return n, err
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return errClosed
	}
	if err := f.fs.faultLocked(OpSync, f.name); err != nil {
		return err
	}
	n := f.n
	from := min(n.clean, len(n.synced), len(n.data))
	n.synced = append(n.synced[:from], n.data[from:]...)
	n.clean = len(n.data)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return errClosed
	}
	if err := f.fs.faultLocked(OpTruncate, f.name); err != nil {
		return err
	}
	if size < 0 {
		return errors.New("vfs: negative size")
	}
	f.n.clean = int(min(int64(f.n.clean), size, int64(len(f.n.data))))
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return errClosed
	}
	f.closed = true
	return nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return nil, errClosed
	}
	return infoOf(filepath.Base(f.name), f.n), nil
}
