package assignor

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"testing"

	"pgregory.net/rapid"
)

type scenario struct {
	members []Member
	topics  map[[16]byte]Topic
}

// genScenario draws a cluster of up to six topics (IDs ordered differently
// from names, some with no partitions) and up to nine members whose
// subscriptions may name unknown topics and whose current assignments may be
// stale, out of range, duplicated or conflicting. With homogeneous set, every
// member subscribes to the same topics or to nothing.
func genScenario(t *rapid.T, homogeneous bool) scenario {
	s := scenario{topics: make(map[[16]byte]Topic)}
	nTopics := rapid.IntRange(0, 6).Draw(t, "topics")
	var names []string
	var ids [][16]byte
	for i := range nTopics {
		id := [16]byte{0: rapid.Byte().Draw(t, "idByte"), 15: byte(i)}
		name := fmt.Sprintf("t%d", i)
		s.topics[id] = Topic{ID: id, Name: name, Partitions: rapid.Int32Range(0, 12).Draw(t, "partitions")}
		names = append(names, name)
		ids = append(ids, id)
	}
	candidates := append(slices.Clone(names), "ghost")
	ids = append(ids, tid(200)) // a deleted topic in current assignments
	subsGen := rapid.SliceOfDistinct(rapid.SampledFrom(candidates), rapid.ID[string])
	shared := subsGen.Draw(t, "shared")

	nMembers := rapid.IntRange(0, 9).Draw(t, "members")
	perm := rapid.Permutation([]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}).Draw(t, "memberIDs")
	for i := range nMembers {
		m := Member{ID: fmt.Sprintf("m%02d", perm[i])}
		if rapid.Bool().Draw(t, "static") {
			m.InstanceID = str(fmt.Sprintf("i%02d", rapid.IntRange(0, 11).Draw(t, "instance")))
		}
		switch {
		case !homogeneous:
			m.Topics = subsGen.Draw(t, "subs")
		case rapid.IntRange(0, 5).Draw(t, "idle") > 0:
			m.Topics = rapid.Permutation(shared).Draw(t, "sharedOrder")
		}
		m.Current = make(map[[16]byte][]int32)
		for range rapid.IntRange(0, 3).Draw(t, "curTopics") {
			id := rapid.SampledFrom(ids).Draw(t, "curTopic")
			m.Current[id] = rapid.SliceOfN(rapid.Int32Range(-1, 14), 0, 8).Draw(t, "curParts")
		}
		s.members = append(s.members, m)
	}
	return s
}

// view is an assignment indexed for checks.
type view struct {
	s     scenario
	out   map[string]map[[16]byte][]int32
	subs  map[string]map[[16]byte]bool // resolved subscriptions
	owner map[[16]byte][]string        // owner per partition
	load  map[string]int
}

func resolve(s scenario) map[string]map[[16]byte]bool {
	byName := make(map[string][16]byte)
	for id, tp := range s.topics {
		if tp.Partitions > 0 {
			byName[tp.Name] = id
		}
	}
	subs := make(map[string]map[[16]byte]bool)
	for _, m := range s.members {
		subs[m.ID] = make(map[[16]byte]bool)
		for _, name := range m.Topics {
			if id, ok := byName[name]; ok {
				subs[m.ID][id] = true
			}
		}
	}
	return subs
}

