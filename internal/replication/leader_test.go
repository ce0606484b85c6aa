package replication

import (
	"errors"
	"slices"
	"testing"
	"time"
)

var t0 = time.Unix(1_000_000, 0)

func at(ms int64) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func threeReplicas() Assignment {
	return Assignment{Leader: 1, LeaderEpoch: 5, PartitionEpoch: 10, Replicas: []int32{1, 2, 3}, ISR: []int32{1, 2, 3}}
}

func newState(t *testing.T, a Assignment, end, hw int64) *LeaderState {
	t.Helper()
	s, err := NewLeaderState(LeaderConfig{ReplicaLagTime: 1000 * time.Millisecond}, 1, a, end, hw, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func fetched(t *testing.T, s *LeaderState, r int32, off int64, ms int64) Update {
	t.Helper()
	u, err := s.FollowerFetched(r, off, 0, at(ms))
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestHighWatermarkIsMinOverISRAndMonotonic(t *testing.T) {
	s := newState(t, threeReplicas(), 10, 4)
	steps := []struct {
		name    string
		do      func() Update
		wantHW  int64
		advance bool
	}{
		{"start", func() Update { return s.Tick(at(0)) }, 4, false},
		{"follower 2 at 8, 3 unknown", func() Update { return fetched(t, s, 2, 8, 1) }, 4, false},
		{"follower 3 at 6", func() Update { return fetched(t, s, 3, 6, 2) }, 6, true},
		{"follower 3 at 9", func() Update { return fetched(t, s, 3, 9, 3) }, 8, true},
		{"follower 2 goes back (truncated)", func() Update { return fetched(t, s, 2, 7, 4) }, 8, false},
		{"leader end 20", func() Update { return s.SetLeaderEnd(20, at(5)) }, 8, false},
		{"leader end never goes back", func() Update { return s.SetLeaderEnd(3, at(6)) }, 8, false},
		{"both at 20", func() Update { fetched(t, s, 2, 20, 7); return fetched(t, s, 3, 20, 7) }, 20, true},
		{"a follower ahead of the leader's end", func() Update { return fetched(t, s, 3, 25, 8) }, 20, false},
	}
	for _, st := range steps {
		u := st.do()
		if u.HighWatermark != st.wantHW || s.HighWatermark() != st.wantHW || u.HWAdvanced != st.advance {
			t.Fatalf("%s: hw %d (state %d) advanced %v, want %d %v", st.name, u.HighWatermark, s.HighWatermark(), u.HWAdvanced, st.wantHW, st.advance)
		}
		if u.Proposal != nil {
			t.Fatalf("%s: unexpected proposal %+v", st.name, u.Proposal)
		}
	}
	if _, err := s.FollowerFetched(9, 1, 0, at(9)); !errors.Is(err, ErrUnknownReplica) {
		t.Fatalf("unknown replica: %v", err)
	}
}

func TestISRShrinkTiming(t *testing.T) {
	type fetch struct{ end, off, ms int64 } // leader end at the fetch, replica 2's fetch offset, time
	cases := []struct {
		name    string
		fetches []fetch
		tick    int64
		shrink  bool
	}{
		{"never fetched, within lag", nil, 1000, false},
		{"never fetched, past lag", nil, 1001, true},
		{"caught up at 500", []fetch{{10, 10, 500}}, 1500, false},
		{"caught up at 500, past lag", []fetch{{10, 10, 500}}, 1501, true},
		// At 1250 it reached the end the leader had at its previous
		// fetch (900): caught up as of 900.
		{"previous-fetch rule", []fetch{{10, 10, 300}, {12, 11, 900}, {14, 12, 1250}}, 1900, false},
		{"previous-fetch rule, past lag", []fetch{{10, 10, 300}, {12, 11, 900}, {14, 12, 1250}}, 1901, true},
		{"fetching but always behind", []fetch{{10, 5, 200}, {10, 6, 600}, {11, 7, 1000}}, 1001, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := newState(t, threeReplicas(), 10, 0)
			var u Update
			for _, f := range c.fetches {
				s.SetLeaderEnd(f.end, at(f.ms))
				fetched(t, s, 3, f.end, f.ms) // replica 3 keeps up
				fetched(t, s, 2, f.off, f.ms)
			}
			fetched(t, s, 3, s.leaderEnd, c.tick-1)
			s.SetLeaderEnd(100, at(c.tick-1))
			fetched(t, s, 3, 100, c.tick-1)
			if u = s.Tick(at(c.tick - 1)); u.Proposal != nil || s.Pending() != nil {
				t.Fatalf("proposal %+v a millisecond early", s.Pending())
			}
			u = s.Tick(at(c.tick))
			if got := u.Proposal != nil; got != c.shrink {
				t.Fatalf("proposal %+v, want shrink %v", u.Proposal, c.shrink)
			}
			if c.shrink && !slices.Equal(u.Proposal.ISR, []int32{1, 3}) {
				t.Fatalf("proposed ISR %v", u.Proposal.ISR)
			}
		})
	}
}

func TestISRShrinkIsProposedNotApplied(t *testing.T) {
	s := newState(t, threeReplicas(), 10, 0)
	fetched(t, s, 3, 10, 0)
	fetched(t, s, 2, 2, 0)
	u := s.Tick(at(1500))
	if u.Proposal == nil || u.Proposal.PartitionEpoch != 10 || u.Proposal.LeaderEpoch != 5 {
		t.Fatalf("proposal %+v", u.Proposal)
	}
	// Until confirmed, the removed follower still holds back the HW and
	// counts for min.insync.replicas; no second proposal is made.
	if u.HighWatermark != 2 || !slices.Equal(s.ISR(), []int32{1, 2, 3}) {
		t.Fatalf("hw %d isr %v before confirmation", u.HighWatermark, s.ISR())
	}
	if u := s.Tick(at(3000)); u.Proposal != nil {
		t.Fatalf("second proposal while one is pending: %+v", u.Proposal)
	}
	if err := s.CheckEnoughReplicas(3); err != nil {
		t.Fatal(err)
	}
	a := threeReplicas()
	a.ISR, a.PartitionEpoch = []int32{1, 3}, 11
	u, err := s.ApplyAssignment(a, at(3000))
	if err != nil {
		t.Fatal(err)
	}
	if !u.HWAdvanced || u.HighWatermark != 10 || s.Pending() != nil {
		t.Fatalf("after confirmation: %+v pending %+v", u, s.Pending())
	}
	if err := s.CheckEnoughReplicas(3); !errors.Is(err, ErrNotEnoughReplicas) {
		t.Fatalf("min.insync 3 with ISR of 2: %v", err)
	}
	// A stale assignment is ignored; another leader epoch is refused.
	a.ISR, a.PartitionEpoch = []int32{1, 2, 3}, 9
	if _, err := s.ApplyAssignment(a, at(3000)); err != nil || len(s.ISR()) != 2 {
		t.Fatalf("stale assignment applied: %v %v", err, s.ISR())
	}
	a.LeaderEpoch = 6
	if _, err := s.ApplyAssignment(a, at(3000)); !errors.Is(err, ErrStaleAssignment) {
		t.Fatalf("other epoch: %v", err)
	}
}

func TestISRExpand(t *testing.T) {
	a := threeReplicas()
	a.ISR = []int32{1, 3}
	s := newState(t, a, 10, 10) // epoch starts at 10
	fetched(t, s, 3, 10, 0)
	s.SetLeaderEnd(14, at(1))
	fetched(t, s, 3, 14, 2) // hw 14
	cases := []struct {
		off    int64
		expand bool
	}{{9, false}, {10, false}, {13, false}, {14, true}}
	for _, c := range cases {
		u := fetched(t, s, 2, c.off, 3)
		if got := u.Proposal != nil; got != c.expand {
			t.Fatalf("fetch at %d: proposal %+v, want expand %v", c.off, u.Proposal, c.expand)
		}
	}
	if p := s.Pending(); !slices.Equal(p.ISR, []int32{1, 3, 2}) {
		t.Fatalf("proposed %v", p.ISR)
	}
	// While the expansion is pending the new member holds back the HW.
	s.SetLeaderEnd(20, at(4))
	fetched(t, s, 3, 20, 5)
	if hw := s.HighWatermark(); hw != 14 {
		t.Fatalf("hw %d with pending member at 14", hw)
	}
	// A rejected proposal is proposed again on the next call.
	s.ProposalFailed()
	if u := fetched(t, s, 2, 20, 6); u.Proposal == nil || u.HighWatermark != 20 {
		t.Fatalf("after rejection: %+v", u)
	}
}

func TestExpandNeedsEpochStart(t *testing.T) {
	// A follower at the HW but below where this leader epoch began has
	// not yet got this epoch's first records: not in sync (Kafka).
	a := threeReplicas()
	a.ISR = []int32{1}
	s := newState(t, a, 10, 4)
	if u := fetched(t, s, 2, 4, 1); u.Proposal != nil {
		t.Fatalf("proposal below epoch start: %+v", u.Proposal)
	}
	if u := fetched(t, s, 2, 10, 2); u.Proposal == nil {
		t.Fatal("no proposal at epoch start")
	}
}

// TestMinInsyncSatisfied: Satisfied, which an acks=all produce waits on,
// holds once the high watermark covers the records, and reports
// NOT_ENOUGH_REPLICAS_AFTER_APPEND when the ISR shrank below the minimum
// meanwhile.
func TestMinInsyncSatisfied(t *testing.T) {
	s := newState(t, threeReplicas(), 0, 0)
	s.SetLeaderEnd(5, at(0))
	satisfied := func(required int64, minISR int) (bool, error) { return s.Satisfied(required, minISR) }
	for _, w := range []struct {
		required int64
		minISR   int
	}{{3, 2}, {5, 2}, {5, 3}, {9, 2}} {
		if ok, _ := satisfied(w.required, w.minISR); ok {
			t.Fatalf("%+v satisfied before replication", w)
		}
	}
	fetched(t, s, 2, 5, 1)
	fetched(t, s, 3, 3, 1)
	if ok, err := satisfied(3, 2); !ok || err != nil {
		t.Fatalf("at hw 3: %v %v", ok, err)
	}
	if ok, _ := satisfied(5, 2); ok {
		t.Fatal("offset 5 satisfied at hw 3")
	}
	// Replica 3 drops out of the ISR; the rest reach offset 5.
	a := threeReplicas()
	a.ISR, a.PartitionEpoch = []int32{1, 2}, 11
	if _, err := s.ApplyAssignment(a, at(2)); err != nil {
		t.Fatal(err)
	}
	// Replica 3 is not proposed back until it fetches again (Kafka expands
	// the ISR on a follower's fetch only): the ISR {1, 2} is at 5, so the
	// high watermark moves to 5 at once.
	if s.Pending() != nil {
		t.Fatalf("proposal without a fetch: %+v", s.Pending())
	}
	if ok, err := satisfied(5, 2); !ok || err != nil {
		t.Fatalf("at hw 5, min.insync 2: %v %v", ok, err)
	}
	if ok, err := satisfied(5, 3); !ok || !errors.Is(err, ErrNotEnoughReplicasAfterAppend) {
		t.Fatalf("at hw 5 with ISR 2 < min.insync 3: %v %v", ok, err)
	}
	if ok, _ := satisfied(9, 2); ok {
		t.Fatal("offset 9 satisfied at hw 5")
	}
	if u := fetched(t, s, 3, 5, 3); u.Proposal == nil || len(u.Proposal.ISR) != 3 {
		t.Fatalf("replica 3 caught up and fetched: proposal %+v", u.Proposal)
	}
}

func TestNewLeaderStateValidates(t *testing.T) {
	bad := []Assignment{
		{Leader: 2, Replicas: []int32{1, 2}, ISR: []int32{1, 2}},
		{Leader: 1, Replicas: []int32{2}, ISR: []int32{1}},
		{Leader: 1, Replicas: []int32{1}, ISR: []int32{1, 4}},
	}
	for _, a := range bad {
		if _, err := NewLeaderState(LeaderConfig{}, 1, a, 0, 0, t0); err == nil {
			t.Errorf("accepted %+v", a)
		}
	}
	if _, err := NewLeaderState(LeaderConfig{ReplicaLagTime: -1}, 1, threeReplicas(), 0, 0, t0); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("negative lag: %v", err)
	}
	s, err := NewLeaderState(LeaderConfig{}, 1, threeReplicas(), 5, 9, t0)
	if err != nil || s.HighWatermark() != 5 || s.cfg.ReplicaLagTime != DefaultReplicaLagTime {
		t.Fatalf("defaults: %v %d", err, s.HighWatermark())
	}
}

// TestLowWatermark: the low watermark is the smallest log start over the
// leader and the followers on live brokers, as their fetches report it;
// a live follower that has not fetched holds it at -1 (Kafka).
func TestLowWatermark(t *testing.T) {
	s := newState(t, threeReplicas(), 20, 20)
	dead := map[int32]bool{}
	alive := func(r int32) bool { return !dead[r] }
	report := func(r int32, logStart int64) Update {
		t.Helper()
		u, err := s.FollowerFetched(r, 20, logStart, at(1))
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	steps := []struct {
		name    string
		do      func() Update
		dead    []int32
		leader  int64
		want    int64
		changed bool
	}{
		{"nobody fetched", nil, nil, 0, -1, false},
		{"nobody fetched, followers' brokers fenced", nil, []int32{2, 3}, 0, 0, false},
		{"2 reports 0", func() Update { return report(2, 0) }, nil, 0, -1, true},
		{"3 reports 0", func() Update { return report(3, 0) }, nil, 0, 0, true},
		{"leader deleted up to 10", nil, nil, 10, 0, false},
		{"2 reports 10", func() Update { return report(2, 10) }, nil, 10, 0, true},
		{"3 reports 10", func() Update { return report(3, 10) }, nil, 10, 10, true},
		{"the same again", func() Update { return report(3, 10) }, nil, 10, 10, false},
		{"leader deleted up to 15, 3 reached 15", func() Update { return report(3, 15) }, nil, 15, 10, true},
		{"2 fenced", nil, []int32{2}, 15, 15, false},
		{"2 back", nil, nil, 15, 10, false},
		{"2 restarted empty at 12 (reported as is)", func() Update { return report(2, 12) }, nil, 15, 12, true},
	}
	for _, st := range steps {
		var u Update
		if st.do != nil {
			u = st.do()
		}
		clear(dead)
		for _, r := range st.dead {
			dead[r] = true
		}
		if got := s.LowWatermark(st.leader, alive); got != st.want || u.LogStartChanged != st.changed {
			t.Fatalf("%s: low watermark %d changed %v, want %d %v", st.name, got, u.LogStartChanged, st.want, st.changed)
		}
	}
	if ls, ok := s.FollowerLogStart(3); !ok || ls != 15 {
		t.Fatalf("follower 3 log start %d %v", ls, ok)
	}
	if _, ok := s.FollowerLogStart(1); ok {
		t.Fatal("the leader is not a follower")
	}

	// A replica added by a reassignment counts (at -1) until it fetches;
	// a removed one no longer counts.
	a := threeReplicas()
	a.PartitionEpoch, a.Replicas, a.ISR = 11, []int32{1, 3, 4}, []int32{1, 3}
	if _, err := s.ApplyAssignment(a, at(2)); err != nil {
		t.Fatal(err)
	}
	if got := s.LowWatermark(15, alive); got != -1 {
		t.Fatalf("with replica 4 not fetched: %d", got)
	}
	if u := report(4, 15); !u.LogStartChanged {
		t.Fatal("replica 4's first report")
	}
	if got := s.LowWatermark(15, alive); got != 15 {
		t.Fatalf("after the reassignment: %d", got)
	}
}
