package broker

// AlterPartitionReassignments v0 (KIP-455): moves partitions to new
// replica lists, or cancels a move (null replicas). Any broker answers;
// the cluster store forwards the change to the controller, which starts
// the reassignment and completes it once the new replicas are in sync, so
// an accepted partition is still moving when the answer arrives
// (ListPartitionReassignments shows it). v1's
// allow_replication_factor_change (KIP-860) is not served.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleAlterPartitionReassignments(ctx context.Context, req *kmsg.AlterPartitionAssignmentsRequest) *kmsg.AlterPartitionAssignmentsResponse {
	resp := req.ResponseKind().(*kmsg.AlterPartitionAssignmentsResponse)
	deadline := deadlineIn(req.TimeoutMillis) // from the request's arrival
	seen := map[string]map[int32]int{}
	for _, t := range req.Topics {
		if seen[t.Topic] == nil {
			seen[t.Topic] = map[int32]int{}
		}
		for _, p := range t.Partitions {
			seen[t.Topic][p.Partition]++
		}
	}
	targets := map[string]map[int32][]int32{}
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			if seen[t.Topic][p.Partition] > 1 {
				continue
			}
			if targets[t.Topic] == nil {
				targets[t.Topic] = map[int32][]int32{}
			}
			targets[t.Topic][p.Partition] = p.Replicas
		}
	}
	results, err := b.meta.ReassignPartitions(ctx, targets)
	if err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
		return resp
	}
	if anySucceeded(results) {
		b.awaitPropagation(deadline, "AlterPartitionReassignments")
	}
	for _, t := range req.Topics {
		rt := kmsg.NewAlterPartitionAssignmentsResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewAlterPartitionAssignmentsResponseTopicPartition()
			rp.Partition = p.Partition
			if seen[t.Topic][p.Partition] > 1 {
				rp.ErrorCode = kerr.InvalidRequest.Code
				rp.ErrorMessage = kmsg.StringPtr("partition listed more than once in one request")
			} else if err := results[t.Topic][p.Partition]; err != nil {
				rp.ErrorCode, rp.ErrorMessage = errCode(err), errMessage(err)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}
