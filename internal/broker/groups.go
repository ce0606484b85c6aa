package broker

// The group coordinator side of the broker. Offsets and group metadata live
// in the internal compacted topic __consumer_offsets; the coordinator of a
// group is the leader of partition abs(javaHashCode(group)) % partitions, as
// in Kafka, so tools that compute placement agree with us. For every
// __consumer_offsets partition this broker leads, the coordinator runtime
// (internal/coordinator) runs a group.Coordinator (a deterministic state
// machine, internal/group): it loads the partition's records, then feeds
// it requests and ticks, appends the records each step produces to the
// partition, and sends the step's replies once those records are durable
// (and held by the ISR). Until a partition is loaded its groups get
// COORDINATOR_LOAD_IN_PROGRESS.

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/coordinator"
	"github.com/streambus/streambus/internal/group"
	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/storage"
)

// OffsetsTopic is the internal topic holding committed offsets and groups.
const OffsetsTopic = "__consumer_offsets"

// replicationWait bounds how long a group step waits for its records to
// reach the ISR before the requesters' connections are closed.
const replicationWait = 10 * time.Second

// GroupConfig configures the group coordinators (Kafka names in
// config.GroupConfig).
type GroupConfig struct {
	OffsetsTopicPartitions        int32
	OffsetsTopicReplicationFactor int16
	Coordinator                   group.Config // Partition is set per runner
}

// groupPartition maps a group to its __consumer_offsets partition the way
// Kafka does: Java's String.hashCode, made non-negative by masking, modulo
// the partition count.
func groupPartition(g string, partitions int32) int32 {
	var h int32
	for _, r := range g {
		if r >= 0x10000 { // a surrogate pair in Java's UTF-16
			r -= 0x10000
			h = 31*h + int32(0xD800+(r>>10))
			h = 31*h + int32(0xDC00+(r&0x3FF))
			continue
		}
		h = 31*h + int32(r)
	}
	return (h & 0x7fffffff) % partitions
}

// requester identifies who sent a group request (DescribeGroups shows it).
type requester struct{ clientID, host string }

// imageTopics shows a metadata image to the coordinator.
type imageTopics struct{ img *metadata.Image }

func (v imageTopics) Topic(name string) ([16]byte, int32, bool) {
	t := v.img.Topics[name]
	if t == nil {
		return [16]byte{}, 0, false
	}
	return t.ID, int32(len(t.Partitions)), true
}

func (v imageTopics) TopicByID(id [16]byte) (string, int32, bool) {
	t := v.img.TopicsByID[id]
	if t == nil {
		return "", 0, false
	}
	return t.Name, int32(len(t.Partitions)), true
}

func (v imageTopics) Names() []string { return v.img.TopicNames() }

// ensureOffsetsTopic creates __consumer_offsets when missing.
func (b *Broker) ensureOffsetsTopic() error {
	if b.meta.Image().Topics[OffsetsTopic] != nil {
		return nil
	}
	ctx, cancel := contextWithTimeout(adminTimeout)
	defer cancel()
	_, err := b.meta.CreateTopic(ctx, metadata.CreateTopicRequest{
		Name:              OffsetsTopic,
		Partitions:        b.cfg.Groups.OffsetsTopicPartitions,
		ReplicationFactor: b.cfg.Groups.OffsetsTopicReplicationFactor,
		Configs: map[string]string{
			"cleanup.policy":   "compact",
			"segment.bytes":    "104857600",
			"compression.type": "producer",
		},
	})
	if err != nil && !errors.Is(err, metadata.ErrTopicExists) {
		return fmt.Errorf("broker: create %s: %w", OffsetsTopic, err)
	}
	return nil
}

// groupRequest is a group API request and who sent it.
type groupRequest struct {
	req kmsg.Request
	who requester
}

// groupMachine runs a group.Coordinator on the coordinator runtime.
type groupMachine struct {
	c    *group.Coordinator
	meta Store // topics, for OffsetCommit v10's topic IDs and offset expiry
}

