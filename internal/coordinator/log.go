package coordinator

import (
	"fmt"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/storage"
)

// loadReadBytes is how much load asks the log for per read (the first
// batch comes whole even if larger).
const loadReadBytes = 1 << 20

// load replays the shard's records, from the log start offset to the high
// watermark, into the Machine.
func (r *runner[Req, Resp]) load() error {
	l := r.shard.Log
	// Records appended but not yet fsynced (by a predecessor, or before a
	// failed append) lie above the high watermark of a log in FlushOnAck
	// mode: make them durable first so that the Machine's state is the
	// whole log it appends to. A log that cannot fsync any more still
	// loads what is durable; its appends fail and take the reload path.
	if err := l.Sync(l.LogEndOffset()); err != nil {
		r.log.Warn(r.cfg.Name+": fsync before load", "err", err)
	}
	off := l.LogStartOffset()
	var buf []byte
	for {
		hw := l.HighWatermark()
		if off >= hw {
			return nil
		}
		data, err := readAt(l, off, hw, &buf)
		if err != nil {
			return fmt.Errorf("coordinator: %s-%d: read at offset %d: %w", r.cfg.Topic, r.shard.Index, off, err)
		}
		if len(data) == 0 {
			return nil
		}
		if off, err = r.loadBatches(data, off); err != nil {
			return err
		}
	}
}

// readAt reads the whole batches from off up to hw (at most about
// loadReadBytes) into *buf, grown as needed.
func readAt(l *storage.Log, off, hw int64, buf *[]byte) ([]byte, error) {
	s, err := l.Read(off, loadReadBytes, hw)
	if err != nil {
		return nil, err
	}
	defer s.Release()
	if int64(cap(*buf)) < s.Size {
		*buf = make([]byte, s.Size)
	}
	data := (*buf)[:s.Size]
	n := 0
	for _, ch := range s.Chunks {
		if _, err := ch.R.ReadAt(data[n:n+int(ch.Len)], ch.Pos); err != nil {
			return nil, err
		}
		n += int(ch.Len)
	}
	return data, nil
}

// loadBatches feeds the records of the batches in data, from offset off on,
// to the Machine, and returns the offset after the last batch. A record
// the Machine rejects is logged and skipped; a batch that does not decode
// is an error.
func (r *runner[Req, Resp]) loadBatches(data []byte, off int64) (int64, error) {
	for len(data) > 0 {
		h, err := recordbatch.ParseHeader(data)
		if err == nil && h.Size() > int64(len(data)) {
			err = recordbatch.ErrTruncated
		}
		if err != nil {
			return off, fmt.Errorf("coordinator: %s-%d at offset %d: %w", r.cfg.Topic, r.shard.Index, off, err)
		}
		batch := data[:h.Size()]
		data = data[h.Size():]
		if h.LastOffset() < off {
			continue // a batch before the asked offset
		}
		off = h.LastOffset() + 1
		if h.IsControl() {
			continue
		}
		err = recordbatch.ForEachRecord(batch, r.cfg.MaxDecompressedBytes, func(rec *recordbatch.Record) error {
			if err := r.m.Load(rec.Key, rec.Value); err != nil {
				r.log.Warn(r.cfg.Name+": skipping a bad record", "offset", h.BaseOffset+int64(rec.OffsetDelta), "err", err)
			}
			return nil
		})
		if err != nil {
			return off, fmt.Errorf("coordinator: %s-%d batch at offset %d: %w", r.cfg.Topic, r.shard.Index, h.BaseOffset, err)
		}
	}
	return off, nil
}

// apply carries out one Output: it appends the records, then delivers the
// replies once the records are durable, off the runner goroutine so the
// next step need not wait. It returns false when the records could not be
// appended: their replies have failed and the Machine is ahead of the log.
func (r *runner[Req, Resp]) apply(out Output[Resp]) bool {
	ds := r.takeReplies(out.Replies)
	if len(out.Records) == 0 {
		deliver(ds, nil)
		return true
	}
	res, err := r.persist(out.Records)
	if err != nil {
		r.log.Error(r.cfg.Name+": persisting records", "err", err)
		deliver(ds, err)
		return false
	}
	l, waitRepl := r.shard.Log, r.shard.WaitReplicated
	r.rt.goFunc(func() {
		upTo := res.LastOffset + 1
		err := l.SyncAppend(res)
		if err != nil {
			r.log.Error(r.cfg.Name+": fsync", "err", err)
			select {
			case r.resync <- struct{}{}:
			default:
			}
		} else if waitRepl != nil {
			// Answer once the ISR has the records, so that what a
			// reply confirms survives a leader change.
			if err = waitRepl(upTo); err != nil {
				r.log.Warn(r.cfg.Name+": records not replicated", "err", err)
			}
		}
		deliver(ds, err)
	})
	return true
}

type delivery[Resp any] struct {
	reply func(Resp, bool)
	resp  Resp
}

// takeReplies matches replies with the requests waiting for them; replies
// to no waiting request are dropped.
func (r *runner[Req, Resp]) takeReplies(rs []Reply[Resp]) []delivery[Resp] {
	ds := make([]delivery[Resp], 0, len(rs))
	for _, rp := range rs {
		if r.debug {
			r.log.Debug(r.cfg.Name+" reply", "to", rp.To, "resp", fmt.Sprintf("%+v", rp.Resp))
		}
		if fn := r.waiting[rp.To]; fn != nil {
			delete(r.waiting, rp.To)
			ds = append(ds, delivery[Resp]{fn, rp.Resp})
		}
	}
	return ds
}

// deliver sends the replies, or fails them all if err is not nil.
func deliver[Resp any](ds []delivery[Resp], err error) {
	var zero Resp
	for _, d := range ds {
		if err != nil {
			d.reply(zero, false)
		} else {
			d.reply(d.resp, true)
		}
	}
}

// persist appends records as one uncompressed batch in the shard's leader
// epoch and returns the offset after it.
func (r *runner[Req, Resp]) persist(recs []Record) (storage.AppendResult, error) {
	now := r.cfg.Now().UnixMilli()
	h := recordbatch.Header{Magic: 2, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, BaseTimestamp: now, MaxTimestamp: now}
	rs := make([]recordbatch.Record, len(recs))
	for i, rec := range recs {
		rs[i] = recordbatch.Record{OffsetDelta: int32(i), Key: rec.Key, Value: rec.Value}
	}
	batch, err := recordbatch.Build(h, rs, recordbatch.CodecNone)
	if err != nil {
		return storage.AppendResult{}, fmt.Errorf("coordinator: %s-%d: build batch: %w", r.cfg.Topic, r.shard.Index, err)
	}
	res, err := r.shard.Log.Append(batch, storage.AppendInput{LeaderEpoch: r.shard.LeaderEpoch, NowMs: now})
	if err != nil {
		return res, fmt.Errorf("coordinator: %s-%d: append: %w", r.cfg.Topic, r.shard.Index, err)
	}
	return res, nil
}
