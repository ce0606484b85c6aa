package replication

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/storage"
)

// part is one followed partition inside a source; guarded by source.mu.
type part struct {
	Followed
	hw        int64
	paused    bool
	failures  int
	retryAt   time.Time
	err       error
	truncated bool // a truncation happened: skip the rest of this response
	// leaderStart is the leader's log start offset from a response just
	// applied, for applyLeaderLogStarts; -1 when there is none to apply.
	leaderStart int64
}

// source fetches every partition followed from one leader broker, in its
// own goroutine (owned by the Fetcher: started by Follow, stopped by
// stop, waited by Close).
type source struct {
	f      *Fetcher
	leader Leader
	addr   string

	// mu guards the fields below. It is held while a response is applied
	// (appends, truncation, fsync) so that Follow/Unfollow never overlap
	// with that, and never during network I/O.
	mu    sync.Mutex
	parts map[storage.PartitionID]*part
	conn  net.Conn
	quit  bool

	wake   chan struct{} // capacity 1: metadata changed
	done   chan struct{} // closed by stop
	corrID int32

	// inflight is set while a fetch is on the wire. A partition added (or
	// given a new leader epoch) meanwhile sets interrupted and closes the
	// connection: the follower must not sit out the leader's long poll
	// (MaxWait) before it fetches a partition it just took on, which is
	// the critical path of a failover (the new leader's acks=all produce
	// waits for this fetch).
	inflight    bool
	interrupted bool
}

func newSource(f *Fetcher, leader Leader) *source {
	return &source{f: f, leader: leader, addr: leader.Addr, parts: map[storage.PartitionID]*part{},
		wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (s *source) follow(id storage.PartitionID, p Followed) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.parts[id]; old != nil && old.Log == p.Log && old.LeaderEpoch == p.LeaderEpoch {
		return
	}
	s.parts[id] = &part{Followed: p, hw: -1, leaderStart: -1}
	s.interruptLocked()
	s.kick()
}

// unfollow removes id and returns how many partitions are left.
func (s *source) unfollow(id storage.PartitionID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.parts, id)
	return len(s.parts)
}

func (s *source) snapshotParts() map[storage.PartitionID]Followed {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[storage.PartitionID]Followed{}
	for id, p := range s.parts {
		out[id] = p.Followed
	}
	return out
}

func (s *source) status(id storage.PartitionID) (PartitionStatus, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[id]
	if p == nil {
		return PartitionStatus{}, false
	}
	return PartitionStatus{Leader: s.leader.ID, LeaderEpoch: p.LeaderEpoch, HighWatermark: p.hw, Paused: p.paused, Err: p.err}, true
}

// interruptLocked ends the in-flight fetch, if any, by closing the
// connection; the run loop then fetches again at once. s.mu must be held.
func (s *source) interruptLocked() {
	if s.inflight && s.conn != nil {
		s.interrupted = true
		s.conn.Close()
	}
}

func (s *source) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop ends the goroutine: it closes the connection so a blocked read
// returns at once.
func (s *source) stop() {
	s.mu.Lock()
	if !s.quit {
		s.quit = true
		close(s.done)
		if s.conn != nil {
			s.conn.Close()
		}
	}
	s.mu.Unlock()
}

// run is the source goroutine.
func (s *source) run() {
	defer s.closeConn()
	failures := 0
	for {
		if s.f.cfg.Paused != nil && s.f.cfg.Paused() {
			// Nothing fetched can be written (the disk is below its
			// free-space reserve): ask again later.
			if !s.sleep(s.f.cfg.Backoff) {
				return
			}
			continue
		}
		req, wait := s.buildFetch(s.f.cfg.Now())
		if req == nil {
			if !s.sleep(wait) {
				return
			}
			continue
		}
		resp, err := s.fetch(req)
		s.mu.Lock()
		s.inflight = false
		interrupted := s.interrupted
		s.interrupted = false
		s.mu.Unlock()
		if interrupted {
			s.closeConn()
			if err != nil {
				continue // not a failure: fetch again at once, with the new partition
			}
		}
		if err != nil {
			select {
			case <-s.done:
				return
			default:
			}
			failures++
			s.closeConn()
			s.f.cfg.Logger.Warn("replication: fetch failed", "leader", s.leader.ID, "addr", s.addr, "err", err)
			s.failAll(err)
			if !s.sleep(s.f.cfg.backoffFor(failures)) {
				return
			}
			continue
		}
		failures = 0
		s.apply(req, resp)
	}
}

