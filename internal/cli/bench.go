package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

type benchOptions struct {
	topic             string
	topicCount        int
	partitions        int32
	replicationFactor int16
	recordSize        int
	duration          time.Duration
	rate              int
	acks              string
	linger            time.Duration
	partitioner       string
	compression       string
	producers         int
	mode              string
	batchMaxBytes     int32
	json              bool
	progressInterval  time.Duration
	consumeIdle       time.Duration
}

// pacingSlack is how early a paced record may be sent rather than sleeping:
// sleeping for less than this costs more in timer overhead than it buys.
const pacingSlack = 200 * time.Microsecond

func (a *app) newBenchCommand() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure produce and consume throughput and produce latency",
		Long: `Benchmark the cluster with random (incompressible) records of --record-size
bytes and no key.

Modes:
  produce   produce for --duration with --producers clients, waiting for acks
  consume   consume the records present in the topics when the run starts
            (from the log start to the high watermark), for at most --duration
  both      produce for --duration, then consume exactly what was produced
  create    create the topics that do not exist yet and exit, reporting how
            long until every new partition had a leader in the metadata

With --topic-count N above 1 the run uses N topics named TOPIC-0 ... TOPIC-<N-1>
(TOPIC is --topic); each producer sends its records to them in turn. With
--partitioner round-robin each record goes to the next partition of its topic,
so records are spread evenly over every partition; the default, sticky, is the
client's own choice (franz-go's uniform-bytes partitioner: about 64 KiB to one
partition before moving on).

Produce latency is measured per record from the moment it was due to be sent
to its acknowledgement (its promise). With --rate R the producers pace records
on a fixed schedule (R records/s in total); a record sent late because an
earlier one blocked is still timed from when it was due, so stalls are not
hidden (no coordinated omission). With --rate 0 records are produced as fast
as the client accepts them and latency is timed from the Produce call.

While running, a progress line is written to stderr every --progress-interval;
the summary goes to stdout (as one JSON object with --json). Topics that do not
exist are created with --partitions and --replication-factor in one
CreateTopics request before the produce phase, which is not timed into its
throughput; the summary reports how long the creation took. Exit status 1 if
any record failed.`,
		Example: `  streambus-cli bench --duration 30s --rate 50000 --record-size 512
  streambus-cli bench --mode both --producers 4 --compression zstd --json
  streambus-cli bench --topic t --topic-count 10 --partitions 100 --mode create
  streambus-cli bench --topic t --topic-count 10 --partitioner round-robin --linger 5ms`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return a.runBench(cmd.Context(), o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.topic, "topic", "streambus-bench", "topic to use (with --topic-count above 1: the prefix of the topic names)")
	f.IntVar(&o.topicCount, "topic-count", 1, "number of topics, named TOPIC-0 ... TOPIC-<N-1> when above 1")
	f.Int32Var(&o.partitions, "partitions", 16, "partitions when creating a topic")
	f.Int16Var(&o.replicationFactor, "replication-factor", -1, "replication factor when creating the topic (-1: broker default)")
	f.IntVar(&o.recordSize, "record-size", 1024, "value size in bytes")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to produce (consume mode: the longest to consume)")
	f.IntVar(&o.rate, "rate", 0, "target records/s over all producers (0: as fast as possible)")
	f.StringVar(&o.acks, "acks", "all", "acks: all|1|0 (idempotent with all)")
	f.DurationVar(&o.linger, "linger", 10*time.Millisecond, "producer linger")
	f.StringVar(&o.partitioner, "partitioner", "sticky", "sticky|round-robin (see above)")
	f.StringVar(&o.compression, "compression", "none", "none|gzip|snappy|lz4|zstd")
	f.IntVar(&o.producers, "producers", 1, "number of producer clients (each its own connections)")
	f.StringVar(&o.mode, "mode", "produce", "produce|consume|both|create")
	f.Int32Var(&o.batchMaxBytes, "batch-max-bytes", 0, "max bytes of a record batch (0: client default, about 1 MB)")
	f.BoolVar(&o.json, "json", false, "print the result as JSON")
	f.DurationVar(&o.progressInterval, "progress-interval", time.Second, "interval of the progress lines on stderr")
	f.DurationVar(&o.consumeIdle, "consume-idle-timeout", 10*time.Second, "end the consume phase early after no record for this long")
	return cmd
}

