//go:build cgo

package integration

// librdkafka 2.11 through confluent-kafka-go (cgo, statically linked): the
// client that most non-Java Kafka users run, in the versions that speak the
// KIP-848 consumer protocol. Debian's kcat is librdkafka 2.0 and covers the
// classic path only (groups_clients_test.go, interop_test.go).
//
//   - TestLibrdkafkaConsumerProtocol: two group.protocol=consumer members
//     (uniform, then range server-side assignor) share a 4-partition topic
//     written by librdkafka (zstd) and kgo; every record is consumed exactly
//     once and in order, commits are synchronous, one member closes and the
//     other ends up owning every partition, and ConsumerGroupDescribe shows
//     it all.
//   - TestLibrdkafkaClassicProtocol: the same with group.protocol=classic
//     and the cooperative-sticky client-side assignor.
//   - TestLibrdkafkaIdempotentProducer: an idempotent lz4 producer; keys,
//     null keys and values, headers (repeated, empty, null) and timestamps
//     read back intact by librdkafka and kgo, producer ID and sequences as
//     the protocol requires.
//
// librdkafka's own logs (debug contexts "cgrp,protocol" by default) are
// kept per client and printed when a test fails, so a failure shows what
// librdkafka sent and what it made of the broker's answers. Setting
// STREAMBUS_LIBRDKAFKA_DEBUG (e.g. "cgrp,protocol,fetch" or "all") chooses
// the contexts and prints the logs of passing tests too. librdkafka_nocgo_test.go skips these tests when cgo is
// off.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const (
	// rdkPartitions is the partition count of the group tests' topic.
	rdkPartitions = 4
	// rdkPerPartition is how many records each of the two producers writes
	// to every partition before the handover: 2 x 4 x 25 = 200 records.
	rdkPerPartition = 25
	// rdkAfterHandover is how many more records per partition are written
	// once a single member owns the topic.
	rdkAfterHandover = 10
	// rdkWait bounds every wait for a group to settle or records to arrive;
	// all of it happens on loopback with 100ms heartbeats.
	rdkWait = 30 * time.Second
	// envRdkDebug overrides librdkafka's debug contexts ("all", "cgrp,fetch").
	envRdkDebug = "STREAMBUS_LIBRDKAFKA_DEBUG"
	// rdkLogKeep is how much of each client's log a failed test prints.
	rdkLogKeep = 96 << 10
)

// ---- librdkafka logs ----

// rdkLog receives one librdkafka client's log events on a channel and keeps
// the most recent rdkLogKeep bytes, printed if the test fails.
type rdkLog struct {
	name string
	ch   chan kafka.LogEvent
	done chan struct{}

	mu    sync.Mutex
	lines []string
	size  int
}

// newRdkLog starts the goroutine that drains a client's log channel. The
// returned log must be stopped once the client is closed: confluent-kafka-go
// stops writing to the channel before Close returns.
func newRdkLog(name string) *rdkLog {
	l := &rdkLog{name: name, ch: make(chan kafka.LogEvent, 1024), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		for ev := range l.ch {
			l.add(fmt.Sprintf("%s %s %s", ev.Timestamp.Format("15:04:05.000"), ev.Tag, ev.Message))
		}
	}()
	return l
}

func (l *rdkLog) add(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, line)
	l.size += len(line) + 1
	for l.size > rdkLogKeep && len(l.lines) > 1 {
		l.size -= len(l.lines[0]) + 1
		l.lines = l.lines[1:]
	}
}

func (l *rdkLog) stop() {
	close(l.ch)
	<-l.done
}

