package httpserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// client does not keep connections alive, so no transport goroutine
// outlives a test.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read body: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// start serves s in a goroutine and returns its base URL and a stop
// function that cancels Serve and checks it returned nil.
func start(t *testing.T, s *Server) (string, func()) {
	t.Helper()
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(ctx) }()
	return "http://" + addr.String(), func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Serve returned %v", err)
		}
	}
}

func TestEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "streambus_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(42)
	var ready atomic.Bool
	s := New(Config{Addr: "127.0.0.1:0", Gatherer: reg, Ready: ready.Load,
		Problems: func() []string { return []string{"offline partitions: 1", "  t-0: disk full"} }})
	base, stop := start(t, s)
	defer stop()

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready = %d, want 503", code)
	}
	ready.Store(true)
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ready" {
		t.Errorf("/readyz when ready = %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz?verbose"); code != 200 || body != "ready\noffline partitions: 1\n  t-0: disk full" {
		t.Errorf("/readyz?verbose = %d %q", code, body)
	}
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, "streambus_test_total 42") {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if code, body := get(t, base+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Errorf("/debug/pprof/ = %d", code)
	}
	if code, body := get(t, base+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Errorf("/debug/pprof/goroutine = %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/cmdline"); code != 200 {
		t.Errorf("/debug/pprof/cmdline = %d", code)
	}
	if code, _ := get(t, base+"/debug/pprof/symbol"); code != 200 {
		t.Errorf("/debug/pprof/symbol = %d", code)
	}
	if code, _ := get(t, base+"/"); code != 404 {
		t.Errorf("/ = %d, want 404", code)
	}
	resp, err := client.Post(base+"/healthz", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /healthz = %d, want 405", resp.StatusCode)
	}
}

func TestDefaults(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"}) // no Gatherer, Ready or Logger
	base, stop := start(t, s)
	defer stop()
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz with nil Ready = %d, want 200", code)
	}
	if code, _ := get(t, base+"/metrics"); code != 200 {
		t.Errorf("/metrics with nil Gatherer = %d, want 200", code)
	}
}

func TestShutdown(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"})
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve(context.Background()) }()
	if code, _ := get(t, "http://"+addr.String()+"/healthz"); code != 200 {
		t.Fatalf("healthz %d", code)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("Serve after Shutdown returned %v, want nil", err)
	}
	if _, err := client.Get("http://" + addr.String() + "/healthz"); err == nil {
		t.Fatal("server still answering after Shutdown")
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if _, err := s.Listen(); err == nil {
		t.Fatal("Listen after Shutdown succeeded")
	}
}

func TestShutdownWithoutServeReleasesPort(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"})
	addr, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr.String())
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	ln.Close()
	if err := s.Serve(context.Background()); err != nil {
		t.Fatalf("Serve after Shutdown = %v, want nil", err)
	}
}

func TestServeListensItself(t *testing.T) {
	s := New(Config{Addr: "127.0.0.1:0"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Serve(ctx); err != nil { // cancelled context: listens, stops at once
		t.Fatalf("Serve = %v", err)
	}
}

func TestListenErrors(t *testing.T) {
	if _, err := New(Config{}).Listen(); err == nil || !strings.Contains(err.Error(), "Addr") {
		t.Errorf("empty Addr: %v", err)
	}
	if _, err := New(Config{Addr: "nocolon"}).Listen(); err == nil {
		t.Error("bad Addr accepted")
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	s := New(Config{Addr: busy.Addr().String()})
	if _, err := s.Listen(); err == nil || !strings.Contains(err.Error(), busy.Addr().String()) {
		t.Errorf("busy port: %v", err)
	}
	if err := s.Serve(context.Background()); err == nil {
		t.Error("Serve on a busy port returned nil")
	}
	s2 := New(Config{Addr: "127.0.0.1:0"})
	if _, err := s2.Listen(); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Listen(); err == nil {
		t.Error("second Listen succeeded")
	}
	if err := s2.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}
