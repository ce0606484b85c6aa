package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The interop test has each client write keyed records with headers to its
// own multi-partition topic, then every client reads every topic back. All
// records of one partition carry the same headers, because kcat can only set
// headers per invocation.

const (
	interopPartitions = 4
	interopPerClient  = 200 // records per writing client, spread evenly
)

// tRecord is a client-independent view of a record.
type tRecord struct {
	Partition int32
	Offset    int64 // -1 when the writer does not report it
	Key       string
	Value     string
	Headers   []tHeader
}

type tHeader struct{ Key, Value string }

func (r tRecord) String() string {
	return fmt.Sprintf("p%d@%d key=%q value=%.40q headers=%v", r.Partition, r.Offset, r.Key, r.Value, r.Headers)
}

// interopClient is one Kafka client library under test.
type interopClient struct {
	name  string
	codec int8 // compression codec bits expected in the written batches
	// write produces recs (to the partitions they name) and returns them
	// with the offsets the client reported, or -1.
	write func(t *testing.T, b *broker, topic string, recs []tRecord) []tRecord
	// read consumes every partition of topic from the start until it has
	// want[p] records of partition p, and returns them in consumption order.
	read func(t *testing.T, b *broker, topic string, want map[int32]int) []tRecord
	// needs is an external program the client needs, or "".
	needs string
	// codecHint explains a wrong compression codec, if the client has a
	// known reason to fall back to none.
	codecHint string
}

func interopClients() []interopClient {
	return []interopClient{
		{name: "kgo", codec: 4, write: kgoWrite, read: kgoRead},
		{name: "sarama", codec: 2, write: saramaWrite, read: saramaRead},
		{name: "kafkago", codec: 3, write: kafkagoWrite, read: kafkagoRead},
		{name: "kcat", codec: 1, write: kcatWrite, read: kcatRead, needs: "kcat",
			codecHint: "librdkafka before 2.11.1 compresses only if the broker advertises Produce min version 0"},
	}
}

// genRecords returns n records for client, partition i%partitions, with
// compressible values so every codec really compresses.
func genRecords(client string, n int, partitions int32) []tRecord {
	recs := make([]tRecord, n)
	for i := range recs {
		p := int32(i) % partitions
		recs[i] = tRecord{
			Partition: p,
			Offset:    -1,
			Key:       fmt.Sprintf("%s-k%04d", client, i),
			Value:     fmt.Sprintf("%s record %d: %s", client, i, strings.Repeat("the quick brown fox jumps over the lazy dog; ", 6)),
			Headers:   []tHeader{{"client", client}, {"partition", strconv.Itoa(int(p))}},
		}
	}
	return recs
}

func TestClientInterop(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	clients := interopClients()
	written := map[string][]tRecord{} // writer -> acknowledged records
	topics := map[string]string{}     // writer -> topic
	for _, c := range clients {
		t.Run("write="+c.name, func(t *testing.T) {
			if c.needs != "" {
				requireProgram(t, c.needs)
			}
			topic := createNamedTopic(t, b, uniqueTopic(t, c.name), interopPartitions)
			recs := genRecords(c.name, interopPerClient, interopPartitions)
			acked := c.write(t, b, topic, recs)
			if t.Failed() {
				return
			}
			checkCodec(t, b, topic, c.codec, c.codecHint)
			written[c.name], topics[c.name] = acked, topic
		})
	}
	for _, w := range clients {
		for _, r := range clients {
			t.Run("write="+w.name+"/read="+r.name, func(t *testing.T) {
				if r.needs != "" {
					requireProgram(t, r.needs)
				}
				want, ok := written[w.name]
				if !ok {
					t.Skipf("%s did not write its records", w.name)
				}
				counts := map[int32]int{}
				for _, rec := range want {
					counts[rec.Partition]++
				}
				got := r.read(t, b, topics[w.name], counts)
				checkRecords(t, want, got)
			})
		}
	}
}

