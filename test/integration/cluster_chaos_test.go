package integration

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The cluster issue's acceptance tests: a 3-broker cluster with an RF=3,
// min.insync.replicas=2 topic of six partitions carries a continuous
// idempotent acks=all producer and a two-member consumer group while
// brokers are killed, paused and restarted. Afterwards every acknowledged
// record must be readable exactly once at its acknowledged offset, and no
// committed group offset may ever have moved backwards.

const (
	chaosPartitions = 6
	chaosGroup      = "chaos-group"
)

// chaosEnv are the broker settings of the chaos tests: fast heartbeats and
// short sessions so a dead broker is fenced within ~1.5 s, and a
// replicated __consumer_offsets so the group survives its coordinator.
var chaosEnv = []string{
	"STREAMBUS_BROKER_HEARTBEAT_INTERVAL_MS=200",
	"STREAMBUS_BROKER_SESSION_TIMEOUT_MS=1500",
	"STREAMBUS_REPLICA_LAG_TIME_MAX_MS=1500",
	"STREAMBUS_OFFSETS_TOPIC_REPLICATION_FACTOR=3",
	"STREAMBUS_OFFSETS_TOPIC_NUM_PARTITIONS=3",
	"STREAMBUS_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
}

// chaosAck is where the cluster acknowledged one produced value.
type chaosAck struct {
	partition int32
	offset    int64
}

// chaos is one running cluster with its workload.
type chaos struct {
	t     *testing.T
	bs    []*broker
	seeds []string
	topic string
	adm   *kadm.Client
	ctx   context.Context

	mu        sync.Mutex
	acked     map[string]chaosAck // value -> where it was acknowledged
	prodErrs  []string
	consumed  int
	committed map[int32]int64 // highest committed offset seen per partition
	lastAck   map[int32]time.Time

	backwards []string // committed offsets that went backwards or vanished

	stop context.CancelFunc
	wg   sync.WaitGroup
}

// startChaos starts the cluster, creates the topic and starts the producer,
// the two group members and the committed-offset watcher.
func startChaos(t *testing.T, timeout time.Duration) *chaos {
	bs := startCluster(t, 3, chaosEnv...)
	c := &chaos{t: t, bs: bs, topic: "chaos", ctx: testCtx(t, timeout),
		acked: map[string]chaosAck{}, committed: map[int32]int64{}, lastAck: map[int32]time.Time{}}
	for _, b := range bs {
		c.seeds = append(c.seeds, b.Addr)
	}
	c.adm = kadm.NewClient(c.client())
	minISR := "2"
	resp, err := c.adm.CreateTopic(c.ctx, chaosPartitions, 3, map[string]*string{"min.insync.replicas": &minISR}, c.topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic: %v", err)
	}
	c.waitFullISR()

	wctx, stop := context.WithCancel(c.ctx)
	c.stop = stop
	// Clients are made here, not in the goroutines: only the test's
	// goroutine may fail it.
	prod := c.client(kgo.DefaultProduceTopic(c.topic), kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RecordRetries(1<<30),
		kgo.MaxBufferedRecords(500), kgo.ProducerLinger(5*time.Millisecond))
	c.wg.Add(1)
	go c.produce(wctx, prod)
	for i := 0; i < 2; i++ {
		member := c.client(kgo.ConsumerGroup(chaosGroup), kgo.ConsumeTopics(c.topic),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.AutoCommitInterval(200*time.Millisecond),
			kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond))
		c.wg.Add(1)
		go c.consumeInGroup(wctx, member)
	}
	c.wg.Add(1)
	go c.watchCommits(wctx, kadm.NewClient(c.client()))
	t.Cleanup(func() { stop(); c.wg.Wait() })
	// Let the workload get going (and the group form) before any fault.
	c.waitProgress(200)
	return c
}

// client returns a kgo client on every seed that refreshes metadata fast
// enough to follow leader changes; closed when the test ends.
func (c *chaos) client(opts ...kgo.Opt) *kgo.Client {
	c.t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(c.seeds...), kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond })}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		c.t.Fatalf("new client: %v", err)
	}
	c.t.Cleanup(cl.Close)
	return cl
}

