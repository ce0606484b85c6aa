package group

import (
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// state is a classic group's state, named as Kafka names it on the wire
// (DescribeGroups, ListGroups).
type state uint8

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s state) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	}
	return "Dead"
}

// group is one group ID of this partition: its committed offsets and either
// a classic group or a KIP-848 consumer group (exactly one is non-nil).
type group struct {
	id       string
	classic  *classicGroup
	consumer *consumerGroup
	offsets  map[string]map[int32]*offsetEntry
	// stored is true when the log holds a group record for this group, so
	// deleting it must write a tombstone.
	stored bool
}

type offsetEntry struct {
	offset      int64
	leaderEpoch int32
	metadata    string
	commitTime  time.Time
}

func newGroup(id string) *group {
	return &group{id: id, classic: newClassicGroup(), offsets: make(map[string]map[int32]*offsetEntry)}
}

func (g *group) hasMemberID(id string) bool {
	if g.classic != nil {
		if _, ok := g.classic.members[id]; ok {
			return true
		}
		if _, ok := g.classic.pending[id]; ok {
			return true
		}
	}
	if g.consumer != nil {
		if _, ok := g.consumer.members[id]; ok {
			return true
		}
	}
	return false
}

// numMembers counts live members of either protocol.
func (g *group) numMembers() int {
	if g.classic != nil {
		return len(g.classic.members)
	}
	return len(g.consumer.members)
}

// emptySince is when the group last became empty (zero if it has members):
// the start of offsets retention.
func (g *group) emptySince() time.Time {
	if g.numMembers() > 0 {
		return time.Time{}
	}
	if g.classic != nil {
		return g.classic.stateSince
	}
	return g.consumer.stateSince
}

// classicGroup is a group of the JoinGroup/SyncGroup protocol.
type classicGroup struct {
	state      state
	stateSince time.Time
	// protocolType is the members' protocol type ("consumer", "connect"…);
	// protocol is the chosen protocol of this generation ("" when none).
	protocolType string
	protocol     string
	generation   int32
	leader       string
	members      map[string]*member
	// pending holds KIP-394 member IDs handed out with MEMBER_ID_REQUIRED
	// and not yet used to join.
	pending map[string]struct{}
	// instances maps a static member's group.instance.id to its member ID.
	instances map[string]string
	// pendingSync are members of this generation that have not yet sent
	// SyncGroup; they are removed when the sync timer fires.
	pendingSync map[string]struct{}
	// initialDelay is set while the first rebalance of an empty group waits
	// group.initial.rebalance.delay.ms; newMemberAdded extends the wait.
	initialDelay   bool
	newMemberAdded bool
	joinStart      time.Time
	// subscribed are the topics the members' consumer protocol metadata
	// subscribes to (nil unless protocolType is "consumer"), for OffsetDelete.
	subscribed map[string]struct{}
	joinSeq    uint64
}

func newClassicGroup() *classicGroup {
	return &classicGroup{
		members:     make(map[string]*member),
		pending:     make(map[string]struct{}),
		instances:   make(map[string]string),
		pendingSync: make(map[string]struct{}),
	}
}

type member struct {
	id         string
	instanceID *string
	clientID   string
	clientHost string
	session    time.Duration
	rebalance  time.Duration
	protocols  []kmsg.JoinGroupRequestProtocol
	assignment []byte
	// joinSeq orders members by their first join: the earliest joined
	// member becomes leader when the leader is gone, as in Kafka.
	joinSeq   uint64
	joinReply *pendingReply
	syncReply *pendingReply
}

// pendingReply is a request answered when the rebalance progresses.
type pendingReply struct {
	to      uint64
	version int16
}

// sortedMembers returns the members in join order, so every output that
// lists members is deterministic.
func (cg *classicGroup) sortedMembers() []*member {
	ms := make([]*member, 0, len(cg.members))
	for _, m := range cg.members {
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *member) int {
		if a.joinSeq != b.joinSeq {
			if a.joinSeq < b.joinSeq {
				return -1
			}
			return 1
		}
		if a.id < b.id {
			return -1
		}
		if a.id > b.id {
			return 1
		}
		return 0
	})
	return ms
}

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

// sameProtocols reports whether a rejoin changes nothing the leader would
// assign on.
func sameProtocols(a, b []kmsg.JoinGroupRequestProtocol) bool {
	return slices.EqualFunc(a, b, func(x, y kmsg.JoinGroupRequestProtocol) bool {
		return x.Name == y.Name && string(x.Metadata) == string(y.Metadata)
	})
}

func (cg *classicGroup) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range cg.members {
		d = max(d, m.rebalance)
	}
	return d
}

// supportsProtocols reports whether a member with these protocols may join:
// same protocol type and at least one protocol every member supports.
func (cg *classicGroup) supportsProtocols(protocolType string, protos []kmsg.JoinGroupRequestProtocol) bool {
	if len(cg.members) == 0 {
		return protocolType != "" && len(protos) > 0
	}
	if protocolType != cg.protocolType {
		return false
	}
	for _, p := range protos {
		all := true
		for _, m := range cg.members {
			if !hasProtocol(m.protocols, p.Name) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func hasProtocol(ps []kmsg.JoinGroupRequestProtocol, name string) bool {
	for _, p := range ps {
		if p.Name == name {
			return true
		}
	}
	return false
}

// selectProtocol picks, among the protocols every member supports, the one
// most members prefer (each votes for its first supported choice); ties go
// to the earliest joined member's preference order.
func (cg *classicGroup) selectProtocol() string {
	ms := cg.sortedMembers()
	if len(ms) == 0 {
		return ""
	}
	var candidates []string
	for _, p := range ms[0].protocols {
		all := true
		for _, m := range ms[1:] {
			if !hasProtocol(m.protocols, p.Name) {
				all = false
				break
			}
		}
		if all && !slices.Contains(candidates, p.Name) {
			candidates = append(candidates, p.Name)
		}
	}
	votes := make(map[string]int, len(candidates))
	for _, m := range ms {
		for _, p := range m.protocols {
			if slices.Contains(candidates, p.Name) {
				votes[p.Name]++
				break
			}
		}
	}
	best := ""
	for _, name := range candidates {
		if best == "" || votes[name] > votes[best] {
			best = name
		}
	}
	return best
}