// sleep waits d (forever if d < 0) or until woken; false when stopped.
func (s *source) sleep(d time.Duration) bool {
	var timer <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timer = t.C
	}
	select {
	case <-s.done:
		return false
	case <-s.wake:
	case <-timer:
	}
	return true
}

// buildFetch builds a request for every partition ready to fetch; with
// none, it returns how long to wait (-1: until woken).
func (s *source) buildFetch(now time.Time) (*kmsg.FetchRequest, time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := &s.f.cfg
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(fetchVersion)
	req.ReplicaID = cfg.NodeID
	req.MaxWaitMillis = int32(cfg.MaxWait / time.Millisecond)
	req.MinBytes = cfg.MinBytes
	req.MaxBytes = cfg.MaxBytes
	req.IsolationLevel = 0
	req.SessionID, req.SessionEpoch = 0, -1 // no fetch session
	wait := time.Duration(-1)
	topics := map[string]int{}
	for id, p := range s.parts {
		p.truncated = false
		if now.Before(p.retryAt) {
			if d := p.retryAt.Sub(now); wait < 0 || d < wait {
				wait = d
			}
			continue
		}
		p.paused = false // a refusing leader is asked again once retryAt passes
		i, ok := topics[id.Topic]
		if !ok {
			i = len(req.Topics)
			topics[id.Topic] = i
			t := kmsg.NewFetchRequestTopic()
			t.Topic = id.Topic
			req.Topics = append(req.Topics, t)
		}
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = id.Partition
		rp.CurrentLeaderEpoch = p.LeaderEpoch
		rp.FetchOffset = p.Log.LogEndOffset()
		rp.LastFetchedEpoch = p.Log.LatestEpoch()
		rp.LogStartOffset = p.Log.LogStartOffset()
		rp.PartitionMaxBytes = cfg.PartitionMaxBytes
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, rp)
	}
	if len(req.Topics) == 0 {
		return nil, wait
	}
	// A partition left out (backing off, or waiting for a leader that
	// refused it) must not wait for the long poll of the others: the
	// leader answers by the time it is due. On a failover this is the
	// follower re-asking a new leader that applied the change after it.
	if wait >= 0 && wait < cfg.MaxWait {
		req.MaxWaitMillis = int32((wait + time.Millisecond - 1) / time.Millisecond)
	}
	s.inflight = true
	return req, 0
}

// failAll backs off every partition after a connection-level error.
func (s *source) failAll(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.parts {
		if !p.paused {
			p.err = err
		}
	}
}

// backoffLocked makes p wait before its next fetch.
func (s *source) backoffLocked(p *part, err error) {
	p.failures++
	p.err = err
	p.retryAt = s.f.cfg.Now().Add(s.f.cfg.backoffFor(p.failures))
}

// apply handles a fetch response partition by partition.
func (s *source) apply(req *kmsg.FetchRequest, resp *kmsg.FetchResponse) {
	if err := kafkaErr(resp.ErrorCode); err != nil {
		s.mu.Lock()
		for _, p := range s.parts {
			s.backoffLocked(p, fmt.Errorf("replication: fetch from %d: %w", s.leader.ID, err))
		}
		s.mu.Unlock()
		return
	}
	var toSync []*storage.Log
	var resets []*part
	for _, t := range resp.Topics {
		for i := range t.Partitions {
			rp := &t.Partitions[i]
			id := storage.PartitionID{Topic: t.Topic, Partition: rp.Partition}
			l, reset := s.applyPartition(id, rp)
			if l != nil {
				toSync = append(toSync, l)
			}
			if reset != nil {
				resets = append(resets, reset)
			}
		}
	}
	for _, p := range resets {
		s.resetOffset(p)
	}
	// In FlushOnAck mode the next fetch offset tells the leader the data
	// is replicated, so it must be durable first.
	for _, l := range toSync {
		if err := l.Sync(l.LogEndOffset()); err != nil {
			s.mu.Lock()
			for _, p := range s.parts {
				if p.Log == l {
					s.backoffLocked(p, fmt.Errorf("replication: sync %v: %w", l.ID(), err))
					p.leaderStart = -1
				}
			}
			s.mu.Unlock()
		}
	}
	s.applyLeaderLogStarts()
}

