package broker

import (
	"context"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/replication"
)

// Store is what the broker needs of the metadata layer: the metadata.Store
// reads and changes, and the controller's leadership calls.
// controller.Store implements it. Errors that carry a *kerr.Error (such as
// BROKER_ID_NOT_REGISTERED) are answered with its code.
type Store interface {
	metadata.Store

	// ElectPartitionLeaders runs an election of electionType (0
	// preferred, 1 unclean) for the named partitions, or every partition
	// when partitions is nil (KIP-460). The result holds every partition
	// elected (nil) or refused; for nil partitions, those that needed no
	// election are left out. The error is for the call as a whole.
	ElectPartitionLeaders(ctx context.Context, electionType int8, partitions map[string][]int32) (map[string]map[int32]error, error)
	// ReassignPartitions starts, replaces or, for a nil target, cancels
	// the reassignment of each partition (KIP-455); the result has an
	// entry (nil on success) for every requested partition. The error is
	// for the call as a whole.
	ReassignPartitions(ctx context.Context, targets map[string]map[int32][]int32) (map[string]map[int32]error, error)
	// EachReassignment calls fn for every reassignment in progress,
	// sorted by topic and partition.
	EachReassignment(fn func(topic string, partition int32, replicas, adding, removing []int32))
	// UnregisterBroker fences broker id and removes its registration.
	UnregisterBroker(ctx context.Context, id int32) error
	// AlterISR sends a partition leader's ISR proposal (Kafka's
	// AlterPartition) from this broker.
	AlterISR(ctx context.Context, topic string, partition int32, p replication.ISRProposal) error
	// PartitionEpoch is the partition's current epoch (Kafka's partition
	// epoch; 0 when unknown): LeaderState rejects ISR proposals based on
	// an older one.
	PartitionEpoch(topic string, partition int32) int32
	// ReportOffline reports this broker's replicas whose log failed, so
	// that the controller moves their leadership away.
	ReportOffline(partitions map[string][]int32)
}
