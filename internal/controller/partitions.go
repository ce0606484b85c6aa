package controller

import (
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streambus/streambus/internal/metadata"
)

// Leadership errors, as Kafka's AlterPartition, ElectLeaders and
// reassignment codes. They survive forwarding (errorKinds). Each wraps
// franz-go's kerr value for its code: errors.Is matches the sentinel, and
// the broker's errCode, which does not import this package, finds the
// *kerr.Error in the chain.
var (
	// ErrNotLeaderOrFollower: the sender is not the partition's leader
	// (NOT_LEADER_OR_FOLLOWER).
	ErrNotLeaderOrFollower = kafkaError("controller: not the partition leader", kerr.NotLeaderForPartition)
	// ErrFencedLeaderEpoch: the sender's leader epoch is not the current
	// one (FENCED_LEADER_EPOCH).
	ErrFencedLeaderEpoch = kafkaError("controller: fenced leader epoch", kerr.FencedLeaderEpoch)
	// ErrInvalidUpdateVersion: the sender's partition epoch is not the
	// current one (INVALID_UPDATE_VERSION); reload metadata and retry.
	ErrInvalidUpdateVersion = kafkaError("controller: invalid partition epoch", kerr.InvalidUpdateVersion)
	// ErrIneligibleReplica: the proposed ISR adds a fenced, shutting-down
	// or unassigned broker (INELIGIBLE_REPLICA).
	ErrIneligibleReplica = kafkaError("controller: ineligible replica", kerr.IneligibleReplica)
	// ErrElectionNotNeeded: the preferred replica already leads, or (an
	// unclean election) the partition has a leader (ELECTION_NOT_NEEDED).
	ErrElectionNotNeeded = kafkaError("controller: election not needed", kerr.ElectionNotNeeded)
	// ErrPreferredLeaderNotAvailable: the preferred replica is fenced or
	// not in the ISR (PREFERRED_LEADER_NOT_AVAILABLE).
	ErrPreferredLeaderNotAvailable = kafkaError("controller: preferred leader not available", kerr.PreferredLeaderNotAvailable)
	// ErrEligibleLeadersNotAvailable: an unclean election found no
	// registered, unfenced replica (ELIGIBLE_LEADERS_NOT_AVAILABLE).
	ErrEligibleLeadersNotAvailable = kafkaError("controller: eligible leaders not available", kerr.EligibleLeadersNotAvailable)
	// ErrNoReassignmentInProgress: a reassignment cancel named a partition
	// that is not being reassigned (NO_REASSIGNMENT_IN_PROGRESS).
	ErrNoReassignmentInProgress = kafkaError("controller: no reassignment in progress", kerr.NoReassignmentInProgress)
)

// codedError is a sentinel that unwraps to its Kafka error.
type codedError struct {
	msg  string
	code *kerr.Error
}

func kafkaError(msg string, code *kerr.Error) error { return &codedError{msg: msg, code: code} }

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Unwrap() error { return e.code }

func unknownPartition(topic string, p int32) error {
	return newError(metadata.ErrUnknownTopic, fmt.Sprintf("Partition %s-%d does not exist.", topic, p))
}

// TopicPartition names one partition.
type TopicPartition struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
}

// PartitionState is one partition as the controller keeps it: the Image's
// metadata.Partition plus the partition epoch (Kafka's partition_epoch,
// the "version" AlterPartition is conditional on). metadata.Partition has
// no field for it yet, so it lives here.
type PartitionState struct {
	metadata.Partition
	TopicID [16]byte
	// PartitionEpoch increases with every change of leader, leader epoch,
	// ISR or replicas; 0 at creation.
	PartitionEpoch int32
	// AddingReplicas and RemovingReplicas are set while the partition is
	// being reassigned (reassign.go); Replicas then lists both.
	AddingReplicas, RemovingReplicas []int32
}

// AlterPartitionRequest is a leader's ISR change (Kafka AlterPartition):
// who sends it and which leader and partition epochs it acts on.
type AlterPartitionRequest struct {
	Topic          string  `json:"topic"`
	Partition      int32   `json:"partition"`
	BrokerID       int32   `json:"broker_id"`
	LeaderEpoch    int32   `json:"leader_epoch"`
	PartitionEpoch int32   `json:"partition_epoch"`
	NewISR         []int32 `json:"new_isr"`
}

// partitionOf returns the partition and its epoch, or ok false.
func partitionOf(st *state, topic string, p int32) (*metadata.Topic, metadata.Partition, int32, bool) {
	t := st.Topics[topic]
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		return nil, metadata.Partition{}, 0, false
	}
	return t, t.Partitions[p], st.PartEpochs[t.ID][p], true
}

// eligible reports whether broker id may lead or join an ISR: registered
// and unfenced.
func eligible(st *state, id int32) bool {
	b, ok := st.Brokers[id]
	return ok && !b.Fenced
}

