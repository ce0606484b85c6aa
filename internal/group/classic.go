package group

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file is the classic (JoinGroup/SyncGroup) protocol, following
// Kafka's GroupCoordinator: Empty → PreparingRebalance (members rejoin until
// all have, or the rebalance timeout) → CompletingRebalance (the leader
// sends the assignment in SyncGroup) → Stable.

func joinError(req *kmsg.JoinGroupRequest, code int16) *kmsg.JoinGroupResponse {
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.ErrorCode = code
	resp.Generation = -1
	resp.MemberID = req.MemberID
	return resp
}

func (c *Coordinator) joinGroup(to uint64, req *kmsg.JoinGroupRequest) kmsg.Response {
	if req.Group == "" {
		return joinError(req, kerr.InvalidGroupID.Code)
	}
	session := msDur(req.SessionTimeoutMillis)
	if session < c.cfg.GroupMinSessionTimeout || session > c.cfg.GroupMaxSessionTimeout {
		return joinError(req, kerr.InvalidSessionTimeout.Code)
	}
	if req.ProtocolType == "" || len(req.Protocols) == 0 {
		return joinError(req, kerr.InconsistentGroupProtocol.Code)
	}
	g := c.groups[req.Group]
	if g != nil && g.consumer != nil {
		if len(g.consumer.members) > 0 {
			// A KIP-848 group with members: Kafka without online migration
			// refuses classic members.
			return joinError(req, kerr.InconsistentGroupProtocol.Code)
		}
		c.convertToClassic(g)
	}
	if g == nil {
		if req.MemberID != "" {
			return joinError(req, kerr.UnknownMemberID.Code)
		}
		g = newGroup(req.Group)
		g.classic.stateSince = c.now
		c.groups[req.Group] = g
	}
	cg := g.classic
	if !cg.supportsProtocols(req.ProtocolType, req.Protocols) {
		return joinError(req, kerr.InconsistentGroupProtocol.Code)
	}
	if req.MemberID == "" {
		return c.joinUnknown(to, g, req, session)
	}
	return c.joinKnown(to, g, req, session)
}

func rebalanceTimeout(req *kmsg.JoinGroupRequest, session time.Duration) time.Duration {
	if req.Version == 0 || req.RebalanceTimeoutMillis <= 0 {
		return session // v0 has no rebalance timeout: Kafka uses the session timeout
	}
	return msDur(req.RebalanceTimeoutMillis)
}

func (c *Coordinator) joinUnknown(to uint64, g *group, req *kmsg.JoinGroupRequest, session time.Duration) kmsg.Response {
	cg := g.classic
	if len(cg.members)+len(cg.pending) >= c.cfg.GroupMaxSize {
		return joinError(req, kerr.GroupMaxSizeReached.Code)
	}
	id := c.newMemberID(g, c.clientID)
	if req.InstanceID != nil {
		if old, ok := cg.instances[*req.InstanceID]; ok {
			return c.replaceStaticMember(to, g, old, id, req, session)
		}
		c.addMember(to, g, id, req, session)
		return nil
	}
	if req.Version >= 4 {
		// KIP-394: hand out the ID first, so that a client that times out
		// and retries does not leave a ghost member behind.
		cg.pending[id] = struct{}{}
		c.timers.set(timerKey{timerPending, g.id, id}, c.now.Add(session))
		resp := joinError(req, kerr.MemberIDRequired.Code)
		resp.MemberID = id
		return resp
	}
	c.addMember(to, g, id, req, session)
	return nil
}

