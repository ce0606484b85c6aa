package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumerGroup is a KIP-848 group (ConsumerGroupHeartbeat).
type consumerGroup struct {
	// epoch is the group epoch: bumped whenever the target assignment must
	// be recomputed (members or subscriptions changed).
	epoch int32
	// assignmentEpoch is the epoch of the current target assignment.
	assignmentEpoch int32
	stateSince      time.Time
	members         map[string]*consumerMember
}

type consumerMember struct {
	id         string
	epoch      int32
	instanceID *string
	rackID     *string
	clientID   string
	clientHost string
	rebalance  time.Duration
	topicNames []string
	topicRegex *string
	assignor   string
	assigned   map[[16]byte][]int32 // current assignment (acknowledged by the member or being given)
	target     map[[16]byte][]int32 // target assignment
	revoking   map[[16]byte][]int32 // partitions the member must give up first
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{members: make(map[string]*consumerMember)}
}

// stateName is the KIP-848 group state as ListGroups and
// ConsumerGroupDescribe show it.
func (cg *consumerGroup) stateName() string {
	if len(cg.members) == 0 {
		return "Empty"
	}
	if cg.assignmentEpoch < cg.epoch {
		return "Assigning"
	}
	for _, m := range cg.members {
		if m.epoch != cg.assignmentEpoch || len(m.revoking) > 0 {
			return "Reconciling"
		}
	}
	return "Stable"
}

// subscribedTopics is the union of the members' subscriptions by name (the
// regex subscriptions resolved when the assignment was computed).
func (cg *consumerGroup) subscribedTopics() map[string]struct{} {
	out := make(map[string]struct{})
	for _, m := range cg.members {
		for _, t := range m.topicNames {
			out[t] = struct{}{}
		}
	}
	return out
}

// convertToClassic turns an empty KIP-848 group into a classic one, keeping
// its offsets (Kafka allows an empty group to change protocol).
func (c *Coordinator) convertToClassic(g *group) {
	if g.stored {
		c.record(consumerGroupKey(g.id), nil)
		g.stored = false
	}
	g.consumer = nil
	g.classic = newClassicGroup()
	g.classic.stateSince = c.now
	c.timers.cancel(timerKey{timerExpire, g.id, ""})
}

// validateConsumerCommit checks an OffsetCommit against a KIP-848 group:
// the generation field carries the member epoch. A commit without member ID
// and epoch (admin tools, standalone consumers) is accepted only while the
// group has no members.
func (c *Coordinator) validateConsumerCommit(g *group, req *kmsg.OffsetCommitRequest) int16 {
	cg := g.consumer
	if req.MemberID == "" && req.Generation < 0 {
		if len(cg.members) == 0 {
			return 0
		}
		return kerr.UnknownMemberID.Code
	}
	m := cg.members[req.MemberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	switch {
	case req.Generation > m.epoch:
		return kerr.FencedMemberEpoch.Code
	case req.Generation < m.epoch:
		if req.Version >= 9 {
			return kerr.StaleMemberEpoch.Code
		}
		return kerr.IllegalGeneration.Code
	}
	return 0
}

// validateConsumerFetch checks OffsetFetch v9's member ID and epoch.
func (c *Coordinator) validateConsumerFetch(g *group, memberID string, epoch int32) int16 {
	if memberID == "" && epoch < 0 {
		return 0
	}
	m := g.consumer.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	if epoch != m.epoch {
		return kerr.StaleMemberEpoch.Code
	}
	return 0
}
