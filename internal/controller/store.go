package controller

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/streambus/streambus/internal/metadata"
)

// Store is the Raft-replicated metadata.Store. Reads (Image, Changes) are
// lock-free on every node; mutations run on the Raft leader (the
// controller), forwarded there from other nodes. Safe for concurrent use.
type Store struct {
	cfg         Config
	log         *slog.Logger
	incarnation string

	bolt   *boltStore
	layer  *muxLayer
	trans  *raft.NetworkTransport
	raft   *raft.Raft
	fsm    *fsm
	obs    *raft.Observer
	obsCh  chan raft.Observation
	wakeCh chan struct{} // nudges the broker loop (leader change)

	leaderID atomic.Int32

	// served is the Version this broker serves (Served), -1 until the
	// broker first reports; servedCh nudges brokerLoop to report it.
	served   atomic.Int64
	servedCh chan struct{}

	offlineMu sync.Mutex
	offline   []TopicPartition // this broker's offline replicas, sorted (ReportOffline)
	// fresh is what the last answered heartbeat established (WaitFresh),
	// freshSig fires when it changes.
	fresh    atomic.Pointer[freshness]
	freshSig signal
	// readyTerm is the latest Raft term in which this node, leading, has
	// applied every entry committed before it (a barrier completed).
	readyTerm atomic.Uint64

	pubMu   sync.Mutex // serializes publish; guards epoch
	epoch   int64
	image   atomic.Pointer[metadata.Image]
	changes atomic.Pointer[chan struct{}]

	// sem (capacity 1) serializes mutations computed on this node while it
	// leads, and guards the producer-ID block below.
	sem     chan struct{}
	pidNext int64
	pidEnd  int64

	hbMu   sync.Mutex
	hb     map[int32]time.Time // last heartbeat per broker, on the controller only
	hbTerm uint64              // the Raft term hb was collected in
	// hbTermStart is when this node first looked at heartbeats in
	// hbTerm: its start as controller, by the injected clock.
	hbTermStart time.Time
	// reports holds, on the controller, the Version each broker last
	// reported serving (propagation.go); reported fires on a new report.
	reports  map[int32]servedReport
	reported signal
	// leaderSeen is, on a follower, the Raft leader and the last time (by
	// the injected clock) this node saw it in contact: a new controller
	// starts the old controller's session from there (see
	// resetHeartbeatsLocked).
	leaderSeen struct {
		id int32
		at time.Time
	}

	// shuttingDown stops registration and heartbeats once
	// ControlledShutdown began.
	shuttingDown atomic.Bool
	// needJoin makes the broker loop ask the controller to add this
	// non-voter to the Raft configuration before anything else (at
	// start; a non-voter also asks before every registration, since
	// UnregisterBroker removes it). needRegister forces a registration
	// although the local state shows one (the controller's, ahead of it,
	// does not).
	needJoin, needRegister atomic.Bool

	// lastRefusal and lastRefusalAt throttle the warning about refused
	// registrations; brokerLoop's goroutine only.
	lastRefusal   string
	lastRefusalAt time.Time

	// verifyMu is held (read) around a raft.VerifyLeader and its answer,
	// and (write) by shutdown around raft.Shutdown: raft leaves a
	// verification still queued when it shuts down unanswered forever.
	verifyMu sync.RWMutex

	closed    atomic.Bool
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ metadata.Store = (*Store)(nil)

// Open starts the controller: opens the log in cfg.Dir, bootstraps Raft
// with cfg.Voters if the log is empty, and starts the goroutines that
// register this broker and heartbeat. It does not wait for a leader; use
// WaitReady for that.
func Open(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("controller: open %s: %w", cfg.Dir, err)
	}
	var inc [16]byte
	if _, err := io.ReadFull(rand.Reader, inc[:]); err != nil {
		return nil, fmt.Errorf("controller: incarnation ID: %w", err)
	}
	s := &Store{
		cfg: cfg, log: cfg.Logger.With("component", "controller", "node_id", cfg.NodeID),
		incarnation: hex.EncodeToString(inc[:]),
		obsCh:       make(chan raft.Observation, 16), wakeCh: make(chan struct{}, 1),
		sem: make(chan struct{}, 1), hb: map[int32]time.Time{}, stop: make(chan struct{}),
		reports: map[int32]servedReport{}, servedCh: make(chan struct{}, 1),
	}
	s.leaderID.Store(-1)
	s.served.Store(-1)
	s.needJoin.Store(!cfg.isVoter())
	ch := make(chan struct{})
	s.changes.Store(&ch)
	s.fsm = &fsm{st: emptyState(), onChange: s.publish}
	s.publish(s.fsm.st)
	if err := s.start(); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

func (s *Store) start() error {
	var err error
	if s.bolt, err = openBoltStore(filepath.Join(s.cfg.Dir, "raft.db")); err != nil {
		return err
	}
	hlog := hclog.New(&hclog.LoggerOptions{Name: "raft", Level: hclog.Warn, Output: slogWriter{s.log}})
	snaps, err := raft.NewFileSnapshotStoreWithLogger(s.cfg.Dir, 2, hlog)
	if err != nil {
		return fmt.Errorf("controller: snapshot store: %w", err)
	}
	if s.layer, err = newMuxLayer(s.cfg.RaftAddr, s.log, s.serveForward); err != nil {
		return err
	}
	s.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: s.layer, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog})
	rc := raft.DefaultConfig()
	rc.LocalID = serverID(s.cfg.NodeID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = s.cfg.RaftTimeout
	rc.ElectionTimeout = s.cfg.RaftTimeout
	if _, voter := s.cfg.Voters[s.cfg.NodeID]; voter && len(s.cfg.Voters) == 1 {
		// The sole voter elects itself: no peer can be slow or
		// partitioned, so it need not wait a full timeout first (a
		// single-node restart would otherwise take a second or two).
		rc.HeartbeatTimeout = min(rc.HeartbeatTimeout, 50*time.Millisecond)
		rc.ElectionTimeout = min(rc.ElectionTimeout, 50*time.Millisecond)
	}
	rc.LeaderLeaseTimeout = min(s.cfg.RaftTimeout/2, rc.HeartbeatTimeout)
	rc.CommitTimeout = min(rc.CommitTimeout, s.cfg.RaftTimeout/10)
	rc.SnapshotThreshold = s.cfg.SnapshotThreshold
	rc.TrailingLogs = s.cfg.TrailingLogs
	has, err := raft.HasExistingState(s.bolt, s.bolt, snaps)
	if err != nil {
		return fmt.Errorf("controller: inspect raft state: %w", err)
	}
	// Only voters bootstrap; a non-voter with no state waits, with an
	// empty configuration, to be added by the controller (joinStep).
	if !has && s.cfg.isVoter() {
		var servers []raft.Server
		for _, id := range slices.Sorted(maps.Keys(s.cfg.Voters)) {
			servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: serverID(id),
				Address: raft.ServerAddress(s.cfg.Voters[id])})
		}
		if err := raft.BootstrapCluster(rc, s.bolt, s.bolt, snaps, s.trans,
			raft.Configuration{Servers: servers}); err != nil {
			return fmt.Errorf("controller: bootstrap: %w", err)
		}
	}
	if s.raft, err = raft.NewRaft(rc, s.fsm, s.bolt, s.bolt, snaps, s.trans); err != nil {
		return fmt.Errorf("controller: start raft: %w", err)
	}
	s.obs = raft.NewObserver(s.obsCh, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(s.obs)
	s.wg.Add(4)
	go func() { defer s.wg.Done(); s.observeLoop() }()
	go func() { defer s.wg.Done(); s.brokerLoop() }()
	go func() { defer s.wg.Done(); s.livenessLoop() }()
	go func() { defer s.wg.Done(); s.balanceLoop() }()
	return nil
}

