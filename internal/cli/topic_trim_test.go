package cli

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

var rewriteGolden = flag.Bool("rewrite", false, "rewrite the golden files in testdata/ with the output the tests see")

// checkGolden compares got with testdata/name, or writes it there with
// -rewrite.
func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *rewriteGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -rewrite to create it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -rewrite to accept it):\n got:\n%s\nwant:\n%s", path, got, want)
	}
}

// logStarts reads every partition's log start offset with topic describe.
func logStarts(t *testing.T, addr, topic string) []int64 {
	t.Helper()
	var d topicDescription
	r := mustRun(t, addr, "", "topic", "describe", topic, "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("describe json: %v\n%s", err, r.stdout)
	}
	var out []int64
	for _, p := range d.Partitions {
		out = append(out, p.LogStartOffset)
	}
	return out
}

func TestTopicTrim(t *testing.T) {
	addr := startCluster(t)
	mustRun(t, addr, "", "topic", "create", "events", "--partitions", "3")
	// Partition 0: offsets 0-4 at 1 s, 2 s, … 5 s; partition 1: offsets
	// 0-2 at 1 s, 2 s, 3 s; partition 2: empty.
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{Topic: "events", Partition: 0, Value: []byte("p0"), Timestamp: time.UnixMilli(int64(i+1) * 1000)})
	}
	for i := range 3 {
		recs = append(recs, &kgo.Record{Topic: "events", Partition: 1, Value: []byte("p1"), Timestamp: time.UnixMilli(int64(i+1) * 1000)})
	}
	produceDirect(t, addr, recs...)

	// By offset, on the listed partitions only.
	r := mustRun(t, addr, "", "topic", "trim", "events", "--before-offset", "2", "--partitions", "1,0")
	checkGolden(t, "topic-trim/before-offset.txt", r.stdout)
	if got := logStarts(t, addr, "events"); !slices.Equal(got, []int64{2, 2, 0}) {
		t.Fatalf("log starts after --before-offset 2 --partitions 1,0: %v", got)
	}

	// By timestamp, every partition: partition 0 before its record at 4 s,
	// partition 1 (nothing at or after 3.5 s) and the empty partition 2 to
	// their ends.
	r = mustRun(t, addr, "", "topic", "trim", "events", "--before-timestamp", "3500", "-o", "json")
	checkGolden(t, "topic-trim/before-timestamp.json", r.stdout)
	if got := logStarts(t, addr, "events"); !slices.Equal(got, []int64{3, 3, 0}) {
		t.Fatalf("log starts after --before-timestamp 3500: %v", got)
	}

	// RFC 3339, to the millisecond.
	r = mustRun(t, addr, "", "topic", "trim", "events", "--before-timestamp", "1970-01-01T00:00:04.001Z", "--partitions", "0")
	checkGolden(t, "topic-trim/before-rfc3339.txt", r.stdout)
	r = mustRun(t, addr, "", "consume", "events", "--partition", "0", "-n", "1", "--format", `%o %T\n`)
	if r.stdout != "4 5000\n" {
		t.Fatalf("first record of partition 0 after the trims: %q, want offset 4 at 5000 ms", r.stdout)
	}

	// One partition fails (offset past its high watermark), the others are
	// still trimmed, and the exit status is 1.
	r = runCLI(t.Context(), addr, "", "topic", "trim", "events", "--before-offset", "5", "--partitions", "2,0")
	if r.code != 1 || !strings.Contains(r.stderr, `trim topic "events": 1 of 2 partition(s) failed`) {
		t.Fatalf("partial failure: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	checkGolden(t, "topic-trim/partial-failure.txt", r.stdout)

	// Nothing to attempt: an unknown topic or partition fails before any
	// deletion.
	r = runCLI(t.Context(), addr, "", "topic", "trim", "missing", "--before-offset", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Fatalf("unknown topic: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t.Context(), addr, "", "topic", "trim", "events", "--before-offset", "0", "--partitions", "0,7")
	if r.code != 1 || !strings.Contains(r.stderr, "has no partition 7") || r.stdout != "" {
		t.Fatalf("unknown partition: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if got := logStarts(t, addr, "events"); !slices.Equal(got, []int64{5, 3, 0}) {
		t.Fatalf("log starts at the end: %v", got)
	}
}

func TestTopicTrimHelp(t *testing.T) {
	r := mustRun(t, "127.0.0.1:1", "", "topic", "trim", "--help")
	for _, want := range []string{"--before-offset", "--before-timestamp", "--partitions", "RFC 3339",
		"high watermark", "streambus-cli topic trim orders --before-timestamp 2026-01-31T00:00:00Z"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("topic trim --help lacks %q", want)
		}
	}
}

func TestParseTimestamp(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"1769817600000", 1769817600000, true},
		{"2026-01-31T00:00:00Z", 1769817600000, true},
		{"2026-01-31T01:00:00+01:00", 1769817600000, true},
		{"2026-01-31T00:00:00.123456Z", 1769817600123, true},
		{"-1", 0, false},
		{"1969-12-31T23:59:59Z", 0, false},
		{"2026-01-31", 0, false},
		{"yesterday", 0, false},
		{"", 0, false},
	}
	for _, c := range cases {
		got, err := parseTimestamp(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("parseTimestamp(%q) = %d, %v; want %d, ok %v", c.in, got, err, c.want, c.ok)
		}
	}
}