// checkRecords compares what was read with what was written: per partition
// the same records in the same order, offsets increasing and equal to the
// writer's acknowledged offsets where it reported them.
func checkRecords(t *testing.T, want, got []tRecord) {
	t.Helper()
	byPart := func(recs []tRecord) map[int32][]tRecord {
		m := map[int32][]tRecord{}
		for _, r := range recs {
			m[r.Partition] = append(m[r.Partition], r)
		}
		return m
	}
	wp, gp := byPart(want), byPart(got)
	for p, g := range gp {
		if _, ok := wp[p]; !ok {
			t.Errorf("read %d records from partition %d, where nothing was written; first: %v", len(g), p, g[0])
		}
	}
	for p, w := range wp {
		g := gp[p]
		if len(g) != len(w) {
			t.Errorf("partition %d: read %d records, want %d", p, len(g), len(w))
		}
		for i := range min(len(g), len(w)) {
			if i > 0 && g[i].Offset <= g[i-1].Offset {
				t.Errorf("partition %d: offset %d follows %d", p, g[i].Offset, g[i-1].Offset)
			}
			if w[i].Offset >= 0 && g[i].Offset != w[i].Offset {
				t.Errorf("partition %d record %d: read at offset %d, acknowledged at %d", p, i, g[i].Offset, w[i].Offset)
			}
			if g[i].Key != w[i].Key || g[i].Value != w[i].Value || !slices.Equal(g[i].Headers, w[i].Headers) {
				t.Errorf("partition %d record %d:\n got %v\nwant %v", p, i, g[i], w[i])
			}
			if t.Failed() {
				return // one mismatch usually implies hundreds
			}
		}
	}
}

// checkCodec asserts that every batch of topic is compressed with codec:
// a broker that advertises the wrong versions makes some clients silently
// stop compressing.
func checkCodec(t *testing.T, b *broker, topic string, codec int8, hint string) {
	t.Helper()
	defer func() {
		if t.Failed() && hint != "" {
			t.Log(hint)
		}
	}()
	for p := int32(0); p < interopPartitions; p++ {
		batches := fetchBatches(t, b, topic, p)
		if len(batches) == 0 {
			t.Errorf("partition %d: no batches", p)
		}
		for _, rb := range batches {
			if got := int8(rb.Attributes & 7); got != codec {
				t.Errorf("partition %d batch at %d: compression codec %d, want %d", p, rb.FirstOffset, got, codec)
			}
		}
	}
}

func requireProgram(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("STREAMBUS_REQUIRE_"+strings.ToUpper(name)) != "" {
			t.Fatalf("%s is required (STREAMBUS_REQUIRE_%s is set) but not installed", name, strings.ToUpper(name))
		}
		t.Skipf("%s is not installed (apt-get install %s); .ci/run installs it", name, name)
	}
}

// ---- franz-go ----

func kgoWrite(t *testing.T, b *broker, topic string, recs []tRecord) []tRecord {
	cl := newKgo(t, b,
		kgo.ProducerBatchCompression(kgo.ZstdCompression()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotence is on by default
	)
	krecs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		kr := &kgo.Record{Topic: topic, Partition: r.Partition, Key: []byte(r.Key), Value: []byte(r.Value)}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)})
		}
		krecs[i] = kr
	}
	ctx := testCtx(t, 30*time.Second)
	res := cl.ProduceSync(ctx, krecs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("kgo produce: %v", err)
	}
	// Results come back in completion order, not input order.
	index := make(map[*kgo.Record]int, len(krecs))
	for i, kr := range krecs {
		index[kr] = i
	}
	out := slices.Clone(recs)
	for _, pr := range res {
		i := index[pr.Record]
		if pr.Record.Partition != recs[i].Partition {
			t.Fatalf("kgo record %d acknowledged on partition %d, sent to %d", i, pr.Record.Partition, recs[i].Partition)
		}
		out[i].Offset = pr.Record.Offset
	}
	return out
}

func kgoRead(t *testing.T, b *broker, topic string, want map[int32]int) []tRecord {
	parts := map[int32]kgo.Offset{}
	for p := range want {
		parts[p] = kgo.NewOffset().AtStart()
	}
	cl := newKgo(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}))
	ctx := testCtx(t, 30*time.Second)
	got := map[int32]int{}
	var out []tRecord
	for !countsReached(got, want) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("kgo read: timed out with %v of %v records", got, want)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Errorf("kgo fetch %s/%d: %v", tp, p, err) })
		if t.Failed() {
			t.FailNow()
		}
		fs.EachRecord(func(r *kgo.Record) {
			tr := tRecord{Partition: r.Partition, Offset: r.Offset, Key: string(r.Key), Value: string(r.Value)}
			for _, h := range r.Headers {
				tr.Headers = append(tr.Headers, tHeader{h.Key, string(h.Value)})
			}
			out = append(out, tr)
			got[r.Partition]++
		})
	}
	return out
}