func serverID(id int32) raft.ServerID { return raft.ServerID(strconv.Itoa(int(id))) }

// slogWriter passes hclog's formatted lines to slog.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.log.Info(strings.TrimSpace(string(p)))
	return len(p), nil
}

// publish builds the Image from st and the known leader; called by the FSM
// (with its lock held) and on leader changes. As in KRaft, whose Metadata
// responses list only unfenced brokers, Image.Brokers holds the unfenced
// ones; Brokers() lists all with their state.
func (s *Store) publish(st *state) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	s.epoch++
	img := &metadata.Image{ClusterID: st.ClusterID, ControllerID: s.leaderID.Load(),
		Brokers: make(map[int32]metadata.Broker, len(st.Brokers)),
		Topics:  st.Topics, TopicsByID: st.TopicsByID, Epoch: s.epoch, Version: st.Version}
	for id, b := range st.Brokers {
		if b.Fenced {
			continue
		}
		img.Brokers[id] = metadata.Broker{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack}
	}
	s.image.Store(img)
	fresh := make(chan struct{})
	close(*s.changes.Swap(&fresh))
}

// observeLoop republishes the Image when the Raft leader changes.
func (s *Store) observeLoop() {
	for {
		select {
		case <-s.stop:
			return
		case o := <-s.obsCh:
			lo, ok := o.Data.(raft.LeaderObservation)
			if !ok {
				continue
			}
			id := int32(-1)
			if n, err := strconv.ParseInt(string(lo.LeaderID), 10, 32); err == nil {
				id = int32(n)
			}
			if s.leaderID.Swap(id) != id {
				s.log.Info("controller changed", "controller_id", id)
				// Another controller's promise is needed now: the
				// heartbeat below asks for it.
				s.noteFresh(0, time.Time{})
				s.publish(s.fsm.current())
				select {
				case s.wakeCh <- struct{}{}:
				default:
				}
			}
		}
	}
}

