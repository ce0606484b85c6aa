package broker

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/recordbatch"
)

// TestProduceSizeLimits checks the two size answers Kafka gives a produce:
// MESSAGE_TOO_LARGE for a batch larger than max.message.bytes (checked
// first, per batch, as sent) and RECORD_LIST_TOO_LARGE for a partition's
// records larger than segment.bytes (checked on all of them together, as
// they would be stored after recompression).
func TestProduceSizeLimits(t *testing.T) {
	tb := startBroker(t, t.TempDir(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.RecordRetries(3))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	topics := map[string]map[string]*string{
		// segment.bytes far below the default max.message.bytes (1048588).
		"small-segments": {"segment.bytes": kmsg.StringPtr("1024")},
		// Both limits small: max.message.bytes above segment.bytes.
		"both-small": {"segment.bytes": kmsg.StringPtr("1024"), "max.message.bytes": kmsg.StringPtr("1500")},
		// Stored zstd: the segment check sees the recompressed size.
		"zstd-small-segments": {"segment.bytes": kmsg.StringPtr("1024"), "compression.type": kmsg.StringPtr("zstd")},
	}
	for name, cfg := range topics {
		if _, err := adm.CreateTopic(ctx, 1, 1, cfg, name); err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
	}

	// build makes one uncompressed batch of one record with value v (the
	// batch is v plus 70-odd bytes of framing).
	build := func(v []byte) []byte {
		t.Helper()
		h := recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, Magic: 2}
		b, err := recordbatch.Build(h, []recordbatch.Record{{Value: v}}, recordbatch.CodecNone)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	batch := func(size int, fill byte) []byte { return build(bytes.Repeat([]byte{fill}, size-70)) }
	random := func(size int) []byte { // incompressible
		v := make([]byte, size-70)
		rand.NewChaCha8([32]byte{1}).Read(v)
		return build(v)
	}
	concat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

	cases := []struct {
		name    string
		topic   string
		records []byte
		want    *kerr.Error // nil: success
		message string      // in the response's error message
	}{
		{"batch over segment.bytes", "small-segments", batch(2000, 'a'), kerr.RecordListTooLarge, "segment.bytes 1024"},
		{"two batches together over segment.bytes", "small-segments", concat(batch(600, 'a'), batch(600, 'b')), kerr.RecordListTooLarge, "an append of"},
		{"batch under segment.bytes", "small-segments", batch(900, 'a'), nil, ""},
		{"another batch rolls a segment", "small-segments", batch(900, 'b'), nil, ""},
		{"over both: max.message.bytes wins", "both-small", batch(2000, 'a'), kerr.MessageTooLarge, "max.message.bytes 1500"},
		{"over segment.bytes only", "both-small", batch(1200, 'a'), kerr.RecordListTooLarge, "segment.bytes 1024"},
		{"recompressed under segment.bytes", "zstd-small-segments", batch(5000, 'z'), nil, ""},
		{"recompressed still over segment.bytes", "zstd-small-segments", random(5000), kerr.RecordListTooLarge, "segment.bytes 1024"},
	}
	for _, c := range cases {
		req := kmsg.NewPtrProduceRequest()
		req.Acks = -1
		req.TimeoutMillis = 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = c.topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = c.records
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		sp := resp.Topics[0].Partitions[0]
		wantCode := int16(0)
		if c.want != nil {
			wantCode = c.want.Code
		}
		if sp.ErrorCode != wantCode {
			t.Errorf("%s: error %v, want %v", c.name, kerr.ErrorForCode(sp.ErrorCode), kerr.ErrorForCode(wantCode))
			continue
		}
		if c.want == nil {
			if sp.BaseOffset < 0 {
				t.Errorf("%s: base offset %d", c.name, sp.BaseOffset)
			}
			continue
		}
		if sp.BaseOffset != -1 {
			t.Errorf("%s: refused append has base offset %d", c.name, sp.BaseOffset)
		}
		msg := ""
		if sp.ErrorMessage != nil {
			msg = *sp.ErrorMessage
		}
		if !strings.Contains(msg, c.message) {
			t.Errorf("%s: error message %q, want one containing %q", c.name, msg, c.message)
		}
	}

	// Nothing refused was stored: small-segments holds exactly the two
	// accepted batches, one per segment.
	ends, err := adm.ListEndOffsets(ctx, "small-segments")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("small-segments", 0); o.Offset != 2 {
		t.Errorf("small-segments end offset %d, want 2", o.Offset)
	}

	// kgo fails the record with the broker's code and does not retry it.
	// The value is incompressible, so kgo's compression cannot shrink it.
	v := make([]byte, 4000)
	rand.NewChaCha8([32]byte{2}).Read(v)
	r := &kgo.Record{Topic: "small-segments", Value: v}
	if err := cl.ProduceSync(ctx, r).FirstErr(); !errors.Is(err, kerr.RecordListTooLarge) {
		t.Fatalf("kgo produce over segment.bytes: %v, want RECORD_LIST_TOO_LARGE", err)
	}
	r = &kgo.Record{Topic: "small-segments", Value: []byte("fits")}
	if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		t.Fatalf("kgo produce under segment.bytes: %v", err)
	}
}
