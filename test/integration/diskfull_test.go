package integration

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"golang.org/x/sys/unix"
)

const (
	// diskFullFSSize is the size of the tmpfs the broker's data directory
	// lives on: small enough to fill in a second, large enough for the
	// broker's own files.
	diskFullFSSize = 48 << 20
	// diskFullParts is the partition count of the produced topic.
	diskFullParts = 3
	// diskFullRecordLen is the size of each record value.
	diskFullRecordLen = 1024
	// diskFullRecover bounds "within seconds": how long produce, and then
	// the consumer group, may take to work again once space is freed.
	diskFullRecover = 15 * time.Second
	// diskFullAnswer bounds the wait for a produce round's outcomes.
	diskFullAnswer = 30 * time.Second
)

// TestDiskFull is issue #10's disk-full acceptance, on a tmpfs the test
// mounts and fills with a ballast file: produce is refused with
// KAFKA_STORAGE_ERROR and never UNKNOWN_SERVER_ERROR; every acknowledged
// record reads back at the offset it was acknowledged at; no record whose
// produce the broker refused is ever readable, also after a kill -9 and a
// graceful restart; once the ballast is deleted, produce on the same
// partitions, from the same idempotent and non-idempotent clients, works
// again within diskFullRecover without a restart, and so does a consumer
// group (the member that kept running commits again, a new member joins,
// consumes and commits). "no-reserve" sets log.dir.min.free.bytes to 0 so
// that the writes themselves hit ENOSPC; "reserve" sets it so that produce
// is refused while the disk still has room, and asserts that the disk
// never filled.
func TestDiskFull(t *testing.T) {
	requireProcess(t)
	if harness.kind != "streambus" {
		t.Skipf("needs the StreamBus broker (log.dir.min.free.bytes, KAFKA_STORAGE_ERROR on a full disk); the harness runs %s", harness.kind)
	}
	t.Run("no-reserve", func(t *testing.T) { runDiskFull(t, 0, 12<<20) })
	// The reserve is checked against a statfs at most 250 ms old, so
	// produce overshoots it by what the producers write meanwhile (about
	// 4 MiB here): 12 MiB keeps the disk well away from full.
	t.Run("reserve", func(t *testing.T) { runDiskFull(t, 12<<20, 18<<20) })
}

// runDiskFull runs the scenario with the given free-space reserve, the
// ballast leaving headroom bytes free.
func runDiskFull(t *testing.T, reserve, headroom int64) {
	fs := mountSmallFS(t, diskFullFSSize)
	b := startBrokerIn(t, filepath.Join(fs, "data"), brokerOpts{
		Env: []string{fmt.Sprintf("STREAMBUS_LOG_DIR_MIN_FREE_BYTES=%d", reserve)},
	})
	topic := createTopic(t, b, diskFullParts)
	group := groupName(t)
	led := newDiskFullLedger()
	producers := []*diskFullProducer{
		newDiskFullProducer(t, b, topic, "idem", true, led),
		newDiskFullProducer(t, b, topic, "plain", false, led),
	}
	for _, p := range producers {
		res := p.round(4)
		checkAnswered(t, p, res)
		if res.acked != 4*diskFullParts {
			t.Fatalf("%s: warm-up produce: %d of %d acknowledged: %v", p.tag, res.acked, 4*diskFullParts, led.errSummary())
		}
	}
	// The member keeps consuming and committing through the whole test,
	// so __consumer_offsets is written to while the disk is full too.
	member := startDiskFullMember(t, b, group, topic)
	member.waitCommits(t, 1, 15*time.Second)

	ballast := writeBallast(t, fs, headroom)
	fill := fillDisk(t, b, fs, producers, member, led)
	checkWhileFull(t, b, reserve, fill, member, led)
	if reserve > 0 {
		checkDiskFullLog(t, b, topic, led, "below the reserve")
	}

	if err := os.Remove(ballast); err != nil {
		t.Fatalf("free space: %v", err)
	}
	freed := time.Now()
	t.Logf("ballast deleted at %s: %.1f MiB free", freed.UTC().Format("15:04:05.000"), float64(statfsFree(t, fs))/(1<<20))
	recovered := waitProduceWorks(t, producers, freed)
	if recovered {
		for _, p := range producers {
			res := p.round(20)
			checkAnswered(t, p, res)
			if res.acked != 20*diskFullParts {
				t.Errorf("%s: after recovery, %d of %d records acknowledged: %v", p.tag, res.acked, 20*diskFullParts, led.errSummary())
			}
		}
	}
	committed := checkGroupWorks(t, b, member, group, topic, producers[0])
	t.Logf("produce and the consumer group checked %v after space was freed", time.Since(freed).Round(time.Millisecond))
	checkRecoveredHealth(t, b)
	checkDiskFullLog(t, b, topic, led, "after space was freed")

	// kill -9 first: the restart then replays the journal written through
	// the failure, where a refused append could come back.
	b.Stop(syscall.SIGKILL, shutdownLimit)
	b.Restart()
	checkDiskFullLog(t, b, topic, led, "after kill -9 and restart")
	checkGroupCommitted(t, b, group, topic, committed, "after kill -9 and restart")

	if code, took := b.Stop(syscall.SIGTERM, shutdownLimit); code != 0 {
		t.Errorf("exit code %d %v after SIGTERM, want 0", code, took.Round(time.Millisecond))
	}
	b.Restart()
	checkDiskFullLog(t, b, topic, led, "after a graceful restart")
	checkGroupCommitted(t, b, group, topic, committed, "after a graceful restart")
}

