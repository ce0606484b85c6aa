package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The group commands serve both kinds of consumer group a Kafka 4 cluster
// has: classic ones (JoinGroup/SyncGroup, described with DescribeGroups) and
// KIP-848 "consumer" ones (ConsumerGroupHeartbeat, described with
// ConsumerGroupDescribe). ListGroups v5+ tells them apart; on a broker too
// old to say, a group is taken as classic.

const (
	groupTypeClassic  = "classic"
	groupTypeConsumer = "consumer"
)

func (a *app) newGroupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "group",
		Short: "List, describe and delete consumer groups and reset their offsets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageErrorf("missing subcommand: list, describe, delete or reset-offsets")
		},
	}
	cmd.AddCommand(a.newGroupList(), a.newGroupDescribe(), a.newGroupDelete(), a.newGroupResetOffsets())
	return cmd
}

// withGroupAdmin is withAdmin for commands that also send raw requests
// (ConsumerGroupDescribe, whose topic names kadm cannot resolve for us).
func (a *app) withGroupAdmin(ctx context.Context, fn func(context.Context, *kgo.Client, *kadm.Client) error) error {
	cl, err := a.newClient()
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	adm.SetTimeoutMillis(int32(a.opts.requestTimeout / time.Millisecond))
	ctx, cancel := context.WithTimeout(ctx, a.opts.requestTimeout)
	defer cancel()
	return fn(ctx, cl, adm)
}

// groupStates are the group states Kafka defines, classic and KIP-848, as
// ListGroups spells them; --state matches them case-insensitively.
func groupStates() []string {
	return []string{"Empty", "Stable", "PreparingRebalance", "CompletingRebalance", "Assigning", "Reconciling", "Dead"}
}