func (o benchOptions) validate() error {
	switch {
	case o.topic == "":
		return errors.New("--topic must not be empty")
	case o.topicCount < 1:
		return fmt.Errorf("--topic-count must be positive, got %d", o.topicCount)
	case o.partitions < 1:
		return fmt.Errorf("--partitions must be positive, got %d", o.partitions)
	case o.replicationFactor == 0 || o.replicationFactor < -1:
		return fmt.Errorf("--replication-factor must be positive or -1, got %d", o.replicationFactor)
	case o.recordSize < 0:
		return fmt.Errorf("--record-size must not be negative, got %d", o.recordSize)
	case o.duration <= 0:
		return fmt.Errorf("--duration must be positive, got %v", o.duration)
	case o.rate < 0:
		return fmt.Errorf("--rate must not be negative, got %d", o.rate)
	case o.linger < 0:
		return fmt.Errorf("--linger must not be negative, got %v", o.linger)
	case o.producers < 1:
		return fmt.Errorf("--producers must be positive, got %d", o.producers)
	case o.mode != "produce" && o.mode != "consume" && o.mode != "both" && o.mode != "create":
		return fmt.Errorf("--mode: unknown mode %q (want produce|consume|both|create)", o.mode)
	case o.partitioner != "sticky" && o.partitioner != "round-robin":
		return fmt.Errorf("--partitioner: unknown partitioner %q (want sticky|round-robin)", o.partitioner)
	case o.batchMaxBytes < 0:
		return fmt.Errorf("--batch-max-bytes must not be negative, got %d", o.batchMaxBytes)
	case o.progressInterval <= 0:
		return fmt.Errorf("--progress-interval must be positive, got %v", o.progressInterval)
	case o.consumeIdle <= 0:
		return fmt.Errorf("--consume-idle-timeout must be positive, got %v", o.consumeIdle)
	}
	return nil
}

// topics returns the topics of the run: --topic, or with --topic-count N
// above 1, TOPIC-0 ... TOPIC-<N-1>.
func (o benchOptions) topics() []string {
	if o.topicCount == 1 {
		return []string{o.topic}
	}
	out := make([]string, o.topicCount)
	for i := range out {
		out[i] = o.topic + "-" + strconv.Itoa(i)
	}
	return out
}

// BenchResult is the outcome of `bench`, printed as JSON with --json.
// Topic is --topic (the name prefix when Topics is above 1); Partitions
// counts the partitions of all the topics.
type BenchResult struct {
	Topic       string              `json:"topic"`
	Topics      int                 `json:"topics"`
	Partitions  int                 `json:"partitions"`
	RecordSize  int                 `json:"record_size"`
	Mode        string              `json:"mode"`
	Rate        int                 `json:"rate"`
	Producers   int                 `json:"producers"`
	Acks        string              `json:"acks"`
	Compression string              `json:"compression"`
	LingerMs    float64             `json:"linger_ms"`
	Partitioner string              `json:"partitioner"`
	Create      *BenchCreateResult  `json:"create,omitempty"`
	Produce     *BenchProduceResult `json:"produce,omitempty"`
	Consume     *BenchConsumeResult `json:"consume,omitempty"`
}

// BenchCreateResult covers the topics bench created (absent when all
// existed): from sending CreateTopics to the first metadata answer in which
// every new partition has a leader.
type BenchCreateResult struct {
	Topics         int     `json:"topics"`
	Partitions     int     `json:"partitions"`
	ElapsedSeconds float64 `json:"elapsed_seconds"`
}

