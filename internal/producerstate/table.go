package producerstate

import (
	"errors"
	"fmt"
	"math"

	"github.com/streambus/streambus/internal/recordbatch"
)

// BatchesRetained is how many batches per producer are remembered for
// duplicate detection. It matches Kafka's ProducerStateEntry
// NUM_BATCHES_TO_RETAIN and the client limit of five in-flight requests per
// connection under idempotence; it is part of the snapshot format.
const BatchesRetained = 5

// DefaultProducerIDExpirationMs is Kafka's default producer.id.expiration.ms
// (one day).
const DefaultProducerIDExpirationMs = 86400000

// Errors returned by Check. The broker maps them to the Kafka error codes in
// their names; they are returned wrapped with the producer and sequence
// details, so compare with errors.Is.
var (
	// ErrOutOfOrderSequence is OUT_OF_ORDER_SEQUENCE_NUMBER (45): the batch's
	// first sequence does not follow the producer's last one.
	ErrOutOfOrderSequence = errors.New("producerstate: out of order sequence number")
	// ErrInvalidProducerEpoch is INVALID_PRODUCER_EPOCH (47): the batch's
	// epoch is older than the producer's current one.
	ErrInvalidProducerEpoch = errors.New("producerstate: invalid producer epoch")
	// ErrInvalidSequence is INVALID_RECORD (87): a batch with a producer ID
	// but a negative base sequence, which Kafka's LogValidator rejects.
	ErrInvalidSequence = errors.New("producerstate: invalid sequence number")
)

// batchMeta describes one appended batch.
type batchMeta struct {
	firstSeq   int32
	lastSeq    int32
	baseOffset int64
	lastOffset int64
}

// entry is the state of one producer ID.
type entry struct {
	epoch        int16
	lastUpdateMs int64
	n            int                        // batches in use, 1..BatchesRetained
	batches      [BatchesRetained]batchMeta // oldest first
}

func (e *entry) last() batchMeta { return e.batches[e.n-1] }

// add appends b, dropping the oldest batch when all slots are in use.
func (e *entry) add(b batchMeta) {
	if e.n == BatchesRetained {
		copy(e.batches[:], e.batches[1:])
		e.n--
	}
	e.batches[e.n] = b
	e.n++
}

func (e *entry) find(firstSeq, lastSeq int32) (batchMeta, bool) {
	for _, b := range e.batches[:e.n] {
		if b.firstSeq == firstSeq && b.lastSeq == lastSeq {
			return b, true
		}
	}
	return batchMeta{}, false
}

// Table is the producer state of one partition. The zero value is not
// usable; call New.
//
// A Table is not safe for concurrent use: its owner (the partition log)
// calls it under the log's append lock.
type Table struct {
	producers map[int64]*entry
}

// New returns an empty table.
func New() *Table {
	return &Table{producers: make(map[int64]*entry)}
}

// Len is the number of producers with state.
func (t *Table) Len() int { return len(t.producers) }

// Producer reports a producer's current epoch and the last sequence of its
// latest batch.
func (t *Table) Producer(id int64) (epoch int16, lastSeq int32, ok bool) {
	e, ok := t.producers[id]
	if !ok {
		return 0, 0, false
	}
	return e.epoch, e.last().lastSeq, true
}

