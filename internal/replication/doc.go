// Package replication is Kafka-model partition replication: followers
// copy their leader's log by fetching from it, and the leader derives the
// high watermark and the in-sync replica set (ISR) from those fetches.
//
// # Leader side (leader.go)
//
// LeaderState is a deterministic state machine per led partition, with no
// I/O, clock or goroutine: the partition host (internal/partitions) feeds
// it the leader's own end (SetLeaderEnd: the log end offset, or the
// durable offset in FlushOnAck mode), each follower fetch
// (FollowerFetched: replica ID and fetch offset, which is the follower's
// log end offset), time (Tick) and the controller's answers
// (ApplyAssignment, ProposalFailed). It returns an Update: the high
// watermark, whether it advanced, and at most one ISR proposal in flight
// (Kafka's AlterPartition), which is not applied locally until the
// controller confirms it.
//
//   - High watermark = min(leader end, log end offsets of the maximal ISR:
//     the confirmed ISR plus members a pending proposal adds; a pending
//     removal still counts). It never decreases while the state lives.
//   - A follower is caught up at a fetch whose offset reaches the leader's
//     current end, or (as of its previous fetch) reaches the end the leader
//     had at that previous fetch. An ISR follower not caught up for longer
//     than replica.lag.time.max.ms (and not at the leader's end) is
//     proposed for removal; ISR members get that long from the start of
//     the leadership.
//   - A non-ISR follower whose log end reaches both the high watermark and
//     the start offset of this leader epoch is proposed for addition.
//   - acks=all: CheckEnoughReplicas refuses a produce before the append
//     when the confirmed ISR is below min.insync.replicas
//     (NOT_ENOUGH_REPLICAS); Satisfied tells an appended request waiting
//     for the high watermark to cover it when it may be answered, with
//     NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below the minimum
//     meanwhile (partitions.Host.WaitReplicated).
//   - Each fetch also reports the follower's log start offset.
//     LowWatermark (Kafka's lowWatermarkIfLeader) is the smallest log
//     start over the leader and the followers on live brokers; a
//     DeleteRecords request completes once it reaches the requested
//     offset.
//
// # Follower side (fetcher.go)
//
// A Fetcher owns one goroutine per source leader broker; see its doc.
// After applying (and, in FlushOnAck mode, fsyncing) a response, a
// follower moves its log start up to the leader's, never past its own
// high watermark (Kafka's maybeIncrementLogStartOffset), so records
// deleted on the leader stay deleted when this replica leads.
package replication
