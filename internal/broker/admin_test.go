package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestAdminAPIs exercises the topic and config administration APIs with
// franz-go's admin client, as tools use them.
func TestAdminAPIs(t *testing.T) {
	tb := startBroker(t, t.TempDir(), func(c *Config) { c.NumPartitions = 3 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	// Validate-only creates nothing; bad configs are refused by name.
	if _, err := adm.ValidateCreateTopics(ctx, 2, 1, nil, "t"); err != nil {
		t.Fatalf("validate-only: %v", err)
	}
	if md, _ := adm.ListTopics(ctx); md.Has("t") {
		t.Fatal("validate-only created the topic")
	}
	_, err = adm.CreateTopic(ctx, 1, 1, map[string]*string{"retention.msx": kmsg.StringPtr("1")}, "bad")
	if !errors.Is(err, kerr.InvalidConfig) {
		t.Fatalf("unknown config: %v", err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 3, nil, "rf3"); !errors.Is(err, kerr.InvalidReplicationFactor) {
		t.Fatalf("replication factor 3 on one broker: %v", err)
	}

	// Create with an override; describe shows its source.
	if _, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": kmsg.StringPtr("3600000")}, "t"); err != nil {
		t.Fatal(err)
	}
	cfg := func(name string) (string, kmsg.ConfigSource) {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, "t")
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On("t", nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("describe: %v %v", err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == name {
				return c.MaybeValue(), c.Source
			}
		}
		t.Fatalf("config %s not described", name)
		return "", 0
	}
	if v, src := cfg("retention.ms"); v != "3600000" || src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms = %q from %v", v, src)
	}
	if v, src := cfg("segment.bytes"); v != "1073741824" || src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("segment.bytes = %q from %v", v, src)
	}

	// Incremental: set, append to a list, delete.
	rs, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "max.message.bytes", Value: kmsg.StringPtr("2000000")},
		{Op: kadm.AppendConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("compact")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, "t")
	if err != nil || rs[0].Err != nil {
		t.Fatal(err, rs)
	}
	if v, _ := cfg("cleanup.policy"); v != "delete,compact" {
		t.Fatalf("cleanup.policy after append = %q", v)
	}
	if v, src := cfg("retention.ms"); v != "604800000" || src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.ms after delete = %q from %v", v, src)
	}
	// Non-incremental AlterConfigs replaces every override.
	if rs, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.ms", Value: kmsg.StringPtr("60000")}}, "t"); err != nil || rs[0].Err != nil {
		t.Fatal(err, rs)
	}
	if v, _ := cfg("max.message.bytes"); v != "1048588" {
		t.Fatalf("max.message.bytes after a replacing AlterConfigs = %q", v)
	}
	rs, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "segment.ms", Value: kmsg.StringPtr("soon")}}, "t")
	if err != nil || len(rs) != 1 || !errors.Is(rs[0].Err, kerr.InvalidConfig) {
		t.Fatalf("bad value: %v %+v", err, rs)
	}

	// Produce, then CreatePartitions, DeleteRecords and the offset lookups.
	base := time.Now().Add(-time.Hour).UnixMilli()
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Topic: "t", Partition: 0, Value: []byte(fmt.Sprint(i)), Timestamp: time.UnixMilli(base + int64(i)*1000)}
		if i == 6 {
			r.Timestamp = time.UnixMilli(base + 100000) // the max timestamp
		}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if cp, err := adm.UpdatePartitions(ctx, 4, "t"); err != nil || cp["t"].Err != nil {
		t.Fatal(err, cp)
	}
	cl2, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if err := cl2.ProduceSync(ctx, &kgo.Record{Topic: "t", Partition: 3, Value: []byte("new partition")}).FirstErr(); err != nil {
		t.Fatalf("produce to a new partition: %v", err)
	}
	if cp, err := adm.UpdatePartitions(ctx, 2, "t"); err != nil || !errors.Is(cp["t"].Err, kerr.InvalidPartitions) {
		t.Fatalf("shrinking partitions: %v %+v", err, cp)
	}
	maxTS, err := adm.ListMaxTimestampOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := maxTS.Lookup("t", 0); o.Offset != 6 || o.Timestamp != base+100000 {
		t.Fatalf("max timestamp offset %+v", o)
	}
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: "t", Partition: 0, At: 5})
	dr, err := adm.DeleteRecords(ctx, os)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := dr.Lookup("t", 0); r.Err != nil || r.LowWatermark != 5 {
		t.Fatalf("delete records: %+v", r)
	}
	starts, err := adm.ListStartOffsets(ctx, "t")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := starts.Lookup("t", 0); o.Offset != 5 {
		t.Fatalf("start offset after DeleteRecords: %+v", o)
	}
	var os2 kadm.Offsets
	os2.Add(kadm.Offset{Topic: "t", Partition: 0, At: 20})
	if dr, _ := adm.DeleteRecords(ctx, os2); dr != nil {
		if r, _ := dr.Lookup("t", 0); !errors.Is(r.Err, kerr.OffsetOutOfRange) {
			t.Fatalf("delete beyond the high watermark: %+v", r)
		}
	}

	// OffsetForLeaderEpoch: epoch 0 ends at the log end.
	var ofe kadm.OffsetForLeaderEpochRequest
	ofe.Add("t", 0, 0)
	eps, err := adm.OffsetForLeaderEpoch(ctx, ofe)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := eps["t"][0]; !ok || e.Err != nil || e.EndOffset != 10 || e.LeaderEpoch != 0 {
		t.Fatalf("offset for leader epoch: %+v", e)
	}

	// Log dirs, cluster, broker configs.
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(0)
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if p.Topic == "t" && p.Partition == 0 {
				size = p.Size
			}
		})
	})
	if size <= 0 {
		t.Fatalf("log dir size of t-0 = %d", size)
	}
	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, cl)
	if err != nil || dc.ErrorCode != 0 || len(dc.Brokers) != 1 || dc.ControllerID != 1 || dc.ClusterID == "" {
		t.Fatalf("describe cluster: %v %+v", err, dc)
	}

	// Delete and recreate: a new topic ID and an empty log.
	oldID := tb.meta.Image().Topics["t"].ID
	if _, err := adm.DeleteTopics(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "t"); err != nil {
		t.Fatal(err)
	}
	ends, _ := adm.ListEndOffsets(ctx, "t")
	if o, _ := ends.Lookup("t", 0); tb.meta.Image().Topics["t"].ID == oldID || o.Offset != 0 {
		t.Fatalf("recreated topic: same id %v, end offset %d", tb.meta.Image().Topics["t"].ID == oldID, o.Offset)
	}

	// Auto-creation with num.partitions.
	if err := cl2.ProduceSync(ctx, &kgo.Record{Topic: "auto", Partition: 2, Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("produce to an auto-created topic: %v", err)
	}
	md, _ := adm.ListTopics(ctx, "auto")
	if n := len(md["auto"].Partitions); n != 3 {
		t.Fatalf("auto-created topic has %d partitions, want num.partitions=3", n)
	}
}

func TestLogAppendTime(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.ConsumeTopics("lat"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, map[string]*string{"message.timestamp.type": kmsg.StringPtr("LogAppendTime")}, "lat"); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	old := time.Unix(1000, 0)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "lat", Value: []byte("x"), Timestamp: old}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 || recs[0].Timestamp.Before(before) || recs[0].Attrs.TimestampType() != 1 {
		t.Fatalf("record %+v: want a broker timestamp after %v", recs, before)
	}
}