func (c *Coordinator) joinKnown(to uint64, g *group, req *kmsg.JoinGroupRequest, session time.Duration) kmsg.Response {
	cg := g.classic
	id := req.MemberID
	if _, ok := cg.pending[id]; ok {
		delete(cg.pending, id)
		c.timers.cancel(timerKey{timerPending, g.id, id})
		c.addMember(to, g, id, req, session)
		return nil
	}
	if req.InstanceID != nil {
		if reg, ok := cg.instances[*req.InstanceID]; ok && reg != id {
			return joinError(req, kerr.FencedInstanceID.Code)
		}
	}
	m := cg.members[id]
	if m == nil {
		return joinError(req, kerr.UnknownMemberID.Code)
	}
	switch cg.state {
	case statePreparingRebalance:
		c.updateMember(to, g, m, req, session)
		c.maybeCompleteJoin(g)
		return nil
	case stateCompletingRebalance:
		if sameProtocols(m.protocols, req.Protocols) {
			// A retry of a join that already completed: answer again.
			return c.joinResponse(g, m, req.Version)
		}
		c.updateMember(to, g, m, req, session)
		c.prepareRebalance(g)
		return nil
	case stateStable:
		if m.id == cg.leader || !sameProtocols(m.protocols, req.Protocols) {
			c.updateMember(to, g, m, req, session)
			c.prepareRebalance(g)
			return nil
		}
		return c.joinResponse(g, m, req.Version)
	}
	return joinError(req, kerr.UnknownMemberID.Code)
}

func (c *Coordinator) addMember(to uint64, g *group, id string, req *kmsg.JoinGroupRequest, session time.Duration) {
	cg := g.classic
	cg.joinSeq++
	m := &member{id: id, instanceID: req.InstanceID, clientID: c.clientID, clientHost: c.clientHost, joinSeq: cg.joinSeq}
	cg.members[id] = m
	if req.InstanceID != nil {
		cg.instances[*req.InstanceID] = id
	}
	if cg.leader == "" {
		cg.leader = id
	}
	cg.newMemberAdded = true
	c.timers.cancel(timerKey{timerExpire, g.id, ""})
	c.updateMember(to, g, m, req, session)
	if cg.state == statePreparingRebalance {
		c.maybeCompleteJoin(g)
	} else {
		c.prepareRebalance(g)
	}
}

// updateMember records a (re)join and parks its reply until the join phase
// completes. A member that retries JoinGroup before the first completed gets
// the first answered with REBALANCE_IN_PROGRESS so no request is left
// without a reply.
func (c *Coordinator) updateMember(to uint64, g *group, m *member, req *kmsg.JoinGroupRequest, session time.Duration) {
	if m.joinReply != nil {
		c.reply(m.joinReply.to, c.joinErrorFor(m.joinReply.version, m.id, kerr.RebalanceInProgress.Code))
	}
	m.protocols = req.Protocols
	m.session = session
	m.rebalance = rebalanceTimeout(req, session)
	g.classic.protocolType = req.ProtocolType
	m.joinReply = &pendingReply{to: to, version: req.Version}
	c.timers.set(timerKey{timerSession, g.id, m.id}, c.now.Add(m.session))
}

func (c *Coordinator) joinErrorFor(version int16, memberID string, code int16) *kmsg.JoinGroupResponse {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	req.MemberID = memberID
	return joinError(req, code)
}

