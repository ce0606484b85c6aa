package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

type produceOptions struct {
	values       []string
	key          string
	keySet       bool // --key given, possibly empty: an empty key is not a null key
	keySeparator string
	headers      []string
	partition    int32
	acks         string
	compression  string
	idempotent   bool
	linger       time.Duration
	// maxMessageBytes bounds a record batch; when not set (maxBytesSet
	// false) it comes from the topic's max.message.bytes.
	maxMessageBytes int
	maxBytesSet     bool
}

// maxReportedFailures bounds how many failed records produce lists
// individually; the rest are only counted.
const maxReportedFailures = 10

func (a *app) newProduceCommand() *cobra.Command {
	var o produceOptions
	cmd := &cobra.Command{
		Use:   "produce TOPIC",
		Short: "Produce records from stdin (one per line) or from --value",
		Long: `Produce records to TOPIC and wait until every one is acknowledged.

Input: each --value flag is one record; without --value, each line of stdin is
one record (the trailing "\n", and a "\r" before it, are removed; an empty line
is a record with an empty value; a final line without "\n" is still a record).

Keys: --key K gives every record key K. --key-separator SEP splits each input
at the first SEP into key and value; an input without SEP keeps the whole text
as its value and gets --key (or no key).

The summary goes to stderr. If any record fails, each failure is reported
(up to ` + fmt.Sprint(maxReportedFailures) + `) and the exit status is 1.

Size: the producer refuses, before sending, a record whose batch would be
larger than --max-message-bytes (measured before compression; the broker
then checks the batch as sent against the topic's max.message.bytes).
Without the flag the limit is the topic's effective max.message.bytes, read
with DescribeConfigs (kgo's default of 1000012 bytes if that fails, e.g. for
a topic not created yet), so a record as large as the topic accepts can be
written.

SIGINT/SIGTERM stop reading input; records already handed to the client are
still delivered (waiting at most --request-timeout), and the exit status is 0
if all of them were acknowledged. A second signal kills the process.`,
		Example: `  printf 'k1:hello\nk2:world\n' | streambus-cli produce orders --key-separator :
  streambus-cli produce orders --value '{"id":1}' --header source=cli --acks 1
  streambus-cli produce blobs --max-message-bytes 5000000 < large-record.json`,
		Args: exactArgs(1, "TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.keySet = cmd.Flags().Changed("key")
			o.maxBytesSet = cmd.Flags().Changed("max-message-bytes")
			return a.runProduce(cmd.Context(), args[0], o, cmd.Flags().Changed("idempotent"))
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&o.values, "value", nil, "record `VALUE`; repeat for several records (stdin is not read when given)")
	f.StringVar(&o.key, "key", "", "`KEY` for every record (default: no key)")
	f.StringVar(&o.keySeparator, "key-separator", "", "split each input at the first `SEP` into key and value")
	f.StringArrayVar(&o.headers, "header", nil, "record header `key=value`, added to every record; repeatable")
	f.Int32Var(&o.partition, "partition", -1, "partition `N` to produce to; -1 uses the client's partitioner (key hash, sticky for no key)")
	f.StringVar(&o.acks, "acks", "all", "acknowledgements to wait for: all|1|0")
	f.StringVar(&o.compression, "compression", "none", "batch compression: none|gzip|snappy|lz4|zstd")
	f.BoolVar(&o.idempotent, "idempotent", true, "idempotent producer; requires --acks all, and is off by default with --acks 1|0")
	f.DurationVar(&o.linger, "linger", 0, "how long to wait for more records before sending a batch")
	f.IntVar(&o.maxMessageBytes, "max-message-bytes", 0,
		"largest record batch to send, in `BYTES` (default: the topic's max.message.bytes)")
	return cmd
}

// produceStats collects promise results; promises run on client goroutines.
type produceStats struct {
	mu       sync.Mutex
	ok       int64
	bytes    int64
	failed   int64
	failures []string // first maxReportedFailures, in failure order
	limit    batchLimit
}

func (s *produceStats) record(index int, r *kgo.Record, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		s.ok++
		s.bytes += int64(len(r.Key) + len(r.Value))
		return
	}
	s.failed++
	if len(s.failures) < maxReportedFailures {
		msg := fmt.Sprintf("record %d: %v", index, err)
		if errors.Is(err, kerr.MessageTooLarge) {
			msg += "; " + s.limit.String()
		}
		s.failures = append(s.failures, msg)
	}
}

