package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"
)

// seedValues writes n records with values v0..v(n-1), spread round-robin
// over partitions.
func seedValues(t *testing.T, addr, topic string, partitions int32, n int) []string {
	t.Helper()
	recs := make([]*kgo.Record, n)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("v%d", i)
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Value: []byte(want[i])}
	}
	produceDirect(t, addr, recs...)
	return want
}

// describeGroupJSON runs `group describe -o json` for one group.
func describeGroupJSON(t *testing.T, addr, group string) groupDescription {
	t.Helper()
	r := mustRun(t, addr, "", "group", "describe", group, "-o", "json")
	var ds []groupDescription
	if err := json.Unmarshal([]byte(r.stdout), &ds); err != nil || len(ds) != 1 {
		t.Fatalf("describe json (%v):\n%s", err, r.stdout)
	}
	return ds[0]
}

func TestGroupConsumeResumesFromCommit(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	want := seedValues(t, addr, "t", 1, 10)

	r := mustRun(t, addr, "", "consume", "t", "--group", "g", "-n", "4")
	if r.stdout != strings.Join(want[:4], "\n")+"\n" {
		t.Fatalf("first run printed %q", r.stdout)
	}
	if !strings.Contains(r.stderr, `group "g": committed offsets of 1 partition(s), left the group`) {
		t.Fatalf("first run stderr %q", r.stderr)
	}
	d := describeGroupJSON(t, addr, "g")
	if d.State != "Empty" || len(d.Members) != 0 || len(d.Partitions) != 1 ||
		d.Partitions[0].CommittedOffset != 4 || d.Partitions[0].LogEndOffset != 10 || d.Partitions[0].Lag != 6 || d.TotalLag != 6 {
		t.Fatalf("after 4 records: %+v", d)
	}

	// --from applies only without a commit: the group resumes at offset 4.
	r = mustRun(t, addr, "", "consume", "t", "--group", "g", "--from", "end", "-n", "3")
	if r.stdout != strings.Join(want[4:7], "\n")+"\n" {
		t.Fatalf("second run printed %q", r.stdout)
	}
	// The idle timeout is a clean stop too: it commits what it printed.
	r = mustRun(t, addr, "", "consume", "t", "--group", "g", "--timeout", "1s")
	if r.stdout != strings.Join(want[7:], "\n")+"\n" || !strings.Contains(r.stderr, "no record for 1s") {
		t.Fatalf("third run printed %q, stderr %q", r.stdout, r.stderr)
	}
	d = describeGroupJSON(t, addr, "g")
	if d.TotalLag != 0 || d.Partitions[0].CommittedOffset != 10 || d.Partitions[0].Lag != 0 {
		t.Fatalf("after consuming everything: %+v", d)
	}

	// A new group with --from end sees nothing of the old records.
	r = mustRun(t, addr, "", "consume", "t", "--group", "other", "--from", "end", "--timeout", "500ms")
	if r.stdout != "" {
		t.Fatalf("--from end in a new group printed %q", r.stdout)
	}
}

// startGroupConsumer runs `consume --group` until ctx is cancelled.
func startGroupConsumer(ctx context.Context, addr string, args ...string) (*syncBuffer, *syncBuffer, <-chan int) {
	var out, errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, Env{Stdout: &out, Stderr: &errOut}, append([]string{"-b", addr, "consume"}, args...))
	}()
	return &out, &errOut, done
}

