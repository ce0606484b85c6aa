package replication

import (
	"errors"
	"slices"
	"testing"
)

// TestApplyAssignmentMovesReplicas follows a leader through a
// reassignment of {1,2} to {1,3}: the added replica counts for the high
// watermark only once it is in the ISR, the removed one not at all once
// the reassignment completed.
func TestApplyAssignmentMovesReplicas(t *testing.T) {
	a := Assignment{Leader: 1, LeaderEpoch: 5, PartitionEpoch: 10, Replicas: []int32{1, 2}, ISR: []int32{1, 2}}
	s := newState(t, a, 10, 10)
	fetched(t, s, 2, 10, 1)

	// Started: replicas {1,3,2}, ISR unchanged. 3 has not fetched yet and
	// must not hold the high watermark down.
	a.PartitionEpoch, a.Replicas = 11, []int32{1, 3, 2}
	if _, err := s.ApplyAssignment(a, at(2)); err != nil {
		t.Fatal(err)
	}
	if leo, ok := s.FollowerEnd(3); !ok || leo != -1 {
		t.Fatalf("added replica 3: %d %v", leo, ok)
	}
	s.SetLeaderEnd(20, at(3))
	if u := fetched(t, s, 2, 20, 4); u.HighWatermark != 20 || u.Proposal != nil {
		t.Fatalf("hw with 3 outside the ISR: %+v", u)
	}
	// 3 catches up: proposed for the ISR.
	u := fetched(t, s, 3, 20, 5)
	if u.Proposal == nil || !slices.Equal(u.Proposal.ISR, []int32{1, 2, 3}) || u.Proposal.PartitionEpoch != 11 {
		t.Fatalf("expansion: %+v", u)
	}
	// The controller accepts and completes the reassignment in the same
	// change: replicas {1,3}, ISR {1,3}.
	a.PartitionEpoch, a.Replicas, a.ISR = 12, []int32{1, 3}, []int32{1, 3}
	if _, err := s.ApplyAssignment(a, at(6)); err != nil {
		t.Fatal(err)
	}
	if s.Pending() != nil {
		t.Fatalf("proposal kept after completion: %+v", s.Pending())
	}
	if _, ok := s.FollowerEnd(2); ok {
		t.Fatal("removed replica 2 still tracked")
	}
	if _, err := s.FollowerFetched(2, 20, 0, at(7)); !errors.Is(err, ErrUnknownReplica) {
		t.Fatalf("fetch by removed replica: %v", err)
	}
	// Only 3 counts now.
	s.SetLeaderEnd(30, at(8))
	if u := fetched(t, s, 3, 30, 9); u.HighWatermark != 30 || !u.HWAdvanced {
		t.Fatalf("hw after the reassignment: %+v", u)
	}

	// Moving leadership away is a new leader epoch: this state is done.
	b := Assignment{Leader: 3, LeaderEpoch: 6, PartitionEpoch: 13, Replicas: []int32{3}, ISR: []int32{3}}
	if _, err := s.ApplyAssignment(b, at(10)); !errors.Is(err, ErrStaleAssignment) {
		t.Fatalf("leadership moved: %v", err)
	}
}
