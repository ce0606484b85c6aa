package controller

// Read-your-writes for metadata across the cluster.
//
// A change is acknowledged by the controller once it is committed and
// applied there; the other brokers apply it a moment later (a Raft
// follower learns the commit index with the next AppendEntries), and
// then open, delete or reconfigure their partitions. A client that
// creates a topic through one broker and produces through another must
// not see that moment. So, as KRaft brokers report their metadata offset:
//
//   - Each broker reports, in its heartbeat, the state Version it serves
//     (Store.Served, called by the partition host once it applied an Image; a
//     Store with Config.ReportServed false reports what it applied). It
//     heartbeats at once whenever that version moves, so a report follows
//     a change by one round trip. The controller keeps the reports in
//     memory, per incarnation, like heartbeat times.
//   - AwaitPropagation (forwarded to the controller) runs a Raft barrier,
//     which puts every earlier entry in the controller's state and, as a
//     new entry, carries the commit index to the followers at once rather
//     than after raft's CommitTimeout; it then waits until every live,
//     unfenced broker reports at least the controller's Version. Live
//     means heard from within the propagation window (liveWindow: three
//     heartbeat intervals, at most a session), so a broker that died
//     holds answers back for that long, not for its whole session. The
//     caller bounds the wait (the request's timeout): a broker lagging past
//     it is logged as the one at fault, and the change stands.
//   - A broker with ReportServed asks to stay fenced (want_fence) until
//     its first report, as a KRaft broker does until it caught up: a
//     broker recovering its logs leads nothing and holds nothing back.
//   - Fresh reads (WaitFresh): a heartbeat's answer carries the
//     controller's Version once that controller applied everything
//     committed before its term. While the broker has applied that
//     version and its last answered heartbeat was sent within the
//     propagation window, every acknowledged change is in its Image: older
//     ones by that version, newer ones because the controller waited for
//     this broker (it received that heartbeat no earlier than it was sent,
//     so it counted the broker live at least as long). Otherwise (just
//     started, paused, cut off) the broker heartbeats at once and waits.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/streambus/streambus/internal/metadata"
)

// opAwait asks the controller to wait until every unfenced broker serves
// its current Version. A forwarded call only, never a log command; the
// name is part of the forwarding wire format.
const opAwait = "await_propagation"

// ErrLagging is AwaitPropagation's error when the caller's deadline passed
// before every live broker served the change; it names them.
var ErrLagging = errors.New("controller: brokers lag behind the metadata")

// maxForwardTimeout bounds the timeout a forwarded call may ask for.
const maxForwardTimeout = 5 * time.Minute

// servedReport is a broker's last reported served Version.
type servedReport struct {
	incarnation string
	version     int64
}

// freshness is what this broker's last answered heartbeat established:
// the controller's Version then, and when the heartbeat was sent.
type freshness struct {
	version int64
	sentAt  time.Time
}

// signal is a channel closed and replaced at every notify.
type signal struct {
	mu sync.Mutex
	ch chan struct{}
}

func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	return s.ch
}

func (s *signal) notify() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch != nil {
		close(s.ch)
		s.ch = nil
	}
}

// Served records that this broker serves every change up to version and,
// if that is news, wakes the broker loop to report it. The first call
// also lets the controller unfence this broker (Config.ReportServed).
func (s *Store) Served(version int64) {
	for {
		old := s.served.Load()
		if version <= old {
			return
		}
		if s.served.CompareAndSwap(old, version) {
			break
		}
	}
	select {
	case s.servedCh <- struct{}{}:
	default:
	}
}

// servedVersion is the Version this broker reports, -1 before the broker
// first called Served.
func (s *Store) servedVersion() int64 {
	if !s.cfg.ReportServed {
		return s.fsm.current().Version
	}
	return s.served.Load()
}

// wantFence is whether this broker asks to stay fenced: it has not
// reported serving anything yet.
func (s *Store) wantFence() bool { return s.cfg.ReportServed && s.served.Load() < 0 }

// noteServedLocked records a broker's report on the controller. hbMu must
// be held.
func (s *Store) noteServedLocked(id int32, incarnation string, version int64) {
	if r, ok := s.reports[id]; ok && r.incarnation == incarnation && r.version >= version {
		return
	}
	s.reports[id] = servedReport{incarnation: incarnation, version: version}
	s.reported.notify()
}

// AwaitPropagation returns once every unfenced broker serves every change
// the controller applied before the call, or with an error naming the
// lagging brokers when ctx ends first. It does not undo anything.
func (s *Store) AwaitPropagation(ctx context.Context) error {
	_, err := s.exec(ctx, &request{Op: opAwait})
	return err
}

// awaitLocal is AwaitPropagation on the controller.
func (s *Store) awaitLocal(ctx context.Context) error {
	if s.raft.State() != raft.Leader {
		return s.notController()
	}
	term := s.raft.CurrentTerm()
	if err := s.raft.Barrier(s.timeout(ctx)).Error(); err != nil {
		return s.raftError(err)
	}
	s.noteCaughtUp(term)
	want := s.fsm.current().Version
	for {
		reported, changed := s.reported.wait(), s.Changes()
		lag, expires := s.lagging(want)
		if len(lag) == 0 {
			return nil
		}
		if s.raft.State() != raft.Leader {
			return s.notController() // the caller asks the new controller
		}
		t := time.NewTimer(expires.Sub(s.cfg.Now()))
		select {
		case <-reported:
		case <-changed: // a broker fenced, or leadership changed
		case <-t.C: // a lagging broker went silent for too long
		case <-ctx.Done():
			t.Stop()
			s.log.Warn("metadata change acknowledged before every broker served it: they lag", "brokers", lag, "version", want)
			return newError(ErrLagging, fmt.Sprintf("brokers %v do not serve metadata version %d yet: %v", lag, want, ctx.Err()))
		case <-s.stop:
			t.Stop()
			return metadata.ErrClosed
		}
		t.Stop()
	}
}

