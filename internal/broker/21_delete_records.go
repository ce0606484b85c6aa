package broker

// DeleteRecords v0–2: moves each partition's log start offset forward
// (offset -1 means the high watermark); whole segments below it are
// removed. Offsets beyond the high watermark are OFFSET_OUT_OF_RANGE.

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (b *Broker) handleDeleteRecords(req *kmsg.DeleteRecordsRequest) *kmsg.DeleteRecordsResponse {
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	img := b.meta.Image()
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LowWatermark = -1
			p, _, err := b.lookup(img, rt.Topic, rp.Partition)
			if err == nil {
				off := rp.Offset
				hw := p.highWatermark()
				switch {
				case off == -1:
					off = hw
				case off < 0 || off > hw:
					err = kerr.OffsetOutOfRange
				}
				if err == nil {
					sp.LowWatermark, err = p.log.DeleteRecordsBefore(off)
				}
			}
			sp.ErrorCode = errCode(err)
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return resp
}
