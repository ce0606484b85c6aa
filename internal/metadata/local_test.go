package metadata

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testNode = 1

func testConfig(dir string) LocalConfig {
	return LocalConfig{
		Dir:    dir,
		NodeID: testNode,
		Host:   "127.0.0.1",
		Port:   9092,
		Now:    func() time.Time { return time.UnixMilli(1700000000000) },
	}
}

func open(t testing.TB, cfg LocalConfig) *Local {
	t.Helper()
	l, err := OpenLocal(cfg)
	if err != nil {
		t.Fatalf("OpenLocal: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func create(t testing.TB, l *Local, name string, partitions int32) *Topic {
	t.Helper()
	topic, err := l.CreateTopic(context.Background(), CreateTopicRequest{Name: name, Partitions: partitions, ReplicationFactor: -1})
	if err != nil {
		t.Fatalf("CreateTopic(%q): %v", name, err)
	}
	return topic
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ptr(s string) *string { return &s }

func TestOpenNewCluster(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "__meta")
	cfg := testConfig(dir)
	cfg.Rack = "r1"
	l := open(t, cfg)
	img := l.Image()
	if len(img.ClusterID) != 22 {
		t.Fatalf("cluster ID %q is not 22 chars", img.ClusterID)
	}
	if _, err := ParseID(img.ClusterID); err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(img.ClusterID, "-") {
		t.Fatalf("cluster ID %q starts with '-'", img.ClusterID)
	}
	want := Broker{NodeID: testNode, Host: "127.0.0.1", Port: 9092, Rack: ptr("r1")}
	if !reflect.DeepEqual(img.Brokers, map[int32]Broker{testNode: want}) {
		t.Fatalf("brokers %+v", img.Brokers)
	}
	if img.ControllerID != testNode || img.Epoch != 1 || len(img.Topics) != 0 || len(img.TopicsByID) != 0 {
		t.Fatalf("image %+v", img)
	}
	if _, err := os.Stat(filepath.Join(dir, snapshotFileName)); err != nil {
		t.Fatalf("snapshot not written at open: %v", err)
	}
	// The cluster ID is generated once.
	l.Close()
	if got := open(t, cfg).Image().ClusterID; got != img.ClusterID {
		t.Fatalf("cluster ID changed across reopen: %s -> %s", img.ClusterID, got)
	}
	if other := open(t, testConfig(t.TempDir())).Image().ClusterID; other == img.ClusterID {
		t.Fatalf("two new clusters share ID %s", other)
	}
}

func TestConfigValidate(t *testing.T) {
	base := testConfig("/tmp/x")
	if err := base.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mut := range map[string]func(*LocalConfig){
		"no dir":         func(c *LocalConfig) { c.Dir = "" },
		"negative node":  func(c *LocalConfig) { c.NodeID = -1 },
		"no host":        func(c *LocalConfig) { c.Host = "" },
		"negative port":  func(c *LocalConfig) { c.Port = -1 },
		"port too big":   func(c *LocalConfig) { c.Port = 65536 },
		"partitions":     func(c *LocalConfig) { c.DefaultPartitions = -3 },
		"rf":             func(c *LocalConfig) { c.DefaultReplicationFactor = -1 },
		"max partitions": func(c *LocalConfig) { c.MaxPartitionsPerTopic = -1 },
	} {
		c := base
		mut(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
		if _, err := OpenLocal(c); err == nil {
			t.Errorf("%s: OpenLocal accepted %+v", name, c)
		}
	}
}

func TestCreateTopic(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.DefaultPartitions = 3
	l := open(t, cfg)
	changed := l.Changes()
	topic, err := l.CreateTopic(context.Background(), CreateTopicRequest{
		Name: "orders", Partitions: -1, ReplicationFactor: -1, Configs: map[string]string{"retention.ms": "1000"},
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("Changes channel not closed by CreateTopic")
	}
	if topic.ID == ([16]byte{}) || topic.ID[6]>>4 != 4 || topic.ID[8]>>6 != 2 {
		t.Fatalf("topic ID %x is not a v4 UUID", topic.ID)
	}
	if topic.Internal {
		t.Fatal("orders marked internal")
	}
	if len(topic.Partitions) != 3 {
		t.Fatalf("%d partitions, want DefaultPartitions=3", len(topic.Partitions))
	}
	for i, p := range topic.Partitions {
		want := Partition{Index: int32(i), Leader: testNode, Replicas: []int32{testNode}, ISR: []int32{testNode}}
		if !reflect.DeepEqual(p, want) {
			t.Fatalf("partition %d = %+v, want %+v", i, p, want)
		}
	}
	img := l.Image()
	if img.Epoch != 2 || img.Topic("orders") != topic || img.TopicByID(topic.ID) != topic {
		t.Fatalf("image after create: epoch %d, topic %p vs %p", img.Epoch, img.Topic("orders"), topic)
	}
	if img.Topic("orders").Configs["retention.ms"] != "1000" {
		t.Fatalf("configs %v", img.Topic("orders").Configs)
	}
	if p, ok := img.Partition("orders", 2); !ok || p.Index != 2 {
		t.Fatalf("Partition(orders, 2) = %+v, %v", p, ok)
	}
	for _, p := range []int32{-1, 3} {
		if _, ok := img.Partition("orders", p); ok {
			t.Fatalf("Partition(orders, %d) exists", p)
		}
	}
	if _, ok := img.Partition("nope", 0); ok {
		t.Fatal("Partition of unknown topic exists")
	}

	internal := create(t, l, "__consumer_offsets", 1)
	if !internal.Internal {
		t.Fatal("__consumer_offsets not internal")
	}
	create(t, l, "a-topic", 1)
	if got := l.Image().TopicNames(); !slices.Equal(got, []string{"__consumer_offsets", "a-topic", "orders"}) {
		t.Fatalf("TopicNames = %v", got)
	}
	// The earlier image is untouched by later changes.
	if len(img.Topics) != 1 || len(img.TopicsByID) != 1 || img.Epoch != 2 {
		t.Fatalf("old image mutated: %+v", img)
	}
}

func TestNilImageHelpers(t *testing.T) {
	var img *Image
	if img.Topic("x") != nil || img.TopicByID([16]byte{1}) != nil || img.TopicNames() != nil {
		t.Fatal("nil image helpers returned something")
	}
	if _, ok := img.Partition("x", 0); ok {
		t.Fatal("nil image has a partition")
	}
}

func TestCreateDeleteRecreate(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	ctx := context.Background()
	first := create(t, l, "t", 2)
	changed := l.Changes()
	if err := l.DeleteTopic(ctx, "t"); err != nil {
		t.Fatal(err)
	}
	<-changed // closed, or the test hangs (and fails on timeout)
	img := l.Image()
	if img.Topic("t") != nil || img.TopicByID(first.ID) != nil || img.Epoch != 3 {
		t.Fatalf("topic still present after delete: %+v", img)
	}
	if err := l.DeleteTopic(ctx, "t"); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("second delete: %v, want ErrUnknownTopic", err)
	}
	second := create(t, l, "t", 1)
	if second.ID == first.ID {
		t.Fatal("recreated topic reused the old ID")
	}
	if len(l.Image().Topic("t").Partitions) != 1 {
		t.Fatal("recreated topic kept old partitions")
	}
}

func TestPersistenceAcrossReopen(t *testing.T) {
	cfg := testConfig(t.TempDir())
	ctx := context.Background()
	l := open(t, cfg)
	create(t, l, "a", 2)
	create(t, l, "__transaction_state", 1)
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "b", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"cleanup.policy": "compact"}}); err != nil {
		t.Fatal(err)
	}
	if err := l.CreatePartitions(ctx, "a", 5, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := l.AlterTopicConfigs(ctx, "a", []ConfigChange{{Name: "retention.ms", Value: ptr("5")}}, true, false); err != nil {
		t.Fatal(err)
	}
	create(t, l, "gone", 1)
	if err := l.DeleteTopic(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	before := l.Image()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	after := open(t, cfg).Image()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("image changed across reopen:\nbefore %+v\nafter  %+v", before, after)
	}
	if !after.Topic("__transaction_state").Internal {
		t.Fatal("internal flag lost")
	}
}

func TestProducerIDsUniqueAcrossRestarts(t *testing.T) {
	cfg := testConfig(t.TempDir())
	ctx := context.Background()
	seen := map[int64]bool{}
	last := int64(-1)
	for round := 0; round < 4; round++ {
		l, err := OpenLocal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		// Crossing a block boundary in some rounds and not others covers
		// both a fresh reservation and a restart mid-block.
		n := 10 + round*ProducerIDBlockSize/2
		for i := 0; i < n; i++ {
			id, err := l.AllocateProducerID(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if id <= last || seen[id] {
				t.Fatalf("round %d: producer ID %d after %d (seen before: %v)", round, id, last, seen[id])
			}
			seen[id], last = true, id
		}
		if round%2 == 0 {
			l.Close()
		} // odd rounds simulate a crash: the store is abandoned unclosed
	}
	if first := slices.Min(slices.Collect(maps.Keys(seen))); first != 0 {
		t.Fatalf("first producer ID %d, want 0", first)
	}
}

func TestProducerIDsDoNotChangeImage(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	changed := l.Changes()
	if _, err := l.AllocateProducerID(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Fatal("AllocateProducerID published an image change")
	default:
	}
	if l.Image().Epoch != 1 {
		t.Fatalf("epoch %d", l.Image().Epoch)
	}
}

func TestValidateOnlyChangesNothing(t *testing.T) {
	cfg := testConfig(t.TempDir())
	ctx := context.Background()
	l := open(t, cfg)
	create(t, l, "existing", 1)
	snap := filepath.Join(cfg.Dir, snapshotFileName)
	fileBefore := readFile(t, snap)
	imgBefore := l.Image()
	changed := l.Changes()

	topic, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "new", Partitions: 4, ReplicationFactor: 1,
		Configs: map[string]string{"k": "v"}, ValidateOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if topic.Name != "new" || len(topic.Partitions) != 4 || topic.Configs["k"] != "v" || topic.ID != ([16]byte{}) {
		t.Fatalf("validate-only result %+v", topic)
	}
	if err := l.CreatePartitions(ctx, "existing", 3, nil, true); err != nil {
		t.Fatal(err)
	}
	if err := l.AlterTopicConfigs(ctx, "existing", []ConfigChange{{Name: "k", Value: ptr("v")}}, false, true); err != nil {
		t.Fatal(err)
	}
	if err := l.AlterTopicConfigs(ctx, "existing", []ConfigChange{{Name: "k", Value: ptr("v")}}, true, true); err != nil {
		t.Fatal(err)
	}
	// Validate-only still reports errors.
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "existing", Partitions: 1, ReplicationFactor: 1, ValidateOnly: true}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("validate-only create of existing topic: %v", err)
	}
	if err := l.CreatePartitions(ctx, "existing", 1, nil, true); !errors.Is(err, ErrInvalidPartitions) {
		t.Fatalf("validate-only create partitions: %v", err)
	}

	if l.Image() != imgBefore {
		t.Fatal("validate-only request changed the image")
	}
	if !bytes.Equal(readFile(t, snap), fileBefore) {
		t.Fatal("validate-only request rewrote the snapshot")
	}
	select {
	case <-changed:
		t.Fatal("validate-only request signalled a change")
	default:
	}
}