// BenchProduceResult covers the produce phase: throughput counts acknowledged
// records only, over the time from the first send to the last ack.
type BenchProduceResult struct {
	Records          int64          `json:"records"`
	Bytes            int64          `json:"bytes"`
	Failed           int64          `json:"failed"`
	FirstError       string         `json:"first_error,omitempty"`
	ElapsedSeconds   float64        `json:"elapsed_seconds"`
	RecordsPerSecond float64        `json:"records_per_second"`
	MiBPerSecond     float64        `json:"mib_per_second"`
	LatencyMs        LatencySummary `json:"latency_ms"`
}

// LatencySummary is a latency distribution in milliseconds.
type LatencySummary struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// BenchConsumeResult covers the consume phase, from client start to the last
// record of the range.
type BenchConsumeResult struct {
	Records          int64   `json:"records"`
	Bytes            int64   `json:"bytes"`
	Expected         int64   `json:"expected"`
	ElapsedSeconds   float64 `json:"elapsed_seconds"`
	RecordsPerSecond float64 `json:"records_per_second"`
	MiBPerSecond     float64 `json:"mib_per_second"`
}

const mib = 1 << 20

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (a *app) runBench(ctx context.Context, o benchOptions) error {
	if err := o.validate(); err != nil {
		return usageError{err}
	}
	popts, err := producerOpts(o.acks, o.compression, false, false)
	if err != nil {
		return usageError{err}
	}
	adm, err := a.newAdmin()
	if err != nil {
		return err
	}
	defer adm.Close()

	topics := o.topics()
	partitions, created, err := a.benchEnsureTopics(ctx, adm, o, topics)
	if err != nil {
		return err
	}
	res := &BenchResult{
		Topic: o.topic, Topics: len(topics), Partitions: partitions, RecordSize: o.recordSize, Mode: o.mode, Rate: o.rate,
		Producers: o.producers, Acks: o.acks, Compression: o.compression, LingerMs: ms(o.linger),
		Partitioner: o.partitioner, Create: created,
	}

	// The consume range starts where the log is before producing (both) or at
	// the log start (consume); it ends at the high watermark after producing.
	var starts benchOffsets
	if o.mode == "both" || o.mode == "consume" {
		list := adm.ListEndOffsets
		if o.mode == "consume" {
			list = adm.ListStartOffsets
		}
		if starts, err = a.benchListOffsets(ctx, list, topics); err != nil {
			return err
		}
	}
	if o.mode == "both" || o.mode == "produce" {
		res.Produce, err = a.benchProduce(ctx, o, topics, popts)
		if err != nil {
			return err
		}
	}
	if (o.mode == "both" || o.mode == "consume") && ctx.Err() == nil {
		ends, err := a.benchListOffsets(ctx, adm.ListEndOffsets, topics)
		if err != nil {
			return err
		}
		var deadline time.Time
		if o.mode == "consume" {
			deadline = time.Now().Add(o.duration)
		}
		if res.Consume, err = a.benchConsume(ctx, o, starts, ends, deadline); err != nil {
			return err
		}
	}

	if o.json {
		if err := writeJSON(a.env.Stdout, res); err != nil {
			return err
		}
	} else {
		writeBenchSummary(a.env.Stdout, res, o)
	}
	if ctx.Err() != nil {
		// Records cut off by the interrupt count as failed above; say why.
		return fmt.Errorf("bench: interrupted: %w", ctx.Err())
	}
	if res.Produce != nil && res.Produce.Failed > 0 {
		return fmt.Errorf("bench: %d record(s) failed, first: %s", res.Produce.Failed, res.Produce.FirstError)
	}
	return nil
}

