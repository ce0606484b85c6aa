package broker

// DeleteRecords v0–2, with Kafka's semantics (ReplicaManager.deleteRecords
// and DelayedDeleteRecords). The leader moves each partition's log start
// offset forward to the requested offset (-1 means the high watermark);
// whole segments below it are removed. Offsets beyond the high watermark
// are OFFSET_OUT_OF_RANGE, and a topic whose cleanup.policy lacks delete
// (compact only) is refused with POLICY_VIOLATION.
//
// The response's low watermark is the smallest log start offset over the
// leader and the replicas on live brokers (LeaderState.LowWatermark):
// followers move their log start up to the leader's when they fetch and
// report it with their next fetch. The request completes once every
// partition's low watermark reaches the offset asked for; partitions still
// short of it after timeout_millis answer REQUEST_TIMED_OUT with the low
// watermark they had when the request arrived. That wait runs on a broker
// goroutine, so the connection keeps reading requests. Single-replica
// partitions complete at once.

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/partitions"
)

// lowWatermarkRecheck bounds how long a DeleteRecords waiter sleeps
// without a wake-up. Every change that can raise the low watermark wakes
// it already (a follower's new log start, metadata, leadership); this is
// a safety net.
const lowWatermarkRecheck = 100 * time.Millisecond

// lowWatermarkWait is one partition of a DeleteRecords request waiting for
// its replicas.
type lowWatermarkWait struct {
	part     *partitions.Partition
	required int64 // the offset the low watermark must reach
	sp       *kmsg.DeleteRecordsResponseTopicPartition
}

func (b *Broker) handleDeleteRecords(rc *reqContext, req *kmsg.DeleteRecordsRequest) result {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	img := b.host.Image()
	var waits []lowWatermarkWait
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.DeleteRecordsResponseTopicPartition, len(rt.Partitions))
		for i, rp := range rt.Partitions {
			sp := &st.Partitions[i]
			*sp = kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			part, required, err := b.deleteRecordsOnLeader(img, rt.Topic, rp.Partition, rp.Offset)
			if err == nil {
				var lw int64
				if lw, _, err = b.lowWatermark(img, part); err == nil {
					sp.LowWatermark = lw
					if lw < required {
						waits = append(waits, lowWatermarkWait{part, required, sp})
					}
				}
			}
			sp.ErrorCode = errCode(err)
			if sp.ErrorCode == kerr.UnknownServerError.Code {
				b.log.Error("delete records", "topic", rt.Topic, "partition", rp.Partition, "err", err)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(waits) == 0 {
		return answer(resp)
	}
	d := newDeferred()
	b.goFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(req.TimeoutMillis)*time.Millisecond)
		defer cancel()
		for _, w := range waits {
			b.waitLowWatermark(ctx, rc.gone, w)
		}
		d.answer(resp)
	})
	return d.result()
}

// deleteRecordsOnLeader moves the log start of a partition this broker
// leads (Kafka's Partition.deleteRecordsOnLeader) and returns the offset
// the low watermark must reach.
func (b *Broker) deleteRecordsOnLeader(img *metadata.Image, topic string, partition int32, offset int64) (*partitions.Partition, int64, error) {
	part, _, err := b.lookup(img, topic, partition)
	if err != nil {
		return nil, -1, err
	}
	if !part.Config().Log.Delete {
		return nil, -1, fmt.Errorf("%w: Records of partition %s-%d can not be deleted due to the configured policy",
			kerr.PolicyViolation, topic, partition)
	}
	hw := part.HighWatermark()
	switch {
	case offset == -1:
		offset = hw
	case offset < 0 || offset > hw:
		return nil, -1, kerr.OffsetOutOfRange
	}
	if _, err := part.Log().DeleteRecordsBefore(offset); err != nil {
		return nil, -1, err
	}
	return part, offset, nil
}

// lowWatermark is Kafka's lowWatermarkIfLeader for p, a partition this
// broker led when the request arrived: the smallest log start offset over
// the leader and the followers on live brokers (in img.Brokers, which
// lists only unfenced brokers), as their fetches last reported it. wake is
// closed when a follower reports a new log start or the LeaderState ends;
// it is nil when p has no LeaderState. The error is the Kafka error once
// this broker no longer leads p.
func (b *Broker) lowWatermark(img *metadata.Image, p *partitions.Partition) (lw int64, wake <-chan struct{}, err error) {
	id := p.ID()
	t := img.Topics[id.Topic]
	if t == nil || t.ID != p.TopicID() || int(id.Partition) >= len(t.Partitions) || !b.host.Hosts(p) {
		return -1, nil, kerr.UnknownTopicOrPartition
	}
	mp := &t.Partitions[id.Partition]
	if mp.Leader != b.cfg.NodeID {
		return -1, nil, kerr.NotLeaderForPartition
	}
	alive := func(id int32) bool {
		_, ok := img.Brokers[id]
		return ok
	}
	lw, wake, led := p.LowWatermark(alive)
	if !led && len(mp.Replicas) > 1 {
		// Leading a replicated partition whose LeaderState the host has
		// not built yet: nothing is known of the followers.
		return -1, nil, nil
	}
	return lw, wake, nil
}

// waitLowWatermark waits until w's low watermark reaches the required
// offset, ctx ends (REQUEST_TIMED_OUT), leadership moves, the broker shuts
// down or the connection goes away, and sets w's answer.
func (b *Broker) waitLowWatermark(ctx context.Context, gone <-chan struct{}, w lowWatermarkWait) {
	recheck := time.NewTicker(lowWatermarkRecheck)
	defer recheck.Stop()
	for {
		changes := b.host.Applied() // before Image: no change slips in between
		lw, wake, err := b.lowWatermark(b.host.Image(), w.part)
		switch {
		case err != nil:
			w.sp.ErrorCode, w.sp.LowWatermark = errCode(err), -1
			return
		case lw >= w.required:
			w.sp.ErrorCode, w.sp.LowWatermark = 0, lw
			return
		}
		select {
		case <-wake:
		case <-changes:
		case <-recheck.C:
		case <-ctx.Done():
			w.sp.ErrorCode = kerr.RequestTimedOut.Code
			return
		case <-b.closedCh:
			w.sp.ErrorCode, w.sp.LowWatermark = kerr.NotLeaderForPartition.Code, -1
			return
		case <-gone:
			return // nobody to answer
		}
	}
}
