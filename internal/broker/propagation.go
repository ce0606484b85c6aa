package broker

import (
	"context"
	"time"
)

// configPropagationTimeout bounds the wait of AlterConfigs and
// IncrementalAlterConfigs, whose requests carry no timeout.
const configPropagationTimeout = 15 * time.Second

// awaitPropagation waits, up to timeout, until every live broker serves
// the metadata changes this request made (metadata.Store.AwaitPropagation),
// so that the client may use them at once through any broker. A timeout of
// zero or less skips the wait, as Kafka answers a CreateTopics with
// timeout 0 without waiting. The answer stays a success when the bound
// passes: the change is made, and the controller logs the brokers that lag
// as the ones at fault.
func (b *Broker) awaitPropagation(timeout time.Duration, api string) {
	if timeout <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(timeout, adminTimeout))
	defer cancel()
	if err := b.meta.AwaitPropagation(ctx); err != nil {
		b.log.Info("answering before every broker serves the change", "api", api, "err", err)
	}
}

func millis(ms int32) time.Duration { return time.Duration(ms) * time.Millisecond }

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
