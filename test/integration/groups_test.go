package integration

// Consumer groups seen from real clients. This file holds the shared pieces
// (the broker settings, a paced producer, the ledger of consumed records, the
// committed-offset watcher) and the franz-go kgo scenarios; the other
// clients are in groups_clients_test.go, raw protocol cases in
// groups_raw_test.go, restarts in groups_restart_test.go and the
// measurements (STREAMBUS_GROUP_PERF=1) in groups_perf_test.go.
//
// The common scenario: a 6-partition topic, three members sharing it while a
// producer keeps writing; one member leaves and another joins mid-stream;
// once production stops every record must have been consumed exactly once
// in total, in offset order per partition and member, and the committed
// offsets must end at the log end and never have gone backwards.

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	groupPartitions = 6
	// groupSession is the classic session timeout the tests' members ask
	// for: short so that a dead member is noticed quickly, long enough that
	// a loaded 2-core CI machine does not expire live members.
	groupSession = 3 * time.Second
	// groupHeartbeat is the classic heartbeat interval; it bounds how fast
	// members notice a rebalance.
	groupHeartbeat = 100 * time.Millisecond
	// killSession is the session timeout of members that the tests kill.
	killSession = 1500 * time.Millisecond
)

// groupEnv is the broker configuration of the group tests: no initial
// rebalance delay, short session timeouts allowed, fast KIP-848 heartbeats.
var groupEnv = []string{
	"STREAMBUS_GROUP_INITIAL_REBALANCE_DELAY_MS=0",
	"STREAMBUS_GROUP_MIN_SESSION_TIMEOUT_MS=500",
	"STREAMBUS_GROUP_CONSUMER_SESSION_TIMEOUT_MS=2000",
	"STREAMBUS_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS=100",
}

func startGroupBroker(t *testing.T, extraEnv ...string) *broker {
	t.Helper()
	if harness.kind == "kfake" {
		// Its stand-in ignores these settings: 6s minimum session timeout.
		t.Skip("the group tests need STREAMBUS_GROUP_* broker settings that the kfake stand-in ignores")
	}
	return startBroker(t, brokerOpts{Env: append(slices.Clone(groupEnv), extraEnv...)})
}

// groupName derives a unique group ID from the test name.
func groupName(t testing.TB) string { return uniqueTopic(t, "g") }

// recordValue is the value of the record at offset off of partition p: the
// producer writes each partition from one client in order, so offsets and
// values correspond one to one.
func recordValue(p int32, off int64) string { return fmt.Sprintf("p%d-o%06d", p, off) }

// waitFor polls cond every 20ms until it holds, failing the test after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---- producer ----

// streamProducer writes recordValue records to every partition of a topic,
// perTick records per partition every tick, until stopped. Every record is
// acknowledged before the next tick, so produced() is exact.
type streamProducer struct {
	t     testing.TB
	cl    *kgo.Client
	topic string
	parts int32

	mu       sync.Mutex
	produced map[int32]int64 // acknowledged records per partition
	err      error

	stop chan struct{}
	done chan struct{}
}

