package controller

import (
	"context"

	"github.com/streambus/streambus/internal/replication"
)

// AlterISR sends a partition leader's ISR proposal (replication.LeaderState)
// as an AlterPartition from this broker. Part of broker.Store.
func (s *Store) AlterISR(ctx context.Context, topic string, partition int32, p replication.ISRProposal) error {
	_, err := s.AlterPartition(ctx, AlterPartitionRequest{
		Topic: topic, Partition: partition, BrokerID: s.cfg.NodeID,
		LeaderEpoch: p.LeaderEpoch, PartitionEpoch: p.PartitionEpoch, NewISR: p.ISR,
	})
	return err
}

// PartitionEpoch is the partition's current epoch (0 when unknown). It
// is part of broker.Store.
func (s *Store) PartitionEpoch(topic string, partition int32) int32 {
	st, ok := s.PartitionState(topic, partition)
	if !ok {
		return 0
	}
	return st.PartitionEpoch
}
