// Package journal is a write-ahead journal shared by every partition log of
// a data directory: appends of all partitions go to one file, and one
// fdatasync per group-commit round makes a whole round durable, however
// many partitions it touched (docs/adr/0008). The journal knows nothing of
// partitions or record batches: an Entry is a stream ID, a kind, an offset
// and opaque data, all defined by its user (internal/storage).
//
// # Files
//
// The journal directory holds files named by the LSN of their first byte
// (20 zero-padded decimal digits, ".wal"). An LSN is a position in the
// journal as a whole: file N covers [N, next file's name). A file starts
// with a 16-byte header and holds records back to back; all integers are
// big-endian:
//
//	header   offset  size  field
//	              0     4  magic "SBJL"
//	              4     2  version (1)
//	              6     2  reserved (0)
//	              8     8  LSN of the header's first byte (the file name)
//
//	record   offset  size  field
//	              0     4  payload length n (17 ≤ n ≤ MaxPayload)
//	              4     4  CRC-32C (Castagnoli) of the payload
//	              8     n  payload:
//	                         0  1  kind (user-defined)
//	                         1  8  stream ID (user-defined)
//	                         9  8  offset (user-defined)
//	                        17  -  data
//
// The LSN an Append returns is the position just after its record: the
// record is durable once Synced() reaches it.
//
// # Group commit
//
// Append encodes the entry into an in-memory buffer under the journal's
// lock and returns; it never does I/O. One flusher goroutine takes the
// whole buffer, writes it to the current file (rotating to a new file once
// the current one passes Options.FileSize), fdatasyncs, and advances the
// durable LSN, waking every Sync caller it covers. Appends made meanwhile
// go to the next round. A new file's directory entry is made durable before
// anything in it counts as durable.
//
// # Failure
//
// A write or fdatasync error (ENOSPC, EIO) fails the journal: Sync and
// Append return it (wrapped in ErrFailed), nothing written after the last
// durable LSN counts, and the flusher cuts the file back to that LSN at
// once (best effort: a cut needs no free space), so that a crash cannot
// bring back records whose callers were told they failed. Reset cuts again
// and accepts appends (once the caller knows space is back); entries
// appended since the failure are gone, and their callers were told so.
//
// # Recovery
//
// Open scans the files in order and stops at the first record that is
// torn or corrupt (a length beyond the file, a CRC mismatch, a bad length):
// that file is truncated there and later files are removed, with an error
// logged if that was not the tail of the last file. Replay then yields
// every entry from the oldest file on. Release removes the files that only
// hold entries below an LSN, once the user has made them redundant (a
// checkpoint).
package journal
