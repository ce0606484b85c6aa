package integration

// Read-your-writes for metadata on a 3-broker cluster: a change answered by
// one broker is served by every broker at once, so clients need no retry.
// "No retry" is checked on the brokers' side: every Produce and Metadata
// answer any broker gave during a round is counted by error code
// (streambus_requests_total), and a round passes only if none carried an
// error (an UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE or
// NOT_LEADER_OR_FOLLOWER answer is what makes a client retry).

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const rywRounds = 20

// errorAnswers sums, over brokers, the Produce and Metadata answers with a
// non-zero error code, by "api/code".
func errorAnswers(t *testing.T, bs []*broker) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, b := range bs {
		resp, err := http.Get("http://" + b.HTTPAddr + "/metrics")
		if err != nil {
			t.Fatalf("metrics of %s: %v", b.Addr, err)
		}
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "streambus_requests_total{") {
				continue
			}
			labels, value, _ := strings.Cut(strings.TrimPrefix(line, "streambus_requests_total{"), "} ")
			var api, code string
			for _, kv := range strings.Split(labels, ",") {
				k, v, _ := strings.Cut(kv, "=")
				v = strings.Trim(v, `"`)
				switch k {
				case "api":
					api = v
				case "error_code":
					code = v
				}
			}
			if code == "0" || (api != "Produce" && api != "Metadata") {
				continue
			}
			n, _ := strconv.ParseFloat(value, 64)
			out[api+"/"+code] += n
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return out
}

// newErrorAnswers is what errorAnswers counts now beyond before.
func newErrorAnswers(t *testing.T, bs []*broker, before map[string]float64) map[string]float64 {
	t.Helper()
	diff := map[string]float64{}
	for k, v := range errorAnswers(t, bs) {
		if d := v - before[k]; d > 0 {
			diff[k] = d
		}
	}
	return diff
}

// clientOn is a kgo client that sends every request to broker b only.
func clientOn(t *testing.T, b *broker) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr), kgo.RequestRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// seedRequest sends req to the broker cl was seeded with.
func seedRequest(t *testing.T, cl *kgo.Client, req kmsg.Request) kmsg.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cl.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", kmsg.NameForKey(req.Key()), err)
	}
	return resp
}

func createTopicVia(t *testing.T, cl *kgo.Client, name string, partitions int32, rf int16) {
	t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	req.TimeoutMillis = 15000
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, rf
	req.Topics = append(req.Topics, rt)
	resp := seedRequest(t, cl, req).(*kmsg.CreateTopicsResponse)
	if err := kerr.ErrorForCode(resp.Topics[0].ErrorCode); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
}

// metadataOf asks cl's seed broker about topic, without auto-creation.
func metadataOf(t *testing.T, cl *kgo.Client, topic string) kmsg.MetadataResponseTopic {
	t.Helper()
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(topic)
	req.Topics = append(req.Topics, rt)
	return seedRequest(t, cl, req).(*kmsg.MetadataResponse).Topics[0]
}

// rywProducer writes values to topic through seeds, acks=all, and fails
// the test unless every record is acknowledged.
type rywProducer func(t *testing.T, seeds []string, topic string, values []string)

func rywKgo(t *testing.T, seeds []string, topic string, values []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for _, v := range values {
		recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(v)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("kgo produce to %s: %v", topic, err)
	}
}

func rywSarama(t *testing.T, seeds []string, topic string, values []string) {
	cfg := sarama.NewConfig() // default version and retries
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(seeds, cfg)
	if err != nil {
		t.Fatalf("sarama producer: %v", err)
	}
	defer p.Close()
	var msgs []*sarama.ProducerMessage
	for _, v := range values {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(v)})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatalf("sarama produce to %s: %v", topic, err)
	}
}

func rywKafkaGo(t *testing.T, seeds []string, topic string, values []string) {
	// A Transport of its own, as a new application has: the default one
	// is shared and caches metadata across writers for MetadataTTL.
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafkago.Writer{Addr: kafkago.TCP(seeds...), Topic: topic, RequiredAcks: kafkago.RequireAll,
		BatchTimeout: 5 * time.Millisecond, Transport: tr}
	defer w.Close()
	var msgs []kafkago.Message
	for _, v := range values {
		msgs = append(msgs, kafkago.Message{Value: []byte(v)})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("kafka-go produce to %s: %v", topic, err)
	}
}