// applyLeaderLogStarts moves the log start of every partition whose
// response was just applied up to the leader's, as Kafka's follower does
// (maybeIncrementLogStartOffset): records the leader deleted
// (DeleteRecords, retention) go here too, so they cannot come back when
// this replica leads, and the next fetch reports the new log start, which
// the leader's DeleteRecords waits for (LeaderState.LowWatermark). It
// runs after the fsync, and never moves the log start past the replica's
// own high watermark (its durable end in FlushOnAck mode).
func (s *source) applyLeaderLogStarts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, p := range s.parts {
		to := p.leaderStart
		p.leaderStart = -1
		if to < 0 {
			continue
		}
		l := p.Log
		if to = min(to, l.HighWatermark()); to <= l.LogStartOffset() {
			continue
		}
		if _, err := l.DeleteRecordsBefore(to); err != nil {
			s.backoffLocked(p, fmt.Errorf("replication: move log start of %v to %d: %w", id, to, err))
		}
	}
}

// applyPartition applies one partition's response under s.mu; it returns
// the log if it must be fsynced before the next fetch, and the partition
// if it needs an offset reset (which asks the leader, outside s.mu). An
// applied response leaves the leader's log start in p.leaderStart.
func (s *source) applyPartition(id storage.PartitionID, rp *kmsg.FetchResponseTopicPartition) (*storage.Log, *part) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.parts[id]
	if p == nil || p.paused {
		return nil, nil // unfollowed or re-pointed while the fetch was in flight
	}
	l := p.Log
	switch err := kafkaErr(rp.ErrorCode); {
	case err == nil:
	case errors.Is(err, kerr.NotLeaderForPartition), errors.Is(err, kerr.FencedLeaderEpoch),
		errors.Is(err, kerr.UnknownTopicOrPartition):
		// One of us has metadata that is behind: the leader learns of its
		// leadership a moment after us (or we lag and Follow brings news).
		// Ask again soon rather than after a full backoff: this is on the
		// failover path.
		p.failures++
		p.paused, p.err = true, fmt.Errorf("replication: %v from %d: %w (%w)", id, s.leader.ID, err, errPaused)
		p.retryAt = s.f.cfg.Now().Add(min(s.f.cfg.LeaderRetry<<min(p.failures-1, 10), s.f.cfg.Backoff))
		return nil, nil
	case errors.Is(err, kerr.OffsetOutOfRange):
		return nil, p
	default: // UNKNOWN_LEADER_EPOCH (leader behind us), and the rest
		s.backoffLocked(p, fmt.Errorf("replication: %v from %d: %w", id, s.leader.ID, err))
		return nil, nil
	}
	p.hw = rp.HighWatermark
	if rp.DivergingEpoch.Epoch >= 0 || rp.DivergingEpoch.EndOffset >= 0 {
		if err := truncateToDivergence(l, rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset); err != nil {
			s.backoffLocked(p, err)
		}
		return nil, nil
	}
	recs := wholeBatches(rp.RecordBatches)
	// Skip batches wholly below our end (the leader returns the batch
	// holding the fetch offset); a batch straddling it means our last
	// batch differs from the leader's: cut ours and fetch again.
	end := l.LogEndOffset()
	for len(recs) > 0 {
		h, _ := recordbatch.ParseHeader(recs)
		if h.LastOffset() >= end {
			if h.BaseOffset < end {
				if err := l.Truncate(h.BaseOffset); err != nil {
					s.backoffLocked(p, err)
				}
				return nil, nil
			}
			break
		}
		recs = recs[h.Size():]
	}
	if len(recs) == 0 {
		p.failures, p.err, p.leaderStart = 0, nil, rp.LogStartOffset
		return nil, nil
	}
	if _, err := l.AppendReplicated(recs); err != nil {
		s.backoffLocked(p, fmt.Errorf("replication: append %v: %w", id, err))
		return nil, nil
	}
	p.failures, p.err, p.leaderStart = 0, nil, rp.LogStartOffset
	if l.FlushOnAck() {
		return l, nil
	}
	return nil, nil
}

// truncateToDivergence cuts l where it diverges from the leader, which
// reported that its epoch `epoch` ends at endOffset (Kafka's
// getOffsetTruncationState, KIP-279): at the leader's end if we know that
// epoch too, else at our own end of the largest epoch we share with it;
// the next fetch carries our new latest epoch, so a further divergence is
// found in another round.
func truncateToDivergence(l *storage.Log, epoch int32, endOffset int64) error {
	end := l.LogEndOffset()
	cut := min(endOffset, end)
	if endOffset < 0 {
		cut = l.HighWatermark() // the leader knows nothing: keep what was committed
	} else if fEpoch, fEnd := l.EndOffsetForEpoch(epoch); fEpoch >= 0 && fEpoch != epoch {
		cut = min(fEnd, end)
	} else if fEpoch == epoch {
		cut = min(endOffset, fEnd)
	}
	if cut >= end {
		return nil
	}
	if err := l.Truncate(max(cut, 0)); err != nil {
		return fmt.Errorf("replication: truncate %v to %d: %w", l.ID(), cut, err)
	}
	return nil
}

