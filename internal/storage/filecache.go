package storage

import (
	"errors"
	"os"
	"sync"
	"syscall"

	"github.com/streambus/streambus/internal/vfs"
)

// fileCache bounds the segment and index files a Manager keeps open
// (ManagerOptions.MaxOpenFiles), as Pebble's table cache and RocksDB's
// max_open_files do, so that the number of partitions is not bounded by
// the process's file descriptor limit.
//
// Each file is a fileRef inside its segment. Code that does I/O pins the
// file for the duration of the call (a Slice, until Release), which opens
// it by name if it is not open. Unpinned open files sit in an LRU list,
// and the least recently used are closed whenever more than max files are
// open. A pinned file is never closed, so the bound is exceeded only while
// more than max files are pinned at once.
//
// A name stops meaning its file when the segment leaves the log (unlinked
// by retention or truncation, replaced by a compaction swap, its
// directory renamed by Delete). retire marks the fileRef gone first, so it
// is never opened by name again, and keeps the file open for readers that
// still hold the segment.
//
// If the process runs out of descriptors, every unpinned file is closed
// and the open retried once (openShedding).
//
// Lock order: Log.mu, segment.idxMu, fileRef.openMu, fileCache.mu. No I/O
// but close(2) happens under fileCache.mu.
type fileCache struct {
	max int

	mu    sync.Mutex
	nopen int     // files open, pinned or in lru
	lru   fileRef // sentinel of the unpinned open files, least recently used at lru.next
}

// fileRef is one file of a segment as the cache sees it.
type fileRef struct {
	openMu sync.Mutex // held while opening the file by name, and by retire

	// Guarded by fileCache.mu.
	f          vfs.File
	osf        *os.File // f's *os.File on the OS filesystem (sendfile)
	pins       int32
	kept       bool     // retire took a pin that release drops
	gone       bool     // never open by name again
	prev, next *fileRef // in lru while open and unpinned
}

// errFileGone is returned for a file that is no longer the segment's: it
// was closed after its segment left the log.
var errFileGone = errors.New("storage: segment file no longer in the log")

func newFileCache(max int) *fileCache {
	c := &fileCache{max: max}
	c.lru.prev, c.lru.next = &c.lru, &c.lru
	return c
}

// pin returns r's file pinned, opening it with open if it is not open.
// The caller unpins it.
func (c *fileCache) pin(r *fileRef, open func() (vfs.File, error)) (vfs.File, *os.File, error) {
	if f, osf, ok := c.tryPin(r); ok {
		return f, osf, nil
	}
	r.openMu.Lock()
	defer r.openMu.Unlock()
	if f, osf, ok := c.tryPin(r); ok { // opened while we waited
		return f, osf, nil
	}
	c.mu.Lock()
	gone := r.gone
	c.mu.Unlock()
	if gone {
		return nil, nil, errFileGone
	}
	f, err := c.openShedding(open)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(r, f)
	r.pins++
	c.evictLocked()
	return f, r.osf, nil
}

// tryPin pins r if it is open.
func (c *fileCache) tryPin(r *fileRef) (vfs.File, *os.File, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.f == nil {
		return nil, nil, false
	}
	if r.pins == 0 {
		r.unlinkLocked()
	}
	r.pins++
	return r.f, r.osf, true
}

// unpin drops a pin; the last one makes the file evictable, or closes it
// if it is gone.
func (c *fileCache) unpin(r *fileRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.pins--
	if r.pins > 0 {
		return
	}
	if r.gone {
		c.closeLocked(r)
		return
	}
	r.prev, r.next = c.lru.prev, &c.lru
	c.lru.prev.next = r
	c.lru.prev = r
	c.evictLocked()
}

// adopt makes f, just created or opened by the caller, r's open file:
// pinned (the caller unpins it) or else evictable.
func (c *fileCache) adopt(r *fileRef, f vfs.File, pinned bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addLocked(r, f)
	if pinned {
		r.pins++
	} else {
		r.prev, r.next = c.lru.prev, &c.lru
		c.lru.prev.next = r
		c.lru.prev = r
	}
	c.evictLocked()
}

func (c *fileCache) addLocked(r *fileRef, f vfs.File) {
	r.f, r.osf = f, vfs.OSFile(f)
	c.nopen++
}

// openShedding calls open; if the process is out of descriptors (which
// connections share), it closes every unpinned file and tries once more.
func (c *fileCache) openShedding(open func() (vfs.File, error)) (vfs.File, error) {
	f, err := open()
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		c.mu.Lock()
		for c.lru.next != &c.lru {
			c.closeLocked(c.lru.next)
		}
		c.mu.Unlock()
		f, err = open()
	}
	return f, err
}

// evictLocked closes least recently used unpinned files while more than
// max are open.
func (c *fileCache) evictLocked() {
	for c.nopen > c.max && c.lru.next != &c.lru {
		r := c.lru.next
		r.unlinkLocked()
		c.closeLocked(r)
	}
}

func (r *fileRef) unlinkLocked() {
	if r.next != nil {
		r.prev.next, r.next.prev = r.next, r.prev
		r.prev, r.next = nil, nil
	}
}

// closeLocked closes r's file, which no one has pinned.
func (c *fileCache) closeLocked(r *fileRef) {
	if r.f == nil {
		return
	}
	r.unlinkLocked()
	r.f.Close() // read-only use or data already written: nothing to report
	r.f, r.osf = nil, nil
	c.nopen--
}

// retire marks r gone, before its name stops meaning its file. If keep is
// set (others still hold the segment), the file stays open for them,
// opened with open if needed, until release; if opening fails their I/O
// gets errFileGone.
func (c *fileCache) retire(r *fileRef, keep bool, open func() (vfs.File, error)) {
	r.openMu.Lock() // an open by name in progress finishes first
	defer r.openMu.Unlock()
	c.mu.Lock()
	r.gone = true
	if !keep || r.kept {
		c.mu.Unlock()
		return
	}
	if r.f == nil {
		c.mu.Unlock()
		f, err := c.openShedding(open)
		if err != nil {
			return
		}
		c.mu.Lock()
		c.addLocked(r, f)
	} else if r.pins == 0 {
		r.unlinkLocked()
	}
	r.pins++
	r.kept = true
	c.mu.Unlock()
}

// release closes r for good (its segment's last reference went): now,
// or when the last pin goes.
func (c *fileCache) release(r *fileRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r.gone = true
	if r.kept {
		r.kept = false
		r.pins--
	}
	if r.pins == 0 {
		c.closeLocked(r)
	}
}

// drop closes r's file if no one has it pinned, without marking it gone:
// the next pin reopens it by name.
func (c *fileCache) drop(r *fileRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.pins == 0 {
		c.closeLocked(r)
	}
}

// stats returns the files open and the bound.
func (c *fileCache) stats() (open, max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nopen, c.max
}
