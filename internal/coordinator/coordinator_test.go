package coordinator

import (
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/vfs"
)

// The tests run in synctest bubbles: time.Now and timers are virtual, and
// synctest.Wait returns once every runner, flusher and delivery goroutine
// is blocked, so "no reply yet" is a fact, not a guess after a sleep.

const testTopic = "__test_state"

// req is a request to the kv test machine.
type req struct {
	op, key, val string
	d            time.Duration
}

// world is what the kv machines of one test share with it.
type world struct {
	news      atomic.Int32  // machines created
	ticks     atomic.Int32  // Ticks
	lastTick  atomic.Int64  // now of the last Tick, Unix ns
	loadGate  chan struct{} // if set, Load waits for it
	stepGate  chan struct{} // "block" and "hold" wait for it
	loadedKey atomic.Pointer[[]string]
}

// kv is a key-value store: "set" appends a record and replies once it is
// durable; Load rebuilds the map.
type kv struct {
	w      *world
	data   map[string]string
	keys   []string // loaded keys, in order
	parked []uint64
	timers []timerReq
}

type timerReq struct {
	at time.Time
	to uint64
}

func (m *kv) Load(key, value []byte) error {
	if m.w.loadGate != nil {
		<-m.w.loadGate
	}
	if string(key) == "bad" {
		return errors.New("bad record")
	}
	m.keys = append(m.keys, string(key))
	if value == nil {
		delete(m.data, string(key))
	} else {
		m.data[string(key)] = string(value)
	}
	return nil
}

func (m *kv) Loaded(time.Time) {
	keys := slices.Clone(m.keys)
	m.w.loadedKey.Store(&keys)
}

func (m *kv) Step(now time.Time, to uint64, r req) Output[string] {
	var out Output[string]
	reply := func(to uint64, s string) { out.Replies = append(out.Replies, Reply[string]{to, s}) }
	switch r.op {
	case "block":
		<-m.w.stepGate
		fallthrough
	case "set":
		m.data[r.key] = r.val
		out.Records = []Record{{[]byte(r.key), []byte(r.val)}}
		reply(to, "ok")
	case "del":
		delete(m.data, r.key)
		out.Records = []Record{{[]byte(r.key), nil}}
		reply(to, "ok")
	case "get":
		v, ok := m.data[r.key]
		if !ok {
			v = "<none>"
		}
		reply(to, v)
	case "hold": // blocks the runner, then answers without records
		<-m.w.stepGate
		reply(to, "held")
	case "now":
		reply(to, now.Format(time.RFC3339))
	case "park":
		m.parked = append(m.parked, to)
	case "wake":
		for _, p := range m.parked {
			reply(p, "woken")
		}
		m.parked = nil
		reply(to, "ok")
	case "stray": // a reply to nobody, then one answered twice
		reply(to+1000, "stray")
		reply(to, "ok")
		reply(to, "again")
	case "after":
		m.timers = append(m.timers, timerReq{now.Add(r.d), to})
	}
	out.NextDeadline = m.next()
	return out
}

func (m *kv) Tick(now time.Time) Output[string] {
	m.w.ticks.Add(1)
	m.w.lastTick.Store(now.UnixNano())
	var out Output[string]
	keep := m.timers[:0]
	for _, tr := range m.timers {
		if now.Before(tr.at) {
			keep = append(keep, tr)
			continue
		}
		out.Replies = append(out.Replies, Reply[string]{tr.to, "fired"})
	}
	m.timers = keep
	out.NextDeadline = m.next()
	return out
}

func (m *kv) next() time.Time {
	var next time.Time
	for _, tr := range m.timers {
		if next.IsZero() || tr.at.Before(next) {
			next = tr.at
		}
	}
	return next
}

// env is a storage manager and a Runtime of kv machines, opened inside a
// bubble and closed by the test's cleanups.
type env struct {
	t   *testing.T
	w   *world
	mem *vfs.MemFS // nil: the OS filesystem
	dir string
	m   *storage.Manager
	cfg Config[req, string]
	rt  *Runtime[req, string]
}

func newEnv(t *testing.T, mem bool) *env {
	e := &env{t: t, w: &world{}, dir: filepath.Join(t.TempDir(), "logs")}
	if mem {
		e.mem = vfs.NewMem()
	}
	e.cfg = Config[req, string]{
		Name: "test coordinator", Topic: testTopic,
		New: func(int32) Machine[req, string] {
			e.w.news.Add(1)
			return &kv{w: e.w, data: map[string]string{}}
		},
	}
	e.openManager()
	t.Cleanup(func() { e.closeManager() })
	e.openRuntime()
	t.Cleanup(func() { e.rt.Close() }) // before closeManager: cleanups run last-in first-out
	return e
}

