package broker

// AlterPartitionReassignments v0 (KIP-455): moves partitions to new
// replica lists, or cancels a move (null replicas). Any broker answers;
// the cluster store forwards the change to the controller, which starts
// the reassignment and completes it once the new replicas are in sync, so
// an accepted partition is still moving when the answer arrives
// (ListPartitionReassignments shows it). Without a controller (the
// single-node store) the only valid target is the current replica list,
// which changes nothing; any other list names a broker that does not
// exist (INVALID_REPLICA_ASSIGNMENT), and a cancel finds nothing to
// cancel (NO_REASSIGNMENT_IN_PROGRESS). v1's allow_replication_factor_change
// (KIP-860) is not served.

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
)

// PartitionReassigner is implemented by metadata stores that move
// partition replicas (KIP-455): the Raft controller.
type PartitionReassigner interface {
	// ReassignPartitions starts, replaces or, for a nil target, cancels
	// the reassignment of each partition; the result has an entry (nil
	// on success) for every requested partition. The error is for the
	// call as a whole.
	ReassignPartitions(ctx context.Context, targets map[string]map[int32][]int32) (map[string]map[int32]error, error)
	// EachReassignment calls fn for every reassignment in progress,
	// sorted by topic and partition.
	EachReassignment(fn func(topic string, partition int32, replicas, adding, removing []int32))
}

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
	var results map[string]map[int32]error
	if r, ok := b.meta.(PartitionReassigner); ok {
		var err error
		if results, err = r.ReassignPartitions(ctx, targets); err != nil {
			resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
			return resp
		}
	} else {
		results = reassignWithoutController(b.meta.Image(), targets)
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

// reassignWithoutController answers reassignments on a store with no
// controller, where no replica can move.
func reassignWithoutController(img *metadata.Image, targets map[string]map[int32][]int32) map[string]map[int32]error {
	out := map[string]map[int32]error{}
	for topic, parts := range targets {
		out[topic] = map[int32]error{}
		for p, target := range parts {
			out[topic][p] = checkLocalReassignment(img, topic, p, target)
		}
	}
	return out
}

func checkLocalReassignment(img *metadata.Image, topic string, p int32, target []int32) error {
	t := img.Topics[topic]
	if t == nil || p < 0 || int(p) >= len(t.Partitions) {
		return kerrWith(kerr.UnknownTopicOrPartition, fmt.Sprintf("Partition %s-%d does not exist.", topic, p))
	}
	if target == nil {
		return kerrWith(kerr.NoReassignmentInProgress, fmt.Sprintf("No reassignment is in progress for topic %s partition %d", topic, p))
	}
	if len(target) == 0 {
		return kerrWith(kerr.InvalidReplicaAssignment, fmt.Sprintf("The manual partition assignment for partition %d is an empty replica list.", p))
	}
	for i, r := range target {
		if _, ok := img.Brokers[r]; !ok {
			return kerrWith(kerr.InvalidReplicaAssignment, fmt.Sprintf(
				"The manual partition assignment includes broker %d, but no such broker is registered.", r))
		}
		if slices.Contains(target[:i], r) {
			return kerrWith(kerr.InvalidReplicaAssignment, fmt.Sprintf(
				"The manual partition assignment includes the broker %d more than once.", r))
		}
	}
	if !slices.Equal(target, t.Partitions[p].Replicas) {
		return kerrWith(kerr.InvalidReplicaAssignment, "This broker has no controller; partition replicas cannot move.")
	}
	return nil
}

// kerrWith is a Kafka error with its own message: errCode finds the code,
// errMessage returns msg.
func kerrWith(code *kerr.Error, msg string) error { return &codedMessage{code: code, msg: msg} }

type codedMessage struct {
	code *kerr.Error
	msg  string
}

func (e *codedMessage) Error() string { return e.msg }
func (e *codedMessage) Unwrap() error { return e.code }
