package integration

// Group coordinator measurements, StreamBus next to franz-go's kfake in the
// same run. Not part of CI: set STREAMBUS_GROUP_PERF=1.
//
//	STREAMBUS_GROUP_PERF=1 go test -count=1 -run TestGroupPerf -v ./test/integration/
//
// Numbers are logged, never asserted.

import (
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

const envGroupPerf = "STREAMBUS_GROUP_PERF"

// perfTarget is a broker to measure: this test's StreamBus process or an
// in-process kfake cluster.
type perfTarget struct {
	name string
	b    *broker
}

func perfTargets(t *testing.T) []perfTarget {
	t.Helper()
	sb := startGroupBroker(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	return []perfTarget{
		{harness.kind, sb},
		{"kfake", &broker{t: t, Addr: c.ListenAddrs()[0]}},
	}
}

func TestGroupPerf(t *testing.T) {
	if os.Getenv(envGroupPerf) != "1" {
		t.Skipf("measurements only; set %s=1", envGroupPerf)
	}
	targets := perfTargets(t)

	// A cold group of n members joining at once (raw requests, KIP-394
	// round trip, 50 members per connection): first JoinGroup sent -> every member
	// has its SyncGroup answer. StreamBus only: kfake completes the first
	// generation without waiting for members that still hold a KIP-394
	// pending member ID, so joinMany's single-generation checks fail there
	// (its leader saw 9 of 10 members).
	for _, n := range []int{10, 100, 1000} {
		tg := targets[0]
		var best, sum time.Duration
		const rounds = 5
		for range rounds {
			topic := createTopic(t, tg.b, 10)
			start := time.Now()
			// At most 50 parked JoinGroups per connection: the broker
			// reads at most 64 requests ahead of its answers.
			joinMany(t, tg.b, groupName(t), topic, n, (n+49)/50)
			d := time.Since(start)
			sum += d
			if best == 0 || d < best {
				best = d
			}
		}
		t.Logf("raw join of %4d members at once:    %-9s best %8v  mean %8v", n, tg.name,
			best.Round(10*time.Microsecond), (sum / rounds).Round(10*time.Microsecond))
	}

	// n kgo members (eager range, heartbeat 100ms) start at once: first
	// start -> every member owns one partition.
	for _, n := range []int{10, 100} {
		for _, tg := range targets {
			d := kgoColdJoin(t, tg.b, n)
			t.Logf("kgo: %3d members starting at once:  %-9s %v", n, tg.name, d.Round(time.Millisecond))
		}
	}

	// One more kgo member joins a stable group of n-1 kgo members (eager
	// range, heartbeat 100ms): its start -> every member owns its share.
	for _, n := range []int{10, 100} {
		for _, tg := range targets {
			d := kgoJoinLatency(t, tg.b, n)
			t.Logf("kgo: one member joining %3d-1:      %-9s %v", n, tg.name, d.Round(time.Millisecond))
		}
	}

	// One client committing one offset at a time, synchronously. StreamBus
	// fsyncs every commit before answering; so does kfake with DataDir and
	// SyncWrites, the fair comparison.
	dc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(t.TempDir()), kfake.SyncWrites())
	if err != nil {
		t.Fatalf("kfake with data dir: %v", err)
	}
	t.Cleanup(dc.Close)
	for _, tg := range append(targets, perfTarget{"kfake-sync", &broker{t: t, Addr: dc.ListenAddrs()[0]}}) {
		rate := commitRate(t, tg.b, 2*time.Second)
		t.Logf("sequential OffsetCommit:              %-10s %.0f commits/s", tg.name, rate)
	}
}

// kgoColdJoin starts n members on an n-partition topic at once and
// measures until each owns one partition.
func kgoColdJoin(t *testing.T, b *broker, n int) time.Duration {
	t.Helper()
	topic := createTopic(t, b, int32(n))
	group := groupName(t)
	led := newLedger()
	start := time.Now()
	var ms []*kgoMember
	for i := 0; i < n; i++ {
		ms = append(ms, startKgoMember(t, b, group, topic, fmt.Sprintf("m%03d", i), led, kgoMemberOpts{session: 10 * time.Second}))
	}
	waitOnePartitionEach(t, n, ms)
	d := time.Since(start)
	stopAll(ms)
	return d
}

// kgoJoinLatency starts n-1 members on an n-partition topic, waits until
// they share it, then measures how long the n-th member's arrival takes to
// give everybody exactly one partition.
func kgoJoinLatency(t *testing.T, b *broker, n int) time.Duration {
	t.Helper()
	topic := createTopic(t, b, int32(n))
	group := groupName(t)
	led := newLedger()
	var ms []*kgoMember
	for i := 0; i < n-1; i++ {
		ms = append(ms, startKgoMember(t, b, group, topic, fmt.Sprintf("m%03d", i), led, kgoMemberOpts{session: 10 * time.Second}))
	}
	waitAssignment(t, 120*time.Second, int32(n), ms...)
	start := time.Now()
	ms = append(ms, startKgoMember(t, b, group, topic, "last", led, kgoMemberOpts{session: 10 * time.Second}))
	waitOnePartitionEach(t, n, ms)
	d := time.Since(start)
	stopAll(ms)
	return d
}

func waitOnePartitionEach(t *testing.T, n int, ms []*kgoMember) {
	t.Helper()
	waitFor(t, 120*time.Second, "everyone to own one partition", func() bool {
		owners := make([]int, n)
		for _, m := range ms {
			owned := m.Owned()
			if len(owned) != 1 {
				return false
			}
			owners[owned[0]]++
		}
		for _, c := range owners {
			if c != 1 {
				return false
			}
		}
		return true
	})
}

// stopAll closes members in parallel (each leave is a rebalance).
func stopAll(ms []*kgoMember) {
	var wg sync.WaitGroup
	for _, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.Stop()
		}()
	}
	wg.Wait()
}

// commitRate commits increasing offsets for one partition of a memberless
// group (generation -1) on one connection, one request at a time, for d.
func commitRate(t *testing.T, b *broker, d time.Duration) float64 {
	t.Helper()
	topic := createTopic(t, b, 1)
	group := groupName(t)
	r := dialRaw(t, b)
	// Warm up: the coordinator and the connection.
	for i := range 100 {
		if code := commitCode(r, commitRequest(8, group, "", -1, topic, 0, int64(i))); code != 0 {
			t.Fatalf("commit: %v", kerr.ErrorForCode(code))
		}
	}
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if code := commitCode(r, commitRequest(8, group, "", -1, topic, 0, int64(100+n))); code != 0 {
			t.Fatalf("commit: %v", kerr.ErrorForCode(code))
		}
		n++
	}
	rate := float64(n) / time.Since(start).Seconds()
	if got := fetchCommitted(r, group, topic, 0); got != int64(99+n) {
		t.Errorf("last committed offset %d, want %d", got, 99+n)
	}
	return rate
}
