package partitions

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/replication"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/vfs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeMeta is a metadata store whose images the test publishes; it
// records the versions the host reports served.
type fakeMeta struct {
	mu      sync.Mutex
	img     *metadata.Image
	ch      chan struct{}
	served  []int64
	served1 chan int64 // each report, for waiting
	offline map[string][]int32
}

func newFakeMeta(img *metadata.Image) *fakeMeta {
	return &fakeMeta{img: img, ch: make(chan struct{}), served1: make(chan int64, 100)}
}

func (f *fakeMeta) Image() *metadata.Image {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.img
}

func (f *fakeMeta) Changes() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ch
}

func (f *fakeMeta) publish(img *metadata.Image) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.img = img
	close(f.ch)
	f.ch = make(chan struct{})
}

func (f *fakeMeta) Served(v int64) {
	f.mu.Lock()
	f.served = append(f.served, v)
	f.mu.Unlock()
	f.served1 <- v
}

func (f *fakeMeta) AlterISR(context.Context, string, int32, replication.ISRProposal) error {
	return context.Canceled
}
func (f *fakeMeta) PartitionEpoch(string, int32) int32 { return 0 }
func (f *fakeMeta) ReportOffline(m map[string][]int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.offline = m
}

func (f *fakeMeta) reportedOffline() map[string][]int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.offline
}

// image builds an image with the given topics, each partition placed on
// replicas with the first as leader.
func image(version int64, topics ...*metadata.Topic) *metadata.Image {
	img := &metadata.Image{
		Topics: map[string]*metadata.Topic{}, TopicsByID: map[[16]byte]*metadata.Topic{},
		Brokers: map[int32]metadata.Broker{1: {NodeID: 1, Host: "127.0.0.1", Port: 1}, 2: {NodeID: 2, Host: "127.0.0.1", Port: 1}},
		Version: version,
	}
	for _, t := range topics {
		img.Topics[t.Name] = t
		img.TopicsByID[t.ID] = t
	}
	return img
}

func topic(name string, id byte, replicas ...[]int32) *metadata.Topic {
	t := &metadata.Topic{Name: name, ID: [16]byte{id}}
	for i, r := range replicas {
		t.Partitions = append(t.Partitions, metadata.Partition{Index: int32(i), Leader: r[0], LeaderEpoch: 1, Replicas: r, ISR: r})
	}
	return t
}

func openHost(t *testing.T, meta *fakeMeta) (*Host, *storage.Manager) {
	t.Helper()
	logs, err := storage.OpenManager(storage.ManagerOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(Config{NodeID: 1}, meta, logs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		logs.Close()
	})
	return h, logs
}

// waitServed waits until the host reports version v served.
func waitServed(t *testing.T, meta *fakeMeta, v int64) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-meta.served1:
			if got >= v {
				return
			}
		case <-timeout:
			t.Fatalf("version %d never served", v)
		}
	}
}

// TestHostFollowsImages: the host opens, configures and deletes logs from
// metadata images alone, with no request asking for a partition, and
// reports each image served only after applying it.
func TestHostFollowsImages(t *testing.T) {
	meta := newFakeMeta(image(1))
	h, logs := openHost(t, meta)
	waitServed(t, meta, 1)
	if n := len(h.All()); n != 0 {
		t.Fatalf("hosting %d partitions of an empty image", n)
	}

	// A topic placed here (partitions 0 and 2) and on another broker
	// (partition 1): only this broker's replicas are opened.
	a := topic("a", 1, []int32{1}, []int32{2}, []int32{1})
	meta.publish(image(2, a))
	waitServed(t, meta, 2)
	for _, idx := range []int32{0, 2} {
		id := storage.PartitionID{Topic: "a", Partition: idx}
		p := h.Get(id)
		if p == nil || logs.Get(id) == nil || p.Log() != logs.Get(id) {
			t.Fatalf("partition %v not opened", id)
		}
		if p.TopicID() != a.ID || p.Config() == nil || p.LeaderState() != nil {
			t.Fatalf("partition %v: topic ID %x, config %v, leader state %v", id, p.TopicID(), p.Config(), p.LeaderState())
		}
	}
	if h.Get(storage.PartitionID{Topic: "a", Partition: 1}) != nil {
		t.Fatal("opened a partition placed on another broker")
	}
	if h.Image().Version != 2 {
		t.Fatalf("applied image version %d", h.Image().Version)
	}

	// A config change reaches the open log.
	b := topic("a", 1, []int32{1}, []int32{2}, []int32{1})
	b.Configs = map[string]string{"retention.ms": "1234"}
	meta.publish(image(3, b))
	waitServed(t, meta, 3)
	if got := h.Get(storage.PartitionID{Topic: "a", Partition: 0}).Config().Log.RetentionMs; got != 1234 {
		t.Fatalf("retention.ms %d after the change", got)
	}

	// The topic is recreated under the same name: the old logs go, new
	// ones open.
	old := h.Get(storage.PartitionID{Topic: "a", Partition: 0})
	c := topic("a", 2, []int32{1})
	meta.publish(image(4, c))
	waitServed(t, meta, 4)
	p := h.Get(storage.PartitionID{Topic: "a", Partition: 0})
	if p == nil || p == old || p.TopicID() != c.ID || h.Hosts(old) {
		t.Fatal("recreated topic still served by the old partition")
	}
	if h.Get(storage.PartitionID{Topic: "a", Partition: 2}) != nil || logs.Get(storage.PartitionID{Topic: "a", Partition: 2}) != nil {
		t.Fatal("partition of the deleted topic still hosted")
	}

	// Deleted: nothing hosted, nothing in the log manager.
	meta.publish(image(5))
	waitServed(t, meta, 5)
	if len(h.All()) != 0 || len(logs.Partitions()) != 0 {
		t.Fatalf("after deletion: hosted %d, logs %v", len(h.All()), logs.Partitions())
	}
}

