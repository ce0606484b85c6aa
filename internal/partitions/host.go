// Package partitions is the partition host (Kafka's replica manager): it
// keeps the partitions this broker holds in step with the metadata image.
// One goroutine owned by the Host applies every new image: it opens the
// logs of partitions newly assigned here, deletes the logs of partitions
// moved away or of deleted (or recreated) topics, applies topic config
// changes, and sets each partition's replication role — leader (a
// replication.LeaderState), follower (the replication.Fetcher copies the
// leader's log) or single replica. Then it reports the applied version to
// the metadata store (Store.Served), which read-your-writes waits on.
//
// No request path opens or deletes a log: the protocol server
// (internal/broker) reads the image the host has applied (Image) and the
// partitions it holds (Get), and a request that arrives before the host
// applied a change is answered from the older image (the client retries).
//
// For a partition with more than one replica:
//
//   - the leader keeps a replication.LeaderState: follower fetches
//     (FollowerFetched) report each follower's log end offset, the high
//     watermark is the minimum over the ISR, and ISR changes are proposed to
//     the controller (AlterISR) and applied only once confirmed; consumers
//     read up to that high watermark, and acks=all produces wait for it
//     (WaitReplicated; ErrNotEnoughReplicas below min.insync.replicas);
//   - a follower has the replication.Fetcher copy the leader's log and move
//     its log start up to the leader's; the low watermark (DeleteRecords) is
//     the smallest log start its followers report.
//
// In log.flush.mode=ack the leader's own end is its durable offset and a
// follower fsyncs before it fetches again, so a record counted in the high
// watermark is on disk on every ISR member. Single-replica partitions skip
// all of this: their high watermark is the log's own (the durable offset).
//
// Lock order: Host.applyMu (held while applying an image) before
// Partition.rep.mu and Host.mu; Host.mu and followerHWs.mu are taken alone
// except that pruning followerHWs reads Host.mu. No host lock is held while
// calling the metadata store; Partition.rep.mu is held while reading a
// log's offsets (Log's own locks are leaves).
package partitions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/replication"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/topicconfig"
)

// Errors of the partition host; the protocol server maps them to Kafka
// error codes.
var (
	// ErrNotLeader: this broker no longer leads the partition (or is
	// shutting down).
	ErrNotLeader = errors.New("partitions: not the leader")
	// ErrNotEnoughReplicas: the ISR is below min.insync.replicas.
	ErrNotEnoughReplicas = replication.ErrNotEnoughReplicas
	// ErrNotEnoughReplicasAfterAppend: the records reached the high
	// watermark while the ISR was below min.insync.replicas.
	ErrNotEnoughReplicasAfterAppend = replication.ErrNotEnoughReplicasAfterAppend
	// ErrReplicationTimeout: the high watermark did not reach the records
	// in time.
	ErrReplicationTimeout = errors.New("partitions: replication timed out")
)

// Metadata is what the host needs of the metadata store
// (controller.Store implements it).
type Metadata interface {
	Image() *metadata.Image
	Changes() <-chan struct{}
	// Served tells the store which image version this broker serves.
	Served(version int64)
	// AlterISR proposes a led partition's ISR change to the controller.
	AlterISR(ctx context.Context, topic string, partition int32, p replication.ISRProposal) error
	// PartitionEpoch is the partition's current epoch (0 when unknown).
	PartitionEpoch(topic string, partition int32) int32
	// ReportOffline tells the controller which hosted replicas are
	// offline (their log failed), so that leadership moves away.
	ReportOffline(partitions map[string][]int32)
}

// Config configures a Host. Zero values take the documented defaults.
type Config struct {
	NodeID int32 // this broker's node ID; required

	// TopicDefaults are broker-level topic config defaults (topic names).
	TopicDefaults map[string]string

	// ReplicaLagTime is replica.lag.time.max.ms; default 30 s.
	ReplicaLagTime time.Duration
	// FetcherLocalAddr is the IP replica fetch connections bind to;
	// empty lets the OS choose.
	FetcherLocalAddr string

	// DiskLow, when set, reports the data directory below its free-space
	// reserve: followed partitions stop fetching meanwhile.
	DiskLow func() bool

	Logger *slog.Logger
	Now    func() time.Time // default time.Now
}

// retryInterval is how soon the host tries again after an image could not
// be applied to every partition.
const retryInterval = time.Second

// tickInterval is how often led partitions check for lagging followers
// (ISR shrink).
const tickInterval = time.Second

// Host holds this broker's partitions. Create it with New, which applies
// the current image before returning; Close stops its goroutines and the
// replica fetcher.
type Host struct {
	cfg     Config
	log     *slog.Logger
	meta    Metadata
	logs    *storage.Manager
	fetcher *replication.Fetcher

	applyMu sync.Mutex // serializes apply

	mu       sync.RWMutex
	parts    map[storage.PartitionID]*Partition
	applied  *metadata.Image // the image parts reflect; set by New
	appliedC chan struct{}   // closed when applied changes

	followerHWs followerHWs

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup // every goroutine the host starts
}

