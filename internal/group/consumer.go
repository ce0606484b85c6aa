package group

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/group/assignor"
)

// This file is the KIP-848 consumer group protocol (ConsumerGroupHeartbeat
// v0-1, ConsumerGroupDescribe v0-1). The group epoch is bumped whenever the
// target assignment must change (a member joins or leaves, a subscription
// changes, subscribed topics gain partitions or appear); the target is then
// recomputed with the server-side assignor, and every member reconciles
// towards its share one heartbeat at a time: first it is told to revoke what
// it must give up (its member epoch stays), and only when its heartbeat's
// owned partitions show they are gone does it move to the new epoch and get
// new partitions; a partition still owned or being revoked by another member
// is withheld until that member releases it.

// Member epochs with special meaning in ConsumerGroupHeartbeat.
const (
	epochJoin        = 0
	epochLeave       = -1
	epochStaticLeave = -2
)

// assignment maps a topic ID to its sorted partitions.
type assignment = map[[16]byte][]int32

// consumerGroup is a KIP-848 group.
type consumerGroup struct {
	// epoch is the group epoch; assignmentEpoch the epoch of the current
	// target assignment (below epoch until it is recomputed).
	epoch           int32
	assignmentEpoch int32
	stateSince      time.Time
	members         map[string]*consumerMember
	// owners says which member owns or is revoking each partition, so that
	// no partition is handed out twice.
	owners map[tp]string
	// topicsHash fingerprints the subscribed topics' IDs and partition
	// counts at the last target computation: when topics change, the epoch
	// is bumped.
	topicsHash uint64
}

type tp struct {
	topic     [16]byte
	partition int32
}

type consumerMember struct {
	id         string
	epoch      int32
	prevEpoch  int32
	instanceID *string
	rackID     *string
	clientID   string
	clientHost string
	rebalance  time.Duration
	topicNames []string
	topicRegex *string
	regex      *regexp.Regexp
	assignor   string
	assigned   assignment // what the member may own now
	revoking   assignment // what it must release before moving on
	target     assignment // its share of the target assignment
}

func newConsumerGroup() *consumerGroup {
	return &consumerGroup{members: make(map[string]*consumerMember), owners: make(map[tp]string)}
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
		if m.epoch != cg.assignmentEpoch || len(m.revoking) > 0 || !sameAssignment(m.assigned, m.target) {
			return "Reconciling"
		}
	}
	return "Stable"
}

// consumerSubscribed is the union of the members' subscribed topic names,
// regular expressions resolved against the current topics.
func (c *Coordinator) consumerSubscribed(cg *consumerGroup) map[string]struct{} {
	out := make(map[string]struct{})
	for _, m := range cg.members {
		for _, t := range m.topicNames {
			out[t] = struct{}{}
		}
		for _, t := range c.resolvedTopics(m) {
			out[t] = struct{}{}
		}
	}
	return out
}

// convertToClassic turns an empty KIP-848 group into a classic one, keeping
// its offsets (Kafka lets an empty group change protocol).
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
// and epoch (admin tools) is accepted only while the group has no members.
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
	// As Kafka's ConsumerGroup.validateOffsetCommit: members of the
	// consumer protocol commit with v9+, and any epoch other than the
	// member's current one is STALE_MEMBER_EPOCH (newer or older alike).
	if req.Version < 9 {
		return kerr.UnsupportedVersion.Code
	}
	if req.Generation != m.epoch {
		return kerr.StaleMemberEpoch.Code
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

func cghError(req *kmsg.ConsumerGroupHeartbeatRequest, code int16, msg string) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.ErrorCode = code
	if msg != "" {
		resp.ErrorMessage = &msg
	}
	return resp
}

