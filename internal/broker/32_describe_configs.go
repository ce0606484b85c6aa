package broker

// DescribeConfigs v0–4 for TOPIC resources (every topic config with its
// value, source and synonyms, from internal/topicconfig) and BROKER
// resources (this broker's static configuration). Other resource types get
// INVALID_REQUEST.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/topicconfig"
)

func (b *Broker) handleDescribeConfigs(req *kmsg.DescribeConfigsRequest) *kmsg.DescribeConfigsResponse {
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	img := b.meta.Image()
	for _, r := range req.Resources {
		rr := kmsg.NewDescribeConfigsResponseResource()
		rr.ResourceType, rr.ResourceName = r.ResourceType, r.ResourceName
		want := func(name string) bool {
			if r.ConfigNames == nil {
				return true
			}
			for _, n := range r.ConfigNames {
				if n == name {
					return true
				}
			}
			return false
		}
		switch r.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			t := img.Topics[r.ResourceName]
			if t == nil {
				rr.ErrorCode = kerr.UnknownTopicOrPartition.Code
				break
			}
			for _, e := range topicconfig.Describe(t.Configs, b.cfg.TopicDefaults) {
				if !want(e.Name) {
					continue
				}
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				c.Name, c.Value = e.Name, kmsg.StringPtr(e.Value)
				c.ReadOnly, c.IsSensitive, c.Source = e.ReadOnly, e.Sensitive, e.Source
				c.IsDefault = e.Source == kmsg.ConfigSourceDefaultConfig
				if req.IncludeSynonyms {
					for _, s := range e.Synonyms {
						cs := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
						cs.Name, cs.Value, cs.Source = s.Name, kmsg.StringPtr(s.Value), s.Source
						c.ConfigSynonyms = append(c.ConfigSynonyms, cs)
					}
				}
				if req.IncludeDocumentation {
					c.Documentation = kmsg.StringPtr(e.Documentation)
				}
				c.ConfigType = e.Type
				rr.Configs = append(rr.Configs, c)
			}
		case kmsg.ConfigResourceTypeBroker:
			if r.ResourceName != "" && r.ResourceName != itoa(b.cfg.NodeID) {
				rr.ErrorCode = kerr.InvalidRequest.Code
				rr.ErrorMessage = kmsg.StringPtr("unknown broker " + r.ResourceName)
				break
			}
			if b.cfg.BrokerConfigs == nil {
				break
			}
			for _, e := range b.cfg.BrokerConfigs() {
				if !want(e.Name) {
					continue
				}
				c := kmsg.NewDescribeConfigsResponseResourceConfig()
				c.Name, c.Value = e.Name, kmsg.StringPtr(e.Value)
				c.ReadOnly, c.IsSensitive, c.Source = e.ReadOnly, e.Sensitive, e.Source
				c.IsDefault = e.Source == kmsg.ConfigSourceDefaultConfig
				if req.IncludeSynonyms {
					cs := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
					cs.Name, cs.Value, cs.Source = e.Name, kmsg.StringPtr(e.Value), c.Source
					c.ConfigSynonyms = append(c.ConfigSynonyms, cs)
				}
				if req.IncludeDocumentation {
					c.Documentation = kmsg.StringPtr(e.Documentation)
				}
				c.ConfigType = e.Type
				rr.Configs = append(rr.Configs, c)
			}
		default:
			rr.ErrorCode = kerr.InvalidRequest.Code
			rr.ErrorMessage = kmsg.StringPtr("unsupported resource type " + r.ResourceType.String())
		}
		resp.Resources = append(resp.Resources, rr)
	}
	return resp
}
