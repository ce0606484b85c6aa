// Package topicconfig knows the topic-level configuration keys, with
// Kafka's names, types, defaults and validators, and resolves a topic's
// effective configuration from its overrides and the broker-level defaults
// (topic override > broker default > Kafka default).
//
// Keys that are resolved into [Resolved] and so reach the partition log or
// the produce path: cleanup.policy, compression.type, delete.retention.ms,
// index.interval.bytes, max.message.bytes, message.timestamp.type,
// min.compaction.lag.ms, min.insync.replicas, retention.bytes, retention.ms,
// segment.bytes, segment.ms.
//
// Keys that are accepted, validated and described, but NOT enforced by
// StreamBus (they exist so that Kafka tools and clients that set them keep
// working): file.delete.delay.ms, flush.messages, flush.ms (the broker's
// log.flush.mode decides fsync), follower.replication.throttled.replicas,
// leader.replication.throttled.replicas, local.retention.bytes,
// local.retention.ms, max.compaction.lag.ms, message.downconversion.enable,
// message.timestamp.after.max.ms, message.timestamp.before.max.ms,
// message.timestamp.difference.max.ms, min.cleanable.dirty.ratio,
// preallocate, segment.index.bytes, segment.jitter.ms,
// unclean.leader.election.enable. remote.storage.enable is accepted only as
// false: tiered storage does not exist here, and Kafka likewise rejects
// enabling it on a broker without remote storage.
//
// Values are strings, as on the wire; the package never panics on bad input,
// and every error names the offending key.
package topicconfig

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// ErrUnknownKey is wrapped by errors for names that are not topic configs;
// the broker maps it to INVALID_CONFIG.
var ErrUnknownKey = errors.New("unknown topic config")

// ErrInvalidValue is wrapped by errors for values of the wrong type or out
// of range; the broker maps it to INVALID_CONFIG.
var ErrInvalidValue = errors.New("invalid topic config value")

// key describes one topic config. check validates a trimmed value.
type key struct {
	name       string
	typ        kmsg.ConfigType
	def        string
	brokerName string // Kafka's broker-level synonym, "" when there is none
	doc        string
	check      func(v string) error
}

const longMax = "9223372036854775807"

