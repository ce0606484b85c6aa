package metadata

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// ProducerIDBlockSize is how many producer IDs Local reserves per snapshot
// write. IDs left unused in a block when the broker stops are skipped.
const ProducerIDBlockSize = 1000

// LocalConfig configures a Local store.
type LocalConfig struct {
	// Dir holds the snapshot file, e.g. <data-dir>/__meta. Created if
	// missing. Required.
	Dir string
	// NodeID is this broker's node.id; it is the only broker, the
	// controller and every partition's leader. Must be >= 0. A snapshot
	// written under another node ID is refused.
	NodeID int32
	// Host and Port are this broker's advertised Kafka address, published
	// in Image.Brokers. Host is required; Port must be in 0..65535.
	Host string
	Port int32
	// Rack is the broker's rack (broker.rack); empty means none.
	Rack string
	// Logger receives operational messages. Default: discard.
	Logger *slog.Logger
	// Now is the clock, used only for informational timestamps.
	// Default: time.Now.
	Now func() time.Time
	// ValidateConfigs checks a topic's complete set of config overrides
	// (keys are topic config names). Its error message is returned to the
	// client. Default (nil): accept any configs.
	ValidateConfigs func(map[string]string) error
	// DefaultPartitions is num.partitions, used when a create asks for -1.
	// Default 1; must be >= 1.
	DefaultPartitions int32
	// DefaultReplicationFactor is default.replication.factor, used when a
	// create asks for -1. Default 1; must be >= 1 (only 1 can succeed on a
	// single node, as in Kafka with one broker).
	DefaultReplicationFactor int16
	// MaxPartitionsPerTopic bounds a topic's partition count so a single
	// request cannot exhaust memory. Default 100000; must be >= 1. Kafka
	// has no such limit; requests above it fail with ErrInvalidPartitions.
	MaxPartitionsPerTopic int32
}

// withDefaults returns c with zero fields replaced by their defaults.
func (c LocalConfig) withDefaults() LocalConfig {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.DefaultPartitions == 0 {
		c.DefaultPartitions = 1
	}
	if c.DefaultReplicationFactor == 0 {
		c.DefaultReplicationFactor = 1
	}
	if c.MaxPartitionsPerTopic == 0 {
		c.MaxPartitionsPerTopic = 100000
	}
	return c
}

// Validate reports the first invalid field, after defaults are applied.
func (c LocalConfig) Validate() error {
	c = c.withDefaults()
	switch {
	case c.Dir == "":
		return errors.New("metadata: config: Dir is required")
	case c.NodeID < 0:
		return fmt.Errorf("metadata: config: NodeID %d is negative", c.NodeID)
	case c.Host == "":
		return errors.New("metadata: config: Host is required")
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("metadata: config: Port %d is outside 0..65535", c.Port)
	case c.DefaultPartitions < 1:
		return fmt.Errorf("metadata: config: DefaultPartitions %d must be >= 1", c.DefaultPartitions)
	case c.DefaultReplicationFactor < 1:
		return fmt.Errorf("metadata: config: DefaultReplicationFactor %d must be >= 1", c.DefaultReplicationFactor)
	case c.MaxPartitionsPerTopic < 1:
		return fmt.Errorf("metadata: config: MaxPartitionsPerTopic %d must be >= 1", c.MaxPartitionsPerTopic)
	}
	return nil
}

// Local is the single-node Store: state in memory, persisted as a snapshot
// file in LocalConfig.Dir before any change is visible. Safe for concurrent
// use; mutations are serialized, reads (Image, Changes) never block.
// Only one Local may use a directory at a time.
type Local struct {
	cfg    LocalConfig
	log    *slog.Logger
	broker Broker
	rand   io.Reader               // source of cluster and topic IDs
	write  func(data []byte) error // persists a snapshot; replaced in tests to inject faults

	image   atomic.Pointer[Image]
	changes atomic.Pointer[chan struct{}] // closed and replaced after each published change

	// sem (capacity 1) is held for the whole of every mutation, including
	// the snapshot write, and guards the fields below. A channel rather
	// than a mutex so a caller can give up waiting when its ctx ends.
	sem                chan struct{}
	closed             bool
	nextProducerID     int64
	producerIDBlockEnd int64 // persisted: no ID at or above it has been returned
}

var _ Store = (*Local)(nil)

// Limits no real cluster reaches; they exist so arbitrary snapshot contents
// cannot make a counter wrap.
var (
	errEpochExhausted       = errors.New("metadata: metadata epoch exhausted")
	errProducerIDsExhausted = errors.New("metadata: producer ID space exhausted")
)

