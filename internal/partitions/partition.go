package partitions

import (
	"sync"
	"sync/atomic"

	"github.com/streambus/streambus/internal/replication"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/topicconfig"
)

// Partition is a partition hosted here: its log, its resolved config and
// its replication role. The Host creates and replaces it; its methods are
// safe for concurrent use.
type Partition struct {
	id      storage.PartitionID
	topicID [16]byte
	log     *storage.Log
	cfg     atomic.Pointer[topicconfig.Resolved]
	rep     replicaState
}

// replicaState is the replication side of one hosted partition.
type replicaState struct {
	mu     sync.Mutex
	leader *replication.LeaderState // non-nil while this broker leads a replicated partition
	hwCh   chan struct{}            // closed when the replicated high watermark advances
	// lsCh, open while leader is set, is closed when a follower reports
	// a new log start offset and when this LeaderState ends (DeleteRecords
	// waiters recompute the low watermark).
	lsCh chan struct{}
}

// ID is the partition's topic name and index.
func (p *Partition) ID() storage.PartitionID { return p.id }

// TopicID is the ID of the topic the partition belongs to: a recreated
// topic of the same name is another Partition.
func (p *Partition) TopicID() [16]byte { return p.topicID }

// Log is the partition's log.
func (p *Partition) Log() *storage.Log { return p.log }

// Config is the partition's resolved topic config.
func (p *Partition) Config() *topicconfig.Resolved { return p.cfg.Load() }

// LeaderState is the partition's LeaderState while this broker leads it
// and it has more than one replica, else nil.
func (p *Partition) LeaderState() *replication.LeaderState {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	return p.rep.leader
}

// HighWatermark is what consumers may read up to on the leader.
func (p *Partition) HighWatermark() int64 {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader != nil {
		return p.rep.leader.HighWatermark()
	}
	return p.log.HighWatermark()
}

// Changed returns channels, one of which is closed when the high watermark
// (or, for a replicated leader, the log it reads for followers) may have
// moved.
func (p *Partition) Changed() []<-chan struct{} {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader != nil {
		return []<-chan struct{}{p.rep.hwCh, p.log.Changed()}
	}
	return []<-chan struct{}{p.log.Changed()}
}

// CheckReplicas is the acks=all check before an append:
// ErrNotEnoughReplicas when the ISR is below minISR.
func (p *Partition) CheckReplicas(minISR int32) error {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return nil
	}
	if err := p.rep.leader.CheckEnoughReplicas(int(minISR)); err != nil {
		return ErrNotEnoughReplicas
	}
	return nil
}

// Follower is an in-sync follower of a led partition and its log end as
// its last fetch reported it.
type Follower struct {
	ID  int32
	End int64
}

// InSyncFollowers lists the followers in the ISR whose log end is known,
// while this broker leads the replicated partition; else nil.
func (p *Partition) InSyncFollowers(self int32) []Follower {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	ls := p.rep.leader
	if ls == nil {
		return nil
	}
	var fs []Follower
	for _, id := range ls.ISR() {
		if id == self {
			continue
		}
		if end, ok := ls.FollowerEnd(id); ok {
			fs = append(fs, Follower{ID: id, End: end})
		}
	}
	return fs
}

// LowWatermark is Kafka's lowWatermarkIfLeader while this broker leads the
// replicated partition: the smallest log start offset over the leader and
// the followers for which alive is true, as their fetches last reported
// it. wake is closed when a follower reports a new log start or the
// leadership ends. ok is false without a LeaderState (a single replica, or
// a leadership the host has not applied yet).
func (p *Partition) LowWatermark(alive func(int32) bool) (lw int64, wake <-chan struct{}, ok bool) {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	ls := p.rep.leader
	if ls == nil {
		return p.log.LogStartOffset(), nil, false
	}
	return ls.LowWatermark(p.log.LogStartOffset(), alive), p.rep.lsCh, true
}