func parseStates(in []string) ([]string, error) {
	var out []string
	for _, s := range in {
		found := false
		for _, st := range groupStates() {
			if strings.EqualFold(s, st) {
				out = append(out, st)
				found = true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("--state: unknown group state %q (want %s)", s, strings.Join(groupStates(), "|"))
		}
	}
	return out, nil
}

// groupSummary is one row of `group list`.
type groupSummary struct {
	Group        string `json:"group"`
	State        string `json:"state"`
	Type         string `json:"type"`
	ProtocolType string `json:"protocol_type"`
	// Members is -1 when the group could not be described.
	Members int `json:"members"`
}

func (a *app) newGroupList() *cobra.Command {
	var (
		output string
		states []string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List consumer groups with their state, type, protocol type and member count",
		Long: `List consumer groups sorted by name: state, type (classic or consumer, the
KIP-848 protocol; empty when the broker does not say), protocol type
("consumer" for consumers, "connect" for Kafka Connect) and number of members.
--state keeps only groups in the given states (repeatable or comma-separated,
case-insensitive): ` + strings.Join(groupStates(), ", ") + `.`,
		Example: `  streambus-cli group list
  streambus-cli group list --state stable,empty -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateOutput(output); err != nil {
				return err
			}
			filter, err := parseStates(states)
			if err != nil {
				return usageError{err}
			}
			return a.withGroupAdmin(cmd.Context(), func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) error {
				rows, err := a.listGroups(ctx, cl, adm, filter)
				if err != nil {
					return err
				}
				if output == "json" {
					return writeJSON(a.env.Stdout, rows)
				}
				tw := tabwriter.NewWriter(a.env.Stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "GROUP\tSTATE\tTYPE\tPROTOCOL-TYPE\tMEMBERS")
				for _, r := range rows {
					members := fmt.Sprint(r.Members)
					if r.Members < 0 {
						members = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Group, r.State, dash(r.Type), dash(r.ProtocolType), members)
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	cmd.Flags().StringSliceVar(&states, "state", nil, "only groups in state `S`; repeatable or comma-separated")
	return cmd
}

func (a *app) listGroups(ctx context.Context, cl *kgo.Client, adm *kadm.Client, states []string) ([]groupSummary, error) {
	listed, err := adm.ListGroups(ctx, states...)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	// Share groups are not consumer groups; ListGroups v5 returns them too.
	for name, lg := range listed {
		if lg.GroupType == "share" {
			delete(listed, name)
		}
	}
	described := a.describeGroups(ctx, cl, adm, listed.Groups(), listed)
	rows := make([]groupSummary, 0, len(listed))
	for _, lg := range listed.Sorted() {
		row := groupSummary{Group: lg.Group, State: lg.State, Type: lg.GroupType, ProtocolType: lg.ProtocolType, Members: -1}
		if d := described[lg.Group]; d.err == nil {
			row.Members = len(d.desc.Members)
			if row.ProtocolType == "" {
				// Kafka lists KIP-848 groups as protocol type
				// "consumer"; some brokers leave it empty.
				row.ProtocolType = d.desc.ProtocolType
			}
		} else {
			fmt.Fprintf(a.env.Stderr, "streambus-cli: warning: describe group %q: %v\n", lg.Group, d.err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// groupDescription is the `group describe` result for one group.
type groupDescription struct {
	Group        string        `json:"group"`
	Type         string        `json:"type"`
	State        string        `json:"state"`
	ProtocolType string        `json:"protocol_type"`
	Protocol     string        `json:"protocol"` // the assignor: cooperative-sticky, range, uniform...
	Coordinator  int32         `json:"coordinator"`
	Members      []groupMember `json:"members"`
	// Partitions are those assigned to a member or with a committed
	// offset, sorted by topic and partition.
	Partitions []groupPartition `json:"partitions"`
	// TotalLag sums the lag of the partitions whose lag is known.
	TotalLag int64 `json:"total_lag"`
}

type groupMember struct {
	MemberID   string            `json:"member_id"`
	InstanceID *string           `json:"instance_id"`
	ClientID   string            `json:"client_id"`
	Host       string            `json:"host"`
	Assignment []topicPartitions `json:"assignment"`
}

type topicPartitions struct {
	Topic      string  `json:"topic"`
	Partitions []int32 `json:"partitions"`
}

// groupPartition is one partition's progress; -1 marks what is not known
// (no committed offset, log end not listed) and lag is -1 then.
type groupPartition struct {
	Topic           string `json:"topic"`
	Partition       int32  `json:"partition"`
	CommittedOffset int64  `json:"committed_offset"`
	LogEndOffset    int64  `json:"log_end_offset"`
	Lag             int64  `json:"lag"`
	Owner           string `json:"owner"` // member ID; "" when unassigned
	Error           string `json:"error,omitempty"`
}

// describedGroup is a describe outcome: desc, or err (GROUP_ID_NOT_FOUND
// for a group that does not exist).
type describedGroup struct {
	desc groupDescription
	err  error
}

// describeGroups describes names, each with the API of its type as listed
// (listed may be nil: it is then fetched). A group whose type is unknown is
// described as classic first and, if the broker does not know it as one, as
// a KIP-848 group.
func (a *app) describeGroups(ctx context.Context, cl *kgo.Client, adm *kadm.Client, names []string, listed kadm.ListedGroups) map[string]describedGroup {
	out := make(map[string]describedGroup, len(names))
	if len(names) == 0 {
		return out
	}
	if listed == nil {
		var err error
		if listed, err = adm.ListGroups(ctx); err != nil {
			for _, n := range names {
				out[n] = describedGroup{err: fmt.Errorf("list groups: %w", err)}
			}
			return out
		}
	}
	var classic, consumer, unknown []string
	for _, n := range names {
		switch lg, ok := listed[n]; {
		case ok && lg.GroupType == groupTypeConsumer:
			consumer = append(consumer, n)
		case ok && lg.GroupType != "":
			classic = append(classic, n)
		default:
			unknown = append(unknown, n)
		}
	}
	for n, d := range describeClassic(ctx, adm, append(classic, unknown...)) {
		out[n] = d
	}
	var retry []string
	for _, n := range unknown {
		if errors.Is(out[n].err, kerr.GroupIDNotFound) {
			retry = append(retry, n)
		}
	}
	for n, d := range describeConsumer(ctx, cl, adm, consumer) {
		out[n] = d
	}
	// A broker without ConsumerGroupDescribe fails the retry for a reason
	// that says less than "not found": keep the classic answer then.
	for n, d := range describeConsumer(ctx, cl, adm, retry) {
		if d.err == nil {
			out[n] = d
		}
	}
	return out
}

func describeClassic(ctx context.Context, adm *kadm.Client, names []string) map[string]describedGroup {
	out := make(map[string]describedGroup, len(names))
	if len(names) == 0 {
		return out
	}
	described, err := adm.DescribeGroups(ctx, names...)
	for _, n := range names {
		dg, ok := described[n]
		switch {
		case !ok && err != nil:
			out[n] = describedGroup{err: err}
		case !ok:
			out[n] = describedGroup{err: errors.New("no response from the cluster")}
		case dg.Err != nil:
			out[n] = describedGroup{err: withMessage(dg.Err, dg.ErrMessage)}
		case dg.State == "Dead":
			// Before DescribeGroups v6 a missing group is Dead, no error.
			out[n] = describedGroup{err: kerr.GroupIDNotFound}
		default:
			d := groupDescription{
				Group: n, Type: groupTypeClassic, State: dg.State, ProtocolType: dg.ProtocolType,
				Protocol: dg.Protocol, Coordinator: dg.Coordinator.NodeID, Members: []groupMember{},
			}
			for _, m := range dg.Members {
				gm := groupMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.ClientHost, Assignment: []topicPartitions{}}
				if c, ok := m.Assigned.AsConsumer(); ok {
					for _, t := range c.Topics {
						gm.Assignment = append(gm.Assignment, topicPartitions{Topic: t.Topic, Partitions: t.Partitions})
					}
				}
				sortAssignment(gm.Assignment)
				d.Members = append(d.Members, gm)
			}
			out[n] = describedGroup{desc: d}
		}
	}
	return out
}

// describeConsumer describes KIP-848 groups with ConsumerGroupDescribe. The
// request is sent raw: assignments name topics by ID, and brokers may leave
// the name out, which kadm's result has no room to recover from.
func describeConsumer(ctx context.Context, cl *kgo.Client, adm *kadm.Client, names []string) map[string]describedGroup {
	out := make(map[string]describedGroup, len(names))
	if len(names) == 0 {
		return out
	}
	req := kmsg.NewPtrConsumerGroupDescribeRequest()
	req.Groups = names
	var topicNames map[kadm.TopicID]string
	resolve := func(tp kmsg.AssignmentTopicPartition) string {
		if tp.Topic != "" {
			return tp.Topic
		}
		if topicNames == nil {
			topicNames = map[kadm.TopicID]string{}
			if details, err := adm.ListTopicsWithInternal(ctx); err == nil {
				for _, td := range details {
					topicNames[td.ID] = td.Topic
				}
			}
		}
		if n, ok := topicNames[tp.TopicID]; ok {
			return n
		}
		return topicIDString(tp.TopicID)
	}
	for _, shard := range cl.RequestSharded(ctx, req) {
		if shard.Err != nil {
			if sreq, ok := shard.Req.(*kmsg.ConsumerGroupDescribeRequest); ok {
				for _, n := range sreq.Groups {
					out[n] = describedGroup{err: shard.Err}
				}
			}
			continue
		}
		resp := shard.Resp.(*kmsg.ConsumerGroupDescribeResponse)
		for _, rg := range resp.Groups {
			if err := kerr.ErrorForCode(rg.ErrorCode); err != nil {
				msg := ""
				if rg.ErrorMessage != nil {
					msg = *rg.ErrorMessage
				}
				out[rg.Group] = describedGroup{err: withMessage(err, msg)}
				continue
			}
			d := groupDescription{
				Group: rg.Group, Type: groupTypeConsumer, State: rg.State, ProtocolType: "consumer",
				Protocol: rg.AssignorName, Coordinator: shard.Meta.NodeID, Members: []groupMember{},
			}
			for _, m := range rg.Members {
				gm := groupMember{MemberID: m.MemberID, InstanceID: m.InstanceID, ClientID: m.ClientID, Host: m.ClientHost, Assignment: []topicPartitions{}}
				for _, tp := range m.Assignment.TopicPartitions {
					gm.Assignment = append(gm.Assignment, topicPartitions{Topic: resolve(tp), Partitions: tp.Partitions})
				}
				sortAssignment(gm.Assignment)
				d.Members = append(d.Members, gm)
			}
			sort.Slice(d.Members, func(i, j int) bool { return d.Members[i].MemberID < d.Members[j].MemberID })
			out[rg.Group] = describedGroup{desc: d}
		}
	}
	for _, n := range names {
		if _, ok := out[n]; !ok {
			out[n] = describedGroup{err: errors.New("no response from the cluster")}
		}
	}
	return out
}

func sortAssignment(a []topicPartitions) {
	sort.Slice(a, func(i, j int) bool { return a[i].Topic < a[j].Topic })
	for _, t := range a {
		sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i] < t.Partitions[j] })
	}
}

// fetchCommitted returns the group's committed offsets; a group that does
// not exist has none.
func fetchCommitted(ctx context.Context, adm *kadm.Client, group string) (kadm.OffsetResponses, error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return kadm.OffsetResponses{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("fetch committed offsets of group %q: %w", group, err)
	}
	return committed, nil
}

// addLag fills d.Partitions and d.TotalLag: every partition that is
// assigned or has a committed offset, with the log end offset (the high
// watermark, as Kafka's tool uses) and the lag between the two.
func addLag(ctx context.Context, adm *kadm.Client, d *groupDescription) error {
	committed, err := fetchCommitted(ctx, adm, d.Group)
	if err != nil {
		return err
	}
	type tp struct {
		topic     string
		partition int32
	}
	owners := map[tp]string{}
	for _, m := range d.Members {
		for _, t := range m.Assignment {
			for _, p := range t.Partitions {
				owners[tp{t.Topic, p}] = m.MemberID
			}
		}
	}
	all := map[tp]bool{}
	topics := map[string]bool{}
	for k := range owners {
		all[k], topics[k.topic] = true, true
	}
	committed.Each(func(o kadm.OffsetResponse) {
		all[tp{o.Topic, o.Partition}], topics[o.Topic] = true, true
	})
	var ends kadm.ListedOffsets
	if len(topics) > 0 {
		names := make([]string, 0, len(topics))
		for t := range topics {
			names = append(names, t)
		}
		// A partial failure leaves some partitions without a log end;
		// they show an error instead of failing the whole describe.
		if ends, err = adm.ListEndOffsets(ctx, names...); err != nil && len(ends) == 0 {
			return fmt.Errorf("list end offsets: %w", err)
		}
	}
	d.Partitions = make([]groupPartition, 0, len(all))
	for k := range all {
		gp := groupPartition{Topic: k.topic, Partition: k.partition, CommittedOffset: -1, LogEndOffset: -1, Lag: -1, Owner: owners[k]}
		var errs []string
		if c, ok := committed.Lookup(k.topic, k.partition); ok {
			if c.Err != nil {
				errs = append(errs, "committed offset: "+c.Err.Error())
			} else if c.At >= 0 {
				gp.CommittedOffset = c.At
			}
		}
		if e, ok := ends.Lookup(k.topic, k.partition); !ok {
			errs = append(errs, "log end offset: not listed")
		} else if e.Err != nil {
			errs = append(errs, "log end offset: "+e.Err.Error())
		} else {
			gp.LogEndOffset = e.Offset
		}
		if gp.CommittedOffset >= 0 && gp.LogEndOffset >= 0 {
			gp.Lag = max(gp.LogEndOffset-gp.CommittedOffset, 0)
			d.TotalLag += gp.Lag
		}
		gp.Error = strings.Join(errs, "; ")
		d.Partitions = append(d.Partitions, gp)
	}
	sort.Slice(d.Partitions, func(i, j int) bool {
		l, r := d.Partitions[i], d.Partitions[j]
		return l.Topic < r.Topic || l.Topic == r.Topic && l.Partition < r.Partition
	})
	return nil
}

func (a *app) newGroupDescribe() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "describe GROUP...",
		Short: "Describe consumer groups: state, members, assignments, committed offsets and lag",
		Long: `Describe each GROUP: its type (classic or consumer), state, protocol type
and assignor, and coordinator; every member (member ID, instance ID, client
ID, host and assigned partitions); and every partition that is assigned or
has a committed offset: the committed offset, the log end offset (high
watermark), the lag between them and the member that owns the partition.
The total lag sums the partitions whose lag is known. In tables "-" marks
what is unknown (no committed offset, no owner); in JSON it is -1 or "".

Every group is attempted; the exit status is 1 if any could not be described
(including groups that do not exist).`,
		Example: `  streambus-cli group describe billing
  streambus-cli group describe billing audit -o json`,
		Args: minArgs(1, "at least one GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := validateOutput(output); err != nil {
				return err
			}
			return a.withGroupAdmin(cmd.Context(), func(ctx context.Context, cl *kgo.Client, adm *kadm.Client) error {
				described := a.describeGroups(ctx, cl, adm, args, nil)
				var (
					out    []groupDescription
					failed int
				)
				for _, name := range args {
					d := described[name]
					if d.err == nil {
						d.err = addLag(ctx, adm, &d.desc)
					}
					switch {
					case errors.Is(d.err, kerr.GroupIDNotFound):
						failed++
						fmt.Fprintf(a.env.Stderr, "describe group %q: group does not exist\n", name)
					case d.err != nil:
						failed++
						fmt.Fprintf(a.env.Stderr, "describe group %q: %v\n", name, d.err)
					default:
						out = append(out, d.desc)
					}
				}
				if out == nil {
					out = []groupDescription{}
				}
				var err error
				if output == "json" {
					err = writeJSON(a.env.Stdout, out)
				} else {
					err = writeGroupTables(a.env.Stdout, out)
				}
				if err != nil {
					return err
				}
				if failed > 0 {
					return fmt.Errorf("describe groups: %d of %d failed", failed, len(args))
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table|json")
	return cmd
}

func writeGroupTables(w io.Writer, ds []groupDescription) error {
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "Group: %s\nType: %s\nState: %s\nProtocol type: %s\nProtocol: %s\nCoordinator: %d\nMembers: %d\n",
			d.Group, d.Type, d.State, dash(d.ProtocolType), dash(d.Protocol), d.Coordinator, len(d.Members))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		if len(d.Members) > 0 {
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "MEMBER-ID\tINSTANCE-ID\tCLIENT-ID\tHOST\tASSIGNMENT")
			for _, m := range d.Members {
				inst := "-"
				if m.InstanceID != nil {
					inst = *m.InstanceID
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.MemberID, inst, dash(m.ClientID), dash(m.Host), formatAssignment(m.Assignment))
			}
		}
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED-OFFSET\tLOG-END-OFFSET\tLAG\tOWNER\tERROR")
		for _, p := range d.Partitions {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", p.Topic, p.Partition, offsetString(p.CommittedOffset),
				offsetString(p.LogEndOffset), offsetString(p.Lag), dash(p.Owner), p.Error)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write table: %w", err)
		}
		fmt.Fprintf(w, "Total lag: %d\n", d.TotalLag)
	}
	return nil
}

// formatAssignment renders an assignment as topic:p,p topic:p, or "-".
func formatAssignment(a []topicPartitions) string {
	if len(a) == 0 {
		return "-"
	}
	parts := make([]string, len(a))
	for i, t := range a {
		parts[i] = t.Topic + ":" + joinInts(t.Partitions)
	}
	return strings.Join(parts, " ")
}

func offsetString(o int64) string {
	if o < 0 {
		return "-"
	}
	return fmt.Sprint(o)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *app) newGroupDelete() *cobra.Command {
	return &cobra.Command{
		Use:   "delete GROUP...",
		Short: "Delete one or more consumer groups and their committed offsets",
		Long: `Delete the named groups with their committed offsets. A group that still has
members cannot be deleted (NON_EMPTY_GROUP): stop its consumers first. Every
group is attempted; the exit status is 1 if any deletion failed.`,
		Args: minArgs(1, "at least one GROUP"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.withAdmin(cmd.Context(), func(ctx context.Context, adm *kadm.Client) error {
				resps, err := adm.DeleteGroups(ctx, args...)
				if err != nil && len(resps) == 0 {
					return fmt.Errorf("delete groups: %w", err)
				}
				return a.reportEach("group", "delete", args, func(name string) (bool, error, string) {
					r, ok := resps[name]
					return ok, r.Err, r.ErrMessage
				}, "deleted")
			})
		},
	}
}
