package broker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func TestGroupPartitionMatchesJava(t *testing.T) {
	// Java: Math.abs("my-group".hashCode()) % 50 etc.; hashCode values
	// computed by String.hashCode's definition s[0]*31^(n-1) + … + s[n-1].
	cases := []struct {
		group string
		n     int32
		want  int32
	}{
		{"", 50, 0},
		{"a", 50, 97 % 50},
		{"my-group", 50, int32((uint32(javaHash("my-group")) & 0x7fffffff) % 50)},
		{"😀", 7, int32((uint32(31*0xD83D+0xDE00) & 0x7fffffff) % 7)},
	}
	for _, c := range cases {
		if got := groupPartition(c.group, c.n); got != c.want {
			t.Errorf("groupPartition(%q, %d) = %d, want %d", c.group, c.n, got, c.want)
		}
	}
}

// javaHash is String.hashCode for ASCII strings, the naive way.
func javaHash(s string) int32 {
	var h int32
	for i := 0; i < len(s); i++ {
		h = h*31 + int32(s[i])
	}
	return h
}

func TestConsumerGroupKgo(t *testing.T) {
	dir := t.TempDir()
	debug := func(c *Config) {
		if os.Getenv("STREAMBUS_TEST_DEBUG") != "" {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	tb := startBroker(t, dir, debug)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	prod, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.DefaultProduceTopic("g"))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if _, err := kadm.NewClient(prod).CreateTopic(ctx, 4, 1, nil, "g"); err != nil {
		t.Fatal(err)
	}
	const n = 400
	for i := 0; i < n; i++ {
		prod.Produce(ctx, &kgo.Record{Key: []byte(fmt.Sprint(i)), Value: []byte(fmt.Sprint(i))}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	seen := map[string]int{}
	consume := func(stopAfter int) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.ConsumerGroup("grp"), kgo.ConsumeTopics("g"),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
		if err != nil {
			t.Error(err)
			return
		}
		defer cl.Close()
		for {
			mu.Lock()
			done := len(seen) >= stopAfter
			mu.Unlock()
			if done {
				return
			}
			pctx, pcancel := context.WithTimeout(ctx, 500*time.Millisecond)
			fs := cl.PollFetches(pctx)
			pcancel()
			fs.EachRecord(func(r *kgo.Record) {
				mu.Lock()
				seen[string(r.Value)]++
				mu.Unlock()
			})
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				t.Errorf("commit: %v", err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); consume(n) }()
	}
	wg.Wait()
	t.Logf("consumed at %v", time.Now())
	for k, c := range seen {
		if c != 1 {
			t.Errorf("record %s consumed %d times", k, c)
		}
	}
	if len(seen) != n {
		t.Fatalf("consumed %d distinct records, want %d", len(seen), n)
	}

	// Committed offsets survive a restart.
	tb.stop()
	t.Logf("stopped at %v", time.Now())
	tb = startBroker(t, dir, nil)
	adm, err := kgo.NewClient(kgo.SeedBrokers(tb.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer adm.Close()
	var offs kadm.OffsetResponses
	for {
		offs, err = kadm.NewClient(adm).FetchOffsets(ctx, "grp")
		if err == nil || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // COORDINATOR_LOAD_IN_PROGRESS
	}
	if err != nil {
		t.Fatal(err)
	}
	total := int64(0)
	offs.Each(func(o kadm.OffsetResponse) { total += o.At })
	if total != n {
		t.Fatalf("committed offsets after restart sum to %d, want %d", total, n)
	}
}
