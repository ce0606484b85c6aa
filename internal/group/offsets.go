package group

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// offsetCommit serves OffsetCommit v0-9 (v10 topic IDs are resolved through
// the topic view). The commit is applied to memory at once and its records
// are in the same Output as the reply, which the broker sends only after
// appending them.
func (c *Coordinator) offsetCommit(req *kmsg.OffsetCommitRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	code, g := c.validateCommit(req)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetCommitResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		known := true
		if req.Version >= 10 {
			name, known = c.topicName(rt.TopicID)
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetCommitResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.ErrorCode = code
			if code == 0 {
				sp.ErrorCode = c.commitOne(g, name, known, rp)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if code == 0 && g.numMembers() == 0 {
		c.scheduleExpiry(g)
	}
	return resp
}

func (c *Coordinator) topicName(id [16]byte) (string, bool) {
	if c.topics == nil {
		return "", false
	}
	name, _, ok := c.topics.TopicByID(id)
	return name, ok
}

// validateCommit applies Kafka's commit rules; it returns the error for
// every partition, or the group (created for a standalone consumer's first
// commit).
func (c *Coordinator) validateCommit(req *kmsg.OffsetCommitRequest) (int16, *group) {
	if req.Group == "" {
		return kerr.InvalidGroupID.Code, nil
	}
	if req.Version == 0 {
		// v0 carries neither generation nor member: a simple commit.
		req.Generation, req.MemberID, req.InstanceID = -1, "", nil
	}
	g := c.groups[req.Group]
	if g == nil {
		if req.Generation >= 0 {
			// A generation for a group we do not know: it is from an older
			// coordinator generation or another coordinator.
			return kerr.IllegalGeneration.Code, nil
		}
		g = newGroup(req.Group)
		g.classic.stateSince = c.now
		c.groups[req.Group] = g
		return 0, g
	}
	if g.consumer != nil {
		return c.validateConsumerCommit(g, req), g
	}
	cg := g.classic
	if code := cg.checkInstance(req.InstanceID, req.MemberID); code != 0 {
		return code, nil
	}
	if req.Generation < 0 && cg.state == stateEmpty {
		return 0, g // simple (admin / standalone) commit
	}
	if cg.state == stateCompletingRebalance {
		return kerr.RebalanceInProgress.Code, nil
	}
	if _, ok := cg.members[req.MemberID]; !ok {
		return kerr.UnknownMemberID.Code, nil
	}
	if req.Generation != cg.generation {
		return kerr.IllegalGeneration.Code, nil
	}
	return 0, g
}

func (c *Coordinator) commitOne(g *group, topic string, known bool, rp kmsg.OffsetCommitRequestTopicPartition) int16 {
	if rp.Metadata != nil && len(*rp.Metadata) > c.cfg.OffsetMetadataMaxBytes {
		return kerr.OffsetMetadataTooLarge.Code
	}
	if c.topics != nil {
		if !known {
			return kerr.UnknownTopicOrPartition.Code
		}
		_, parts, ok := c.topics.Topic(topic)
		if !ok || rp.Partition < 0 || rp.Partition >= parts {
			return kerr.UnknownTopicOrPartition.Code
		}
	} else if !known {
		return kerr.UnknownTopicOrPartition.Code
	}
	e := &offsetEntry{offset: rp.Offset, leaderEpoch: rp.LeaderEpoch, metadata: deref(rp.Metadata), commitTime: c.now}
	c.putOffset(g, topic, rp.Partition, e)
	key, value := offsetRecord(g.id, topic, rp.Partition, e)
	c.record(key, value)
	return 0
}

func (c *Coordinator) putOffset(g *group, topic string, partition int32, e *offsetEntry) {
	parts := g.offsets[topic]
	if parts == nil {
		parts = make(map[int32]*offsetEntry)
		g.offsets[topic] = parts
	}
	parts[partition] = e
}

// offsetFetch serves OffsetFetch v0-9. For v8+ every group of the request
// must belong to this partition (the broker splits requests by partition and
// merges the Groups of the replies).
func (c *Coordinator) offsetFetch(req *kmsg.OffsetFetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, rg := range req.Groups {
			sg := kmsg.NewOffsetFetchResponseGroup()
			sg.Group = rg.Group
			var topics map[string][]int32
			var order []string
			if rg.Topics != nil {
				topics = make(map[string][]int32, len(rg.Topics))
				for _, t := range rg.Topics {
					name := t.Topic
					if req.Version >= 10 {
						name, _ = c.topicName(t.TopicID)
					}
					if _, ok := topics[name]; !ok {
						order = append(order, name)
					}
					topics[name] = append(topics[name], t.Partitions...)
				}
			}
			code, res := c.fetchGroup(rg.Group, order, topics, rg.MemberID, rg.MemberEpoch)
			sg.ErrorCode = code
			for _, t := range res {
				st := kmsg.NewOffsetFetchResponseGroupTopic()
				st.Topic = t.topic
				if req.Version >= 10 && c.topics != nil {
					st.TopicID, _, _ = c.topics.Topic(t.topic)
				}
				for _, p := range t.parts {
					sp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
					sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode = p.partition, p.offset, p.leaderEpoch, strp(p.metadata), p.code
					st.Partitions = append(st.Partitions, sp)
				}
				sg.Topics = append(sg.Topics, st)
			}
			resp.Groups = append(resp.Groups, sg)
		}
		return resp
	}
	var topics map[string][]int32
	var order []string
	if req.Topics != nil || req.Version < 2 {
		topics = make(map[string][]int32, len(req.Topics))
		for _, t := range req.Topics {
			if _, ok := topics[t.Topic]; !ok {
				order = append(order, t.Topic)
			}
			topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
		}
	}
	code, res := c.fetchGroup(req.Group, order, topics, nil, -1)
	if req.Version >= 2 {
		resp.ErrorCode = code
	}
	for _, t := range res {
		st := kmsg.NewOffsetFetchResponseTopic()
		st.Topic = t.topic
		for _, p := range t.parts {
			sp := kmsg.NewOffsetFetchResponseTopicPartition()
			sp.Partition, sp.Offset, sp.LeaderEpoch, sp.Metadata, sp.ErrorCode = p.partition, p.offset, p.leaderEpoch, strp(p.metadata), p.code
			if req.Version < 2 && code != 0 {
				sp.ErrorCode = code
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

type fetchedTopic struct {
	topic string
	parts []fetchedPartition
}

type fetchedPartition struct {
	partition   int32
	offset      int64
	leaderEpoch int32
	metadata    string
	code        int16
}

// fetchGroup looks up committed offsets: all of them when topics is nil,
// else the requested partitions with -1 for those without a commit.
// memberID/memberEpoch (v9) are checked for KIP-848 groups only, as Kafka
// does.
func (c *Coordinator) fetchGroup(groupID string, order []string, topics map[string][]int32, memberID *string, memberEpoch int32) (int16, []fetchedTopic) {
	if groupID == "" {
		return kerr.InvalidGroupID.Code, nil
	}
	g := c.groups[groupID]
	if g != nil && g.consumer != nil && memberID != nil {
		if code := c.validateConsumerFetch(g, *memberID, memberEpoch); code != 0 {
			return code, nil
		}
	}
	var out []fetchedTopic
	if topics == nil {
		if g == nil {
			return 0, nil
		}
		for _, t := range sortedKeys(g.offsets) {
			ft := fetchedTopic{topic: t}
			for _, p := range sortedKeys(g.offsets[t]) {
				e := g.offsets[t][p]
				ft.parts = append(ft.parts, fetchedPartition{partition: p, offset: e.offset, leaderEpoch: e.leaderEpoch, metadata: e.metadata})
			}
			out = append(out, ft)
		}
		return 0, out
	}
	for _, t := range order {
		ft := fetchedTopic{topic: t}
		for _, p := range topics[t] {
			fp := fetchedPartition{partition: p, offset: -1, leaderEpoch: -1}
			if g != nil {
				if e := g.offsets[t][p]; e != nil {
					fp.offset, fp.leaderEpoch, fp.metadata = e.offset, e.leaderEpoch, e.metadata
				}
			}
			ft.parts = append(ft.parts, fp)
		}
		out = append(out, ft)
	}
	return 0, out
}

func sortedKeys[K int32 | string, V any](m map[K]V) []K {
	ks := make([]K, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// scheduleExpiry arms the retention timer of a group without members. The
// timer may fire early: expireOffsets recomputes the exact next deadline.
func (c *Coordinator) scheduleExpiry(g *group) {
	if g.numMembers() > 0 {
		c.timers.cancel(timerKey{timerExpire, g.id, ""})
		return
	}
	at := g.emptySince().Add(c.cfg.OffsetsRetention)
	if cur, ok := c.timers.has(timerKey{timerExpire, g.id, ""}); ok && !cur.After(at) {
		return
	}
	c.timers.set(timerKey{timerExpire, g.id, ""}, at)
}

// expireOffsets implements offsets.retention.minutes: an offset of a group
// without members expires retention after the later of its commit and the
// group becoming empty (Kafka uses the latter alone for consumer groups; the
// later of the two also keeps an offset reset while the group was empty).
// A group left with neither members nor offsets is deleted.
func (c *Coordinator) expireOffsets(g *group) {
	if g.numMembers() > 0 || (g.classic != nil && g.classic.state != stateEmpty) {
		return
	}
	base := g.emptySince()
	var next time.Time
	for _, t := range sortedKeys(g.offsets) {
		parts := g.offsets[t]
		for _, p := range sortedKeys(parts) {
			e := parts[p]
			at := e.commitTime
			if base.After(at) {
				at = base
			}
			at = at.Add(c.cfg.OffsetsRetention)
			if !at.After(c.now) {
				delete(parts, p)
				c.record(offsetKey(g.id, t, p), nil)
				continue
			}
			if next.IsZero() || at.Before(next) {
				next = at
			}
		}
		if len(parts) == 0 {
			delete(g.offsets, t)
		}
	}
	if len(g.offsets) > 0 {
		c.timers.set(timerKey{timerExpire, g.id, ""}, next)
		return
	}
	if c.now.Before(base.Add(c.cfg.OffsetsRetention)) {
		c.timers.set(timerKey{timerExpire, g.id, ""}, base.Add(c.cfg.OffsetsRetention))
		return
	}
	c.deleteGroup(g)
}

// deleteGroup removes a group without members, writing tombstones for its
// offsets and its group record.
func (c *Coordinator) deleteGroup(g *group) {
	for _, t := range sortedKeys(g.offsets) {
		for _, p := range sortedKeys(g.offsets[t]) {
			c.record(offsetKey(g.id, t, p), nil)
		}
	}
	if g.stored {
		c.record(groupKeyFor(g), nil)
	}
	c.timers.cancel(timerKey{timerExpire, g.id, ""})
	if g.classic != nil {
		for id := range g.classic.pending {
			c.timers.cancel(timerKey{timerPending, g.id, id})
		}
		c.timers.cancel(timerKey{timerJoin, g.id, ""})
		c.timers.cancel(timerKey{timerSync, g.id, ""})
	}
	delete(c.groups, g.id)
}
