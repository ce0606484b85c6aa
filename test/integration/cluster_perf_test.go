package integration

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterFailoverPerf measures, over repeated kill -9s of a partition
// leader, the time from the kill to the first successful acks=all produce
// on that partition. A measurement, not a check: it runs only with
// STREAMBUS_FAILOVER_PERF=1 (STREAMBUS_FAILOVER_KILLS sets the count,
// default 20).
func TestClusterFailoverPerf(t *testing.T) {
	if os.Getenv("STREAMBUS_FAILOVER_PERF") != "1" {
		t.Skip("a measurement: set STREAMBUS_FAILOVER_PERF=1")
	}
	kills := 20
	if v := os.Getenv("STREAMBUS_FAILOVER_KILLS"); v != "" {
		if _, err := fmt.Sscan(v, &kills); err != nil {
			t.Fatalf("STREAMBUS_FAILOVER_KILLS=%q: %v", v, err)
		}
	}
	env := []string{
		"STREAMBUS_BROKER_HEARTBEAT_INTERVAL_MS=200",
		"STREAMBUS_BROKER_SESSION_TIMEOUT_MS=1500",
		"STREAMBUS_REPLICA_LAG_TIME_MAX_MS=1500",
	}
	// STREAMBUS_FAILOVER_ENV (space-separated KEY=VALUE) overrides them,
	// e.g. to measure a shorter broker session.
	if v := os.Getenv("STREAMBUS_FAILOVER_ENV"); v != "" {
		env = append(env, strings.Fields(v)...)
	}
	bs := startCluster(t, 3, env...)
	ctx := testCtx(t, time.Duration(kills)*30*time.Second)
	seeds := []string{bs[0].Addr, bs[1].Addr, bs[2].Addr}
	const topic = "failover-perf"
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1<<30), kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
		t.Fatal(err)
	}
	partition := func() kadm.PartitionDetail {
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			md, err := adm.Metadata(rctx, topic)
			cancel()
			if err == nil {
				if p, ok := md.Topics[topic].Partitions[0]; ok && p.Leader > 0 {
					return p
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no metadata")
		return kadm.PartitionDetail{}
	}
	produce := func() {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	produce()
	var took []time.Duration
	for i := 0; i < kills; i++ {
		// Every replica in the ISR, so the kill leaves min.insync.replicas.
		for p := partition(); len(p.ISR) < 3; p = partition() {
			time.Sleep(50 * time.Millisecond)
		}
		produce()
		leader := partition().Leader
		role := "leader"
		if md, err := adm.Metadata(ctx); err == nil && md.Controller == leader {
			role = "leader and controller"
		}
		victim := bs[leader-1]
		start := time.Now()
		victim.kill()
		produce()
		d := time.Since(start)
		took = append(took, d)
		t.Logf("kill %d: broker %d (%s), first acks=all produce after %v", i+1, leader, role, d.Round(time.Millisecond))
		victim.Restart()
		if err := victim.waitReady(); err != nil {
			t.Fatalf("restart broker %d: %v", leader, err)
		}
	}
	slices.Sort(took)
	t.Logf("failover over %d kill -9s of the leader: median %v, max %v, min %v (settings %v, client MetadataMinAge 100ms, retry backoff 50ms)",
		len(took), took[len(took)/2].Round(time.Millisecond), took[len(took)-1].Round(time.Millisecond),
		took[0].Round(time.Millisecond), env)
}
