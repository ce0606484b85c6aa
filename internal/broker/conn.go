package broker

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/wire"
)

// maxInFlight bounds the requests a connection may have queued before its
// reader stops reading (backpressure on pipelining clients).
const maxInFlight = 64

// ioBufferSize is the size of the pooled read and write buffers a
// connection holds while it has a request or response in progress.
const ioBufferSize = 64 << 10

// conn is one client connection. Its reader goroutine decodes requests and
// runs each handler's synchronous part in arrival order (so that appends
// from one connection keep their order, which idempotent producers rely
// on); slow parts (fsync waits, fetch long-polls) complete asynchronously.
// A writer goroutine, started when a response is queued and gone once the
// queue is empty, writes responses in request order.
//
// An idle connection holds no buffer and no writer: the reader waits for
// the next request's first bytes in a 4-byte array, and takes a pooled
// read buffer only until the bytes it buffered are consumed; the writer
// takes a pooled write buffer for as long as it runs. So an idle
// connection costs its reader goroutine and the socket.
type conn struct {
	b    *Broker
	nc   net.Conn
	raw  syscall.RawConn // for sendfile; nil when the conn is not plain TCP
	addr string
	ip   string // remote IP, for max.connections.per.ip

	// Reader state, owned by the reader goroutine.
	first [4]byte       // the first bytes of a request, read while idle
	pre   prefixReader  // first, then the socket
	br    *bufio.Reader // pooled; nil while idle

	slots chan struct{} // one per queued request, capacity maxInFlight

	mu      sync.Mutex
	queue   []*pending // responses to write, in request order
	writing bool       // a writer goroutine runs
	idle    sync.Cond  // on mu: signalled when the writer exits

	broken bool // the socket failed or must close; owned by the (one) running writer

	stopOnce sync.Once
	stopped  chan struct{} // closed when the reader must stop
	goneOnce sync.Once
	gone     chan struct{} // closed once the client can no longer be answered
}

// prefixReader reads pre, then r.
type prefixReader struct {
	pre []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) > 0 {
		n := copy(b, p.pre)
		p.pre = p.pre[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// pending is one request awaiting its response: encoded in out, or, while
// later is set, still to come from its handler. Only the connection's
// goroutines touch it.
type pending struct {
	corr    int32
	key     int16
	start   time.Time
	later   *deferred
	out     reply
	errCode int16 // for metrics
}

// reply is an encoded response, or nothing for acks=0 produce.
type reply struct {
	none      bool
	closeConn bool     // no answer can be given: close the connection instead
	frame     []byte   // whole frame when pieces is nil
	pieces    []piece  // frame as bytes and file ranges (fetch, zero-copy)
	keep      []func() // run after writing (release file references)
}

// piece is a part of a response frame: bytes, or a range of a segment file.
type piece struct {
	b     []byte
	chunk *storage.Chunk
}

func newConn(b *Broker, nc net.Conn) *conn {
	c := &conn{
		b:       b,
		nc:      nc,
		addr:    nc.RemoteAddr().String(),
		slots:   make(chan struct{}, maxInFlight),
		stopped: make(chan struct{}),
		gone:    make(chan struct{}),
	}
	c.ip = ipOf(c.addr)
	c.pre.r = nc
	c.idle.L = &c.mu
	if tc, ok := nc.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			c.raw = raw
		}
	}
	return c
}

// stopReading makes the reader finish: no new requests are read, queued ones
// are still answered.
func (c *conn) stopReading() {
	c.stopOnce.Do(func() {
		close(c.stopped)
		c.nc.SetReadDeadline(c.b.cfg.Now())
	})
}

// markGone tells deferred handlers that nobody waits for their answers.
func (c *conn) markGone() {
	c.goneOnce.Do(func() { close(c.gone) })
}

func (c *conn) serve() {
	if c.b.m != nil {
		c.b.m.ConnOpened()
		defer c.b.m.ConnClosed()
	}
	c.readLoop()
	c.releaseReader()
	c.mu.Lock()
	for c.writing {
		c.idle.Wait()
	}
	c.mu.Unlock()
	c.markGone()
	c.nc.Close()
	c.b.forgetConn(c)
}

// releaseReader returns the read buffer to the pool.
func (c *conn) releaseReader() {
	if c.br != nil {
		c.br.Reset(nil)
		c.b.readers.Put(c.br)
		c.br = nil
	}
}

