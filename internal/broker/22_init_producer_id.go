package broker

// InitProducerID v0–5 for idempotent producers: every call gets a producer
// ID never handed out before (the metadata store reserves ID blocks
// durably) with epoch 0, as Kafka does for non-transactional producers.
// Transactional IDs need the transaction coordinator, which does not exist
// yet: they get COORDINATOR_NOT_AVAILABLE.

import (
	"context"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleInitProducerID(ctx context.Context, req *kmsg.InitProducerIDRequest) *kmsg.InitProducerIDResponse {
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	resp.ProducerID, resp.ProducerEpoch = -1, -1
	if req.TransactionalID != nil {
		resp.ErrorCode = kerr.CoordinatorNotAvailable.Code
		return resp
	}
	id, err := b.meta.AllocateProducerID(ctx)
	if err != nil {
		b.log.Error("allocate producer id", "err", err)
		resp.ErrorCode = errCode(err)
		return resp
	}
	resp.ProducerID, resp.ProducerEpoch = id, 0
	return resp
}
