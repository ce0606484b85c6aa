package coordinator

import (
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/streambus/streambus/internal/storage"
)

// Machine is one coordinator state machine, owning the state of one
// partition of the internal topic. The runtime calls it from one goroutine
// only and holds no lock while doing so; it must do no I/O and read no
// clock: time arrives as the now arguments.
type Machine[Req, Resp any] interface {
	// Load replays one record of the partition, in log order, before
	// Loaded. A nil value is a tombstone. key and value are valid only
	// during the call. An error makes the runtime log and skip the record.
	Load(key, value []byte) error
	// Loaded ends loading; Step and Tick follow.
	Loaded(now time.Time)
	// Step handles one request. replyTo is unique within this Machine; the
	// Reply answering the request carries it, in this Output or a later one.
	Step(now time.Time, replyTo uint64, req Req) Output[Resp]
	// Tick fires the timers due at now.
	Tick(now time.Time) Output[Resp]
}

// Output is what one Step or Tick asks the runtime to do, in this order.
type Output[Resp any] struct {
	// Records are appended to the partition, in order, as one batch, and
	// made durable before any of Replies is sent.
	Records []Record
	// Replies answer requests of this or earlier Steps.
	Replies []Reply[Resp]
	// NextDeadline is when Tick should next be called; zero: no timer
	// pending. A Tick later than asked is harmless.
	NextDeadline time.Time
}

// Record is one record of the internal topic. A nil Value is a tombstone.
type Record struct{ Key, Value []byte }

// Reply answers the request Stepped with ReplyTo == To.
type Reply[Resp any] struct {
	To   uint64
	Resp Resp
}

// Shard is one partition of the internal topic that this broker leads, in
// one leader epoch.
type Shard struct {
	// Index is the partition number.
	Index int32
	// LeaderEpoch is stamped on every batch the runner appends. A change
	// replaces the runner (see Runtime.Sync).
	LeaderEpoch int32
	// Log is the partition's log. The runner appends to it only while it
	// leads; a different Log replaces the runner.
	Log *storage.Log
	// WaitReplicated blocks until the partition's high watermark covers
	// upTo, that is until the ISR holds the records below it, and reports
	// why not otherwise. It must return in bounded time: Close waits for
	// it. Nil for a single-replica partition. It is read when the runner
	// starts; a partition whose replication can change within one leader
	// epoch should pass a func that decides when called.
	WaitReplicated func(upTo int64) error
}

