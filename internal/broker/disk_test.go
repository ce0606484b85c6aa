package broker

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streambus/streambus/internal/diskspace"
	"github.com/streambus/streambus/internal/storage"
)

// TestProduceRefusedBelowFreeSpaceReserve: while the data directory's free
// space is below log.dir.min.free.bytes, produce answers the retriable
// KAFKA_STORAGE_ERROR and writes nothing; once space is back it succeeds.
func TestProduceRefusedBelowFreeSpaceReserve(t *testing.T) {
	var free atomic.Int64
	free.Store(1 << 30)
	dir := t.TempDir()
	disk, err := diskspace.New(diskspace.Config{Dir: dir, Reserve: 64 << 20, Interval: time.Nanosecond,
		Statfs: func(string) (int64, error) { return free.Load(), nil }})
	if err != nil {
		t.Fatal(err)
	}
	tb := startBroker(t, dir, func(c *Config) { c.Disk = disk })
	cl, err := kgo.NewClient(kgo.SeedBrokers(tb.addr), kgo.AllowAutoTopicCreation(), kgo.RecordRetries(0), kgo.DisableIdempotentWrite())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	produce := func() error {
		return cl.ProduceSync(ctx, &kgo.Record{Topic: "reserve", Value: []byte("v")}).FirstErr()
	}
	if err := produce(); err != nil {
		t.Fatalf("produce with space: %v", err)
	}
	free.Store(10 << 20)
	if err := produce(); !errors.Is(err, kerr.KafkaStorageError) {
		t.Fatalf("produce below the reserve: %v, want KAFKA_STORAGE_ERROR", err)
	}
	if end := tb.logs.Get(storage.PartitionID{Topic: "reserve", Partition: 0}).LogEndOffset(); end != 1 {
		t.Fatalf("log end %d after the refused produce, want 1", end)
	}
	free.Store(1 << 30)
	if err := produce(); err != nil {
		t.Fatalf("produce once space is back: %v", err)
	}
}
