package main

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// startPeer runs the peer until the returned stop is called.
func startPeer(t *testing.T, args ...string) (addr string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	addrs := make(chan []string, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(a []string) { addrs <- a }) }()
	select {
	case a := <-addrs:
		return a[0], func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		}
	case err := <-done:
		cancel()
		t.Fatalf("run: %v", err)
	}
	return "", nil
}

// TestPeerPersistsAcrossRestart produces to an auto-created topic, restarts
// the peer on the same data directory and reads the record back.
func TestPeerPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	addr, stop := startPeer(t, "--addr", "127.0.0.1:0", "--data-dir", dir, "--partitions", "3")
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "p", Value: []byte("kept")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	stop()

	addr, stop = startPeer(t, "--addr", "127.0.0.1:0", "--data-dir", dir)
	defer stop()
	cl, err = kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("p"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		t.Fatal(err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Value) != "kept" {
		t.Fatalf("records after restart: %v", recs)
	}
}

func TestPeerRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--partitions", "0"},
		{"--sync-writes"},
		{"--addr", "nocolon"},
		{"--log-level", "loud"},
		{"extra"},
	} {
		if err := run(t.Context(), args, func([]string) { t.Errorf("%v: started", args) }); err == nil {
			t.Errorf("%v: accepted", args)
		}
	}
}