func (l *rdkLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// rdkConfig returns the settings every librdkafka client of the tests
// shares, with its log routed to a new rdkLog.
func rdkConfig(b *broker, clientID string) (kafka.ConfigMap, *rdkLog) {
	debug := os.Getenv(envRdkDebug)
	if debug == "" {
		debug = "cgrp,protocol"
	}
	l := newRdkLog(clientID)
	return kafka.ConfigMap{
		"bootstrap.servers":      b.Addr,
		"client.id":              clientID,
		"broker.address.family":  "v4",
		"debug":                  debug,
		"go.logs.channel.enable": true,
		"go.logs.channel":        l.ch,
	}, l
}

// withLogDump prints l when t has failed, or always when envRdkDebug is
// set: registered before the client's Close, so it runs after it.
func withLogDump(t testing.TB, l *rdkLog) {
	t.Cleanup(func() {
		l.stop()
		if t.Failed() || os.Getenv(envRdkDebug) != "" {
			t.Logf("librdkafka log of %s (last %d KiB):\n%s", l.name, rdkLogKeep>>10, l)
		}
	})
}

// ---- consumers ----

// rdkMember is one confluent-kafka-go group member. It is driven from the
// test goroutine only (Poll, commit, Assignment, Close), so it needs no
// locks.
type rdkMember struct {
	t      testing.TB
	name   string
	c      *kafka.Consumer
	closed bool
}

// startRdkMember creates a member of group with the given extra settings
// and subscribes it to topic; it is closed when the test ends.
func startRdkMember(t testing.TB, b *broker, group, topic, name string, extra kafka.ConfigMap) *rdkMember {
	t.Helper()
	cfg, l := rdkConfig(b, name)
	withLogDump(t, l)
	cfg["group.id"] = group
	cfg["auto.offset.reset"] = "earliest"
	cfg["enable.auto.commit"] = false
	cfg["fetch.wait.max.ms"] = 100
	for k, v := range extra {
		cfg[k] = v
	}
	c, err := kafka.NewConsumer(&cfg)
	if err != nil {
		l.stop()
		t.Fatalf("%s: new consumer: %v", name, err)
	}
	m := &rdkMember{t: t, name: name, c: c}
	t.Cleanup(m.Close)
	if err := c.Subscribe(topic, nil); err != nil {
		t.Fatalf("%s: subscribe %s: %v", name, topic, err)
	}
	return m
}

// Close leaves the group (librdkafka commits nothing here: auto commit is
// off and every consumed record was committed synchronously).
func (m *rdkMember) Close() {
	if m.closed {
		return
	}
	m.closed = true
	if err := m.c.Close(); err != nil {
		m.t.Errorf("%s: close: %v", m.name, err)
	}
}

// Assignment returns the partitions librdkafka currently has assigned,
// sorted.
func (m *rdkMember) Assignment() []int32 {
	m.t.Helper()
	tps, err := m.c.Assignment()
	if err != nil {
		m.t.Fatalf("%s: assignment: %v", m.name, err)
	}
	out := make([]int32, 0, len(tps))
	for _, tp := range tps {
		out = append(out, tp.Partition)
	}
	slices.Sort(out)
	return out
}

// pollOnce serves one Poll of m: a record goes into led and is committed
// synchronously before the next Poll, so a member that leaves has committed
// everything it consumed. Any error librdkafka reports fails the test: on
// loopback against a healthy broker there should be none.
func (m *rdkMember) pollOnce(led *ledger) {
	m.t.Helper()
	switch ev := m.c.Poll(20).(type) {
	case nil:
	case *kafka.Message:
		tp := ev.TopicPartition
		if tp.Error != nil {
			m.t.Fatalf("%s: consume %d@%d: %v", m.name, tp.Partition, tp.Offset, tp.Error)
		}
		led.add(m.name, tp.Partition, int64(tp.Offset), string(ev.Value))
		if _, err := m.c.CommitMessage(ev); err != nil {
			m.t.Fatalf("%s: sync commit of %d@%d: %v", m.name, tp.Partition, tp.Offset, err)
		}
	case kafka.Error:
		m.t.Fatalf("%s: librdkafka error (code %v, fatal %v): %v", m.name, ev.Code(), ev.IsFatal(), ev)
	default:
		// Rebalance and statistics events are handled by the client itself:
		// no rebalance callback is installed.
	}
}

// pollUntil polls every open member in turn until cond holds.
func pollUntil(t testing.TB, what string, led *ledger, cond func() bool, ms ...*rdkMember) {
	t.Helper()
	deadline := time.Now().Add(rdkWait)
	for !cond() {
		if time.Now().After(deadline) {
			var b strings.Builder
			for _, m := range ms {
				if !m.closed {
					fmt.Fprintf(&b, " %s owns %v, consumed %d;", m.name, m.Assignment(), led.memberCount(m.name))
				}
			}
			t.Fatalf("timed out after %v waiting for %s:%s", rdkWait, what, b.String())
		}
		for _, m := range ms {
			if !m.closed {
				m.pollOnce(led)
			}
		}
	}
}

// splitEvenly reports whether a and b own two disjoint halves of the topic.
func splitEvenly(a, b *rdkMember) bool {
	pa, pb := a.Assignment(), b.Assignment()
	if len(pa) != rdkPartitions/2 || len(pb) != rdkPartitions/2 {
		return false
	}
	all := slices.Sorted(slices.Values(append(pa, pb...)))
	return slices.Equal(all, []int32{0, 1, 2, 3})
}

// ---- producers ----

// rdkProduceValues writes n recordValue records to every partition of topic
// through a librdkafka producer with the given extra settings, starting at
// offset from, and checks that each delivery report carries the offset the
// value names.
func rdkProduceValues(t testing.TB, b *broker, topic string, from int64, n int, extra kafka.ConfigMap) {
	t.Helper()
	p := newRdkProducer(t, b, "rdk-producer", extra)
	var msgs []*kafka.Message
	for part := int32(0); part < rdkPartitions; part++ {
		for i := range n {
			msgs = append(msgs, &kafka.Message{
				TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: part},
				Value:          []byte(recordValue(part, from+int64(i))),
			})
		}
	}
	for _, dr := range rdkProduce(t, p, msgs) {
		tp := dr.TopicPartition
		if want := recordValue(tp.Partition, int64(tp.Offset)); string(dr.Value) != want {
			t.Fatalf("librdkafka wrote %q at %d@%d, want %q there", dr.Value, tp.Partition, tp.Offset, want)
		}
	}
}

