package assignor

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func tid(n byte) [16]byte { return [16]byte{15: n} }

// cluster builds a topic map from "name:partitions" pairs; topic i gets ID tid(i+1).
func cluster(specs ...string) map[[16]byte]Topic {
	topics := make(map[[16]byte]Topic)
	for i, s := range specs {
		var name string
		var n int32
		if _, err := fmt.Sscanf(strings.Replace(s, ":", " ", 1), "%s %d", &name, &n); err != nil {
			panic(err)
		}
		id := tid(byte(i + 1))
		topics[id] = Topic{ID: id, Name: name, Partitions: n}
	}
	return topics
}

// asg is a test shorthand: topic name -> partitions.
type asg map[string][]int32

func byID(topics map[[16]byte]Topic, a asg) map[[16]byte][]int32 {
	out := make(map[[16]byte][]int32)
	for name, ps := range a {
		found := false
		for id, t := range topics {
			if t.Name == name {
				out[id] = ps
				found = true
			}
		}
		if !found {
			panic("unknown topic " + name)
		}
	}
	return out
}

func member(topics map[[16]byte]Topic, id string, subs []string, cur asg) Member {
	return Member{ID: id, Topics: subs, Current: byID(topics, cur)}
}

func str(s string) *string { return &s }

type tableCase struct {
	name    string
	topics  map[[16]byte]Topic
	members []Member
	want    map[string]asg
}

func runTable(t *testing.T, a Assignor, cases []tableCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := a.Assign(tc.members, tc.topics)
			if err != nil {
				t.Fatal(err)
			}
			want := make(map[string]map[[16]byte][]int32)
			for m, x := range tc.want {
				want[m] = byID(tc.topics, x)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("got  %v\nwant %v", named(tc.topics, got), named(tc.topics, want))
			}
		})
	}
}

func named(topics map[[16]byte]Topic, a map[string]map[[16]byte][]int32) map[string]map[string][]int32 {
	out := make(map[string]map[string][]int32)
	for m, x := range a {
		out[m] = make(map[string][]int32)
		for id, ps := range x {
			out[m][topics[id].Name] = ps
		}
	}
	return out
}

