package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/storage"
)

// hostedLog returns b's log of partition id, or nil.
func hostedLog(b *Broker, id storage.PartitionID) *storage.Log {
	if p := b.host.Get(id); p != nil {
		return p.Log()
	}
	return nil
}

// waitUntil polls cond until it holds or ctx ends.
func waitUntil(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func deleteRecords(ctx context.Context, t *testing.T, adm *kadm.Client, topic string, at int64) kadm.DeleteRecordsResponse {
	t.Helper()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: at})
	rs, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatalf("delete records before %d: %v", at, err)
	}
	r, ok := rs.Lookup(topic, 0)
	if !ok {
		t.Fatalf("delete records before %d: no answer for the partition: %+v", at, rs)
	}
	return r
}

// TestDeleteRecordsReplicated: brokers 1 and 2 replicate an RF=3
// partition whose third replica, broker 3, is registered but down.
// DeleteRecords waits for the low watermark over the replicas on live
// brokers: it times out while broker 3 counts (and the connection keeps
// serving meanwhile), completes once broker 3 is fenced, and waits for
// broker 3 again once it is back and caught up. Every replica applies the
// leader's log start, so after leadership moves the deleted records stay
// deleted.
func TestDeleteRecordsReplicated(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var lns [3]net.Listener
	all := map[int32]metadata.Broker{}
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		id := int32(i + 1)
		all[id] = metadata.Broker{NodeID: id, Host: "127.0.0.1", Port: int32(ln.Addr().(*net.TCPAddr).Port)}
	}
	// Broker 3 is down: connections to it are refused.
	addr3 := lns[2].Addr().String()
	lns[2].Close()
	const topic = "dr"
	topicID := [16]byte{7}
	id := storage.PartitionID{Topic: topic, Partition: 0}
	image := func(epoch int64, leader, leaderEpoch int32, brokers []int32, isr ...int32) *metadata.Image {
		bs := map[int32]metadata.Broker{}
		for _, b := range brokers {
			bs[b] = all[b]
		}
		tp := &metadata.Topic{Name: topic, ID: topicID, Configs: map[string]string{},
			Partitions: []metadata.Partition{{Index: 0, Leader: leader, LeaderEpoch: leaderEpoch, Replicas: []int32{1, 2, 3}, ISR: isr}}}
		return &metadata.Image{ClusterID: "static", ControllerID: 1, Brokers: bs, Epoch: epoch,
			Topics: map[string]*metadata.Topic{topic: tp}, TopicsByID: map[[16]byte]*metadata.Topic{topicID: tp}}
	}
	store := newStaticStore(image(1, 1, 3, []int32{1, 2, 3}, 1, 2))
	b1 := startStaticBroker(t, store, 1, lns[0], nil)
	b2 := startStaticBroker(t, store, 2, lns[1], nil)

	cl, err := kgo.NewClient(kgo.SeedBrokers(lns[0].Addr().String(), lns[1].Addr().String()), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	const n = 20
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}

	// Broker 3 is registered and unfenced but never fetched: the low
	// watermark is -1 and the request times out, though the leader's log
	// start moved. Meanwhile the same connection keeps reading: a produce
	// pipelined behind the DeleteRecords is appended before it is answered.
	conn, err := net.Dial("tcp", lns[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dr := kmsg.NewPtrDeleteRecordsRequest()
	dr.Version, dr.TimeoutMillis = 1, 2000
	drt := kmsg.NewDeleteRecordsRequestTopic()
	drt.Topic = topic
	drp := kmsg.NewDeleteRecordsRequestTopicPartition()
	drp.Partition, drp.Offset = 0, 5
	drt.Partitions = append(drt.Partitions, drp)
	dr.Topics = append(dr.Topics, drt)
	batch, err := recordbatch.Build(recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1},
		[]recordbatch.Record{{Value: []byte{n}}}, recordbatch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	pr := kmsg.NewPtrProduceRequest()
	pr.Version, pr.Acks, pr.TimeoutMillis = 7, 0, 1000
	prt := kmsg.NewProduceRequestTopic()
	prt.Topic = topic
	prp := kmsg.NewProduceRequestTopicPartition()
	prp.Records = batch
	prt.Partitions = append(prt.Partitions, prp)
	pr.Topics = append(pr.Topics, prt)
	f := kmsg.NewRequestFormatter(kmsg.FormatterClientID("raw"))
	// One write: AppendRequest sizes the frame from dst's start, so each
	// frame is built on its own.
	if _, err := conn.Write(append(f.AppendRequest(nil, dr, 1), f.AppendRequest(nil, pr, 2)...)); err != nil {
		t.Fatal(err)
	}
	answered := make(chan *kmsg.DeleteRecordsResponse, 1)
	go func() {
		var hdr [8]byte
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			answered <- nil
			return
		}
		body := make([]byte, binary.BigEndian.Uint32(hdr[:4])-4)
		resp := kmsg.NewPtrDeleteRecordsResponse()
		resp.Version = 1
		if _, err := io.ReadFull(conn, body); err != nil || resp.ReadFrom(body) != nil || binary.BigEndian.Uint32(hdr[4:]) != 1 {
			answered <- nil
			return
		}
		answered <- resp
	}()
	for hostedLog(b1, id).LogEndOffset() != n+1 {
		select {
		case resp := <-answered:
			t.Fatalf("DeleteRecords answered (%+v) before the pipelined produce was read", resp)
		case <-ctx.Done():
			t.Fatal("the pipelined produce was never appended")
		case <-time.After(5 * time.Millisecond):
		}
	}
	resp := <-answered
	if resp == nil {
		t.Fatal("reading the DeleteRecords response failed")
	}
	if p := resp.Topics[0].Partitions[0]; p.ErrorCode != kerr.RequestTimedOut.Code || p.LowWatermark != -1 {
		t.Fatalf("with broker 3 alive and not fetching: error %d low watermark %d", p.ErrorCode, p.LowWatermark)
	}
	if start := hostedLog(b1, id).LogStartOffset(); start != 5 {
		t.Fatalf("leader log start %d after the timed-out request", start)
	}

	// Broker 3 fenced: it no longer counts, and the answer comes once
	// broker 2 applied the new log start.
	store.set(image(2, 1, 3, []int32{1, 2}, 1, 2))
	if r := deleteRecords(ctx, t, adm, topic, 10); r.Err != nil || r.LowWatermark != 10 {
		t.Fatalf("with broker 3 fenced: %+v", r)
	}
	if start := hostedLog(b2, id).LogStartOffset(); start != 10 {
		t.Fatalf("follower log start %d after the low watermark reached 10", start)
	}

	// Broker 3 comes back with an empty log: it starts at the leader's log
	// start (OFFSET_OUT_OF_RANGE), and the next DeleteRecords waits for it.
	ln3, err := net.Listen("tcp", addr3)
	if err != nil {
		t.Fatal(err)
	}
	store.set(image(3, 1, 3, []int32{1, 2, 3}, 1, 2))
	b3 := startStaticBroker(t, store, 3, ln3, nil)
	waitUntil(ctx, t, "broker 3 catches up", func() bool {
		l := hostedLog(b3, id)
		return l != nil && l.LogEndOffset() == n+1
	})
	if r := deleteRecords(ctx, t, adm, topic, 15); r.Err != nil || r.LowWatermark != 15 {
		t.Fatalf("with broker 3 back: %+v", r)
	}
	for _, b := range []*Broker{b1, b2, b3} {
		if start := hostedLog(b, id).LogStartOffset(); start != 15 {
			t.Fatalf("broker %d: log start %d", b.cfg.NodeID, start)
		}
	}
	// Deleting below the low watermark is answered at once with it.
	if r := deleteRecords(ctx, t, adm, topic, 3); r.Err != nil || r.LowWatermark != 15 {
		t.Fatalf("below the low watermark: %+v", r)
	}

	// Broker 2 takes over: it serves from 15, as the old leader did.
	store.set(image(4, 2, 4, []int32{1, 2, 3}, 2, 1))
	var starts kadm.ListedOffsets
	waitUntil(ctx, t, "broker 2 answers ListOffsets as the leader", func() bool {
		starts, err = adm.ListStartOffsets(ctx, topic)
		o, _ := starts.Lookup(topic, 0)
		return err == nil && o.Err == nil && o.LeaderEpoch == 4
	})
	if o, _ := starts.Lookup(topic, 0); o.Offset != 15 {
		t.Fatalf("log start on the new leader: %d", o.Offset)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(lns[1].Addr().String()),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var offsets []int64
	for len(offsets) < n+1-15 && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { offsets = append(offsets, r.Offset) })
	}
	if len(offsets) != n+1-15 || offsets[0] != 15 {
		t.Fatalf("consumed offsets %v from the new leader, want 15 to %d", offsets, n)
	}
}

// TestDeleteRecordsPolicy: compact-only topics refuse DeleteRecords with
// POLICY_VIOLATION and keep their records; compact,delete topics and
// single-replica partitions answer at once.
func TestDeleteRecordsPolicy(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, tc := range []struct {
		policy string
		err    error
		low    int64
	}{
		{"compact", kerr.PolicyViolation, -1},
		{"compact,delete", nil, 3},
		{"delete, compact", nil, 3},
		{"delete", nil, 3},
	} {
		topic := "policy-" + strings.NewReplacer(",", "-", " ", "").Replace(tc.policy)
		if _, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &tc.policy}, topic); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte{byte(i)}, Value: []byte{byte(i)}}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		if r := deleteRecords(ctx, t, adm, topic, 3); !errors.Is(r.Err, tc.err) || r.LowWatermark != tc.low {
			t.Errorf("%s: %+v, want error %v low watermark %d", tc.policy, r, tc.err, tc.low)
		}
		starts, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		want := tc.low
		if tc.err != nil {
			want = 0
		}
		if o, _ := starts.Lookup(topic, 0); o.Offset != want {
			t.Errorf("%s: log start %d, want %d", tc.policy, o.Offset, want)
		}
	}
}
