package controller

import (
	"errors"
	"slices"
	"testing"

	"github.com/streambus/streambus/internal/metadata"
)

func mustApply(t *testing.T, st *state, c *command) *state {
	t.Helper()
	next, res := applyCommand(st, c)
	if res.err != nil {
		t.Fatalf("apply %s: %v", c.Op, res.err)
	}
	return next
}

// threeBrokers is a state with unfenced brokers 1, 2, 3 and topic "t"
// whose partition 0 has replicas 1, 2, 3 and partition 1 only broker 2.
func threeBrokers(t *testing.T) *state {
	st := emptyState()
	for id := int32(1); id <= 3; id++ {
		inc := string(rune('a' + id))
		st = mustApply(t, st, &command{Op: opRegister, Broker: &brokerRecord{NodeID: id, Host: "h", Port: 1, Incarnation: inc}})
		if !st.Brokers[id].Fenced {
			t.Fatalf("broker %d registered unfenced", id)
		}
		st = mustApply(t, st, &command{Op: opUnfence, NodeID: id, Incarnation: inc})
	}
	st = mustApply(t, st, &command{Op: opCreateTopic, Name: "t", TopicID: "AAAAAAAAQACAAAAAAAAAAA", Replicas: [][]int32{{1, 2, 3}}})
	return mustApply(t, st, &command{Op: opCreatePartitions, Name: "t", FirstIndex: 1, Replicas: [][]int32{{2, 3, 1}}})
}

func part(t *testing.T, st *state, p int32) (metadata.Partition, int32) {
	t.Helper()
	_, mp, pe, ok := partitionOf(st, "t", p)
	if !ok {
		t.Fatalf("partition t-%d missing", p)
	}
	return mp, pe
}

func TestAlterPartitionChecks(t *testing.T) {
	st := threeBrokers(t)
	ok := AlterPartitionRequest{Topic: "t", Partition: 0, BrokerID: 1, LeaderEpoch: 0, PartitionEpoch: 0, NewISR: []int32{1, 3}}
	for _, tc := range []struct {
		name string
		mut  func(*AlterPartitionRequest)
		want error
	}{
		{"unknown topic", func(r *AlterPartitionRequest) { r.Topic = "x" }, metadata.ErrUnknownTopic},
		{"unknown partition", func(r *AlterPartitionRequest) { r.Partition = 2 }, metadata.ErrUnknownTopic},
		{"not the leader", func(r *AlterPartitionRequest) { r.BrokerID = 2; r.NewISR = []int32{2} }, ErrNotLeaderOrFollower},
		{"old leader epoch", func(r *AlterPartitionRequest) { r.LeaderEpoch = -1 }, ErrFencedLeaderEpoch},
		{"newer leader epoch", func(r *AlterPartitionRequest) { r.LeaderEpoch = 1 }, ErrFencedLeaderEpoch},
		{"old partition epoch", func(r *AlterPartitionRequest) { r.PartitionEpoch = 3 }, ErrInvalidUpdateVersion},
		{"empty ISR", func(r *AlterPartitionRequest) { r.NewISR = nil }, metadata.ErrInvalidRequest},
		{"leader not in ISR", func(r *AlterPartitionRequest) { r.NewISR = []int32{2, 3} }, metadata.ErrInvalidRequest},
		{"duplicate", func(r *AlterPartitionRequest) { r.NewISR = []int32{1, 3, 3} }, metadata.ErrInvalidRequest},
		{"not a replica", func(r *AlterPartitionRequest) { r.NewISR = []int32{1, 4} }, ErrIneligibleReplica},
	} {
		req := ok
		req.NewISR = slices.Clone(ok.NewISR)
		tc.mut(&req)
		next, res := applyCommand(st, &command{Op: opAlterPartition, Alter: &req})
		if !errors.Is(res.err, tc.want) || next != st {
			t.Errorf("%s: %v, want %v", tc.name, res.err, tc.want)
		}
	}

	st = mustApply(t, st, &command{Op: opAlterPartition, Alter: &ok})
	p, pe := part(t, st, 0)
	if !slices.Equal(p.ISR, []int32{1, 3}) || p.Leader != 1 || p.LeaderEpoch != 0 || pe != 1 {
		t.Fatalf("after shrink: %+v epoch %d", p, pe)
	}
	if _, pe1 := part(t, st, 1); pe1 != 0 {
		t.Fatalf("other partition's epoch moved to %d", pe1)
	}
	// Adding a fenced broker is refused; one already in the ISR may stay.
	st = mustApply(t, st, &command{Op: opFence, NodeID: 2, Incarnation: "c"})
	grow := AlterPartitionRequest{Topic: "t", Partition: 0, BrokerID: 1, LeaderEpoch: 0, PartitionEpoch: 1, NewISR: []int32{1, 3, 2}}
	if _, res := applyCommand(st, &command{Op: opAlterPartition, Alter: &grow}); !errors.Is(res.err, ErrIneligibleReplica) {
		t.Fatalf("adding fenced broker 2: %v", res.err)
	}
	st = mustApply(t, st, &command{Op: opUnfence, NodeID: 2, Incarnation: "c"})
	st = mustApply(t, st, &command{Op: opAlterPartition, Alter: &grow})
	if p, pe := part(t, st, 0); !slices.Equal(p.ISR, []int32{1, 3, 2}) || pe != 2 {
		t.Fatalf("after expand: %+v epoch %d", p, pe)
	}
}

