package controller

import (
	"errors"
	"fmt"

	"github.com/streambus/streambus/internal/metadata"
)

// ErrNotController is returned (wrapped in a *NotControllerError) by a
// forwarded call that reached a node which is not, or no longer, the Raft
// leader. Store methods retry it internally until their context ends.
var ErrNotController = errors.New("controller: not the controller")

// NotControllerError says which node this node believes leads, or -1.
type NotControllerError struct{ LeaderID int32 }

func (e *NotControllerError) Error() string {
	return fmt.Sprintf("controller: this node is not the controller (current controller: %d)", e.LeaderID)
}

func (e *NotControllerError) Is(target error) bool { return target == ErrNotController }

// storeError pairs a metadata sentinel with Kafka's message. Its Error()
// is the Kafka message alone, which metadata.ErrorMessage returns for an
// error it does not know, so the broker sends Kafka's text.
type storeError struct {
	kind error
	msg  string
}

func (e *storeError) Error() string { return e.msg }
func (e *storeError) Unwrap() error { return e.kind }

func newError(kind error, msg string) error { return &storeError{kind: kind, msg: msg} }

func unknownTopic(name string) error {
	return newError(metadata.ErrUnknownTopic, fmt.Sprintf("Topic '%s' does not exist.", name))
}

func topicExists(name string) error {
	return newError(metadata.ErrTopicExists, fmt.Sprintf("Topic '%s' already exists.", name))
}

// errorKinds names the sentinels that survive forwarding; the names are
// part of the forwarding wire format.
var errorKinds = []struct {
	name string
	err  error
}{
	{"topic_exists", metadata.ErrTopicExists},
	{"unknown_topic", metadata.ErrUnknownTopic},
	{"invalid_topic", metadata.ErrInvalidTopic},
	{"invalid_partitions", metadata.ErrInvalidPartitions},
	{"invalid_replication_factor", metadata.ErrInvalidReplicationFactor},
	{"invalid_replica_assignment", metadata.ErrInvalidReplicaAssignment},
	{"invalid_config", metadata.ErrInvalidConfig},
	{"invalid_request", metadata.ErrInvalidRequest},
	{"closed", metadata.ErrClosed},
	{"stale_incarnation", errStaleIncarnation},
	{"not_leader_or_follower", ErrNotLeaderOrFollower},
	{"fenced_leader_epoch", ErrFencedLeaderEpoch},
	{"invalid_update_version", ErrInvalidUpdateVersion},
	{"ineligible_replica", ErrIneligibleReplica},
	{"election_not_needed", ErrElectionNotNeeded},
	{"preferred_leader_not_available", ErrPreferredLeaderNotAvailable},
	{"eligible_leaders_not_available", ErrEligibleLeadersNotAvailable},
	{"no_reassignment_in_progress", ErrNoReassignmentInProgress},
	{"duplicate_broker_registration", ErrDuplicateBrokerRegistration},
	{"broker_id_not_registered", ErrBrokerIDNotRegistered},
	{"lagging", ErrLagging},
}

var errStaleIncarnation = errors.New("controller: broker not registered with this incarnation")

// wireError is an error crossing a forwarded call.
type wireError struct {
	Kind          string `json:"kind,omitempty"`
	Msg           string `json:"msg"`
	NotController bool   `json:"not_controller,omitempty"`
	LeaderID      int32  `json:"leader_id,omitempty"`
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	var nc *NotControllerError
	if errors.As(err, &nc) {
		return &wireError{Msg: err.Error(), NotController: true, LeaderID: nc.LeaderID}
	}
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return &wireError{Kind: k.name, Msg: metadata.ErrorMessage(err)}
		}
	}
	return &wireError{Msg: err.Error()}
}

func fromWire(w *wireError) error {
	if w == nil {
		return nil
	}
	if w.NotController {
		return &NotControllerError{LeaderID: w.LeaderID}
	}
	for _, k := range errorKinds {
		if k.name == w.Kind {
			return &storeError{kind: k.err, msg: w.Msg}
		}
	}
	return fmt.Errorf("controller: on the controller: %s", w.Msg)
}
