package replication

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streambus/streambus/internal/storage"
)

// fetchVersion is the Fetch version the follower speaks: v12 is the first
// with DivergingEpoch and LastFetchedEpoch (KIP-320/595) and the last that
// names topics (v13+ uses topic IDs), so no topic ID map is needed.
const fetchVersion = 12

// listOffsetsVersion asks the leader for its log start and end after
// OFFSET_OUT_OF_RANGE (v4: CurrentLeaderEpoch, not flexible).
const listOffsetsVersion = 4

// FetcherConfig configures a Fetcher. Zero fields take the defaults
// listed (Kafka's replica.* broker configs).
type FetcherConfig struct {
	// NodeID is this broker's ID, sent as replica_id. Required (≥ 0).
	NodeID int32
	// ClientID is the request header's client ID. Default
	// "streambus-replica-fetcher".
	ClientID string
	// LocalAddr, if set, is the IP outgoing connections bind to (tests use
	// 127.0.0.2, 127.0.0.3 to tell brokers apart on one host).
	LocalAddr string
	// MaxWait is replica.fetch.wait.max.ms. Default 500ms.
	MaxWait time.Duration
	// MinBytes is replica.fetch.min.bytes. Default 1.
	MinBytes int32
	// MaxBytes is replica.fetch.response.max.bytes. Default 10 MiB.
	MaxBytes int32
	// PartitionMaxBytes is replica.fetch.max.bytes. Default 1 MiB.
	PartitionMaxBytes int32
	// Backoff is replica.fetch.backoff.ms, the first wait after an error;
	// it doubles per consecutive error up to MaxBackoff. Default 1s.
	Backoff time.Duration
	// MaxBackoff bounds Backoff's growth. Default 10s.
	MaxBackoff time.Duration
	// LeaderRetry is how soon a partition is fetched again after the
	// leader answered NOT_LEADER_OR_FOLLOWER, FENCED_LEADER_EPOCH or
	// UNKNOWN_TOPIC_OR_PARTITION (its metadata or ours is a moment
	// behind, typically just after a leader change); it doubles per
	// consecutive refusal up to Backoff. Default 100ms.
	LeaderRetry time.Duration
	// SocketTimeout is replica.socket.timeout.ms: dial timeout, and
	// request timeout beyond MaxWait. Default 30s.
	SocketTimeout time.Duration
	// Logger receives fetcher events. Default: discard.
	Logger *slog.Logger
	// Now is the clock: retry times and socket deadlines derive from it.
	// Default time.Now.
	Now func() time.Time
	// Paused, when set and true, holds every fetch (checked before each,
	// then every Backoff): the broker's data directory is below its
	// free-space reserve. The followers then fall out of their ISRs, as
	// followers that cannot write must.
	Paused func() bool
}

