package metadata

import (
	"context"
	"errors"
)

// Image is an immutable view of cluster metadata. The broker reads the
// current Image (Store.Image) per request without locks; a change produces
// a new Image. Never mutate an Image or anything reachable from it.
type Image struct {
	ClusterID    string
	ControllerID int32
	Brokers      map[int32]Broker
	Topics       map[string]*Topic // by name
	TopicsByID   map[[16]byte]*Topic
	Epoch        int64 // increases with every change
	// Version is the replicated metadata's version: the number of changes
	// applied, the same on every broker once it has applied the same
	// change (KRaft's metadata offset plays this part). Brokers report the
	// Version they serve (Store.Served). 0 for a store that does not
	// replicate.
	Version int64
}

// Broker is one registered broker.
type Broker struct {
	NodeID int32
	Host   string
	Port   int32
	Rack   *string
}

// Topic is one topic.
type Topic struct {
	Name       string
	ID         [16]byte
	Internal   bool
	Configs    map[string]string // explicit overrides only (topic-level)
	Partitions []Partition       // index = partition number
}

// Partition is one partition's placement and leadership.
type Partition struct {
	Index       int32
	Leader      int32 // -1 when none
	LeaderEpoch int32
	Replicas    []int32
	ISR         []int32
}

// CreateTopicRequest asks for a new topic.
type CreateTopicRequest struct {
	Name              string
	Partitions        int32             // -1: the broker default (num.partitions)
	ReplicationFactor int16             // -1: the broker default
	Assignment        map[int32][]int32 // optional manual assignment
	Configs           map[string]string
	ValidateOnly      bool
}

// ConfigChange is one change for AlterTopicConfigs.
type ConfigChange struct {
	Name  string
	Value *string // nil: remove the override
}

// Store is the one metadata/leadership layer through which every component
// reaches topics and partitions, implemented by the Raft-replicated
// controller.Store (and by fakes in tests). All methods are safe for
// concurrent use.
type Store interface {
	Image() *Image
	// Changes returns a channel that is closed at the next change after
	// the call; read Image() again then.
	Changes() <-chan struct{}

	CreateTopic(ctx context.Context, req CreateTopicRequest) (*Topic, error)
	DeleteTopic(ctx context.Context, name string) error
	CreatePartitions(ctx context.Context, name string, total int32, assignment [][]int32, validateOnly bool) error
	// AlterTopicConfigs applies changes. With incremental false, the
	// changes replace every override (AlterConfigs); with true they are
	// applied one by one (IncrementalAlterConfigs SET/DELETE).
	AlterTopicConfigs(ctx context.Context, name string, changes []ConfigChange, incremental, validateOnly bool) error
	// AllocateProducerID returns a producer ID never returned before, even
	// across restarts.
	AllocateProducerID(ctx context.Context) (int64, error)

	// Served tells the store that this broker serves every metadata
	// change up to version (the Version of an Image whose partitions it
	// has opened, deleted and configured). A replicated store keeps the
	// broker fenced until the first call, as a KRaft broker stays fenced
	// until it has caught up, and reports each later version to the
	// controller. It does not block.
	Served(version int64)
	// AwaitPropagation returns nil once every live, unfenced broker serves
	// every change acknowledged before the call (read-your-writes across
	// the cluster), or an error naming the brokers that lag when ctx ends
	// first; the changes themselves are made either way.
	AwaitPropagation(ctx context.Context) error
	// WaitFresh returns nil at once while this broker's Image is known to
	// hold every change acknowledged to any client; otherwise (just
	// started, fenced, or out of touch with the controller for a few
	// heartbeat intervals) it asks the controller and waits until the
	// Image caught up, or returns an error when ctx ends first.
	WaitFresh(ctx context.Context) error
	Close() error
}

// Errors mapped to Kafka error codes by the broker.
var (
	ErrTopicExists              = errors.New("metadata: topic already exists")
	ErrUnknownTopic             = errors.New("metadata: unknown topic")
	ErrInvalidTopic             = errors.New("metadata: invalid topic name")
	ErrInvalidPartitions        = errors.New("metadata: invalid partition count")
	ErrInvalidReplicationFactor = errors.New("metadata: invalid replication factor")
	ErrInvalidReplicaAssignment = errors.New("metadata: invalid replica assignment")
	ErrInvalidConfig            = errors.New("metadata: invalid config")
	ErrClosed                   = errors.New("metadata: store closed")
)