// waitGroup polls the group until cond holds for its description.
func waitGroup(t *testing.T, addr, group string, what string, cond func(groupDescription) bool) groupDescription {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := runCLI(t.Context(), addr, "", "group", "describe", group, "-o", "json")
		var ds []groupDescription
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &ds) == nil && len(ds) == 1 && cond(ds[0]) {
			return ds[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %q never %s; last describe: exit %d\n%s%s", group, what, r.code, r.stdout, r.stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func assignedCount(d groupDescription) (members, partitions int) {
	for _, m := range d.Members {
		n := 0
		for _, a := range m.Assignment {
			n += len(a.Partitions)
		}
		if n > 0 {
			members++
		}
		partitions += n
	}
	return members, partitions
}

// testTwoMembersShare has two members of one group share a 4-partition
// topic: both get partitions, and every record is printed exactly once.
func testTwoMembersShare(t *testing.T, wantType, wantProtocol string, args ...string) {
	addr := startCluster(t, kfake.SeedTopics(4, "t"),
		kfake.BrokerConfigs(map[string]string{"group.consumer.heartbeat.interval.ms": "100"}))
	// Records before the members join, and more once they share the
	// topic: the first member may consume some before the second one
	// joins, and the rebalance must hand those partitions over at the
	// committed position.
	want := seedValues(t, addr, "t", 4, 40)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	base := append([]string{"t", "--group", "g", "--format", `%v\n`}, args...)
	out1, err1, done1 := startGroupConsumer(ctx, addr, base...)
	out2, err2, done2 := startGroupConsumer(ctx, addr, base...)

	d := waitGroup(t, addr, "g", "shared the topic between two members", func(d groupDescription) bool {
		m, p := assignedCount(d)
		return d.State == "Stable" && len(d.Members) == 2 && m == 2 && p == 4
	})
	if d.Type != wantType || d.Protocol != wantProtocol {
		t.Fatalf("group type %q protocol %q, want %q %q", d.Type, d.Protocol, wantType, wantProtocol)
	}
	for _, m := range d.Members {
		for _, a := range m.Assignment {
			if a.Topic != "t" {
				t.Fatalf("member %s assigned topic %q, want t", m.MemberID, a.Topic)
			}
		}
	}
	r := mustRun(t, addr, "", "group", "list", "-o", "json")
	var list []groupSummary
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 ||
		list[0] != (groupSummary{Group: "g", State: "Stable", Type: wantType, ProtocolType: "consumer", Members: 2}) {
		t.Fatalf("list (%v): %s", err, r.stdout)
	}
	var more []*kgo.Record
	for i := 40; i < 80; i++ {
		v := fmt.Sprintf("v%d", i)
		want = append(want, v)
		more = append(more, &kgo.Record{Topic: "t", Partition: int32(i) % 4, Value: []byte(v)})
	}
	produceDirect(t, addr, more...)

	deadline := time.Now().Add(30 * time.Second)
	for len(lines(out1.String()))+len(lines(out2.String())) < len(want) {
		if time.Now().After(deadline) {
			t.Fatalf("consumed %d+%d of %d records\nmember 1 stderr: %s\nmember 2 stderr: %s",
				len(lines(out1.String())), len(lines(out2.String())), len(want), err1.String(), err2.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if c1, c2 := <-done1, <-done2; c1 != 0 || c2 != 0 {
		t.Fatalf("exit %d and %d\nstderr 1: %s\nstderr 2: %s", c1, c2, err1.String(), err2.String())
	}
	got1, got2 := lines(out1.String()), lines(out2.String())
	if len(got1) == 0 || len(got2) == 0 {
		t.Fatalf("one member consumed nothing: %d and %d records", len(got1), len(got2))
	}
	got := slices.Concat(got1, got2)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("records not consumed exactly once:\n got %v\nwant %v", got, want)
	}
	// Both stopped cleanly: everything printed is committed, the group is
	// empty and has nothing left to consume.
	d = describeGroupJSON(t, addr, "g")
	if d.State != "Empty" || len(d.Members) != 0 || d.TotalLag != 0 || len(d.Partitions) != 4 {
		t.Fatalf("after both stopped: %+v", d)
	}
	for _, p := range d.Partitions {
		if p.CommittedOffset != 20 || p.LogEndOffset != 20 || p.Lag != 0 {
			t.Fatalf("partition after both stopped: %+v", p)
		}
	}
}

func TestGroupTwoMembersShareClassic(t *testing.T) {
	testTwoMembersShare(t, "classic", "cooperative-sticky")
}

func TestGroupTwoMembersShareConsumerProtocol(t *testing.T) {
	testTwoMembersShare(t, "consumer", "uniform", "--group-protocol", "consumer")
	testTwoMembersShare(t, "consumer", "range", "--group-protocol", "consumer", "--balancer", "range")
}

func TestGroupDescribeWhileConsuming(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(2, "t"))
	seedValues(t, addr, "t", 2, 6)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, errOut, done := startGroupConsumer(ctx, addr, "t", "--group", "g", "--instance-id", "inst-1", "--balancer", "range",
		"--commit-interval", "100ms")
	d := waitGroup(t, addr, "g", "consumed everything", func(d groupDescription) bool {
		return d.State == "Stable" && len(d.Partitions) == 2 && d.TotalLag == 0 &&
			d.Partitions[0].CommittedOffset == 3 && d.Partitions[1].CommittedOffset == 3
	})
	if len(d.Members) != 1 || d.Members[0].InstanceID == nil || *d.Members[0].InstanceID != "inst-1" ||
		d.Members[0].ClientID != "streambus-cli" || d.Members[0].Host == "" || d.Protocol != "range" || d.ProtocolType != "consumer" {
		t.Fatalf("member: %+v", d)
	}
	if got := formatAssignment(d.Members[0].Assignment); got != "t:0,1" {
		t.Fatalf("assignment %q", got)
	}
	for _, p := range d.Partitions {
		if p.Owner != d.Members[0].MemberID {
			t.Fatalf("partition %d owned by %q, want %q", p.Partition, p.Owner, d.Members[0].MemberID)
		}
	}

	// The table has the same facts.
	r := mustRun(t, addr, "", "group", "describe", "g")
	for _, re := range []string{
		`(?m)^State: Stable$`, `(?m)^Protocol: range$`, `(?m)^Members: 1$`,
		`(?m)^MEMBER-ID\s+INSTANCE-ID\s+CLIENT-ID\s+HOST\s+ASSIGNMENT$`,
		`(?m)^\S+\s+inst-1\s+streambus-cli\s+\S+\s+t:0,1$`,
		`(?m)^TOPIC\s+PARTITION\s+COMMITTED-OFFSET\s+LOG-END-OFFSET\s+LAG\s+OWNER\s+ERROR$`,
		`(?m)^t\s+0\s+3\s+3\s+0\s+\S+\s*$`, `(?m)^t\s+1\s+3\s+3\s+0\s+\S+\s*$`, `(?m)^Total lag: 0$`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("describe table lacks %s:\n%s", re, r.stdout)
		}
	}

	// reset-offsets refuses while the group has a member, dry run or not.
	for _, extra := range [][]string{nil, {"--execute"}} {
		r = runCLI(t.Context(), addr, "", append([]string{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest"}, extra...)...)
		if r.code != 1 || !strings.Contains(r.stderr, `group "g" is not inactive (state Stable, 1 member(s))`) {
			t.Fatalf("reset of an active group %v: exit %d stderr %q", extra, r.code, r.stderr)
		}
	}
	// So does delete.
	r = runCLI(t.Context(), addr, "", "group", "delete", "g")
	if r.code != 1 || !strings.Contains(r.stderr, "NON_EMPTY_GROUP") {
		t.Fatalf("delete of an active group: exit %d stderr %q", r.code, r.stderr)
	}

	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), `static member "inst-1" stays in the group`) {
		t.Fatalf("stderr %q", errOut.String())
	}
}

func TestGroupResetOffsets(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(2, "t"))
	seedTimestamped(t, addr, "t") // partition 0: offsets 0-4, timestamps 1000-5000
	mustRun(t, addr, "", "consume", "t", "--group", "g", "--timeout", "500ms")

	committed := func() map[int32]int64 {
		d := describeGroupJSON(t, addr, "g")
		out := map[int32]int64{}
		for _, p := range d.Partitions {
			out[p.Partition] = p.CommittedOffset
		}
		return out
	}
	before := committed()
	if before[0] != 5 {
		t.Fatalf("committed before reset: %v", before)
	}

	// Dry run: prints the plan, commits nothing.
	r := mustRun(t, addr, "", "group", "reset-offsets", "g", "--topic", "t", "--to-earliest")
	if !regexp.MustCompile(`(?m)^TOPIC\s+PARTITION\s+CURRENT-OFFSET\s+NEW-OFFSET$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^t\s+0\s+5\s+0$`).MatchString(r.stdout) ||
		!regexp.MustCompile(`(?m)^t\s+1\s+\S+\s+0$`).MatchString(r.stdout) ||
		!strings.Contains(r.stderr, "dry run") {
		t.Fatalf("dry run:\n%s\nstderr %q", r.stdout, r.stderr)
	}
	if got := committed(); got[0] != 5 {
		t.Fatalf("dry run changed the commit: %v", got)
	}

	cases := []struct {
		name string
		args []string
		want int64 // partition 0
	}{
		{"shift back", []string{"--shift-by", "-2"}, 3},
		{"timestamp", []string{"--to-timestamp", "2500"}, 2},
		{"offset", []string{"--to-offset", "4"}, 4},
		{"offset clamped", []string{"--to-offset", "99"}, 5},
		{"shift clamped", []string{"--shift-by", "-99"}, 0},
		{"latest", []string{"--to-latest"}, 5},
		{"earliest", []string{"--to-earliest"}, 0},
	}
	for _, c := range cases {
		r := mustRun(t, addr, "", append([]string{"group", "reset-offsets", "g", "--topic", "t", "--partition", "0", "--execute", "-o", "json"}, c.args...)...)
		var plan resetPlan
		if err := json.Unmarshal([]byte(r.stdout), &plan); err != nil {
			t.Fatalf("%s: json %v\n%s", c.name, err, r.stdout)
		}
		if !plan.Executed || len(plan.Partitions) != 1 || plan.Partitions[0].NewOffset != c.want {
			t.Fatalf("%s: plan %+v", c.name, plan)
		}
		if got := committed()[0]; got != c.want {
			t.Fatalf("%s: committed %d, want %d", c.name, got, c.want)
		}
	}

	// Back at the start, the group sees partition 0's records again.
	r = mustRun(t, addr, "", "consume", "t", "--group", "g", "-n", "5", "--format", `%p:%o\n`)
	if r.stdout != "0:0\n0:1\n0:2\n0:3\n0:4\n" {
		t.Fatalf("after reset to earliest: %q", r.stdout)
	}
}

func TestGroupResetOffsetsErrors(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	seedValues(t, addr, "t", 1, 3)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--topic", "t"}, 2, "exactly one of"},
		{[]string{"--topic", "t", "--to-earliest", "--to-latest"}, 2, "exactly one of"},
		{[]string{"--to-earliest"}, 2, "--topic is required"},
		{[]string{"--topic", "t", "--to-offset", "-1"}, 2, "must not be negative"},
		{[]string{"--topic", "nope", "--to-earliest"}, 1, `topic "nope" does not exist`},
		{[]string{"--topic", "t", "--partition", "5", "--to-earliest"}, 1, "no partition 5"},
		{[]string{"--topic", "t", "--shift-by", "1"}, 1, "no committed offset"},
	}
	for _, c := range cases {
		r := runCLI(t.Context(), addr, "", append([]string{"group", "reset-offsets", "fresh"}, c.args...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, r.code, c.code, r.stderr, c.want)
		}
	}
	// A group that does not exist yet may be given offsets: the commit
	// creates it, and a consumer of the group starts there.
	mustRun(t, addr, "", "group", "reset-offsets", "fresh", "--topic", "t", "--to-offset", "2", "--execute")
	r := mustRun(t, addr, "", "consume", "t", "--group", "fresh", "-n", "1")
	if r.stdout != "v2\n" {
		t.Fatalf("consumed %q after reset of a new group", r.stdout)
	}
}