func TestCreateTopicErrors(t *testing.T) {
	errValidator := errors.New("Unknown topic config name: bogus")
	cfg := testConfig(t.TempDir())
	cfg.MaxPartitionsPerTopic = 50
	cfg.ValidateConfigs = func(m map[string]string) error {
		if _, ok := m["bogus"]; ok {
			return errValidator
		}
		return nil
	}
	l := open(t, cfg)
	create(t, l, "taken", 1)
	epoch := l.Image().Epoch

	req := func(name string, p int32, rf int16) CreateTopicRequest {
		return CreateTopicRequest{Name: name, Partitions: p, ReplicationFactor: rf}
	}
	withAssign := func(a map[int32][]int32) CreateTopicRequest {
		return CreateTopicRequest{Name: "x", Partitions: -1, ReplicationFactor: -1, Assignment: a}
	}
	cases := []struct {
		name    string
		req     CreateTopicRequest
		want    error
		message string // substring of ErrorMessage
	}{
		{"empty name", req("", 1, 1), ErrInvalidTopic, "can't be empty"},
		{"dot", req(".", 1, 1), ErrInvalidTopic, `cannot be "." or ".."`},
		{"dotdot", req("..", 1, 1), ErrInvalidTopic, `cannot be "." or ".."`},
		{"too long", req(strings.Repeat("a", 250), 1, 1), ErrInvalidTopic, "longer than 249"},
		{"slash", req("a/b", 1, 1), ErrInvalidTopic, "character other than"},
		{"space", req("a b", 1, 1), ErrInvalidTopic, "character other than"},
		{"non-ascii", req("tópico", 1, 1), ErrInvalidTopic, "character other than"},
		{"exists", req("taken", 1, 1), ErrTopicExists, "Topic 'taken' already exists."},
		{"zero partitions", req("x", 0, 1), ErrInvalidPartitions, "larger than 0"},
		{"negative partitions", req("x", -2, 1), ErrInvalidPartitions, "larger than 0"},
		{"too many partitions", req("x", 51, 1), ErrInvalidPartitions, "limit of 50"},
		{"zero rf", req("x", 1, 0), ErrInvalidReplicationFactor, "larger than 0"},
		{"negative rf", req("x", 1, -2), ErrInvalidReplicationFactor, "larger than 0"},
		{"rf above brokers", req("x", 1, 3), ErrInvalidReplicationFactor, "only 1 broker(s) are registered"},
		{"assignment with count", CreateTopicRequest{Name: "x", Partitions: 1, ReplicationFactor: -1,
			Assignment: map[int32][]int32{0: {testNode}}}, ErrInvalidRequest, "Both"},
		{"assignment with rf", CreateTopicRequest{Name: "x", Partitions: -1, ReplicationFactor: 1,
			Assignment: map[int32][]int32{0: {testNode}}}, ErrInvalidRequest, "Both"},
		{"empty assignment", withAssign(map[int32][]int32{}), ErrInvalidReplicaAssignment, "empty"},
		{"assignment gap", withAssign(map[int32][]int32{0: {testNode}, 2: {testNode}}), ErrInvalidReplicaAssignment, "consecutive"},
		{"assignment negative", withAssign(map[int32][]int32{-1: {testNode}}), ErrInvalidReplicaAssignment, "consecutive"},
		{"assignment unknown broker", withAssign(map[int32][]int32{0: {7}}), ErrInvalidReplicaAssignment, "broker 7"},
		{"assignment duplicate", withAssign(map[int32][]int32{0: {testNode, testNode}}), ErrInvalidReplicaAssignment, "more than once"},
		{"assignment empty list", withAssign(map[int32][]int32{0: {testNode}, 1: {}}), ErrInvalidReplicaAssignment, "empty replica list"},
		{"assignment nil list", withAssign(map[int32][]int32{0: nil}), ErrInvalidReplicaAssignment, "empty replica list"},
		{"assignment too large", withAssign(func() map[int32][]int32 {
			m := map[int32][]int32{}
			for i := int32(0); i < 51; i++ {
				m[i] = []int32{testNode}
			}
			return m
		}()), ErrInvalidPartitions, "limit of 50"},
		{"invalid config", CreateTopicRequest{Name: "x", Partitions: 1, ReplicationFactor: 1,
			Configs: map[string]string{"bogus": "1"}}, ErrInvalidConfig, errValidator.Error()},
	}
	for _, tc := range cases {
		for _, validateOnly := range []bool{false, true} {
			tc.req.ValidateOnly = validateOnly
			_, err := l.CreateTopic(context.Background(), tc.req)
			if !errors.Is(err, tc.want) {
				t.Errorf("%s (validateOnly=%v): err %v, want %v", tc.name, validateOnly, err, tc.want)
				continue
			}
			if msg := ErrorMessage(err); !strings.Contains(msg, tc.message) || strings.HasPrefix(msg, "metadata:") {
				t.Errorf("%s: message %q, want it to contain %q", tc.name, msg, tc.message)
			}
		}
	}
	if _, err := l.CreateTopic(context.Background(), CreateTopicRequest{Name: "x", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"bogus": "1"}}); !errors.Is(err, errValidator) {
		t.Errorf("config error does not wrap the validator's error: %v", err)
	}
	if got := l.Image().Epoch; got != epoch {
		t.Fatalf("failed creates changed the epoch: %d -> %d", epoch, got)
	}
	if l.Image().Topic("x") != nil {
		t.Fatal("failed create left a topic")
	}
}

