package controller

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/streambus/streambus/internal/metadata"
)

// CreateTopic creates a topic, or with req.ValidateOnly checks that it
// could and returns the topic it would create (zero ID). Replicas are
// spread round-robin over the registered, unfenced brokers. Errors wrap
// the metadata sentinels with Kafka's messages: ErrTopicExists,
// ErrInvalidTopic, ErrInvalidPartitions, ErrInvalidReplicationFactor (also
// when the factor exceeds the unfenced brokers),
// ErrInvalidReplicaAssignment, ErrInvalidConfig, ErrInvalidRequest; or
// ErrClosed, a context or Raft error.
func (s *Store) CreateTopic(ctx context.Context, req metadata.CreateTopicRequest) (*metadata.Topic, error) {
	if err := metadata.ValidateTopicName(req.Name); err != nil {
		return nil, err
	}
	resp, err := s.exec(ctx, &request{Op: opCreateTopic, Create: &req, ValidateOnly: req.ValidateOnly})
	if err != nil {
		return nil, err
	}
	return resp.Topic, nil
}

// DeleteTopic removes a topic. Errors: ErrUnknownTopic, ErrClosed, or a
// context or Raft error.
func (s *Store) DeleteTopic(ctx context.Context, name string) error {
	_, err := s.exec(ctx, &request{Op: opDeleteTopic, Name: name})
	return err
}

// CreatePartitions raises a topic's partition count to total (Kafka's
// CreatePartitions checks and messages); without an assignment the new partitions are spread
// round-robin with the topic's replication factor.
func (s *Store) CreatePartitions(ctx context.Context, name string, total int32, assignment [][]int32, validateOnly bool) error {
	_, err := s.exec(ctx, &request{Op: opCreatePartitions, Name: name, Total: total,
		Assignment: assignment, ValidateOnly: validateOnly})
	return err
}

// AlterTopicConfigs changes a topic's overrides: with incremental false
// they replace every override (AlterConfigs), with true they are applied
// one by one (IncrementalAlterConfigs SET/DELETE).
func (s *Store) AlterTopicConfigs(ctx context.Context, name string, changes []metadata.ConfigChange, incremental, validateOnly bool) error {
	_, err := s.exec(ctx, &request{Op: opAlterConfigs, Name: name, Changes: changes,
		Incremental: incremental, ValidateOnly: validateOnly})
	return err
}

// producerIDBlockSize is how many producer IDs the controller reserves per
// Raft command; IDs left in a block when leadership moves are skipped.
const producerIDBlockSize = 1000

// AllocateProducerID returns a producer ID never returned before by any
// node of the cluster. The controller reserves blocks of
// producerIDBlockSize through Raft; IDs left in a block when
// leadership moves or the process stops are skipped.
func (s *Store) AllocateProducerID(ctx context.Context) (int64, error) {
	resp, err := s.exec(ctx, &request{Op: opProducerIDs})
	if err != nil {
		return 0, err
	}
	return resp.ProducerID, nil
}

