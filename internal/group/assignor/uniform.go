package assignor

import (
	"container/heap"
	"slices"
)

type uniformAssignor struct{}

// Uniform returns Kafka's uniform assignor, Kafka's default server-side
// assignor. Balance comes first, stickiness second:
//
//   - When all members that subscribe to anything subscribe to the same
//     topics, every member gets P/N or P/N+1 of the P partitions, and the
//     assignment keeps the largest number of current ownerships any balanced
//     assignment can keep. In particular a member joining a balanced group
//     receives exactly P/(N+1) (rounded down) partitions and nothing else
//     moves, and a member leaving only has its own partitions redistributed.
//   - Otherwise members keep their current partitions, unowned partitions go
//     to the least-loaded subscriber (topics with the most partitions per
//     subscriber first, as Kafka orders them), and partitions are then shifted
//     along chains of subscriptions until no chain leads from a member to one
//     holding at least two fewer partitions (see the package doc).
//
// Fresh partitions are dealt round-robin over the members that need them, so
// each topic spreads across the group rather than landing on one member.
func Uniform() Assignor { return uniformAssignor{} }

func (uniformAssignor) Name() string { return UniformName }

func (uniformAssignor) Assign(members []Member, topics map[[16]byte]Topic) (map[string]map[[16]byte][]int32, error) {
	g, err := newGroup(members, topics)
	if err != nil {
		return nil, err
	}
	assigned := make([][][]int32, len(g.members))
	for i, m := range g.members {
		assigned[i] = make([][]int32, len(m.subs))
	}
	var active []int // members subscribed to at least one existing topic
	homogeneous := true
	for i, m := range g.members {
		if len(m.subs) == 0 {
			continue
		}
		if len(active) > 0 && !slices.Equal(g.members[active[0]].subs, m.subs) {
			homogeneous = false
		}
		active = append(active, i)
	}
	if len(active) > 0 {
		if homogeneous {
			uniformHomogeneous(g, active, assigned)
		} else {
			newBalancer(g, active).run(assigned)
		}
	}
	return g.result(assigned), nil
}

// uniformHomogeneous assigns when all active members share one subscription.
// Every member's quota is P/N, and P%N members get one more; giving those
// extra slots first to members that already own more than P/N maximises the
// number of kept partitions (each such member keeps exactly one more), which
// makes the result as sticky as a balanced assignment can be.
func uniformHomogeneous(g *group, active []int, assigned [][][]int32) {
	subs := g.members[active[0]].subs
	total := 0
	for _, t := range subs {
		total += int(g.topics[t].n)
	}
	quota, extras := total/len(active), total%len(active)

	owned := func(m *gmember) int {
		n := 0
		for _, c := range m.cur {
			n += len(c)
		}
		return n
	}
	quotas := make([]int, len(active))
	for j, mi := range active {
		quotas[j] = quota
		if extras > 0 && owned(g.members[mi]) > quota {
			quotas[j]++
			extras--
		}
	}
	for j := range active {
		if extras == 0 {
			break
		}
		if quotas[j] == quota {
			quotas[j]++
			extras--
		}
	}

	// Keep up to the quota, lowest topic ID and partition first.
	kept := make([][]bool, len(subs))
	for k, t := range subs {
		kept[k] = make([]bool, g.topics[t].n)
	}
	need := make([]int, len(active))
	for j, mi := range active {
		m := g.members[mi]
		left := quotas[j]
		for k, cur := range m.cur {
			keep := min(left, len(cur))
			for _, p := range cur[:keep] {
				kept[k][p] = true
			}
			assigned[mi][k] = slices.Clone(cur[:keep])
			left -= keep
		}
		need[j] = left
	}

	// Deal the rest round-robin, topic by topic, over the members with room.
	var unfilled []int
	for j := range active {
		if need[j] > 0 {
			unfilled = append(unfilled, j)
		}
	}
	next := 0
	for k, t := range subs {
		for p := range g.topics[t].n {
			if kept[k][p] {
				continue
			}
			// Members filled earlier in this round are skipped; a finished
			// round drops them so later rounds stay short.
			for next >= len(unfilled) || need[unfilled[next]] == 0 {
				if next >= len(unfilled) {
					unfilled = slices.DeleteFunc(unfilled, func(j int) bool { return need[j] == 0 })
					next = 0
					continue
				}
				next++
			}
			j := unfilled[next]
			next++
			mi := active[j]
			assigned[mi][k] = append(assigned[mi][k], p)
			need[j]--
		}
	}
}