// replaceStaticMember handles KIP-345: a static member restarted and joins
// without its member ID. It takes over the old member's slot under a new ID;
// the old ID is fenced from then on.
func (c *Coordinator) replaceStaticMember(to uint64, g *group, oldID, newID string, req *kmsg.JoinGroupRequest, session time.Duration) kmsg.Response {
	cg := g.classic
	m := cg.members[oldID]
	if m.joinReply != nil {
		c.reply(m.joinReply.to, c.joinErrorFor(m.joinReply.version, oldID, kerr.FencedInstanceID.Code))
		m.joinReply = nil
	}
	if m.syncReply != nil {
		c.reply(m.syncReply.to, syncErrorFor(m.syncReply.version, kerr.FencedInstanceID.Code))
		m.syncReply = nil
	}
	c.timers.cancel(timerKey{timerSession, g.id, oldID})
	delete(cg.members, oldID)
	m.id = newID
	m.clientID, m.clientHost = c.clientID, c.clientHost
	cg.members[newID] = m
	cg.instances[*req.InstanceID] = newID
	if cg.leader == oldID {
		cg.leader = newID
	}
	if _, ok := cg.pendingSync[oldID]; ok {
		delete(cg.pendingSync, oldID)
		cg.pendingSync[newID] = struct{}{}
	}
	switch cg.state {
	case stateStable:
		// As Kafka does, a restarted static member triggers no rebalance
		// unless it changes the protocol the group would select: its
		// metadata bytes may differ (a fresh client owns no partitions), but
		// the leader keeps the assignment it made. Persist the new member ID
		// so a coordinator restart still fences the old one.
		m.protocols = req.Protocols
		if metadataIn(req.Protocols, cg.protocol) != nil && cg.selectProtocol() == cg.protocol {
			m.session = session
			m.rebalance = rebalanceTimeout(req, session)
			c.timers.set(timerKey{timerSession, g.id, newID}, c.now.Add(session))
			c.storeGroup(g)
			resp := c.joinResponse(g, m, req.Version)
			if newID == cg.leader && req.Version >= 9 {
				// KIP-814: the leader learns the members but must not
				// reassign.
				resp.SkipAssignment = true
				resp.Members = c.joinMembers(g)
			} else {
				resp.Members = nil
			}
			return resp
		}
		c.updateMember(to, g, m, req, session)
		c.prepareRebalance(g)
	case stateCompletingRebalance:
		// The leader may already be assigning to the old ID: rebalance so the
		// assignment names the new one.
		c.updateMember(to, g, m, req, session)
		c.prepareRebalance(g)
	default:
		c.updateMember(to, g, m, req, session)
		c.maybeCompleteJoin(g)
	}
	return nil
}

func metadataIn(ps []kmsg.JoinGroupRequestProtocol, name string) []byte {
	for _, p := range ps {
		if p.Name == name {
			return p.Metadata
		}
	}
	return nil
}

// prepareRebalance starts a join phase: every member must rejoin.
func (c *Coordinator) prepareRebalance(g *group) {
	cg := g.classic
	if cg.state == stateCompletingRebalance {
		c.abortSync(g)
	}
	c.timers.cancel(timerKey{timerSync, g.id, ""})
	clear(cg.pendingSync)
	wasEmpty := cg.state == stateEmpty
	cg.state = statePreparingRebalance
	cg.stateSince = c.now
	maxWait := cg.maxRebalanceTimeout()
	if wasEmpty && c.cfg.InitialRebalanceDelay > 0 {
		cg.initialDelay = true
		cg.newMemberAdded = false
		cg.joinStart = c.now
		c.timers.set(timerKey{timerJoin, g.id, ""}, c.now.Add(min(c.cfg.InitialRebalanceDelay, maxWait)))
		return
	}
	cg.initialDelay = false
	c.timers.set(timerKey{timerJoin, g.id, ""}, c.now.Add(maxWait))
	c.maybeCompleteJoin(g)
}

// abortSync fails the SyncGroups parked in CompletingRebalance: the
// assignment they wait for will never come.
func (c *Coordinator) abortSync(g *group) {
	for _, m := range g.classic.sortedMembers() {
		m.assignment = nil
		if m.syncReply != nil {
			c.reply(m.syncReply.to, syncErrorFor(m.syncReply.version, kerr.RebalanceInProgress.Code))
			m.syncReply = nil
		}
	}
}

func (c *Coordinator) maybeCompleteJoin(g *group) {
	cg := g.classic
	if cg.state != statePreparingRebalance || cg.initialDelay || len(cg.pending) > 0 {
		return
	}
	for _, m := range cg.members {
		if m.joinReply == nil {
			return
		}
	}
	c.completeJoin(g)
}

