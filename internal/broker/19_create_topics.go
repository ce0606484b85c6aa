package broker

// CreateTopics v0–7: per topic, partitions and replication factor (-1 =
// broker defaults), manual assignments, configs, validate-only. v5+ returns
// the topic's resulting configs, partitions, replication factor and ID.
// With a positive timeout the answer waits, up to it, until every live
// broker serves the new topics (awaitPropagation).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/topicconfig"
)

func (b *Broker) handleCreateTopics(ctx context.Context, req *kmsg.CreateTopicsRequest) *kmsg.CreateTopicsResponse {
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	deadline := deadlineIn(req.TimeoutMillis) // from the request's arrival
	seen := make(map[string]int, len(req.Topics))
	for _, t := range req.Topics {
		seen[t.Topic]++
	}
	changed := false
	for _, t := range req.Topics {
		rt := kmsg.NewCreateTopicsResponseTopic()
		rt.Topic = t.Topic
		if seen[t.Topic] > 1 {
			rt.ErrorCode, rt.ErrorMessage = duplicateTopic()
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		cr := metadata.CreateTopicRequest{
			Name:              t.Topic,
			Partitions:        t.NumPartitions,
			ReplicationFactor: t.ReplicationFactor,
			Configs:           make(map[string]string),
			ValidateOnly:      req.ValidateOnly,
		}
		if len(t.ReplicaAssignment) == 0 && cr.Partitions == -1 {
			cr.Partitions = b.cfg.NumPartitions
		}
		if len(t.ReplicaAssignment) == 0 && cr.ReplicationFactor == -1 {
			cr.ReplicationFactor = b.cfg.ReplicationFactor
		}
		if len(t.ReplicaAssignment) > 0 {
			cr.Assignment = make(map[int32][]int32)
			for _, a := range t.ReplicaAssignment {
				cr.Assignment[a.Partition] = a.Replicas
			}
		}
		for _, c := range t.Configs {
			if c.Value != nil {
				cr.Configs[c.Name] = *c.Value
			}
		}
		created, err := b.meta.CreateTopic(ctx, cr)
		if err != nil {
			rt.ErrorCode = errCode(err)
			rt.ErrorMessage = errMessage(err)
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		changed = changed || !req.ValidateOnly
		if created != nil {
			rt.TopicID = created.ID
			rt.NumPartitions = int32(len(created.Partitions))
			if len(created.Partitions) > 0 {
				rt.ReplicationFactor = int16(len(created.Partitions[0].Replicas))
			}
		} else {
			rt.NumPartitions, rt.ReplicationFactor = cr.Partitions, cr.ReplicationFactor
		}
		for _, e := range topicconfig.Describe(cr.Configs, b.cfg.TopicDefaults) {
			c := kmsg.NewCreateTopicsResponseTopicConfig()
			c.Name, c.Value = e.Name, kmsg.StringPtr(e.Value)
			c.ReadOnly, c.IsSensitive, c.Source = e.ReadOnly, e.Sensitive, int8(e.Source)
			rt.Configs = append(rt.Configs, c)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if changed {
		b.awaitPropagation(deadline, "CreateTopics")
	}
	return resp
}
