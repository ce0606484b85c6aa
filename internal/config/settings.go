package config

import (
	"fmt"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/topicconfig"
)

// setting is one configuration key: how to parse it into a Config, how to
// print it back, and how to check a Config built without Load.
type setting struct {
	key  string // YAML key; the environment name derives from it
	flag string // command-line flag name, "" when the key has no flag
	arg  string // placeholder for the flag's value in the usage text
	typ  kmsg.ConfigType
	doc  string
	// set parses v and stores it; the error does not name the key or
	// source, the caller adds both.
	set func(c *Config, v string) error
	// get formats the current value; nil for input-only aliases
	// (log.retention.hours) that DescribeConfigs does not list.
	get func(c *Config) string
	// check validates the current value; nil when set cannot produce an
	// invalid one and the field needs no separate check (topic defaults are
	// checked as a whole by Validate).
	check func(c *Config) error
}

// envName returns the environment variable for a YAML key:
// STREAMBUS_ + the key uppercased with '.' and '-' turned into '_'.
func envName(key string) string {
	return "STREAMBUS_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

// maxMs is the largest millisecond count a time.Duration holds.
const maxMs = math.MaxInt64 / int64(time.Millisecond)

func parseInt(v string, lo, hi int64) (int64, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not an integer", v)
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
	}
	return n, nil
}

func intSetting[T int16 | int32 | int64](key, flag, doc string, lo, hi int64, field func(*Config) *T) setting {
	typ := kmsg.ConfigTypeInt
	switch {
	case hi <= math.MaxInt16:
		typ = kmsg.ConfigTypeShort
	case hi > math.MaxInt32:
		typ = kmsg.ConfigTypeLong
	}
	return setting{
		key: key, flag: flag, arg: "N", typ: typ, doc: doc,
		set: func(c *Config, v string) error {
			n, err := parseInt(v, lo, hi)
			if err != nil {
				return err
			}
			*field(c) = T(n)
			return nil
		},
		get: func(c *Config) string { return strconv.FormatInt(int64(*field(c)), 10) },
		check: func(c *Config) error {
			if n := int64(*field(c)); n < lo || n > hi {
				return fmt.Errorf("%d is out of range [%d, %d]", n, lo, hi)
			}
			return nil
		},
	}
}

// msSetting is a duration given in milliseconds, as Kafka's *.ms keys are.
func msSetting(key, doc string, lo int64, field func(*Config) *time.Duration) setting {
	return setting{
		key: key, arg: "MS", typ: kmsg.ConfigTypeLong, doc: doc,
		set: func(c *Config, v string) error {
			n, err := parseInt(v, lo, maxMs)
			if err != nil {
				return err
			}
			*field(c) = time.Duration(n) * time.Millisecond
			return nil
		},
		get: func(c *Config) string { return strconv.FormatInt(field(c).Milliseconds(), 10) },
		check: func(c *Config) error {
			if d := *field(c); d < time.Duration(lo)*time.Millisecond {
				return fmt.Errorf("%v is below the minimum of %dms", d, lo)
			}
			return nil
		},
	}
}

func boolSetting(key, doc string, field func(*Config) *bool) setting {
	return setting{
		key: key, arg: "BOOL", typ: kmsg.ConfigTypeBoolean, doc: doc,
		set: func(c *Config, v string) error {
			switch strings.ToLower(strings.TrimSpace(v)) {
			case "true":
				*field(c) = true
			case "false":
				*field(c) = false
			default:
				return fmt.Errorf("%q is not true or false", v)
			}
			return nil
		},
		get: func(c *Config) string { return strconv.FormatBool(*field(c)) },
	}
}

func checkDir(v string) error {
	if strings.TrimSpace(v) == "" {
		return fmt.Errorf("must not be empty")
	}
	return nil
}

// checkAddr validates HOST:PORT. An empty host means all interfaces; port 0
// (an ephemeral port, for tests) is allowed only for addresses we listen on.
func checkAddr(v string, listen bool) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not HOST:PORT: %v", v, err)
	}
	lo := int64(1)
	if listen {
		lo = 0
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil || n < lo || n > 65535 {
		return fmt.Errorf("%q has an invalid port %q (want %d-65535)", v, port, lo)
	}
	if !listen && host == "" {
		return fmt.Errorf("%q has no host: clients need one to connect", v)
	}
	return nil
}

