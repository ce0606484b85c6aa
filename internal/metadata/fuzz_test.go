package metadata

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// FuzzSnapshot feeds arbitrary bytes to OpenLocal as the snapshot file. It
// must either fail (leaving the file as it was) or yield a store whose image
// keeps every invariant, accepts changes and survives a reopen unchanged.
func FuzzSnapshot(f *testing.F) {
	for _, seed := range snapshotSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := testConfig(t.TempDir())
		path := filepath.Join(cfg.Dir, snapshotFileName)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := OpenLocal(cfg)
		if err != nil {
			if got, _ := os.ReadFile(path); !bytes.Equal(got, data) {
				t.Fatalf("failed open (%v) modified the snapshot", err)
			}
			return
		}
		defer l.Close()
		checkImage(t, l.Image())
		if _, err := l.AllocateProducerID(context.Background()); err != nil && !errors.Is(err, errProducerIDsExhausted) {
			t.Fatalf("AllocateProducerID: %v", err)
		}
		if _, err := l.CreateTopic(context.Background(), CreateTopicRequest{Name: "fuzz-new", Partitions: 1, ReplicationFactor: 1}); err != nil &&
			!errors.Is(err, ErrTopicExists) && !errors.Is(err, errEpochExhausted) {
			t.Fatalf("CreateTopic: %v", err)
		}
		want := l.Image()
		checkImage(t, want)
		l.Close()
		l2, err := OpenLocal(cfg)
		if err != nil {
			t.Fatalf("reopen after a successful open: %v", err)
		}
		defer l2.Close()
		if !reflect.DeepEqual(l2.Image(), want) {
			t.Fatal("image changed across reopen")
		}
	})
}

// FuzzSnapshotBody frames arbitrary bytes as a correctly checksummed
// snapshot body, so the fuzzer reaches the JSON and consistency checks
// that the CRC otherwise guards. A body that decodes must re-encode to an
// equivalent state.
func FuzzSnapshotBody(f *testing.F) {
	for _, seed := range snapshotSeeds(f) {
		if body, err := unframeSnapshot(seed); err == nil {
			f.Add(body)
		}
	}
	broker := Broker{NodeID: testNode, Host: "127.0.0.1", Port: 9092}
	f.Fuzz(func(t *testing.T, body []byte) {
		st, err := decodeSnapshot(frameBody(nil, body), broker)
		if err != nil {
			return
		}
		checkImage(t, st.image)
		again, err := encodeSnapshot(st, 0)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		st2, err := decodeSnapshot(again, broker)
		if err != nil {
			t.Fatalf("decode of re-encoded snapshot: %v", err)
		}
		if !reflect.DeepEqual(st, st2) {
			t.Fatal("state changed across re-encoding")
		}
	})
}

// snapshotSeeds returns snapshot files: valid ones written by a real store
// and damaged variants. The committed corpus in testdata/fuzz holds the
// same kinds of input.
func snapshotSeeds(tb testing.TB) [][]byte {
	cfg := testConfig(tb.(interface{ TempDir() string }).TempDir())
	l, err := OpenLocal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(cfg.Dir, snapshotFileName)
	read := func() []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	empty := read()
	ctx := context.Background()
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "orders", Partitions: 3, ReplicationFactor: 1,
		Configs: map[string]string{"cleanup.policy": "compact", "retention.ms": "-1"}}); err != nil {
		tb.Fatal(err)
	}
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "__consumer_offsets", Partitions: 2, ReplicationFactor: -1}); err != nil {
		tb.Fatal(err)
	}
	if _, err := l.AllocateProducerID(ctx); err != nil {
		tb.Fatal(err)
	}
	full := read()
	l.Close()
	return [][]byte{
		empty,
		full,
		nil,
		[]byte(snapshotMagic),
		full[:len(full)/2],
		append(slices.Clone(full[:snapshotHeaderSize]), '{', '}'),
		frameBody(nil, []byte(`{}`)),
		frameBody(nil, []byte(`null`)),
	}
}

// checkImage asserts the invariants every published image keeps.
func checkImage(t *testing.T, img *Image) {
	t.Helper()
	if img == nil || img.Epoch < 1 || img.ControllerID != testNode || len(img.Brokers) != 1 {
		t.Fatalf("bad image header: %+v", img)
	}
	if _, err := ParseID(img.ClusterID); err != nil {
		t.Fatal(err)
	}
	if len(img.Topics) != len(img.TopicsByID) {
		t.Fatalf("%d topics by name, %d by ID", len(img.Topics), len(img.TopicsByID))
	}
	names := img.TopicNames()
	if !slices.IsSorted(names) || len(names) != len(img.Topics) {
		t.Fatalf("TopicNames %v", names)
	}
	for name, topic := range img.Topics {
		if topic.Name != name || img.TopicsByID[topic.ID] != topic || topic.ID == ([16]byte{}) {
			t.Fatalf("topic %q inconsistent: %+v", name, topic)
		}
		if err := ValidateTopicName(name); err != nil || topic.Internal != IsInternalTopic(name) || len(topic.Partitions) == 0 {
			t.Fatalf("topic %q: %v %+v", name, err, topic)
		}
		for i, p := range topic.Partitions {
			if p.Index != int32(i) {
				t.Fatalf("topic %q partition %d has index %d", name, i, p.Index)
			}
			if err := checkPartition(p, img.Brokers); err != nil {
				t.Fatalf("topic %q partition %d: %v", name, i, err)
			}
		}
	}
}