func rywKcat(t *testing.T, seeds []string, topic string, values []string) {
	runKcat(t, []string{"-P", "-b", strings.Join(seeds, ","), "-t", topic, "-X", "acks=all"},
		[]byte(strings.Join(values, "\n")+"\n"))
}

// readValues consumes every record of topics through b until each topic
// holds want[topic] records, and returns the values per topic.
func readValues(t *testing.T, b *broker, want map[string]int) map[string][]string {
	t.Helper()
	var topics []string
	total := 0
	for tp, n := range want {
		topics = append(topics, tp)
		total += n
	}
	cl := newKgo(t, b, kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	got := map[string][]string{}
	n := 0
	for n < total {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("read %d of %d records: %v", n, total, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			got[r.Topic] = append(got[r.Topic], string(r.Value))
			n++
		})
	}
	return got
}

// TestClusterCreateThenProduce: with each client, a topic created with
// RF=3 through broker 1 takes records at once through a bootstrap list
// that starts with broker 3; no broker answers any Produce or Metadata
// with an error, and every record reads back intact.
func TestClusterCreateThenProduce(t *testing.T) {
	bs := startCluster(t, 3)
	admin := clientOn(t, bs[0])
	seeds := []string{bs[2].Addr, bs[0].Addr, bs[1].Addr}
	for _, c := range []struct {
		name    string
		produce rywProducer
		needs   string
	}{
		{"kgo", rywKgo, ""}, {"sarama", rywSarama, ""}, {"kafka-go", rywKafkaGo, ""}, {"kcat", rywKcat, "kcat"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.needs != "" {
				requireProgram(t, c.needs)
			}
			want := map[string]int{}
			sent := map[string][]string{}
			for round := range rywRounds {
				topic := fmt.Sprintf("ryw-%s-%d-%d", c.name, round, time.Now().UnixNano()%1e6)
				before := errorAnswers(t, bs)
				createTopicVia(t, admin, topic, 3, 3)
				var values []string
				for i := range 12 {
					values = append(values, fmt.Sprintf("%s/%d/%d", topic, round, i))
				}
				c.produce(t, seeds, topic, values)
				if errs := newErrorAnswers(t, bs, before); len(errs) > 0 {
					t.Fatalf("round %d: brokers answered with errors (api/code: count) %v", round, errs)
				}
				want[topic], sent[topic] = len(values), values
			}
			got := readValues(t, bs[1], want)
			for topic, values := range sent {
				g := strings.Join(sortedCopy(got[topic]), ",")
				if w := strings.Join(sortedCopy(values), ","); g != w {
					t.Fatalf("%s read back %q, want %q", topic, g, w)
				}
			}
		})
	}
}