// balancer assigns for heterogeneous subscriptions. Partitions are tracked
// per member and topic as stacks; only counts matter for balance.
type balancer struct {
	g      *group
	active []int
	load   []int       // by member index
	held   [][][]int32 // [member][k] partitions of topic subs[k] held
}

func newBalancer(g *group, active []int) *balancer {
	b := &balancer{g: g, active: active, load: make([]int, len(g.members)), held: make([][][]int32, len(g.members))}
	for _, mi := range active {
		m := g.members[mi]
		b.held[mi] = make([][]int32, len(m.subs))
		for k, cur := range m.cur {
			b.held[mi][k] = slices.Clone(cur)
			b.load[mi] += len(cur)
		}
	}
	return b
}

func (b *balancer) run(assigned [][][]int32) {
	b.assignUnowned()
	b.balance()
	for _, mi := range b.active {
		copy(assigned[mi], b.held[mi])
	}
}

// assignUnowned gives each unowned partition to its least-loaded subscriber.
// Topics with the most partitions per subscriber go first, ties by fewer
// subscribers, then topic ID: the constrained topics are placed while the
// flexible ones can still even out the loads.
func (b *balancer) assignUnowned() {
	g := b.g
	order := make([]*gtopic, len(g.topics))
	copy(order, g.topics)
	slices.SortStableFunc(order, func(x, y *gtopic) int {
		// x.n/len(x.subs) > y.n/len(y.subs), compared without division.
		if l, r := int64(x.n)*int64(len(y.subs)), int64(y.n)*int64(len(x.subs)); l != r {
			if l > r {
				return -1
			}
			return 1
		}
		return len(x.subs) - len(y.subs)
	})
	owned := make([]bool, 0)
	for _, t := range order {
		owned = slices.Grow(owned[:0], int(t.n))[:t.n]
		clear(owned)
		for _, mi := range t.subs {
			for _, p := range b.held[mi][g.members[mi].subIndex(t.idx)] {
				owned[p] = true
			}
		}
		// Only this topic's subscribers change load while it is placed, so
		// one heap per topic stays valid.
		h := &loadHeap{load: b.load, members: slices.Clone(t.subs)}
		heap.Init(h)
		for p := range t.n {
			if owned[p] {
				continue
			}
			mi := h.members[0]
			k := g.members[mi].subIndex(t.idx)
			b.held[mi][k] = append(b.held[mi][k], p)
			b.load[mi]++
			heap.Fix(h, 0)
		}
	}
}

// balance removes every cost-reducing path: a chain member a -> topic t1 ->
// member v1 -> topic t2 -> ... -> member z where each member holds a
// partition of the next topic and the next member subscribes to it, and
// load(z) <= load(a)-2. Shifting one partition along each link lowers a by
// one and raises z by one. Each shift strictly lowers the sum of squared
// loads, so the loop ends; when no path is left the assignment is optimal.
//
// One search from a serves many shifts: the members it reached are kept in a
// heap by load and each unit goes to the least-loaded one, until its tree
// path runs dry; a heavily loaded member thus drains at O(log N) per
// partition and one search per exhausted link, not one search per partition.
func (b *balancer) balance() {
	g := b.g
	s := newSearch(len(g.members), len(g.topics))
	for improved := true; improved; {
		improved = false
		order := slices.Clone(b.active)
		slices.SortStableFunc(order, func(x, y int) int { return b.load[y] - b.load[x] })
		for _, a := range order {
			// A search only pays off if some member holds two fewer; as
			// order is by load descending, no later source can do better.
			if b.load[a]-b.minLoad() < 2 {
				break
			}
			// Drained links change the graph, so search again from a
			// until a search yields no shift.
			for b.drain(s, a) {
				improved = true
			}
		}
	}
}