func TestGroupListAndDelete(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	seedValues(t, addr, "t", 1, 2)
	mustRun(t, addr, "", "consume", "t", "--group", "a", "-n", "1")
	mustRun(t, addr, "", "consume", "t", "--group", "b", "-n", "1")

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	_, errOut, done := startGroupConsumer(ctx, addr, "t", "--group", "live")
	waitGroup(t, addr, "live", "became stable", func(d groupDescription) bool { return d.State == "Stable" })

	r := mustRun(t, addr, "", "group", "list")
	rows := lines(r.stdout)
	if len(rows) != 4 || !regexp.MustCompile(`^GROUP\s+STATE\s+TYPE\s+PROTOCOL-TYPE\s+MEMBERS$`).MatchString(rows[0]) ||
		!regexp.MustCompile(`^a\s+Empty\s+\S+\s+consumer\s+0$`).MatchString(rows[1]) ||
		!regexp.MustCompile(`^b\s+Empty\s+\S+\s+consumer\s+0$`).MatchString(rows[2]) ||
		!regexp.MustCompile(`^live\s+Stable\s+\S+\s+consumer\s+1$`).MatchString(rows[3]) {
		t.Fatalf("list:\n%s", r.stdout)
	}
	r = mustRun(t, addr, "", "group", "list", "--state", "stable", "-o", "json")
	var list []groupSummary
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list json: %v\n%s", err, r.stdout)
	}
	if len(list) != 1 || list[0] != (groupSummary{Group: "live", State: "Stable", Type: "classic", ProtocolType: "consumer", Members: 1}) {
		t.Fatalf("list --state stable: %+v", list)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}

	r = runCLI(t.Context(), addr, "", "group", "delete", "a", "nope", "b")
	if r.code != 1 || r.stdout != "deleted group \"a\"\ndeleted group \"b\"\n" ||
		!strings.Contains(r.stderr, `delete group "nope": GROUP_ID_NOT_FOUND`) {
		t.Fatalf("delete: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = mustRun(t, addr, "", "group", "list", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list) != 1 || list[0].Group != "live" {
		t.Fatalf("list after delete (%v): %s", err, r.stdout)
	}
	r = runCLI(t.Context(), addr, "", "group", "describe", "a")
	if r.code != 1 || !strings.Contains(r.stderr, `group "a": group does not exist`) {
		t.Fatalf("describe deleted group: exit %d stderr %q", r.code, r.stderr)
	}
}

