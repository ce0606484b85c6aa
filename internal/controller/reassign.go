package controller

// Partition reassignment, Kafka's KIP-455 as KRaft implements it.
//
// Starting a reassignment of a partition whose replicas are O to target T
// sets Replicas = T followed by O − T, AddingReplicas = T − O and
// RemovingReplicas = O − T, and keeps O (in order) so that a cancel
// restores it exactly. The ISR and leader stay. The adding replicas'
// brokers open the log because they are now in Replicas, fetch from the
// leader, and its LeaderState adds them to the ISR by AlterPartition once
// caught up. The reassignment completes in the apply that makes every
// target replica an ISR member (AlterPartition, an election, fencing or
// unfencing, or the start itself when T ⊆ ISR): Replicas = T, ISR = ISR ∩
// T, and if the leader is not in T the first target replica that is
// unfenced takes over (leader epoch +1). If none is, completion waits for
// one to be unfenced.
//
// A new target for a partition being reassigned replaces the old one, as
// in Kafka: it is computed from O, so replicas the old target added and
// the new one does not are dropped at once (they leave the ISR). A cancel
// is the same with T = O. Either is refused if no ISR member would remain
// a replica (only the replicas being dropped are in sync): that would need
// an unclean election, which the operator may ask for separately.

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/streambus/streambus/internal/metadata"
)

// reassignment is a partition's reassignment in progress, kept in state
// and in snapshots. The JSON names are part of the on-disk format.
type reassignment struct {
	Adding   []int32 `json:"adding"`
	Removing []int32 `json:"removing"`
	// Original is the replica list before the reassignment started; a
	// cancel restores it.
	Original []int32 `json:"original"`
}

// reassignTarget is one partition's entry of a reassignment command (on
// disk): the target replicas, or null to cancel.
type reassignTarget struct {
	Topic     string  `json:"topic"`
	Partition int32   `json:"partition"`
	Target    []int32 `json:"target"`
}

// reassignmentRecord is a reassignment in a snapshot.
type reassignmentRecord struct {
	TopicPartition
	reassignment
}

// PartitionReassignment is a reassignment in progress, as
// ListPartitionReassignments reports it.
type PartitionReassignment struct {
	TopicPartition
	Replicas         []int32
	AddingReplicas   []int32
	RemovingReplicas []int32
}

// AlterPartitionReassignments is Kafka's AlterPartitionReassignments: for
// each partition, move its replicas to the target list, or cancel its
// reassignment when the target is nil. The map holds every requested
// partition with its outcome: nil (accepted, or already done), or
// metadata.ErrUnknownTopic (UNKNOWN_TOPIC_OR_PARTITION),
// metadata.ErrInvalidReplicaAssignment (an empty target, a duplicate or
// unregistered broker, or no in-sync replica left) or
// ErrNoReassignmentInProgress (a cancel with none). Completion is
// asynchronous; see ListPartitionReassignments. The error is for the call
// as a whole. Forwarded to the controller from any node.
func (s *Store) AlterPartitionReassignments(ctx context.Context, reqs map[TopicPartition][]int32) (map[TopicPartition]error, error) {
	tps := slices.SortedFunc(maps.Keys(reqs), compareTP)
	// The forwarded request carries the partitions in Elect and their
	// targets, in the same order, in Assignment (a null entry cancels).
	targets := make([][]int32, len(tps))
	for i, tp := range tps {
		targets[i] = slices.Clone(reqs[tp])
	}
	resp, err := s.exec(ctx, &request{Op: opReassign, Elect: tps, Assignment: targets})
	if err != nil {
		return nil, err
	}
	out := make(map[TopicPartition]error, len(tps))
	for _, tp := range tps {
		out[tp] = nil
	}
	for _, r := range resp.Elected {
		out[r.TopicPartition] = fromWire(r.Err)
	}
	return out, nil
}

