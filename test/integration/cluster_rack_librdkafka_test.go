//go:build cgo

package integration

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterRackLibrdkafka: librdkafka with client.rack=b reads every
// record of an RF=3 topic in order, and its statistics show each partition
// fetched through broker 2 (librdkafka delegates a partition to its
// preferred replica's broker handle), leader or not.
func TestClusterRackLibrdkafka(t *testing.T) {
	bs := startRackCluster(t, []string{"a", "b", "c"}, "STREAMBUS_REPLICA_SELECTOR_CLASS="+rackSelector)
	ctx := testCtx(t, 90*time.Second)
	const topic, partitions, n = "racks-rdk", 3, 90
	cl, err := kgo.NewClient(kgo.SeedBrokers(bs[0].Addr, bs[1].Addr, bs[2].Addr), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 3, nil, topic); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		r := &kgo.Record{Partition: int32(i % partitions), Value: []byte(fmt.Sprint(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}

	cfg, l := rdkConfig(bs[0], "rdk-rack-b")
	withLogDump(t, l)
	cfg["group.id"] = groupName(t)
	cfg["enable.auto.commit"] = false
	cfg["client.rack"] = "b"
	cfg["statistics.interval.ms"] = 100
	c, err := kafka.NewConsumer(&cfg)
	if err != nil {
		l.stop()
		t.Fatalf("new consumer: %v", err)
	}
	defer c.Close()
	tp := topic
	var tps []kafka.TopicPartition
	for p := int32(0); p < partitions; p++ {
		tps = append(tps, kafka.TopicPartition{Topic: &tp, Partition: p, Offset: kafka.OffsetBeginning})
	}
	if err := c.Assign(tps); err != nil {
		t.Fatalf("assign: %v", err)
	}
	next := map[int32]int{} // next value index per partition
	got := 0
	fetchedVia := map[int32]int32{} // partition -> node whose handle fetches it, from the latest stats
	deadline := time.Now().Add(rdkWait)
	for got < n || len(fetchedVia) < partitions {
		if time.Now().After(deadline) {
			t.Fatalf("librdkafka read %d of %d records; partitions fetched via %v", got, n, fetchedVia)
		}
		switch ev := c.Poll(50).(type) {
		case *kafka.Message:
			if ev.TopicPartition.Error != nil {
				t.Fatalf("consume: %v", ev.TopicPartition.Error)
			}
			p := ev.TopicPartition.Partition
			if want := fmt.Sprint(next[p]*partitions + int(p)); string(ev.Value) != want {
				t.Fatalf("partition %d: value %q, want %q", p, ev.Value, want)
			}
			next[p]++
			got++
		case *kafka.Stats:
			if got == n {
				fetchedVia = rdkFetchHandles(t, ev.String(), topic)
			}
		case kafka.Error:
			t.Logf("librdkafka error (code %v): %v", ev.Code(), ev)
		}
	}
	for p := int32(0); p < partitions; p++ {
		if fetchedVia[p] != 2 {
			t.Errorf("partition %d is fetched through broker %d, want 2 (rack b): %v", p, fetchedVia[p], fetchedVia)
		}
	}
}

// rdkFetchHandles reads librdkafka's statistics JSON: which broker's handle
// holds each partition of topic.
func rdkFetchHandles(t *testing.T, stats, topic string) map[int32]int32 {
	var s struct {
		Brokers map[string]struct {
			NodeID  int32 `json:"nodeid"`
			Toppars map[string]struct {
				Topic     string `json:"topic"`
				Partition int32  `json:"partition"`
			} `json:"toppars"`
		} `json:"brokers"`
	}
	if err := json.Unmarshal([]byte(stats), &s); err != nil {
		t.Fatalf("librdkafka statistics: %v", err)
	}
	out := map[int32]int32{}
	for _, b := range s.Brokers {
		for _, tp := range b.Toppars {
			if tp.Topic == topic {
				out[tp.Partition] = b.NodeID
			}
		}
	}
	return out
}
