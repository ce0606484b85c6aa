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

// conn is one client connection. Its reader goroutine decodes requests and
// runs each handler's synchronous part in arrival order (so that appends
// from one connection keep their order, which idempotent producers rely
// on); slow parts (fsync waits, fetch long-polls) complete asynchronously.
// Its writer goroutine writes responses in request order.
type conn struct {
	b    *Broker
	nc   net.Conn
	raw  syscall.RawConn // for sendfile; nil when the conn is not plain TCP
	addr string

	queue chan *pending

	stopOnce sync.Once
	stopped  chan struct{} // closed when the reader must stop
	done     chan struct{} // closed when the connection is torn down
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
		queue:   make(chan *pending, maxInFlight),
		stopped: make(chan struct{}),
		done:    make(chan struct{}),
	}
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

func (c *conn) serve() {
	if c.b.m != nil {
		c.b.m.ConnOpened()
		defer c.b.m.ConnClosed()
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	close(c.queue)
	<-writerDone
	close(c.done)
	c.nc.Close()
	c.b.forgetConn(c)
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	cfg := &c.b.cfg
	for {
		select {
		case <-c.stopped:
			return
		default:
		}
		c.nc.SetReadDeadline(cfg.Now().Add(cfg.IdleTimeout))
		select { // stopReading may have set its deadline before ours
		case <-c.stopped:
			return
		default:
		}
		// Idle until the first byte of a request; from then on the whole
		// request, size included, must arrive within the read timeout.
		if _, err := br.Peek(1); err != nil {
			c.logReadErr(err)
			return
		}
		c.nc.SetReadDeadline(cfg.Now().Add(cfg.RequestReadTimeout))
		size, err := wire.ReadSize(br, cfg.MaxRequestBytes)
		if err != nil {
			c.logReadErr(err)
			return
		}
		// Frame buffers are pooled: handlers are done with the request's
		// bytes when dispatch returns (appends copy records into the log;
		// kmsg copies strings), and a fresh multi-MiB buffer would cost a
		// page-zeroing pass per request.
		frame := c.b.frames.get(int(size))
		if _, err := io.ReadFull(br, frame); err != nil {
			c.b.frames.put(frame)
			c.logReadErr(err)
			return
		}
		if c.b.m != nil {
			c.b.m.AddBytesIn(int(size) + 4)
		}
		p := c.handleFrame(frame)
		c.b.frames.put(frame)
		if p == nil {
			return
		}
		select {
		case c.queue <- p:
		case <-c.done:
			return
		}
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
	rc := &reqContext{host: hostOf(c.addr), arrived: start, gone: c.done}
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

func (c *conn) writeLoop() {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	broken := false
	for p := range c.queue {
		if d := p.later; d != nil {
			select {
			case <-d.done:
			default:
				// Send what is buffered before waiting on a slow response.
				if !broken && bw.Flush() != nil {
					broken = true
				}
				<-d.done
			}
			p.out, p.errCode = encode(p.corr, d.resp)
		}
		if c.b.m != nil {
			c.b.m.ObserveRequest(p.key, p.errCode, c.b.cfg.Now().Sub(p.start))
		}
		if p.out.closeConn && !broken {
			broken = true
			bw.Flush()
			c.stopReading()
			c.nc.Close()
		}
		if !broken && !p.out.none {
			n, err := c.write(bw, &p.out)
			if err == nil && len(c.queue) == 0 {
				err = bw.Flush()
			}
			if err != nil {
				broken = true
				c.stopReading()
				c.nc.Close()
			}
			if c.b.m != nil {
				c.b.m.AddBytesOut(n)
			}
		} else if !broken && len(c.queue) == 0 && bw.Buffered() > 0 {
			// An acks=0 produce has no answer: send the answers buffered
			// before it, which would otherwise wait for the next request.
			if bw.Flush() != nil {
				broken = true
				c.stopReading()
				c.nc.Close()
			}
		}
		for _, f := range p.out.keep {
			f()
		}
	}
	if !broken {
		bw.Flush()
	}
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
