package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/raft"

	"github.com/streambus/streambus/internal/metadata"
)

// PartitionState returns a partition as this node last applied it, with
// its partition epoch and reassignment, or false if the topic or partition does not exist.
// Lock-free; the same on every node after the same log prefix.
func (s *Store) PartitionState(topic string, partition int32) (PartitionState, bool) {
	st := s.fsm.current()
	t, p, pe, ok := partitionOf(st, topic, partition)
	if !ok {
		return PartitionState{}, false
	}
	r := st.Reassigning[TopicPartition{Topic: topic, Partition: partition}]
	return PartitionState{Partition: p, TopicID: t.ID, PartitionEpoch: pe,
		AddingReplicas: slices.Clone(r.Adding), RemovingReplicas: slices.Clone(r.Removing)}, true
}

// AlterPartition is Kafka's AlterPartition: the partition's leader asks
// the controller to replace the ISR. It is accepted only from the current
// leader (else ErrNotLeaderOrFollower) at the current leader epoch
// (ErrFencedLeaderEpoch) and partition epoch (ErrInvalidUpdateVersion);
// the new ISR must contain the leader and no duplicate
// (metadata.ErrInvalidRequest), and may add only assigned, unfenced
// replicas (ErrIneligibleReplica). An unknown partition is
// metadata.ErrUnknownTopic. On success the partition epoch goes up by one
// (the leader epoch stays) and the committed partition is returned; an
// ISR equal to the current one changes nothing and returns the current
// partition. Forwarded to the controller from any node.
func (s *Store) AlterPartition(ctx context.Context, req AlterPartitionRequest) (metadata.Partition, error) {
	req.NewISR = slices.Clone(req.NewISR)
	resp, err := s.exec(ctx, &request{Op: opAlterPartition, Alter: &req})
	if err != nil {
		return metadata.Partition{}, err
	}
	if resp.Partition == nil {
		return metadata.Partition{}, errors.New("controller: alter partition: the controller sent no partition")
	}
	return *resp.Partition, nil
}

// electResult is one partition's outcome of a preferred election, as
// forwarded.
type electResult struct {
	TopicPartition
	Err *wireError `json:"err,omitempty"`
}

// ElectPreferredLeaders is Kafka's ElectLeaders with PREFERRED: each
// partition (all when partitions is nil) whose first replica is unfenced,
// in the ISR and not the leader gets it as leader, leader and partition
// epochs +1. The map holds every requested partition that was not
// changed, with ErrElectionNotNeeded, ErrPreferredLeaderNotAvailable or
// metadata.ErrUnknownTopic (for nil partitions, only the unavailable
// ones). The error is for the call as a whole.
func (s *Store) ElectPreferredLeaders(ctx context.Context, partitions []TopicPartition) (map[TopicPartition]error, error) {
	resp, err := s.exec(ctx, &request{Op: opElectPreferred, Elect: partitions})
	if err != nil {
		return nil, err
	}
	out := map[TopicPartition]error{}
	for _, r := range resp.Elected {
		if r.Err != nil {
			out[r.TopicPartition] = fromWire(r.Err)
		}
	}
	return out, nil
}

// prepareElect splits the requested partitions into those to elect (the
// command) and the rest with their errors; the answer lists both, the
// elected ones with no error. nil means all; then partitions already led
// by their preferred replica are not reported.
func prepareElect(st *state, tps []TopicPartition) (*command, *response, error) {
	return prepareElection(st, tps, opElectPreferred, checkPreferred)
}

// prepareElection is prepareElect and prepareUnclean: check says whether
// one partition can be elected under the election's rule; op names the
// command. nil tps means every partition, and then partitions that need no
// election (ELECTION_NOT_NEEDED) are left out of the answer.
func prepareElection(st *state, tps []TopicPartition, op string, check func(*state, TopicPartition) error) (*command, *response, error) {
	all := tps == nil
	if all {
		for _, name := range slices.Sorted(maps.Keys(st.Topics)) {
			for _, p := range st.Topics[name].Partitions {
				tps = append(tps, TopicPartition{Topic: name, Partition: p.Index})
			}
		}
	}
	resp := &response{}
	var elect []TopicPartition
	for _, tp := range tps {
		err := check(st, tp)
		switch {
		case err == nil:
			if !slices.Contains(elect, tp) {
				elect = append(elect, tp)
				resp.Elected = append(resp.Elected, electResult{TopicPartition: tp})
			}
		case all && errors.Is(err, ErrElectionNotNeeded):
		default:
			resp.Elected = append(resp.Elected, electResult{TopicPartition: tp, Err: toWire(err)})
		}
	}
	if len(elect) == 0 {
		return nil, resp, nil
	}
	return &command{Op: op, Elect: elect}, resp, nil
}

