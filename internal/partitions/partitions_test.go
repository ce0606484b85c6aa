package partitions

import "testing"

// TestFollowerHWsNeverGoBack: what a follower serves never decreases
// while the leaders it learns from report less, never passes the durable
// end, and starts at the log start.
func TestFollowerHWsNeverGoBack(t *testing.T) {
	var f followerHWs
	p, q := &Partition{}, &Partition{}
	hosted := func(*Partition) bool { return true }
	steps := []struct {
		candidate, ceiling, logStart, want int64
	}{
		{-1, 50, 0, 0},     // nothing learnt yet: the log start
		{40, 50, 0, 40},    // learnt 40
		{30, 50, 0, 40},    // a new leader reports less: keep 40
		{45, 45, 0, 45},    // advance
		{60, 50, 0, 50},    // capped at the durable end
		{-1, 80, 0, 60},    // the recorded 60 once the log holds it
		{10, 30, 0, 30},    // the log was cut below (unclean election)
		{10, 90, 70, 70},   // the log start moved past everything
		{-1, 90, 70, 70},   // and stays
		{85, 90, 70, 85},   // then learns more
		{-1, 90, 100, 100}, // never below the log start
	}
	for i, s := range steps {
		if got := f.advance(p, s.candidate, s.ceiling, s.logStart, hosted); got != s.want {
			t.Fatalf("step %d %+v: got %d", i, s, got)
		}
	}
	if got := f.advance(q, 5, 10, 0, hosted); got != 5 {
		t.Fatalf("second partition: %d", got)
	}
	// Pruning drops partitions no longer hosted.
	f.pruneAt = 0
	r := &Partition{}
	f.advance(r, 1, 1, 0, func(x *Partition) bool { return x != p })
	if _, ok := f.hw[p]; ok || len(f.hw) != 2 {
		t.Fatalf("after pruning: %v", f.hw)
	}
}
