package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// trimOptions are the flags of `topic trim`.
type trimOptions struct {
	beforeOffset    int64
	beforeTimestamp string
	partitions      []int32
	output          string
}

// trimResult is the `topic trim` result.
type trimResult struct {
	Topic      string          `json:"topic"`
	Partitions []trimPartition `json:"partitions"`
}

// trimPartition is one partition's outcome: the offset it was trimmed
// before (-1 if it could not be resolved) and its log start offset after
// the trim (-1 if the trim failed).
type trimPartition struct {
	Partition    int32  `json:"partition"`
	BeforeOffset int64  `json:"before_offset"`
	LowWatermark int64  `json:"low_watermark"`
	Error        string `json:"error,omitempty"`
}

func (a *app) newTopicTrim() *cobra.Command {
	var o trimOptions
	cmd := &cobra.Command{
		Use:   "trim TOPIC (--before-offset N | --before-timestamp T)",
		Short: "Delete a topic's oldest records (DeleteRecords)",
		Long: `Delete the records at the start of TOPIC's partitions by moving each
partition's log start offset (low watermark) forward, as Kafka's
kafka-delete-records does. Deleted records can no longer be read; the
broker removes whole segments below the new log start.

Exactly one of:
  --before-offset N     delete every record before offset N in each
                        partition. An N past a partition's high watermark
                        fails for that partition (OFFSET_OUT_OF_RANGE); an N
                        at or below its log start changes nothing.
  --before-timestamp T  delete, in each partition, every record before the
                        first one whose timestamp is at or after T (Unix
                        milliseconds or RFC 3339), the offset that ListOffsets
                        by timestamp answers. A partition with no record at
                        or after T is trimmed to its high watermark: all of
                        its records are deleted. Timestamps need not grow
                        with offsets (producers set CreateTime), so a later
                        record can be deleted and an earlier one kept.

--partitions restricts the trim to the listed partitions; by default every
partition is trimmed. Every selected partition is attempted; the result
lists for each the offset it was trimmed before, its new low watermark and
any error, and the exit status is 1 if any partition failed.`,
		Example: `  streambus-cli topic trim orders --before-offset 1000
  streambus-cli topic trim orders --before-offset 1000 --partitions 0,2
  streambus-cli topic trim orders --before-timestamp 2026-01-31T00:00:00Z
  streambus-cli topic trim orders --before-timestamp 1769817600000 -o json`,
		Args: exactArgs(1, "TOPIC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := cmd.Flags()
			byOffset, byTime := f.Changed("before-offset"), f.Changed("before-timestamp")
			if byOffset == byTime {
				return usageErrorf("give exactly one of --before-offset and --before-timestamp")
			}
			if err := validateOutput(o.output); err != nil {
				return err
			}
			parts, err := trimPartitions(o.partitions)
			if err != nil {
				return err
			}
			var resolve offsetResolver
			if byOffset {
				if o.beforeOffset < 0 {
					return usageErrorf("--before-offset must not be negative, got %d", o.beforeOffset)
				}
				resolve = fixedOffset(o.beforeOffset)
			} else {
				ms, err := parseTimestamp(o.beforeTimestamp)
				if err != nil {
					return usageError{err}
				}
				resolve = offsetAfterMilli(ms)
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				res, err := trimTopic(ctx, adm, args[0], parts, resolve)
				if err != nil {
					return err
				}
				if err := writeTrimResult(a.env.Stdout, res, o.output); err != nil {
					return err
				}
				failed := 0
				for _, p := range res.Partitions {
					if p.Error != "" {
						failed++
					}
				}
				if failed > 0 {
					return fmt.Errorf("trim topic %q: %d of %d partition(s) failed", res.Topic, failed, len(res.Partitions))
				}
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Int64Var(&o.beforeOffset, "before-offset", 0, "delete the records before offset `N` in each partition")
	f.StringVar(&o.beforeTimestamp, "before-timestamp", "",
		"delete the records before the first one at or after `T` (Unix ms or RFC 3339)")
	f.Int32SliceVar(&o.partitions, "partitions", nil, "trim only partitions `N,N` (comma-separated or repeated); none given means all")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table|json")
	return cmd
}

// trimPartitions validates --partitions and returns them sorted, without
// duplicates; nil means every partition.
func trimPartitions(ps []int32) ([]int32, error) {
	for _, p := range ps {
		if p < 0 {
			return nil, usageErrorf("--partitions: partition %d is negative", p)
		}
	}
	ps = slices.Clone(ps)
	slices.Sort(ps)
	return slices.Compact(ps), nil
}

// parseTimestamp parses --before-timestamp: Unix milliseconds, or RFC 3339
// (with or without fractional seconds, which are truncated to milliseconds).
func parseTimestamp(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 {
			return 0, fmt.Errorf("--before-timestamp: %d is negative", ms)
		}
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("--before-timestamp: %q is neither Unix milliseconds nor RFC 3339 (2006-01-02T15:04:05Z07:00)", s)
	}
	if ms := t.UnixMilli(); ms >= 0 {
		return ms, nil
	}
	return 0, fmt.Errorf("--before-timestamp: %q is before 1970", s)
}

// offsetResolver gives, for each of a topic's partitions, the offset to
// trim before, or that partition's error.
type offsetResolver func(ctx context.Context, adm *kadm.Client, topic string, parts []int32) (map[int32]int64, map[int32]error, error)

func fixedOffset(off int64) offsetResolver {
	return func(_ context.Context, _ *kadm.Client, _ string, parts []int32) (map[int32]int64, map[int32]error, error) {
		offs := make(map[int32]int64, len(parts))
		for _, p := range parts {
			offs[p] = off
		}
		return offs, nil, nil
	}
}

// offsetAfterMilli resolves each partition's first offset with a timestamp
// at or after ms; kadm answers the partition's end offset where there is
// none, so such a partition is trimmed to its end.
func offsetAfterMilli(ms int64) offsetResolver {
	return func(ctx context.Context, adm *kadm.Client, topic string, parts []int32) (map[int32]int64, map[int32]error, error) {
		listed, err := adm.ListOffsetsAfterMilli(ctx, ms, topic)
		if err != nil && len(listed[topic]) == 0 {
			return nil, nil, fmt.Errorf("trim topic %q: list offsets at %d ms: %w", topic, ms, err)
		}
		offs := make(map[int32]int64, len(parts))
		errs := make(map[int32]error)
		for _, p := range parts {
			lo, ok := listed.Lookup(topic, p)
			switch {
			case !ok:
				errs[p] = fmt.Errorf("list offsets: %w", noAnswer(err))
			case lo.Err != nil:
				errs[p] = fmt.Errorf("list offsets: %w", lo.Err)
			default:
				offs[p] = lo.Offset
			}
		}
		return offs, errs, nil
	}
}

// trimTopic resolves the offsets to trim before for parts (nil: every
// partition of topic) and deletes the records before them. An error is
// returned only when nothing was attempted; per-partition failures are in
// the result.
func trimTopic(ctx context.Context, adm *kadm.Client, topic string, parts []int32, resolve offsetResolver) (trimResult, error) {
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return trimResult{}, fmt.Errorf("trim topic %q: %w", topic, err)
	}
	td, ok := details[topic]
	if !ok {
		return trimResult{}, fmt.Errorf("trim topic %q: %w", topic, kerr.UnknownTopicOrPartition)
	}
	if td.Err != nil {
		return trimResult{}, fmt.Errorf("trim topic %q: %w", topic, td.Err)
	}
	if parts == nil {
		parts = td.Partitions.Numbers()
		slices.Sort(parts)
	}
	for _, p := range parts {
		if _, ok := td.Partitions[p]; !ok {
			return trimResult{}, fmt.Errorf("trim topic %q: the topic has no partition %d (it has %d partitions)", topic, p, len(td.Partitions))
		}
	}

	offs, errs, err := resolve(ctx, adm, topic, parts)
	if err != nil {
		return trimResult{}, err
	}
	toDelete := make(kadm.Offsets)
	for p, off := range offs {
		toDelete.Add(kadm.Offset{Topic: topic, Partition: p, At: off, LeaderEpoch: -1})
	}
	deleted, delErr := adm.DeleteRecords(ctx, toDelete)
	if delErr != nil && len(deleted) == 0 {
		return trimResult{}, fmt.Errorf("trim topic %q: %w", topic, delErr)
	}

	res := trimResult{Topic: topic, Partitions: make([]trimPartition, 0, len(parts))}
	for _, p := range parts {
		tp := trimPartition{Partition: p, BeforeOffset: -1, LowWatermark: -1}
		if err, ok := errs[p]; ok {
			tp.Error = err.Error()
			res.Partitions = append(res.Partitions, tp)
			continue
		}
		tp.BeforeOffset = offs[p]
		r, ok := deleted.Lookup(topic, p)
		switch {
		case !ok:
			tp.Error = noAnswer(delErr).Error()
		case r.Err != nil:
			tp.Error = r.Err.Error()
		default:
			tp.LowWatermark = r.LowWatermark
		}
		res.Partitions = append(res.Partitions, tp)
	}
	return res, nil
}

// noAnswer explains a partition missing from a response: the request's
// error, when there is one.
func noAnswer(err error) error {
	if err != nil {
		return fmt.Errorf("no response from the cluster: %w", err)
	}
	return errors.New("no response from the cluster")
}

func writeTrimResult(w io.Writer, res trimResult, output string) error {
	if output == "json" {
		return writeJSON(w, res)
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tBEFORE-OFFSET\tLOW-WATERMARK\tERROR")
	for _, p := range res.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\n", p.Partition, p.BeforeOffset, p.LowWatermark, p.Error)
	}
	tw.Flush()
	// Rows without an error would end in the padding of the column before.
	for line := range strings.Lines(buf.String()) {
		if _, err := io.WriteString(w, strings.TrimRight(line, " \n")+"\n"); err != nil {
			return err
		}
	}
	return nil
}
