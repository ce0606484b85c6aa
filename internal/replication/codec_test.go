package replication

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/wire"
)

func sampleFetchResponse() []byte {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(fetchVersion)
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = "t"
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.HighWatermark, rp.RecordBatches = 7, []byte("not really batches")
	rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = 2, 5
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	return wire.AppendResponse(nil, 42, resp)[4:]
}

func TestDecodeResponse(t *testing.T) {
	frame := sampleFetchResponse()
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(fetchVersion)
	if err := decodeResponse(frame, 42, resp); err != nil {
		t.Fatal(err)
	}
	if p := resp.Topics[0].Partitions[0]; p.HighWatermark != 7 || p.DivergingEpoch.EndOffset != 5 {
		t.Fatalf("decoded %+v", p)
	}
	if err := decodeResponse(frame, 41, resp); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("wrong correlation ID: %v", err)
	}
	if err := decodeResponse(frame[:len(frame)-3], 42, resp); !errors.Is(err, ErrBadResponse) {
		t.Fatalf("truncated: %v", err)
	}
}

// FuzzDecodeResponse decodes arbitrary frames as a leader's Fetch
// response, then trims the records to whole batches: neither may panic,
// and what wholeBatches keeps is a prefix of the input.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(sampleFetchResponse())
	f.Add([]byte{0, 0, 0, 42, 0})
	f.Fuzz(func(t *testing.T, frame []byte) {
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(fetchVersion)
		if err := decodeResponse(frame, 42, resp); err != nil {
			return
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if w := wholeBatches(rp.RecordBatches); len(w) > len(rp.RecordBatches) {
					t.Fatal("wholeBatches grew its input")
				}
			}
		}
	})
}
