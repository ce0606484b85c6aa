// Package config holds the broker's configuration: defaults, the YAML file,
// STREAMBUS_* environment variables and command-line flags, merged in that
// order of increasing precedence, then validated.
package config

import "time"

// FlushMode says when appended data is fsynced.
type FlushMode string

const (
	// FlushOnAck fsyncs before acknowledging acks=1/all produce requests
	// (group commit: concurrent producers share fsyncs). The default.
	FlushOnAck FlushMode = "ack"
	// FlushInterval fsyncs every log.flush.interval.ms; acknowledged data
	// written since the last flush can be lost in a machine crash.
	FlushInterval FlushMode = "interval"
)

// RackAwareReplicaSelector is Kafka's replica.selector.class that sends
// consumers to a replica in their rack; RackAwareAlias is accepted for it.
const (
	RackAwareReplicaSelector = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
	RackAwareAlias           = "rack-aware"
)

// RackAware reports whether replica.selector.class is the rack-aware
// selector.
func (c *Config) RackAware() bool {
	return c.ReplicaSelectorClass == RackAwareReplicaSelector || c.ReplicaSelectorClass == RackAwareAlias
}

// Config is the whole broker configuration. Field comments give the YAML
// key (Kafka's name where Kafka has one) and the default.
type Config struct {
	NodeID              int32  // node.id, default 1
	DataDir             string // data-dir, default ./streambus-data
	KafkaAddr           string // kafka-addr, default localhost:9092
	AdvertisedKafkaAddr string // advertised-kafka-addr, default: kafka-addr (with the bound port if :0)
	HTTPAddr            string // http-addr, default localhost:9644

	// RaftAddr and Voters make the broker a member of a cluster whose
	// metadata is replicated by Raft (internal/controller). With no voters
	// the broker is a single node with a local metadata file.
	RaftAddr string           // raft-addr, default none: IP:port of this broker's Raft listener
	Voters   map[int32]string // voters, default none: "1=IP:PORT,2=IP:PORT,3=IP:PORT"

	// BrokerRack is broker.rack, default none: this broker's rack, listed
	// in Metadata and used by replica.selector.class.
	BrokerRack string
	// ReplicaSelectorClass is replica.selector.class, default none: the
	// leader serves every consumer. RackAwareReplicaSelector (set as
	// Kafka's class name or "rack-aware") sends a consumer that names its
	// rack to an in-sync replica in that rack (KIP-392).
	ReplicaSelectorClass string

	BrokerHeartbeatInterval time.Duration // broker.heartbeat.interval.ms, default 2000
	BrokerSessionTimeout    time.Duration // broker.session.timeout.ms, default 9000
	// ControllerElectionTimeout is controller.quorum.election.timeout.ms,
	// default 1000: Raft's heartbeat and election timeout.
	ControllerElectionTimeout time.Duration
	ReplicaLagTime            time.Duration // replica.lag.time.max.ms, default 30000

	AutoLeaderRebalance          bool          // auto.leader.rebalance.enable, default true
	LeaderImbalanceCheckInterval time.Duration // leader.imbalance.check.interval.seconds, default 300
	LeaderImbalancePerBroker     int32         // leader.imbalance.per.broker.percentage, default 10

	AutoCreateTopics         bool  // auto.create.topics.enable, default true
	NumPartitions            int32 // num.partitions, default 1
	DefaultReplicationFactor int16 // default.replication.factor, default 1

	SocketRequestMaxBytes int32         // socket.request.max.bytes, default 104857600
	ConnectionsMaxIdle    time.Duration // connections.max.idle.ms, default 600000

	LogDirMinFreeBytes int64 // log.dir.min.free.bytes, default 67108864: produce refused below this much free space

	MaxConnections      int32 // max.connections, default 2147483647: at the limit, accepting pauses
	MaxConnectionsPerIP int32 // max.connections.per.ip, default 2147483647: beyond it, new connections are closed
	// MaxConnectionsPerIPOverrides is max.connections.per.ip.overrides:
	// "host:N,host:N" (ParseConnectionOverrides), default empty.
	MaxConnectionsPerIPOverrides string
	RequestReadTimeout           time.Duration // socket.request.read.timeout.ms, default 30000: a request half-sent for longer is dropped

	FlushMode     FlushMode     // log.flush.mode, default "ack"
	FlushInterval time.Duration // log.flush.interval.ms, default 1000 (used with log.flush.mode=interval)

	LogRetentionCheckInterval time.Duration // log.retention.check.interval.ms, default 300000
	// LogMaxOpenFiles is log.max.open.files, default 10000: segment and
	// index files the broker keeps open; beyond it the least recently used
	// are closed (idle partitions hold none) and reopened on use.
	LogMaxOpenFiles int32

	// TopicDefaults are broker-level defaults for topic configs, keyed by
	// the topic config name (retention.ms, segment.bytes, ...), set in YAML
	// under Kafka's broker names (log.retention.ms, log.segment.bytes,
	// log.roll.ms, log.cleanup.policy, log.cleaner.delete.retention.ms,
	// log.cleaner.min.compaction.lag.ms, message.max.bytes,
	// log.message.timestamp.type, compression.type, log.retention.bytes,
	// log.index.interval.bytes). Only keys that were set appear.
	TopicDefaults map[string]string

	ShutdownTimeout time.Duration // shutdown.timeout.ms, default 10000

	Groups GroupConfig // consumer groups and __consumer_offsets
}

// GroupConfig configures the group coordinator, with Kafka's names.
type GroupConfig struct {
	// OffsetsTopicPartitions is offsets.topic.num.partitions: partitions of
	// __consumer_offsets, each with its own coordinator goroutine. Kafka's
	// default is 50; StreamBus defaults to 8, which suits small machines
	// (each partition costs a directory, open files and a goroutine) and
	// still spreads groups over both cores of a laptop. Fixed once the topic
	// exists.
	OffsetsTopicPartitions int32
	// OffsetsTopicReplicationFactor is offsets.topic.replication.factor,
	// default 3 as in Kafka. The broker caps it at the number of voters
	// (so a single node uses 1).
	OffsetsTopicReplicationFactor int16
	MinSessionTimeout             time.Duration // group.min.session.timeout.ms, default 6000
	MaxSessionTimeout             time.Duration // group.max.session.timeout.ms, default 1800000
	InitialRebalanceDelay         time.Duration // group.initial.rebalance.delay.ms, default 3000
	MaxSize                       int32         // group.max.size, default 2147483647
	OffsetsRetention              time.Duration // offsets.retention.minutes, default 10080 (7 days)
	OffsetMetadataMaxBytes        int32         // offset.metadata.max.bytes, default 4096
	ConsumerSessionTimeout        time.Duration // group.consumer.session.timeout.ms, default 45000 (KIP-848)
	ConsumerHeartbeatInterval     time.Duration // group.consumer.heartbeat.interval.ms, default 5000 (KIP-848)
	ConsumerAssignors             []string      // group.consumer.assignors, default uniform,range (the first is the default)
}
