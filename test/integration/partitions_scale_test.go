package integration

// Issue #10 at scale: 100,000 partitions on one broker within a bounded
// number of open descriptors, and kill -9 under a load spread over many
// partitions.

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sys/unix"
)

const (
	// scaleTopics × scalePartitionsPerTopic is the 100,000.
	scaleTopics             = 100
	scalePartitionsPerTopic = 1000
	// scaleTopicsPerRequest topics go in one CreateTopics request.
	scaleTopicsPerRequest = 10
	// scaleMaxOpenFiles is log.max.open.files for the test: well below the
	// files the sample writes, so the cache has to close files to stay
	// within it.
	scaleMaxOpenFiles = 256
	// scaleSample partitions get scaleRecords records each.
	scaleSample  = 500
	scaleRecords = 3
	// scaleReadChunk sampled partitions are read back by one consumer at a
	// time. A fetch response keeps the file of every partition it carries
	// open until it is written (sendfile), and files in use may exceed
	// log.max.open.files (storage's doc): a fetch over all 500 partitions
	// holds about 500 segment files open. Reading fewer partitions than the
	// bound at a time keeps the check on the files the cache may close.
	scaleReadChunk = 100
	// scaleFDSlack allows for the descriptors the test's own connections
	// add on top of those the broker held when it became ready.
	scaleFDSlack = 64
	// scaleMaxResponse bounds a client's response size: a Metadata
	// response for 100,000 partitions is a few MB.
	scaleMaxResponse = 256 << 20
)

// TestHundredThousandPartitions: one broker, the process's default file
// limit, 100,000 partitions created through CreateTopics, each with a
// leader in Metadata; records produced (acks=all) to a random sample of
// them are read back at their offsets; the broker's open descriptors stay
// within log.max.open.files plus what it held at start, and below its
// RLIMIT_NOFILE, throughout.
func TestHundredThousandPartitions(t *testing.T) {
	requireProcess(t)
	if harness.kind != "streambus" {
		t.Skipf("checks StreamBus's log.max.open.files; the broker under test is %s", harness.kind)
	}
	b := startBroker(t, brokerOpts{Env: []string{
		"STREAMBUS_LOG_MAX_OPEN_FILES=" + strconv.Itoa(scaleMaxOpenFiles),
	}})
	pid := b.Pid()
	limit := nofileLimit(t, pid)
	base := openFDs(t, pid)
	w := watchFDs(t, pid)
	t.Logf("broker RLIMIT_NOFILE soft %d, hard %d; %d descriptors open when ready; log.max.open.files=%d",
		limit.Cur, limit.Max, base, scaleMaxOpenFiles)

	topics := createScaleTopics(t, b)
	t.Logf("broker RSS after creating %d partitions: %.0f MB (peak %.0f MB), %d descriptors open",
		scaleTopics*scalePartitionsPerTopic, float64(b.ProcStatus("VmRSS"))/1e6, float64(b.ProcStatus("VmHWM"))/1e6, openFDs(t, pid))

	start := time.Now()
	sample := produceSample(t, b, topics)
	for i := 0; i < len(sample); i += scaleReadChunk {
		readSample(t, b, sample[i:min(i+scaleReadChunk, len(sample))])
	}
	t.Logf("produced %d records to %d partitions (acks=all) and read them back in %v",
		scaleSample*scaleRecords, scaleSample, time.Since(start).Round(time.Millisecond))

	peak, peakAt := w.stop()
	files := countFiles(t, b.DataDir)
	bound := scaleMaxOpenFiles + base + scaleFDSlack
	t.Logf("descriptors: %d at the end, peak %d (sampled every 20 ms: %v), bound %d; %d files in the data directory; broker RSS %.0f MB",
		openFDs(t, pid), peak, peakAt, bound, files, float64(b.ProcStatus("VmRSS"))/1e6)
	if files <= scaleMaxOpenFiles {
		t.Errorf("only %d files in the data directory: the sample did not make the broker exceed log.max.open.files=%d", files, scaleMaxOpenFiles)
	}
	if peak > bound {
		t.Errorf("broker had %d descriptors open, want ≤ %d (log.max.open.files %d + %d at start + %d)", peak, bound, scaleMaxOpenFiles, base, scaleFDSlack)
	}
	if uint64(peak) >= limit.Cur {
		t.Errorf("broker had %d descriptors open, at its RLIMIT_NOFILE %d", peak, limit.Cur)
	}
	if n := strings.Count(b.proc.output.Tail(1<<30), "too many open files"); n > 0 {
		t.Errorf("broker logged %q %d times", "too many open files", n)
	}
	assertServing(t, b)
}

// nofileLimit returns the RLIMIT_NOFILE of process pid.
func nofileLimit(t testing.TB, pid int) unix.Rlimit {
	t.Helper()
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		t.Fatalf("prlimit: %v", err)
	}
	return lim
}