// Check decides whether the batch described by h may be appended. It does
// not change the table: after a successful append the caller must call
// Update before checking the next batch.
//
// dup reports an idempotent retry of a batch still cached; dupBase is then
// the base offset that batch was appended at, and the caller must not append
// again. Otherwise a nil error means the batch may be appended; the errors
// wrap ErrInvalidProducerEpoch, ErrOutOfOrderSequence or ErrInvalidSequence.
// Batches without a producer ID and control batches always pass.
func (t *Table) Check(h recordbatch.Header) (dupBase int64, dup bool, err error) {
	if !h.HasProducer() || h.IsControl() {
		return 0, false, nil
	}
	if h.BaseSequence < 0 {
		return 0, false, fmt.Errorf("%w: producer %d sent base sequence %d",
			ErrInvalidSequence, h.ProducerID, h.BaseSequence)
	}
	e, ok := t.producers[h.ProducerID]
	if !ok {
		return 0, false, nil
	}
	firstSeq, lastSeq := h.BaseSequence, h.LastSequence()
	if h.ProducerEpoch == e.epoch {
		if b, found := e.find(firstSeq, lastSeq); found {
			return b.baseOffset, true, nil
		}
	}
	if h.ProducerEpoch < e.epoch {
		return 0, false, fmt.Errorf("%w: producer %d sent epoch %d, current epoch is %d",
			ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, e.epoch)
	}
	if h.ProducerEpoch != e.epoch {
		if firstSeq != 0 {
			return 0, false, fmt.Errorf("%w: producer %d sent sequence %d with new epoch %d (current %d), expected 0",
				ErrOutOfOrderSequence, h.ProducerID, firstSeq, h.ProducerEpoch, e.epoch)
		}
		return 0, false, nil
	}
	if prev := e.last().lastSeq; !inSequence(prev, firstSeq) {
		return 0, false, fmt.Errorf("%w: producer %d epoch %d sent sequence %d, expected %d",
			ErrOutOfOrderSequence, h.ProducerID, h.ProducerEpoch, firstSeq, nextSeq(prev))
	}
	return 0, false, nil
}

// inSequence reports whether next directly follows last; sequences wrap
// from MaxInt32 to 0.
func inSequence(last, next int32) bool {
	return next == nextSeq(last)
}

func nextSeq(last int32) int32 {
	if last == math.MaxInt32 {
		return 0
	}
	return last + 1
}

// Update records the batch described by h, which has been appended at
// h.BaseOffset. nowMs is the time the producer was last active, used by
// Expire. A batch with a different epoch than the stored one replaces the
// producer's cached batches, as in Kafka.
//
// Update trusts h (it is also used to rebuild the table from the log, where
// Kafka skips sequence checks), but ignores batches that cannot come from an
// idempotent producer: no producer ID, control batches, a negative base
// sequence, base offset or last offset delta, or a last offset beyond
// MaxInt64.
func (t *Table) Update(h recordbatch.Header, nowMs int64) {
	if !h.HasProducer() || h.IsControl() || h.BaseSequence < 0 ||
		h.BaseOffset < 0 || h.LastOffsetDelta < 0 || h.BaseOffset > math.MaxInt64-int64(h.LastOffsetDelta) {
		return
	}
	e, ok := t.producers[h.ProducerID]
	if !ok {
		e = &entry{}
		t.producers[h.ProducerID] = e
	} else if e.epoch != h.ProducerEpoch {
		e.n = 0
	}
	e.epoch = h.ProducerEpoch
	e.lastUpdateMs = nowMs
	e.add(batchMeta{
		firstSeq:   h.BaseSequence,
		lastSeq:    h.LastSequence(),
		baseOffset: h.BaseOffset,
		lastOffset: h.LastOffset(),
	})
}

// Prune forgets producers whose latest batch lies entirely below
// logStartOffset, after retention or DeleteRecords removed the log head.
// Such a producer is unknown afterwards, so its next batch is accepted with
// any sequence.
func (t *Table) Prune(logStartOffset int64) {
	for id, e := range t.producers {
		if e.last().lastOffset < logStartOffset {
			delete(t.producers, id)
		}
	}
}

// Expire forgets producers that have not appended for at least
// producerIDExpirationMs (producer.id.expiration.ms, Kafka default
// DefaultProducerIDExpirationMs), measured from the nowMs of their last
// Update. Like Kafka, the bound is inclusive. A producer whose last update
// is later than nowMs (the clock stepped back) is kept.
func (t *Table) Expire(nowMs, producerIDExpirationMs int64) {
	for id, e := range t.producers {
		if idleAtLeast(nowMs, e.lastUpdateMs, producerIDExpirationMs) {
			delete(t.producers, id)
		}
	}
}

// idleAtLeast reports now-last >= d without overflowing: timestamps come
// from snapshots and clients and may be anywhere in the int64 range.
func idleAtLeast(now, last, d int64) bool {
	if now < last {
		return false
	}
	return d <= 0 || uint64(now)-uint64(last) >= uint64(d)
}