func (e *env) openManager() {
	e.t.Helper()
	opts := storage.ManagerOptions{Dir: e.dir, FlushOnAck: true}
	if e.mem != nil {
		opts.FS = e.mem
	}
	m, err := storage.OpenManager(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	e.m = m
}

func (e *env) closeManager() {
	e.t.Helper()
	if e.m == nil {
		return
	}
	if err := e.m.Close(); err != nil && e.mem == nil {
		e.t.Error(err)
	}
	e.m = nil
}

func (e *env) openRuntime() { e.rt = New(e.cfg) }

// log returns partition i of the test topic.
func (e *env) log(i int32) *storage.Log {
	e.t.Helper()
	cfg := storage.DefaultLogConfig()
	cfg.Delete, cfg.Compact = false, true
	l, err := e.m.Create(storage.PartitionID{Topic: testTopic, Partition: i}, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return l
}

// lead syncs the runtime to the shards and waits until they are loaded.
func (e *env) lead(shards ...Shard) {
	e.rt.Sync(shards)
	synctest.Wait()
}

type result struct {
	resp string
	ok   bool
}

// submit submits r to shard 0 and returns where its reply arrives,
// failing the test if the reply func is called more than once.
func (e *env) submit(r req) <-chan result {
	e.t.Helper()
	ch, err := e.trySubmit(0, r)
	if err != nil {
		e.t.Fatalf("submit %+v: %v", r, err)
	}
	return ch
}

func (e *env) trySubmit(shard int32, r req) (<-chan result, error) {
	ch := make(chan result, 1)
	var calls atomic.Int32
	err := e.rt.Submit(shard, r, func(resp string, ok bool) {
		if calls.Add(1) > 1 {
			e.t.Errorf("reply to %+v called twice", r)
			return
		}
		ch <- result{resp, ok}
	})
	return ch, err
}

// do submits r to shard 0 and returns its reply once everything settled.
func (e *env) do(r req) result {
	e.t.Helper()
	ch := e.submit(r)
	synctest.Wait()
	return e.reply(ch, r)
}

func (e *env) reply(ch <-chan result, r req) result {
	e.t.Helper()
	select {
	case res := <-ch:
		return res
	default:
		e.t.Fatalf("no reply to %+v", r)
		return result{}
	}
}

func (e *env) want(r req, resp string, ok bool) {
	e.t.Helper()
	if got := e.do(r); got != (result{resp, ok}) {
		e.t.Fatalf("%+v: got %+v, want {%s %v}", r, got, resp, ok)
	}
}

func noReply(t *testing.T, ch <-chan result, what string) {
	t.Helper()
	select {
	case res := <-ch:
		t.Fatalf("%s: unexpected reply %+v", what, res)
	default:
	}
}

// appendRaw appends records as one batch, as another writer would.
func appendRaw(t *testing.T, l *storage.Log, control bool, kvs ...string) {
	t.Helper()
	if _, err := l.Append(buildBatch(t, control, kvs...), storage.AppendInput{LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(l.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
}

func buildBatch(t *testing.T, control bool, kvs ...string) []byte {
	t.Helper()
	h := recordbatch.Header{Magic: 2, ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
	if control {
		h.Attributes |= recordbatch.ControlBit
	}
	var rs []recordbatch.Record
	for i := 0; i < len(kvs); i += 2 {
		rs = append(rs, recordbatch.Record{OffsetDelta: int32(i / 2), Key: []byte(kvs[i]), Value: []byte(kvs[i+1])})
	}
	b, err := recordbatch.Build(h, rs, recordbatch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func set(k, v string) req { return req{op: "set", key: k, val: v} }
func get(k string) req    { return req{op: "get", key: k} }

func TestLoadReplaysAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, false) // the OS filesystem: a real restart
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: e.log(0)})
		e.want(set("a", "1"), "ok", true)
		e.want(set("b", "2"), "ok", true)
		e.want(req{op: "del", key: "a"}, "ok", true)
		e.want(set("c", "3"), "ok", true)

		e.rt.Close()
		e.closeManager()
		e.openManager()
		e.openRuntime()
		e.lead(Shard{Index: 0, LeaderEpoch: 2, Log: e.log(0)})
		e.want(get("a"), "<none>", true)
		e.want(get("b"), "2", true)
		e.want(get("c"), "3", true)
		if got, want := *e.w.loadedKey.Load(), []string{"a", "b", "a", "c"}; !slices.Equal(got, want) {
			t.Fatalf("loaded keys %q, want %q", got, want)
		}
	})
}

func TestLoadSkipsControlBatchesAndBadRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		l := e.log(0)
		appendRaw(t, l, false, "a", "1", "bad", "x", "b", "2")
		appendRaw(t, l, true, "ctl", "x")
		appendRaw(t, l, false, "c", "3")
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: l})
		if got, want := *e.w.loadedKey.Load(), []string{"a", "b", "c"}; !slices.Equal(got, want) {
			t.Fatalf("loaded keys %q, want %q", got, want)
		}
		e.want(get("b"), "2", true)
	})
}

func TestLoadFailsOnCorruptBatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		l := e.log(0)
		appendRaw(t, l, false, "a", "1")
		b := buildBatch(t, false, "b", "2")
		binary.BigEndian.PutUint32(b[57:], 1000) // record count: more than the bytes hold
		if _, err := l.Append(b, storage.AppendInput{LeaderEpoch: 1}); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(l.LogEndOffset()); err != nil {
			t.Fatal(err)
		}
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: l})
		if _, err := e.trySubmit(0, get("a")); !errors.Is(err, ErrNotCoordinator) {
			t.Fatalf("submit after a failed load: %v, want ErrNotCoordinator", err)
		}
		// The shard stays listed until Sync drops or replaces it.
		if got := e.rt.Shards(); !slices.Equal(got, []int32{0}) {
			t.Fatalf("shards %v", got)
		}
	})
}

func TestNotCoordinatorAndLoading(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		l := e.log(0)
		appendRaw(t, l, false, "a", "1")
		if _, err := e.trySubmit(0, get("a")); !errors.Is(err, ErrNotCoordinator) {
			t.Fatalf("submit before Sync: %v, want ErrNotCoordinator", err)
		}
		e.w.loadGate = make(chan struct{})
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: l})
		if _, err := e.trySubmit(0, get("a")); !errors.Is(err, ErrLoading) {
			t.Fatalf("submit while loading: %v, want ErrLoading", err)
		}
		if _, err := e.trySubmit(1, get("a")); !errors.Is(err, ErrNotCoordinator) {
			t.Fatalf("submit to a shard not led: %v, want ErrNotCoordinator", err)
		}
		close(e.w.loadGate)
		synctest.Wait()
		e.want(get("a"), "1", true)

		held := e.submit(req{op: "park"})
		e.lead() // no longer led
		if res := e.reply(held, req{op: "park"}); res.ok {
			t.Fatalf("held request of a stopped runner: %+v", res)
		}
		if _, err := e.trySubmit(0, get("a")); !errors.Is(err, ErrNotCoordinator) {
			t.Fatalf("submit after stop: %v, want ErrNotCoordinator", err)
		}
	})
}

func TestShards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		e.lead(Shard{Index: 2, Log: e.log(2)}, Shard{Index: 0, Log: e.log(0)}, Shard{Index: 1, Log: e.log(1)})
		if got := e.rt.Shards(); !slices.Equal(got, []int32{0, 1, 2}) {
			t.Fatalf("shards %v", got)
		}
		e.lead(Shard{Index: 1, Log: e.log(1)})
		if got := e.rt.Shards(); !slices.Equal(got, []int32{1}) {
			t.Fatalf("shards %v", got)
		}
		if got := e.w.news.Load(); got != 3 {
			t.Fatalf("%d machines, want 3: an unchanged shard keeps its runner", got)
		}
	})
}

