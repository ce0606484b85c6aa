// Package diskspace watches the free space of the file system holding a
// data directory, so that the broker can refuse writes while it is below a
// reserve (log.dir.min.free.bytes) instead of filling the disk to the last
// byte: checkpoints, metadata and compaction keep room to work, and the
// partitions recover by themselves once space is freed.
//
// A Monitor reads statfs(2) at most once per Interval, on the caller's
// goroutine; it starts no goroutine.
package diskspace

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Config configures a Monitor. Zero fields take the defaults listed.
type Config struct {
	// Dir is a path on the watched file system. Required.
	Dir string
	// Reserve is the free space, in bytes, below which Low reports true.
	// 0 disables the check.
	Reserve int64
	// Interval bounds how often statfs runs. Default 250 ms.
	Interval time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Statfs returns the bytes available to unprivileged users on the
	// file system of dir. Default: statfs(2)'s f_bavail × f_bsize.
	Statfs func(dir string) (int64, error)
}

// Monitor reports whether free space is below the reserve. Safe for
// concurrent use.
type Monitor struct {
	cfg Config

	mu      sync.Mutex
	checked time.Time
	free    int64
	err     error
}

// New returns a Monitor; it reads the free space once to check Dir.
func New(cfg Config) (*Monitor, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("diskspace: Config.Dir is required")
	}
	if cfg.Reserve < 0 {
		return nil, fmt.Errorf("diskspace: negative reserve %d", cfg.Reserve)
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 250 * time.Millisecond
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Statfs == nil {
		cfg.Statfs = statfs
	}
	m := &Monitor{cfg: cfg}
	if _, err := m.Free(); err != nil {
		return nil, err
	}
	return m, nil
}

func statfs(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("diskspace: statfs %s: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// Free returns the free bytes as last read (at most Interval old).
func (m *Monitor) Free() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.cfg.Now()
	if m.checked.IsZero() || now.Sub(m.checked) >= m.cfg.Interval || now.Before(m.checked) {
		m.free, m.err = m.cfg.Statfs(m.cfg.Dir)
		m.checked = now
	}
	return m.free, m.err
}

// Low reports whether the free space is below the reserve. A failing
// statfs counts as not low: the writes themselves will report the disk's
// errors.
func (m *Monitor) Low() bool {
	if m == nil || m.cfg.Reserve == 0 {
		return false
	}
	free, err := m.Free()
	return err == nil && free < m.cfg.Reserve
}

// Reserve is the configured reserve in bytes.
func (m *Monitor) Reserve() int64 { return m.cfg.Reserve }
