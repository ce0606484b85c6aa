package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// startCluster starts n brokers on 127.0.0.1 … 127.0.0.n with a Raft
// metadata quorum of all n, and waits until every one is ready.
func startCluster(t *testing.T, n int, env ...string) []*broker {
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
			Env:    env,
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