// ---- the small file system ----

// mountSmallFS mounts a tmpfs of size bytes for this test and returns its
// path; it skips the test where mounting is not permitted.
func mountSmallFS(t *testing.T, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "smallfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d", size))
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("the disk-full test mounts a %d MiB tmpfs, which needs root (CAP_SYS_ADMIN): %v", size>>20, err)
	}
	if err != nil {
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	// Cleanups run last-registered first: the broker, started after this,
	// is killed before the file system goes.
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// statfsFree returns the bytes available on the file system holding dir.
func statfsFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return int64(st.Bavail) * st.Bsize
}

// writeBallast allocates a file in fs that leaves about leave bytes free
// and returns its path; deleting it frees the space at once.
func writeBallast(t *testing.T, fs string, leave int64) string {
	t.Helper()
	free := statfsFree(t, fs)
	if free <= leave {
		t.Fatalf("only %d bytes free on the test file system, want more than %d", free, leave)
	}
	path := filepath.Join(fs, "ballast")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	err = unix.Fallocate(int(f.Fd()), 0, 0, free-leave)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("allocate ballast: %v", err)
	}
	t.Logf("ballast of %.1f MiB leaves %.1f MiB free", float64(free-leave)/(1<<20), float64(statfsFree(t, fs))/(1<<20))
	return path
}

// startBrokerIn is startBroker on a data directory the test chose.
func startBrokerIn(t *testing.T, dataDir string, opts brokerOpts) *broker {
	t.Helper()
	b := &broker{t: t, DataDir: dataDir, opts: opts}
	t.Cleanup(b.cleanup)
	var err error
	for attempt := range 3 {
		// Ports are found by binding and releasing: retry on a race.
		b.Addr, b.HTTPAddr = freeAddr(t), freeAddr(t)
		if err = b.start(); err == nil {
			return b
		}
		t.Logf("broker start attempt %d: %v", attempt+1, err)
	}
	t.Fatalf("start broker: %v", err)
	return nil
}

// ---- producing and the ledger of outcomes ----

// diskFullLedger records the outcome of every produced record, by key.
type diskFullLedger struct {
	mu      sync.Mutex
	acked   map[string]ackedRecord
	refused map[string]error // the broker did not write it: never readable
	unsure  map[string]error // the outcome is unknown to the client
	errs    map[string]int   // error name -> records failed with it
}

func newDiskFullLedger() *diskFullLedger {
	return &diskFullLedger{
		acked:   map[string]ackedRecord{},
		refused: map[string]error{},
		unsure:  map[string]error{},
		errs:    map[string]int{},
	}
}

// roundResult counts the outcomes of one produce round.
type roundResult struct {
	acked, refused, unsure int
	unanswered             int // also counted in unsure
	refusedOn              map[int32]bool
	errs                   map[string]int // "p<partition>:<error>" -> records
}