func sortedCopy(s []string) []string {
	c := append([]string(nil), s...)
	for i := 1; i < len(c); i++ {
		for j := i; j > 0 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}

// TestClusterAdminThenUse: CreatePartitions, DeleteTopics and AlterConfigs
// answered by broker 1 are served by every broker at once.
func TestClusterAdminThenUse(t *testing.T) {
	bs := startCluster(t, 3)
	on := make([]*kgo.Client, len(bs))
	for i, b := range bs {
		on[i] = clientOn(t, b)
	}
	ctx := testCtx(t, 2*time.Minute)
	for round := range rywRounds {
		topic := fmt.Sprintf("adm-%d", round)
		createTopicVia(t, on[0], topic, 2, 3)
		// A producer per round: one that knew a deleted topic would ask
		// for it again (UNKNOWN_TOPIC_OR_PARTITION, rightly).
		producer, err := kgo.NewClient(kgo.SeedBrokers(bs[2].Addr), kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.RequiredAcks(kgo.AllISRAcks()))
		if err != nil {
			t.Fatal(err)
		}

		// CreatePartitions 2 -> 4, then produce to the new partitions.
		before := errorAnswers(t, bs)
		cp := kmsg.NewPtrCreatePartitionsRequest()
		cp.TimeoutMillis = 15000
		ct := kmsg.NewCreatePartitionsRequestTopic()
		ct.Topic, ct.Count = topic, 4
		cp.Topics = append(cp.Topics, ct)
		if err := kerr.ErrorForCode(seedRequest(t, on[0], cp).(*kmsg.CreatePartitionsResponse).Topics[0].ErrorCode); err != nil {
			t.Fatalf("create partitions: %v", err)
		}
		for i, cl := range on {
			if n := len(metadataOf(t, cl, topic).Partitions); n != 4 {
				t.Fatalf("round %d: broker %d shows %d partitions right after CreatePartitions", round, i+1, n)
			}
		}
		for _, p := range []int32{2, 3} {
			if err := producer.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: p, Value: []byte("new")}).FirstErr(); err != nil {
				t.Fatalf("round %d: produce to new partition %d: %v", round, p, err)
			}
		}
		producer.Close()
		if errs := newErrorAnswers(t, bs, before); len(errs) > 0 {
			t.Fatalf("round %d: brokers answered with errors %v", round, errs)
		}

		// AlterConfigs, then DescribeConfigs on every broker.
		retention := strconv.Itoa(3600000 + round)
		ac := kmsg.NewPtrIncrementalAlterConfigsRequest()
		res := kmsg.NewIncrementalAlterConfigsRequestResource()
		res.ResourceType, res.ResourceName = kmsg.ConfigResourceTypeTopic, topic
		cfg := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
		cfg.Name, cfg.Value, cfg.Op = "retention.ms", kmsg.StringPtr(retention), kmsg.IncrementalAlterConfigOpSet
		res.Configs = append(res.Configs, cfg)
		ac.Resources = append(ac.Resources, res)
		if err := kerr.ErrorForCode(seedRequest(t, on[0], ac).(*kmsg.IncrementalAlterConfigsResponse).Resources[0].ErrorCode); err != nil {
			t.Fatalf("alter configs: %v", err)
		}
		for i, cl := range on {
			dc := kmsg.NewPtrDescribeConfigsRequest()
			dr := kmsg.NewDescribeConfigsRequestResource()
			dr.ResourceType, dr.ResourceName, dr.ConfigNames = kmsg.ConfigResourceTypeTopic, topic, []string{"retention.ms"}
			dc.Resources = append(dc.Resources, dr)
			got := seedRequest(t, cl, dc).(*kmsg.DescribeConfigsResponse).Resources[0]
			if len(got.Configs) != 1 || got.Configs[0].Value == nil || *got.Configs[0].Value != retention {
				t.Fatalf("round %d: broker %d describes retention.ms as %+v right after the change, want %s", round, i+1, got.Configs, retention)
			}
		}

		// DeleteTopics, then Metadata on every broker.
		dt := kmsg.NewPtrDeleteTopicsRequest()
		dt.TimeoutMillis = 15000
		dtt := kmsg.NewDeleteTopicsRequestTopic()
		dtt.Topic = kmsg.StringPtr(topic)
		dt.Topics, dt.TopicNames = append(dt.Topics, dtt), []string{topic}
		if err := kerr.ErrorForCode(seedRequest(t, on[0], dt).(*kmsg.DeleteTopicsResponse).Topics[0].ErrorCode); err != nil {
			t.Fatalf("delete: %v", err)
		}
		for i, cl := range on {
			if code := metadataOf(t, cl, topic).ErrorCode; code != kerr.UnknownTopicOrPartition.Code {
				t.Fatalf("round %d: broker %d answers Metadata for the deleted topic with code %d", round, i+1, code)
			}
		}
	}
}

// TestClusterConcurrentAutoCreate: 20 kcat producers, spread over the three
// brokers, auto-create one new topic at the same time: all succeed, the
// topic is created once, and every record is in it.
func TestClusterConcurrentAutoCreate(t *testing.T) {
	requireProgram(t, "kcat")
	bs := startCluster(t, 3)
	topic := "auto-concurrent"
	const producers = 20
	var wg sync.WaitGroup
	errs := make(chan error, producers)
	for i := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "kcat", "-P", "-b", bs[i%3].Addr, "-t", topic,
				"-X", "acks=all", "-X", "broker.address.family=v4")
			cmd.Stdin = strings.NewReader(fmt.Sprintf("producer-%d\n", i))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("kcat %d via broker %d: %v\n%s", i, i%3+1, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	created := 0
	var ids [][16]byte
	for _, b := range bs {
		created += strings.Count(b.proc.output.Tail(1<<20), `"auto-created topic"`)
		ids = append(ids, metadataOf(t, clientOn(t, b), topic).TopicID)
	}
	if created != 1 || ids[0] != ids[1] || ids[1] != ids[2] {
		t.Fatalf("topic created %d times; topic IDs per broker %x", created, ids)
	}
	got := readValues(t, bs[0], map[string]int{topic: producers})[topic]
	if len(got) != producers {
		t.Fatalf("read %d records, want %d", len(got), producers)
	}
}