// newRdkProducer returns a librdkafka producer closed when the test ends.
// Its linger is long, so batches are cut by rdkProduce's Flush (which
// ignores linger.ms) and not by timing: a batch that happened to hold one
// short record would go out uncompressed, since librdkafka sends a batch
// uncompressed whenever compression does not make it smaller.
func newRdkProducer(t testing.TB, b *broker, name string, extra kafka.ConfigMap) *kafka.Producer {
	t.Helper()
	cfg, l := rdkConfig(b, name)
	withLogDump(t, l)
	cfg["linger.ms"] = 60000
	for k, v := range extra {
		cfg[k] = v
	}
	p, err := kafka.NewProducer(&cfg)
	if err != nil {
		l.stop()
		t.Fatalf("%s: new producer: %v", name, err)
	}
	t.Cleanup(p.Close)
	return p
}

// rdkProduce sends msgs in order, flushes, and returns their delivery
// reports in the order they arrived. A failed delivery or an error event
// fails the test.
func rdkProduce(t testing.TB, p *kafka.Producer, msgs []*kafka.Message) []*kafka.Message {
	t.Helper()
	// Reports go to their own channel: Flush waits for Producer.Len, which
	// counts unread reports on the Events channel too.
	reports := make(chan kafka.Event, len(msgs))
	for i, m := range msgs {
		if err := p.Produce(m, reports); err != nil {
			t.Fatalf("produce message %d: %v", i, err)
		}
	}
	if n := p.Flush(int(rdkWait / time.Millisecond)); n != 0 {
		t.Fatalf("%d of %d messages not delivered within %v", n, len(msgs), rdkWait)
	}
	for {
		select {
		case ev := <-p.Events():
			if err, ok := ev.(kafka.Error); ok {
				t.Fatalf("producer error (code %v, fatal %v): %v", err.Code(), err.IsFatal(), err)
			}
			continue
		default:
		}
		break
	}
	if err := p.GetFatalError(); err != nil {
		t.Fatalf("producer fatal error: %v", err)
	}
	out := make([]*kafka.Message, 0, len(msgs))
	for range msgs {
		switch ev := (<-reports).(type) {
		case *kafka.Message:
			if err := ev.TopicPartition.Error; err != nil {
				t.Fatalf("delivery of a message to partition %d failed: %v", ev.TopicPartition.Partition, err)
			}
			out = append(out, ev)
		default:
			t.Fatalf("unexpected delivery event %T: %v", ev, ev)
		}
	}
	return out
}

