package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/streambus/streambus/internal/config"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testConfig(t *testing.T, dir string) config.Config {
	cfg := config.Default()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = dir, "127.0.0.1:0", "127.0.0.1:0"
	cfg.ShutdownTimeout = 5 * time.Second
	return cfg
}

func readyz(t *testing.T, s *Server) int {
	t.Helper()
	resp, err := http.Get("http://" + s.HTTPAddr().String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestStartStopRestart drives a single node through its steps in-process:
// Start returns a serving, ready broker; records written before Stop are
// read after a second Start on the same data directory; Stop leaves no
// goroutine behind (goleak) and a second Stop does nothing.
func TestStartStopRestart(t *testing.T) {
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	s, err := Start(ctx, testConfig(t, dir), log)
	if err != nil || s == nil {
		t.Fatalf("start: %v", err)
	}
	if code := readyz(t, s); code != http.StatusOK {
		t.Fatalf("/readyz %d after Start", code)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr().String()), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "kept", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}

	s, err = Start(ctx, testConfig(t, dir), log)
	if err != nil || s == nil {
		t.Fatalf("restart: %v", err)
	}
	defer s.Stop()
	cl, err = kgo.NewClient(kgo.SeedBrokers(s.KafkaAddr().String()), kgo.ConsumeTopics("kept"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("after restart read %v", recs)
	}
}

// TestStartCancelledWhileWaiting: a context that ends while Start waits
// (here before it begins) yields nil, nil and nothing left running.
func TestStartCancelledWhileWaiting(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s, err := Start(ctx, testConfig(t, t.TempDir()), slog.New(slog.DiscardHandler))
	if s != nil || err != nil {
		t.Fatalf("Start with an ended context: %v, %v", s, err)
	}
}

// TestRunStopsOnCancel: Run serves until its context ends, then returns
// nil after a clean stop.
func TestRunStopsOnCancel(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.HTTPAddr = ln.Addr().String() // a free port, to watch /readyz
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.DiscardHandler)) }()
	for {
		resp, err := http.Get("http://" + cfg.HTTPAddr + "/readyz")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before it was ready: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
