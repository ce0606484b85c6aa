package replication

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// Errors of the leader side; the broker maps them to Kafka codes.
var (
	// ErrNotEnoughReplicas: the ISR is smaller than min.insync.replicas,
	// so an acks=all produce is refused before it is written
	// (NOT_ENOUGH_REPLICAS).
	ErrNotEnoughReplicas = errors.New("replication: not enough in-sync replicas")
	// ErrNotEnoughReplicasAfterAppend: the records reached every ISR
	// member but the ISR shrank below min.insync.replicas meanwhile
	// (NOT_ENOUGH_REPLICAS_AFTER_APPEND); they are written and may be read.
	ErrNotEnoughReplicasAfterAppend = errors.New("replication: not enough in-sync replicas after append")
	// ErrUnknownReplica: a fetch named a replica ID that is not in the
	// partition's assignment (the broker answers NOT_LEADER_OR_FOLLOWER,
	// as Kafka does for a fetch it cannot attribute).
	ErrUnknownReplica = errors.New("replication: replica not assigned to the partition")
	// ErrStaleAssignment: an assignment for another leader epoch reached a
	// LeaderState; leadership changes build a new LeaderState instead.
	ErrStaleAssignment = errors.New("replication: assignment for another leader epoch")
	// ErrInvalidConfig rejects a Config or assignment that cannot work.
	ErrInvalidConfig = errors.New("replication: invalid config")
)

// DefaultReplicaLagTime is replica.lag.time.max.ms's default.
const DefaultReplicaLagTime = 30 * time.Second

// LeaderConfig configures a LeaderState.
type LeaderConfig struct {
	// ReplicaLagTime is replica.lag.time.max.ms: an ISR follower that has
	// not caught up to the leader's end for longer is proposed for
	// removal. Default 30s.
	ReplicaLagTime time.Duration
}

// EnsureDefaults fills zero fields with their defaults.
func (c *LeaderConfig) EnsureDefaults() {
	if c.ReplicaLagTime == 0 {
		c.ReplicaLagTime = DefaultReplicaLagTime
	}
}

// Validate reports a configuration that cannot work.
func (c *LeaderConfig) Validate() error {
	if c.ReplicaLagTime < 0 {
		return fmt.Errorf("%w: replica lag time %v", ErrInvalidConfig, c.ReplicaLagTime)
	}
	return nil
}

// Assignment is the controller's view of one partition, as the metadata
// image holds it.
type Assignment struct {
	Leader         int32   // broker ID of the leader
	LeaderEpoch    int32   // bumped on every leader change
	PartitionEpoch int32   // bumped on every change (ISR, replicas, leader)
	Replicas       []int32 // assigned replicas, leader included
	ISR            []int32 // confirmed in-sync replicas, leader included
}

func (a Assignment) validate() error {
	if !slices.Contains(a.Replicas, a.Leader) || !slices.Contains(a.ISR, a.Leader) {
		return fmt.Errorf("%w: leader %d not in replicas %v and ISR %v", ErrInvalidConfig, a.Leader, a.Replicas, a.ISR)
	}
	for _, r := range a.ISR {
		if !slices.Contains(a.Replicas, r) {
			return fmt.Errorf("%w: ISR member %d not in replicas %v", ErrInvalidConfig, r, a.Replicas)
		}
	}
	return nil
}

// ISRProposal asks the controller to change the ISR (Kafka's
// AlterPartition). It is not applied locally: the leader keeps using the
// confirmed ISR for min.insync.replicas and the union of both for the high
// watermark until ApplyAssignment brings the controller's answer, or
// ProposalFailed gives up on it.
type ISRProposal struct {
	LeaderEpoch    int32
	PartitionEpoch int32 // the epoch the proposal is based on (stale ones are rejected)
	ISR            []int32
}

// Update is what a LeaderState call produced for its owner to act on.
type Update struct {
	// HighWatermark is the current high watermark; HWAdvanced says it
	// moved during this call (wake fetchers and acks=all waiters).
	HighWatermark int64
	HWAdvanced    bool
	// LogStartChanged says a follower reported a new log start offset
	// during this call (wake DeleteRecords waiting for the low
	// watermark).
	LogStartChanged bool
	// Proposal, when set, must be sent to the controller.
	Proposal *ISRProposal
}

