package broker

// FindCoordinator v0–5: the coordinator of a group is the leader of its
// __consumer_offsets partition (see groups.go); v4+ batches keys.
// Transaction coordinators do not exist yet: key type 1 gets
// COORDINATOR_NOT_AVAILABLE.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleFindCoordinator(req *kmsg.FindCoordinatorRequest) *kmsg.FindCoordinatorResponse {
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	keys := req.CoordinatorKeys
	if req.Version < 4 {
		keys = []string{req.CoordinatorKey}
	}
	for _, k := range keys {
		c := b.findCoordinator(req.CoordinatorType, k)
		if req.Version < 4 {
			resp.ErrorCode, resp.ErrorMessage = c.ErrorCode, c.ErrorMessage
			resp.NodeID, resp.Host, resp.Port = c.NodeID, c.Host, c.Port
			return resp
		}
		resp.Coordinators = append(resp.Coordinators, c)
	}
	return resp
}

func (b *Broker) findCoordinator(typ int8, key string) kmsg.FindCoordinatorResponseCoordinator {
	c := kmsg.NewFindCoordinatorResponseCoordinator()
	c.Key, c.NodeID, c.Port = key, -1, -1
	fail := func(e *kerr.Error) kmsg.FindCoordinatorResponseCoordinator {
		c.ErrorCode = e.Code
		c.ErrorMessage = kmsg.StringPtr(e.Description)
		return c
	}
	if typ != 0 {
		return fail(kerr.CoordinatorNotAvailable)
	}
	if key == "" {
		return fail(kerr.InvalidRequest)
	}
	img := b.meta.Image()
	t := img.Topics[OffsetsTopic]
	if t == nil || len(t.Partitions) == 0 {
		return fail(kerr.CoordinatorNotAvailable)
	}
	mp := t.Partitions[groupPartition(key, int32(len(t.Partitions)))]
	br, ok := img.Brokers[mp.Leader]
	if mp.Leader < 0 || !ok {
		return fail(kerr.CoordinatorNotAvailable)
	}
	c.NodeID, c.Host, c.Port = br.NodeID, br.Host, br.Port
	return c
}