func TestRepliesOnlyOnceDurableAndReplicated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		var gateSync atomic.Bool
		fsyncGate := make(chan struct{})
		e.mem.SetInjector(func(op vfs.Op, name string) error {
			if op == vfs.OpSync && strings.HasSuffix(name, ".wal") && gateSync.Load() {
				<-fsyncGate
			}
			return nil
		})
		replGate := make(chan error)
		var replUpTo atomic.Int64
		l := e.log(0)
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: l, WaitReplicated: func(upTo int64) error {
			replUpTo.Store(upTo)
			return <-replGate
		}})

		gateSync.Store(true)
		ch := e.submit(set("a", "1"))
		synctest.Wait()
		noReply(t, ch, "before fsync")
		if l.HighWatermark() != 0 {
			t.Fatalf("high watermark %d before fsync", l.HighWatermark())
		}
		if replUpTo.Load() != 0 {
			t.Fatal("WaitReplicated called before the fsync")
		}
		// A step without records answers at once, from the state that
		// already holds the unanswered write.
		e.want(get("a"), "1", true)

		close(fsyncGate)
		synctest.Wait()
		noReply(t, ch, "before replication")
		if got := replUpTo.Load(); got != 1 {
			t.Fatalf("WaitReplicated(%d), want 1", got)
		}
		replGate <- nil
		synctest.Wait()
		if res := e.reply(ch, set("a", "1")); res != (result{"ok", true}) {
			t.Fatalf("reply %+v", res)
		}
	})
}

func TestFailedReplicationFailsReplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: e.log(0), WaitReplicated: func(int64) error {
			return errors.New("not enough replicas")
		}})
		e.want(set("a", "1"), "", false)
		// The Machine is kept: the record is in the leader's log.
		e.want(get("a"), "1", true)
		if got := e.w.news.Load(); got != 1 {
			t.Fatalf("%d machines, want 1", got)
		}
	})
}

func TestFailedAppendReloads(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		var fail atomic.Bool
		e.mem.SetInjector(func(op vfs.Op, name string) error {
			if op == vfs.OpWrite && strings.HasSuffix(name, ".log") && fail.Load() {
				return vfs.ErrInjected
			}
			return nil
		})
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: e.log(0)})
		e.want(set("a", "1"), "ok", true)
		held := e.submit(req{op: "park"})
		synctest.Wait()

		fail.Store(true)
		e.want(set("b", "2"), "", false)
		if res := e.reply(held, req{op: "park"}); res.ok {
			t.Fatalf("request held by the dropped machine: %+v", res)
		}
		if got := e.w.news.Load(); got != 2 {
			t.Fatalf("%d machines, want 2: a failed append reloads", got)
		}
		e.want(get("b"), "<none>", true)
		e.want(get("a"), "1", true)
	})
}

func TestFailedReloadExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		var fail atomic.Bool
		e.mem.SetInjector(func(op vfs.Op, name string) error {
			if (op == vfs.OpWrite || op == vfs.OpRead) && strings.HasSuffix(name, ".log") && fail.Load() {
				return vfs.ErrInjected
			}
			return nil
		})
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: e.log(0)})
		e.want(set("a", "1"), "ok", true)

		// Queue a write and a read behind a step in progress, so that the
		// runner takes them as one batch.
		e.w.stepGate = make(chan struct{})
		hold := e.submit(req{op: "hold"})
		synctest.Wait()
		write := e.submit(set("b", "2"))
		read := e.submit(get("a"))
		fail.Store(true)
		close(e.w.stepGate)
		synctest.Wait()
		if res := e.reply(hold, req{op: "hold"}); res != (result{"held", true}) {
			t.Fatalf("hold: %+v", res)
		}
		// The write fails, the reload cannot read the log: the runner
		// exits, failing the read it took but never stepped.
		for _, ch := range []<-chan result{write, read} {
			if res := e.reply(ch, get("a")); res.ok {
				t.Fatalf("request of an exited runner: %+v", res)
			}
		}
		if _, err := e.trySubmit(0, get("a")); !errors.Is(err, ErrNotCoordinator) {
			t.Fatalf("submit after the runner exited: %v, want ErrNotCoordinator", err)
		}
	})
}

func TestEpochChangeReplacesRunner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		l := e.log(0)
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: l})
		e.want(set("a", "1"), "ok", true)
		held := e.submit(req{op: "park"})
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: l}) // unchanged: kept
		noReply(t, held, "same epoch")

		// A step in progress when the epoch changes: its successor must
		// load only after the step's records are appended.
		e.w.stepGate = make(chan struct{})
		blocked := e.submit(req{op: "block", key: "b", val: "2"})
		synctest.Wait()
		e.rt.Sync([]Shard{{Index: 0, LeaderEpoch: 2, Log: l}})
		synctest.Wait()
		if _, err := e.trySubmit(0, get("a")); !errors.Is(err, ErrLoading) {
			t.Fatalf("submit while the old runner steps: %v, want ErrLoading", err)
		}
		if got := e.w.news.Load(); got != 1 {
			t.Fatalf("%d machines: the successor started before its predecessor exited", got)
		}
		close(e.w.stepGate)
		synctest.Wait()
		if res := e.reply(held, req{op: "park"}); res.ok {
			t.Fatalf("request held by the replaced runner: %+v", res)
		}
		if res := e.reply(blocked, req{op: "block"}); res != (result{"ok", true}) {
			t.Fatalf("step that finished before the old runner exited: %+v", res)
		}
		e.want(get("a"), "1", true)
		e.want(get("b"), "2", true)

		e.want(set("c", "3"), "ok", true)
		if got := lastEpoch(t, l); got != 2 {
			t.Fatalf("last batch in leader epoch %d, want 2", got)
		}
	})
}