// fdWatcher samples a process's open descriptors until stopped.
type fdWatcher struct {
	dir  string // /proc/<pid>/fd
	done chan struct{}
	once sync.Once // closes done
	wg   sync.WaitGroup

	// Written by the sampling goroutine until wg is done.
	peak   int
	peakAt map[string]int // fdKind -> count at the peak
}

// watchFDs starts sampling pid's descriptors every 20 ms; the sampling
// ends at stop or with the test.
func watchFDs(t testing.TB, pid int) *fdWatcher {
	w := &fdWatcher{dir: "/proc/" + strconv.Itoa(pid) + "/fd", done: make(chan struct{})}
	t.Cleanup(func() { w.stop() })
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			w.sample()
			select {
			case <-w.done:
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

func (w *fdWatcher) sample() {
	ents, err := os.ReadDir(w.dir)
	if err != nil || len(ents) <= w.peak {
		return
	}
	w.peak, w.peakAt = len(ents), map[string]int{}
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join(w.dir, e.Name()))
		w.peakAt[fdKind(target)]++
	}
}

// fdKind names what a descriptor's link target is: "*.log" for a file by
// its extension, "socket", "pipe", "anon_inode", or "other".
func fdKind(target string) string {
	if kind, _, ok := strings.Cut(target, ":"); ok && !strings.HasPrefix(target, "/") {
		return kind
	}
	if ext := filepath.Ext(target); ext != "" {
		return "*" + ext
	}
	return "other"
}

// stop ends the sampling and returns the most descriptors seen open and
// what they were.
func (w *fdWatcher) stop() (int, map[string]int) {
	w.once.Do(func() { close(w.done) })
	w.wg.Wait()
	return w.peak, w.peakAt
}

// createScaleTopics creates scaleTopics topics of scalePartitionsPerTopic
// partitions, checks every topic was created whole, and waits until
// Metadata gives every partition a leader. It returns the topic names.
func createScaleTopics(t *testing.T, b *broker) []string {
	t.Helper()
	ctx := testCtx(t, 5*time.Minute)
	adm := kadm.NewClient(newKgo(t, b, kgo.BrokerMaxReadBytes(scaleMaxResponse), kgo.RequestTimeoutOverhead(time.Minute)))
	adm.SetTimeoutMillis(int32(time.Minute / time.Millisecond))
	topics := make([]string, scaleTopics)
	for i := range topics {
		topics[i] = uniqueTopic(t, fmt.Sprintf("%03d", i))
	}
	start := time.Now()
	for i := 0; i < len(topics); i += scaleTopicsPerRequest {
		batch := topics[i:min(i+scaleTopicsPerRequest, len(topics))]
		resps, err := adm.CreateTopics(ctx, scalePartitionsPerTopic, 1, nil, batch...)
		if err != nil {
			t.Fatalf("create topics %d-%d: %v", i, i+len(batch)-1, err)
		}
		for _, name := range batch {
			r, ok := resps[name]
			switch {
			case !ok:
				t.Fatalf("create topics: no answer for %s", name)
			case r.Err != nil:
				t.Fatalf("create topic %s: %v", name, r.Err)
			case r.NumPartitions != scalePartitionsPerTopic:
				t.Fatalf("create topic %s: %d partitions, want %d", name, r.NumPartitions, scalePartitionsPerTopic)
			}
		}
	}
	created := time.Since(start)
	waitAllLed(t, adm, topics)
	t.Logf("created %d topics × %d partitions in %v (%d per CreateTopics request); every partition led after %v",
		scaleTopics, scalePartitionsPerTopic, created.Round(time.Millisecond), scaleTopicsPerRequest, time.Since(start).Round(time.Millisecond))
	return topics
}

