package broker

// CreatePartitions v0–3: grows topics to a new partition count, with
// optional assignments for the new partitions, and validate-only. With a
// positive timeout the answer waits, up to it, until every live broker
// serves the new partitions (awaitPropagation).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleCreatePartitions(ctx context.Context, req *kmsg.CreatePartitionsRequest) *kmsg.CreatePartitionsResponse {
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	deadline := deadlineIn(req.TimeoutMillis) // from the request's arrival
	seen := make(map[string]int, len(req.Topics))
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	changed := false
	for _, t := range req.Topics {
		rt := kmsg.NewCreatePartitionsResponseTopic()
		rt.Topic = t.Topic
		if seen[t.Topic] > 1 {
			rt.ErrorCode, rt.ErrorMessage = duplicateTopic()
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		var assignment [][]int32
		for _, a := range t.Assignment {
			assignment = append(assignment, a.Replicas)
		}
		if err := b.meta.CreatePartitions(ctx, t.Topic, t.Count, assignment, req.ValidateOnly); err != nil {
			rt.ErrorCode = errCode(err)
			rt.ErrorMessage = errMessage(err)
		} else {
			changed = changed || !req.ValidateOnly
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if changed {
		b.awaitPropagation(deadline, "CreatePartitions")
	}
	return resp
}
