package controller

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/streambus/streambus/internal/metadata"
)

type cluster struct {
	t      *testing.T
	voters map[int32]string
	dirs   map[int32]string
	nodes  map[int32]*Store
	mut    func(*Config)
}

func newCluster(t *testing.T) *cluster { return newClusterWith(t, nil) }

// newClusterWith starts three nodes whose configs mut adjusts.
func newClusterWith(t *testing.T, mut func(*Config)) *cluster {
	c := &cluster{t: t, voters: map[int32]string{}, dirs: map[int32]string{}, nodes: map[int32]*Store{}, mut: mut}
	base := t.TempDir()
	for id := int32(1); id <= 3; id++ {
		c.voters[id] = freeAddr(t, fmt.Sprintf("127.0.0.%d", id))
		c.dirs[id] = filepath.Join(base, fmt.Sprint(id))
	}
	for id := range c.voters {
		c.start(id)
	}
	t.Cleanup(func() {
		for _, s := range c.nodes {
			s.Close()
		}
	})
	return c
}

func (c *cluster) start(id int32) {
	cfg := testConfig(c.t, id, c.voters[id], c.voters, c.dirs[id])
	cfg.SnapshotThreshold, cfg.TrailingLogs = 4, 2
	if c.mut != nil {
		c.mut(&cfg)
	}
	s, err := Open(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	c.nodes[id] = s
}

func (c *cluster) stop(id int32) {
	if err := c.nodes[id].Close(); err != nil {
		c.t.Fatal(err)
	}
	delete(c.nodes, id)
}

// waitFor polls cond on every node's Image until it holds everywhere.
func (c *cluster) waitFor(what string, cond func(*metadata.Image) bool) {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for _, s := range c.nodes {
			if !cond(s.Image()) {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			for id, s := range c.nodes {
				c.t.Logf("node %d image: %+v", id, s.Image())
			}
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *cluster) leader() int32 {
	c.t.Helper()
	var id int32 = -1
	c.waitFor("an agreed controller with all brokers", func(img *metadata.Image) bool {
		if id == -1 || img.ControllerID != id {
			id = img.ControllerID
		}
		_, live := c.nodes[id]
		return live && img.ClusterID != "" && len(img.Brokers) == len(c.nodes)
	})
	return id
}

func TestCluster(t *testing.T) {
	c := newCluster(t)
	ctx := ctxT(t)
	lead := c.leader()
	var follower int32
	for id := range c.nodes {
		if id != lead {
			follower = id
		}
	}
	t.Logf("controller %d, follower %d", lead, follower)

	// On the leader, and forwarded from a follower.
	tp, err := c.nodes[lead].CreateTopic(ctx, metadata.CreateTopicRequest{Name: "t1", Partitions: 6, ReplicationFactor: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.nodes[follower].CreateTopic(ctx, metadata.CreateTopicRequest{Name: "t2", Partitions: 3, ReplicationFactor: 2}); err != nil {
		t.Fatal(err)
	}
	_, err = c.nodes[follower].CreateTopic(ctx, metadata.CreateTopicRequest{Name: "t1", Partitions: 1, ReplicationFactor: 1})
	if !errors.Is(err, metadata.ErrTopicExists) || metadata.ErrorMessage(err) != "Topic 't1' already exists." {
		t.Fatalf("forwarded duplicate: %v", err)
	}
	_, err = c.nodes[follower].CreateTopic(ctx, metadata.CreateTopicRequest{Name: "t3", Partitions: 1, ReplicationFactor: 4})
	if !errors.Is(err, metadata.ErrInvalidReplicationFactor) {
		t.Fatalf("rf 4 of 3 brokers: %v", err)
	}
	c.waitFor("t1 and t2 everywhere", func(img *metadata.Image) bool {
		return img.Topic("t1") != nil && img.Topic("t1").ID == tp.ID && img.Topic("t2") != nil
	})
	// Round-robin: leaders spread over all three brokers, RF replicas each.
	leaders := map[int32]int{}
	for _, p := range c.nodes[follower].Image().Topic("t1").Partitions {
		leaders[p.Leader]++
		if len(p.Replicas) != 3 || p.Leader != p.Replicas[0] || len(p.ISR) != 3 {
			t.Fatalf("partition %+v", p)
		}
	}
	if len(leaders) != 3 || leaders[1] != 2 {
		t.Fatalf("leaders %v", leaders)
	}

	pids := map[int64]bool{}
	alloc := func(on int32) {
		t.Helper()
		id, err := c.nodes[on].AllocateProducerID(ctx)
		if err != nil || pids[id] {
			t.Fatalf("producer ID %d on node %d: %v", id, on, err)
		}
		pids[id] = true
	}
	alloc(lead)
	alloc(follower)

	// Kill the controller: another takes over, mutations go on from the
	// survivors, producer IDs stay unique.
	c.stop(lead)
	newLead := c.leader()
	if newLead == lead {
		t.Fatalf("controller still %d", lead)
	}
	for id := range c.nodes {
		alloc(id)
		if err := c.nodes[id].CreateTopic2(ctx, fmt.Sprintf("after-%d", id)); err != nil {
			t.Fatal(err)
		}
	}
	v := "compact"
	if err := c.nodes[follower].AlterTopicConfigs(ctx, "t1", []metadata.ConfigChange{{Name: "cleanup.policy", Value: &v}}, true, false); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[follower].DeleteTopic(ctx, "t2"); err != nil {
		t.Fatal(err)
	}
	// Compact the survivors' logs so the returning node needs a snapshot.
	for _, s := range c.nodes {
		if err := s.raft.Snapshot().Error(); err != nil {
			t.Fatal(err)
		}
	}

	c.start(lead)
	c.waitFor("the restarted node to catch up", func(img *metadata.Image) bool {
		t1 := img.Topic("t1")
		return t1 != nil && t1.Configs["cleanup.policy"] == "compact" && img.Topic("t2") == nil &&
			len(img.Topics) == 3 && img.ControllerID >= 0
	})
	alloc(lead)
}

// CreateTopic2 is a test shorthand: two partitions, replication factor 2.
func (s *Store) CreateTopic2(ctx context.Context, name string) error {
	_, err := s.CreateTopic(ctx, metadata.CreateTopicRequest{Name: name, Partitions: 2, ReplicationFactor: 2})
	return err
}
