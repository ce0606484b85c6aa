package controller

// Cluster membership: brokers that join the Raft configuration as
// non-voters, UnregisterBroker, and the duplicate-registration check.
//
// A non-voter (NodeID not in Config.Voters) starts Raft without
// bootstrapping and asks the controller to add it (opJoin, a forwarded
// call; while this node knows no leader it tries the voters' addresses).
// The controller calls raft.AddNonvoter, so the node receives the log and
// snapshots like a voter but never votes or stands for election. Joining
// is idempotent: a node already in the configuration at that address is
// left alone, so a restarted non-voter asks again every time it starts.
//
// Registration sessions are the controller's memory (Store.hb), never
// replicated: a registration or join by a new incarnation of a node ID is
// refused with ErrDuplicateBrokerRegistration while the registered
// incarnation is unfenced and its session is valid, as KRaft does, so two
// processes configured with one node ID cannot take each other's place.
// The refused process retries; after a kill -9 its successor gets in once
// the old session expired (the liveness check fences it).

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streambus/streambus/internal/metadata"
)

// Membership errors. They survive forwarding (errorKinds) and wrap
// franz-go's kerr value of their Kafka code, so the broker finds the code
// with errors.As without importing this package.
var (
	// ErrDuplicateBrokerRegistration: another incarnation of the node ID
	// is registered and its session has not expired
	// (DUPLICATE_BROKER_REGISTRATION). Retriable once it expires.
	ErrDuplicateBrokerRegistration = fmt.Errorf("controller: duplicate broker registration: %w", kerr.DuplicateBrokerRegistration)
	// ErrBrokerIDNotRegistered: UnregisterBroker named an unknown broker
	// (BROKER_ID_NOT_REGISTERED).
	ErrBrokerIDNotRegistered = fmt.Errorf("controller: broker ID not registered: %w", kerr.BrokerIDNotRegistered)
)

// opJoin asks the controller to add a non-voter to the Raft
// configuration. It is a forwarded call only, never a log command (Raft
// itself logs the configuration change); the name is part of the
// forwarding wire format.
const opJoin = "join_nonvoter"

// UnregisterBroker is Kafka's UnregisterBroker: the controller fences
// broker id (its partitions elect new leaders and it leaves every ISR it
// is not the last member of) and removes its registration, one replicated
// command; it stays in the partitions' replica lists until they are
// reassigned. A non-voter is also removed from the Raft configuration. A
// voter keeps its vote: voters change only through a voter-change API,
// which StreamBus does not have. A broker still running re-registers (and
// a non-voter rejoins) on its next heartbeat, as in Kafka. Errors:
// ErrBrokerIDNotRegistered, ErrClosed, or a context or Raft error.
func (s *Store) UnregisterBroker(ctx context.Context, id int32) error {
	_, err := s.exec(ctx, &request{Op: opUnregister, NodeID: id})
	return err
}

func notRegistered(id int32) error {
	return newError(ErrBrokerIDNotRegistered, fmt.Sprintf("Broker ID %d is not currently registered.", id))
}

// prepareUnregister is the controller's check before proposing.
func prepareUnregister(st *state, req *request) (*command, *response, error) {
	if _, ok := st.Brokers[req.NodeID]; !ok {
		return nil, nil, notRegistered(req.NodeID)
	}
	return &command{Op: opUnregister, NodeID: req.NodeID}, &response{}, nil
}

// applyUnregister fences id, then drops its registration.
func applyUnregister(cur, next *state, id int32) error {
	if _, ok := cur.Brokers[id]; !ok {
		return notRegistered(id)
	}
	fenceBroker(next, id, false)
	delete(next.Brokers, id)
	return nil
}

// finishUnregister runs on the controller after the unregister command
// applied (prepErr nil) or was refused (prepErr): a non-voter leaves the
// Raft configuration. A non-voter left there without a registration (an
// earlier removal failed half-way) is removed too and counts as success.
// sem must be held.
func (s *Store) finishUnregister(ctx context.Context, id int32, prepErr error) error {
	if prepErr != nil && !errors.Is(prepErr, ErrBrokerIDNotRegistered) {
		return prepErr
	}
	srv, ok, err := s.raftServer(id)
	switch {
	case err != nil:
		return err
	case !ok:
		if prepErr == nil {
			s.log.Info("broker unregistered", "broker", id)
		}
		return prepErr
	case srv.Suffrage == raft.Voter:
		if prepErr == nil {
			s.log.Warn("broker unregistered; it stays a voter of the metadata quorum (voters do not change)", "broker", id)
		}
		return prepErr
	}
	if err := s.raft.RemoveServer(srv.ID, 0, s.timeout(ctx)).Error(); err != nil {
		return fmt.Errorf("controller: remove non-voter %d from the Raft configuration: %w", id, s.raftError(err))
	}
	s.log.Info("broker unregistered and removed from the Raft configuration", "broker", id, "raft_addr", srv.Address)
	return nil
}

// raftServer returns node id's entry in the latest Raft configuration.
func (s *Store) raftServer(id int32) (raft.Server, bool, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return raft.Server{}, false, s.raftError(err)
	}
	for _, srv := range f.Configuration().Servers {
		if srv.ID == serverID(id) {
			return srv, true, nil
		}
	}
	return raft.Server{}, false, nil
}