// keys is every topic config, sorted by name (Describe relies on it).
var keys = []key{
	{"cleanup.policy", kmsg.ConfigTypeList, "delete", "log.cleanup.policy",
		"A comma-separated list of \"delete\" (discard old segments by time or size) and \"compact\" (keep the latest value per key).",
		checkCleanupPolicy},
	{"compression.type", kmsg.ConfigTypeString, "producer", "compression.type",
		"Final compression of stored batches: producer (keep the producer's codec), uncompressed, gzip, snappy, lz4 or zstd.",
		checkEnum("producer", "uncompressed", "gzip", "snappy", "lz4", "zstd")},
	{"delete.retention.ms", kmsg.ConfigTypeLong, "86400000", "log.cleaner.delete.retention.ms",
		"How long tombstones are kept in compacted topics.",
		checkLong(0, math.MaxInt64)},
	{"file.delete.delay.ms", kmsg.ConfigTypeLong, "60000", "log.segment.delete.delay.ms",
		"Delay before a deleted segment file is removed (accepted, not enforced).",
		checkLong(0, math.MaxInt64)},
	{"flush.messages", kmsg.ConfigTypeLong, longMax, "log.flush.interval.messages",
		"Messages between forced fsyncs (accepted, not enforced: see the broker's log.flush.mode).",
		checkLong(1, math.MaxInt64)},
	{"flush.ms", kmsg.ConfigTypeLong, longMax, "log.flush.interval.ms",
		"Time between forced fsyncs (accepted, not enforced: see the broker's log.flush.mode).",
		checkLong(0, math.MaxInt64)},
	{"follower.replication.throttled.replicas", kmsg.ConfigTypeList, "", "",
		"Replicas throttled on the follower side, as partition:broker pairs or * (accepted, not enforced).",
		checkThrottledReplicas},
	{"index.interval.bytes", kmsg.ConfigTypeInt, "4096", "log.index.interval.bytes",
		"Bytes of log between offset index entries.",
		checkLong(0, math.MaxInt32)},
	{"leader.replication.throttled.replicas", kmsg.ConfigTypeList, "", "",
		"Replicas throttled on the leader side, as partition:broker pairs or * (accepted, not enforced).",
		checkThrottledReplicas},
	{"local.retention.bytes", kmsg.ConfigTypeLong, "-2", "log.local.retention.bytes",
		"Tiered storage local retention size (accepted, not enforced).",
		checkLong(-2, math.MaxInt64)},
	{"local.retention.ms", kmsg.ConfigTypeLong, "-2", "log.local.retention.ms",
		"Tiered storage local retention time (accepted, not enforced).",
		checkLong(-2, math.MaxInt64)},
	{"max.compaction.lag.ms", kmsg.ConfigTypeLong, longMax, "log.cleaner.max.compaction.lag.ms",
		"Longest time a message stays ineligible for compaction (accepted, not enforced).",
		checkLong(1, math.MaxInt64)},
	{"max.message.bytes", kmsg.ConfigTypeInt, "1048588", "message.max.bytes",
		"Largest record batch the topic accepts, after compression.",
		checkLong(0, math.MaxInt32)},
	{"message.downconversion.enable", kmsg.ConfigTypeBoolean, "true", "log.message.downconversion.enable",
		"Whether old-format fetches are down-converted (accepted, not enforced).",
		checkBool},
	{"message.timestamp.after.max.ms", kmsg.ConfigTypeLong, longMax, "log.message.timestamp.after.max.ms",
		"Largest allowed lead of a CreateTime timestamp over broker time (accepted, not enforced).",
		checkLong(0, math.MaxInt64)},
	{"message.timestamp.before.max.ms", kmsg.ConfigTypeLong, longMax, "log.message.timestamp.before.max.ms",
		"Largest allowed lag of a CreateTime timestamp behind broker time (accepted, not enforced).",
		checkLong(0, math.MaxInt64)},
	{"message.timestamp.difference.max.ms", kmsg.ConfigTypeLong, longMax, "log.message.timestamp.difference.max.ms",
		"Deprecated predecessor of message.timestamp.before/after.max.ms (accepted, not enforced).",
		checkLong(0, math.MaxInt64)},
	{"message.timestamp.type", kmsg.ConfigTypeString, "CreateTime", "log.message.timestamp.type",
		"CreateTime keeps the producer's timestamps; LogAppendTime stamps batches with broker time.",
		checkEnum("CreateTime", "LogAppendTime")},
	{"min.cleanable.dirty.ratio", kmsg.ConfigTypeDouble, "0.5", "log.cleaner.min.cleanable.ratio",
		"Dirty fraction of the log that triggers compaction (accepted, not enforced).",
		checkRatio},
	{"min.compaction.lag.ms", kmsg.ConfigTypeLong, "0", "log.cleaner.min.compaction.lag.ms",
		"Shortest time a message stays uncompacted.",
		checkLong(0, math.MaxInt64)},
	{"min.insync.replicas", kmsg.ConfigTypeInt, "1", "min.insync.replicas",
		"Replicas that must acknowledge an acks=all produce.",
		checkLong(1, math.MaxInt32)},
	{"preallocate", kmsg.ConfigTypeBoolean, "false", "log.preallocate",
		"Whether segment files are preallocated (accepted, not enforced).",
		checkBool},
	{"remote.storage.enable", kmsg.ConfigTypeBoolean, "false", "",
		"Tiered storage; StreamBus has none, so only false is accepted.",
		checkRemoteStorage},
	{"retention.bytes", kmsg.ConfigTypeLong, "-1", "log.retention.bytes",
		"Largest size a partition log may reach before old segments are deleted; -1 means unlimited.",
		checkLong(-1, math.MaxInt64)},
	{"retention.ms", kmsg.ConfigTypeLong, "604800000", "log.retention.ms",
		"How long segments are kept before deletion; -1 means unlimited.",
		checkLong(-1, math.MaxInt64)},
	{"segment.bytes", kmsg.ConfigTypeInt, "1073741824", "log.segment.bytes",
		"Size at which a new segment file is rolled.",
		checkLong(14, math.MaxInt32)},
	{"segment.index.bytes", kmsg.ConfigTypeInt, "10485760", "log.index.size.max.bytes",
		"Size of a segment's offset index (accepted, not enforced).",
		checkLong(4, math.MaxInt32)},
	{"segment.jitter.ms", kmsg.ConfigTypeLong, "0", "log.roll.jitter.ms",
		"Random jitter subtracted from segment.ms (accepted, not enforced).",
		checkLong(0, math.MaxInt64)},
	{"segment.ms", kmsg.ConfigTypeLong, "604800000", "log.roll.ms",
		"Age at which a new segment is rolled even if not full.",
		checkLong(1, math.MaxInt64)},
	{"unclean.leader.election.enable", kmsg.ConfigTypeBoolean, "false", "unclean.leader.election.enable",
		"Whether an out-of-sync replica may become leader (accepted, not enforced).",
		checkBool},
}

func lookup(name string) (*key, bool) {
	i, ok := slices.BinarySearchFunc(keys, name, func(k key, n string) int { return strings.Compare(k.name, n) })
	if !ok {
		return nil, false
	}
	return &keys[i], true
}

