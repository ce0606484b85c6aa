package storage

import (
	"flag"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/streambus/streambus/internal/vfs"
)

// benchPartitions is how many partitions BenchmarkOpenManyPartitions
// reopens: go test -run - -bench OpenManyPartitions ./internal/storage
// -args -partitions=100000 for the restart case.
var benchPartitions = flag.Int("partitions", 10000, "partitions for BenchmarkOpenManyPartitions")

// openFDs counts this process's open file descriptors, or -1 where
// /proc/self/fd does not exist.
func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// liveBytes is the heap in use plus goroutine stacks, after a GC.
func liveBytes() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

// BenchmarkCreatePartitions creates b.N new, empty partitions in one
// Manager, on the real filesystem (fs=os) and in memory (fs=mem, the
// storage code alone): ns/op is the cost of one Manager.Create. It also
// reports what each idle partition keeps: live heap and goroutine stack
// bytes (B/partition) and open file descriptors (fds/partition).
func BenchmarkCreatePartitions(b *testing.B) {
	for _, fsName := range []string{"os", "mem"} {
		b.Run("fs="+fsName, func(b *testing.B) {
			opts := ManagerOptions{Dir: b.TempDir(), FlushOnAck: true}
			if fsName == "mem" {
				opts.FS, opts.Dir = vfs.NewMem(), "/data"
			}
			m, err := OpenManager(opts)
			if err != nil {
				b.Fatal(err)
			}
			cfg := DefaultLogConfig()
			fds, mem := openFDs(), liveBytes()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := m.Create(PartitionID{Topic: "bench", Partition: int32(i)}, cfg); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(openFDs()-fds)/float64(b.N), "fds/partition")
			b.ReportMetric(float64(int64(liveBytes())-int64(mem))/float64(b.N), "B/partition")
			if err := m.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkOpenManyPartitions measures a clean restart: OpenManager of a
// data directory holding -partitions cleanly closed partitions, each with
// one batch (copies of one partition's files, so that the setup costs no
// fsyncs). ns/op is one whole OpenManager; it also reports what each
// reopened idle partition keeps in memory and descriptors.
func BenchmarkOpenManyPartitions(b *testing.B) {
	n := *benchPartitions
	dir := b.TempDir()
	opts := ManagerOptions{Dir: dir, FlushOnAck: true}
	m, err := OpenManager(opts)
	if err != nil {
		b.Fatal(err)
	}
	l, err := m.Create(PartitionID{Topic: "restart", Partition: 0}, DefaultLogConfig())
	if err != nil {
		b.Fatal(err)
	}
	if _, err := l.Append(plain(b, 4, 1), AppendInput{LeaderEpoch: 1, NowMs: 1}); err != nil {
		b.Fatal(err)
	}
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	template := filepath.Join(dir, PartitionDirName(PartitionID{Topic: "restart", Partition: 0}))
	ents, err := os.ReadDir(template)
	if err != nil {
		b.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range ents {
		if files[e.Name()], err = os.ReadFile(filepath.Join(template, e.Name())); err != nil {
			b.Fatal(err)
		}
	}
	for i := 1; i < n; i++ {
		pd := filepath.Join(dir, PartitionDirName(PartitionID{Topic: "restart", Partition: int32(i)}))
		if err := os.Mkdir(pd, 0o755); err != nil {
			b.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(pd, name), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fds, mem := openFDs(), liveBytes()
		b.StartTimer()
		m, err := OpenManager(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := len(m.Partitions()); got != n {
			b.Fatalf("%d partitions reopened, want %d", got, n)
		}
		if i == b.N-1 {
			b.ReportMetric(float64(openFDs()-fds)/float64(n), "fds/partition")
			b.ReportMetric(float64(int64(liveBytes())-int64(mem))/float64(n), "B/partition")
		}
		if err := m.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/partition")
}
