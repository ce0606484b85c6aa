package broker

// ListPartitionReassignments v0 (KIP-455): the reassignments in progress,
// of every partition (null topics) or of the named ones, with the
// partition's replicas and those being added and removed. It reads this
// broker's copy of the cluster metadata, which may briefly lag the
// controller's. Named partitions that are unknown or not moving are left
// out, as in Kafka; without a controller nothing ever moves.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleListPartitionReassignments(req *kmsg.ListPartitionReassignmentsRequest) *kmsg.ListPartitionReassignmentsResponse {
	resp := req.ResponseKind().(*kmsg.ListPartitionReassignmentsResponse)
	var wanted map[string]map[int32]bool // nil: all
	if req.Topics != nil {
		wanted = map[string]map[int32]bool{}
		for _, t := range req.Topics {
			if wanted[t.Topic] == nil {
				wanted[t.Topic] = map[int32]bool{}
			}
			for _, p := range t.Partitions {
				wanted[t.Topic][p] = true
			}
		}
	}
	b.meta.EachReassignment(func(topic string, partition int32, replicas, adding, removing []int32) {
		if wanted != nil && !wanted[topic][partition] {
			return
		}
		if n := len(resp.Topics); n == 0 || resp.Topics[n-1].Topic != topic {
			rt := kmsg.NewListPartitionReassignmentsResponseTopic()
			rt.Topic = topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewListPartitionReassignmentsResponseTopicPartition()
		rp.Partition, rp.Replicas, rp.AddingReplicas, rp.RemovingReplicas = partition, replicas, adding, removing
		if rp.AddingReplicas == nil {
			rp.AddingReplicas = []int32{}
		}
		if rp.RemovingReplicas == nil {
			rp.RemovingReplicas = []int32{}
		}
		rt := &resp.Topics[len(resp.Topics)-1]
		rt.Partitions = append(rt.Partitions, rp)
	})
	return resp
}
