package integration

import (
	"context"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// checkedValue builds a record value that carries its own checksum, so a
// reader can tell a corrupt record from an intact one without knowing what
// was written: "<key>|<payload>|<crc32 of key|payload, hex>".
func checkedValue(key string, rng *rand.Rand) string {
	var sb strings.Builder
	for range 12 {
		fmt.Fprintf(&sb, "%08x", rng.Uint32())
	}
	body := key + "|" + sb.String()
	return fmt.Sprintf("%s|%08x", body, crc32.ChecksumIEEE([]byte(body)))
}

// valueIntact reports whether a value made by checkedValue for key is whole.
func valueIntact(key, value string) bool {
	i := strings.LastIndexByte(value, '|')
	if i < 0 || !strings.HasPrefix(value, key+"|") {
		return false
	}
	return fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(value[:i]))) == value[i+1:]
}

// readAll consumes every partition of topic from the log start to the end
// offset the broker reports now, and returns the records per partition.
func readAll(t *testing.T, b *broker, topic string) map[int32][]*kgo.Record {
	t.Helper()
	ctx := testCtx(t, 60*time.Second)
	adm := kadm.NewClient(newKgo(t, b))
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatalf("list start offsets: %v", err)
	}
	parts := map[int32]kgo.Offset{}
	remaining := 0
	want := map[int32]int64{}
	ends.Each(func(lo kadm.ListedOffset) {
		parts[lo.Partition] = kgo.NewOffset().AtStart()
		want[lo.Partition] = lo.Offset
		if s, ok := starts.Lookup(topic, lo.Partition); !ok || s.Offset != 0 {
			t.Errorf("partition %d: log start offset %d, want 0 (nothing was deleted)", lo.Partition, s.Offset)
		}
		if lo.Offset > 0 {
			remaining++
		}
	})
	out := map[int32][]*kgo.Record{}
	if remaining == 0 {
		return out
	}
	cl := newKgo(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxWait(200*time.Millisecond))
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %s: timed out; %d partitions not read up to their end offsets %v", topic, remaining, want)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= want[r.Partition] {
				return // produced after we listed the end; not ours to check
			}
			out[r.Partition] = append(out[r.Partition], r)
			if r.Offset == want[r.Partition]-1 {
				remaining--
			}
		})
	}
	return out
}

// ackedRecord is a record the broker acknowledged.
type ackedRecord struct {
	Partition int32
	Offset    int64
	Key       string
	Value     string
}

// checkDurable asserts that after a restart topic holds exactly a
// contiguous, intact log per partition in which every acknowledged record
// sits at its acknowledged offset. With onlyAcked, nothing else may be
// there either.
func checkDurable(t *testing.T, b *broker, topic string, acked []ackedRecord, onlyAcked bool) {
	t.Helper()
	parts := readAll(t, b, topic)
	byPos := map[[2]int64]*kgo.Record{}
	seenKey := map[string]int64{}
	total := 0
	for p, recs := range parts {
		for i, r := range recs {
			total++
			if r.Offset != int64(i) {
				t.Fatalf("partition %d: record %d has offset %d; offsets must be contiguous from 0", p, i, r.Offset)
			}
			if !valueIntact(string(r.Key), string(r.Value)) {
				t.Errorf("partition %d offset %d: corrupt record key=%q value=%q", p, r.Offset, r.Key, r.Value)
			}
			if prev, dup := seenKey[string(r.Key)]; dup {
				t.Errorf("key %q stored twice: partition %d offsets %d and %d (idempotent producer)", r.Key, p, prev, r.Offset)
			}
			seenKey[string(r.Key)] = r.Offset
			byPos[[2]int64{int64(p), r.Offset}] = r
		}
	}
	missing := 0
	for _, a := range acked {
		r, ok := byPos[[2]int64{int64(a.Partition), a.Offset}]
		switch {
		case !ok:
			missing++
			if missing <= 10 {
				t.Errorf("acknowledged record %q (partition %d offset %d) is missing", a.Key, a.Partition, a.Offset)
			}
		case string(r.Key) != a.Key || string(r.Value) != a.Value:
			t.Errorf("partition %d offset %d: read key=%q value=%q, acknowledged key=%q value=%q", a.Partition, a.Offset, r.Key, r.Value, a.Key, a.Value)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged records missing after restart", missing, len(acked))
	}
	if onlyAcked && total != len(acked) {
		t.Errorf("read %d records after restart, %d were produced and acknowledged", total, len(acked))
	}
	t.Logf("after restart: %d records read, %d acknowledged before", total, len(acked))
}

// TestRestartGraceful: acknowledged records survive SIGTERM and a restart
// on the same data directory, exactly once, in order, intact; the broker
// exits 0 within the contract's 10 s.
func TestRestartGraceful(t *testing.T) {
	requireProcess(t)
	b := startBroker(t, brokerOpts{})
	topic := createTopic(t, b, 3)
	rng := rand.New(rand.NewPCG(1, 2))

	const n = 3000
	cl := newKgo(t, b, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerBatchCompression(kgo.NoCompression()))
	recs := make([]*kgo.Record, n)
	for i := range recs {
		key := fmt.Sprintf("graceful-%05d", i)
		recs[i] = &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(checkedValue(key, rng))}
	}
	ctx := testCtx(t, 30*time.Second)
	// Several produce calls so the log has many batches.
	var acked []ackedRecord
	for chunk := range 10 {
		res := cl.ProduceSync(ctx, recs[chunk*n/10:(chunk+1)*n/10]...)
		if err := res.FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
		for _, pr := range res {
			acked = append(acked, ackedRecord{pr.Record.Partition, pr.Record.Offset, string(pr.Record.Key), string(pr.Record.Value)})
		}
	}
	cl.Close()

	code, took := b.Stop(syscall.SIGTERM, shutdownLimit)
	t.Logf("broker exited with code %d %v after SIGTERM", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0", code)
	}
	b.Restart()
	checkDurable(t, b, topic, acked, true)
}

