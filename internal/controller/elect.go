package controller

// ElectLeaders (KIP-460): preferred elections (leadership.go) and unclean
// elections, which give a leaderless partition a leader outside the ISR
// and may lose acknowledged records; only an operator asks for them.

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/streambus/streambus/internal/metadata"
)

// ElectionType is ElectLeaders' election_type.
type ElectionType int8

const (
	// ElectPreferred moves leadership to the first replica (Kafka's
	// PREFERRED, 0).
	ElectPreferred ElectionType = 0
	// ElectUnclean gives a leaderless partition its first live replica as
	// leader and sole ISR member (Kafka's UNCLEAN, 1).
	ElectUnclean ElectionType = 1
)

// ElectLeaders is Kafka's ElectLeaders. ElectPreferred is
// ElectPreferredLeaders. ElectUnclean elects, for each partition with no
// leader, its first registered and unfenced replica in replica order, with
// an ISR of that replica alone (leader and partition epochs +1). The map
// holds every partition elected (nil) or refused: metadata.ErrUnknownTopic,
// ErrElectionNotNeeded (it has a leader, or for a preferred election its
// preferred replica leads), ErrPreferredLeaderNotAvailable or
// ErrEligibleLeadersNotAvailable (no live replica). With nil partitions
// every partition is considered and, as in Kafka, those that need no
// election are left out. Another type is metadata.ErrInvalidRequest for
// the call as a whole.
func (s *Store) ElectLeaders(ctx context.Context, typ ElectionType, partitions []TopicPartition) (map[TopicPartition]error, error) {
	var op string
	switch typ {
	case ElectPreferred:
		op = opElectPreferred
	case ElectUnclean:
		op = opElectUnclean
	default:
		return nil, newError(metadata.ErrInvalidRequest, fmt.Sprintf("Unknown election type %d.", typ))
	}
	resp, err := s.exec(ctx, &request{Op: op, Elect: partitions})
	if err != nil {
		return nil, err
	}
	out := map[TopicPartition]error{}
	for _, r := range resp.Elected {
		out[r.TopicPartition] = fromWire(r.Err)
	}
	return out, nil
}

// ElectPartitionLeaders is ElectLeaders keyed by topic and partition (nil
// partitions: all). It is part of broker.Store.
func (s *Store) ElectPartitionLeaders(ctx context.Context, electionType int8, partitions map[string][]int32) (map[string]map[int32]error, error) {
	var tps []TopicPartition
	if partitions != nil {
		tps = []TopicPartition{}
		for _, topic := range slices.Sorted(maps.Keys(partitions)) {
			for _, p := range partitions[topic] {
				tps = append(tps, TopicPartition{Topic: topic, Partition: p})
			}
		}
	}
	res, err := s.ElectLeaders(ctx, ElectionType(electionType), tps)
	if err != nil {
		return nil, err
	}
	out := map[string]map[int32]error{}
	for tp, err := range res {
		if out[tp.Topic] == nil {
			out[tp.Topic] = map[int32]error{}
		}
		out[tp.Topic][tp.Partition] = err
	}
	return out, nil
}

// checkUnclean returns the replica an unclean election of tp would elect,
// or why there is none.
func checkUnclean(st *state, tp TopicPartition) (int32, error) {
	_, p, _, ok := partitionOf(st, tp.Topic, tp.Partition)
	if !ok {
		return -1, unknownPartition(tp.Topic, tp.Partition)
	}
	if p.Leader != -1 {
		return -1, newError(ErrElectionNotNeeded, "Leader election not needed for topic partition.")
	}
	for _, r := range p.Replicas {
		if eligibleFor(st, r, tp.Topic, tp.Partition) {
			return r, nil
		}
	}
	return -1, newError(ErrEligibleLeadersNotAvailable, fmt.Sprintf(
		"Failed to elect leader for partition %s-%d under strategy UncleanLeaderElectionStrategy", tp.Topic, tp.Partition))
}

// prepareUnclean splits the requested partitions (nil: all) into those to
// elect and the rest with their errors; the answer lists both, the
// elected ones with no error. For all partitions, those that have a
// leader are not reported.
func prepareUnclean(st *state, tps []TopicPartition) (*command, *response, error) {
	return prepareElection(st, tps, opElectUnclean, func(st *state, tp TopicPartition) error {
		_, err := checkUnclean(st, tp)
		return err
	})
}

// electUnclean applies an unclean election command. A partition that got
// a leader or lost every live replica since the command was computed
// fails the command: an unclean election must never replace the ISR of a
// partition that has a leader.
func electUnclean(next *state, tps []TopicPartition) error {
	if len(tps) == 0 {
		return newError(metadata.ErrInvalidRequest, "empty election command")
	}
	for _, tp := range tps {
		leader, err := checkUnclean(next, tp)
		if err != nil {
			return err
		}
		t, p, _, _ := partitionOf(next, tp.Topic, tp.Partition)
		p.Leader, p.ISR = leader, []int32{leader}
		p.LeaderEpoch++
		setPartition(next, t, p)
	}
	return nil
}