// refusalLogInterval is how often a lasting refusal of this broker's
// registration or join is logged again.
const refusalLogInterval = 30 * time.Second

// brokerLoop initializes the cluster ID (when leading), joins the Raft
// configuration (non-voters), registers this broker and heartbeats, every
// HeartbeatInterval, on leader changes, when the served Version moves
// (propagation.go), and while the cluster ID is not known yet also on
// every state change (a non-voter that just joined registers as soon as
// the log reaches it). Without ReportServed the applied Version is the
// served one, so every state change is reported.
func (s *Store) brokerLoop() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { <-s.stop; cancel() }() // ends with ctx: bounded by this loop
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		if err := s.brokerStep(ctx); err != nil && ctx.Err() == nil {
			s.logBrokerStepErr(err)
		}
		var changed <-chan struct{}
		if s.fsm.current().ClusterID == "" || !s.cfg.ReportServed {
			changed = s.Changes()
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.wakeCh:
		case <-s.servedCh:
		case <-changed:
		}
	}
}

func (s *Store) brokerStep(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.SessionTimeout)
	defer cancel()
	if s.shuttingDown.Load() {
		return nil
	}
	if s.needJoin.Load() {
		if err := s.joinStep(ctx); err != nil {
			return err
		}
	}
	st := s.fsm.current()
	if st.ClusterID == "" {
		if s.raft.State() != raft.Leader {
			return nil
		}
		_, err := s.execLocal(ctx, &request{Op: opInit})
		return err
	}
	me := s.brokerRecord()
	if reg, ok := st.Brokers[me.NodeID]; s.needRegister.Load() || !ok || !sameRecord(reg, me) {
		// A non-voter that has to register may have been unregistered,
		// which also removed it from the Raft configuration: it makes
		// sure it is a member first (idempotent), or it would never see
		// its registration.
		if !s.cfg.isVoter() {
			if err := s.joinStep(ctx); err != nil {
				return err
			}
		}
		// A broker registers fenced; its first heartbeat that does not
		// ask to stay fenced (want_fence) unfences it.
		if _, err := s.exec(ctx, &request{Op: opRegister, Broker: &me}); err != nil {
			return err
		}
		s.needRegister.Store(false)
	}
	sentAt := s.cfg.Now()
	resp, err := s.exec(ctx, &request{Op: "heartbeat", NodeID: me.NodeID, Incarnation: me.Incarnation,
		Served: s.servedVersion(), WantFence: s.wantFence(), Offline: s.reportedOffline()})
	if err == nil && resp != nil {
		s.noteFresh(resp.Version, sentAt)
	}
	if errors.Is(err, errStaleIncarnation) {
		// The controller does not know this incarnation although the
		// local state (behind it) does: it was unregistered while
		// running. Register again at once, as a Kafka broker does; a
		// non-voter was also removed from the Raft configuration.
		s.needRegister.Store(true)
		select {
		case s.wakeCh <- struct{}{}:
		default:
		}
	}
	return err
}