// TestRestartAfterKill: kill -9 during a continuous produce load from
// several producers, twice (the second time on a log that was itself
// recovered); after each restart every acknowledged record is there,
// nothing is corrupt, offsets are contiguous, nothing is duplicated.
func TestRestartAfterKill(t *testing.T) {
	requireProcess(t)
	b := startBroker(t, brokerOpts{})
	topic := createTopic(t, b, 4)
	var acked []ackedRecord
	for round := range 2 {
		acked = append(acked, loadAndKill(t, b, topic, round)...)
		b.Restart()
		checkDurable(t, b, topic, acked, false)
		if t.Failed() {
			return
		}
	}
	assertServing(t, b)
}

// loadAndKill produces to topic from several clients until enough records
// are acknowledged, kills the broker with SIGKILL while they are still
// producing, and returns the acknowledged records.
func loadAndKill(t *testing.T, b *broker, topic string, round int) []ackedRecord {
	t.Helper()
	const (
		producers      = 4
		maxPerProducer = 25000 // bounds the load if the kill never comes
		killAfterAcked = 4000
	)
	var (
		mu      sync.Mutex
		acked   []ackedRecord
		ackedCh = make(chan struct{}) // closed once killAfterAcked are acknowledged
		once    sync.Once
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		clients []*kgo.Client
	)
	for g := range producers {
		cl := newKgo(t, b,
			kgo.RequiredAcks(kgo.AllISRAcks()),
			kgo.MaxBufferedRecords(500),
			kgo.RecordDeliveryTimeout(5*time.Second),
			kgo.ProducerLinger(2*time.Millisecond),
		)
		clients = append(clients, cl)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), uint64(round)))
			for i := 0; i < maxPerProducer; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("kill-r%d-g%d-%06d", round, g, i)
				r := &kgo.Record{Topic: topic, Key: []byte(key), Value: []byte(checkedValue(key, rng))}
				// Produce blocks while 500 records are buffered, which
				// paces the load to what the broker acknowledges.
				cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
					if err != nil {
						return
					}
					mu.Lock()
					acked = append(acked, ackedRecord{r.Partition, r.Offset, string(r.Key), string(r.Value)})
					if len(acked) >= killAfterAcked {
						once.Do(func() { close(ackedCh) })
					}
					mu.Unlock()
				})
			}
		}()
	}
	select {
	case <-ackedCh:
	case <-time.After(20 * time.Second):
		t.Log("load did not reach the kill threshold in 20s; killing anyway")
	}
	b.Stop(syscall.SIGKILL, shutdownLimit)
	close(stop)
	// Closing fails whatever is still buffered, which also unblocks a
	// producer stuck in Produce.
	for _, cl := range clients {
		cl.Close()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(acked) == 0 {
		t.Fatal("no record was acknowledged before the kill")
	}
	t.Logf("round %d: %d records acknowledged before SIGKILL", round, len(acked))
	return append([]ackedRecord(nil), acked...)
}
