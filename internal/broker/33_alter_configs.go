package broker

// AlterConfigs v0–2 replaces a topic's overrides with the given set;
// IncrementalAlterConfigs v0–1 (44) applies SET, DELETE, APPEND and SUBTRACT
// one by one (APPEND/SUBTRACT on list configs such as cleanup.policy). Both
// validate every value and support validate-only. Broker configs are static
// here: altering them is refused with INVALID_REQUEST.

import (
	"context"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/topicconfig"
)

func (b *Broker) handleAlterConfigs(ctx context.Context, req *kmsg.AlterConfigsRequest) *kmsg.AlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	deadline := time.Now().Add(configPropagationTimeout) // the request has no timeout
	changed := false
	for _, r := range req.Resources {
		rr := kmsg.NewAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var changes []metadata.ConfigChange
		for _, c := range r.Configs {
			changes = append(changes, metadata.ConfigChange{Name: c.Name, Value: c.Value})
		}
		err := b.alterConfigs(ctx, r.ResourceType, r.ResourceName, changes, false, req.ValidateOnly)
		rr.ErrorCode, rr.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, rr)
		changed = changed || err == nil && !req.ValidateOnly
	}
	if changed {
		b.awaitPropagation(deadline, "AlterConfigs")
	}
	return resp
}

func (b *Broker) handleIncrementalAlterConfigs(ctx context.Context, req *kmsg.IncrementalAlterConfigsRequest) *kmsg.IncrementalAlterConfigsResponse {
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	deadline := time.Now().Add(configPropagationTimeout) // the request has no timeout
	img := b.meta.Image()
	changed := false
	for _, r := range req.Resources {
		rr := kmsg.NewIncrementalAlterConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		var changes []metadata.ConfigChange
		var err error
		for _, c := range r.Configs {
			var ch metadata.ConfigChange
			ch, err = b.incrementalChange(img, r.ResourceName, c)
			if err != nil {
				break
			}
			changes = append(changes, ch)
		}
		if err == nil {
			err = b.alterConfigs(ctx, r.ResourceType, r.ResourceName, changes, true, req.ValidateOnly)
		}
		rr.ErrorCode, rr.ErrorMessage = errCode(err), errMessage(err)
		resp.Resources = append(resp.Resources, rr)
		changed = changed || err == nil && !req.ValidateOnly
	}
	if changed {
		b.awaitPropagation(deadline, "IncrementalAlterConfigs")
	}
	return resp
}

// incrementalChange turns one IncrementalAlterConfigs operation into a
// SET or DELETE of the override.
func (b *Broker) incrementalChange(img *metadata.Image, topic string, c kmsg.IncrementalAlterConfigsRequestResourceConfig) (metadata.ConfigChange, error) {
	ch := metadata.ConfigChange{Name: c.Name}
	switch c.Op {
	case kmsg.IncrementalAlterConfigOpSet:
		if c.Value == nil {
			return ch, kerr.InvalidConfig
		}
		ch.Value = c.Value
	case kmsg.IncrementalAlterConfigOpDelete:
	case kmsg.IncrementalAlterConfigOpAppend, kmsg.IncrementalAlterConfigOpSubtract:
		if topicconfig.Type(c.Name) != kmsg.ConfigTypeList || c.Value == nil {
			return ch, kerr.InvalidConfig
		}
		cur := b.effectiveConfig(img, topic, c.Name)
		items := splitList(cur)
		for _, v := range splitList(*c.Value) {
			idx := indexOf(items, v)
			if c.Op == kmsg.IncrementalAlterConfigOpAppend && idx < 0 {
				items = append(items, v)
			}
			if c.Op == kmsg.IncrementalAlterConfigOpSubtract && idx >= 0 {
				items = append(items[:idx], items[idx+1:]...)
			}
		}
		joined := strings.Join(items, ",")
		ch.Value = &joined
	default:
		return ch, kerr.InvalidRequest
	}
	return ch, nil
}

func (b *Broker) effectiveConfig(img *metadata.Image, topic, name string) string {
	var overrides map[string]string
	if t := img.Topics[topic]; t != nil {
		overrides = t.Configs
	}
	for _, e := range topicconfig.Describe(overrides, b.cfg.TopicDefaults) {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func (b *Broker) alterConfigs(ctx context.Context, typ kmsg.ConfigResourceType, name string, changes []metadata.ConfigChange, incremental, validateOnly bool) error {
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		return b.meta.AlterTopicConfigs(ctx, name, changes, incremental, validateOnly)
	case kmsg.ConfigResourceTypeBroker:
		return kerr.ErrorForCode(kerr.InvalidRequest.Code)
	}
	return kerr.InvalidRequest
}

func splitList(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}
