package broker

// Partition replication, Kafka's model (internal/replication). For a
// partition with more than one replica:
//
//   - the leader keeps a replication.LeaderState: follower fetches (Fetch
//     with a replica ID) report each follower's log end offset, the high
//     watermark is the minimum over the ISR, and ISR changes are proposed to
//     the controller (AlterPartition) and applied only once confirmed;
//     consumers read up to that high watermark, and acks=all produces wait
//     for it (NOT_ENOUGH_REPLICAS below min.insync.replicas);
//   - a follower has the replication.Fetcher copy the leader's log and
//     move its log start up to the leader's; its fetches report that log
//     start, and DeleteRecords waits until every replica on a live broker
//     has reached the requested offset (the low watermark,
//     21_delete_records.go).
//
// In log.flush.mode=ack the leader's own end is its durable offset and a
// follower fsyncs before it fetches again, so a record counted in the high
// watermark is on disk on every ISR member.
//
// Single-replica partitions skip all of this: their high watermark is the
// log's own (the durable offset).

import (
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/replication"
	"github.com/streambus/streambus/internal/storage"
)

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

// leaderState is the partition's LeaderState while this broker leads it
// and it has more than one replica, else nil.
func (p *partition) leaderState() *replication.LeaderState {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	return p.rep.leader
}

// highWatermark is what consumers may read up to.
func (p *partition) highWatermark() int64 {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader != nil {
		return p.rep.leader.HighWatermark()
	}
	return p.log.HighWatermark()
}

// changed returns a channel closed when the high watermark (or, for a
// replicated leader, the log it reads for followers) may have moved.
func (p *partition) changed() []<-chan struct{} {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader != nil {
		return []<-chan struct{}{p.rep.hwCh, p.log.Changed()}
	}
	return []<-chan struct{}{p.log.Changed()}
}

// applyUpdateLocked acts on a LeaderState update: wake readers when the
// high watermark moved, send an ISR proposal to the controller.
func (b *Broker) applyUpdateLocked(p *partition, u replication.Update) {
	if u.HWAdvanced {
		close(p.rep.hwCh)
		p.rep.hwCh = make(chan struct{})
	}
	if u.LogStartChanged {
		close(p.rep.lsCh)
		p.rep.lsCh = make(chan struct{})
	}
	if u.Proposal != nil {
		prop := *u.Proposal
		b.goFunc(func() { b.proposeISR(p, prop) })
	}
}

// proposeISR sends an ISR change to the controller; a rejected or failed
// proposal is dropped so that a later call may propose again.
func (b *Broker) proposeISR(p *partition, prop replication.ISRProposal) {
	ctx, cancel := contextWithTimeout(10 * time.Second)
	err := b.meta.AlterISR(ctx, p.id.Topic, p.id.Partition, prop)
	cancel()
	if err == nil {
		return // the metadata change arrives through reconcile
	}
	b.log.Warn("ISR change refused", "partition", p.id, "isr", prop.ISR, "err", err)
	p.rep.mu.Lock()
	if p.rep.leader != nil {
		p.rep.leader.ProposalFailed()
	}
	p.rep.mu.Unlock()
}

