package controller

import (
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/streambus/streambus/internal/metadata"
)

// withTopic adds topic name with the given replica lists to st.
func withTopic(t *testing.T, st *state, name, id string, replicas ...[]int32) *state {
	t.Helper()
	return mustApply(t, st, &command{Op: opCreateTopic, Name: name, TopicID: id, Replicas: replicas})
}

// prepareReassignments runs the controller's side of
// AlterPartitionReassignments on st: the command (nil when nothing
// changes) and each refused partition's error.
func prepareReassignments(t *testing.T, st *state, reqs map[TopicPartition][]int32) (*command, map[TopicPartition]error) {
	t.Helper()
	req := &request{Op: opReassign}
	for _, tp := range slices.SortedFunc(maps.Keys(reqs), compareTP) {
		req.Elect = append(req.Elect, tp)
		req.Assignment = append(req.Assignment, reqs[tp])
	}
	cmd, resp, err := prepareReassign(st, req)
	if err != nil {
		t.Fatalf("prepare reassignment: %v", err)
	}
	errs := map[TopicPartition]error{}
	for _, r := range resp.Elected {
		errs[r.TopicPartition] = fromWire(r.Err)
	}
	return cmd, errs
}

func mustReassign(t *testing.T, st *state, topic string, p int32, target []int32) *state {
	t.Helper()
	cmd, errs := prepareReassignments(t, st, map[TopicPartition][]int32{{topic, p}: target})
	if len(errs) != 0 || cmd == nil {
		t.Fatalf("reassign %s-%d to %v: %v (command %v)", topic, p, target, errs, cmd)
	}
	return mustApply(t, st, cmd)
}

// wantState checks partition p of topic: replicas, ISR, leader, leader
// epoch, partition epoch, and the reassignment (nil adding and removing:
// none in progress).
func wantState(t *testing.T, st *state, topic string, p int32, replicas, isr []int32, leader, le, pe int32, adding, removing []int32) {
	t.Helper()
	_, got, gotPE, ok := partitionOf(st, topic, p)
	if !ok {
		t.Fatalf("%s-%d missing", topic, p)
	}
	r, reassigning := st.Reassigning[TopicPartition{topic, p}]
	if !slices.Equal(got.Replicas, replicas) || !slices.Equal(got.ISR, isr) || got.Leader != leader ||
		got.LeaderEpoch != le || gotPE != pe || reassigning != (adding != nil || removing != nil) ||
		!slices.Equal(r.Adding, adding) || !slices.Equal(r.Removing, removing) {
		t.Fatalf("%s-%d: %+v partition epoch %d reassignment %+v (%v); want replicas %v isr %v leader %d epochs %d/%d adding %v removing %v",
			topic, p, got, gotPE, r, reassigning, replicas, isr, leader, le, pe, adding, removing)
	}
}

func partAt(t *testing.T, st *state, topic string, p int32) (metadata.Partition, int32) {
	t.Helper()
	_, mp, pe, ok := partitionOf(st, topic, p)
	if !ok {
		t.Fatalf("partition %s-%d missing", topic, p)
	}
	return mp, pe
}

func alterISR(t *testing.T, st *state, topic string, p, broker, le, pe int32, isr ...int32) *state {
	t.Helper()
	return mustApply(t, st, &command{Op: opAlterPartition, Alter: &AlterPartitionRequest{Topic: topic, Partition: p,
		BrokerID: broker, LeaderEpoch: le, PartitionEpoch: pe, NewISR: isr}})
}

// rf2 is threeBrokers plus topic "r" whose partition 0 has replicas 1, 2.
func rf2(t *testing.T) *state {
	return withTopic(t, threeBrokers(t), "r", "BBBBBBBBQACAAAAAAAAAAA", []int32{1, 2})
}

func TestReassignCompletesWhenTargetInISR(t *testing.T) {
	st := rf2(t)
	st = mustReassign(t, st, "r", 0, []int32{2, 3})
	wantState(t, st, "r", 0, []int32{2, 3, 1}, []int32{1, 2}, 1, 0, 1, []int32{3}, []int32{1})

	// The leader (1, being removed) still leads; 3 catches up and the
	// leader adds it to the ISR: the reassignment completes in the same
	// change, leadership moves to the first target replica, the removed
	// replica leaves the ISR.
	st = alterISR(t, st, "r", 0, 1, 0, 1, 1, 2, 3)
	wantState(t, st, "r", 0, []int32{2, 3}, []int32{2, 3}, 2, 1, 2, nil, nil)
	if len(st.Reassigning) != 0 {
		t.Fatalf("reassignments left: %v", st.Reassigning)
	}
}