type follower struct {
	leo                int64 // last fetch offset, -1 until the first fetch
	logStart           int64 // log start offset of the last fetch, -1 until the first fetch
	lastCaughtUp       time.Time
	lastFetch          time.Time
	lastFetchLeaderEnd int64
}

// LeaderState is the leader's replication state of one partition, with
// Kafka's semantics: per-follower log end offsets learnt from their
// fetches, the high watermark as the minimum over the ISR, ISR shrink
// and expansion proposed to the controller. It does no I/O and reads no
// clock: time arrives as arguments. It is not safe for concurrent use;
// its owner serialises calls (a mutex per partition, or one goroutine).
type LeaderState struct {
	cfg        LeaderConfig
	self       int32
	a          Assignment
	leaderEnd  int64 // the leader's own replicated-safe end
	epochStart int64 // log end when this leader epoch began
	hw         int64
	followers  map[int32]*follower
	pending    *ISRProposal
}

// NewLeaderState starts leading a partition at now with assignment a
// (a.Leader must be self). leaderEnd is the leader's log end offset, which
// is also the start of its leader epoch; hw the high watermark it knew
// (checkpoint or follower state), clamped to leaderEnd. ISR followers are
// given ReplicaLagTime from now to catch up, as Kafka does.
func NewLeaderState(cfg LeaderConfig, self int32, a Assignment, leaderEnd, hw int64, now time.Time) (*LeaderState, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if a.Leader != self {
		return nil, fmt.Errorf("%w: broker %d is not leader %d", ErrInvalidConfig, self, a.Leader)
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	s := &LeaderState{cfg: cfg, self: self, leaderEnd: leaderEnd, epochStart: leaderEnd,
		hw: min(max(hw, 0), leaderEnd), followers: map[int32]*follower{}}
	s.setAssignment(a, now)
	return s, nil
}

func (s *LeaderState) setAssignment(a Assignment, now time.Time) {
	a.Replicas, a.ISR = slices.Clone(a.Replicas), slices.Clone(a.ISR)
	s.a = a
	for _, r := range a.Replicas {
		if r == s.self || s.followers[r] != nil {
			continue
		}
		f := &follower{leo: -1, logStart: -1, lastFetchLeaderEnd: -1}
		if slices.Contains(a.ISR, r) {
			f.lastCaughtUp = now
		}
		s.followers[r] = f
	}
	for r := range s.followers {
		if !slices.Contains(a.Replicas, r) {
			delete(s.followers, r)
		}
	}
}

// HighWatermark is the offset below which every record is on every
// replica of the (maximal) ISR. It never decreases while this LeaderState
// lives.
func (s *LeaderState) HighWatermark() int64 { return s.hw }

// LeaderEpoch is the epoch this state leads in.
func (s *LeaderState) LeaderEpoch() int32 { return s.a.LeaderEpoch }

// ISR returns the confirmed ISR.
func (s *LeaderState) ISR() []int32 { return slices.Clone(s.a.ISR) }

// Replicas returns the assigned replicas.
func (s *LeaderState) Replicas() []int32 { return slices.Clone(s.a.Replicas) }

// Pending returns the ISR proposal awaiting the controller, or nil.
func (s *LeaderState) Pending() *ISRProposal { return s.pending }

// FollowerEnd returns a follower's log end offset as learnt from its
// fetches (-1 before its first fetch); ok is false for non-followers.
func (s *LeaderState) FollowerEnd(replica int32) (leo int64, ok bool) {
	f := s.followers[replica]
	if f == nil {
		return -1, false
	}
	return f.leo, true
}

// FollowerLogStart returns a follower's log start offset as its last
// fetch reported it (-1 before its first fetch); ok is false for
// non-followers.
func (s *LeaderState) FollowerLogStart(replica int32) (logStart int64, ok bool) {
	f := s.followers[replica]
	if f == nil {
		return -1, false
	}
	return f.logStart, true
}

// LowWatermark is the partition's low watermark, Kafka's
// lowWatermarkIfLeader: the smallest log start offset over the leader
// (leaderLogStart) and every assigned follower for which alive reports
// true (Kafka counts the replicas on live brokers, in the ISR or not). A
// live follower that has not fetched from this leader yet counts as -1,
// as in Kafka, so the low watermark waits for its first fetch. A
// DeleteRecords request completes once the low watermark reaches the
// offset it asked for.
func (s *LeaderState) LowWatermark(leaderLogStart int64, alive func(replica int32) bool) int64 {
	lw := leaderLogStart
	for r, f := range s.followers {
		if f.logStart < lw && alive(r) {
			lw = f.logStart
		}
	}
	return lw
}

// maximalISR is the ISR the high watermark must respect: the confirmed
// ISR plus members a pending proposal adds (a pending removal still
// counts), as in Kafka.
func (s *LeaderState) maximalISR() []int32 {
	isr := slices.Clone(s.a.ISR)
	if s.pending != nil {
		for _, r := range s.pending.ISR {
			if !slices.Contains(isr, r) {
				isr = append(isr, r)
			}
		}
	}
	return isr
}

// SetLeaderEnd records the leader's own end: its log end offset, or in
// FlushOnAck mode its durable offset (storage.Log.HighWatermark), so that
// the high watermark never covers data a leader crash could lose.
func (s *LeaderState) SetLeaderEnd(end int64, now time.Time) Update {
	s.leaderEnd = max(s.leaderEnd, end)
	return s.update(now)
}

// FollowerFetched records a fetch by replica at fetchOffset (its log end
// offset: it has everything below) at now; logStart is the log start
// offset the fetch reports (for LowWatermark). A fetch offset at or past
// the leader's end counts as caught up; one that reaches what the
// leader's end was at the follower's previous fetch counts as caught up
// as of that previous fetch (Kafka's lastCaughtUpTime rule). It may
// propose adding the follower to the ISR once it reaches the high
// watermark and the start of this leader epoch.
func (s *LeaderState) FollowerFetched(replica int32, fetchOffset, logStart int64, now time.Time) (Update, error) {
	f := s.followers[replica]
	if f == nil {
		return Update{HighWatermark: s.hw}, fmt.Errorf("%w: replica %d fetched, replicas %v", ErrUnknownReplica, replica, s.a.Replicas)
	}
	switch {
	case fetchOffset >= s.leaderEnd:
		f.lastCaughtUp = maxTime(f.lastCaughtUp, now)
	case f.lastFetchLeaderEnd >= 0 && fetchOffset >= f.lastFetchLeaderEnd:
		f.lastCaughtUp = maxTime(f.lastCaughtUp, f.lastFetch)
	}
	f.leo, f.lastFetch, f.lastFetchLeaderEnd = fetchOffset, now, s.leaderEnd
	u := s.updateFor(now, replica)
	if f.logStart != logStart {
		f.logStart, u.LogStartChanged = logStart, true
	}
	return u, nil
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// Tick looks for ISR followers that have not caught up for longer than
// ReplicaLagTime and proposes removing them.
func (s *LeaderState) Tick(now time.Time) Update { return s.update(now) }

// ApplyAssignment installs the controller's newer view of the partition
// for the same leader epoch (an accepted AlterPartition, a reassignment).
// A pending proposal is dropped once the partition epoch reaches past
// the one it was based on. A different leader epoch is
// ErrStaleAssignment: a new leadership needs a new LeaderState.
func (s *LeaderState) ApplyAssignment(a Assignment, now time.Time) (Update, error) {
	if a.LeaderEpoch != s.a.LeaderEpoch || a.Leader != s.self {
		return Update{HighWatermark: s.hw}, fmt.Errorf("%w: leader %d epoch %d, leading in epoch %d", ErrStaleAssignment, a.Leader, a.LeaderEpoch, s.a.LeaderEpoch)
	}
	if err := a.validate(); err != nil {
		return Update{HighWatermark: s.hw}, err
	}
	if a.PartitionEpoch < s.a.PartitionEpoch {
		return Update{HighWatermark: s.hw}, nil // older than what we have
	}
	s.setAssignment(a, now)
	if s.pending != nil && a.PartitionEpoch > s.pending.PartitionEpoch {
		s.pending = nil
	}
	return s.update(now), nil
}

// ProposalFailed drops the pending proposal (the controller rejected it
// or the request failed), so that a later call may propose again.
func (s *LeaderState) ProposalFailed() { s.pending = nil }

// update recomputes the high watermark and, with no proposal in flight,
// proposes shrinking the ISR.
func (s *LeaderState) update(now time.Time) Update { return s.updateFor(now, -1) }

// updateFor is update after a fetch by replica fetched (-1: no fetch):
// only the fetching follower may be proposed for the ISR, as in Kafka
// (Partition.maybeExpandIsr runs on a follower's fetch). A follower that
// was removed while caught up must fetch again to come back; otherwise a
// dead broker's last fetch state would re-propose it at once and its stale
// log end would hold the high watermark down.
func (s *LeaderState) updateFor(now time.Time, fetched int32) Update {
	u := Update{}
	if s.pending == nil {
		u.Proposal = s.proposeShrink(now)
		if u.Proposal == nil && fetched >= 0 {
			u.Proposal = s.proposeExpand(fetched)
		}
		s.pending = u.Proposal
	}
	hw := s.leaderEnd
	for _, r := range s.maximalISR() {
		if f := s.followers[r]; f != nil {
			hw = min(hw, f.leo)
		}
	}
	if hw > s.hw {
		s.hw, u.HWAdvanced = hw, true
	}
	u.HighWatermark = s.hw
	return u
}

func (s *LeaderState) proposeShrink(now time.Time) *ISRProposal {
	var keep []int32
	for _, r := range s.a.ISR {
		f := s.followers[r]
		if f == nil || f.leo >= s.leaderEnd || now.Sub(f.lastCaughtUp) <= s.cfg.ReplicaLagTime {
			keep = append(keep, r)
		}
	}
	if len(keep) == len(s.a.ISR) {
		return nil
	}
	return &ISRProposal{LeaderEpoch: s.a.LeaderEpoch, PartitionEpoch: s.a.PartitionEpoch, ISR: keep}
}

func (s *LeaderState) proposeExpand(r int32) *ISRProposal {
	f := s.followers[r]
	if f == nil || slices.Contains(s.a.ISR, r) || f.leo < s.hw || f.leo < s.epochStart {
		return nil
	}
	return &ISRProposal{LeaderEpoch: s.a.LeaderEpoch, PartitionEpoch: s.a.PartitionEpoch, ISR: append(slices.Clone(s.a.ISR), r)}
}

// CheckEnoughReplicas is the acks=all check before an append: with a
// confirmed ISR smaller than minISR (min.insync.replicas) the produce is
// refused with ErrNotEnoughReplicas and nothing is written.
func (s *LeaderState) CheckEnoughReplicas(minISR int) error {
	if len(s.a.ISR) < minISR {
		return fmt.Errorf("%w: ISR %v, min.insync.replicas %d", ErrNotEnoughReplicas, s.a.ISR, minISR)
	}
	return nil
}

// Satisfied reports whether an acks=all produce whose records end before
// requiredOffset (last offset + 1) can be answered: ok once the high
// watermark reaches it, with ErrNotEnoughReplicasAfterAppend if the
// confirmed ISR is then smaller than minISR (Kafka's
// checkEnoughReplicasReachOffset).
func (s *LeaderState) Satisfied(requiredOffset int64, minISR int) (ok bool, err error) {
	if s.hw < requiredOffset {
		return false, nil
	}
	if len(s.a.ISR) < minISR {
		return true, fmt.Errorf("%w: ISR %v, min.insync.replicas %d", ErrNotEnoughReplicasAfterAppend, s.a.ISR, minISR)
	}
	return true, nil
}