func (s *Store) brokerRecord() brokerRecord {
	b := brokerRecord{NodeID: s.cfg.NodeID, Host: s.cfg.KafkaHost, Port: s.cfg.KafkaPort, Incarnation: s.incarnation}
	if s.cfg.Rack != "" {
		r := s.cfg.Rack
		b.Rack = &r
	}
	return b
}

func sameRecord(a, b brokerRecord) bool {
	return a.NodeID == b.NodeID && a.Host == b.Host && a.Port == b.Port && a.Incarnation == b.Incarnation &&
		(a.Rack == nil) == (b.Rack == nil) && (a.Rack == nil || *a.Rack == *b.Rack)
}

// WaitRegistered blocks until the cluster has an ID, a controller, and
// this process's incarnation is registered in the applied state, or ctx
// ends. Checking the incarnation, not just the node ID, matters after a
// restart: the state replayed from the local log still shows the previous
// process registered and unfenced, leading the partitions it led when it
// died. Serving from that stale state would let this broker act as leader
// and group coordinator with old data. The new incarnation's registration
// is applied only after every earlier entry, so once it shows, the local
// state has caught up to at least that point, and it shows this broker
// fenced, leading nothing.
func (s *Store) WaitRegistered(ctx context.Context) error {
	return s.waitSelf(ctx, "registered", func(brokerRecord) bool { return true })
}

// WaitReady is WaitRegistered and then waits for this broker to be
// unfenced; with ReportServed that happens only after the first Served.
func (s *Store) WaitReady(ctx context.Context) error {
	return s.waitSelf(ctx, "ready", func(b brokerRecord) bool { return !b.Fenced })
}

func (s *Store) waitSelf(ctx context.Context, what string, cond func(brokerRecord) bool) error {
	for {
		ch := s.Changes()
		img := s.Image()
		if img.ClusterID != "" && img.ControllerID >= 0 {
			b, ok := s.fsm.current().Brokers[s.cfg.NodeID]
			if ok && sameRecord(b, s.brokerRecord()) && cond(b) {
				return nil
			}
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("controller: wait %s: %w", what, ctx.Err())
		}
	}
}

// Image returns the current metadata; Epoch increases with every change
// published by this Store (it is local to the process, not a Raft index).
func (s *Store) Image() *metadata.Image { return s.image.Load() }

// Changes returns a channel closed at the next published change.
func (s *Store) Changes() <-chan struct{} { return *s.changes.Load() }

// BrokerStatus is a registered broker and, on the controller, whether it
// heartbeated within SessionTimeout.
type BrokerStatus struct {
	metadata.Broker
	Incarnation string
	// Fenced and ShuttingDown are the replicated state (see
	// Image.Brokers); ShuttingDown after a ControlledShutdown.
	Fenced, ShuttingDown bool
	Alive                bool      // meaningful on the controller only; false elsewhere
	LastHeartbeat        time.Time // zero if none seen by this node
}

// Brokers lists registered brokers by node ID, fenced ones included.
// Heartbeat times are kept only in the controller's memory, as in KRaft;
// the controller fences a broker whose session expired (livenessLoop).
func (s *Store) Brokers() []BrokerStatus {
	st := s.fsm.current()
	now := s.cfg.Now()
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	var out []BrokerStatus
	for _, id := range slices.Sorted(maps.Keys(st.Brokers)) {
		b := st.Brokers[id]
		last := s.hb[id]
		out = append(out, BrokerStatus{
			Broker:      metadata.Broker{NodeID: b.NodeID, Host: b.Host, Port: b.Port, Rack: b.Rack},
			Incarnation: b.Incarnation, LastHeartbeat: last, Fenced: b.Fenced, ShuttingDown: b.ShuttingDown,
			Alive: !last.IsZero() && now.Sub(last) <= s.cfg.SessionTimeout && s.raft.State() == raft.Leader,
		})
	}
	return out
}

