package broker

// ElectLeaders v0–2 (KIP-460): election type 0 (preferred; v0 has no
// type) moves leadership to each partition's first replica where it is
// unfenced and in the ISR; type 1 (unclean) gives each leaderless
// partition its first live replica as leader, even outside the ISR.
// Null topics mean every partition; then partitions that need no election
// are left out of the answer, as in Kafka. Any broker answers; the store
// forwards to the controller. On a single node no election is ever
// needed (ELECTION_NOT_NEEDED).

import (
	"context"
	"maps"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

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
	results, err := b.meta.ElectPartitionLeaders(ctx, req.ElectionType, partitions)
	if err != nil {
		resp.ErrorCode = errCode(err) // v0 has no top-level code: each partition gets it below
		results = map[string]map[int32]error{}
		for topic, parts := range partitions {
			results[topic] = map[int32]error{}
			for _, p := range parts {
				results[topic][p] = err
			}
		}
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