// The first four cases are the scenarios of Kafka's RangeAssignorTest
// (group-coordinator) with the outcomes Kafka documents for them.
func TestRangeTable(t *testing.T) {
	c1 := cluster("t1:3", "t3:2")
	c2 := cluster("t1:3", "t2:3", "t3:2")
	c3 := cluster("t1:3", "t2:3")
	c4 := cluster("t1:2")
	c5 := cluster("t1:4")
	c6 := cluster("a:3", "b:3", "c:5", "unused:4")
	runTable(t, Range(), []tableCase{
		{
			name:   "first assignment, two members, same subscriptions",
			topics: c1,
			members: []Member{
				member(c1, "A", []string{"t1", "t3"}, nil),
				member(c1, "B", []string{"t1", "t3"}, nil),
			},
			want: map[string]asg{"A": {"t1": {0, 1}, "t3": {0}}, "B": {"t1": {2}, "t3": {1}}},
		},
		{
			name:   "first assignment, three members, different subscriptions",
			topics: c2,
			members: []Member{
				member(c2, "A", []string{"t1", "t2"}, nil),
				member(c2, "B", []string{"t3"}, nil),
				member(c2, "C", []string{"t2", "t3"}, nil),
			},
			want: map[string]asg{
				"A": {"t1": {0, 1, 2}, "t2": {0, 1}},
				"B": {"t3": {0}},
				"C": {"t2": {2}, "t3": {1}},
			},
		},
		{
			name:   "member joins: ranges shrink, kept partitions stay",
			topics: c3,
			members: []Member{
				member(c3, "A", []string{"t1", "t2"}, asg{"t1": {0, 1}, "t2": {0, 1}}),
				member(c3, "B", []string{"t1", "t2"}, asg{"t1": {2}, "t2": {2}}),
				member(c3, "C", []string{"t1", "t2"}, nil),
			},
			want: map[string]asg{
				"A": {"t1": {0}, "t2": {0}},
				"B": {"t1": {2}, "t2": {2}},
				"C": {"t1": {1}, "t2": {1}},
			},
		},
		{
			name:   "member leaves: its partitions go to the first member with room",
			topics: c3,
			members: []Member{
				member(c3, "A", []string{"t1", "t2"}, asg{"t1": {0}, "t2": {0}}),
				member(c3, "B", []string{"t1", "t2"}, asg{"t1": {1}, "t2": {1}}),
			},
			want: map[string]asg{
				"A": {"t1": {0, 2}, "t2": {0, 2}},
				"B": {"t1": {1}, "t2": {1}},
			},
		},
		{
			name:   "more members than partitions",
			topics: c4,
			members: []Member{
				member(c4, "C", []string{"t1"}, nil),
				member(c4, "A", []string{"t1"}, nil),
				member(c4, "B", []string{"t1"}, nil),
			},
			want: map[string]asg{"A": {"t1": {0}}, "B": {"t1": {1}}, "C": {}},
		},
		{
			name:   "static members first by instance ID, then dynamic by member ID",
			topics: c5,
			members: []Member{
				{ID: "m0", Topics: []string{"t1"}},
				{ID: "m1", InstanceID: str("z"), Topics: []string{"t1"}},
				{ID: "m2", InstanceID: str("a"), Topics: []string{"t1"}},
			},
			want: map[string]asg{"m2": {"t1": {0, 1}}, "m1": {"t1": {2}}, "m0": {"t1": {3}}},
		},
		{
			name:   "partition added: owners keep theirs, the new one fills the gap",
			topics: c5,
			members: []Member{
				member(c5, "A", []string{"t1"}, asg{"t1": {0, 1}}),
				member(c5, "B", []string{"t1"}, asg{"t1": {2}}),
			},
			want: map[string]asg{"A": {"t1": {0, 1}}, "B": {"t1": {2, 3}}},
		},
		{
			name:   "unknown names, stale and conflicting current, idle member, unused topic",
			topics: c6,
			members: []Member{
				member(c6, "B", []string{"b", "c", "nope"}, asg{"a": {0}, "b": {0, 0, 7}, "c": {4}}),
				member(c6, "A", []string{"a", "b", "c"}, asg{"b": {0, 1}}),
				{ID: "idle", Topics: []string{"nope"}, Current: map[[16]byte][]int32{tid(99): {1}}},
			},
			want: map[string]asg{
				// b: A keeps 0 (it sorts first), B's claim on 0 loses; B keeps
				// nothing valid, so ranges: A {0,1}, B {2}.
				// c: A gets the extra slot first; B keeps 4 within its quota.
				"A":    {"a": {0, 1, 2}, "b": {0, 1}, "c": {0, 1, 2}},
				"B":    {"b": {2}, "c": {3, 4}},
				"idle": {},
			},
		},
	})
}