func TestReassignImmediate(t *testing.T) {
	st := threeBrokers(t)
	// A target the ISR already covers completes at once; the leader (1)
	// stays.
	st = mustReassign(t, st, "t", 0, []int32{1, 2})
	wantState(t, st, "t", 0, []int32{1, 2}, []int32{1, 2}, 1, 0, 1, nil, nil)
	// A reordering changes the preferred replica only.
	st = mustReassign(t, st, "t", 1, []int32{3, 1, 2})
	wantState(t, st, "t", 1, []int32{3, 1, 2}, []int32{2, 3, 1}, 2, 0, 1, nil, nil)
	// The current assignment again: nothing to do, no command.
	if cmd, errs := prepareReassignments(t, st, map[TopicPartition][]int32{{"t", 1}: {3, 1, 2}}); cmd != nil || len(errs) != 0 {
		t.Fatalf("no-op reassignment: %+v %v", cmd, errs)
	}
	// Removing the leader of a partition whose ISR covers the target
	// moves leadership at once.
	st = mustReassign(t, st, "t", 1, []int32{3, 1})
	wantState(t, st, "t", 1, []int32{3, 1}, []int32{3, 1}, 3, 1, 2, nil, nil)
}

func TestReassignCancelAndReplace(t *testing.T) {
	st := rf2(t)
	st = mustReassign(t, st, "r", 0, []int32{2, 3})
	// A new target replaces the old one, computed from the original
	// replicas.
	st = mustReassign(t, st, "r", 0, []int32{1, 3})
	wantState(t, st, "r", 0, []int32{1, 3, 2}, []int32{1, 2}, 1, 0, 2, []int32{3}, []int32{2})
	// Cancel: the original replicas in their order.
	st = mustReassign(t, st, "r", 0, nil)
	wantState(t, st, "r", 0, []int32{1, 2}, []int32{1, 2}, 1, 0, 3, nil, nil)
	if _, errs := prepareReassignments(t, st, map[TopicPartition][]int32{{"r", 0}: nil}); !errors.Is(errs[TopicPartition{"r", 0}], ErrNoReassignmentInProgress) {
		t.Fatalf("second cancel: %v", errs)
	}

	// Leadership moved to an adding replica (3) while the others were
	// fenced; cancelling moves it back to an original ISR member.
	st = mustReassign(t, st, "r", 0, []int32{2, 3})
	st = mustApply(t, st, &command{Op: opFence, NodeID: 2, Incarnation: "c"})
	wantState(t, st, "r", 0, []int32{2, 3, 1}, []int32{1}, 1, 0, 5, []int32{3}, []int32{1})
	st = alterISR(t, st, "r", 0, 1, 0, 5, 1, 3)
	st = mustApply(t, st, &command{Op: opFence, NodeID: 1, Incarnation: "b"})
	wantState(t, st, "r", 0, []int32{2, 3, 1}, []int32{3}, 3, 1, 7, []int32{3}, []int32{1})
	st = mustApply(t, st, &command{Op: opUnfence, NodeID: 1, Incarnation: "b"})
	st = mustApply(t, st, &command{Op: opUnfence, NodeID: 2, Incarnation: "c"})
	// No original replica is in the ISR: cancelling would need an
	// unclean election and is refused.
	if _, errs := prepareReassignments(t, st, map[TopicPartition][]int32{{"r", 0}: nil}); !errors.Is(errs[TopicPartition{"r", 0}], metadata.ErrInvalidReplicaAssignment) {
		t.Fatalf("cancel with only an adding replica in sync: %v", errs)
	}
	st = alterISR(t, st, "r", 0, 3, 1, 7, 3, 1)
	st = mustReassign(t, st, "r", 0, nil)
	wantState(t, st, "r", 0, []int32{1, 2}, []int32{1}, 1, 2, 9, nil, nil)
}

