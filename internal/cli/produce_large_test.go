package cli

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// largeValue is n printable bytes that do not repeat in any short period,
// so that a mistake in splitting or reassembly shows.
func largeValue(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = alphabet[x%uint32(len(alphabet))]
	}
	return string(b)
}

// TestProduceMaxMessageBytes writes a 3 MB record, over kgo's default 1 MB
// batch limit, to a topic whose max.message.bytes is 5000000: with
// --max-message-bytes and with the limit read from the topic.
func TestProduceMaxMessageBytes(t *testing.T) {
	addr := startCluster(t)
	testProduceMaxMessageBytes(t, addr)
}

// testProduceMaxMessageBytes runs the large-record checks against the
// broker at addr, which must let topics be created with max.message.bytes
// 5000000.
func testProduceMaxMessageBytes(t *testing.T, addr string) {
	mustRun(t, addr, "", "topic", "create", "blobs", "--partitions", "1", "--config", "max.message.bytes=5000000")
	big := largeValue(3_000_000)

	// The client default refuses the record before sending it, and says
	// which limit applied.
	r := runCLI(t.Context(), addr, big+"\n", "produce", "blobs", "--max-message-bytes", "1000012")
	if r.code != 1 || !strings.Contains(r.stderr, "MESSAGE_TOO_LARGE") ||
		!strings.Contains(r.stderr, "batch limit 1000012 bytes: --max-message-bytes") {
		t.Fatalf("3 MB record under a 1 MB limit: exit %d stderr %q", r.code, r.stderr)
	}

	mustRun(t, addr, big+"\n", "produce", "blobs", "--max-message-bytes", "5000000")
	mustRun(t, addr, big[1:]+big[:1]+"\n", "produce", "blobs") // the limit read from the topic
	r = mustRun(t, addr, "", "consume", "blobs", "-n", "2")
	if want := big + "\n" + big[1:] + big[:1] + "\n"; r.stdout != want {
		t.Fatalf("consumed %d bytes, not the two 3 MB records produced", len(r.stdout))
	}

	// Over the topic's limit: refused by the client with the limit read
	// from the topic, or by the broker when the flag asks for more.
	huge := largeValue(6_000_000)
	r = runCLI(t.Context(), addr, huge+"\n", "produce", "blobs")
	if r.code != 1 || !strings.Contains(r.stderr, "MESSAGE_TOO_LARGE") ||
		!strings.Contains(r.stderr, "batch limit 5000000 bytes: the topic's max.message.bytes") {
		t.Fatalf("6 MB record, limit from the topic: exit %d stderr %q", r.code, r.stderr)
	}
	r = runCLI(t.Context(), addr, huge+"\n", "produce", "blobs", "--max-message-bytes", "8000000")
	if r.code != 1 || !strings.Contains(r.stderr, "MESSAGE_TOO_LARGE") {
		t.Fatalf("6 MB record, --max-message-bytes 8000000: exit %d stderr %q", r.code, r.stderr)
	}
	r = mustRun(t, addr, "", "topic", "describe", "blobs", "-o", "json")
	if !strings.Contains(r.stdout, `"high_watermark": 2`) {
		t.Fatalf("refused records were stored:\n%s", r.stdout)
	}
}

// TestProduceLimitFallback: without a readable max.message.bytes (the topic
// does not exist yet and is auto-created by the produce), the client's
// default applies.
func TestProduceLimitFallback(t *testing.T) {
	addr := startCluster(t, kfake.AllowAutoTopicCreation())
	r := runCLI(t.Context(), addr, largeValue(2_000_000)+"\n", "produce", "new-topic")
	if r.code != 1 || !strings.Contains(r.stderr, "batch limit 1000012 bytes: the client's default") {
		t.Fatalf("exit %d stderr %q", r.code, r.stderr)
	}
	mustRun(t, addr, "small\n", "produce", "new-topic")
}