// execLocal runs req on this node, which must be the leader. Mutations
// take turns; each computes a command from the current state and proposes
// it conditional on that state's version. If the state was outdated (this
// node just became leader and had not applied everything), it waits for a
// barrier and computes again.
func (s *Store) execLocal(ctx context.Context, req *request) (*response, error) {
	switch req.Op {
	case "heartbeat":
		return s.heartbeat(ctx, req)
	case opAwait:
		return &response{}, s.awaitLocal(ctx)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("controller: %w", err)
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("controller: %w", ctx.Err())
	}
	defer func() { <-s.sem }()
	if s.closed.Load() {
		return nil, metadata.ErrClosed
	}
	if req.Op == opJoin { // a Raft configuration change, not a command
		return &response{}, s.addNonvoter(ctx, req)
	}
	for attempt := 0; ; attempt++ {
		if s.raft.State() != raft.Leader {
			return nil, s.notController()
		}
		st := s.fsm.current()
		if req.Op == opProducerIDs && s.pidNext < s.pidEnd {
			id := s.pidNext
			s.pidNext++
			return &response{ProducerID: id}, nil
		}
		cmd, resp, err := s.prepare(st, req)
		if req.Op == opUnregister && (err != nil || cmd == nil) {
			return resp, s.finishUnregister(ctx, req.NodeID, err)
		}
		if err != nil || cmd == nil {
			return resp, err
		}
		v := st.Version
		cmd.IfVersion = &v
		res, err := s.apply(ctx, cmd)
		if errors.Is(err, errStale) && attempt < 3 {
			if err := s.raft.Barrier(s.timeout(ctx)).Error(); err != nil {
				return nil, s.raftError(err)
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if req.Op == opProducerIDs {
			s.pidNext, s.pidEnd = res.producerIDStart+1, res.producerIDStart+producerIDBlockSize
			return &response{ProducerID: res.producerIDStart}, nil
		}
		if req.Op == opCreateTopic {
			resp.Topic = s.fsm.current().Topics[resp.Topic.Name]
		}
		if req.Op == opAlterPartition {
			_, p, _, _ := partitionOf(s.fsm.current(), req.Alter.Topic, req.Alter.Partition)
			resp.Partition = &p
		}
		if req.Op == opUnregister {
			return resp, s.finishUnregister(ctx, req.NodeID, nil)
		}
		return resp, nil
	}
}

func (s *Store) notController() error {
	_, id := s.raft.LeaderWithID()
	leader := int32(-1)
	if id != "" {
		leader = s.leaderID.Load()
	}
	return &NotControllerError{LeaderID: leader}
}

func (s *Store) timeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return max(time.Until(d), time.Millisecond)
	}
	return s.cfg.ApplyTimeout
}

// apply proposes cmd and waits until this node applied it.
func (s *Store) apply(ctx context.Context, cmd *command) (*applyResult, error) {
	data, err := encodeCommand(cmd)
	if err != nil {
		return nil, err
	}
	f := s.raft.Apply(data, s.timeout(ctx))
	if err := f.Error(); err != nil {
		return nil, s.raftError(err)
	}
	res, ok := f.Response().(*applyResult)
	if !ok {
		return nil, fmt.Errorf("controller: unexpected apply response %T", f.Response())
	}
	return res, res.err
}

// raftError maps raft's errors: a proposal raft refused before appending
// it is ErrNotController (safe to retry elsewhere); anything else may or
// may not have been applied.
func (s *Store) raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return s.notController()
	case errors.Is(err, raft.ErrRaftShutdown):
		return metadata.ErrClosed
	}
	return fmt.Errorf("controller: raft: %w", err)
}

// heartbeat records a broker's heartbeat and served Version on the
// controller, unfences the broker if it was fenced (unless it is shutting
// down or asks to stay fenced), and answers with the Version for fresh
// reads (propagation.go).
func (s *Store) heartbeat(ctx context.Context, req *request) (*response, error) {
	if s.raft.State() != raft.Leader {
		return nil, s.notController()
	}
	b, ok := s.fsm.current().Brokers[req.NodeID]
	if !ok || b.Incarnation != req.Incarnation {
		return nil, errStaleIncarnation
	}
	s.hbMu.Lock()
	s.resetHeartbeatsLocked()
	s.hb[req.NodeID] = s.cfg.Now()
	s.noteServedLocked(req.NodeID, req.Incarnation, req.Served)
	s.hbMu.Unlock()
	if b.Fenced && !b.ShuttingDown && !req.WantFence {
		if _, err := s.execLocal(ctx, &request{Op: opUnfence, NodeID: req.NodeID, Incarnation: req.Incarnation}); err != nil {
			return nil, err
		}
	}
	if !slices.Equal(b.Offline, req.Offline) {
		if _, err := s.execLocal(ctx, &request{Op: opOffline, NodeID: req.NodeID, Incarnation: req.Incarnation, Offline: req.Offline}); err != nil {
			return nil, err
		}
	}
	return &response{Version: s.freshVersion(ctx, req.NodeID, req.Incarnation)}, nil
}

// heardWithinSession reports whether broker id's last heartbeat, on this
// controller, is within SessionTimeout.
func (s *Store) heardWithinSession(id int32) bool {
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	last, ok := s.hb[id]
	return ok && s.cfg.Now().Sub(last) <= s.cfg.SessionTimeout
}