// New creates a host over the metadata store and the log manager, applies
// the current image (an error leaves the host unusable: the logs it
// opened stay with the manager) and starts the goroutines that apply later
// images and tick led partitions.
func New(cfg Config, meta Metadata, logs *storage.Manager) (*Host, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ReplicaLagTime <= 0 {
		cfg.ReplicaLagTime = 30 * time.Second
	}
	f, err := replication.NewFetcher(replication.FetcherConfig{
		NodeID: cfg.NodeID, LocalAddr: cfg.FetcherLocalAddr, Logger: cfg.Logger, Now: cfg.Now, Paused: cfg.DiskLow,
	})
	if err != nil {
		return nil, err
	}
	h := &Host{
		cfg: cfg, log: cfg.Logger, meta: meta, logs: logs, fetcher: f,
		parts:    make(map[storage.PartitionID]*Partition),
		appliedC: make(chan struct{}),
		closed:   make(chan struct{}),
	}
	if err := h.apply(meta.Image()); err != nil {
		f.Close()
		return nil, err
	}
	h.goFunc(h.watch)
	h.goFunc(h.ticker)
	return h, nil
}

func (h *Host) goFunc(fn func()) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
}

// Close stops applying images, wakes every replication waiter
// (ErrNotLeader), stops the fetcher and waits for the host's goroutines.
// The logs stay open: they belong to the storage.Manager.
func (h *Host) Close() {
	h.closeOnce.Do(func() { close(h.closed) })
	h.fetcher.Close()
	h.wg.Wait()
}

// Image is the metadata image the hosted partitions reflect: the protocol
// server answers from it, so that what a request sees agrees with the
// partitions held.
func (h *Host) Image() *metadata.Image {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.applied
}

// Applied returns a channel closed when the host next applies an image.
func (h *Host) Applied() <-chan struct{} {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.appliedC
}

// Get returns the hosted partition id, or nil.
func (h *Host) Get(id storage.PartitionID) *Partition {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.parts[id]
}

// Hosts reports whether p is (still) the hosted instance of its partition.
func (h *Host) Hosts(p *Partition) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.parts[p.id] == p
}

// All returns the hosted partitions, in no order.
func (h *Host) All() []*Partition {
	h.mu.RLock()
	defer h.mu.RUnlock()
	ps := make([]*Partition, 0, len(h.parts))
	for _, p := range h.parts {
		ps = append(ps, p)
	}
	return ps
}

// watch applies metadata changes and reports each applied version as
// served. A partition that could not be opened, deleted or configured is
// logged and retried every retryInterval; the version still counts as
// served, since every other partition is, and one broken partition must
// not keep a broker fenced or hold every metadata change.
func (h *Host) watch() {
	for {
		ch := h.meta.Changes()
		img := h.meta.Image()
		var retry <-chan time.Time
		if err := h.apply(img); err != nil {
			h.log.Error("apply metadata", "err", err)
			retry = time.After(retryInterval)
		}
		h.meta.Served(img.Version)
		select {
		case <-ch:
		case <-retry:
		case <-h.closed:
			return
		}
	}
}

// apply makes the hosted partitions match img: deletes logs of partitions
// no longer assigned here (or of recreated topics), opens logs for new
// ones, applies config changes and replication roles, then publishes img
// as the applied image.
func (h *Host) apply(img *metadata.Image) error {
	h.applyMu.Lock()
	defer h.applyMu.Unlock()
	want := make(map[storage.PartitionID]*metadata.Topic)
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			if containsInt32(p.Replicas, h.cfg.NodeID) {
				want[storage.PartitionID{Topic: t.Name, Partition: p.Index}] = t
			}
		}
	}

	h.mu.RLock()
	var stale []*Partition
	for id, p := range h.parts {
		if t, ok := want[id]; !ok || t.ID != p.topicID {
			stale = append(stale, p)
		}
	}
	h.mu.RUnlock()
	var errs []error
	for _, p := range stale {
		h.mu.Lock()
		delete(h.parts, p.id)
		h.mu.Unlock()
		h.fetcher.Unfollow(p.id)
		h.endLeadership(p)
		if err := h.logs.Delete(p.id); err != nil {
			errs = append(errs, fmt.Errorf("partitions: delete %s-%d: %w", p.id.Topic, p.id.Partition, err))
		}
	}
	// Logs on disk that no topic claims (a crash between a topic deletion
	// and its log removal) are removed too.
	for _, id := range h.logs.Partitions() {
		if _, ok := want[id]; !ok {
			if err := h.logs.Delete(id); err != nil {
				errs = append(errs, fmt.Errorf("partitions: delete orphan log %s-%d: %w", id.Topic, id.Partition, err))
			}
		}
	}

	for id, t := range want {
		res, err := topicconfig.Resolve(t.Configs, h.cfg.TopicDefaults)
		if err != nil {
			errs = append(errs, fmt.Errorf("partitions: topic %s config: %w", t.Name, err))
			continue
		}
		p := h.Get(id)
		if p != nil {
			if old := p.cfg.Load(); old == nil || *old != res {
				p.log.SetConfig(res.Log)
				p.cfg.Store(&res)
			}
			h.setRole(img, p, t.Partitions[id.Partition])
			continue
		}
		l, err := h.logs.Create(id, res.Log)
		if err != nil {
			errs = append(errs, fmt.Errorf("partitions: open log %s-%d: %w", id.Topic, id.Partition, err))
			continue
		}
		l.SetConfig(res.Log)
		p = &Partition{id: id, topicID: t.ID, log: l}
		p.cfg.Store(&res)
		h.setRole(img, p, t.Partitions[id.Partition])
		h.mu.Lock()
		h.parts[id] = p
		h.mu.Unlock()
	}

	h.mu.Lock()
	h.applied = img
	close(h.appliedC)
	h.appliedC = make(chan struct{})
	h.mu.Unlock()
	return errors.Join(errs...)
}

func containsInt32(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
