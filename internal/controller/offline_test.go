package controller

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/streambus/streambus/internal/metadata"
)

// TestOfflineReplicas: an offline replica loses leadership and its ISR
// place for that partition only, may not rejoin or lead while offline,
// and leads a leaderless partition again once back.
func TestOfflineReplicas(t *testing.T) {
	st := threeBrokers(t) // t-0: replicas 1,2,3 led by 1; t-1: 2,3,1 led by 2
	st = mustApply(t, st, &command{Op: opOffline, NodeID: 1, Incarnation: "b", Offline: []TopicPartition{{"t", 0}}})
	p0, _ := part(t, st, 0)
	p1, _ := part(t, st, 1)
	if p0.Leader != 2 || p0.LeaderEpoch != 1 || !slices.Equal(p0.ISR, []int32{2, 3}) {
		t.Fatalf("t-0 after its leader's replica went offline: %+v", p0)
	}
	if p1.Leader != 2 || !slices.Equal(p1.ISR, []int32{2, 3, 1}) {
		t.Fatalf("t-1 changed: %+v", p1)
	}
	// While offline it may not rejoin the ISR.
	_, res := applyCommand(st, &command{Op: opAlterPartition, Alter: &AlterPartitionRequest{
		Topic: "t", Partition: 0, BrokerID: 2, LeaderEpoch: 1, PartitionEpoch: 1, NewISR: []int32{2, 3, 1}}})
	if !errors.Is(res.err, ErrIneligibleReplica) {
		t.Fatalf("offline replica added to the ISR: %v", res.err)
	}
	// Every ISR member offline: no leader; back online: it leads again.
	st = mustApply(t, st, &command{Op: opOffline, NodeID: 2, Incarnation: "c", Offline: []TopicPartition{{"t", 0}}})
	st = mustApply(t, st, &command{Op: opOffline, NodeID: 3, Incarnation: "d", Offline: []TopicPartition{{"t", 0}}})
	if p0, _ = part(t, st, 0); p0.Leader != -1 || !slices.Equal(p0.ISR, []int32{3}) {
		t.Fatalf("t-0 with every replica offline: %+v", p0)
	}
	st = mustApply(t, st, &command{Op: opOffline, NodeID: 3, Incarnation: "d", Offline: nil})
	if p0, _ = part(t, st, 0); p0.Leader != 3 {
		t.Fatalf("t-0 after 3 came back: %+v", p0)
	}
	if _, res := applyCommand(st, &command{Op: opOffline, NodeID: 3, Incarnation: "old"}); !errors.Is(res.err, errStaleIncarnation) {
		t.Fatalf("stale offline report: %v", res.err)
	}
}

// TestReportOfflineMovesLeadership: a broker's ReportOffline reaches the
// controller with its next heartbeat and leadership moves in every
// node's image; reporting it back online makes it eligible again.
func TestReportOfflineMovesLeadership(t *testing.T) {
	c := newCluster(t)
	ctrl := c.leader()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := c.nodes[ctrl].CreateTopic(ctx, metadata.CreateTopicRequest{Name: "off", Partitions: 1, ReplicationFactor: 3}); err != nil {
		t.Fatal(err)
	}
	var led int32
	c.waitFor("a leader", func(img *metadata.Image) bool {
		t := img.Topics["off"]
		if t == nil || t.Partitions[0].Leader < 0 {
			return false
		}
		led = t.Partitions[0].Leader
		return true
	})
	c.nodes[led].ReportOffline(map[string][]int32{"off": {0}})
	c.waitFor("leadership moved off the offline replica", func(img *metadata.Image) bool {
		p := img.Topics["off"].Partitions[0]
		return p.Leader >= 0 && p.Leader != led && !slices.Contains(p.ISR, led)
	})
	c.nodes[led].ReportOffline(nil)
	deadline := time.Now().Add(10 * time.Second)
	for len(c.nodes[c.leader()].fsm.current().Brokers[led].Offline) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("replica still offline in the controller's state after it was reported back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
