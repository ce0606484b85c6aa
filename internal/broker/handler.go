package broker

// The contract between a connection and the API handlers. A handler gets a
// request context and the decoded request, and returns a result: its
// response now, or a deferred response that it (or a goroutine it started)
// completes later, exactly once. Only the connection reads the result and
// writes its own state (conn.go); a handler never touches it.
//
// The request's decoded bytes alias the connection's pooled frame buffer,
// which is reused once the handler returns: a handler that keeps any part
// of the request past its return (a deferred completion, a coordinator
// queue) copies it, and an immediate response is encoded before the
// buffer is reused.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/storage"
)

// reqContext is what a handler knows of a request besides its body.
type reqContext struct {
	clientID string          // the request header's client ID ("" when null)
	host     string          // the client's host as Kafka shows it ("/127.0.0.1")
	arrived  time.Time       // from the broker clock; request timeouts count from here
	gone     <-chan struct{} // closed once the client can no longer be answered (it closed, or a write failed)
}

// response is a handler's answer.
type response struct {
	msg kmsg.Response // nil with none or closeConn
	// recs, for a Fetch response, is the record data of each of msg's
	// partitions in order, sent from the segment files without copying
	// (fetch_encode.go); the connection releases the slices once written.
	recs      [][]*storage.Slice
	none      bool // no answer at all (acks=0 produce)
	closeConn bool // no answer can be given: close the connection, the client looks again
}

// release drops the file references of a response that holds records.
func (r *response) release() {
	for _, t := range r.recs {
		for _, s := range t {
			if s != nil && s.Size > 0 {
				s.Release()
			}
		}
	}
}

// result is what a handler returns: a response now, or one completed later.
type result struct {
	now   response
	later *deferred
}

// answer is the result of a handler that answers at once.
func answer(msg kmsg.Response) result { return result{now: response{msg: msg}} }

// deferred is a response completed after its handler returned, from any
// goroutine, exactly once; the connection waits for it in request order.
type deferred struct {
	done chan struct{}
	resp response
}

func newDeferred() *deferred { return &deferred{done: make(chan struct{})} }

// result hands d to the connection.
func (d *deferred) result() result { return result{later: d} }

// complete sets the response; it must be called exactly once.
func (d *deferred) complete(r response) {
	d.resp = r
	close(d.done)
}

// answer completes d with msg.
func (d *deferred) answer(msg kmsg.Response) { d.complete(response{msg: msg}) }

// fail completes d by closing the connection.
func (d *deferred) fail() { d.complete(response{closeConn: true}) }