// addrSetting is a HOST:PORT string. optional allows the empty string
// (meaning "derive it"), used for advertised-kafka-addr.
func addrSetting(key, doc string, listen, optional bool, field func(*Config) *string) setting {
	check := func(v string) error {
		if optional && v == "" {
			return nil
		}
		return checkAddr(v, listen)
	}
	return setting{
		key: key, flag: key, arg: "HOST:PORT", typ: kmsg.ConfigTypeString, doc: doc,
		set: func(c *Config, v string) error {
			v = strings.TrimSpace(v)
			if err := check(v); err != nil {
				return err
			}
			*field(c) = v
			return nil
		},
		get:   func(c *Config) string { return *field(c) },
		check: func(c *Config) error { return check(*field(c)) },
	}
}

// topicDefaultSetting is a broker-level default for a topic config, set
// under Kafka's broker name and stored under the topic name.
func topicDefaultSetting(brokerKey, topicKey string) setting {
	return setting{
		key: brokerKey, arg: "VALUE", typ: topicconfig.Type(topicKey),
		doc: topicconfig.Doc(topicKey) + " Default for the topic config " + topicKey + ".",
		set: func(c *Config, v string) error {
			if err := topicconfig.Validate(topicKey, v); err != nil {
				return err
			}
			setTopicDefault(c, topicKey, strings.TrimSpace(v))
			return nil
		},
		get: func(c *Config) string {
			if v, ok := c.TopicDefaults[topicKey]; ok {
				return v
			}
			v, _ := topicconfig.Default(topicKey)
			return v
		},
	}
}

// unitSetting is an input-only alias such as log.retention.hours that sets
// a millisecond topic default. Within one source it is applied before the
// .ms key, so the .ms key wins when both are given, as in Kafka.
func unitSetting(brokerKey, topicKey string, unitMs, lo int64) setting {
	return setting{
		key: brokerKey, arg: "N", typ: kmsg.ConfigTypeInt,
		doc: fmt.Sprintf("Sets %s in units of %dms; %s wins if both are given in one place.",
			topicconfig.BrokerName(topicKey), unitMs, topicconfig.BrokerName(topicKey)),
		set: func(c *Config, v string) error {
			n, err := parseInt(v, lo, math.MaxInt64/unitMs)
			if err != nil {
				return err
			}
			ms := n * unitMs
			if n == -1 {
				ms = -1 // unlimited, not -unitMs
			}
			s := strconv.FormatInt(ms, 10)
			if err := topicconfig.Validate(topicKey, s); err != nil {
				return err
			}
			setTopicDefault(c, topicKey, s)
			return nil
		},
	}
}

func setTopicDefault(c *Config, topicKey, v string) {
	if c.TopicDefaults == nil {
		c.TopicDefaults = map[string]string{}
	}
	c.TopicDefaults[topicKey] = v
}

// settings lists every key Load understands, in the order sources apply
// them (aliases before the keys that override them) and usage lists them.
var settings = buildSettings()

