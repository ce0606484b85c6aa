package broker

// The group coordinator side of the broker. Offsets and group metadata live
// in the internal compacted topic __consumer_offsets; the coordinator of a
// group is the leader of partition abs(javaHashCode(group)) % partitions, as
// in Kafka, so tools that compute placement agree with us. For every
// __consumer_offsets partition this broker leads, a coordRunner goroutine
// owns a group.Coordinator (a deterministic state machine, internal/group):
// it loads the partition's records, then feeds it requests and ticks, appends
// the records each step produces to the partition, and sends the step's
// replies once those records are durable. Until a partition is loaded its
// groups get COORDINATOR_LOAD_IN_PROGRESS.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/group"
	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/recordbatch"
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

// coordRunner drives the group coordinator of one __consumer_offsets
// partition from its own goroutine.
type coordRunner struct {
	b      *Broker
	part   *partition
	epoch  int32 // the leader epoch this runner leads in
	cfg    group.Config
	loaded atomic.Bool
	wake   chan struct{} // capacity 1: the queue has inputs
	stop   chan struct{}
	done   chan struct{}

	mu     sync.Mutex
	queue  []coordInput // unbounded; bounded in practice by connections × maxInFlight
	closed bool         // the runner has exited: submit refuses

	// Owned by the runner goroutine.
	c       *group.Coordinator
	nextID  uint64
	waiting map[uint64]func(kmsg.Response)
}

type coordInput struct {
	req   kmsg.Request
	who   requester
	reply func(kmsg.Response) // nil response: the runner stopped; close the connection
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

// groupCoordinators holds the runners, by __consumer_offsets partition.
type groupCoordinators struct {
	mu      sync.Mutex
	runners map[int32]*coordRunner
}

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
	return b.reconcile()
}

// syncCoordinators starts a runner for every __consumer_offsets partition
// led here and stops the others.
func (b *Broker) syncCoordinators() {
	type led struct {
		p     *partition
		epoch int32
	}
	img := b.meta.Image()
	t := img.Topics[OffsetsTopic]
	want := make(map[int32]led)
	if t != nil && !b.closing.Load() {
		for _, mp := range t.Partitions {
			if mp.Leader != b.cfg.NodeID {
				continue
			}
			b.mu.RLock()
			p := b.parts[storage.PartitionID{Topic: OffsetsTopic, Partition: mp.Index}]
			b.mu.RUnlock()
			if p == nil {
				continue
			}
			// The image may be newer than the one reconcile applied: a
			// replicated partition is led only once its LeaderState for
			// this epoch exists, which also means its fetcher stopped, so
			// the log no longer grows under the loading coordinator.
			if len(mp.Replicas) > 1 {
				ls := p.leaderState()
				if ls == nil || ls.LeaderEpoch() != mp.LeaderEpoch {
					continue
				}
			}
			want[mp.Index] = led{p, mp.LeaderEpoch}
		}
	}
	gc := &b.groups
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.runners == nil {
		gc.runners = make(map[int32]*coordRunner)
	}
	// A runner whose leader epoch changed is replaced even though this
	// broker leads again: in between it may have followed another leader
	// and appended records the old runner's state does not hold.
	for idx, r := range gc.runners {
		if w, ok := want[idx]; !ok || w.p != r.part || w.epoch != r.epoch {
			r.shutdown()
			delete(gc.runners, idx)
			if ok {
				// Its successor loads the log only once no step of the
				// old runner can append to it any more.
				<-r.done
			}
		}
	}
	for idx, w := range want {
		if gc.runners[idx] != nil {
			continue
		}
		cfg := b.cfg.Groups.Coordinator
		cfg.Partition = idx
		r := &coordRunner{
			b: b, part: w.p, epoch: w.epoch, cfg: cfg,
			wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
			waiting: make(map[uint64]func(kmsg.Response)),
		}
		gc.runners[idx] = r
		b.goFunc(r.run)
	}
}

// stopCoordinators stops every runner; requests they hold get their
// connections closed, so clients look up the coordinator again.
func (b *Broker) stopCoordinators() {
	gc := &b.groups
	gc.mu.Lock()
	defer gc.mu.Unlock()
	for idx, r := range gc.runners {
		r.shutdown()
		delete(gc.runners, idx)
	}
}

