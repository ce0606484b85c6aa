package controller

import (
	"slices"
	"testing"
)

func TestImbalancedPartitions(t *testing.T) {
	st := threeBrokers(t) // t-0 {1,2,3} led by 1, t-1 {2,3,1} led by 2
	st = withTopic(t, st, "b", "BBBBBBBBQACAAAAAAAAAAA", []int32{1, 2}, []int32{1, 3}, []int32{2, 1}, []int32{3, 1})
	if got := imbalancedPartitions(st, 10); len(got) != 0 {
		t.Fatalf("balanced cluster: %v", got)
	}
	// Broker 1 is fenced and comes back: it leads none of the three
	// partitions it prefers (t-0, b-0, b-1) and is in no ISR yet.
	st = mustApply(t, st, &command{Op: opFence, NodeID: 1, Incarnation: "b"})
	st = mustApply(t, st, &command{Op: opUnfence, NodeID: 1, Incarnation: "b"})
	if got := imbalancedPartitions(st, 10); len(got) != 0 {
		t.Fatalf("preferred replica out of every ISR: %v", got)
	}
	// It rejoins b-0's ISR: only b-0 can move back.
	b0, pe := partAt(t, st, "b", 0)
	st = alterISR(t, st, "b", 0, b0.Leader, b0.LeaderEpoch, pe, b0.Leader, 1)
	if got := imbalancedPartitions(st, 10); !slices.Equal(got, []TopicPartition{{"b", 0}}) {
		t.Fatalf("imbalanced: %v", got)
	}
	// Not led: 3 of 3 preferred partitions, 100%: not above 100.
	if got := imbalancedPartitions(st, 100); len(got) != 0 {
		t.Fatalf("at 100%%: %v", got)
	}
	// A partition being reassigned is left alone.
	moving := mustReassign(t, st, "b", 0, []int32{1, 2, 3})
	if got := imbalancedPartitions(moving, 10); len(got) != 0 {
		t.Fatalf("reassigning partition picked: %v", got)
	}
	// The election the balancer proposes gives b-0 back to broker 1.
	cmd, _, err := prepareElect(st, imbalancedPartitions(st, 10))
	if err != nil || cmd == nil {
		t.Fatalf("balancing election: %+v %v", cmd, err)
	}
	st = mustApply(t, st, cmd)
	if p, _ := partAt(t, st, "b", 0); p.Leader != 1 {
		t.Fatalf("b-0 after balancing: %+v", p)
	}
}