// OpenLocal opens the store in cfg.Dir, creating a new cluster (with a new
// random cluster ID) if the directory holds no snapshot. It fails with an
// error wrapping ErrCorruptSnapshot if the snapshot exists but is unusable.
func OpenLocal(cfg LocalConfig) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Local{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "metadata"),
		broker: Broker{NodeID: cfg.NodeID, Host: cfg.Host, Port: cfg.Port},
		rand:   rand.Reader,
		sem:    make(chan struct{}, 1),
	}
	if cfg.Rack != "" {
		rack := cfg.Rack
		l.broker.Rack = &rack
	}
	l.write = func(data []byte) error { return writeSnapshotFile(cfg.Dir, data) }
	ch := make(chan struct{})
	l.changes.Store(&ch)
	if err := l.load(); err != nil {
		return nil, err
	}
	return l, nil
}

// load reads the snapshot, or creates and persists a new cluster.
func (l *Local) load() error {
	if err := os.MkdirAll(l.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("metadata: open %s: %w", l.cfg.Dir, err)
	}
	// A temp file is only ever a write that did not reach its rename, so
	// it holds nothing acknowledged.
	if err := os.Remove(filepath.Join(l.cfg.Dir, snapshotTempName)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("metadata: remove stale temp snapshot: %w", err)
	}
	data, err := readSnapshot(l.cfg.Dir)
	if err != nil {
		return fmt.Errorf("metadata: open %s: %w", l.cfg.Dir, err)
	}
	if data == nil {
		return l.createCluster()
	}
	st, err := decodeSnapshot(data, l.broker)
	if err != nil {
		return fmt.Errorf("metadata: open %s: %w", filepath.Join(l.cfg.Dir, snapshotFileName), err)
	}
	l.warnInvalidConfigs(st.image)
	l.image.Store(st.image)
	l.producerIDBlockEnd = st.producerIDBlockEnd
	l.nextProducerID = st.producerIDBlockEnd // the first allocation reserves a fresh block
	l.log.Info("metadata loaded", "cluster_id", st.image.ClusterID, "epoch", st.image.Epoch,
		"topics", len(st.image.Topics))
	return nil
}

func (l *Local) createCluster() error {
	id, err := newID(l.rand)
	if err != nil {
		return err
	}
	img := &Image{
		ClusterID:    FormatID(id),
		ControllerID: l.cfg.NodeID,
		Brokers:      map[int32]Broker{l.cfg.NodeID: l.broker},
		Topics:       map[string]*Topic{},
		TopicsByID:   map[[16]byte]*Topic{},
		Epoch:        1,
	}
	if err := l.persistLocked(img, 0); err != nil {
		return fmt.Errorf("metadata: create cluster: %w", err)
	}
	l.image.Store(img)
	l.log.Info("metadata: new cluster", "cluster_id", img.ClusterID)
	return nil
}

// warnInvalidConfigs logs stored overrides the current validator rejects.
// They are kept: refusing to start over a validator change would be worse.
func (l *Local) warnInvalidConfigs(img *Image) {
	if l.cfg.ValidateConfigs == nil {
		return
	}
	for _, name := range img.TopicNames() {
		if err := l.cfg.ValidateConfigs(img.Topics[name].Configs); err != nil {
			l.log.Warn("stored topic configs fail validation", "topic", name, "err", err)
		}
	}
}

// Image returns the current metadata. It never blocks and stays valid
// (still readable) after Close.
func (l *Local) Image() *Image { return l.image.Load() }

// Changes returns a channel closed at the next change published after the
// call. It is not closed by Close.
func (l *Local) Changes() <-chan struct{} { return *l.changes.Load() }

// Served does nothing: a single node has no other broker to tell.
func (l *Local) Served(int64) {}

// AwaitPropagation returns nil: every change is in this one broker's Image
// once its call returned, and the broker applies it to its partitions
// before it answers.
func (l *Local) AwaitPropagation(context.Context) error { return nil }

// WaitFresh returns nil: the Image is the only copy of the metadata.
func (l *Local) WaitFresh(context.Context) error { return nil }

// Close stops the store: later mutations fail with ErrClosed. It waits for
// a mutation in progress. Everything acknowledged is already on disk, so
// Close has nothing to flush. Calling it again is a no-op.
func (l *Local) Close() error {
	l.sem <- struct{}{}
	defer func() { <-l.sem }()
	l.closed = true
	return nil
}

// lock acquires the mutation lock, giving up if ctx ends first.
func (l *Local) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("metadata: %w", ctx.Err())
	}
	if l.closed {
		<-l.sem
		return ErrClosed
	}
	return nil
}

func (l *Local) unlock() { <-l.sem }