// EnsureDefaults fills zero fields with their defaults.
func (c *FetcherConfig) EnsureDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.MaxWait, 500*time.Millisecond)
	def(&c.Backoff, time.Second)
	def(&c.MaxBackoff, 10*time.Second)
	def(&c.LeaderRetry, 100*time.Millisecond)
	def(&c.SocketTimeout, 30*time.Second)
	if c.ClientID == "" {
		c.ClientID = "streambus-replica-fetcher"
	}
	if c.MinBytes == 0 {
		c.MinBytes = 1
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 10 << 20
	}
	if c.PartitionMaxBytes == 0 {
		c.PartitionMaxBytes = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports a configuration that cannot work.
func (c *FetcherConfig) Validate() error {
	switch {
	case c.NodeID < 0:
		return fmt.Errorf("%w: node ID %d", ErrInvalidConfig, c.NodeID)
	case c.LocalAddr != "" && net.ParseIP(c.LocalAddr) == nil:
		return fmt.Errorf("%w: local address %q is not an IP", ErrInvalidConfig, c.LocalAddr)
	case c.MaxWait < 0 || c.Backoff < 0 || c.MaxBackoff < c.Backoff || c.SocketTimeout <= 0 || c.LeaderRetry < 0:
		return fmt.Errorf("%w: negative or inconsistent durations", ErrInvalidConfig)
	case c.MinBytes < 0 || c.MaxBytes <= 0 || c.PartitionMaxBytes <= 0:
		return fmt.Errorf("%w: byte limits", ErrInvalidConfig)
	}
	return nil
}

// Leader names the broker a partition is fetched from.
type Leader struct {
	ID   int32
	Addr string // host:port of its replication listener
}

// Followed is one partition this broker follows.
type Followed struct {
	Log         *storage.Log // the local replica; the fetcher appends and truncates it
	LeaderEpoch int32        // the leader epoch from metadata (current_leader_epoch)
}

// PartitionStatus is a follower partition's state as the fetcher sees it.
type PartitionStatus struct {
	Leader        int32
	LeaderEpoch   int32
	HighWatermark int64 // the leader's, as of the last response; -1 before
	// Paused is set after NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH
	// until the partition is fetched again (after LeaderRetry, or at once
	// when Follow gives it a new leader or epoch).
	Paused bool
	Err    error // the last error, nil after a successful fetch
}

// Fetcher replicates the partitions this broker follows. It runs one
// goroutine per source leader broker, fetching all partitions followed
// from that broker with Fetch v12 (replica_id set) over one TCP
// connection. Per partition it appends what the leader returns
// (storage.Log.AppendReplicated), fsyncs before the next fetch in
// FlushOnAck mode, then moves its log start up to the leader's (as far as
// its own high watermark), truncates at a DivergingEpoch, and recovers from
// OFFSET_OUT_OF_RANGE by asking the leader for its log start and end.
// NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH pause the partition for
// LeaderRetry (doubling up to Backoff) or until Follow brings a new leader
// or epoch; other errors back off, doubling up to MaxBackoff. Adding a
// partition to a source interrupts its in-flight long poll.
//
// Methods are safe for concurrent use. Close stops every goroutine and
// waits for them; Follow and Unfollow return only when no response is
// being applied to the partition, so the caller owns the log again
// after Unfollow.
type Fetcher struct {
	cfg FetcherConfig

	mu      sync.Mutex
	closed  bool
	sources map[int32]*source // by leader ID
	where   map[storage.PartitionID]int32
	wg      sync.WaitGroup
}

// NewFetcher validates cfg; goroutines start with the first Follow.
func NewFetcher(cfg FetcherConfig) (*Fetcher, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Fetcher{cfg: cfg, sources: map[int32]*source{}, where: map[storage.PartitionID]int32{}}, nil
}

// Follow starts (or updates) replication of p.Log's partition from
// leader. A new leader or leader epoch resumes a paused partition.
func (f *Fetcher) Follow(leader Leader, p Followed) error {
	id := p.Log.ID()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return fmt.Errorf("replication: follow %v: %w", id, storage.ErrClosed)
	}
	if old, ok := f.where[id]; ok && old != leader.ID {
		f.removeLocked(id)
	}
	src := f.sources[leader.ID]
	var moved map[storage.PartitionID]Followed
	if src != nil && src.addr != leader.Addr {
		// The broker moved: restart its source on the new address.
		moved = src.snapshotParts()
		f.stopSourceLocked(src)
		src = nil
	}
	if src == nil {
		src = newSource(f, leader)
		f.sources[leader.ID] = src
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			src.run()
		}()
	}
	for mid, mp := range moved {
		src.follow(mid, mp)
	}
	src.follow(id, p)
	f.where[id] = leader.ID
	return nil
}

// Unfollow stops replicating partition id (leadership moved here, the
// partition was deleted). Once it returns the fetcher no longer touches
// the log.
func (f *Fetcher) Unfollow(id storage.PartitionID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removeLocked(id)
}

func (f *Fetcher) removeLocked(id storage.PartitionID) {
	lid, ok := f.where[id]
	if !ok {
		return
	}
	delete(f.where, id)
	src := f.sources[lid]
	if src == nil {
		return
	}
	if src.unfollow(id) == 0 {
		f.stopSourceLocked(src)
	}
}

func (f *Fetcher) stopSourceLocked(src *source) {
	delete(f.sources, src.leader.ID)
	src.stop()
}

// Status returns the fetcher's view of partition id.
func (f *Fetcher) Status(id storage.PartitionID) (PartitionStatus, bool) {
	f.mu.Lock()
	src := f.sources[f.where[id]]
	f.mu.Unlock()
	if src == nil {
		return PartitionStatus{}, false
	}
	return src.status(id)
}

// Close stops every source goroutine and waits for them.
func (f *Fetcher) Close() {
	f.mu.Lock()
	f.closed = true
	for _, src := range f.sources {
		f.stopSourceLocked(src)
	}
	f.where = map[storage.PartitionID]int32{}
	f.mu.Unlock()
	f.wg.Wait()
}

// errPaused marks partitions waiting for metadata.
var errPaused = errors.New("replication: waiting for a metadata change")

// backoffFor doubles the configured backoff per consecutive failure.
func (c *FetcherConfig) backoffFor(failures int) time.Duration {
	d := c.Backoff
	for i := 1; i < failures && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// kafkaErr turns a response error code into an error (nil for 0).
func kafkaErr(code int16) error { return kerr.ErrorForCode(code) }
