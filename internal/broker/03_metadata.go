package broker

// Metadata v0–12: brokers, cluster ID, controller, and topics with their
// partitions' leaders, epochs, replicas and ISRs, read from the current
// metadata image. Unknown topics are created when auto.create.topics.enable
// is on and the request allows it (always before v4), with num.partitions
// and default.replication.factor, as Kafka does. v10+ may name topics by ID.

import (
	"context"
	"errors"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
)

func (b *Broker) handleMetadata(ctx context.Context, req *kmsg.MetadataRequest) *kmsg.MetadataResponse {
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	img := b.meta.Image()

	allowCreate := b.cfg.AutoCreateTopics && (req.Version < 4 || req.AllowAutoTopicCreation)
	type want struct {
		name string
		id   [16]byte
	}
	var wants []want
	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		for _, name := range img.TopicNames() {
			wants = append(wants, want{name: name})
		}
	} else {
		for _, t := range req.Topics {
			w := want{id: t.TopicID}
			if t.Topic != nil {
				w.name = *t.Topic
			}
			wants = append(wants, w)
		}
	}

	for _, w := range wants {
		rt := kmsg.NewMetadataResponseTopic()
		var t *metadata.Topic
		if w.name == "" && w.id != ([16]byte{}) {
			t = img.TopicsByID[w.id]
			if t == nil {
				rt.TopicID = w.id
				rt.ErrorCode = kerr.UnknownTopicID.Code
				resp.Topics = append(resp.Topics, rt)
				continue
			}
		} else {
			t = img.Topics[w.name]
		}
		if t == nil && allowCreate {
			var err error
			t, err = b.autoCreate(ctx, w.name)
			if err != nil {
				rt.Topic = kmsg.StringPtr(w.name)
				rt.ErrorCode = errCode(err)
				resp.Topics = append(resp.Topics, rt)
				continue
			}
			img = b.meta.Image()
		}
		if t == nil {
			rt.Topic = kmsg.StringPtr(w.name)
			rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		resp.Topics = append(resp.Topics, metadataTopic(t))
	}

	ids := make([]int, 0, len(img.Brokers))
	for id := range img.Brokers {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	for _, id := range ids {
		br := img.Brokers[int32(id)]
		rb := kmsg.NewMetadataResponseBroker()
		rb.NodeID, rb.Host, rb.Port, rb.Rack = br.NodeID, br.Host, br.Port, br.Rack
		resp.Brokers = append(resp.Brokers, rb)
	}
	resp.ClusterID = kmsg.StringPtr(img.ClusterID)
	resp.ControllerID = img.ControllerID
	return resp
}

// autoCreate creates a topic with the broker defaults, tolerating a
// concurrent creation of the same topic.
func (b *Broker) autoCreate(ctx context.Context, name string) (*metadata.Topic, error) {
	t, err := b.meta.CreateTopic(ctx, metadata.CreateTopicRequest{
		Name:              name,
		Partitions:        b.cfg.NumPartitions,
		ReplicationFactor: b.cfg.ReplicationFactor,
	})
	if errors.Is(err, metadata.ErrTopicExists) {
		if t := b.meta.Image().Topics[name]; t != nil {
			return t, nil
		}
	}
	if err != nil {
		return nil, err
	}
	b.log.Info("auto-created topic", "topic", name, "partitions", b.cfg.NumPartitions)
	if err := b.reconcile(); err != nil {
		b.log.Warn("reconcile after auto-create", "err", err)
	}
	return t, nil
}

func metadataTopic(t *metadata.Topic) kmsg.MetadataResponseTopic {
	rt := kmsg.NewMetadataResponseTopic()
	rt.Topic = kmsg.StringPtr(t.Name)
	rt.TopicID = t.ID
	rt.IsInternal = t.Internal
	for _, p := range t.Partitions {
		rp := kmsg.NewMetadataResponseTopicPartition()
		rp.Partition = p.Index
		rp.Leader = p.Leader
		rp.LeaderEpoch = p.LeaderEpoch
		rp.Replicas = append([]int32(nil), p.Replicas...)
		rp.ISR = append([]int32(nil), p.ISR...)
		if p.Leader < 0 {
			rp.ErrorCode = kerr.LeaderNotAvailable.Code
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}