// produce writes values 0, 1, 2, … round-robin over the partitions with an
// idempotent acks=all producer until ctx ends, recording every ack.
func (c *chaos) produce(ctx context.Context, cl *kgo.Client) {
	defer c.wg.Done()
	var inflight sync.WaitGroup
	for i := 0; ctx.Err() == nil; i++ {
		v := strconv.Itoa(i)
		inflight.Add(1)
		cl.Produce(ctx, &kgo.Record{Partition: int32(i % chaosPartitions), Value: []byte(v)}, func(r *kgo.Record, err error) {
			defer inflight.Done()
			c.mu.Lock()
			defer c.mu.Unlock()
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					c.prodErrs = append(c.prodErrs, fmt.Sprintf("value %s: %v", v, err))
				}
				return
			}
			c.acked[v] = chaosAck{r.Partition, r.Offset}
			c.lastAck[r.Partition] = time.Now()
		})
		time.Sleep(2 * time.Millisecond)
	}
	// Records stuck in a retry loop never finish; note them rather than
	// hang the test.
	done := make(chan struct{})
	go func() { inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.mu.Lock()
		c.prodErrs = append(c.prodErrs, fmt.Sprintf("records still unacknowledged 10s after the producer stopped; buffered %d", cl.BufferedProduceRecords()))
		c.mu.Unlock()
	}
}

// consumeInGroup is one member of the group, committing as it goes.
func (c *chaos) consumeInGroup(ctx context.Context, cl *kgo.Client) {
	defer c.wg.Done()
	for ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		n := fs.NumRecords()
		c.mu.Lock()
		c.consumed += n
		c.mu.Unlock()
	}
	// Leave the group with a final commit, as a clean member would.
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl.CommitUncommittedOffsets(cctx)
}

// watchCommits polls the group's committed offsets every 50 ms and notes
// any partition whose committed offset went backwards (or vanished).
func (c *chaos) watchCommits(ctx context.Context, adm *kadm.Client) {
	defer c.wg.Done()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		rctx, cancel := context.WithTimeout(ctx, time.Second)
		offs, err := adm.FetchOffsets(rctx, chaosGroup)
		cancel()
		if err != nil {
			continue // coordinator moving or loading: no answer is no regression
		}
		seen := map[int32]bool{}
		c.mu.Lock()
		offs.Each(func(o kadm.OffsetResponse) {
			if o.Topic != c.topic || o.Err != nil {
				return
			}
			seen[o.Partition] = true
			if prev, ok := c.committed[o.Partition]; ok && o.At < prev {
				c.backwards = append(c.backwards, fmt.Sprintf("%s partition %d: committed %d after %d",
					time.Now().Format("15:04:05.000"), o.Partition, o.At, prev))
			}
			if o.At > c.committed[o.Partition] {
				c.committed[o.Partition] = o.At
			}
		})
		for p, prev := range c.committed {
			if !seen[p] && len(offs) > 0 {
				c.backwards = append(c.backwards, fmt.Sprintf("%s partition %d: committed offset %d vanished",
					time.Now().Format("15:04:05.000"), p, prev))
			}
		}
		c.mu.Unlock()
	}
}