func TestCreateTopicEdgeCases(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.DefaultReplicationFactor = 3
	l := open(t, cfg)
	ctx := context.Background()
	// A default replication factor the cluster cannot meet fails like Kafka.
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "x", Partitions: 1, ReplicationFactor: -1}); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("RF -1 with default 3: %v", err)
	}
	// The longest legal name and every legal character.
	for _, name := range []string{strings.Repeat("a", 249), "Az09._-", "a.b", "a_b"} {
		if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: name, Partitions: 1, ReplicationFactor: 1}); err != nil {
			t.Fatalf("create %q: %v", name, err)
		}
	}
	// A manual assignment decides the partition count.
	topic, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "manual", Partitions: -1, ReplicationFactor: -1,
		Assignment: map[int32][]int32{1: {testNode}, 0: {testNode}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(topic.Partitions) != 2 || topic.Partitions[1].Leader != testNode {
		t.Fatalf("manual topic %+v", topic)
	}
	// The request's maps are copied, not retained.
	configs := map[string]string{"a": "1"}
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "copied", Partitions: 1, ReplicationFactor: 1, Configs: configs}); err != nil {
		t.Fatal(err)
	}
	configs["a"] = "2"
	if l.Image().Topic("copied").Configs["a"] != "1" {
		t.Fatal("store retained the caller's config map")
	}
}