// persistLocked writes img and the producer-ID reservation durably.
func (l *Local) persistLocked(img *Image, producerIDBlockEnd int64) error {
	data, err := encodeSnapshot(snapState{image: img, producerIDBlockEnd: producerIDBlockEnd},
		l.cfg.Now().UnixMilli())
	if err != nil {
		return err
	}
	return l.write(data)
}

// commitLocked persists next (whose Epoch it sets) and then publishes it.
// On error nothing changes.
func (l *Local) commitLocked(next *Image) error {
	cur := l.image.Load().Epoch
	if cur == math.MaxInt64 {
		return errEpochExhausted
	}
	next.Epoch = cur + 1
	if err := l.persistLocked(next, l.producerIDBlockEnd); err != nil {
		return err
	}
	l.image.Store(next)
	// Swap the channel only after the image is visible: a waiter that
	// gets the new channel must find the new image when it reads.
	fresh := make(chan struct{})
	close(*l.changes.Swap(&fresh))
	return nil
}

// CreateTopic creates a topic, or with req.ValidateOnly checks that it could
// and returns the topic it would create (with a zero ID). Errors: ErrInvalidTopic,
// ErrTopicExists, ErrInvalidRequest, ErrInvalidPartitions,
// ErrInvalidReplicationFactor, ErrInvalidReplicaAssignment, ErrInvalidConfig,
// ErrClosed, or a context or I/O error.
func (l *Local) CreateTopic(ctx context.Context, req CreateTopicRequest) (*Topic, error) {
	if err := ValidateTopicName(req.Name); err != nil {
		return nil, err
	}
	if err := l.lock(ctx); err != nil {
		return nil, err
	}
	defer l.unlock()
	cur := l.image.Load()
	if cur.Topics[req.Name] != nil {
		return nil, newError(ErrTopicExists, fmt.Sprintf("Topic '%s' already exists.", req.Name))
	}
	parts, err := l.newPartitions(req)
	if err != nil {
		return nil, err
	}
	configs := maps.Clone(req.Configs)
	if configs == nil {
		configs = map[string]string{}
	}
	if err := l.validateConfigs(configs); err != nil {
		return nil, err
	}
	t := &Topic{Name: req.Name, Internal: IsInternalTopic(req.Name), Configs: configs, Partitions: parts}
	if req.ValidateOnly {
		return t, nil
	}
	l.warnCollision(cur, req.Name)
	for {
		if t.ID, err = newID(l.rand); err != nil {
			return nil, err
		}
		if cur.TopicsByID[t.ID] == nil { // 2^-122 per pair, but cheap to rule out
			break
		}
	}
	next := cur.clone()
	next.putTopic(t)
	if err := l.commitLocked(next); err != nil {
		return nil, fmt.Errorf("metadata: create topic %q: %w", req.Name, err)
	}
	l.log.Info("topic created", "topic", t.Name, "id", FormatID(t.ID), "partitions", len(parts))
	return t, nil
}