// coordinatorFor returns the runner owning group g, or nil.
func (b *Broker) coordinatorFor(g string) *coordRunner {
	n := b.cfg.Groups.OffsetsTopicPartitions
	if t := b.meta.Image().Topics[OffsetsTopic]; t != nil {
		n = int32(len(t.Partitions))
	}
	if n <= 0 {
		return nil
	}
	gc := &b.groups
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return gc.runners[groupPartition(g, n)]
}

func (r *coordRunner) shutdown() {
	select {
	case <-r.stop:
	default:
		close(r.stop)
	}
}

// submit hands a request to the runner. It returns false, with the error
// code to answer, when the runner is loading or has stopped.
func (r *coordRunner) submit(req kmsg.Request, who requester, reply func(kmsg.Response)) (int16, bool) {
	r.mu.Lock()
	switch {
	case r.closed:
		r.mu.Unlock()
		return kerr.NotCoordinator.Code, false
	case !r.loaded.Load():
		r.mu.Unlock()
		return kerr.CoordinatorLoadInProgress.Code, false
	}
	r.queue = append(r.queue, coordInput{req: req, who: who, reply: reply})
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return 0, true
}

func (r *coordRunner) run() {
	defer close(r.done)
	defer r.failAll()
	if !r.reload() {
		return
	}
	timer := time.NewTimer(time.Second)
	defer timer.Stop()
	var deadline time.Time
	arm := func(next time.Time) {
		if next.IsZero() || (!deadline.IsZero() && !next.Before(deadline)) {
			return
		}
		deadline = next
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(time.Until(next))
	}
	debug := r.b.log.Enabled(context.Background(), slog.LevelDebug)
	for {
		select {
		case <-r.stop:
			return
		case <-r.wake:
			r.mu.Lock()
			batch := r.queue
			r.queue = nil
			r.mu.Unlock()
			for _, in := range batch {
				id := r.nextID
				r.nextID++
				r.waiting[id] = in.reply
				if debug {
					r.b.log.Debug("group request", "partition", r.part.id.Partition, "id", id, "req", fmt.Sprintf("%+v", in.req))
				}
				out := r.c.Step(group.Input{Now: r.b.cfg.Now(), ReplyTo: id, Req: in.req, Topics: imageTopics{r.b.meta.Image()},
					ClientID: in.who.clientID, ClientHost: in.who.host})
				if !r.apply(out) && !r.reload() {
					return
				}
				arm(out.NextDeadline)
			}
		case <-timer.C:
			deadline = time.Time{}
			out := r.c.Tick(r.b.cfg.Now(), imageTopics{r.b.meta.Image()})
			if !r.apply(out) && !r.reload() {
				return
			}
			if out.NextDeadline.IsZero() {
				timer.Reset(time.Second) // retention runs even when idle
			} else {
				arm(out.NextDeadline)
			}
		}
	}
}

// reload builds a fresh coordinator from the partition's records: at start,
// and after a failed write left the in-memory state ahead of the log.
// Requests held by the old coordinator have their connections closed.
func (r *coordRunner) reload() bool {
	r.loaded.Store(false)
	for id, reply := range r.waiting {
		delete(r.waiting, id)
		reply(nil)
	}
	r.c = group.New(r.cfg)
	if err := r.load(); err != nil {
		r.b.log.Error("group coordinator: load failed", "partition", r.part.id.Partition, "err", err)
		return false
	}
	r.c.Loaded(r.b.cfg.Now())
	r.loaded.Store(true)
	return true
}

// failAll closes the connections of every request the exiting runner holds
// or has queued; later submits are refused.
func (r *coordRunner) failAll() {
	r.mu.Lock()
	r.closed = true
	queued := r.queue
	r.queue = nil
	r.mu.Unlock()
	for _, in := range queued {
		in.reply(nil)
	}
	for id, reply := range r.waiting {
		delete(r.waiting, id)
		reply(nil)
	}
}