func TestCreatePartitions(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.MaxPartitionsPerTopic = 10
	l := open(t, cfg)
	ctx := context.Background()
	create(t, l, "t", 2)
	orig := l.Image().Topic("t")

	cases := []struct {
		name   string
		total  int32
		assign [][]int32
		want   error
	}{
		{"same count", 2, nil, ErrInvalidPartitions},
		{"decrease", 1, nil, ErrInvalidPartitions},
		{"negative", -1, nil, ErrInvalidPartitions},
		{"above limit", 11, nil, ErrInvalidPartitions},
		{"too few assignments", 4, [][]int32{{testNode}}, ErrInvalidReplicaAssignment},
		{"too many assignments", 3, [][]int32{{testNode}, {testNode}}, ErrInvalidReplicaAssignment},
		{"unknown broker", 3, [][]int32{{9}}, ErrInvalidReplicaAssignment},
		{"duplicate", 3, [][]int32{{testNode, testNode}}, ErrInvalidReplicaAssignment},
		{"empty list", 3, [][]int32{{}}, ErrInvalidReplicaAssignment},
		{"empty assignment", 3, [][]int32{}, ErrInvalidReplicaAssignment},
	}
	for _, tc := range cases {
		if err := l.CreatePartitions(ctx, "t", tc.total, tc.assign, false); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := l.CreatePartitions(ctx, "nope", 3, nil, false); !errors.Is(err, ErrUnknownTopic) {
		t.Errorf("unknown topic: %v", err)
	}
	if l.Image().Topic("t") != orig {
		t.Fatal("failed CreatePartitions changed the topic")
	}

	if err := l.CreatePartitions(ctx, "t", 3, [][]int32{{testNode}}, false); err != nil {
		t.Fatal(err)
	}
	if err := l.CreatePartitions(ctx, "t", 5, nil, false); err != nil {
		t.Fatal(err)
	}
	got := l.Image().Topic("t")
	if len(got.Partitions) != 5 || got.ID != orig.ID {
		t.Fatalf("after CreatePartitions: %+v", got)
	}
	for i, p := range got.Partitions {
		if p.Index != int32(i) || p.Leader != testNode || !slices.Equal(p.ISR, []int32{testNode}) {
			t.Fatalf("partition %d: %+v", i, p)
		}
	}
	if len(orig.Partitions) != 2 {
		t.Fatal("old image's topic was mutated")
	}
}

func TestAlterTopicConfigs(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ValidateConfigs = func(m map[string]string) error {
		if v, ok := m["retention.ms"]; ok && v == "bad" {
			return fmt.Errorf("Invalid value bad for configuration retention.ms")
		}
		return nil
	}
	l := open(t, cfg)
	ctx := context.Background()
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "t", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"a": "1", "b": "2"}}); err != nil {
		t.Fatal(err)
	}
	configs := func() map[string]string { return l.Image().Topic("t").Configs }

	// Incremental: set one, delete one, keep the rest.
	if err := l.AlterTopicConfigs(ctx, "t", []ConfigChange{{Name: "a", Value: ptr("10")}, {Name: "b"}, {Name: "c", Value: ptr("3")}}, true, false); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"a": "10", "c": "3"}; !reflect.DeepEqual(configs(), want) {
		t.Fatalf("after incremental: %v, want %v", configs(), want)
	}
	// Deleting an absent key is fine.
	if err := l.AlterTopicConfigs(ctx, "t", []ConfigChange{{Name: "zzz"}}, true, false); err != nil {
		t.Fatal(err)
	}
	// Non-incremental: the given set replaces everything.
	if err := l.AlterTopicConfigs(ctx, "t", []ConfigChange{{Name: "d", Value: ptr("4")}, {Name: "e"}}, false, false); err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"d": "4"}; !reflect.DeepEqual(configs(), want) {
		t.Fatalf("after non-incremental: %v, want %v", configs(), want)
	}
	// A change to the same values publishes nothing.
	epoch := l.Image().Epoch
	changed := l.Changes()
	if err := l.AlterTopicConfigs(ctx, "t", []ConfigChange{{Name: "d", Value: ptr("4")}}, false, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-changed:
		t.Fatal("no-op alter signalled a change")
	default:
	}

	for _, incremental := range []bool{false, true} {
		err := l.AlterTopicConfigs(ctx, "t", []ConfigChange{{Name: "retention.ms", Value: ptr("bad")}}, incremental, false)
		if !errors.Is(err, ErrInvalidConfig) || ErrorMessage(err) != "Invalid value bad for configuration retention.ms" {
			t.Errorf("invalid value (incremental=%v): %v / %q", incremental, err, ErrorMessage(err))
		}
		err = l.AlterTopicConfigs(ctx, "t", []ConfigChange{{Name: "x", Value: ptr("1")}, {Name: "x"}}, incremental, false)
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("duplicate key (incremental=%v): %v", incremental, err)
		}
		if err := l.AlterTopicConfigs(ctx, "nope", nil, incremental, false); !errors.Is(err, ErrUnknownTopic) {
			t.Errorf("unknown topic: %v", err)
		}
	}
	if l.Image().Epoch != epoch || !reflect.DeepEqual(configs(), map[string]string{"d": "4"}) {
		t.Fatalf("failed alters changed state: epoch %d->%d, configs %v", epoch, l.Image().Epoch, configs())
	}
	// Clearing all overrides.
	if err := l.AlterTopicConfigs(ctx, "t", nil, false, false); err != nil {
		t.Fatal(err)
	}
	if len(configs()) != 0 || configs() == nil {
		t.Fatalf("after clearing: %#v", configs())
	}
}

