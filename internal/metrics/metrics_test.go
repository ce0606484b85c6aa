package metrics

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRequests(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.ObserveRequest(0, 0, 2*time.Millisecond)
	m.ObserveRequest(0, 0, 3*time.Millisecond)
	m.ObserveRequest(0, 6, time.Millisecond) // NOT_LEADER_OR_FOLLOWER
	m.ObserveRequest(3, 0, 100*time.Microsecond)
	m.ObserveRequest(-7, 35, time.Millisecond)

	if got := testutil.ToFloat64(m.requests.WithLabelValues("Produce", "0")); got != 2 {
		t.Errorf("Produce/0 = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("Produce", "6")); got != 1 {
		t.Errorf("Produce/6 = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("Metadata", "0")); got != 1 {
		t.Errorf("Metadata/0 = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.requests.WithLabelValues("Unknown", "35")); got != 1 {
		t.Errorf("Unknown/35 = %v, want 1", got)
	}
	if n := testutil.CollectAndCount(m.requestDuration); n != 3 {
		t.Errorf("duration series = %d, want 3 (Produce, Metadata, Unknown)", n)
	}
	want := `
# HELP streambus_requests_total Kafka requests handled, by API and response error code.
# TYPE streambus_requests_total counter
streambus_requests_total{api="Metadata",error_code="0"} 1
streambus_requests_total{api="Produce",error_code="0"} 2
streambus_requests_total{api="Produce",error_code="6"} 1
streambus_requests_total{api="Unknown",error_code="35"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "streambus_requests_total"); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil || len(problems) != 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
}

func TestDurationHistogram(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.ObserveRequest(1, 0, 60*time.Microsecond)
	m.ObserveRequest(1, 0, 20*time.Second)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "streambus_request_duration_seconds" {
			continue
		}
		h := mf.GetMetric()[0].GetHistogram()
		b := h.GetBucket()
		if first := b[0].GetUpperBound(); math.Abs(first-50e-6) > 1e-9 {
			t.Errorf("first bucket %v, want 50µs", first)
		}
		if last := b[len(b)-1].GetUpperBound(); math.Abs(last-10) > 1e-6 {
			t.Errorf("last bucket %v, want 10s", last)
		}
		if h.GetSampleCount() != 2 || b[len(b)-1].GetCumulativeCount() != 1 {
			t.Errorf("count %d, in last bucket %d: want 2 and 1", h.GetSampleCount(), b[len(b)-1].GetCumulativeCount())
		}
		if b[0].GetCumulativeCount() != 0 || b[1].GetCumulativeCount() != 1 {
			t.Errorf("60µs landed in the wrong bucket: %v", b[:2])
		}
		return
	}
	t.Fatal("histogram not gathered")
}

func TestBytesFsyncConnections(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	m.AddBytesIn(100)
	m.AddBytesIn(-5)
	m.AddBytesIn(23)
	m.AddBytesOut(7)
	m.AddBytesOut(0)
	m.ObserveFsync(time.Millisecond)
	m.ObserveFsync(2 * time.Millisecond)
	m.ConnOpened()
	m.ConnOpened()
	m.ConnOpened()
	m.ConnClosed()
	if got := testutil.ToFloat64(m.bytesIn); got != 123 {
		t.Errorf("bytes in %v", got)
	}
	if got := testutil.ToFloat64(m.bytesOut); got != 7 {
		t.Errorf("bytes out %v", got)
	}
	if got := testutil.ToFloat64(m.connections); got != 2 {
		t.Errorf("connections %v", got)
	}
	want := `
# HELP streambus_bytes_in_total Bytes of Kafka requests read from clients.
# TYPE streambus_bytes_in_total counter
streambus_bytes_in_total 123
# HELP streambus_connections Open Kafka client connections.
# TYPE streambus_connections gauge
streambus_connections 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "streambus_bytes_in_total", "streambus_connections"); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "streambus_fsync_duration_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 2 || math.Abs(h.GetSampleSum()-0.003) > 1e-9 {
				t.Errorf("fsync histogram count %d sum %v", h.GetSampleCount(), h.GetSampleSum())
			}
			return
		}
	}
	t.Fatal("fsync histogram not gathered")
}

func TestLogStats(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m := New(reg)
	if n := testutil.CollectAndCount(m.logStats); n != 0 {
		t.Fatalf("without a stats function got %d series, want 0", n)
	}
	parts, size := 3, int64(4096)
	m.RegisterLogStats(func() (int, int64) { return parts, size })
	want := `
# HELP streambus_log_size_bytes Total bytes of all partition logs.
# TYPE streambus_log_size_bytes gauge
streambus_log_size_bytes 4096
# HELP streambus_partitions Partition logs hosted by this broker.
# TYPE streambus_partitions gauge
streambus_partitions 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "streambus_partitions", "streambus_log_size_bytes"); err != nil {
		t.Fatal(err)
	}
	parts, size = 5, 1<<40
	if err := testutil.GatherAndCompare(reg, strings.NewReader(strings.NewReplacer("4096", "1.099511627776e+12", "partitions 3", "partitions 5").Replace(want)),
		"streambus_partitions", "streambus_log_size_bytes"); err != nil {
		t.Fatalf("values are read at scrape time: %v", err)
	}
}

func TestNilMetricsIsNoop(t *testing.T) {
	var m *Metrics
	m.ObserveRequest(0, 0, time.Second)
	m.AddBytesIn(1)
	m.AddBytesOut(1)
	m.ObserveFsync(time.Second)
	m.ConnOpened()
	m.ConnClosed()
	m.RegisterLogStats(func() (int, int64) { return 0, 0 })
}

func TestSeparateRegistries(t *testing.T) {
	// Two brokers in one process (tests) must not collide.
	a, b := prometheus.NewRegistry(), prometheus.NewRegistry()
	ma, mb := New(a), New(b)
	ma.ConnOpened()
	if got := testutil.ToFloat64(mb.connections); got != 0 {
		t.Fatalf("registries share state: %v", got)
	}
	New(nil).ConnOpened() // unregistered metrics still work
}

func BenchmarkObserveRequest(b *testing.B) {
	m := New(prometheus.NewRegistry())
	for b.Loop() {
		m.ObserveRequest(1, 0, time.Millisecond)
	}
}