// ListPartitionReassignments returns the reassignments in progress, of
// the named partitions or, with nil, of all, sorted. Named partitions
// that are unknown or not being reassigned are left out, as in Kafka.
// A local read: a node that is not the controller may lag behind it.
func (s *Store) ListPartitionReassignments(partitions []TopicPartition) []PartitionReassignment {
	st := s.fsm.current()
	tps := partitions
	if tps == nil {
		tps = slices.Collect(maps.Keys(st.Reassigning))
	}
	tps = slices.Compact(slices.SortedFunc(slices.Values(tps), compareTP))
	var out []PartitionReassignment
	for _, tp := range tps {
		r, ok := st.Reassigning[tp]
		_, p, _, exists := partitionOf(st, tp.Topic, tp.Partition)
		if !ok || !exists {
			continue
		}
		out = append(out, PartitionReassignment{TopicPartition: tp, Replicas: slices.Clone(p.Replicas),
			AddingReplicas: slices.Clone(r.Adding), RemovingReplicas: slices.Clone(r.Removing)})
	}
	return out
}

// ReassignPartitions is AlterPartitionReassignments keyed by topic and
// partition (a nil target cancels). It is part of broker.Store.
func (s *Store) ReassignPartitions(ctx context.Context, targets map[string]map[int32][]int32) (map[string]map[int32]error, error) {
	reqs := map[TopicPartition][]int32{}
	for topic, parts := range targets {
		for p, target := range parts {
			reqs[TopicPartition{Topic: topic, Partition: p}] = target
		}
	}
	res, err := s.AlterPartitionReassignments(ctx, reqs)
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

// EachReassignment calls fn for every reassignment in progress, sorted.
// It is part of broker.Store.
func (s *Store) EachReassignment(fn func(topic string, partition int32, replicas, adding, removing []int32)) {
	for _, r := range s.ListPartitionReassignments(nil) {
		fn(r.Topic, r.Partition, r.Replicas, r.AddingReplicas, r.RemovingReplicas)
	}
}

func compareTP(a, b TopicPartition) int {
	if c := strings.Compare(a.Topic, b.Topic); c != 0 {
		return c
	}
	return int(a.Partition) - int(b.Partition)
}

// prepareReassign checks each requested partition against st, in order,
// as applying will: those that change something go into the command, the
// others are answered (nil for a target equal to the current replicas).
func prepareReassign(st *state, req *request) (*command, *response, error) {
	if len(req.Elect) != len(req.Assignment) {
		return nil, nil, newError(metadata.ErrInvalidRequest, "reassignment: partitions and targets differ in number")
	}
	scratch := st.clone() // reassign records into it; st is published
	resp := &response{}
	var cmd []reassignTarget
	for i, tp := range req.Elect {
		rt := reassignTarget{Topic: tp.Topic, Partition: tp.Partition, Target: req.Assignment[i]}
		p, changed, err := reassign(scratch, rt)
		switch {
		case err != nil:
			resp.Elected = append(resp.Elected, electResult{TopicPartition: tp, Err: toWire(err)})
		case changed:
			t, _, _, _ := partitionOf(scratch, tp.Topic, tp.Partition)
			setPartition(scratch, t, p)
			cmd = append(cmd, rt)
		}
	}
	if len(cmd) == 0 {
		return nil, resp, nil
	}
	return &command{Op: opReassign, Reassign: cmd}, resp, nil
}

// applyReassign applies every entry of a reassignment command to next;
// any entry that is no longer valid fails the whole command.
func applyReassign(next *state, targets []reassignTarget) error {
	if len(targets) == 0 {
		return newError(metadata.ErrInvalidRequest, "empty reassignment command")
	}
	for _, rt := range targets {
		p, changed, err := reassign(next, rt)
		if err != nil {
			return err
		}
		if !changed {
			return errStale
		}
		t, _, _, _ := partitionOf(next, rt.Topic, rt.Partition)
		setPartition(next, t, p)
	}
	return nil
}

// reassign computes the partition after starting, replacing or
// cancelling (nil target) its reassignment, and records the reassignment
// in st.Reassigning when anything changes. It does not store the
// partition: the caller does (setPartition), so that only clones of
// published states are modified. changed is false when the target is the
// current assignment.
func reassign(st *state, rt reassignTarget) (metadata.Partition, bool, error) {
	tp := TopicPartition{Topic: rt.Topic, Partition: rt.Partition}
	_, p, _, ok := partitionOf(st, rt.Topic, rt.Partition)
	if !ok {
		return p, false, unknownPartition(rt.Topic, rt.Partition)
	}
	cur, reassigning := st.Reassigning[tp]
	original := p.Replicas
	if reassigning {
		original = cur.Original
	}
	target := rt.Target
	if target == nil {
		if !reassigning {
			return p, false, newError(ErrNoReassignmentInProgress, fmt.Sprintf(
				"No reassignment is in progress for topic %s partition %d", rt.Topic, rt.Partition))
		}
		target = original
	}
	if err := checkReplicas(st, rt.Partition, target, len(target)); err != nil {
		return p, false, err
	}
	if !reassigning && slices.Equal(target, p.Replicas) {
		return p, false, nil
	}
	replicas := slices.Clone(target)
	for _, r := range original {
		if !slices.Contains(target, r) {
			replicas = append(replicas, r)
		}
	}
	isr := slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return !slices.Contains(replicas, r) })
	if len(isr) == 0 {
		return p, false, newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
			"Cannot reassign %s-%d to %v: no replica of the ISR %v would remain, which would need an unclean election.",
			rt.Topic, rt.Partition, target, p.ISR))
	}
	p.Replicas, p.ISR = replicas, isr
	if p.Leader != -1 && !slices.Contains(replicas, p.Leader) {
		p.Leader = electLeader(st, rt.Topic, p, -1)
		p.LeaderEpoch++
	}
	r := reassignment{Original: slices.Clone(original)}
	for _, b := range target {
		if !slices.Contains(original, b) {
			r.Adding = append(r.Adding, b)
		}
	}
	for _, b := range original {
		if !slices.Contains(target, b) {
			r.Removing = append(r.Removing, b)
		}
	}
	if len(r.Adding) == 0 && len(r.Removing) == 0 {
		delete(st.Reassigning, tp)
	} else {
		st.Reassigning[tp] = r
	}
	p, _ = completeReassignment(st, tp, p)
	return p, true, nil
}

