// Package broker is the Kafka protocol server: it accepts connections,
// frames and decodes requests (internal/wire), runs the handler of each
// request's API from one table (apis.go; one file per API key, named after
// it: 00_produce.go, 01_fetch.go, …) and writes responses in request order.
// Handlers return their response, or a deferred one, to the connection
// (handler.go); only the connection writes its own state.
//
// The broker composes three parts it owns: the partition host
// (internal/partitions), which opens, follows, leads and deletes
// partitions as metadata images arrive, on its own goroutine; the group
// coordinators, on the coordinator runtime (internal/coordinator,
// groups.go); and the handlers, which reach partitions through
// Broker.lookup on the host's applied image and never open or delete a log.
//
// Lock order: docs/ARCHITECTURE.md ("Lock order") has the whole of it;
// the broker's own locks (connsMu, fetchSessions.mu) are leaves, and no
// broker lock is held while calling metadata, the host or the runtime.
package broker

import (
	"bufio"
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
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/config"
	"github.com/streambus/streambus/internal/coordinator"
	"github.com/streambus/streambus/internal/diskspace"
	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/metrics"
	"github.com/streambus/streambus/internal/partitions"
	"github.com/streambus/streambus/internal/storage"
)

// Config configures a Broker. Zero values take the documented defaults.
type Config struct {
	NodeID int32 // this broker's node ID; default 1

	// AdvertisedHost and AdvertisedPort are what Metadata tells clients.
	AdvertisedHost string
	AdvertisedPort int32

	MaxRequestBytes int32         // socket.request.max.bytes; default 100 MiB
	IdleTimeout     time.Duration // connections.max.idle.ms; default 10 min

	// MaxConnections is max.connections: at the limit the broker stops
	// accepting until a connection closes. ≤ 0: no limit (the default).
	MaxConnections int
	// MaxConnectionsPerIP is max.connections.per.ip: a connection from an
	// address at the limit is closed at once. ≤ 0: no limit (the default).
	MaxConnectionsPerIP int
	// MaxConnectionsPerIPOverrides are per-address limits replacing
	// MaxConnectionsPerIP (max.connections.per.ip.overrides, hosts
	// resolved to IPs); 0 refuses every connection from that address.
	MaxConnectionsPerIPOverrides map[string]int
	RequestReadTimeout           time.Duration // time allowed to receive one request once its size arrived; default 30 s

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

	// Disk watches the data directory's free space: while it is below
	// log.dir.min.free.bytes, produce is refused with KAFKA_STORAGE_ERROR.
	// Nil: no check.
	Disk *diskspace.Monitor

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
	m    *metrics.Metrics

	host          *partitions.Host // the partitions this broker holds
	limits        *connLimits
	fetchSessions *fetchSessions
	frames        framePool
	readers       sync.Pool                                         // *bufio.Reader of ioBufferSize, held by connections mid-request
	writers       sync.Pool                                         // *bufio.Writer of ioBufferSize, held by running connection writers
	groups        *coordinator.Runtime[groupRequest, kmsg.Response] // on __consumer_offsets (groups.go)

	connsMu sync.Mutex
	conns   map[*conn]struct{}
	lns     []net.Listener

	closing  atomic.Bool
	closedCh chan struct{}
	wg       sync.WaitGroup // every goroutine the broker starts
}

// New creates a broker over a metadata store and a log manager: its
// partition host opens the logs of every partition the metadata assigns
// to this broker before New returns, and the group coordinators of the
// __consumer_offsets partitions it leads start loading.
func New(cfg Config, meta Store, logs *storage.Manager) (*Broker, error) {
	cfg.ensureDefaults()
	b := &Broker{
		cfg:      cfg,
		log:      cfg.Logger,
		meta:     meta,
		m:        cfg.Metrics,
		conns:    make(map[*conn]struct{}),
		closedCh: make(chan struct{}),
	}
	b.fetchSessions = newFetchSessions(1000)
	b.limits = newConnLimits(cfg.MaxConnections, cfg.MaxConnectionsPerIP, cfg.MaxConnectionsPerIPOverrides)
	b.readers.New = func() any { return bufio.NewReaderSize(nil, ioBufferSize) }
	b.writers.New = func() any { return bufio.NewWriterSize(nil, ioBufferSize) }
	h, err := partitions.New(partitions.Config{
		NodeID: cfg.NodeID, TopicDefaults: cfg.TopicDefaults, ReplicaLagTime: cfg.ReplicaLagTime,
		FetcherLocalAddr: cfg.FetcherLocalAddr, Logger: cfg.Logger, Now: cfg.Now, DiskLow: cfg.Disk.Low,
	}, meta, logs)
	if err != nil {
		return nil, err
	}
	b.host = h
	b.groups = newGroupRuntime(cfg, meta)
	b.syncCoordinators()
	b.goFunc(b.watchCoordinators)
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

// watchCoordinators keeps the coordinators in step with the partitions
// the host has applied: it creates __consumer_offsets when missing and
// starts or stops a group coordinator for each of its partitions led here.
func (b *Broker) watchCoordinators() {
	warned := false
	for {
		applied := b.host.Applied()
		// __consumer_offsets may not be creatable yet (this broker is
		// fenced until it served its first image; fewer brokers are
		// registered than offsets.topic.replication.factor): then
		// FindCoordinator answers COORDINATOR_NOT_AVAILABLE and this
		// tries again on every applied image. The first failure while
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
		case <-applied:
		case <-b.closedCh:
			return
		}
	}
}