// addNonvoter is opJoin on the controller: it adds req.NodeID at
// req.RaftAddr as a non-voter unless it is already there. sem must be
// held, so the configuration checked is the one changed.
func (s *Store) addNonvoter(ctx context.Context, req *request) error {
	if req.NodeID < 0 || req.Incarnation == "" || checkIPAddr(req.RaftAddr) != nil {
		return newError(metadata.ErrInvalidRequest, fmt.Sprintf("invalid join request for node %d at %q", req.NodeID, req.RaftAddr))
	}
	if s.raft.State() != raft.Leader {
		return s.notController()
	}
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return s.raftError(err)
	}
	var existing *raft.Server
	for _, srv := range f.Configuration().Servers {
		if srv.ID == serverID(req.NodeID) {
			existing = &srv
			continue
		}
		if sameAddr(string(srv.Address), req.RaftAddr) {
			return newError(metadata.ErrInvalidRequest, fmt.Sprintf(
				"Raft address %s of node %d is already used by node %s.", req.RaftAddr, req.NodeID, srv.ID))
		}
	}
	if existing != nil && existing.Suffrage == raft.Voter {
		return newError(metadata.ErrInvalidRequest, fmt.Sprintf(
			"Node %d is a voter of the metadata quorum at %s; start it with itself in --voters.", req.NodeID, existing.Address))
	}
	if existing != nil && sameAddr(string(existing.Address), req.RaftAddr) {
		return nil // already a member: a restart, or a retried join
	}
	// A different address for a known node, or a new node ID that another
	// live process registered: only a process whose predecessor is gone
	// may take the ID over.
	if err := s.checkDuplicate(s.fsm.current(), req.NodeID, req.Incarnation); err != nil {
		return err
	}
	s.log.Info("adding a non-voter to the Raft configuration", "broker", req.NodeID, "raft_addr", req.RaftAddr)
	if err := s.raft.AddNonvoter(serverID(req.NodeID), raft.ServerAddress(req.RaftAddr), 0, s.timeout(ctx)).Error(); err != nil {
		return fmt.Errorf("controller: add non-voter %d: %w", req.NodeID, s.raftError(err))
	}
	return nil
}

// checkDuplicate refuses incarnation inc of node id while another
// incarnation is registered, unfenced and within its session. The
// controller's own process is never refused: it holds the node ID's Raft
// identity and leads, so no other live process can be that node (without
// this, a one-voter quorum restarted after kill -9 would wait out its own
// dead predecessor's session).
func (s *Store) checkDuplicate(st *state, id int32, inc string) error {
	b, ok := st.Brokers[id]
	if !ok || b.Incarnation == inc || b.Fenced || (id == s.cfg.NodeID && inc == s.incarnation) || !s.sessionValid(id) {
		return nil
	}
	return newError(ErrDuplicateBrokerRegistration, fmt.Sprintf(
		"Another broker is registered with broker ID %d and its session has not expired (timeout %v).", id, s.cfg.SessionTimeout))
}

// sessionValid reports whether broker id's session on this controller has
// not expired. A heartbeat from an earlier term, or none yet, counts as
// valid: a new controller gives every broker a full session, which the
// liveness check starts and, when it expires, ends by fencing the broker.
func (s *Store) sessionValid(id int32) bool {
	s.hbMu.Lock()
	defer s.hbMu.Unlock()
	last, ok := s.hb[id]
	if !ok || s.hbTerm != s.raft.CurrentTerm() {
		return true
	}
	return s.cfg.Now().Sub(last) <= s.cfg.SessionTimeout
}

// joinStep asks the controller to add this non-voter to the Raft
// configuration; idempotent.
func (s *Store) joinStep(ctx context.Context) error {
	_, err := s.exec(ctx, &request{Op: opJoin, NodeID: s.cfg.NodeID, Incarnation: s.incarnation, RaftAddr: s.cfg.RaftAddr})
	if err != nil {
		return fmt.Errorf("controller: join the metadata quorum as a non-voter: %w", err)
	}
	if s.needJoin.Swap(false) {
		s.log.Info("member of the metadata quorum as a non-voter", "raft_addr", s.cfg.RaftAddr)
	}
	return nil
}

// logBrokerStepErr reports a failed registration, join or heartbeat. A
// refusal by the controller (a duplicate node ID, a bad join) needs an
// operator's eye, so it is a warning, repeated at most every
// refusalLogInterval while it lasts; anything else (no controller yet, a
// timeout) is retried quietly.
func (s *Store) logBrokerStepErr(err error) {
	var se *storeError
	if !errors.As(err, &se) {
		s.log.Debug("controller: register/heartbeat", "err", err)
		return
	}
	now := s.cfg.Now()
	if msg := err.Error(); msg != s.lastRefusal || now.Sub(s.lastRefusalAt) >= refusalLogInterval {
		s.lastRefusal, s.lastRefusalAt = msg, now
		if errors.Is(err, ErrDuplicateBrokerRegistration) {
			s.log.Warn("broker registration refused (DUPLICATE_BROKER_REGISTRATION): another process holds this node ID; retrying until its session expires",
				"err", err)
			return
		}
		s.log.Warn("controller refused this broker; retrying", "err", err)
	}
}
