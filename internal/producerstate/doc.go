// Package producerstate keeps the idempotent-producer sequence state of one
// partition: for every producer ID, its current epoch and the last five
// batches it appended, so that the partition log can reject sequence gaps and
// stale epochs and answer a retried batch with the offset it first got.
//
// It follows Kafka's ProducerStateManager and ProducerAppendInfo (client
// origin). For a data batch with a producer ID (ProducerID >= 0), in order:
//
//  1. Duplicate: if the producer is known, the batch has the producer's
//     current epoch, and its (firstSeq, lastSeq) equals one of the five cached
//     batches, the batch is a retry; Check reports the cached base offset and
//     nothing is appended. (The last offset is that base plus the retry's own
//     LastOffsetDelta, since equal sequence ranges imply equal deltas.)
//  2. Epoch: an epoch lower than the stored one is ErrInvalidProducerEpoch.
//  3. Sequence: with a new (higher) epoch the first sequence must be 0; with
//     the same epoch it must follow the last cached batch's last sequence,
//     where MaxInt32 is followed by 0. Anything else is
//     ErrOutOfOrderSequence. A producer the table does not know is accepted
//     with any sequence: its state may have been expired or removed with the
//     log head, and Kafka (since 2.5, KIP-360) lets it continue.
//
// Batches without a producer ID always pass. Control batches (transaction
// markers) carry no sequence and are ignored by Check and Update; when
// transactions are added, Kafka's marker rules (epoch check, epoch bump that
// clears the cached batches) belong here.
//
// Expiry differs from Kafka on purpose: Kafka measures idleness from the
// batch's maxTimestamp, which under CreateTime is the producer's clock, so a
// skewed client expires at once or never. Here the caller passes the broker's
// time to Update (during recovery from the log it may pass the batch's
// MaxTimestamp, as Kafka does).
//
// # Concurrency
//
// A Table is not safe for concurrent use. It is owned by one partition log
// and used under that log's append lock: Check, then the append, then Update,
// one batch at a time.
//
// # Snapshot format
//
// MarshalBinary writes the whole table; UnmarshalBinary reads it back or
// fails with ErrCorruptSnapshot, in which case the caller rebuilds the table
// by replaying the log. All integers are big-endian. Every constant below is
// part of the format; a change to the layout needs a new version.
//
//	offset  size  field
//	     0     4  magic "SBPS"
//	     4     2  version (1)
//	     6     4  producer count N
//	    10     …  N producer entries, producer ID strictly increasing
//	   end-4   4  CRC-32C (Castagnoli) of every byte before it
//
//	producer entry (19 + 24*B bytes)
//	     0     8  producerId     (>= 0)
//	     8     2  producerEpoch
//	    10     8  lastUpdateMs   (the nowMs of the last Update)
//	    18     1  batch count B  (1..5)
//	    19     …  B batches, oldest first, 24 bytes each:
//	                firstSeq   i32  (>= 0)
//	                lastSeq    i32  (firstSeq + lastOffset - baseOffset, wrapping after MaxInt32 to 0)
//	                baseOffset i64  (>= 0)
//	                lastOffset i64  (>= baseOffset)
//
// The encoding is canonical: a table has exactly one snapshot, so decoding
// and re-encoding any accepted snapshot reproduces its bytes.
package producerstate
