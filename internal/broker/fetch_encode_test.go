package broker

import (
	"bytes"
	"io"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
	"pgregory.net/rapid"

	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/wire"
)

// flatten concatenates pieces as the connection writer would send them.
func flatten(t interface{ Fatalf(string, ...any) }, pieces []piece) []byte {
	var out []byte
	for _, pc := range pieces {
		if pc.chunk == nil {
			out = append(out, pc.b...)
			continue
		}
		b, err := io.ReadAll(io.NewSectionReader(pc.chunk.R, pc.chunk.Pos, pc.chunk.Len))
		if err != nil {
			t.Fatalf("read chunk: %v", err)
		}
		out = append(out, b...)
	}
	return out
}

// sliceOf splits data into two chunks of one in-memory "file".
func sliceOf(data []byte) *storage.Slice {
	r := bytes.NewReader(data)
	half := int64(len(data) / 2)
	return &storage.Slice{
		Chunks: []storage.Chunk{{R: r, Pos: 0, Len: half}, {R: r, Pos: half, Len: int64(len(data)) - half}},
		Size:   int64(len(data)),
	}
}

func TestEncodeFetchMatchesKmsg(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		v := rapid.Int16Range(4, 16).Draw(rt, "version")
		resp := kmsg.NewPtrFetchResponse()
		resp.SetVersion(v)
		resp.ThrottleMillis = rapid.Int32().Draw(rt, "throttle")
		resp.ErrorCode = rapid.Int16().Draw(rt, "err")
		resp.SessionID = rapid.Int32().Draw(rt, "session")
		var recs [][]*storage.Slice
		for i := range rapid.IntRange(0, 3).Draw(rt, "topics") {
			tp := kmsg.NewFetchResponseTopic()
			tp.Topic = rapid.StringN(0, 20, -1).Draw(rt, "topic")
			copy(tp.TopicID[:], rapid.SliceOfN(rapid.Byte(), 16, 16).Draw(rt, "id"))
			recs = append(recs, nil)
			for range rapid.IntRange(0, 3).Draw(rt, "parts") {
				p := kmsg.NewFetchResponseTopicPartition()
				p.Partition = rapid.Int32().Draw(rt, "p")
				p.ErrorCode = rapid.Int16().Draw(rt, "perr")
				p.HighWatermark = rapid.Int64().Draw(rt, "hw")
				p.LastStableOffset = rapid.Int64().Draw(rt, "lso")
				p.LogStartOffset = rapid.Int64().Draw(rt, "ls")
				if rapid.Bool().Draw(rt, "aborted") {
					p.AbortedTransactions = []kmsg.FetchResponseTopicPartitionAbortedTransaction{{ProducerID: 7, FirstOffset: 9}}
				}
				p.PreferredReadReplica = rapid.Int32().Draw(rt, "rr")
				if rapid.Bool().Draw(rt, "leader") {
					p.CurrentLeader.LeaderID, p.CurrentLeader.LeaderEpoch = 3, 4
				}
				if rapid.Bool().Draw(rt, "diverging") {
					p.DivergingEpoch.Epoch, p.DivergingEpoch.EndOffset = 5, 6
				}
				var s *storage.Slice
				switch rapid.IntRange(0, 2).Draw(rt, "records") {
				case 0: // null
				case 1:
					p.RecordBatches = []byte{}
				case 2:
					data := rapid.SliceOfN(rapid.Byte(), 1, 300).Draw(rt, "data")
					p.RecordBatches = data
					s = sliceOf(data)
				}
				tp.Partitions = append(tp.Partitions, p)
				recs[i] = append(recs[i], s)
			}
			resp.Topics = append(resp.Topics, tp)
		}
		if v >= 16 && rapid.Bool().Draw(rt, "brokers") {
			resp.Brokers = []kmsg.FetchResponseBroker{{NodeID: 1, Host: "h", Port: 9092, Rack: kmsg.StringPtr("r")}}
		}
		want := wire.AppendResponse(nil, 99, resp)
		got := flatten(rt, encodeFetch(99, resp, recs))
		if !bytes.Equal(got, want) {
			rt.Fatalf("v%d mismatch\n got % x\nwant % x", v, got, want)
		}
	})
}
