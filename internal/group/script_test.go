package group

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The coordinator's behaviour is tested with replayable scripts in
// testdata/script, in the style of cockroachdb/datadriven (which this module
// does not depend on): each case is a command line, a "----" line and the
// expected output, ended by a blank line. `go test -run TestScript -rewrite`
// rewrites the expected blocks from the actual output.

var rewrite = flag.Bool("rewrite", false, "rewrite expected output of testdata/script files")

type scriptCase struct {
	pos      string
	cmd      string
	expected string
}

func parseScript(t *testing.T, path string) []scriptCase {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []scriptCase
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		c := scriptCase{pos: fmt.Sprintf("%s:%d", path, i+1), cmd: line}
		i++
		if i >= len(lines) || lines[i] != "----" {
			t.Fatalf("%s: expected ---- after command", c.pos)
		}
		var exp []string
		for i++; i < len(lines) && lines[i] != ""; i++ {
			exp = append(exp, lines[i])
		}
		c.expected = strings.Join(exp, "\n")
		cases = append(cases, c)
	}
	return cases
}

func TestScript(t *testing.T) {
	files, err := filepath.Glob("testdata/script/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cases := parseScript(t, f)
			r := newRunner()
			var out strings.Builder
			for _, c := range cases {
				got := strings.TrimRight(r.run(t, c), "\n")
				if got == "" {
					got = "(no output)"
				}
				if *rewrite {
					fmt.Fprintf(&out, "%s\n----\n%s\n\n", c.cmd, got)
					continue
				}
				if got != c.expected {
					t.Errorf("%s: %s\n got:\n%s\n want:\n%s", c.pos, c.cmd, got, c.expected)
				}
			}
			if *rewrite {
				// Keep leading comments of the file.
				data, _ := os.ReadFile(f)
				var head strings.Builder
				sc := bufio.NewScanner(strings.NewReader(string(data)))
				for sc.Scan() && strings.HasPrefix(sc.Text(), "#") {
					head.WriteString(sc.Text() + "\n")
				}
				if head.Len() > 0 {
					head.WriteString("\n")
				}
				if err := os.WriteFile(f, []byte(head.String()+strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

var scriptEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// runner holds one script's coordinator, clock, log and member aliases.
type runner struct {
	c       *Coordinator
	cfg     Config
	now     time.Time
	log     []Record
	reqID   uint64
	alias   map[string]string // alias -> member ID
	byID    map[string]string // member ID -> alias
	pending map[uint64]string // request -> alias to bind from its JoinGroup reply
	topics  *fakeTopics
	quiet   bool
}

func newRunner() *runner {
	r := &runner{now: scriptEpoch, alias: map[string]string{}, byID: map[string]string{}, pending: map[uint64]string{}, topics: newFakeTopics()}
	r.cfg = Config{GroupMinSessionTimeout: time.Second}
	r.cfg.EnsureDefaults()
	r.c = New(r.cfg)
	r.c.Loaded(r.now)
	return r
}

type args map[string]string

func (a args) str(k, def string) string {
	if v, ok := a[k]; ok {
		return v
	}
	return def
}

func (a args) int(t *testing.T, k string, def int64) int64 {
	v, ok := a[k]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("bad %s=%q", k, v)
	}
	return n
}

func (a args) dur(t *testing.T, k string, def time.Duration) time.Duration {
	v, ok := a[k]
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("bad %s=%q", k, v)
	}
	return d
}

func (a args) optStr(k string) *string {
	if v, ok := a[k]; ok {
		return &v
	}
	return nil
}

func (r *runner) member(a args, k string) string {
	v := a[k]
	if id, ok := r.alias[v]; ok {
		return id
	}
	return v
}

func (r *runner) name(id string) string {
	if a, ok := r.byID[id]; ok {
		return a
	}
	return id
}

func (r *runner) bind(alias, id string) {
	if alias == "" || id == "" {
		return
	}
	r.alias[alias] = id
	r.byID[id] = alias
}

func (r *runner) run(t *testing.T, c scriptCase) string {
	fields := strings.Fields(c.cmd)
	a := args{}
	for _, f := range fields[1:] {
		k, v, _ := strings.Cut(f, "=")
		a[k] = v
	}
	var b strings.Builder
	switch fields[0] {
	case "config":
		r.cfg = Config{
			GroupMinSessionTimeout: a.dur(t, "minsession", time.Second),
			InitialRebalanceDelay:  a.dur(t, "delay", 0),
			GroupMaxSize:           int(a.int(t, "maxsize", 0)),
			OffsetsRetention:       a.dur(t, "retention", 0),
			OffsetMetadataMaxBytes: int(a.int(t, "maxmeta", 0)),
			ConsumerSessionTimeout: a.dur(t, "csession", 0),
		}
		r.cfg.EnsureDefaults()
		if err := r.cfg.Validate(); err != nil {
			t.Fatalf("%s: %v", c.pos, err)
		}
		r.c = New(r.cfg)
		r.log = nil
		if a.str("loaded", "true") == "true" {
			r.c.Loaded(r.now)
		}
		return "ok"
	case "loaded":
		r.c.Loaded(r.now)
		return "ok"
	case "topic":
		parts := a.int(t, "partitions", 1)
		r.topics.add(a["name"], int32(parts))
		return "ok"
	case "advance":
		r.now = r.now.Add(a.dur(t, "by", 0))
		return "now +" + r.now.Sub(scriptEpoch).String()
	case "tick":
		if len(fields) > 1 && strings.HasPrefix(fields[1], "+") {
			d, err := time.ParseDuration(fields[1][1:])
			if err != nil {
				t.Fatalf("%s: %v", c.pos, err)
			}
			r.now = r.now.Add(d)
		}
		out := r.c.Tick(r.now, r.topics)
		if len(fields) > 2 && fields[2] == "summary" {
			return r.summary(out)
		}
		r.print(&b, out)
		return b.String()
	case "restart":
		// A new coordinator replays the log written so far, as the broker
		// does when it becomes leader of the partition.
		r.c = New(r.cfg)
		for _, rec := range r.log {
			if err := r.c.Load(rec.Key, rec.Value); err != nil {
				t.Fatalf("%s: load: %v", c.pos, err)
			}
		}
		r.c.Loaded(r.now)
		return r.dump()
	case "state":
		if a["summary"] == "true" {
			return r.stateSummary()
		}
		return r.dump()
	case "joinmany":
		return r.joinMany(t, a)
	case "syncall":
		return r.syncAll(t, a)
	}
	req := r.request(t, fields[0], a)
	r.reqID++
	if al := a["as"]; al != "" {
		r.pending[r.reqID] = al
	}
	r.print(&b, r.c.Step(Input{Now: r.now, ReplyTo: r.reqID, Req: req, Topics: r.topics, ClientID: a.str("client", "c"), ClientHost: "/127.0.0.1"}))
	return b.String()
}

func (r *runner) request(t *testing.T, cmd string, a args) kmsg.Request {
	v := int16(a.int(t, "v", -1))
	var req kmsg.Request
	switch cmd {
	case "join":
		q := kmsg.NewPtrJoinGroupRequest()
		q.Group = a.str("group", "g")
		q.MemberID = r.member(a, "member")
		q.InstanceID = a.optStr("instance")
		q.SessionTimeoutMillis = int32(a.dur(t, "session", 10*time.Second).Milliseconds())
		q.RebalanceTimeoutMillis = int32(a.dur(t, "rebalance", 30*time.Second).Milliseconds())
		q.ProtocolType = a.str("type", "consumer")
		for _, p := range strings.Split(a.str("protocols", "range"), ",") {
			if p == "" {
				continue
			}
			name, meta, _ := strings.Cut(p, ":")
			q.Protocols = append(q.Protocols, kmsg.JoinGroupRequestProtocol{Name: name, Metadata: protocolMetadata(meta)})
		}
		req = q
		if v < 0 {
			v = 5
		}
	case "sync":
		q := kmsg.NewPtrSyncGroupRequest()
		q.Group = a.str("group", "g")
		q.MemberID = r.member(a, "member")
		q.InstanceID = a.optStr("instance")
		q.Generation = int32(a.int(t, "gen", 0))
		for _, as := range strings.Split(a.str("assign", ""), ",") {
			if as == "" {
				continue
			}
			m, data, _ := strings.Cut(as, ":")
			if id, ok := r.alias[m]; ok {
				m = id
			}
			q.GroupAssignment = append(q.GroupAssignment, kmsg.SyncGroupRequestGroupAssignment{MemberID: m, MemberAssignment: []byte(data)})
		}
		req = q
		if v < 0 {
			v = 3
		}
	case "heartbeat":
		q := kmsg.NewPtrHeartbeatRequest()
		q.Group = a.str("group", "g")
		q.MemberID = r.member(a, "member")
		q.InstanceID = a.optStr("instance")
		q.Generation = int32(a.int(t, "gen", 0))
		req = q
		if v < 0 {
			v = 3
		}
	case "leave":
		q := kmsg.NewPtrLeaveGroupRequest()
		q.Group = a.str("group", "g")
		if v < 0 {
			v = 3
		}
		if v < 3 {
			q.MemberID = r.member(a, "member")
		} else {
			for _, m := range strings.Split(a.str("members", a["member"]), ",") {
				lm := kmsg.NewLeaveGroupRequestMember()
				if inst, ok := strings.CutPrefix(m, "instance:"); ok {
					lm.InstanceID = &inst
				} else if id, ok := r.alias[m]; ok {
					lm.MemberID = id
				} else {
					lm.MemberID = m
				}
				q.Members = append(q.Members, lm)
			}
		}
		req = q
	case "commit":
		q := kmsg.NewPtrOffsetCommitRequest()
		q.Group = a.str("group", "g")
		q.MemberID = r.member(a, "member")
		q.InstanceID = a.optStr("instance")
		q.Generation = int32(a.int(t, "gen", -1))
		for _, o := range strings.Split(a.str("offsets", ""), ",") {
			parts := strings.Split(o, ":")
			if len(parts) < 3 {
				t.Fatalf("offsets: topic:partition:offset[:metadata], got %q", o)
			}
			p, _ := strconv.Atoi(parts[1])
			off, _ := strconv.ParseInt(parts[2], 10, 64)
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			rp.Partition, rp.Offset = int32(p), off
			if len(parts) > 3 {
				rp.Metadata = &parts[3]
			}
			i := slices.IndexFunc(q.Topics, func(rt kmsg.OffsetCommitRequestTopic) bool { return rt.Topic == parts[0] })
			if i < 0 {
				q.Topics = append(q.Topics, kmsg.OffsetCommitRequestTopic{Topic: parts[0]})
				i = len(q.Topics) - 1
			}
			q.Topics[i].Partitions = append(q.Topics[i].Partitions, rp)
		}
		req = q
		if v < 0 {
			v = 8
		}
	case "fetch":
		q := kmsg.NewPtrOffsetFetchRequest()
		if v < 0 {
			v = 7
		}
		var topics []kmsg.OffsetFetchRequestTopic
		if ts, ok := a["topics"]; ok {
			topics = []kmsg.OffsetFetchRequestTopic{}
			for _, tp := range strings.Split(ts, ";") {
				name, ps, _ := strings.Cut(tp, ":")
				rt := kmsg.OffsetFetchRequestTopic{Topic: name}
				for _, p := range strings.Split(ps, ",") {
					n, _ := strconv.Atoi(p)
					rt.Partitions = append(rt.Partitions, int32(n))
				}
				topics = append(topics, rt)
			}
		}
		if v >= 8 {
			for _, gid := range strings.Split(a.str("groups", a.str("group", "g")), ",") {
				rg := kmsg.NewOffsetFetchRequestGroup()
				rg.Group = gid
				if topics != nil {
					rg.Topics = []kmsg.OffsetFetchRequestGroupTopic{}
				}
				for _, rt := range topics {
					rg.Topics = append(rg.Topics, kmsg.OffsetFetchRequestGroupTopic{Topic: rt.Topic, Partitions: rt.Partitions})
				}
				if m, ok := a["member"]; ok {
					id := r.member(a, "member")
					_ = m
					rg.MemberID = &id
					rg.MemberEpoch = int32(a.int(t, "epoch", -1))
				}
				q.Groups = append(q.Groups, rg)
			}
		} else {
			q.Group = a.str("group", "g")
			q.Topics = topics
		}
		req = q
	case "describe":
		q := kmsg.NewPtrDescribeGroupsRequest()
		q.Groups = strings.Split(a.str("groups", "g"), ",")
		req = q
		if v < 0 {
			v = 5
		}
	case "list":
		q := kmsg.NewPtrListGroupsRequest()
		if s, ok := a["states"]; ok {
			q.StatesFilter = strings.Split(s, ",")
		}
		if s, ok := a["types"]; ok {
			q.TypesFilter = strings.Split(s, ",")
		}
		req = q
		if v < 0 {
			v = 5
		}
	case "delete":
		q := kmsg.NewPtrDeleteGroupsRequest()
		q.Groups = strings.Split(a.str("groups", "g"), ",")
		req = q
		if v < 0 {
			v = 2
		}
	case "offsetdelete":
		q := kmsg.NewPtrOffsetDeleteRequest()
		q.Group = a.str("group", "g")
		for _, tp := range strings.Split(a.str("topics", ""), ";") {
			name, ps, _ := strings.Cut(tp, ":")
			rt := kmsg.OffsetDeleteRequestTopic{Topic: name}
			for _, p := range strings.Split(ps, ",") {
				n, _ := strconv.Atoi(p)
				rt.Partitions = append(rt.Partitions, kmsg.OffsetDeleteRequestTopicPartition{Partition: int32(n)})
			}
			q.Topics = append(q.Topics, rt)
		}
		req = q
		if v < 0 {
			v = 0
		}
	default:
		if q := r.consumerRequest(t, cmd, a); q != nil {
			return q
		}
		t.Fatalf("unknown command %q", cmd)
	}
	req.SetVersion(v)
	return req
}

func errName(code int16) string {
	if code == 0 {
		return "OK"
	}
	if err := kerr.ErrorForCode(code); err != nil {
		if ke, ok := err.(*kerr.Error); ok {
			return ke.Message
		}
	}
	return strconv.Itoa(int(code))
}

func (r *runner) print(b *strings.Builder, out Output) {
	r.log = append(r.log, out.Records...)
	for _, rep := range out.Replies {
		if al, ok := r.pending[rep.To]; ok {
			if jr, ok := rep.Resp.(*kmsg.JoinGroupResponse); ok && jr.MemberID != "" {
				r.bind(al, jr.MemberID)
			}
			if cr, ok := rep.Resp.(*kmsg.ConsumerGroupHeartbeatResponse); ok && cr.MemberID != nil {
				r.bind(al, *cr.MemberID)
			}
		}
	}
	if r.quiet {
		return
	}
	for _, rec := range out.Records {
		fmt.Fprintf(b, "record %s\n", r.describeRecord(rec))
	}
	for _, rep := range out.Replies {
		fmt.Fprintf(b, "#%d %s\n", rep.To, r.describeResp(rep.Resp))
	}
	if !out.NextDeadline.IsZero() {
		fmt.Fprintf(b, "next +%s\n", out.NextDeadline.Sub(scriptEpoch))
	}
}

func (r *runner) describeRecord(rec Record) string {
	if len(rec.Key) < 2 {
		return "bad key"
	}
	switch rec.Key[1] {
	case 0, 1:
		var k kmsg.OffsetCommitKey
		_ = k.ReadFrom(rec.Key)
		if rec.Value == nil {
			return fmt.Sprintf("offset %s/%s/%d tombstone", k.Group, k.Topic, k.Partition)
		}
		var v kmsg.OffsetCommitValue
		_ = v.ReadFrom(rec.Value)
		return fmt.Sprintf("offset %s/%s/%d=%d epoch=%d meta=%q at=+%s", k.Group, k.Topic, k.Partition, v.Offset, v.LeaderEpoch, v.Metadata, time.UnixMilli(v.CommitTimestamp).Sub(scriptEpoch))
	case 2:
		var k kmsg.GroupMetadataKey
		_ = k.ReadFrom(rec.Key)
		if rec.Value == nil {
			return fmt.Sprintf("group %s tombstone", k.Group)
		}
		var v kmsg.GroupMetadataValue
		_ = v.ReadFrom(rec.Value)
		var ms []string
		for _, m := range v.Members {
			ms = append(ms, fmt.Sprintf("%s(%s)", r.name(m.MemberID), m.Assignment))
		}
		return fmt.Sprintf("group %s gen=%d type=%s protocol=%s leader=%s members=[%s]", k.Group, v.Generation, v.ProtocolType, deref(v.Protocol), r.name(deref(v.Leader)), strings.Join(ms, " "))
	case 3:
		var k kmsg.GroupMetadataKey
		_ = k.ReadFrom(rec.Key)
		if rec.Value == nil {
			return fmt.Sprintf("consumer-group %s tombstone", k.Group)
		}
		return fmt.Sprintf("consumer-group %s value=%x", k.Group, rec.Value)
	}
	return "unknown"
}

func (r *runner) describeResp(resp kmsg.Response) string {
	switch v := resp.(type) {
	case *kmsg.JoinGroupResponse:
		s := fmt.Sprintf("join %s gen=%d member=%s", errName(v.ErrorCode), v.Generation, r.name(v.MemberID))
		if v.ErrorCode == 0 {
			s += fmt.Sprintf(" protocol=%s leader=%s", deref(v.Protocol), r.name(v.LeaderID))
			if len(v.Members) > 0 {
				var ms []string
				for _, m := range v.Members {
					ms = append(ms, r.name(m.MemberID)+":"+printable(m.ProtocolMetadata))
				}
				s += " members=[" + strings.Join(ms, " ") + "]"
			}
			if v.SkipAssignment {
				s += " skip-assignment"
			}
		}
		return s
	case *kmsg.SyncGroupResponse:
		return fmt.Sprintf("sync %s assignment=%q", errName(v.ErrorCode), v.MemberAssignment)
	case *kmsg.HeartbeatResponse:
		return "heartbeat " + errName(v.ErrorCode)
	case *kmsg.LeaveGroupResponse:
		s := "leave " + errName(v.ErrorCode)
		for _, m := range v.Members {
			id := r.name(m.MemberID)
			if m.InstanceID != nil {
				id += "/" + *m.InstanceID
			}
			s += fmt.Sprintf(" %s:%s", id, errName(m.ErrorCode))
		}
		return s
	case *kmsg.OffsetCommitResponse:
		var ps []string
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				ps = append(ps, fmt.Sprintf("%s/%d:%s", t.Topic, p.Partition, errName(p.ErrorCode)))
			}
		}
		return "commit " + strings.Join(ps, " ")
	case *kmsg.OffsetFetchResponse:
		if v.Version >= 8 {
			var gs []string
			for _, g := range v.Groups {
				var ps []string
				for _, t := range g.Topics {
					for _, p := range t.Partitions {
						ps = append(ps, fmt.Sprintf("%s/%d=%d", t.Topic, p.Partition, p.Offset))
					}
				}
				gs = append(gs, fmt.Sprintf("%s:%s[%s]", g.Group, errName(g.ErrorCode), strings.Join(ps, " ")))
			}
			return "fetch " + strings.Join(gs, " ")
		}
		var ps []string
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				s := fmt.Sprintf("%s/%d=%d", t.Topic, p.Partition, p.Offset)
				if p.LeaderEpoch >= 0 {
					s += fmt.Sprintf("@%d", p.LeaderEpoch)
				}
				if deref(p.Metadata) != "" {
					s += fmt.Sprintf("(%s)", *p.Metadata)
				}
				if p.ErrorCode != 0 {
					s += ":" + errName(p.ErrorCode)
				}
				ps = append(ps, s)
			}
		}
		return fmt.Sprintf("fetch %s [%s]", errName(v.ErrorCode), strings.Join(ps, " "))
	case *kmsg.DescribeGroupsResponse:
		var gs []string
		for _, g := range v.Groups {
			var ms []string
			for _, m := range g.Members {
				s := r.name(m.MemberID)
				if m.InstanceID != nil {
					s += "/" + *m.InstanceID
				}
				if len(m.MemberAssignment) > 0 {
					s += "(" + string(m.MemberAssignment) + ")"
				}
				ms = append(ms, s)
			}
			gs = append(gs, fmt.Sprintf("%s:%s state=%s type=%s protocol=%s members=[%s]", g.Group, errName(g.ErrorCode), g.State, g.ProtocolType, g.Protocol, strings.Join(ms, " ")))
		}
		return "describe " + strings.Join(gs, "; ")
	case *kmsg.ListGroupsResponse:
		var gs []string
		for _, g := range v.Groups {
			gs = append(gs, fmt.Sprintf("%s(%s,%s,%s)", g.Group, g.ProtocolType, g.GroupState, g.GroupType))
		}
		return fmt.Sprintf("list %s [%s]", errName(v.ErrorCode), strings.Join(gs, " "))
	case *kmsg.DeleteGroupsResponse:
		var gs []string
		for _, g := range v.Groups {
			gs = append(gs, g.Group+":"+errName(g.ErrorCode))
		}
		return "delete " + strings.Join(gs, " ")
	case *kmsg.OffsetDeleteResponse:
		var ps []string
		for _, t := range v.Topics {
			for _, p := range t.Partitions {
				ps = append(ps, fmt.Sprintf("%s/%d:%s", t.Topic, p.Partition, errName(p.ErrorCode)))
			}
		}
		return fmt.Sprintf("offsetdelete %s [%s]", errName(v.ErrorCode), strings.Join(ps, " "))
	}
	if s := r.describeConsumerResp(resp); s != "" {
		return s
	}
	return fmt.Sprintf("%T", resp)
}