// checkValid checks the rules every assignor output must obey and indexes it.
func checkValid(t *rapid.T, s scenario, out map[string]map[[16]byte][]int32) *view {
	v := &view{s: s, out: out, subs: resolve(s), owner: make(map[[16]byte][]string), load: make(map[string]int)}
	if len(out) != len(s.members) {
		t.Fatalf("%d members in output, %d in input", len(out), len(s.members))
	}
	subscribed := make(map[[16]byte]bool)
	for _, m := range s.members {
		for id := range v.subs[m.ID] {
			subscribed[id] = true
		}
	}
	for id := range subscribed {
		v.owner[id] = make([]string, s.topics[id].Partitions)
	}
	for _, m := range s.members {
		a, ok := out[m.ID]
		if !ok || a == nil {
			t.Fatalf("member %s missing from output", m.ID)
		}
		for id, ps := range a {
			if !v.subs[m.ID][id] {
				t.Fatalf("member %s got topic %x it does not subscribe to", m.ID, id)
			}
			if len(ps) == 0 || !slices.IsSorted(ps) {
				t.Fatalf("member %s topic %x: partitions %v empty or unsorted", m.ID, id, ps)
			}
			for _, p := range ps {
				if p < 0 || p >= s.topics[id].Partitions {
					t.Fatalf("member %s: partition %d of %x out of range", m.ID, p, id)
				}
				if prev := v.owner[id][p]; prev != "" {
					t.Fatalf("partition %x/%d assigned to %s and %s", id, p, prev, m.ID)
				}
				v.owner[id][p] = m.ID
			}
			v.load[m.ID] += len(ps)
		}
	}
	for id, owners := range v.owner {
		for p, o := range owners {
			if o == "" {
				t.Fatalf("partition %x/%d of a subscribed topic is unassigned", id, p)
			}
		}
	}
	return v
}

// active lists the members that subscribe to at least one existing topic.
func (v *view) active() []string {
	var ids []string
	for _, m := range v.s.members {
		if len(v.subs[m.ID]) > 0 {
			ids = append(ids, m.ID)
		}
	}
	return ids
}

// checkNoCostReducingPath is the naive twin of the uniform balancer: from
// every member, follow "holds a partition of a topic that member subscribes
// to" to a fixed point and require no reachable member to hold two or more
// fewer partitions. For identical subscriptions this is max-min <= 1.
func checkNoCostReducingPath(t *rapid.T, v *view) {
	for _, a := range v.active() {
		reach := map[string]bool{a: true}
		for changed := true; changed; {
			changed = false
			for u := range reach {
				for id := range v.out[u] {
					for _, w := range v.active() {
						if !reach[w] && v.subs[w][id] {
							reach[w] = true
							changed = true
						}
					}
				}
			}
		}
		for w := range reach {
			if v.load[a]-v.load[w] >= 2 {
				t.Fatalf("%s holds %d, %s holds %d and is reachable: not balanced\n%v", a, v.load[a], w, v.load[w], v.out)
			}
		}
	}
}

func assign(t *rapid.T, a Assignor, s scenario) map[string]map[[16]byte][]int32 {
	out, err := a.Assign(s.members, s.topics)
	if err != nil {
		t.Fatalf("%s: %v", a.Name(), err)
	}
	return out
}

// withCurrent returns s with every member's current assignment replaced by out.
func withCurrent(s scenario, out map[string]map[[16]byte][]int32) scenario {
	n := scenario{topics: s.topics}
	for _, m := range s.members {
		m.Current = out[m.ID]
		n.members = append(n.members, m)
	}
	return n
}

// shuffled returns s with members, topic lists and current lists permuted.
func shuffled(t *rapid.T, s scenario) scenario {
	n := scenario{topics: make(map[[16]byte]Topic)}
	for id, tp := range s.topics {
		n.topics[id] = tp
	}
	for _, m := range rapid.Permutation(s.members).Draw(t, "memberOrder") {
		m.Topics = rapid.Permutation(m.Topics).Draw(t, "topicOrder")
		cur := make(map[[16]byte][]int32)
		for id, ps := range m.Current {
			cur[id] = rapid.Permutation(ps).Draw(t, "partitionOrder")
		}
		m.Current = cur
		n.members = append(n.members, m)
	}
	return n
}

func checkCommon(t *rapid.T, a Assignor, s scenario) (*view, map[string]map[[16]byte][]int32) {
	out := assign(t, a, s)
	v := checkValid(t, s, out)
	if again := assign(t, a, shuffled(t, s)); !reflect.DeepEqual(again, out) {
		t.Fatalf("output depends on input order:\n%v\n%v", out, again)
	}
	// A target assignment fed back as the current one is a fixed point:
	// nothing should move on a rebalance that changes nothing.
	if again := assign(t, a, withCurrent(s, out)); !reflect.DeepEqual(again, out) {
		t.Fatalf("assignment is not stable:\n%v\n%v", out, again)
	}
	return v, out
}

func TestUniformProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, rapid.Bool().Draw(t, "homogeneous"))
		v, _ := checkCommon(t, Uniform(), s)
		checkNoCostReducingPath(t, v)
	})
}

