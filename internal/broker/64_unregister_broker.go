package broker

// UnregisterBroker v0 (KIP-500 tooling; kafka-cluster.sh unregister): the
// controller fences the broker, so the partitions it led elect new leaders
// and it leaves their ISRs, then removes its registration; it stays in the
// partitions' replica lists until they are reassigned. A broker that is a
// Raft non-voter also leaves the Raft configuration; a voter keeps its
// vote. Unknown IDs get BROKER_ID_NOT_REGISTERED. A broker that is still
// running registers again on its next heartbeat, as in Kafka.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleUnregisterBroker(ctx context.Context, req *kmsg.UnregisterBrokerRequest) *kmsg.UnregisterBrokerResponse {
	resp := req.ResponseKind().(*kmsg.UnregisterBrokerResponse)
	if err := b.meta.UnregisterBroker(ctx, req.BrokerID); err != nil {
		resp.ErrorCode, resp.ErrorMessage = errCode(err), errMessage(err)
		b.log.Warn("unregister broker failed", "broker", req.BrokerID, "err", err)
		return resp
	}
	b.log.Info("broker unregistered", "broker", req.BrokerID)
	return resp
}