// newPartitions resolves the partition count, replication factor and
// assignment of a create request into partitions, as Kafka's controller
// does, with this broker as the only one available.
func (l *Local) newPartitions(req CreateTopicRequest) ([]Partition, error) {
	if req.Assignment != nil {
		if req.Partitions != -1 || req.ReplicationFactor != -1 {
			return nil, newError(ErrInvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.")
		}
		n := len(req.Assignment)
		if n == 0 {
			return nil, newError(ErrInvalidReplicaAssignment, "The manual partition assignment is empty.")
		}
		if err := l.checkPartitionCount(int64(n)); err != nil {
			return nil, err
		}
		lists := make([][]int32, n)
		for p, replicas := range req.Assignment {
			if p < 0 || int(p) >= n {
				return nil, newError(ErrInvalidReplicaAssignment, fmt.Sprintf(
					"Partitions should be a consecutive 0-based integer sequence, but partition %d is outside 0..%d.", p, n-1))
			}
			lists[p] = replicas
		}
		return l.assignedPartitions(0, lists, -1)
	}
	n := req.Partitions
	if n == -1 {
		n = l.cfg.DefaultPartitions
	}
	if n < 1 {
		return nil, newError(ErrInvalidPartitions, "Number of partitions must be larger than 0.")
	}
	if err := l.checkPartitionCount(int64(n)); err != nil {
		return nil, err
	}
	rf := req.ReplicationFactor
	if rf == -1 {
		rf = l.cfg.DefaultReplicationFactor
	}
	if rf < 1 {
		return nil, newError(ErrInvalidReplicationFactor, "Replication factor must be larger than 0.")
	}
	if int(rf) > len(l.image.Load().Brokers) {
		return nil, newError(ErrInvalidReplicationFactor, fmt.Sprintf(
			"Unable to replicate the partition %d time(s): The target replication factor of %d cannot be reached because only %d broker(s) are registered.",
			rf, rf, len(l.image.Load().Brokers)))
	}
	parts := make([]Partition, n)
	for i := range parts {
		parts[i] = l.partition(int32(i), []int32{l.cfg.NodeID})
	}
	return parts, nil
}

func (l *Local) checkPartitionCount(n int64) error {
	if n > int64(l.cfg.MaxPartitionsPerTopic) {
		return newError(ErrInvalidPartitions, fmt.Sprintf(
			"Number of partitions %d exceeds this broker's limit of %d per topic.", n, l.cfg.MaxPartitionsPerTopic))
	}
	return nil
}

// assignedPartitions validates manual replica lists for partitions first,
// first+1, ... and builds them. wantRF is the replica count every list must
// have, or -1 to require only that they agree with each other.
func (l *Local) assignedPartitions(first int32, lists [][]int32, wantRF int) ([]Partition, error) {
	brokers := l.image.Load().Brokers
	parts := make([]Partition, len(lists))
	for i, replicas := range lists {
		p := first + int32(i)
		if len(replicas) == 0 {
			return nil, newError(ErrInvalidReplicaAssignment, fmt.Sprintf(
				"The manual partition assignment for partition %d is an empty replica list.", p))
		}
		for j, r := range replicas {
			if _, ok := brokers[r]; !ok {
				return nil, newError(ErrInvalidReplicaAssignment, fmt.Sprintf(
					"The manual partition assignment includes broker %d, but no such broker is registered.", r))
			}
			for _, prev := range replicas[:j] {
				if prev == r {
					return nil, newError(ErrInvalidReplicaAssignment, fmt.Sprintf(
						"The manual partition assignment includes the broker %d more than once.", r))
				}
			}
		}
		if wantRF == -1 {
			wantRF = len(replicas)
		}
		if len(replicas) != wantRF {
			return nil, newError(ErrInvalidReplicaAssignment, fmt.Sprintf(
				"The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).",
				len(replicas), wantRF))
		}
		parts[i] = l.partition(p, append([]int32(nil), replicas...))
	}
	return parts, nil
}

// partition builds a new partition led by its first replica, which on a
// single node is always this broker and always in sync.
func (l *Local) partition(index int32, replicas []int32) Partition {
	return Partition{Index: index, Leader: replicas[0], LeaderEpoch: 0,
		Replicas: replicas, ISR: append([]int32(nil), replicas...)}
}

func (l *Local) validateConfigs(configs map[string]string) error {
	if l.cfg.ValidateConfigs == nil {
		return nil
	}
	if err := l.cfg.ValidateConfigs(configs); err != nil {
		return &kafkaError{kind: ErrInvalidConfig, msg: err.Error(), cause: err}
	}
	return nil
}

// warnCollision logs when name differs from an existing topic only in '.'
// versus '_', which makes their metric names collide. Kafka rejects such a
// create with INVALID_TOPIC_EXCEPTION ("collides with existing topics");
// StreamBus deliberately allows it and only warns.
func (l *Local) warnCollision(img *Image, name string) {
	if !strings.ContainsAny(name, "._") {
		return
	}
	key := collisionKey(name)
	for other := range img.Topics {
		if other != name && collisionKey(other) == key {
			l.log.Warn("topic name collides with an existing topic ('.' and '_' are equivalent in metric names)",
				"topic", name, "existing", other)
			return
		}
	}
}

// DeleteTopic removes a topic. Errors: ErrUnknownTopic, ErrClosed, or a
// context or I/O error. The broker decides whether internal topics may be
// deleted; the store does not.
func (l *Local) DeleteTopic(ctx context.Context, name string) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.unlock()
	cur := l.image.Load()
	t := cur.Topics[name]
	if t == nil {
		return unknownTopic(name)
	}
	next := cur.clone()
	delete(next.Topics, name)
	delete(next.TopicsByID, t.ID)
	if err := l.commitLocked(next); err != nil {
		return fmt.Errorf("metadata: delete topic %q: %w", name, err)
	}
	l.log.Info("topic deleted", "topic", name, "id", FormatID(t.ID))
	return nil
}

func unknownTopic(name string) error {
	return newError(ErrUnknownTopic, fmt.Sprintf("Topic '%s' does not exist.", name))
}