// waitAllLed polls an all-topics Metadata request until every partition of
// topics is listed with a leader and no error.
func waitAllLed(t *testing.T, adm *kadm.Client, topics []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx := testCtx(t, 60*time.Second)
		start := time.Now()
		md, err := adm.Metadata(ctx)
		problem := ""
		if err != nil {
			problem = err.Error()
		} else {
			problem = unledPartitions(md, topics)
		}
		if problem == "" {
			t.Logf("all-topics Metadata: %d topics, answered in %v", len(md.Topics), time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Metadata after 60 s: %s", problem)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// unledPartitions describes what md lacks for every partition of topics to
// be listed with a leader, or returns "".
func unledPartitions(md kadm.Metadata, topics []string) string {
	var missing []string
	unled := 0
	for _, name := range topics {
		td, ok := md.Topics[name]
		if !ok || td.Err != nil || len(td.Partitions) != scalePartitionsPerTopic {
			missing = append(missing, name)
			continue
		}
		for _, p := range td.Partitions {
			if p.Err != nil || p.Leader < 0 {
				unled++
			}
		}
	}
	if len(missing) == 0 && unled == 0 {
		return ""
	}
	return fmt.Sprintf("%d topics missing, in error or short of partitions (first: %v); %d partitions without a leader",
		len(missing), missing[:min(len(missing), 3)], unled)
}

// samplePartition is one partition of the sample and what it was given.
type samplePartition struct {
	topic     string
	partition int32
	values    []string // at offsets 0, 1, …
}

// produceSample produces scaleRecords records with acks=all to each of
// scaleSample partitions picked at random, and checks that each
// partition's records were acknowledged at offsets 0, 1, ….
func produceSample(t *testing.T, b *broker, topics []string) []*samplePartition {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	t.Logf("sample seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 10))
	sample := make([]*samplePartition, scaleSample)
	var recs []*kgo.Record
	wantOffset := map[*kgo.Record]int64{}
	for i, n := range rng.Perm(scaleTopics * scalePartitionsPerTopic)[:scaleSample] {
		sp := &samplePartition{topic: topics[n/scalePartitionsPerTopic], partition: int32(n % scalePartitionsPerTopic)}
		for j := range scaleRecords {
			v := fmt.Sprintf("%s/%d/%d", sp.topic, sp.partition, j)
			sp.values = append(sp.values, v)
			r := &kgo.Record{Topic: sp.topic, Partition: sp.partition, Value: []byte(v)}
			recs = append(recs, r)
			wantOffset[r] = int64(j)
		}
		sample[i] = sp
	}
	cl := newKgo(t, b,
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.BrokerMaxReadBytes(scaleMaxResponse),
	)
	ctx := testCtx(t, 2*time.Minute)
	for _, r := range cl.ProduceSync(ctx, recs...) {
		if r.Err != nil {
			t.Fatalf("produce to %s/%d: %v", r.Record.Topic, r.Record.Partition, r.Err)
		}
		if want := wantOffset[r.Record]; r.Record.Offset != want {
			t.Errorf("%s/%d: record %q acknowledged at offset %d, want %d", r.Record.Topic, r.Record.Partition, r.Record.Value, r.Record.Offset, want)
		}
	}
	return sample
}

// readSample consumes every sampled partition from its start and checks
// that it holds exactly the produced records at their offsets.
func readSample(t *testing.T, b *broker, sample []*samplePartition) {
	t.Helper()
	parts := map[string]map[int32]kgo.Offset{}
	want := map[string]*samplePartition{}
	for _, sp := range sample {
		if parts[sp.topic] == nil {
			parts[sp.topic] = map[int32]kgo.Offset{}
		}
		parts[sp.topic][sp.partition] = kgo.NewOffset().AtStart()
		want[sp.topic+"/"+strconv.Itoa(int(sp.partition))] = sp
	}
	cl := newKgo(t, b,
		kgo.ConsumePartitions(parts),
		kgo.FetchMaxWait(200*time.Millisecond),
		kgo.BrokerMaxReadBytes(scaleMaxResponse),
	)
	defer cl.Close()
	ctx := testCtx(t, 2*time.Minute)
	remaining := len(sample) * scaleRecords
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read sample: timed out with %d records not read", remaining)
		}
		fs.EachError(func(tp string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", tp, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			sp := want[r.Topic+"/"+strconv.Itoa(int(r.Partition))]
			if r.Offset >= int64(len(sp.values)) {
				t.Fatalf("%s/%d: record at offset %d; only %d were produced", r.Topic, r.Partition, r.Offset, len(sp.values))
			}
			if got := string(r.Value); got != sp.values[r.Offset] {
				t.Errorf("%s/%d offset %d: read %q, produced %q", r.Topic, r.Partition, r.Offset, got, sp.values[r.Offset])
			}
			remaining--
		})
	}
}

// countFiles counts the regular files under dir.
func countFiles(t testing.TB, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return n
}

// killPartitions is the partition count of TestKillUnderMultiPartitionLoad.
const killPartitions = 32

// TestKillUnderMultiPartitionLoad: kill -9 while several idempotent
// acks=all producers write keyed records spread over killPartitions
// partitions, twice (the second time on a recovered log); after each
// restart every acknowledged record is at its acknowledged offset, intact,
// once, in every partition.
func TestKillUnderMultiPartitionLoad(t *testing.T) {
	requireProcess(t)
	b := startBroker(t, brokerOpts{})
	topic := createTopic(t, b, killPartitions)
	var acked []ackedRecord
	for round := range 2 {
		got := loadAndKill(t, b, topic, round)
		touched := map[int32]bool{}
		for _, a := range got {
			touched[a.Partition] = true
		}
		if len(touched) < killPartitions {
			t.Errorf("round %d: acknowledged records in %d of %d partitions, want all", round, len(touched), killPartitions)
		}
		acked = append(acked, got...)
		b.Restart()
		checkDurable(t, b, topic, acked, false)
		if t.Failed() {
			return
		}
	}
	assertServing(t, b)
}