// dump prints the coordinator's state: the property that a restart
// preserves it is checked by comparing dumps.
func (r *runner) dump() string {
	var b strings.Builder
	for _, id := range r.c.Groups() {
		g := r.c.groups[id]
		if g.classic != nil {
			cg := g.classic
			var ms []string
			for _, m := range cg.sortedMembers() {
				s := r.name(m.id)
				if m.instanceID != nil {
					s += "/" + *m.instanceID
				}
				ms = append(ms, s+"("+string(m.assignment)+")")
			}
			fmt.Fprintf(&b, "group %s classic state=%s gen=%d protocol=%s leader=%s members=[%s]\n", id, cg.state, cg.generation, cg.protocol, r.name(cg.leader), strings.Join(ms, " "))
		} else {
			b.WriteString(r.dumpConsumer(g))
		}
		for _, t := range sortedKeys(g.offsets) {
			for _, p := range sortedKeys(g.offsets[t]) {
				e := g.offsets[t][p]
				fmt.Fprintf(&b, "  offset %s/%d=%d epoch=%d meta=%q\n", t, p, e.offset, e.leaderEpoch, e.metadata)
			}
		}
	}
	if b.Len() == 0 {
		return "no groups"
	}
	return b.String()
}

// joinMany has n new dynamic members join at once with the KIP-394 round
// trip and summarises the replies.
func (r *runner) joinMany(t *testing.T, a args) string {
	n := int(a.int(t, "n", 1))
	prefix := a.str("prefix", "m")
	gid := a.str("group", "g")
	counts := map[string]int{}
	r.quiet = true
	defer func() { r.quiet = false }()
	ids := make([]string, n)
	for i := 0; i < n; i++ {
		q := kmsg.NewPtrJoinGroupRequest()
		q.SetVersion(5)
		q.Group, q.SessionTimeoutMillis, q.RebalanceTimeoutMillis, q.ProtocolType = gid, 10000, 30000, "consumer"
		q.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("x")}}
		r.reqID++
		out := r.c.Step(Input{Now: r.now, ReplyTo: r.reqID, Req: q, ClientID: prefix})
		r.print(&strings.Builder{}, out)
		for _, rep := range out.Replies {
			jr := rep.Resp.(*kmsg.JoinGroupResponse)
			counts["first:"+errName(jr.ErrorCode)]++
			ids[i] = jr.MemberID
			r.bind(fmt.Sprintf("%s%d", prefix, i), jr.MemberID)
		}
	}
	var last Output
	for i := 0; i < n; i++ {
		q := kmsg.NewPtrJoinGroupRequest()
		q.SetVersion(5)
		q.Group, q.SessionTimeoutMillis, q.RebalanceTimeoutMillis, q.ProtocolType = gid, 10000, 30000, "consumer"
		q.MemberID = ids[i]
		q.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte("x")}}
		r.reqID++
		last = r.c.Step(Input{Now: r.now, ReplyTo: r.reqID, Req: q, ClientID: prefix})
		r.print(&strings.Builder{}, last)
		for _, rep := range last.Replies {
			jr := rep.Resp.(*kmsg.JoinGroupResponse)
			counts[fmt.Sprintf("second:%s gen=%d", errName(jr.ErrorCode), jr.Generation)]++
		}
	}
	return summarize(counts) + fmt.Sprintf("\nnext +%s", last.NextDeadline.Sub(scriptEpoch))
}

