package integration

import (
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterCreateTopicsPerf measures what read-your-writes costs: the
// latency of CreateTopics (one topic, 3 partitions, RF=3) sent to a broker
// that is not the controller, answered once every broker serves the topic
// (timeout 15 s) and answered at once (timeout 0, which skips the wait),
// interleaved; and, for the answers that did not wait, how long after
// them the last broker served the topic (the window clients used to hit).
// A measurement, not a check: it runs only with STREAMBUS_RYW_PERF=1
// (STREAMBUS_RYW_CREATIONS sets the count per mode, default 200).
func TestClusterCreateTopicsPerf(t *testing.T) {
	if os.Getenv("STREAMBUS_RYW_PERF") != "1" {
		t.Skip("a measurement: set STREAMBUS_RYW_PERF=1")
	}
	n := 200
	if v := os.Getenv("STREAMBUS_RYW_CREATIONS"); v != "" {
		if _, err := fmt.Sscan(v, &n); err != nil {
			t.Fatalf("STREAMBUS_RYW_CREATIONS=%q: %v", v, err)
		}
	}
	bs := startCluster(t, 3)
	on := make(map[int32]*broker)
	for i, b := range bs {
		on[int32(i+1)] = b
	}
	controller := seedRequest(t, clientOn(t, bs[0]), kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse).ControllerID
	via := int32(1)
	if via == controller {
		via = 2
	}
	admin := clientOn(t, on[via])
	var watchers []*kgo.Client
	for _, b := range bs {
		watchers = append(watchers, clientOn(t, b))
	}

	create := func(name string, timeoutMs int32) time.Duration {
		req := kmsg.NewPtrCreateTopicsRequest()
		req.TimeoutMillis = timeoutMs
		rt := kmsg.NewCreateTopicsRequestTopic()
		rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, 3, 3
		req.Topics = append(req.Topics, rt)
		start := time.Now()
		resp := seedRequest(t, admin, req).(*kmsg.CreateTopicsResponse)
		d := time.Since(start)
		if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return d
	}
	var waited, immediate, window []time.Duration
	for i := range n {
		waited = append(waited, create(fmt.Sprintf("perf-wait-%d", i), 15000))
		name := fmt.Sprintf("perf-now-%d", i)
		immediate = append(immediate, create(name, 0))
		answered := time.Now()
		for _, w := range watchers {
			for !servesTopic(metadataOf(t, w, name)) {
			}
		}
		window = append(window, time.Since(answered))
	}
	med, p99 := percentiles(waited)
	imed, ip99 := percentiles(immediate)
	wmed, wp99 := percentiles(window)
	t.Logf("CreateTopics via broker %d (controller %d), %d creations per mode, 3 partitions RF=3", via, controller, n)
	t.Logf("  answered once every broker serves it: median %v, p99 %v, max %v", med, p99, slices.Max(waited))
	t.Logf("  answered at once (timeout 0):          median %v, p99 %v, max %v", imed, ip99, slices.Max(immediate))
	t.Logf("  added by the wait:                     median %v, p99 %v", med-imed, p99-ip99)
	t.Logf("  after an immediate answer, the last broker served it: median %v, p99 %v, max %v", wmed, wp99, slices.Max(window))
}

// servesTopic reports whether a Metadata answer shows the topic with a
// leader for every partition.
func servesTopic(mt kmsg.MetadataResponseTopic) bool {
	if mt.ErrorCode != 0 || len(mt.Partitions) == 0 {
		return false
	}
	for _, p := range mt.Partitions {
		if p.Leader < 0 {
			return false
		}
	}
	return true
}

func percentiles(ds []time.Duration) (median, p99 time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[min(len(s)-1, len(s)*99/100)]
}
