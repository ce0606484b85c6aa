package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func (a *app) newTopicCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "topic",
		Short: "Create, list, describe, trim and delete topics",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("missing subcommand: create, list, describe, trim or delete")
		},
	}
	cmd.AddCommand(a.newTopicCreate(), a.newTopicList(), a.newTopicDescribe(), a.newTopicTrim(), a.newTopicDelete())
	return cmd
}

func validateOutput(o string) error {
	if o != "table" && o != "json" {
		return usageErrorf("-o/--output: unknown format %q (want table|json)", o)
	}
	return nil
}

// withAdmin runs fn with an admin client and a context bounded by
// --request-timeout, closing the client afterwards.
func (a *app) withAdmin(ctx context.Context, fn func(context.Context, *kadm.Client) error) error {
	adm, err := a.newAdmin()
	if err != nil {
		return err
	}
	defer adm.Close()
	ctx, cancel := context.WithTimeout(ctx, a.opts.requestTimeout)
	defer cancel()
	return fn(ctx, adm)
}

func (a *app) newTopicCreate() *cobra.Command {
	var (
		partitions  int32
		replication int16
		configs     []string
		ifNotExists bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create topic NAME. --partitions and --replication-factor default to -1, which
asks the broker for its defaults (num.partitions, default.replication.factor).
--config k=v sets a topic config override; repeatable.`,
		Example: `  streambus-cli topic create orders --partitions 6 --replication-factor 3 --config retention.ms=86400000`,
		Args:    exactArgs(1, "topic NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			kvs, err := parseKeyValues("--config", configs)
			if err != nil {
				return usageError{err}
			}
			if partitions == 0 || partitions < -1 {
				return usageErrorf("--partitions must be positive or -1 (broker default), got %d", partitions)
			}
			if replication == 0 || replication < -1 {
				return usageErrorf("--replication-factor must be positive or -1 (broker default), got %d", replication)
			}
			cfg := make(map[string]*string, len(kvs))
			for _, kv := range kvs {
				v := kv[1]
				cfg[kv[0]] = &v
			}
			name := args[0]
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				resp, err := adm.CreateTopic(ctx, partitions, replication, cfg, name)
				if ifNotExists && errors.Is(err, kerr.TopicAlreadyExists) {
					fmt.Fprintf(a.env.Stdout, "topic %q already exists\n", name)
					return nil
				}
				if err != nil {
					return fmt.Errorf("create topic %q: %w", name, withMessage(err, resp.ErrMessage))
				}
				fmt.Fprintf(a.env.Stdout, "created topic %q (partitions %d, replication factor %d)\n",
					name, resp.NumPartitions, resp.ReplicationFactor)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.Int32Var(&partitions, "partitions", -1, "number of partitions (-1: broker default)")
	f.Int16Var(&replication, "replication-factor", -1, "replicas per partition (-1: broker default)")
	f.StringArrayVar(&configs, "config", nil, "topic config override `key=value`; repeatable")
	f.BoolVar(&ifNotExists, "if-not-exists", false, "succeed if the topic already exists")
	return cmd
}

// withMessage appends a broker-supplied error message, when there is one.
func withMessage(err error, msg string) error {
	if msg == "" || strings.Contains(err.Error(), msg) {
		return err
	}
	return fmt.Errorf("%w: %s", err, msg)
}

// topicSummary is one row of `topic list`.
type topicSummary struct {
	Topic             string `json:"topic"`
	ID                string `json:"id"`
	Partitions        int    `json:"partitions"`
	ReplicationFactor int    `json:"replication_factor"`
	Internal          bool   `json:"internal"`
}

func replicationFactor(td kadm.TopicDetail) int {
	for _, p := range td.Partitions {
		return len(p.Replicas)
	}
	return 0
}

func (a *app) newTopicList() *cobra.Command {
	var (
		output   string
		internal bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List topics",
		Long:  "List topics sorted by name: partitions, replication factor and topic ID.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateOutput(output); err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				list := adm.ListTopics
				if internal {
					list = adm.ListTopicsWithInternal
				}
				details, err := list(ctx)
				if err != nil {
					return fmt.Errorf("list topics: %w", err)
				}
				rows := make([]topicSummary, 0, len(details))
				for _, td := range details.Sorted() {
					rows = append(rows, topicSummary{
						Topic: td.Topic, ID: topicIDString(td.ID), Partitions: len(td.Partitions),
						ReplicationFactor: replicationFactor(td), Internal: td.IsInternal,
					})
				}
				if output == "json" {
					return writeJSON(a.env.Stdout, rows)
				}
				tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICATION-FACTOR\tID")
				for _, r := range rows {
					fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", r.Topic, r.Partitions, r.ReplicationFactor, r.ID)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().BoolVar(&internal, "internal", false, "include internal topics")
	return cmd
}

// topicDescription is the `topic describe` result.
type topicDescription struct {
	Topic             string                 `json:"topic"`
	ID                string                 `json:"id"`
	Internal          bool                   `json:"internal"`
	ReplicationFactor int                    `json:"replication_factor"`
	Partitions        []partitionDescription `json:"partitions"`
	// Configs holds only overrides set on the topic itself (source
	// DYNAMIC_TOPIC_CONFIG), not broker or default values.
	Configs map[string]string `json:"configs"`
}

type partitionDescription struct {
	Partition       int32   `json:"partition"`
	Leader          int32   `json:"leader"`
	LeaderEpoch     int32   `json:"leader_epoch"`
	Replicas        []int32 `json:"replicas"`
	ISR             []int32 `json:"isr"`
	OfflineReplicas []int32 `json:"offline_replicas"`
	LogStartOffset  int64   `json:"log_start_offset"`
	HighWatermark   int64   `json:"high_watermark"`
	Error           string  `json:"error,omitempty"`
}

func (a *app) newTopicDescribe() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "describe NAME",
		Short: "Describe a topic: partitions, leaders, replicas, ISR, offsets and config overrides",
		Long: `Describe topic NAME: for each partition its leader, leader epoch, replicas,
in-sync replicas, offline replicas, log start offset and high watermark; and
the configs set on the topic itself (overrides, not broker defaults).`,
		Args: exactArgs(1, "topic NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validateOutput(output); err != nil {
				return err
			}
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				d, err := describeTopic(ctx, adm, args[0])
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(a.env.Stdout, d)
				}
				return writeDescriptionTable(a.env.Stdout, d)
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	return cmd
}

func describeTopic(ctx context.Context, adm *kadm.Client, name string) (topicDescription, error) {
	details, err := adm.ListTopicsWithInternal(ctx, name)
	if err != nil {
		return topicDescription{}, fmt.Errorf("describe topic %q: %w", name, err)
	}
	td, ok := details[name]
	if !ok {
		return topicDescription{}, fmt.Errorf("describe topic %q: %w", name, kerr.UnknownTopicOrPartition)
	}
	if td.Err != nil {
		return topicDescription{}, fmt.Errorf("describe topic %q: %w", name, td.Err)
	}
	starts, err := adm.ListStartOffsets(ctx, name)
	if err != nil {
		return topicDescription{}, fmt.Errorf("describe topic %q: list start offsets: %w", name, err)
	}
	ends, err := adm.ListEndOffsets(ctx, name)
	if err != nil {
		return topicDescription{}, fmt.Errorf("describe topic %q: list end offsets: %w", name, err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, name)
	if err != nil {
		return topicDescription{}, fmt.Errorf("describe topic %q: configs: %w", name, err)
	}
	d := topicDescription{
		Topic: name, ID: topicIDString(td.ID), Internal: td.IsInternal,
		ReplicationFactor: replicationFactor(td), Configs: map[string]string{},
	}
	for _, p := range td.Partitions.Sorted() {
		pd := partitionDescription{
			Partition: p.Partition, Leader: p.Leader, LeaderEpoch: p.LeaderEpoch,
			Replicas: nonNil(p.Replicas), ISR: nonNil(p.ISR), OfflineReplicas: nonNil(p.OfflineReplicas),
			LogStartOffset: -1, HighWatermark: -1,
		}
		if p.Err != nil {
			pd.Error = p.Err.Error()
		}
		if o, ok := starts.Lookup(name, p.Partition); ok && o.Err == nil {
			pd.LogStartOffset = o.Offset
		}
		if o, ok := ends.Lookup(name, p.Partition); ok && o.Err == nil {
			pd.HighWatermark = o.Offset
		}
		d.Partitions = append(d.Partitions, pd)
	}
	for _, rc := range rcs {
		if rc.Err != nil {
			return topicDescription{}, fmt.Errorf("describe topic %q: configs: %w", name, withMessage(rc.Err, rc.ErrMessage))
		}
		for _, c := range rc.Configs {
			if c.Source == kmsg.ConfigSourceDynamicTopicConfig {
				d.Configs[c.Key] = c.MaybeValue()
			}
		}
	}
	return d, nil
}

// topicIDString renders a topic ID as Kafka's tools do (Uuid.toString):
// URL-safe base64 without padding; the zero ID means the broker has none.
func topicIDString(id kadm.TopicID) string {
	if id == (kadm.TopicID{}) {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(id[:])
}

func nonNil(s []int32) []int32 {
	if s == nil {
		return []int32{}
	}
	return s
}

func writeDescriptionTable(w io.Writer, d topicDescription) error {
	fmt.Fprintf(w, "Topic: %s\nID: %s\nPartitions: %d\nReplication factor: %d\n",
		d.Topic, d.ID, len(d.Partitions), d.ReplicationFactor)
	if d.Internal {
		fmt.Fprintln(w, "Internal: true")
	}
	keys := make([]string, 0, len(d.Configs))
	for k := range d.Configs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if len(keys) == 0 {
		fmt.Fprintln(w, "Configs: (no overrides)")
	} else {
		fmt.Fprintln(w, "Configs:")
		for _, k := range keys {
			fmt.Fprintf(w, "  %s=%s\n", k, d.Configs[k])
		}
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tEPOCH\tREPLICAS\tISR\tOFFLINE\tLOG-START\tHIGH-WATERMARK\tERROR")
	for _, p := range d.Partitions {
		fmt.Fprintf(tw, "%d\t%d\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", p.Partition, p.Leader, p.LeaderEpoch,
			joinInts(p.Replicas), joinInts(p.ISR), joinInts(p.OfflineReplicas), p.LogStartOffset, p.HighWatermark, p.Error)
	}
	return tw.Flush()
}

func joinInts(s []int32) string {
	if len(s) == 0 {
		return "-"
	}
	parts := make([]string, len(s))
	for i, v := range s {
		parts[i] = fmt.Sprint(v)
	}
	return strings.Join(parts, ",")
}

func (a *app) newTopicDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME...",
		Short: "Delete one or more topics",
		Long:  "Delete the named topics. Every topic is attempted; the exit status is 1 if any deletion failed.",
		Args:  minArgs(1, "at least one topic NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				resps, err := adm.DeleteTopics(ctx, args...)
				if err != nil {
					return fmt.Errorf("delete topics: %w", err)
				}
				return a.reportEach("topic", "delete", args, func(name string) (bool, error, string) {
					r, ok := resps[name]
					return ok, r.Err, r.ErrMessage
				}, "deleted")
			})
		},
	}
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// reportEach prints the outcome of an operation applied to each named
// object ("deleted topic \"t\"" on stdout, errors on stderr) and fails if any
// failed. result says whether the cluster answered for name, and its error.
func (a *app) reportEach(kind, verb string, names []string, result func(name string) (answered bool, err error, msg string), done string) error {
	failed := 0
	for _, name := range names {
		ok, err, msg := result(name)
		switch {
		case !ok:
			failed++
			fmt.Fprintf(a.env.Stderr, "%s %s %q: no response from the cluster\n", verb, kind, name)
		case err != nil:
			failed++
			fmt.Fprintf(a.env.Stderr, "%s %s %q: %v\n", verb, kind, name, withMessage(err, msg))
		default:
			fmt.Fprintf(a.env.Stdout, "%s %s %q\n", done, kind, name)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%s %ss: %d of %d failed", verb, kind, failed, len(names))
	}
	return nil
}
