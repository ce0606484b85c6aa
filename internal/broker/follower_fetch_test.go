package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/replication"
	"github.com/streambus/streambus/internal/storage"
)

func strPtr(s string) *string { return &s }

func TestSelectRackAware(t *testing.T) {
	a, b, c := strPtr("a"), strPtr("b"), strPtr("c")
	leader := replicaView{id: 1, rack: a, leo: 100}
	tests := []struct {
		name       string
		rack       string
		leader     replicaView
		candidates []replicaView
		want       int32
	}{
		{"no client rack", "", leader, []replicaView{{2, b, 100}}, 1},
		{"leader in the rack", "a", leader, []replicaView{{2, a, 100}}, 1},
		{"one follower in the rack", "b", leader, []replicaView{{2, b, 90}, {3, c, 100}}, 2},
		{"furthest ahead wins", "b", leader, []replicaView{{2, b, 90}, {3, b, 95}}, 3},
		{"ties go to the lower id", "b", leader, []replicaView{{4, b, 95}, {3, b, 95}}, 3},
		{"nobody in the rack", "d", leader, []replicaView{{2, b, 100}, {3, c, 100}}, 1},
		{"follower without a rack", "b", leader, []replicaView{{2, nil, 100}}, 1},
		{"rackless leader", "b", replicaView{id: 1, leo: 100}, []replicaView{{2, b, 1}}, 2},
	}
	for _, tc := range tests {
		if got := selectRackAware(tc.rack, tc.leader, tc.candidates); got != tc.want {
			t.Errorf("%s: selected %d, want %d", tc.name, got, tc.want)
		}
	}
}

// staticStore is a metadata.Store whose image the test sets: two brokers
// that share it see the same cluster without a controller.
type staticStore struct {
	img  atomic.Pointer[metadata.Image]
	mu   sync.Mutex
	ch   chan struct{}
	pids atomic.Int64
}

var errStatic = errors.New("static metadata: read only")

func newStaticStore(img *metadata.Image) *staticStore {
	s := &staticStore{ch: make(chan struct{})}
	s.img.Store(img)
	return s
}

func (s *staticStore) Image() *metadata.Image { return s.img.Load() }
func (s *staticStore) Changes() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ch
}

func (s *staticStore) set(img *metadata.Image) {
	s.img.Store(img)
	s.mu.Lock()
	close(s.ch)
	s.ch = make(chan struct{})
	s.mu.Unlock()
}

func (s *staticStore) CreateTopic(context.Context, metadata.CreateTopicRequest) (*metadata.Topic, error) {
	return nil, errStatic
}
func (s *staticStore) DeleteTopic(context.Context, string) error { return errStatic }
func (s *staticStore) CreatePartitions(context.Context, string, int32, [][]int32, bool) error {
	return errStatic
}
func (s *staticStore) AlterTopicConfigs(context.Context, string, []metadata.ConfigChange, bool, bool) error {
	return errStatic
}
func (s *staticStore) AllocateProducerID(context.Context) (int64, error) { return s.pids.Add(1), nil }
func (s *staticStore) ElectPartitionLeaders(context.Context, int8, map[string][]int32) (map[string]map[int32]error, error) {
	return nil, errStatic
}
func (s *staticStore) ReassignPartitions(context.Context, map[string]map[int32][]int32) (map[string]map[int32]error, error) {
	return nil, errStatic
}
func (s *staticStore) EachReassignment(func(string, int32, []int32, []int32, []int32)) {}
func (s *staticStore) UnregisterBroker(context.Context, int32) error                   { return errStatic }
func (s *staticStore) AlterISR(context.Context, string, int32, replication.ISRProposal) error {
	return errStatic
}
func (s *staticStore) PartitionEpoch(string, int32) int32     { return 0 }
func (s *staticStore) ReportOffline(map[string][]int32)       {}
func (s *staticStore) Served(int64)                           {}
func (s *staticStore) AwaitPropagation(context.Context) error { return nil }
func (s *staticStore) WaitFresh(context.Context) error        { return nil }
func (s *staticStore) Close() error                           { return nil }

// startStaticBroker runs broker id in-process on ln over store.
func startStaticBroker(t *testing.T, store *staticStore, id int32, ln net.Listener, mutate func(*Config)) *Broker {
	t.Helper()
	dir := t.TempDir()
	logs, err := storage.OpenManager(storage.ManagerOptions{Dir: filepath.Join(dir, "logs"), FlushOnAck: true})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{NodeID: id, FlushOnAck: true, DataDir: dir, FetcherLocalAddr: "127.0.0.1"}
	if mutate != nil {
		mutate(&cfg)
	}
	b, err := New(cfg, store, logs)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %d: %v", id, err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve %d: %v", id, err)
		}
		if err := logs.Close(); err != nil {
			t.Errorf("close logs %d: %v", id, err)
		}
	})
	return b
}