func TestConcurrentCreatesOfSameTopic(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	topics := make([]*Topic, n)
	for i := range n {
		wg.Go(func() {
			topics[i], errs[i] = l.CreateTopic(context.Background(), CreateTopicRequest{Name: "race", Partitions: 1, ReplicationFactor: 1})
		})
	}
	wg.Wait()
	wins := 0
	for i, err := range errs {
		switch {
		case err == nil:
			wins++
			if l.Image().Topic("race").ID != topics[i].ID {
				t.Fatal("winner's topic is not the stored one")
			}
		case !errors.Is(err, ErrTopicExists):
			t.Fatalf("loser got %v, want ErrTopicExists", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d creates succeeded, want exactly 1", wins)
	}
	if l.Image().Epoch != 2 {
		t.Fatalf("epoch %d, want 2", l.Image().Epoch)
	}
}

func TestConcurrentMixedOperations(t *testing.T) {
	cfg := testConfig(t.TempDir())
	l := open(t, cfg)
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make(chan int64, 400)
	for g := range 4 {
		wg.Go(func() {
			for i := range 5 {
				name := fmt.Sprintf("t%d-%d", g, i)
				if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: name, Partitions: 1, ReplicationFactor: 1}); err != nil {
					t.Error(err)
				}
				_ = l.Image().TopicNames() // concurrent readers
			}
		})
		wg.Go(func() {
			for range 100 {
				id, err := l.AllocateProducerID(ctx)
				if err != nil {
					t.Error(err)
				}
				ids <- id
			}
		})
	}
	wg.Wait()
	close(ids)
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("producer ID %d handed out twice", id)
		}
		seen[id] = true
	}
	img := l.Image()
	if len(img.Topics) != 20 || img.Epoch != 21 {
		t.Fatalf("%d topics, epoch %d", len(img.Topics), img.Epoch)
	}
	l.Close()
	if !reflect.DeepEqual(open(t, cfg).Image(), img) {
		t.Fatal("reopened image differs")
	}
}

