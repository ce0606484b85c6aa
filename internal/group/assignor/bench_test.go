package assignor

import (
	"fmt"
	"testing"
)

// benchGroup builds members subscribed to all of topics topics of
// partitions partitions each (heterogeneous: member i skips topic i%topics).
func benchGroup(members, topics int, partitions int32, heterogeneous bool) ([]Member, map[[16]byte]Topic) {
	tm := make(map[[16]byte]Topic, topics)
	names := make([]string, topics)
	for i := range topics {
		id := [16]byte{0: byte(i >> 8), 1: byte(i), 15: 1}
		names[i] = fmt.Sprintf("topic-%04d", i)
		tm[id] = Topic{ID: id, Name: names[i], Partitions: partitions}
	}
	ms := make([]Member, members)
	for i := range ms {
		ms[i].ID = fmt.Sprintf("member-%05d", i)
		for j, n := range names {
			if heterogeneous && topics > 1 && j == i%topics {
				continue
			}
			ms[i].Topics = append(ms[i].Topics, n)
		}
	}
	return ms, tm
}

func benchAssign(b *testing.B, a Assignor, members, topics int, partitions int32, heterogeneous bool) {
	ms, tm := benchGroup(members, topics, partitions, heterogeneous)
	first, err := a.Assign(ms, tm)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("fresh", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Assign(ms, tm); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A steady-state rebalance: everyone keeps the previous target and one
	// member joins.
	sticky := make([]Member, len(ms), len(ms)+1)
	for i, m := range ms {
		m.Current = first[m.ID]
		sticky[i] = m
	}
	sticky = append(sticky, Member{ID: "member-joining", Topics: ms[0].Topics})
	b.Run("join", func(b *testing.B) {
		for b.Loop() {
			if _, err := a.Assign(sticky, tm); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAssign(b *testing.B) {
	for _, a := range []Assignor{Uniform(), Range()} {
		for _, size := range []struct {
			members, topics int
			partitions      int32
			hetero          bool
		}{
			{100, 10, 100, false},   // 100 members x 1,000 partitions
			{1000, 100, 100, false}, // 1,000 members x 10,000 partitions
			{100, 10, 100, true},
			{1000, 100, 100, true},
		} {
			name := fmt.Sprintf("%s/members=%d/partitions=%d", a.Name(), size.members, size.topics*int(size.partitions))
			if size.hetero {
				name += "/heterogeneous"
			}
			b.Run(name, func(b *testing.B) { benchAssign(b, a, size.members, size.topics, size.partitions, size.hetero) })
		}
	}
}

// BenchmarkUniformSkewed starts from the worst sticky input: one member owns
// every partition it subscribes to, under heterogeneous subscriptions, so
// the balancing phase must move almost everything.
func BenchmarkUniformSkewed(b *testing.B) {
	for _, size := range []struct{ members, topics int }{{100, 10}, {1000, 100}} {
		b.Run(fmt.Sprintf("members=%d/partitions=%d", size.members, size.topics*100), func(b *testing.B) {
			ms, tm := benchGroup(size.members, size.topics, 100, true)
			ms[0].Current = make(map[[16]byte][]int32)
			for id, t := range tm {
				if t.Name == ms[0].Topics[0] || t.Name != fmt.Sprintf("topic-%04d", 0) {
					for p := range t.Partitions {
						ms[0].Current[id] = append(ms[0].Current[id], p)
					}
				}
			}
			for b.Loop() {
				if _, err := Uniform().Assign(ms, tm); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