// ControlledShutdown is called by a broker on SIGTERM, before Close: this
// Store stops heartbeating, and the controller fences the broker as
// shutting down, moving the leadership of every partition it leads to
// the first other eligible ISR member in replica order (leader epoch +1;
// -1 if there is none) and removing it from every ISR it is not the last
// member of. It returns once this node applied the change; heartbeats do
// not unfence the broker afterwards (a restarted process registers a new
// incarnation).
func (s *Store) ControlledShutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	if _, err := s.exec(ctx, &request{Op: opShutdown, NodeID: s.cfg.NodeID, Incarnation: s.incarnation}); err != nil {
		return fmt.Errorf("controller: controlled shutdown: %w", err)
	}
	for {
		ch := s.Changes()
		if b, ok := s.fsm.current().Brokers[s.cfg.NodeID]; ok && b.ShuttingDown {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("controller: controlled shutdown: %w", ctx.Err())
		case <-s.stop:
			return metadata.ErrClosed
		}
	}
}

// livenessLoop fences, every LivenessCheckInterval while this node leads,
// the brokers whose session expired.
func (s *Store) livenessLoop() {
	s.every(s.cfg.LivenessCheckInterval, "fence expired brokers", func(ctx context.Context) error {
		s.noteLeaderContact()
		return s.checkLiveness(ctx)
	})
}

// every runs step each interval until the Store closes, with a context
// cancelled on close; a failure is logged as what failed.
func (s *Store) every(interval time.Duration, what string, step func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-s.stop; cancel() }() // ends with ctx: bounded by this loop
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		if err := step(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("controller: "+what, "err", err)
		}
	}
}

// checkLiveness fences every unfenced broker whose last heartbeat, by the
// injected clock, is older than SessionTimeout. It does nothing unless
// this node leads.
func (s *Store) checkLiveness(ctx context.Context) error {
	if s.raft.State() != raft.Leader {
		return nil
	}
	st := s.fsm.current()
	now := s.cfg.Now()
	var expired []brokerRecord
	s.hbMu.Lock()
	s.resetHeartbeatsLocked()
	for _, id := range slices.Sorted(maps.Keys(st.Brokers)) {
		b := st.Brokers[id]
		last, ok := s.hb[id]
		if !ok {
			// A new controller gives every broker a full session.
			s.hb[id] = now
			continue
		}
		if !b.Fenced && now.Sub(last) > s.cfg.SessionTimeout {
			expired = append(expired, b)
		}
	}
	s.hbMu.Unlock()
	var errs []error
	for _, b := range expired {
		s.log.Info("fencing broker: session expired", "broker", b.NodeID, "timeout", s.cfg.SessionTimeout)
		cctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		_, err := s.execLocal(cctx, &request{Op: opFence, NodeID: b.NodeID, Incarnation: b.Incarnation})
		cancel()
		if err != nil && !errors.Is(err, errStaleIncarnation) {
			errs = append(errs, fmt.Errorf("fence broker %d: %w", b.NodeID, err))
		}
	}
	return errors.Join(errs...)
}

// noteLeaderContact records, on a follower, that the Raft leader was in
// contact recently (within RaftTimeout by Raft's own clock).
func (s *Store) noteLeaderContact() {
	if s.raft.State() != raft.Follower {
		return
	}
	_, lid := s.raft.LeaderWithID()
	id, err := strconv.ParseInt(string(lid), 10, 32)
	if err != nil || time.Since(s.raft.LastContact()) > s.cfg.RaftTimeout {
		return
	}
	s.hbMu.Lock()
	s.leaderSeen.id, s.leaderSeen.at = int32(id), s.cfg.Now()
	s.hbMu.Unlock()
}

// resetHeartbeatsLocked forgets heartbeats collected in an earlier Raft
// term: they say nothing about what a broker sent while another node
// led. Every broker then gets a full session from the new controller's
// first look, except the previous controller: Raft contact proved its
// process alive, so its session runs from the last contact this node saw.
// When the controller's process died, that fences it (and moves its
// partitions) up to one session sooner, which is most of a controller
// failover. hbMu must be held.
func (s *Store) resetHeartbeatsLocked() {
	if term := s.raft.CurrentTerm(); term != s.hbTerm {
		s.hbTerm, s.hbTermStart = term, s.cfg.Now()
		clear(s.hb)
		if seen := s.leaderSeen; !seen.at.IsZero() && seen.id != s.cfg.NodeID {
			s.hb[seen.id] = seen.at
		}
	}
}
