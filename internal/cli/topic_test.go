package cli

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestTopicLifecycle(t *testing.T) {
	addr := startCluster(t)

	r := mustRun(t, addr, "", "topic", "create", "events", "--partitions", "3", "--replication-factor", "1",
		"--config", "retention.ms=1000", "--config", "cleanup.policy=compact")
	if r.stdout != "created topic \"events\" (partitions 3, replication factor 1)\n" {
		t.Fatalf("create output %q", r.stdout)
	}
	mustRun(t, addr, "", "topic", "create", "other", "--partitions", "1")

	r = runCLI(t.Context(), addr, "", "topic", "create", "events", "--partitions", "3")
	if r.code != 1 || !strings.Contains(r.stderr, "TOPIC_ALREADY_EXISTS") {
		t.Fatalf("duplicate create: exit %d stderr %q", r.code, r.stderr)
	}
	r = mustRun(t, addr, "", "topic", "create", "events", "--if-not-exists")
	if !strings.Contains(r.stdout, "already exists") {
		t.Fatalf("--if-not-exists output %q", r.stdout)
	}

	// list, table: header then rows sorted by name.
	r = mustRun(t, addr, "", "topic", "list")
	rows := lines(r.stdout)
	if len(rows) != 3 || !regexp.MustCompile(`^TOPIC\s+PARTITIONS\s+REPLICATION-FACTOR\s+ID$`).MatchString(rows[0]) ||
		!regexp.MustCompile(`^events\s+3\s+1\s+\S+$`).MatchString(rows[1]) ||
		!regexp.MustCompile(`^other\s+1\s+1\s+\S+$`).MatchString(rows[2]) {
		t.Fatalf("list table:\n%s", r.stdout)
	}
	r = mustRun(t, addr, "", "topic", "list", "-o", "json")
	var list []topicSummary
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list json: %v\n%s", err, r.stdout)
	}
	if len(list) != 2 || list[0].Topic != "events" || list[0].Partitions != 3 || list[0].ReplicationFactor != 1 || list[0].ID == "" {
		t.Fatalf("list json: %+v", list)
	}

	produceDirect(t, addr, &kgo.Record{Topic: "events", Partition: 2, Value: []byte("x")},
		&kgo.Record{Topic: "events", Partition: 2, Value: []byte("y")})

	// describe, json: overrides only, partitions with leader/replicas/ISR and offsets.
	r = mustRun(t, addr, "", "topic", "describe", "events", "-o", "json")
	var d topicDescription
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("describe json: %v\n%s", err, r.stdout)
	}
	if d.Topic != "events" || d.ID != list[0].ID || d.ReplicationFactor != 1 || len(d.Partitions) != 3 {
		t.Fatalf("describe json: %+v", d)
	}
	wantCfg := map[string]string{"retention.ms": "1000", "cleanup.policy": "compact"}
	if len(d.Configs) != len(wantCfg) || d.Configs["retention.ms"] != "1000" || d.Configs["cleanup.policy"] != "compact" {
		t.Fatalf("configs %v, want only the overrides %v", d.Configs, wantCfg)
	}
	for i, p := range d.Partitions {
		if p.Partition != int32(i) || p.Leader != 0 || len(p.Replicas) != 1 || len(p.ISR) != 1 || p.LogStartOffset != 0 {
			t.Errorf("partition %d: %+v", i, p)
		}
		wantHW := int64(0)
		if i == 2 {
			wantHW = 2
		}
		if p.HighWatermark != wantHW {
			t.Errorf("partition %d high watermark %d, want %d", i, p.HighWatermark, wantHW)
		}
	}

	// describe, table.
	r = mustRun(t, addr, "", "topic", "describe", "events")
	for _, want := range []string{"Topic: events\n", "Partitions: 3\n", "Replication factor: 1\n",
		"  cleanup.policy=compact\n  retention.ms=1000\n"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("describe table lacks %q:\n%s", want, r.stdout)
		}
	}
	if !regexp.MustCompile(`(?m)^2\s+0\s+0\s+0\s+0\s+-\s+0\s+2\s*$`).MatchString(r.stdout) {
		t.Errorf("describe table has no row for partition 2 with high watermark 2:\n%s", r.stdout)
	}
	r = mustRun(t, addr, "", "topic", "describe", "other")
	if !strings.Contains(r.stdout, "Configs: (no overrides)") {
		t.Errorf("topic without overrides:\n%s", r.stdout)
	}

	// delete: one good, one missing -> both attempted, exit 1.
	r = runCLI(t.Context(), addr, "", "topic", "delete", "other", "missing")
	if r.code != 1 || r.stdout != "deleted topic \"other\"\n" ||
		!strings.Contains(r.stderr, `delete topic "missing": UNKNOWN_TOPIC_OR_PARTITION`) {
		t.Fatalf("delete: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	mustRun(t, addr, "", "topic", "delete", "events")
	r = mustRun(t, addr, "", "topic", "list", "-o", "json")
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Fatalf("topics left after delete: %s", r.stdout)
	}
	r = runCLI(t.Context(), addr, "", "topic", "describe", "events")
	if r.code != 1 || !strings.Contains(r.stderr, "UNKNOWN_TOPIC_OR_PARTITION") {
		t.Fatalf("describe deleted topic: exit %d stderr %q", r.code, r.stderr)
	}
}
