package broker

// ElectLeaders v0–2 (KIP-460): election type 0 (preferred; v0 has no
// type) moves leadership to each partition's first replica where it is
// unfenced and in the ISR; type 1 (unclean) gives each leaderless
// partition its first live replica as leader, even outside the ISR.
// Null topics mean every partition; then partitions that need no election
// are left out of the answer, as in Kafka. Any broker answers; the
// cluster store forwards to the controller. Without a controller (the
// single-node store) this broker leads every partition, so no election is
// ever needed.

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
)

// LeaderElector is implemented by metadata stores that elect partition
// leaders on request (KIP-460): the Raft controller.
type LeaderElector interface {
	// ElectPartitionLeaders runs an election of electionType (0
	// preferred, 1 unclean) for the named partitions, or every partition
	// when partitions is nil. The result holds every partition elected
	// (nil) or refused; for nil partitions, those that needed no
	// election are left out. The error is for the call as a whole.
	ElectPartitionLeaders(ctx context.Context, electionType int8, partitions map[string][]int32) (map[string]map[int32]error, error)
}

func (b *Broker) handleElectLeaders(ctx context.Context, req *kmsg.ElectLeadersRequest) *kmsg.ElectLeadersResponse {
	resp := req.ResponseKind().(*kmsg.ElectLeadersResponse)
	deadline := deadlineIn(req.TimeoutMillis) // from the request's arrival
	if req.ElectionType != 0 && req.ElectionType != 1 {
		// v0 has no election type, so this is v1+, which has the field.
		resp.ErrorCode = kerr.InvalidRequest.Code
		return resp
	}
	var partitions map[string][]int32 // nil: all
	if req.Topics != nil {
		partitions = map[string][]int32{}
		for _, t := range req.Topics {
			for _, p := range t.Partitions {
				if !slices.Contains(partitions[t.Topic], p) {
					partitions[t.Topic] = append(partitions[t.Topic], p)
				}
			}
		}
	}
	var results map[string]map[int32]error
	if e, ok := b.meta.(LeaderElector); ok {
		var err error
		if results, err = e.ElectPartitionLeaders(ctx, req.ElectionType, partitions); err != nil {
			resp.ErrorCode = errCode(err) // v0 has no top-level code: each partition gets it below
			results = map[string]map[int32]error{}
			for topic, parts := range partitions {
				results[topic] = map[int32]error{}
				for _, p := range parts {
					results[topic][p] = err
				}
			}
		}
	} else {
		results = electWithoutController(b.meta.Image(), partitions)
	}
	if partitions == nil {
		partitions = map[string][]int32{}
		for topic, parts := range results {
			partitions[topic] = slices.Sorted(maps.Keys(parts))
		}
	}
	if anySucceeded(results) {
		b.awaitPropagation(deadline, "ElectLeaders")
	}
	for _, topic := range slices.Sorted(maps.Keys(partitions)) {
		rt := kmsg.NewElectLeadersResponseTopic()
		rt.Topic = topic
		for _, p := range partitions[topic] {
			rp := kmsg.NewElectLeadersResponseTopicPartition()
			rp.Partition = p
			if err := results[topic][p]; err != nil {
				rp.ErrorCode, rp.ErrorMessage = errCode(err), errMessage(err)
			}
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return resp
}

// electWithoutController answers an election on a store with no
// controller: every existing partition is led by this broker already.
func electWithoutController(img *metadata.Image, partitions map[string][]int32) map[string]map[int32]error {
	out := map[string]map[int32]error{}
	for topic, parts := range partitions {
		out[topic] = map[int32]error{}
		t := img.Topics[topic]
		for _, p := range parts {
			if t == nil || p < 0 || int(p) >= len(t.Partitions) {
				out[topic][p] = kerrWith(kerr.UnknownTopicOrPartition, fmt.Sprintf("Partition %s-%d does not exist.", topic, p))
			} else {
				out[topic][p] = kerrWith(kerr.ElectionNotNeeded, "Leader election not needed for topic partition.")
			}
		}
	}
	return out
}