func newStreamProducer(t testing.TB, b *broker, topic string, parts int32) *streamProducer {
	return &streamProducer{
		t: t, topic: topic, parts: parts,
		cl: newKgo(t, b,
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.ProducerLinger(0),
		),
		produced: map[int32]int64{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
}

// produce writes n records to every partition and waits for them.
func (p *streamProducer) produce(ctx context.Context, n int) error {
	p.mu.Lock()
	var recs []*kgo.Record
	for part := int32(0); part < p.parts; part++ {
		for i := 0; i < n; i++ {
			off := p.produced[part] + int64(i)
			recs = append(recs, &kgo.Record{Topic: p.topic, Partition: part, Value: []byte(recordValue(part, off))})
		}
	}
	p.mu.Unlock()
	res := p.cl.ProduceSync(ctx, recs...)
	if err := res.FirstErr(); err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, r := range res {
		if want := recordValue(r.Record.Partition, r.Record.Offset); string(r.Record.Value) != want {
			return fmt.Errorf("record %q acknowledged at p%d offset %d (want value %q there)", r.Record.Value, r.Record.Partition, r.Record.Offset, want)
		}
	}
	for part := int32(0); part < p.parts; part++ {
		p.produced[part] += int64(n)
	}
	return nil
}

// run produces perTick records per partition every tick until Stop, at
// most maxTicks times.
func (p *streamProducer) run(perTick int, tick time.Duration, maxTicks int) {
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		for i := 0; i < maxTicks; i++ {
			select {
			case <-p.stop:
				return
			case <-time.After(tick):
			}
			if err := p.produce(ctx, perTick); err != nil {
				p.mu.Lock()
				p.err = err
				p.mu.Unlock()
				return
			}
		}
	}()
}

// Stop ends run and returns the acknowledged record count per partition.
func (p *streamProducer) Stop() map[int32]int64 {
	p.t.Helper()
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		p.t.Fatalf("producer: %v", p.err)
	}
	return maps32(p.produced)
}

func (p *streamProducer) total() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var n int64
	for _, c := range p.produced {
		n += c
	}
	return n
}

