package controller

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streambus/streambus/internal/metadata"
)

func TestConfigValidateNonVoter(t *testing.T) {
	voters := map[int32]string{1: "127.0.0.1:1", 2: "127.0.0.2:1"}
	good := Config{NodeID: 4, RaftAddr: "127.0.0.4:1", Voters: voters, Dir: "d", KafkaHost: "h"}
	if err := good.Validate(); err != nil {
		t.Fatalf("non-voter: %v", err)
	}
	for name, mut := range map[string]func(*Config){
		"no voters":           func(c *Config) { c.Voters = nil },
		"on a voter's addr":   func(c *Config) { c.RaftAddr = "127.0.0.2:1" },
		"same addr, other IP": func(c *Config) { c.RaftAddr = "127.0.0.002:1" },
		"voter elsewhere":     func(c *Config) { c.NodeID = 1 },
		"no raft addr":        func(c *Config) { c.RaftAddr = "" },
	} {
		c := good
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}

func TestApplyUnregister(t *testing.T) {
	st := emptyState()
	for id := int32(1); id <= 3; id++ {
		st.Brokers[id] = brokerRecord{NodeID: id, Host: "h", Port: 1, Incarnation: fmt.Sprint(id)}
	}
	st, res := applyCommand(st, &command{Op: opCreateTopic, Name: "a", TopicID: "AAAAAAAAQACAAAAAAAAAAA",
		Replicas: [][]int32{{2, 1, 3}}})
	if res.err != nil {
		t.Fatal(res.err)
	}
	st, res = applyCommand(st, &command{Op: opCreateTopic, Name: "b", TopicID: "AAAAAAAAQACAAAAAAAAAAQ",
		Replicas: [][]int32{{2}}})
	if res.err != nil {
		t.Fatal(res.err)
	}
	next, res := applyCommand(st, &command{Op: opUnregister, NodeID: 2})
	if res.err != nil {
		t.Fatal(res.err)
	}
	if _, ok := next.Brokers[2]; ok {
		t.Fatal("broker 2 still registered")
	}
	// Fenced first: a-0 elects 1 and drops 2 from its ISR; b-0 (2 its
	// only ISR member) loses its leader but keeps its ISR, as fencing
	// does. Both keep 2 among their replicas.
	p0, p1 := next.Topics["a"].Partitions[0], next.Topics["b"].Partitions[0]
	if p0.Leader != 1 || p0.LeaderEpoch != 1 || !slices.Equal(p0.ISR, []int32{1, 3}) || !slices.Equal(p0.Replicas, []int32{2, 1, 3}) {
		t.Errorf("a-0 after unregistering 2: %+v", p0)
	}
	if p1.Leader != -1 || !slices.Equal(p1.ISR, []int32{2}) || !slices.Equal(p1.Replicas, []int32{2}) {
		t.Errorf("b-0 after unregistering 2: %+v", p1)
	}
	if _, res := applyCommand(next, &command{Op: opUnregister, NodeID: 2}); !errors.Is(res.err, ErrBrokerIDNotRegistered) {
		t.Errorf("unregistering twice: %v", res.err)
	}
	if _, err := decodeState(mustEncode(t, next)); err != nil {
		t.Fatal(err)
	}
}

func TestMembershipErrorsSurviveForwarding(t *testing.T) {
	for _, err := range []error{notRegistered(4), newError(ErrDuplicateBrokerRegistration, "dup")} {
		back := fromWire(toWire(err))
		var ke *kerr.Error
		if !errors.As(back, &ke) || back.Error() != err.Error() {
			t.Errorf("%v came back as %v (kafka error %v)", err, back, ke)
		}
	}
	if !errors.Is(fromWire(toWire(notRegistered(4))), ErrBrokerIDNotRegistered) {
		t.Error("BROKER_ID_NOT_REGISTERED lost its sentinel")
	}
}

// startNonVoter starts node id as a non-voter at addr with the cluster's
// voters and config adjustments.
func (c *cluster) startNonVoter(id int32, addr string) *Store {
	c.t.Helper()
	if c.dirs[id] == "" {
		c.dirs[id] = filepath.Join(c.t.TempDir(), fmt.Sprint(id))
	}
	cfg := testConfig(c.t, id, addr, c.voters, c.dirs[id])
	if c.mut != nil {
		c.mut(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[id] = s
	return s
}

// raftMember returns node id's server in the controller's Raft
// configuration.
func (c *cluster) raftMember(lead, id int32) (raft.Server, bool) {
	c.t.Helper()
	srv, ok, err := c.nodes[lead].raftServer(id)
	if err != nil {
		c.t.Fatal(err)
	}
	return srv, ok
}

// expireExcept moves the clock past SessionTimeout and, once every
// running broker but the excluded ones heartbeated at the new time, runs
// the controller's liveness check.
func (c *cluster) expireExcept(clk *fakeClock, lead int32, exclude ...int32) {
	c.t.Helper()
	clk.Advance(2 * time.Second)
	now := clk.Now()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fresh, want := 0, 0
		for _, b := range c.nodes[lead].Brokers() {
			if _, running := c.nodes[b.NodeID]; !running || slices.Contains(exclude, b.NodeID) {
				continue
			}
			want++
			if !b.LastHeartbeat.Before(now) {
				fresh++
			}
		}
		if fresh == want {
			break
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("brokers did not heartbeat at %v: %+v", now, c.nodes[lead].Brokers())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.nodes[lead].checkLiveness(ctxT(c.t)); err != nil {
		c.t.Fatal(err)
	}
}

func registered(id int32) func(*metadata.Image) bool {
	return func(img *metadata.Image) bool { _, ok := img.Brokers[id]; return ok }
}

// TestNonVoterMembership: a non-voter joins through the voters, serves
// the replicated state and forwards calls; a second process with its node
// ID is refused; a restart waits out the old session; UnregisterBroker
// removes it from the metadata and the Raft configuration, and a running
// broker that was unregistered comes back by itself.
func TestNonVoterMembership(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1_000_000_000, 0)}
	c := newClusterWith(t, func(cfg *Config) { cfg.Now, cfg.LivenessCheckInterval = clk.Now, time.Hour })
	ctx := ctxT(t)
	lead := c.leader()
	addr4 := freeAddr(t, "127.0.0.4")
	n4 := c.startNonVoter(4, addr4)
	if err := n4.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitFor("broker 4 registered everywhere", registered(4))
	if srv, ok := c.raftMember(lead, 4); !ok || srv.Suffrage != raft.Nonvoter || string(srv.Address) != addr4 {
		t.Fatalf("broker 4 in the Raft configuration: %+v %v", srv, ok)
	}
	if n4.Image().ControllerID != lead {
		t.Fatalf("non-voter sees controller %d, want %d", n4.Image().ControllerID, lead)
	}
	// A call forwarded from the non-voter, placing a replica on it.
	if _, err := n4.CreateTopic(ctx, metadata.CreateTopicRequest{Name: "on4", Partitions: -1, ReplicationFactor: -1,
		Assignment: map[int32][]int32{0: {4, lead}}}); err != nil {
		t.Fatal(err)
	}
	c.wantPartition("on4 created", "on4", 4, 0, 0, 4, lead)

	// A second process with node ID 4 on another address: its join and its
	// registration are refused while broker 4's session is valid.
	dupCfg := testConfig(t, 4, freeAddr(t, "127.0.0.4"), c.voters, filepath.Join(t.TempDir(), "dup"))
	dupCfg.Now, dupCfg.LivenessCheckInterval = clk.Now, time.Hour
	dup, err := Open(dupCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := dup.joinStep(ctx); !errors.Is(err, ErrDuplicateBrokerRegistration) {
		t.Fatalf("duplicate join: %v", err)
	}
	rec := dup.brokerRecord()
	if _, err := c.nodes[lead].exec(ctx, &request{Op: opRegister, Broker: &rec}); !errors.Is(err, ErrDuplicateBrokerRegistration) {
		t.Fatalf("duplicate registration: %v", err)
	}
	if err := dup.Close(); err != nil {
		t.Fatal(err)
	}
	if srv, _ := c.raftMember(lead, 4); string(srv.Address) != addr4 {
		t.Fatalf("the duplicate took broker 4's Raft address: %+v", srv)
	}
	if b := c.nodes[lead].fsm.current().Brokers[4]; b.Incarnation != n4.incarnation || b.Fenced {
		t.Fatalf("the duplicate took broker 4's registration: %+v", b)
	}

	// Restart without a clean shutdown: the new incarnation rejoins (a
	// no-op) and is refused until the old session expired.
	c.stop(4)
	n4 = c.startNonVoter(4, addr4)
	rec = n4.brokerRecord()
	if _, err := n4.exec(ctx, &request{Op: opRegister, Broker: &rec}); !errors.Is(err, ErrDuplicateBrokerRegistration) {
		t.Fatalf("registration over a live session: %v", err)
	}
	c.expireExcept(clk, lead, 4)
	if err := n4.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	// Fencing the dead incarnation moved on4-0 to the other replica; the
	// new one is unfenced but not elected back (no automatic move).
	c.wantPartition("on4 after broker 4's session expired", "on4", lead, 1, 1, lead)

	// Unregistering a running non-voter: it leaves the metadata and the
	// Raft configuration, then registers and joins again by itself.
	if err := c.nodes[lead].UnregisterBroker(ctx, 4); err != nil {
		t.Fatal(err)
	}
	c.waitFor("broker 4 back after unregistering it while running", registered(4))
	if srv, ok := c.raftMember(lead, 4); !ok || srv.Suffrage != raft.Nonvoter {
		t.Fatalf("running broker 4 did not rejoin the Raft configuration: %+v", srv)
	}

	// Unregistering a stopped non-voter, from a follower.
	var follower int32
	for id := int32(1); id <= 3; id++ {
		if id != lead {
			follower = id
		}
	}
	c.stop(4)
	if err := c.nodes[follower].UnregisterBroker(ctx, 4); err != nil {
		t.Fatal(err)
	}
	c.converged()
	for id, s := range c.nodes {
		if _, ok := s.fsm.current().Brokers[4]; ok {
			t.Errorf("node %d still has broker 4 registered", id)
		}
	}
	if srv, ok := c.raftMember(lead, 4); ok {
		t.Fatalf("broker 4 still in the Raft configuration: %+v", srv)
	}
	c.waitFor("on4 keeps broker 4 as a replica", func(img *metadata.Image) bool {
		p := img.Topic("on4").Partitions[0]
		return slices.Equal(p.Replicas, []int32{4, lead}) && slices.Equal(p.ISR, []int32{lead}) && p.Leader == lead
	})
	for _, id := range []int32{4, 99} {
		if err := c.nodes[follower].UnregisterBroker(ctx, id); !errors.Is(err, ErrBrokerIDNotRegistered) {
			t.Errorf("unregister %d: %v", id, err)
		}
	}

	// A voter loses its registration, not its vote, and re-registers.
	if err := c.nodes[follower].UnregisterBroker(ctx, lead); err != nil {
		t.Fatal(err)
	}
	if srv, ok := c.raftMember(lead, lead); !ok || srv.Suffrage != raft.Voter {
		t.Fatalf("unregistered voter's Raft membership: %+v %v", srv, ok)
	}
	c.waitFor("the unregistered voter registered again", registered(lead))
	c.converged()
}

// TestNonVoterJoinErrors: a join that names a voter's ID or another
// member's address is refused, with a message, and not retried.
func TestNonVoterJoinErrors(t *testing.T) {
	c := newCluster(t)
	ctx := ctxT(t)
	lead := c.leader()
	for name, req := range map[string]*request{
		"voter ID":      {Op: opJoin, NodeID: 1, Incarnation: "x", RaftAddr: "127.0.0.9:1"},
		"voter address": {Op: opJoin, NodeID: 9, Incarnation: "x", RaftAddr: c.voters[2]},
		"bad address":   {Op: opJoin, NodeID: 9, Incarnation: "x", RaftAddr: "nowhere"},
	} {
		if _, err := c.nodes[lead].exec(ctx, req); !errors.Is(err, metadata.ErrInvalidRequest) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzDecodeForward feeds arbitrary bytes to the forwarded call's
// decoders: anything that can reach the Raft port may send them.
func FuzzDecodeForward(f *testing.F) {
	f.Add([]byte(`{"op":"join_nonvoter","node_id":4,"incarnation":"x","raft_addr":"127.0.0.4:9093"}`))
	f.Add([]byte(`{"op":"unregister_broker","node_id":4}`))
	f.Add([]byte(`{"err":{"kind":"duplicate_broker_registration","msg":"m"}}`))
	f.Add([]byte(`{"err":{"not_controller":true,"leader_id":2}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var req request
		if err := decodeStrict(data, &req); err == nil && req.Op == opJoin {
			_ = checkIPAddr(req.RaftAddr)
		}
		var resp response
		if err := decodeStrict(data, &resp); err == nil && resp.Err != nil {
			if fromWire(resp.Err) == nil {
				t.Fatal("an error on the wire decoded as success")
			}
		}
	})
}

// The store answers one forwarded unregister over its real listener.
func TestForwardUnregisterUnknown(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t, "127.0.0.1")
	s := openSingle(t, dir, addr)
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err, retry := s.forward(ctx, addr, &request{Op: opUnregister, NodeID: 7})
	if retry || !errors.Is(err, ErrBrokerIDNotRegistered) {
		t.Fatalf("forwarded unregister of an unknown broker: %v (retry %v)", err, retry)
	}
}