// Close stops the broker loop and Raft, then the transport and the log.
// Everything acknowledged is already durable. Later mutations fail with
// metadata.ErrClosed. Calling it again returns the first result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.shutdown() })
	return s.closeErr
}

func (s *Store) shutdown() error {
	s.closed.Store(true)
	close(s.stop)
	var errs []error
	if s.raft != nil {
		s.raft.DeregisterObserver(s.obs)
		s.verifyMu.Lock()
		errs = append(errs, s.raft.Shutdown().Error())
		s.verifyMu.Unlock()
	}
	if s.trans != nil {
		errs = append(errs, s.trans.Close())
	} else if s.layer != nil {
		errs = append(errs, s.layer.Close())
	}
	if s.layer != nil {
		s.layer.Close() // idempotent; waits for forward handlers
	}
	s.wg.Wait()
	if s.bolt != nil {
		errs = append(errs, s.bolt.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("controller: close: %w", err)
	}
	return nil
}

// request is a Store call as executed on the controller; it is also the
// forwarded call's body (JSON).
type request struct {
	Op           string                       `json:"op"`
	Create       *metadata.CreateTopicRequest `json:"create,omitempty"`
	Name         string                       `json:"name,omitempty"`
	Total        int32                        `json:"total,omitempty"`
	Assignment   [][]int32                    `json:"assignment,omitempty"`
	Changes      []metadata.ConfigChange      `json:"changes,omitempty"`
	Incremental  bool                         `json:"incremental,omitempty"`
	ValidateOnly bool                         `json:"validate_only,omitempty"`
	Broker       *brokerRecord                `json:"broker,omitempty"`
	NodeID       int32                        `json:"node_id,omitempty"`
	Incarnation  string                       `json:"incarnation,omitempty"`
	Alter        *AlterPartitionRequest       `json:"alter,omitempty"`
	Elect        []TopicPartition             `json:"elect,omitempty"`
	RaftAddr     string                       `json:"raft_addr,omitempty"` // of a joining non-voter
	// Served, WantFence and Offline come with a heartbeat
	// (propagation.go, offline.go).
	Served    int64            `json:"served,omitempty"`
	WantFence bool             `json:"want_fence,omitempty"`
	Offline   []TopicPartition `json:"offline,omitempty"`
	// TimeoutMs is what is left of the caller's deadline: the controller
	// answers a forwarded call within it.
	TimeoutMs int64 `json:"timeout_ms,omitempty"`
}

type response struct {
	// Version answers a heartbeat: the controller's state Version, for
	// fresh reads (0: no claim).
	Version    int64               `json:"version,omitempty"`
	Topic      *metadata.Topic     `json:"topic,omitempty"`
	ProducerID int64               `json:"producer_id,omitempty"`
	Partition  *metadata.Partition `json:"partition,omitempty"`
	Elected    []electResult       `json:"elected,omitempty"`
	Err        *wireError          `json:"err,omitempty"`
}

// retryDelay is the pause before retrying a call that certainly did not
// apply (no leader known, leader unreachable, or it stepped down).
const retryDelay = 20 * time.Millisecond

// exec runs req on the controller: here if this node leads, else
// forwarded. Calls that certainly did not reach a leader are retried until
// ctx ends. The controller is the one Raft names; a node that answers it
// is not, but names another, is believed for the next attempt; and a
// non-voter that knows no leader (not joined yet, or removed from the
// configuration) tries the voters in turn.
func (s *Store) exec(ctx context.Context, req *request) (*response, error) {
	var hint string // controller address named by the last node asked
	probe := 0      // next voter a non-voter asks when nobody is known
	for {
		if s.closed.Load() {
			return nil, metadata.ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("controller: %w", err)
		}
		var resp *response
		var err error
		retry := false
		addr, id := s.raft.LeaderWithID()
		if id != serverID(s.cfg.NodeID) && hint != "" {
			addr, hint = raft.ServerAddress(hint), ""
		}
		if addr == "" && id != serverID(s.cfg.NodeID) && !s.cfg.isVoter() {
			addr = raft.ServerAddress(s.probeVoter(probe))
			probe++
		}
		switch {
		case id == serverID(s.cfg.NodeID):
			resp, err = s.execLocal(ctx, req)
			retry = errors.Is(err, ErrNotController)
		case addr == "":
			retry = true
			err = &NotControllerError{LeaderID: -1}
		default:
			resp, err, retry = s.forward(ctx, string(addr), req)
			var nc *NotControllerError
			if errors.As(err, &nc) {
				if a, ok := s.cfg.Voters[nc.LeaderID]; ok && !sameAddr(a, string(addr)) {
					hint = a
				}
			}
		}
		// A producer-ID block that may or may not have been reserved is
		// simply skipped, so allocation retries even ambiguous failures;
		// an await changes nothing, so it is asked again (of a new
		// controller) after anything but the brokers' lag.
		if (req.Op == opProducerIDs || req.Op == opAwait && !errors.Is(err, ErrLagging)) &&
			err != nil && !errors.Is(err, metadata.ErrClosed) {
			retry = true
		}
		if !retry {
			return resp, err
		}
		t := time.NewTimer(retryDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("controller: %w (%w)", ctx.Err(), err)
		case <-s.stop:
			t.Stop()
			return nil, metadata.ErrClosed
		}
	}
}

// probeVoter returns the address of the i-th voter (mod their number) in
// node ID order.
func (s *Store) probeVoter(i int) string {
	ids := slices.Sorted(maps.Keys(s.cfg.Voters))
	return s.cfg.Voters[ids[i%len(ids)]]
}

// forward sends req to the controller at addr. retry reports that the
// call certainly did not apply.
func (s *Store) forward(ctx context.Context, addr string, req *request) (resp *response, err error, retry bool) {
	c, err := s.layer.dial(addr, tagForward, s.cfg.RaftTimeout)
	if err != nil {
		return nil, fmt.Errorf("controller: forward to %s: %w", addr, err), true
	}
	if d, ok := ctx.Deadline(); ok {
		// Leave the controller a margin to answer before this side gives
		// up on the connection.
		left := time.Until(d)
		req.TimeoutMs = max((left - min(left/10, 200*time.Millisecond)).Milliseconds(), 1)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	body, err := json.Marshal(req)
	if err == nil {
		err = writeFrame(c, body)
	}
	if err != nil {
		return nil, fmt.Errorf("controller: forward to %s: %w", addr, err), true
	}
	data, err := readFrame(c)
	if err != nil {
		return nil, fmt.Errorf("controller: forward to %s: no answer: %w", addr, err), false
	}
	var r response
	if err := decodeStrict(data, &r); err != nil {
		return nil, fmt.Errorf("controller: forward to %s: bad answer: %w", addr, err), false
	}
	if r.Err != nil {
		err := fromWire(r.Err)
		return nil, err, errors.Is(err, ErrNotController)
	}
	return &r, nil, false
}

// serveForward answers one forwarded call; it owns and closes c.
func (s *Store) serveForward(c net.Conn) {
	defer c.Close()
	data, err := readFrame(c)
	if err != nil {
		return
	}
	var req request
	var resp *response
	if err := decodeStrict(data, &req); err != nil {
		resp = &response{Err: toWire(newError(metadata.ErrInvalidRequest, "malformed forwarded call: "+err.Error()))}
	} else {
		timeout := s.cfg.ApplyTimeout
		if req.TimeoutMs > 0 {
			timeout = min(time.Duration(req.TimeoutMs)*time.Millisecond, maxForwardTimeout)
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		go func() { // ends with ctx, cancelled right after execLocal
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		r, err := s.execLocal(ctx, &req)
		cancel()
		if r == nil {
			r = &response{}
		}
		r.Err = toWire(err)
		resp = r
	}
	out, err := json.Marshal(resp)
	if err == nil {
		writeFrame(c, out)
	}
}

func writeFrame(w io.Writer, body []byte) error {
	buf := binary.BigEndian.AppendUint32(make([]byte, 0, 4+len(body)), uint32(len(body)))
	_, err := w.Write(append(buf, body...))
	return err
}

func readFrame(r io.Reader) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > maxCommandBytes {
		return nil, fmt.Errorf("frame of %d bytes exceeds the limit", n)
	}
	buf := make([]byte, n)
	_, err := io.ReadFull(r, buf)
	return buf, err
}