func TestCorruptSnapshotIsAnError(t *testing.T) {
	cfg := testConfig(t.TempDir())
	l := open(t, cfg)
	create(t, l, "t", 1)
	l.Close()
	path := filepath.Join(cfg.Dir, snapshotFileName)
	good := readFile(t, path)

	mutations := map[string]func([]byte) []byte{
		"empty":       func(b []byte) []byte { return nil },
		"truncated":   func(b []byte) []byte { return b[:len(b)-1] },
		"header only": func(b []byte) []byte { return b[:snapshotHeaderSize] },
		"extended":    func(b []byte) []byte { return append(b, ' ') },
		"bad magic":   func(b []byte) []byte { b[0] = 'X'; return b },
		"bad version": func(b []byte) []byte { b[5] = 99; return b },
		"bad length":  func(b []byte) []byte { b[9]++; return b },
		"bad crc":     func(b []byte) []byte { b[13]++; return b },
		"flipped body": func(b []byte) []byte {
			b[len(b)/2] ^= 0x20
			return b
		},
	}
	for name, mutate := range mutations {
		bad := mutate(slices.Clone(good))
		if err := os.WriteFile(path, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := OpenLocal(cfg)
		if err == nil {
			l.Close()
			t.Errorf("%s: OpenLocal succeeded", name)
			continue
		}
		if !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("%s: %v, want ErrCorruptSnapshot", name, err)
		}
		if !bytes.Equal(readFile(t, path), bad) {
			t.Errorf("%s: OpenLocal rewrote the corrupt snapshot", name)
		}
	}
}

