package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync"

	"github.com/hashicorp/raft"

	"github.com/streambus/streambus/internal/metadata"
)

// commandVersion is the first byte of every command in the Raft log and of
// every snapshot; the rest is JSON. It is part of the on-disk format.
const commandVersion byte = 1

// maxCommandBytes bounds a decoded command or forwarded frame.
const maxCommandBytes = 64 << 20

// Command operations. The names are part of the on-disk format.
const (
	opInit             = "init"
	opRegister         = "register_broker"
	opCreateTopic      = "create_topic"
	opDeleteTopic      = "delete_topic"
	opCreatePartitions = "create_partitions"
	opAlterConfigs     = "alter_configs"
	opProducerIDs      = "allocate_producer_ids"
	opFence            = "fence_broker"
	opUnfence          = "unfence_broker"
	opShutdown         = "controlled_shutdown"
	opOffline          = "offline_replicas"
	opAlterPartition   = "alter_partition"
	opElectPreferred   = "elect_preferred"
	opElectUnclean     = "elect_unclean"
	opReassign         = "alter_reassignments"
	opUnregister       = "unregister_broker"
)

// command is one Raft log entry. The controller resolves every request
// (defaults, round-robin assignment, IDs, config validation) before
// proposing, so applying needs nothing but the command and the state.
type command struct {
	Op string `json:"op"`
	// IfVersion, when set, makes the command apply only if the state's
	// Version still equals it: the controller computed the command from
	// that state, and a state it has not seen (after a leader change)
	// fails the command with errStale instead of applying it.
	IfVersion   *int64            `json:"if_version,omitempty"`
	ClusterID   string            `json:"cluster_id,omitempty"`
	Broker      *brokerRecord     `json:"broker,omitempty"`
	Name        string            `json:"name,omitempty"`
	TopicID     string            `json:"topic_id,omitempty"` // metadata.FormatID
	Configs     map[string]string `json:"configs,omitempty"`
	Replicas    [][]int32         `json:"replicas,omitempty"` // of new partitions, in order
	FirstIndex  int32             `json:"first_index,omitempty"`
	ProducerIDs int64             `json:"producer_ids,omitempty"` // block size
	// NodeID and Incarnation name the broker to fence, unfence or shut
	// down; the command applies only to that incarnation.
	NodeID      int32                  `json:"node_id,omitempty"`
	Incarnation string                 `json:"incarnation,omitempty"`
	Alter       *AlterPartitionRequest `json:"alter,omitempty"`
	Elect       []TopicPartition       `json:"elect,omitempty"`
	Reassign    []reassignTarget       `json:"reassign,omitempty"`
	Offline     []TopicPartition       `json:"offline,omitempty"` // the broker's offline replicas (opOffline)
	// Import comes with init: an earlier single-node store's topics and
	// producer-ID reservation, adopted with the cluster ID (import.go).
	Import *importBody `json:"import,omitempty"`
}

// brokerRecord is a registered broker.
type brokerRecord struct {
	NodeID      int32   `json:"node_id"`
	Host        string  `json:"host"`
	Port        int32   `json:"port"`
	Rack        *string `json:"rack,omitempty"`
	Incarnation string  `json:"incarnation"`
	// Fenced brokers lead nothing, join no ISR and are left out of
	// Image.Brokers. A broker registers fenced and is unfenced by its
	// first heartbeat; it is fenced again when its session expires or it
	// shuts down (ShuttingDown: a controlled shutdown, after which its
	// heartbeats do not unfence it).
	Fenced       bool `json:"fenced,omitempty"`
	ShuttingDown bool `json:"shutting_down,omitempty"`
	// Offline lists the partitions whose replica on this broker is
	// offline (its log failed), sorted, as its heartbeats last reported
	// (offline.go).
	Offline []TopicPartition `json:"offline,omitempty"`
}

func encodeCommand(c *command) ([]byte, error) {
	js, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("controller: encode command: %w", err)
	}
	return append([]byte{commandVersion}, js...), nil
}