// drain searches from a once and shifts partitions from a to the members
// the search reached, always to the least loaded, while that lowers the
// imbalance and the tree path can carry them. It reports whether anything
// moved. Every tree path is supplied when the search ends, so the first
// shift always happens if the imbalance allows it.
func (b *balancer) drain(s *search, a int) bool {
	moved := false
	h := &loadHeap{load: b.load, members: s.run(b, a)}
	heap.Init(h)
	for h.Len() > 0 {
		z := h.members[0]
		if b.load[a]-b.load[z] < 2 {
			break
		}
		if !b.supplied(s, a, z) {
			// A link ran dry. Dropping z and carrying on would pour the
			// rest into the few members still supplied; a fresh search
			// finds other routes to z instead.
			break
		}
		b.shift(s, a, z)
		moved = true
		heap.Fix(h, 0)
	}
	return moved
}

func (b *balancer) minLoad() int {
	lowest := b.load[b.active[0]]
	for _, mi := range b.active[1:] {
		lowest = min(lowest, b.load[mi])
	}
	return lowest
}

// supplied reports whether every link on the tree path from a to z still
// has a partition to pass on.
func (b *balancer) supplied(s *search, a, z int) bool {
	for v := z; v != a; v = s.parent[v] {
		u := s.parent[v]
		if len(b.held[u][b.g.members[u].subIndex(s.via[v])]) == 0 {
			return false
		}
	}
	return true
}

// shift moves one partition along each link of the tree path from a to z.
func (b *balancer) shift(s *search, a, z int) {
	g := b.g
	for v := z; v != a; v = s.parent[v] {
		u, t := s.parent[v], s.via[v]
		ku, kv := g.members[u].subIndex(t), g.members[v].subIndex(t)
		from := b.held[u][ku]
		b.held[v][kv] = append(b.held[v][kv], from[len(from)-1])
		b.held[u][ku] = from[:len(from)-1]
	}
	b.load[a]--
	b.load[z]++
}

// search is a reusable breadth-first search over members and topics.
type search struct {
	seenMember []int // generation stamps
	seenTopic  []int
	gen        int
	parent     []int // member the path came from
	via        []int // topic index linking parent to member
	queue      []int
}

func newSearch(members, topics int) *search {
	return &search{
		seenMember: make([]int, members),
		seenTopic:  make([]int, topics),
		parent:     make([]int, members),
		via:        make([]int, members),
	}
}

// run searches breadth-first from a and returns the members it reaches,
// nearest first, recording in parent and via the tree that reaches them.
// The returned slice is reused by the next run.
func (s *search) run(b *balancer, a int) []int {
	g := b.g
	s.gen++
	s.seenMember[a] = s.gen
	s.queue = append(s.queue[:0], a)
	for i := 0; i < len(s.queue); i++ {
		u := s.queue[i]
		for k, t := range g.members[u].subs {
			if len(b.held[u][k]) == 0 || s.seenTopic[t] == s.gen {
				continue
			}
			s.seenTopic[t] = s.gen
			for _, v := range g.topics[t].subs {
				if s.seenMember[v] == s.gen {
					continue
				}
				s.seenMember[v] = s.gen
				s.parent[v], s.via[v] = u, t
				s.queue = append(s.queue, v)
			}
		}
	}
	return s.queue[1:]
}

// loadHeap orders member indices by load, then index.
type loadHeap struct {
	load    []int
	members []int
}

func (h *loadHeap) Len() int { return len(h.members) }
func (h *loadHeap) Less(i, j int) bool {
	a, b := h.members[i], h.members[j]
	if h.load[a] != h.load[b] {
		return h.load[a] < h.load[b]
	}
	return a < b
}
func (h *loadHeap) Swap(i, j int) { h.members[i], h.members[j] = h.members[j], h.members[i] }
func (h *loadHeap) Push(x any)    { h.members = append(h.members, x.(int)) }
func (h *loadHeap) Pop() any {
	x := h.members[len(h.members)-1]
	h.members = h.members[:len(h.members)-1]
	return x
}