func TestGroupConsumeUsageErrors(t *testing.T) {
	addr := "127.0.0.1:1" // never dialled
	cases := [][]string{
		{"consume", "t", "--balancer", "range"},
		{"consume", "t", "--instance-id", "x"},
		{"consume", "t", "--group-protocol", "consumer"},
		{"consume", "t", "--commit-interval", "1s"},
		{"consume", "t", "--group", "g", "--commit-interval", "0s"},
		{"consume", "t", "--group", "g", "--partition", "0"},
		{"consume", "t", "--group", "g", "--balancer", "fair"},
		{"consume", "t", "--group", "g", "--group-protocol", "next"},
		{"consume", "t", "--group", "g", "--group-protocol", "consumer", "--balancer", "roundrobin"},
		{"consume", "t", "--group", "g", "--instance-id", ""},
		{"group"},
		{"group", "describe"},
		{"group", "delete"},
		{"group", "list", "--state", "sleepy"},
		{"group", "describe", "g", "-o", "xml"},
		{"group", "reset-offsets", "g", "--topic", "t", "--to-earliest", "-o", "xml"},
	}
	for _, args := range cases {
		if r := runCLI(t.Context(), addr, "", args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2\nstderr: %s", args, r.code, r.stderr)
		}
	}
}

func TestGroupHelp(t *testing.T) {
	r := mustRun(t, "127.0.0.1:1", "", "consume", "--help")
	for _, want := range []string{"--group G", "--balancer", "--instance-id", "--group-protocol", "--commit-interval", "no committed\n  offset"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("consume --help lacks %q", want)
		}
	}
	r = mustRun(t, "127.0.0.1:1", "", "group", "--help")
	for _, want := range []string{"list", "describe", "delete", "reset-offsets"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("group --help lacks %q", want)
		}
	}
}

// TestGroupProtocolConsumerUnsupported: asking for KIP-848 from a broker
// without it fails instead of silently using the classic protocol.
func TestGroupProtocolConsumerUnsupported(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"), kfake.MaxVersions(kversionWithout848()))
	r := runCLI(t.Context(), addr, "", "consume", "t", "--group", "g", "--group-protocol", "consumer", "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "does not support the consumer group protocol") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

// kversionWithout848 is a Kafka 3.9 cluster: classic groups only.
func kversionWithout848() *kversion.Versions { return kversion.V3_9_0() }