func (c *Coordinator) onJoinDeadline(g *group) {
	cg := g.classic
	if cg == nil || cg.state != statePreparingRebalance {
		return
	}
	if cg.initialDelay {
		limit := cg.joinStart.Add(cg.maxRebalanceTimeout())
		if cg.newMemberAdded && c.now.Before(limit) {
			cg.newMemberAdded = false
			c.timers.set(timerKey{timerJoin, g.id, ""}, minTime(c.now.Add(c.cfg.InitialRebalanceDelay), limit))
			return
		}
		cg.initialDelay = false
	}
	c.completeJoin(g)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// completeJoin ends the join phase: members that did not rejoin are
// removed (static members stay, as in Kafka: their session decides), the
// generation advances and every joined member gets its JoinGroup answer.
func (c *Coordinator) completeJoin(g *group) {
	cg := g.classic
	c.timers.cancel(timerKey{timerJoin, g.id, ""})
	cg.initialDelay = false
	for _, m := range cg.sortedMembers() {
		if m.joinReply == nil && m.instanceID == nil {
			c.dropMember(g, m)
		}
	}
	cg.generation++
	cg.stateSince = c.now
	if len(cg.members) == 0 {
		cg.state = stateEmpty
		cg.protocol = ""
		cg.leader = ""
		cg.subscribed = nil
		c.storeGroup(g)
		c.scheduleExpiry(g)
		return
	}
	cg.state = stateCompletingRebalance
	cg.protocol = cg.selectProtocol()
	if _, ok := cg.members[cg.leader]; !ok || cg.members[cg.leader].joinReply == nil {
		cg.leader = ""
		for _, m := range cg.sortedMembers() {
			if m.joinReply != nil {
				cg.leader = m.id
				break
			}
		}
	}
	cg.subscribed = consumerSubscriptions(cg)
	for _, m := range cg.sortedMembers() {
		cg.pendingSync[m.id] = struct{}{}
		if m.joinReply == nil {
			continue
		}
		c.reply(m.joinReply.to, c.joinResponse(g, m, m.joinReply.version))
		m.joinReply = nil
		c.timers.set(timerKey{timerSession, g.id, m.id}, c.now.Add(m.session))
	}
	c.timers.set(timerKey{timerSync, g.id, ""}, c.now.Add(cg.maxRebalanceTimeout()))
}

// consumerSubscriptions decodes the subscribed topics of "consumer"
// protocol members, which OffsetDelete protects.
func consumerSubscriptions(cg *classicGroup) map[string]struct{} {
	if cg.protocolType != "consumer" {
		return nil
	}
	topics := make(map[string]struct{})
	for _, m := range cg.members {
		var meta kmsg.ConsumerMemberMetadata
		if err := meta.ReadFrom(m.metadataFor(cg.protocol)); err != nil {
			continue
		}
		for _, t := range meta.Topics {
			topics[t] = struct{}{}
		}
	}
	return topics
}

// joinResponse is the successful JoinGroup answer of the current generation.
func (c *Coordinator) joinResponse(g *group, m *member, version int16) *kmsg.JoinGroupResponse {
	cg := g.classic
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version = version
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	resp.Generation = cg.generation
	resp.ProtocolType = strp(cg.protocolType)
	resp.Protocol = strp(cg.protocol)
	resp.LeaderID = cg.leader
	resp.MemberID = m.id
	if m.id == cg.leader {
		resp.Members = c.joinMembers(g)
	}
	return resp
}

func (c *Coordinator) joinMembers(g *group) []kmsg.JoinGroupResponseMember {
	cg := g.classic
	ms := cg.sortedMembers()
	out := make([]kmsg.JoinGroupResponseMember, 0, len(ms))
	for _, o := range ms {
		jm := kmsg.NewJoinGroupResponseMember()
		jm.MemberID = o.id
		jm.InstanceID = o.instanceID
		jm.ProtocolMetadata = o.metadataFor(cg.protocol)
		out = append(out, jm)
	}
	return out
}

func syncErrorFor(version int16, code int16) *kmsg.SyncGroupResponse {
	req := kmsg.NewPtrSyncGroupRequest()
	req.Version = version
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	resp.ErrorCode = code
	return resp
}

func (c *Coordinator) syncGroup(to uint64, req *kmsg.SyncGroupRequest) kmsg.Response {
	g := c.groups[req.Group]
	if req.Group == "" {
		return syncErrorFor(req.Version, kerr.InvalidGroupID.Code)
	}
	if g == nil || g.classic == nil {
		return syncErrorFor(req.Version, kerr.UnknownMemberID.Code)
	}
	cg := g.classic
	if code := cg.checkInstance(req.InstanceID, req.MemberID); code != 0 {
		return syncErrorFor(req.Version, code)
	}
	m := cg.members[req.MemberID]
	if m == nil {
		return syncErrorFor(req.Version, kerr.UnknownMemberID.Code)
	}
	if req.Generation != cg.generation {
		return syncErrorFor(req.Version, kerr.IllegalGeneration.Code)
	}
	if (req.ProtocolType != nil && *req.ProtocolType != cg.protocolType) || (req.Protocol != nil && *req.Protocol != cg.protocol) {
		return syncErrorFor(req.Version, kerr.InconsistentGroupProtocol.Code)
	}
	switch cg.state {
	case statePreparingRebalance:
		return syncErrorFor(req.Version, kerr.RebalanceInProgress.Code)
	case stateCompletingRebalance:
		if m.syncReply != nil {
			c.reply(m.syncReply.to, syncErrorFor(m.syncReply.version, kerr.RebalanceInProgress.Code))
		}
		m.syncReply = &pendingReply{to: to, version: req.Version}
		c.synced(g, m)
		if m.id == cg.leader {
			c.applyAssignment(g, req.GroupAssignment)
		}
		return nil
	case stateStable:
		c.synced(g, m)
		return c.syncResponse(g, m, req.Version)
	}
	return syncErrorFor(req.Version, kerr.UnknownMemberID.Code)
}

func (c *Coordinator) synced(g *group, m *member) {
	cg := g.classic
	delete(cg.pendingSync, m.id)
	if len(cg.pendingSync) == 0 {
		c.timers.cancel(timerKey{timerSync, g.id, ""})
	}
	c.timers.set(timerKey{timerSession, g.id, m.id}, c.now.Add(m.session))
}

// applyAssignment takes the leader's assignment: the group becomes Stable,
// its metadata is persisted, and parked SyncGroups are answered (after the
// broker appended the record, per the Output contract).
func (c *Coordinator) applyAssignment(g *group, assignments []kmsg.SyncGroupRequestGroupAssignment) {
	cg := g.classic
	for _, m := range cg.members {
		m.assignment = []byte{}
	}
	for _, a := range assignments {
		if m := cg.members[a.MemberID]; m != nil {
			m.assignment = a.MemberAssignment
		}
	}
	cg.state = stateStable
	cg.stateSince = c.now
	c.storeGroup(g)
	for _, m := range cg.sortedMembers() {
		if m.syncReply != nil {
			c.reply(m.syncReply.to, c.syncResponse(g, m, m.syncReply.version))
			m.syncReply = nil
		}
	}
}

func (c *Coordinator) syncResponse(g *group, m *member, version int16) *kmsg.SyncGroupResponse {
	resp := syncErrorFor(version, 0)
	resp.ProtocolType = strp(g.classic.protocolType)
	resp.Protocol = strp(g.classic.protocol)
	resp.MemberAssignment = m.assignment
	if resp.MemberAssignment == nil {
		resp.MemberAssignment = []byte{}
	}
	return resp
}

// onSyncDeadline removes members that got their JoinGroup answer but never
// sent SyncGroup within the rebalance timeout, and rebalances without them.
func (c *Coordinator) onSyncDeadline(g *group) {
	cg := g.classic
	if cg == nil || (cg.state != stateCompletingRebalance && cg.state != stateStable) || len(cg.pendingSync) == 0 {
		return
	}
	for _, m := range cg.sortedMembers() {
		if _, ok := cg.pendingSync[m.id]; ok {
			c.dropMember(g, m)
		}
	}
	c.prepareRebalance(g)
}

// checkInstance fences a static member whose instance ID is now registered
// under another member ID.
func (cg *classicGroup) checkInstance(instanceID *string, memberID string) int16 {
	if instanceID == nil {
		return 0
	}
	if reg, ok := cg.instances[*instanceID]; ok && reg != memberID {
		return kerr.FencedInstanceID.Code
	}
	return 0
}

func (c *Coordinator) heartbeat(req *kmsg.HeartbeatRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	resp.ErrorCode = c.heartbeatCode(req)
	return resp
}

func (c *Coordinator) heartbeatCode(req *kmsg.HeartbeatRequest) int16 {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code
	}
	g := c.groups[req.Group]
	if g == nil || g.classic == nil {
		return kerr.UnknownMemberID.Code
	}
	cg := g.classic
	if code := cg.checkInstance(req.InstanceID, req.MemberID); code != 0 {
		return code
	}
	m := cg.members[req.MemberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	if req.Generation != cg.generation {
		return kerr.IllegalGeneration.Code
	}
	c.timers.set(timerKey{timerSession, g.id, m.id}, c.now.Add(m.session))
	if cg.state == statePreparingRebalance {
		return kerr.RebalanceInProgress.Code
	}
	return 0
}

func (c *Coordinator) leaveGroup(req *kmsg.LeaveGroupRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if req.Group == "" {
		resp.ErrorCode = kerr.InvalidGroupID.Code
		return resp
	}
	if req.Version < 3 {
		resp.ErrorCode = c.leaveOne(req.Group, req.MemberID, nil)
		return resp
	}
	for _, lm := range req.Members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID = lm.MemberID
		rm.InstanceID = lm.InstanceID
		rm.ErrorCode = c.leaveOne(req.Group, lm.MemberID, lm.InstanceID)
		resp.Members = append(resp.Members, rm)
	}
	return resp
}

