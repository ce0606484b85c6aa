package group

import (
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// benchJoinSync runs one full classic rebalance of n new members (KIP-394
// round trip, join, sync) through Step calls only.
func benchJoinSync(b *testing.B, n int) {
	protos := []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("meta")}}
	for b.Loop() {
		c := New(Config{})
		c.Loaded(scriptEpoch)
		var id uint64
		ids := make([]string, n)
		for i := range n {
			j := kmsg.NewPtrJoinGroupRequest()
			j.SetVersion(5)
			j.Group, j.SessionTimeoutMillis, j.RebalanceTimeoutMillis, j.ProtocolType, j.Protocols = "g", 10000, 30000, "consumer", protos
			id++
			out := c.Step(Input{Now: scriptEpoch, ReplyTo: id, Req: j})
			ids[i] = out.Replies[0].Resp.(*kmsg.JoinGroupResponse).MemberID
		}
		var gen int32
		for i := range n {
			j := kmsg.NewPtrJoinGroupRequest()
			j.SetVersion(5)
			j.Group, j.MemberID, j.SessionTimeoutMillis, j.RebalanceTimeoutMillis, j.ProtocolType, j.Protocols = "g", ids[i], 10000, 30000, "consumer", protos
			id++
			out := c.Step(Input{Now: scriptEpoch, ReplyTo: id, Req: j})
			if len(out.Replies) > 0 {
				gen = out.Replies[0].Resp.(*kmsg.JoinGroupResponse).Generation
			}
		}
		leader := c.groups["g"].classic.leader
		assign := make([]kmsg.SyncGroupRequestGroupAssignment, n)
		for i := range n {
			assign[i] = kmsg.SyncGroupRequestGroupAssignment{MemberID: ids[i], MemberAssignment: []byte("a")}
		}
		replies := 0
		for i := range n {
			s := kmsg.NewPtrSyncGroupRequest()
			s.Group, s.MemberID, s.Generation = "g", ids[i], gen
			if ids[i] == leader {
				s.GroupAssignment = assign
			}
			id++
			replies += len(c.Step(Input{Now: scriptEpoch, ReplyTo: id, Req: s}).Replies)
		}
		if replies != n {
			b.Fatalf("%d sync replies, want %d", replies, n)
		}
	}
}

func BenchmarkJoinSync10(b *testing.B)  { benchJoinSync(b, 10) }
func BenchmarkJoinSync100(b *testing.B) { benchJoinSync(b, 100) }

// BenchmarkOffsetCommit measures Step for a member's commit of 10
// partitions (validation, state update, record encoding).
func BenchmarkOffsetCommit(b *testing.B) {
	c := New(Config{})
	c.Loaded(scriptEpoch)
	topics := newFakeTopics()
	topics.add("t", 10)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(8)
	req.Group = "g"
	var parts []kmsg.OffsetCommitRequestTopicPartition
	for p := range 10 {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition = int32(p)
		parts = append(parts, rp)
	}
	req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: parts}}
	now := scriptEpoch
	var id uint64
	for b.Loop() {
		id++
		for i := range req.Topics[0].Partitions {
			req.Topics[0].Partitions[i].Offset = int64(id)
		}
		now = now.Add(time.Millisecond)
		out := c.Step(Input{Now: now, ReplyTo: id, Req: req, Topics: topics})
		if len(out.Records) != 10 {
			b.Fatal("commit failed: " + strconv.Itoa(len(out.Records)))
		}
	}
}