// benchEnsureTopics returns the total partition count of topics, first
// creating the missing ones (unless consuming) in one CreateTopics request
// and waiting until each new partition has a leader in the metadata, so the
// produce phase does not time the brokers' work of opening them. created is
// nil when every topic existed.
func (a *app) benchEnsureTopics(ctx context.Context, adm *kadm.Client, o benchOptions, topics []string) (partitions int, created *BenchCreateResult, err error) {
	rctx, cancel := context.WithTimeout(ctx, a.opts.requestTimeout)
	defer cancel()
	details, err := adm.ListTopics(rctx, topics...)
	if err != nil {
		return 0, nil, fmt.Errorf("bench: describe topics: %w", err)
	}
	var missing []string
	for _, t := range topics {
		td, ok := details[t]
		if !ok || td.Err != nil {
			missing = append(missing, t)
			continue
		}
		if int32(len(td.Partitions)) != o.partitions {
			fmt.Fprintf(a.env.Stderr, "bench: using existing topic %q with %d partitions\n", t, len(td.Partitions))
		}
		partitions += len(td.Partitions)
	}
	if len(missing) == 0 {
		return partitions, nil, nil
	}
	if o.mode == "consume" {
		return 0, nil, fmt.Errorf("bench: topic %q does not exist (run --mode produce first)", missing[0])
	}

	start := time.Now()
	resps, err := adm.CreateTopics(rctx, o.partitions, o.replicationFactor, nil, missing...)
	if err != nil {
		return 0, nil, fmt.Errorf("bench: create topics: %w", err)
	}
	for _, t := range missing {
		r, ok := resps[t]
		if !ok {
			return 0, nil, fmt.Errorf("bench: create topic %q: no answer for it", t)
		}
		if r.Err != nil && !errors.Is(r.Err, kerr.TopicAlreadyExists) {
			return 0, nil, fmt.Errorf("bench: create topic %q: %w", t, withMessage(r.Err, r.ErrMessage))
		}
	}
	n, err := benchAwaitLeaders(rctx, adm, missing)
	if err != nil {
		return 0, nil, err
	}
	created = &BenchCreateResult{Topics: len(missing), Partitions: n, ElapsedSeconds: time.Since(start).Seconds()}
	if len(missing) == 1 {
		fmt.Fprintf(a.env.Stderr, "bench: created topic %q with %d partitions\n", missing[0], n)
	} else {
		fmt.Fprintf(a.env.Stderr, "bench: created %d topics with %d partitions in all in %.3fs\n", len(missing), n, created.ElapsedSeconds)
	}
	return partitions + n, created, nil
}