// TestHostRoles: a replicated partition led here gets a LeaderState whose
// waiters end when leadership moves away.
func TestHostRoles(t *testing.T) {
	a := topic("a", 1, []int32{1, 2})
	meta := newFakeMeta(image(1, a))
	h, _ := openHost(t, meta)
	p := h.Get(storage.PartitionID{Topic: "a", Partition: 0})
	if p == nil || p.LeaderState() == nil {
		t.Fatal("led replicated partition has no LeaderState")
	}
	if err := p.CheckReplicas(2); err != nil {
		t.Fatalf("ISR of 2 refused min.insync.replicas=2: %v", err)
	}
	if err := h.FollowerFetched(p, 3, 0, 0); err != ErrNotLeader {
		t.Fatalf("fetch from a non-replica: %v", err)
	}

	// A waiter for an offset the follower never reaches ends with
	// ErrNotLeader once the leadership moves to broker 2.
	done := make(chan error, 1)
	go func() { done <- h.WaitReplicated(p, 1, 1, time.Minute) }()
	moved := topic("a", 1, []int32{2, 1})
	moved.Partitions[0].LeaderEpoch = 2
	meta.publish(image(2, moved))
	select {
	case err := <-done:
		if err != ErrNotLeader {
			t.Fatalf("waiter ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("waiter not woken by the leadership change")
	}
	if p.LeaderState() != nil {
		t.Fatal("follower kept a LeaderState")
	}
}

// TestOffline: a hosted partition whose log failed on an I/O error is
// listed offline and reported, until it recovers by itself once the
// Manager may try (space is back).
func TestOffline(t *testing.T) {
	fsys := vfs.NewMem()
	var canRecover atomic.Bool
	logs, err := storage.OpenManager(storage.ManagerOptions{Dir: "/data", FS: fsys, CanRecover: canRecover.Load})
	if err != nil {
		t.Fatal(err)
	}
	meta := newFakeMeta(image(1, topic("a", 1, []int32{1}, []int32{1})))
	h, err := New(Config{NodeID: 1}, meta, logs)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		h.Close()
		logs.Close()
	}()
	if off := h.Offline(); len(off) != 0 {
		t.Fatalf("offline before any failure: %v", off)
	}
	id := storage.PartitionID{Topic: "a", Partition: 1}
	fsys.SetInjector(func(op vfs.Op, name string) error {
		if op == vfs.OpWrite && strings.Contains(name, "a-1") && strings.HasSuffix(name, ".log") {
			return syscall.ENOSPC
		}
		return nil
	})
	h0 := recordbatch.Header{Magic: 2, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	batch, err := recordbatch.Build(h0, []recordbatch.Record{{Value: []byte("v")}}, recordbatch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get(id).Log().Append(batch, storage.AppendInput{}); !errors.Is(err, storage.ErrStorage) {
		t.Fatalf("append on a full disk: %v", err)
	}
	fsys.SetInjector(nil)
	off := h.Offline()
	if len(off) != 1 || off[0].ID != id || !errors.Is(off[0].Err, syscall.ENOSPC) {
		t.Fatalf("offline: %v", off)
	}
	if !h.IsOffline(id) || h.IsOffline(storage.PartitionID{Topic: "a", Partition: 0}) {
		t.Fatal("IsOffline disagrees with Offline")
	}
	// The ticker reports it to the controller.
	deadline := time.Now().Add(10 * time.Second)
	for !slices.Equal(meta.reportedOffline()["a"], []int32{1}) {
		if time.Now().After(deadline) {
			t.Fatalf("offline replica not reported: %v", meta.reportedOffline())
		}
		time.Sleep(10 * time.Millisecond)
	}
	canRecover.Store(true)
	for len(meta.reportedOffline()["a"]) != 0 || h.IsOffline(id) {
		if time.Now().After(deadline) {
			t.Fatalf("offline replica not recovered: %v", meta.reportedOffline())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := h.Get(id).Log().Append(batch, storage.AppendInput{}); err != nil {
		t.Fatalf("append after recovery: %v", err)
	}
}
