package broker

// Fetch from followers (KIP-392). Two halves, both on the consumer Fetch
// path (01_fetch.go):
//
//   - On a partition's leader, with replica.selector.class set to
//     RackAwareReplicaSelector, a consumer fetch (v11+, replica_id -1) that
//     names a rack_id is answered, for each partition, with
//     PreferredReadReplica set to an in-sync follower in the client's rack
//     and no records, unless the leader is in that rack itself (then it
//     serves, as Kafka does). Candidates are followers in the leader's ISR,
//     registered and unfenced in the metadata image (Image.Brokers holds
//     only those), whose log end, as their fetches reported it, reaches the
//     fetch offset; the one furthest ahead wins, ties to the lower node ID.
//   - On a follower, a consumer fetch v11+ reads up to the high watermark
//     the follower learnt from its leader (replication.Fetcher's status),
//     capped at its own durable end. Older versions get
//     NOT_LEADER_OR_FOLLOWER, as in Kafka. Everything else (Produce,
//     ListOffsets, OffsetForLeaderEpoch) still needs the leader.
//
// The follower's high watermark, as consumers see it, never goes back
// (partitions.Host.FollowerHighWatermark).
//
// A follower serves consumers only while it is in the partition's ISR.
// Kafka's follower keeps serving when it drops out and relies on the
// consumer to ask the leader again after metadata.max.age.ms; StreamBus
// answers NOT_LEADER_OR_FOLLOWER at once, so that the client returns to the
// leader, which no longer prefers the lagging replica.
//
// The follower learns a high watermark advance from a fetch response that
// may carry no records, which does not wake the log's waiters, so a
// consumer long poll on a follower partition rechecks every
// followerHWPollInterval.

import (
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/partitions"
	"github.com/streambus/streambus/internal/storage"
)

// minFollowerFetchVersion is the first Fetch version a follower may serve
// to consumers (the version that added rack_id and preferred_read_replica).
const minFollowerFetchVersion = 11

// followerHWPollInterval is how often a consumer long poll waiting on a
// follower partition rechecks the high watermark learnt from the leader.
const followerHWPollInterval = 50 * time.Millisecond

// replicaView is what the rack-aware selector knows about one replica.
type replicaView struct {
	id   int32
	rack *string
	leo  int64 // log end offset; for followers, as their last fetch reported it
}

// selectRackAware is Kafka's RackAwareReplicaSelector: with a client rack,
// the leader if it is in that rack, else the same-rack replica furthest
// ahead (ties to the lower node ID, for determinism), else the leader.
// candidates are the eligible followers; it returns a node ID.
func selectRackAware(clientRack string, leader replicaView, candidates []replicaView) int32 {
	if clientRack == "" || inRack(leader, clientRack) {
		return leader.id
	}
	best := replicaView{id: -1}
	for _, c := range candidates {
		if !inRack(c, clientRack) {
			continue
		}
		if best.id < 0 || c.leo > best.leo || (c.leo == best.leo && c.id < best.id) {
			best = c
		}
	}
	if best.id < 0 {
		return leader.id
	}
	return best.id
}

func inRack(r replicaView, rack string) bool {
	return r.rack != nil && *r.rack == rack
}

// preferredReadReplica returns the replica a consumer fetching p at
// fetchOffset from clientRack should read from instead of this leader, or
// -1 when the leader should serve (no selector configured, no rack given,
// a single-replica partition, or no better replica).
func (b *Broker) preferredReadReplica(img *metadata.Image, p *partitions.Partition, clientRack string, fetchOffset int64) int32 {
	if !b.cfg.RackAwareReplicaSelector || clientRack == "" {
		return -1
	}
	self, ok := img.Brokers[b.cfg.NodeID]
	if !ok {
		return -1
	}
	leader := replicaView{id: b.cfg.NodeID, rack: self.Rack}
	var candidates []replicaView
	for _, f := range p.InSyncFollowers(b.cfg.NodeID) {
		br, registered := img.Brokers[f.ID]
		if !registered || f.End < fetchOffset {
			continue
		}
		candidates = append(candidates, replicaView{id: f.ID, rack: br.Rack, leo: f.End})
	}
	if id := selectRackAware(clientRack, leader, candidates); id != leader.id {
		return id
	}
	return -1
}

// lookupFollower finds a partition this broker follows, for a consumer
// fetch that the leader lookup refused with NOT_LEADER_OR_FOLLOWER: the
// broker must be one of its replicas, in its ISR, and host its log.
func (b *Broker) lookupFollower(img *metadata.Image, topic string, mp *metadata.Partition) (*partitions.Partition, error) {
	if mp == nil || !containsInt32(mp.Replicas, b.cfg.NodeID) || !containsInt32(mp.ISR, b.cfg.NodeID) {
		return nil, kerr.NotLeaderForPartition
	}
	t := img.Topics[topic]
	if t == nil {
		return nil, kerr.UnknownTopicOrPartition
	}
	p := b.host.Get(storage.PartitionID{Topic: topic, Partition: mp.Index})
	if p == nil || p.TopicID() != t.ID {
		// The log could not be opened: the client can go to the leader.
		return nil, kerr.NotLeaderForPartition
	}
	return p, nil
}