// prepare validates req against st and builds the command to propose, or
// returns the answer directly (validate-only, no-op), with Kafka's
// checks and messages.
func (s *Store) prepare(st *state, req *request) (*command, *response, error) {
	switch req.Op {
	case opInit:
		if st.ClusterID != "" {
			return nil, nil, nil
		}
		if imp := s.cfg.Import; imp != nil {
			return &command{Op: opInit, ClusterID: imp.ClusterID, Import: importFrom(imp)}, nil, nil
		}
		id, err := randomID()
		if err != nil {
			return nil, nil, err
		}
		return &command{Op: opInit, ClusterID: metadata.FormatID(id)}, nil, nil
	case opRegister:
		if req.Broker == nil {
			return nil, nil, newError(metadata.ErrInvalidRequest, "missing broker")
		}
		if old, ok := st.Brokers[req.Broker.NodeID]; ok && sameRecord(old, *req.Broker) {
			return nil, &response{}, nil // already registered: a retry
		}
		if err := s.checkDuplicate(st, req.Broker.NodeID, req.Broker.Incarnation); err != nil {
			return nil, nil, err
		}
		return &command{Op: opRegister, Broker: req.Broker}, nil, nil
	case opCreateTopic:
		return s.prepareCreate(st, req.Create)
	case opDeleteTopic:
		if st.Topics[req.Name] == nil {
			return nil, nil, unknownTopic(req.Name)
		}
		return &command{Op: opDeleteTopic, Name: req.Name}, nil, nil
	case opCreatePartitions:
		return s.prepareCreatePartitions(st, req)
	case opAlterConfigs:
		return s.prepareAlter(st, req)
	case opProducerIDs:
		return &command{Op: opProducerIDs, ProducerIDs: producerIDBlockSize}, nil, nil
	case opOffline:
		b, ok := st.Brokers[req.NodeID]
		if !ok || b.Incarnation != req.Incarnation {
			return nil, nil, errStaleIncarnation
		}
		if slices.Equal(b.Offline, req.Offline) {
			return nil, &response{}, nil
		}
		return &command{Op: opOffline, NodeID: req.NodeID, Incarnation: req.Incarnation, Offline: req.Offline}, &response{}, nil
	case opFence, opUnfence, opShutdown:
		b, ok := st.Brokers[req.NodeID]
		if !ok || b.Incarnation != req.Incarnation {
			return nil, nil, errStaleIncarnation
		}
		if (req.Op == opUnfence && (!b.Fenced || b.ShuttingDown)) || (req.Op == opFence && b.Fenced) ||
			(req.Op == opShutdown && b.ShuttingDown) {
			return nil, &response{}, nil // already done, or a late heartbeat of a broker shutting down
		}
		if req.Op == opFence && s.heardWithinSession(req.NodeID) {
			// A heartbeat arrived since the liveness check chose this
			// broker; it may already have been answered as fresh
			// (freshVersion reads the state under sem too).
			return nil, &response{}, nil
		}
		return &command{Op: req.Op, NodeID: req.NodeID, Incarnation: req.Incarnation}, &response{}, nil
	case opAlterPartition:
		if req.Alter == nil {
			return nil, nil, newError(metadata.ErrInvalidRequest, "missing alter_partition request")
		}
		p, changed, err := checkAlterPartition(st, req.Alter)
		if err != nil || !changed {
			return nil, &response{Partition: &p}, err
		}
		return &command{Op: opAlterPartition, Alter: req.Alter}, &response{}, nil
	case opElectPreferred:
		return prepareElect(st, req.Elect)
	case opElectUnclean:
		return prepareUnclean(st, req.Elect)
	case opReassign:
		return prepareReassign(st, req)
	case opUnregister:
		return prepareUnregister(st, req)
	}
	return nil, nil, newError(metadata.ErrInvalidRequest, fmt.Sprintf("unknown operation %q", req.Op))
}