func TestFenceElectsAndShrinks(t *testing.T) {
	st := threeBrokers(t)
	// Broker 2 leads t-1 (replicas 2,3,1) and is the only replica... of
	// none; fence it: t-1 goes to 3, every ISR loses 2.
	st = mustApply(t, st, &command{Op: opFence, NodeID: 2, Incarnation: "c"})
	p0, pe0 := part(t, st, 0)
	p1, pe1 := part(t, st, 1)
	if p0.Leader != 1 || p0.LeaderEpoch != 0 || !slices.Equal(p0.ISR, []int32{1, 3}) || pe0 != 1 {
		t.Fatalf("t-0 %+v epoch %d", p0, pe0)
	}
	if p1.Leader != 3 || p1.LeaderEpoch != 1 || !slices.Equal(p1.ISR, []int32{3, 1}) || pe1 != 1 {
		t.Fatalf("t-1 %+v epoch %d", p1, pe1)
	}
	// Fence 3 and 1: the last ISR member stays, with no leader.
	st = mustApply(t, st, &command{Op: opFence, NodeID: 3, Incarnation: "d"})
	st = mustApply(t, st, &command{Op: opFence, NodeID: 1, Incarnation: "b"})
	p1, pe1 = part(t, st, 1)
	if p1.Leader != -1 || p1.LeaderEpoch != 3 || !slices.Equal(p1.ISR, []int32{1}) || pe1 != 3 {
		t.Fatalf("t-1 with all fenced: %+v epoch %d", p1, pe1)
	}
	// Broker 2 returns: not in the ISR, so it leads nothing (no unclean
	// election). Broker 1 returns: it is the ISR, it leads again.
	st = mustApply(t, st, &command{Op: opUnfence, NodeID: 2, Incarnation: "c"})
	if p1, _ = part(t, st, 1); p1.Leader != -1 {
		t.Fatalf("unclean election: %+v", p1)
	}
	st = mustApply(t, st, &command{Op: opUnfence, NodeID: 1, Incarnation: "b"})
	p1, pe1 = part(t, st, 1)
	if p1.Leader != 1 || p1.LeaderEpoch != 4 || pe1 != 4 {
		t.Fatalf("t-1 after broker 1 returned: %+v epoch %d", p1, pe1)
	}
	// A stale incarnation changes nothing.
	if _, res := applyCommand(st, &command{Op: opFence, NodeID: 1, Incarnation: "old"}); !errors.Is(res.err, errStaleIncarnation) {
		t.Fatalf("stale fence: %v", res.err)
	}
}

func TestControlledShutdownAndPreferred(t *testing.T) {
	st := threeBrokers(t)
	st = mustApply(t, st, &command{Op: opShutdown, NodeID: 1, Incarnation: "b"})
	p0, pe0 := part(t, st, 0)
	if p0.Leader != 2 || p0.LeaderEpoch != 1 || !slices.Equal(p0.ISR, []int32{2, 3}) || pe0 != 1 || !st.Brokers[1].ShuttingDown {
		t.Fatalf("t-0 after shutdown of 1: %+v epoch %d", p0, pe0)
	}
	// Heartbeats of the same incarnation do not unfence it.
	if _, res := applyCommand(st, &command{Op: opUnfence, NodeID: 1, Incarnation: "b"}); res.err == nil {
		t.Fatal("a broker shutting down was unfenced")
	}
	// The restarted process registers a new incarnation, is unfenced,
	// rejoins the ISR through its leader, then takes back leadership by a
	// preferred election.
	st = mustApply(t, st, &command{Op: opRegister, Broker: &brokerRecord{NodeID: 1, Host: "h", Port: 1, Incarnation: "b2"}})
	if _, _, err := prepareElectErr(st, "t", 0); !errors.Is(err, ErrPreferredLeaderNotAvailable) {
		t.Fatalf("preferred not in ISR: %v", err)
	}
	st = mustApply(t, st, &command{Op: opUnfence, NodeID: 1, Incarnation: "b2"})
	st = mustApply(t, st, &command{Op: opAlterPartition, Alter: &AlterPartitionRequest{Topic: "t", Partition: 0,
		BrokerID: 2, LeaderEpoch: 1, PartitionEpoch: 1, NewISR: []int32{2, 3, 1}}})
	cmd, _, err := prepareElectErr(st, "t", 0)
	if err != nil || cmd == nil {
		t.Fatalf("preferred election: %v", err)
	}
	st = mustApply(t, st, cmd)
	p0, pe0 = part(t, st, 0)
	if p0.Leader != 1 || p0.LeaderEpoch != 2 || pe0 != 3 {
		t.Fatalf("t-0 after preferred election: %+v epoch %d", p0, pe0)
	}
	if _, _, err := prepareElectErr(st, "t", 0); !errors.Is(err, ErrElectionNotNeeded) {
		t.Fatalf("second election: %v", err)
	}
}

// prepareElectErr runs prepareElect for one partition and returns its
// command and its error, if any.
func prepareElectErr(st *state, topic string, p int32) (*command, *response, error) {
	cmd, resp, err := prepareElect(st, []TopicPartition{{Topic: topic, Partition: p}})
	if err == nil && len(resp.Elected) == 1 {
		err = fromWire(resp.Elected[0].Err)
	}
	return cmd, resp, err
}

func TestSnapshotKeepsLeadership(t *testing.T) {
	st := threeBrokers(t)
	st = mustApply(t, st, &command{Op: opFence, NodeID: 2, Incarnation: "c"})
	enc, err := encodeState(st)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeState(enc)
	if err != nil {
		t.Fatal(err)
	}
	again, err := encodeState(back)
	if err != nil || string(again) != string(enc) {
		t.Fatalf("snapshot round trip differs: %v\n%s\n%s", err, enc, again)
	}
	if _, pe := part(t, back, 1); pe != 1 || !back.Brokers[2].Fenced {
		t.Fatalf("restored epoch %d, brokers %+v", pe, back.Brokers)
	}
}
