package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// tsField matches the JSON timestamp, which is the broker's clock.
var tsField = regexp.MustCompile(`"timestamp":(\d+)`)

func TestProduceStdinThenConsumeJSON(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(2, "orders"))
	stdin := "k1:v1\r\n" + // CRLF is one line ending
		"k2:a:b\n" + // split at the first separator only
		"\xff\xfe:bin\xc3\n" + // invalid UTF-8 key and value
		"nokey\n" + // no separator: --key applies
		"\n" + // empty line: empty value
		"k6:last" // no final newline: still a record
	before := time.Now().UnixMilli()
	r := mustRun(t, addr, stdin, "produce", "orders", "--key-separator", ":", "--key", "dflt",
		"--header", "src=cli", "--header", "trace=a=b", "--partition", "1")
	if !strings.Contains(r.stderr, "produced 6 of 6 record(s)") || !strings.Contains(r.stderr, "0 failed") {
		t.Fatalf("produce summary: %q", r.stderr)
	}

	r = mustRun(t, addr, "", "consume", "orders", "-n", "6", "--format", "json")
	got := lines(r.stdout)
	if len(got) != 6 {
		t.Fatalf("want 6 JSON lines, got %d:\n%s", len(got), r.stdout)
	}
	for _, l := range got {
		m := tsField.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("no timestamp in %s", l)
		}
		var ts int64
		fmt.Sscan(m[1], &ts)
		if ts < before-60_000 || ts > time.Now().UnixMilli()+60_000 {
			t.Errorf("timestamp %d not near the produce time %d", ts, before)
		}
	}
	const hdrs = `"headers":[{"key":"src","value":"cli"},{"key":"trace","value":"a=b"}]`
	want := []string{
		`{"topic":"orders","partition":1,"offset":0,"timestamp":T,"key":"k1","value":"v1",` + hdrs + `}`,
		`{"topic":"orders","partition":1,"offset":1,"timestamp":T,"key":"k2","value":"a:b",` + hdrs + `}`,
		`{"topic":"orders","partition":1,"offset":2,"timestamp":T,"key":"//4=","key_encoding":"base64","value":"Ymluww==","value_encoding":"base64",` + hdrs + `}`,
		`{"topic":"orders","partition":1,"offset":3,"timestamp":T,"key":"dflt","value":"nokey",` + hdrs + `}`,
		`{"topic":"orders","partition":1,"offset":4,"timestamp":T,"key":"dflt","value":"",` + hdrs + `}`,
		`{"topic":"orders","partition":1,"offset":5,"timestamp":T,"key":"k6","value":"last",` + hdrs + `}`,
	}
	for i := range want {
		if g := tsField.ReplaceAllString(got[i], `"timestamp":T`); g != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, g, want[i])
		}
	}
	if !strings.Contains(r.stderr, "consumed 6 record(s)") {
		t.Errorf("consume summary: %q", r.stderr)
	}
}

func TestProduceValuesNullKeyAndTextFormat(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	mustRun(t, addr, "ignored stdin\n", "produce", "t", "--value", "one", "--value", "two", "--acks", "1", "--compression", "zstd")
	r := mustRun(t, addr, "", "consume", "t", "-n", "2")
	if r.stdout != "one\ntwo\n" {
		t.Fatalf("text output %q", r.stdout)
	}
	r = mustRun(t, addr, "", "consume", "t", "-n", "2", "--format", `%t/%p/%o key=%k(%K) %v(%V) [%h] 100%%\n`)
	want := "t/0/0 key=(-1) one(3) [] 100%\nt/0/1 key=(-1) two(3) [] 100%\n"
	if r.stdout != want {
		t.Fatalf("template output\n got %q\nwant %q", r.stdout, want)
	}
	r = mustRun(t, addr, "", "consume", "t", "-n", "1", "--format", "json")
	if !strings.Contains(r.stdout, `"key":null`) || !strings.Contains(r.stdout, `"headers":[]`) {
		t.Fatalf("null key / empty headers not rendered as null / []: %s", r.stdout)
	}
	// An explicitly empty key is an empty key, not a null one.
	mustRun(t, addr, "", "produce", "t", "--key", "", "--value", "three")
	r = mustRun(t, addr, "", "consume", "t", "--from", "2", "-n", "1", "--format", `%K %v\n`)
	if r.stdout != "0 three\n" {
		t.Fatalf("empty key: %q", r.stdout)
	}
}

