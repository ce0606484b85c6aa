package partitions

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/replication"
	"github.com/streambus/streambus/internal/storage"
)

// setRole sets a hosted partition's replication role from the metadata:
// leader (LeaderState), follower (fetcher) or neither. Called by apply.
func (h *Host) setRole(img *metadata.Image, p *Partition, mp metadata.Partition) {
	replicated := len(mp.Replicas) > 1
	if !replicated || mp.Leader != h.cfg.NodeID {
		h.endLeadership(p)
	}
	if !replicated {
		return
	}
	now := h.cfg.Now()
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	a := replication.Assignment{
		Leader: mp.Leader, LeaderEpoch: mp.LeaderEpoch, PartitionEpoch: h.meta.PartitionEpoch(p.id.Topic, p.id.Partition),
		Replicas: mp.Replicas, ISR: mp.ISR,
	}
	switch {
	case mp.Leader == h.cfg.NodeID:
		if ls := p.rep.leader; ls != nil && ls.LeaderEpoch() == mp.LeaderEpoch {
			if u, err := ls.ApplyAssignment(a, now); err == nil {
				h.applyUpdateLocked(p, u)
			}
			return
		}
		hw := p.log.LogStartOffset()
		if st, ok := h.fetcher.Status(p.id); ok && st.HighWatermark > hw {
			hw = st.HighWatermark
		}
		h.fetcher.Unfollow(p.id)
		ls, err := replication.NewLeaderState(replication.LeaderConfig{ReplicaLagTime: h.cfg.ReplicaLagTime}, h.cfg.NodeID, a, p.log.HighWatermark(), hw, now)
		if err != nil {
			h.log.Error("lead partition", "partition", p.id, "err", err)
			return
		}
		if p.rep.leader != nil { // a new leader epoch: the old state's waiters recheck
			close(p.rep.lsCh)
			close(p.rep.hwCh)
		}
		p.rep.leader = ls
		p.rep.hwCh = make(chan struct{})
		p.rep.lsCh = make(chan struct{})
	case mp.Leader >= 0:
		br, ok := img.Brokers[mp.Leader]
		if !ok {
			h.log.Warn("partition leader is not a registered broker", "partition", p.id, "leader", mp.Leader)
			return
		}
		leader := replication.Leader{ID: mp.Leader, Addr: net.JoinHostPort(br.Host, strconv.Itoa(int(br.Port)))}
		if err := h.fetcher.Follow(leader, replication.Followed{Log: p.log, LeaderEpoch: mp.LeaderEpoch}); err != nil {
			h.log.Error("follow partition", "partition", p.id, "leader", mp.Leader, "err", err)
		}
	default:
		h.fetcher.Unfollow(p.id)
	}
}

// endLeadership drops p's LeaderState, waking its waiters: they see the
// leadership is gone.
func (h *Host) endLeadership(p *Partition) {
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	if p.rep.leader != nil {
		p.rep.leader = nil
		close(p.rep.hwCh)
		close(p.rep.lsCh)
	}
}

// applyUpdateLocked acts on a LeaderState update: wake readers when the
// high watermark moved, send an ISR proposal to the controller.
func (h *Host) applyUpdateLocked(p *Partition, u replication.Update) {
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
		h.goFunc(func() { h.proposeISR(p, prop) })
	}
}

// proposeISR sends an ISR change to the controller; a rejected or failed
// proposal is dropped so that a later call may propose again.
func (h *Host) proposeISR(p *Partition, prop replication.ISRProposal) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := h.meta.AlterISR(ctx, p.id.Topic, p.id.Partition, prop)
	cancel()
	if err == nil {
		return // the metadata change arrives through apply
	}
	h.log.Warn("ISR change refused", "partition", p.id, "isr", prop.ISR, "err", err)
	p.rep.mu.Lock()
	if p.rep.leader != nil {
		p.rep.leader.ProposalFailed()
	}
	p.rep.mu.Unlock()
}

// FollowerFetched records a follower's fetch on the leader: its fetch
// offset (log end) and the log start offset it reports. ErrNotLeader when
// this broker does not lead p or replica is not one of its replicas.
func (h *Host) FollowerFetched(p *Partition, replica int32, fetchOffset, logStart int64) error {
	now := h.cfg.Now()
	p.rep.mu.Lock()
	defer p.rep.mu.Unlock()
	ls := p.rep.leader
	if ls == nil {
		return ErrNotLeader
	}
	h.applyUpdateLocked(p, ls.SetLeaderEnd(p.log.HighWatermark(), now))
	u, err := ls.FollowerFetched(replica, fetchOffset, logStart, now)
	if err != nil {
		return ErrNotLeader
	}
	h.applyUpdateLocked(p, u)
	return nil
}

