package storage

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchBatch is a 16 KiB batch of 16 records of 1 KiB.
func benchBatch(b *testing.B) []byte {
	return mkBatch(b, batchSpec{n: 16, ts: 1, pid: -1, valSize: 1000})
}

// BenchmarkAppendSync measures acknowledged (fsynced) appends on the real
// filesystem with 1 and 16 concurrent appenders: with group commit the
// 16-appender case shares fsyncs and gets far more throughput.
func BenchmarkAppendSync(b *testing.B) {
	for _, appenders := range []int{1, 16} {
		b.Run(fmt.Sprintf("appenders=%d", appenders), func(b *testing.B) {
			var fsyncs atomic.Int64
			m, err := OpenManager(ManagerOptions{Dir: b.TempDir(), FlushOnAck: true,
				OnFsync: func(time.Duration) { fsyncs.Add(1) }})
			if err != nil {
				b.Fatal(err)
			}
			defer m.Close()
			cfg := DefaultLogConfig()
			cfg.SegmentBytes = 64 << 20
			l, _ := m.Create(testID, cfg)
			batch := benchBatch(b)
			b.SetBytes(int64(len(batch)))
			b.ResetTimer()
			var wg sync.WaitGroup
			per := b.N / appenders
			for w := 0; w < appenders; w++ {
				n := per
				if w == 0 {
					n += b.N % appenders
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := append([]byte(nil), batch...)
					for i := 0; i < n; i++ {
						res, err := l.Append(buf, AppendInput{NowMs: 1})
						if err == nil {
							err = l.Sync(res.LastOffset + 1)
						}
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(fsyncs.Load())/float64(b.N), "fsyncs/op")
		})
	}
}

// BenchmarkRead measures 1 MiB reads (index lookup and header scan; the
// bytes are copied out, as a non-sendfile fetch would).
func BenchmarkRead(b *testing.B) {
	m, err := OpenManager(ManagerOptions{Dir: b.TempDir(), FlushOnAck: false})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	cfg := DefaultLogConfig()
	cfg.SegmentBytes = 16 << 20
	l, _ := m.Create(testID, cfg)
	batch := benchBatch(b)
	for i := 0; i < 4096; i++ { // 64 MiB
		if _, err := l.Append(batch, AppendInput{NowMs: 1}); err != nil {
			b.Fatal(err)
		}
	}
	end := l.LogEndOffset()
	b.SetBytes(1 << 20)
	b.ResetTimer()
	off := int64(0)
	for i := 0; i < b.N; i++ {
		sl, err := l.Read(off, 1<<20, end)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := sl.ReadAll(); err != nil {
			b.Fatal(err)
		}
		sl.Release()
		off = (off + 997*16) % end
	}
}

// BenchmarkOpenClean measures opening a cleanly closed 512 MiB log of 32
// segments: no scanning, so it should take milliseconds regardless of size.
func BenchmarkOpenClean(b *testing.B) {
	dir := b.TempDir()
	m, err := OpenManager(ManagerOptions{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultLogConfig()
	cfg.SegmentBytes = 16 << 20
	l, _ := m.Create(testID, cfg)
	batch := benchBatch(b)
	for i := 0; i < 32*1024; i++ {
		if _, err := l.Append(batch, AppendInput{NowMs: 1}); err != nil {
			b.Fatal(err)
		}
	}
	if err := m.Close(); err != nil {
		b.Fatal(err)
	}
	opts := ManagerOptions{Dir: dir, ConfigFor: func(PartitionID) (LogConfig, bool) { return cfg, true }}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m, err := OpenManager(opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if m.Get(testID).LogEndOffset() != 32*1024*16 {
			b.Fatal("wrong end offset")
		}
		m.Close()
		b.StartTimer()
	}
}