// completeReassignment finishes tp's reassignment if every target replica
// is in the ISR and the partition can have a target replica as leader:
// Replicas = target, ISR ∩ target, leader moved if needed (leader epoch
// +1). It removes the reassignment from st and returns the partition to
// store, and whether it completed.
func completeReassignment(st *state, tp TopicPartition, p metadata.Partition) (metadata.Partition, bool) {
	r, ok := st.Reassigning[tp]
	if !ok {
		return p, false
	}
	target := slices.DeleteFunc(slices.Clone(p.Replicas), func(b int32) bool { return slices.Contains(r.Removing, b) })
	for _, b := range target {
		if !slices.Contains(p.ISR, b) {
			return p, false
		}
	}
	leader := p.Leader
	if !slices.Contains(target, leader) {
		leader = -1
		for _, b := range target {
			if eligible(st, b) {
				leader = b
				break
			}
		}
		if leader == -1 {
			return p, false // wait for a target replica to be unfenced
		}
		p.LeaderEpoch++
	}
	p.Leader = leader
	p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(b int32) bool { return !slices.Contains(target, b) })
	p.Replicas = target
	delete(st.Reassigning, tp)
	return p, true
}

// completeReassignments completes, in a fixed order, every reassignment
// the state now allows; applying runs it after each change of ISRs,
// leaders or broker states.
func completeReassignments(next *state) {
	for _, tp := range slices.SortedFunc(maps.Keys(next.Reassigning), compareTP) {
		t, p, _, ok := partitionOf(next, tp.Topic, tp.Partition)
		if !ok {
			delete(next.Reassigning, tp)
			continue
		}
		if p, done := completeReassignment(next, tp, p); done {
			setPartition(next, t, p)
		}
	}
}

// dropReassignments forgets the reassignments of a deleted topic.
func dropReassignments(next *state, topic string) {
	for tp := range next.Reassigning {
		if tp.Topic == topic {
			delete(next.Reassigning, tp)
		}
	}
}

// checkReassignments validates the reassignments of a decoded snapshot
// against its partitions.
func checkReassignments(st *state) error {
	for tp, r := range st.Reassigning {
		_, p, _, ok := partitionOf(st, tp.Topic, tp.Partition)
		if !ok || len(r.Original) == 0 || len(r.Adding)+len(r.Removing) == 0 {
			return fmt.Errorf("controller: snapshot: reassignment of %s-%d is malformed", tp.Topic, tp.Partition)
		}
		for _, b := range slices.Concat(r.Adding, r.Removing, r.Original) {
			if !slices.Contains(p.Replicas, b) {
				return fmt.Errorf("controller: snapshot: reassignment of %s-%d names broker %d, not a replica", tp.Topic, tp.Partition, b)
			}
		}
	}
	return nil
}
