package integration

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streambus/streambus/internal/cli"
)

// cliResult is one streambus-cli run.
type cliResult struct {
	stdout, stderr string
	code           int
}

// runCLI runs streambus-cli in-process against b with stdin.
func runCLI(t testing.TB, b *broker, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errOut strings.Builder
	env := cli.Env{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut}
	code := cli.Execute(testCtx(t, 60*time.Second), env, append([]string{"-b", b.Addr}, args...))
	return cliResult{out.String(), errOut.String(), code}
}

func mustRunCLI(t testing.TB, b *broker, stdin string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, b, stdin, args...)
	if r.code != 0 {
		t.Fatalf("streambus-cli %v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// printable is n bytes of text that does not repeat in a short period.
func printable(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = alphabet[x%uint32(len(alphabet))]
	}
	return string(b)
}

// TestCLILargeRecords writes 3 MB records with streambus-cli to a topic
// whose max.message.bytes is 5000000, above the client's 1 MB default: with
// --max-message-bytes and with the limit the CLI reads from the topic.
func TestCLILargeRecords(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	topic := uniqueTopic(t, "blobs")
	mustRunCLI(t, b, "", "topic", "create", topic, "--partitions", "1", "--config", "max.message.bytes=5000000")
	big := printable(3_000_000)
	mustRunCLI(t, b, big+"\n", "produce", topic, "--max-message-bytes", "5000000")
	mustRunCLI(t, b, strings.ToUpper(big)+"\n", "produce", topic)
	r := mustRunCLI(t, b, "", "consume", topic, "-n", "2")
	if want := big + "\n" + strings.ToUpper(big) + "\n"; r.stdout != want {
		t.Fatalf("consumed %d bytes, not the two 3 MB records produced", len(r.stdout))
	}

	// Over the topic's limit: the client refuses it with the topic's limit,
	// the broker when --max-message-bytes lets the client send it.
	huge := printable(6_000_000)
	r = runCLI(t, b, huge+"\n", "produce", topic)
	if r.code != 1 || !strings.Contains(r.stderr, "MESSAGE_TOO_LARGE") ||
		!strings.Contains(r.stderr, "batch limit 5000000 bytes: the topic's max.message.bytes") {
		t.Fatalf("6 MB record: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t, b, huge+"\n", "produce", topic, "--max-message-bytes", "8000000")
	if r.code != 1 || !strings.Contains(r.stderr, "MESSAGE_TOO_LARGE") {
		t.Fatalf("6 MB record with --max-message-bytes 8000000: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestCLIRecordListTooLarge: a record larger than the topic's segment.bytes
// but within its max.message.bytes is refused with Kafka's
// RECORD_LIST_TOO_LARGE, not MESSAGE_TOO_LARGE.
func TestCLIRecordListTooLarge(t *testing.T) {
	if harness.kind == "kfake" {
		t.Skip("the kfake stand-in does not check segment.bytes")
	}
	b := startBroker(t, brokerOpts{})
	topic := uniqueTopic(t, "small-segments")
	mustRunCLI(t, b, "", "topic", "create", topic, "--partitions", "1", "--config", "segment.bytes=1024")
	r := runCLI(t, b, printable(2000)+"\n", "produce", topic)
	if r.code != 1 || !strings.Contains(r.stderr, "RECORD_LIST_TOO_LARGE") {
		t.Fatalf("2000-byte record, segment.bytes 1024: exit %d stderr %q", r.code, r.stderr)
	}
	mustRunCLI(t, b, printable(500)+"\n", "produce", topic)
}

// trimOutput is `topic trim -o json`.
type trimOutput struct {
	Topic      string `json:"topic"`
	Partitions []struct {
		Partition    int32  `json:"partition"`
		BeforeOffset int64  `json:"before_offset"`
		LowWatermark int64  `json:"low_watermark"`
		Error        string `json:"error"`
	} `json:"partitions"`
}

// TestCLITopicTrim trims by offset and by timestamp with streambus-cli and
// checks the log start offsets the broker then reports.
func TestCLITopicTrim(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	topic := uniqueTopic(t, "trim")
	mustRunCLI(t, b, "", "topic", "create", topic, "--partitions", "3")
	// In the past, so no timestamp limit refuses the records; whole seconds.
	base := time.Now().Add(-30 * time.Minute).Truncate(time.Second)
	cl := newKgo(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for i := range 5 { // partition 0: offsets 0-4, base+0s … base+4s
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 0, Value: []byte("p0"), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	for i := range 3 { // partition 1: offsets 0-2, base+0s … base+2s; partition 2 stays empty
		recs = append(recs, &kgo.Record{Topic: topic, Partition: 1, Value: []byte("p1"), Timestamp: base.Add(time.Duration(i) * time.Second)})
	}
	if err := cl.ProduceSync(testCtx(t, 30*time.Second), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(cl)
	starts := func() []int64 {
		t.Helper()
		so, err := adm.ListStartOffsets(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		var out []int64
		for p := int32(0); p < 3; p++ {
			o, _ := so.Lookup(topic, p)
			out = append(out, o.Offset)
		}
		return out
	}
	trim := func(args ...string) trimOutput {
		t.Helper()
		r := mustRunCLI(t, b, "", append([]string{"topic", "trim", topic, "-o", "json"}, args...)...)
		var out trimOutput
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("trim %v: %v\n%s", args, err, r.stdout)
		}
		return out
	}

	out := trim("--before-offset", "2", "--partitions", "0,1")
	if len(out.Partitions) != 2 || out.Partitions[0].LowWatermark != 2 || out.Partitions[1].LowWatermark != 2 {
		t.Fatalf("--before-offset 2: %+v", out)
	}
	if got := starts(); got[0] != 2 || got[1] != 2 || got[2] != 0 {
		t.Fatalf("log starts %v after --before-offset 2 on partitions 0,1", got)
	}

	// An offset below the log start changes nothing and is no error, as in
	// Kafka (the kfake stand-in answers OFFSET_OUT_OF_RANGE).
	if harness.kind != "kfake" {
		out = trim("--before-offset", "1", "--partitions", "0")
		if len(out.Partitions) != 1 || out.Partitions[0].LowWatermark != 2 || out.Partitions[0].Error != "" {
			t.Fatalf("--before-offset 1 below the log start: %+v", out)
		}
	}

	// base+3.5s: partition 0 before offset 4 (base+4s); partition 1 has
	// nothing that late and the empty partition 2 nothing at all: both to
	// their ends.
	at := base.Add(3500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	out = trim("--before-timestamp", at)
	if len(out.Partitions) != 3 {
		t.Fatalf("--before-timestamp %s: %+v", at, out)
	}
	for i, want := range []int64{4, 3, 0} {
		if p := out.Partitions[i]; p.Partition != int32(i) || p.BeforeOffset != want || p.LowWatermark != want || p.Error != "" {
			t.Errorf("--before-timestamp %s, partition %d: %+v, want trimmed before %d", at, i, p, want)
		}
	}
	if got := starts(); got[0] != 4 || got[1] != 3 || got[2] != 0 {
		t.Fatalf("log starts %v after --before-timestamp %s", got, at)
	}

	// Past a high watermark: that partition fails, exit 1.
	r := runCLI(t, b, "", "topic", "trim", topic, "--before-offset", "5")
	if r.code != 1 || !strings.Contains(r.stdout, "OFFSET_OUT_OF_RANGE") ||
		!strings.Contains(r.stderr, "2 of 3 partition(s) failed") {
		t.Fatalf("--before-offset 5: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if got := starts(); got[0] != 5 || got[1] != 3 || got[2] != 0 {
		t.Fatalf("log starts %v after --before-offset 5", got)
	}
}
