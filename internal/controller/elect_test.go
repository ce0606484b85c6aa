package controller

import (
	"errors"
	"testing"

	"github.com/streambus/streambus/internal/metadata"
)

func TestUncleanElection(t *testing.T) {
	st := threeBrokers(t)
	// Every broker fenced, 1 last: t-0 and t-1 keep ISR [1], no leader.
	for _, b := range []struct {
		id  int32
		inc string
	}{{2, "c"}, {3, "d"}, {1, "b"}} {
		st = mustApply(t, st, &command{Op: opFence, NodeID: b.id, Incarnation: b.inc})
	}
	if cmd, resp, err := prepareUnclean(st, []TopicPartition{{"t", 1}}); err != nil || cmd != nil ||
		!errors.Is(fromWire(resp.Elected[0].Err), ErrEligibleLeadersNotAvailable) {
		t.Fatalf("no live replica: %+v %+v %v", cmd, resp, err)
	}
	// Broker 3 returns: not in the ISR, so only an unclean election gives
	// the partitions a leader: the first live replica, alone in the ISR.
	st = mustApply(t, st, &command{Op: opUnfence, NodeID: 3, Incarnation: "d"})
	if p, _ := part(t, st, 1); p.Leader != -1 {
		t.Fatalf("clean election elected %d", p.Leader)
	}
	cmd, resp, err := prepareUnclean(st, []TopicPartition{{"t", 1}, {"t", 9}})
	if err != nil || cmd == nil || len(resp.Elected) != 2 || resp.Elected[0].Err != nil ||
		!errors.Is(fromWire(resp.Elected[1].Err), metadata.ErrUnknownTopic) {
		t.Fatalf("unclean t-1: %+v %+v %v", cmd, resp, err)
	}
	stale := cmd
	st1 := mustApply(t, st, cmd)
	p1, pe1 := part(t, st1, 1)
	if p1.Leader != 3 || len(p1.ISR) != 1 || p1.ISR[0] != 3 || p1.LeaderEpoch != 4 || pe1 != 4 {
		t.Fatalf("t-1 after unclean election: %+v epoch %d", p1, pe1)
	}
	// Applying it again (built from the older state) fails: t-1 has a
	// leader now, its ISR must not be replaced.
	if next, res := applyCommand(st1, stale); !errors.Is(res.err, ErrElectionNotNeeded) || next != st1 {
		t.Fatalf("stale unclean election: %v", res.err)
	}
	// All partitions: only the leaderless one is elected, the led one is
	// not reported.
	cmd, resp, err = prepareUnclean(st1, nil)
	if err != nil || cmd == nil || len(cmd.Elect) != 1 || cmd.Elect[0] != (TopicPartition{"t", 0}) || len(resp.Elected) != 1 {
		t.Fatalf("unclean all: %+v %+v %v", cmd, resp, err)
	}
	st2 := mustApply(t, st1, cmd)
	if p0, _ := part(t, st2, 0); p0.Leader != 3 {
		t.Fatalf("t-0 after unclean all: %+v", p0)
	}
	if _, resp, _ := prepareUnclean(st2, []TopicPartition{{"t", 0}}); !errors.Is(fromWire(resp.Elected[0].Err), ErrElectionNotNeeded) {
		t.Fatalf("led partition: %+v", resp)
	}
}

// TestErrorsCarryKafkaCodes: the sentinels the broker maps through kerr
// keep their identity across forwarding.
func TestErrorsCarryKafkaCodes(t *testing.T) {
	for _, err := range []error{ErrNoReassignmentInProgress, ErrEligibleLeadersNotAvailable, ErrElectionNotNeeded} {
		back := fromWire(toWire(newError(err, "msg")))
		if !errors.Is(back, err) || metadata.ErrorMessage(back) != "msg" {
			t.Errorf("%v after forwarding: %v", err, back)
		}
	}
}