func (c *Coordinator) consumerHeartbeat(req *kmsg.ConsumerGroupHeartbeatRequest) kmsg.Response {
	if req.Group == "" {
		return cghError(req, kerr.InvalidRequest.Code, "GroupId can't be empty.")
	}
	if req.MemberEpoch < epochStaticLeave {
		return cghError(req, kerr.InvalidRequest.Code, "MemberEpoch is invalid.")
	}
	if req.MemberEpoch != epochJoin && req.MemberID == "" {
		return cghError(req, kerr.InvalidRequest.Code, "MemberId can't be empty.")
	}
	if req.MemberEpoch == epochJoin && req.SubscribedTopicNames == nil && req.SubscribedTopicRegex == nil {
		return cghError(req, kerr.InvalidRequest.Code, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
	}
	if req.ServerAssignor != nil && !slices.Contains(c.cfg.ConsumerAssignors, *req.ServerAssignor) {
		return cghError(req, kerr.UnsupportedAssignor.Code, "ServerAssignor "+*req.ServerAssignor+" is not supported. Supported assignors: "+strings.Join(c.cfg.ConsumerAssignors, ", ")+".")
	}
	var re *regexp.Regexp
	if req.SubscribedTopicRegex != nil && *req.SubscribedTopicRegex != "" {
		var err error
		if re, err = regexp.Compile("^(?:" + *req.SubscribedTopicRegex + ")$"); err != nil {
			return cghError(req, kerr.InvalidRegularExpression.Code, err.Error())
		}
	}
	g := c.groups[req.Group]
	if g != nil && g.classic != nil {
		if len(g.classic.members) > 0 || len(g.classic.pending) > 0 || g.classic.state != stateEmpty {
			return cghError(req, kerr.GroupIDNotFound.Code, "Group "+req.Group+" is not a consumer group.")
		}
	}
	if req.MemberEpoch != epochJoin && (g == nil || g.consumer == nil || g.consumer.members[req.MemberID] == nil) {
		return cghError(req, kerr.UnknownMemberID.Code, "")
	}
	if g == nil {
		g = newGroup(req.Group)
		c.groups[req.Group] = g
	}
	if g.classic != nil {
		c.convertToConsumer(g)
	}
	cg := g.consumer
	switch req.MemberEpoch {
	case epochLeave, epochStaticLeave:
		return c.consumerLeave(g, req)
	case epochJoin:
		resp := c.consumerJoin(g, req, re)
		if resp != nil {
			return resp
		}
	default:
		m := cg.members[req.MemberID]
		if code := c.checkMemberEpoch(m, req); code != 0 {
			return cghError(req, code, "")
		}
		c.updateSubscription(g, m, req, re)
	}
	m := cg.members[req.MemberID]
	c.timers.set(timerKey{timerConsumerSession, g.id, m.id}, c.now.Add(c.cfg.ConsumerSessionTimeout))
	c.maybeBumpForTopics(g)
	c.maybeComputeTarget(g)
	c.reconcile(g, m, req.Topics)
	return c.cghResponse(req, m)
}

// checkMemberEpoch fences a member whose epoch is neither its current one
// nor, after a lost response, its previous one with nothing unexpected
// owned.
func (c *Coordinator) checkMemberEpoch(m *consumerMember, req *kmsg.ConsumerGroupHeartbeatRequest) int16 {
	if req.MemberEpoch == m.epoch {
		return 0
	}
	if req.MemberEpoch == m.prevEpoch && req.Topics != nil && ownsSubsetOf(req.Topics, m.assigned, m.revoking) {
		return 0
	}
	return kerr.FencedMemberEpoch.Code
}

func ownsSubsetOf(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, a, b assignment) bool {
	for _, t := range owned {
		for _, p := range t.Partitions {
			if !slices.Contains(a[t.TopicID], p) && !slices.Contains(b[t.TopicID], p) {
				return false
			}
		}
	}
	return true
}

// consumerJoin handles member epoch 0: a new member, a static member
// replacing its previous incarnation, or a member that lost its state and
// starts over.
func (c *Coordinator) consumerJoin(g *group, req *kmsg.ConsumerGroupHeartbeatRequest, re *regexp.Regexp) kmsg.Response {
	cg := g.consumer
	if req.MemberID != "" && cg.members[req.MemberID] != nil {
		// Rejoining with epoch 0 means the member dropped its assignment.
		c.removeConsumerMember(g, cg.members[req.MemberID])
	}
	var inherited *consumerMember
	if req.InstanceID != nil {
		for _, o := range cg.sortedMembers() {
			if o.instanceID != nil && *o.instanceID == *req.InstanceID {
				if o.epoch != epochStaticLeave {
					return cghError(req, kerr.UnreleasedInstanceID.Code, "Static member "+*req.InstanceID+" is still in use by member "+o.id+".")
				}
				inherited = o
			}
		}
	}
	if len(cg.members) >= c.cfg.GroupMaxSize && inherited == nil {
		return cghError(req, kerr.GroupMaxSizeReached.Code, "")
	}
	id := req.MemberID
	if id == "" {
		id = c.newMemberID(g, c.clientID)
	}
	req.MemberID = id
	m := &consumerMember{id: id, clientID: c.clientID, clientHost: c.clientHost, assigned: assignment{}, target: assignment{}}
	if inherited != nil {
		// KIP-848 static membership: the new incarnation takes over the
		// old one's epoch and assignment without a rebalance.
		delete(cg.members, inherited.id)
		c.timers.cancel(timerKey{timerConsumerSession, g.id, inherited.id})
		c.timers.cancel(timerKey{timerConsumerRevoke, g.id, inherited.id})
		m.epoch, m.prevEpoch = inherited.prevEpoch, inherited.prevEpoch
		m.assigned, m.revoking, m.target = inherited.assigned, inherited.revoking, inherited.target
		m.topicNames, m.topicRegex, m.regex, m.assignor = inherited.topicNames, inherited.topicRegex, inherited.regex, inherited.assignor
		for k, owner := range cg.owners {
			if owner == inherited.id {
				cg.owners[k] = id
			}
		}
		cg.members[id] = m
		m.instanceID = req.InstanceID
		m.rackID = req.RackID
		c.updateSubscription(g, m, req, re)
		return nil
	}
	m.instanceID, m.rackID = req.InstanceID, req.RackID
	cg.members[id] = m
	c.timers.cancel(timerKey{timerExpire, g.id, ""})
	c.updateSubscription(g, m, req, re)
	c.bumpEpoch(g)
	return nil
}

// updateSubscription applies the non-null fields of a heartbeat; a changed
// subscription or assignor bumps the group epoch.
func (c *Coordinator) updateSubscription(g *group, m *consumerMember, req *kmsg.ConsumerGroupHeartbeatRequest, re *regexp.Regexp) {
	changed := false
	if req.RebalanceTimeoutMillis > 0 {
		m.rebalance = msDur(req.RebalanceTimeoutMillis)
	} else if m.rebalance == 0 {
		m.rebalance = c.cfg.ConsumerSessionTimeout
	}
	if req.RackID != nil {
		m.rackID = req.RackID
	}
	if req.SubscribedTopicNames != nil {
		names := slices.Clone(req.SubscribedTopicNames)
		slices.Sort(names)
		names = slices.Compact(names)
		if !slices.Equal(names, m.topicNames) {
			m.topicNames, changed = names, true
		}
	}
	if req.SubscribedTopicRegex != nil {
		if deref(req.SubscribedTopicRegex) != deref(m.topicRegex) {
			changed = true
		}
		m.topicRegex, m.regex = req.SubscribedTopicRegex, re
		if *req.SubscribedTopicRegex == "" {
			m.topicRegex, m.regex = nil, nil
		}
	}
	if req.ServerAssignor != nil && *req.ServerAssignor != m.assignor {
		m.assignor, changed = *req.ServerAssignor, true
	}
	if changed && m.epoch != epochJoin {
		c.bumpEpoch(g)
	}
}

func (c *Coordinator) bumpEpoch(g *group) {
	g.consumer.epoch++
	g.stored = true
	c.record(consumerGroupKey(g.id), consumerGroupValue(g.consumer.epoch))
}

// resolvedTopics are the topic names a member subscribes to now: the listed
// names that exist, and the existing topics its regex matches in full.
// Like Kafka's coordinator, the regex is not kept away from internal topics
// (__consumer_offsets): clients exclude them themselves if they want to.
func (c *Coordinator) resolvedTopics(m *consumerMember) []string {
	if c.topics == nil {
		return nil
	}
	var out []string
	for _, n := range m.topicNames {
		if _, _, ok := c.topics.Topic(n); ok {
			out = append(out, n)
		}
	}
	if m.regex != nil {
		for _, n := range c.topics.Names() {
			if m.regex.MatchString(n) && !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	slices.Sort(out)
	return out
}

// maybeBumpForTopics bumps the epoch when the subscribed topics changed in
// the cluster (created, deleted, more partitions) since the last target.
func (c *Coordinator) maybeBumpForTopics(g *group) {
	if c.topics == nil {
		return
	}
	h := fnv.New64a()
	seen := map[string]bool{}
	for _, m := range g.consumer.sortedMembers() {
		for _, n := range c.resolvedTopics(m) {
			seen[n] = true
		}
	}
	for _, n := range sortedKeys(seen) {
		id, parts, _ := c.topics.Topic(n)
		fmt.Fprintf(h, "%s/%x/%d;", n, id, parts)
	}
	sum := h.Sum64()
	if sum != g.consumer.topicsHash {
		g.consumer.topicsHash = sum
		if g.consumer.assignmentEpoch == g.consumer.epoch && g.consumer.epoch > 0 {
			c.bumpEpoch(g)
		}
	}
}

// maybeComputeTarget recomputes the target assignment when the group epoch
// moved past it.
func (c *Coordinator) maybeComputeTarget(g *group) {
	cg := g.consumer
	if cg.assignmentEpoch >= cg.epoch {
		return
	}
	members := cg.sortedMembers()
	in := make([]assignor.Member, 0, len(members))
	topics := map[[16]byte]assignor.Topic{}
	for _, m := range members {
		names := c.resolvedTopics(m)
		for _, n := range names {
			id, parts, _ := c.topics.Topic(n)
			topics[id] = assignor.Topic{ID: id, Name: n, Partitions: parts}
		}
		in = append(in, assignor.Member{ID: m.id, InstanceID: m.instanceID, Rack: m.rackID, Topics: names, Current: m.target})
	}
	a, _ := assignor.ByName(c.groupAssignor(cg))
	out, err := a.Assign(in, topics)
	if err != nil {
		// Only duplicate member IDs fail, which a map cannot hold; keep the
		// old target rather than hand out nothing.
		return
	}
	for _, m := range members {
		m.target = out[m.id]
		if m.target == nil {
			m.target = assignment{}
		}
	}
	cg.assignmentEpoch = cg.epoch
}

// groupAssignor is the assignor most members ask for, ties and no
// preference going to the configured order (the first is the default).
func (c *Coordinator) groupAssignor(cg *consumerGroup) string {
	votes := map[string]int{}
	for _, m := range cg.members {
		if m.assignor != "" {
			votes[m.assignor]++
		}
	}
	best := c.cfg.ConsumerAssignors[0]
	for _, name := range c.cfg.ConsumerAssignors {
		if votes[name] > votes[best] {
			best = name
		}
	}
	return best
}

// reconcile moves a member one step towards its target: revoke first
// (epoch unchanged) until its owned partitions show the revocation, then
// take the new epoch and whatever part of the target nobody else holds.
func (c *Coordinator) reconcile(g *group, m *consumerMember, owned []kmsg.ConsumerGroupHeartbeatRequestTopic) {
	cg := g.consumer
	if len(m.revoking) > 0 {
		if owned == nil || ownsAnyOf(owned, m.revoking) {
			return
		}
		c.setOwnership(cg, m, m.assigned, nil)
		c.timers.cancel(timerKey{timerConsumerRevoke, g.id, m.id})
	}
	keep, revoke := splitAssignment(m.assigned, m.target)
	if len(revoke) > 0 {
		c.setOwnership(cg, m, keep, revoke)
		c.timers.set(timerKey{timerConsumerRevoke, g.id, m.id}, c.now.Add(m.rebalance))
		return
	}
	next := cloneAssignment(m.assigned)
	for t, parts := range m.target {
		for _, p := range parts {
			if owner, ok := cg.owners[tp{t, p}]; ok && owner != m.id {
				continue // still owned or being revoked by another member
			}
			if !slices.Contains(next[t], p) {
				next[t] = append(next[t], p)
			}
		}
	}
	for t := range next {
		slices.Sort(next[t])
	}
	c.setOwnership(cg, m, next, nil)
	if m.epoch != cg.assignmentEpoch {
		m.prevEpoch, m.epoch = m.epoch, cg.assignmentEpoch
	}
}

func ownsAnyOf(owned []kmsg.ConsumerGroupHeartbeatRequestTopic, a assignment) bool {
	for _, t := range owned {
		for _, p := range t.Partitions {
			if slices.Contains(a[t.TopicID], p) {
				return true
			}
		}
	}
	return false
}

// splitAssignment splits cur into what stays (also in target) and what
// must be revoked.
func splitAssignment(cur, target assignment) (keep, revoke assignment) {
	keep, revoke = assignment{}, assignment{}
	for t, parts := range cur {
		for _, p := range parts {
			if slices.Contains(target[t], p) {
				keep[t] = append(keep[t], p)
			} else {
				revoke[t] = append(revoke[t], p)
			}
		}
	}
	return keep, revoke
}

func (c *Coordinator) setOwnership(cg *consumerGroup, m *consumerMember, assigned, revoking assignment) {
	for _, a := range []assignment{m.assigned, m.revoking} {
		for t, parts := range a {
			for _, p := range parts {
				if cg.owners[tp{t, p}] == m.id {
					delete(cg.owners, tp{t, p})
				}
			}
		}
	}
	m.assigned, m.revoking = assigned, revoking
	for _, a := range []assignment{assigned, revoking} {
		for t, parts := range a {
			for _, p := range parts {
				cg.owners[tp{t, p}] = m.id
			}
		}
	}
}

func cloneAssignment(a assignment) assignment {
	out := make(assignment, len(a))
	for t, parts := range a {
		out[t] = slices.Clone(parts)
	}
	return out
}

func sameAssignment(a, b assignment) bool {
	count := func(x assignment) int {
		n := 0
		for _, ps := range x {
			n += len(ps)
		}
		return n
	}
	if count(a) != count(b) {
		return false
	}
	for t, ps := range a {
		for _, p := range ps {
			if !slices.Contains(b[t], p) {
				return false
			}
		}
	}
	return true
}

func (c *Coordinator) cghResponse(req *kmsg.ConsumerGroupHeartbeatRequest, m *consumerMember) *kmsg.ConsumerGroupHeartbeatResponse {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.MemberID = strp(m.id)
	resp.MemberEpoch = m.epoch
	resp.HeartbeatIntervalMillis = ms(c.cfg.ConsumerHeartbeatInterval)
	a := kmsg.NewConsumerGroupHeartbeatResponseAssignment()
	a.Topics = []kmsg.ConsumerGroupHeartbeatResponseAssignmentTopic{}
	for _, t := range sortedTopicIDs(m.assigned) {
		at := kmsg.NewConsumerGroupHeartbeatResponseAssignmentTopic()
		at.TopicID, at.Partitions = t, slices.Clone(m.assigned[t])
		a.Topics = append(a.Topics, at)
	}
	resp.Assignment = &a
	return resp
}

func sortedTopicIDs(a assignment) [][16]byte {
	ids := make([][16]byte, 0, len(a))
	for t, ps := range a {
		if len(ps) > 0 {
			ids = append(ids, t)
		}
	}
	slices.SortFunc(ids, func(x, y [16]byte) int { return bytes.Compare(x[:], y[:]) })
	return ids
}

func (c *Coordinator) consumerLeave(g *group, req *kmsg.ConsumerGroupHeartbeatRequest) kmsg.Response {
	cg := g.consumer
	m := cg.members[req.MemberID]
	resp := req.ResponseKind().(*kmsg.ConsumerGroupHeartbeatResponse)
	resp.MemberID = strp(req.MemberID)
	resp.MemberEpoch = req.MemberEpoch
	if req.MemberEpoch == epochStaticLeave && m.instanceID != nil {
		// A static member leaving temporarily keeps its partitions until
		// its session expires or it rejoins under the same instance ID.
		if m.epoch != epochStaticLeave {
			m.prevEpoch = m.epoch
		}
		m.epoch = epochStaticLeave
		c.timers.set(timerKey{timerConsumerSession, g.id, m.id}, c.now.Add(c.cfg.ConsumerSessionTimeout))
		return resp
	}
	c.removeConsumerMember(g, m)
	return resp
}

// removeConsumerMember drops a member (leave, expiry, fencing), releasing
// its partitions and bumping the group epoch.
func (c *Coordinator) removeConsumerMember(g *group, m *consumerMember) {
	cg := g.consumer
	c.setOwnership(cg, m, nil, nil)
	delete(cg.members, m.id)
	c.timers.cancel(timerKey{timerConsumerSession, g.id, m.id})
	c.timers.cancel(timerKey{timerConsumerRevoke, g.id, m.id})
	c.bumpEpoch(g)
	if len(cg.members) == 0 {
		cg.stateSince = c.now
		c.scheduleExpiry(g)
	}
}

func (c *Coordinator) onConsumerSessionExpired(g *group, id string) {
	if g.consumer == nil || g.consumer.members[id] == nil {
		return
	}
	c.removeConsumerMember(g, g.consumer.members[id])
}

// onConsumerRevokeExpired fences a member that did not revoke within its
// rebalance timeout, so its partitions can go to others.
func (c *Coordinator) onConsumerRevokeExpired(g *group, id string) {
	if g.consumer == nil {
		return
	}
	if m := g.consumer.members[id]; m != nil && len(m.revoking) > 0 {
		c.removeConsumerMember(g, m)
	}
}

// convertToConsumer turns an empty classic group into a KIP-848 group,
// keeping its offsets.
func (c *Coordinator) convertToConsumer(g *group) {
	if g.stored {
		c.record(groupKeyFor(g), nil)
		g.stored = false
	}
	for id := range g.classic.pending {
		c.timers.cancel(timerKey{timerPending, g.id, id})
	}
	c.timers.cancel(timerKey{timerJoin, g.id, ""})
	c.timers.cancel(timerKey{timerSync, g.id, ""})
	g.classic = nil
	g.consumer = newConsumerGroup()
	g.consumer.stateSince = c.now
}

func (cg *consumerGroup) sortedMembers() []*consumerMember {
	out := make([]*consumerMember, 0, len(cg.members))
	for _, m := range cg.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b *consumerMember) int { return strings.Compare(a.id, b.id) })
	return out
}

// consumerDescribe serves ConsumerGroupDescribe v0-1.
func (c *Coordinator) consumerDescribe(req *kmsg.ConsumerGroupDescribeRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, id := range req.Groups {
		sg := kmsg.NewConsumerGroupDescribeResponseGroup()
		sg.Group = id
		sg.AuthorizedOperations = -2147483648
		g := c.groups[id]
		if g == nil || g.consumer == nil {
			sg.ErrorCode = kerr.GroupIDNotFound.Code
			msg := "Group " + id + " not found."
			if g != nil {
				msg = "Group " + id + " is not a consumer group."
			}
			sg.ErrorMessage = &msg
			resp.Groups = append(resp.Groups, sg)
			continue
		}
		cg := g.consumer
		sg.State = cg.stateName()
		sg.Epoch = cg.epoch
		sg.AssignmentEpoch = cg.assignmentEpoch
		sg.AssignorName = c.groupAssignor(cg)
		for _, m := range cg.sortedMembers() {
			dm := kmsg.NewConsumerGroupDescribeResponseGroupMember()
			dm.MemberID, dm.InstanceID, dm.RackID, dm.MemberEpoch = m.id, m.instanceID, m.rackID, m.epoch
			dm.ClientID, dm.ClientHost = m.clientID, m.clientHost
			dm.SubscribedTopics = slices.Clone(m.topicNames)
			if dm.SubscribedTopics == nil {
				dm.SubscribedTopics = []string{}
			}
			dm.SubscribedTopicRegex = m.topicRegex
			dm.Assignment = c.describeAssignment(m.assigned)
			dm.TargetAssignment = c.describeAssignment(m.target)
			dm.MemberType = 1 // consumer protocol (KIP-1099)
			sg.Members = append(sg.Members, dm)
		}
		resp.Groups = append(resp.Groups, sg)
	}
	return resp
}

func (c *Coordinator) describeAssignment(a assignment) kmsg.Assignment {
	out := kmsg.NewAssignment()
	for _, t := range sortedTopicIDs(a) {
		atp := kmsg.NewAssignmentTopicPartition()
		atp.TopicID = t
		if c.topics != nil {
			atp.Topic, _, _ = c.topics.TopicByID(t)
		}
		atp.Partitions = slices.Clone(a[t])
		out.TopicPartitions = append(out.TopicPartitions, atp)
	}
	return out
}
