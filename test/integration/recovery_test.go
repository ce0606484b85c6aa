package integration

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRecoveryTornTail simulates what a crash in the middle of a write can
// leave at the end of a segment (the layout is internal/storage's: one
// <topic>-<partition> directory per partition holding <base offset>.log
// files), then checks that recovery keeps every acknowledged record, serves
// none of the garbage, and appends after the last valid batch.
func TestRecoveryTornTail(t *testing.T) {
	requireProcess(t)
	if harness.kind != "streambus" {
		t.Skipf("edits StreamBus segment files; the broker under test is %s", harness.kind)
	}
	b := startBroker(t, brokerOpts{})
	const partitions, perPartition = 4, 100
	topic := createTopic(t, b, partitions)
	acked := produceChecked(t, b, topic, "before", partitions, partitions*perPartition)
	b.Stop(syscall.SIGKILL, shutdownLimit)

	forged := recordBatch(time.Now().UnixMilli(), time.Now().UnixMilli())
	binary.BigEndian.PutUint64(forged, perPartition) // the next offset
	tails := map[int32]struct {
		what string
		data []byte
	}{
		0: {"half a batch header", bytes.Repeat([]byte{0xab}, 30)},
		1: {"a batch header claiming more bytes than follow", func() []byte {
			d := slices.Clone(forged)
			binary.BigEndian.PutUint32(d[8:], 1000)
			return d
		}()},
		2: {"a whole batch with a bad CRC", func() []byte {
			d := slices.Clone(forged)
			d[len(d)-1] ^= 0xff
			return d
		}()},
		3: {"zeros, as after a preallocated or unwritten extent", make([]byte, 4096)},
	}
	for p, tail := range tails {
		seg := lastSegment(t, b.DataDir, fmt.Sprintf("%s-%d", topic, p))
		f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatalf("open segment: %v", err)
		}
		_, err = f.Write(tail.data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			t.Fatalf("append to %s: %v", seg, err)
		}
		t.Logf("partition %d: appended %s (%d bytes) to %s", p, tail.what, len(tail.data), filepath.Base(seg))
	}

	b.Restart()
	checkDurable(t, b, topic, acked, true)
	if t.Failed() {
		return
	}
	// Appends continue right after the recovered end.
	more := produceChecked(t, b, topic, "after", partitions, partitions*10)
	for _, a := range more {
		if a.Offset < perPartition || a.Offset >= perPartition+10 {
			t.Errorf("record appended after recovery at partition %d offset %d, want offsets %d..%d", a.Partition, a.Offset, perPartition, perPartition+9)
		}
	}
	if code, _ := b.Stop(syscall.SIGTERM, shutdownLimit); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	b.Restart()
	checkDurable(t, b, topic, append(acked, more...), true)
}

// produceChecked produces n records with self-checking values round-robin
// over the partitions, acks=all, and returns them as acknowledged.
func produceChecked(t *testing.T, b *broker, topic, tag string, partitions int32, n int) []ackedRecord {
	t.Helper()
	cl := newKgo(t, b, kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.RequiredAcks(kgo.AllISRAcks()))
	rng := rand.New(rand.NewPCG(uint64(n), uint64(len(tag))))
	recs := make([]*kgo.Record, n)
	for i := range recs {
		key := fmt.Sprintf("%s-%05d", tag, i)
		recs[i] = &kgo.Record{Topic: topic, Partition: int32(i) % partitions, Key: []byte(key), Value: []byte(checkedValue(key, rng))}
	}
	res := cl.ProduceSync(testCtx(t, 30*time.Second), recs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	out := make([]ackedRecord, 0, n)
	for _, pr := range res {
		out = append(out, ackedRecord{pr.Record.Partition, pr.Record.Offset, string(pr.Record.Key), string(pr.Record.Value)})
	}
	cl.Close()
	return out
}

// lastSegment finds the directory named dirName under dataDir and returns
// its highest-based .log file.
func lastSegment(t *testing.T, dataDir, dirName string) string {
	t.Helper()
	var logs []string
	filepath.WalkDir(dataDir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && filepath.Base(filepath.Dir(path)) == dirName && filepath.Ext(path) == ".log" {
			logs = append(logs, path)
		}
		return nil
	})
	if len(logs) == 0 {
		t.Fatalf("no .log segment in a %s directory under %s", dirName, dataDir)
	}
	slices.Sort(logs) // zero-padded base offsets sort numerically
	return logs[len(logs)-1]
}
