package broker

// DeleteTopics v0–6: by name, or by topic ID (v6+). The metadata change is
// durable before the answer; each broker's partition host removes the logs.
// With a positive timeout the answer waits, up to it, until no live broker
// serves the topics any more (awaitPropagation).

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDeleteTopics(ctx context.Context, req *kmsg.DeleteTopicsRequest) *kmsg.DeleteTopicsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	deadline := deadlineIn(req.TimeoutMillis) // from the request's arrival
	type target struct {
		name *string
		id   [16]byte
	}
	var targets []target
	if req.Version >= 6 {
		for _, t := range req.Topics {
			targets = append(targets, target{name: t.Topic, id: t.TopicID})
		}
	} else {
		for _, n := range req.TopicNames {
			targets = append(targets, target{name: kmsg.StringPtr(n)})
		}
	}
	img := b.meta.Image()
	changed := false
	for _, tg := range targets {
		rt := kmsg.NewDeleteTopicsResponseTopic()
		rt.Topic, rt.TopicID = tg.name, tg.id
		name := ""
		if tg.name != nil {
			name = *tg.name
		} else if t := img.TopicsByID[tg.id]; t != nil {
			name = t.Name
			rt.Topic = kmsg.StringPtr(name)
		} else {
			rt.ErrorCode = kerr.UnknownTopicID.Code
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		if t := img.Topics[name]; t != nil {
			rt.TopicID = t.ID
		}
		if err := b.meta.DeleteTopic(ctx, name); err != nil {
			rt.ErrorCode = errCode(err)
			rt.ErrorMessage = errMessage(err)
		} else {
			changed = true
		}
		resp.Topics = append(resp.Topics, rt)
	}
	if changed {
		b.awaitPropagation(deadline, "DeleteTopics")
	}
	return resp
}
