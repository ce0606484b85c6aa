package group

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

func (r *runner) consumerRequest(t *testing.T, cmd string, a args) kmsg.Request { return nil }

func (r *runner) describeConsumerResp(resp kmsg.Response) string { return "" }

func (r *runner) dumpConsumer(g *group) string { return "group " + g.id + " consumer\n" }
