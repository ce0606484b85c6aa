package controller

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Every connection to a controller's RaftAddr starts with one tag byte that
// says who is speaking, so raft traffic and forwarded Store calls share one
// listener (and one firewall rule). The tags are part of the wire format.
const (
	tagRaft    byte = 'R'
	tagForward byte = 'F'
)

// tagReadTimeout bounds how long an accepted connection may take to send
// its tag byte, so a silent peer cannot hold an accept slot.
const tagReadTimeout = 5 * time.Second

// muxLayer is the raft.StreamLayer. It owns the TCP listener and one accept
// goroutine; raft-tagged connections are handed to raft through Accept,
// forward-tagged ones to serveForward, each on a goroutine tracked by wg.
// Outgoing connections are bound to the listener's host so that nodes on
// different loopback addresses (127.0.0.1, 127.0.0.2, ...) are told apart
// by their source address too.
type muxLayer struct {
	ln       net.Listener
	host     net.IP
	log      *slog.Logger
	raftCh   chan net.Conn
	serveFwd func(net.Conn) // handles one forward connection; closes it

	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // forward connections being served
}

var _ raft.StreamLayer = (*muxLayer)(nil)

func newMuxLayer(addr string, log *slog.Logger, serveFwd func(net.Conn)) (*muxLayer, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("controller: raft address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return nil, fmt.Errorf("controller: raft address %q: host must be an IP address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("controller: listen on %s: %w", addr, err)
	}
	m := &muxLayer{ln: ln, host: ip, log: log, raftCh: make(chan net.Conn),
		serveFwd: serveFwd, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.acceptLoop() }()
	return m, nil
}

func (m *muxLayer) acceptLoop() {
	for {
		c, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			m.log.Warn("controller: accept failed; listener stopped", "err", err)
			return
		}
		if !m.track(c) {
			c.Close()
			return
		}
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.route(c) }()
	}
}

// track registers c so Close can interrupt it; false once closing.
func (m *muxLayer) track(c net.Conn) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conns == nil {
		return false
	}
	m.conns[c] = struct{}{}
	return true
}

func (m *muxLayer) untrack(c net.Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.conns, c)
}

// route reads the tag byte and hands the connection on.
func (m *muxLayer) route(c net.Conn) {
	var tag [1]byte
	c.SetReadDeadline(time.Now().Add(tagReadTimeout))
	_, err := io.ReadFull(c, tag[:])
	c.SetReadDeadline(time.Time{})
	if err != nil {
		m.untrack(c)
		c.Close()
		return
	}
	switch tag[0] {
	case tagRaft:
		// Raft owns the connection from here. It stays tracked: raft's
		// transport does not close inbound connections when it shuts
		// down, so Close must, or their handlers block in Read forever.
		tc := &trackedConn{Conn: c, m: m}
		select {
		case m.raftCh <- tc:
		case <-m.done:
			tc.Close()
		}
	case tagForward:
		defer m.untrack(c)
		m.serveFwd(c)
	default:
		m.untrack(c)
		m.log.Warn("controller: connection with unknown tag", "tag", tag[0], "remote", c.RemoteAddr())
		c.Close()
	}
}

// trackedConn untracks itself when closed.
type trackedConn struct {
	net.Conn
	m    *muxLayer
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() { c.m.untrack(c.Conn) })
	return c.Conn.Close()
}

// Accept returns the next raft connection.
func (m *muxLayer) Accept() (net.Conn, error) {
	select {
	case c := <-m.raftCh:
		return c, nil
	case <-m.done:
		return nil, net.ErrClosed
	}
}

// Close stops the listener, closes forward connections in progress and
// waits for every goroutine of the layer.
func (m *muxLayer) Close() error {
	var err error
	m.closeOnce.Do(func() {
		close(m.done)
		err = m.ln.Close()
		m.mu.Lock()
		for c := range m.conns {
			c.Close()
		}
		m.conns = nil
		m.mu.Unlock()
		m.wg.Wait()
	})
	return err
}

func (m *muxLayer) Addr() net.Addr { return m.ln.Addr() }

// Dial opens a raft connection to address.
func (m *muxLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return m.dial(string(address), tagRaft, timeout)
}

// dial connects from this node's host to address and sends tag.
func (m *muxLayer) dial(address string, tag byte, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout, LocalAddr: &net.TCPAddr{IP: m.host}}
	c, err := d.Dial("tcp", address)
	if err != nil {
		return nil, err
	}
	if _, err := c.Write([]byte{tag}); err != nil {
		c.Close()
		return nil, err
	}
	if !m.track(c) {
		c.Close()
		return nil, net.ErrClosed
	}
	return &trackedConn{Conn: c, m: m}, nil
}
