package controller

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config configures a Store.
type Config struct {
	// NodeID is this broker's node.id and its Raft server ID. Must be >= 0.
	NodeID int32
	// RaftAddr is host:port the controller listens on for Raft and
	// forwarded calls. Host must be an IP address: outgoing connections
	// are bound to it too. Required; must equal Voters[NodeID] on a voter
	// and differ from every voter's address on a non-voter.
	RaftAddr string
	// Voters maps every voter's node ID to its RaftAddr; at least one
	// entry, the same on every node. A single entry is a one-voter
	// quorum. A voter (NodeID in Voters) with no Raft state bootstraps
	// the cluster with exactly these voters. A node whose NodeID is not
	// in Voters is a non-voter (see membership.go): it never bootstraps,
	// asks the controller (found through the voters' addresses) to add it
	// to the Raft configuration, and keeps a replicated copy of the log
	// without voting. Voter changes are not supported.
	Voters map[int32]string
	// Dir holds raft.db (log and votes, bbolt) and snapshots/. Created if
	// missing. Required.
	Dir string
	// KafkaHost, KafkaPort and Rack are this broker's advertised Kafka
	// endpoint, registered in the Image. KafkaHost is required; KafkaPort
	// must be in 0..65535; an empty Rack means none.
	KafkaHost string
	KafkaPort int32
	Rack      string
	// Logger receives operational messages. Default: discard.
	Logger *slog.Logger
	// Now is the clock for heartbeat liveness. Default: time.Now.
	Now func() time.Time
	// ValidateConfigs checks a topic's complete set of config overrides,
	// on the controller before a change is proposed. Default: accept any.
	ValidateConfigs func(map[string]string) error
	// DefaultPartitions is num.partitions. Default 1; must be >= 1.
	DefaultPartitions int32
	// DefaultReplicationFactor is default.replication.factor. Default 1;
	// must be >= 1.
	DefaultReplicationFactor int16
	// MaxPartitionsPerTopic bounds a topic's partition count. Default
	// 100000; must be >= 1.
	MaxPartitionsPerTopic int32
	// HeartbeatInterval is how often this broker heartbeats to the
	// controller (broker.heartbeat.interval.ms). Default 2s.
	HeartbeatInterval time.Duration
	// SessionTimeout is how long after its last heartbeat a broker counts
	// as alive (broker.session.timeout.ms). Default 9s; must exceed
	// HeartbeatInterval.
	SessionTimeout time.Duration
	// LivenessCheckInterval is how often the controller looks for brokers
	// whose session expired, to fence them. Default HeartbeatInterval.
	LivenessCheckInterval time.Duration
	// RaftTimeout is Raft's heartbeat and election timeout. Default 1s;
	// must be >= 10ms.
	RaftTimeout time.Duration
	// ApplyTimeout bounds a mutation whose context has no deadline.
	// Default 10s.
	ApplyTimeout time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// trigger a new one, and TrailingLogs how many entries are kept after
	// it for slow followers. Defaults 8192 and 10240.
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// DisableLeaderRebalance turns off automatic leader balancing
	// (auto.leader.rebalance.enable=false). Default false: the controller
	// balances.
	DisableLeaderRebalance bool
	// LeaderImbalanceCheckInterval is how often the controller checks
	// leader balance (leader.imbalance.check.interval.seconds). Default
	// 300s; must not be negative.
	LeaderImbalanceCheckInterval time.Duration
	// Import, when set, is adopted as the cluster is initialized: the
	// cluster ID, topics and producer-ID reservation of an earlier
	// single-node store (ReadLegacy), in the same Raft command
	// that sets the cluster ID. Ignored once the cluster has an ID.
	Import *Legacy
	// ReportServed is set by a broker that reports, with Store.Served,
	// the metadata Version it serves once it applied an Image to its
	// partitions. Such a broker stays fenced until its first report, and
	// the controller's AwaitPropagation waits for its reports. Default
	// false: the Version this node applied counts as served, and its
	// first heartbeat unfences it.
	ReportServed bool
	// LeaderImbalancePerBrokerPercentage is the share of a broker's
	// preferred partitions it may not lead before the controller moves
	// them back (leader.imbalance.per.broker.percentage). Default 10;
	// must be in 1..100 (Kafka also takes 0, any imbalance; here zero
	// means the default).
	LeaderImbalancePerBrokerPercentage int32
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = 1
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.MaxPartitionsPerTopic == 0 {
		c.MaxPartitionsPerTopic = 100000
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 2 * time.Second
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = 9 * time.Second
	}
	if c.LivenessCheckInterval == 0 {
		c.LivenessCheckInterval = c.HeartbeatInterval
	}
	if c.RaftTimeout == 0 {
		c.RaftTimeout = time.Second
	}
	if c.ApplyTimeout == 0 {
		c.ApplyTimeout = 10 * time.Second
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 8192
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 10240
	}
	if c.LeaderImbalanceCheckInterval == 0 {
		c.LeaderImbalanceCheckInterval = 300 * time.Second
	}
	if c.LeaderImbalancePerBrokerPercentage == 0 {
		c.LeaderImbalancePerBrokerPercentage = 10
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.NodeID < 0:
		return fmt.Errorf("controller: config: NodeID %d is negative", c.NodeID)
	case c.Dir == "":
		return errors.New("controller: config: Dir is required")
	case c.KafkaHost == "":
		return errors.New("controller: config: KafkaHost is required")
	case c.KafkaPort < 0 || c.KafkaPort > 65535:
		return fmt.Errorf("controller: config: KafkaPort %d is outside 0..65535", c.KafkaPort)
	case c.DefaultPartitions < 1:
		return fmt.Errorf("controller: config: DefaultPartitions %d must be >= 1", c.DefaultPartitions)
	case c.DefaultReplicationFactor < 1:
		return fmt.Errorf("controller: config: DefaultReplicationFactor %d must be >= 1", c.DefaultReplicationFactor)
	case c.MaxPartitionsPerTopic < 1:
		return fmt.Errorf("controller: config: MaxPartitionsPerTopic %d must be >= 1", c.MaxPartitionsPerTopic)
	case c.HeartbeatInterval < 0 || c.SessionTimeout <= c.HeartbeatInterval:
		return fmt.Errorf("controller: config: SessionTimeout %v must exceed HeartbeatInterval %v", c.SessionTimeout, c.HeartbeatInterval)
	case c.LivenessCheckInterval < 0:
		return fmt.Errorf("controller: config: LivenessCheckInterval %v is negative", c.LivenessCheckInterval)
	case c.RaftTimeout < 10*time.Millisecond:
		return fmt.Errorf("controller: config: RaftTimeout %v must be >= 10ms", c.RaftTimeout)
	case c.ApplyTimeout < 0:
		return fmt.Errorf("controller: config: ApplyTimeout %v is negative", c.ApplyTimeout)
	case c.LeaderImbalanceCheckInterval < 0:
		return fmt.Errorf("controller: config: LeaderImbalanceCheckInterval %v is negative", c.LeaderImbalanceCheckInterval)
	case c.LeaderImbalancePerBrokerPercentage < 1 || c.LeaderImbalancePerBrokerPercentage > 100:
		return fmt.Errorf("controller: config: LeaderImbalancePerBrokerPercentage %d is outside 1..100", c.LeaderImbalancePerBrokerPercentage)
	}
	if err := checkIPAddr(c.RaftAddr); err != nil {
		return fmt.Errorf("controller: config: RaftAddr: %w", err)
	}
	if len(c.Voters) == 0 {
		return errors.New("controller: config: Voters is required (at least one voter)")
	}
	for id, addr := range c.Voters {
		if id < 0 {
			return fmt.Errorf("controller: config: voter ID %d is negative", id)
		}
		if err := checkIPAddr(addr); err != nil {
			return fmt.Errorf("controller: config: Voters[%d]: %w", id, err)
		}
	}
	if addr, voter := c.Voters[c.NodeID]; voter {
		if addr != c.RaftAddr {
			return fmt.Errorf("controller: config: node %d is a voter at %q but RaftAddr is %q", c.NodeID, addr, c.RaftAddr)
		}
		return nil
	}
	for id, addr := range c.Voters {
		if sameAddr(addr, c.RaftAddr) {
			return fmt.Errorf("controller: config: RaftAddr %q of non-voter %d is voter %d's address", c.RaftAddr, c.NodeID, id)
		}
	}
	return nil
}

// isVoter reports whether this node is one of the configured voters.
func (c Config) isVoter() bool {
	_, ok := c.Voters[c.NodeID]
	return ok
}

// sameAddr reports whether two IP:port addresses name the same endpoint
// (127.0.0.1:9093 and 127.000.0.1:9093 do; an unparsable one matches only
// itself).
func sameAddr(a, b string) bool {
	if a == b {
		return true
	}
	ha, pa, errA := net.SplitHostPort(a)
	hb, pb, errB := net.SplitHostPort(b)
	if errA != nil || errB != nil || pa != pb {
		return false
	}
	ia, ib := net.ParseIP(ha), net.ParseIP(hb)
	return ia != nil && ia.Equal(ib)
}

func checkIPAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if net.ParseIP(host) == nil {
		return fmt.Errorf("host %q is not an IP address", host)
	}
	return nil
}
