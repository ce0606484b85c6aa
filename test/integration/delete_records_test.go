package integration

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestDeleteRecordsCluster: on three brokers, DeleteRecords on an RF=3
// partition answers with the low watermark over all replicas on the first
// try, every replica's log then starts there (each broker answers a
// replica-style fetch with that log start), and after the leader is
// killed the new leader serves from there too: deleted records do not
// come back.
func TestDeleteRecordsCluster(t *testing.T) {
	bs := startCluster(t, 3,
		"STREAMBUS_BROKER_HEARTBEAT_INTERVAL_MS=200",
		"STREAMBUS_BROKER_SESSION_TIMEOUT_MS=1500",
		"STREAMBUS_REPLICA_LAG_TIME_MAX_MS=1500",
	)
	ctx := testCtx(t, 90*time.Second)
	seeds := []string{bs[0].Addr, bs[1].Addr, bs[2].Addr}
	const topic = "dr"
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RecordRetries(1000), kgo.RetryTimeout(60*time.Second), kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	minISR := "2"
	if _, err := adm.CreateTopic(ctx, 1, 3, map[string]*string{"min.insync.replicas": &minISR}, topic); err != nil {
		t.Fatal(err)
	}
	const n, cut = 100, 40
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprint(i))}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}
	partition := func() kadm.PartitionDetail {
		for ctx.Err() == nil {
			md, err := adm.Metadata(ctx, topic)
			if err == nil {
				if p, ok := md.Topics[topic].Partitions[0]; ok && p.Leader >= 0 {
					return p
				}
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatal("no leader")
		return kadm.PartitionDetail{}
	}
	// Every replica in the ISR, so that each can answer a consumer's
	// fetch below (KIP-392 reads need an in-sync follower).
	for p := partition(); len(p.ISR) != 3; p = partition() {
		time.Sleep(50 * time.Millisecond)
	}

	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: cut})
	rs, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := rs.Lookup(topic, 0); !ok || r.Err != nil || r.LowWatermark != cut {
		t.Fatalf("delete records before %d: %+v", cut, r)
	}

	// Each broker's own log starts at the cut: a fetch at the cut reports
	// it as the log start, one just below is out of range.
	fetch := func(b *broker, offset int64) kmsg.FetchResponseTopicPartition {
		req := kmsg.NewPtrFetchRequest()
		req.Version, req.ReplicaID = 12, -1
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 0, 1, 1<<20
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes = 0, offset, 1<<20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := dialRaw(t, b).roundTrip(req).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch from %s: %+v", b.Addr, resp)
		}
		return resp.Topics[0].Partitions[0]
	}
	for _, b := range bs {
		if got := fetch(b, cut); got.ErrorCode != 0 || got.LogStartOffset != cut {
			t.Errorf("broker %s at %d: error %d, log start %d", b.Addr, cut, got.ErrorCode, got.LogStartOffset)
		}
		if got := fetch(b, cut-1); got.ErrorCode != kerr.OffsetOutOfRange.Code {
			t.Errorf("broker %s at %d: error %d, want OFFSET_OUT_OF_RANGE", b.Addr, cut-1, got.ErrorCode)
		}
	}

	// The leader dies; the new one starts at the cut as well.
	old := partition().Leader
	bs[old-1].kill()
	for p := partition(); p.Leader == old; p = partition() {
		time.Sleep(50 * time.Millisecond)
	}
	var starts kadm.ListedOffsets
	for {
		starts, err = adm.ListStartOffsets(ctx, topic)
		if o, ok := starts.Lookup(topic, 0); err == nil && ok && o.Err == nil {
			if o.Offset != cut {
				t.Fatalf("log start on the new leader: %d", o.Offset)
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("list start offsets: %v %+v", err, starts)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(seeds...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var offsets []int64
	for len(offsets) < n-cut && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if want := int64(cut + len(offsets)); r.Offset != want || string(r.Value) != fmt.Sprint(want) {
				t.Errorf("record at %d (%q), want offset %d", r.Offset, r.Value, want)
			}
			offsets = append(offsets, r.Offset)
		})
	}
	if len(offsets) != n-cut {
		t.Fatalf("consumed %d records from the new leader, want %d", len(offsets), n-cut)
	}
}

// TestDeleteRecordsPolicy: a compact-only topic refuses DeleteRecords
// with POLICY_VIOLATION and keeps its log start; compact,delete and
// delete topics move it.
func TestDeleteRecordsPolicy(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	cl := newKgo(t, b)
	adm := kadm.NewClient(cl)
	ctx := testCtx(t, 30*time.Second)
	for _, tc := range []struct {
		policy string
		err    error
	}{
		{"compact", kerr.PolicyViolation},
		{"compact,delete", nil},
		{"delete", nil},
	} {
		topic := uniqueTopic(t, "policy")
		if resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"cleanup.policy": &tc.policy}, topic); err != nil || resp.Err != nil {
			t.Fatalf("create %s topic: %v %v", tc.policy, err, resp.Err)
		}
		for i := 0; i < 10; i++ {
			r := &kgo.Record{Topic: topic, Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}
			if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce to %s topic: %v", tc.policy, err)
			}
		}
		var os kadm.Offsets
		os.Add(kadm.Offset{Topic: topic, Partition: 0, At: 6})
		rs, err := adm.DeleteRecords(ctx, os)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := rs.Lookup(topic, 0)
		wantStart := int64(6)
		if tc.err != nil {
			wantStart = 0
			if !errors.Is(r.Err, tc.err) || r.LowWatermark != -1 {
				t.Errorf("%s: %+v, want %v", tc.policy, r, tc.err)
			}
		} else if r.Err != nil || r.LowWatermark != 6 {
			t.Errorf("%s: %+v, want low watermark 6", tc.policy, r)
		}
		starts, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		if o, _ := starts.Lookup(topic, 0); o.Err != nil || o.Offset != wantStart {
			t.Errorf("%s: log start %d (%v), want %d", tc.policy, o.Offset, o.Err, wantStart)
		}
	}
}
