package integration

// Fetch from followers (KIP-392) across real broker processes: three
// brokers in racks a, b and c with replica.selector.class set to Kafka's
// RackAwareReplicaSelector, an RF=3 topic, and kgo consumers with
// client.rack (kgo.Rack). A hook on every fetched batch records which
// broker served it, so the test sees where records came from rather than
// inferring it.

import (
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// rackSelector is the replica.selector.class the rack tests set.
const rackSelector = "org.apache.kafka.common.replica.RackAwareReplicaSelector"

// startRackCluster is startCluster with broker i in racks[i] (broker.rack).
func startRackCluster(t *testing.T, racks []string, env ...string) []*broker {
	t.Helper()
	return startClusterEnv(t, len(racks), func(i int) []string {
		return append(append([]string{}, env...), "STREAMBUS_BROKER_RACK="+racks[i])
	})
}

// servedBy counts fetched records per partition and serving broker: the
// records of every batch read, so a batch read twice counts twice.
type servedBy struct {
	mu sync.Mutex
	n  map[int32]map[int32]int // partition -> node -> records
}

func (s *servedBy) OnFetchBatchRead(meta kgo.BrokerMetadata, _ string, partition int32, m kgo.FetchBatchMetrics) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[int32]map[int32]int{}
	}
	if s.n[partition] == nil {
		s.n[partition] = map[int32]int{}
	}
	s.n[partition][meta.NodeID] += m.NumRecords
}

func (s *servedBy) snapshot() map[int32]map[int32]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[int32]map[int32]int{}
	for p, m := range s.n {
		out[p] = map[int32]int{}
		for node, c := range m {
			out[p][node] = c
		}
	}
	return out
}

// TestClusterRackFollowerFetch: records produced with acks=all to an RF=3
// topic are read, complete and in order, by a consumer in each rack, every
// record from the broker in the consumer's rack whether or not it leads
// the partition; a consumer without a rack reads from the leaders.
func TestClusterRackFollowerFetch(t *testing.T) {
	racks := []string{"a", "b", "c"}
	bs := startRackCluster(t, racks, "STREAMBUS_REPLICA_SELECTOR_CLASS="+rackSelector)
	ctx := testCtx(t, 90*time.Second)
	seeds := []string{bs[0].Addr, bs[1].Addr, bs[2].Addr}
	const topic, partitions, n = "racks", 3, 300
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, partitions, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
		t.Fatal(err)
	}
	// Each partition's values in offset order, as acknowledged.
	var mu sync.Mutex
	produced := map[int32]map[int64]string{}
	for i := 0; i < n; i++ {
		cl.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
				return
			}
			mu.Lock()
			if produced[r.Partition] == nil {
				produced[r.Partition] = map[int64]string{}
			}
			produced[r.Partition][r.Offset] = string(r.Value)
			mu.Unlock()
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	leaders := map[int32]int32{}
	for _, p := range md.Topics[topic].Partitions {
		leaders[p.Partition] = p.Leader
	}
	rackOf := map[int32]string{}
	for _, b := range md.Brokers {
		if b.Rack == nil {
			t.Fatalf("broker %d registered without a rack", b.NodeID)
		}
		rackOf[b.NodeID] = *b.Rack
	}
	t.Logf("leaders %v, racks %v", leaders, rackOf)

	for _, rack := range []string{"a", "b", "c", ""} {
		hook := &servedBy{}
		opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.WithHooks(hook), kgo.ConsumeTopics(topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}
		if rack != "" {
			opts = append(opts, kgo.Rack(rack))
		}
		cons, err := kgo.NewClient(opts...)
		if err != nil {
			t.Fatal(err)
		}
		got := map[int32][]string{}
		total := 0
		for total < n && ctx.Err() == nil {
			cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				if want := produced[r.Partition][r.Offset]; want != string(r.Value) {
					t.Errorf("rack %q: partition %d offset %d is %q, produced %q", rack, r.Partition, r.Offset, r.Value, want)
				}
				got[r.Partition] = append(got[r.Partition], string(r.Value))
				total++
			})
		}
		cons.Close()
		if total != n {
			t.Fatalf("rack %q: consumed %d of %d", rack, total, n)
		}
		served := hook.snapshot()
		for p := int32(0); p < partitions; p++ {
			if len(got[p]) != len(produced[p]) {
				t.Errorf("rack %q: partition %d: consumed %d, produced %d", rack, p, len(got[p]), len(produced[p]))
			}
			want := leaders[p] // no rack: the leader serves
			if rack != "" {
				for node, r := range rackOf {
					if r == rack {
						want = node
					}
				}
			}
			for node, c := range served[p] {
				if node != want && c > 0 {
					t.Errorf("rack %q: partition %d (leader %d): %d records from broker %d, want all from %d (served %v)",
						rack, p, leaders[p], c, node, want, served[p])
				}
			}
			if served[p][want] < len(produced[p]) {
				t.Errorf("rack %q: partition %d: broker %d served %d records, produced %d", rack, p, want, served[p][want], len(produced[p]))
			}
		}
		t.Logf("rack %q: records per partition and broker %v", rack, served)
	}
}