// countsReached reports whether got has at least want records everywhere.
func countsReached(got, want map[int32]int) bool {
	for p, n := range want {
		if got[p] < n {
			return false
		}
	}
	return true
}

// ---- IBM/sarama ----

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig() // default Version on purpose: what users get
	cfg.ClientID = "streambus-integration"
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Compression = sarama.CompressionSnappy
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.Return.Successes = true
	cfg.Producer.Flush.Messages = 50
	cfg.Producer.Flush.Frequency = 5 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Metadata.Retry.Backoff = 100 * time.Millisecond
	return cfg
}

func saramaWrite(t *testing.T, b *broker, topic string, recs []tRecord) []tRecord {
	p, err := sarama.NewSyncProducer([]string{b.Addr}, saramaConfig())
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		m := &sarama.ProducerMessage{Topic: topic, Partition: r.Partition, Key: sarama.StringEncoder(r.Key), Value: sarama.StringEncoder(r.Value)}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: []byte(h.Value)})
		}
		msgs[i] = m
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("sarama produce: %v", err)
	}
	out := slices.Clone(recs)
	for i, m := range msgs {
		if m.Partition != recs[i].Partition {
			t.Fatalf("sarama record %d acknowledged on partition %d, sent to %d", i, m.Partition, recs[i].Partition)
		}
		out[i].Offset = m.Offset
	}
	return out
}

func saramaRead(t *testing.T, b *broker, topic string, want map[int32]int) []tRecord {
	c, err := sarama.NewConsumer([]string{b.Addr}, saramaConfig())
	if err != nil {
		t.Fatalf("sarama consumer: %v", err)
	}
	defer c.Close()
	var out []tRecord
	timeout := time.After(30 * time.Second)
	for p, n := range want {
		pc, err := c.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatalf("sarama consume %s/%d: %v", topic, p, err)
		}
		for got := 0; got < n; {
			select {
			case m := <-pc.Messages():
				tr := tRecord{Partition: m.Partition, Offset: m.Offset, Key: string(m.Key), Value: string(m.Value)}
				for _, h := range m.Headers {
					tr.Headers = append(tr.Headers, tHeader{string(h.Key), string(h.Value)})
				}
				out = append(out, tr)
				got++
			case err := <-pc.Errors():
				pc.Close()
				t.Fatalf("sarama consume %s/%d: %v", topic, p, err)
			case <-timeout:
				pc.Close()
				t.Fatalf("sarama read %s/%d: timed out after %d of %d records", topic, p, got, n)
			}
		}
		if err := pc.Close(); err != nil {
			t.Fatalf("sarama close partition consumer: %v", err)
		}
	}
	return out
}

// ---- segmentio/kafka-go ----

func kafkagoWrite(t *testing.T, b *broker, topic string, recs []tRecord) []tRecord {
	partOf := map[string]int{}
	for _, r := range recs {
		partOf[r.Key] = int(r.Partition)
	}
	acked := map[string]kafkago.Message{}
	var mu sync.Mutex
	w := &kafkago.Writer{
		Addr:         kafkago.TCP(b.Addr),
		Topic:        topic,
		Compression:  kafkago.Lz4,
		RequiredAcks: kafkago.RequireAll,
		BatchSize:    50,
		BatchTimeout: 5 * time.Millisecond,
		// The Writer ignores Message.Partition; route by our key instead.
		Balancer: kafkago.BalancerFunc(func(m kafkago.Message, _ ...int) int { return partOf[string(m.Key)] }),
		Completion: func(msgs []kafkago.Message, err error) {
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range msgs {
				acked[string(m.Key)] = m
			}
		},
	}
	msgs := make([]kafkago.Message, len(recs))
	for i, r := range recs {
		m := kafkago.Message{Key: []byte(r.Key), Value: []byte(r.Value)}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, kafkago.Header{Key: h.Key, Value: []byte(h.Value)})
		}
		msgs[i] = m
	}
	ctx := testCtx(t, 30*time.Second)
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		w.Close()
		t.Fatalf("kafka-go produce: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("kafka-go writer close: %v", err)
	}
	out := slices.Clone(recs)
	mu.Lock()
	defer mu.Unlock()
	for i, r := range recs {
		m, ok := acked[r.Key]
		if !ok {
			t.Fatalf("kafka-go: no completion for %s", r.Key)
		}
		if int32(m.Partition) != r.Partition {
			t.Fatalf("kafka-go record %s acknowledged on partition %d, sent to %d", r.Key, m.Partition, r.Partition)
		}
		out[i].Offset = m.Offset
	}
	return out
}

