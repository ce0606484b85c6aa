package controller

import (
	"testing"

	"github.com/streambus/streambus/internal/metadata"
)

// An earlier single-node store's topics, IDs, configs and producer-ID
// reservation are adopted with the cluster ID, once: the partitions get
// this broker as leader when it is unfenced, and a restart (the cluster
// now has an ID) does not import again.
func TestImportLegacy(t *testing.T) {
	dir, addr := t.TempDir(), freeAddr(t, "127.0.0.1")
	clusterID, idA, idB := mustID(t), mustID(t), mustID(t)
	legacy := &Legacy{ClusterID: metadata.FormatID(clusterID), ProducerIDEnd: 5000, Topics: []*metadata.Topic{
		{Name: "a", ID: idA, Configs: map[string]string{"cleanup.policy": "compact"}, Partitions: []metadata.Partition{
			{Index: 0, Leader: 1, LeaderEpoch: 0, Replicas: []int32{1}, ISR: []int32{1}},
			{Index: 1, Leader: 1, LeaderEpoch: 3, Replicas: []int32{1}, ISR: []int32{1}},
		}},
		{Name: "b", ID: idB, Partitions: []metadata.Partition{{Index: 0, Leader: 1, Replicas: []int32{1}, ISR: []int32{1}}}},
	}}
	open := func(imp *Legacy) *Store {
		return openSingleWith(t, dir, addr, func(c *Config) { c.Import = imp })
	}
	s := open(legacy)
	img := s.Image()
	a := img.Topic("a")
	if img.ClusterID != legacy.ClusterID || a == nil || a.ID != idA || a.Configs["cleanup.policy"] != "compact" ||
		len(a.Partitions) != 2 || img.TopicByID(idB) == nil {
		t.Fatalf("imported image %+v", img)
	}
	for _, p := range a.Partitions {
		if p.Leader != 1 || len(p.ISR) != 1 {
			t.Fatalf("partition %+v not led by the unfenced broker", p)
		}
	}
	if e := a.Partitions[1].LeaderEpoch; e <= 3 {
		t.Fatalf("leader epoch %d went back from the imported 3", e)
	}
	if id, err := s.AllocateProducerID(ctxT(t)); err != nil || id < 5000 {
		t.Fatalf("producer ID %d (%v) inside the imported reservation", id, err)
	}
	if err := s.DeleteTopic(ctxT(t), "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Restarted with the same import: the cluster has an ID, nothing is
	// imported again (b stays deleted).
	s = open(legacy)
	defer s.Close()
	if img := s.Image(); img.Topic("b") != nil || img.Topic("a") == nil || img.ClusterID != legacy.ClusterID {
		t.Fatalf("after restart: %+v", img)
	}
}

func TestImportRejectsBadTopics(t *testing.T) {
	ok := importTopic{Name: "t", TopicID: metadata.FormatID(mustID(t)), Replicas: [][]int32{{1}}, LeaderEpochs: []int32{0}}
	for name, mut := range map[string]func(*importTopic){
		"bad name":         func(it *importTopic) { it.Name = ".." },
		"zero ID":          func(it *importTopic) { it.TopicID = metadata.FormatID([16]byte{}) },
		"no partitions":    func(it *importTopic) { it.Replicas, it.LeaderEpochs = nil, nil },
		"epochs mismatch":  func(it *importTopic) { it.LeaderEpochs = nil },
		"duplicate":        func(it *importTopic) { it.Replicas = [][]int32{{1, 1}} },
		"negative replica": func(it *importTopic) { it.Replicas = [][]int32{{-1}} },
		"negative epoch":   func(it *importTopic) { it.LeaderEpochs = []int32{-1} },
	} {
		it := ok
		mut(&it)
		if err := applyImport(emptyState(), &importBody{Topics: []importTopic{it}}); err == nil {
			t.Errorf("%s: imported", name)
		}
	}
	if err := applyImport(emptyState(), &importBody{Topics: []importTopic{ok, ok}}); err == nil {
		t.Error("the same topic twice: imported")
	}
	if err := applyImport(emptyState(), &importBody{Topics: []importTopic{ok}}); err != nil {
		t.Errorf("a good topic: %v", err)
	}
}

func mustID(t *testing.T) [16]byte {
	id, err := randomID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}