// lookup finds a partition this broker leads in img (the host's applied
// image), or the Kafka error saying why it cannot serve it.
func (b *Broker) lookup(img *metadata.Image, topic string, part int32) (*partitions.Partition, *metadata.Partition, error) {
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
	p := b.host.Get(storage.PartitionID{Topic: topic, Partition: part})
	if p == nil || p.TopicID() != t.ID {
		// Assigned here, but its log could not be opened (the host
		// logged why and retries).
		return nil, mp, kerr.UnknownTopicOrPartition
	}
	return p, mp, nil
}

// Accept backoff after a failed accept (out of file descriptors, a
// connection aborted before it was accepted, …), doubling up to the
// maximum, as Go's net/http server does.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Serve accepts connections on ln until Shutdown, within the connection
// limits (connlimit.go). It returns nil after Shutdown, or an error once
// ln is closed by someone else. Other accept errors (EMFILE, ENFILE,
// ECONNABORTED, …) are logged and retried after a backoff: running out of
// descriptors for a while must not stop the broker.
func (b *Broker) Serve(ln net.Listener) error {
	b.connsMu.Lock()
	if b.closing.Load() {
		b.connsMu.Unlock()
		return nil
	}
	b.lns = append(b.lns, ln)
	b.connsMu.Unlock()
	var backoff time.Duration
	for {
		if !b.limits.waitRoom(b.closedCh) {
			return nil
		}
		nc, err := ln.Accept()
		if err != nil {
			if b.closing.Load() {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("broker: accept: %w", err)
			}
			backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
			b.log.Warn("accept failed; retrying", "err", err, "backoff", backoff)
			if b.m != nil {
				b.m.AcceptFailed()
			}
			select {
			case <-time.After(backoff):
			case <-b.closedCh:
				return nil
			}
			continue
		}
		backoff = 0
		c := newConn(b, nc)
		if !b.limits.admit(c.ip) {
			b.log.Debug("connection refused: max.connections.per.ip", "remote", c.addr)
			if b.m != nil {
				b.m.ConnRefused()
			}
			nc.Close()
			continue
		}
		b.connsMu.Lock()
		if b.closing.Load() {
			b.connsMu.Unlock()
			b.limits.release(c.ip)
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
	// Closing the host first ends every replication wait (the group
	// coordinators' included). Requests held by group coordinators (a
	// JoinGroup waits up to its rebalance timeout) would hold the
	// shutdown: stopping the coordinators closes those connections, and
	// clients find the coordinator again.
	b.host.Close()
	b.groups.Close()

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
	b.limits.release(c.ip)
}

// WaitApplied waits until the partition host has applied a metadata image
// of at least version, or ctx ends.
func (b *Broker) WaitApplied(ctx context.Context, version int64) error {
	for {
		applied := b.host.Applied()
		if b.host.Image().Version >= version {
			return nil
		}
		select {
		case <-applied:
		case <-ctx.Done():
			return fmt.Errorf("broker: waiting for metadata version %d: %w", version, ctx.Err())
		case <-b.closedCh:
			return fmt.Errorf("broker: waiting for metadata version %d: %w", version, metadata.ErrClosed)
		}
	}
}

// OfflinePartitions lists the hosted partitions whose log failed.
func (b *Broker) OfflinePartitions() []partitions.OfflinePartition { return b.host.Offline() }

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