// syncAll has every member of the group sync (the leader assigning each
// member its alias) and summarises the replies.
func (r *runner) syncAll(t *testing.T, a args) string {
	g := r.c.groups[a.str("group", "g")]
	if g == nil || g.classic == nil {
		return "no classic group"
	}
	cg := g.classic
	counts := map[string]int{}
	r.quiet = true
	defer func() { r.quiet = false }()
	var assign []kmsg.SyncGroupRequestGroupAssignment
	for _, m := range cg.sortedMembers() {
		assign = append(assign, kmsg.SyncGroupRequestGroupAssignment{MemberID: m.id, MemberAssignment: []byte(r.name(m.id))})
	}
	leader := cg.leader
	reqs := map[uint64]string{}
	for _, m := range cg.sortedMembers() {
		if m.id == leader {
			continue
		}
		r.stepSync(g.id, m.id, cg.generation, nil, counts, reqs)
	}
	r.stepSync(g.id, leader, cg.generation, assign, counts, reqs)
	return summarize(counts)
}

func (r *runner) stepSync(gid, id string, gen int32, assign []kmsg.SyncGroupRequestGroupAssignment, counts map[string]int, reqs map[uint64]string) {
	q := kmsg.NewPtrSyncGroupRequest()
	q.SetVersion(3)
	q.Group, q.MemberID, q.Generation, q.GroupAssignment = gid, id, gen, assign
	r.reqID++
	reqs[r.reqID] = id
	out := r.c.Step(Input{Now: r.now, ReplyTo: r.reqID, Req: q})
	r.print(&strings.Builder{}, out)
	counts[fmt.Sprintf("records:%d", len(out.Records))] += len(out.Records)
	for _, rep := range out.Replies {
		sr := rep.Resp.(*kmsg.SyncGroupResponse)
		counts["sync:"+errName(sr.ErrorCode)]++
		if string(sr.MemberAssignment) == r.name(reqs[rep.To]) {
			counts["own-assignment"]++
		} else {
			counts["other-assignment"]++
		}
	}
}