// awaitRequest waits, holding no buffer, for the first bytes of the next
// request (up to connections.max.idle.ms), then takes a read buffer that
// yields them first.
func (c *conn) awaitRequest() error {
	cfg := &c.b.cfg
	c.releaseReader()
	c.nc.SetReadDeadline(cfg.Now().Add(cfg.IdleTimeout))
	select { // stopReading may have set its deadline before ours
	case <-c.stopped:
		return net.ErrClosed
	default:
	}
	for {
		n, err := c.nc.Read(c.first[:])
		if n > 0 {
			c.pre.pre = c.first[:n]
			c.br = c.b.readers.Get().(*bufio.Reader)
			c.br.Reset(&c.pre)
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (c *conn) readLoop() {
	cfg := &c.b.cfg
	for {
		select {
		case <-c.stopped:
			return
		default:
		}
		// Idle until the first byte of a request; from then on the whole
		// request, size included, must arrive within the read timeout.
		if c.br == nil || c.br.Buffered() == 0 {
			if err := c.awaitRequest(); err != nil {
				c.readFailed(err)
				return
			}
		}
		c.nc.SetReadDeadline(cfg.Now().Add(cfg.RequestReadTimeout))
		size, err := wire.ReadSize(c.br, cfg.MaxRequestBytes)
		if err != nil {
			c.readFailed(err)
			return
		}
		// Frame buffers are pooled: handlers are done with the request's
		// bytes when they return (appends copy records into the log;
		// kmsg copies strings; immediate responses are encoded at once),
		// and a fresh multi-MiB buffer would cost a page-zeroing pass per
		// request.
		frame := c.b.frames.get(int(size))
		if _, err := io.ReadFull(c.br, frame); err != nil {
			c.b.frames.put(frame)
			c.readFailed(err)
			return
		}
		if c.b.m != nil {
			c.b.m.AddBytesIn(int(size) + 4)
		}
		p := c.handleFrame(frame)
		c.b.frames.put(frame)
		if p == nil {
			c.markGone()
			return
		}
		// A full queue drains even on a broken connection: the writer
		// still completes every response (releasing what it holds).
		c.slots <- struct{}{}
		c.enqueue(p)
	}
}

// readFailed logs why the reader stops; unless the broker asked it to,
// the client is gone.
func (c *conn) readFailed(err error) {
	select {
	case <-c.stopped:
	default:
		c.markGone()
	}
	c.logReadErr(err)
}

// enqueue queues p for the writer, starting one if none runs.
func (c *conn) enqueue(p *pending) {
	c.mu.Lock()
	c.queue = append(c.queue, p)
	start := !c.writing
	c.writing = true
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

func (c *conn) logReadErr(err error) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.As(err, &ne) && ne.Timeout():
		select {
		case <-c.stopped:
		default:
			c.b.log.Debug("closing connection: timeout", "remote", c.addr)
		}
	default:
		c.b.log.Info("closing connection", "remote", c.addr, "err", err)
	}
}

// handleFrame decodes a frame and runs its handler. A nil result closes
// the connection (Kafka's answer to unknown keys, bad versions and
// malformed requests).
func (c *conn) handleFrame(frame []byte) *pending {
	start := c.b.cfg.Now()
	req, err := wire.Decode(frame, supportedVersion)
	if err != nil {
		if errors.Is(err, wire.ErrUnsupportedVersion) && req.Key == kmsg.ApiVersions.Int16() {
			// KIP-511: answer a too-new ApiVersions with a v0 body.
			resp := c.b.apiVersions(0)
			resp.ErrorCode = kerr.UnsupportedVersion.Code
			p := &pending{corr: req.CorrelationID, key: req.Key, start: start}
			p.out, p.errCode = encode(p.corr, response{msg: resp})
			return p
		}
		c.b.log.Info("closing connection: bad request", "remote", c.addr, "err", err)
		return nil
	}
	rc := &reqContext{host: hostOf(c.addr), arrived: start, gone: c.gone}
	if req.ClientID != nil {
		rc.clientID = *req.ClientID
	}
	res := c.b.dispatch(rc, &req)
	p := &pending{corr: req.CorrelationID, key: req.Key, start: start, later: res.later}
	if res.later == nil {
		// Encoded now: the response may alias the frame buffer.
		p.out, p.errCode = encode(p.corr, res.now)
	}
	return p
}

// encode turns a handler's response into what the writer sends, and the
// error code the requests metric counts.
func encode(corr int32, r response) (reply, int16) {
	switch {
	case r.closeConn:
		r.release()
		return reply{closeConn: true}, 0
	case r.none:
		return reply{none: true}, 0
	case r.recs != nil:
		out := reply{pieces: encodeFetch(corr, r.msg.(*kmsg.FetchResponse), r.recs)}
		out.keep = append(out.keep, r.release)
		return out, firstErrorCode(r.msg)
	}
	return reply{frame: wire.AppendResponse(nil, corr, r.msg)}, firstErrorCode(r.msg)
}

// writeLoop writes queued responses in order and exits once the queue is
// empty and everything written is flushed.
func (c *conn) writeLoop() {
	bw := c.b.writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	defer func() {
		bw.Reset(nil)
		c.b.writers.Put(bw)
	}()
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			if c.broken || bw.Buffered() == 0 {
				c.writing = false
				c.idle.Broadcast()
				c.mu.Unlock()
				return
			}
			c.mu.Unlock()
			c.flush(bw)
			continue
		}
		p := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		more := len(c.queue) > 0
		c.mu.Unlock()
		<-c.slots
		c.writeOne(bw, p, more)
	}
}