// resetOffset handles OFFSET_OUT_OF_RANGE as Kafka's follower does: past
// the leader's end, truncate to it; before its log start, restart the
// log empty at the leader's log start. The leader is asked without s.mu
// held; the log is changed under it, if p is still followed.
func (s *source) resetOffset(p *part) {
	start, end, err := s.leaderOffsets(p)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.parts[p.Log.ID()] != p {
		return
	}
	if err == nil {
		switch leo := p.Log.LogEndOffset(); {
		case leo > end:
			err = p.Log.Truncate(end)
		case leo < start:
			err = p.Log.TruncateFullyAndStartAt(start)
		}
	}
	if err != nil {
		s.backoffLocked(p, fmt.Errorf("replication: reset offset of %v: %w", p.Log.ID(), err))
	}
}

// wholeBatches drops a trailing partial batch (a leader may cut the last
// batch at the byte limit).
func wholeBatches(b []byte) []byte {
	n := 0
	for n+recordbatch.HeaderSize <= len(b) {
		h, err := recordbatch.ParseHeader(b[n:])
		if err != nil || h.Size() > int64(len(b)-n) {
			break
		}
		n += int(h.Size())
	}
	return b[:n]
}

// leaderOffsets asks the leader for its log start and end offsets with
// ListOffsets (replica_id set, so the end is the log end, not the HW).
func (s *source) leaderOffsets(p *part) (start, end int64, err error) {
	id := p.Log.ID()
	get := func(ts int64) (int64, error) {
		req := kmsg.NewPtrListOffsetsRequest()
		req.SetVersion(listOffsetsVersion)
		req.ReplicaID = s.f.cfg.NodeID
		t := kmsg.NewListOffsetsRequestTopic()
		t.Topic = id.Topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition, rp.CurrentLeaderEpoch, rp.Timestamp = id.Partition, p.LeaderEpoch, ts
		t.Partitions = append(t.Partitions, rp)
		req.Topics = append(req.Topics, t)
		resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
		if err := s.roundTrip(req, resp); err != nil {
			return 0, err
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if rt.Topic == id.Topic && rp.Partition == id.Partition {
					if err := kafkaErr(rp.ErrorCode); err != nil {
						return 0, fmt.Errorf("replication: list offsets %v: %w", id, err)
					}
					return rp.Offset, nil
				}
			}
		}
		return 0, fmt.Errorf("replication: list offsets %v: partition missing from the response", id)
	}
	if start, err = get(-2); err == nil {
		end, err = get(-1)
	}
	return start, end, err
}

func (s *source) fetch(req *kmsg.FetchRequest) (*kmsg.FetchResponse, error) {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	return resp, s.roundTrip(req, resp)
}

// roundTrip sends req and reads its response on the source's connection,
// dialling it if needed. Only the source goroutine calls it.
func (s *source) roundTrip(req kmsg.Request, resp kmsg.Response) error {
	conn, err := s.connect()
	if err != nil {
		return err
	}
	cfg := &s.f.cfg
	s.corrID++
	conn.SetDeadline(cfg.Now().Add(cfg.SocketTimeout + cfg.MaxWait))
	frame := appendRequest(nil, req, s.corrID, cfg.ClientID)
	if _, err := conn.Write(frame); err != nil {
		s.closeConn()
		return fmt.Errorf("replication: send to %d: %w", s.leader.ID, err)
	}
	if err := readResponse(conn, s.corrID, resp, int64(cfg.MaxBytes)+maxResponseSlack); err != nil {
		s.closeConn()
		return fmt.Errorf("replication: response from %d: %w", s.leader.ID, err)
	}
	return nil
}

// maxResponseSlack bounds a response's size beyond MaxBytes (headers of
// many partitions, KIP-74's oversized first batch).
const maxResponseSlack = 64 << 20

func (s *source) connect() (net.Conn, error) {
	s.mu.Lock()
	conn, quit := s.conn, s.quit
	s.mu.Unlock()
	if quit {
		return nil, storage.ErrClosed
	}
	if conn != nil {
		return conn, nil
	}
	d := net.Dialer{Timeout: s.f.cfg.SocketTimeout}
	if a := s.f.cfg.LocalAddr; a != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(a)}
	}
	c, err := d.Dial("tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("replication: dial leader %d at %s: %w", s.leader.ID, s.addr, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.quit {
		c.Close()
		return nil, storage.ErrClosed
	}
	s.conn = c
	return c, nil
}

func (s *source) closeConn() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}
