package replication

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
	"go.uber.org/goleak"

	"github.com/streambus/streambus/internal/recordbatch"
	"github.com/streambus/streambus/internal/storage"
	"github.com/streambus/streambus/internal/vfs"
	"github.com/streambus/streambus/internal/wire"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var pid = storage.PartitionID{Topic: "orders", Partition: 2}

// fakeLeader serves Fetch v12 and ListOffsets v4 for one partition from
// a storage.Log, as a leader broker does for followers, and feeds the
// fetches to a LeaderState.
type fakeLeader struct {
	t    *testing.T
	ln   net.Listener
	log  *storage.Log
	wg   sync.WaitGroup
	mu   sync.Mutex
	ls   *LeaderState
	ep   int32
	errc int16          // when non-zero, every fetch answers this error
	seen map[string]int // remote IP → fetches
	ids  map[int32]int  // replica_id → fetches
	eps  map[int32]int  // current_leader_epoch → fetches
	cons []net.Conn
	quit chan struct{} // closed by close: ends long polls
}

func newFakeLeader(t *testing.T, l *storage.Log, epoch int32) *fakeLeader {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ls, err := NewLeaderState(LeaderConfig{}, 1, Assignment{Leader: 1, LeaderEpoch: epoch, Replicas: []int32{1, 2}, ISR: []int32{1, 2}},
		l.LogEndOffset(), 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fl := &fakeLeader{t: t, ln: ln, log: l, ls: ls, ep: epoch, seen: map[string]int{}, ids: map[int32]int{}, eps: map[int32]int{}, quit: make(chan struct{})}
	fl.wg.Add(1)
	go fl.accept()
	return fl
}

func (fl *fakeLeader) close() {
	close(fl.quit)
	fl.ln.Close()
	fl.mu.Lock()
	for _, c := range fl.cons {
		c.Close()
	}
	fl.mu.Unlock()
	fl.wg.Wait()
}

func (fl *fakeLeader) accept() {
	defer fl.wg.Done()
	for {
		c, err := fl.ln.Accept()
		if err != nil {
			return
		}
		fl.mu.Lock()
		fl.cons = append(fl.cons, c)
		fl.mu.Unlock()
		fl.wg.Add(1)
		go fl.serve(c)
	}
}

func (fl *fakeLeader) serve(c net.Conn) {
	defer fl.wg.Done()
	defer c.Close()
	ip := c.RemoteAddr().(*net.TCPAddr).IP.String()
	supported := func(k int16) (wire.VersionRange, bool) {
		switch k {
		case kmsg.Fetch.Int16():
			return wire.VersionRange{Min: 12, Max: 12}, true
		case kmsg.ListOffsets.Int16():
			return wire.VersionRange{Min: 4, Max: 4}, true
		}
		return wire.VersionRange{}, false
	}
	for {
		n, err := wire.ReadSize(c, 1<<20)
		if err != nil {
			return
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(c, frame); err != nil {
			return
		}
		req, err := wire.Decode(frame, supported)
		if err != nil {
			fl.t.Errorf("fake leader: %v", err)
			return
		}
		var resp kmsg.Response
		switch m := req.Msg.(type) {
		case *kmsg.FetchRequest:
			fl.mu.Lock()
			fl.seen[ip]++
			fl.ids[m.ReplicaID]++
			fl.eps[m.Topics[0].Partitions[0].CurrentLeaderEpoch]++
			fl.mu.Unlock()
			resp = fl.fetch(m)
		case *kmsg.ListOffsetsRequest:
			resp = fl.listOffsets(m)
		}
		if _, err := c.Write(wire.AppendResponse(nil, req.CorrelationID, resp)); err != nil {
			return
		}
	}
}

func (fl *fakeLeader) fetch(req *kmsg.FetchRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	ch := fl.log.Changed()
	rt := kmsg.NewFetchResponseTopic()
	rt.Topic = pid.Topic
	rp := kmsg.NewFetchResponseTopicPartition()
	rp.Partition = pid.Partition
	p := req.Topics[0].Partitions[0]
	fl.mu.Lock()
	errc, ep := fl.errc, fl.ep
	fl.mu.Unlock()
	end := fl.log.LogEndOffset()
	switch {
	case errc != 0:
		rp.ErrorCode = errc
	case p.CurrentLeaderEpoch < ep:
		rp.ErrorCode = kerr.FencedLeaderEpoch.Code
	case p.CurrentLeaderEpoch > ep:
		rp.ErrorCode = kerr.UnknownLeaderEpoch.Code
	default:
		if p.LastFetchedEpoch >= 0 {
			if e, eo := fl.log.EndOffsetForEpoch(p.LastFetchedEpoch); e != p.LastFetchedEpoch || eo < p.FetchOffset {
				rp.DivergingEpoch.Epoch, rp.DivergingEpoch.EndOffset = e, eo
				break
			}
		}
		sl, err := fl.log.Read(p.FetchOffset, int(p.PartitionMaxBytes), end)
		if errors.Is(err, storage.ErrOffsetOutOfRange) {
			rp.ErrorCode = kerr.OffsetOutOfRange.Code
			break
		} else if err != nil {
			fl.t.Errorf("fake leader read: %v", err)
			break
		}
		rp.RecordBatches, _ = sl.ReadAll()
		sl.Release()
		fl.mu.Lock()
		fl.ls.SetLeaderEnd(end, time.Now())
		fl.ls.FollowerFetched(req.ReplicaID, p.FetchOffset, p.LogStartOffset, time.Now())
		rp.HighWatermark = fl.ls.HighWatermark()
		fl.mu.Unlock()
		if len(rp.RecordBatches) == 0 {
			// Long poll, bounded by max wait.
			select {
			case <-ch:
			case <-fl.quit:
			case <-time.After(time.Duration(req.MaxWaitMillis) * time.Millisecond):
			}
		}
	}
	rp.LogStartOffset = fl.log.LogStartOffset()
	rp.LastStableOffset = rp.HighWatermark
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	return resp
}

func (fl *fakeLeader) listOffsets(req *kmsg.ListOffsetsRequest) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	rt := kmsg.NewListOffsetsResponseTopic()
	rt.Topic = pid.Topic
	rp := kmsg.NewListOffsetsResponseTopicPartition()
	rp.Partition = pid.Partition
	switch ts := req.Topics[0].Partitions[0].Timestamp; ts {
	case -2:
		rp.Offset = fl.log.LogStartOffset()
	default:
		rp.Offset = fl.log.LogEndOffset()
	}
	rt.Partitions = append(rt.Partitions, rp)
	resp.Topics = append(resp.Topics, rt)
	return resp
}

type node struct {
	m   *storage.Manager
	log *storage.Log
}

func newNode(t *testing.T, flushOnAck bool) *node {
	t.Helper()
	m, err := storage.OpenManager(storage.ManagerOptions{Dir: "/d", FS: vfs.NewMem(), FlushOnAck: flushOnAck})
	if err != nil {
		t.Fatal(err)
	}
	cfg := storage.DefaultLogConfig()
	cfg.SegmentBytes = 2000
	l, err := m.Create(pid, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return &node{m: m, log: l}
}

func batch(t *testing.T, n int, val string) []byte {
	t.Helper()
	recs := make([]recordbatch.Record, n)
	for i := range recs {
		recs[i] = recordbatch.Record{OffsetDelta: int32(i), Value: []byte(val)}
	}
	b, err := recordbatch.Build(recordbatch.Header{ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}, recs, recordbatch.CodecNone)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func appendN(t *testing.T, l *storage.Log, epoch int32, batches int, val string) {
	t.Helper()
	for i := 0; i < batches; i++ {
		if _, err := l.Append(batch(t, 1+i%3, val), storage.AppendInput{LeaderEpoch: epoch, NowMs: 1}); err != nil {
			t.Fatal(err)
		}
	}
}

func allBytes(t *testing.T, l *storage.Log) []byte {
	t.Helper()
	sl, err := l.Read(l.LogStartOffset(), 1<<30, l.LogEndOffset())
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Release()
	b, err := sl.ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond; the bound only keeps a broken test from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never happened: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func testFetcher(t *testing.T, localAddr string) *Fetcher {
	t.Helper()
	f, err := NewFetcher(FetcherConfig{NodeID: 2, LocalAddr: localAddr, MaxWait: 20 * time.Millisecond,
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, PartitionMaxBytes: 300})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func caughtUp(t *testing.T, leader, follower *storage.Log) {
	t.Helper()
	waitFor(t, "follower catches up", func() bool { return follower.LogEndOffset() == leader.LogEndOffset() })
	if !bytes.Equal(allBytes(t, follower), allBytes(t, leader)) {
		t.Fatal("follower bytes differ from the leader's")
	}
}

func TestFetcherReplicates(t *testing.T) {
	leader, follower := newNode(t, false), newNode(t, true)
	appendN(t, leader.log, 1, 20, "first")
	fl := newFakeLeader(t, leader.log, 1)
	defer fl.close()
	f := testFetcher(t, "127.0.0.2")
	if err := f.Follow(Leader{ID: 1, Addr: fl.ln.Addr().String()}, Followed{Log: follower.log, LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, leader.log, follower.log)
	appendN(t, leader.log, 1, 10, "second")
	caughtUp(t, leader.log, follower.log)
	// The follower's next fetch reports the end, durable in ack mode:
	// the leader's HW reaches it.
	waitFor(t, "HW reaches the end", func() bool {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		return fl.ls.HighWatermark() == leader.log.LogEndOffset()
	})
	if follower.log.HighWatermark() != follower.log.LogEndOffset() {
		t.Fatalf("follower durable %d < end %d", follower.log.HighWatermark(), follower.log.LogEndOffset())
	}
	waitFor(t, "follower learns the HW", func() bool {
		st, ok := f.Status(pid)
		return ok && st.HighWatermark == leader.log.LogEndOffset() && st.Err == nil
	})
	fl.mu.Lock()
	seen, ids := fl.seen["127.0.0.2"], fl.ids[2]
	fl.mu.Unlock()
	if seen == 0 || ids != seen {
		t.Fatalf("fetches from 127.0.0.2: %d, with replica_id 2: %d", seen, ids)
	}
	f.Unfollow(pid)
	if _, ok := f.Status(pid); ok {
		t.Fatal("status after unfollow")
	}
}

func TestFetcherTruncatesAtDivergence(t *testing.T) {
	leader, follower := newNode(t, false), newNode(t, false)
	// Both have epoch 1's records; the follower then led epoch 2 and
	// wrote records nobody else got; the leader of epoch 3 wrote others.
	appendN(t, leader.log, 1, 5, "shared")
	appendN(t, follower.log, 1, 5, "shared")
	appendN(t, follower.log, 2, 4, "lost")
	appendN(t, leader.log, 3, 6, "new")
	fl := newFakeLeader(t, leader.log, 3)
	defer fl.close()
	f := testFetcher(t, "")
	if err := f.Follow(Leader{ID: 1, Addr: fl.ln.Addr().String()}, Followed{Log: follower.log, LeaderEpoch: 3}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, leader.log, follower.log)
	if e, end := follower.log.EndOffsetForEpoch(2); e != 1 {
		t.Fatalf("epoch 2 still known: %d %d", e, end)
	}
}

func TestFetcherOffsetOutOfRange(t *testing.T) {
	leader, follower := newNode(t, false), newNode(t, false)
	appendN(t, leader.log, 1, 30, "x")
	if err := leader.log.Sync(leader.log.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	if _, err := leader.log.DeleteRecordsBefore(25); err != nil {
		t.Fatal(err)
	}
	fl := newFakeLeader(t, leader.log, 1)
	defer fl.close()
	f := testFetcher(t, "")
	if err := f.Follow(Leader{ID: 1, Addr: fl.ln.Addr().String()}, Followed{Log: follower.log, LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, leader.log, follower.log)
	if follower.log.LogStartOffset() != leader.log.LogStartOffset() || leader.log.LogStartOffset() != 25 {
		t.Fatalf("follower starts at %d, leader at %d", follower.log.LogStartOffset(), leader.log.LogStartOffset())
	}
}

func TestFetcherPausesUntilMetadataChanges(t *testing.T) {
	leader, follower := newNode(t, false), newNode(t, false)
	appendN(t, leader.log, 4, 3, "x")
	fl := newFakeLeader(t, leader.log, 4)
	defer fl.close()
	f := testFetcher(t, "")
	addr := Leader{ID: 1, Addr: fl.ln.Addr().String()}
	// Our metadata is behind (epoch 3): fenced, paused.
	if err := f.Follow(addr, Followed{Log: follower.log, LeaderEpoch: 3}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "paused", func() bool {
		st, _ := f.Status(pid)
		return st.Paused && errors.Is(st.Err, kerr.FencedLeaderEpoch)
	})
	if follower.log.LogEndOffset() != 0 {
		t.Fatal("fenced follower appended")
	}
	// Ahead of the leader (epoch 5): UNKNOWN_LEADER_EPOCH, retried with
	// backoff; once the leader reaches epoch 5 replication proceeds.
	if err := f.Follow(addr, Followed{Log: follower.log, LeaderEpoch: 5}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "unknown epoch", func() bool {
		st, _ := f.Status(pid)
		return !st.Paused && errors.Is(st.Err, kerr.UnknownLeaderEpoch)
	})
	fl.mu.Lock()
	fl.ep = 5
	fl.mu.Unlock()
	caughtUp(t, leader.log, follower.log)
	// NOT_LEADER_OR_FOLLOWER pauses too; a new leader resumes.
	fl.mu.Lock()
	fl.errc = kerr.NotLeaderForPartition.Code
	fl.mu.Unlock()
	waitFor(t, "paused by NOT_LEADER", func() bool {
		st, _ := f.Status(pid)
		return st.Paused && errors.Is(st.Err, kerr.NotLeaderForPartition)
	})
	fl2 := newFakeLeader(t, leader.log, 6)
	defer fl2.close()
	appendN(t, leader.log, 6, 3, "y")
	if err := f.Follow(Leader{ID: 3, Addr: fl2.ln.Addr().String()}, Followed{Log: follower.log, LeaderEpoch: 6}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, leader.log, follower.log)
	if st, _ := f.Status(pid); st.Leader != 3 {
		t.Fatalf("status %+v", st)
	}
}

func TestFetcherConfig(t *testing.T) {
	for _, c := range []FetcherConfig{{NodeID: -1}, {LocalAddr: "nope"}, {Backoff: time.Second, MaxBackoff: time.Millisecond}} {
		if _, err := NewFetcher(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: %v", c, err)
		}
	}
	c := FetcherConfig{Backoff: 10, MaxBackoff: 35}
	for i, want := range []time.Duration{10, 10, 20, 35, 35} {
		if got := c.backoffFor(i); got != want {
			t.Errorf("backoff after %d failures: %d want %d", i, got, want)
		}
	}
}

// A leader that refuses (its metadata lags ours) is asked again after
// LeaderRetry, without waiting for a metadata change here.
func TestFetcherRetriesRefusingLeader(t *testing.T) {
	leader, follower := newNode(t, false), newNode(t, false)
	appendN(t, leader.log, 4, 3, "x")
	fl := newFakeLeader(t, leader.log, 4)
	defer fl.close()
	fl.mu.Lock()
	fl.errc = kerr.NotLeaderForPartition.Code
	fl.mu.Unlock()
	f := testFetcher(t, "")
	if err := f.Follow(Leader{ID: 1, Addr: fl.ln.Addr().String()}, Followed{Log: follower.log, LeaderEpoch: 4}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "refused", func() bool {
		st, _ := f.Status(pid)
		return errors.Is(st.Err, kerr.NotLeaderForPartition)
	})
	fl.mu.Lock()
	fl.errc = 0 // the leader learned of its leadership
	fl.mu.Unlock()
	caughtUp(t, leader.log, follower.log)
}

// A partition given a new leader epoch while the source's fetch sits in
// the leader's long poll is fetched at once, not after MaxWait.
func TestFetcherFollowInterruptsLongPoll(t *testing.T) {
	leader, follower := newNode(t, false), newNode(t, false)
	appendN(t, leader.log, 4, 3, "x")
	fl := newFakeLeader(t, leader.log, 4)
	defer fl.close()
	f, err := NewFetcher(FetcherConfig{NodeID: 2, MaxWait: 10 * time.Minute, Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	addr := Leader{ID: 1, Addr: fl.ln.Addr().String()}
	if err := f.Follow(addr, Followed{Log: follower.log, LeaderEpoch: 4}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, leader.log, follower.log)
	// Caught up: the next fetch waits in the long poll. Wait until it is
	// on the wire (two fetches seen: the one that copied, the polling one).
	waitFor(t, "long poll", func() bool {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		return fl.eps[4] >= 2
	})
	fl.mu.Lock()
	fl.ep = 5
	fl.mu.Unlock()
	if err := f.Follow(addr, Followed{Log: follower.log, LeaderEpoch: 5}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a fetch at the new epoch", func() bool {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		return fl.eps[5] >= 1
	})
	appendN(t, leader.log, 5, 2, "y")
	caughtUp(t, leader.log, follower.log)
}

// TestFetcherAppliesLeaderLogStart: records deleted on the leader are
// deleted on the follower too, once it has them durably, and its next
// fetch reports its new log start to the leader. Without this the
// follower would serve them again after taking over leadership.
func TestFetcherAppliesLeaderLogStart(t *testing.T) {
	leader, follower := newNode(t, false), newNode(t, true)
	appendN(t, leader.log, 1, 30, "x")
	if err := leader.log.Sync(leader.log.LogEndOffset()); err != nil {
		t.Fatal(err)
	}
	fl := newFakeLeader(t, leader.log, 1)
	defer fl.close()
	f := testFetcher(t, "")
	if err := f.Follow(Leader{ID: 1, Addr: fl.ln.Addr().String()}, Followed{Log: follower.log, LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	caughtUp(t, leader.log, follower.log)
	if follower.log.LogStartOffset() != 0 {
		t.Fatalf("follower starts at %d before any deletion", follower.log.LogStartOffset())
	}
	const cut = 25
	if _, err := leader.log.DeleteRecordsBefore(cut); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the follower's log start reaches the leader's", func() bool { return follower.log.LogStartOffset() == cut })
	waitFor(t, "the leader learns the follower's log start", func() bool {
		fl.mu.Lock()
		defer fl.mu.Unlock()
		ls, _ := fl.ls.FollowerLogStart(2)
		return ls == cut && fl.ls.LowWatermark(leader.log.LogStartOffset(), func(int32) bool { return true }) == cut
	})
	// As a leader, this replica would serve from the cut on, not before.
	if _, err := follower.log.Read(cut-1, 1<<20, follower.log.LogEndOffset()); !errors.Is(err, storage.ErrOffsetOutOfRange) {
		t.Fatalf("read below the log start: %v", err)
	}
	caughtUp(t, leader.log, follower.log) // the same bytes from the log start on
	appendN(t, leader.log, 1, 5, "more")
	caughtUp(t, leader.log, follower.log)
	if follower.log.LogStartOffset() != cut {
		t.Fatalf("follower log start %d after more records", follower.log.LogStartOffset())
	}
}

// TestFetcherPausedWhileDiskLow: while Paused reports true nothing is
// fetched (the follower does not grow); once false it catches up.
func TestFetcherPausedWhileDiskLow(t *testing.T) {
	leader, follower := newNode(t, false), newNode(t, true)
	appendN(t, leader.log, 1, 20, "first")
	fl := newFakeLeader(t, leader.log, 1)
	defer fl.close()
	var paused atomic.Bool
	paused.Store(true)
	f, err := NewFetcher(FetcherConfig{NodeID: 2, LocalAddr: "127.0.0.2", MaxWait: 20 * time.Millisecond,
		Backoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond, PartitionMaxBytes: 300, Paused: paused.Load})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Follow(Leader{ID: 1, Addr: fl.ln.Addr().String()}, Followed{Log: follower.log, LeaderEpoch: 1}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // ~200 fetch attempts were it not paused
	fl.mu.Lock()
	seen := fl.seen["127.0.0.2"]
	fl.mu.Unlock()
	if seen != 0 || follower.log.LogEndOffset() != 0 {
		t.Fatalf("paused fetcher sent %d fetches, follower end %d", seen, follower.log.LogEndOffset())
	}
	paused.Store(false)
	caughtUp(t, leader.log, follower.log)
}
