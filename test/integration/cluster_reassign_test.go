package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Partition reassignment (KIP-455) and ElectLeaders (KIP-460) on real
// broker processes.

// reassignEnv: chaos-test sessions, no automatic leader balancing (the
// tests move leaders themselves).
var reassignEnv = append(slices.Clone(chaosEnv), "STREAMBUS_AUTO_LEADER_REBALANCE_ENABLE=false")

// rotation is the starting assignment of the tests' three RF=2
// partitions and where TestClusterReassign moves them: every partition
// gets a different pair and loses its leader (its first replica).
var (
	rotationFrom = [][]int32{{1, 2}, {2, 3}, {3, 1}}
	rotationTo   = [][]int32{{2, 3}, {3, 1}, {1, 2}}
)

// workload is a continuous idempotent acks=all producer over a topic's
// partitions that remembers where each value was acknowledged.
type workload struct {
	t     *testing.T
	topic string
	parts int32
	mu    sync.Mutex
	acked map[string]chaosAck
	errs  []string
	stop  context.CancelFunc
	done  chan struct{}
}

func startWorkload(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, parts int32) *workload {
	w := &workload{t: t, topic: topic, parts: parts, acked: map[string]chaosAck{}, done: make(chan struct{})}
	wctx, stop := context.WithCancel(ctx)
	w.stop = stop
	go func() {
		defer close(w.done)
		var inflight sync.WaitGroup
		for i := 0; wctx.Err() == nil; i++ {
			v := strconv.Itoa(i)
			inflight.Add(1)
			cl.Produce(wctx, &kgo.Record{Topic: topic, Partition: int32(i) % parts, Value: []byte(v)}, func(r *kgo.Record, err error) {
				defer inflight.Done()
				w.mu.Lock()
				defer w.mu.Unlock()
				if err != nil {
					if !errors.Is(err, context.Canceled) {
						w.errs = append(w.errs, fmt.Sprintf("value %s: %v", v, err))
					}
					return
				}
				w.acked[v] = chaosAck{r.Partition, r.Offset}
			})
			time.Sleep(2 * time.Millisecond)
		}
		inflight.Wait()
	}()
	t.Cleanup(func() { stop(); <-w.done })
	return w
}

// waitAcked waits until n more records were acknowledged.
func (w *workload) waitAcked(ctx context.Context, n int) {
	w.t.Helper()
	w.mu.Lock()
	want := len(w.acked) + n
	w.mu.Unlock()
	for {
		w.mu.Lock()
		got := len(w.acked)
		w.mu.Unlock()
		if got >= want {
			return
		}
		if ctx.Err() != nil {
			w.t.Fatalf("only %d of %d records acknowledged", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish stops the producer and checks that every acknowledged record is
// read exactly once, at its acknowledged offset, partitions in order.
func (w *workload) finish(ctx context.Context, bs []*broker, adm *kadm.Client) {
	t := w.t
	t.Helper()
	w.stop()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, e := range w.errs {
		t.Errorf("produce failed: %s", e)
	}
	ends, err := adm.ListEndOffsets(ctx, w.topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	end := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	start := map[string]map[int32]kgo.Offset{w.topic: {}}
	for p := int32(0); p < w.parts; p++ {
		start[w.topic][p] = kgo.NewOffset().AtStart()
	}
	cl := newReassignClient(t, bs, kgo.ConsumePartitions(start))
	read := map[string]chaosAck{}
	last := map[int32]int64{}
	done := func() bool {
		for p := int32(0); p < w.parts; p++ {
			if l, ok := last[p]; (!ok && end[p] > 0) || (ok && l+1 < end[p]) {
				return false
			}
		}
		return true
	}
	for !done() {
		if ctx.Err() != nil {
			t.Fatalf("verification read stopped at %v, ends %v", last, end)
		}
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) {
			if l, ok := last[r.Partition]; ok && r.Offset <= l {
				t.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, l)
			}
			last[r.Partition] = r.Offset
			v := string(r.Value)
			if prev, dup := read[v]; dup {
				t.Errorf("value %s read twice: p%d/%d and p%d/%d", v, prev.partition, prev.offset, r.Partition, r.Offset)
			}
			read[v] = chaosAck{r.Partition, r.Offset}
		})
	}
	var missing []string
	for v, a := range w.acked {
		if got, ok := read[v]; !ok || got != a {
			missing = append(missing, fmt.Sprintf("%s acked at p%d/%d, read %v at p%d/%d", v, a.partition, a.offset, ok, got.partition, got.offset))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("%d acknowledged records not read where acknowledged, e.g. %v", len(missing), missing[:min(len(missing), 20)])
	}
	t.Logf("%d records acknowledged, %d read", len(w.acked), len(read))
}

// newReassignClient is a client on every broker that follows leader
// changes quickly.
func newReassignClient(t *testing.T, bs []*broker, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	var seeds []string
	for _, b := range bs {
		seeds = append(seeds, b.Addr)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(seeds...), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond })}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createRotationTopic creates topic with the rotationFrom assignment and
// min.insync.replicas=2, and waits until every partition has its full ISR
// and its preferred leader.
func createRotationTopic(ctx context.Context, t *testing.T, cl *kgo.Client, adm *kadm.Client, topic string) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	for p, replicas := range rotationFrom {
		ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		ra.Partition, ra.Replicas = int32(p), replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	}
	cfg := kmsg.NewCreateTopicsRequestTopicConfig()
	cfg.Name, cfg.Value = "min.insync.replicas", kmsg.StringPtr("2")
	rt.Configs = append(rt.Configs, cfg)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.Topics[0].ErrorCode)
	}
	if err != nil {
		t.Fatalf("create %s: %v", topic, err)
	}
	waitPartitions(ctx, t, adm, topic, func(p int32, pd kadm.PartitionDetail) bool {
		return pd.Leader == rotationFrom[p][0] && len(pd.ISR) == 2
	})
}

