package broker

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestReassignAndElectSingleNode: on a single node (a one-voter quorum) no
// replica can move and no election is needed; the answers are Kafka's.
func TestReassignAndElectSingleNode(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 2, 1, nil, "r"); err != nil {
		t.Fatal(err)
	}

	var req kadm.AlterPartitionAssignmentsReq
	req.Assign("r", 0, []int32{1})    // the current assignment: nothing to do
	req.Assign("r", 1, []int32{2})    // no broker 2
	req.Assign("nope", 0, []int32{1}) // unknown topic
	req.CancelAssign("r", 9)          // unknown partition
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		topic string
		p     int32
		err   error
	}{{"r", 0, nil}, {"r", 1, kerr.InvalidReplicaAssignment}, {"nope", 0, kerr.UnknownTopicOrPartition}, {"r", 9, kerr.UnknownTopicOrPartition}} {
		if got := res[want.topic][want.p].Err; !errors.Is(got, want.err) || (want.err == nil && got != nil) {
			t.Errorf("reassign %s-%d: %v, want %v", want.topic, want.p, got, want.err)
		}
	}
	req = nil
	req.CancelAssign("r", 0)
	if res, err := adm.AlterPartitionAssignments(ctx, req); err != nil || !errors.Is(res["r"][0].Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel: %v %v", res, err)
	}
	if l, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"r": {0: {}, 1: {}}}); err != nil || len(l) != 0 {
		t.Fatalf("list: %v %v", l, err)
	}
	// The whole-cluster listing (null topics) is empty too.
	lr := kmsg.NewPtrListPartitionReassignmentsRequest()
	if resp, err := lr.RequestWith(ctx, cl); err != nil || resp.ErrorCode != 0 || len(resp.Topics) != 0 {
		t.Fatalf("list all: %+v %v", resp, err)
	}

	for _, how := range []kadm.ElectLeadersHow{kadm.ElectPreferredReplica, kadm.ElectLiveReplica} {
		er, err := adm.ElectLeaders(ctx, how, kadm.TopicsSet{"r": {0: {}}, "nope": {0: {}}})
		if err != nil || !errors.Is(er["r"][0].Err, kerr.ElectionNotNeeded) || !errors.Is(er["nope"][0].Err, kerr.UnknownTopicOrPartition) {
			t.Fatalf("election %v: %v %v", how, er, err)
		}
		if er, err := adm.ElectLeaders(ctx, how, nil); err != nil || len(er) != 0 {
			t.Fatalf("election %v of all partitions: %v %v", how, er, err)
		}
	}
	// v0 (no election type) and an unknown type.
	el := kmsg.NewPtrElectLeadersRequest()
	el.Version = 0
	if resp, err := el.RequestWith(ctx, cl); err != nil || len(resp.Topics) != 0 {
		t.Fatalf("ElectLeaders v0: %+v %v", resp, err)
	}
	el = kmsg.NewPtrElectLeadersRequest()
	el.ElectionType = 5
	if resp, err := el.RequestWith(ctx, cl); err != nil || resp.ErrorCode != kerr.InvalidRequest.Code {
		t.Fatalf("ElectLeaders type 5: %+v %v", resp, err)
	}
}
