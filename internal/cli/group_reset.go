package cli

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

type resetOptions struct {
	topic       string
	partitions  []int32
	toEarliest  bool
	toLatest    bool
	toTimestamp int64
	toOffset    int64
	shiftBy     int64
	execute     bool
	output      string
	// spec is the one --to-*/--shift-by flag given, by name.
	spec string
}

// resetSpecs are the mutually exclusive ways to choose the new offsets.
func resetSpecs() []string {
	return []string{"to-earliest", "to-latest", "to-timestamp", "to-offset", "shift-by"}
}

// resetPlan is the `group reset-offsets` result, dry run or executed.
type resetPlan struct {
	Group      string           `json:"group"`
	Topic      string           `json:"topic"`
	Executed   bool             `json:"executed"`
	Partitions []resetPartition `json:"partitions"`
}

type resetPartition struct {
	Partition int32 `json:"partition"`
	// CurrentOffset is the committed offset, -1 when there is none.
	CurrentOffset int64 `json:"current_offset"`
	NewOffset     int64 `json:"new_offset"`
}

func (a *app) newGroupResetOffsets() *cobra.Command {
	var o resetOptions
	cmd := &cobra.Command{
		Use:   "reset-offsets GROUP --topic T (--to-earliest|--to-latest|--to-timestamp MS|--to-offset N|--shift-by N)",
		Short: "Plan or commit new offsets for a consumer group (dry run unless --execute)",
		Long: `Choose new committed offsets for GROUP on the partitions of --topic (all of
them, or those given with --partition), exactly one of:
  --to-earliest       the log start offset
  --to-latest         the log end offset (skip everything there is now)
  --to-timestamp MS   the first record with timestamp >= MS (Unix
                      milliseconds); the log end if there is none
  --to-offset N       offset N
  --shift-by N        the committed offset plus N (N may be negative); a
                      partition without a committed offset is an error
An offset outside the log is clamped to the log start or end, with a warning.

Without --execute this is a dry run: it prints the plan (partition, current
committed offset, new offset) and changes nothing. --execute commits the new
offsets. Like Kafka's kafka-consumer-groups.sh, it refuses (exit 1) unless
the group is inactive (Empty, or not existing yet): stop its consumers first.`,
		Example: `  streambus-cli group reset-offsets billing --topic orders --to-earliest
  streambus-cli group reset-offsets billing --topic orders --partition 0 --shift-by -10 --execute`,
		Args: exactArgs(1, "GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var given []string
			for _, name := range resetSpecs() {
				if cmd.Flags().Changed(name) {
					given = append(given, "--"+name)
				}
			}
			if len(given) != 1 {
				return usageErrorf("give exactly one of --to-earliest, --to-latest, --to-timestamp, --to-offset, --shift-by (got %d)", len(given))
			}
			o.spec = given[0][2:]
			return a.runResetOffsets(cmd.Context(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.topic, "topic", "", "topic `T` whose offsets to reset (required)")
	f.Int32SliceVar(&o.partitions, "partition", nil, "partition `N` to reset; repeatable or comma-separated; none given means all")
	f.BoolVar(&o.toEarliest, "to-earliest", false, "reset to the log start offset")
	f.BoolVar(&o.toLatest, "to-latest", false, "reset to the log end offset")
	f.Int64Var(&o.toTimestamp, "to-timestamp", 0, "reset to the first record with timestamp >= `MS` (Unix ms)")
	f.Int64Var(&o.toOffset, "to-offset", 0, "reset to offset `N`")
	f.Int64Var(&o.shiftBy, "shift-by", 0, "move the committed offset by `N` (negative: back)")
	f.BoolVar(&o.execute, "execute", false, "commit the new offsets (default: dry run)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table|json")
	return cmd
}

func (o resetOptions) validate() error {
	if o.topic == "" {
		return errors.New("--topic is required")
	}
	for _, p := range o.partitions {
		if p < 0 {
			return fmt.Errorf("--partition must be >= 0, got %d", p)
		}
	}
	switch {
	case o.spec == "to-earliest" && !o.toEarliest, o.spec == "to-latest" && !o.toLatest:
		return fmt.Errorf("--%s=false chooses nothing", o.spec)
	case o.spec == "to-timestamp" && o.toTimestamp < 0:
		return fmt.Errorf("--to-timestamp must not be negative, got %d", o.toTimestamp)
	case o.spec == "to-offset" && o.toOffset < 0:
		return fmt.Errorf("--to-offset must not be negative, got %d", o.toOffset)
	}
	return validateOutput(o.output)
}

func (a *app) runResetOffsets(ctx context.Context, group string, o resetOptions) error {
	if err := o.validate(); err != nil {
		var ue usageError
		if errors.As(err, &ue) {
			return err
		}
		return usageError{err}
	}
	return a.withGroupAdmin(ctx, func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) error {
		if err := a.checkGroupInactive(ctx, cl, adm, group); err != nil {
			return err
		}
		plan, err := a.planReset(ctx, adm, group, o)
		if err != nil {
			return err
		}
		if o.execute {
			if err := commitPlan(ctx, adm, plan); err != nil {
				return err
			}
			plan.Executed = true
		}
		if o.output == "json" {
			if err := writeJSON(a.env.Stdout, plan); err != nil {
				return err
			}
		} else {
			tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET")
			for _, p := range plan.Partitions {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", plan.Topic, p.Partition, offsetString(p.CurrentOffset), p.NewOffset)
			}
			if err := tw.Flush(); err != nil {
				return fmt.Errorf("write table: %w", err)
			}
		}
		if o.execute {
			fmt.Fprintf(a.env.Stderr, "committed new offsets of %d partition(s) for group %q\n", len(plan.Partitions), group)
		} else {
			fmt.Fprintf(a.env.Stderr, "dry run: nothing was committed; add --execute to commit these offsets\n")
		}
		return nil
	})
}

// checkGroupInactive refuses groups with members, whose consumers would
// overwrite the reset with their next commit (and whose coordinator would
// reject a commit from outside the generation anyway).
func (a *app) checkGroupInactive(ctx context.Context, cl *kgo.Client, adm *kadm.Client, group string) error {
	d := a.describeGroups(ctx, cl, adm, []string{group}, nil)[group]
	switch {
	case errors.Is(d.err, kerr.GroupIDNotFound):
		return nil // the commit creates it
	case d.err != nil:
		return fmt.Errorf("reset offsets: describe group %q: %w", group, d.err)
	case d.desc.State != "Empty" || len(d.desc.Members) > 0:
		return fmt.Errorf("reset offsets: group %q is not inactive (state %s, %d member(s)); offsets can only be reset while it has no members: stop its consumers first",
			group, d.desc.State, len(d.desc.Members))
	}
	return nil
}

func (a *app) planReset(ctx context.Context, adm *kadm.Client, group string, o resetOptions) (resetPlan, error) {
	plan := resetPlan{Group: group, Topic: o.topic, Partitions: []resetPartition{}}
	details, err := adm.ListTopics(ctx, o.topic)
	if err != nil {
		return plan, fmt.Errorf("reset offsets: describe topic %q: %w", o.topic, err)
	}
	td, ok := details[o.topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return plan, fmt.Errorf("reset offsets: topic %q does not exist", o.topic)
	}
	if td.Err != nil {
		return plan, fmt.Errorf("reset offsets: topic %q: %w", o.topic, td.Err)
	}
	partitions := o.partitions
	if len(partitions) == 0 {
		for p := range td.Partitions {
			partitions = append(partitions, p)
		}
	}
	slices.Sort(partitions)
	partitions = slices.Compact(partitions)
	for _, p := range partitions {
		if _, ok := td.Partitions[p]; !ok {
			return plan, fmt.Errorf("reset offsets: topic %q has no partition %d (it has %d partitions)", o.topic, p, len(td.Partitions))
		}
	}

	committed, err := fetchCommitted(ctx, adm, group)
	if err != nil {
		return plan, fmt.Errorf("reset offsets: %w", err)
	}
	starts, err := listTopicOffsets(ctx, adm.ListStartOffsets, o.topic)
	if err != nil {
		return plan, err
	}
	ends, err := listTopicOffsets(ctx, adm.ListEndOffsets, o.topic)
	if err != nil {
		return plan, err
	}
	var atTime map[int32]int64
	if o.spec == "to-timestamp" {
		list := func(ctx context.Context, topics ...string) (kadm.ListedOffsets, error) {
			return adm.ListOffsetsAfterMilli(ctx, o.toTimestamp, topics...)
		}
		if atTime, err = listTopicOffsets(ctx, list, o.topic); err != nil {
			return plan, err
		}
	}

	for _, p := range partitions {
		start, okS := starts[p]
		end, okE := ends[p]
		if !okS || !okE {
			return plan, fmt.Errorf("reset offsets: %s[%d]: log offsets not listed", o.topic, p)
		}
		rp := resetPartition{Partition: p, CurrentOffset: -1}
		if c, ok := committed.Lookup(o.topic, p); ok {
			if c.Err != nil {
				return plan, fmt.Errorf("reset offsets: committed offset of %s[%d]: %w", o.topic, p, c.Err)
			}
			if c.At >= 0 {
				rp.CurrentOffset = c.At
			}
		}
		var target int64
		switch o.spec {
		case "to-earliest":
			target = start
		case "to-latest":
			target = end
		case "to-timestamp":
			at, ok := atTime[p]
			if !ok {
				return plan, fmt.Errorf("reset offsets: %s[%d]: offset for timestamp not listed", o.topic, p)
			}
			target = at
		case "to-offset":
			target = o.toOffset
		case "shift-by":
			if rp.CurrentOffset < 0 {
				return plan, fmt.Errorf("reset offsets: cannot shift %s[%d]: group %q has no committed offset for it", o.topic, p, group)
			}
			target = rp.CurrentOffset + o.shiftBy
		}
		switch {
		case target < start:
			fmt.Fprintf(a.env.Stderr, "streambus-cli: warning: %s[%d]: offset %d is before the log start; using %d\n", o.topic, p, target, start)
			target = start
		case target > end:
			fmt.Fprintf(a.env.Stderr, "streambus-cli: warning: %s[%d]: offset %d is past the log end; using %d\n", o.topic, p, target, end)
			target = end
		}
		rp.NewOffset = target
		plan.Partitions = append(plan.Partitions, rp)
	}
	return plan, nil
}

// listTopicOffsets lists one topic's partition offsets with list, failing on
// any partition error.
func listTopicOffsets(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string) (map[int32]int64, error) {
	listed, err := list(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("reset offsets: list offsets of %q: %w", topic, err)
	}
	out := make(map[int32]int64)
	var firstErr error
	listed.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("reset offsets: list offsets of %s[%d]: %w", lo.Topic, lo.Partition, lo.Err)
			}
			return
		}
		out[lo.Partition] = lo.Offset
	})
	return out, firstErr
}

func commitPlan(ctx context.Context, adm *kadm.Client, plan resetPlan) error {
	offsets := make(kadm.Offsets)
	for _, p := range plan.Partitions {
		// Leader epoch -1: the new position was not read from a record,
		// so there is no epoch for consumers to validate it against.
		offsets.Add(kadm.Offset{Topic: plan.Topic, Partition: p.Partition, At: p.NewOffset, LeaderEpoch: -1})
	}
	resps, err := adm.CommitOffsets(ctx, plan.Group, offsets)
	if err != nil {
		return fmt.Errorf("reset offsets: commit for group %q: %w", plan.Group, err)
	}
	var failed []string
	resps.Each(func(r kadm.OffsetResponse) {
		if r.Err != nil {
			failed = append(failed, fmt.Sprintf("%s[%d]: %v", r.Topic, r.Partition, r.Err))
		}
	})
	if len(failed) > 0 {
		sort.Strings(failed)
		return fmt.Errorf("reset offsets: commit for group %q failed: %v", plan.Group, failed)
	}
	return nil
}
