// Package storage is the partition log: Kafka-style segmented,
// crash-safe storage of record batches, with sparse offset and time
// indexes, retention, compaction, idempotent-producer state and group
// commit.
//
// # Directory layout
//
// A Manager owns a data directory with one directory per partition,
// named <topic>-<partition> (the partition is what follows the last '-').
// A partition directory being deleted is renamed to
// <topic>-<partition>.<unix-nanos>-delete and removed in the background;
// leftovers are removed at open.
//
//	<data-dir>/<topic>-<partition>/
//	    00000000000000000000.log        record batches
//	    00000000000000000000.index      sparse offset index
//	    00000000000000000000.timeindex  sparse time index
//	    00000000000000001234.log        next segment, base offset 1234
//	    ...
//	    00000000000000001234.snapshot   producer state at offset 1234
//	    log-start-offset.checkpoint     DeleteRecords' log start offset
//	    recovery-point.checkpoint       offset/position known durable and valid
//	    leader-epoch.checkpoint         leader epoch → start offset
//	    clean-shutdown                  present only after a clean Close
//
// A new partition is an empty directory: its first segment's file is
// created by its first write, and a directory that is empty at open is an
// empty log. A segment's index files are created with its first index
// entry, so a segment without one has none. Absent checkpoints mean the
// defaults (log start 0, no recovery point, no epochs).
//
// Segment and snapshot names are the base offset as 20 zero-padded
// decimal digits. Transient names: <name>.tmp (a checkpoint being
// written: deleted at open), N.log.cleaned (compaction output being
// written: deleted at open), N.log.swap (compaction output committed:
// renamed over N.log at open, N.index/N.timeindex deleted and rebuilt).
// Segments removed by retention, DeleteRecords or truncation are unlinked
// under the log lock; open handles (Slices) keep the data readable.
//
// # Segment file (N.log)
//
// Record batches (magic 2, see package recordbatch) back to back, exactly
// as stored by the broker: baseOffset and partitionLeaderEpoch assigned
// at append. Base offsets strictly increase; gaps appear only after
// compaction. A segment's size stays below 2^32 so positions fit the
// index, and its offsets within base+2^32.
//
// # Offset index (N.index)
//
// Append-only (no preallocation), 8-byte entries, all big-endian:
//
//	offset  size  field
//	     0     4  relative offset (batch base offset − N), strictly increasing
//	     4     4  file position of that batch, strictly increasing, > 0
//
// An entry is added for a batch when more than index.interval.bytes were
// written since the previous entry (position 0 is implicit).
//
// # Time index (N.timeindex)
//
// Append-only, 12-byte entries:
//
//	offset  size  field
//	     0     8  timestamp: the largest max timestamp of the batches before
//	              the batch at the relative offset, strictly increasing
//	     8     4  relative offset of a batch that has an offset index entry
//
// So every batch before the entry's batch has a max timestamp ≤ ts: a
// lookup for target T starts scanning at the last entry with ts < T.
// Entries are written together with offset index entries, only when the
// timestamp grew.
//
// # Checkpoint files
//
// See checkpoint.go for the framing (magic "SBCK", version, kind, length,
// payload, CRC-32C); payloads are big-endian int64s, except the leader
// epoch list (count u32, then epoch i32 + start offset i64 each).
// Checkpoints are written to a .tmp file, fsynced, renamed into place, and
// the directory fsynced. A corrupt checkpoint is ignored (logged): each is
// only an optimisation or is re-derivable, except log-start-offset, whose
// loss only un-hides records DeleteRecords hid inside the first segment.
//
// Producer snapshots use the producerstate format; the three newest are
// kept, plus the newest at or below the log start offset.
//
// # Durability
//
// Append writes the batches to the active segment with pwrite and appends
// the same bytes to the Manager's journal (internal/journal, one per data
// directory; the entry kinds are in journal.go), in memory. The journal's
// flusher goroutine performs group commit for every log at once: it
// writes what was appended since its last round to its file and
// fdatasyncs once; the Manager's durable loop then advances the durable
// offset of each log the round covered and wakes its Sync callers. In
// FlushOnAck mode every append starts a round, and the high watermark is
// the durable offset, so consumers never see data a crash could take
// away; in interval mode Run starts one every FlushInterval (or a Sync
// does) and the high watermark is the log end.
//
// Segment files are fsynced only by checkpoints (Manager.Checkpoint: every
// CheckpointInterval, or when the journal holds CheckpointBytes), which
// fsync the segments (and a rolled segment's indexes, and directories)
// written since the last one, write each log's recovery point at its
// durable offset with the journal LSN and log start it reflects, and
// release the journal files below the oldest LSN a log still needs. The
// active segment's indexes are never fsynced: recovery rebuilds them.
//
// Truncate, TruncateFullyAndStartAt and DeleteRecordsBefore journal their
// change and wait for it to be durable before they change any file (a
// full truncation first writes a restart recovery point), so recovery
// replays history exactly. Delete journals a delete entry, the floor
// below which a recreated partition of the same name ignores the stream.
//
// A failed journal round (a write or fdatasync error: ENOSPC, EIO) fails
// the journal: its waiters get ErrStorage, the appends it held are cut
// from their segments at once (so a crash cannot bring back what a client
// was told failed), and every log reports Failed until Manager.Recover —
// tried every second once ManagerOptions.CanRecover allows — resets the
// journal. SyncAppend tells a caller that its append was cut even when
// later appends have taken its offsets since. A write error on a log's own
// files fails that log; Recover reopens it from its directory and the
// journal.
//
// Creating a log fsyncs nothing. Its directory's entry in the data
// directory is made durable before its first journal entry can be (by its
// first append, with one fsync shared by every log created before it
// started): recovery replays the journal into the directories it finds. A
// crash before that loses an empty log, which the partition host creates
// again. OpenManager fsyncs the data directory once, since a directory
// created before a process crash may hold data recovery now serves as
// durable.
//
// # Recovery
//
// Close runs a last journal round, fsyncs everything and writes a
// clean-shutdown marker with the journal LSN the log reflects. With a
// marker that matches the files, open trusts them and writes nothing: it
// costs a directory listing, the marker's read and one stat per segment;
// no segment file is opened, indexes of closed segments are loaded on
// first use, and the producer snapshot and leader epoch checkpoint (which
// Close left matching the log) are read when first needed. The marker is
// kept until the log's first change, which removes it (see touchLocked);
// a stale marker is harmless, since the journal entries after its LSN are
// replayed either way. Without a trusted marker, the log is cut at its
// recovery point (cutTail; a log never checkpointed starts again empty,
// its whole history being in the journal) and the indexes from there are
// rebuilt. Then the Manager replays the journal: every entry of a log
// after its recovery point's LSN (and after its stream's last delete
// entry) is applied as the original change was. The journal cuts its own
// torn tail first (internal/journal). A data directory written before the
// journal existed is recovered the old way once — every batch after the
// recovery point validated (framing, CRC-32C, increasing offsets), the
// log truncated at the first torn or corrupt batch — and its recovery
// points rewritten with the journal's LSN. Indexes of other segments are
// checked when loaded (sizes, monotonicity, bounds, the last entry against
// the log) and on each lookup, and rebuilt from the log when wrong.