func newGroupRuntime(cfg Config, meta Store) *coordinator.Runtime[groupRequest, kmsg.Response] {
	return coordinator.New(coordinator.Config[groupRequest, kmsg.Response]{
		Name:  "group coordinator",
		Topic: OffsetsTopic,
		New: func(shard int32) coordinator.Machine[groupRequest, kmsg.Response] {
			gc := cfg.Groups.Coordinator
			gc.Partition = shard
			return &groupMachine{c: group.New(gc), meta: meta}
		},
		MaxDecompressedBytes: cfg.MaxDecompressedBytes,
		Logger:               cfg.Logger,
		Now:                  cfg.Now,
	})
}

func (m *groupMachine) Load(key, value []byte) error { return m.c.Load(key, value) }
func (m *groupMachine) Loaded(now time.Time)         { m.c.Loaded(now) }

func (m *groupMachine) Step(now time.Time, replyTo uint64, r groupRequest) coordinator.Output[kmsg.Response] {
	return fromGroup(m.c.Step(group.Input{Now: now, ReplyTo: replyTo, Req: r.req, Topics: imageTopics{m.meta.Image()},
		ClientID: r.who.clientID, ClientHost: r.who.host}))
}

func (m *groupMachine) Tick(now time.Time) coordinator.Output[kmsg.Response] {
	return fromGroup(m.c.Tick(now, imageTopics{m.meta.Image()}))
}

func fromGroup(out group.Output) coordinator.Output[kmsg.Response] {
	o := coordinator.Output[kmsg.Response]{NextDeadline: out.NextDeadline}
	if len(out.Records) > 0 {
		o.Records = make([]coordinator.Record, len(out.Records))
		for i, r := range out.Records {
			o.Records[i] = coordinator.Record{Key: r.Key, Value: r.Value}
		}
	}
	if len(out.Replies) > 0 {
		o.Replies = make([]coordinator.Reply[kmsg.Response], len(out.Replies))
		for i, r := range out.Replies {
			o.Replies[i] = coordinator.Reply[kmsg.Response]{To: r.To, Resp: r.Resp}
		}
	}
	return o
}

// syncCoordinators runs a group coordinator on every __consumer_offsets
// partition led here, as the host has applied it, and stops the others.
func (b *Broker) syncCoordinators() {
	img := b.host.Image()
	t := img.Topics[OffsetsTopic]
	var led []coordinator.Shard
	if t != nil && !b.closing.Load() {
		for _, mp := range t.Partitions {
			if mp.Leader != b.cfg.NodeID {
				continue
			}
			p := b.host.Get(storage.PartitionID{Topic: OffsetsTopic, Partition: mp.Index})
			if p == nil || p.TopicID() != t.ID {
				continue
			}
			// A replicated partition is led once its LeaderState for this
			// epoch exists, which also means its fetcher stopped, so the
			// log no longer grows under the loading coordinator.
			if len(mp.Replicas) > 1 {
				ls := p.LeaderState()
				if ls == nil || ls.LeaderEpoch() != mp.LeaderEpoch {
					continue
				}
			}
			led = append(led, coordinator.Shard{
				Index: mp.Index, LeaderEpoch: mp.LeaderEpoch, Log: p.Log(),
				WaitReplicated: func(upTo int64) error {
					if p.LeaderState() == nil {
						return nil // a single replica: durable is enough
					}
					// A replicated partition: answer once the ISR has the
					// records, so that a commit survives a leader change.
					return b.host.WaitReplicated(p, upTo, p.Config().MinInsyncReplicas, replicationWait)
				},
			})
		}
	}
	b.groups.Sync(led)
}

// groupShard is the __consumer_offsets partition of group g, or -1 while
// the topic has no partitions.
func (b *Broker) groupShard(g string) int32 {
	n := b.cfg.Groups.OffsetsTopicPartitions
	if t := b.meta.Image().Topics[OffsetsTopic]; t != nil {
		n = int32(len(t.Partitions))
	}
	if n <= 0 {
		return -1
	}
	return groupPartition(g, n)
}