// Names returns every topic config name, sorted.
func Names() []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.name
	}
	return out
}

// Default returns Kafka's default value for a topic config; ok is false for
// unknown names.
func Default(name string) (value string, ok bool) {
	k, ok := lookup(name)
	if !ok {
		return "", false
	}
	return k.def, true
}

// Doc returns the one-line documentation of a topic config, "" if unknown.
func Doc(name string) string {
	if k, ok := lookup(name); ok {
		return k.doc
	}
	return ""
}

// Type returns the Kafka config type of a topic config, ConfigTypeUnknown
// (0) if unknown.
func Type(name string) kmsg.ConfigType {
	if k, ok := lookup(name); ok {
		return k.typ
	}
	return 0
}

// BrokerName returns the broker-level config name that supplies the default
// for topicKey (log.retention.ms for retention.ms, message.max.bytes for
// max.message.bytes, ...), or "" when the key has no broker synonym or is
// unknown.
func BrokerName(topicKey string) string {
	if k, ok := lookup(topicKey); ok {
		return k.brokerName
	}
	return ""
}

// TopicName is the inverse of BrokerName: the topic config that the broker
// config brokerKey supplies the default for, or "" if none.
func TopicName(brokerKey string) string {
	for _, k := range keys {
		if k.brokerName != "" && k.brokerName == brokerKey {
			return k.name
		}
	}
	return ""
}

// Validate checks one topic config. The error names the key and wraps
// ErrUnknownKey or ErrInvalidValue.
func Validate(name, value string) error {
	k, ok := lookup(name)
	if !ok {
		return fmt.Errorf("topic config %q: %w", name, ErrUnknownKey)
	}
	if err := k.check(strings.TrimSpace(value)); err != nil {
		return fmt.Errorf("topic config %s=%q: %w: %v", name, value, ErrInvalidValue, err)
	}
	return nil
}

// ValidateAll validates every entry of m, in name order so that the error
// reported for several bad entries is deterministic.
func ValidateAll(m map[string]string) error {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := Validate(n, m[n]); err != nil {
			return err
		}
	}
	return nil
}

func checkLong(lo, hi int64) func(string) error {
	return func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		if n < lo || n > hi {
			return fmt.Errorf("must be between %d and %d", lo, hi)
		}
		return nil
	}
}

func checkBool(v string) error {
	if !strings.EqualFold(v, "true") && !strings.EqualFold(v, "false") {
		return fmt.Errorf("must be true or false")
	}
	return nil
}

func checkRemoteStorage(v string) error {
	if err := checkBool(v); err != nil {
		return err
	}
	if strings.EqualFold(v, "true") {
		return fmt.Errorf("tiered storage is not supported")
	}
	return nil
}

func checkRatio(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) {
		return fmt.Errorf("not a number")
	}
	if f < 0 || f > 1 {
		return fmt.Errorf("must be between 0 and 1")
	}
	return nil
}

func checkEnum(allowed ...string) func(string) error {
	return func(v string) error {
		// Kafka matches these case-sensitively for the timestamp type and
		// case-insensitively for compression; accept the documented
		// spelling only, so that what is described is what was meant.
		if slices.Contains(allowed, v) {
			return nil
		}
		return fmt.Errorf("must be one of %s", strings.Join(allowed, ", "))
	}
}

// parseCleanupPolicy returns which of delete and compact a valid
// cleanup.policy value names.
func parseCleanupPolicy(v string) (del, compact bool, err error) {
	for p := range strings.SplitSeq(v, ",") {
		switch strings.TrimSpace(p) {
		case "delete":
			del = true
		case "compact":
			compact = true
		default:
			return false, false, fmt.Errorf("must be a list of delete and compact")
		}
	}
	return del, compact, nil
}

func checkCleanupPolicy(v string) error {
	_, _, err := parseCleanupPolicy(v)
	return err
}

// checkThrottledReplicas accepts "", "*" or partition:broker pairs, the
// format Kafka's ThrottledReplicaListValidator enforces.
func checkThrottledReplicas(v string) error {
	if v == "" || v == "*" {
		return nil
	}
	for p := range strings.SplitSeq(v, ",") {
		part, broker, ok := strings.Cut(strings.TrimSpace(p), ":")
		if !ok {
			return fmt.Errorf("must be * or a list of partition:broker")
		}
		if _, err := strconv.ParseUint(part, 10, 31); err != nil {
			return fmt.Errorf("must be * or a list of partition:broker")
		}
		if _, err := strconv.ParseUint(broker, 10, 31); err != nil {
			return fmt.Errorf("must be * or a list of partition:broker")
		}
	}
	return nil
}
