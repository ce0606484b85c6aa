package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestBenchFixedRate runs both phases for one second at 200 records/s. The
// pacing schedule makes the record count exact: records are due every 5 ms
// from 0 to 995 ms, so 200 are sent whatever the machine's speed.
func TestBenchFixedRate(t *testing.T) {
	addr := startCluster(t)
	r := mustRun(t, addr, "", "bench", "--duration", "1s", "--rate", "200", "--partitions", "2",
		"--record-size", "100", "--mode", "both", "--linger", "1ms", "--progress-interval", "250ms")

	latency := regexp.MustCompile(`(?m)^produce latency \(due -> ack, ms\): p50 [0-9.]+  p90 [0-9.]+  p99 [0-9.]+  p99\.9 [0-9.]+  max [0-9.]+  mean [0-9.]+$`)
	if !latency.MatchString(r.stdout) {
		t.Errorf("no latency percentiles line:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^produce: 200 records, 0\.02 MiB in [0-9.]+s: [0-9.]+ rec/s, [0-9.]+ MiB/s, 0 failed$`).MatchString(r.stdout) {
		t.Errorf("produce summary:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`(?m)^consume: 200 of 200 records`).MatchString(r.stdout) {
		t.Errorf("consume summary:\n%s", r.stdout)
	}
	progress := regexp.MustCompile(`(?m)^produce \[\s*[0-9.]+s\] sent \d+ acked \d+ failed 0 \| [0-9]+ rec/s [0-9.]+ MiB/s \| p50 [0-9.]+ms p99 [0-9.]+ms max [0-9.]+ms$`)
	if !progress.MatchString(r.stderr) {
		t.Errorf("no produce progress line on stderr:\n%s", r.stderr)
	}
	if !regexp.MustCompile(`(?m)^consume \[\s*[0-9.]+s\] records \d+ of 200 \|`).MatchString(r.stderr) {
		t.Errorf("no consume progress line on stderr:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, `created topic "streambus-bench" with 2 partitions`) {
		t.Errorf("topic creation not reported:\n%s", r.stderr)
	}
}

func TestBenchJSONAndModes(t *testing.T) {
	addr := startCluster(t, kfake.SeedTopics(3, "b"))
	r := mustRun(t, addr, "", "bench", "--topic", "b", "--duration", "500ms", "--rate", "100", "--producers", "2",
		"--record-size", "10", "--compression", "lz4", "--acks", "1", "--json")
	var res BenchResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	p := res.Produce
	if res.Consume != nil || p == nil || res.Partitions != 3 || res.Mode != "produce" {
		t.Fatalf("result %+v", res)
	}
	// Two producers interleave on one 10 ms-per-record schedule each: 50 due
	// before 500 ms per producer.
	if p.Records != 50 || p.Bytes != 500 || p.Failed != 0 {
		t.Fatalf("produce %+v", p)
	}
	l := p.LatencyMs
	if !(0 < l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
		t.Fatalf("percentiles not ordered: %+v", l)
	}

	// consume mode reads what is in the topic: the 50 records above.
	r = mustRun(t, addr, "", "bench", "--topic", "b", "--mode", "consume", "--duration", "30s", "--json")
	res = BenchResult{}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	if res.Produce != nil || res.Consume == nil || res.Consume.Records != 50 || res.Consume.Expected != 50 || res.Consume.Bytes != 500 {
		t.Fatalf("consume result %+v", res.Consume)
	}

	r = runCLI(t.Context(), addr, "", "bench", "--topic", "absent", "--mode", "consume")
	if r.code != 1 || !strings.Contains(r.stderr, "does not exist") {
		t.Fatalf("consume of a missing topic: exit %d stderr %q", r.code, r.stderr)
	}
}

// TestBenchTopicCountRoundRobin spreads 120 paced records over 3 topics of 2
// partitions: the producer visits the topics in turn and round-robin visits
// each topic's partitions in turn, so every partition gets exactly 20.
func TestBenchTopicCountRoundRobin(t *testing.T) {
	addr := startCluster(t)
	r := mustRun(t, addr, "", "bench", "--topic", "rr", "--topic-count", "3", "--partitions", "2", "--mode", "create", "--json")
	var res BenchResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	if c := res.Create; c == nil || c.Topics != 3 || c.Partitions != 6 || res.Produce != nil || res.Consume != nil || res.Partitions != 6 {
		t.Fatalf("create result %+v create %+v", res, res.Create)
	}
	if !strings.Contains(r.stderr, "bench: created 3 topics with 6 partitions in all") {
		t.Errorf("creation not reported:\n%s", r.stderr)
	}

	r = mustRun(t, addr, "", "bench", "--topic", "rr", "--topic-count", "3", "--partitioner", "round-robin",
		"--duration", "600ms", "--rate", "200", "--record-size", "10", "--mode", "both", "--json")
	res = BenchResult{}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("--json output: %v\n%s", err, r.stdout)
	}
	if res.Create != nil || res.Topics != 3 || res.Partitions != 6 || res.Partitioner != "round-robin" {
		t.Fatalf("result %+v (topics existed: no create expected)", res)
	}
	if p := res.Produce; p.Records != 120 || p.Failed != 0 {
		t.Fatalf("produce %+v", p)
	}
	if c := res.Consume; c.Records != 120 || c.Expected != 120 {
		t.Fatalf("consume %+v", c)
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(t.Context(), "rr-0", "rr-1", "rr-2")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ends.Each(func(lo kadm.ListedOffset) {
		n++
		if lo.Err != nil || lo.Offset != 20 {
			t.Errorf("%s[%d]: end offset %d, err %v; want 20", lo.Topic, lo.Partition, lo.Offset, lo.Err)
		}
	})
	if n != 6 {
		t.Errorf("listed %d partitions, want 6", n)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	addr := startCluster(t)
	for _, args := range [][]string{
		{"bench", "--topic-count", "0"},
		{"bench", "--partitioner", "hash"},
		{"bench", "--mode", "sometimes"},
	} {
		if r := runCLI(t.Context(), addr, "", args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %q", args, r.code, r.stderr)
		}
	}
}
