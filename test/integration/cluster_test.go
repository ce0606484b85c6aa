package integration

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startCluster starts n brokers on 127.0.0.1 … 127.0.0.n with a Raft
// metadata quorum of all n, and waits until every one is ready.
func startCluster(t *testing.T, n int, env ...string) []*broker {
	t.Helper()
	return startClusterEnv(t, n, func(int) []string { return env })
}

// startClusterEnv is startCluster with per-broker settings: envOf(i) is
// broker i+1's environment.
func startClusterEnv(t *testing.T, n int, envOf func(i int) []string) []*broker {
	t.Helper()
	requireProcess(t)
	if harness.kind != "streambus" {
		t.Skip("cluster tests need the StreamBus broker")
	}
	raft := make([]string, n)
	var voters []string
	for i := range raft {
		raft[i] = freeAddrOn(t, fmt.Sprintf("127.0.0.%d", i+1))
		voters = append(voters, fmt.Sprintf("%d=%s", i+1, raft[i]))
	}
	bs := make([]*broker, n)
	for i := range bs {
		bs[i] = startBroker(t, brokerOpts{
			Env:    envOf(i),
			Host:   fmt.Sprintf("127.0.0.%d", i+1),
			Args:   []string{"--node-id", fmt.Sprint(i + 1), "--raft-addr", raft[i], "--voters", strings.Join(voters, ",")},
			noWait: true,
		})
	}
	for _, b := range bs {
		if err := b.waitReady(); err != nil {
			t.Fatalf("broker %s: %v\n%s", b.Addr, err, b.proc.output.Tail(8<<10))
		}
	}
	return bs
}

// TestClusterRF1: three brokers share the metadata quorum; a topic's
// partitions are spread over them, clients follow the leaders, and a
// consumer group (whose coordinator may be any broker) reads everything.
// Replication (RF > 1) is the cluster issue's next step.
func TestClusterRF1(t *testing.T) {
	bs := startCluster(t, 3, "STREAMBUS_GROUP_INITIAL_REBALANCE_DELAY_MS=0")
	ctx := testCtx(t, 60*time.Second)
	seeds := []string{bs[0].Addr, bs[1].Addr, bs[2].Addr}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("spread"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 6, 1, nil, "spread"); err != nil {
		t.Fatal(err)
	}
	var md kadm.Metadata
	for {
		md, err = adm.Metadata(ctx, "spread")
		if err == nil && len(md.Brokers) == 3 && len(md.Topics["spread"].Partitions) == 6 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("metadata: %v %+v", err, md)
		}
		time.Sleep(50 * time.Millisecond)
	}
	leaders := map[int32]int{}
	for _, p := range md.Topics["spread"].Partitions {
		leaders[p.Leader]++
	}
	if len(leaders) != 3 {
		t.Fatalf("partition leaders %v: want all three brokers", leaders)
	}

	const n = 600
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds[2]), kgo.ConsumerGroup("cluster-group"), kgo.ConsumeTopics("spread"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	for len(seen) < n && ctx.Err() == nil {
		fs := cons.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != n {
		t.Fatalf("consumed %d of %d records", len(seen), n)
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// TestClusterReplicationRF3: a topic with three replicas and
// min.insync.replicas=2; acks=all produces are acknowledged once the ISR
// has them, every follower's log holds the same records, and consumers
// read everything from the leaders.
func TestClusterReplicationRF3(t *testing.T) {
	bs := startCluster(t, 3)
	ctx := testCtx(t, 60*time.Second)
	seeds := []string{bs[0].Addr, bs[1].Addr, bs[2].Addr}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("rf3"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, 3, 3, map[string]*string{"min.insync.replicas": &minISR}, "rf3"); err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "rf3")
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	if total != n {
		t.Fatalf("high watermarks sum to %d, want %d", total, n)
	}
	// Every replica's log reaches the same size.
	for {
		dirs, err := adm.DescribeAllLogDirs(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		sizes := map[int32]map[int32]int64{} // partition -> broker -> size
		dirs.Each(func(d kadm.DescribedLogDir) {
			d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
				if p.Topic == "rf3" {
					if sizes[p.Partition] == nil {
						sizes[p.Partition] = map[int32]int64{}
					}
					sizes[p.Partition][d.Broker] = p.Size
				}
			})
		})
		same := len(sizes) == 3
		for _, bySize := range sizes {
			var first int64 = -1
			for _, sz := range bySize {
				if first == -1 {
					first = sz
				}
				same = same && len(bySize) == 3 && sz == first && sz > 0
			}
		}
		if same {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("replica log sizes never converged: %v", sizes)
		}
		time.Sleep(100 * time.Millisecond)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("rf3"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]bool{}
	for len(seen) < n && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)] = true })
	}
	if len(seen) != n {
		t.Fatalf("consumed %d of %d", len(seen), n)
	}
}

// TestClusterLeaderFailover: an idempotent producer writes acks=all to an
// RF=3, min.insync.replicas=2 partition while its leader is killed with
// kill -9 and later restarted. A new leader is elected from the ISR; every
// acknowledged record is then read exactly once, in order.
func TestClusterLeaderFailover(t *testing.T) {
	bs := startCluster(t, 3,
		"STREAMBUS_BROKER_HEARTBEAT_INTERVAL_MS=200",
		"STREAMBUS_BROKER_SESSION_TIMEOUT_MS=1500",
		"STREAMBUS_REPLICA_LAG_TIME_MAX_MS=1500",
	)
	ctx := testCtx(t, 90*time.Second)
	seeds := []string{bs[0].Addr, bs[1].Addr, bs[2].Addr}
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("fo"),
		kgo.RecordRetries(1000), kgo.RetryTimeout(60*time.Second), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &minISR}, "fo"); err != nil {
		t.Fatal(err)
	}
	leaderOf := func() int32 {
		for ctx.Err() == nil {
			md, err := adm.Metadata(ctx, "fo")
			if err == nil {
				if p, ok := md.Topics["fo"].Partitions[0]; ok && p.Leader >= 0 {
					return p.Leader
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no leader")
		return -1
	}

	var mu sync.Mutex
	acked := map[int]int64{}
	produce := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Add(1)
			cl.Produce(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}, func(r *kgo.Record, err error) {
				defer wg.Done()
				if err != nil {
					t.Errorf("record %d: %v", i, err)
					return
				}
				mu.Lock()
				acked[i] = r.Offset
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	produce(0, 200)
	old := leaderOf()
	victim := bs[old-1]
	victim.kill()
	start := time.Now()
	produce(200, 201) // the first record after the kill: acknowledged by the new leader
	t.Logf("failover: leader %d killed, first acks=all produce after %v", old, time.Since(start).Round(time.Millisecond))
	produce(201, 400)
	if nl := leaderOf(); nl == old {
		t.Fatalf("leader still %d after it was killed", nl)
	}
	victim.Restart()
	produce(400, 500)

	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("fo"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[string]int64{}
	last := int64(-1)
	for len(seen) < len(acked) && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if r.Offset <= last {
				t.Errorf("offset %d after %d", r.Offset, last)
			}
			last = r.Offset
			if _, dup := seen[string(r.Value)]; dup {
				t.Errorf("record %s read twice", r.Value)
			}
			seen[string(r.Value)] = r.Offset
		})
	}
	for i, off := range acked {
		if got, ok := seen[fmt.Sprint(i)]; !ok || got != off {
			t.Errorf("acknowledged record %d at offset %d: read at %d (present %v)", i, off, got, ok)
		}
	}
}