// WaitReplicated blocks until p's high watermark covers upTo. It returns
// nil, ErrNotEnoughReplicasAfterAppend (covered, but the ISR fell below
// minISR), ErrReplicationTimeout, or ErrNotLeader when leadership moves or
// the host closes. A partition without a LeaderState returns ErrNotLeader
// at once: callers use it for replicated partitions they lead.
func (h *Host) WaitReplicated(p *Partition, upTo int64, minISR int32, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.rep.mu.Lock()
		ls := p.rep.leader
		if ls == nil {
			p.rep.mu.Unlock()
			return ErrNotLeader
		}
		h.applyUpdateLocked(p, ls.SetLeaderEnd(p.log.HighWatermark(), h.cfg.Now()))
		ok, err := ls.Satisfied(upTo, int(minISR))
		ch := p.rep.hwCh
		p.rep.mu.Unlock()
		if ok {
			if errors.Is(err, replication.ErrNotEnoughReplicasAfterAppend) {
				return ErrNotEnoughReplicasAfterAppend
			}
			return nil
		}
		select {
		case <-ch:
		case <-p.log.Changed():
		case <-deadline.C:
			return ErrReplicationTimeout
		case <-h.closed:
			return ErrNotLeader
		}
	}
}

// ticker drives ISR shrinking for led partitions.
func (h *Host) ticker() {
	t := time.NewTicker(tickInterval)
	defer t.Stop()
	for {
		select {
		case <-h.closed:
			return
		case <-t.C:
		}
		h.reportOffline()
		now := h.cfg.Now()
		for _, p := range h.All() {
			p.rep.mu.Lock()
			if ls := p.rep.leader; ls != nil {
				h.applyUpdateLocked(p, ls.SetLeaderEnd(p.log.HighWatermark(), now))
				h.applyUpdateLocked(p, ls.Tick(now))
			}
			p.rep.mu.Unlock()
		}
	}
}

// FollowerHighWatermark is what consumers of follower partition p may
// read up to: the largest high watermark learnt from a leader that this
// replica holds durably, never less than before. After a leader change the
// new leader may report a lower one for a while (it learnt its own as a
// follower), so the host keeps the largest it has served per hosted
// partition, as Kafka's follower keeps its high watermark with
// maybeUpdateHighWatermark. It goes back only when the log itself was cut
// below it (an unclean election).
func (h *Host) FollowerHighWatermark(p *Partition) int64 {
	durable := p.log.HighWatermark()
	learnt := int64(-1)
	if st, ok := h.fetcher.Status(p.id); ok {
		learnt = st.HighWatermark
	}
	return h.followerHWs.advance(p, min(learnt, durable), durable, p.log.LogStartOffset(), h.Hosts)
}

// followerHWs remembers, per hosted follower partition, the largest high
// watermark served to consumers. The zero value is ready. Its mutex is a
// leaf but for pruning, which takes Host.mu (through hosted) under it.
type followerHWs struct {
	mu      sync.Mutex
	hw      map[*Partition]int64
	pruneAt int // prune entries of partitions no longer hosted beyond this size
}

// advance records candidate (a high watermark learnt from the leader, or
// less than the log start before the first) for p and returns the high
// watermark to serve: the largest recorded, at least the log start, at
// most ceiling (the log's durable end). hosted tells live partitions from
// deleted ones when the map is pruned.
func (f *followerHWs) advance(p *Partition, candidate, ceiling, logStart int64, hosted func(*Partition) bool) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hw == nil {
		f.hw = make(map[*Partition]int64)
	}
	hw, ok := f.hw[p]
	if !ok {
		hw = logStart
		if len(f.hw) >= f.pruneAt {
			for q := range f.hw {
				if !hosted(q) {
					delete(f.hw, q)
				}
			}
			f.pruneAt = 2*len(f.hw) + 64
		}
	}
	hw = max(hw, candidate, logStart)
	f.hw[p] = hw
	return min(hw, max(ceiling, logStart))
}

// FollowerStatus is what the replica fetcher knows of a followed
// partition (the high watermark learnt from its leader).
func (h *Host) FollowerStatus(id storage.PartitionID) (replication.PartitionStatus, bool) {
	return h.fetcher.Status(id)
}
