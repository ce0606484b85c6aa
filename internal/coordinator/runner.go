package coordinator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// runner drives the Machine of one shard from its own goroutine.
type runner[Req, Resp any] struct {
	rt     *Runtime[Req, Resp]
	cfg    *Config[Req, Resp]
	shard  Shard
	log    *slog.Logger
	prev   <-chan struct{} // done of the runner this one replaces, or nil
	loaded atomic.Bool
	wake   chan struct{} // capacity 1: the queue has inputs
	resync chan struct{} // capacity 1: appended records failed to become durable; reload
	stop   chan struct{} // closed by shutdown
	done   chan struct{} // closed when run returned and prev is done

	mu     sync.Mutex
	queue  []input[Req, Resp] // unbounded; bounded in practice by connections × in-flight requests
	closed bool               // the runner has exited: submit refuses

	// Owned by the runner goroutine.
	m       Machine[Req, Resp]
	batch   []input[Req, Resp] // taken from queue, not yet stepped
	nextID  uint64
	waiting map[uint64]func(Resp, bool)
	debug   bool
}

type input[Req, Resp any] struct {
	req   Req
	reply func(Resp, bool)
}

func newRunner[Req, Resp any](rt *Runtime[Req, Resp], s Shard, prev <-chan struct{}) *runner[Req, Resp] {
	return &runner[Req, Resp]{
		rt: rt, cfg: &rt.cfg, shard: s, prev: prev,
		log:  rt.cfg.Logger.With("partition", s.Index),
		wake: make(chan struct{}, 1), resync: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		waiting: make(map[uint64]func(Resp, bool)),
		debug:   rt.cfg.Logger.Enabled(context.Background(), slog.LevelDebug),
	}
}

// shutdown asks the runner to exit. Idempotent; called with rt.mu held.
func (r *runner[Req, Resp]) shutdown() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
}

func (r *runner[Req, Resp]) submit(req Req, reply func(Resp, bool)) error {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return ErrNotCoordinator
	case !r.loaded.Load():
		r.mu.Unlock()
		return ErrLoading
	}
	r.queue = append(r.queue, input[Req, Resp]{req, reply})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return nil
}

func (r *runner[Req, Resp]) run() {
	defer close(r.done)
	defer r.failAll()
	if r.prev != nil {
		// Load only once no step of the old runner can append any more.
		select {
		case <-r.prev:
		case <-r.stop:
			<-r.prev // keep done implying prev done, for a successor
			return
		}
	}
	if !r.reload() {
		return
	}
	t := newTimer(r.cfg)
	defer t.stop()
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
			r.mu.Lock()
			r.batch = r.queue
			r.queue = nil
			r.mu.Unlock()
			for len(r.batch) > 0 {
				in := r.batch[0]
				r.batch = r.batch[1:]
				id := r.nextID
				r.nextID++
				r.waiting[id] = in.reply
				if r.debug {
					r.log.Debug(r.cfg.Name+" request", "id", id, "req", fmt.Sprintf("%+v", in.req))
				}
				out := r.m.Step(r.cfg.Now(), id, in.req)
				if !r.apply(out) {
					if !r.reload() {
						return
					}
					t.restart()
					continue
				}
				t.arm(out.NextDeadline)
			}
		case <-r.resync:
			// The log cut records the Machine applied (their journal
			// round failed): rebuild it from what the log holds.
			if !r.reload() {
				return
			}
			t.restart()
		case <-t.c():
			out := r.m.Tick(r.cfg.Now())
			if !r.apply(out) {
				if !r.reload() {
					return
				}
				t.restart()
				continue
			}
			t.fired(out.NextDeadline)
		}
	}
}

// reload builds a fresh Machine from the log: at start, and after a failed
// append left the in-memory state ahead of the log. Requests the old
// Machine holds fail; queued ones wait for the new Machine.
func (r *runner[Req, Resp]) reload() bool {
	r.loaded.Store(false)
	r.failWaiting()
	r.m = r.cfg.New(r.shard.Index)
	if err := r.load(); err != nil {
		r.log.Error(r.cfg.Name+": load failed", "err", err)
		return false
	}
	r.m.Loaded(r.cfg.Now())
	r.loaded.Store(true)
	return true
}

// failAll fails every request the exiting runner holds, has queued or has
// taken from the queue but not stepped; later submits are refused.
func (r *runner[Req, Resp]) failAll() {
	r.mu.Lock()
	r.closed = true
	queued := r.queue
	r.queue = nil
	r.mu.Unlock()
	var zero Resp
	for _, in := range append(r.batch, queued...) {
		in.reply(zero, false)
	}
	r.batch = nil
	r.failWaiting()
}

func (r *runner[Req, Resp]) failWaiting() {
	var zero Resp
	for id, reply := range r.waiting {
		delete(r.waiting, id)
		reply(zero, false)
	}
}

// timer schedules Ticks: at the earliest NextDeadline asked since the last
// Tick, or IdleInterval after the last Tick when none is.
type timer[Req, Resp any] struct {
	cfg      *Config[Req, Resp]
	t        *time.Timer
	deadline time.Time // zero: the idle tick is armed
}

func newTimer[Req, Resp any](cfg *Config[Req, Resp]) *timer[Req, Resp] {
	return &timer[Req, Resp]{cfg: cfg, t: time.NewTimer(cfg.IdleInterval)}
}

func (t *timer[Req, Resp]) c() <-chan time.Time { return t.t.C }

func (t *timer[Req, Resp]) stop() { t.t.Stop() }

// arm brings the next Tick forward to next, unless zero or not earlier.
// Reset discards a pending fire (Go 1.23 timers).
func (t *timer[Req, Resp]) arm(next time.Time) {
	if next.IsZero() || (!t.deadline.IsZero() && !next.Before(t.deadline)) {
		return
	}
	t.deadline = next
	t.t.Reset(next.Sub(t.cfg.Now()))
}

// fired schedules the Tick after one that returned next.
func (t *timer[Req, Resp]) fired(next time.Time) {
	t.deadline = time.Time{}
	if next.IsZero() {
		t.t.Reset(t.cfg.IdleInterval) // time-based cleanup runs even when idle
		return
	}
	t.arm(next)
}

// restart makes sure a freshly reloaded Machine, whose deadlines the
// runner has not seen, is ticked within IdleInterval, as at start.
func (t *timer[Req, Resp]) restart() { t.arm(t.cfg.Now().Add(t.cfg.IdleInterval)) }