func lastEpoch(t *testing.T, l *storage.Log) int32 {
	t.Helper()
	s, err := l.Read(l.LogEndOffset()-1, 1, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Release()
	b, err := s.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	h, err := recordbatch.ParseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	return h.PartitionLeaderEpoch
}

func TestCloseFailsHeldRequestsAndWaitsForDeliveries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		replGate := make(chan error)
		e.lead(Shard{Index: 0, LeaderEpoch: 1, Log: e.log(0), WaitReplicated: func(int64) error { return <-replGate }})
		held := e.submit(req{op: "park"})
		writing := e.submit(set("a", "1"))
		synctest.Wait()

		var closed atomic.Bool
		go func() {
			e.rt.Close()
			closed.Store(true)
		}()
		synctest.Wait()
		if res := e.reply(held, req{op: "park"}); res.ok {
			t.Fatalf("held request at Close: %+v", res)
		}
		if closed.Load() {
			t.Fatal("Close returned while a delivery goroutine runs")
		}
		replGate <- errors.New("shutting down")
		synctest.Wait()
		if !closed.Load() {
			t.Fatal("Close did not return")
		}
		if res := e.reply(writing, set("a", "1")); res.ok {
			t.Fatalf("write whose replication failed: %+v", res)
		}
		if _, err := e.trySubmit(0, get("a")); !errors.Is(err, ErrNotCoordinator) {
			t.Fatalf("submit after Close: %v, want ErrNotCoordinator", err)
		}
		e.rt.Sync([]Shard{{Index: 0, LeaderEpoch: 2, Log: e.log(0)}})
		if got := e.rt.Shards(); len(got) != 0 {
			t.Fatalf("Sync after Close started %v", got)
		}
	})
}

func TestStrayRepliesDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		e.lead(Shard{Index: 0, Log: e.log(0)})
		e.want(req{op: "stray"}, "ok", true)
		held := e.submit(req{op: "park"})
		e.want(req{op: "wake"}, "ok", true)
		if res := e.reply(held, req{op: "park"}); res != (result{"woken", true}) {
			t.Fatalf("parked request answered by a later step: %+v", res)
		}
	})
}

func TestTimersUseInjectedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, true)
		skew := time.Hour
		e.rt.Close()
		e.cfg.Now = func() time.Time { return time.Now().Add(skew) }
		e.openRuntime()
		e.lead(Shard{Index: 0, Log: e.log(0)})
		e.want(req{op: "now"}, time.Now().Add(skew).Format(time.RFC3339), true)

		ticks := e.w.ticks.Load()
		ch := e.submit(req{op: "after", d: 2500 * time.Millisecond})
		time.Sleep(2499 * time.Millisecond)
		synctest.Wait()
		noReply(t, ch, "before the deadline")
		if got := e.w.ticks.Load(); got != ticks {
			t.Fatalf("%d ticks before the deadline: the deadline postpones the idle tick", got-ticks)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if res := e.reply(ch, req{op: "after"}); res != (result{"fired", true}) {
			t.Fatalf("timer reply %+v", res)
		}
		if got, want := time.Unix(0, e.w.lastTick.Load()), time.Now().Add(skew); !got.Equal(want) {
			t.Fatalf("Tick at %v, want the injected clock's %v", got, want)
		}

		// Idle: one Tick per IdleInterval.
		ticks = e.w.ticks.Load()
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if got := e.w.ticks.Load() - ticks; got != 10 {
			t.Fatalf("%d idle ticks in 10s, want 10", got)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	var c Config[req, string]
	c.EnsureDefaults()
	if err := c.Validate(); err == nil {
		t.Fatal("a Config without New validated")
	}
	c.New = func(int32) Machine[req, string] { return nil }
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.IdleInterval != time.Second || c.MaxDecompressedBytes != 64<<20 {
		t.Fatalf("defaults %+v", c)
	}
}
