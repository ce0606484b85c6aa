package group

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"pgregory.net/rapid"
)

// TestRestartReplaysOffsets is the load property: after any run, a new
// coordinator that Loads every record the run produced serves the same
// offsets for every group.
func TestRestartReplaysOffsets(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		topics := newFakeTopics()
		topics.add("t", 4)
		cfg := Config{GroupMinSessionTimeout: time.Second, OffsetsRetention: time.Hour}
		cfg.EnsureDefaults()
		c := New(cfg)
		c.Loaded(scriptEpoch)
		now := scriptEpoch
		var log []Record
		var reqID uint64
		members := map[string]string{} // group -> member ID of its single member
		gens := map[string]int32{}
		step := func(req kmsg.Request) Output {
			reqID++
			out := c.Step(Input{Now: now, ReplyTo: reqID, Req: req, Topics: topics})
			log = append(log, out.Records...)
			return out
		}
		groups := []string{"a", "b", "c"}
		n := rapid.IntRange(1, 60).Draw(rt, "ops")
		for i := 0; i < n; i++ {
			g := rapid.SampledFrom(groups).Draw(rt, "group")
			switch rapid.IntRange(0, 6).Draw(rt, "op") {
			case 0, 1: // commit (simple, or as the member)
				req := kmsg.NewPtrOffsetCommitRequest()
				req.SetVersion(8)
				req.Group = g
				req.MemberID, req.Generation = members[g], -1
				if req.MemberID != "" {
					req.Generation = gens[g]
				}
				p := kmsg.NewOffsetCommitRequestTopicPartition()
				p.Partition = int32(rapid.IntRange(0, 3).Draw(rt, "p"))
				p.Offset = rapid.Int64Range(0, 1000).Draw(rt, "off")
				p.Metadata = strp(fmt.Sprint(i))
				req.Topics = []kmsg.OffsetCommitRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetCommitRequestTopicPartition{p}}}
				step(req)
			case 2: // a single member joins and syncs
				if members[g] != "" {
					continue
				}
				join := kmsg.NewPtrJoinGroupRequest()
				join.SetVersion(3)
				join.Group, join.SessionTimeoutMillis, join.RebalanceTimeoutMillis, join.ProtocolType = g, 60000, 60000, "consumer"
				join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("m")}}
				out := step(join)
				for _, r := range out.Replies {
					if jr, ok := r.Resp.(*kmsg.JoinGroupResponse); ok && jr.ErrorCode == 0 {
						members[g], gens[g] = jr.MemberID, jr.Generation
						sync := kmsg.NewPtrSyncGroupRequest()
						sync.SetVersion(3)
						sync.Group, sync.MemberID, sync.Generation = g, jr.MemberID, jr.Generation
						sync.GroupAssignment = []kmsg.SyncGroupRequestGroupAssignment{{MemberID: jr.MemberID, MemberAssignment: []byte("x")}}
						step(sync)
					}
				}
			case 3: // the member leaves
				if members[g] == "" {
					continue
				}
				leave := kmsg.NewPtrLeaveGroupRequest()
				leave.SetVersion(1)
				leave.Group, leave.MemberID = g, members[g]
				step(leave)
				delete(members, g)
			case 4: // delete the group or some offsets
				if rapid.Bool().Draw(rt, "whole") {
					del := kmsg.NewPtrDeleteGroupsRequest()
					del.Groups = []string{g}
					step(del)
				} else {
					del := kmsg.NewPtrOffsetDeleteRequest()
					del.Group = g
					del.Topics = []kmsg.OffsetDeleteRequestTopic{{Topic: "t", Partitions: []kmsg.OffsetDeleteRequestTopicPartition{{Partition: int32(rapid.IntRange(0, 3).Draw(rt, "dp"))}}}}
					step(del)
				}
			case 5, 6: // time passes (heartbeating members survive)
				now = now.Add(time.Duration(rapid.IntRange(1, 40).Draw(rt, "min")) * time.Minute)
				for gg, m := range members {
					hb := kmsg.NewPtrHeartbeatRequest()
					hb.Group, hb.MemberID, hb.Generation = gg, m, gens[gg]
					step(hb)
				}
				out := c.Tick(now, topics)
				log = append(log, out.Records...)
			}
		}
		d := New(cfg)
		for _, r := range log {
			if err := d.Load(r.Key, r.Value); err != nil {
				rt.Fatalf("load: %v", err)
			}
		}
		d.Loaded(now)
		if got, want := d.Groups(), c.Groups(); !slices.Equal(got, want) {
			rt.Fatalf("groups after restart %v, want %v", got, want)
		}
		for _, g := range groups {
			if got, want := fetchAll(d, now, g), fetchAll(c, now, g); got != want {
				rt.Fatalf("group %s after restart:\n%s\nwant:\n%s", g, got, want)
			}
		}
	})
}

func fetchAll(c *Coordinator, now time.Time, g string) string {
	req := kmsg.NewPtrOffsetFetchRequest()
	req.SetVersion(8)
	req.Groups = []kmsg.OffsetFetchRequestGroup{{Group: g}}
	out := c.Step(Input{Now: now, Req: req})
	resp := out.Replies[0].Resp.(*kmsg.OffsetFetchResponse)
	var s string
	for _, t := range resp.Groups[0].Topics {
		for _, p := range t.Partitions {
			s += fmt.Sprintf("%s/%d=%d %q\n", t.Topic, p.Partition, p.Offset, deref(p.Metadata))
		}
	}
	return s
}
