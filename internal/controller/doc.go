// Package controller is the Raft-replicated metadata.Store for clusters: the
// same interface, errors, validation and messages as metadata.Local, with
// the state kept in a hashicorp/raft replicated state machine (see
// docs/adr/0006-metadata-raft.md).
//
// # Roles
//
// Every broker runs a Store; the Raft leader is the controller
// (Image.ControllerID). Reads (Image, Changes) are local and lock-free on
// every node. Mutations are computed on the controller: a call on another
// node is forwarded over the Raft listener (tag byte 'F', then one
// length-prefixed JSON request and response; see transport.go and
// store.go). Calls that certainly did not apply (no leader, leader
// unreachable, leader stepped down before appending) are retried until the
// caller's context ends; an ambiguous failure (leadership lost while
// committing) is returned, except for producer-ID allocation, which is
// safe to retry because an unused block is simply skipped.
//
// The controller resolves each request against its state (defaults,
// round-robin assignment over registered brokers, topic IDs, the injected
// config validator), then proposes a command conditional on that state's
// Version. Applying re-checks every structural invariant; a command built
// from an outdated state (just after a leader change) fails with errStale,
// and the controller waits for a barrier and recomputes.
//
// # Formats (part of the on-disk format)
//
// A Raft log entry's Data is one version byte (1) followed by a JSON
// command object (type command: op, if_version and op-specific fields;
// unknown fields rejected). A snapshot is the version byte followed by the
// JSON snapshotBody. raft.db is a bbolt file: bucket "logs" maps 8-byte
// big-endian indexes to entries encoded by encodeLog; bucket "stable"
// holds raft's term and vote. bbolt fsyncs every transaction, so nothing
// is acknowledged before it is durable.
//
// # Brokers
//
// Each Store registers its broker (node ID, Kafka endpoint, rack, a random
// incarnation ID per process) through Raft and then heartbeats to the
// controller every HeartbeatInterval; heartbeat times live only in the
// controller's memory (Brokers reports liveness). Not done yet: fencing
// brokers whose heartbeats stop, leader/ISR changes, membership changes.
//
// Image.Epoch is local to the process: it increases with every Image this
// Store publishes (state change or controller change) and is not
// comparable across nodes.
package controller