// writeOne waits for p's response if it is deferred, then writes it,
// flushing unless more responses are queued behind it.
func (c *conn) writeOne(bw *bufio.Writer, p *pending, more bool) {
	if d := p.later; d != nil {
		select {
		case <-d.done:
		default:
			// Send what is buffered before waiting on a slow response.
			if bw.Buffered() > 0 {
				c.flush(bw)
			}
			<-d.done
		}
		p.out, p.errCode = encode(p.corr, d.resp)
	}
	if c.b.m != nil {
		c.b.m.ObserveRequest(p.key, p.errCode, c.b.cfg.Now().Sub(p.start))
	}
	defer func() {
		for _, f := range p.out.keep {
			f()
		}
	}()
	switch {
	case c.broken:
	case p.out.closeConn:
		c.flush(bw)
		c.fail()
	case p.out.none:
		// An acks=0 produce has no answer: send the answers buffered
		// before it, which would otherwise wait for the next request.
		if !more && bw.Buffered() > 0 {
			c.flush(bw)
		}
	default:
		n, err := c.write(bw, &p.out)
		if c.b.m != nil {
			c.b.m.AddBytesOut(n)
		}
		if err != nil {
			c.fail()
		} else if !more {
			c.flush(bw)
		}
	}
}

// flush sends what bw holds; a failure breaks the connection.
func (c *conn) flush(bw *bufio.Writer) {
	if !c.broken && bw.Flush() != nil {
		c.fail()
	}
}

// fail stops the connection after a write failed or a response could not
// be given: nothing more is read or written.
func (c *conn) fail() {
	c.broken = true
	c.markGone()
	c.stopReading()
	c.nc.Close()
}

func (c *conn) write(bw *bufio.Writer, r *reply) (int, error) {
	if r.pieces == nil {
		return bw.Write(r.frame)
	}
	total := 0
	for i := range r.pieces {
		pc := &r.pieces[i]
		if pc.chunk == nil {
			n, err := bw.Write(pc.b)
			total += n
			if err != nil {
				return total, err
			}
			continue
		}
		n, err := c.writeChunk(bw, pc.chunk)
		total += int(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// writeChunk sends a file range: with sendfile(2) straight from the page
// cache when both ends allow it, else through a buffer.
func (c *conn) writeChunk(bw *bufio.Writer, ch *storage.Chunk) (int64, error) {
	if ch.File != nil && c.raw != nil && ch.Len > 4096 {
		if err := bw.Flush(); err != nil {
			return 0, err
		}
		return sendfile(c.raw, ch.File, ch.Pos, ch.Len)
	}
	sr := io.NewSectionReader(ch.R, ch.Pos, ch.Len)
	return io.Copy(bw, sr)
}

// sendfile copies n bytes of f at off to the socket without copying through
// user space. It uses an explicit offset, so concurrent fetches of one
// segment file do not share a file position.
func sendfile(raw syscall.RawConn, f interface {
	SyscallConn() (syscall.RawConn, error)
}, off, n int64) (int64, error) {
	fraw, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var written int64
	var serr error
	ferr := fraw.Control(func(infd uintptr) {
		werr := raw.Write(func(outfd uintptr) bool {
			for written < n {
				chunk := n - written
				if chunk > 1<<30 {
					chunk = 1 << 30
				}
				pos := off + written
				m, err := syscall.Sendfile(int(outfd), int(infd), &pos, int(chunk))
				if m > 0 {
					written += int64(m)
				}
				switch {
				case err == syscall.EAGAIN:
					return false // wait until writable
				case err == syscall.EINTR:
					continue
				case err != nil:
					serr = err
					return true
				case m == 0:
					serr = io.ErrUnexpectedEOF // file shorter than expected
					return true
				}
			}
			return true
		})
		if serr == nil {
			serr = werr
		}
	})
	if serr == nil {
		serr = ferr
	}
	return written, serr
}