func buildSettings() []setting {
	s := []setting{
		intSetting("node.id", "node-id", "This broker's id (also reported as broker.id).",
			0, math.MaxInt32, func(c *Config) *int32 { return &c.NodeID }),
		{
			key: "data-dir", flag: "data-dir", arg: "DIR", typ: kmsg.ConfigTypeString,
			doc: "Directory holding partition logs and metadata (Kafka's log.dirs).",
			set: func(c *Config, v string) error {
				if err := checkDir(v); err != nil {
					return err
				}
				c.DataDir = v
				return nil
			},
			get:   func(c *Config) string { return c.DataDir },
			check: func(c *Config) error { return checkDir(c.DataDir) },
		},
		addrSetting("kafka-addr", "Address the Kafka protocol listener binds; port 0 picks a free port.",
			true, false, func(c *Config) *string { return &c.KafkaAddr }),
		addrSetting("advertised-kafka-addr", "Address given to clients in metadata; empty means kafka-addr with the bound port (localhost when kafka-addr has no host).",
			false, true, func(c *Config) *string { return &c.AdvertisedKafkaAddr }),
		addrSetting("http-addr", "Address of the HTTP server for /metrics, /healthz, /readyz and /debug/pprof.",
			true, false, func(c *Config) *string { return &c.HTTPAddr }),
		addrSetting("raft-addr", "IP:port of this broker's Raft listener (metadata quorum); required with voters. Outgoing Raft connections are bound to its IP. Without voters the broker is a one-voter quorum on this address, default an ephemeral port on the Kafka listener's IP.",
			true, true, func(c *Config) *string { return &c.RaftAddr }),
		{
			key: "voters", flag: "voters", arg: "ID=IP:PORT,...", typ: kmsg.ConfigTypeList,
			doc: "The metadata quorum's voters (node id=raft address), the same on every broker; empty means a single node (a one-voter quorum of its own). A broker whose node id is not listed is a non-voter: it asks the controller (found through these addresses) to add it, keeps a copy of the metadata log without voting, and needs its own raft-addr.",
			set: func(c *Config, v string) error {
				m, err := parseVoters(v)
				if err != nil {
					return err
				}
				c.Voters = m
				return nil
			},
			get:   func(c *Config) string { return formatVoters(c.Voters) },
			check: func(c *Config) error { return checkVoters(c) },
		},
		{
			key: "broker.rack", arg: "RACK", typ: kmsg.ConfigTypeString,
			doc: "This broker's rack, listed in Metadata and used by replica.selector.class; empty means none.",
			set: func(c *Config, v string) error {
				c.BrokerRack = strings.TrimSpace(v)
				return nil
			},
			get: func(c *Config) string { return c.BrokerRack },
		},
		{
			key: "replica.selector.class", arg: "CLASS", typ: kmsg.ConfigTypeString,
			doc: "Which replica serves consumers: empty for the partition leader, or " + RackAwareReplicaSelector + " (also " + RackAwareAlias + ") to send a consumer that names its rack (client.rack) to an in-sync replica in that rack (KIP-392).",
			set: func(c *Config, v string) error {
				v = strings.TrimSpace(v)
				if err := checkReplicaSelector(v); err != nil {
					return err
				}
				if v == RackAwareAlias {
					v = RackAwareReplicaSelector
				}
				c.ReplicaSelectorClass = v
				return nil
			},
			get:   func(c *Config) string { return c.ReplicaSelectorClass },
			check: func(c *Config) error { return checkReplicaSelector(c.ReplicaSelectorClass) },
		},
		msSetting("broker.heartbeat.interval.ms", "How often a cluster member heartbeats to the controller.",
			1, func(c *Config) *time.Duration { return &c.BrokerHeartbeatInterval }),
		msSetting("broker.session.timeout.ms", "A cluster member whose heartbeats stop for this long is fenced and its partitions get new leaders.",
			1, func(c *Config) *time.Duration { return &c.BrokerSessionTimeout }),
		msSetting("controller.quorum.election.timeout.ms", "How long a Raft voter waits without hearing from the controller before it starts an election (also the election timeout); a dead controller is replaced within one to two of these.",
			10, func(c *Config) *time.Duration { return &c.ControllerElectionTimeout }),
		boolSetting("auto.leader.rebalance.enable", "The controller moves leadership back to each partition's preferred (first) replica when a broker leads too few of its preferred partitions.",
			func(c *Config) *bool { return &c.AutoLeaderRebalance }),
		{
			key: "leader.imbalance.check.interval.seconds", arg: "N", typ: kmsg.ConfigTypeLong,
			doc: "How often the controller checks leader balance.",
			set: func(c *Config, v string) error {
				n, err := parseInt(v, 1, maxMs/1000)
				if err != nil {
					return err
				}
				c.LeaderImbalanceCheckInterval = time.Duration(n) * time.Second
				return nil
			},
			get: func(c *Config) string {
				return strconv.FormatInt(int64(c.LeaderImbalanceCheckInterval/time.Second), 10)
			},
			check: func(c *Config) error {
				if c.LeaderImbalanceCheckInterval < time.Second {
					return fmt.Errorf("%v is below one second", c.LeaderImbalanceCheckInterval)
				}
				return nil
			},
		},
		intSetting("leader.imbalance.per.broker.percentage", "", "Share of a broker's preferred partitions (percent) it may not lead before the controller moves them back.",
			1, 100, func(c *Config) *int32 { return &c.LeaderImbalancePerBroker }),
		msSetting("replica.lag.time.max.ms", "A follower that has not caught up with its leader for this long leaves the ISR.",
			1, func(c *Config) *time.Duration { return &c.ReplicaLagTime }),
		boolSetting("auto.create.topics.enable", "Create a topic that a Metadata request names and that does not exist (clients ask for metadata before they produce), with num.partitions and default.replication.factor; Produce and Fetch to an unknown topic never create it.",
			func(c *Config) *bool { return &c.AutoCreateTopics }),
		intSetting("num.partitions", "", "Partitions of auto-created topics and of CreateTopics with -1.",
			1, math.MaxInt32, func(c *Config) *int32 { return &c.NumPartitions }),
		intSetting("default.replication.factor", "", "Replication factor of auto-created topics and of CreateTopics with -1.",
			1, math.MaxInt16, func(c *Config) *int16 { return &c.DefaultReplicationFactor }),
		intSetting("socket.request.max.bytes", "", "Largest request frame accepted; larger ones close the connection.",
			1, math.MaxInt32, func(c *Config) *int32 { return &c.SocketRequestMaxBytes }),
		msSetting("connections.max.idle.ms", "Idle connections are closed after this long.",
			1, func(c *Config) *time.Duration { return &c.ConnectionsMaxIdle }),
		intSetting("max.connections", "", "Client connections open at once; at the limit the broker stops accepting until one closes.",
			1, math.MaxInt32, func(c *Config) *int32 { return &c.MaxConnections }),
		intSetting("max.connections.per.ip", "", "Client connections open at once from one IP address; beyond it new connections are closed at once.",
			1, math.MaxInt32, func(c *Config) *int32 { return &c.MaxConnectionsPerIP }),
		{
			key: "max.connections.per.ip.overrides", arg: "LIST", typ: kmsg.ConfigTypeString,
			doc: "Per-address exceptions to max.connections.per.ip: host:N,host:N (a host name or IP; 0 refuses every connection from it).",
			set: func(c *Config, v string) error {
				if _, err := ParseConnectionOverrides(v); err != nil {
					return err
				}
				c.MaxConnectionsPerIPOverrides = strings.TrimSpace(v)
				return nil
			},
			get: func(c *Config) string { return c.MaxConnectionsPerIPOverrides },
			check: func(c *Config) error {
				_, err := ParseConnectionOverrides(c.MaxConnectionsPerIPOverrides)
				return err
			},
		},
		msSetting("socket.request.read.timeout.ms", "A request half-received for longer than this closes the connection.",
			1, func(c *Config) *time.Duration { return &c.RequestReadTimeout }),
		intSetting("log.dir.min.free.bytes", "", "Produce is refused with KAFKA_STORAGE_ERROR while the data directory's file system has less free space than this, keeping room for checkpoints, metadata and compaction; 0 disables the check.",
			0, math.MaxInt64, func(c *Config) *int64 { return &c.LogDirMinFreeBytes }),
		{
			key: "log.flush.mode", arg: "MODE", typ: kmsg.ConfigTypeString,
			doc: "When appends are fsynced: ack (before acknowledging acks=1/all produces) or interval (every log.flush.interval.ms).",
			set: func(c *Config, v string) error {
				m := FlushMode(strings.TrimSpace(v))
				if err := checkFlushMode(m); err != nil {
					return err
				}
				c.FlushMode = m
				return nil
			},
			get:   func(c *Config) string { return string(c.FlushMode) },
			check: func(c *Config) error { return checkFlushMode(c.FlushMode) },
		},
		msSetting("log.flush.interval.ms", "Time between fsyncs with log.flush.mode=interval.",
			1, func(c *Config) *time.Duration { return &c.FlushInterval }),
		msSetting("log.retention.check.interval.ms", "How often retention deletes old segments.",
			1, func(c *Config) *time.Duration { return &c.LogRetentionCheckInterval }),
		intSetting("log.max.open.files", "", "Segment and index files kept open; beyond it the least recently used are closed and reopened on use, so idle partitions hold no descriptors. Files in use may exceed it briefly; keep it well below the process's open file limit, which connections share.",
			1, math.MaxInt32, func(c *Config) *int32 { return &c.LogMaxOpenFiles }),
		msSetting("shutdown.timeout.ms", "How long a graceful shutdown waits before closing connections.",
			1, func(c *Config) *time.Duration { return &c.ShutdownTimeout }),
		intSetting("offsets.topic.num.partitions", "", "Partitions of __consumer_offsets (fixed once the topic exists); each has its own group coordinator.",
			1, 1000, func(c *Config) *int32 { return &c.Groups.OffsetsTopicPartitions }),
		intSetting("offsets.topic.replication.factor", "", "Replication factor of __consumer_offsets, capped at the number of voters (a single node uses 1).",
			1, math.MaxInt16, func(c *Config) *int16 { return &c.Groups.OffsetsTopicReplicationFactor }),
		msSetting("group.min.session.timeout.ms", "Smallest session timeout a classic group member may ask for.",
			1, func(c *Config) *time.Duration { return &c.Groups.MinSessionTimeout }),
		msSetting("group.max.session.timeout.ms", "Largest session timeout a classic group member may ask for.",
			1, func(c *Config) *time.Duration { return &c.Groups.MaxSessionTimeout }),
		msSetting("group.initial.rebalance.delay.ms", "How long the first rebalance of an empty classic group waits for more members.",
			0, func(c *Config) *time.Duration { return &c.Groups.InitialRebalanceDelay }),
		intSetting("group.max.size", "", "Most members a group may have.",
			1, math.MaxInt32, func(c *Config) *int32 { return &c.Groups.MaxSize }),
		{
			key: "offsets.retention.minutes", arg: "N", typ: kmsg.ConfigTypeInt,
			doc: "Committed offsets of a group that has been empty this long are deleted.",
			set: func(c *Config, v string) error {
				n, err := parseInt(v, 1, maxMs/60000)
				if err != nil {
					return err
				}
				c.Groups.OffsetsRetention = time.Duration(n) * time.Minute
				return nil
			},
			get: func(c *Config) string { return strconv.FormatInt(int64(c.Groups.OffsetsRetention/time.Minute), 10) },
			check: func(c *Config) error {
				if c.Groups.OffsetsRetention < time.Minute {
					return fmt.Errorf("%v is below one minute", c.Groups.OffsetsRetention)
				}
				return nil
			},
		},
		intSetting("offset.metadata.max.bytes", "", "Largest metadata string of a committed offset.",
			0, math.MaxInt32, func(c *Config) *int32 { return &c.Groups.OffsetMetadataMaxBytes }),
		msSetting("group.consumer.session.timeout.ms", "Session timeout of KIP-848 consumer group members.",
			1, func(c *Config) *time.Duration { return &c.Groups.ConsumerSessionTimeout }),
		msSetting("group.consumer.heartbeat.interval.ms", "Heartbeat interval given to KIP-848 consumer group members.",
			1, func(c *Config) *time.Duration { return &c.Groups.ConsumerHeartbeatInterval }),
		{
			key: "group.consumer.assignors", arg: "LIST", typ: kmsg.ConfigTypeList,
			doc: "Server-side assignors for KIP-848 consumer groups, comma-separated (uniform, range); the first is the default.",
			set: func(c *Config, v string) error {
				var out []string
				for _, a := range strings.Split(v, ",") {
					if a = strings.TrimSpace(a); a != "" {
						out = append(out, a)
					}
				}
				c.Groups.ConsumerAssignors = out
				return checkAssignors(out)
			},
			get:   func(c *Config) string { return strings.Join(c.Groups.ConsumerAssignors, ",") },
			check: func(c *Config) error { return checkAssignors(c.Groups.ConsumerAssignors) },
		},
		unitSetting("log.retention.hours", "retention.ms", 3600000, -1),
		unitSetting("log.retention.minutes", "retention.ms", 60000, -1),
		unitSetting("log.roll.hours", "segment.ms", 3600000, 1),
	}
	for _, name := range topicconfig.Names() {
		b := topicconfig.BrokerName(name)
		// log.flush.interval.ms is the broker's own flush interval (a
		// Config field), not a default for the unenforced flush.ms.
		if b == "" || b == "log.flush.interval.ms" {
			continue
		}
		s = append(s, topicDefaultSetting(b, name))
	}
	return s
}

