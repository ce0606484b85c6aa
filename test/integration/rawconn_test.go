package integration

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn is a bare Kafka connection for sending exactly the bytes a test
// wants, valid or not. Requests are built with kmsg; nothing is negotiated.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	corr int32
}

func dialRaw(t testing.TB, b *broker) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", b.Addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial broker: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// frame returns req as a complete request (size prefix, header, body) with
// the next correlation id.
func (r *rawConn) frame(req kmsg.Request) []byte {
	r.corr++
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("streambus-integration")).AppendRequest(nil, req, r.corr)
}

// write sends raw bytes; a broker that already closed the connection may
// make this fail, which callers that expect a close tolerate.
func (r *rawConn) write(p []byte) error {
	r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.c.Write(p)
	return err
}

func (r *rawConn) mustWrite(p []byte) {
	r.t.Helper()
	if err := r.write(p); err != nil {
		r.t.Fatalf("write to broker: %v", err)
	}
}

// readFrame reads one size-prefixed response frame and returns what follows
// the size.
func (r *rawConn) readFrame(timeout time.Duration) ([]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(timeout))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return nil, err
	}
	n := int32(binary.BigEndian.Uint32(size[:]))
	if n < 4 || n > 64<<20 {
		return nil, fmt.Errorf("response frame size %d", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r.c, buf); err != nil {
		return nil, fmt.Errorf("read response body: %w", err)
	}
	return buf, nil
}

// roundTrip sends req and decodes the response (kmsg types, the request's
// version), failing the test on any transport or decode error.
func (r *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	r.mustWrite(r.frame(req))
	resp, err := r.readResponse(req)
	if err != nil {
		r.t.Fatalf("%T v%d: %v", req, req.GetVersion(), err)
	}
	return resp
}

