// Package broker serves the Kafka protocol: it accepts connections, frames
// and decodes requests (internal/wire), dispatches each to the handler of its
// API key (one file per key, named after it: 00_produce.go, 01_fetch.go, …)
// and writes responses in request order.
//
// Every handler reaches partitions through one layer, Broker.lookup, which
// reads the current metadata Image (internal/metadata) to decide whether
// this broker leads the partition, and finds the partition's log
// (internal/storage). A single node is simply a broker that leads every
// partition; the cluster work plugs a replicated metadata store into the
// same layer.
//
// Lock order: docs/ARCHITECTURE.md ("Lock order") has the whole of it;
// in short Broker.reconMu before partition.rep.mu and Broker.mu, Broker.mu
// before Broker.connsMu, and no broker lock held while calling metadata.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streambus/streambus/internal/config"
	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/metrics"
	"github.com/streambus/streambus/internal/replication"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/topicconfig"
)

// Config configures a Broker. Zero values take the documented defaults.
type Config struct {
	NodeID int32 // this broker's node ID; default 1

	// AdvertisedHost and AdvertisedPort are what Metadata tells clients.
	AdvertisedHost string
	AdvertisedPort int32

	MaxRequestBytes    int32         // socket.request.max.bytes; default 100 MiB
	IdleTimeout        time.Duration // connections.max.idle.ms; default 10 min
	RequestReadTimeout time.Duration // time allowed to receive one request once its size arrived; default 30 s

	AutoCreateTopics  bool  // auto.create.topics.enable
	NumPartitions     int32 // num.partitions; default 1
	ReplicationFactor int16 // default.replication.factor; default 1

	// FlushOnAck: acks=1/all produce waits for fsync (the durable default).
	FlushOnAck bool

	// TopicDefaults are broker-level topic config defaults (topic names).
	TopicDefaults map[string]string

	// BrokerConfigs answers DescribeConfigs for the BROKER resource.
	BrokerConfigs func() []config.ConfigEntry

	// DataDir is reported by DescribeLogDirs.
	DataDir string

	// Groups configures __consumer_offsets and the group coordinators.
	Groups GroupConfig

	// ReplicaLagTime is replica.lag.time.max.ms; default 30 s.
	ReplicaLagTime time.Duration
	// FetcherLocalAddr is the IP replica fetch connections bind to (the
	// host of this broker's own addresses); empty lets the OS choose.
	FetcherLocalAddr string

	// RackAwareReplicaSelector is replica.selector.class set to Kafka's
	// RackAwareReplicaSelector: a consumer fetch naming a rack is sent to
	// an in-sync replica in that rack (KIP-392, follower_fetch.go).
	// Default false: the leader serves every consumer, as in Kafka.
	RackAwareReplicaSelector bool

	MaxDecompressedBytes int // bound on decompressing one batch; default 64 MiB

	Logger  *slog.Logger
	Metrics *metrics.Metrics
	Now     func() time.Time
}