func (l *diskFullLedger) record(results kgo.ProduceResults) roundResult {
	l.mu.Lock()
	defer l.mu.Unlock()
	res := roundResult{refusedOn: map[int32]bool{}, errs: map[string]int{}}
	for _, pr := range results {
		r, key := pr.Record, string(pr.Record.Key)
		switch {
		case pr.Err == nil:
			l.acked[key] = ackedRecord{r.Partition, r.Offset, key, string(r.Value)}
			res.acked++
			continue
		case refusedErr(pr.Err):
			l.refused[key] = pr.Err
			res.refused++
			res.refusedOn[r.Partition] = true
		default:
			l.unsure[key] = pr.Err
			res.unsure++
			if pr.Err == errNoAnswer {
				res.unanswered++
			}
		}
		l.errs[errName(pr.Err)]++
		res.errs[fmt.Sprintf("p%d:%s", r.Partition, errName(pr.Err))]++
	}
	return res
}

// refusedErr reports whether err says the record was not written: an
// error code the broker answered the produce with, or one that kept the
// client from sending it. A request timeout, or an error of the client's
// own (a delivery timeout, a broken connection), leaves the outcome open.
func refusedErr(err error) bool {
	var ke *kerr.Error
	return errors.As(err, &ke) && ke != kerr.RequestTimedOut && ke != kerr.NotEnoughReplicasAfterAppend
}

func errName(err error) string {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Message
	}
	return err.Error()
}

// errSummary lists the errors seen so far with their record counts.
func (l *diskFullLedger) errSummary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return mapString(l.errs)
}

// diskFullProducer produces diskFullRecordLen-byte records with unique
// keys to every partition of a topic, and records the outcomes.
type diskFullProducer struct {
	cl    *kgo.Client
	topic string
	tag   string
	seq   int
	rng   *rand.Rand
	led   *diskFullLedger
}

// newDiskFullProducer returns a producer with acks=all and no retries, so
// that every refusal reaches the test as the broker's error.
func newDiskFullProducer(t *testing.T, b *broker, topic, tag string, idempotent bool, led *diskFullLedger) *diskFullProducer {
	opts := []kgo.Opt{
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordRetries(0),
		kgo.RecordDeliveryTimeout(10 * time.Second),
		kgo.ProducerLinger(0),
		kgo.ProducerBatchCompression(kgo.NoCompression()),
		kgo.MaxProduceRequestsInflightPerBroker(1),
	}
	if !idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	return &diskFullProducer{
		cl: newKgo(t, b, opts...), topic: topic, tag: tag,
		rng: rand.New(rand.NewPCG(uint64(len(tag)), 10)), led: led,
	}
}

// round produces perPartition records to each partition and waits for
// their outcomes for at most diskFullAnswer: an idempotent client never
// gives up on a request the broker did not answer, so a hung produce
// would otherwise hang the test. Records without an outcome by then count
// as unanswered (and unknown).
func (p *diskFullProducer) round(perPartition int) roundResult {
	var (
		mu      sync.Mutex
		results = make(kgo.ProduceResults, perPartition*diskFullParts)
		pending = len(results)
		done    = make(chan struct{})
	)
	for i := range results {
		key := fmt.Sprintf("%s-%06d", p.tag, p.seq)
		p.seq++
		r := &kgo.Record{Topic: p.topic, Partition: int32(i % diskFullParts), Key: []byte(key), Value: diskFullValue(key, p.rng)}
		results[i] = kgo.ProduceResult{Record: r, Err: errNoAnswer}
		p.cl.Produce(context.Background(), r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			results[i] = kgo.ProduceResult{Record: r, Err: err}
			if pending--; pending == 0 {
				close(done)
			}
		})
	}
	select {
	case <-done:
	case <-time.After(diskFullAnswer):
	}
	mu.Lock()
	defer mu.Unlock()
	return p.led.record(results)
}

// errNoAnswer marks a record whose outcome did not arrive within
// diskFullAnswer.
var errNoAnswer = errors.New("no answer to the produce")

// checkAnswered fails the test if a round had records without an outcome.
func checkAnswered(t *testing.T, p *diskFullProducer, res roundResult) {
	t.Helper()
	if res.unanswered > 0 {
		t.Fatalf("%s: %d records got no answer within %v: the broker did not answer a produce", p.tag, res.unanswered, diskFullAnswer)
	}
}

// diskFullValue is key, '|', then random hex up to diskFullRecordLen.
func diskFullValue(key string, rng *rand.Rand) []byte {
	const digits = "0123456789abcdef"
	v := make([]byte, diskFullRecordLen)
	n := copy(v, key+"|")
	for i := n; i < len(v); i++ {
		v[i] = digits[rng.IntN(len(digits))]
	}
	return v
}