// CreatePartitions raises a topic's partition count to total. assignment,
// if non-nil, gives the replicas of each new partition in order
// (len(assignment) == total - current). Errors: ErrUnknownTopic,
// ErrInvalidPartitions (total not above the current count, or too large),
// ErrInvalidReplicaAssignment, ErrClosed, or a context or I/O error.
func (l *Local) CreatePartitions(ctx context.Context, name string, total int32, assignment [][]int32, validateOnly bool) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.unlock()
	cur := l.image.Load()
	t := cur.Topics[name]
	if t == nil {
		return unknownTopic(name)
	}
	have := int32(len(t.Partitions))
	switch {
	case total == have:
		return newError(ErrInvalidPartitions, fmt.Sprintf("Topic already has %d partition(s).", have))
	case total < have:
		return newError(ErrInvalidPartitions, fmt.Sprintf(
			"The topic %s currently has %d partition(s); %d would not be an increase.", name, have, total))
	}
	if err := l.checkPartitionCount(int64(total)); err != nil {
		return err
	}
	add := int(total - have)
	if assignment == nil {
		assignment = make([][]int32, add)
		for i := range assignment {
			assignment[i] = []int32{l.cfg.NodeID}
		}
	} else if len(assignment) != add {
		return newError(ErrInvalidReplicaAssignment, fmt.Sprintf(
			"Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", add, len(assignment)))
	}
	parts, err := l.assignedPartitions(have, assignment, len(t.Partitions[0].Replicas))
	if err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	nt := *t
	nt.Partitions = append(t.Partitions[:have:have], parts...)
	next := cur.clone()
	next.putTopic(&nt)
	if err := l.commitLocked(next); err != nil {
		return fmt.Errorf("metadata: create partitions for %q: %w", name, err)
	}
	l.log.Info("partitions created", "topic", name, "from", have, "to", total)
	return nil
}

// AlterTopicConfigs changes a topic's config overrides. Non-incremental:
// the changes with a non-nil Value become the complete set of overrides
// (nil Values are ignored). Incremental: each change sets (Value non-nil)
// or removes (nil) one override. The resulting set is validated as a
// whole. Errors: ErrUnknownTopic, ErrInvalidRequest (a key given twice),
// ErrInvalidConfig, ErrClosed, or a context or I/O error. A change that
// leaves the overrides as they were publishes nothing.
func (l *Local) AlterTopicConfigs(ctx context.Context, name string, changes []ConfigChange, incremental, validateOnly bool) error {
	if err := l.lock(ctx); err != nil {
		return err
	}
	defer l.unlock()
	cur := l.image.Load()
	t := cur.Topics[name]
	if t == nil {
		return unknownTopic(name)
	}
	seen := make(map[string]bool, len(changes))
	configs := map[string]string{}
	if incremental {
		configs = maps.Clone(t.Configs)
	}
	for _, c := range changes {
		if seen[c.Name] {
			return newError(ErrInvalidRequest, fmt.Sprintf("Error due to duplicate config keys: %s", c.Name))
		}
		seen[c.Name] = true
		switch {
		case c.Value != nil:
			configs[c.Name] = *c.Value
		case incremental:
			delete(configs, c.Name)
		}
	}
	if err := l.validateConfigs(configs); err != nil {
		return err
	}
	if validateOnly || maps.Equal(configs, t.Configs) {
		return nil
	}
	nt := *t
	nt.Configs = configs
	next := cur.clone()
	next.putTopic(&nt)
	if err := l.commitLocked(next); err != nil {
		return fmt.Errorf("metadata: alter configs of %q: %w", name, err)
	}
	l.log.Info("topic configs altered", "topic", name, "incremental", incremental)
	return nil
}

// AllocateProducerID returns a producer ID never returned before by this
// store's directory, including before a crash. IDs start at 0. It blocks
// for a snapshot write once per ProducerIDBlockSize IDs. Errors: ErrClosed,
// a context or I/O error, or exhaustion of the int64 ID space.
func (l *Local) AllocateProducerID(ctx context.Context) (int64, error) {
	if err := l.lock(ctx); err != nil {
		return 0, err
	}
	defer l.unlock()
	if l.nextProducerID >= l.producerIDBlockEnd {
		if l.producerIDBlockEnd > math.MaxInt64-ProducerIDBlockSize {
			return 0, errProducerIDsExhausted
		}
		end := l.producerIDBlockEnd + ProducerIDBlockSize
		if err := l.persistLocked(l.image.Load(), end); err != nil {
			return 0, fmt.Errorf("metadata: reserve producer IDs: %w", err)
		}
		l.nextProducerID = l.producerIDBlockEnd
		l.producerIDBlockEnd = end
	}
	id := l.nextProducerID
	l.nextProducerID++
	return id, nil
}
