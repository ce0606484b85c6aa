package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Group protocols for --group-protocol, named as Kafka's group.protocol.
const (
	groupProtocolClassic  = "classic"
	groupProtocolConsumer = "consumer"
)

// groupConsumeHelp documents consume's group flags; kept next to their code.
const groupConsumeHelp = `Consumer groups (--group G):
  Consume as a member of group G: the group shares the topic's partitions
  among its members, and progress is committed to the group. Only records
  already printed are committed: periodically, when a rebalance takes
  partitions away, and when consuming stops (--count reached, --timeout idle,
  SIGINT/SIGTERM); then the member leaves the group. Delivery is
  at-least-once: after a crash the next member may print a record again,
  but none is skipped.

  With --group, --from applies only to partitions that have no committed
  offset (like Kafka's auto.offset.reset); every other partition resumes at
  its committed offset. --from also decides where to resume when a committed
  offset is no longer in the log. --partition cannot be used with --group.

  --balancer        the assignor this member offers: range, roundrobin,
                    sticky, or cooperative-sticky (the default: incremental
                    rebalances that move only the partitions that change owner)
  --instance-id     static membership (KIP-345): the member keeps its identity
                    across restarts and does not leave the group when it stops;
                    its partitions wait for it until the session timeout (45s)
  --commit-interval how often the printed records' offsets are committed
                    while consuming (default 5s)
  --group-protocol  classic (the default: JoinGroup/SyncGroup, the members
                    assign) or consumer (KIP-848, Kafka 4.0+: the broker
                    assigns; --balancer range picks the broker's range
                    assignor, sticky and cooperative-sticky its uniform
                    assignor; roundrobin is not available)`

// groupConsumeOptions are consume's --group flags.
type groupConsumeOptions struct {
	group         string
	balancer      string
	instanceID    string
	instanceIDSet bool // --instance-id given, even if empty
	protocol      string
	// commitInterval is how often marked offsets are committed while
	// consuming (kgo's and Kafka's auto.commit.interval.ms default: 5s).
	commitInterval time.Duration
}

func (g *groupConsumeOptions) addFlags(f *pflag.FlagSet) {
	f.StringVar(&g.group, "group", "", "consume as a member of consumer group `G`, committing offsets (see above)")
	f.StringVar(&g.balancer, "balancer", "cooperative-sticky", "with --group: partition assignor: range|roundrobin|sticky|cooperative-sticky")
	f.StringVar(&g.instanceID, "instance-id", "", "with --group: static member `ID` (group.instance.id)")
	f.StringVar(&g.protocol, "group-protocol", groupProtocolClassic, "with --group: group protocol: classic|consumer (KIP-848)")
	f.DurationVar(&g.commitInterval, "commit-interval", 5*time.Second, "with --group: how often to commit the offsets of printed records while consuming")
}

// parseBalancer maps --balancer to a kgo balancer. Under the consumer
// protocol the broker assigns, and kgo turns its range and (eager) sticky
// balancers into the broker's "range" and "uniform" assignors; the sticky
// flavours are equivalent there because KIP-848 is always incremental.
func parseBalancer(name, protocol string) (kgo.GroupBalancer, error) {
	consumer := protocol == groupProtocolConsumer
	switch strings.ToLower(name) {
	case "range":
		return kgo.RangeBalancer(), nil
	case "roundrobin":
		if consumer {
			return nil, errors.New("--balancer roundrobin is not available with --group-protocol consumer (want range|sticky|cooperative-sticky)")
		}
		return kgo.RoundRobinBalancer(), nil
	case "sticky":
		return kgo.StickyBalancer(), nil
	case "cooperative-sticky":
		if consumer {
			return kgo.StickyBalancer(), nil
		}
		return kgo.CooperativeStickyBalancer(), nil
	}
	return nil, fmt.Errorf("--balancer: unknown assignor %q (want range|roundrobin|sticky|cooperative-sticky)", name)
}

