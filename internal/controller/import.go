package controller

// Adopting an earlier single-node store. Data directories written before
// the Raft store kept their metadata in meta/metadata.snapshot (read by
// ReadLegacy, legacy.go). The first Raft command of such a node, init,
// carries that store's topics and producer-ID
// reservation along with its cluster ID, so that the import is all or
// nothing: a crash before init commits leaves nothing imported and the
// next start imports again; after it, the cluster has an ID and init is
// never proposed again. Imported partitions keep their topic IDs, replica
// lists and leader epochs, start leaderless with every replica in the
// ISR, and get their leader when a replica's broker is unfenced.

import (
	"fmt"
	"maps"
	"slices"

	"github.com/streambus/streambus/internal/metadata"
)

// importBody is the import carried by init (part of the on-disk format).
type importBody struct {
	Topics        []importTopic `json:"topics"`
	ProducerIDEnd int64         `json:"producer_id_end"`
}

type importTopic struct {
	Name         string            `json:"name"`
	TopicID      string            `json:"topic_id"` // metadata.FormatID
	Configs      map[string]string `json:"configs,omitempty"`
	Replicas     [][]int32         `json:"replicas"`
	LeaderEpochs []int32           `json:"leader_epochs"`
}

// importFrom turns a read legacy store into the command's import.
func importFrom(l *Legacy) *importBody {
	b := &importBody{ProducerIDEnd: l.ProducerIDEnd}
	for _, t := range l.Topics {
		it := importTopic{Name: t.Name, TopicID: metadata.FormatID(t.ID), Configs: maps.Clone(t.Configs)}
		for _, p := range t.Partitions {
			it.Replicas = append(it.Replicas, slices.Clone(p.Replicas))
			it.LeaderEpochs = append(it.LeaderEpochs, p.LeaderEpoch)
		}
		b.Topics = append(b.Topics, it)
	}
	return b
}

// applyImport adds the imported topics and reservation to next, which
// holds no topics yet; anything inconsistent fails the whole init.
func applyImport(next *state, b *importBody) error {
	if b.ProducerIDEnd < 0 {
		return fmt.Errorf("controller: import: producer ID end %d is negative", b.ProducerIDEnd)
	}
	next.ProducerIDEnd = max(next.ProducerIDEnd, b.ProducerIDEnd)
	for _, it := range b.Topics {
		t, err := importedTopic(next, it)
		if err != nil {
			return fmt.Errorf("controller: import topic %q: %w", it.Name, err)
		}
		next.Topics[t.Name] = t
		next.TopicsByID[t.ID] = t
		next.PartEpochs[t.ID] = make([]int32, len(t.Partitions))
	}
	return nil
}

func importedTopic(next *state, it importTopic) (*metadata.Topic, error) {
	if err := metadata.ValidateTopicName(it.Name); err != nil {
		return nil, err
	}
	id, err := metadata.ParseID(it.TopicID)
	if err != nil {
		return nil, err
	}
	switch {
	case next.Topics[it.Name] != nil:
		return nil, fmt.Errorf("imported twice")
	case id == ([16]byte{}) || next.TopicsByID[id] != nil:
		return nil, fmt.Errorf("topic ID %s is zero or in use", it.TopicID)
	case len(it.Replicas) == 0 || len(it.LeaderEpochs) != len(it.Replicas):
		return nil, fmt.Errorf("%d replica lists and %d leader epochs", len(it.Replicas), len(it.LeaderEpochs))
	}
	t := &metadata.Topic{Name: it.Name, ID: id, Internal: metadata.IsInternalTopic(it.Name),
		Configs: maps.Clone(it.Configs), Partitions: make([]metadata.Partition, len(it.Replicas))}
	if t.Configs == nil {
		t.Configs = map[string]string{}
	}
	for i, replicas := range it.Replicas {
		sorted := slices.Sorted(slices.Values(replicas))
		if len(replicas) == 0 || sorted[0] < 0 || len(slices.Compact(sorted)) != len(replicas) {
			return nil, fmt.Errorf("partition %d: replicas %v", i, replicas)
		}
		if it.LeaderEpochs[i] < 0 {
			return nil, fmt.Errorf("partition %d: leader epoch %d", i, it.LeaderEpochs[i])
		}
		t.Partitions[i] = metadata.Partition{Index: int32(i), Leader: -1, LeaderEpoch: it.LeaderEpochs[i],
			Replicas: slices.Clone(replicas), ISR: slices.Clone(replicas)}
	}
	return t, nil
}
