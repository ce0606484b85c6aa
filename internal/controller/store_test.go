package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/streambus/streambus/internal/metadata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// freeAddr returns host:port with a port free on host right now.
func freeAddr(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", host+":0")
	if err != nil {
		t.Skipf("cannot listen on %s: %v", host, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func testConfig(t *testing.T, id int32, addr string, voters map[int32]string, dir string) Config {
	return Config{NodeID: id, RaftAddr: addr, Voters: voters, Dir: dir,
		KafkaHost: "localhost", KafkaPort: 9092 + id,
		HeartbeatInterval: 50 * time.Millisecond, SessionTimeout: time.Second,
		RaftTimeout: 300 * time.Millisecond,
		ValidateConfigs: func(c map[string]string) error {
			if v, ok := c["cleanup.policy"]; ok && v != "delete" && v != "compact" {
				return fmt.Errorf("Invalid value %s for configuration cleanup.policy", v)
			}
			return nil
		}}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func openSingle(t *testing.T, dir, addr string) *Store {
	t.Helper()
	return openSingleWith(t, dir, addr, nil)
}

// openSingleWith is openSingle with a config mut adjusts.
func openSingleWith(t *testing.T, dir, addr string, mut func(*Config)) *Store {
	t.Helper()
	cfg := testConfig(t, 1, addr, map[int32]string{1: addr}, dir)
	if mut != nil {
		mut(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.WaitReady(ctxT(t)); err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s
}

func TestSingleNodeTopics(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t, "127.0.0.1")
	s := openSingle(t, dir, addr)
	defer s.Close()
	ctx := ctxT(t)
	img := s.Image()
	if img.ControllerID != 1 || len(img.Brokers) != 1 || img.Brokers[1].Port != 9093 {
		t.Fatalf("image %+v", img)
	}
	if _, err := metadata.ParseID(img.ClusterID); err != nil {
		t.Fatalf("cluster ID: %v", err)
	}

	vt, err := s.CreateTopic(ctx, metadata.CreateTopicRequest{Name: "a", Partitions: 3, ReplicationFactor: -1, ValidateOnly: true})
	if err != nil || len(vt.Partitions) != 3 || vt.ID != ([16]byte{}) || s.Image().Topic("a") != nil {
		t.Fatalf("validate-only: %+v %v", vt, err)
	}
	tp, err := s.CreateTopic(ctx, metadata.CreateTopicRequest{Name: "a", Partitions: 3, ReplicationFactor: -1,
		Configs: map[string]string{"cleanup.policy": "compact"}})
	if err != nil {
		t.Fatal(err)
	}
	got := s.Image().Topic("a")
	if got == nil || got.ID != tp.ID || len(got.Partitions) != 3 || got.Partitions[2].Leader != 1 ||
		got.Configs["cleanup.policy"] != "compact" || s.Image().TopicByID(tp.ID) != got {
		t.Fatalf("topic %+v", got)
	}
	_, err = s.CreateTopic(ctx, metadata.CreateTopicRequest{Name: "a", Partitions: 1, ReplicationFactor: 1})
	if !errors.Is(err, metadata.ErrTopicExists) || metadata.ErrorMessage(err) != "Topic 'a' already exists." {
		t.Fatalf("duplicate: %v", err)
	}
	_, err = s.CreateTopic(ctx, metadata.CreateTopicRequest{Name: "b", Partitions: 1, ReplicationFactor: 2})
	if !errors.Is(err, metadata.ErrInvalidReplicationFactor) {
		t.Fatalf("rf 2 on one broker: %v", err)
	}
	for _, bad := range []metadata.CreateTopicRequest{
		{Name: "..", Partitions: 1, ReplicationFactor: 1},
		{Name: "b", Partitions: 0, ReplicationFactor: 1},
		{Name: "b", Partitions: 1, ReplicationFactor: 0},
		{Name: "b", Partitions: 1, ReplicationFactor: -1, Assignment: map[int32][]int32{0: {1}}},
		{Name: "b", Partitions: -1, ReplicationFactor: -1, Assignment: map[int32][]int32{0: {7}}},
		{Name: "b", Partitions: 1, ReplicationFactor: 1, Configs: map[string]string{"cleanup.policy": "x"}},
	} {
		if _, err := s.CreateTopic(ctx, bad); err == nil {
			t.Errorf("CreateTopic(%+v) succeeded", bad)
		}
	}

	if err := s.CreatePartitions(ctx, "a", 3, nil, false); !errors.Is(err, metadata.ErrInvalidPartitions) {
		t.Fatalf("same count: %v", err)
	}
	if err := s.CreatePartitions(ctx, "a", 5, nil, true); err != nil || len(s.Image().Topic("a").Partitions) != 3 {
		t.Fatalf("validate-only partitions: %v", err)
	}
	if err := s.CreatePartitions(ctx, "a", 5, nil, false); err != nil || len(s.Image().Topic("a").Partitions) != 5 {
		t.Fatalf("create partitions: %v", err)
	}

	v := "delete"
	if err := s.AlterTopicConfigs(ctx, "a", []metadata.ConfigChange{{Name: "retention.ms", Value: &v}, {Name: "retention.ms"}}, true, false); !errors.Is(err, metadata.ErrInvalidRequest) {
		t.Fatalf("duplicate keys: %v", err)
	}
	bad := "bogus"
	if err := s.AlterTopicConfigs(ctx, "a", []metadata.ConfigChange{{Name: "cleanup.policy", Value: &bad}}, true, false); !errors.Is(err, metadata.ErrInvalidConfig) ||
		metadata.ErrorMessage(err) != "Invalid value bogus for configuration cleanup.policy" {
		t.Fatalf("invalid config: %v", err)
	}
	if err := s.AlterTopicConfigs(ctx, "a", []metadata.ConfigChange{{Name: "cleanup.policy", Value: &v}}, true, false); err != nil ||
		s.Image().Topic("a").Configs["cleanup.policy"] != "delete" {
		t.Fatalf("incremental set: %v", err)
	}
	if err := s.AlterTopicConfigs(ctx, "a", []metadata.ConfigChange{{Name: "segment.ms", Value: &v}}, false, false); err != nil {
		t.Fatal(err)
	}
	if c := s.Image().Topic("a").Configs; len(c) != 1 || c["segment.ms"] != "delete" {
		t.Fatalf("replace: %v", c)
	}

	ch := s.Changes()
	if err := s.DeleteTopic(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("Changes not closed by a delete")
	}
	if err := s.DeleteTopic(ctx, "a"); !errors.Is(err, metadata.ErrUnknownTopic) {
		t.Fatalf("delete twice: %v", err)
	}
	re, err := s.CreateTopic(ctx, metadata.CreateTopicRequest{Name: "a", Partitions: 1, ReplicationFactor: 1})
	if err != nil || re.ID == tp.ID {
		t.Fatalf("recreate: %v, same ID %v", err, re.ID == tp.ID)
	}
}

func TestSingleNodeRestart(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t, "127.0.0.1")
	s := openSingle(t, dir, addr)
	ctx := ctxT(t)
	tp, err := s.CreateTopic(ctx, metadata.CreateTopicRequest{Name: "kept", Partitions: 2, ReplicationFactor: 1})
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	for range 3 {
		id, err := s.AllocateProducerID(ctx)
		if err != nil || seen[id] {
			t.Fatalf("producer ID %d: %v", id, err)
		}
		seen[id] = true
	}
	cluster := s.Image().ClusterID
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AllocateProducerID(ctx); !errors.Is(err, metadata.ErrClosed) {
		t.Fatalf("after close: %v", err)
	}

	s = openSingle(t, dir, addr)
	defer s.Close()
	img := s.Image()
	if img.ClusterID != cluster || img.Topic("kept") == nil || img.Topic("kept").ID != tp.ID {
		t.Fatalf("after restart: %+v", img)
	}
	id, err := s.AllocateProducerID(ctx)
	if err != nil || seen[id] {
		t.Fatalf("producer ID after restart %d: %v (seen %v)", id, err, seen)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{NodeID: 1, RaftAddr: "127.0.0.1:1", Voters: map[int32]string{1: "127.0.0.1:1"}, Dir: "d", KafkaHost: "h"}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Config){
		"neg id":       func(c *Config) { c.NodeID = -1 },
		"no dir":       func(c *Config) { c.Dir = "" },
		"hostname":     func(c *Config) { c.RaftAddr = "localhost:1"; c.Voters = map[int32]string{1: "localhost:1"} },
		"not a voter":  func(c *Config) { c.Voters = map[int32]string{2: "127.0.0.1:1"} },
		"no host":      func(c *Config) { c.KafkaHost = "" },
		"session<=hb":  func(c *Config) { c.HeartbeatInterval = time.Second; c.SessionTimeout = time.Second },
		"tiny timeout": func(c *Config) { c.RaftTimeout = time.Millisecond },
	} {
		c := good
		mut(&c)
		if c.Validate() == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}