func TestUniformHomogeneousBalance(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, true)
		v := checkValid(t, s, assign(t, Uniform(), s))
		lo, hi := -1, 0
		for _, id := range v.active() {
			if lo < 0 || v.load[id] < lo {
				lo = v.load[id]
			}
			hi = max(hi, v.load[id])
		}
		if len(v.active()) > 0 && hi-lo > 1 {
			t.Fatalf("loads range from %d to %d", lo, hi)
		}
	})
}

// TestUniformJoinLeaveStickiness pins the movement bounds for a balanced
// group with identical subscriptions, P partitions and N members. Every old
// member holds floor(P/N) or one more, both >= floor(P/(N+1)) =: q', so on a
// join each old member can keep q' and the P%(N+1) extra slots all fit among
// old members above q' (if any old member held exactly q' then P = N*q'+k
// with k members above it, so k >= P%(N+1)). Hence the newcomer receives
// exactly q' partitions, which is also the least any balanced assignment can
// give it, and nothing else moves. On a leave, the N-1 survivors' quotas are
// at least their current counts, so only the leaver's partitions move.
func TestUniformJoinLeaveStickiness(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, true)
		var subs []string
		for _, m := range s.members {
			if len(m.Topics) > 0 {
				subs = m.Topics
			}
		}
		s = randomBalanced(t, s)
		before := checkValid(t, s, assign(t, Uniform(), s))
		for _, m := range s.members {
			if !reflect.DeepEqual(before.out[m.ID], m.Current) {
				t.Fatalf("balanced current assignment of %s changed: %v -> %v", m.ID, m.Current, before.out[m.ID])
			}
		}
		p := 0
		for _, owners := range before.owner {
			p += len(owners)
		}
		n := len(before.active())

		joined := s
		// The newcomer's ID sorts anywhere among the old members'.
		newcomer := fmt.Sprintf("m%02d", rapid.IntRange(0, 12).Draw(t, "newcomer")) + "n"
		joined.members = append(slices.Clone(s.members), Member{ID: newcomer, Topics: subs})
		after := checkValid(t, joined, assign(t, Uniform(), joined))
		if len(after.active()) == n+1 {
			if want := p / (n + 1); after.load[newcomer] != want {
				t.Fatalf("newcomer got %d partitions, want P/(N+1) = %d/%d = %d", after.load[newcomer], p, n+1, want)
			}
		}
		for id, owners := range after.owner {
			for part, o := range owners {
				if o != newcomer && o != before.owner[id][part] {
					t.Fatalf("join moved %x/%d from %s to %s", id, part, before.owner[id][part], o)
				}
			}
		}

		if len(s.members) == 0 {
			return
		}
		gone := rapid.IntRange(0, len(s.members)-1).Draw(t, "leaver")
		left := scenario{topics: s.topics, members: slices.Delete(slices.Clone(s.members), gone, gone+1)}
		leaver := s.members[gone].ID
		after = checkValid(t, left, assign(t, Uniform(), left))
		for id, owners := range before.owner {
			for part, o := range owners {
				if o != leaver && after.owner[id] != nil && after.owner[id][part] != o {
					t.Fatalf("leave of %s moved %x/%d from %s to %s", leaver, id, part, o, after.owner[id][part])
				}
			}
		}
	})
}

// randomBalanced replaces the current assignments of a homogeneous scenario
// with a random balanced one: the partitions of the shared subscription,
// shuffled, dealt to shuffled active members, floor(P/N) each and one more
// for P%N of them.
func randomBalanced(t *rapid.T, s scenario) scenario {
	subs := resolve(s)
	var active []string
	var shared map[[16]byte]bool
	for _, m := range s.members {
		if len(subs[m.ID]) > 0 {
			active = append(active, m.ID)
			shared = subs[m.ID]
		}
	}
	type tp struct {
		id [16]byte
		p  int32
	}
	var parts []tp
	for id := range shared {
		for p := range s.topics[id].Partitions {
			parts = append(parts, tp{id, p})
		}
	}
	slices.SortFunc(parts, func(a, b tp) int {
		if c := compareID(a.id, b.id); c != 0 {
			return c
		}
		return int(a.p - b.p)
	})
	parts = rapid.Permutation(parts).Draw(t, "balancedParts")
	active = rapid.Permutation(active).Draw(t, "balancedMembers")
	cur := make(map[string]map[[16]byte][]int32)
	for _, m := range s.members {
		cur[m.ID] = make(map[[16]byte][]int32)
	}
	for i, id := range active {
		q, r := len(parts)/len(active), len(parts)%len(active)
		start := i*q + min(i, r)
		for _, x := range parts[start : start+q+boolInt(i < r)] {
			cur[id][x.id] = append(cur[id][x.id], x.p)
		}
	}
	for _, a := range cur {
		for _, ps := range a {
			slices.Sort(ps)
		}
	}
	return withCurrent(s, cur)
}

