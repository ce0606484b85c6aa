package storage

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/vfs"
)

// testClock is a manual clock.
type testClock struct{ ms int64 }

func (c *testClock) Now() time.Time { return time.UnixMilli(c.ms) }

// batchSpec describes a test batch.
type batchSpec struct {
	n       int
	ts      int64
	key     func(i int) []byte // nil: null keys
	value   func(i int) []byte // nil: "v<i>"
	pid     int64              // producer ID, -1 for none
	epoch   int16
	seq     int32
	valSize int
}

func mkBatch(t testing.TB, s batchSpec) []byte {
	t.Helper()
	if s.n == 0 {
		s.n = 1
	}
	h := recordbatch.Header{BaseTimestamp: s.ts, MaxTimestamp: s.ts, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1, PartitionLeaderEpoch: -1}
	if s.pid >= 0 && (s.pid != 0 || s.seq != 0 || s.epoch != 0) {
		h.ProducerID, h.ProducerEpoch, h.BaseSequence = s.pid, s.epoch, s.seq
	}
	recs := make([]recordbatch.Record, s.n)
	for i := range recs {
		recs[i] = recordbatch.Record{OffsetDelta: int32(i), TimestampDelta: int64(i)}
		if s.key != nil {
			recs[i].Key = s.key(i)
		}
		switch {
		case s.value != nil:
			recs[i].Value = s.value(i)
		case s.valSize > 0:
			recs[i].Value = bytes.Repeat([]byte{byte('a' + i%26)}, s.valSize)
		default:
			recs[i].Value = []byte(fmt.Sprintf("v%d", i))
		}
	}
	b, err := recordbatch.Build(h, recs, recordbatch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func plain(t testing.TB, n int, ts int64) []byte {
	return mkBatch(t, batchSpec{n: n, ts: ts, pid: -1})
}

type env struct {
	t     testing.TB
	fs    *vfs.MemFS
	clock *testClock
	opts  ManagerOptions
	m     *Manager
}

var testID = PartitionID{Topic: "t-1", Partition: 3}

func newEnv(t testing.TB, flushOnAck bool) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewMem(), clock: &testClock{ms: 1_000_000}}
	e.opts = ManagerOptions{Dir: "/data", FS: e.fs, Now: e.clock.Now, FlushOnAck: flushOnAck,
		ConfigFor: func(PartitionID) (LogConfig, bool) { return e.cfg(), true }}
	e.open()
	return e
}

var envCfg = func() LogConfig {
	c := DefaultLogConfig()
	c.SegmentBytes = 1 << 20
	c.IndexIntervalBytes = 256
	return c
}()

func (e *env) cfg() LogConfig { return envCfg }

func (e *env) open() {
	e.t.Helper()
	m, err := OpenManager(e.opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
}

func (e *env) log(cfg LogConfig) *Log {
	e.t.Helper()
	l, err := e.m.Create(testID, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

func (e *env) close() {
	e.t.Helper()
	if err := e.m.Close(); err != nil {
		e.t.Fatal(err)
	}
}

// crash abandons the manager and reopens on what survives a crash.
func (e *env) crash(opts vfs.CrashOptions) {
	e.t.Helper()
	nfs := e.fs.CrashClone(opts)
	old := e.m
	e.fs = nfs
	e.opts.FS = nfs
	old.Close() // on the old FS: stops goroutines, writes nothing that matters
	e.open()
}

func (e *env) append(l *Log, b []byte) AppendResult {
	e.t.Helper()
	res, err := l.Append(b, AppendInput{LeaderEpoch: 1, NowMs: e.clock.ms})
	if err != nil {
		e.t.Fatal(err)
	}
	return res
}

// tb is what test helpers need from testing.TB or *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// readAll returns every batch from the log start to upTo, read with small
// reads, checking each read starts with the batch holding the offset.
func readAll(t tb, l *Log, upTo int64) [][]byte {
	t.Helper()
	var out [][]byte
	off := l.LogStartOffset()
	for off < upTo {
		sl, err := l.Read(off, 1, upTo)
		if err != nil {
			t.Fatalf("read %d: %v", off, err)
		}
		b, err := sl.ReadAll()
		sl.Release()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			break
		}
		bs, err := recordbatch.Split(b)
		if err != nil {
			t.Fatalf("read %d returned invalid batches: %v", off, err)
		}
		if len(bs) != 1 {
			t.Fatalf("read %d with maxBytes 1 returned %d batches", off, len(bs))
		}
		h, _ := recordbatch.ParseHeader(bs[0])
		if h.LastOffset() < off {
			t.Fatalf("read %d returned batch ending at %d", off, h.LastOffset())
		}
		out = append(out, bs[0])
		off = h.LastOffset() + 1
	}
	return out
}

func sameBatches(t tb, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			g, _ := recordbatch.ParseHeader(got[i])
			w, _ := recordbatch.ParseHeader(want[i])
			t.Fatalf("batch %d differs:\n got %+v\nwant %+v", i, g, w)
		}
	}
}

// producerOf returns a producer's state in l's table, loading the table if
// a clean open left it unread.
func producerOf(t tb, l *Log, pid int64) (int16, int32, bool) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	pt, err := l.producersLocked()
	if err != nil {
		t.Fatal(err)
	}
	return pt.Producer(pid)
}