// summary counts the replies of out by kind, for outputs too long to list.
func (r *runner) summary(out Output) string {
	r.quiet = true
	r.print(&strings.Builder{}, out)
	r.quiet = false
	counts := map[string]int{}
	for _, rep := range out.Replies {
		if jr, ok := rep.Resp.(*kmsg.JoinGroupResponse); ok {
			counts[fmt.Sprintf("join %s gen=%d leader=%s members=%d", errName(jr.ErrorCode), jr.Generation, r.name(jr.LeaderID), len(jr.Members))]++
			continue
		}
		counts[r.describeResp(rep.Resp)]++
	}
	counts[fmt.Sprintf("records %d", len(out.Records))] += len(out.Records)
	return summarize(counts)
}

func (r *runner) stateSummary() string {
	var b strings.Builder
	for _, id := range r.c.Groups() {
		g := r.c.groups[id]
		if cg := g.classic; cg != nil {
			fmt.Fprintf(&b, "group %s classic state=%s gen=%d leader=%s members=%d pending=%d\n", id, cg.state, cg.generation, r.name(cg.leader), len(cg.members), len(cg.pending))
		}
	}
	return b.String()
}

func summarize(counts map[string]int) string {
	var keys []string
	for k, v := range counts {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s x%d", k, counts[k]))
	}
	return strings.Join(parts, "\n")
}