// benchAwaitLeaders polls the metadata of topics until every partition of
// each has a leader, and returns their partition count. WithAuthorizedOps
// makes kadm skip the client's metadata cache, which would otherwise keep
// answering with what it saw before the creation for up to MetadataMinAge
// (5 s).
func benchAwaitLeaders(ctx context.Context, adm *kadm.Client, topics []string) (int, error) {
	ctx = kadm.WithAuthorizedOps(ctx)
	for {
		details, err := adm.ListTopics(ctx, topics...)
		if err != nil {
			return 0, fmt.Errorf("bench: describe created topics: %w", err)
		}
		n, pending := 0, ""
		for _, t := range topics {
			td, ok := details[t]
			if !ok || td.Err != nil || len(td.Partitions) == 0 {
				pending = t
				break
			}
			for _, p := range td.Partitions {
				if p.Err != nil || p.Leader < 0 {
					pending = t
				}
			}
			n += len(td.Partitions)
		}
		if pending == "" {
			return n, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("bench: created topic %q has partitions without a leader: %w", pending, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// benchOffsets holds an offset per topic and partition.
type benchOffsets map[string]map[int32]int64

// benchListOffsets lists offsets of every partition of topics. A topic that
// was just created may not be known to every broker (or the client's metadata
// cache) yet, so UNKNOWN_TOPIC_OR_PARTITION is retried until the request
// timeout.
func (a *app) benchListOffsets(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topics []string) (benchOffsets, error) {
	rctx, cancel := context.WithTimeout(ctx, a.opts.requestTimeout)
	defer cancel()
	for {
		out, err := listOffsetsOnce(rctx, list, topics)
		if err == nil || !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return out, err
		}
		select {
		case <-rctx.Done():
			return nil, err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func listOffsetsOnce(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topics []string) (benchOffsets, error) {
	listed, err := list(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("bench: list offsets: %w", err)
	}
	out := make(benchOffsets)
	var firstErr error
	listed.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("bench: list offsets of %s[%d]: %w", lo.Topic, lo.Partition, lo.Err)
			}
			return
		}
		if out[lo.Topic] == nil {
			out[lo.Topic] = make(map[int32]int64)
		}
		out[lo.Topic][lo.Partition] = lo.Offset
	})
	return out, firstErr
}

// produceRun is the shared state of one produce phase; promises update it
// from client goroutines, so everything is atomic or under mu.
type produceRun struct {
	sent, acked, ackedBytes, failed atomic.Int64
	hist                            latencyHistogram
	mu                              sync.Mutex
	firstErr                        error
}

func (r *produceRun) fail(err error) {
	r.failed.Add(1)
	r.mu.Lock()
	if r.firstErr == nil {
		r.firstErr = err
	}
	r.mu.Unlock()
}

func (a *app) benchProduce(ctx context.Context, o benchOptions, topics []string, popts []kgo.Opt) (*BenchProduceResult, error) {
	opts := append([]kgo.Opt{kgo.ProducerLinger(o.linger)}, popts...)
	if o.partitioner == "round-robin" {
		opts = append(opts, kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	}
	if o.batchMaxBytes > 0 {
		opts = append(opts, kgo.ProducerBatchMaxBytes(o.batchMaxBytes))
	}
	clients := make([]*kgo.Client, 0, o.producers)
	defer func() {
		for _, cl := range clients {
			cl.Close()
		}
	}()
	for range o.producers {
		cl, err := a.newClient(opts...)
		if err != nil {
			return nil, err
		}
		clients = append(clients, cl)
	}

	payload := make([]byte, o.recordSize)
	rng := rand.New(rand.NewPCG(1, 2)) // fixed seed: runs are comparable
	for i := range payload {
		payload[i] = byte(rng.Uint32())
	}

	run := &produceRun{}
	start := time.Now()
	deadline := start.Add(o.duration)
	stopProgress := a.startProgress(o.progressInterval, start, func(w io.Writer, elapsed, window time.Duration, prev *int64) {
		acked := run.acked.Load()
		fmt.Fprintf(w, "produce [%6.1fs] sent %d acked %d failed %d | %.0f rec/s %.2f MiB/s | p50 %.2fms p99 %.2fms max %.2fms\n",
			elapsed.Seconds(), run.sent.Load(), acked, run.failed.Load(),
			float64(acked-*prev)/window.Seconds(), float64(acked-*prev)*float64(o.recordSize)/mib/window.Seconds(),
			ms(run.hist.Quantile(0.5)), ms(run.hist.Quantile(0.99)), ms(run.hist.Max()))
		*prev = acked
	})

	var wg sync.WaitGroup
	for i, cl := range clients {
		wg.Go(func() { benchProduceLoop(ctx, cl, o, topics, payload, run, start, deadline, i) })
	}
	wg.Wait()
	for _, cl := range clients {
		if err := cl.Flush(ctx); err != nil {
			break // interrupted: Close fails the rest, which the promises count
		}
	}
	end := time.Now()
	for _, cl := range clients {
		cl.Close()
	}
	clients = nil
	stopProgress()

	elapsed := end.Sub(start)
	res := &BenchProduceResult{
		Records: run.acked.Load(), Bytes: run.ackedBytes.Load(), Failed: run.failed.Load(),
		ElapsedSeconds: elapsed.Seconds(),
		LatencyMs: LatencySummary{
			P50: ms(run.hist.Quantile(0.50)), P90: ms(run.hist.Quantile(0.90)), P99: ms(run.hist.Quantile(0.99)),
			P999: ms(run.hist.Quantile(0.999)), Max: ms(run.hist.Max()), Mean: ms(run.hist.Mean()),
		},
	}
	if run.firstErr != nil {
		res.FirstError = run.firstErr.Error()
	}
	if s := elapsed.Seconds(); s > 0 {
		res.RecordsPerSecond = float64(res.Records) / s
		res.MiBPerSecond = float64(res.Bytes) / mib / s
	}
	return res, nil
}

// benchProduceLoop produces until deadline. With a rate, producer idx of n
// sends record i at start + (i + idx/n) * n/rate, so the producers together
// keep a uniform schedule; each record's latency is timed from the earlier of
// its due time and its actual send, which charges a late send's delay to the
// system under test rather than hiding it. Record i of producer idx goes to
// topic (i*n + idx) mod len(topics), so the producers together visit the
// topics in turn.
func benchProduceLoop(ctx context.Context, cl *kgo.Client, o benchOptions, topics []string, payload []byte, run *produceRun, start, deadline time.Time, idx int) {
	var interval float64 // ns between this producer's records; 0 unpaced
	if o.rate > 0 {
		interval = float64(time.Second) * float64(o.producers) / float64(o.rate)
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		now := time.Now()
		from := now
		if interval > 0 {
			due := start.Add(time.Duration((float64(i) + float64(idx)/float64(o.producers)) * interval))
			if !due.Before(deadline) {
				return
			}
			if wait := due.Sub(now); wait > pacingSlack {
				timer.Reset(wait)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				now = time.Now()
			}
			from = now
			if due.Before(now) {
				from = due
			}
		} else if !now.Before(deadline) {
			return
		}
		run.sent.Add(1)
		topic := topics[(i*o.producers+idx)%len(topics)]
		cl.Produce(ctx, &kgo.Record{Topic: topic, Value: payload}, func(r *kgo.Record, err error) {
			if err != nil {
				run.fail(err)
				return
			}
			run.hist.Record(time.Since(from))
			run.acked.Add(1)
			run.ackedBytes.Add(int64(len(r.Value)))
		})
	}
}

// topicPartition names one partition of one topic.
type topicPartition struct {
	topic     string
	partition int32
}

func (a *app) benchConsume(ctx context.Context, o benchOptions, starts, ends benchOffsets, deadline time.Time) (*BenchConsumeResult, error) {
	res := &BenchConsumeResult{}
	offsets := make(map[string]map[int32]kgo.Offset)
	remaining := make(map[topicPartition]int64) // end offset still to reach
	for t, tends := range ends {
		for p, end := range tends {
			start, ok := starts[t][p]
			if !ok {
				start = 0 // partition created after the start snapshot
			}
			if end > start {
				if offsets[t] == nil {
					offsets[t] = make(map[int32]kgo.Offset)
				}
				offsets[t][p] = kgo.NewOffset().At(start)
				remaining[topicPartition{t, p}] = end
				res.Expected += end - start
			}
		}
	}
	if len(offsets) == 0 {
		return res, nil
	}
	cl, err := a.newClient(kgo.ConsumePartitions(offsets))
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	var records, bytes atomic.Int64
	start := time.Now()
	last := start
	stopProgress := a.startProgress(o.progressInterval, start, func(w io.Writer, elapsed, window time.Duration, prev *int64) {
		n := records.Load()
		fmt.Fprintf(w, "consume [%6.1fs] records %d of %d | %.0f rec/s\n",
			elapsed.Seconds(), n, res.Expected, float64(n-*prev)/window.Seconds())
		*prev = n
	})
	defer stopProgress()

	for len(remaining) > 0 && ctx.Err() == nil {
		wait := o.consumeIdle
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				break
			}
			wait = min(wait, left)
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := cl.PollFetches(pctx)
		timedOut := pctx.Err() != nil
		cancel()
		fetches.EachRecord(func(r *kgo.Record) {
			tp := topicPartition{r.Topic, r.Partition}
			end, ok := remaining[tp]
			if !ok || r.Offset >= end {
				return
			}
			records.Add(1)
			bytes.Add(int64(len(r.Key) + len(r.Value)))
			last = time.Now()
			if r.Offset+1 >= end {
				delete(remaining, tp)
			}
		})
		if timedOut && fetches.NumRecords() == 0 {
			break
		}
	}
	res.Records, res.Bytes = records.Load(), bytes.Load()
	elapsed := last.Sub(start)
	res.ElapsedSeconds = elapsed.Seconds()
	if s := elapsed.Seconds(); s > 0 {
		res.RecordsPerSecond = float64(res.Records) / s
		res.MiBPerSecond = float64(res.Bytes) / mib / s
	}
	if len(remaining) > 0 && ctx.Err() == nil {
		fmt.Fprintf(a.env.Stderr, "bench: consume phase ended with %d of %d record(s) unread\n", res.Expected-res.Records, res.Expected)
	}
	return res, nil
}

// startProgress calls line every interval on its own goroutine, writing to
// stderr, until the returned stop is called. stop waits for the goroutine and
// then prints a final line, unless a periodic line was printed within the
// last half interval (its window would be too short for a meaningful rate),
// so every phase reports at least one line.
func (a *app) startProgress(interval time.Duration, start time.Time, line func(w io.Writer, elapsed, window time.Duration, prev *int64)) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var prev, printed int64
	lastTick := start
	tick := func() {
		now := time.Now()
		window := now.Sub(lastTick)
		if window <= 0 {
			window = time.Nanosecond
		}
		line(a.env.Stderr, now.Sub(start), window, &prev)
		lastTick = now
		printed++
	}
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				tick()
			}
		}
	})
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			wg.Wait()
			if printed == 0 || time.Since(lastTick) >= interval/2 {
				tick()
			}
		})
	}
}

