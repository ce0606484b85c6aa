package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/streambus/streambus/internal/metadata"
)

// Without ReportServed every node serves what it applied: once
// AwaitPropagation returns, every node's Image holds the change, whichever
// node made it.
func TestAwaitPropagationEveryNodeHasTheChange(t *testing.T) {
	c := newCluster(t)
	ctx := ctxT(t)
	c.leader()
	for i := range 20 {
		via := int32(i%3 + 1)
		name := fmt.Sprintf("t%d", i)
		if err := c.nodes[via].CreateTopic2(ctx, name); err != nil {
			t.Fatal(err)
		}
		if err := c.nodes[via].AwaitPropagation(ctx); err != nil {
			t.Fatal(err)
		}
		for id, s := range c.nodes {
			if s.Image().Topic(name) == nil {
				t.Fatalf("round %d: node %d does not have %s after AwaitPropagation", i, id, name)
			}
		}
		if err := c.nodes[via].CreatePartitions(ctx, name, 4, nil, false); err != nil {
			t.Fatal(err)
		}
		if err := c.nodes[via].AwaitPropagation(ctx); err != nil {
			t.Fatal(err)
		}
		for id, s := range c.nodes {
			if n := len(s.Image().Topic(name).Partitions); n != 4 {
				t.Fatalf("round %d: node %d shows %d partitions of %s", i, id, n, name)
			}
		}
	}
}

// A ReportServed broker stays fenced until it first reports, holds
// AwaitPropagation only while unfenced, and never past the caller's bound.
func TestAwaitPropagationWaitsForServedReports(t *testing.T) {
	c := newClusterWith(t, func(cfg *Config) { cfg.ReportServed = cfg.NodeID == 3; slowHeartbeats(cfg) })
	ctx := ctxT(t)
	n3 := c.nodes[3]
	if err := n3.WaitRegistered(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := n3.WaitReady(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("node 3 ready before it served anything: %v", err)
	}
	if _, ok := c.nodes[1].Image().Brokers[3]; ok {
		t.Fatal("node 3 unfenced before it served anything")
	}
	// Fenced: it does not hold the answer back.
	if err := c.nodes[1].CreateTopic2(ctx, "while-fenced"); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[1].AwaitPropagation(ctx); err != nil {
		t.Fatalf("a fenced broker held AwaitPropagation: %v", err)
	}

	n3.Served(n3.Image().Version)
	if err := n3.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[1].CreateTopic2(ctx, "after"); err != nil {
		t.Fatal(err)
	}
	// Node 3 applies the change but does not say it serves it: the wait
	// ends at the caller's bound, naming it.
	short, cancel = context.WithTimeout(ctx, 500*time.Millisecond)
	err = c.nodes[1].AwaitPropagation(short)
	cancel()
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "[3]") {
		t.Fatalf("AwaitPropagation with node 3 silent: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.nodes[2].AwaitPropagation(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("AwaitPropagation returned before node 3 reported: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	n3.Served(n3.Image().Version)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n3.Image().Topic("after") == nil {
		t.Fatal("node 3 lacks the topic it reported serving")
	}
}

// WaitFresh returns at once on a broker in touch with the controller, and
// waits on one that is fenced (the controller makes it no promise).
func TestWaitFresh(t *testing.T) {
	c := newClusterWith(t, func(cfg *Config) { cfg.ReportServed = cfg.NodeID == 3; slowHeartbeats(cfg) })
	ctx := ctxT(t)
	c.waitFor("nodes 1 and 2 unfenced", func(img *metadata.Image) bool { return len(img.Brokers) == 2 })
	for _, id := range []int32{1, 2} {
		if err := c.nodes[id].WaitFresh(ctx); err != nil {
			t.Fatalf("node %d: %v", id, err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	err := c.nodes[3].WaitFresh(short)
	cancel()
	if err == nil {
		t.Fatal("a fenced broker claims fresh metadata")
	}
	serve(t, c.nodes[3])
	if err := c.nodes[3].WaitFresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Its Image holds what another node created and awaited.
	if err := c.nodes[1].CreateTopic2(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[1].AwaitPropagation(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[3].WaitFresh(ctx); err != nil || c.nodes[3].Image().Topic("x") == nil {
		t.Fatalf("node 3 fresh without the topic: %v", err)
	}
}

// serve reports every Image s publishes as served, as a broker does after
// reconciling it, until the test ends.
func serve(t *testing.T, s *Store) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			ch := s.Changes()
			s.Served(s.Image().Version)
			select {
			case <-ch:
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); wg.Wait() })
}

// slowHeartbeats widens the live window (three heartbeat intervals) well
// beyond the tests' short deadlines, so that a heartbeat delayed on a
// loaded machine never makes a silent broker look dead, which would end
// a wait the test expects to last.
func slowHeartbeats(cfg *Config) {
	cfg.HeartbeatInterval, cfg.SessionTimeout = 400*time.Millisecond, 5*time.Second
}