func TestSnapshotBodyValidation(t *testing.T) {
	broker := Broker{NodeID: testNode, Host: "h", Port: 1}
	id1, id2 := FormatID([16]byte{0: 1, 6: 0x40, 8: 0x80}), FormatID([16]byte{0: 2, 6: 0x40, 8: 0x80})
	cluster := FormatID([16]byte{0: 3})
	part := `{"leader":1,"leader_epoch":0,"replicas":[1],"isr":[1]}`
	topic := func(name, id, parts string) string {
		return fmt.Sprintf(`{"name":%q,"id":%q,"partitions":[%s]}`, name, id, parts)
	}
	body := func(topics ...string) string {
		return fmt.Sprintf(`{"cluster_id":%q,"node_id":1,"epoch":3,"producer_id_block_end":1000,"written_unix_ms":0,"topics":[%s]}`,
			cluster, strings.Join(topics, ","))
	}
	frame := func(b string) []byte { return frameBody(nil, []byte(b)) }
	if st, err := decodeSnapshot(frame(body(topic("a", id1, part))), broker); err != nil || st.image.Topic("a") == nil {
		t.Fatalf("valid body rejected: %v", err)
	}
	bad := map[string]string{
		"not json":          `{`,
		"trailing":          body() + `{}`,
		"unknown field":     strings.Replace(body(), `"epoch"`, `"nope":1,"epoch"`, 1),
		"bad cluster id":    strings.Replace(body(), cluster, "short", 1),
		"zero epoch":        strings.Replace(body(), `"epoch":3`, `"epoch":0`, 1),
		"negative pid":      strings.Replace(body(), `:1000`, `:-1`, 1),
		"bad name":          body(topic("a/b", id1, part)),
		"bad topic id":      body(topic("a", "x", part)),
		"zero topic id":     body(topic("a", FormatID([16]byte{}), part)),
		"no partitions":     body(topic("a", id1, "")),
		"duplicate name":    body(topic("a", id1, part), topic("a", id2, part)),
		"duplicate id":      body(topic("a", id1, part), topic("b", id1, part)),
		"no replicas":       body(topic("a", id1, `{"leader":-1,"leader_epoch":0,"replicas":[],"isr":[]}`)),
		"unknown replica":   body(topic("a", id1, `{"leader":2,"leader_epoch":0,"replicas":[2],"isr":[2]}`)),
		"duplicate replica": body(topic("a", id1, `{"leader":1,"leader_epoch":0,"replicas":[1,1],"isr":[1]}`)),
		"isr not replica":   body(topic("a", id1, `{"leader":1,"leader_epoch":0,"replicas":[1],"isr":[1,2]}`)),
		"duplicate isr":     body(topic("a", id1, `{"leader":1,"leader_epoch":0,"replicas":[1],"isr":[1,1]}`)),
		"leader not in isr": body(topic("a", id1, `{"leader":1,"leader_epoch":0,"replicas":[1],"isr":[]}`)),
		"negative epoch":    body(topic("a", id1, `{"leader":1,"leader_epoch":-1,"replicas":[1],"isr":[1]}`)),
	}
	for name, b := range bad {
		if _, err := decodeSnapshot(frame(b), broker); !errors.Is(err, ErrCorruptSnapshot) {
			t.Errorf("%s: %v, want ErrCorruptSnapshot", name, err)
		}
	}
	// Another node's intact snapshot is refused, but is not called corrupt.
	_, err := decodeSnapshot(frame(strings.Replace(body(), `"node_id":1`, `"node_id":2`, 1)), broker)
	if err == nil || errors.Is(err, ErrCorruptSnapshot) || !strings.Contains(err.Error(), "node.id 2") {
		t.Fatalf("node mismatch: %v", err)
	}
}

func TestReopenWithOtherNodeIDFails(t *testing.T) {
	cfg := testConfig(t.TempDir())
	open(t, cfg).Close()
	cfg.NodeID = 2
	if l, err := OpenLocal(cfg); err == nil {
		l.Close()
		t.Fatal("opened another node's metadata")
	}
}