func (a *app) runProduce(ctx context.Context, topic string, o produceOptions, idempotentSet bool) error {
	headers, err := parseKeyValues("--header", o.headers)
	if err != nil {
		return usageError{err}
	}
	popts, err := producerOpts(o.acks, o.compression, o.idempotent, idempotentSet)
	if err != nil {
		return usageError{err}
	}
	if o.partition < -1 {
		return usageErrorf("--partition must be >= 0, got %d", o.partition)
	}
	if o.linger < 0 {
		return usageErrorf("--linger must not be negative")
	}
	if o.maxBytesSet && (o.maxMessageBytes < minBatchBytes || o.maxMessageBytes > maxBatchBytes) {
		return usageErrorf("--max-message-bytes must be between %d and %d, got %d", minBatchBytes, maxBatchBytes, o.maxMessageBytes)
	}
	limit := a.batchLimit(ctx, topic, o)
	popts = append(popts, limit.opts()...)
	popts = append(popts,
		// Like Kafka's Java producer, let the broker auto-create a missing
		// topic if (and only if) its auto.create.topics.enable allows it.
		kgo.AllowAutoTopicCreation(),
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(o.linger),
		kgo.RecordDeliveryTimeout(a.opts.requestTimeout+o.linger),
	)
	if o.partition >= 0 {
		popts = append(popts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := a.newClient(popts...)
	if err != nil {
		return err
	}

	var rhdrs []kgo.RecordHeader
	for _, h := range headers {
		rhdrs = append(rhdrs, kgo.RecordHeader{Key: h[0], Value: []byte(h[1])})
	}
	build := func(input []byte) *kgo.Record {
		r := &kgo.Record{Topic: topic, Headers: rhdrs, Value: input}
		if o.keySet {
			r.Key = []byte(o.key)
		}
		if o.keySeparator != "" {
			if k, v, ok := bytes.Cut(input, []byte(o.keySeparator)); ok {
				r.Key, r.Value = k, v
			}
		}
		if o.partition >= 0 {
			r.Partition = o.partition
		}
		return r
	}

	// Records already read are delivered even after ctx is cancelled: the
	// cancellation only stops reading input.
	deliverCtx := context.WithoutCancel(ctx)
	start := time.Now()
	stats := &produceStats{limit: limit}
	n := 0
	send := func(input []byte) {
		n++
		index := n
		cl.Produce(deliverCtx, build(input), func(r *kgo.Record, err error) { stats.record(index, r, err) })
	}
	var inputErr error
	if len(o.values) > 0 {
		for _, v := range o.values {
			send([]byte(v))
		}
	} else {
		inputErr = readLines(ctx, a.env.Stdin, send)
	}
	// Flush waits for every promise. Each record already has a delivery
	// timeout; this bound only guards against a flush that never returns.
	// Closing the client fails whatever is still buffered, and the promises
	// count those failures.
	flushCtx, cancel := context.WithTimeout(deliverCtx, 2*a.opts.requestTimeout+o.linger)
	_ = cl.Flush(flushCtx)
	cancel()
	cl.Close()
	elapsed := time.Since(start)

	stats.mu.Lock()
	defer stats.mu.Unlock()
	notSent := int64(n) - stats.ok - stats.failed // only non-zero if Flush was interrupted
	fmt.Fprintf(a.env.Stderr, "produced %d of %d record(s) (%d bytes) to topic %q in %v; %d failed\n",
		stats.ok, n, stats.bytes, topic, elapsed.Round(time.Millisecond), stats.failed+notSent)
	for _, f := range stats.failures {
		fmt.Fprintf(a.env.Stderr, "  %s\n", f)
	}
	if extra := stats.failed - int64(len(stats.failures)); extra > 0 {
		fmt.Fprintf(a.env.Stderr, "  ... and %d more failed record(s)\n", extra)
	}
	switch {
	case inputErr != nil && !errors.Is(inputErr, context.Canceled):
		return fmt.Errorf("produce: read stdin: %w", inputErr)
	case stats.failed+notSent > 0:
		return fmt.Errorf("produce: %d of %d record(s) failed", stats.failed+notSent, n)
	}
	if ctx.Err() != nil {
		fmt.Fprintln(a.env.Stderr, "produce: interrupted; stopped reading input")
	}
	return nil
}

// Limits of kgo's producer: ProducerBatchMaxBytes accepts minBatchBytes to
// maxBatchBytes and defaults to kgoBatchBytes; BrokerMaxWriteBytes, which
// bounds a whole produce request, defaults to kgoWriteBytes. A request
// needs requestHeadroom besides its one batch (headers, names, lengths).
const (
	minBatchBytes   = 512
	maxBatchBytes   = 1 << 30
	kgoBatchBytes   = 1000012
	kgoWriteBytes   = 100 << 20
	requestHeadroom = 64 << 10
)

// batchLimit is the producer's largest batch and where that number came
// from, for the message of a record refused as too large.
type batchLimit struct {
	bytes  int
	source string
}

func (l batchLimit) String() string {
	return fmt.Sprintf("batch limit %d bytes: %s", l.bytes, l.source)
}

// opts are the kgo options that apply the limit. A request carries at
// least one whole batch, so the request bound rises with the batch bound.
func (l batchLimit) opts() []kgo.Opt {
	opts := []kgo.Opt{kgo.ProducerBatchMaxBytes(int32(l.bytes))}
	if l.bytes+requestHeadroom > kgoWriteBytes {
		opts = append(opts, kgo.BrokerMaxWriteBytes(int32(min(l.bytes+requestHeadroom, maxBatchBytes))))
	}
	return opts
}

// batchLimit picks the producer's batch limit: --max-message-bytes, else
// the topic's effective max.message.bytes, else kgo's default. A topic
// limit outside kgo's bounds is clamped to them: the broker still refuses
// what the topic does not accept.
func (a *app) batchLimit(ctx context.Context, topic string, o produceOptions) batchLimit {
	if o.maxBytesSet {
		return batchLimit{o.maxMessageBytes, "--max-message-bytes"}
	}
	n, err := a.topicMaxMessageBytes(ctx, topic)
	if err != nil {
		return batchLimit{kgoBatchBytes, fmt.Sprintf("the client's default, as the topic's max.message.bytes could not be read (%v); set --max-message-bytes", err)}
	}
	return batchLimit{min(max(n, minBatchBytes), maxBatchBytes), "the topic's max.message.bytes"}
}

// topicMaxMessageBytes reads topic's effective max.message.bytes (its
// override, else the broker's default) with DescribeConfigs.
func (a *app) topicMaxMessageBytes(ctx context.Context, topic string) (int, error) {
	var n int
	err := a.withAdmin(ctx, func(ctx context.Context, adm *kadm.Client) error {
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			return err
		}
		rc, err := rcs.On(topic, nil)
		if err != nil {
			return err
		}
		if rc.Err != nil {
			return rc.Err
		}
		for _, c := range rc.Configs {
			if c.Key == "max.message.bytes" && c.Value != nil {
				n, err = strconv.Atoi(*c.Value)
				return err
			}
		}
		return fmt.Errorf("topic %q: max.message.bytes not described", topic)
	})
	return n, err
}

// readLines calls fn with each line of r, without its line ending. Reading
// happens on a separate goroutine so that cancelling ctx stops produce even
// while a terminal read blocks; that goroutine exits after its current Read
// returns (at the next line or EOF), which for a terminal may only be when
// the process ends. fn runs on the caller's goroutine.
func readLines(ctx context.Context, r io.Reader, fn func([]byte)) error {
	type item struct {
		line []byte
		err  error
	}
	ch := make(chan item)
	go func() {
		br := bufio.NewReaderSize(r, 64<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				line = bytes.TrimSuffix(line, []byte("\n"))
				line = bytes.TrimSuffix(line, []byte("\r"))
				select {
				case ch <- item{line: line}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				select {
				case ch <- item{err: err}:
				case <-ctx.Done():
				}
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case it := <-ch:
			if it.line != nil {
				fn(it.line)
				continue
			}
			return it.err
		}
	}
}