// decodeCommand parses a log entry. Entries come from peers, so anything
// malformed is an error, never a panic.
func decodeCommand(data []byte) (*command, error) {
	if len(data) == 0 || data[0] != commandVersion {
		return nil, errors.New("controller: command: missing or unknown version byte")
	}
	if len(data) > maxCommandBytes {
		return nil, fmt.Errorf("controller: command: %d bytes exceeds the limit", len(data))
	}
	var c command
	if err := decodeStrict(data[1:], &c); err != nil {
		return nil, fmt.Errorf("controller: command: %w", err)
	}
	return &c, nil
}

func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

// state is the replicated state. A state is immutable once published:
// apply builds a new one.
type state struct {
	// Version counts applied state changes; identical on every node after
	// the same log prefix.
	Version       int64
	ClusterID     string
	ProducerIDEnd int64 // no producer ID at or above it was ever handed out
	Brokers       map[int32]brokerRecord
	Topics        map[string]*metadata.Topic
	TopicsByID    map[[16]byte]*metadata.Topic
	// PartEpochs holds each topic's partition epochs (by topic ID, indexed
	// by partition); metadata.Partition has no field for them.
	PartEpochs map[[16]byte][]int32
	// Reassigning holds the partitions being reassigned (reassign.go).
	Reassigning map[TopicPartition]reassignment
}

func emptyState() *state {
	return &state{Brokers: map[int32]brokerRecord{}, Topics: map[string]*metadata.Topic{},
		TopicsByID: map[[16]byte]*metadata.Topic{}, PartEpochs: map[[16]byte][]int32{},
		Reassigning: map[TopicPartition]reassignment{}}
}

func (s *state) clone() *state {
	n := *s
	n.Brokers = maps.Clone(s.Brokers)
	n.Topics = maps.Clone(s.Topics)
	n.TopicsByID = maps.Clone(s.TopicsByID)
	n.PartEpochs = maps.Clone(s.PartEpochs)
	n.Reassigning = maps.Clone(s.Reassigning)
	return &n
}

// applyResult is what FSM.Apply returns to the proposer.
type applyResult struct {
	err             error
	producerIDStart int64
}

var errStale = errors.New("controller: command computed from an outdated state")

// fsm is the raft.FSM. Apply runs on raft's goroutine; current may be read
// from any goroutine.
type fsm struct {
	mu       sync.Mutex
	st       *state
	onChange func(*state) // called with mu held, after every change
}

var _ raft.FSM = (*fsm)(nil)

func (f *fsm) current() *state {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st
}