func TestTornTempFileIsIgnored(t *testing.T) {
	cfg := testConfig(t.TempDir())
	tmp := filepath.Join(cfg.Dir, snapshotTempName)
	// A crash during the very first write leaves only a temp file.
	if err := os.WriteFile(tmp, []byte("SBMD\x00\x01garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	l := open(t, cfg)
	create(t, l, "t", 1)
	want := l.Image()
	l.Close()
	// A crash during a later write leaves a torn temp next to a good file.
	if err := os.WriteFile(tmp, []byte("SBMD"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := open(t, cfg).Image(); !reflect.DeepEqual(got, want) {
		t.Fatalf("image after torn temp: %+v", got)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp file not removed: %v", err)
	}
}

func TestFailedWriteChangesNothing(t *testing.T) {
	cfg := testConfig(t.TempDir())
	ctx := context.Background()
	l := open(t, cfg)
	create(t, l, "t", 1)
	if _, err := l.AllocateProducerID(ctx); err != nil {
		t.Fatal(err)
	}
	errDisk := errors.New("disk full")
	realWrite := l.write
	l.write = func([]byte) error { return errDisk }
	img := l.Image()
	changed := l.Changes()

	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "u", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, errDisk) {
		t.Fatalf("create: %v", err)
	}
	if err := l.DeleteTopic(ctx, "t"); !errors.Is(err, errDisk) {
		t.Fatalf("delete: %v", err)
	}
	if err := l.CreatePartitions(ctx, "t", 2, nil, false); !errors.Is(err, errDisk) {
		t.Fatalf("create partitions: %v", err)
	}
	if err := l.AlterTopicConfigs(ctx, "t", []ConfigChange{{Name: "a", Value: ptr("1")}}, true, false); !errors.Is(err, errDisk) {
		t.Fatalf("alter: %v", err)
	}
	// Exhaust the block so the next allocation must reserve, and fail.
	var last int64
	for i := 1; i < ProducerIDBlockSize; i++ {
		id, err := l.AllocateProducerID(ctx)
		if err != nil {
			t.Fatalf("allocation within the reserved block needed a write: %v", err)
		}
		last = id
	}
	if _, err := l.AllocateProducerID(ctx); !errors.Is(err, errDisk) {
		t.Fatalf("allocate beyond block: %v", err)
	}
	if l.Image() != img {
		t.Fatal("failed writes changed the image")
	}
	select {
	case <-changed:
		t.Fatal("failed writes signalled a change")
	default:
	}
	l.write = realWrite
	id, err := l.AllocateProducerID(ctx)
	if err != nil || id != last+1 {
		t.Fatalf("allocation after recovery: %d, %v (last %d)", id, err, last)
	}
	l.Close()
	if got := open(t, cfg).Image(); !reflect.DeepEqual(got, img) {
		t.Fatal("disk state differs from the last acknowledged image")
	}
}

func TestClosed(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	ctx := context.Background()
	create(t, l, "t", 1)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if l.Image().Topic("t") == nil {
		t.Fatal("Image unusable after Close")
	}
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "u", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, ErrClosed) {
		t.Errorf("create: %v", err)
	}
	if err := l.DeleteTopic(ctx, "t"); !errors.Is(err, ErrClosed) {
		t.Errorf("delete: %v", err)
	}
	if err := l.CreatePartitions(ctx, "t", 2, nil, false); !errors.Is(err, ErrClosed) {
		t.Errorf("create partitions: %v", err)
	}
	if err := l.AlterTopicConfigs(ctx, "t", nil, false, false); !errors.Is(err, ErrClosed) {
		t.Errorf("alter: %v", err)
	}
	if _, err := l.AllocateProducerID(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("allocate: %v", err)
	}
}

func TestContextCancellation(t *testing.T) {
	l := open(t, testConfig(t.TempDir()))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.CreateTopic(ctx, CreateTopicRequest{Name: "t", Partitions: 1, ReplicationFactor: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("create with cancelled ctx: %v", err)
	}
	if l.Image().Topic("t") != nil {
		t.Fatal("cancelled create took effect")
	}

	// A caller waiting behind another mutation gives up when its ctx ends.
	l.sem <- struct{}{} // stand in for a long mutation
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := l.AllocateProducerID(ctx)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting allocate: %v", err)
	}
	<-l.sem
}

func TestNewIDSkipsReservedValues(t *testing.T) {
	// 0xf8 makes the first base64url character '-'; such IDs are skipped.
	dash := bytes.Repeat([]byte{0xf8}, 16)
	good := bytes.Repeat([]byte{0x11}, 16)
	id, err := newID(bytes.NewReader(append(dash, good...)))
	if err != nil {
		t.Fatal(err)
	}
	if s := FormatID(id); strings.HasPrefix(s, "-") || id[0] != 0x11 {
		t.Fatalf("got %s", s)
	}
	if _, err := newID(bytes.NewReader(bytes.Repeat(dash, 100))); err == nil {
		t.Fatal("endless reserved IDs accepted")
	}
	if _, err := newID(bytes.NewReader(dash[:5])); err == nil {
		t.Fatal("short random source accepted")
	}
}

func TestIDFormatting(t *testing.T) {
	id := [16]byte{0xde, 0xad, 0xbe, 0xef, 15: 0xff}
	s := FormatID(id)
	if len(s) != 22 {
		t.Fatalf("%q", s)
	}
	back, err := ParseID(s)
	if err != nil || back != id {
		t.Fatalf("ParseID(%q) = %x, %v", s, back, err)
	}
	for _, bad := range []string{"", "short", strings.Repeat("=", 22), strings.Repeat("A", 21) + "B", strings.Repeat("A", 23)} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) accepted", bad)
		}
	}
}

func TestErrorMessage(t *testing.T) {
	if ErrorMessage(nil) != "" {
		t.Fatal("nil")
	}
	if got := ErrorMessage(errors.New("plain")); got != "plain" {
		t.Fatal(got)
	}
	err := fmt.Errorf("wrapped: %w", newError(ErrUnknownTopic, "Topic 'x' does not exist."))
	if got := ErrorMessage(err); got != "Topic 'x' does not exist." {
		t.Fatal(got)
	}
	if !errors.Is(err, ErrUnknownTopic) {
		t.Fatal("does not wrap the sentinel")
	}
}

func TestWarnings(t *testing.T) {
	var logs bytes.Buffer
	cfg := testConfig(t.TempDir())
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	l := open(t, cfg)
	create(t, l, "a.b", 1)
	create(t, l, "a_b", 1) // allowed, unlike Kafka's KRaft controller
	if !strings.Contains(logs.String(), "collides") {
		t.Fatalf("no collision warning in %q", logs.String())
	}
	if _, err := l.CreateTopic(context.Background(), CreateTopicRequest{Name: "c", Partitions: 1, ReplicationFactor: 1,
		Configs: map[string]string{"old.key": "1"}}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	// A validator that now rejects stored configs warns but keeps them.
	logs.Reset()
	cfg.ValidateConfigs = func(m map[string]string) error {
		if _, ok := m["old.key"]; ok {
			return errors.New("Unknown topic config name: old.key")
		}
		return nil
	}
	l = open(t, cfg)
	if l.Image().Topic("c").Configs["old.key"] != "1" {
		t.Fatal("stored config dropped")
	}
	if !strings.Contains(logs.String(), "old.key") {
		t.Fatalf("no warning for invalid stored config in %q", logs.String())
	}
}
