package topicconfig

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/storage"
)

func TestKeysSortedAndDefaultsValid(t *testing.T) {
	names := Names()
	if !slices.IsSorted(names) {
		t.Fatalf("keys not sorted: %v", names)
	}
	for i := 1; i < len(names); i++ {
		if names[i] == names[i-1] {
			t.Fatalf("duplicate key %s", names[i])
		}
	}
	for _, n := range names {
		d, ok := Default(n)
		if !ok {
			t.Fatalf("Default(%s) not found", n)
		}
		if err := Validate(n, d); err != nil {
			t.Errorf("default of %s does not validate: %v", n, err)
		}
		if Doc(n) == "" || Type(n) == 0 {
			t.Errorf("%s lacks doc or type", n)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name, value string
		ok          bool
	}{
		{"cleanup.policy", "delete", true},
		{"cleanup.policy", "compact", true},
		{"cleanup.policy", "compact,delete", true},
		{"cleanup.policy", "delete, compact", true},
		{"cleanup.policy", "", false},
		{"cleanup.policy", "compact,,delete", false},
		{"cleanup.policy", "purge", false},
		{"compression.type", "producer", true},
		{"compression.type", "zstd", true},
		{"compression.type", "uncompressed", true},
		{"compression.type", "none", false},
		{"compression.type", "brotli", false},
		{"message.timestamp.type", "CreateTime", true},
		{"message.timestamp.type", "LogAppendTime", true},
		{"message.timestamp.type", "createtime", false},
		{"retention.ms", "-1", true},
		{"retention.ms", " 1000 ", true},
		{"retention.ms", "-2", false},
		{"retention.ms", "1e3", false},
		{"retention.ms", "9223372036854775808", false},
		{"retention.bytes", "-1", true},
		{"retention.bytes", "-5", false},
		{"segment.bytes", "14", true},
		{"segment.bytes", "13", false},
		{"segment.bytes", "2147483648", false},
		{"segment.ms", "0", false},
		{"segment.ms", "1", true},
		{"max.message.bytes", "1048588", true},
		{"max.message.bytes", "-1", false},
		{"min.insync.replicas", "0", false},
		{"min.insync.replicas", "2", true},
		{"index.interval.bytes", "x", false},
		{"min.cleanable.dirty.ratio", "0.9", true},
		{"min.cleanable.dirty.ratio", "1.5", false},
		{"min.cleanable.dirty.ratio", "NaN", false},
		{"preallocate", "TRUE", true},
		{"preallocate", "yes", false},
		{"unclean.leader.election.enable", "false", true},
		{"remote.storage.enable", "false", true},
		{"remote.storage.enable", "true", false},
		{"local.retention.ms", "-2", true},
		{"local.retention.ms", "-3", false},
		{"flush.messages", "0", false},
		{"flush.ms", "0", true},
		{"leader.replication.throttled.replicas", "*", true},
		{"leader.replication.throttled.replicas", "0:1,1:2", true},
		{"leader.replication.throttled.replicas", "0-1", false},
		{"follower.replication.throttled.replicas", "a:1", false},
		{"segment.index.bytes", "3", false},
	}
	for _, tc := range tests {
		err := Validate(tc.name, tc.value)
		if (err == nil) != tc.ok {
			t.Errorf("Validate(%q, %q) = %v, want ok=%v", tc.name, tc.value, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("Validate(%q, %q) error %q: want ErrInvalidValue naming the key", tc.name, tc.value, err)
			}
		}
	}
}

func TestValidateUnknown(t *testing.T) {
	err := Validate("retention.hours", "1")
	if !errors.Is(err, ErrUnknownKey) || !strings.Contains(err.Error(), "retention.hours") {
		t.Fatalf("got %v, want ErrUnknownKey naming retention.hours", err)
	}
	err = ValidateAll(map[string]string{"retention.ms": "5", "zzz": "1", "segment.ms": "0"})
	if err == nil || !strings.Contains(err.Error(), "segment.ms") {
		t.Fatalf("ValidateAll: got %v, want the first bad key in name order (segment.ms)", err)
	}
}

func TestResolveDefaultsMatchStorage(t *testing.T) {
	r, err := Resolve(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Log != storage.DefaultLogConfig() {
		t.Fatalf("Resolve(nil, nil).Log = %+v, want %+v", r.Log, storage.DefaultLogConfig())
	}
	if r.MaxMessageBytes != 1048588 || r.CompressionType != "producer" || r.MinInsyncReplicas != 1 {
		t.Fatalf("unexpected defaults: %+v", r)
	}
}

func TestResolvePrecedence(t *testing.T) {
	broker := map[string]string{
		"retention.ms":           "1000",
		"segment.bytes":          "2048",
		"cleanup.policy":         "compact",
		"message.timestamp.type": "LogAppendTime",
		"compression.type":       "lz4",
	}
	topic := map[string]string{
		"retention.ms":        "5000",
		"cleanup.policy":      "compact,delete",
		"max.message.bytes":   "100",
		"min.insync.replicas": "2",
		"retention.bytes":     "777",
	}
	r, err := Resolve(topic, broker)
	if err != nil {
		t.Fatal(err)
	}
	want := storage.DefaultLogConfig()
	want.RetentionMs = 5000
	want.SegmentBytes = 2048
	want.Compact, want.Delete = true, true
	want.LogAppendTime = true
	want.RetentionBytes = 777
	if r.Log != want {
		t.Fatalf("Log = %+v, want %+v", r.Log, want)
	}
	if r.MaxMessageBytes != 100 || r.CompressionType != "lz4" || r.MinInsyncReplicas != 2 {
		t.Fatalf("got %+v", r)
	}
	r, err = Resolve(map[string]string{"cleanup.policy": "compact"}, nil)
	if err != nil || r.Log.Delete || !r.Log.Compact {
		t.Fatalf("compact only: %+v, %v", r.Log, err)
	}
}

func TestResolveRejects(t *testing.T) {
	if _, err := Resolve(map[string]string{"segment.bytes": "1"}, nil); err == nil ||
		!strings.Contains(err.Error(), "topic override") || !strings.Contains(err.Error(), "segment.bytes") {
		t.Fatalf("bad override: %v", err)
	}
	if _, err := Resolve(nil, map[string]string{"bogus": "1"}); err == nil ||
		!strings.Contains(err.Error(), "broker default") || !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("bad broker default: %v", err)
	}
}

func TestBrokerName(t *testing.T) {
	for topic, broker := range map[string]string{
		"retention.ms":          "log.retention.ms",
		"segment.ms":            "log.roll.ms",
		"max.message.bytes":     "message.max.bytes",
		"delete.retention.ms":   "log.cleaner.delete.retention.ms",
		"min.compaction.lag.ms": "log.cleaner.min.compaction.lag.ms",
		"compression.type":      "compression.type",
		"remote.storage.enable": "",
		"nope":                  "",
	} {
		if got := BrokerName(topic); got != broker {
			t.Errorf("BrokerName(%s) = %q, want %q", topic, got, broker)
		}
		if broker != "" && TopicName(broker) != topic {
			t.Errorf("TopicName(%s) = %q, want %q", broker, TopicName(broker), topic)
		}
	}
	if TopicName("") != "" {
		t.Errorf("TopicName(\"\") should be empty")
	}
}

func TestDescribe(t *testing.T) {
	entries := Describe(
		map[string]string{"retention.ms": "5000", "not.a.config": "x"},
		map[string]string{"retention.ms": "1000", "segment.bytes": "2048"},
	)
	if len(entries) != len(Names()) {
		t.Fatalf("got %d entries, want %d", len(entries), len(Names()))
	}
	byName := map[string]Entry{}
	for i, e := range entries {
		if i > 0 && entries[i-1].Name >= e.Name {
			t.Fatalf("entries not sorted at %s", e.Name)
		}
		byName[e.Name] = e
	}
	ret := byName["retention.ms"]
	if ret.Value != "5000" || ret.Source != kmsg.ConfigSourceDynamicTopicConfig || ret.Type != kmsg.ConfigTypeLong {
		t.Fatalf("retention.ms entry %+v", ret)
	}
	wantSyn := []Synonym{
		{"retention.ms", "5000", kmsg.ConfigSourceDynamicTopicConfig},
		{"log.retention.ms", "1000", kmsg.ConfigSourceStaticBrokerConfig},
		{"log.retention.ms", "604800000", kmsg.ConfigSourceDefaultConfig},
	}
	if !slices.Equal(ret.Synonyms, wantSyn) {
		t.Fatalf("synonyms %+v, want %+v", ret.Synonyms, wantSyn)
	}
	seg := byName["segment.bytes"]
	if seg.Value != "2048" || seg.Source != kmsg.ConfigSourceStaticBrokerConfig || len(seg.Synonyms) != 2 {
		t.Fatalf("segment.bytes entry %+v", seg)
	}
	cp := byName["cleanup.policy"]
	if cp.Value != "delete" || cp.Source != kmsg.ConfigSourceDefaultConfig || len(cp.Synonyms) != 1 ||
		cp.Synonyms[0].Name != "log.cleanup.policy" {
		t.Fatalf("cleanup.policy entry %+v", cp)
	}
	rs := byName["remote.storage.enable"]
	if rs.Synonyms[0].Name != "remote.storage.enable" || rs.Type != kmsg.ConfigTypeBoolean {
		t.Fatalf("remote.storage.enable entry %+v", rs)
	}
	if _, ok := byName["not.a.config"]; ok {
		t.Fatalf("unknown override described")
	}
}

// FuzzValidate feeds arbitrary names and values (as AlterConfigs and
// CreateTopics deliver them) through Validate and Resolve: neither may panic,
// and a value Validate accepts must resolve.
func FuzzValidate(f *testing.F) {
	f.Add("retention.ms", "1000")
	f.Add("cleanup.policy", "compact,delete")
	f.Add("segment.bytes", "13")
	f.Add("min.cleanable.dirty.ratio", "0.5")
	f.Add("leader.replication.throttled.replicas", "0:1,2:3")
	f.Fuzz(func(t *testing.T, name, value string) {
		err := Validate(name, value)
		_, rerr := Resolve(map[string]string{name: value}, nil)
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Validate=%v but Resolve=%v", err, rerr)
		}
		_ = Describe(map[string]string{name: value}, map[string]string{name: value})
	})
}