func maps32(m map[int32]int64) map[int32]int64 {
	out := make(map[int32]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ---- ledger ----

type consumedRec struct {
	member string
	offset int64
	value  string
}

// ledger collects what every member consumed, per partition in arrival
// order.
type ledger struct {
	// replays tolerates a client consuming records again after a
	// rebalance (at-least-once): check then only looks for skipped or
	// corrupt records.
	replays bool

	mu       sync.Mutex
	parts    map[int32][]consumedRec
	byMember map[string]int
	n        int
}

func newLedger() *ledger {
	return &ledger{parts: map[int32][]consumedRec{}, byMember: map[string]int{}}
}

func (l *ledger) add(member string, p int32, off int64, value string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.parts[p] = append(l.parts[p], consumedRec{member, off, value})
	l.byMember[member]++
	l.n++
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

func (l *ledger) memberCount(member string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byMember[member]
}

// covered reports whether every offset below want[p] was consumed.
func (l *ledger) covered(want map[int32]int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, n := range want {
		seen := make([]bool, n)
		missing := n
		for _, r := range l.parts[p] {
			if r.offset >= 0 && r.offset < n && !seen[r.offset] {
				seen[r.offset] = true
				missing--
			}
		}
		if missing > 0 {
			return false
		}
	}
	return true
}

// waitCovered waits until every produced record was consumed.
func (l *ledger) waitCovered(t testing.TB, want map[int32]int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !l.covered(want) {
		if time.Now().After(deadline) {
			l.mu.Lock()
			var b strings.Builder
			for p := int32(0); p < int32(len(want)); p++ {
				fmt.Fprintf(&b, " p%d: %d consumed of %d;", p, len(l.parts[p]), want[p])
			}
			l.mu.Unlock()
			t.Fatalf("not every produced record was consumed within %v:%s", d, b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// check verifies the consumption of want[p] records per partition: nothing
// skipped, nothing that was never produced, values intact, every member's
// offsets strictly increasing per partition, and no record consumed twice
// unless dupOK allows the pair of members involved. It returns how many
// records were consumed more than once.
func (l *ledger) check(t testing.TB, want map[int32]int64, dupOK func(first, second consumedRec) bool) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	dups := 0
	for p, n := range want {
		seenBy := make([]*consumedRec, n)
		last := map[string]int64{}
		errs := 0
		fail := func(format string, args ...any) {
			errs++
			if errs <= 5 {
				t.Errorf("partition %d: "+format, append([]any{p}, args...)...)
			}
		}
		for i := range l.parts[p] {
			r := &l.parts[p][i]
			if r.offset < 0 || r.offset >= n {
				fail("%s consumed offset %d, but only %d records were produced", r.member, r.offset, n)
				continue
			}
			if r.value != recordValue(p, r.offset) {
				fail("offset %d has value %q, want %q", r.offset, r.value, recordValue(p, r.offset))
			}
			if prev, ok := last[r.member]; ok && r.offset <= prev && !l.replays {
				fail("%s consumed offset %d after offset %d", r.member, r.offset, prev)
			}
			last[r.member] = r.offset
			if first := seenBy[r.offset]; first != nil {
				dups++
				if !l.replays && (dupOK == nil || !dupOK(*first, *r)) {
					fail("offset %d consumed twice: by %s and by %s", r.offset, first.member, r.member)
				}
				continue
			}
			seenBy[r.offset] = r
		}
		for off, r := range seenBy {
			if r == nil {
				fail("offset %d was never consumed (skipped)", off)
			}
		}
		if errs > 5 {
			t.Errorf("partition %d: %d more errors", p, errs-5)
		}
	}
	return dups
}

// ---- committed offsets ----

// commitWatcher polls a group's committed offsets and reports any that goes
// backwards.
type commitWatcher struct {
	// lenient logs instead of failing when an offset goes backwards, for
	// clients known to commit late across a rebalance.
	lenient bool
	t       testing.TB
	adm     *kadm.Client
	group   string
	topic   string
	mu      sync.Mutex
	max     map[int32]int64
	polls   int
	stop    chan struct{}
	done    chan struct{}
}

func watchCommits(t testing.TB, b *broker, group, topic string) *commitWatcher {
	w := &commitWatcher{
		t: t, adm: kadm.NewClient(newKgo(t, b)), group: group, topic: topic,
		max: map[int32]int64{}, stop: make(chan struct{}), done: make(chan struct{}),
	}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
			w.poll()
		}
	}()
	return w
}

func (w *commitWatcher) poll() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resps, err := w.adm.FetchOffsets(ctx, w.group)
	if err != nil {
		return // e.g. a broker restart in progress; the next poll retries
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.polls++
	for p, r := range resps[w.topic] {
		if r.Err != nil {
			continue
		}
		if prev, ok := w.max[p]; ok && r.At < prev {
			report := w.t.Errorf
			if w.lenient {
				report = w.t.Logf
			}
			report("committed offset of %s/%d went backwards: %d after %d", w.topic, p, r.At, prev)
		}
		if r.At > w.max[p] || w.max[p] == 0 {
			w.max[p] = r.At
		}
	}
}

// Stop ends the watch after one last poll and returns the last offsets.
func (w *commitWatcher) Stop() map[int32]int64 {
	close(w.stop)
	<-w.done
	w.poll()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.t.Logf("commit watcher: %d polls", w.polls)
	return maps32(w.max)
}

// committed returns the group's committed offsets for topic.
func committed(t testing.TB, b *broker, group, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(newKgo(t, b))
	resps, err := adm.FetchOffsets(testCtx(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("fetch offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	for p, r := range resps[topic] {
		if r.Err != nil {
			t.Fatalf("fetch offset %s/%d: %v", topic, p, r.Err)
		}
		out[p] = r.At
	}
	return out
}

// checkCommittedAtEnd asserts that the group committed exactly the log end
// of every partition, and that kadm reports no lag.
func checkCommittedAtEnd(t testing.TB, b *broker, group, topic string, produced map[int32]int64) {
	t.Helper()
	got := committed(t, b, group, topic)
	for p, n := range produced {
		if got[p] != n {
			t.Errorf("committed offset of partition %d = %d, want the log end %d", p, got[p], n)
		}
	}
	adm := kadm.NewClient(newKgo(t, b))
	lags, err := adm.Lag(testCtx(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("lag of %s: %v", group, err)
	}
	l := lags[group]
	if l.FetchErr != nil || l.DescribeErr != nil {
		t.Fatalf("lag of %s: describe %v, fetch %v", group, l.DescribeErr, l.FetchErr)
	}
	if total := l.Lag.Total(); total != 0 {
		t.Errorf("group %s lag = %d, want 0", group, total)
	}
}

// ---- kgo members ----

type kgoMemberOpts struct {
	balancer   kgo.GroupBalancer // default range
	serverSide bool              // KIP-848
	instanceID string            // KIP-345 static membership
	session    time.Duration     // default groupSession
}

// kgoMember is one franz-go group member polling in its own goroutine. It
// blocks rebalances while it records a poll, and commits what it polled
// before giving partitions up, so a graceful handover loses and repeats
// nothing.
type kgoMember struct {
	t        testing.TB
	name     string
	cl       *kgo.Client
	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once

	mu         sync.Mutex
	owned      map[int32]bool
	assigned   int // OnPartitionsAssigned calls
	revoked    int // OnPartitionsRevoked and OnPartitionsLost calls
	commitErrs []error
}

func startKgoMember(t testing.TB, b *broker, group, topic, name string, led *ledger, o kgoMemberOpts) *kgoMember {
	t.Helper()
	m := &kgoMember{t: t, name: name, owned: map[int32]bool{}, done: make(chan struct{})}
	if o.balancer == nil {
		o.balancer = kgo.RangeBalancer()
	}
	if o.session == 0 {
		o.session = groupSession
	}
	opts := []kgo.Opt{
		kgo.ClientID(name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(o.balancer),
		kgo.SessionTimeout(o.session),
		kgo.HeartbeatInterval(groupHeartbeat),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.AutoCommitInterval(200 * time.Millisecond),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, a map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.assigned++
			for _, p := range a[topic] {
				m.owned[p] = true
			}
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, r map[string][]int32) {
			// Overriding the revoke callback turns off kgo's own commit
			// on revoke: do it here, synchronously.
			err := cl.CommitUncommittedOffsets(ctx)
			m.mu.Lock()
			defer m.mu.Unlock()
			m.revoked++
			if err != nil {
				m.commitErrs = append(m.commitErrs, err)
			}
			for _, p := range r[topic] {
				delete(m.owned, p)
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, l map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			m.revoked++
			for _, p := range l[topic] {
				delete(m.owned, p)
			}
		}),
	}
	if o.serverSide {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	if o.instanceID != "" {
		opts = append(opts, kgo.InstanceID(o.instanceID))
	}
	if os.Getenv("STREAMBUS_GROUP_DEBUG") == "1" { // kgo logs, for debugging a failure
		opts = append(opts, kgo.WithLogger(kgo.BasicLogger(os.Stderr, kgo.LogLevelInfo, func() string { return name + " " })))
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(b.Addr)}, opts...)...)
	if err != nil {
		t.Fatalf("new kgo member: %v", err)
	}
	m.cl = cl
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	go func() {
		defer close(m.done)
		defer cl.AllowRebalance()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachError(func(tp string, p int32, err error) {
				t.Logf("%s: fetch %s/%d: %v", name, tp, p, err)
			})
			fs.EachRecord(func(r *kgo.Record) { led.add(name, r.Partition, r.Offset, string(r.Value)) })
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(m.Stop)
	return m
}

// Stop ends polling and closes the client, which leaves the group (except
// for static members) after committing in the revoke callback. Idempotent.
func (m *kgoMember) Stop() {
	m.stopOnce.Do(func() {
		m.cancel()
		<-m.done
		m.cl.Close()
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, err := range m.commitErrs {
			m.t.Errorf("%s: commit on revoke failed: %v", m.name, err)
		}
	})
}

// Owned returns the partitions the member currently owns.
func (m *kgoMember) Owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p := range m.owned {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

func (m *kgoMember) callbacks() (assigned, revoked int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.assigned, m.revoked
}

// waitAssignment waits until every member owns partitions and every
// partition has exactly one owner.
func waitAssignment(t testing.TB, d time.Duration, parts int32, ms ...*kgoMember) {
	t.Helper()
	waitFor(t, d, "every partition to be owned by exactly one member", func() bool {
		owners := make([]int, parts)
		for _, m := range ms {
			owned := m.Owned()
			if len(owned) == 0 {
				return false
			}
			for _, p := range owned {
				owners[p]++
			}
		}
		for _, n := range owners {
			if n != 1 {
				return false
			}
		}
		return true
	})
}

// sharedGroupScenario runs the leave-and-join scenario with members made by
// start, and checks exactly-once consumption and the commits; with replays,
// only at-least-once consumption.
func sharedGroupScenario(t *testing.T, b *broker, replays bool, start func(group, topic, name string, led *ledger) (stop func())) (group string) {
	topic := createTopic(t, b, groupPartitions)
	group = groupName(t)
	led := newLedger()
	led.replays = replays
	watch := watchCommits(t, b, group, topic)
	watch.lenient = replays
	prod := newStreamProducer(t, b, topic, groupPartitions)
	prod.run(5, 20*time.Millisecond, 3000)

	begin := time.Now()
	stops := map[string]func(){}
	for _, name := range []string{"m1", "m2", "m3"} {
		stops[name] = start(group, topic, name, led)
	}
	waitFor(t, 30*time.Second, "all three members to consume", func() bool {
		return led.memberCount("m1") > 0 && led.memberCount("m2") > 0 && led.memberCount("m3") > 0
	})
	t.Logf("three members consuming after %v", time.Since(begin).Round(time.Millisecond))

	// m1 leaves mid-stream; the others must pick up its partitions.
	n := led.count()
	stops["m1"]()
	left := time.Now()
	waitFor(t, 30*time.Second, "consumption to go on after m1 left", func() bool { return led.count() > n+300 })
	t.Logf("after m1 left: %d more records in %v", led.count()-n, time.Since(left).Round(time.Millisecond))

	// m4 joins mid-stream and must get a share.
	stops["m4"] = start(group, topic, "m4", led)
	joined := time.Now()
	waitFor(t, 30*time.Second, "m4 to consume", func() bool { return led.memberCount("m4") > 0 })
	t.Logf("m4 consuming %v after joining", time.Since(joined).Round(time.Millisecond))

	produced := prod.Stop()
	led.waitCovered(t, produced, 30*time.Second)
	for _, name := range []string{"m2", "m3", "m4"} {
		stops[name]()
	}
	watch.Stop()
	dups := led.check(t, produced, nil)
	t.Logf("%d records over %d partitions, %d consumed (%d again)", prod.total(), groupPartitions, led.count(), dups)
	checkCommittedAtEnd(t, b, group, topic, produced)
	return group
}

// TestGroupKgoShared: franz-go members with client-side range and
// cooperative-sticky balancing, and KIP-848 server-side range and uniform
// assignment, share a topic through a member leaving and one joining.
func TestGroupKgoShared(t *testing.T) {
	b := startGroupBroker(t)
	cases := []struct {
		name string
		opts kgoMemberOpts
	}{
		{"range", kgoMemberOpts{balancer: kgo.RangeBalancer()}},
		{"cooperative-sticky", kgoMemberOpts{balancer: kgo.CooperativeStickyBalancer()}},
		{"kip848-range", kgoMemberOpts{balancer: kgo.RangeBalancer(), serverSide: true}},
		{"kip848-uniform", kgoMemberOpts{balancer: kgo.StickyBalancer(), serverSide: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			group := sharedGroupScenario(t, b, false, func(group, topic, name string, led *ledger) func() {
				return startKgoMember(t, b, group, topic, name, led, c.opts).Stop
			})
			if c.opts.serverSide {
				checkGroupType(t, b, group, "consumer")
			}
		})
	}
}

// checkGroupType asserts the group's type as ListGroups v5 reports it:
// "consumer" for KIP-848 groups, "classic" for the others.
func checkGroupType(t testing.TB, b *broker, group, want string) {
	t.Helper()
	adm := kadm.NewClient(newKgo(t, b))
	listed, err := adm.ListGroups(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatalf("list groups: %v", err)
	}
	g, ok := listed[group]
	if !ok {
		t.Fatalf("group %s not listed (listed: %v)", group, listed.Groups())
	}
	if g.GroupType != want {
		t.Errorf("group %s has type %q, want %q", group, g.GroupType, want)
	}
}

// TestGroupKgoStaticMembership: a static member (KIP-345) that restarts
// within its session timeout gets its partitions back, and the other
// members see no rebalance: no callbacks, the same generation.
func TestGroupKgoStaticMembership(t *testing.T) {
	b := startGroupBroker(t)
	for _, serverSide := range []bool{false, true} {
		name := "classic-range"
		if serverSide {
			name = "kip848-range"
		}
		t.Run(name, func(t *testing.T) {
			topic := createTopic(t, b, groupPartitions)
			group := groupName(t)
			led := newLedger()
			prod := newStreamProducer(t, b, topic, groupPartitions)
			opts := func(id string) kgoMemberOpts {
				return kgoMemberOpts{instanceID: id, serverSide: serverSide, session: 20 * time.Second}
			}
			// s1 starts alone and goes through a second generation when
			// the others join, as a long-lived member would.
			s1 := startKgoMember(t, b, group, topic, "s1", led, opts("s1"))
			waitAssignment(t, 30*time.Second, groupPartitions, s1)
			ms := []*kgoMember{
				s1,
				startKgoMember(t, b, group, topic, "s2", led, opts("s2")),
				startKgoMember(t, b, group, topic, "s3", led, opts("s3")),
			}
			waitAssignment(t, 30*time.Second, groupPartitions, ms...)
			if err := prod.produce(testCtx(t, 20*time.Second), 20); err != nil {
				t.Fatal(err)
			}
			led.waitCovered(t, maps32(prod.produced), 20*time.Second)
			// Let any rebalance still in flight settle before taking the
			// baseline.
			time.Sleep(500 * time.Millisecond)
			before := s1.Owned()
			var gens [3]int32
			var calls [3][2]int
			for i, m := range ms {
				_, gens[i] = m.cl.GroupMetadata()
				calls[i][0], calls[i][1] = m.callbacks()
			}
			s1.Stop() // static: no LeaveGroup
			restarted := startKgoMember(t, b, group, topic, "s1-restarted", led, opts("s1"))
			waitFor(t, 20*time.Second, "the restarted static member to get partitions", func() bool {
				return len(restarted.Owned()) > 0
			})
			if got := restarted.Owned(); !slices.Equal(got, before) {
				t.Errorf("restarted static member owns %v, before the restart it owned %v", got, before)
			}
			if err := prod.produce(testCtx(t, 20*time.Second), 20); err != nil {
				t.Fatal(err)
			}
			produced := maps32(prod.produced)
			led.waitCovered(t, produced, 20*time.Second)
			for _, i := range []int{1, 2} {
				_, gen := ms[i].cl.GroupMetadata()
				a, r := ms[i].callbacks()
				if gen != gens[i] || a != calls[i][0] || r != calls[i][1] {
					t.Errorf("%s saw a rebalance: generation/epoch %d -> %d, assigned callbacks %d -> %d, revoked %d -> %d",
						ms[i].name, gens[i], gen, calls[i][0], a, calls[i][1], r)
				}
			}
			// The restarted member resumes where the old one committed.
			led.check(t, produced, nil)
		})
	}
}

// ---- a member in a child process, for SIGKILL ----

const (
	envGroupChild      = "STREAMBUS_GROUP_CHILD"
	envGroupChildGroup = "STREAMBUS_GROUP_CHILD_GROUP"
	envGroupChildTopic = "STREAMBUS_GROUP_CHILD_TOPIC"
	envGroupChild848   = "STREAMBUS_GROUP_CHILD_KIP848"
)

// TestGroupMemberChild is not a test: TestGroupKgoMemberKilled runs the
// test binary with envGroupChild set, and this function is then a kgo group
// member that prints "REC partition offset value" for every record before
// committing it, until it is killed.
func TestGroupMemberChild(t *testing.T) {
	if os.Getenv(envGroupChild) != "1" {
		t.Skip("helper process of TestGroupKgoMemberKilled")
	}
	topic := os.Getenv(envGroupChildTopic)
	opts := []kgo.Opt{
		kgo.SeedBrokers(os.Getenv(envAddr)),
		kgo.ClientID("child"),
		kgo.ConsumerGroup(os.Getenv(envGroupChildGroup)),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.SessionTimeout(killSession),
		kgo.HeartbeatInterval(groupHeartbeat),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.DisableAutoCommit(),
	}
	if os.Getenv(envGroupChild848) == "1" {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	out := bufio.NewWriter(os.Stdout)
	ctx := context.Background()
	for {
		fs := cl.PollFetches(ctx)
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) {
			fmt.Fprintf(out, "REC %d %d %s\n", r.Partition, r.Offset, r.Value)
			recs = append(recs, r)
		})
		// Printed before committed: the parent sees at least everything
		// committed.
		out.Flush()
		if len(recs) > 0 {
			cl.CommitRecords(ctx, recs...)
		}
	}
}

// startChildMember runs TestGroupMemberChild as a separate process whose
// records go into led as member "child". The returned process is killed
// when the test ends.
func startChildMember(t *testing.T, b *broker, group, topic string, kip848 bool, led *ledger) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^TestGroupMemberChild$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envAddr+"="+b.Addr, // the child's TestMain then builds nothing
		envGroupChild+"=1",
		envGroupChildGroup+"="+group,
		envGroupChildTopic+"="+topic,
	)
	if kip848 {
		cmd.Env = append(cmd.Env, envGroupChild848+"=1")
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child member: %v", err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 4 || f[0] != "REC" {
				continue
			}
			p, _ := strconv.Atoi(f[1])
			off, _ := strconv.ParseInt(f[2], 10, 64)
			led.add("child", int32(p), off, f[3])
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		<-read
		if t.Failed() {
			t.Logf("child member stderr:\n%s", stderr.Tail(8<<10))
		}
	})
	return cmd
}

// TestGroupKgoMemberKilled: a member's process is killed with SIGKILL (no
// LeaveGroup); once its session expires the others take over its
// partitions from its last commit: nothing is skipped, and only records the
// dead member had consumed are consumed again.
func TestGroupKgoMemberKilled(t *testing.T) {
	requireProcess(t)
	b := startGroupBroker(t)
	for _, kip848 := range []bool{false, true} {
		name := "classic-range"
		if kip848 {
			name = "kip848-range"
		}
		t.Run(name, func(t *testing.T) {
			topic := createTopic(t, b, groupPartitions)
			group := groupName(t)
			led := newLedger()
			watch := watchCommits(t, b, group, topic)
			prod := newStreamProducer(t, b, topic, groupPartitions)
			prod.run(5, 20*time.Millisecond, 3000)

			child := startChildMember(t, b, group, topic, kip848, led)
			opts := kgoMemberOpts{serverSide: kip848}
			m1 := startKgoMember(t, b, group, topic, "m1", led, opts)
			m2 := startKgoMember(t, b, group, topic, "m2", led, opts)
			waitFor(t, 30*time.Second, "all three members to consume", func() bool {
				return led.memberCount("m1") > 0 && led.memberCount("m2") > 0 && led.memberCount("child") > 0
			})
			survivorsOwned := len(m1.Owned()) + len(m2.Owned())
			if err := child.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			waitFor(t, 30*time.Second, "the survivors to take over every partition", func() bool {
				return len(m1.Owned())+len(m2.Owned()) == groupPartitions
			})
			t.Logf("survivors own all %d partitions (%d before) %v after SIGKILL", groupPartitions, survivorsOwned,
				time.Since(killed).Round(time.Millisecond))
			n := led.count()
			waitFor(t, 30*time.Second, "consumption to go on", func() bool { return led.count() > n+300 })

			produced := prod.Stop()
			led.waitCovered(t, produced, 30*time.Second)
			m1.Stop()
			m2.Stop()
			watch.Stop()
			dups := led.check(t, produced, func(first, second consumedRec) bool {
				return first.member == "child" && second.member != "child"
			})
			t.Logf("%d records consumed, %d of them again after the kill", led.count(), dups)
			checkCommittedAtEnd(t, b, group, topic, produced)
		})
	}
}
