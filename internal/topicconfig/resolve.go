package topicconfig

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/storage"
)

// Resolved is a topic's effective configuration, in the types the storage
// and produce paths use.
type Resolved struct {
	Log               storage.LogConfig
	MaxMessageBytes   int32  // max.message.bytes
	CompressionType   string // compression.type: producer, uncompressed, gzip, snappy, lz4 or zstd
	MinInsyncReplicas int32  // min.insync.replicas
}

// Resolve computes a topic's effective configuration from its overrides and
// the broker defaults, both keyed by topic config name (retention.ms, not
// log.retention.ms); either map may be nil. Precedence: topic override >
// broker default > Kafka default. Every entry of both maps is validated, and
// the first bad one (in name order, overrides first) is returned as an error
// naming it.
func Resolve(overrides, brokerDefaults map[string]string) (Resolved, error) {
	if err := ValidateAll(overrides); err != nil {
		return Resolved{}, fmt.Errorf("topic override: %w", err)
	}
	if err := ValidateAll(brokerDefaults); err != nil {
		return Resolved{}, fmt.Errorf("broker default: %w", err)
	}
	get := func(name string) string {
		if v, ok := overrides[name]; ok {
			return strings.TrimSpace(v)
		}
		if v, ok := brokerDefaults[name]; ok {
			return strings.TrimSpace(v)
		}
		v, _ := Default(name)
		return v
	}
	// Values were validated above, so the parses below cannot fail; the
	// integer helpers still return the Kafka default rather than garbage if
	// that invariant were ever broken.
	long := func(name string) int64 {
		n, err := strconv.ParseInt(get(name), 10, 64)
		if err != nil {
			d, _ := Default(name)
			n, _ = strconv.ParseInt(d, 10, 64)
		}
		return n
	}
	del, compact, _ := parseCleanupPolicy(get("cleanup.policy"))
	r := Resolved{
		Log: storage.LogConfig{
			SegmentBytes:       long("segment.bytes"),
			SegmentMs:          long("segment.ms"),
			RetentionMs:        long("retention.ms"),
			RetentionBytes:     long("retention.bytes"),
			Delete:             del,
			Compact:            compact,
			DeleteRetentionMs:  long("delete.retention.ms"),
			MinCompactionLagMs: long("min.compaction.lag.ms"),
			IndexIntervalBytes: int32(long("index.interval.bytes")),
			LogAppendTime:      get("message.timestamp.type") == "LogAppendTime",
		},
		MaxMessageBytes:   int32(long("max.message.bytes")),
		CompressionType:   get("compression.type"),
		MinInsyncReplicas: int32(long("min.insync.replicas")),
	}
	return r, nil
}

// Synonym is one source a config value could come from, as listed by
// DescribeConfigs with IncludeSynonyms.
type Synonym struct {
	Name   string
	Value  string
	Source kmsg.ConfigSource
}

// Entry is one topic config as DescribeConfigs reports it.
type Entry struct {
	Name          string
	Value         string
	Source        kmsg.ConfigSource // DYNAMIC_TOPIC_CONFIG, STATIC_BROKER_CONFIG or DEFAULT_CONFIG
	ReadOnly      bool
	Sensitive     bool
	Type          kmsg.ConfigType
	Documentation string
	// Synonyms in order of precedence, as Kafka lists them: the topic
	// override (under the topic name), the broker default (under its broker
	// name) and Kafka's default (under the broker name when there is one).
	// Only sources that hold a value appear, except the default, which
	// always does.
	Synonyms []Synonym
}

// Describe lists every topic config with its effective value and where that
// value came from, sorted by name. Entries of the maps that are not topic
// configs are ignored; values are reported as stored (trimmed).
func Describe(overrides, brokerDefaults map[string]string) []Entry {
	out := make([]Entry, 0, len(keys))
	for _, k := range keys {
		defName := k.name
		if k.brokerName != "" {
			defName = k.brokerName
		}
		var syn []Synonym
		if v, ok := overrides[k.name]; ok {
			syn = append(syn, Synonym{k.name, strings.TrimSpace(v), kmsg.ConfigSourceDynamicTopicConfig})
		}
		if v, ok := brokerDefaults[k.name]; ok && k.brokerName != "" {
			syn = append(syn, Synonym{k.brokerName, strings.TrimSpace(v), kmsg.ConfigSourceStaticBrokerConfig})
		}
		syn = append(syn, Synonym{defName, k.def, kmsg.ConfigSourceDefaultConfig})
		out = append(out, Entry{
			Name:          k.name,
			Value:         syn[0].Value,
			Source:        syn[0].Source,
			Type:          k.typ,
			Documentation: k.doc,
			Synonyms:      syn,
		})
	}
	return out
}
