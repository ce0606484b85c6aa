package broker

// ListOffsets v1–8: earliest (-2), latest (-1, the high watermark, which is
// also the last stable offset until transactions exist; for a follower's
// request, replica_id ≥ 0, the leader's own log end), max timestamp (-3,
// KIP-734), earliest local (-4) and by timestamp (the first offset whose
// timestamp is at or after the one asked; -1 when there is none).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/metadata"
)

func (b *Broker) handleListOffsets(req *kmsg.ListOffsetsRequest) *kmsg.ListOffsetsResponse {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	img := b.host.Image()
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.Timestamp, sp.Offset, sp.LeaderEpoch = -1, -1, -1
			p, mp, err := b.lookup(img, rt.Topic, rp.Partition)
			if err == nil {
				err = checkLeaderEpoch(rp.CurrentLeaderEpoch, mp)
			}
			if err != nil {
				sp.ErrorCode = errCode(err)
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			sp.LeaderEpoch = mp.LeaderEpoch
			l := p.Log()
			switch rp.Timestamp {
			case -1: // latest
				sp.Offset = p.HighWatermark()
				if req.ReplicaID >= 0 {
					// A follower (replica fetcher) asks for the leader's own
					// end, not the consumers' high watermark.
					sp.Offset = l.HighWatermark()
				}
			case -2, -4: // earliest, earliest local
				sp.Offset = l.LogStartOffset()
			case -3: // max timestamp
				off, ts := l.MaxTimestamp()
				sp.Offset, sp.Timestamp = off, ts
			default:
				if rp.Timestamp < 0 {
					sp.ErrorCode = kerr.InvalidRequest.Code
					break
				}
				if off, ts, ok := l.OffsetForTimestamp(rp.Timestamp); ok {
					sp.Offset, sp.Timestamp = off, ts
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}

// checkLeaderEpoch validates a client's current leader epoch (-1: none).
func checkLeaderEpoch(current int32, mp *metadata.Partition) error {
	switch {
	case current < 0 || current == mp.LeaderEpoch:
		return nil
	case current < mp.LeaderEpoch:
		return kerr.FencedLeaderEpoch
	default:
		return kerr.UnknownLeaderEpoch
	}
}
