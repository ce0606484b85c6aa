package broker

// encodeFetch writes a Fetch response frame as pieces: encoded bytes
// interleaved with ranges of segment files, so that record batches go from
// the page cache to the socket with sendfile(2) instead of through a
// buffer. kmsg cannot encode around bytes it does not hold, so this file
// mirrors kmsg's FetchResponse.AppendTo field by field for v4–v16;
// TestEncodeFetchMatchesKmsg checks the two agree byte for byte.

import (
	"encoding/binary"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/storage"
)

type fetchEncoder struct {
	flex   bool
	buf    []byte
	pieces []piece
}

func (e *fetchEncoder) i16(v int16) { e.buf = binary.BigEndian.AppendUint16(e.buf, uint16(v)) }
func (e *fetchEncoder) i32(v int32) { e.buf = binary.BigEndian.AppendUint32(e.buf, uint32(v)) }
func (e *fetchEncoder) i64(v int64) { e.buf = binary.BigEndian.AppendUint64(e.buf, uint64(v)) }
func (e *fetchEncoder) uvarint(v uint64) {
	e.buf = binary.AppendUvarint(e.buf, v)
}

func (e *fetchEncoder) arrayLen(n int) {
	if e.flex {
		e.uvarint(uint64(n) + 1)
	} else {
		e.i32(int32(n))
	}
}

func (e *fetchEncoder) nullableArrayLen(n int, null bool) {
	switch {
	case null && e.flex:
		e.uvarint(0)
	case null:
		e.i32(-1)
	default:
		e.arrayLen(n)
	}
}

func (e *fetchEncoder) str(s string) {
	if e.flex {
		e.uvarint(uint64(len(s)) + 1)
	} else {
		e.i16(int16(len(s)))
	}
	e.buf = append(e.buf, s...)
}

func (e *fetchEncoder) nullableStr(s *string) {
	if s != nil {
		e.str(*s)
		return
	}
	if e.flex {
		e.uvarint(0)
	} else {
		e.i16(-1)
	}
}

// records writes a records field: the length, then the slice's file ranges
// as their own pieces.
func (e *fetchEncoder) records(s *storage.Slice) {
	size := int64(0)
	if s != nil {
		size = s.Size
	}
	if e.flex {
		e.uvarint(uint64(size) + 1)
	} else {
		e.i32(int32(size))
	}
	if size == 0 {
		return
	}
	e.pieces = append(e.pieces, piece{b: e.buf})
	e.buf = nil
	for i := range s.Chunks {
		e.pieces = append(e.pieces, piece{chunk: &s.Chunks[i]})
	}
}

// taggedStruct writes one tagged field whose body fn encodes.
func (e *fetchEncoder) taggedStruct(tag uint64, fn func(*fetchEncoder)) {
	body := &fetchEncoder{flex: e.flex}
	fn(body)
	e.uvarint(tag)
	e.uvarint(uint64(len(body.buf)))
	e.buf = append(e.buf, body.buf...)
}

// encodeFetch encodes a whole response frame (size, correlation ID, header
// tags, body). recs[i][j] holds the records of resp.Topics[i].Partitions[j];
// the responses' own RecordBatches fields are ignored.
func encodeFetch(corr int32, resp *kmsg.FetchResponse, recs [][]*storage.Slice) []piece {
	v := resp.Version
	e := &fetchEncoder{flex: v >= 12}
	e.i32(0) // size, patched below
	e.i32(corr)
	if e.flex {
		e.uvarint(0)
	}
	if v >= 1 {
		e.i32(resp.ThrottleMillis)
	}
	if v >= 7 {
		e.i16(resp.ErrorCode)
		e.i32(resp.SessionID)
	}
	e.arrayLen(len(resp.Topics))
	for i := range resp.Topics {
		t := &resp.Topics[i]
		if v <= 12 {
			e.str(t.Topic)
		} else {
			e.buf = append(e.buf, t.TopicID[:]...)
		}
		e.arrayLen(len(t.Partitions))
		for j := range t.Partitions {
			p := &t.Partitions[j]
			e.i32(p.Partition)
			e.i16(p.ErrorCode)
			e.i64(p.HighWatermark)
			if v >= 4 {
				e.i64(p.LastStableOffset)
			}
			if v >= 5 {
				e.i64(p.LogStartOffset)
			}
			if v >= 4 {
				e.nullableArrayLen(len(p.AbortedTransactions), p.AbortedTransactions == nil)
				for _, a := range p.AbortedTransactions {
					e.i64(a.ProducerID)
					e.i64(a.FirstOffset)
					if e.flex {
						e.uvarint(0)
					}
				}
			}
			if v >= 11 {
				e.i32(p.PreferredReadReplica)
			}
			var s *storage.Slice
			if i < len(recs) && j < len(recs[i]) {
				s = recs[i][j]
			}
			if s == nil && p.RecordBatches == nil {
				if e.flex {
					e.uvarint(0)
				} else {
					e.i32(-1)
				}
			} else {
				e.records(s)
			}
			if e.flex {
				e.partitionTags(p)
			}
		}
		if e.flex {
			e.uvarint(0)
		}
	}
	if e.flex {
		if len(resp.Brokers) > 0 {
			e.uvarint(1)
			e.taggedStruct(0, func(b *fetchEncoder) {
				b.arrayLen(len(resp.Brokers))
				for _, br := range resp.Brokers {
					b.i32(br.NodeID)
					b.str(br.Host)
					b.i32(br.Port)
					b.nullableStr(br.Rack)
					b.uvarint(0)
				}
			})
		} else {
			e.uvarint(0)
		}
	}
	e.pieces = append(e.pieces, piece{b: e.buf})
	total := int64(0)
	for _, pc := range e.pieces {
		if pc.chunk != nil {
			total += pc.chunk.Len
		} else {
			total += int64(len(pc.b))
		}
	}
	binary.BigEndian.PutUint32(e.pieces[0].b, uint32(total-4))
	return e.pieces
}

func (e *fetchEncoder) partitionTags(p *kmsg.FetchResponseTopicPartition) {
	n := 0
	diverging := p.DivergingEpoch.Epoch != -1 || p.DivergingEpoch.EndOffset != -1
	leader := p.CurrentLeader.LeaderID != -1 || p.CurrentLeader.LeaderEpoch != -1
	snapshot := p.SnapshotID.EndOffset != -1 || p.SnapshotID.Epoch != -1
	for _, b := range []bool{diverging, leader, snapshot} {
		if b {
			n++
		}
	}
	e.uvarint(uint64(n))
	if diverging {
		e.taggedStruct(0, func(b *fetchEncoder) {
			b.i32(p.DivergingEpoch.Epoch)
			b.i64(p.DivergingEpoch.EndOffset)
			b.uvarint(0)
		})
	}
	if leader {
		e.taggedStruct(1, func(b *fetchEncoder) {
			b.i32(p.CurrentLeader.LeaderID)
			b.i32(p.CurrentLeader.LeaderEpoch)
			b.uvarint(0)
		})
	}
	if snapshot {
		e.taggedStruct(2, func(b *fetchEncoder) {
			b.i64(p.SnapshotID.EndOffset)
			b.i32(p.SnapshotID.Epoch)
			b.uvarint(0)
		})
	}
}