func (s *Store) prepareCreate(st *state, req *metadata.CreateTopicRequest) (*command, *response, error) {
	if req == nil {
		return nil, nil, newError(metadata.ErrInvalidRequest, "missing create request")
	}
	if err := metadata.ValidateTopicName(req.Name); err != nil {
		return nil, nil, err
	}
	if st.Topics[req.Name] != nil {
		return nil, nil, topicExists(req.Name)
	}
	lists, err := s.resolveAssignment(st, req)
	if err != nil {
		return nil, nil, err
	}
	parts, err := buildPartitions(st, 0, lists)
	if err != nil {
		return nil, nil, err
	}
	configs := maps.Clone(req.Configs)
	if configs == nil {
		configs = map[string]string{}
	}
	if err := s.validateConfigs(configs); err != nil {
		return nil, nil, err
	}
	t := &metadata.Topic{Name: req.Name, Internal: metadata.IsInternalTopic(req.Name), Configs: configs, Partitions: parts}
	if req.ValidateOnly {
		return nil, &response{Topic: t}, nil
	}
	var id [16]byte
	for {
		if id, err = randomID(); err != nil {
			return nil, nil, err
		}
		if st.TopicsByID[id] == nil {
			break
		}
	}
	return &command{Op: opCreateTopic, Name: req.Name, TopicID: metadata.FormatID(id), Configs: configs, Replicas: lists},
		&response{Topic: t}, nil
}

// resolveAssignment turns a create request into replica lists.
func (s *Store) resolveAssignment(st *state, req *metadata.CreateTopicRequest) ([][]int32, error) {
	if req.Assignment != nil {
		if req.Partitions != -1 || req.ReplicationFactor != -1 {
			return nil, newError(metadata.ErrInvalidRequest, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.")
		}
		n := len(req.Assignment)
		if n == 0 {
			return nil, newError(metadata.ErrInvalidReplicaAssignment, "The manual partition assignment is empty.")
		}
		if err := s.checkPartitionCount(int64(n)); err != nil {
			return nil, err
		}
		lists := make([][]int32, n)
		for p, replicas := range req.Assignment {
			if p < 0 || int(p) >= n {
				return nil, newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
					"Partitions should be a consecutive 0-based integer sequence, but partition %d is outside 0..%d.", p, n-1))
			}
			lists[p] = replicas
		}
		for p, replicas := range lists {
			if len(replicas) == 0 {
				return nil, newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
					"The manual partition assignment for partition %d is an empty replica list.", p))
			}
		}
		return lists, nil
	}
	n := req.Partitions
	if n == -1 {
		n = s.cfg.DefaultPartitions
	}
	if n < 1 {
		return nil, newError(metadata.ErrInvalidPartitions, "Number of partitions must be larger than 0.")
	}
	if err := s.checkPartitionCount(int64(n)); err != nil {
		return nil, err
	}
	rf := req.ReplicationFactor
	if rf == -1 {
		rf = s.cfg.DefaultReplicationFactor
	}
	if rf < 1 {
		return nil, newError(metadata.ErrInvalidReplicationFactor, "Replication factor must be larger than 0.")
	}
	return roundRobin(st, 0, int(n), int(rf), len(st.Topics))
}

// roundRobin assigns count partitions starting at index first: partition
// p's replicas are rf consecutive brokers (by node ID) starting at
// (p+offset) mod brokers, so leaders and replicas spread evenly. offset
// varies the start between topics.
func roundRobin(st *state, first, count, rf, offset int) ([][]int32, error) {
	var ids []int32 // usable brokers, as KRaft's replica placer: unfenced
	for _, id := range slices.Sorted(maps.Keys(st.Brokers)) {
		if eligible(st, id) {
			ids = append(ids, id)
		}
	}
	if rf > len(ids) {
		return nil, newError(metadata.ErrInvalidReplicationFactor, fmt.Sprintf(
			"Unable to replicate the partition %d time(s): The target replication factor of %d cannot be reached because only %d broker(s) are registered.",
			rf, rf, len(ids)))
	}
	lists := make([][]int32, count)
	for i := range lists {
		start := (first + i + offset) % len(ids)
		lists[i] = make([]int32, rf)
		for j := range rf {
			lists[i][j] = ids[(start+j)%len(ids)]
		}
	}
	return lists, nil
}