// ---- filling the disk ----

// fillStats is what the test saw while filling the disk.
type fillStats struct {
	rounds     int
	minFree    int64
	maxOffline float64
	problems   string   // a /readyz?verbose body that listed problems
	trace      []string // one line per round from the last before the first refusal
}

// fillDisk produces from every producer at once, round after round, until
// each has seen every partition refuse records for three rounds and the
// group member has tried to commit since the first refusal.
func fillDisk(t *testing.T, b *broker, fs string, producers []*diskFullProducer, member *diskFullMember, led *diskFullLedger) fillStats {
	t.Helper()
	const perPartition = 8
	st := fillStats{minFree: diskFullFSSize}
	refusedOn := make([]map[int32]bool, len(producers))
	for i := range refusedOn {
		refusedOn[i] = map[int32]bool{}
	}
	var (
		roundsRefused  int
		firstRefusal   time.Time
		triesBefore    = -1 // the member's commit tries at the first refusal
		previousRound  string
		start          = time.Now()
		deadline       = start.Add(30 * time.Second)
		memberAttempts int
	)
	for ; ; st.rounds++ {
		var wg sync.WaitGroup
		results := make([]roundResult, len(producers))
		for i, p := range producers {
			wg.Go(func() { results[i] = p.round(perPartition) })
		}
		wg.Wait()
		for i, p := range producers {
			checkAnswered(t, p, results[i])
		}
		if b.exited() {
			t.Fatalf("the broker exited while the disk filled: %v", b.proc.waitErr)
		}
		st.minFree = min(st.minFree, statfsFree(t, fs))
		st.maxOffline = max(st.maxOffline, offlineGauge(t, b))
		if st.problems == "" {
			if _, body := readyzVerbose(t, b); strings.Contains(body, "\n") {
				st.problems = body
			}
		}
		line := fmt.Sprintf("round %d at %s:", st.rounds, time.Now().UTC().Format("15:04:05.000"))
		refused, all := false, true
		for i, res := range results {
			line += fmt.Sprintf(" %s acked %d refused %v unknown %d;", producers[i].tag, res.acked, sortedParts(res.refusedOn), res.unsure)
			for p := range res.refusedOn {
				refusedOn[i][p] = true
				refused = true
			}
			all = all && len(refusedOn[i]) == diskFullParts
		}
		memberAttempts = member.tried()
		if refused && firstRefusal.IsZero() {
			firstRefusal, triesBefore = time.Now(), memberAttempts
			st.trace = append(st.trace, previousRound)
		}
		if !firstRefusal.IsZero() {
			st.trace = append(st.trace, line)
		}
		previousRound = line
		if !firstRefusal.IsZero() {
			time.Sleep(10 * time.Millisecond) // pacing the refused rounds, not a timing assertion
		}
		if all {
			roundsRefused++
		}
		if roundsRefused >= 3 && memberAttempts > triesBefore {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %d rounds (%d records acknowledged) in %v, produce was not refused on every partition for every producer (%v) or the group member tried no commit since the first refusal (%d tries); errors: %v",
				st.rounds, len(led.acked), time.Since(start).Round(time.Millisecond), refusedOn, memberAttempts, led.errSummary())
		}
	}
	led.mu.Lock()
	t.Logf("filled in %v (first refusal at %s), %d rounds: %d acknowledged, %d refused, %d unknown; errors: %v; lowest free %d KiB; most partitions offline %v",
		time.Since(start).Round(time.Millisecond), firstRefusal.UTC().Format("15:04:05.000"), st.rounds, len(led.acked), len(led.refused), len(led.unsure),
		mapString(led.errs), st.minFree>>10, st.maxOffline)
	led.mu.Unlock()
	if len(st.trace) > 12 {
		st.trace = append(st.trace[:6], append([]string{"..."}, st.trace[len(st.trace)-5:]...)...)
	}
	t.Logf("rounds from the last before the first refusal:\n%s", strings.Join(st.trace, "\n"))
	if st.problems != "" {
		t.Logf("/readyz?verbose while full:\n%s", st.problems)
	}
	return st
}