func checkFlushMode(m FlushMode) error {
	if m != FlushOnAck && m != FlushInterval {
		return fmt.Errorf("%q is not %s or %s", m, FlushOnAck, FlushInterval)
	}
	return nil
}

func checkReplicaSelector(v string) error {
	if v != "" && v != RackAwareReplicaSelector && v != RackAwareAlias {
		return fmt.Errorf("unknown replica selector %q (empty, %s or %s)", v, RackAwareReplicaSelector, RackAwareAlias)
	}
	return nil
}

func lookupSetting(key string) (*setting, bool) {
	for i := range settings {
		if settings[i].key == key {
			return &settings[i], true
		}
	}
	return nil, false
}

func checkAssignors(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("no assignor given")
	}
	for _, n := range names {
		if n != "uniform" && n != "range" {
			return fmt.Errorf("unknown assignor %q (uniform or range)", n)
		}
	}
	return nil
}

// parseVoters reads "1=10.0.0.1:9093,2=10.0.0.2:9093".
func parseVoters(v string) (map[int32]string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, nil
	}
	out := make(map[int32]string)
	for _, item := range strings.Split(v, ",") {
		id, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return nil, fmt.Errorf("voter %q is not ID=IP:PORT", item)
		}
		n, err := parseInt(id, 0, math.MaxInt32)
		if err != nil {
			return nil, fmt.Errorf("voter %q: node id: %v", item, err)
		}
		if err := checkAddr(addr, false); err != nil {
			return nil, fmt.Errorf("voter %q: %v", item, err)
		}
		if _, dup := out[int32(n)]; dup {
			return nil, fmt.Errorf("voter %d is listed twice", n)
		}
		out[int32(n)] = addr
	}
	return out, nil
}