// validCurrent mirrors the documented clean-up of current assignments: valid
// partitions of subscribed topics, first claimant in member-ID order wins.
func validCurrent(v *view) map[string]map[[16]byte][]int32 {
	members := slices.Clone(v.s.members)
	sort.Slice(members, func(i, j int) bool { return members[i].ID < members[j].ID })
	claimed := make(map[[16]byte]map[int32]bool)
	out := make(map[string]map[[16]byte][]int32)
	for _, m := range members {
		out[m.ID] = make(map[[16]byte][]int32)
		for id, ps := range m.Current {
			if !v.subs[m.ID][id] {
				continue
			}
			if claimed[id] == nil {
				claimed[id] = make(map[int32]bool)
			}
			for _, p := range ps {
				if p >= 0 && p < v.s.topics[id].Partitions && !claimed[id][p] {
					claimed[id][p] = true
					out[m.ID][id] = append(out[m.ID][id], p)
				}
			}
		}
	}
	return out
}

// rangeOrder returns the subscribers of topic id in range order.
func rangeOrder(v *view, id [16]byte) []Member {
	var subs []Member
	for _, m := range v.s.members {
		if v.subs[m.ID][id] {
			subs = append(subs, m)
		}
	}
	slices.SortFunc(subs, func(a, b Member) int { return compareRangeOrder(&a, &b) })
	return subs
}

func TestRangeProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, rapid.Bool().Draw(t, "homogeneous"))
		v, out := checkCommon(t, Range(), s)
		cur := validCurrent(v)
		for id, owners := range v.owner {
			subs := rangeOrder(v, id)
			n := len(owners)
			quota := n / len(subs)
			lo, hi := n, 0
			for _, m := range subs {
				got := out[m.ID][id]
				lo, hi = min(lo, len(got)), max(hi, len(got))
				// Kafka's stickiness: a member keeps at least as many of its
				// valid current partitions as the minimum quota allows.
				kept := 0
				for _, p := range cur[m.ID][id] {
					if slices.Contains(got, p) {
						kept++
					}
				}
				if kept < min(len(cur[m.ID][id]), quota) {
					t.Fatalf("%s kept %d of %v in %x, quota %d, got %v", m.ID, kept, cur[m.ID][id], id, quota, got)
				}
			}
			if hi-lo > 1 {
				t.Fatalf("topic %x: per-member counts range from %d to %d", id, lo, hi)
			}
		}
	})
}

// TestRangeFreshLayout checks the classic layout without current
// assignments: subscriber i in range order gets the contiguous range starting
// at i*q+min(i,r), so topics with equal partition counts and subscribers get
// identical partition numbers per member (co-partitioning).
func TestRangeFreshLayout(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t, rapid.Bool().Draw(t, "homogeneous"))
		for i := range s.members {
			s.members[i].Current = nil
		}
		out := assign(t, Range(), s)
		v := checkValid(t, s, out)
		for id, owners := range v.owner {
			subs := rangeOrder(v, id)
			n := len(owners)
			q, r := n/len(subs), n%len(subs)
			for i, m := range subs {
				var want []int32
				start := i*q + min(i, r)
				for p := start; p < start+q+boolInt(i < r); p++ {
					want = append(want, int32(p))
				}
				if got := out[m.ID][id]; !slices.Equal(got, want) {
					t.Fatalf("%s (rank %d) got %v of %x, want %v", m.ID, i, got, id, want)
				}
			}
		}
	})
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