// offlineGauge reads streambus_partitions_offline, failing the test with
// the reason if the broker has exited.
func offlineGauge(t *testing.T, b *broker) float64 {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + b.HTTPAddr + "/metrics")
	var body []byte
	if err == nil {
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err != nil {
		select {
		case <-b.proc.exited:
			t.Fatalf("the broker exited: %v", b.proc.waitErr)
		case <-time.After(time.Second):
		}
		t.Fatalf("GET /metrics: %v", err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "streambus_partitions_offline "); ok {
			var n float64
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	t.Fatal("no streambus_partitions_offline in /metrics")
	return 0
}

func sortedParts(m map[int32]bool) []int32 {
	out := make([]int32, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func mapString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s×%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

// checkWhileFull checks the refusals and the broker's health while the
// disk is full (or below the reserve).
func checkWhileFull(t *testing.T, b *broker, reserve int64, st fillStats, member *diskFullMember, led *diskFullLedger) {
	t.Helper()
	led.mu.Lock()
	storage, unknown, total := led.errs[kerr.KafkaStorageError.Message], led.errs[kerr.UnknownServerError.Message], 0
	for _, n := range led.errs {
		total += n
	}
	led.mu.Unlock()
	if storage == 0 {
		t.Errorf("no produce was answered KAFKA_STORAGE_ERROR; errors: %v", led.errSummary())
	}
	if unknown > 0 {
		t.Errorf("%d records failed with UNKNOWN_SERVER_ERROR; a full disk must answer KAFKA_STORAGE_ERROR", unknown)
	}
	member.mu.Lock()
	t.Logf("group member so far: %d commits tried, %d succeeded, failures: %v", member.attempts, member.commits, mapString(member.commitErrs))
	if n := member.commitErrs[kerr.UnknownServerError.Message]; n > 0 {
		t.Errorf("%d offset commits failed with UNKNOWN_SERVER_ERROR", n)
	}
	member.mu.Unlock()
	// Offline partitions are listed by /readyz?verbose but do not make the
	// broker unready (internal/httpserver, docs/ARCHITECTURE.md).
	if code, body := readyzVerbose(t, b); code != http.StatusOK {
		t.Errorf("/readyz while the disk is full: %d %q, want 200", code, body)
	}
	if reserve == 0 {
		// A log that failed on the full disk is offline, listed by the gauge
		// and /readyz?verbose (docs/ARCHITECTURE.md).
		if st.maxOffline == 0 || st.problems == "" {
			t.Errorf("while the disk was full, streambus_partitions_offline peaked at %v and /readyz?verbose listed %q; want the failed logs listed", st.maxOffline, st.problems)
		}
		return
	}
	// With the reserve, produce is refused before the disk fills: no log
	// fails and every refusal is the reserve's.
	if storage != total {
		t.Errorf("below the reserve, %d of %d failed records were answered KAFKA_STORAGE_ERROR: %v", storage, total, led.errSummary())
	}
	if st.maxOffline > 0 {
		t.Errorf("streambus_partitions_offline reached %v below the reserve; no log should fail", st.maxOffline)
	}
	if out := b.proc.output.Tail(4 << 20); strings.Contains(out, "no space left on device") {
		t.Errorf("the broker hit ENOSPC although log.dir.min.free.bytes=%d (lowest free %d KiB): %s",
			reserve, st.minFree>>10, linesContaining(out, "no space left on device", 5))
	}
}

// linesContaining returns up to n lines of out that contain s.
func linesContaining(out, s string, n int) string {
	var found []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, s) {
			if found = append(found, line); len(found) == n {
				break
			}
		}
	}
	return strings.Join(found, "\n")
}

// readyzVerbose returns the status and body of /readyz?verbose.
func readyzVerbose(t *testing.T, b *broker) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	resp, err := hc.Get("http://" + b.HTTPAddr + "/readyz?verbose")
	if err != nil {
		t.Fatalf("GET /readyz?verbose: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /readyz?verbose: %v", err)
	}
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// ---- after space is freed ----

// waitProduceWorks produces one record per partition from each producer,
// all at once, until each has had a round wholly acknowledged, for at most
// diskFullRecover after freed; it reports whether every producer got there.
func waitProduceWorks(t *testing.T, producers []*diskFullProducer, freed time.Time) bool {
	t.Helper()
	done := make([]bool, len(producers))
	errs := make([]map[string]int, len(producers))
	for i := range errs {
		errs[i] = map[string]int{}
	}
	for attempt := 1; ; attempt++ {
		var wg sync.WaitGroup
		results := make([]roundResult, len(producers))
		for i, p := range producers {
			if !done[i] {
				wg.Go(func() { results[i] = p.round(1) })
			}
		}
		wg.Wait()
		for i, p := range producers {
			checkAnswered(t, p, results[i])
		}
		all := true
		for i, p := range producers {
			switch {
			case done[i]:
			case results[i].acked == diskFullParts:
				done[i] = true
				t.Logf("%s: produce works again %v after space was freed (attempt %d; errors before: %v)",
					p.tag, time.Since(freed).Round(time.Millisecond), attempt, mapString(errs[i]))
			default:
				all = false
				for e, n := range results[i].errs {
					errs[i][e] += n
				}
			}
		}
		if all {
			return true
		}
		if time.Since(freed) > diskFullRecover {
			for i, p := range producers {
				if !done[i] {
					t.Errorf("%s: produce does not work %v after space was freed (%d attempts); errors: %v",
						p.tag, diskFullRecover, attempt, mapString(errs[i]))
				}
			}
			return false
		}
		time.Sleep(100 * time.Millisecond) // pacing the retries, not a timing assertion
	}
}

// diskFullMember is a consumer group member that commits after every poll
// (at least every 200 ms), counting successes and failures.
type diskFullMember struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	attempts   int // commits tried
	commits    int // commits that succeeded
	commitErrs map[string]int
}

func startDiskFullMember(t *testing.T, b *broker, group, topic string) *diskFullMember {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr),
		kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &diskFullMember{cl: cl, cancel: cancel, done: make(chan struct{}), commitErrs: map[string]int{}}
	go m.run(ctx)
	t.Cleanup(func() {
		cancel()
		<-m.done
		cl.Close()
	})
	return m
}