// countRecords counts the records of the whole batches in b.
func countRecords(t *testing.T, b []byte) int {
	n := 0
	for len(b) >= 12 {
		size := int(binary.BigEndian.Uint32(b[8:12])) + 12
		if size > len(b) {
			break
		}
		var rb kmsg.RecordBatch
		if err := rb.ReadFrom(b[:size]); err != nil {
			t.Fatalf("batch: %v", err)
		}
		n += int(rb.NumRecords)
		b = b[size:]
	}
	return n
}

// TestFetchFromFollower: broker 1 (rack a) leads an RF=2 partition that
// broker 2 (rack b) follows. Broker 2 serves consumers (Fetch v11+) up to
// the high watermark it learnt; broker 1, with the rack-aware selector,
// sends rack-b consumers to it; a kgo consumer in rack b reads everything
// from broker 2; once broker 2 leaves the ISR both send the client back.
func TestFetchFromFollower(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var lns [2]net.Listener
	brokers := map[int32]metadata.Broker{}
	racks := []string{"a", "b"}
	for i := range lns {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		id := int32(i + 1)
		brokers[id] = metadata.Broker{NodeID: id, Host: "127.0.0.1", Port: int32(ln.Addr().(*net.TCPAddr).Port), Rack: strPtr(racks[i])}
	}
	topicID := [16]byte{1, 2, 3}
	image := func(epoch int64, isr ...int32) *metadata.Image {
		tp := &metadata.Topic{Name: "ff", ID: topicID, Configs: map[string]string{},
			Partitions: []metadata.Partition{{Index: 0, Leader: 1, LeaderEpoch: 3, Replicas: []int32{1, 2}, ISR: isr}}}
		return &metadata.Image{ClusterID: "static", ControllerID: 1, Brokers: brokers, Epoch: epoch,
			Topics: map[string]*metadata.Topic{"ff": tp}, TopicsByID: map[[16]byte]*metadata.Topic{topicID: tp}}
	}
	store := newStaticStore(image(1, 1, 2))
	startStaticBroker(t, store, 1, lns[0], func(c *Config) { c.RackAwareReplicaSelector = true })
	startStaticBroker(t, store, 2, lns[1], nil)

	cl, err := kgo.NewClient(kgo.SeedBrokers(lns[0].Addr().String()), kgo.DefaultProduceTopic("ff"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	const n = 20
	for i := 0; i < n; i++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatalf("produce %d: %v", i, err)
		}
	}

	pinned := map[int16]*kgo.Client{}
	fetch := func(node int32, version int16, rack string, offset int64, epoch int32) kmsg.FetchResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrFetchRequest()
		req.Version = version
		req.MaxWaitMillis, req.MinBytes, req.MaxBytes = 200, 1, 1<<20
		req.Rack = rack
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = "ff", topicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition, rp.FetchOffset, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = 0, offset, 1<<20, epoch
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		// kgo sends its highest version unless pinned.
		if pinned[version] == nil {
			v := kversion.Stable()
			v.SetMaxKeyVersion(kmsg.Fetch.Int16(), version)
			pcl, err := kgo.NewClient(kgo.SeedBrokers(lns[0].Addr().String()), kgo.MaxVersions(v))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pcl.Close)
			pinned[version] = pcl
		}
		resp, err := req.RequestWith(ctx, pinned[version].Broker(int(node)))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch from %d: %+v", node, resp)
		}
		return resp.Topics[0].Partitions[0]
	}

	// The follower learns the high watermark with its next fetch.
	var fp kmsg.FetchResponseTopicPartition
	for fp = fetch(2, 12, "", 0, 3); fp.HighWatermark < n; fp = fetch(2, 12, "", 0, 3) {
		if fp.ErrorCode != 0 || ctx.Err() != nil {
			t.Fatalf("follower fetch: error %d, high watermark %d", fp.ErrorCode, fp.HighWatermark)
		}
	}
	if fp.HighWatermark != n || fp.LastStableOffset != n || fp.LogStartOffset != 0 || countRecords(t, fp.RecordBatches) != n {
		t.Fatalf("follower fetch: hw %d lso %d start %d, %d records", fp.HighWatermark, fp.LastStableOffset, fp.LogStartOffset, countRecords(t, fp.RecordBatches))
	}
	for _, tc := range []struct {
		name    string
		node    int32
		version int16
		offset  int64
		epoch   int32
		code    int16
	}{
		{"v10 on the follower", 2, 10, 0, -1, kerr.NotLeaderForPartition.Code},
		{"old epoch on the follower", 2, 12, 0, 2, kerr.FencedLeaderEpoch.Code},
		{"future epoch on the follower", 2, 12, 0, 4, kerr.UnknownLeaderEpoch.Code},
		{"past the follower's end", 2, 12, n + 5, 3, kerr.OffsetOutOfRange.Code},
		{"at the follower's end", 2, 12, n, 3, 0},
		{"v11 with no rack on the leader", 1, 11, 0, 3, 0},
	} {
		if got := fetch(tc.node, tc.version, "", tc.offset, tc.epoch); got.ErrorCode != tc.code || got.PreferredReadReplica != -1 {
			t.Errorf("%s: error %d, want %d; preferred %d", tc.name, got.ErrorCode, tc.code, got.PreferredReadReplica)
		}
	}
	if got := fetch(2, 12, "", 0, 3); got.CurrentLeader.LeaderID != -1 {
		t.Errorf("follower answer names a leader: %+v", got.CurrentLeader)
	}
	// Produce and ListOffsets still need the leader.
	pr := kmsg.NewPtrListOffsetsRequest()
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "ff"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp = -1
	lt.Partitions = append(lt.Partitions, lp)
	pr.Topics = append(pr.Topics, lt)
	if resp, err := pr.RequestWith(ctx, cl.Broker(2)); err != nil || resp.Topics[0].Partitions[0].ErrorCode != kerr.NotLeaderForPartition.Code {
		t.Errorf("ListOffsets on the follower: %+v %v", resp, err)
	}

	// The leader sends rack b to broker 2, with no records.
	if got := fetch(1, 12, "b", 0, 3); got.PreferredReadReplica != 2 || got.ErrorCode != 0 || len(got.RecordBatches) != 0 || got.HighWatermark != n {
		t.Errorf("rack b at the leader: preferred %d error %d hw %d, %d bytes", got.PreferredReadReplica, got.ErrorCode, got.HighWatermark, len(got.RecordBatches))
	}
	for _, rack := range []string{"a", "c"} {
		if got := fetch(1, 12, rack, 0, 3); got.PreferredReadReplica != -1 || countRecords(t, got.RecordBatches) != n {
			t.Errorf("rack %s at the leader: preferred %d, %d records", rack, got.PreferredReadReplica, countRecords(t, got.RecordBatches))
		}
	}
	// An offset the follower has not reported reaching stays at the leader.
	if got := fetch(1, 12, "b", n+1, 3); got.PreferredReadReplica != -1 {
		t.Errorf("rack b past the follower's end: preferred %d", got.PreferredReadReplica)
	}

	// A kgo consumer in rack b reads every record, in order, from broker 2.
	var mu sync.Mutex
	batchesFrom := map[int32]int{}
	hook := batchHook(func(node int32) {
		mu.Lock()
		batchesFrom[node]++
		mu.Unlock()
	})
	cons, err := kgo.NewClient(kgo.SeedBrokers(lns[0].Addr().String()), kgo.Rack("b"), kgo.WithHooks(hook),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{"ff": {0: kgo.NewOffset().AtStart()}}))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var got []byte
	for len(got) < n && ctx.Err() == nil {
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, r.Value...) })
	}
	for i := range got {
		if int(got[i]) != i {
			t.Fatalf("consumed out of order: %v", got)
		}
	}
	mu.Lock()
	if len(got) != n || batchesFrom[2] == 0 || batchesFrom[1] != 0 {
		t.Errorf("consumed %d of %d; batches by broker %v", len(got), n, batchesFrom)
	}
	mu.Unlock()

	// Broker 2 leaves the ISR: the leader serves rack b itself, and the
	// follower sends consumers back.
	store.set(image(2, 1))
	for {
		lead, foll := fetch(1, 12, "b", 0, 3), fetch(2, 12, "", 0, 3)
		if lead.PreferredReadReplica == -1 && countRecords(t, lead.RecordBatches) == n &&
			foll.ErrorCode == kerr.NotLeaderForPartition.Code && foll.CurrentLeader.LeaderID == 1 && foll.CurrentLeader.LeaderEpoch == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("after the ISR shrink: leader preferred %d; follower error %d leader %+v", lead.PreferredReadReplica, foll.ErrorCode, foll.CurrentLeader)
		}
	}
}

// batchHook reports the broker of every fetched batch.
type batchHook func(node int32)

func (h batchHook) OnFetchBatchRead(meta kgo.BrokerMetadata, _ string, _ int32, _ kgo.FetchBatchMetrics) {
	h(meta.NodeID)
}
