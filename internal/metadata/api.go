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
// reaches topics and partitions. The single-node Local store is a file in the
// data directory; the cluster issue replaces it with a Raft-replicated store
// behind the same interface. All methods are safe for concurrent use.
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