func kafkagoRead(t *testing.T, b *broker, topic string, want map[int32]int) []tRecord {
	var out []tRecord
	ctx := testCtx(t, 30*time.Second)
	for p, n := range want {
		r := kafkago.NewReader(kafkago.ReaderConfig{
			Brokers:   []string{b.Addr},
			Topic:     topic,
			Partition: int(p),
			MinBytes:  1,
			MaxBytes:  10 << 20,
			MaxWait:   200 * time.Millisecond,
		})
		if err := r.SetOffset(kafkago.FirstOffset); err != nil {
			r.Close()
			t.Fatalf("kafka-go set offset: %v", err)
		}
		for got := 0; got < n; got++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				r.Close()
				t.Fatalf("kafka-go read %s/%d after %d of %d records: %v", topic, p, got, n, err)
			}
			tr := tRecord{Partition: int32(m.Partition), Offset: m.Offset, Key: string(m.Key), Value: string(m.Value)}
			for _, h := range m.Headers {
				tr.Headers = append(tr.Headers, tHeader{h.Key, string(h.Value)})
			}
			out = append(out, tr)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("kafka-go reader close: %v", err)
		}
	}
	return out
}

// ---- librdkafka via kcat ----

// kcatWrite runs one kcat per partition, because kcat sets the partition
// and the headers per invocation.
func kcatWrite(t *testing.T, b *broker, topic string, recs []tRecord) []tRecord {
	byPart := map[int32][]tRecord{}
	for _, r := range recs {
		byPart[r.Partition] = append(byPart[r.Partition], r)
	}
	for p, prs := range byPart {
		var stdin bytes.Buffer
		for _, r := range prs {
			if strings.ContainsAny(r.Key, ":\n") || strings.Contains(r.Value, "\n") {
				t.Fatalf("record %v cannot be written with kcat's line format", r)
			}
			fmt.Fprintf(&stdin, "%s:%s\n", r.Key, r.Value)
		}
		args := []string{"-P", "-b", b.Addr, "-t", topic, "-p", strconv.Itoa(int(p)), "-K", ":",
			"-X", "compression.codec=gzip", "-X", "acks=all", "-X", "linger.ms=5"}
		for _, h := range prs[0].Headers {
			args = append(args, "-H", h.Key+"="+h.Value)
		}
		runKcat(t, args, stdin.Bytes())
	}
	return slices.Clone(recs) // kcat reports no offsets
}

// kcatMessage is kcat's -J output for one consumed message.
type kcatMessage struct {
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
	Key       *string  `json:"key"`
	Payload   *string  `json:"payload"`
	Headers   []string `json:"headers"` // name, value, name, value, ...
}

func kcatRead(t *testing.T, b *broker, topic string, want map[int32]int) []tRecord {
	out := runKcat(t, []string{"-C", "-b", b.Addr, "-t", topic, "-o", "beginning", "-e", "-J", "-q"}, nil)
	var recs []tRecord
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m kcatMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("kcat output line %q: %v", sc.Text(), err)
		}
		tr := tRecord{Partition: m.Partition, Offset: m.Offset}
		if m.Key != nil {
			tr.Key = *m.Key
		}
		if m.Payload != nil {
			tr.Value = *m.Payload
		}
		if len(m.Headers)%2 != 0 {
			t.Fatalf("kcat headers %q: odd length", m.Headers)
		}
		for i := 0; i < len(m.Headers); i += 2 {
			tr.Headers = append(tr.Headers, tHeader{m.Headers[i], m.Headers[i+1]})
		}
		recs = append(recs, tr)
	}
	got := map[int32]int{}
	for _, r := range recs {
		got[r.Partition]++
	}
	if !countsReached(got, want) {
		t.Errorf("kcat read %v records per partition, want %v", got, want)
	}
	return recs
}

// runKcat runs kcat with a timeout and returns its stdout, failing the test
// with its stderr if it fails.
func runKcat(t *testing.T, args []string, stdin []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args = append(args, "-X", "broker.address.family=v4")
	cmd := exec.CommandContext(ctx, "kcat", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kcat %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Logf("kcat %s stderr:\n%s", strings.Join(args, " "), stderr.String())
	}
	return stdout.Bytes()
}