// lagging lists the live, unfenced brokers whose current incarnation has
// not reported serving version want, and when the first of them stops
// counting as live (zero if none).
func (s *Store) lagging(want int64) (lag []int32, expires time.Time) {
	st := s.fsm.current()
	now := s.cfg.Now()
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	s.resetHeartbeatsLocked()
	for _, id := range slices.Sorted(maps.Keys(st.Brokers)) {
		b := st.Brokers[id]
		if b.Fenced {
			continue
		}
		if r, ok := s.reports[id]; ok && r.incarnation == b.Incarnation && r.version >= want {
			continue
		}
		last, ok := s.hb[id]
		if !ok {
			last = now
			s.hb[id] = now
		}
		// A new controller gives every broker, the previous controller
		// included, a full window from its term's start: a broker's last
		// answered heartbeat came before that start (it went to an
		// earlier controller, confirmed by a quorum that then elected
		// this one), and its freshness ends a window after it.
		if last.Before(s.hbTermStart) {
			last = s.hbTermStart
		}
		end := last.Add(s.liveWindow())
		if !end.After(now) {
			continue // silent too long: dead or cut off
		}
		lag = append(lag, id)
		if expires.IsZero() || end.Before(expires) {
			expires = end
		}
	}
	return lag, expires
}

// liveWindow is how long after its last heartbeat a broker counts as live
// for propagation and fresh reads: three heartbeat intervals, at most a
// session.
func (s *Store) liveWindow() time.Duration {
	return min(3*s.cfg.HeartbeatInterval, s.cfg.SessionTimeout)
}

// caughtUp reports whether this controller has applied every entry
// committed before its current term (a barrier in the term proves it).
func (s *Store) caughtUp(ctx context.Context) bool {
	term := s.raft.CurrentTerm()
	if s.readyTerm.Load() == term {
		return true
	}
	if err := s.raft.Barrier(s.timeout(ctx)).Error(); err != nil {
		return false
	}
	s.noteCaughtUp(term)
	return s.readyTerm.Load() == term
}

// noteCaughtUp records that a barrier in term completed.
func (s *Store) noteCaughtUp(term uint64) {
	for {
		old := s.readyTerm.Load()
		if term <= old || s.readyTerm.CompareAndSwap(old, term) {
			return
		}
	}
}

// freshVersion is the Version a heartbeat answer gives broker id: the
// controller's, if it is caught up, still leads (a quorum confirms it: a
// controller paused past an election would otherwise vouch for its stale
// state) and the broker is registered with this incarnation and
// unfenced; else 0 (no claim).
func (s *Store) freshVersion(ctx context.Context, id int32, incarnation string) int64 {
	if !s.caughtUp(ctx) || !s.verifyLeader() {
		return 0
	}
	// Read the state under sem, which a session-expiry fence holds from
	// its last look at the heartbeats to its apply: either the fence saw
	// this heartbeat and gave up, or it applied first and this answer
	// sees the broker fenced.
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return 0
	}
	st := s.fsm.current()
	<-s.sem
	if b, ok := st.Brokers[id]; !ok || b.Incarnation != incarnation || b.Fenced {
		return 0
	}
	return st.Version
}

// verifyLeader asks a quorum whether this node still leads. It does not
// wait for verifyMu once the Store is closing: shutdown holds it while raft
// closes the transport, which waits for the forwarded call (a heartbeat)
// that may be the caller here.
func (s *Store) verifyLeader() bool {
	for !s.verifyMu.TryRLock() {
		if s.closed.Load() {
			return false
		}
		time.Sleep(time.Millisecond)
	}
	defer s.verifyMu.RUnlock()
	return !s.closed.Load() && s.raft.VerifyLeader().Error() == nil
}

// noteFresh records a heartbeat answer sent at sentAt.
func (s *Store) noteFresh(version int64, sentAt time.Time) {
	if version <= 0 {
		s.fresh.Store(nil)
	} else {
		s.fresh.Store(&freshness{version: version, sentAt: sentAt})
	}
	s.freshSig.notify()
}

// isFresh reports whether the local Image holds every acknowledged change.
func (s *Store) isFresh() bool {
	f := s.fresh.Load()
	if f == nil || s.shuttingDown.Load() || s.cfg.Now().Sub(f.sentAt) >= s.liveWindow() {
		return false
	}
	st := s.fsm.current()
	b, ok := st.Brokers[s.cfg.NodeID]
	return ok && b.Incarnation == s.incarnation && !b.Fenced && st.Version >= f.version
}

// WaitFresh returns nil once the local Image holds every change
// acknowledged to a client (at once in steady state); if it cannot tell,
// it heartbeats at once and waits for the answer and for the Image to
// catch up, until ctx ends.
func (s *Store) WaitFresh(ctx context.Context) error {
	asked := false
	for {
		ch, fresh := s.Changes(), s.freshSig.wait()
		if s.isFresh() {
			return nil
		}
		if !asked { // once: its answer wakes this loop (none ends in ctx)
			asked = true
			select {
			case s.wakeCh <- struct{}{}:
			default:
			}
		}
		select {
		case <-ch:
		case <-fresh:
		case <-ctx.Done():
			return fmt.Errorf("controller: metadata may be stale: %w", ctx.Err())
		case <-s.stop:
			return metadata.ErrClosed
		}
	}
}