func (m *diskFullMember) run(ctx context.Context) {
	defer close(m.done)
	for ctx.Err() == nil {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		m.cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		err := m.commit(ctx)
		if errors.Is(err, errNothingConsumed) {
			continue
		}
		m.mu.Lock()
		m.attempts++
		if err != nil {
			m.commitErrs[errName(err)]++
		} else {
			m.commits++
		}
		m.mu.Unlock()
	}
}

// errNothingConsumed: the member has nothing to commit yet.
var errNothingConsumed = errors.New("nothing consumed yet")

// commit commits what the member consumed since its last commit, or, with
// nothing new, its committed offsets again: every call writes to
// __consumer_offsets once the member has consumed anything.
func (m *diskFullMember) commit(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if len(m.cl.UncommittedOffsets()) > 0 {
		return m.cl.CommitUncommittedOffsets(ctx)
	}
	offsets := m.cl.CommittedOffsets()
	if len(offsets) == 0 {
		return errNothingConsumed
	}
	var err error
	m.cl.CommitOffsetsSync(ctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, cerr error) {
		if err = cerr; err != nil {
			return
		}
		for _, rt := range resp.Topics {
			for _, rp := range rt.Partitions {
				if err == nil {
					err = kerr.ErrorForCode(rp.ErrorCode)
				}
			}
		}
	})
	return err
}

// waitCommits waits until the member has committed n times.
func (m *diskFullMember) waitCommits(t *testing.T, n int, d time.Duration) {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("%d offset commits by the group member", n), func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return m.commits >= n
	})
}

// tried returns how many commits the member has tried.
func (m *diskFullMember) tried() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.attempts
}

// stop stops polling and leaves the group; it reports a failed leave.
func (m *diskFullMember) stop(t *testing.T) {
	t.Helper()
	m.cancel()
	<-m.done
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.cl.LeaveGroupContext(ctx); err != nil {
		t.Errorf("the group member cannot leave the group: %v", err)
	}
}