// fakeTopics is a TopicView with deterministic IDs.
type fakeTopics struct {
	byName map[string][16]byte
	parts  map[[16]byte]int32
	names  map[[16]byte]string
}

func newFakeTopics() *fakeTopics {
	return &fakeTopics{byName: map[string][16]byte{}, parts: map[[16]byte]int32{}, names: map[[16]byte]string{}}
}

func (f *fakeTopics) add(name string, partitions int32) {
	id, ok := f.byName[name]
	if !ok {
		id = [16]byte{15: byte(len(f.byName) + 1)}
		copy(id[:8], name)
		f.byName[name] = id
		f.names[id] = name
	}
	f.parts[id] = partitions
}

func (f *fakeTopics) Topic(name string) ([16]byte, int32, bool) {
	id, ok := f.byName[name]
	return id, f.parts[id], ok
}

func (f *fakeTopics) TopicByID(id [16]byte) (string, int32, bool) {
	name, ok := f.names[id]
	return name, f.parts[id], ok
}

func (f *fakeTopics) Names() []string {
	out := make([]string, 0, len(f.byName))
	for n := range f.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// protocolMetadata is the literal bytes, or with a leading @ a consumer
// protocol subscription to the +-separated topics.
func protocolMetadata(s string) []byte {
	topics, ok := strings.CutPrefix(s, "@")
	if !ok {
		return []byte(s)
	}
	m := kmsg.NewConsumerMemberMetadata()
	m.Version = 0
	m.Topics = strings.Split(topics, "+")
	return m.AppendTo(nil)
}

func printable(b []byte) string {
	var m kmsg.ConsumerMemberMetadata
	if len(b) > 2 && b[0] == 0 && m.ReadFrom(b) == nil {
		return "@" + strings.Join(m.Topics, "+")
	}
	return string(b)
}
