package broker

import (
	"context"
	"time"
)

// configPropagationTimeout bounds the wait of AlterConfigs and
// IncrementalAlterConfigs, whose requests carry no timeout.
const configPropagationTimeout = 15 * time.Second

// awaitPropagation waits, until deadline, until every live broker serves
// the metadata changes this request made (metadata.Store.AwaitPropagation),
// so that the client may use them at once through any broker. A zero
// deadline skips the wait, as Kafka answers a CreateTopics with timeout 0
// without waiting. The answer stays a success when the deadline passes:
// the change is made, and the controller logs the brokers that lag as the
// ones at fault.
func (b *Broker) awaitPropagation(deadline time.Time, api string) {
	if deadline.IsZero() {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := b.meta.AwaitPropagation(ctx); err != nil {
		b.log.Info("answering before every broker serves the change", "api", api, "err", err)
	}
}

// deadlineIn is the deadline of a request that arrived now with a timeout
// of ms milliseconds (at most adminTimeout); zero for ms <= 0.
func deadlineIn(ms int32) time.Time {
	if ms <= 0 {
		return time.Time{}
	}
	return time.Now().Add(min(time.Duration(ms)*time.Millisecond, adminTimeout))
}

// anySucceeded reports whether a per-partition result holds a success.
func anySucceeded(results map[string]map[int32]error) bool {
	for _, parts := range results {
		for _, err := range parts {
			if err == nil {
				return true
			}
		}
	}
	return false
}
