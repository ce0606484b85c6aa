package group

import (
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TopicView is a read-only view of the cluster's current topics. The
// coordinator uses it to validate committed partitions, to resolve KIP-848
// subscriptions (names and regular expressions) and to size target
// assignments. It is only read during the Step or Tick it was passed to.
type TopicView interface {
	Topic(name string) (id [16]byte, partitions int32, ok bool)
	TopicByID(id [16]byte) (name string, partitions int32, ok bool)
	Names() []string
}

// Input is one request for the coordinator.
type Input struct {
	// Now is the broker's clock when the request is handled; it must not go
	// backwards between Steps and Ticks.
	Now time.Time
	// ReplyTo identifies the request; the Reply answering it carries the same
	// value. The coordinator never interprets it.
	ReplyTo uint64
	// Req is one of the group APIs listed in the package doc. Any other
	// request is answered with a nil Resp.
	Req kmsg.Request
	// Topics is the current topic view; it may be nil, which disables topic
	// validation of commits and gives KIP-848 members no partitions.
	Topics TopicView
	// ClientID and ClientHost come from the request header and connection;
	// they are optional and only shown by DescribeGroups and
	// ConsumerGroupDescribe and used as member ID prefixes, as Kafka does.
	ClientID   string
	ClientHost string
}

// Output is what one Step or Tick produced.
type Output struct {
	// Records must be appended, in order, to this __consumer_offsets
	// partition, durably, before any of Replies is sent: a reply may
	// acknowledge them (an offset commit, a completed SyncGroup).
	Records []Record
	// Replies answer requests of this or earlier Steps.
	Replies []Reply
	// NextDeadline is the earliest time Tick must be called (zero = no timer
	// pending). Calling Tick early is harmless.
	NextDeadline time.Time
}

// Reply answers the request whose Input.ReplyTo was To.
type Reply struct {
	To   uint64
	Resp kmsg.Response
}

// Record is one record of the __consumer_offsets partition; see the package
// doc for the format. A nil Value is a tombstone.
type Record struct {
	Key, Value []byte
}

// Coordinator owns the groups of one __consumer_offsets partition. Not safe
// for concurrent use: the broker drives it from one goroutine. It performs no
// I/O and reads no clock: everything arrives through Step, Tick and Load.
type Coordinator struct {
	cfg    Config
	loaded bool
	groups map[string]*group
	timers timerHeap
	seq    uint64 // member ID counter

	// out collects the current Step's output.
	out Output
	now time.Time
	// topics is the view of the current Step (may be nil).
	topics TopicView
	// clientID/clientHost of the current request.
	clientID, clientHost string
}

// New returns a coordinator for one __consumer_offsets partition. It answers
// COORDINATOR_LOAD_IN_PROGRESS until Loaded is called. cfg is completed with
// EnsureDefaults; New does not validate it (call cfg.Validate first).
func New(cfg Config) *Coordinator {
	cfg.EnsureDefaults()
	return &Coordinator{
		cfg:    cfg,
		groups: make(map[string]*group),
		timers: newTimerHeap(),
	}
}

// Groups returns the IDs of all live groups of this partition, sorted.
func (c *Coordinator) Groups() []string {
	ids := make([]string, 0, len(c.groups))
	for id := range c.groups {
		ids = append(ids, id)
	}
	sortStrings(ids)
	return ids
}

// Step handles one request. Timers that are due at in.Now fire first, so a
// broker that is late with Tick still sees a consistent group.
func (c *Coordinator) Step(in Input) Output {
	c.begin(in.Now, in.Topics)
	c.clientID, c.clientHost = in.ClientID, in.ClientHost
	if c.loaded {
		c.fireTimers()
	}
	resp := c.handle(in)
	if resp != nil {
		c.reply(in.ReplyTo, resp)
	}
	return c.finish()
}

// Tick fires the timers due at now: session expiry, rebalance and sync
// timeouts, the initial rebalance delay, KIP-394 pending members, offsets
// retention and empty-group expiry, KIP-848 session expiry.
func (c *Coordinator) Tick(now time.Time, topics TopicView) Output {
	c.begin(now, topics)
	if c.loaded {
		c.fireTimers()
	}
	return c.finish()
}

func (c *Coordinator) begin(now time.Time, topics TopicView) {
	c.out = Output{}
	if now.After(c.now) {
		c.now = now
	}
	c.topics = topics
}

func (c *Coordinator) finish() Output {
	out := c.out
	c.out = Output{}
	c.topics = nil
	c.clientID, c.clientHost = "", ""
	out.NextDeadline = c.timers.next()
	return out
}

func (c *Coordinator) reply(to uint64, resp kmsg.Response) {
	c.out.Replies = append(c.out.Replies, Reply{To: to, Resp: resp})
}

func (c *Coordinator) record(key, value []byte) {
	c.out.Records = append(c.out.Records, Record{Key: key, Value: value})
}

// handle dispatches one request; a nil result means the reply comes later.
func (c *Coordinator) handle(in Input) kmsg.Response {
	if in.Req == nil {
		return nil
	}
	if !c.loaded {
		return ErrorResponse(in.Req, kerr.CoordinatorLoadInProgress.Code)
	}
	switch req := in.Req.(type) {
	case *kmsg.JoinGroupRequest:
		return c.joinGroup(in.ReplyTo, req)
	case *kmsg.SyncGroupRequest:
		return c.syncGroup(in.ReplyTo, req)
	case *kmsg.HeartbeatRequest:
		return c.heartbeat(req)
	case *kmsg.LeaveGroupRequest:
		return c.leaveGroup(req)
	case *kmsg.OffsetCommitRequest:
		return c.offsetCommit(req)
	case *kmsg.OffsetFetchRequest:
		return c.offsetFetch(req)
	case *kmsg.DescribeGroupsRequest:
		return c.describeGroups(req)
	case *kmsg.ListGroupsRequest:
		return c.listGroups(req)
	case *kmsg.DeleteGroupsRequest:
		return c.deleteGroups(req)
	case *kmsg.OffsetDeleteRequest:
		return c.offsetDelete(req)
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return c.consumerHeartbeat(req)
	case *kmsg.ConsumerGroupDescribeRequest:
		return c.consumerDescribe(req)
	}
	return ErrorResponse(in.Req, kerr.UnsupportedVersion.Code)
}

// newMemberID returns a member ID unique in this partition: Kafka uses
// clientID-UUID; without randomness we combine the clock, the partition and
// a counter, which cannot repeat within a run and is unlikely to repeat
// across restarts since the clock moved on. Collisions with live members are
// skipped anyway.
func (c *Coordinator) newMemberID(g *group, prefix string) string {
	if prefix == "" {
		prefix = "member"
	}
	for {
		c.seq++
		id := prefix + "-" + strconv.FormatInt(c.now.UnixMilli(), 36) + "-" + strconv.FormatInt(int64(c.cfg.Partition), 10) + "-" + strconv.FormatUint(c.seq, 10)
		if g == nil || !g.hasMemberID(id) {
			return id
		}
	}
}

func ms(d time.Duration) int32 {
	v := d.Milliseconds()
	if v > int64(^uint32(0)>>1) {
		return int32(^uint32(0) >> 1)
	}
	return int32(v)
}

func msDur(v int32) time.Duration { return time.Duration(v) * time.Millisecond }

func strp(s string) *string { return &s }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