func (c *Coordinator) leaveOne(groupID, memberID string, instanceID *string) int16 {
	g := c.groups[groupID]
	if g == nil || g.classic == nil {
		return kerr.UnknownMemberID.Code
	}
	cg := g.classic
	if instanceID != nil {
		reg, ok := cg.instances[*instanceID]
		if !ok {
			return kerr.UnknownMemberID.Code
		}
		if memberID != "" && memberID != reg {
			return kerr.FencedInstanceID.Code
		}
		memberID = reg
	} else if _, ok := cg.pending[memberID]; ok {
		delete(cg.pending, memberID)
		c.timers.cancel(timerKey{timerPending, g.id, memberID})
		c.maybeCompleteJoin(g)
		return 0
	}
	m := cg.members[memberID]
	if m == nil {
		return kerr.UnknownMemberID.Code
	}
	c.removeMember(g, m)
	return 0
}

func (c *Coordinator) onSessionExpired(g *group, id string) {
	cg := g.classic
	if cg == nil {
		return
	}
	m := cg.members[id]
	if m == nil {
		return
	}
	if m.joinReply != nil || m.syncReply != nil {
		// A member parked in JoinGroup or SyncGroup cannot heartbeat; the
		// join and sync timers bound its wait instead.
		c.timers.set(timerKey{timerSession, g.id, id}, c.now.Add(m.session))
		return
	}
	c.removeMember(g, m)
}

// removeMember takes a member out (leave or expiry) and rebalances the
// others.
func (c *Coordinator) removeMember(g *group, m *member) {
	cg := g.classic
	c.dropMember(g, m)
	switch cg.state {
	case stateStable, stateCompletingRebalance:
		c.prepareRebalance(g)
	case statePreparingRebalance:
		c.maybeCompleteJoin(g)
	}
}

// dropMember forgets a member and fails its parked requests.
func (c *Coordinator) dropMember(g *group, m *member) {
	cg := g.classic
	if m.joinReply != nil {
		c.reply(m.joinReply.to, c.joinErrorFor(m.joinReply.version, m.id, kerr.UnknownMemberID.Code))
		m.joinReply = nil
	}
	if m.syncReply != nil {
		c.reply(m.syncReply.to, syncErrorFor(m.syncReply.version, kerr.UnknownMemberID.Code))
		m.syncReply = nil
	}
	delete(cg.members, m.id)
	delete(cg.pendingSync, m.id)
	if m.instanceID != nil && cg.instances[*m.instanceID] == m.id {
		delete(cg.instances, *m.instanceID)
	}
	if cg.leader == m.id {
		cg.leader = ""
	}
	c.timers.cancel(timerKey{timerSession, g.id, m.id})
}