// checkAlterPartition validates req against st in Kafka's order and
// returns the partition with the new ISR, and whether anything changes.
// Both the controller (before proposing) and apply run it.
func checkAlterPartition(st *state, req *AlterPartitionRequest) (metadata.Partition, bool, error) {
	_, p, pe, ok := partitionOf(st, req.Topic, req.Partition)
	if !ok {
		return p, false, unknownPartition(req.Topic, req.Partition)
	}
	switch {
	case p.Leader != req.BrokerID:
		return p, false, newError(ErrNotLeaderOrFollower, fmt.Sprintf(
			"Broker %d is not the leader of %s-%d (leader: %d).", req.BrokerID, req.Topic, req.Partition, p.Leader))
	case req.LeaderEpoch != p.LeaderEpoch:
		return p, false, newError(ErrFencedLeaderEpoch, fmt.Sprintf(
			"Leader epoch %d of %s-%d is not the current %d.", req.LeaderEpoch, req.Topic, req.Partition, p.LeaderEpoch))
	case req.PartitionEpoch != pe:
		return p, false, newError(ErrInvalidUpdateVersion, fmt.Sprintf(
			"Partition epoch %d of %s-%d is not the current %d.", req.PartitionEpoch, req.Topic, req.Partition, pe))
	case len(req.NewISR) == 0 || !slices.Contains(req.NewISR, req.BrokerID):
		return p, false, newError(metadata.ErrInvalidRequest, fmt.Sprintf(
			"The new ISR %v of %s-%d does not include the leader %d.", req.NewISR, req.Topic, req.Partition, req.BrokerID))
	}
	for i, r := range req.NewISR {
		if slices.Contains(req.NewISR[:i], r) {
			return p, false, newError(metadata.ErrInvalidRequest, fmt.Sprintf(
				"The new ISR %v of %s-%d lists broker %d twice.", req.NewISR, req.Topic, req.Partition, r))
		}
		if !slices.Contains(p.Replicas, r) || (!slices.Contains(p.ISR, r) && !eligibleFor(st, r, req.Topic, req.Partition)) {
			return p, false, newError(ErrIneligibleReplica, fmt.Sprintf(
				"Broker %d is not an assigned, unfenced replica of %s-%d.", r, req.Topic, req.Partition))
		}
	}
	if slices.Equal(req.NewISR, p.ISR) {
		return p, false, nil
	}
	p.ISR = slices.Clone(req.NewISR)
	return p, true, nil
}

// setPartition stores a changed partition in next (a clone of the
// published state), copying the topic so published states stay immutable,
// and bumps the partition epoch.
func setPartition(next *state, t *metadata.Topic, p metadata.Partition) {
	if cur := next.Topics[t.Name]; cur != nil {
		t = cur
	}
	nt := *t
	nt.Partitions = slices.Clone(t.Partitions)
	nt.Partitions[p.Index] = p
	next.Topics[nt.Name] = &nt
	next.TopicsByID[nt.ID] = &nt
	epochs := slices.Clone(next.PartEpochs[nt.ID])
	epochs[p.Index]++
	next.PartEpochs[nt.ID] = epochs
}

// electLeader returns the first replica, in replica order, that is in the
// ISR and eligible and is not excluded; -1 if none (no unclean election).
func electLeader(st *state, topic string, p metadata.Partition, exclude int32) int32 {
	for _, r := range p.Replicas {
		if r != exclude && slices.Contains(p.ISR, r) && eligibleFor(st, r, topic, p.Index) {
			return r
		}
	}
	return -1
}

// fenceBroker marks id fenced in next and, as KRaft does, moves away the
// leadership of every partition it leads (leader epoch +1, -1 when no
// eligible ISR member is left) and removes it from every ISR it is not
// the last member of. Each changed partition's epoch goes up by one.
func fenceBroker(next *state, id int32, shuttingDown bool) {
	b := next.Brokers[id]
	b.Fenced = true
	b.ShuttingDown = b.ShuttingDown || shuttingDown
	next.Brokers[id] = b
	for _, name := range slices.Sorted(maps.Keys(next.Topics)) {
		t := next.Topics[name]
		for _, p := range t.Partitions {
			changed := false
			if len(p.ISR) > 1 && slices.Contains(p.ISR, id) {
				p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
				changed = true
			}
			if p.Leader == id {
				p.Leader = electLeader(next, name, p, id)
				p.LeaderEpoch++
				changed = true
			}
			if changed {
				setPartition(next, t, p)
				t = next.Topics[name]
			}
		}
	}
}

// unfenceBroker marks id unfenced and gives a leader to every leaderless
// partition that now has an eligible ISR member.
func unfenceBroker(next *state, id int32) {
	b := next.Brokers[id]
	b.Fenced, b.ShuttingDown = false, false
	next.Brokers[id] = b
	electLeaderless(next)
}

func electLeaderless(next *state) {
	for _, name := range slices.Sorted(maps.Keys(next.Topics)) {
		t := next.Topics[name]
		for _, p := range t.Partitions {
			if p.Leader != -1 {
				continue
			}
			if l := electLeader(next, name, p, -1); l != -1 {
				p.Leader = l
				p.LeaderEpoch++
				setPartition(next, t, p)
				t = next.Topics[name]
			}
		}
	}
}

// checkPreferred reports why the preferred (first) replica of tp cannot
// take over, or nil if it can.
func checkPreferred(st *state, tp TopicPartition) error {
	_, p, _, ok := partitionOf(st, tp.Topic, tp.Partition)
	switch {
	case !ok:
		return unknownPartition(tp.Topic, tp.Partition)
	case p.Leader == p.Replicas[0]:
		return newError(ErrElectionNotNeeded, "Leader election not needed for topic partition.")
	case !slices.Contains(p.ISR, p.Replicas[0]) || !eligibleFor(st, p.Replicas[0], tp.Topic, tp.Partition):
		return newError(ErrPreferredLeaderNotAvailable, fmt.Sprintf(
			"Failed to elect leader for partition %s-%d under strategy PreferredLeaderElectionStrategy", tp.Topic, tp.Partition))
	}
	return nil
}

// electPreferred moves leadership of each listed partition to its first
// replica where checkPreferred allows it.
func electPreferred(next *state, tps []TopicPartition) {
	for _, tp := range tps {
		if checkPreferred(next, tp) != nil {
			continue
		}
		t, p, _, _ := partitionOf(next, tp.Topic, tp.Partition)
		p.Leader = p.Replicas[0]
		p.LeaderEpoch++
		setPartition(next, t, p)
	}
}
