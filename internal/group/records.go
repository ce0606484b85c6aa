package group

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Key versions of __consumer_offsets records (the first int16 of the key).
const (
	keyOffsetCommitV0  = 0 // offset commit, written by Kafka before 0.10.1
	keyOffsetCommit    = 1 // offset commit (what we write)
	keyGroupMetadata   = 2 // classic group metadata
	keyConsumerGroupV3 = 3 // KIP-848 group metadata (Kafka's ConsumerGroupMetadataKey)
)

// Value versions we write.
const (
	offsetValueVersion        = 3
	groupValueVersion         = 3
	consumerGroupValueVersion = 0
)

var errCorrupt = errors.New("corrupt record")

func offsetKey(groupID, topic string, partition int32) []byte {
	k := kmsg.OffsetCommitKey{Version: keyOffsetCommit, Group: groupID, Topic: topic, Partition: partition}
	return k.AppendTo(nil)
}

func offsetRecord(groupID, topic string, partition int32, e *offsetEntry) (key, value []byte) {
	v := kmsg.NewOffsetCommitValue()
	v.Version = offsetValueVersion
	v.Offset = e.offset
	v.LeaderEpoch = e.leaderEpoch
	v.Metadata = e.metadata
	v.CommitTimestamp = e.commitTime.UnixMilli()
	return offsetKey(groupID, topic, partition), v.AppendTo(nil)
}

func groupKeyFor(g *group) []byte {
	if g.consumer != nil {
		return consumerGroupKey(g.id)
	}
	k := kmsg.GroupMetadataKey{Version: keyGroupMetadata, Group: g.id}
	return k.AppendTo(nil)
}

// consumerGroupKey is Kafka's ConsumerGroupMetadataKey: int16 3, string group.
func consumerGroupKey(groupID string) []byte {
	k := kmsg.GroupMetadataKey{Version: keyConsumerGroupV3, Group: groupID}
	return k.AppendTo(nil)
}

// consumerGroupValue is our KIP-848 group record: int16 version (0), int32
// group epoch. The epoch is all that must survive a restart: members rejoin
// (their old epochs are fenced) and new epochs continue above the old ones,
// so a commit carrying a pre-restart epoch can never be accepted.
func consumerGroupValue(epoch int32) []byte {
	b := binary.BigEndian.AppendUint16(nil, consumerGroupValueVersion)
	return binary.BigEndian.AppendUint32(b, uint32(epoch))
}

// storeGroup writes the classic group's metadata record (key version 2,
// value version 3), as Kafka does after each assignment and when a group
// becomes empty.
func (c *Coordinator) storeGroup(g *group) {
	cg := g.classic
	v := kmsg.NewGroupMetadataValue()
	v.Version = groupValueVersion
	v.ProtocolType = cg.protocolType
	v.Generation = cg.generation
	if cg.protocol != "" {
		v.Protocol = strp(cg.protocol)
	}
	if cg.leader != "" {
		v.Leader = strp(cg.leader)
	}
	v.CurrentStateTimestamp = cg.stateSince.UnixMilli()
	for _, m := range cg.sortedMembers() {
		vm := kmsg.NewGroupMetadataValueMember()
		vm.MemberID = m.id
		vm.InstanceID = m.instanceID
		vm.ClientID = m.clientID
		vm.ClientHost = m.clientHost
		vm.RebalanceTimeoutMillis = ms(m.rebalance)
		vm.SessionTimeoutMillis = ms(m.session)
		vm.Subscription = m.metadataFor(cg.protocol)
		if vm.Subscription == nil {
			vm.Subscription = []byte{}
		}
		vm.Assignment = m.assignment
		if vm.Assignment == nil {
			vm.Assignment = []byte{}
		}
		v.Members = append(v.Members, vm)
	}
	g.stored = true
	c.record(groupKeyFor(g), v.AppendTo(nil))
}

// Load replays one record of the partition, in log order, before Loaded. A
// nil value is a tombstone. A record it cannot decode returns an error and
// changes nothing; the caller logs and skips it.
func (c *Coordinator) Load(key, value []byte) error {
	if c.loaded {
		return errors.New("group: Load after Loaded")
	}
	if len(key) < 2 {
		return fmt.Errorf("group: load: key of %d bytes: %w", len(key), errCorrupt)
	}
	switch version := int16(binary.BigEndian.Uint16(key)); version {
	case keyOffsetCommitV0, keyOffsetCommit:
		return c.loadOffset(key, value)
	case keyGroupMetadata:
		return c.loadGroup(key, value)
	case keyConsumerGroupV3:
		return c.loadConsumerGroup(key, value)
	default:
		// Kafka's other KIP-848 and share-group records (versions 4+) carry
		// state we rebuild from heartbeats; skipping them is safe.
		return fmt.Errorf("group: load: unsupported key version %d", version)
	}
}

func (c *Coordinator) loadGroupEntry(id string) *group {
	g := c.groups[id]
	if g == nil {
		g = newGroup(id)
		c.groups[id] = g
	}
	return g
}

