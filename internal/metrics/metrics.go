// Package metrics holds the broker's Prometheus collectors. They are
// registered on a prometheus.Registerer the caller injects, never on the
// global registry, so that tests and several brokers in one process each
// get their own.
//
// A nil *Metrics is valid: every method is a no-op, so components built
// without metrics (unit tests, tools) need no special casing.
//
// Series:
//
//	streambus_requests_total{api,error_code}    counter
//	streambus_request_duration_seconds{api}     histogram, 50µs to 10s
//	streambus_bytes_in_total                    counter, request bytes read
//	streambus_bytes_out_total                   counter, response bytes written
//	streambus_fsync_duration_seconds            histogram
//	streambus_connections                       gauge, open client connections
//	streambus_connections_refused_total         counter, closed at once by max.connections.per.ip
//	streambus_accept_errors_total               counter, failed accepts (retried after a backoff)
//	streambus_partitions                        gauge, from RegisterLogStats
//	streambus_log_size_bytes                    gauge, from RegisterLogStats
//	streambus_partitions_offline                gauge, from RegisterOfflinePartitions
package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Metrics is safe for concurrent use by any number of goroutines.
type Metrics struct {
	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	bytesIn         prometheus.Counter
	bytesOut        prometheus.Counter
	fsync           prometheus.Histogram
	connections     prometheus.Gauge
	connRefused     prometheus.Counter
	acceptErrors    prometheus.Counter
	logStats        *logStatsCollector
}

// New creates the collectors and registers them on reg. It panics if reg
// already holds collectors with the same names, which is a programming
// error (create one Metrics per registry). A nil reg leaves them
// unregistered.
func New(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "streambus_requests_total",
			Help: "Kafka requests handled, by API and response error code.",
		}, []string{"api", "error_code"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "streambus_request_duration_seconds",
			Help: "Time from a request being read to its response being queued, by API.",
			// 50µs to 10s in 18 steps (factor ~2.05): an in-memory
			// metadata request and a long-poll fetch both land in range.
			Buckets: prometheus.ExponentialBucketsRange(50e-6, 10, 18),
		}, []string{"api"}),
		bytesIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streambus_bytes_in_total",
			Help: "Bytes of Kafka requests read from clients.",
		}),
		bytesOut: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streambus_bytes_out_total",
			Help: "Bytes of Kafka responses written to clients.",
		}),
		fsync: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "streambus_fsync_duration_seconds",
			Help: "Duration of the journal fdatasync of one group-commit round, which makes the appends of every partition in the round durable.",
			// 10µs (page cache on NVMe) to 10s (a stalled disk).
			Buckets: prometheus.ExponentialBucketsRange(10e-6, 10, 16),
		}),
		connections: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "streambus_connections",
			Help: "Open Kafka client connections.",
		}),
		connRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streambus_connections_refused_total",
			Help: "Client connections closed at once because their address reached max.connections.per.ip.",
		}),
		acceptErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "streambus_accept_errors_total",
			Help: "Failed accepts on the Kafka listener (such as EMFILE), each retried after a backoff.",
		}),
		logStats: &logStatsCollector{
			partitions: prometheus.NewDesc("streambus_partitions", "Partition logs hosted by this broker.", nil, nil),
			size:       prometheus.NewDesc("streambus_log_size_bytes", "Total bytes of all partition logs.", nil, nil),
			offline:    prometheus.NewDesc("streambus_partitions_offline", "Hosted partitions whose log failed (an I/O error such as a full disk) and accept no writes.", nil, nil),
		},
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.requestDuration, m.bytesIn, m.bytesOut, m.fsync, m.connections, m.connRefused, m.acceptErrors, m.logStats)
	}
	return m
}

// ObserveRequest records one handled request: its API key (named with
// kmsg.NameForKey, "Unknown" for keys kmsg does not know), the error code
// of its response (0 for success) and how long it took.
func (m *Metrics) ObserveRequest(apiKey int16, errorCode int16, d time.Duration) {
	if m == nil {
		return
	}
	api := kmsg.NameForKey(apiKey)
	m.requests.WithLabelValues(api, strconv.Itoa(int(errorCode))).Inc()
	m.requestDuration.WithLabelValues(api).Observe(d.Seconds())
}

// AddBytesIn counts n bytes read from clients; negative n is ignored.
func (m *Metrics) AddBytesIn(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.bytesIn.Add(float64(n))
}

// AddBytesOut counts n bytes written to clients; negative n is ignored.
func (m *Metrics) AddBytesOut(n int) {
	if m == nil || n <= 0 {
		return
	}
	m.bytesOut.Add(float64(n))
}

// ObserveFsync records the duration of one journal fdatasync (one
// group-commit round of the data directory).
func (m *Metrics) ObserveFsync(d time.Duration) {
	if m == nil {
		return
	}
	m.fsync.Observe(d.Seconds())
}

// ConnOpened counts a new client connection; pair it with ConnClosed.
func (m *Metrics) ConnOpened() {
	if m == nil {
		return
	}
	m.connections.Inc()
}

// ConnRefused counts a connection closed by max.connections.per.ip.
func (m *Metrics) ConnRefused() {
	if m == nil {
		return
	}
	m.connRefused.Inc()
}

// AcceptFailed counts a failed accept.
func (m *Metrics) AcceptFailed() {
	if m == nil {
		return
	}
	m.acceptErrors.Inc()
}

// ConnClosed counts a closed client connection.
func (m *Metrics) ConnClosed() {
	if m == nil {
		return
	}
	m.connections.Dec()
}

// RegisterLogStats sets the function that reports the partition count and
// total log size; it is called on every scrape, from the scraping
// goroutine, so it must be safe for concurrent use and cheap. A later call
// replaces the earlier function; nil removes it (the gauges then report
// nothing).
func (m *Metrics) RegisterLogStats(fn func() (partitions int, logBytes int64)) {
	if m == nil {
		return
	}
	m.logStats.mu.Lock()
	m.logStats.fn = fn
	m.logStats.mu.Unlock()
}

// RegisterOfflinePartitions sets the function that counts offline
// partitions, called on every scrape like RegisterLogStats' function.
func (m *Metrics) RegisterOfflinePartitions(fn func() int) {
	if m == nil {
		return
	}
	m.logStats.mu.Lock()
	m.logStats.offlineFn = fn
	m.logStats.mu.Unlock()
}

// logStatsCollector asks the storage for its numbers at scrape time rather
// than having the storage push them, so nothing has to run between scrapes.
type logStatsCollector struct {
	partitions, size, offline *prometheus.Desc

	mu        sync.Mutex
	fn        func() (int, int64) // guarded by mu
	offlineFn func() int          // guarded by mu
}

func (c *logStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.partitions
	ch <- c.size
	ch <- c.offline
}

func (c *logStatsCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	fn, offlineFn := c.fn, c.offlineFn
	c.mu.Unlock()
	if fn != nil {
		parts, size := fn()
		ch <- prometheus.MustNewConstMetric(c.partitions, prometheus.GaugeValue, float64(parts))
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(size))
	}
	if offlineFn != nil {
		ch <- prometheus.MustNewConstMetric(c.offline, prometheus.GaugeValue, float64(offlineFn()))
	}
}