func TestUniformTable(t *testing.T) {
	c1 := cluster("t1:3", "t2:3")
	c2 := cluster("t1:4", "t2:2")
	c3 := cluster("x:4", "y:1")
	runTable(t, Uniform(), []tableCase{
		{
			name:   "homogeneous first assignment deals each topic across members",
			topics: c1,
			members: []Member{
				member(c1, "M3", []string{"t1", "t2"}, nil),
				member(c1, "M1", []string{"t2", "t1"}, nil),
				member(c1, "M2", []string{"t1", "t2"}, nil),
			},
			want: map[string]asg{
				"M1": {"t1": {0}, "t2": {0}},
				"M2": {"t1": {1}, "t2": {1}},
				"M3": {"t1": {2}, "t2": {2}},
			},
		},
		{
			name:   "homogeneous join moves only the newcomer's share",
			topics: c1,
			members: []Member{
				member(c1, "A", []string{"t1", "t2"}, asg{"t1": {0, 1, 2}}),
				member(c1, "B", []string{"t1", "t2"}, asg{"t2": {0, 1, 2}}),
				member(c1, "C", []string{"t1", "t2"}, nil),
			},
			want: map[string]asg{
				"A": {"t1": {0, 1}},
				"B": {"t2": {0, 1}},
				"C": {"t1": {2}, "t2": {2}},
			},
		},
		{
			name:   "homogeneous: extra slot goes to the member owning more",
			topics: c1,
			members: []Member{
				member(c1, "A", []string{"t1", "t2"}, asg{"t1": {0, 1}}),
				member(c1, "B", []string{"t1", "t2"}, asg{"t1": {2}, "t2": {0, 1, 2}}),
				member(c1, "C", []string{"t1", "t2"}, nil),
				member(c1, "D", []string{"t1", "t2"}, nil),
			},
			// P=6, N=4: quotas 1 or 2; A and B own more than 1 and take the
			// two extra slots, so 4 partitions stay put (the maximum).
			want: map[string]asg{
				"A": {"t1": {0, 1}},
				"B": {"t1": {2}, "t2": {0}},
				"C": {"t2": {1}},
				"D": {"t2": {2}},
			},
		},
		{
			name:   "heterogeneous overlapping subscriptions balance evenly",
			topics: c1,
			members: []Member{
				member(c1, "A", []string{"t1"}, nil),
				member(c1, "B", []string{"t1", "t2"}, nil),
				member(c1, "C", []string{"t2"}, nil),
			},
			want: map[string]asg{
				"A": {"t1": {0, 2}},
				"B": {"t1": {1}, "t2": {1}},
				"C": {"t2": {0, 2}},
			},
		},
		{
			name:   "heterogeneous: a sole subscriber takes its whole topic",
			topics: c2,
			members: []Member{
				member(c2, "A", []string{"t1", "t2"}, nil),
				member(c2, "B", []string{"t2"}, nil),
			},
			want: map[string]asg{"A": {"t1": {0, 1, 2, 3}}, "B": {"t2": {0, 1}}},
		},
		{
			name:   "heterogeneous: balance through a chain of subscriptions",
			topics: c3,
			members: []Member{
				member(c3, "A", []string{"x"}, asg{"x": {0, 1, 2}}),
				member(c3, "B", []string{"x", "y"}, asg{"x": {3}, "y": {0}}),
				member(c3, "C", []string{"y"}, nil),
			},
			// A (3) cannot give to C directly; A->B over x and B->C over y
			// leaves 2/2/1.
			want: map[string]asg{"A": {"x": {0, 1}}, "B": {"x": {2, 3}}, "C": {"y": {0}}},
		},
		{
			name:   "idle member and unknown topics",
			topics: c1,
			members: []Member{
				member(c1, "A", []string{"t1", "missing"}, asg{"t2": {0}}),
				{ID: "idle"},
			},
			want: map[string]asg{"A": {"t1": {0, 1, 2}}, "idle": {}},
		},
	})
}

func TestEmptyGroup(t *testing.T) {
	for _, a := range []Assignor{Uniform(), Range()} {
		got, err := a.Assign(nil, cluster("t:3"))
		if err != nil || len(got) != 0 || got == nil {
			t.Fatalf("%s: got %v, %v; want empty non-nil map", a.Name(), got, err)
		}
	}
}

func TestDuplicateMemberID(t *testing.T) {
	c := cluster("t:3")
	for _, a := range []Assignor{Uniform(), Range()} {
		_, err := a.Assign([]Member{{ID: "x", Topics: []string{"t"}}, {ID: "y"}, {ID: "x"}}, c)
		if err == nil || !strings.Contains(err.Error(), `"x"`) {
			t.Fatalf("%s: err = %v, want duplicate member error naming x", a.Name(), err)
		}
	}
}

func TestByName(t *testing.T) {
	for _, name := range []string{"uniform", "range"} {
		a, ok := ByName(name)
		if !ok || a.Name() != name {
			t.Fatalf("ByName(%q) = %v, %v", name, a, ok)
		}
	}
	for _, name := range []string{"", "Uniform", "simple", "org.apache.kafka.clients.consumer.RangeAssignor"} {
		if a, ok := ByName(name); ok {
			t.Fatalf("ByName(%q) = %v, want not found", name, a)
		}
	}
}