// # Idempotent producers
//
// Each log owns a producerstate.Table, used under the log lock: Append
// checks the batch (a remembered retry returns Duplicate with its
// original offsets and writes nothing), writes, then updates the table.
// An append carrying a producer ID must hold exactly one batch (Kafka's
// rule for Produce v3+; ErrInvalidRecord otherwise). The table is
// snapshotted as <next offset>.snapshot at each roll and at Close; open
// (after a clean Close, the first use) loads the newest snapshot at or
// below the log end and replays the batch headers after it. Truncate
// reloads it the same way. Idle producers expire in the retention pass
// (ProducerIDExpiration).
//
// # Retention
//
// With cleanup.policy containing delete, the retention pass (Run, every
// RetentionCheckInterval) deletes, oldest first, closed segments whose
// largest batch timestamp is older than retention.ms (the file time when
// no batch has one), and then closed segments while the log stays above
// retention.bytes, as Kafka does. If every segment has expired, a
// non-empty active segment is rolled first so that it can go too; an empty
// active segment always stays. The log start offset moves to the first
// remaining segment. DeleteRecordsBefore checkpoints the new log start
// offset before deleting whole segments below it. The same pass rolls an
// idle active segment older than segment.ms.
//
// # Compaction
//
// See cleaner.go. A pass rewrites closed, durable segments one for one
// (offsets and batch boundaries preserved, no merging) and swaps each in
// with the crash-safe .cleaned → .swap → .log protocol.
//
// # Followers
//
// A follower copies its leader's log with AppendReplicated (replicated.go)
// and cuts it at a divergence with Truncate. Batches are stored byte for
// byte as the leader has them (offsets, partition leader epochs,
// LogAppendTime already set), after checking framing, CRC-32C and
// increasing offsets; the first batch may not start below the log end
// but may start above it (the leader's cleaner drops emptied batches).
// Epochs newer than the cache's latest are learned from the batches, and
// producer state is updated without sequence checks, run by run, so a
// producer snapshot written at a roll inside one append is exact. In
// FlushOnAck mode the follower must Sync to its new log end before its
// next fetch reports that offset to the leader (Log.FlushOnAck tells the
// mode): the leader counts the fetch offset as replicated. A follower
// whose end is below its leader's log start restarts empty there with
// TruncateFullyAndStartAt, which also clears the epoch cache and the
// producer state and snapshots.
//
// # Truncation
//
// Truncate (for replication) removes whole batches from the one holding
// the offset on. It first lowers the recovery point to the cut, then
// unlinks later segments newest first, then cuts and fsyncs the file, so
// that a crash part-way leaves either the old log or a prefix of it, which
// recovery validates from the cut. Full truncation (to or below the log
// start) drops the recovery point to nothing, unlinks every segment newest
// first, and only then creates the new empty segment.
//
// # Known limits
//
// Head segments (retention, DeleteRecords) are unlinked oldest first with
// one directory fsync after; a filesystem that reorders unlinks across a
// crash could leave a hole in the trusted part of the log that is not
// detected.
//
// Truncate cuts the active segment file in place: a Slice still held over
// the removed tail then reads short. Truncation is for replication, whose
// follower path does not serve reads of the removed range. OffsetForTimestamp
// and MaxTimestamp only consider batches below the high watermark, as
// Kafka's ListOffsets does. Transactions (aborted data, markers) get no
// special treatment from the cleaner yet.
//
// # Open files
//
// Segment and index files are opened through the Manager's file cache
// (filecache.go), bounded by ManagerOptions.MaxOpenFiles
// (log.max.open.files), so idle partitions hold no descriptors: every I/O
// call pins the file it uses, reopening it by name if the cache closed
// it, and unpins it after; a Slice keeps its chunks' files pinned until
// Release (sendfile uses Chunk.File); unpinned files are closed least
// recently used first when more than the bound are open. Pinned files are
// never closed, so the bound is exceeded only while more files than that
// are in use at once. An fsync reopens an evicted file: on Linux an fsync
// through any descriptor writes back the file's dirty pages, and a
// writeback error no descriptor has seen yet is reported to it (since
// 4.16). When a segment leaves the log (retention, truncation, a
// compaction swap, Close, Delete) it is retired before its names are
// unlinked or reused: its names are never opened again, and its log file
// stays open for the readers that still hold the segment.
//
// # Concurrency
//
// Log.mu serialises appends and structural changes. Readers take it only
// to pick segments (reference-counted) and do their I/O outside it;
// segment files are released when the last reference goes, so deletion
// by retention, compaction or topic deletion never closes a file under a
// reader. Lock order: Log.cleanMu, Log.cpMu, Log.mu, segment.idxMu,
// fileRef.openMu, fileCache.mu; Manager.mu before Log.mu.
package storage