func (s *Store) checkPartitionCount(n int64) error {
	if n > int64(s.cfg.MaxPartitionsPerTopic) {
		return newError(metadata.ErrInvalidPartitions, fmt.Sprintf(
			"Number of partitions %d exceeds this broker's limit of %d per topic.", n, s.cfg.MaxPartitionsPerTopic))
	}
	return nil
}

func (s *Store) validateConfigs(configs map[string]string) error {
	if s.cfg.ValidateConfigs == nil {
		return nil
	}
	if err := s.cfg.ValidateConfigs(configs); err != nil {
		return &storeError{kind: metadata.ErrInvalidConfig, msg: err.Error()}
	}
	return nil
}

func (s *Store) prepareCreatePartitions(st *state, req *request) (*command, *response, error) {
	t := st.Topics[req.Name]
	if t == nil {
		return nil, nil, unknownTopic(req.Name)
	}
	have := int32(len(t.Partitions))
	switch {
	case req.Total == have:
		return nil, nil, newError(metadata.ErrInvalidPartitions, fmt.Sprintf("Topic already has %d partition(s).", have))
	case req.Total < have:
		return nil, nil, newError(metadata.ErrInvalidPartitions, fmt.Sprintf(
			"The topic %s currently has %d partition(s); %d would not be an increase.", req.Name, have, req.Total))
	}
	if err := s.checkPartitionCount(int64(req.Total)); err != nil {
		return nil, nil, err
	}
	add := int(req.Total - have)
	rf := len(t.Partitions[0].Replicas)
	lists := req.Assignment
	if lists == nil {
		var err error
		if lists, err = roundRobin(st, int(have), add, rf, len(st.Topics)); err != nil {
			return nil, nil, err
		}
	} else if len(lists) != add {
		return nil, nil, newError(metadata.ErrInvalidReplicaAssignment, fmt.Sprintf(
			"Attempted to add %d additional partition(s), but only %d assignment(s) were specified.", add, len(lists)))
	}
	for i, replicas := range lists {
		if err := checkReplicas(st, have+int32(i), replicas, rf); err != nil {
			return nil, nil, err
		}
	}
	if req.ValidateOnly {
		return nil, &response{}, nil
	}
	return &command{Op: opCreatePartitions, Name: req.Name, FirstIndex: have, Replicas: lists}, &response{}, nil
}

func (s *Store) prepareAlter(st *state, req *request) (*command, *response, error) {
	t := st.Topics[req.Name]
	if t == nil {
		return nil, nil, unknownTopic(req.Name)
	}
	seen := make(map[string]bool, len(req.Changes))
	configs := map[string]string{}
	if req.Incremental {
		configs = maps.Clone(t.Configs)
	}
	for _, c := range req.Changes {
		if seen[c.Name] {
			return nil, nil, newError(metadata.ErrInvalidRequest, fmt.Sprintf("Error due to duplicate config keys: %s", c.Name))
		}
		seen[c.Name] = true
		switch {
		case c.Value != nil:
			configs[c.Name] = *c.Value
		case req.Incremental:
			delete(configs, c.Name)
		}
	}
	if err := s.validateConfigs(configs); err != nil {
		return nil, nil, err
	}
	if req.ValidateOnly || maps.Equal(configs, t.Configs) {
		return nil, &response{}, nil
	}
	return &command{Op: opAlterConfigs, Name: req.Name, Configs: configs}, &response{}, nil
}

// randomID returns a version-4 UUID acceptable as a Kafka topic or cluster
// ID (not zero, not the metadata topic's, not starting with '-').
func randomID() ([16]byte, error) {
	for range 64 {
		var id [16]byte
		if _, err := rand.Read(id[:]); err != nil {
			return id, fmt.Errorf("controller: generate ID: %w", err)
		}
		id[6] = id[6]&0x0f | 0x40
		id[8] = id[8]&0x3f | 0x80
		if id[0]>>2 != 62 {
			return id, nil
		}
	}
	return [16]byte{}, errors.New("controller: generate ID: random source keeps producing reserved IDs")
}