func (f *fsm) Apply(l *raft.Log) any {
	c, err := decodeCommand(l.Data)
	if err != nil {
		return &applyResult{err: err}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	next, res := applyCommand(f.st, c)
	if res.err == nil && next != f.st {
		f.st = next
		f.onChange(next)
	}
	return res
}

// applyCommand is the deterministic transition. It re-checks every
// invariant the controller already checked, so a command that was valid
// against an older state cannot corrupt a newer one.
func applyCommand(cur *state, c *command) (*state, *applyResult) {
	fail := func(err error) (*state, *applyResult) { return cur, &applyResult{err: err} }
	if c.IfVersion != nil && *c.IfVersion != cur.Version {
		return fail(errStale)
	}
	if cur.Version == math.MaxInt64 {
		return fail(errors.New("controller: state version exhausted"))
	}
	next := cur.clone()
	next.Version++
	res := &applyResult{}
	switch c.Op {
	case opInit:
		if cur.ClusterID != "" {
			return fail(errors.New("controller: cluster already initialized"))
		}
		if _, err := metadata.ParseID(c.ClusterID); err != nil {
			return fail(err)
		}
		next.ClusterID = c.ClusterID
		if c.Import != nil {
			if err := applyImport(next, c.Import); err != nil {
				return fail(err)
			}
		}
	case opRegister:
		b := c.Broker
		if b == nil || b.NodeID < 0 || b.Host == "" || b.Port < 0 || b.Port > 65535 || b.Incarnation == "" {
			return fail(errors.New("controller: invalid broker registration"))
		}
		nb := *b
		nb.Fenced, nb.ShuttingDown = true, false
		old, ok := cur.Brokers[b.NodeID]
		if ok && old.Incarnation == b.Incarnation {
			nb.Fenced, nb.ShuttingDown = old.Fenced, old.ShuttingDown
		} else if ok && !old.Fenced {
			// A new incarnation replaces a live one: the old process is
			// gone, so its leaderships move now rather than at its session
			// expiry. The new one leads again once unfenced.
			fenceBroker(next, b.NodeID, false)
		}
		next.Brokers[b.NodeID] = nb
	case opOffline:
		b, ok := cur.Brokers[c.NodeID]
		if !ok || b.Incarnation != c.Incarnation {
			return fail(errStaleIncarnation)
		}
		setOffline(next, c.NodeID, c.Offline)
	case opFence, opShutdown, opUnfence:
		b, ok := cur.Brokers[c.NodeID]
		if !ok || b.Incarnation != c.Incarnation {
			return fail(errStaleIncarnation)
		}
		switch {
		case c.Op == opUnfence && b.ShuttingDown:
			return fail(errors.New("controller: a broker shutting down is not unfenced by its heartbeats"))
		case c.Op == opUnfence:
			unfenceBroker(next, c.NodeID)
		default:
			fenceBroker(next, c.NodeID, c.Op == opShutdown)
		}
	case opAlterPartition:
		if c.Alter == nil {
			return fail(newError(metadata.ErrInvalidRequest, "missing alter_partition request"))
		}
		p, changed, err := checkAlterPartition(cur, c.Alter)
		if err != nil {
			return fail(err)
		}
		if !changed {
			return fail(errStale)
		}
		// An ISR that now holds every target replica completes a
		// reassignment in this same change.
		p, _ = completeReassignment(next, TopicPartition{Topic: c.Alter.Topic, Partition: c.Alter.Partition}, p)
		setPartition(next, cur.Topics[c.Alter.Topic], p)
	case opElectPreferred:
		electPreferred(next, c.Elect)
	case opElectUnclean:
		if err := electUnclean(next, c.Elect); err != nil {
			return fail(err)
		}
	case opReassign:
		if err := applyReassign(next, c.Reassign); err != nil {
			return fail(err)
		}
	case opUnregister:
		if err := applyUnregister(cur, next, c.NodeID); err != nil {
			return fail(err)
		}
	case opCreateTopic:
		t, err := topicFromCommand(cur, c)
		if err != nil {
			return fail(err)
		}
		next.Topics[t.Name] = t
		next.TopicsByID[t.ID] = t
		next.PartEpochs[t.ID] = make([]int32, len(t.Partitions))
	case opDeleteTopic:
		t := cur.Topics[c.Name]
		if t == nil {
			return fail(unknownTopic(c.Name))
		}
		delete(next.Topics, t.Name)
		delete(next.TopicsByID, t.ID)
		delete(next.PartEpochs, t.ID)
		dropReassignments(next, t.Name)
	case opCreatePartitions:
		t := cur.Topics[c.Name]
		if t == nil {
			return fail(unknownTopic(c.Name))
		}
		if int(c.FirstIndex) != len(t.Partitions) || len(c.Replicas) == 0 {
			return fail(errStale)
		}
		parts, err := buildPartitions(cur, c.FirstIndex, c.Replicas)
		if err != nil {
			return fail(err)
		}
		nt := *t
		nt.Partitions = append(t.Partitions[:len(t.Partitions):len(t.Partitions)], parts...)
		next.Topics[nt.Name] = &nt
		next.TopicsByID[nt.ID] = &nt
		next.PartEpochs[nt.ID] = append(slices.Clone(cur.PartEpochs[nt.ID]), make([]int32, len(parts))...)
	case opAlterConfigs:
		t := cur.Topics[c.Name]
		if t == nil {
			return fail(unknownTopic(c.Name))
		}
		nt := *t
		nt.Configs = maps.Clone(c.Configs)
		if nt.Configs == nil {
			nt.Configs = map[string]string{}
		}
		next.Topics[nt.Name] = &nt
		next.TopicsByID[nt.ID] = &nt
	case opProducerIDs:
		if c.ProducerIDs < 1 || cur.ProducerIDEnd > math.MaxInt64-c.ProducerIDs {
			return fail(errors.New("controller: producer ID space exhausted"))
		}
		res.producerIDStart = cur.ProducerIDEnd
		next.ProducerIDEnd = cur.ProducerIDEnd + c.ProducerIDs
	default:
		return fail(fmt.Errorf("controller: unknown command %q", c.Op))
	}
	// Any change of ISRs, leaders or broker states may complete a
	// reassignment (reassign.go).
	completeReassignments(next)
	return next, res
}

func topicFromCommand(cur *state, c *command) (*metadata.Topic, error) {
	if err := metadata.ValidateTopicName(c.Name); err != nil {
		return nil, err
	}
	if cur.Topics[c.Name] != nil {
		return nil, topicExists(c.Name)
	}
	id, err := metadata.ParseID(c.TopicID)
	if err != nil {
		return nil, err
	}
	if id == ([16]byte{}) || cur.TopicsByID[id] != nil {
		return nil, fmt.Errorf("controller: topic ID %s is zero or in use", c.TopicID)
	}
	if len(c.Replicas) == 0 {
		return nil, newError(metadata.ErrInvalidPartitions, "Number of partitions must be larger than 0.")
	}
	parts, err := buildPartitions(cur, 0, c.Replicas)
	if err != nil {
		return nil, err
	}
	configs := maps.Clone(c.Configs)
	if configs == nil {
		configs = map[string]string{}
	}
	return &metadata.Topic{Name: c.Name, ID: id, Internal: metadata.IsInternalTopic(c.Name),
		Configs: configs, Partitions: parts}, nil
}

// buildPartitions checks replica lists against the registered brokers and
// builds partitions first, first+1, ...: as in KRaft, the ISR is the
// unfenced replicas and the leader the first of them.
func buildPartitions(cur *state, first int32, lists [][]int32) ([]metadata.Partition, error) {
	parts := make([]metadata.Partition, len(lists))
	for i, replicas := range lists {
		idx := first + int32(i)
		if err := checkReplicas(cur, idx, replicas, len(lists[0])); err != nil {
			return nil, err
		}
		isr := slices.DeleteFunc(slices.Clone(replicas), func(r int32) bool { return !eligible(cur, r) })
		if len(isr) == 0 {
			return nil, newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
				"All brokers specified in the manual partition assignment for partition %d are fenced or in controlled shutdown.", idx))
		}
		parts[i] = metadata.Partition{Index: idx, Leader: isr[0], LeaderEpoch: 0,
			Replicas: slices.Clone(replicas), ISR: isr}
	}
	return parts, nil
}

