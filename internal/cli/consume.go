package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

type consumeOptions struct {
	from       string
	partitions []int32
	count      int
	format     string
	timeout    time.Duration
	group      groupConsumeOptions
}

func (a *app) newConsumeCommand() *cobra.Command {
	var o consumeOptions
	cmd := &cobra.Command{
		Use:   "consume TOPIC",
		Short: "Consume records from a topic and print them",
		Long: `Consume records from TOPIC (all partitions, or those given with --partition)
and print them to stdout. Without --group no consumer group is involved and
nothing is committed.

--from chooses where each partition starts:
  beginning    the log start offset (also: earliest)
  end          the log end: only records produced from now on (also: latest)
  OFFSET       exactly OFFSET, e.g. --from 42; an offset outside the log is
               clamped to the nearest of log start and log end
  -N           N records before the log end, e.g. --from=-10
  @MS          the first record whose timestamp is >= MS (Unix milliseconds),
               e.g. --from @1700000000000; the log end if there is none

Consuming stops after --count records, after --timeout without any record,
or on SIGINT/SIGTERM; all three exit 0. A summary goes to stderr.

` + groupConsumeHelp + `

--format ` + formatHelp,
		Example: `  streambus-cli consume orders -n 10
  streambus-cli consume orders --from @1700000000000 --format json --timeout 5s
  streambus-cli consume orders --partition 0 --from 100 --format '%p/%o %k=%v\n'
  streambus-cli consume orders --group billing --timeout 10s`,
		Args: exactArgs(1, "TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			// The group flags mean nothing without a group; saying so
			// beats silently ignoring them.
			for _, name := range []string{"balancer", "instance-id", "group-protocol", "commit-interval"} {
				if cmd.Flags().Changed(name) && o.group.group == "" {
					return usageErrorf("--%s requires --group", name)
				}
			}
			o.group.instanceIDSet = cmd.Flags().Changed("instance-id")
			return a.runConsume(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.from, "from", "beginning", "where to start: beginning|end|OFFSET|-N|@TIMESTAMP_MS (see above)")
	f.Int32SliceVar(&o.partitions, "partition", nil, "partition `N` to consume; repeatable or comma-separated; none given means all")
	f.IntVarP(&o.count, "count", "n", 0, "stop after `N` records (0: no limit)")
	f.StringVar(&o.format, "format", "text", "text|json|FORMAT (see above)")
	f.DurationVar(&o.timeout, "timeout", 0, "exit after no record arrived for this long (0: wait forever)")
	o.group.addFlags(f)
	return cmd
}

func (a *app) runConsume(ctx context.Context, topic string, o consumeOptions) error {
	start, err := parseFrom(o.from)
	if err != nil {
		return usageError{err}
	}
	formatter, err := newFormatter(o.format)
	if err != nil {
		return usageError{err}
	}
	if o.count < 0 {
		return usageErrorf("--count must not be negative, got %d", o.count)
	}
	if o.timeout < 0 {
		return usageErrorf("--timeout must not be negative, got %v", o.timeout)
	}
	for _, p := range o.partitions {
		if p < 0 {
			return usageErrorf("--partition must be >= 0, got %d", p)
		}
	}
	grouped := o.group.group != ""
	if grouped && len(o.partitions) > 0 {
		return usageErrorf("--partition cannot be used with --group: the group assigns the partitions")
	}

	var copts []kgo.Opt
	if grouped {
		gopts, err := o.group.clientOpts(topic, start)
		if err != nil {
			return usageError{err}
		}
		copts = append(copts, gopts...)
	} else if len(o.partitions) == 0 {
		copts = append(copts, kgo.ConsumeTopics(topic), kgo.ConsumeStartOffset(start))
	} else {
		offsets := make(map[int32]kgo.Offset, len(o.partitions))
		for _, p := range o.partitions {
			offsets[p] = start
		}
		copts = append(copts, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}))
	}
	cl, err := a.newClient(copts...)
	if err != nil {
		return err
	}
	// A group consumer blocks rebalances from each poll until its records
	// are written; closing must lift that block or leaving would hang.
	defer cl.CloseAllowingRebalance()

	adm := kadm.NewClient(cl)
	if err := a.checkConsumable(ctx, adm, topic, o.partitions); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted before consuming anything
		}
		return err
	}
	if grouped && o.group.protocol == groupProtocolConsumer {
		if err := a.checkConsumerProtocol(ctx, adm); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
	}

	var (
		consumed int
		buf      bytes.Buffer
		reason   = "interrupted"
		printed  []*kgo.Record // with --group: this poll's records, to mark once written
	)
	for {
		want := -1
		if o.count > 0 {
			want = o.count - consumed
		}
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if o.timeout > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, o.timeout)
		}
		fetches := cl.PollRecords(pollCtx, want)
		idle := pollCtx.Err() != nil && ctx.Err() == nil
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
				return // our own poll timeout or cancellation, handled below
			}
			fmt.Fprintf(a.env.Stderr, "streambus-cli: warning: fetch %s[%d]: %v\n", t, p, err)
		})
		printed = printed[:0]
		fetches.EachRecord(func(r *kgo.Record) {
			if o.count > 0 && consumed >= o.count {
				return
			}
			formatter.format(&buf, r)
			consumed++
			if grouped {
				printed = append(printed, r)
			}
		})
		if buf.Len() > 0 {
			if err := writeAll(a.env.Stdout, &buf); err != nil {
				return fmt.Errorf("consume: write output: %w", err)
			}
		}
		if grouped {
			// Only now, with the records written, may their offsets be
			// committed; a rebalance blocked since the poll may go on.
			cl.MarkCommitRecords(printed...)
			cl.AllowRebalance()
		}
		if o.count > 0 && consumed >= o.count {
			reason = "count reached"
			break
		}
		if idle && fetches.NumRecords() == 0 {
			reason = fmt.Sprintf("no record for %v", o.timeout)
			break
		}
	}
	fmt.Fprintf(a.env.Stderr, "consumed %d record(s) from topic %q (%s)\n", consumed, topic, reason)
	if grouped {
		return a.finishGroupConsume(ctx, cl, o.group)
	}
	return nil
}

// checkConsumable fails fast, with a clear message, when the topic or a
// requested partition does not exist, instead of polling silently forever.
func (a *app) checkConsumable(ctx context.Context, adm *kadm.Client, topic string, partitions []int32) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.requestTimeout)
	defer cancel()
	details, err := adm.ListTopicsWithInternal(ctx, topic)
	if err != nil {
		return fmt.Errorf("consume: describe topic %q: %w", topic, err)
	}
	td, ok := details[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("consume: topic %q does not exist", topic)
	}
	if td.Err != nil {
		return fmt.Errorf("consume: topic %q: %w", topic, td.Err)
	}
	have := make([]int32, 0, len(td.Partitions))
	for p := range td.Partitions {
		have = append(have, p)
	}
	for _, p := range partitions {
		if !slices.Contains(have, p) {
			return fmt.Errorf("consume: topic %q has no partition %d (it has %d partitions)", topic, p, len(have))
		}
	}
	return nil
}