// readResponse reads and decodes the response to req.
func (r *rawConn) readResponse(req kmsg.Request) (kmsg.Response, error) {
	buf, err := r.readFrame(10 * time.Second)
	if err != nil {
		return nil, err
	}
	if corr := int32(binary.BigEndian.Uint32(buf)); corr != r.corr {
		return nil, fmt.Errorf("correlation id %d, want %d", corr, r.corr)
	}
	body := buf[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	// ApiVersions responses always use header v0 (no tagged fields).
	if resp.IsFlexible() && req.Key() != 18 {
		if body, err = skipTags(body); err != nil {
			return nil, fmt.Errorf("response header: %w", err)
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %T v%d: %w", resp, resp.GetVersion(), err)
	}
	return resp, nil
}

// skipTags skips a tagged-field section.
func skipTags(b []byte) ([]byte, error) {
	n, l := binary.Uvarint(b)
	if l <= 0 {
		return nil, errors.New("bad tag count")
	}
	b = b[l:]
	for i := uint64(0); i < n; i++ {
		if _, l = binary.Uvarint(b); l <= 0 {
			return nil, errors.New("bad tag key")
		}
		b = b[l:]
		size, l := binary.Uvarint(b)
		if l <= 0 || uint64(len(b)-l) < size {
			return nil, errors.New("bad tag size")
		}
		b = b[l+int(size):]
	}
	return b, nil
}

// expectClosed asserts that the broker closes the connection within d,
// sending nothing first. It returns how long the close took.
func (r *rawConn) expectClosed(d time.Duration) time.Duration {
	r.t.Helper()
	start := time.Now()
	r.c.SetReadDeadline(start.Add(d))
	var buf [512]byte
	n, err := r.c.Read(buf[:])
	took := time.Since(start)
	switch {
	case n > 0:
		r.t.Fatalf("broker sent %d bytes (% x) instead of closing the connection", n, buf[:n])
	case isTimeout(err):
		r.t.Fatalf("broker did not close the connection within %v", d)
	case err == nil:
		r.t.Fatalf("read returned nothing and no error")
	case !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET):
		r.t.Fatalf("unexpected read error waiting for close: %v", err)
	}
	return took
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// recordBatch encodes a valid magic-2 record batch of uncompressed records
// with the given timestamps (one record per timestamp, values "v<i>").
func recordBatch(timestamps ...int64) []byte {
	var records []byte
	for i, ts := range timestamps {
		rec := kmsg.Record{
			TimestampDelta64: ts - timestamps[0],
			OffsetDelta:      int32(i),
			Key:              fmt.Appendf(nil, "k%d", i),
			Value:            fmt.Appendf(nil, "v%d", i),
		}
		// Length counts the bytes after itself; with Length 0 its varint
		// takes exactly one byte.
		rec.Length = int32(len(rec.AppendTo(nil)) - 1)
		records = rec.AppendTo(records)
	}
	maxTS := timestamps[0]
	for _, ts := range timestamps {
		maxTS = max(maxTS, ts)
	}
	batch := kmsg.RecordBatch{
		FirstOffset:          0,
		PartitionLeaderEpoch: -1,
		Magic:                2,
		LastOffsetDelta:      int32(len(timestamps) - 1),
		FirstTimestamp:       timestamps[0],
		MaxTimestamp:         maxTS,
		ProducerID:           -1,
		ProducerEpoch:        -1,
		FirstSequence:        -1,
		NumRecords:           int32(len(timestamps)),
		Records:              records,
	}
	raw := batch.AppendTo(nil)
	binary.BigEndian.PutUint32(raw[8:], uint32(len(raw)-12))
	fixCRC(raw)
	return raw
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// fixCRC recomputes a magic-2 batch's CRC-32C (attributes to the end) after
// an edit.
func fixCRC(batch []byte) {
	binary.BigEndian.PutUint32(batch[17:], crc32.Checksum(batch[21:], castagnoli))
}

// produceRequest wraps a raw record batch in a Produce v7 request
// (non-flexible, acks=all) for partition 0 of topic.
func produceRequest(topic string, batch []byte) *kmsg.ProduceRequest {
	req := kmsg.NewPtrProduceRequest()
	req.Version = 7
	req.Acks = -1
	req.TimeoutMillis = 10000
	tp := kmsg.NewProduceRequestTopic()
	tp.Topic = topic
	p := kmsg.NewProduceRequestTopicPartition()
	p.Partition = 0
	p.Records = batch
	tp.Partitions = append(tp.Partitions, p)
	req.Topics = append(req.Topics, tp)
	return req
}

// fetchBatches reads the raw record batches of one partition from offset 0
// with Fetch v11 (topic names, no sessions; v10+ so that zstd batches are
// allowed, as Kafka requires), following until the high watermark.
func fetchBatches(t testing.TB, b *broker, topic string, partition int32) []kmsg.RecordBatch {
	t.Helper()
	rc := dialRaw(t, b)
	var out []kmsg.RecordBatch
	offset := int64(0)
	for range 1000 {
		req := kmsg.NewPtrFetchRequest()
		req.Version = 11
		req.ReplicaID = -1
		req.MaxWaitMillis = 100
		req.MaxBytes = 8 << 20
		ft := kmsg.NewFetchRequestTopic()
		ft.Topic = topic
		fp := kmsg.NewFetchRequestTopicPartition()
		fp.Partition = partition
		fp.FetchOffset = offset
		fp.PartitionMaxBytes = 4 << 20
		ft.Partitions = append(ft.Partitions, fp)
		req.Topics = append(req.Topics, ft)
		resp := rc.roundTrip(req).(*kmsg.FetchResponse)
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("fetch %s/%d: malformed response %+v", topic, partition, resp)
		}
		p := resp.Topics[0].Partitions[0]
		if p.ErrorCode != 0 {
			t.Fatalf("fetch %s/%d at %d: error code %d", topic, partition, offset, p.ErrorCode)
		}
		raw := p.RecordBatches
		for len(raw) >= 12 {
			size := int(int32(binary.BigEndian.Uint32(raw[8:]))) + 12
			if size > len(raw) {
				break // a partial batch at the end of a fetch is allowed
			}
			var rb kmsg.RecordBatch
			if err := rb.ReadFrom(raw[:size]); err != nil {
				t.Fatalf("fetch %s/%d: decode batch: %v", topic, partition, err)
			}
			out = append(out, rb)
			offset = rb.FirstOffset + int64(rb.LastOffsetDelta) + 1
			raw = raw[size:]
		}
		if offset >= p.HighWatermark {
			return out
		}
	}
	t.Fatalf("fetch %s/%d: no progress to the high watermark", topic, partition)
	return nil
}
