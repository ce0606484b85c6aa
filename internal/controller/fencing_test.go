package controller

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/streambus/streambus/internal/metadata"
)

// fakeClock is the nodes' injected clock; tests move it by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// expireSession moves the clock past SessionTimeout and, once every
// running broker has heartbeated at the new time, runs the controller's
// liveness check: exactly the stopped brokers are fenced.
func (c *cluster) expireSession(clk *fakeClock, lead int32) {
	c.t.Helper()
	clk.Advance(2 * time.Second)
	now := clk.Now()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fresh := 0
		for _, b := range c.nodes[lead].Brokers() {
			if _, running := c.nodes[b.NodeID]; running && !b.LastHeartbeat.Before(now) {
				fresh++
			}
		}
		if fresh == len(c.nodes) {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("running brokers did not heartbeat at %v: %+v", now, c.nodes[lead].Brokers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.nodes[lead].checkLiveness(ctxT(c.t)); err != nil {
		c.t.Fatal(err)
	}
}

// converged waits until every node applied the same state and checks that
// the states encode identically.
func (c *cluster) converged() {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var first []byte
		same := true
		for _, id := range slices.Sorted(maps.Keys(c.nodes)) {
			enc, err := encodeState(c.nodes[id].fsm.current())
			if err != nil {
				c.t.Fatal(err)
			}
			if first == nil {
				first = enc
			} else if !bytes.Equal(first, enc) {
				same = false
			}
		}
		if same {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatal("node states differ")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantPartition checks a partition on every node.
func (c *cluster) wantPartition(what, topic string, leader, leaderEpoch, partitionEpoch int32, isr ...int32) {
	c.t.Helper()
	c.waitFor(what, func(img *metadata.Image) bool {
		t := img.Topic(topic)
		return t != nil && t.Partitions[0].Leader == leader && t.Partitions[0].LeaderEpoch == leaderEpoch &&
			slices.Equal(t.Partitions[0].ISR, isr)
	})
	for id, s := range c.nodes {
		if ps, ok := s.PartitionState(topic, 0); !ok || ps.PartitionEpoch != partitionEpoch {
			c.t.Fatalf("%s: node %d: %s-0 %+v, want partition epoch %d", what, id, topic, ps, partitionEpoch)
		}
	}
}

func TestClusterFencingAndElections(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_000_000_000, 0)}
	c := newClusterWith(t, func(cfg *Config) { cfg.Now, cfg.LivenessCheckInterval = clk.Now, time.Hour })
	ctx := ctxT(t)
	lead := c.leader()
	var others []int32
	for _, id := range slices.Sorted(maps.Keys(c.nodes)) {
		if id != lead {
			others = append(others, id)
		}
	}
	v1, v2 := others[0], others[1]
	for name, replicas := range map[string][]int32{"f": {v1, lead, v2}, "solo": {v1}} {
		if _, err := c.nodes[v2].CreateTopic(ctx, metadata.CreateTopicRequest{Name: name, Partitions: -1,
			ReplicationFactor: -1, Assignment: map[int32][]int32{0: replicas}}); err != nil {
			t.Fatal(err)
		}
	}
	c.wantPartition("f created", "f", v1, 0, 0, v1, lead, v2)

	// v1 stops heartbeating: fenced, f-0 goes to the next ISR member in
	// replica order, solo-0 (v1 its only replica) has no leader.
	c.stop(v1)
	c.expireSession(clk, lead)
	c.waitFor("v1 fenced", func(img *metadata.Image) bool { _, ok := img.Brokers[v1]; return !ok })
	c.wantPartition("f-0 after fencing v1", "f", lead, 1, 1, lead, v2)
	c.wantPartition("solo-0 after fencing v1", "solo", -1, 1, 1, v1)

	// AlterPartition, forwarded from a follower.
	alter := func(broker, le, pe int32, isr ...int32) (metadata.Partition, error) {
		return c.nodes[v2].AlterPartition(ctx, AlterPartitionRequest{Topic: "f", Partition: 0, BrokerID: broker,
			LeaderEpoch: le, PartitionEpoch: pe, NewISR: isr})
	}
	for _, tc := range []struct {
		broker, le, pe int32
		isr            []int32
		want           error
	}{
		{v2, 1, 1, []int32{v2}, ErrNotLeaderOrFollower},
		{lead, 0, 1, []int32{lead}, ErrFencedLeaderEpoch},
		{lead, 1, 0, []int32{lead}, ErrInvalidUpdateVersion},
		{lead, 1, 1, []int32{lead, v2, v1}, ErrIneligibleReplica},
		{lead, 1, 1, []int32{v2}, metadata.ErrInvalidRequest},
	} {
		if _, err := alter(tc.broker, tc.le, tc.pe, tc.isr...); !errors.Is(err, tc.want) {
			t.Errorf("AlterPartition(%+v): %v", tc, err)
		}
	}
	if p, err := alter(lead, 1, 1, lead); err != nil || !slices.Equal(p.ISR, []int32{lead}) || p.LeaderEpoch != 1 {
		t.Fatalf("shrink: %+v %v", p, err)
	}
	c.wantPartition("f-0 shrunk", "f", lead, 1, 2, lead)
	if _, err := alter(lead, 1, 2, lead, v2); err != nil {
		t.Fatal(err)
	}
	c.wantPartition("f-0 expanded", "f", lead, 1, 3, lead, v2)

	// v1 comes back: unfenced, leads solo-0 again (its ISR), not f-0.
	c.start(v1)
	c.wantPartition("solo-0 after v1 returned", "solo", v1, 2, 2, v1)
	c.wantPartition("f-0 unchanged", "f", lead, 1, 3, lead, v2)

	// v1 rejoins f-0's ISR; a preferred election gives it f-0 back.
	if res, err := c.nodes[v1].ElectPreferredLeaders(ctx, []TopicPartition{{"f", 0}, {"nope", 0}}); err != nil ||
		!errors.Is(res[TopicPartition{"f", 0}], ErrPreferredLeaderNotAvailable) || !errors.Is(res[TopicPartition{"nope", 0}], metadata.ErrUnknownTopic) {
		t.Fatalf("election before v1 is in the ISR: %v %v", res, err)
	}
	if _, err := alter(lead, 1, 3, lead, v2, v1); err != nil {
		t.Fatal(err)
	}
	if res, err := c.nodes[v1].ElectPreferredLeaders(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("preferred election: %v %v", res, err)
	}
	c.wantPartition("f-0 preferred", "f", v1, 2, 5, lead, v2, v1)

	// Controlled shutdown of v1 moves f-0 to lead, shrinks the ISR,
	// leaves solo-0 leaderless and lists v1 nowhere.
	if err := c.nodes[v1].ControlledShutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.nodes[v1].Image().Brokers[v1]; ok {
		t.Fatal("v1 still listed on its own node after ControlledShutdown returned")
	}
	c.wantPartition("f-0 after controlled shutdown", "f", lead, 3, 6, lead, v2)
	c.wantPartition("solo-0 after controlled shutdown", "solo", -1, 3, 3, v1)
	c.converged()

	// A follower restarts from a snapshot: the same state everywhere.
	c.stop(v2)
	for _, s := range c.nodes {
		if err := s.raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}
	c.start(v2)
	c.waitFor("v2 back", func(img *metadata.Image) bool { _, ok := img.Brokers[v2]; return ok })
	c.converged()
}

// When the controller's process dies, the new controller runs the old
// controller's session from the last Raft contact its node saw, not from
// its own first look: one liveness check a session after that contact
// fences it, although no heartbeat of it ever reached the new controller.
// Every other broker still gets a full session.
func TestNewControllerFencesDeadControllerFromLastContact(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_000_000_000, 0)}
	c := newClusterWith(t, func(cfg *Config) { cfg.Now, cfg.LivenessCheckInterval = clk.Now, time.Hour })
	old := c.leader()
	// Followers note the leader in contact at the clock's current time
	// (livenessLoop does this every tick; its interval is an hour here).
	for id, s := range c.nodes {
		if id != old {
			s.noteLeaderContact()
			s.hbMu.Lock()
			seen := s.leaderSeen
			s.hbMu.Unlock()
			if seen.id != old || !seen.at.Equal(clk.Now()) {
				t.Fatalf("node %d saw leader %d at %v, want %d at %v", id, seen.id, seen.at, old, clk.Now())
			}
		}
	}
	c.stop(old)
	var lead int32 = -1
	c.waitFor("a new controller", func(img *metadata.Image) bool {
		if _, live := c.nodes[img.ControllerID]; !live || (lead >= 0 && img.ControllerID != lead) {
			lead = img.ControllerID
			return false
		}
		lead = img.ControllerID
		return true
	})
	// expireSession moves the clock 2s (the session is 1s) and waits for
	// the running brokers' heartbeats at the new time before one check.
	c.expireSession(clk, lead)
	c.waitFor("the old controller fenced", func(img *metadata.Image) bool { _, ok := img.Brokers[old]; return !ok })
	for _, b := range c.nodes[lead].Brokers() {
		if b.NodeID != old && b.Fenced {
			t.Fatalf("running broker %d fenced: %+v", b.NodeID, b)
		}
	}
}