// reconcileReplication sets a hosted partition's replication role from the
// metadata: leader (LeaderState), follower (fetcher) or neither.
func (b *Broker) reconcileReplication(img *metadata.Image, p *partition, mp metadata.Partition) {
	replicated := len(mp.Replicas) > 1
	now := b.cfg.Now()
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if !replicated || mp.Leader != b.cfg.NodeID {
		if p.rep.leader != nil {
			p.rep.leader = nil
			close(p.rep.hwCh) // wake waiters: they see leadership is gone
			close(p.rep.lsCh)
		}
	}
	if !replicated {
		return
	}
	a := replication.Assignment{
		Leader: mp.Leader, LeaderEpoch: mp.LeaderEpoch, PartitionEpoch: b.partitionEpoch(p.id),
		Replicas: mp.Replicas, ISR: mp.ISR,
	}
	switch {
	case mp.Leader == b.cfg.NodeID:
		if ls := p.rep.leader; ls != nil && ls.LeaderEpoch() == mp.LeaderEpoch {
			if u, err := ls.ApplyAssignment(a, now); err == nil {
				b.applyUpdateLocked(p, u)
			}
			return
		}
		hw := p.log.LogStartOffset()
		if st, ok := b.fetcher.Status(p.id); ok && st.HighWatermark > hw {
			hw = st.HighWatermark
		}
		b.fetcher.Unfollow(p.id)
		ls, err := replication.NewLeaderState(replication.LeaderConfig{ReplicaLagTime: b.cfg.ReplicaLagTime}, b.cfg.NodeID, a, p.log.HighWatermark(), hw, now)
		if err != nil {
			b.log.Error("lead partition", "partition", p.id, "err", err)
			return
		}
		if p.rep.leader != nil { // a new leader epoch: the old state's waiters recheck
			close(p.rep.lsCh)
		}
		p.rep.leader = ls
		p.rep.hwCh = make(chan struct{})
		p.rep.lsCh = make(chan struct{})
	case mp.Leader >= 0:
		br, ok := img.Brokers[mp.Leader]
		if !ok {
			b.log.Warn("partition leader is not a registered broker", "partition", p.id, "leader", mp.Leader)
			return
		}
		leader := replication.Leader{ID: mp.Leader, Addr: joinHostPort(br.Host, br.Port)}
		if err := b.fetcher.Follow(leader, replication.Followed{Log: p.log, LeaderEpoch: mp.LeaderEpoch}); err != nil {
			b.log.Error("follow partition", "partition", p.id, "leader", mp.Leader, "err", err)
		}
	default:
		b.fetcher.Unfollow(p.id)
	}
}

func (b *Broker) partitionEpoch(id storage.PartitionID) int32 {
	return b.meta.PartitionEpoch(id.Topic, id.Partition)
}

// followerFetched records a follower's fetch on the leader: its fetch
// offset (log end) and the log start offset it reports.
func (b *Broker) followerFetched(p *partition, replica int32, fetchOffset, logStart int64) error {
	now := b.cfg.Now()
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	ls := p.rep.leader
	if ls == nil {
		return kerr.NotLeaderForPartition
	}
	b.applyUpdateLocked(p, ls.SetLeaderEnd(p.log.HighWatermark(), now))
	u, err := ls.FollowerFetched(replica, fetchOffset, logStart, now)
	if err != nil {
		return kerr.NotLeaderForPartition
	}
	b.applyUpdateLocked(p, u)
	return nil
}

// checkReplicas is the acks=all check before an append.
func (p *partition) checkReplicas(minISR int32) error {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader == nil {
		return nil
	}
	if err := p.rep.leader.CheckEnoughReplicas(int(minISR)); err != nil {
		return kerr.NotEnoughReplicas
	}
	return nil
}

// waitReplicated blocks an acks=all produce until the high watermark
// covers upTo, the timeout passes or leadership moves.
func (b *Broker) waitReplicated(p *partition, upTo int64, minISR int32, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.rep.mu.Lock()
		ls := p.rep.leader
		if ls == nil { // leadership moved while waiting
			p.rep.mu.Unlock()
			return kerr.NotLeaderForPartition
		}
		b.applyUpdateLocked(p, ls.SetLeaderEnd(p.log.HighWatermark(), b.cfg.Now()))
		ok, err := ls.Satisfied(upTo, int(minISR))
		ch := p.rep.hwCh
		p.rep.mu.Unlock()
		if ok {
			if errors.Is(err, replication.ErrNotEnoughReplicasAfterAppend) {
				return kerr.NotEnoughReplicasAfterAppend
			}
			return nil
		}
		select {
		case <-ch:
		case <-p.log.Changed():
		case <-deadline.C:
			return kerr.RequestTimedOut
		case <-b.closedCh:
			return kerr.NotLeaderForPartition
		}
	}
}

// replicationTicker drives ISR shrinking for led partitions.
func (b *Broker) replicationTicker() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.closedCh:
			return
		case <-t.C:
		}
		b.mu.RLock()
		parts := make([]*partition, 0, len(b.parts))
		for _, p := range b.parts {
			parts = append(parts, p)
		}
		b.mu.RUnlock()
		now := b.cfg.Now()
		for _, p := range parts {
			p.rep.mu.Lock()
			if ls := p.rep.leader; ls != nil {
				b.applyUpdateLocked(p, ls.SetLeaderEnd(p.log.HighWatermark(), now))
				b.applyUpdateLocked(p, ls.Tick(now))
			}
			p.rep.mu.Unlock()
		}
	}
}

func joinHostPort(host string, port int32) string {
	return net.JoinHostPort(host, strconv.Itoa(int(port)))
}