func formatVoters(m map[int32]string) string {
	ids := make([]int, 0, len(m))
	for id := range m {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	parts := make([]string, 0, len(ids))
	for _, id := range ids {
		parts = append(parts, fmt.Sprintf("%d=%s", id, m[int32(id)]))
	}
	return strings.Join(parts, ",")
}

// checkVoters: with voters, a voter listens at its own entry, and a
// non-voter (node.id not listed) on an address that is none of theirs.
func checkVoters(c *Config) error {
	if len(c.Voters) == 0 {
		return nil
	}
	addr, ok := c.Voters[c.NodeID]
	switch {
	case c.RaftAddr == "":
		return fmt.Errorf("raft-addr is required with voters")
	case ok && addr != c.RaftAddr:
		return fmt.Errorf("voter %d is %s but raft-addr is %s", c.NodeID, addr, c.RaftAddr)
	case ok:
		return nil
	}
	for _, id := range sortedVoterIDs(c.Voters) {
		if c.Voters[id] == c.RaftAddr {
			return fmt.Errorf("raft-addr %s of non-voter %d is voter %d's address", c.RaftAddr, c.NodeID, id)
		}
	}
	return nil
}

func sortedVoterIDs(m map[int32]string) []int32 {
	ids := make([]int32, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// ParseConnectionOverrides parses max.connections.per.ip.overrides:
// comma-separated host:N pairs (the limit after the last colon, so IPv6
// addresses need no brackets), N ≥ 0. Hosts are returned as written; the
// server resolves names to addresses.
func ParseConnectionOverrides(s string) (map[string]int, error) {
	out := map[string]int{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		i := strings.LastIndex(item, ":")
		if i <= 0 {
			return nil, fmt.Errorf("%q is not host:N", item)
		}
		n, err := parseInt(item[i+1:], 0, math.MaxInt32)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", item, err)
		}
		host := strings.Trim(item[:i], "[]")
		if _, dup := out[host]; dup {
			return nil, fmt.Errorf("%q listed twice", host)
		}
		out[host] = int(n)
	}
	return out, nil
}
