package integration

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestListOffsetsByTimestamp checks Kafka's ListOffsets semantics: for a
// timestamp, the earliest offset whose record timestamp is at or after it,
// with that record's timestamp; offset -1 and timestamp -1 when no record is
// that late; -2 and -1 for the log start and end. Record timestamps are set
// explicitly (CreateTime) and batches are built by hand, so lookups land
// both between and inside batches.
func TestListOffsetsByTimestamp(t *testing.T) {
	b := startBroker(t, brokerOpts{})
	topic := createTopic(t, b, 2)
	// In the past so no timestamp-skew limit rejects the records.
	base := time.Now().Add(-30*time.Minute).UnixMilli() / 1000 * 1000

	// Partition 0, increasing timestamps in three batches:
	//   offset 0 1 2 | 3 | 4 5
	//   +ms    0 10 20 | 30 | 40 50
	// Partition 1, not monotonic, one record per batch:
	//   offset 0   1  2
	//   +ms    100 50 200
	rc := dialRaw(t, b)
	produce := func(partition int32, wantBase int64, ts ...int64) {
		t.Helper()
		req := produceRequest(topic, recordBatch(ts...))
		req.Topics[0].Partitions[0].Partition = partition
		resp := rc.roundTrip(req).(*kmsg.ProduceResponse)
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 || p.BaseOffset != wantBase {
			t.Fatalf("produce to %d: error %d, base offset %d; want 0, %d", partition, p.ErrorCode, p.BaseOffset, wantBase)
		}
	}
	produce(0, 0, base, base+10, base+20)
	produce(0, 3, base+30)
	produce(0, 4, base+40, base+50)
	produce(1, 0, base+100)
	produce(1, 1, base+50)
	produce(1, 2, base+200)

	cl := newKgo(t, b)
	cases := []struct {
		partition  int32
		ts         int64 // relative to base unless negative special
		special    bool  // ts is -1 (latest) or -2 (earliest) as is
		wantOffset int64
		wantTS     int64 // relative to base; ignored when wantOffset < 0 or special
	}{
		{0, -1000, false, 0, 0},
		{0, 0, false, 0, 0},
		{0, 5, false, 1, 10},
		{0, 10, false, 1, 10},
		{0, 11, false, 2, 20},
		{0, 25, false, 3, 30},
		{0, 30, false, 3, 30},
		{0, 31, false, 4, 40},
		{0, 45, false, 5, 50},
		{0, 50, false, 5, 50},
		{0, 51, false, -1, 0},
		{0, 1e9, false, -1, 0},
		{0, -2, true, 0, 0},
		{0, -1, true, 6, 0},
		{1, 40, false, 0, 100},
		{1, 60, false, 0, 100},
		{1, 100, false, 0, 100},
		{1, 101, false, 2, 200},
		{1, 200, false, 2, 200},
		{1, 201, false, -1, 0},
		{1, -1, true, 3, 0},
	}
	for _, c := range cases {
		ts := c.ts
		if !c.special {
			ts += base
		}
		req := kmsg.NewPtrListOffsetsRequest()
		req.ReplicaID = -1
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Partition = c.partition
		rp.Timestamp = ts
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(testCtx(t, 10*time.Second), cl)
		if err != nil {
			t.Fatalf("ListOffsets: %v", err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("ListOffsets: malformed response %+v", resp)
		}
		p := resp.Topics[0].Partitions[0]
		name := "timestamp base+" + time.Duration(c.ts*int64(time.Millisecond)).String()
		if c.special {
			name = map[int64]string{-1: "latest (-1)", -2: "earliest (-2)"}[c.ts]
		}
		if p.ErrorCode != 0 {
			t.Errorf("partition %d, %s: error code %d", c.partition, name, p.ErrorCode)
			continue
		}
		if p.Offset != c.wantOffset {
			t.Errorf("partition %d, %s: offset %d, want %d", c.partition, name, p.Offset, c.wantOffset)
		}
		switch {
		case c.special:
		case c.wantOffset < 0:
			if p.Timestamp != -1 {
				t.Errorf("partition %d, %s: timestamp %d, want -1 (no such record)", c.partition, name, p.Timestamp)
			}
		case p.Timestamp != base+c.wantTS:
			t.Errorf("partition %d, %s: timestamp base%+d, want base%+d", c.partition, name, p.Timestamp-base, c.wantTS)
		}
	}

	// kadm maps "no record that late" to the end offset, which it learns
	// with a second request; check the broker answers it consistently.
	adm := kadm.NewClient(cl)
	listed, err := adm.ListOffsetsAfterMilli(testCtx(t, 10*time.Second), base+201, topic)
	if err != nil {
		t.Fatalf("kadm ListOffsetsAfterMilli: %v", err)
	}
	for p, want := range map[int32]int64{0: 6, 1: 3} {
		lo, ok := listed.Lookup(topic, p)
		if !ok || lo.Err != nil || lo.Offset != want {
			t.Errorf("kadm ListOffsetsAfterMilli(base+201) partition %d: %+v (found %v), want offset %d", p, lo, ok, want)
		}
	}
	listed, err = adm.ListOffsetsAfterMilli(testCtx(t, 10*time.Second), base+15, topic)
	if err != nil {
		t.Fatalf("kadm ListOffsetsAfterMilli: %v", err)
	}
	if lo, _ := listed.Lookup(topic, 0); lo.Err != nil || lo.Offset != 2 || lo.Timestamp != base+20 {
		t.Errorf("kadm ListOffsetsAfterMilli(base+15) partition 0: %+v, want offset 2 at base+20", lo)
	}
}