// waitPartitions polls Metadata until cond holds for every partition.
func waitPartitions(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, cond func(int32, kadm.PartitionDetail) bool) kadm.TopicDetail {
	t.Helper()
	var last string
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			td := md.Topics[topic]
			ok := len(td.Partitions) > 0
			last = ""
			for _, pd := range td.Partitions.Sorted() {
				ok = ok && pd.Err == nil && cond(pd.Partition, pd)
				last += fmt.Sprintf(" p%d leader %d replicas %v isr %v;", pd.Partition, pd.Leader, pd.Replicas, pd.ISR)
			}
			if ok {
				return td
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("partitions of %s never reached the expected state:%s (%v)", topic, last, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partitionLog returns the bytes of a partition's segment files on broker
// b, in offset order, or nil if its log directory does not exist.
func partitionLog(t *testing.T, b *broker, topic string, p int32) []byte {
	t.Helper()
	dir := filepath.Join(b.DataDir, "logs", fmt.Sprintf("%s-%d", topic, p))
	segs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	sort.Strings(segs) // zero-padded base offsets
	var out []byte
	for _, s := range segs {
		data, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, data...)
	}
	return out
}

// TestClusterReassign moves every partition of an RF=2 topic to a
// different replica pair, away from its leader, under a continuous
// idempotent acks=all producer: the move completes, Metadata shows the
// new replicas and leaders, the removed replicas' logs are deleted, the
// added replicas hold byte-identical copies of the leaders' logs, and
// every acknowledged record is read exactly once, in order.
func TestClusterReassign(t *testing.T) {
	bs := startCluster(t, 3, reassignEnv...)
	ctx := testCtx(t, 60*time.Second)
	const topic = "moving"
	cl := newReassignClient(t, bs, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordRetries(1<<30), kgo.ProducerLinger(5*time.Millisecond))
	adm := kadm.NewClient(cl)
	createRotationTopic(ctx, t, cl, adm, topic)
	w := startWorkload(ctx, t, cl, topic, int32(len(rotationFrom)))
	w.waitAcked(ctx, 300)

	var req kadm.AlterPartitionAssignmentsReq
	for p, target := range rotationTo {
		req.Assign(topic, int32(p), target)
	}
	res, err := adm.AlterPartitionAssignments(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res.Sorted() {
		if r.Err != nil {
			t.Fatalf("reassign %s-%d: %v %s", r.Topic, r.Partition, r.Err, r.ErrMessage)
		}
	}
	// A cancel of a partition that is not moving, and a target naming an
	// unknown broker, as Kafka answers them.
	var bad kadm.AlterPartitionAssignmentsReq
	bad.Assign(topic, 0, []int32{1, 9})
	bad.CancelAssign("absent", 0)
	if res, err := adm.AlterPartitionAssignments(ctx, bad); err != nil ||
		!errors.Is(res[topic][0].Err, kerr.InvalidReplicaAssignment) || !errors.Is(res["absent"][0].Err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("bad reassignments: %+v %v", res, err)
	}

	all := kadm.TopicsSet{topic: {0: {}, 1: {}, 2: {}}}
	sawMoving := false
	for {
		l, err := adm.ListPartitionReassignments(ctx, all)
		if err == nil && len(l) == 0 {
			break
		}
		if err == nil {
			for _, r := range l.Sorted() {
				sawMoving = true
				target := rotationTo[r.Partition]
				if !slices.Equal(r.Replicas[:2], target) || len(r.AddingReplicas) != 1 || len(r.RemovingReplicas) != 1 {
					t.Fatalf("reassignment in progress: %+v", r)
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("reassignments never completed: %+v %v", l, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("reassignment seen in progress: %v", sawMoving)
	waitPartitions(ctx, t, adm, topic, func(p int32, pd kadm.PartitionDetail) bool {
		return slices.Equal(pd.Replicas, rotationTo[p]) && pd.Leader == rotationTo[p][0] && len(pd.ISR) == 2
	})
	w.waitAcked(ctx, 300) // the producer follows the new leaders
	w.finish(ctx, bs, adm)

	// Logs: the removed replica's directory is gone; the added one holds
	// the leader's bytes.
	for p := range rotationTo {
		from, to := rotationFrom[p], rotationTo[p]
		removed, added := from[0], to[1]
		for {
			gone := partitionLog(t, bs[removed-1], topic, int32(p)) == nil
			leader := partitionLog(t, bs[to[0]-1], topic, int32(p))
			copyOf := partitionLog(t, bs[added-1], topic, int32(p))
			if gone && len(leader) > 0 && bytes.Equal(leader, copyOf) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("partition %d: removed replica %d log present %v; leader %d log %d bytes, added replica %d log %d bytes, equal %v",
					p, removed, !gone, to[0], len(leader), added, len(copyOf), bytes.Equal(leader, copyOf))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestClusterElectPreferred: the leader of a partition is killed, the
// other replica takes over; once the old leader is back in the ISR, a
// preferred ElectLeaders gives it back its leadership.
func TestClusterElectPreferred(t *testing.T) {
	bs := startCluster(t, 3, reassignEnv...)
	ctx := testCtx(t, 60*time.Second)
	const topic = "elect"
	cl := newReassignClient(t, bs, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordRetries(1<<30), kgo.ProducerLinger(5*time.Millisecond))
	adm := kadm.NewClient(cl)
	createRotationTopic(ctx, t, cl, adm, topic)
	set := kadm.TopicsSet{topic: {0: {}}}
	if res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, set); err != nil || !errors.Is(res[topic][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("election with the preferred leader in place: %+v %v", res, err)
	}

	bs[0].kill() // leads partition 0 (replicas 1, 2)
	waitPartitions(ctx, t, adm, topic, func(p int32, pd kadm.PartitionDetail) bool {
		return p != 0 || pd.Leader == 2
	})
	if res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, set); err != nil || !errors.Is(res[topic][0].Err, kerr.PreferredLeaderNotAvailable) {
		t.Fatalf("election with the preferred leader down: %+v %v", res, err)
	}
	if res, err := adm.ElectLeaders(ctx, kadm.ElectLiveReplica, set); err != nil || !errors.Is(res[topic][0].Err, kerr.ElectionNotNeeded) {
		t.Fatalf("unclean election of a led partition: %+v %v", res, err)
	}
	w := startWorkload(ctx, t, cl, topic, int32(len(rotationFrom)))
	w.waitAcked(ctx, 100)
	bs[0].Restart()
	if err := bs[0].waitReady(); err != nil {
		t.Fatal(err)
	}
	waitPartitions(ctx, t, adm, topic, func(p int32, pd kadm.PartitionDetail) bool {
		return p != 0 || (pd.Leader == 2 && len(pd.ISR) == 2)
	})
	for {
		res, err := adm.ElectLeaders(ctx, kadm.ElectPreferredReplica, set)
		if err == nil && res[topic][0].Err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("preferred election: %+v %v", res, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitPartitions(ctx, t, adm, topic, func(p int32, pd kadm.PartitionDetail) bool {
		return pd.Leader == rotationFrom[p][0]
	})
	w.waitAcked(ctx, 100)
	w.finish(ctx, bs, adm)
}