// TestClusterFreshAfterPause: a broker paused past its session misses a
// topic created meanwhile; resumed, it never answers Metadata as if the
// topic did not exist.
func TestClusterFreshAfterPause(t *testing.T) {
	bs := startCluster(t, 3, "STREAMBUS_BROKER_HEARTBEAT_INTERVAL_MS=200", "STREAMBUS_BROKER_SESSION_TIMEOUT_MS=1500")
	on1, on3 := clientOn(t, bs[0]), clientOn(t, bs[2])
	metadataOf(t, on3, "warm-up") // connect before the pause
	for round := range 3 {
		proc := bs[2].proc.cmd.Process
		if err := proc.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			req := kmsg.NewPtrMetadataRequest()
			resp := seedRequest(t, on1, req).(*kmsg.MetadataResponse)
			fenced := true
			for _, b := range resp.Brokers {
				if b.NodeID == 3 {
					fenced = false
				}
			}
			if fenced {
				break
			}
			if time.Now().After(deadline) {
				proc.Signal(syscall.SIGCONT)
				t.Fatal("broker 3 not fenced while paused")
			}
			time.Sleep(50 * time.Millisecond)
		}
		topic := fmt.Sprintf("while-paused-%d", round)
		createTopicVia(t, on1, topic, 1, 2)
		if err := proc.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		got := metadataOf(t, on3, topic)
		switch got.ErrorCode {
		case 0:
		case kerr.LeaderNotAvailable.Code:
			t.Logf("round %d: broker 3 answered LEADER_NOT_AVAILABLE (still catching up)", round)
		default:
			t.Fatalf("round %d: resumed broker 3 answered %v for a topic created while it was paused",
				round, kerr.ErrorForCode(got.ErrorCode))
		}
		// Let it rejoin before the next pause.
		for len(seedRequest(t, on1, kmsg.NewPtrMetadataRequest()).(*kmsg.MetadataResponse).Brokers) != 3 {
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// TestClusterFreshAfterRestart: a broker restarted while a topic was
// created knows it from its first answer.
func TestClusterFreshAfterRestart(t *testing.T) {
	bs := startCluster(t, 3, "STREAMBUS_BROKER_HEARTBEAT_INTERVAL_MS=200", "STREAMBUS_BROKER_SESSION_TIMEOUT_MS=1500")
	on1 := clientOn(t, bs[0])
	if code, _ := bs[2].Stop(syscall.SIGTERM, 30*time.Second); code != 0 {
		t.Fatalf("broker 3 exit status %d", code)
	}
	createTopicVia(t, on1, "while-down", 2, 2)
	bs[2].Restart()
	// The Kafka port is bound before the broker catches up, and a
	// connection waits in its backlog until it serves: ask as soon as it
	// accepts a connection, not once /readyz says so.
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", bs[2].Addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted broker 3 never accepted a connection: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	got := metadataOf(t, clientOn(t, bs[2]), "while-down")
	if got.ErrorCode != 0 || len(got.Partitions) != 2 {
		t.Fatalf("restarted broker 3 answered %v with %d partitions", kerr.ErrorForCode(got.ErrorCode), len(got.Partitions))
	}
}

// TestClusterDeadBrokerDoesNotHold: right after a kill -9, before the dead
// broker's session expires, a CreateTopics with a 15 s timeout is answered
// long before that timeout: a broker no longer heard from stops counting
// after a few heartbeat intervals. The topic then works on the others.
func TestClusterDeadBrokerDoesNotHold(t *testing.T) {
	bs := startCluster(t, 3, "STREAMBUS_BROKER_HEARTBEAT_INTERVAL_MS=200", "STREAMBUS_BROKER_SESSION_TIMEOUT_MS=3000")
	on1 := clientOn(t, bs[0])
	bs[2].kill()
	start := time.Now()
	createTopicVia(t, on1, "after-kill", 2, 2)
	took := time.Since(start)
	t.Logf("CreateTopics answered %v after broker 3 was killed (session 3 s, heartbeat 200 ms)", took)
	if took > 10*time.Second {
		t.Fatalf("CreateTopics waited %v for a dead broker", took)
	}
	rywKgo(t, []string{bs[0].Addr, bs[1].Addr}, "after-kill", []string{"a", "b", "c"})
}
