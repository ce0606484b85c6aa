package broker

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/topicconfig"
)

// testBroker runs a broker in-process on a loopback port.
type testBroker struct {
	addr string
	b    *Broker
	logs *storage.Manager
	meta *metadata.Local
}

func startBroker(t *testing.T, dir string, mutate func(*Config)) *testBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	meta, err := metadata.OpenLocal(metadata.LocalConfig{
		Dir: filepath.Join(dir, "meta"), NodeID: 1, Host: "127.0.0.1", Port: int32(port),
		ValidateConfigs: topicconfig.ValidateAll,
	})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := storage.OpenManager(storage.ManagerOptions{Dir: filepath.Join(dir, "logs"), FlushOnAck: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeID: 1, AutoCreateTopics: true, FlushOnAck: true, DataDir: dir}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := New(cfg, meta, logs)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve(ln) }()
	tb := &testBroker{addr: ln.Addr().String(), b: b, logs: logs, meta: meta}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		logs.Close()
		meta.Close()
	})
	return tb
}

func TestProduceConsumeKgo(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 3, 1, nil, "orders"); err != nil {
		t.Fatal(err)
	}
	const n = 300
	for i := 0; i < n; i++ {
		r := &kgo.Record{Topic: "orders", Key: []byte(fmt.Sprint("k", i%7)), Value: []byte(fmt.Sprint("v", i)),
			Headers: []kgo.RecordHeader{{Key: "h", Value: []byte(fmt.Sprint(i))}}}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	cons, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.ConsumeTopics("orders"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	last := map[int32]int64{}
	got := 0
	for got < n {
		fs := cons.PollFetches(ctx)
		if err := fs.Err0(); err != nil {
			t.Fatalf("poll: %v", err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if prev, ok := last[r.Partition]; ok && r.Offset != prev+1 {
				t.Errorf("partition %d: offset %d after %d", r.Partition, r.Offset, prev)
			}
			last[r.Partition] = r.Offset
			if string(r.Headers[0].Value) != string(r.Value[1:]) {
				t.Errorf("record %s has header %s", r.Value, r.Headers[0].Value)
			}
			got++
		})
	}
	if got != n {
		t.Fatalf("consumed %d of %d", got, n)
	}
}

func TestProduceRejectsBadRecords(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact")}, "compacted"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "plain"); err != nil {
		t.Fatal(err)
	}
	h := recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Magic: 2}
	build := func(recs ...recordbatch.Record) []byte {
		b, err := recordbatch.Build(h, recs, recordbatch.CodecNone)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name  string
		topic string
		batch []byte
		want  int16
	}{
		{"offset delta gap", "plain", build(recordbatch.Record{OffsetDelta: 0, Value: []byte("a")}, recordbatch.Record{OffsetDelta: 2, Value: []byte("b")}), kerr.InvalidRecord.Code},
		{"null key on compacted topic", "compacted", build(recordbatch.Record{Value: []byte("a")}), kerr.InvalidRecord.Code},
		{"keyed record on compacted topic", "compacted", build(recordbatch.Record{Key: []byte("k"), Value: []byte("a")}), 0},
		{"empty batch", "plain", build(), kerr.InvalidRecord.Code},
	}
	for _, c := range cases {
		req := kmsg.NewPtrProduceRequest()
		req.Acks = -1
		req.TimeoutMillis = 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = c.topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = c.batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := resp.Topics[0].Partitions[0].ErrorCode; got != c.want {
			t.Errorf("%s: error code %d, want %d", c.name, got, c.want)
		}
	}
}