func writeBenchSummary(w io.Writer, r *BenchResult, o benchOptions) {
	rate := "unlimited"
	if r.Rate > 0 {
		rate = fmt.Sprintf("%d rec/s", r.Rate)
	}
	topic := r.Topic
	if r.Topics > 1 {
		topic = fmt.Sprintf("%s-0...%s-%d", r.Topic, r.Topic, r.Topics-1)
	}
	fmt.Fprintf(w, "bench: topic %s, %d partitions, %d-byte records, mode %s, rate %s, %d producer(s), acks %s, compression %s, linger %v\n",
		topic, r.Partitions, r.RecordSize, r.Mode, rate, r.Producers, r.Acks, r.Compression, o.linger)
	if c := r.Create; c != nil {
		fmt.Fprintf(w, "create: %d topic(s), %d partitions in %.3fs\n", c.Topics, c.Partitions, c.ElapsedSeconds)
	}
	if p := r.Produce; p != nil {
		fmt.Fprintf(w, "produce: %d records, %.2f MiB in %.3fs: %.1f rec/s, %.2f MiB/s, %d failed\n",
			p.Records, float64(p.Bytes)/mib, p.ElapsedSeconds, p.RecordsPerSecond, p.MiBPerSecond, p.Failed)
		l := p.LatencyMs
		fmt.Fprintf(w, "produce latency (due -> ack, ms): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  mean %.3f\n",
			l.P50, l.P90, l.P99, l.P999, l.Max, l.Mean)
		if p.FirstError != "" {
			fmt.Fprintf(w, "produce first error: %s\n", p.FirstError)
		}
	}
	if c := r.Consume; c != nil {
		fmt.Fprintf(w, "consume: %d of %d records, %.2f MiB in %.3fs: %.1f rec/s, %.2f MiB/s\n",
			c.Records, c.Expected, float64(c.Bytes)/mib, c.ElapsedSeconds, c.RecordsPerSecond, c.MiBPerSecond)
	}
}
