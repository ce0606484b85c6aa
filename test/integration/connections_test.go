package integration

import (
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

// apiVersionsOn sends ApiVersions v3 on c and waits up to timeout for the
// answer: nil when it came, io.EOF (or a reset) when the broker closed
// the connection, a timeout error when it did not answer.
func apiVersionsOn(c net.Conn, timeout time.Duration) error {
	r := &rawConn{c: c}
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 3
	req.ClientSoftwareName, req.ClientSoftwareVersion = "streambus-integration", "1"
	if err := r.write(r.frame(req)); err != nil {
		return err
	}
	buf, err := r.readFrame(timeout)
	if err != nil {
		return err
	}
	if len(buf) < 4 {
		return errors.New("short ApiVersions response")
	}
	return nil
}

func dialFrom(t testing.TB, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if local != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(local)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, local, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func closedByBroker(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// TestConnectionsPerIP: max.connections.per.ip closes connections beyond
// the limit at once, as Kafka does, counting per address; an override of
// 0 refuses an address entirely; a closed connection frees its place.
func TestConnectionsPerIP(t *testing.T) {
	requireProcess(t)
	b := startBroker(t, brokerOpts{Env: []string{
		"STREAMBUS_MAX_CONNECTIONS_PER_IP=3",
		"STREAMBUS_MAX_CONNECTIONS_PER_IP_OVERRIDES=127.0.0.3:0,127.0.0.4:5",
	}})
	var open []net.Conn
	for i := 0; i < 3; i++ {
		c := dialFrom(t, "127.0.0.1", b.Addr)
		if err := apiVersionsOn(c, 10*time.Second); err != nil {
			t.Fatalf("connection %d within the limit: %v", i+1, err)
		}
		open = append(open, c)
	}
	extra := dialFrom(t, "127.0.0.1", b.Addr)
	if err := apiVersionsOn(extra, 10*time.Second); !closedByBroker(err) {
		t.Fatalf("fourth connection from 127.0.0.1: %v, want it closed", err)
	}
	// Other addresses have their own count; an override replaces it.
	for i := 0; i < 5; i++ {
		if err := apiVersionsOn(dialFrom(t, "127.0.0.4", b.Addr), 10*time.Second); err != nil {
			t.Fatalf("connection %d from 127.0.0.4 (override 5): %v", i+1, err)
		}
	}
	if err := apiVersionsOn(dialFrom(t, "127.0.0.3", b.Addr), 10*time.Second); !closedByBroker(err) {
		t.Fatalf("connection from 127.0.0.3 (override 0): %v, want it closed", err)
	}
	// Closing one makes room for another.
	open[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := apiVersionsOn(dialFrom(t, "127.0.0.1", b.Addr), 10*time.Second)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no room after a connection closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := metricValue(t, b, "streambus_connections_refused_total"); n < 2 {
		t.Fatalf("streambus_connections_refused_total = %v, want ≥ 2", n)
	}
}

// TestMaxConnectionsPausesAccept: at max.connections the broker stops
// accepting; a connection waiting in the backlog is served once another
// closes.
func TestMaxConnectionsPausesAccept(t *testing.T) {
	requireProcess(t)
	b := startBroker(t, brokerOpts{Env: []string{"STREAMBUS_MAX_CONNECTIONS=2"}})
	first := dialFrom(t, "", b.Addr)
	second := dialFrom(t, "", b.Addr)
	for _, c := range []net.Conn{first, second} {
		if err := apiVersionsOn(c, 10*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	waiting := dialFrom(t, "", b.Addr) // completes in the kernel's backlog
	if err := apiVersionsOn(waiting, 500*time.Millisecond); err == nil || closedByBroker(err) {
		t.Fatalf("third connection at max.connections=2 was answered or closed (%v); want it left waiting", err)
	}
	first.Close()
	// The request already sent is answered once the broker accepts.
	r := &rawConn{c: waiting, corr: 1}
	if _, err := r.readFrame(10 * time.Second); err != nil {
		t.Fatalf("waiting connection not served after another closed: %v", err)
	}
}

// openFDs counts the broker process's open file descriptors.
func openFDs(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestAcceptSurvivesDescriptorExhaustion: with RLIMIT_NOFILE lowered so
// that accept fails with EMFILE, the broker keeps running and accepts
// again as soon as descriptors are free.
func TestAcceptSurvivesDescriptorExhaustion(t *testing.T) {
	requireProcess(t)
	b := startBroker(t, brokerOpts{})
	pid := b.Pid()
	var orig unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &orig); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	headroom := 4
	lim := unix.Rlimit{Cur: uint64(openFDs(t, pid) + headroom), Max: orig.Max}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &orig, nil); err != nil {
				t.Fatalf("restore prlimit: %v", err)
			}
		}
	}
	t.Cleanup(restore)

	// More connections than descriptors: the broker serves those it could
	// accept, the others wait in the backlog.
	var conns []net.Conn
	answered := 0
	for i := 0; i < 3*headroom; i++ {
		c := dialFrom(t, "", b.Addr)
		conns = append(conns, c)
		if apiVersionsOn(c, 300*time.Millisecond) == nil {
			answered++
		}
	}
	if answered == 0 || answered == len(conns) {
		t.Fatalf("%d of %d connections answered with %d spare descriptors; want some but not all", answered, len(conns), headroom)
	}
	// Free the descriptors (limit still low): a new connection is served.
	for _, c := range conns {
		c.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		c := dialFrom(t, "", b.Addr)
		err := apiVersionsOn(c, 2*time.Second)
		c.Close()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not accepting after descriptors were freed: %v", err)
		}
	}
	if b.exited() {
		t.Fatal("broker exited")
	}
	restore()
	if n := metricValue(t, b, "streambus_accept_errors_total"); n < 1 {
		t.Fatalf("streambus_accept_errors_total = %v, want ≥ 1 (EMFILE)", n)
	}
	assertServing(t, b)
}

// metricValue reads one unlabelled series from the broker's /metrics.
func metricValue(t testing.TB, b *broker, name string) float64 {
	t.Helper()
	body := httpGet(t, "http://"+b.HTTPAddr+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

func httpGet(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return string(body)
}

// idleConnections is how many idle connections TestIdleConnectionMemory
// opens (the figure).
const idleConnections = 10000

// TestIdleConnectionMemory: 10,000 connections that each made a request
// and went idle grow the broker's RSS by less than 100 MB (an idle
// connection holds no buffers and no writer), and the broker keeps
// serving while they are open.
func TestIdleConnectionMemory(t *testing.T) {
	requireProcess(t)
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < idleConnections+1000 {
		lim.Cur = min(lim.Max, idleConnections+1000)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < idleConnections+1000 {
			t.Fatalf("cannot raise this test's descriptor limit to %d: %v", idleConnections+1000, err)
		}
	}
	b := startBroker(t, brokerOpts{})
	assertServing(t, b) // the produce and fetch paths have run once
	before := b.ProcStatus("VmRSS")
	conns := make([]net.Conn, 0, idleConnections)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Spread over source addresses: one address has only ~28,000
	// ephemeral ports, and TIME_WAIT from other tests may hold some.
	for i := 0; i < idleConnections; i++ {
		local := "127.0.1." + strconv.Itoa(1+i%200)
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", b.Addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		conns = append(conns, c)
		if err := apiVersionsOn(c, 10*time.Second); err != nil {
			t.Fatalf("connection %d: ApiVersions: %v", i, err)
		}
	}
	time.Sleep(time.Second) // writers exit once their queues are empty
	after := b.ProcStatus("VmRSS")
	growth := after - before
	t.Logf("%d idle connections: broker RSS %.1f → %.1f MB, %.1f KiB per connection",
		idleConnections, float64(before)/1e6, float64(after)/1e6, float64(growth)/idleConnections/1024)
	if growth > 100<<20 {
		t.Fatalf("RSS grew by %.1f MB with %d idle connections; want < 100 MB", float64(growth)/1e6, idleConnections)
	}
	assertServing(t, b)
}
