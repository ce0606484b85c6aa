package assignor

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
)

// Member is one group member as the coordinator describes it to an assignor.
type Member struct {
	// ID is the member ID; unique within the group.
	ID string
	// InstanceID is the static member's group.instance.id, nil for dynamic
	// members. The range assignor orders static members by it so that a
	// restarted static member gets its ranges back.
	InstanceID *string
	// Rack is the member's client.rack; accepted but unused (see package doc).
	Rack *string
	// Topics are the subscribed topic names, already resolved from names or a
	// regular expression. Names absent from the topic map are ignored.
	Topics []string
	// Current is the member's current assignment by topic ID; the assignors
	// keep as much of it as their balance rules allow.
	Current map[[16]byte][]int32
}

// Topic describes one topic of the cluster metadata.
type Topic struct {
	ID         [16]byte
	Name       string
	Partitions int32
}

// Assignor computes a group's target assignment. Implementations are
// stateless and safe for concurrent use.
type Assignor interface {
	// Name is the value used in group.consumer.assignors and in the
	// ConsumerGroupHeartbeat ServerAssignor field.
	Name() string
	// Assign returns, for every input member, its target assignment by topic
	// ID with partitions sorted ascending; members that get nothing map to an
	// empty, non-nil map. topics is keyed by topic ID (the key wins over
	// Topic.ID). It returns an error only if two members share an ID.
	Assign(members []Member, topics map[[16]byte]Topic) (map[string]map[[16]byte][]int32, error)
}

// Names of the built-in assignors, as Kafka spells them.
const (
	UniformName = "uniform"
	RangeName   = "range"
)

// ByName returns the built-in assignor called name ("uniform" or "range").
func ByName(name string) (Assignor, bool) {
	switch name {
	case UniformName:
		return Uniform(), true
	case RangeName:
		return Range(), true
	}
	return nil, false
}

// group is the normalised input shared by both assignors: members sorted by
// ID, subscribed topics sorted by ID, and the valid part of each member's
// current assignment.
type group struct {
	members []*gmember
	topics  []*gtopic // only topics with at least one subscriber and partition
}

type gmember struct {
	idx int // position in group.members
	in  *Member
	// subs are indices into group.topics, ascending.
	subs []int
	// cur[k] is the valid current assignment for topic subs[k]: in range,
	// deduplicated, not claimed by an earlier member, ascending.
	cur [][]int32
}

type gtopic struct {
	idx  int
	id   [16]byte
	n    int32
	subs []int // member indices, ascending
}

func compareID(a, b [16]byte) int { return bytes.Compare(a[:], b[:]) }

// newGroup validates and normalises the input. Claims on the same partition
// by several members are resolved in member-ID order so that the outcome does
// not depend on the order of the input slice.
func newGroup(members []Member, topics map[[16]byte]Topic) (*group, error) {
	g := &group{members: make([]*gmember, len(members))}
	for i := range members {
		g.members[i] = &gmember{in: &members[i]}
	}
	slices.SortFunc(g.members, func(a, b *gmember) int { return cmp.Compare(a.in.ID, b.in.ID) })
	for i, m := range g.members {
		if i > 0 && g.members[i-1].in.ID == m.in.ID {
			return nil, fmt.Errorf("assignor: duplicate member ID %q", m.in.ID)
		}
		m.idx = i
	}

	// Resolve names. Kafka topic names are unique; should metadata ever carry
	// two IDs for one name, the smallest ID wins so the choice is stable.
	byName := make(map[string][16]byte, len(topics))
	for id, t := range topics {
		if t.Partitions <= 0 {
			continue
		}
		if old, ok := byName[t.Name]; !ok || compareID(id, old) < 0 {
			byName[t.Name] = id
		}
	}
	memberTopics := make([][][16]byte, len(g.members))
	used := make(map[[16]byte]bool)
	for i, m := range g.members {
		var ids [][16]byte
		for _, name := range m.in.Topics {
			if id, ok := byName[name]; ok {
				ids = append(ids, id)
				used[id] = true
			}
		}
		slices.SortFunc(ids, compareID)
		memberTopics[i] = slices.Compact(ids)
	}
	topicIdx := make(map[[16]byte]int, len(used))
	for id := range used {
		g.topics = append(g.topics, &gtopic{id: id, n: topics[id].Partitions})
	}
	slices.SortFunc(g.topics, func(a, b *gtopic) int { return compareID(a.id, b.id) })
	for i, t := range g.topics {
		t.idx = i
		topicIdx[t.id] = i
	}

	claimed := make([][]bool, len(g.topics))
	for i, t := range g.topics {
		claimed[i] = make([]bool, t.n)
	}
	for i, m := range g.members {
		m.subs = make([]int, len(memberTopics[i]))
		m.cur = make([][]int32, len(memberTopics[i]))
		for k, id := range memberTopics[i] {
			t := topicIdx[id]
			m.subs[k] = t
			g.topics[t].subs = append(g.topics[t].subs, i)
			cur := slices.Clone(m.in.Current[id])
			slices.Sort(cur)
			cur = slices.Compact(cur)
			valid := cur[:0]
			for _, p := range cur {
				if p >= 0 && p < g.topics[t].n && !claimed[t][p] {
					claimed[t][p] = true
					valid = append(valid, p)
				}
			}
			m.cur[k] = valid
		}
	}
	return g, nil
}

// result turns per-member, per-topic partition lists into the Assign output,
// sorting each list and dropping empty ones.
func (g *group) result(assigned [][][]int32) map[string]map[[16]byte][]int32 {
	out := make(map[string]map[[16]byte][]int32, len(g.members))
	for i, m := range g.members {
		ma := make(map[[16]byte][]int32)
		for k, t := range m.subs {
			if ps := assigned[i][k]; len(ps) > 0 {
				slices.Sort(ps)
				ma[g.topics[t].id] = ps
			}
		}
		out[m.in.ID] = ma
	}
	return out
}

// subIndex returns k such that m.subs[k] == t, or -1.
func (m *gmember) subIndex(t int) int {
	k, ok := slices.BinarySearch(m.subs, t)
	if !ok {
		return -1
	}
	return k
}
