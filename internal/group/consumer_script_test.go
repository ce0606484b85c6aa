package group

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumerRequest builds KIP-848 requests for scripts:
//
//	cgh group= member=alias epoch= instance= names=t,u regex= assignor= owned=t:0+1;u:0 (owned=- is empty) rebalance=
//	cgdescribe groups=
func (r *runner) consumerRequest(t *testing.T, cmd string, a args) kmsg.Request {
	switch cmd {
	case "cgh":
		q := kmsg.NewPtrConsumerGroupHeartbeatRequest()
		q.SetVersion(int16(a.int(t, "v", 1)))
		q.Group = a.str("group", "g")
		q.MemberID = r.member(a, "member")
		q.MemberEpoch = int32(a.int(t, "epoch", 0))
		q.InstanceID = a.optStr("instance")
		q.SubscribedTopicRegex = a.optStr("regex")
		q.ServerAssignor = a.optStr("assignor")
		q.RebalanceTimeoutMillis = int32(a.dur(t, "rebalance", 0).Milliseconds())
		if n, ok := a["names"]; ok {
			q.SubscribedTopicNames = []string{}
			if n != "-" {
				q.SubscribedTopicNames = strings.Split(n, ",")
			}
		}
		if o, ok := a["owned"]; ok {
			q.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			if o != "-" {
				for _, tp := range strings.Split(o, ";") {
					name, ps, _ := strings.Cut(tp, ":")
					id, _, _ := r.topics.Topic(name)
					rt := kmsg.ConsumerGroupHeartbeatRequestTopic{TopicID: id}
					for _, p := range strings.Split(ps, "+") {
						var n int32
						fmt.Sscan(p, &n)
						rt.Partitions = append(rt.Partitions, n)
					}
					q.Topics = append(q.Topics, rt)
				}
			}
		}
		return q
	case "cgdescribe":
		q := kmsg.NewPtrConsumerGroupDescribeRequest()
		q.SetVersion(1)
		q.Groups = strings.Split(a.str("groups", "g"), ",")
		return q
	}
	return nil
}

func (r *runner) assignmentString(parts map[string][]int32) string {
	var ts []string
	for _, name := range sortedKeys(parts) {
		ps := slices.Clone(parts[name])
		slices.Sort(ps)
		var s []string
		for _, p := range ps {
			s = append(s, fmt.Sprint(p))
		}
		ts = append(ts, name+":"+strings.Join(s, "+"))
	}
	return strings.Join(ts, ";")
}

func (r *runner) describeConsumerResp(resp kmsg.Response) string {
	switch v := resp.(type) {
	case *kmsg.ConsumerGroupHeartbeatResponse:
		s := fmt.Sprintf("cgh %s", errName(v.ErrorCode))
		if v.ErrorCode != 0 {
			return s
		}
		s += fmt.Sprintf(" member=%s epoch=%d interval=%d", r.name(deref(v.MemberID)), v.MemberEpoch, v.HeartbeatIntervalMillis)
		if v.Assignment != nil {
			parts := map[string][]int32{}
			for _, t := range v.Assignment.Topics {
				name, _, _ := r.topics.TopicByID(t.TopicID)
				parts[name] = t.Partitions
			}
			s += " assigned=[" + r.assignmentString(parts) + "]"
		}
		return s
	case *kmsg.ConsumerGroupDescribeResponse:
		var gs []string
		for _, g := range v.Groups {
			s := fmt.Sprintf("%s:%s", g.Group, errName(g.ErrorCode))
			if g.ErrorCode == 0 {
				s += fmt.Sprintf(" state=%s epoch=%d assignment-epoch=%d assignor=%s", g.State, g.Epoch, g.AssignmentEpoch, g.AssignorName)
				for _, m := range g.Members {
					s += fmt.Sprintf("\n  %s epoch=%d subscribed=%v assigned=[%s] target=[%s]", r.name(m.MemberID), m.MemberEpoch, m.SubscribedTopics, describeAssignment(m.Assignment), describeAssignment(m.TargetAssignment))
				}
			}
			gs = append(gs, s)
		}
		return "cgdescribe " + strings.Join(gs, "; ")
	}
	return ""
}

func describeAssignment(a kmsg.Assignment) string {
	var ts []string
	for _, t := range a.TopicPartitions {
		var s []string
		for _, p := range t.Partitions {
			s = append(s, fmt.Sprint(p))
		}
		ts = append(ts, t.Topic+":"+strings.Join(s, "+"))
	}
	return strings.Join(ts, ";")
}

func (r *runner) dumpConsumer(g *group) string {
	cg := g.consumer
	var ms []string
	for _, m := range cg.sortedMembers() {
		ms = append(ms, fmt.Sprintf("%s@%d", r.name(m.id), m.epoch))
	}
	return fmt.Sprintf("group %s consumer state=%s epoch=%d assignment-epoch=%d members=[%s]\n", g.id, cg.stateName(), cg.epoch, cg.assignmentEpoch, strings.Join(ms, " "))
}
