package group

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// describeGroups serves DescribeGroups v0-5 for groups of this partition.
// Unknown groups are reported as Dead with no error before v6 and with
// GROUP_ID_NOT_FOUND from v6, as Kafka's new coordinator does; KIP-848 groups
// are "not a classic group" (GROUP_ID_NOT_FOUND from v6, Dead before).
func (c *Coordinator) describeGroups(req *kmsg.DescribeGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, id := range req.Groups {
		sg := kmsg.NewDescribeGroupsResponseGroup()
		sg.Group = id
		sg.AuthorizedOperations = -2147483648 // not requested / not computed
		g := c.groups[id]
		if g == nil || g.classic == nil {
			sg.State = "Dead"
			if req.Version >= 6 {
				sg.ErrorCode = kerr.GroupIDNotFound.Code
				msg := "group " + id + " not found"
				if g != nil {
					msg = "group " + id + " is not a classic group"
				}
				sg.ErrorMessage = &msg
			}
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		cg := g.classic
		sg.State = cg.state.String()
		sg.ProtocolType = cg.protocolType
		stable := cg.state == stateStable
		if stable {
			sg.Protocol = cg.protocol
		}
		for _, m := range cg.sortedMembers() {
			dm := kmsg.NewDescribeGroupsResponseGroupMember()
			dm.MemberID, dm.InstanceID, dm.ClientID, dm.ClientHost = m.id, m.instanceID, m.clientID, m.clientHost
			if stable {
				// Like Kafka, metadata and assignment only describe a
				// settled generation.
				dm.ProtocolMetadata = m.metadataFor(cg.protocol)
				dm.MemberAssignment = m.assignment
			}
			sg.Members = append(sg.Members, dm)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

// listGroups serves ListGroups v0-5 for this partition; the broker merges
// the Groups of all partitions. Filters compare case-insensitively.
func (c *Coordinator) listGroups(req *kmsg.ListGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	for _, id := range c.Groups() {
		g := c.groups[id]
		lg := kmsg.NewListGroupsResponseGroup()
		lg.Group = id
		if g.classic != nil {
			lg.ProtocolType = g.classic.protocolType
			lg.GroupState = g.classic.state.String()
			lg.GroupType = "classic"
		} else {
			lg.ProtocolType = "consumer"
			lg.GroupState = g.consumer.stateName()
			lg.GroupType = "consumer"
		}
		if req.Version >= 4 && len(req.StatesFilter) > 0 && !containsFold(req.StatesFilter, lg.GroupState) {
			continue
		}
		if req.Version >= 5 && len(req.TypesFilter) > 0 && !containsFold(req.TypesFilter, lg.GroupType) {
			continue
		}
		resp.Groups = append(resp.Groups, lg)
	}
	return resp
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// deleteGroups serves DeleteGroups: only groups without members can go;
// their offsets and group record are tombstoned.
func (c *Coordinator) deleteGroups(req *kmsg.DeleteGroupsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, id := range req.Groups {
		dg := kmsg.NewDeleteGroupsResponseGroup()
		dg.Group = id
		g := c.groups[id]
		switch {
		case id == "":
			dg.ErrorCode = kerr.InvalidGroupID.Code
		case g == nil:
			dg.ErrorCode = kerr.GroupIDNotFound.Code
		case g.numMembers() > 0 || (g.classic != nil && g.classic.state != stateEmpty):
			dg.ErrorCode = kerr.NonEmptyGroup.Code
		default:
			c.deleteGroup(g)
		}
		resp.Groups = append(resp.Groups, dg)
	}
	return resp
}

// offsetDelete serves OffsetDelete: offsets of topics the group is
// subscribed to are protected (GROUP_SUBSCRIBED_TO_TOPIC); a non-empty group
// whose protocol type is not "consumer" cannot tell, so it refuses
// (NON_EMPTY_GROUP), as Kafka does.
func (c *Coordinator) offsetDelete(req *kmsg.OffsetDeleteRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	g := c.groups[req.Group]
	switch {
	case req.Group == "":
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	case g == nil:
		resp.ErrorCode = kerr.GroupIDNotFound.Code
		return resp
	}
	var subscribed map[string]struct{}
	if g.classic != nil && g.classic.state != stateEmpty {
		if g.classic.protocolType != "consumer" {
			resp.ErrorCode = kerr.NonEmptyGroup.Code
			return resp
		}
		subscribed = g.classic.subscribed
	} else if g.consumer != nil {
		subscribed = c.consumerSubscribed(g.consumer)
	}
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetDeleteResponseTopic()
		st.Topic = rt.Topic
		_, isSubscribed := subscribed[rt.Topic]
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetDeleteResponseTopicPartition()
			sp.Partition = rp.Partition
			if isSubscribed {
				sp.ErrorCode = kerr.GroupSubscribedToTopic.Code
			} else if parts := g.offsets[rt.Topic]; parts != nil && parts[rp.Partition] != nil {
				delete(parts, rp.Partition)
				if len(parts) == 0 {
					delete(g.offsets, rt.Topic)
				}
				c.record(offsetKey(g.id, rt.Topic, rp.Partition), nil)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	// A group that existed only for these offsets is gone, as it would be
	// after a reload.
	c.dropIfVacant(g)
	return resp
}

// ErrorResponse answers a group request with code everywhere an error can
// go, as Kafka does for errors that concern the whole request
// (COORDINATOR_LOAD_IN_PROGRESS, NOT_COORDINATOR, unsupported requests);
// nil for a request that is not a group API. The broker uses it for the
// errors it answers before a request reaches a coordinator.
func ErrorResponse(req kmsg.Request, code int16) kmsg.Response {
	resp := req.ResponseKind()
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return joinError(r, code)
	case *kmsg.SyncGroupRequest:
		resp.(*kmsg.SyncGroupResponse).ErrorCode = code
	case *kmsg.HeartbeatRequest:
		resp.(*kmsg.HeartbeatResponse).ErrorCode = code
	case *kmsg.LeaveGroupRequest:
		resp.(*kmsg.LeaveGroupResponse).ErrorCode = code
	case *kmsg.OffsetCommitRequest:
		out := resp.(*kmsg.OffsetCommitResponse)
		for _, t := range r.Topics {
			st := kmsg.NewOffsetCommitResponseTopic()
			st.Topic, st.TopicID = t.Topic, t.TopicID
			for _, p := range t.Partitions {
				sp := kmsg.NewOffsetCommitResponseTopicPartition()
				sp.Partition, sp.ErrorCode = p.Partition, code
				st.Partitions = append(st.Partitions, sp)
			}
			out.Topics = append(out.Topics, st)
		}
	case *kmsg.OffsetFetchRequest:
		out := resp.(*kmsg.OffsetFetchResponse)
		out.ErrorCode = code
		for _, g := range r.Groups {
			sg := kmsg.NewOffsetFetchResponseGroup()
			sg.Group, sg.ErrorCode = g.Group, code
			out.Groups = append(out.Groups, sg)
		}
		if r.Version < 2 {
			for _, t := range r.Topics {
				st := kmsg.NewOffsetFetchResponseTopic()
				st.Topic = t.Topic
				for _, p := range t.Partitions {
					sp := kmsg.NewOffsetFetchResponseTopicPartition()
					sp.Partition, sp.Offset, sp.LeaderEpoch, sp.ErrorCode = p, -1, -1, code
					st.Partitions = append(st.Partitions, sp)
				}
				out.Topics = append(out.Topics, st)
			}
		}
	case *kmsg.DescribeGroupsRequest:
		out := resp.(*kmsg.DescribeGroupsResponse)
		for _, id := range r.Groups {
			sg := kmsg.NewDescribeGroupsResponseGroup()
			sg.Group, sg.ErrorCode = id, code
			out.Groups = append(out.Groups, sg)
		}
	case *kmsg.ListGroupsRequest:
		resp.(*kmsg.ListGroupsResponse).ErrorCode = code
	case *kmsg.DeleteGroupsRequest:
		out := resp.(*kmsg.DeleteGroupsResponse)
		for _, id := range r.Groups {
			dg := kmsg.NewDeleteGroupsResponseGroup()
			dg.Group, dg.ErrorCode = id, code
			out.Groups = append(out.Groups, dg)
		}
	case *kmsg.OffsetDeleteRequest:
		resp.(*kmsg.OffsetDeleteResponse).ErrorCode = code
	case *kmsg.ConsumerGroupHeartbeatRequest:
		resp.(*kmsg.ConsumerGroupHeartbeatResponse).ErrorCode = code
	case *kmsg.ConsumerGroupDescribeRequest:
		out := resp.(*kmsg.ConsumerGroupDescribeResponse)
		for _, id := range r.Groups {
			sg := kmsg.NewConsumerGroupDescribeResponseGroup()
			sg.Group, sg.ErrorCode = id, code
			out.Groups = append(out.Groups, sg)
		}
	default:
		return nil
	}
	return resp
}
