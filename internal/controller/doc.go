// Package controller is the Raft-replicated metadata.Store: cluster
// metadata kept in a hashicorp/raft replicated state machine (see
// docs/adr/0006-metadata-raft.md), with the errors, validation and Kafka
// messages the broker maps to its answers. A single node is a one-voter
// quorum; an earlier single-node store's metadata is imported with the
// cluster's first command (import.go).
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
// safe to retry because an unused block is simply skipped, and
// AwaitPropagation, which changes nothing. Both sides decode the JSON
// strictly (unknown fields are errors) and nothing negotiates versions, so
// every node of a cluster must run the same build: rolling upgrades are
// not supported yet.
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
// controller's memory, reset when its Raft term changes (a new controller
// gives every broker a full session). As in KRaft a broker registers
// fenced and its first heartbeat unfences it. Every LivenessCheckInterval
// the controller fences (a replicated command) each broker whose last
// heartbeat, by the injected clock, is older than SessionTimeout.
//
// As in KRaft, a new incarnation's registration is refused with
// ErrDuplicateBrokerRegistration (DUPLICATE_BROKER_REGISTRATION) while the
// registered incarnation is unfenced and its session valid; the check is
// made in the controller's prepare path, since sessions are controller
// memory, not replicated state. The refused process retries every
// HeartbeatInterval (logging a warning), so a kill -9 and immediate
// restart comes back once the old session expired, and two processes
// configured with one node ID cannot take each other's registration. A
// registration over an unfenced incarnation whose session already expired
// fences the old one first.
//
// Brokers need not be voters (membership.go): a node whose NodeID is not
// in Voters starts Raft without bootstrapping and asks the controller,
// found by trying the voters' addresses, to add it as a Raft non-voter
// (opJoin, a forwarded call the controller answers with raft.AddNonvoter;
// idempotent, refused for a voter's ID, another member's address, or a
// live duplicate). It then holds the replicated log like every node.
// UnregisterBroker (Kafka's API 64) fences a broker and removes its
// registration in one command, leaving it in replica lists (operators
// reassign them); a non-voter also leaves the Raft configuration
// (raft.RemoveServer), a voter keeps its vote (voter changes are not
// supported). A broker still running gets errStaleIncarnation on its next
// heartbeat and registers again, a non-voter rejoining first.
// Image.Brokers lists only unfenced brokers, as KRaft Metadata responses
// do; Brokers() lists all with their state. Placement (round-robin, a new
// partition's ISR and leader) uses unfenced brokers only.
//
// # Read-your-writes (propagation.go)
//
// Brokers report in their heartbeats the state Version they serve; a
// broker with Config.ReportServed stays fenced until its first report.
// AwaitPropagation, forwarded to the controller, runs a Raft barrier and
// waits until every live (heard from within three heartbeat intervals),
// unfenced broker reported the controller's Version, so a client-facing
// change is answered once every live broker serves it.
// A heartbeat's answer carries the controller's Version, which is what
// WaitFresh checks the local state against.
//
// # Partition leadership (KRaft semantics)
//
// Each partition has a leader epoch (in metadata.Partition) and a
// partition epoch (controller state, PartitionState; metadata.Partition
// has no field for it), both 0 at creation. Every change of leader bumps
// both; every ISR change bumps the partition epoch.
//
//   - Fencing a broker (session expiry, controlled shutdown): every
//     partition it leads gets as leader the first replica, in replica
//     order, that is in the ISR and unfenced, or -1 if none (no unclean
//     election); it leaves every ISR it is not the last member of.
//   - Unfencing: every leaderless partition with an unfenced ISR member
//     elects one the same way; nothing else moves back automatically.
//   - AlterPartition: the leader replaces the ISR, conditional on its
//     broker ID, leader epoch and partition epoch (NOT_LEADER_OR_FOLLOWER,
//     FENCED_LEADER_EPOCH, INVALID_UPDATE_VERSION); the ISR must hold the
//     leader (INVALID_REQUEST) and may add only unfenced replicas
//     (INELIGIBLE_REPLICA). Applying re-checks all of it.
//   - ElectPreferredLeaders: the first replica takes over where it is in
//     the ISR and unfenced. ElectLeaders with ElectUnclean gives a
//     leaderless partition its first live replica as leader and sole ISR
//     member (elect.go).
//   - Reassignment (KIP-455, reassign.go): Replicas = target + the old
//     replicas not in it, with AddingReplicas and RemovingReplicas kept in
//     state and snapshots; it completes in the change that puts every
//     target replica in the ISR (Replicas = target, ISR ∩ target, the
//     leader moved to the first live target replica if it is removed).
//   - Leader balancing (balance.go): every LeaderImbalanceCheckInterval
//     the controller runs a preferred election for the partitions of each
//     broker that leads too few of the partitions it is preferred for
//     (balanceLoop, started by Open, idle unless this node leads).
//   - ControlledShutdown: the broker stops heartbeating and is fenced as
//     shutting down; its heartbeats no longer unfence it (its next process
//     registers a new incarnation).
//
// Not done yet: voter membership changes, eligible leader replicas
// (KIP-966), reassignment throttles and allow_replication_factor_change
// (KIP-860).
//
// Image.Epoch is local to the process: it increases with every Image this
// Store publishes (state change or controller change) and is not
// comparable across nodes.
package controller
