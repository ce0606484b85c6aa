package assignor

import (
	"cmp"
	"slices"
)

type rangeAssignor struct{}

// Range returns Kafka's server-side range assignor. Each topic is handled on
// its own: with P partitions and S subscribers every subscriber gets P/S
// partitions and the first P%S of them one more, handed out as contiguous
// ranges in subscriber order. Static members come first, ordered by instance
// ID, then dynamic members by member ID, as Kafka's range assignors order
// them, so a restarting static member finds its ranges unchanged.
//
// Stickiness follows Kafka: a member keeps the lowest min(owned, P/S) of the
// partitions it owns, plus one more if it owned more than P/S and an extra
// slot is left; the rest is handed out in ascending ranges. Because every
// topic goes through the same steps, topics with equal partition counts and
// the same subscribers receive identical partition numbers per member, which
// is what joins over co-partitioned topics need.
func Range() Assignor { return rangeAssignor{} }

func (rangeAssignor) Name() string { return RangeName }

func (rangeAssignor) Assign(members []Member, topics map[[16]byte]Topic) (map[string]map[[16]byte][]int32, error) {
	g, err := newGroup(members, topics)
	if err != nil {
		return nil, err
	}
	assigned := make([][][]int32, len(g.members))
	for i, m := range g.members {
		assigned[i] = make([][]int32, len(m.subs))
	}
	for _, t := range g.topics {
		subs := slices.Clone(t.subs)
		slices.SortFunc(subs, func(a, b int) int { return compareRangeOrder(g.members[a].in, g.members[b].in) })
		rangeTopic(g, t, subs, assigned)
	}
	return g.result(assigned), nil
}

// compareRangeOrder orders static members before dynamic ones, static by
// instance ID, everything else by member ID.
func compareRangeOrder(a, b *Member) int {
	switch {
	case a.InstanceID != nil && b.InstanceID != nil:
		if c := cmp.Compare(*a.InstanceID, *b.InstanceID); c != 0 {
			return c
		}
	case a.InstanceID != nil:
		return -1
	case b.InstanceID != nil:
		return 1
	}
	return cmp.Compare(a.ID, b.ID)
}

// rangeTopic assigns topic t over subs (already in range order).
func rangeTopic(g *group, t *gtopic, subs []int, assigned [][][]int32) {
	n := int(t.n)
	quota, extras := n/len(subs), n%len(subs)
	kept := make([]bool, n)
	type pending struct{ member, k, need int }
	var unfilled []pending
	for _, mi := range subs {
		m := g.members[mi]
		k := m.subIndex(t.idx)
		cur := m.cur[k]
		keep := min(len(cur), quota)
		if len(cur) > quota && extras > 0 {
			keep++
			extras--
		}
		for _, p := range cur[:keep] {
			kept[p] = true
		}
		assigned[mi][k] = slices.Clone(cur[:keep])
		if keep <= quota {
			unfilled = append(unfilled, pending{mi, k, quota - keep})
		}
	}
	next := 0 // next candidate partition to hand out, ascending
	for _, u := range unfilled {
		need := u.need
		if extras > 0 {
			need++
			extras--
		}
		for ; need > 0; need-- {
			for kept[next] {
				next++
			}
			assigned[u.member][u.k] = append(assigned[u.member][u.k], int32(next))
			next++
		}
	}
}
