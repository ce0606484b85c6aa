// Package vfs is the small filesystem interface the storage engine is
// written against, with two implementations: OS, the real filesystem, and
// MemFS, an in-memory filesystem for tests that models what survives a
// machine crash (only fsynced file data and only directory entries made
// durable by syncing their directory) and can inject faults.
//
// The interface is deliberately narrow: positional reads and writes, sync,
// truncate, and the directory operations a log needs. Directory durability
// is explicit (SyncDir), because on Linux a created, renamed or removed
// name is durable only after its parent directory is fsynced.
package vfs

import (
	"io"
	"io/fs"
	"os"
	"syscall"
)

// File is an open file. Implementations must allow concurrent ReadAt calls
// with each other and with WriteAt/Write at other positions, as os.File does.
type File interface {
	io.ReaderAt
	io.Writer // appends at the end of the file for files opened with O_APPEND, else at the current offset
	io.WriterAt
	Sync() error
	Truncate(size int64) error
	Close() error
	Stat() (fs.FileInfo, error)
	Name() string
}

// FS is a filesystem. All names are slash- or OS-separated paths as
// accepted by path/filepath.
type FS interface {
	// OpenFile opens name with os.O_* flags, like os.OpenFile.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Create creates or truncates name for reading and writing.
	Create(name string) (File, error)
	// Open opens name read-only.
	Open(name string) (File, error)
	Remove(name string) error
	RemoveAll(name string) error
	// Rename atomically replaces newname with oldname (files or directories).
	Rename(oldname, newname string) error
	MkdirAll(dir string, perm fs.FileMode) error
	// ReadDir lists a directory sorted by name.
	ReadDir(dir string) ([]fs.DirEntry, error)
	Stat(name string) (fs.FileInfo, error)
	// SyncDir makes the directory's entries (creations, renames, removals)
	// durable.
	SyncDir(dir string) error
}

// OSFile returns the *os.File behind f when f is a real file of the OS
// filesystem (for sendfile), else nil.
func OSFile(f File) *os.File {
	if o, ok := f.(*osFile); ok {
		return o.File
	}
	return nil
}

// OS is the real filesystem.
var OS FS = osFS{}

type osFS struct{}

type osFile struct{ *os.File }

func wrap(f *os.File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	return wrap(os.OpenFile(name, flag, perm))
}
func (osFS) Create(name string) (File, error)            { return wrap(os.Create(name)) }
func (osFS) Open(name string) (File, error)              { return wrap(os.Open(name)) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) RemoveAll(name string) error                 { return os.RemoveAll(name) }
func (osFS) Rename(o, n string) error                    { return os.Rename(o, n) }
func (osFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }
func (osFS) ReadDir(dir string) ([]fs.DirEntry, error)   { return os.ReadDir(dir) }
func (osFS) Stat(name string) (fs.FileInfo, error)       { return os.Stat(name) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Sync flushes the file's data, and the metadata needed to read it back
// (its size), with fdatasync(2): a log append changes nothing else worth an
// inode journal write (mtime), and fsync's extra work showed in produce
// throughput.
func (f *osFile) Sync() error {
	rc, err := f.File.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		for {
			serr = syscall.Fdatasync(int(fd))
			if serr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	if serr != nil {
		return &fs.PathError{Op: "fdatasync", Path: f.Name(), Err: serr}
	}
	return nil
}