// checkReplicas validates one manual replica list, with Kafka's messages.
func checkReplicas(cur *state, p int32, replicas []int32, wantRF int) error {
	if len(replicas) == 0 {
		return newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
			"The manual partition assignment for partition %d is an empty replica list.", p))
	}
	for j, r := range replicas {
		if _, ok := cur.Brokers[r]; !ok {
			return newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
				"The manual partition assignment includes broker %d, but no such broker is registered.", r))
		}
		if slices.Contains(replicas[:j], r) {
			return newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
				"The manual partition assignment includes the broker %d more than once.", r))
		}
	}
	if len(replicas) != wantRF {
		return newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
			"The manual partition assignment includes a partition with %d replica(s), but this is not consistent with previous partitions, which have %d replica(s).",
			len(replicas), wantRF))
	}
	return nil
}

// snapshotBody is the JSON of a snapshot (after the version byte).
type snapshotBody struct {
	Version       int64             `json:"version"`
	ClusterID     string            `json:"cluster_id"`
	ProducerIDEnd int64             `json:"producer_id_end"`
	Brokers       []brokerRecord    `json:"brokers"`
	Topics        []*metadata.Topic `json:"topics"`
	// PartitionEpochs[i] are the partition epochs of Topics[i]; absent
	// means all zero.
	PartitionEpochs [][]int32 `json:"partition_epochs,omitempty"`
	// Reassignments are the reassignments in progress, sorted by topic
	// and partition.
	Reassignments []reassignmentRecord `json:"reassignments,omitempty"`
}

