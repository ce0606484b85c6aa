package broker

// Metadata v0–12: brokers, cluster ID, controller, and topics with their
// partitions' leaders, epochs, replicas and ISRs, read from the current
// metadata image. v10+ may name topics by ID.
//
// A topic missing from the image is answered UNKNOWN_TOPIC_OR_PARTITION
// only when the image is known to hold every acknowledged change
// (metadata.Store.WaitFresh): a broker that just started, or was out of
// touch with the controller, first catches up for up to freshWait, and
// answers LEADER_NOT_AVAILABLE (retriable) if it cannot. With
// auto.create.topics.enable and a request that allows it (always before
// v4), a missing topic is created with num.partitions and
// default.replication.factor, as Kafka does: the answer waits until every
// live broker serves it, and a creation that fails or races another
// broker's is answered LEADER_NOT_AVAILABLE, never TOPIC_ALREADY_EXISTS
// or another error a client gives up on (an invalid name stays
// INVALID_TOPIC_EXCEPTION).

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/storage"
)

const (
	// freshWait bounds how long a Metadata request naming a topic this
	// broker does not know waits for the broker to catch up.
	freshWait = time.Second
	// autoCreateTimeout bounds an auto-creation, and
	// autoCreatePropagation its wait for every broker to serve the topic.
	autoCreateTimeout     = 10 * time.Second
	autoCreatePropagation = 5 * time.Second
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

	fresh := true
	for _, w := range wants {
		if img.Topics[w.name] == nil && img.TopicsByID[w.id] == nil {
			fctx, cancel := context.WithTimeout(ctx, freshWait)
			fresh = b.meta.WaitFresh(fctx) == nil
			cancel()
			img = b.meta.Image()
			break
		}
	}

	// Auto-creation: every missing topic first, then one wait for all of
	// them to be served everywhere.
	createErrs := map[string]error{}
	if fresh && allowCreate {
		deadline := time.Now().Add(autoCreatePropagation)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		waitFor := false
		for _, w := range wants {
			if w.name == "" || img.Topics[w.name] != nil {
				continue
			}
			if _, done := createErrs[w.name]; done {
				continue
			}
			err := b.autoCreate(ctx, w.name)
			createErrs[w.name] = err
			waitFor = waitFor || err == nil
		}
		if waitFor {
			b.awaitPropagation(deadline, "Metadata")
		}
		img = b.meta.Image()
	}

	for _, w := range wants {
		rt := kmsg.NewMetadataResponseTopic()
		var t *metadata.Topic
		if w.name == "" && w.id != ([16]byte{}) {
			t = img.TopicsByID[w.id]
			if t == nil {
				rt.TopicID = w.id
				rt.ErrorCode = kerr.UnknownTopicID.Code // retriable
				resp.Topics = append(resp.Topics, rt)
				continue
			}
		} else {
			t = img.Topics[w.name]
		}
		if t == nil {
			rt.Topic = kmsg.StringPtr(w.name)
			err, tried := createErrs[w.name]
			switch {
			case tried && err != nil:
				rt.ErrorCode = errCode(err)
			case tried, !fresh:
				// Created but not here yet, or this broker cannot tell
				// whether it exists: retriable.
				rt.ErrorCode = kerr.LeaderNotAvailable.Code
			default:
				rt.ErrorCode = kerr.UnknownTopicOrPartition.Code
			}
			resp.Topics = append(resp.Topics, rt)
			continue
		}
		resp.Topics = append(resp.Topics, b.metadataTopic(t))
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

// autoCreate creates a topic with the broker defaults. A topic created a
// moment earlier by another broker's auto-creation (TOPIC_ALREADY_EXISTS
// from the controller) counts as created: the wait that follows covers
// it. Any failure but an invalid name is LEADER_NOT_AVAILABLE, which
// clients retry.
func (b *Broker) autoCreate(ctx context.Context, name string) error {
	cctx, cancel := context.WithTimeout(ctx, autoCreateTimeout)
	_, err := b.meta.CreateTopic(cctx, metadata.CreateTopicRequest{
		Name:              name,
		Partitions:        b.cfg.NumPartitions,
		ReplicationFactor: b.cfg.ReplicationFactor,
	})
	cancel()
	switch {
	case err == nil:
		b.log.Info("auto-created topic", "topic", name, "partitions", b.cfg.NumPartitions)
		return nil
	case errors.Is(err, metadata.ErrTopicExists):
		return nil
	case errors.Is(err, metadata.ErrInvalidTopic):
		return err
	default:
		b.log.Warn("auto-creating topic failed", "topic", name, "err", err)
		return kerr.LeaderNotAvailable
	}
}

// metadataTopic describes t. A replica this broker holds whose log failed
// is listed in OfflineReplicas, and a partition it leads in that state
// answers KAFKA_STORAGE_ERROR (retriable) until the log recovers.
func (b *Broker) metadataTopic(t *metadata.Topic) kmsg.MetadataResponseTopic {
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
		if containsInt32(p.Replicas, b.cfg.NodeID) && b.host.IsOffline(storage.PartitionID{Topic: t.Name, Partition: p.Index}) {
			rp.OfflineReplicas = []int32{b.cfg.NodeID}
			if p.Leader == b.cfg.NodeID {
				rp.ErrorCode = kerr.KafkaStorageError.Code
			}
		}
		rt.Partitions = append(rt.Partitions, rp)
	}
	return rt
}