// load replays the partition's records into the coordinator.
func (r *coordRunner) load() error {
	l := r.part.log
	off := l.LogStartOffset()
	var buf []byte
	for {
		hw := l.HighWatermark()
		if off >= hw {
			return nil
		}
		s, err := l.Read(off, 1<<20, hw)
		if err != nil {
			return err
		}
		if int64(cap(buf)) < s.Size {
			buf = make([]byte, s.Size)
		}
		data := buf[:s.Size]
		n := 0
		for _, ch := range s.Chunks {
			if _, err := ch.R.ReadAt(data[n:n+int(ch.Len)], ch.Pos); err != nil {
				s.Release()
				return err
			}
			n += int(ch.Len)
		}
		s.Release()
		if s.Size == 0 {
			return nil
		}
		for len(data) > 0 {
			h, err := recordbatch.ParseHeader(data)
			if err != nil || h.Size() > int64(len(data)) {
				return fmt.Errorf("broker: %s-%d at offset %d: %v", OffsetsTopic, r.part.id.Partition, off, err)
			}
			batch := data[:h.Size()]
			data = data[h.Size():]
			if h.LastOffset() < off {
				continue // a batch before the asked offset
			}
			off = h.LastOffset() + 1
			if h.IsControl() {
				continue
			}
			err = recordbatch.ForEachRecord(batch, r.b.cfg.MaxDecompressedBytes, func(rec *recordbatch.Record) error {
				if err := r.c.Load(rec.Key, rec.Value); err != nil {
					r.b.log.Warn("group coordinator: skipping a bad record", "partition", r.part.id.Partition,
						"offset", h.BaseOffset+int64(rec.OffsetDelta), "err", err)
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
	}
}

// apply persists a step's records, then delivers its replies once they are
// durable (off the runner goroutine, so the next step need not wait). If
// the records cannot be written, the requesters' connections are closed and
// the clients retry.
func (r *coordRunner) apply(out group.Output) bool {
	type delivery struct {
		fn   func(kmsg.Response)
		resp kmsg.Response
	}
	ds := make([]delivery, 0, len(out.Replies))
	for _, rp := range out.Replies {
		if r.b.log.Enabled(context.Background(), slog.LevelDebug) {
			r.b.log.Debug("group reply", "partition", r.part.id.Partition, "to", rp.To, "resp", fmt.Sprintf("%+v", rp.Resp))
		}
		if fn := r.waiting[rp.To]; fn != nil {
			delete(r.waiting, rp.To)
			ds = append(ds, delivery{fn, rp.Resp})
		}
	}
	deliver := func(failed bool) {
		for _, d := range ds {
			if failed {
				d.fn(nil)
			} else {
				d.fn(d.resp)
			}
		}
	}
	if len(out.Records) == 0 {
		deliver(false)
		return true
	}
	upTo, err := r.persist(out.Records)
	if err != nil {
		r.b.log.Error("group coordinator: persisting records", "partition", r.part.id.Partition, "err", err)
		deliver(true)
		return false
	}
	r.b.goFunc(func() {
		err := r.part.log.Sync(upTo)
		if err != nil {
			r.b.log.Error("group coordinator: fsync", "partition", r.part.id.Partition, "err", err)
		} else if r.part.leaderState() != nil {
			// A replicated __consumer_offsets partition: answer once the
			// ISR has the records, so a commit survives a leader change.
			err = r.b.waitReplicated(r.part, upTo, r.part.cfg.Load().MinInsyncReplicas, replicationWait)
			if err != nil {
				r.b.log.Warn("group coordinator: records not replicated", "partition", r.part.id.Partition, "err", err)
			}
		}
		deliver(err != nil)
	})
	return true
}

// persist appends records as one uncompressed batch.
func (r *coordRunner) persist(recs []group.Record) (int64, error) {
	now := r.b.nowMs()
	h := recordbatch.Header{Magic: 2, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: now, MaxTimestamp: now}
	rs := make([]recordbatch.Record, len(recs))
	for i, rec := range recs {
		rs[i] = recordbatch.Record{OffsetDelta: int32(i), Key: rec.Key, Value: rec.Value}
	}
	batch, err := recordbatch.Build(h, rs, recordbatch.CodecNone)
	if err != nil {
		return 0, err
	}
	img := r.b.meta.Image()
	epoch := int32(0)
	if mp, ok := img.Partition(OffsetsTopic, r.part.id.Partition); ok {
		epoch = mp.LeaderEpoch
	}
	res, err := r.part.log.Append(batch, storage.AppendInput{LeaderEpoch: epoch, NowMs: now})
	if err != nil {
		return 0, err
	}
	return res.LastOffset + 1, nil
}