// kgoProduceValues writes n recordValue records to every partition of
// topic through kgo, starting at offset from.
func kgoProduceValues(t testing.TB, b *broker, topic string, from int64, n int) {
	t.Helper()
	cl := newKgo(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	var recs []*kgo.Record
	for part := int32(0); part < rdkPartitions; part++ {
		for i := range n {
			recs = append(recs, &kgo.Record{Topic: topic, Partition: part, Value: []byte(recordValue(part, from+int64(i)))})
		}
	}
	res := cl.ProduceSync(testCtx(t, rdkWait), recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("kgo produce: %v", err)
	}
	for _, r := range res {
		if want := recordValue(r.Record.Partition, r.Record.Offset); string(r.Record.Value) != want {
			t.Fatalf("kgo wrote %q at %d@%d, want %q there", r.Record.Value, r.Record.Partition, r.Record.Offset, want)
		}
	}
}

// kgoReadAll reads want[p] records of every partition of topic from the
// start with kgo.
func kgoReadAll(t testing.TB, b *broker, topic string, want map[int32]int) map[int32][]*kgo.Record {
	t.Helper()
	parts := map[int32]kgo.Offset{}
	for p := range want {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl := newKgo(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	ctx := testCtx(t, rdkWait)
	got := map[int32][]*kgo.Record{}
	done := func() bool {
		for p, n := range want {
			if len(got[p]) < n {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kgo read of %s timed out", topic)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("kgo fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], r) })
	}
	return got
}

// checkRdkCodec asserts that librdkafka compressed what it wrote to the
// first n offsets of every partition with codec. librdkafka sends a batch
// uncompressed when compression does not shrink it, which tiny batches may
// do, so only batches of several records are held to codec; every batch
// must be codec or none, and every partition must have a compressed one.
// A broker whose advertised versions put librdkafka off compression
// entirely fails this.
func checkRdkCodec(t testing.TB, b *broker, topic string, n int64, codec int8, setting string) {
	t.Helper()
	for p := int32(0); p < rdkPartitions; p++ {
		compressed := 0
		var shapes []string
		for _, rb := range fetchBatches(t, b, topic, p) {
			if rb.FirstOffset >= n {
				break
			}
			got := int8(rb.Attributes & 7)
			shapes = append(shapes, fmt.Sprintf("%d@%d codec %d", rb.NumRecords, rb.FirstOffset, got))
			switch {
			case got == codec:
				compressed++
			case got != 0 || rb.NumRecords >= 8:
				t.Errorf("partition %d: librdkafka (%s) wrote a batch of %d records at %d with codec %d, want %d",
					p, setting, rb.NumRecords, rb.FirstOffset, got, codec)
			}
		}
		if compressed == 0 {
			t.Errorf("partition %d: no batch written by librdkafka (%s) is compressed with codec %d: %v", p, setting, codec, shapes)
		}
	}
}

// ---- group scenario ----

// rdkGroupChecks describes the group as the broker reports it; each
// function fails the test when the group does not look as expected.
type rdkGroupChecks struct {
	// twoMembers is called once a and b split the topic evenly.
	twoMembers func(t *testing.T, group, topic string, a, b *rdkMember)
	// oneMember is called once only b is left, owning every partition.
	oneMember func(t *testing.T, group, topic string, b *rdkMember)
	// empty is called after both members closed.
	empty func(t *testing.T, group string)
}

// rdkGroupScenario runs two members configured with extra through a
// produce, share, hand over and drain cycle (see the file comment).
func rdkGroupScenario(t *testing.T, b *broker, extra kafka.ConfigMap, checks rdkGroupChecks) {
	topic := createTopic(t, b, rdkPartitions)
	group := groupName(t)
	led := newLedger()
	ma := startRdkMember(t, b, group, topic, "rdk-a", extra)
	mb := startRdkMember(t, b, group, topic, "rdk-b", extra)

	pollUntil(t, "both members to own two partitions each", led, func() bool { return splitEvenly(ma, mb) }, ma, mb)
	t.Logf("assignment: %s %v, %s %v", ma.name, ma.Assignment(), mb.name, mb.Assignment())
	checks.twoMembers(t, group, topic, ma, mb)

	// librdkafka's zstd needs Produce v7 and Fetch v10 from the broker; it
	// silently sends uncompressed batches otherwise, hence the codec check.
	rdkProduceValues(t, b, topic, 0, rdkPerPartition, kafka.ConfigMap{"compression.type": "zstd", "acks": "all"})
	kgoProduceValues(t, b, topic, rdkPerPartition, rdkPerPartition)
	checkRdkCodec(t, b, topic, rdkPerPartition, 4, "compression.type=zstd")
	want := map[int32]int64{}
	for p := int32(0); p < rdkPartitions; p++ {
		want[p] = 2 * rdkPerPartition
	}
	pollUntil(t, "all 200 records to be consumed", led, func() bool { return led.covered(want) }, ma, mb)
	for _, m := range []*rdkMember{ma, mb} {
		if n := led.memberCount(m.name); n != 2*rdkPerPartition*len(m.Assignment()) {
			t.Errorf("%s consumed %d records from partitions %v, want %d", m.name, n, m.Assignment(), 2*rdkPerPartition*len(m.Assignment()))
		}
	}
	if got := committed(t, b, group, topic); !mapsEqual(got, want) {
		t.Fatalf("committed offsets %v after synchronous commits, want %v", got, want)
	}

	ma.Close()
	pollUntil(t, "rdk-b to own every partition", led, func() bool {
		return slices.Equal(mb.Assignment(), []int32{0, 1, 2, 3})
	}, mb)
	checks.oneMember(t, group, topic, mb)

	// rdk-b must resume rdk-a's partitions at rdk-a's commits: anything
	// consumed again would be a duplicate in the ledger, anything missed a
	// hole.
	kgoProduceValues(t, b, topic, 2*rdkPerPartition, rdkAfterHandover)
	for p := range want {
		want[p] += rdkAfterHandover
	}
	pollUntil(t, "the records written after the handover", led, func() bool { return led.covered(want) }, mb)
	// A few more polls so that a record delivered twice would show up.
	for range 10 {
		mb.pollOnce(led)
	}
	led.check(t, want, nil)
	if got := committed(t, b, group, topic); !mapsEqual(got, want) {
		t.Errorf("committed offsets %v at the end, want %v", got, want)
	}
	mb.Close()
	checks.empty(t, group)
}

func mapsEqual(a, b map[int32]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// ---- KIP-848 ----

// TestLibrdkafkaConsumerProtocol: librdkafka's KIP-848 consumer with each
// server-side assignor.
func TestLibrdkafkaConsumerProtocol(t *testing.T) {
	b := startGroupBroker(t)
	for _, assignor := range []string{"uniform", "range"} {
		t.Run(assignor, func(t *testing.T) {
			rdkGroupScenario(t, b, kafka.ConfigMap{
				"group.protocol":        "consumer",
				"group.remote.assignor": assignor,
			}, rdkGroupChecks{
				twoMembers: func(t *testing.T, group, topic string, ma, mb *rdkMember) {
					checkGroupType(t, b, group, "consumer")
					describeConsumerGroup(t, b, group, topic, assignor, ma, mb)
				},
				oneMember: func(t *testing.T, group, topic string, mb *rdkMember) {
					describeConsumerGroup(t, b, group, topic, assignor, mb)
				},
				empty: func(t *testing.T, group string) {
					g := waitConsumerGroup(t, b, group, "Empty", func(g kadm.DescribedConsumerGroup) bool { return len(g.Members) == 0 })
					t.Logf("after both members left: %s epoch %d", g.State, g.Epoch)
				},
			})
		})
	}
}

// waitConsumerGroup polls ConsumerGroupDescribe until the group is in state
// and ok holds: the broker reports Stable only once every member has
// acknowledged its target assignment in a heartbeat, shortly after the
// client applied it.
func waitConsumerGroup(t *testing.T, b *broker, group, state string, ok func(kadm.DescribedConsumerGroup) bool) kadm.DescribedConsumerGroup {
	t.Helper()
	adm := kadm.NewClient(newKgo(t, b))
	deadline := time.Now().Add(rdkWait)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		described, err := adm.DescribeConsumerGroups(ctx, group)
		cancel()
		if err != nil {
			t.Fatalf("ConsumerGroupDescribe %s: %v", group, err)
		}
		g := described[group]
		if g.Err != nil {
			t.Fatalf("ConsumerGroupDescribe %s: group error %v", group, g.Err)
		}
		if g.State == state && ok(g) {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("ConsumerGroupDescribe %s: state %q with %d members after %v, want %s: %+v", group, g.State, len(g.Members), rdkWait, state, g)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// describeConsumerGroup checks that ConsumerGroupDescribe shows exactly ms,
// each with the partitions librdkafka says it owns, under assignor.
func describeConsumerGroup(t *testing.T, b *broker, group, topic, assignor string, ms ...*rdkMember) {
	t.Helper()
	g := waitConsumerGroup(t, b, group, "Stable", func(g kadm.DescribedConsumerGroup) bool {
		if len(g.Members) != len(ms) {
			return false
		}
		for _, mm := range g.Members {
			if !setEqual(mm.Assignment, mm.TargetAssignment) {
				return false
			}
		}
		return true
	})
	if g.AssignorName != assignor {
		t.Errorf("assignor %q, want %q", g.AssignorName, assignor)
	}
	if g.Epoch < 1 || g.AssignmentEpoch != g.Epoch {
		t.Errorf("group epoch %d, assignment epoch %d: want equal and positive in a Stable group", g.Epoch, g.AssignmentEpoch)
	}
	byClient := map[string]kadm.ConsumerGroupMember{}
	for _, mm := range g.Members {
		byClient[mm.ClientID] = mm
	}
	for _, m := range ms {
		mm, ok := byClient[m.name]
		if !ok {
			t.Errorf("member with client ID %s missing from %+v", m.name, g.Members)
			continue
		}
		var got []int32
		for p := range mm.Assignment[topic] {
			got = append(got, p)
		}
		slices.Sort(got)
		if want := m.Assignment(); !slices.Equal(got, want) || len(mm.Assignment) != 1 {
			t.Errorf("%s: broker says it owns %v, librdkafka says %s %v", m.name, mm.Assignment, topic, want)
		}
		if !slices.Equal(mm.SubscribedTopics, []string{topic}) {
			t.Errorf("%s: subscribed topics %v, want [%s]", m.name, mm.SubscribedTopics, topic)
		}
		if mm.MemberEpoch != g.Epoch || mm.MemberID == "" {
			t.Errorf("%s: member ID %q epoch %d, want a member ID and the group epoch %d", m.name, mm.MemberID, mm.MemberEpoch, g.Epoch)
		}
	}
}

func setEqual(a, b kadm.TopicsSet) bool {
	n := 0
	for tp, ps := range a {
		for p := range ps {
			if !b.Lookup(tp, p) {
				return false
			}
			n++
		}
	}
	m := 0
	b.Each(func(string, int32) { m++ })
	return n == m
}

// ---- classic ----

// TestLibrdkafkaClassicProtocol: librdkafka 2.11's classic group path with
// the incremental cooperative-sticky assignor.
func TestLibrdkafkaClassicProtocol(t *testing.T) {
	b := startGroupBroker(t)
	rdkGroupScenario(t, b, kafka.ConfigMap{
		"group.protocol":                "classic",
		"partition.assignment.strategy": "cooperative-sticky",
		"session.timeout.ms":            int(groupSession / time.Millisecond),
		"heartbeat.interval.ms":         int(groupHeartbeat / time.Millisecond),
	}, rdkGroupChecks{
		twoMembers: func(t *testing.T, group, topic string, ma, mb *rdkMember) {
			checkGroupType(t, b, group, "classic")
			describeClassicGroup(t, b, group, topic, ma, mb)
		},
		oneMember: func(t *testing.T, group, topic string, mb *rdkMember) {
			describeClassicGroup(t, b, group, topic, mb)
		},
		empty: func(t *testing.T, group string) {
			d := describeGroup(t, b, group)
			if d.State != "Empty" || len(d.Members) != 0 {
				t.Errorf("after both members left: state %q with %d members, want Empty", d.State, len(d.Members))
			}
		},
	})
}

func describeGroup(t *testing.T, b *broker, group string) kadm.DescribedGroup {
	t.Helper()
	adm := kadm.NewClient(newKgo(t, b))
	described, err := adm.DescribeGroups(testCtx(t, 10*time.Second), group)
	if err != nil {
		t.Fatalf("DescribeGroups %s: %v", group, err)
	}
	d := described[group]
	if d.Err != nil {
		t.Fatalf("DescribeGroups %s: %v", group, d.Err)
	}
	return d
}

// describeClassicGroup checks that DescribeGroups shows a Stable
// cooperative-sticky group of exactly ms, each assigned what librdkafka
// says it owns.
func describeClassicGroup(t *testing.T, b *broker, group, topic string, ms ...*rdkMember) {
	t.Helper()
	d := describeGroup(t, b, group)
	if d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != "cooperative-sticky" || len(d.Members) != len(ms) {
		t.Fatalf("DescribeGroups: state %q, protocol %q/%q, %d members; want Stable consumer/cooperative-sticky with %d",
			d.State, d.ProtocolType, d.Protocol, len(d.Members), len(ms))
	}
	byClient := map[string]kadm.DescribedGroupMember{}
	for _, mm := range d.Members {
		byClient[mm.ClientID] = mm
	}
	for _, m := range ms {
		mm, ok := byClient[m.name]
		if !ok {
			t.Errorf("member with client ID %s missing", m.name)
			continue
		}
		ca, ok := mm.Assigned.AsConsumer()
		if !ok {
			t.Errorf("%s: assignment is not a consumer assignment", m.name)
			continue
		}
		var got []int32
		for _, at := range ca.Topics {
			if at.Topic != topic {
				t.Errorf("%s: assigned topic %q, want %q", m.name, at.Topic, topic)
			}
			got = append(got, at.Partitions...)
		}
		slices.Sort(got)
		if want := m.Assignment(); !slices.Equal(got, want) {
			t.Errorf("%s: broker's copy of the leader's assignment %v, librdkafka owns %v", m.name, got, want)
		}
	}
}

// ---- idempotent producer ----

// TestLibrdkafkaIdempotentProducer: librdkafka's idempotent producer (it
// needs InitProducerId, acks=all and per-partition sequences) writes lz4
// batches; librdkafka and kgo read keys, values, headers and timestamps
// back exactly.
func TestLibrdkafkaIdempotentProducer(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	topic := createTopic(t, b, rdkPartitions)
	p := newRdkProducer(t, b, "rdk-idempotent", kafka.ConfigMap{
		"enable.idempotence": true,
		"acks":               "all",
		"compression.type":   "lz4",
	})

	// Three rounds, each flushed, so every partition gets several batches
	// whose sequences must continue one another.
	const rounds, perRound = 3, 40
	base := time.Now().Truncate(time.Millisecond).Add(-time.Hour)
	var sent []*kafka.Message
	for round := range rounds {
		var msgs []*kafka.Message
		for j := range perRound {
			i := round*perRound + j
			m := &kafka.Message{
				TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: int32(i % rdkPartitions)},
				Key:            fmt.Appendf(nil, "key-%03d", i),
				Value:          fmt.Appendf(nil, "value %d %s", i, strings.Repeat("lz4 compresses this well; ", 8)),
				Timestamp:      base.Add(time.Duration(i) * time.Millisecond),
				Headers: []kafka.Header{
					{Key: "idx", Value: fmt.Appendf(nil, "%d", i)},
					{Key: "dup", Value: []byte("first")},
					{Key: "dup", Value: []byte("second")},
					{Key: "empty", Value: []byte{}},
					{Key: "null", Value: nil},
					{Key: "bin", Value: []byte{0, 0xff, '\n', 0}},
				},
			}
			switch i % 10 {
			case 3:
				m.Key = nil
			case 7:
				m.Value = nil // a tombstone
			case 9:
				m.Headers = nil
			}
			msgs = append(msgs, m)
		}
		for _, dr := range rdkProduce(t, p, msgs) {
			if dr.TopicPartition.Offset < 0 {
				t.Fatalf("delivery report without an offset: %v", dr.TopicPartition)
			}
		}
		sent = append(sent, msgs...)
	}

	// What each partition must hold, in order: librdkafka keeps order per
	// partition (idempotence guarantees it even across retries).
	want := map[int32][]*kafka.Message{}
	for _, m := range sent {
		want[m.TopicPartition.Partition] = append(want[m.TopicPartition.Partition], m)
	}
	counts := map[int32]int{}
	for p, ms := range want {
		counts[p] = len(ms)
	}

	t.Run("librdkafka", func(t *testing.T) {
		got := rdkReadAssigned(t, b, topic, counts)
		for part, ms := range want {
			for i, w := range ms {
				g := got[part][i]
				if int64(g.TopicPartition.Offset) != int64(i) {
					t.Fatalf("partition %d: record %d has offset %d", part, i, g.TopicPartition.Offset)
				}
				compareRdkMessage(t, fmt.Sprintf("%d@%d", part, i), w, g)
			}
		}
	})

	t.Run("kgo", func(t *testing.T) {
		got := kgoReadAll(t, b, topic, counts)
		var pid int64 = -1
		for part, ms := range want {
			for i, w := range ms {
				r := got[part][i]
				at := fmt.Sprintf("%d@%d", part, r.Offset)
				if r.Offset != int64(i) || !nullableEqual(r.Key, w.Key) || !nullableEqual(r.Value, w.Value) || !r.Timestamp.Equal(w.Timestamp) {
					t.Fatalf("%s: kgo read key %q value %.30q ts %v; librdkafka wrote key %q value %.30q ts %v",
						at, r.Key, r.Value, r.Timestamp, w.Key, w.Value, w.Timestamp)
				}
				if len(r.Headers) != len(w.Headers) {
					t.Fatalf("%s: %d headers, want %d", at, len(r.Headers), len(w.Headers))
				}
				for j, h := range r.Headers {
					if h.Key != w.Headers[j].Key || !nullableEqual(h.Value, w.Headers[j].Value) {
						t.Fatalf("%s: header %d is %q=%q (nil %v), want %v", at, j, h.Key, h.Value, h.Value == nil, w.Headers[j])
					}
				}
				if c := r.Attrs.CompressionType(); c != 3 {
					t.Fatalf("%s: batch codec %d, want lz4 (3)", at, c)
				}
				if r.ProducerID < 0 || (pid >= 0 && r.ProducerID != pid) || r.ProducerEpoch < 0 {
					t.Fatalf("%s: producer ID %d epoch %d; an idempotent producer has one ID (%d) and epoch ≥ 0", at, r.ProducerID, r.ProducerEpoch, pid)
				}
				pid = r.ProducerID
			}
		}
	})

	t.Run("sequences", func(t *testing.T) {
		for part := int32(0); part < rdkPartitions; part++ {
			batches := fetchBatches(t, b, topic, part)
			next := int32(0)
			for _, rb := range batches {
				if rb.FirstSequence != next || rb.ProducerID < 0 || rb.ProducerEpoch < 0 {
					t.Errorf("partition %d batch at %d: producer %d epoch %d first sequence %d, want a producer ID, an epoch and sequence %d",
						part, rb.FirstOffset, rb.ProducerID, rb.ProducerEpoch, rb.FirstSequence, next)
				}
				next = rb.FirstSequence + rb.NumRecords
			}
			if len(batches) < rounds || int(next) != counts[part] {
				t.Errorf("partition %d: %d batches ending at sequence %d; want at least %d batches and %d records", part, len(batches), next, rounds, counts[part])
			}
		}
	})
}

// rdkReadAssigned reads want[p] records of every partition of topic from
// the start with a librdkafka consumer that assigns the partitions itself
// (no group membership; librdkafka still insists on a group.id).
func rdkReadAssigned(t *testing.T, b *broker, topic string, want map[int32]int) map[int32][]*kafka.Message {
	t.Helper()
	cfg, l := rdkConfig(b, "rdk-reader")
	withLogDump(t, l)
	cfg["group.id"] = groupName(t)
	cfg["enable.auto.commit"] = false
	c, err := kafka.NewConsumer(&cfg)
	if err != nil {
		l.stop()
		t.Fatalf("new consumer: %v", err)
	}
	defer c.Close()
	var tps []kafka.TopicPartition
	for p := range want {
		tps = append(tps, kafka.TopicPartition{Topic: &topic, Partition: p, Offset: kafka.OffsetBeginning})
	}
	if err := c.Assign(tps); err != nil {
		t.Fatalf("assign: %v", err)
	}
	got := map[int32][]*kafka.Message{}
	deadline := time.Now().Add(rdkWait)
	for n, total := 0, sumCounts(want); n < total; {
		if time.Now().After(deadline) {
			t.Fatalf("librdkafka read %d of %d records within %v", n, total, rdkWait)
		}
		switch ev := c.Poll(50).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				t.Fatalf("consume: %v", ev.TopicPartition.Error)
			}
			got[ev.TopicPartition.Partition] = append(got[ev.TopicPartition.Partition], ev)
			n++
		case kafka.Error:
			t.Fatalf("librdkafka consumer error (code %v): %v", ev.Code(), ev)
		}
	}
	return got
}

func sumCounts(m map[int32]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// compareRdkMessage fails the test unless librdkafka consumed exactly what
// it produced: key and value including null, timestamp as CreateTime, and
// the headers in order, duplicates, empty and null values included.
func compareRdkMessage(t *testing.T, at string, w, g *kafka.Message) {
	t.Helper()
	if !nullableEqual(g.Key, w.Key) {
		t.Fatalf("%s: key %q (nil %v), want %q (nil %v)", at, g.Key, g.Key == nil, w.Key, w.Key == nil)
	}
	if !nullableEqual(g.Value, w.Value) {
		t.Fatalf("%s: value %.40q (nil %v), want %.40q (nil %v)", at, g.Value, g.Value == nil, w.Value, w.Value == nil)
	}
	if !g.Timestamp.Equal(w.Timestamp) || g.TimestampType != kafka.TimestampCreateTime {
		t.Fatalf("%s: timestamp %v (%v), want %v (CreateTime)", at, g.Timestamp, g.TimestampType, w.Timestamp)
	}
	if len(g.Headers) != len(w.Headers) {
		t.Fatalf("%s: headers %v, want %v", at, g.Headers, w.Headers)
	}
	for i := range g.Headers {
		if g.Headers[i].Key != w.Headers[i].Key || !nullableEqual(g.Headers[i].Value, w.Headers[i].Value) {
			t.Fatalf("%s: header %d is %v, want %v (all: %v)", at, i, g.Headers[i], w.Headers[i], g.Headers)
		}
	}
}

// nullableEqual compares byte strings where Kafka distinguishes null from
// empty (keys, values, header values).
func nullableEqual(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}