func TestProduceFailureExit1(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	r := runCLI(t.Context(), addr, "a\nb\n", "produce", "t", "--partition", "7", "--request-timeout", "5s")
	if r.code != 1 {
		t.Fatalf("exit %d, want 1; stderr %s", r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "record 1:") || !strings.Contains(r.stderr, "2 of 2 record(s) failed") {
		t.Fatalf("failures not reported: %s", r.stderr)
	}
}

// seedTimestamped writes 5 records to partition 0 with timestamps 1000..5000.
func seedTimestamped(t *testing.T, addr, topic string) {
	var recs []*kgo.Record
	for i := range 5 {
		recs = append(recs, &kgo.Record{
			Topic: topic, Partition: 0, Value: fmt.Appendf(nil, "v%d", i),
			Timestamp: time.UnixMilli(int64(1000 * (i + 1))),
		})
	}
	produceDirect(t, addr, recs...)
}

func TestConsumeFrom(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(2, "t"))
	seedTimestamped(t, addr, "t")
	const f = `%p:%o:%T:%v\n`
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"timestamp", []string{"--from", "@3000", "-n", "3"}, "0:2:3000:v2\n0:3:4000:v3\n0:4:5000:v4\n"},
		{"timestamp between records", []string{"--from", "@3500", "-n", "1"}, "0:3:4000:v3\n"},
		{"offset", []string{"--from", "1", "--partition", "0", "-n", "2"}, "0:1:2000:v1\n0:2:3000:v2\n"},
		{"relative to end", []string{"--from=-2", "-n", "2"}, "0:3:4000:v3\n0:4:5000:v4\n"},
		{"beginning", []string{"--from", "beginning", "--partition", "0", "-n", "1"}, "0:0:1000:v0\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRun(t, addr, "", append([]string{"consume", "t", "--format", f}, c.args...)...)
			if r.stdout != c.want {
				t.Fatalf("got %q, want %q", r.stdout, c.want)
			}
		})
	}
}

func TestConsumeIdleTimeoutAndEnd(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	seedTimestamped(t, addr, "t")
	// Past every record, nothing arrives: the idle timeout ends it with 0.
	r := mustRun(t, addr, "", "consume", "t", "--from", "@9000", "--timeout", "300ms")
	if r.stdout != "" || !strings.Contains(r.stderr, "consumed 0 record(s)") || !strings.Contains(r.stderr, "no record for 300ms") {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = mustRun(t, addr, "", "consume", "t", "--from", "end", "--timeout", "300ms")
	if r.stdout != "" {
		t.Fatalf("--from end printed old records: %q", r.stdout)
	}
}

// TestConsumeFromEndSeesOnlyNewRecords keeps producing until a consumer that
// started at the end prints one record, which must be a new one.
func TestConsumeFromEndSeesOnlyNewRecords(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	seedTimestamped(t, addr, "t")
	done := make(chan result, 1)
	go func() {
		done <- runCLI(t.Context(), addr, "", "consume", "t", "--from", "end", "-n", "1", "--format", `%o\n`)
	}()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case r := <-done:
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			var off int
			if _, err := fmt.Sscan(r.stdout, &off); err != nil || off < 5 {
				t.Fatalf("consumed offset %q, want a new record (>= 5)", r.stdout)
			}
			return
		case <-deadline:
			t.Fatal("consumer never saw a new record")
		case <-time.After(50 * time.Millisecond):
			produceDirect(t, addr, &kgo.Record{Topic: "t", Partition: 0, Value: []byte("new")})
		}
	}
}

