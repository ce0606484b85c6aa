package storage

import (
	"encoding/binary"
	"fmt"
)

// epochEntry says that leader epoch Epoch wrote its first batch at
// StartOffset. Entries are kept in increasing epoch and non-decreasing
// start offset order, as in Kafka's LeaderEpochFileCache.
type epochEntry struct {
	Epoch       int32
	StartOffset int64
}

func encodeEpochs(es []epochEntry) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(es)))
	for _, e := range es {
		b = binary.BigEndian.AppendUint32(b, uint32(e.Epoch))
		b = binary.BigEndian.AppendUint64(b, uint64(e.StartOffset))
	}
	return b
}

func decodeEpochs(b []byte) ([]epochEntry, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("%w: leader epoch checkpoint too short", ErrCorrupt)
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(len(b)-4) != uint64(n)*12 {
		return nil, fmt.Errorf("%w: leader epoch checkpoint count %d for %d bytes", ErrCorrupt, n, len(b))
	}
	es := make([]epochEntry, n)
	for i := range es {
		p := b[4+12*i:]
		es[i] = epochEntry{Epoch: int32(binary.BigEndian.Uint32(p)), StartOffset: int64(binary.BigEndian.Uint64(p[4:]))}
		if es[i].Epoch < 0 || es[i].StartOffset < 0 ||
			(i > 0 && (es[i].Epoch <= es[i-1].Epoch || es[i].StartOffset < es[i-1].StartOffset)) {
			return nil, fmt.Errorf("%w: leader epoch checkpoint not monotonic at entry %d", ErrCorrupt, i)
		}
	}
	return es, nil
}

// epochsAssign records that epoch starts at offset, returning the new
// entries and whether they changed. Older epochs never replace newer ones.
func epochsAssign(es []epochEntry, epoch int32, offset int64) ([]epochEntry, bool) {
	if epoch < 0 {
		return es, false
	}
	if n := len(es); n > 0 && es[n-1].Epoch >= epoch {
		return es, false
	}
	return append(es, epochEntry{Epoch: epoch, StartOffset: offset}), true
}

// epochsTruncateEnd drops entries starting at or after endOffset (log
// truncation).
func epochsTruncateEnd(es []epochEntry, endOffset int64) ([]epochEntry, bool) {
	n := len(es)
	for n > 0 && es[n-1].StartOffset >= endOffset {
		n--
	}
	return es[:n:n], n != len(es)
}

// epochsTruncateStart moves the start of the log forward: entries wholly
// before startOffset are dropped, and the last of them is kept starting at
// startOffset, as Kafka does.
func epochsTruncateStart(es []epochEntry, startOffset int64) ([]epochEntry, bool) {
	i := 0
	for i < len(es) && es[i].StartOffset <= startOffset {
		i++
	}
	if i == 0 {
		return es, false
	}
	out := append([]epochEntry{{Epoch: es[i-1].Epoch, StartOffset: startOffset}}, es[i:]...)
	changed := i > 1 || es[0].StartOffset != startOffset
	return out, changed
}

// epochsEndOffset answers OffsetForLeaderEpoch for requested, following
// Kafka's LeaderEpochFileCache.endOffsetFor: for the latest epoch the log
// end offset; otherwise the start offset of the first later epoch, paired
// with the largest known epoch not above requested (or requested itself if
// it precedes every known epoch); (-1, -1) when unknown.
func epochsEndOffset(es []epochEntry, requested int32, logEnd int64) (int32, int64) {
	if requested < 0 || len(es) == 0 {
		return -1, -1
	}
	if es[len(es)-1].Epoch == requested {
		return requested, logEnd
	}
	hi := -1
	for i, e := range es {
		if e.Epoch > requested {
			hi = i
			break
		}
	}
	if hi < 0 {
		return -1, -1
	}
	if hi == 0 {
		return requested, es[0].StartOffset
	}
	return es[hi-1].Epoch, es[hi].StartOffset
}