func (c *Coordinator) loadOffset(key, value []byte) error {
	var k kmsg.OffsetCommitKey
	if err := k.ReadFrom(key); err != nil {
		return fmt.Errorf("group: load offset key: %w", err)
	}
	if value == nil {
		if g := c.groups[k.Group]; g != nil {
			if parts := g.offsets[k.Topic]; parts != nil {
				delete(parts, k.Partition)
				if len(parts) == 0 {
					delete(g.offsets, k.Topic)
				}
			}
			c.dropIfVacant(g)
		}
		return nil
	}
	var v kmsg.OffsetCommitValue
	if err := v.ReadFrom(value); err != nil {
		return fmt.Errorf("group: load offset %s/%s/%d: %w", k.Group, k.Topic, k.Partition, err)
	}
	if v.Version < 0 || v.Version > 4 {
		return fmt.Errorf("group: load offset %s/%s/%d: value version %d: %w", k.Group, k.Topic, k.Partition, v.Version, errCorrupt)
	}
	if v.Version < 3 {
		v.LeaderEpoch = -1
	}
	g := c.loadGroupEntry(k.Group)
	c.putOffset(g, k.Topic, k.Partition, &offsetEntry{offset: v.Offset, leaderEpoch: v.LeaderEpoch, metadata: v.Metadata, commitTime: time.UnixMilli(v.CommitTimestamp)})
	return nil
}

// dropIfVacant forgets a group that a tombstone left with nothing: no
// offsets, no members, no group record.
func (c *Coordinator) dropIfVacant(g *group) {
	if len(g.offsets) > 0 || g.stored || g.numMembers() > 0 {
		return
	}
	if g.classic != nil && (g.classic.state != stateEmpty || len(g.classic.pending) > 0) {
		return
	}
	c.timers.cancel(timerKey{timerExpire, g.id, ""})
	delete(c.groups, g.id)
}

func (c *Coordinator) loadGroup(key, value []byte) error {
	var k kmsg.GroupMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return fmt.Errorf("group: load group key: %w", err)
	}
	if value == nil {
		if g := c.groups[k.Group]; g != nil && g.classic != nil {
			g.classic = newClassicGroup()
			g.stored = false
			c.dropIfVacant(g)
		}
		return nil
	}
	var v kmsg.GroupMetadataValue
	if err := v.ReadFrom(value); err != nil {
		return fmt.Errorf("group: load group %s: %w", k.Group, err)
	}
	if v.Version < 0 || v.Version > 4 {
		return fmt.Errorf("group: load group %s: value version %d: %w", k.Group, v.Version, errCorrupt)
	}
	cg := newClassicGroup()
	cg.protocolType = v.ProtocolType
	cg.generation = v.Generation
	cg.protocol = deref(v.Protocol)
	cg.leader = deref(v.Leader)
	if v.CurrentStateTimestamp > 0 {
		cg.stateSince = time.UnixMilli(v.CurrentStateTimestamp)
	}
	for _, vm := range v.Members {
		if vm.MemberID == "" {
			return fmt.Errorf("group: load group %s: member without ID: %w", k.Group, errCorrupt)
		}
		cg.joinSeq++
		m := &member{
			id: vm.MemberID, instanceID: vm.InstanceID, clientID: vm.ClientID, clientHost: vm.ClientHost,
			session: msDur(vm.SessionTimeoutMillis), rebalance: msDur(vm.RebalanceTimeoutMillis),
			assignment: vm.Assignment, joinSeq: cg.joinSeq,
		}
		if m.session <= 0 {
			m.session = c.cfg.GroupMinSessionTimeout
		}
		if m.rebalance <= 0 {
			m.rebalance = m.session
		}
		if cg.protocol != "" {
			m.protocols = []kmsg.JoinGroupRequestProtocol{{Name: cg.protocol, Metadata: vm.Subscription}}
		}
		cg.members[m.id] = m
		if m.instanceID != nil {
			cg.instances[*m.instanceID] = m.id
		}
	}
	if len(cg.members) > 0 {
		cg.state = stateStable
		if _, ok := cg.members[cg.leader]; !ok {
			cg.leader = cg.sortedMembers()[0].id
		}
		cg.subscribed = consumerSubscriptions(cg)
	}
	g := c.loadGroupEntry(k.Group)
	g.classic, g.consumer, g.stored = cg, nil, true
	return nil
}

func (c *Coordinator) loadConsumerGroup(key, value []byte) error {
	var k kmsg.GroupMetadataKey
	if err := k.ReadFrom(key); err != nil {
		return fmt.Errorf("group: load consumer group key: %w", err)
	}
	if value == nil {
		if g := c.groups[k.Group]; g != nil && g.consumer != nil {
			g.consumer, g.classic, g.stored = nil, newClassicGroup(), false
			c.dropIfVacant(g)
		}
		return nil
	}
	if len(value) != 6 || binary.BigEndian.Uint16(value) != consumerGroupValueVersion {
		return fmt.Errorf("group: load consumer group %s: value of %d bytes: %w", k.Group, len(value), errCorrupt)
	}
	epoch := int32(binary.BigEndian.Uint32(value[2:]))
	if epoch < 0 {
		return fmt.Errorf("group: load consumer group %s: epoch %d: %w", k.Group, epoch, errCorrupt)
	}
	g := c.loadGroupEntry(k.Group)
	g.classic, g.consumer, g.stored = nil, newConsumerGroup(), true
	g.consumer.epoch, g.consumer.assignmentEpoch = epoch, epoch
	return nil
}

// Loaded ends loading: from now on requests are served. Loaded members get
// a fresh session (they may have lost the old coordinator), empty groups
// their retention timers.
func (c *Coordinator) Loaded(now time.Time) {
	c.loaded = true
	if now.After(c.now) {
		c.now = now
	}
	for _, id := range c.Groups() {
		g := c.groups[id]
		if g.classic != nil {
			cg := g.classic
			if cg.stateSince.IsZero() {
				cg.stateSince = c.now
			}
			for _, m := range cg.members {
				c.timers.set(timerKey{timerSession, g.id, m.id}, c.now.Add(m.session))
			}
		} else if g.consumer.stateSince.IsZero() {
			g.consumer.stateSince = c.now
		}
		if g.numMembers() == 0 {
			c.scheduleExpiry(g)
		}
	}
}
