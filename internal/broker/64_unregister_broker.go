package broker

// UnregisterBroker v0 (KIP-500 tooling; kafka-cluster.sh unregister): the
// controller fences the broker, so the partitions it led elect new leaders
// and it leaves their ISRs, then removes its registration; it stays in the
// partitions' replica lists until they are reassigned. A broker that is a
// Raft non-voter also leaves the Raft configuration; a voter keeps its
// vote. Unknown IDs get BROKER_ID_NOT_REGISTERED. A broker that is still
// running registers again on its next heartbeat, as in Kafka. With local
// (single-node) metadata there are no registrations to remove: the answer
// is UNSUPPORTED_VERSION, as Kafka gives in ZooKeeper mode.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// BrokerUnregisterer is implemented by metadata stores that keep broker
// registrations (the Raft controller). Errors carrying a *kerr.Error (such
// as BROKER_ID_NOT_REGISTERED) are answered with its code.
type BrokerUnregisterer interface {
	UnregisterBroker(ctx context.Context, id int32) error
}

func (b *Broker) handleUnregisterBroker(ctx context.Context, req *kmsg.UnregisterBrokerRequest) *kmsg.UnregisterBrokerResponse {
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	u, ok := b.meta.(BrokerUnregisterer)
	if !ok {
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		resp.ErrorMessage = kmsg.StringPtr("Broker unregistration needs replicated metadata (voters); this broker keeps local metadata.")
		return resp
	}
	if err := u.UnregisterBroker(ctx, req.BrokerID); err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
		b.log.Warn("unregister broker failed", "broker", req.BrokerID, "err", err)
		return resp
	}
	b.log.Info("broker unregistered", "broker", req.BrokerID)
	return resp
}