// checkGroupWorks checks, within diskFullRecover, that the member that ran
// through the full disk commits the end of every partition again, and that
// after it left a new member joins the group, consumes new records from
// where the first stopped and commits them. It returns the committed
// offsets.
func checkGroupWorks(t *testing.T, b *broker, member *diskFullMember, group, topic string, p *diskFullProducer) map[int32]int64 {
	t.Helper()
	start := time.Now()
	adm := kadm.NewClient(newKgo(t, b))
	ends := highWatermarks(t, adm, topic)
	var got map[int32]int64
	member.mu.Lock()
	t.Logf("group member: %d commits, failed commits: %v", member.commits, mapString(member.commitErrs))
	member.mu.Unlock()
	ok := retryUntil(diskFullRecover, func() bool {
		got = groupCommitted(adm, group, topic)
		return sameOffsets(got, ends)
	})
	if !ok {
		member.mu.Lock()
		t.Errorf("the group member that ran through the full disk did not commit the ends %v within %v after recovery: committed %v; failed commits: %v",
			ends, diskFullRecover, got, mapString(member.commitErrs))
		member.mu.Unlock()
	} else {
		t.Logf("the running group member committed every partition's end %v after recovery", time.Since(start).Round(time.Millisecond))
	}
	member.stop(t)

	// A new member joins, reads records produced after the first left,
	// and commits them.
	res := p.round(2)
	checkAnswered(t, p, res)
	if res.acked != 2*diskFullParts {
		t.Errorf("produce for the new group member: %d of %d acknowledged: %v", res.acked, 2*diskFullParts, p.led.errSummary())
	}
	ends = highWatermarks(t, adm, topic)
	start = time.Now()
	cl := newKgo(t, b, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic), kgo.DisableAutoCommit(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), diskFullRecover)
	defer cancel()
	next := map[int32]int64{}
	for !sameOffsets(next, ends) && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Logf("new group member: fetch %s/%d: %v", tp, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { next[r.Partition] = max(next[r.Partition], r.Offset+1) })
	}
	if !sameOffsets(next, ends) {
		t.Errorf("a new group member did not consume up to %v within %v: reached %v", ends, diskFullRecover, next)
		return got
	}
	var err error
	if !retryUntil(time.Until(start.Add(diskFullRecover)), func() bool {
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer ccancel()
		err = cl.CommitUncommittedOffsets(cctx)
		return err == nil
	}) {
		t.Errorf("a new group member cannot commit: %v", err)
	}
	got = groupCommitted(adm, group, topic)
	if !sameOffsets(got, ends) {
		t.Errorf("after the new member's commit the group has %v committed, want %v", got, ends)
	}
	t.Logf("a new group member joined, consumed and committed in %v", time.Since(start).Round(time.Millisecond))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if err := cl.LeaveGroupContext(ctx2); err != nil {
		t.Errorf("the new group member cannot leave: %v", err)
	}
	return got
}

// retryUntil calls cond every 100 ms until it is true or d has passed, and
// reports whether it became true.
func retryUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func sameOffsets(got, want map[int32]int64) bool {
	if len(got) != len(want) {
		return false
	}
	for p, o := range want {
		if got[p] != o {
			return false
		}
	}
	return true
}

// highWatermarks returns each partition's high watermark.
func highWatermarks(t *testing.T, adm *kadm.Client, topic string) map[int32]int64 {
	t.Helper()
	ends := map[int32]int64{}
	var err error
	if !retryUntil(10*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		var lo kadm.ListedOffsets
		if lo, err = adm.ListEndOffsets(ctx, topic); err == nil {
			err = lo.Error()
		}
		if err != nil {
			return false
		}
		lo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
		return true
	}) {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	return ends
}

// groupCommitted returns the group's committed offsets on topic, nil on
// an error.
func groupCommitted(adm *kadm.Client, group, topic string) map[int32]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := adm.FetchOffsets(ctx, group)
	if err != nil || resp.Error() != nil {
		return nil
	}
	out := map[int32]int64{}
	resp.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.At >= 0 {
			out[o.Partition] = o.At
		}
	})
	return out
}

// checkGroupCommitted checks that the group's committed offsets are want.
func checkGroupCommitted(t *testing.T, b *broker, group, topic string, want map[int32]int64, when string) {
	t.Helper()
	adm := kadm.NewClient(newKgo(t, b))
	var got map[int32]int64
	if !retryUntil(10*time.Second, func() bool { got = groupCommitted(adm, group, topic); return got != nil }) {
		t.Errorf("%s: cannot fetch the group's committed offsets", when)
		return
	}
	if !sameOffsets(got, want) {
		t.Errorf("%s: the group has %v committed, want %v", when, got, want)
	}
}