// waitProgress waits until n more records were acknowledged and the group
// committed something: the workload goes on after a fault.
func (c *chaos) waitProgress(n int) {
	c.t.Helper()
	c.mu.Lock()
	want := len(c.acked) + n
	c.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		got, commits := len(c.acked), len(c.committed)
		c.mu.Unlock()
		if got >= want && commits > 0 {
			return
		}
		if time.Now().After(deadline) || c.ctx.Err() != nil {
			c.mu.Lock()
			var last []string
			for p := int32(0); p < chaosPartitions; p++ {
				last = append(last, fmt.Sprintf("p%d %s", p, c.lastAck[p].Format("15:04:05.000")))
			}
			c.mu.Unlock()
			c.t.Fatalf("no progress: %d of %d records acknowledged, %d partitions committed; last acks %v; metadata %s",
				got, want, commits, last, c.describe())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metadata polls until the topic's metadata is answered.
func (c *chaos) metadata() kadm.Metadata {
	c.t.Helper()
	for {
		rctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
		md, err := c.adm.Metadata(rctx, c.topic)
		cancel()
		if err == nil && len(md.Topics[c.topic].Partitions) == chaosPartitions {
			return md
		}
		if c.ctx.Err() != nil {
			c.t.Fatalf("metadata: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// describe renders the topic's leaders and ISRs and the controller.
func (c *chaos) describe() string {
	rctx, cancel := context.WithTimeout(c.ctx, 2*time.Second)
	defer cancel()
	md, err := c.adm.Metadata(rctx, c.topic, "__consumer_offsets")
	if err != nil {
		return err.Error()
	}
	out := fmt.Sprintf("controller %d brokers %v", md.Controller, md.Brokers.NodeIDs())
	for _, tp := range []string{c.topic, "__consumer_offsets"} {
		for _, pd := range md.Topics[tp].Partitions.Sorted() {
			out += fmt.Sprintf("; %s/%d leader %d epoch %d isr %v err %v", tp, pd.Partition, pd.Leader, pd.LeaderEpoch, pd.ISR, pd.Err)
		}
	}
	return out
}

// leaderOf returns partition p's current leader.
func (c *chaos) leaderOf(p int32) int32 {
	c.t.Helper()
	for {
		if l := c.metadata().Topics[c.topic].Partitions[p].Leader; l > 0 {
			return l
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitFullISR waits until every partition has a leader and all three
// replicas in its ISR (so the next fault leaves a quorum).
func (c *chaos) waitFullISR() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		md := c.metadata()
		full := true
		var state []string
		for p := int32(0); p < chaosPartitions; p++ {
			pd := md.Topics[c.topic].Partitions[p]
			full = full && pd.Leader > 0 && len(pd.ISR) == 3
			state = append(state, fmt.Sprintf("p%d leader %d isr %v", p, pd.Leader, pd.ISR))
		}
		if full {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("ISR not full after 30s: %v", state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// restart starts a killed broker again and waits until it is ready.
func (c *chaos) restart(b *broker) {
	c.t.Helper()
	for attempt := 0; ; attempt++ {
		b.Restart()
		err := b.waitReady()
		if err == nil {
			return
		}
		if attempt == 3 {
			c.t.Fatalf("restarted broker %s not ready: %v\n%s", b.Addr, err, b.proc.output.Tail(8<<10))
		}
		b.kill()
	}
}

// byID returns the broker with node id id.
func (c *chaos) byID(id int32) *broker {
	c.t.Helper()
	if id < 1 || int(id) > len(c.bs) {
		c.t.Fatalf("no broker %d", id)
	}
	return c.bs[id-1]
}

// heal stops the workload and checks everything it recorded.
func (c *chaos) heal() {
	t := c.t
	t.Helper()
	c.waitFullISR()
	c.waitProgress(200)
	c.stop()
	c.wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	t.Logf("%d records acknowledged, %d consumed by the group, committed %v", len(c.acked), c.consumed, c.committed)
	for _, e := range c.prodErrs {
		t.Errorf("produce failed: %s", e)
	}
	for _, e := range c.backwards {
		t.Errorf("committed offset went backwards: %s", e)
	}

	ends, err := c.adm.ListEndOffsets(c.ctx, c.topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	end := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { end[o.Partition] = o.Offset })
	for p, off := range c.committed {
		if off > end[p] {
			t.Errorf("partition %d: committed offset %d beyond the high watermark %d", p, off, end[p])
		}
	}

	// A fresh consumer reads every partition from the start to its end.
	start := map[string]map[int32]kgo.Offset{c.topic: {}}
	for p := int32(0); p < chaosPartitions; p++ {
		start[c.topic][p] = kgo.NewOffset().AtStart()
	}
	cons := c.client(kgo.ConsumePartitions(start))
	type at struct {
		partition int32
		offset    int64
	}
	read := map[string]at{}
	last := map[int32]int64{}
	done := func() bool {
		for p := int32(0); p < chaosPartitions; p++ {
			if l, ok := last[p]; (!ok && end[p] > 0) || (ok && l+1 < end[p]) {
				return false
			}
		}
		return true
	}
	for !done() {
		if c.ctx.Err() != nil {
			t.Fatalf("verification read stopped at %v, ends %v", last, end)
		}
		fs := cons.PollFetches(c.ctx)
		fs.EachError(func(_ string, p int32, err error) { t.Logf("verify fetch partition %d: %v", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if l, ok := last[r.Partition]; ok && r.Offset <= l {
				t.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, l)
			}
			last[r.Partition] = r.Offset
			v := string(r.Value)
			if prev, dup := read[v]; dup {
				_, wasAcked := c.acked[v]
				t.Errorf("value %s read twice: partition %d offset %d and partition %d offset %d (acknowledged %v)",
					v, prev.partition, prev.offset, r.Partition, r.Offset, wasAcked)
			}
			read[v] = at{r.Partition, r.Offset}
		})
	}
	var missing []string
	for v, a := range c.acked {
		got, ok := read[v]
		if !ok || got.partition != a.partition || got.offset != a.offset {
			missing = append(missing, fmt.Sprintf("%s acked at p%d/%d, read %v at p%d/%d", v, a.partition, a.offset, ok, got.partition, got.offset))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		n := len(missing)
		if n > 20 {
			missing = missing[:20]
		}
		t.Errorf("%d acknowledged records not read where acknowledged, e.g. %v", n, missing)
	}
	// Per partition, values were produced in increasing order, so their
	// acknowledged offsets must increase with them.
	byPart := map[int32][]int{}
	for v, a := range c.acked {
		n, _ := strconv.Atoi(v)
		byPart[a.partition] = append(byPart[a.partition], n)
	}
	for p, vs := range byPart {
		sort.Ints(vs)
		for i := 1; i < len(vs); i++ {
			a, b := c.acked[strconv.Itoa(vs[i-1])], c.acked[strconv.Itoa(vs[i])]
			if b.offset <= a.offset {
				t.Errorf("partition %d: value %d acknowledged at %d but later value %d at %d", p, vs[i-1], a.offset, vs[i], b.offset)
				break
			}
		}
	}
	t.Logf("verified %d records read, %d acknowledged", len(read), len(c.acked))
}

// TestClusterChaosLeaderKills kills the leader of each partition in turn
// with kill -9, restarting it and waiting for it to rejoin every ISR before
// the next kill; the group's committed offsets must never go backwards.
// Progress while the victim is down is TestClusterChaosProgressWhileBrokerDown.
func TestClusterChaosLeaderKills(t *testing.T) {
	c := startChaos(t, 150*time.Second)
	for p := int32(0); p < chaosPartitions; p++ {
		l := c.leaderOf(p)
		victim := c.byID(l)
		t0 := time.Now()
		victim.kill()
		// Let the controller fence it and elect (session 1.5 s).
		for c.leaderOf(p) == l {
			if time.Since(t0) > 20*time.Second {
				t.Fatalf("partition %d still led by killed broker %d: %s", p, l, c.describe())
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("partition %d: leader %d killed, new leader after %v", p, l, time.Since(t0).Round(time.Millisecond))
		c.restart(victim)
		c.waitFullISR()
		c.waitProgress(50)
		t.Logf("partition %d: broker %d back in every ISR and workload going %v after the kill", p, l, time.Since(t0).Round(time.Millisecond))
	}
	c.heal()
}

// TestClusterChaosProgressWhileBrokerDown: with one of three brokers dead
// and min.insync.replicas=2, every partition keeps taking acks=all writes.
func TestClusterChaosProgressWhileBrokerDown(t *testing.T) {
	c := startChaos(t, 90*time.Second)
	l := c.leaderOf(0)
	c.byID(l).kill()
	c.waitProgress(200)
	c.restart(c.byID(l))
	c.heal()
}

// TestClusterChaosPause stops the leader of partition 0 with SIGSTOP for
// longer than its session, so the controller fences it and elects new
// leaders, then resumes it: the stale leader must not acknowledge or
// serve anything the new leaders contradict.
func TestClusterChaosPause(t *testing.T) {
	c := startChaos(t, 90*time.Second)
	l := c.leaderOf(0)
	victim := c.byID(l)
	proc := victim.proc.cmd.Process
	if err := proc.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			proc.Signal(syscall.SIGCONT)
		}
	}()
	t0 := time.Now()
	if rest := 4*time.Second - time.Since(t0); rest > 0 {
		time.Sleep(rest)
	}
	if nl := c.leaderOf(0); nl == l {
		t.Errorf("partition 0 still led by paused broker %d after %v", l, time.Since(t0))
	}
	proc.Signal(syscall.SIGCONT)
	resumed = true
	c.waitProgress(200)
	c.waitFullISR()
	t.Logf("broker %d resumed and back in every ISR %v after the pause", l, time.Since(t0).Round(time.Millisecond))
	c.heal()
}

// TestClusterChaosControllerKill kills the active controller (the Raft
// leader) with kill -9 and restarts it.
func TestClusterChaosControllerKill(t *testing.T) {
	c := startChaos(t, 90*time.Second)
	md := c.metadata()
	ctl := md.Controller
	victim := c.byID(ctl)
	t0 := time.Now()
	victim.kill()
	for {
		if nc := c.metadata().Controller; nc > 0 && nc != ctl {
			t.Logf("new controller %d after %v", nc, time.Since(t0).Round(time.Millisecond))
			break
		}
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("controller still reported as %d 20s after it was killed", ctl)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.restart(victim)
	c.waitFullISR()
	c.waitProgress(200)
	t.Logf("broker %d back in every ISR %v after the kill", ctl, time.Since(t0).Round(time.Millisecond))
	c.heal()
}