// Config configures a Runtime. Zero fields take the defaults listed; New
// calls EnsureDefaults and Validate.
type Config[Req, Resp any] struct {
	// Name names the coordinator in log messages, e.g. "group coordinator".
	Name string
	// Topic is the internal topic, for error messages.
	Topic string
	// New returns a fresh Machine for a shard: at start, and again after a
	// failed append. Required.
	New func(shard int32) Machine[Req, Resp]
	// MaxDecompressedBytes bounds the decompressed size of one batch when
	// loading. Default 64 MiB.
	MaxDecompressedBytes int
	// IdleInterval is how long after its last Tick a Machine with no
	// deadline pending is ticked again. Default 1s.
	IdleInterval time.Duration
	// Logger receives load failures, skipped records and write failures;
	// at debug level, every request and reply. Default: discard.
	Logger *slog.Logger
	// Now is the clock: the now of Step, Tick and Loaded, batch
	// timestamps, and the base against which a NextDeadline is turned into
	// a timer. Default time.Now.
	Now func() time.Time
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config[Req, Resp]) EnsureDefaults() {
	if c.Name == "" {
		c.Name = "coordinator"
	}
	if c.MaxDecompressedBytes == 0 {
		c.MaxDecompressedBytes = 64 << 20
	}
	if c.IdleInterval == 0 {
		c.IdleInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Validate reports an unusable configuration (after EnsureDefaults).
func (c *Config[Req, Resp]) Validate() error {
	var errs []error
	if c.New == nil {
		errs = append(errs, errors.New("coordinator: Config.New is required"))
	}
	if c.MaxDecompressedBytes < 0 {
		errs = append(errs, errors.New("coordinator: MaxDecompressedBytes must not be negative"))
	}
	if c.IdleInterval < 0 {
		errs = append(errs, errors.New("coordinator: IdleInterval must not be negative"))
	}
	return errors.Join(errs...)
}

// Errors Submit returns instead of queueing a request.
var (
	// ErrNotCoordinator: no runner for the shard (not led here, stopped,
	// or its load failed).
	ErrNotCoordinator = errors.New("coordinator: not the coordinator")
	// ErrLoading: the shard's runner is still loading.
	ErrLoading = errors.New("coordinator: loading")
)

// Runtime runs one Machine per led shard. Its methods are safe for
// concurrent use.
type Runtime[Req, Resp any] struct {
	cfg Config[Req, Resp]
	wg  sync.WaitGroup // every goroutine started by goFunc

	mu      sync.Mutex
	runners map[int32]*runner[Req, Resp]
	closed  bool
}

// New returns a Runtime running no shard. It panics if cfg is invalid: a
// Config is built by code, not from user input.
func New[Req, Resp any](cfg Config[Req, Resp]) *Runtime[Req, Resp] {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	return &Runtime[Req, Resp]{cfg: cfg, runners: make(map[int32]*runner[Req, Resp])}
}

// Sync makes the running shards exactly led (at most one Shard per Index;
// a later duplicate wins). It starts a runner for each new shard and stops
// the runners of shards no longer listed, failing the requests they hold.
// A runner whose LeaderEpoch or Log changed is replaced; its successor
// answers ErrLoading at once but loads only once the old runner has exited.
// Sync does not wait for runners. After Close it does nothing.
func (rt *Runtime[Req, Resp]) Sync(led []Shard) {
	want := make(map[int32]Shard, len(led))
	for _, s := range led {
		want[s.Index] = s
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.closed {
		return
	}
	prev := make(map[int32]<-chan struct{})
	for idx, r := range rt.runners {
		if w, ok := want[idx]; !ok || w.Log != r.shard.Log || w.LeaderEpoch != r.shard.LeaderEpoch {
			r.shutdown()
			delete(rt.runners, idx)
			prev[idx] = r.done
		}
	}
	for idx, s := range want {
		if rt.runners[idx] != nil {
			continue
		}
		r := newRunner(rt, s, prev[idx])
		rt.runners[idx] = r
		rt.goFunc(r.run)
	}
}

// Submit hands req to the runner of shard. On nil, reply is called exactly
// once, later and from any goroutine: reply(resp, true) with the answer, or
// reply(zero, false) when the runner stopped or the answer's records could
// not be made durable. Otherwise reply is never called: ErrNotCoordinator
// when no runner serves shard, ErrLoading while it loads.
func (rt *Runtime[Req, Resp]) Submit(shard int32, req Req, reply func(Resp, bool)) error {
	rt.mu.Lock()
	r := rt.runners[shard]
	rt.mu.Unlock()
	if r == nil {
		return ErrNotCoordinator
	}
	return r.submit(req, reply)
}

// Shards lists, sorted, the shards that have a runner, loading or not (for
// requests fanned out to every shard, such as ListGroups).
func (rt *Runtime[Req, Resp]) Shards() []int32 {
	rt.mu.Lock()
	out := make([]int32, 0, len(rt.runners))
	for idx := range rt.runners {
		out = append(out, idx)
	}
	rt.mu.Unlock()
	slices.Sort(out)
	return out
}

// Close stops every runner, failing the requests they hold, and waits for
// every goroutine the Runtime started, delivery goroutines included. It is
// idempotent. It must not be called from a reply func.
func (rt *Runtime[Req, Resp]) Close() {
	rt.mu.Lock()
	rt.closed = true
	for idx, r := range rt.runners {
		r.shutdown()
		delete(rt.runners, idx)
	}
	rt.mu.Unlock()
	rt.wg.Wait()
}

// goFunc runs fn on a goroutine that Close waits for. Called with rt.mu
// held or from a goroutine goFunc started, so the count never rises from
// zero during Close's Wait.
func (rt *Runtime[Req, Resp]) goFunc(fn func()) {
	rt.wg.Add(1)
	go func() {
		defer rt.wg.Done()
		fn()
	}()
}