// checkRecoveredHealth checks, within 10 s (partitions are reported back by a
// one-second ticker), that no partition is offline and /readyz is ready.
func checkRecoveredHealth(t *testing.T, b *broker) {
	t.Helper()
	var (
		code    int
		body    string
		offline float64
	)
	if !retryUntil(10*time.Second, func() bool {
		code, body = readyzVerbose(t, b)
		offline = offlineGauge(t, b)
		return code == http.StatusOK && body == "ready" && offline == 0
	}) {
		t.Errorf("after space was freed: /readyz?verbose %d %q, streambus_partitions_offline %v; want 200 \"ready\" and 0", code, body, offline)
	}
}

// ---- reading back ----

// checkDiskFullLog reads topic from the start to its end offsets and
// checks it against the ledger: every acknowledged record at its offset
// with its value, no refused record anywhere, nothing twice, nothing the
// test did not produce, offsets contiguous from 0.
func checkDiskFullLog(t *testing.T, b *broker, topic string, led *diskFullLedger, when string) {
	t.Helper()
	parts, err := readTopicTo(t, b, topic, 20*time.Second)
	if err != nil {
		t.Errorf("%s: read back: %v", when, err)
		return
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	byKey := map[string]*kgo.Record{}
	byPos := map[[2]int64]*kgo.Record{}
	var total, unsure, bad int
	report := func(format string, args ...any) {
		if bad++; bad <= 10 {
			t.Errorf(when+": "+format, args...)
		}
	}
	for p, recs := range parts {
		for i, r := range recs {
			total++
			key := string(r.Key)
			if r.Offset != int64(i) {
				report("partition %d: record %d has offset %d; offsets must be contiguous from 0", p, i, r.Offset)
			}
			if prev, dup := byKey[key]; dup {
				report("record %s readable twice: %d/%d and %d/%d", key, prev.Partition, prev.Offset, p, r.Offset)
			}
			byKey[key] = r
			byPos[[2]int64{int64(p), r.Offset}] = r
			_, acked := led.acked[key]
			_, unknown := led.unsure[key]
			if err, ok := led.refused[key]; ok {
				report("record %s is readable at %d/%d, but its produce failed: %v", key, p, r.Offset, err)
			} else if unknown {
				unsure++
			} else if !acked {
				report("record with key %q at %d/%d was never produced", key, p, r.Offset)
			}
		}
	}
	missing := 0
	for key, a := range led.acked {
		r, ok := byKey[key]
		switch {
		case !ok:
			missing++
			now := "nothing"
			if r := byPos[[2]int64{int64(a.Partition), a.Offset}]; r != nil {
				now = string(r.Key)
			}
			report("acknowledged record %s (partition %d offset %d) is missing; that offset holds %s", key, a.Partition, a.Offset, now)
		case r.Partition != a.Partition || r.Offset != a.Offset:
			report("acknowledged record %s at %d/%d is read at %d/%d", key, a.Partition, a.Offset, r.Partition, r.Offset)
		case string(r.Value) != a.Value:
			report("acknowledged record %s at %d/%d reads back with another value", key, a.Partition, a.Offset)
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d problems in all, %d of %d acknowledged records missing", when, bad, missing, len(led.acked))
	}
	if bad == 0 {
		t.Logf("%s: %d records read: all %d acknowledged at their offsets, %d of %d with an unknown outcome, none of %d refused",
			when, total, len(led.acked), unsure, len(led.unsure), len(led.refused))
	}
}

// readTopicTo reads every partition of topic from the start to the end
// offsets listed when it begins.
func readTopicTo(t *testing.T, b *broker, topic string, d time.Duration) (map[int32][]*kgo.Record, error) {
	t.Helper()
	adm := kadm.NewClient(newKgo(t, b))
	ends := highWatermarks(t, adm, topic)
	start := map[int32]kgo.Offset{}
	remaining := 0
	for p, end := range ends {
		start[p] = kgo.NewOffset().AtStart()
		if end > 0 {
			remaining++
		}
	}
	out := map[int32][]*kgo.Record{}
	if remaining == 0 {
		return out, nil
	}
	cl := newKgo(t, b, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: start}), kgo.FetchMaxWait(100*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var lastErr error
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%d partitions not read up to %v within %v (last fetch error: %v)", remaining, ends, d, lastErr)
		}
		fs.EachError(func(_ string, p int32, err error) { lastErr = fmt.Errorf("partition %d: %w", p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= ends[r.Partition] {
				return
			}
			out[r.Partition] = append(out[r.Partition], r)
			if r.Offset == ends[r.Partition]-1 {
				remaining--
			}
		})
	}
	return out, nil
}