func (c *Config) ensureDefaults() {
	if c.NodeID == 0 {
		c.NodeID = 1
	}
	if c.MaxRequestBytes <= 0 {
		c.MaxRequestBytes = 100 << 20
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Minute
	}
	if c.RequestReadTimeout <= 0 {
		c.RequestReadTimeout = 30 * time.Second
	}
	if c.NumPartitions <= 0 {
		c.NumPartitions = 1
	}
	if c.ReplicationFactor <= 0 {
		c.ReplicationFactor = 1
	}
	if c.MaxDecompressedBytes <= 0 {
		c.MaxDecompressedBytes = 64 << 20
	}
	if c.Groups.OffsetsTopicPartitions <= 0 {
		c.Groups.OffsetsTopicPartitions = 8
	}
	if c.Groups.OffsetsTopicReplicationFactor <= 0 {
		c.Groups.OffsetsTopicReplicationFactor = 1
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Broker serves Kafka clients. Create it with New, call Serve with a
// listener, and Shutdown to stop: Shutdown stops accepting, lets in-flight
// requests finish and waits for every goroutine the broker started.
type Broker struct {
	cfg  Config
	log  *slog.Logger
	meta Store
	logs *storage.Manager
	m    *metrics.Metrics

	fetchSessions *fetchSessions
	frames        framePool
	fetcher       *replication.Fetcher // copies partitions this broker follows
	followerHWs   followerHWs          // high watermarks served from follower partitions (follower_fetch.go)
	groups        groupCoordinators

	mu    sync.RWMutex
	parts map[storage.PartitionID]*partition // partitions this broker hosts

	connsMu sync.Mutex
	conns   map[*conn]struct{}
	lns     []net.Listener

	closing  atomic.Bool
	closedCh chan struct{}
	wg       sync.WaitGroup // every goroutine the broker starts
	reconMu  sync.Mutex     // serializes reconcile
}

// partition is a partition hosted here: its log and resolved config.
type partition struct {
	id      storage.PartitionID
	topicID [16]byte
	log     *storage.Log
	cfg     atomic.Pointer[topicconfig.Resolved]
	rep     replicaState // replication role (replication.go)
}

// New creates a broker over a metadata store and a log manager, and opens
// the logs of every partition the metadata assigns to it.
func New(cfg Config, meta Store, logs *storage.Manager) (*Broker, error) {
	cfg.ensureDefaults()
	b := &Broker{
		cfg:      cfg,
		log:      cfg.Logger,
		meta:     meta,
		logs:     logs,
		m:        cfg.Metrics,
		parts:    make(map[storage.PartitionID]*partition),
		conns:    make(map[*conn]struct{}),
		closedCh: make(chan struct{}),
	}
	b.fetchSessions = newFetchSessions(1000)
	f, err := replication.NewFetcher(replication.FetcherConfig{
		NodeID: cfg.NodeID, LocalAddr: cfg.FetcherLocalAddr, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	b.fetcher = f
	if err := b.reconcile(); err != nil {
		return nil, err
	}
	b.syncCoordinators()
	b.goFunc(b.watchMetadata)
	b.goFunc(b.replicationTicker)
	return b, nil
}

// goFunc starts a goroutine owned by the broker.
func (b *Broker) goFunc(fn func()) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		fn()
	}()
}

// reconcileRetry is how soon watchMetadata tries again after reconcile
// failed for some partitions.
const reconcileRetry = time.Second

// watchMetadata applies metadata changes to the hosted partitions and
// tells the metadata store which version this broker now serves. A
// partition that could not be opened, deleted or configured is logged and
// retried every reconcileRetry; the version still counts as served, since
// every other partition is, and one broken partition must not keep a
// broker fenced or hold every metadata change.
func (b *Broker) watchMetadata() {
	warned := false
	for {
		ch := b.meta.Changes()
		img := b.meta.Image()
		var retry <-chan time.Time
		if err := b.reconcile(); err != nil {
			b.log.Error("apply metadata", "err", err)
			retry = time.After(reconcileRetry)
		}
		b.meta.Served(img.Version)
		// __consumer_offsets may not be creatable yet (this broker is
		// fenced until it served its first image; fewer brokers are
		// registered than offsets.topic.replication.factor): then
		// FindCoordinator answers COORDINATOR_NOT_AVAILABLE and this
		// tries again on every metadata change. The first failure while
		// this broker is unfenced is worth a warning.
		if cur := b.meta.Image(); cur.Topics[OffsetsTopic] == nil {
			if err := b.ensureOffsetsTopic(); err != nil {
				_, unfenced := cur.Brokers[b.cfg.NodeID]
				if unfenced && !warned {
					b.log.Warn("cannot create the offsets topic yet", "err", err)
					warned = true
				} else {
					b.log.Debug("cannot create the offsets topic yet", "err", err)
				}
			}
		}
		b.syncCoordinators()
		select {
		case <-ch:
		case <-retry:
		case <-b.closedCh:
			return
		}
	}
}

// reconcile makes the hosted partitions match the metadata image: opens
// logs for new partitions, deletes logs of deleted (or recreated) topics,
// and applies config changes.
func (b *Broker) reconcile() error {
	b.reconMu.Lock()
	defer b.reconMu.Unlock()
	img := b.meta.Image()
	want := make(map[storage.PartitionID]*metadata.Topic)
	for _, t := range img.Topics {
		for _, p := range t.Partitions {
			if containsInt32(p.Replicas, b.cfg.NodeID) {
				want[storage.PartitionID{Topic: t.Name, Partition: p.Index}] = t
			}
		}
	}

	b.mu.RLock()
	var stale []*partition
	for id, p := range b.parts {
		if t, ok := want[id]; !ok || t.ID != p.topicID {
			stale = append(stale, p)
		}
	}
	b.mu.RUnlock()
	var errs []error
	for _, p := range stale {
		b.mu.Lock()
		delete(b.parts, p.id)
		b.mu.Unlock()
		b.fetcher.Unfollow(p.id)
		if err := b.logs.Delete(p.id); err != nil {
			errs = append(errs, fmt.Errorf("broker: delete partition %s-%d: %w", p.id.Topic, p.id.Partition, err))
		}
	}
	// Logs on disk that no topic claims (a crash between a topic deletion
	// and its log removal) are removed too.
	for _, id := range b.logs.Partitions() {
		if _, ok := want[id]; !ok {
			if err := b.logs.Delete(id); err != nil {
				errs = append(errs, fmt.Errorf("broker: delete orphan log %s-%d: %w", id.Topic, id.Partition, err))
			}
		}
	}

	for id, t := range want {
		res, err := topicconfig.Resolve(t.Configs, b.cfg.TopicDefaults)
		if err != nil {
			errs = append(errs, fmt.Errorf("broker: topic %s config: %w", t.Name, err))
			continue
		}
		b.mu.RLock()
		p := b.parts[id]
		b.mu.RUnlock()
		if p != nil {
			if old := p.cfg.Load(); old == nil || *old != res {
				p.log.SetConfig(res.Log)
				p.cfg.Store(&res)
			}
			b.reconcileReplication(img, p, t.Partitions[id.Partition])
			continue
		}
		l, err := b.logs.Create(id, res.Log)
		if err != nil {
			errs = append(errs, fmt.Errorf("broker: open log %s-%d: %w", id.Topic, id.Partition, err))
			continue
		}
		l.SetConfig(res.Log)
		p = &partition{id: id, topicID: t.ID, log: l}
		p.cfg.Store(&res)
		b.reconcileReplication(img, p, t.Partitions[id.Partition])
		b.mu.Lock()
		b.parts[id] = p
		b.mu.Unlock()
	}
	return errors.Join(errs...)
}

// lookup finds a partition this broker leads, or the Kafka error saying why
// it cannot serve it.
func (b *Broker) lookup(img *metadata.Image, topic string, part int32) (*partition, *metadata.Partition, error) {
	t := img.Topics[topic]
	if t == nil || part < 0 || int(part) >= len(t.Partitions) {
		return nil, nil, kerr.UnknownTopicOrPartition
	}
	mp := &t.Partitions[part]
	if mp.Leader != b.cfg.NodeID {
		if mp.Leader < 0 {
			return nil, mp, kerr.LeaderNotAvailable
		}
		return nil, mp, kerr.NotLeaderForPartition
	}
	id := storage.PartitionID{Topic: topic, Partition: part}
	b.mu.RLock()
	p := b.parts[id]
	b.mu.RUnlock()
	if p == nil || p.topicID != t.ID {
		// The metadata changed and reconcile has not caught up yet.
		if err := b.reconcile(); err != nil {
			b.log.Warn("reconcile on lookup", "err", err)
		}
		b.mu.RLock()
		p = b.parts[id]
		b.mu.RUnlock()
		if p == nil || p.topicID != t.ID {
			return nil, mp, kerr.UnknownTopicOrPartition
		}
	}
	return p, mp, nil
}

// Serve accepts connections on ln until Shutdown. It returns nil after
// Shutdown, or the accept error.
func (b *Broker) Serve(ln net.Listener) error {
	b.connsMu.Lock()
	if b.closing.Load() {
		b.connsMu.Unlock()
		return nil
	}
	b.lns = append(b.lns, ln)
	b.connsMu.Unlock()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if b.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("broker: accept: %w", err)
		}
		c := newConn(b, nc)
		b.connsMu.Lock()
		if b.closing.Load() {
			b.connsMu.Unlock()
			nc.Close()
			return nil
		}
		b.conns[c] = struct{}{}
		b.connsMu.Unlock()
		b.goFunc(c.serve)
	}
}

