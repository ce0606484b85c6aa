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
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	// Three partitions, one preferred leader on each broker, so that every
	// broker (the controller included) leads one after a preferred
	// election.
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
		t.Fatal(err)
	}
	// settled waits until every partition has a leader and a full ISR and
	// returns the metadata.
	settled := func() kadm.Metadata {
		for ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			md, err := adm.Metadata(rctx, topic)
			cancel()
			ok := err == nil && len(md.Topics[topic].Partitions) == 3 && md.Controller > 0
			if ok {
				for _, p := range md.Topics[topic].Partitions {
					ok = ok && p.Leader > 0 && len(p.ISR) == 3
				}
			}
			if ok {
				return md
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no settled metadata")
		return kadm.Metadata{}
	}
	produce := func(p int32) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("x"), Partition: p}).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
	for p := int32(0); p < 3; p++ {
		produce(p)
	}
	var all, ofController, ofOthers []time.Duration
	for i := 0; i < kills; i++ {
		// Every replica back in the ISR (so the kill leaves
		// min.insync.replicas) and leaders back on their preferred
		// replicas; then kill the controller on even rounds and another
		// broker on odd ones, each while it leads a partition.
		settled()
		ectx, cancel := context.WithTimeout(ctx, 5*time.Second)
		adm.ElectLeaders(ectx, kadm.ElectPreferredReplica, nil)
		cancel()
		// The election's effect reaches every broker's metadata a moment
		// later: wait for it, or the victim may no longer lead its
		// partition when it is killed.
		for t0 := time.Now(); time.Since(t0) < 5*time.Second; time.Sleep(50 * time.Millisecond) {
			preferred := true
			for _, p := range settled().Topics[topic].Partitions {
				preferred = preferred && p.Leader == p.Replicas[0]
			}
			if preferred {
				break
			}
		}
		var md kadm.Metadata
		var part int32 = -1
		var victimID int32
		for part < 0 && ctx.Err() == nil {
			md = settled()
			for _, p := range md.Topics[topic].Partitions {
				if (i%2 == 0) == (p.Leader == md.Controller) {
					part, victimID = p.Partition, p.Leader
					break
				}
			}
			if part < 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		role := "leader"
		if victimID == md.Controller {
			role = "leader and controller"
		}
		produce(part)
		victim := bs[victimID-1]
		start := time.Now()
		victim.kill()
		produce(part)
		d := time.Since(start)
		all = append(all, d)
		if victimID == md.Controller {
			ofController = append(ofController, d)
		} else {
			ofOthers = append(ofOthers, d)
		}
		t.Logf("kill %d: broker %d (%s of partition %d), first acks=all produce after %v", i+1, victimID, role, part, d.Round(time.Millisecond))
		victim.Restart()
		if err := victim.waitReady(); err != nil {
			t.Fatalf("restart broker %d: %v", victimID, err)
		}
	}
	stats := func(ds []time.Duration) string {
		if len(ds) == 0 {
			return "none"
		}
		slices.Sort(ds)
		return fmt.Sprintf("median %v, max %v, min %v over %d", ds[len(ds)/2].Round(time.Millisecond),
			ds[len(ds)-1].Round(time.Millisecond), ds[0].Round(time.Millisecond), len(ds))
	}
	t.Logf("failover over %d kill -9s of a partition leader: %s; the leader alone: %s; the leader that was also the controller: %s (settings %v, client MetadataMinAge 100ms, retry backoff 50ms)",
		len(all), stats(all), stats(ofOthers), stats(ofController), env)
}