func TestReassignErrors(t *testing.T) {
	st := rf2(t)
	r0 := TopicPartition{"r", 0}
	_, errs := prepareReassignments(t, st, map[TopicPartition][]int32{
		{"nope", 0}: {1},
		{"r", 7}:    {1},
		{"t", 0}:    {},
		{"t", 1}:    {1, 1},
		r0:          {1, 4},
	})
	for tp, want := range map[TopicPartition]error{
		{"nope", 0}: metadata.ErrUnknownTopic,
		{"r", 7}:    metadata.ErrUnknownTopic,
		{"t", 0}:    metadata.ErrInvalidReplicaAssignment,
		{"t", 1}:    metadata.ErrInvalidReplicaAssignment,
		r0:          metadata.ErrInvalidReplicaAssignment,
	} {
		if !errors.Is(errs[tp], want) {
			t.Errorf("%v: %v, want %v", tp, errs[tp], want)
		}
	}
	if msg := metadata.ErrorMessage(errs[r0]); msg != "The manual partition assignment includes broker 4, but no such broker is registered." {
		t.Errorf("message %q", msg)
	}
	// One valid entry goes ahead while the others are refused.
	cmd, errs := prepareReassignments(t, st, map[TopicPartition][]int32{r0: {2, 3}, {"nope", 0}: {1}})
	if cmd == nil || len(cmd.Reassign) != 1 || len(errs) != 1 {
		t.Fatalf("mixed request: %+v %v", cmd, errs)
	}
}

func TestReassignApplyRechecks(t *testing.T) {
	st := rf2(t)
	st = mustReassign(t, st, "r", 0, []int32{2, 3})
	cancel, _ := prepareReassignments(t, st, map[TopicPartition][]int32{{"r", 0}: nil})
	// Meanwhile the reassignment completed: the cancel built before it
	// fails and changes nothing.
	done := alterISR(t, st, "r", 0, 1, 0, 1, 1, 2, 3)
	if next, res := applyCommand(done, cancel); !errors.Is(res.err, ErrNoReassignmentInProgress) || next != done {
		t.Fatalf("stale cancel: %v", res.err)
	}
	// Conditional on the state version, as the controller proposes it.
	v := st.Version
	cancel.IfVersion = &v
	if _, res := applyCommand(done, cancel); !errors.Is(res.err, errStale) {
		t.Fatalf("stale version: %v", res.err)
	}
	// A target naming a broker that is no longer registered cannot be
	// forged into the log either.
	bad := &command{Op: opReassign, Reassign: []reassignTarget{{Topic: "r", Partition: 0, Target: []int32{9}}}}
	if _, res := applyCommand(done, bad); !errors.Is(res.err, metadata.ErrInvalidReplicaAssignment) {
		t.Fatalf("unregistered target: %v", res.err)
	}
	// Deleting the topic forgets its reassignment.
	del := mustApply(t, st, &command{Op: opDeleteTopic, Name: "r"})
	if len(del.Reassigning) != 0 {
		t.Fatalf("reassignment of a deleted topic kept: %v", del.Reassigning)
	}
}