func TestConsumeMissingTopicOrPartition(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	r := runCLI(t.Context(), addr, "", "consume", "nope", "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, `topic "nope" does not exist`) {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t.Context(), addr, "", "consume", "t", "--partition", "3", "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "no partition 3") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
}

// TestConsumeCancelStopsCleanly cancels the context (what SIGINT/SIGTERM do
// in main) once a record has been printed: consume must exit 0.
func TestConsumeCancelStopsCleanly(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	produceDirect(t, addr, &kgo.Record{Topic: "t", Value: []byte("hello")})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		code := Execute(ctx, Env{Stdout: pw, Stderr: &errOut}, []string{"-b", addr, "consume", "t"})
		pw.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil || line != "hello\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	cancel()
	go io.Copy(io.Discard, pr) // drain anything else so the command never blocks
	if code := <-done; code != 0 {
		t.Fatalf("exit %d after cancel, stderr %q", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "consumed 1 record(s)") || !strings.Contains(errOut.String(), "interrupted") {
		t.Fatalf("summary: %q", errOut.String())
	}
}

func TestJSONOutputIsValidJSON(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	produceDirect(t, addr, &kgo.Record{
		Topic: "t", Key: []byte("k\"\n<"), Value: []byte{0, 1, 0xff},
		Headers: []kgo.RecordHeader{{Key: "h", Value: nil}, {Key: "h", Value: []byte("dup")}},
	})
	r := mustRun(t, addr, "", "consume", "t", "-n", "1", "--format", "json")
	var jr jsonRecord
	if err := json.Unmarshal([]byte(r.stdout), &jr); err != nil {
		t.Fatalf("invalid JSON %q: %v", r.stdout, err)
	}
	if *jr.Key != "k\"\n<" || jr.KeyEncoding != "" || jr.ValueEncoding != "base64" || *jr.Value != "AAH/" {
		t.Fatalf("key/value: %+v", jr)
	}
	if len(jr.Headers) != 2 || jr.Headers[0].Value != nil || *jr.Headers[1].Value != "dup" {
		t.Fatalf("headers: %+v", jr.Headers)
	}
}

// TestProduceCancelStopsReadingCleanly cancels produce while it waits for
// more stdin after delivering a line: it stops and exits 0.
func TestProduceCancelStopsReadingCleanly(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	defer pw.Close() // lets the stdin reader goroutine finish
	var errOut syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Execute(ctx, Env{Stdin: pr, Stderr: &errOut}, []string{"-b", addr, "produce", "t"})
	}()
	if _, err := pw.Write([]byte("first\n")); err != nil {
		t.Fatal(err)
	}
	// Once the record is on the broker, produce has taken the line and is
	// blocked reading stdin again: that is the moment to interrupt it.
	if r := mustRun(t, addr, "", "consume", "t", "-n", "1"); r.stdout != "first\n" {
		t.Fatalf("consumed %q", r.stdout)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "produced 1 of 1 record(s)") || !strings.Contains(errOut.String(), "interrupted") {
		t.Fatalf("stderr %q", errOut.String())
	}
}

func TestProduceAcksAndCodecs(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(1, "t"))
	var want strings.Builder
	for _, c := range []struct{ acks, codec string }{
		{"all", "gzip"}, {"1", "snappy"}, {"0", "lz4"}, {"all", "none"},
	} {
		v := c.acks + "-" + c.codec
		mustRun(t, addr, "", "produce", "t", "--acks", c.acks, "--compression", c.codec, "--value", v)
		want.WriteString(v + "\n")
	}
	r := mustRun(t, addr, "", "consume", "t", "-n", "4")
	if r.stdout != want.String() {
		t.Fatalf("got %q want %q", r.stdout, want.String())
	}
}