// TestClusterRackFollowerGone: a rack-b consumer reading from broker 2
// keeps going when broker 2 is killed: once the controller fences it, the
// leaders no longer prefer it and the consumer reads the records produced
// afterwards from them, still complete and in order. (Until then the
// consumer retries broker 2: kgo, unlike the Java client, does not drop a
// preferred replica missing from metadata before it rechecks with the
// leader, so the test sets RecheckPreferredReplicaInterval.)
func TestClusterRackFollowerGone(t *testing.T) {
	env := append([]string{"STREAMBUS_REPLICA_SELECTOR_CLASS=" + rackSelector}, chaosEnv...)
	bs := startRackCluster(t, []string{"a", "b", "c"}, env...)
	ctx := testCtx(t, 90*time.Second)
	seeds := []string{bs[0].Addr, bs[2].Addr}
	const topic, partitions, half = "racks-gone", 3, 150
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	minISR := "2"
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
		t.Fatal(err)
	}
	produce := func(from, to int) map[int32]int {
		perPartition := map[int32]int{}
		for i := from; i < to; i++ {
			r := &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %d: %v", i, err)
			}
			perPartition[r.Partition]++
		}
		return perPartition
	}
	hook := &servedBy{}
	// kgo leaves a dead preferred replica only when it rechecks with the
	// leader (RecheckPreferredReplicaInterval, default 30 min). The fetch
	// max wait must be shorter than that interval: kgo moves a cursor to
	// the preferred replica's source while that source may sit in a long
	// poll, and a cursor that waited longer than the interval there is sent
	// back to the leader before it was ever fetched, which the leader
	// answers with the same preferred replica, forever (seen as a stall once
	// the producer stops and long polls run their full length).
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.WithHooks(hook), kgo.Rack("b"), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.RecheckPreferredReplicaInterval(time.Second),
		kgo.FetchMaxWait(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	seen := map[int32]int64{} // next expected offset per partition
	consume := func(total int) {
		got := 0
		for got < total && ctx.Err() == nil {
			cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				if r.Offset != seen[r.Partition] {
					t.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, seen[r.Partition]-1)
				}
				seen[r.Partition] = r.Offset + 1
				got++
			})
		}
		if got != total {
			t.Fatalf("consumed %d of %d", got, total)
		}
	}

	first := produce(0, half)
	consume(half)
	before := hook.snapshot()
	for p, c := range first {
		if before[p][2] < c {
			t.Fatalf("before the kill, partition %d: broker 2 served %d of %d records (%v)", p, before[p][2], c, before[p])
		}
	}
	bs[1].Stop(syscall.SIGKILL, 10*time.Second)
	second := produce(half, 2*half)
	consume(half)
	after := hook.snapshot()
	for p, c := range second {
		if after[p][2] != before[p][2] {
			t.Errorf("partition %d: broker 2 served records after it was killed: %v then %v", p, before[p], after[p])
		}
		// A batch can be read twice (a fetch answered while the cursor
		// moved is dropped), so the hook's count may exceed what was polled.
		if others := after[p][1] + after[p][3] - before[p][1] - before[p][3]; others < c {
			t.Errorf("partition %d: brokers 1 and 3 served %d of the %d later records (%v)", p, others, c, after[p])
		}
	}
	t.Logf("records per partition and broker: before the kill %v, at the end %v", before, after)
}