func encodeState(st *state) ([]byte, error) {
	body := snapshotBody{Version: st.Version, ClusterID: st.ClusterID, ProducerIDEnd: st.ProducerIDEnd}
	for _, id := range slices.Sorted(maps.Keys(st.Brokers)) {
		body.Brokers = append(body.Brokers, st.Brokers[id])
	}
	for _, name := range slices.Sorted(maps.Keys(st.Topics)) {
		t := st.Topics[name]
		body.Topics = append(body.Topics, t)
		body.PartitionEpochs = append(body.PartitionEpochs, st.PartEpochs[t.ID])
	}
	for _, tp := range slices.SortedFunc(maps.Keys(st.Reassigning), compareTP) {
		body.Reassignments = append(body.Reassignments, reassignmentRecord{TopicPartition: tp, reassignment: st.Reassigning[tp]})
	}
	js, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("controller: encode snapshot: %w", err)
	}
	return append([]byte{commandVersion}, js...), nil
}

// decodeState parses and checks a snapshot.
func decodeState(data []byte) (*state, error) {
	if len(data) == 0 || data[0] != commandVersion {
		return nil, errors.New("controller: snapshot: missing or unknown version byte")
	}
	var body snapshotBody
	if err := decodeStrict(data[1:], &body); err != nil {
		return nil, fmt.Errorf("controller: snapshot: %w", err)
	}
	st := emptyState()
	st.Version, st.ClusterID, st.ProducerIDEnd = body.Version, body.ClusterID, body.ProducerIDEnd
	if st.Version < 0 || st.ProducerIDEnd < 0 {
		return nil, errors.New("controller: snapshot: negative version or producer ID end")
	}
	for _, b := range body.Brokers {
		st.Brokers[b.NodeID] = b
	}
	if body.PartitionEpochs != nil && len(body.PartitionEpochs) != len(body.Topics) {
		return nil, errors.New("controller: snapshot: partition epochs do not match the topics")
	}
	for i, t := range body.Topics {
		if t == nil || len(t.Partitions) == 0 || st.Topics[t.Name] != nil || st.TopicsByID[t.ID] != nil {
			return nil, errors.New("controller: snapshot: duplicate or empty topic")
		}
		if err := metadata.ValidateTopicName(t.Name); err != nil {
			return nil, fmt.Errorf("controller: snapshot: %w", err)
		}
		for i, p := range t.Partitions {
			if p.Index != int32(i) || len(p.Replicas) == 0 {
				return nil, fmt.Errorf("controller: snapshot: topic %q partition %d is malformed", t.Name, i)
			}
		}
		if t.Configs == nil {
			t.Configs = map[string]string{}
		}
		t.Internal = metadata.IsInternalTopic(t.Name)
		epochs := make([]int32, len(t.Partitions))
		if body.PartitionEpochs != nil {
			if len(body.PartitionEpochs[i]) != len(epochs) {
				return nil, fmt.Errorf("controller: snapshot: topic %q has %d partition epochs for %d partitions",
					t.Name, len(body.PartitionEpochs[i]), len(epochs))
			}
			copy(epochs, body.PartitionEpochs[i])
		}
		st.Topics[t.Name] = t
		st.TopicsByID[t.ID] = t
		st.PartEpochs[t.ID] = epochs
	}
	for _, r := range body.Reassignments {
		if _, dup := st.Reassigning[r.TopicPartition]; dup {
			return nil, fmt.Errorf("controller: snapshot: %s-%d is reassigned twice", r.Topic, r.Partition)
		}
		st.Reassigning[r.TopicPartition] = r.reassignment
	}
	if err := checkReassignments(st); err != nil {
		return nil, err
	}
	return st, nil
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	return fsmSnapshot{st: f.current()}, nil
}

func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxCommandBytes*4))
	if err != nil {
		return fmt.Errorf("controller: read snapshot: %w", err)
	}
	st, err := decodeState(data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st = st
	f.onChange(st)
	return nil
}

// fsmSnapshot holds an immutable state, so Persist may run concurrently
// with Apply.
type fsmSnapshot struct{ st *state }

func (s fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	data, err := encodeState(s.st)
	if err == nil {
		_, err = sink.Write(data)
	}
	if err != nil {
		sink.Cancel()
		return fmt.Errorf("controller: persist snapshot: %w", err)
	}
	return sink.Close()
}

func (fsmSnapshot) Release() {}