// clientOpts validates (and normalises) the group flags and returns the kgo
// options that make the client a member of the group consuming topic,
// starting partitions without a commit at from.
func (g *groupConsumeOptions) clientOpts(topic string, from kgo.Offset) ([]kgo.Opt, error) {
	g.protocol = strings.ToLower(g.protocol)
	if g.protocol != groupProtocolClassic && g.protocol != groupProtocolConsumer {
		return nil, fmt.Errorf("--group-protocol: unknown protocol %q (want classic|consumer)", g.protocol)
	}
	if g.instanceIDSet && g.instanceID == "" {
		return nil, errors.New("--instance-id must not be empty")
	}
	if g.commitInterval <= 0 {
		return nil, fmt.Errorf("--commit-interval must be positive, got %v", g.commitInterval)
	}
	balancer, err := parseBalancer(g.balancer, g.protocol)
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{
		kgo.ConsumerGroup(g.group),
		kgo.ConsumeTopics(topic),
		// The reset offset is where a partition without a usable commit
		// starts; kgo also takes it as the start offset.
		kgo.ConsumeResetOffset(from),
		kgo.Balancers(balancer),
		// Commit only what was marked, and mark only what was printed.
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(g.commitInterval),
		// Between a poll and marking its printed records, a rebalance
		// would commit too little and hand the partitions to another
		// member that prints the same records again.
		kgo.BlockRebalanceOnPoll(),
	}
	if g.instanceIDSet {
		opts = append(opts, kgo.InstanceID(g.instanceID))
	}
	if g.protocol == groupProtocolConsumer {
		opts = append(opts, kgo.ServerSideBalancer())
	}
	return opts, nil
}

// checkConsumerProtocol fails when a broker lacks KIP-848: kgo would
// otherwise fall back to the classic protocol without a word, and the user
// asked for the other one (Kafka's consumer fails the same way).
func (a *app) checkConsumerProtocol(ctx context.Context, adm *kadm.Client) error {
	ctx, cancel := context.WithTimeout(ctx, a.opts.requestTimeout)
	defer cancel()
	versions, err := adm.ApiVersions(ctx)
	if err != nil {
		return fmt.Errorf("consume: api versions: %w", err)
	}
	for _, v := range versions.Sorted() {
		if v.Err != nil {
			return fmt.Errorf("consume: api versions of broker %d: %w", v.NodeID, v.Err)
		}
		if max, ok := v.KeyMaxVersion(int16(kmsg.ConsumerGroupHeartbeat)); !ok || max < 1 {
			return fmt.Errorf("consume: --group-protocol consumer: broker %d does not support the consumer group protocol "+
				"(KIP-848 needs ConsumerGroupHeartbeat v1); use --group-protocol classic", v.NodeID)
		}
	}
	return nil
}

// finishGroupConsume commits the offsets of every printed record and leaves
// the group. It runs after the command's context may have been cancelled by
// SIGINT/SIGTERM, so it gets its own time, bounded by --request-timeout.
func (a *app) finishGroupConsume(ctx context.Context, cl *kgo.Client, g groupConsumeOptions) error {
	cl.AllowRebalance()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.opts.requestTimeout)
	defer cancel()
	partitions := 0
	for _, ps := range cl.MarkedOffsets() {
		partitions += len(ps)
	}
	if err := cl.CommitMarkedOffsets(fctx); err != nil {
		return fmt.Errorf("consume: group %q: commit offsets: %w", g.group, err)
	}
	if g.instanceIDSet {
		// kgo does not send a leave for a static member: keeping its
		// place across restarts is what static membership is for.
		fmt.Fprintf(a.env.Stderr, "group %q: committed offsets of %d partition(s); static member %q stays in the group until its session times out\n",
			g.group, partitions, g.instanceID)
		return nil
	}
	if err := cl.LeaveGroupContext(fctx); err != nil {
		return fmt.Errorf("consume: group %q: leave: %w", g.group, err)
	}
	fmt.Fprintf(a.env.Stderr, "group %q: committed offsets of %d partition(s), left the group\n", g.group, partitions)
	return nil
}