func TestSnapshotKeepsReassignments(t *testing.T) {
	st := rf2(t)
	st = mustReassign(t, st, "r", 0, []int32{2, 3})
	st = mustReassign(t, st, "t", 0, []int32{3, 2})
	enc, err := encodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeState(enc)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := encodeState(back); err != nil || string(again) != string(enc) {
		t.Fatalf("snapshot round trip differs: %v\n%s\n%s", err, enc, again)
	}
	if !maps.EqualFunc(back.Reassigning, st.Reassigning, func(a, b reassignment) bool {
		return slices.Equal(a.Adding, b.Adding) && slices.Equal(a.Removing, b.Removing) && slices.Equal(a.Original, b.Original)
	}) || len(back.Reassigning) != 1 {
		t.Fatalf("restored %v, want %v", back.Reassigning, st.Reassigning)
	}
	// The restored state completes the reassignment like the original.
	back = alterISR(t, back, "r", 0, 1, 0, 1, 1, 2, 3)
	wantState(t, back, "r", 0, []int32{2, 3}, []int32{2, 3}, 2, 1, 2, nil, nil)

	// A snapshot whose reassignment names a non-replica is refused.
	bad := st.clone()
	bad.Reassigning[TopicPartition{"r", 0}] = reassignment{Adding: []int32{9}, Removing: []int32{1}, Original: []int32{1, 2}}
	enc, err = encodeState(bad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := decodeState(enc); err == nil {
		t.Fatal("malformed reassignment accepted")
	}
}

// TestClusterReassignment drives a reassignment through three nodes:
// requests forwarded from a follower, the partition leader's
// AlterPartition completing it, then the balancer handing leadership to
// a new preferred replica.
func TestClusterReassignment(t *testing.T) {
	c := newClusterWith(t, func(cfg *Config) { cfg.LeaderImbalanceCheckInterval = 10 * time.Millisecond })
	ctx := ctxT(t)
	lead := c.leader()
	var others []int32
	for _, id := range slices.Sorted(maps.Keys(c.nodes)) {
		if id != lead {
			others = append(others, id)
		}
	}
	v1, v2 := others[0], others[1]
	if _, err := c.nodes[v2].CreateTopic(ctx, metadata.CreateTopicRequest{Name: "m", Partitions: -1,
		ReplicationFactor: -1, Assignment: map[int32][]int32{0: {v1, lead}}}); err != nil {
		t.Fatal(err)
	}
	c.wantPartition("m created", "m", v1, 0, 0, v1, lead)

	// Errors survive forwarding.
	res, err := c.nodes[v2].ReassignPartitions(ctx, map[string]map[int32][]int32{
		"m": {0: nil}, "nope": {0: {v1}}, "m2": nil,
	})
	if err != nil || !errors.Is(res["m"][0], ErrNoReassignmentInProgress) || !errors.Is(res["nope"][0], metadata.ErrUnknownTopic) {
		t.Fatalf("forwarded errors: %v %v", res, err)
	}
	res, err = c.nodes[v2].ReassignPartitions(ctx, map[string]map[int32][]int32{"m": {0: {v2, 99}}})
	if err != nil || !errors.Is(res["m"][0], metadata.ErrInvalidReplicaAssignment) {
		t.Fatalf("unknown broker: %v %v", res, err)
	}

	// Move m-0 away from its leader v1 to lead and v2.
	res, err = c.nodes[v2].ReassignPartitions(ctx, map[string]map[int32][]int32{"m": {0: {lead, v2}}})
	if err != nil || res["m"][0] != nil {
		t.Fatalf("reassign: %v %v", res, err)
	}
	want := []PartitionReassignment{{TopicPartition: TopicPartition{"m", 0}, Replicas: []int32{lead, v2, v1},
		AddingReplicas: []int32{v2}, RemovingReplicas: []int32{v1}}}
	c.waitFor("the reassignment listed everywhere", func(*metadata.Image) bool {
		for _, s := range c.nodes {
			if got := s.ListPartitionReassignments(nil); len(got) != 1 || !slices.Equal(got[0].Replicas, want[0].Replicas) ||
				!slices.Equal(got[0].AddingReplicas, want[0].AddingReplicas) || !slices.Equal(got[0].RemovingReplicas, want[0].RemovingReplicas) {
				return false
			}
		}
		return true
	})
	if got := c.nodes[v1].ListPartitionReassignments([]TopicPartition{{"m", 1}, {"x", 0}}); len(got) != 0 {
		t.Fatalf("listing partitions not being reassigned: %v", got)
	}

	// The leader v1 adds v2 to the ISR once it caught up: complete.
	ps, _ := c.nodes[v1].PartitionState("m", 0)
	if _, err := c.nodes[v1].AlterPartition(ctx, AlterPartitionRequest{Topic: "m", Partition: 0, BrokerID: v1,
		LeaderEpoch: 0, PartitionEpoch: ps.PartitionEpoch, NewISR: []int32{v1, lead, v2}}); err != nil {
		t.Fatal(err)
	}
	c.wantPartition("m-0 reassigned", "m", lead, 1, 2, lead, v2)
	for id, s := range c.nodes {
		if ps, _ := s.PartitionState("m", 0); !slices.Equal(ps.Replicas, []int32{lead, v2}) || ps.AddingReplicas != nil ||
			len(s.ListPartitionReassignments(nil)) != 0 {
			t.Fatalf("node %d after completion: %+v", id, ps)
		}
	}
	if res, err := c.nodes[v1].ElectLeaders(ctx, ElectUnclean, []TopicPartition{{"m", 0}}); err != nil ||
		!errors.Is(res[TopicPartition{"m", 0}], ErrElectionNotNeeded) {
		t.Fatalf("unclean election of a led partition: %v %v", res, err)
	}

	// Make v2 the preferred replica: the balancer (running on every node,
	// acting on the controller) moves leadership to it.
	for _, s := range c.nodes {
		s.wg.Add(1)
		go func() { defer s.wg.Done(); s.balanceLoop() }()
	}
	if res, err := c.nodes[v1].ReassignPartitions(ctx, map[string]map[int32][]int32{"m": {0: {v2, lead}}}); err != nil || res["m"][0] != nil {
		t.Fatalf("reorder: %v %v", res, err)
	}
	c.wantPartition("m-0 balanced", "m", v2, 2, 4, lead, v2)
	c.converged()
}