// Shutdown stops accepting, stops reading new requests, waits for in-flight
// requests to be answered (until ctx is done, then closes connections
// regardless) and for every broker goroutine to exit.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.connsMu.Lock()
	if !b.closing.Swap(true) {
		close(b.closedCh)
	}
	for _, ln := range b.lns {
		ln.Close()
	}
	for c := range b.conns {
		c.stopReading()
	}
	b.connsMu.Unlock()
	// Requests held by group coordinators (a JoinGroup waits up to its
	// rebalance timeout) would hold the shutdown: stopping the runners
	// closes those connections, and clients find the coordinator again.
	b.stopCoordinators()
	b.fetcher.Close()

	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		b.connsMu.Lock()
		for c := range b.conns {
			c.nc.Close()
		}
		b.connsMu.Unlock()
		<-done
		return ctx.Err()
	}
}

func (b *Broker) forgetConn(c *conn) {
	b.connsMu.Lock()
	delete(b.conns, c)
	b.connsMu.Unlock()
}

// Ready reports whether the broker has started and is not shutting down.
func (b *Broker) Ready() bool { return !b.closing.Load() }

func containsInt32(s []int32, v int32) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func (b *Broker) nowMs() int64 { return b.cfg.Now().UnixMilli() }

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

func itoa(v int32) string { return strconv.Itoa(int(v)) }
