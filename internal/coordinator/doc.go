// Package coordinator is the coordinator runtime: it runs a deterministic
// coordinator state machine (a Machine) on every partition of an internal
// compacted topic that this broker leads — __consumer_offsets for the group
// coordinator (internal/group), and the same way any coordinator whose state
// is the compacted log of its partition. The Machine decides; the runtime
// does the I/O, the goroutines and the timers.
//
// # What the runtime does
//
// For every Shard passed to Runtime.Sync (a partition led here, in one
// leader epoch) a runner goroutine owns one Machine and goes through:
//
//  1. Load. A fresh Machine (Config.New) replays the partition's records
//     from the log start offset to the high watermark (Machine.Load), after
//     an fsync of the whole log so that the high watermark covers every
//     record appended so far; then Machine.Loaded is called. Control
//     batches are skipped. A record the Machine rejects is logged and
//     skipped; a batch that does not decode fails the load: the runner
//     logs it and exits, and the shard answers ErrNotCoordinator until Sync
//     drops or replaces it. Until Loaded, Submit returns ErrLoading.
//
//  2. Step. Submitted requests are queued; the runner takes the whole queue
//     at once and calls Machine.Step for each in order, giving each a fresh
//     ReplyTo. Machine.Tick runs when the earliest NextDeadline returned
//     since the last Tick is due (by Config.Now), and IdleInterval after the
//     last Tick when none is pending, so that time-based cleanup such as
//     offset retention runs on an idle shard.
//
//  3. Apply. Each Output is carried out before the next Step: its Records
//     are appended as one uncompressed batch stamped with the shard's
//     leader epoch, and its Replies are sent once those records are fsynced
//     and, for a replicated partition, held by the ISR. That wait runs on a
//     goroutine of its own, so the runner steps on meanwhile. An Output
//     without Records has its Replies sent at once, from the runner.
//
// One Output, by goroutine:
//
//	runner:    Step ─▶ Log.Append(Records) ─┐   (next Step)
//	delivery:                               └─▶ Log.Sync ─▶ WaitReplicated ─▶ Replies
//
// A Reply answers the request whose ReplyTo it names, which may come from an
// earlier Step (a request parked until a later Step or Tick). A Reply naming
// no waiting request (already answered, or failed by a reload) is dropped.
//
// # Ordering, non-obvious
//
// Records are always durable before the Replies of their Output. Replies of
// different Outputs are not ordered: the Replies of an Output without Records
// go out at once, possibly before those of an earlier Output still waiting
// for its fsync, although the Machine's state already includes the earlier
// records. This is the group coordinator's behaviour (an OffsetFetch may see
// a commit whose OffsetCommit has not been answered yet).
//
// # Failures
//
// Every Submit that returns nil has its reply func called exactly once:
// reply(resp, true) with the answer, or reply(zero, false) when the answer
// cannot be given — the runner stopped (Sync dropped or replaced it, or
// Close), or the request's Output could not be made durable. A caller serving
// Kafka closes the client's connection on false, so that the client looks up
// the coordinator again and retries.
//
//   - Append fails: the in-memory state is ahead of the log. That Output's
//     Replies fail, every request the Machine still holds fails, and the
//     runner reloads a fresh Machine from the log (requests get ErrLoading
//     meanwhile), which it ticks within IdleInterval, as at start. If the
//     reload fails the runner exits, failing the requests it holds.
//   - The records do not become durable (their journal round failed, and
//     the log cut them): that Output's Replies fail and the runner reloads
//     as above, since the Machine holds state the log no longer has.
//   - WaitReplicated fails: that Output's Replies fail. The Machine is
//     kept: the records are in the log.
//
// # Leadership changes
//
// Sync replaces a runner whose Shard changed leader epoch or Log, even if
// this broker leads again: in between it may have followed another leader
// and taken records its old state does not hold. The successor is registered
// at once (Submit answers ErrLoading) but loads only after its predecessor
// has exited, so no step of the old runner can append to the log it loads.
// Sync itself never waits for a runner.
//
// # Goroutines and locks
//
// The Runtime owns every goroutine it starts — the runners and the goroutines
// delivering Replies after fsync and replication — and Close waits for all of
// them. Shard.WaitReplicated must therefore return in bounded time (time out,
// or return when the broker shuts down). After Close, Sync starts nothing
// and Submit returns ErrNotCoordinator.
//
// A Machine is only ever called from its runner goroutine, and with no lock
// of the runtime held: it needs no locks of its own, and it may be slow
// without blocking Submit, Sync or other shards. The reply funcs are called
// with no lock held, from the runner or a delivery goroutine; they must not
// block for long (they hold up the runner) and must not call Close.
package coordinator
