package broker

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/controller"
	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/topicconfig"
)

// testBroker runs a broker in-process on a loopback port.
type testBroker struct {
	addr string
	b    *Broker
	logs *storage.Manager
	meta *controller.Store
	stop func() // shuts down and closes everything; idempotent
}

func startBroker(t *testing.T, dir string, mutate func(*Config)) *testBroker {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	meta := openTestStore(t, dir, int32(port))
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
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := meta.WaitReady(ctx); err != nil { // unfenced once New served its first image
		t.Fatal(err)
	}
	if err := b.WaitApplied(ctx, meta.Image().Version); err != nil { // as the server does
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve(ln) }()
	tb := &testBroker{addr: ln.Addr().String(), b: b, logs: logs, meta: meta}
	var once sync.Once
	tb.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := b.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
			if err := logs.Close(); err != nil {
				t.Errorf("close logs: %v", err)
			}
			meta.Close()
		})
	}
	t.Cleanup(tb.stop)
	return tb
}

// openTestStore opens this broker's metadata as the server does for a
// single node: a one-voter Raft quorum on a free loopback port, in
// dir/raft, registered (and fenced until the broker serves its first
// image).
func openTestStore(t *testing.T, dir string, kafkaPort int32) *controller.Store {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	raftAddr := ln.Addr().String()
	ln.Close()
	meta, err := controller.Open(controller.Config{
		NodeID: 1, RaftAddr: raftAddr, Voters: map[int32]string{1: raftAddr}, Dir: filepath.Join(dir, "raft"),
		KafkaHost: "127.0.0.1", KafkaPort: kafkaPort, ValidateConfigs: topicconfig.ValidateAll, ReportServed: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := meta.WaitRegistered(ctx); err != nil {
		meta.Close()
		t.Fatal(err)
	}
	return meta
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

// TestIdempotentProduceAcrossRestart drives the idempotence rules over the
// wire with hand-built batches, across a clean restart of the broker.
func TestIdempotentProduceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	produce := func(cl *kgo.Client, pid int64, epoch int16, seq int32, n int) (int16, int64) {
		t.Helper()
		h := recordbatch.Header{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq, Magic: 2}
		var recs []recordbatch.Record
		for i := 0; i < n; i++ {
			recs = append(recs, recordbatch.Record{OffsetDelta: int32(i), Value: []byte(fmt.Sprint("r", int(seq)+i))})
		}
		batch, err := recordbatch.Build(h, recs, recordbatch.CodecNone)
		if err != nil {
			t.Fatal(err)
		}
		req := kmsg.NewPtrProduceRequest()
		req.Acks = -1
		req.TimeoutMillis = 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = "idem"
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = batch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		p := resp.Topics[0].Partitions[0]
		return p.ErrorCode, p.BaseOffset
	}
	initPID := func(cl *kgo.Client) int64 {
		t.Helper()
		resp, err := kmsg.NewPtrInitProducerIDRequest().RequestWith(ctx, cl)
		if err != nil || resp.ErrorCode != 0 {
			t.Fatalf("InitProducerID: %v %d", err, resp.ErrorCode)
		}
		return resp.ProducerID
	}
	expect := func(what string, gotCode int16, gotOff int64, wantCode int16, wantOff int64) {
		t.Helper()
		if gotCode != wantCode || (wantCode == 0 && gotOff != wantOff) {
			t.Fatalf("%s: code %d offset %d, want code %d offset %d", what, gotCode, gotOff, wantCode, wantOff)
		}
	}

	var pid int64
	func() {
		tb := startBroker(t, dir, nil)
		cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "idem"); err != nil {
			t.Fatal(err)
		}
		pid = initPID(cl)
		c, off := produce(cl, pid, 0, 0, 3)
		expect("first batch", c, off, 0, 0)
		c, off = produce(cl, pid, 0, 0, 3)
		expect("retried duplicate", c, off, 0, 0)
		c, off = produce(cl, pid, 0, 5, 1)
		expect("sequence gap", c, off, kerr.OutOfOrderSequenceNumber.Code, -1)
		c, off = produce(cl, pid, 0, 3, 2)
		expect("next batch", c, off, 0, 3)
		cl.Close()
		tb.stop()
	}()
	tb := startBroker(t, dir, nil)
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c, off := produce(cl, pid, 0, 3, 2)
	expect("duplicate after restart", c, off, 0, 3)
	c, off = produce(cl, pid, 0, 5, 1)
	expect("continuation after restart", c, off, 0, 5)
	if next := initPID(cl); next <= pid {
		t.Fatalf("producer ID %d after restart, not above %d", next, pid)
	}
}

func TestIncrementalFetchSessions(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.DefaultProduceTopic("s"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	created, err := kadm.NewClient(cl).CreateTopic(ctx, 2, 1, nil, "s")
	if err != nil {
		t.Fatal(err)
	}
	produce := func(p int32) {
		if err := cl.ProduceSync(ctx, &kgo.Record{Partition: p, Value: []byte("x")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	produce(0)
	produce(1)

	fetch := func(id, epoch int32, parts []int32, forget []int32) *kmsg.FetchResponse {
		t.Helper()
		req := kmsg.NewPtrFetchRequest() // kgo sends it at v16: topics by ID
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 50, 1, 1<<20
		req.SessionID, req.SessionEpoch = id, epoch
		if len(parts) > 0 {
			rt := kmsg.NewFetchRequestTopic()
			rt.Topic, rt.TopicID = "s", created.ID
			for _, p := range parts {
				rp := kmsg.NewFetchRequestTopicPartition()
				rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = p, 1, 1<<20
				if epoch == 0 {
					rp.FetchOffset = 0
				}
				rt.Partitions = append(rt.Partitions, rp)
			}
			req.Topics = append(req.Topics, rt)
		}
		if len(forget) > 0 {
			req.ForgottenTopics = []kmsg.FetchRequestForgottenTopic{{Topic: "s", TopicID: created.ID, Partitions: forget}}
		}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	partsOf := func(r *kmsg.FetchResponse) map[int32]int {
		out := map[int32]int{}
		for _, tp := range r.Topics {
			for _, p := range tp.Partitions {
				out[p.Partition] = len(p.RecordBatches)
			}
		}
		return out
	}

	full := fetch(0, 0, []int32{0, 1}, nil)
	if full.ErrorCode != 0 || full.SessionID == 0 || len(partsOf(full)) != 2 {
		t.Fatalf("session start: err %d id %d parts %v", full.ErrorCode, full.SessionID, partsOf(full))
	}
	id := full.SessionID
	// Ask from offset 1 on both (the next records): nothing new yet, and
	// the high watermarks did not move, so the answer lists nothing.
	r := fetch(id, 1, []int32{0, 1}, nil)
	if r.ErrorCode != 0 || len(partsOf(r)) != 0 {
		t.Fatalf("quiet incremental fetch: err %d parts %v", r.ErrorCode, partsOf(r))
	}
	produce(1)
	r = fetch(id, 2, nil, nil)
	if got := partsOf(r); r.ErrorCode != 0 || len(got) != 1 || got[1] == 0 {
		t.Fatalf("incremental fetch after produce to 1: err %d parts %v", r.ErrorCode, got)
	}
	if r = fetch(id, 7, nil, nil); r.ErrorCode != kerr.InvalidFetchSessionEpoch.Code {
		t.Fatalf("wrong epoch: err %d", r.ErrorCode)
	}
	if r = fetch(id+1000, 1, nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("unknown session: err %d", r.ErrorCode)
	}
	// Forget partition 1: a new record there no longer shows up.
	r = fetch(id, 3, nil, []int32{1})
	if r.ErrorCode != 0 {
		t.Fatalf("forget: err %d", r.ErrorCode)
	}
	produce(1)
	if r = fetch(id, 4, nil, nil); len(partsOf(r)) != 0 {
		t.Fatalf("forgotten partition still fetched: %v", partsOf(r))
	}
	// Closing the session (epoch -1) makes the ID unknown.
	fetch(id, -1, []int32{0}, nil)
	if r = fetch(id, 5, nil, nil); r.ErrorCode != kerr.FetchSessionIDNotFound.Code {
		t.Fatalf("closed session: err %d", r.ErrorCode)
	}
}

// TestEveryAdvertisedKeyHasAHandler sends a default request of every
// advertised API at its highest version and expects an answer: a handler
// that failed its deferred response closes the connection, one that
// panics stops the test binary.
func TestEveryAdvertisedKeyHasAHandler(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for key, a := range apis {
		rng := a.versions
		req := kmsg.RequestForKey(key)
		req.SetVersion(rng.Max)
		switch r := req.(type) {
		case *kmsg.ProduceRequest:
			r.Acks = 1 // acks=0 has no response by design
		case *kmsg.JoinGroupRequest:
			r.Group, r.ProtocolType, r.SessionTimeoutMillis = "g", "consumer", 6000
			r.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
		}
		br := cl.Broker(1)
		if _, err := br.RetriableRequest(ctx, req); err != nil {
			t.Errorf("%s v%d: %v", kmsg.NameForKey(key), rng.Max, err)
		}
	}
}
