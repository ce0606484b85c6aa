package broker

// Produce v3–11 (v0–2 are advertised so that librdkafka keeps compressing,
// and answered per partition with UNSUPPORTED_VERSION: they carry old
// message formats). Each partition's records must be whole, CRC-valid
// magic-2 batches, each no larger than max.message.bytes (else
// MESSAGE_TOO_LARGE) and together, after any recompression to the topic's
// compression.type, no larger than segment.bytes (else
// RECORD_LIST_TOO_LARGE), the two checks and their order being Kafka's; the
// log assigns offsets and checks idempotent sequences. acks=0 gets no
// response; with acks=1 or all and log.flush.mode=ack the answer waits until
// the appended bytes are fsynced (group commit in the log), so an
// acknowledged record survives a crash. The appends happen on the
// connection's reader goroutine, in request order, so pipelined idempotent
// batches stay in sequence; only the fsync wait is asynchronous.

import (
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
	"github.com/streambus/streambus/internal/partitions"
	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/storage"
)

func (b *Broker) handleProduce(rc *reqContext, req *kmsg.ProduceRequest) result {
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	img := b.host.Image()
	now := b.nowMs()
	type syncWait struct {
		part       *partitions.Partition
		res        storage.AppendResult
		sp         *kmsg.ProduceResponseTopicPartition
		replicated bool // acks=all on a replicated partition: wait for the ISR
	}
	var waits []syncWait
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		for i, rp := range rt.Partitions {
			sp := &st.Partitions[i]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			if req.Version < 3 {
				sp.ErrorCode = kerr.UnsupportedVersion.Code
				continue
			}
			part, mp, err := b.lookup(img, rt.Topic, rp.Partition)
			var res storage.AppendResult
			replicated := false
			if err == nil && req.Acks == -1 && part.LeaderState() != nil {
				replicated = true
				err = part.CheckReplicas(part.Config().MinInsyncReplicas)
			}
			if err == nil && b.cfg.Disk.Low() {
				err = fmt.Errorf("%w: free space on the data directory is below log.dir.min.free.bytes (%d bytes)", storage.ErrStorage, b.cfg.Disk.Reserve())
			}
			if err == nil {
				res, err = b.appendRecords(part, mp, rp.Records, now)
			}
			if err != nil {
				sp.ErrorCode = errCode(err)
				if sp.ErrorCode == kerr.NotLeaderForPartition.Code && mp != nil && req.Version >= 10 {
					// KIP-951: tell the client where the partition went, so
					// it can move without a metadata round trip.
					sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = mp.Leader, mp.LeaderEpoch
					addProduceLeaderEndpoint(img, resp, mp.Leader)
				}
				if sp.ErrorCode == kerr.UnknownServerError.Code {
					b.log.Error("produce", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				}
				if req.Version >= 8 {
					sp.ErrorMessage = errMessage(err)
				}
				continue
			}
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = res.BaseOffset, res.LogAppendTime, res.LogStartOffset
			if (b.cfg.FlushOnAck && req.Acks != 0) || replicated {
				waits = append(waits, syncWait{part, res, sp, replicated})
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	if req.Acks == 0 {
		return result{now: response{none: true}}
	}
	if len(waits) == 0 {
		return answer(resp)
	}
	d := newDeferred()
	b.goFunc(func() {
		timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
		for _, w := range waits {
			if b.cfg.FlushOnAck {
				if err := w.part.Log().SyncAppend(w.res); err != nil {
					b.log.Error("fsync", "partition", w.part.ID(), "err", err)
					w.sp.ErrorCode = kerr.KafkaStorageError.Code
					w.sp.BaseOffset = -1
					continue
				}
			}
			if w.replicated {
				if err := b.host.WaitReplicated(w.part, w.res.LastOffset+1, w.part.Config().MinInsyncReplicas, timeout); err != nil {
					w.sp.ErrorCode = errCode(err)
					if !errors.Is(err, partitions.ErrNotEnoughReplicasAfterAppend) {
						w.sp.BaseOffset = -1
					}
				}
			}
		}
		d.answer(resp)
	})
	return d.result()
}

// appendRecords validates one partition's records and appends them.
func (b *Broker) appendRecords(p *partitions.Partition, mp *metadata.Partition, records []byte, now int64) (storage.AppendResult, error) {
	cfg := p.Config()
	if len(records) == 0 {
		return storage.AppendResult{}, kerr.InvalidRecord
	}
	batches, err := recordbatch.Split(records)
	if err != nil {
		return storage.AppendResult{}, err
	}
	for _, batch := range batches {
		if int64(len(batch)) > int64(cfg.MaxMessageBytes) {
			return storage.AppendResult{}, fmt.Errorf("%w: a batch of %d bytes exceeds max.message.bytes %d",
				kerr.MessageTooLarge, len(batch), cfg.MaxMessageBytes)
		}
		h, _ := recordbatch.ParseHeader(batch)
		if h.IsControl() || h.IsTransactional() {
			// No transaction coordinator: transactional and control batches
			// cannot belong to a transaction this broker knows.
			return storage.AppendResult{}, kerr.InvalidRecord
		}
		if err := validateRecords(batch, h, cfg.Log.Compact, b.cfg.MaxDecompressedBytes); err != nil {
			return storage.AppendResult{}, err
		}
	}
	if cfg.CompressionType != "producer" {
		if records, err = recompress(batches, cfg.CompressionType, b.cfg.MaxDecompressedBytes); err != nil {
			return storage.AppendResult{}, err
		}
	}
	// One append goes into one segment, so it cannot be larger than one.
	if int64(len(records)) > cfg.Log.SegmentBytes {
		return storage.AppendResult{}, fmt.Errorf("%w: an append of %d bytes exceeds segment.bytes %d",
			kerr.RecordListTooLarge, len(records), cfg.Log.SegmentBytes)
	}
	// The log checks again against its own copy of segment.bytes, which a
	// config change may have lowered since cfg was loaded
	// (storage.ErrRecordTooLarge, RECORD_LIST_TOO_LARGE in errCode).
	return p.Log().Append(records, storage.AppendInput{LeaderEpoch: mp.LeaderEpoch, NowMs: now})
}

// validateRecords decodes every record of a batch (decompressing within
// the bound), as Kafka's LogValidator does, so that a batch whose CRC is
// right but whose records are not is refused rather than stored and served:
// the records must fill the batch exactly, with offset deltas 0, 1, 2, …
// matching the header. A compacted topic also refuses null keys: it cannot
// keep a record it cannot compact (INVALID_RECORD).
func validateRecords(batch []byte, h recordbatch.Header, needKeys bool, maxDecompressed int) error {
	var i int32
	err := recordbatch.ForEachRecord(batch, maxDecompressed, func(r *recordbatch.Record) error {
		if r.OffsetDelta != i {
			return kerr.InvalidRecord
		}
		if needKeys && r.Key == nil {
			return kerr.InvalidRecord
		}
		i++
		return nil
	})
	if err == nil && (i == 0 || i-1 != h.LastOffsetDelta) {
		return kerr.InvalidRecord
	}
	return err
}

// recompress rewrites batches whose codec differs from the topic's
// compression.type, as Kafka does.
func recompress(batches [][]byte, compression string, maxDecompressed int) ([]byte, error) {
	want := codecFor(compression)
	var out []byte
	for _, batch := range batches {
		h, _ := recordbatch.ParseHeader(batch)
		if h.Codec() == want {
			out = append(out, batch...)
			continue
		}
		recs, err := recordbatch.Records(batch, maxDecompressed)
		if err != nil {
			return nil, err
		}
		nb, err := recordbatch.Build(h, recs, want)
		if err != nil {
			return nil, err
		}
		out = append(out, nb...)
	}
	return out, nil
}

func codecFor(compression string) recordbatch.Codec {
	switch compression {
	case "gzip":
		return recordbatch.CodecGzip
	case "snappy":
		return recordbatch.CodecSnappy
	case "lz4":
		return recordbatch.CodecLZ4
	case "zstd":
		return recordbatch.CodecZstd
	}
	return recordbatch.CodecNone
}

// addProduceLeaderEndpoint lists a leader's endpoint in a Produce response
// (KIP-951 NodeEndpoints) once.
func addProduceLeaderEndpoint(img *metadata.Image, resp *kmsg.ProduceResponse, leader int32) {
	br, ok := img.Brokers[leader]
	if !ok {
		return
	}
	for _, b := range resp.Brokers {
		if b.NodeID == leader {
			return
		}
	}
	resp.Brokers = append(resp.Brokers, kmsg.ProduceResponseBroker{NodeID: br.NodeID, Host: br.Host, Port: br.Port, Rack: br.Rack})
}
