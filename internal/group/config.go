package group

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/streambus/streambus/internal/group/assignor"
)

// Config holds the coordinator's settings. Each field names the Kafka broker
// setting it mirrors and that setting's default; EnsureDefaults fills zero
// fields with those defaults.
type Config struct {
	// GroupMinSessionTimeout is group.min.session.timeout.ms (default 6s):
	// a JoinGroup asking for a shorter session gets INVALID_SESSION_TIMEOUT.
	GroupMinSessionTimeout time.Duration
	// GroupMaxSessionTimeout is group.max.session.timeout.ms (default 30m).
	GroupMaxSessionTimeout time.Duration
	// InitialRebalanceDelay is group.initial.rebalance.delay.ms (Kafka's
	// default 3s): how long the first rebalance of an empty group waits for
	// more members, extended by each new member up to the rebalance timeout.
	// Unlike the other fields, zero is meaningful here (no delay, what tests
	// use) and EnsureDefaults leaves it alone: start from DefaultConfig to get
	// Kafka's 3s.
	InitialRebalanceDelay time.Duration
	// GroupMaxSize is group.max.size (default math.MaxInt32): a new member
	// beyond it gets GROUP_MAX_SIZE_REACHED.
	GroupMaxSize int
	// OffsetsRetention is offsets.retention.minutes (default 7 days): offsets
	// of a group without members expire this long after the later of their
	// commit and the moment the group became empty; an empty group without
	// offsets is deleted at the same point.
	OffsetsRetention time.Duration
	// OffsetMetadataMaxBytes is offset.metadata.max.bytes (default 4096).
	OffsetMetadataMaxBytes int
	// ConsumerSessionTimeout is group.consumer.session.timeout.ms (default
	// 45s), the session of KIP-848 members.
	ConsumerSessionTimeout time.Duration
	// ConsumerHeartbeatInterval is group.consumer.heartbeat.interval.ms
	// (default 5s), returned to KIP-848 members.
	ConsumerHeartbeatInterval time.Duration
	// ConsumerAssignors is group.consumer.assignors (default
	// ["uniform", "range"]); the first is used when a member names none.
	ConsumerAssignors []string
	// Partition is the __consumer_offsets partition these groups live in; it
	// only appears in generated member IDs and messages.
	Partition int32
}

// DefaultConfig returns Kafka's defaults, including the 3s initial
// rebalance delay.
func DefaultConfig() Config {
	c := Config{InitialRebalanceDelay: 3 * time.Second}
	c.EnsureDefaults()
	return c
}

// EnsureDefaults sets every zero field except InitialRebalanceDelay to its
// Kafka default.
func (c *Config) EnsureDefaults() {
	if c.GroupMinSessionTimeout == 0 {
		c.GroupMinSessionTimeout = 6 * time.Second
	}
	if c.GroupMaxSessionTimeout == 0 {
		c.GroupMaxSessionTimeout = 30 * time.Minute
	}
	if c.GroupMaxSize == 0 {
		c.GroupMaxSize = math.MaxInt32
	}
	if c.OffsetsRetention == 0 {
		c.OffsetsRetention = 7 * 24 * time.Hour
	}
	if c.OffsetMetadataMaxBytes == 0 {
		c.OffsetMetadataMaxBytes = 4096
	}
	if c.ConsumerSessionTimeout == 0 {
		c.ConsumerSessionTimeout = 45 * time.Second
	}
	if c.ConsumerHeartbeatInterval == 0 {
		c.ConsumerHeartbeatInterval = 5 * time.Second
	}
	if len(c.ConsumerAssignors) == 0 {
		c.ConsumerAssignors = []string{"uniform", "range"}
	}
}

// Validate reports the first inconsistent setting.
func (c *Config) Validate() error {
	var errs []error
	if c.GroupMinSessionTimeout <= 0 || c.GroupMaxSessionTimeout < c.GroupMinSessionTimeout {
		errs = append(errs, fmt.Errorf("group.min.session.timeout.ms (%v) must be positive and at most group.max.session.timeout.ms (%v)", c.GroupMinSessionTimeout, c.GroupMaxSessionTimeout))
	}
	if c.InitialRebalanceDelay < 0 {
		errs = append(errs, fmt.Errorf("group.initial.rebalance.delay.ms (%v) must not be negative", c.InitialRebalanceDelay))
	}
	if c.GroupMaxSize < 1 {
		errs = append(errs, fmt.Errorf("group.max.size (%d) must be at least 1", c.GroupMaxSize))
	}
	if c.OffsetsRetention <= 0 {
		errs = append(errs, fmt.Errorf("offsets.retention.minutes (%v) must be positive", c.OffsetsRetention))
	}
	if c.OffsetMetadataMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("offset.metadata.max.bytes (%d) must not be negative", c.OffsetMetadataMaxBytes))
	}
	if c.ConsumerSessionTimeout <= 0 || c.ConsumerHeartbeatInterval <= 0 || c.ConsumerHeartbeatInterval >= c.ConsumerSessionTimeout {
		errs = append(errs, fmt.Errorf("group.consumer.heartbeat.interval.ms (%v) must be positive and below group.consumer.session.timeout.ms (%v)", c.ConsumerHeartbeatInterval, c.ConsumerSessionTimeout))
	}
	if len(c.ConsumerAssignors) == 0 {
		errs = append(errs, errors.New("group.consumer.assignors must name at least one assignor"))
	}
	for _, name := range c.ConsumerAssignors {
		if _, ok := assignor.ByName(name); !ok {
			errs = append(errs, fmt.Errorf("group.consumer.assignors: unknown assignor %q", name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("group: invalid config: %w", err)
	}
	return nil
}
