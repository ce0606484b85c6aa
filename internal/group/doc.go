// Package group is the group coordinator core: the consumer groups and
// committed offsets of one __consumer_offsets partition, as a deterministic
// state machine in the style of etcd-io/raft. It performs no I/O, starts no
// goroutines, reads no clock and takes no locks: the broker feeds it
// requests (Step), the passage of time (Tick) and, at load, the partition's
// records (Load, Loaded), and carries out what it returns (Output: records
// to append, replies to send, the next deadline).
//
// # Driving it
//
// One goroutine of the coordinator runtime (internal/coordinator) owns a
// Coordinator per __consumer_offsets partition the broker leads. For
// every group request routed to that partition (FindCoordinator:
// partition = abs(javaHashCode(group)) % partitions, as Kafka) it calls
// Step with a fresh ReplyTo. Each Output must be handled in order:
//
//  1. append Output.Records to the partition durably (they are Kafka's
//     record format, below);
//  2. then send Output.Replies; Reply.To is the ReplyTo of the request it
//     answers, which may be from an earlier Step: JoinGroup and SyncGroup
//     are parked until the rebalance progresses and are answered by a later
//     Step or Tick (another member's request, a timeout);
//  3. arrange for Tick to be called at Output.NextDeadline (zero: nothing
//     pending). Step also fires due timers first, so a late Tick is harmless.
//
// Every request gets exactly one Reply eventually, as long as the
// coordinator keeps being stepped and ticked. A reply for a connection that
// has gone away is simply dropped by the broker. If appending the records of
// an Output fails, the in-memory state is ahead of the log: the broker must
// not send that Output's replies and should reload the partition (new
// Coordinator, Load, Loaded), as Kafka does when it loses a write.
//
// Until Loaded is called every request is answered
// COORDINATOR_LOAD_IN_PROGRESS.
//
// Requests served: JoinGroup v0-9, SyncGroup v0-5, Heartbeat v0-4,
// LeaveGroup v0-5, OffsetCommit v0-9 (v10 topic IDs via the TopicView),
// OffsetFetch v0-9, DescribeGroups v0-5, ListGroups v0-5, DeleteGroups v0-2,
// OffsetDelete v0, ConsumerGroupHeartbeat v0-1, ConsumerGroupDescribe v0-1.
// Requests spanning several groups (OffsetFetch v8+, DescribeGroups,
// DeleteGroups, ConsumerGroupDescribe) must hold only groups of this
// partition: the broker splits them by partition and concatenates the
// per-group results. ListGroups lists this partition's groups; the broker
// merges the lists of all partitions (Groups() gives the IDs too).
//
// # Semantics
//
// Kafka's GroupCoordinator is the reference: generations, KIP-394 member
// IDs (JoinGroup v4+ without member ID gets MEMBER_ID_REQUIRED and a
// generated ID that must rejoin within the session timeout), protocol
// selection by vote among protocols all members support, rebalance timeout
// (members that do not rejoin are removed; static members stay until their
// session expires), sync timeout (members that do not SyncGroup within the
// rebalance timeout are removed), session expiry, the initial rebalance
// delay of an empty group, KIP-345 static membership, group.max.size.
// Commit validation follows Kafka: generation -1 commits are accepted for
// groups without members (standalone consumers, admin tools), else
// FENCED_INSTANCE_ID, REBALANCE_IN_PROGRESS (CompletingRebalance),
// UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION. OffsetCommit v1's per-partition
// timestamp and v2-4's retention time are ignored, as in Kafka 2.1+.
// Offsets of a group without members expire offsets.retention.minutes after
// the later of their commit and the group becoming empty; a group without
// members and offsets is then deleted (tombstones). Offsets of groups with
// members never expire (Kafka's KIP-496 expiry of unsubscribed topics of
// active groups is not implemented). There are no pending transactional
// offsets, so OffsetFetch's require_stable never waits.
//
// A group ID is either a classic group or a KIP-848 consumer group. An
// empty group of one kind becomes the other when a member of the other
// protocol joins; otherwise JoinGroup on a consumer group gets
// INCONSISTENT_GROUP_PROTOCOL and ConsumerGroupHeartbeat on a classic group
// GROUP_ID_NOT_FOUND.
//
// # Record format
//
// Records are Kafka's __consumer_offsets records, so Kafka tools can read
// the partition. Keys start with an int16 version that names the record type;
// all integers are big-endian, strings are int16 length + bytes:
//
//	offset commit    key   int16 1 | string group | string topic | int32 partition
//	                 value int16 3 | int64 offset | int32 leader epoch |
//	                       string metadata | int64 commit timestamp (ms)
//	classic group    key   int16 2 | string group
//	                 value GroupMetadataValue version 3: int16 3 |
//	                       string protocol type | int32 generation |
//	                       nullable string protocol | nullable string leader |
//	                       int64 state timestamp (ms) | int32 member count |
//	                       members: string id | nullable string instance id |
//	                       string client id | string client host |
//	                       int32 rebalance timeout | int32 session timeout |
//	                       bytes subscription | bytes assignment
//	consumer group   key   int16 3 | string group   (Kafka's ConsumerGroupMetadataKey)
//	(KIP-848)        value int16 0 | int32 group epoch   (ours, not Kafka's)
//
// A nil value is a tombstone. Load accepts offset keys 0 and 1 with value
// versions 0-4 and group values 0-4. For KIP-848 groups only the offsets and
// the group epoch are persisted; members, subscriptions and assignments live
// in memory and are rebuilt by the members rejoining after a coordinator
// restart (their old member epochs are unknown, so they get UNKNOWN_MEMBER_ID
// and rejoin with epoch 0). Persisting the epoch keeps new member epochs
// above every epoch handed out before, so a commit carrying a pre-restart
// epoch can never validate. Kafka's other KIP-848 record types (key versions
// 4 and up) are not written; Load reports them as unsupported.
//
// # Time
//
// Every timer (sessions, join and sync deadlines, KIP-394 pending IDs,
// retention, KIP-848 sessions and revocation deadlines) is one entry in a
// heap keyed by (kind, group, member), so resetting a session on every
// heartbeat costs O(log n) and NextDeadline is the heap's top.
package group
