package integration

// Consumer groups driven by hand with kmsg requests on raw connections:
// error codes for commits and heartbeats from members that are unknown or
// of the wrong generation or epoch, a thousand members joining at once, and
// members that stop heartbeating.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// decodeFrame decodes a response frame (after the size) to req.
func decodeFrame(req kmsg.Request, frame []byte) (kmsg.Response, error) {
	body := frame[4:]
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	var err error
	if resp.IsFlexible() && req.Key() != 18 {
		if body, err = skipTags(body); err != nil {
			return nil, fmt.Errorf("response header: %w", err)
		}
	}
	if err := resp.ReadFrom(body); err != nil {
		return nil, fmt.Errorf("decode %T v%d: %w", resp, resp.GetVersion(), err)
	}
	return resp, nil
}

// pipeline writes every request at once and then reads their responses, in
// order. It returns errors rather than failing the test, so it can run on
// several goroutines.
func (r *rawConn) pipeline(reqs []kmsg.Request, timeout time.Duration) ([]kmsg.Response, error) {
	first := r.corr + 1
	var buf []byte
	for _, req := range reqs {
		buf = append(buf, r.frame(req)...)
	}
	if err := r.write(buf); err != nil {
		return nil, fmt.Errorf("write %d requests: %w", len(reqs), err)
	}
	out := make([]kmsg.Response, len(reqs))
	for i, req := range reqs {
		frame, err := r.readFrame(timeout)
		if err != nil {
			return nil, fmt.Errorf("response %d of %d: %w", i+1, len(reqs), err)
		}
		if corr := int32(uint32(frame[0])<<24 | uint32(frame[1])<<16 | uint32(frame[2])<<8 | uint32(frame[3])); corr != first+int32(i) {
			return nil, fmt.Errorf("response %d has correlation id %d, want %d", i+1, corr, first+int32(i))
		}
		if out[i], err = decodeFrame(req, frame); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func consumerMetadata(topics ...string) []byte {
	m := kmsg.NewConsumerMemberMetadata()
	m.Topics = topics
	return m.AppendTo(nil)
}

func consumerAssignment(topic string, parts ...int32) []byte {
	a := kmsg.NewConsumerMemberAssignment()
	if len(parts) > 0 {
		at := kmsg.NewConsumerMemberAssignmentTopic()
		at.Topic, at.Partitions = topic, parts
		a.Topics = append(a.Topics, at)
	}
	return a.AppendTo(nil)
}

func joinRequest(group, topic, memberID string, session, rebalance time.Duration) *kmsg.JoinGroupRequest {
	req := kmsg.NewPtrJoinGroupRequest()
	req.SetVersion(9)
	req.Group = group
	req.MemberID = memberID
	req.SessionTimeoutMillis = int32(session.Milliseconds())
	req.RebalanceTimeoutMillis = int32(rebalance.Milliseconds())
	req.ProtocolType = "consumer"
	p := kmsg.NewJoinGroupRequestProtocol()
	p.Name, p.Metadata = "range", consumerMetadata(topic)
	req.Protocols = append(req.Protocols, p)
	return req
}

func syncRequest(group, memberID string, gen int32, assign map[string][]byte) *kmsg.SyncGroupRequest {
	req := kmsg.NewPtrSyncGroupRequest()
	req.SetVersion(5)
	req.Group, req.MemberID, req.Generation = group, memberID, gen
	pt, proto := "consumer", "range"
	req.ProtocolType, req.Protocol = &pt, &proto
	for id, a := range assign {
		ga := kmsg.NewSyncGroupRequestGroupAssignment()
		ga.MemberID, ga.MemberAssignment = id, a
		req.GroupAssignment = append(req.GroupAssignment, ga)
	}
	return req
}

func heartbeatRequest(group, memberID string, gen int32) *kmsg.HeartbeatRequest {
	req := kmsg.NewPtrHeartbeatRequest()
	req.SetVersion(4)
	req.Group, req.MemberID, req.Generation = group, memberID, gen
	return req
}

func commitRequest(version int16, group, memberID string, gen int32, topic string, part int32, offset int64) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(version)
	req.Group, req.MemberID, req.Generation = group, memberID, gen
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Partition, rp.Offset = part, offset
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// commitCode sends a one-partition OffsetCommit and returns its error code.
func commitCode(r *rawConn, req *kmsg.OffsetCommitRequest) int16 {
	r.t.Helper()
	resp := r.roundTrip(req).(*kmsg.OffsetCommitResponse)
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		r.t.Fatalf("OffsetCommit v%d response has %d topics, want one with one partition", req.Version, len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0].ErrorCode
}

// fetchCommitted returns the committed offset of one partition (-1: none).
func fetchCommitted(r *rawConn, group, topic string, part int32) int64 {
	r.t.Helper()
	req := kmsg.NewPtrOffsetFetchRequest()
	req.SetVersion(7)
	req.Group = group
	rt := kmsg.NewOffsetFetchRequestTopic()
	rt.Topic, rt.Partitions = topic, []int32{part}
	req.Topics = append(req.Topics, rt)
	resp := r.roundTrip(req).(*kmsg.OffsetFetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		r.t.Fatalf("OffsetFetch: %v", err)
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		r.t.Fatalf("OffsetFetch response: %+v", resp)
	}
	p := resp.Topics[0].Partitions[0]
	if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
		r.t.Fatalf("OffsetFetch %s/%d: %v", topic, part, err)
	}
	return p.Offset
}

// errNone stands for error code 0 in wantCode.
var errNone = &kerr.Error{Message: "NONE", Code: 0}

func wantCode(t testing.TB, what string, got int16, want *kerr.Error) {
	t.Helper()
	if got != want.Code {
		t.Errorf("%s: error %v, want %v", what, kerr.ErrorForCode(got), want.Message)
	}
}

// joinClassic runs the KIP-394 two-step join for one member on r and
// returns the JoinGroup response that ends the rebalance.
func joinClassic(r *rawConn, group, topic string, session time.Duration) *kmsg.JoinGroupResponse {
	r.t.Helper()
	first := r.roundTrip(joinRequest(group, topic, "", session, 10*time.Second)).(*kmsg.JoinGroupResponse)
	wantCode(r.t, "first JoinGroup v9 without member ID", first.ErrorCode, kerr.MemberIDRequired)
	if first.MemberID == "" {
		r.t.Fatal("MEMBER_ID_REQUIRED without a member ID")
	}
	resp := r.roundTrip(joinRequest(group, topic, first.MemberID, session, 10*time.Second)).(*kmsg.JoinGroupResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		r.t.Fatalf("JoinGroup with member ID: %v", err)
	}
	return resp
}

// TestGroupRawErrors: commits, heartbeats and syncs from unknown members,
// with wrong generations (classic) or epochs (KIP-848) get Kafka's error
// codes and change nothing.
func TestGroupRawErrors(t *testing.T) {
	b := startGroupBroker(t)
	topic := createTopic(t, b, 2)
	group := groupName(t)
	r := dialRaw(t, b)

	fc := kmsg.NewPtrFindCoordinatorRequest()
	fc.SetVersion(3)
	fc.CoordinatorKey = group
	fcr := r.roundTrip(fc).(*kmsg.FindCoordinatorResponse)
	if fcr.ErrorCode != 0 || net.JoinHostPort(fcr.Host, strconv.Itoa(int(fcr.Port))) != b.Addr {
		t.Fatalf("FindCoordinator: error %v, coordinator %s:%d, want %s", kerr.ErrorForCode(fcr.ErrorCode), fcr.Host, fcr.Port, b.Addr)
	}

	// A group without members takes generation -1 commits (admin tools,
	// standalone consumers).
	wantCode(t, "commit gen -1 to an unknown group", commitCode(r, commitRequest(8, group, "", -1, topic, 0, 5)), errNone)

	join := joinClassic(r, group, topic, 10*time.Second)
	me, gen := join.MemberID, join.Generation
	if join.LeaderID != me || len(join.Members) != 1 {
		t.Fatalf("lone member is not the leader: %+v", join)
	}
	sync := r.roundTrip(syncRequest(group, me, gen, map[string][]byte{me: consumerAssignment(topic, 0, 1)})).(*kmsg.SyncGroupResponse)
	wantCode(t, "SyncGroup", sync.ErrorCode, errNone)

	wantCode(t, "commit by the member", commitCode(r, commitRequest(8, group, me, gen, topic, 0, 42)), errNone)
	bad := []struct {
		what string
		req  *kmsg.OffsetCommitRequest
		want *kerr.Error
	}{
		{"commit by an unknown member", commitRequest(8, group, "no-such-member", gen, topic, 0, 7), kerr.UnknownMemberID},
		{"commit with the next generation", commitRequest(8, group, me, gen+1, topic, 0, 7), kerr.IllegalGeneration},
		{"commit with the previous generation", commitRequest(8, group, me, gen-1, topic, 0, 7), kerr.IllegalGeneration},
		{"commit gen -1 without member to a group with members", commitRequest(8, group, "", -1, topic, 0, 7), kerr.UnknownMemberID},
		{"commit v2 by an unknown member", commitRequest(2, group, "no-such-member", gen, topic, 0, 7), kerr.UnknownMemberID},
		{"commit v2 with a wrong generation", commitRequest(2, group, me, gen+5, topic, 0, 7), kerr.IllegalGeneration},
		{"commit v8 with a generation to a group that does not exist", commitRequest(8, groupName(t), "x", 5, topic, 0, 7), kerr.IllegalGeneration},
	}
	for _, c := range bad {
		wantCode(t, c.what, commitCode(r, c.req), c.want)
	}
	if got := fetchCommitted(r, group, topic, 0); got != 42 {
		t.Errorf("committed offset after rejected commits = %d, want 42", got)
	}

	hb := r.roundTrip(heartbeatRequest(group, me, gen+1)).(*kmsg.HeartbeatResponse)
	wantCode(t, "heartbeat with a wrong generation", hb.ErrorCode, kerr.IllegalGeneration)
	hb = r.roundTrip(heartbeatRequest(group, "no-such-member", gen)).(*kmsg.HeartbeatResponse)
	wantCode(t, "heartbeat by an unknown member", hb.ErrorCode, kerr.UnknownMemberID)
	hb = r.roundTrip(heartbeatRequest(group, me, gen)).(*kmsg.HeartbeatResponse)
	wantCode(t, "heartbeat by the member", hb.ErrorCode, errNone)
	sync = r.roundTrip(syncRequest(group, me, gen+1, nil)).(*kmsg.SyncGroupResponse)
	wantCode(t, "SyncGroup with a wrong generation", sync.ErrorCode, kerr.IllegalGeneration)
	sync = r.roundTrip(syncRequest(group, "no-such-member", gen, nil)).(*kmsg.SyncGroupResponse)
	wantCode(t, "SyncGroup by an unknown member", sync.ErrorCode, kerr.UnknownMemberID)

	leave := kmsg.NewPtrLeaveGroupRequest()
	leave.SetVersion(5)
	leave.Group = group
	lm := kmsg.NewLeaveGroupRequestMember()
	lm.MemberID = "no-such-member"
	leave.Members = append(leave.Members, lm)
	lr := r.roundTrip(leave).(*kmsg.LeaveGroupResponse)
	if lr.ErrorCode != 0 || len(lr.Members) != 1 {
		t.Errorf("LeaveGroup of an unknown member: error %v, %d members", kerr.ErrorForCode(lr.ErrorCode), len(lr.Members))
	} else {
		wantCode(t, "LeaveGroup of an unknown member", lr.Members[0].ErrorCode, kerr.UnknownMemberID)
	}
	// The member is still there and still the one committing.
	hb = r.roundTrip(heartbeatRequest(group, me, gen)).(*kmsg.HeartbeatResponse)
	wantCode(t, "heartbeat after the bad requests", hb.ErrorCode, errNone)
	wantCode(t, "commit by the member after the bad requests", commitCode(r, commitRequest(8, group, me, gen, topic, 0, 43)), errNone)
	if got := fetchCommitted(r, group, topic, 0); got != 43 {
		t.Errorf("committed offset = %d, want 43", got)
	}

	t.Run("kip848", func(t *testing.T) {
		group := groupName(t)
		r := dialRaw(t, b)
		var idb [16]byte
		rand.Read(idb[:])
		me := hex.EncodeToString(idb[:])
		hbReq := func(id string, epoch int32) *kmsg.ConsumerGroupHeartbeatRequest {
			req := kmsg.NewPtrConsumerGroupHeartbeatRequest()
			req.SetVersion(1)
			req.Group, req.MemberID, req.MemberEpoch = group, id, epoch
			if epoch == 0 {
				req.RebalanceTimeoutMillis = 10000
				req.SubscribedTopicNames = []string{topic}
				req.Topics = []kmsg.ConsumerGroupHeartbeatRequestTopic{}
			}
			return req
		}
		resp := r.roundTrip(hbReq(me, 0)).(*kmsg.ConsumerGroupHeartbeatResponse)
		if resp.ErrorCode != 0 || resp.MemberEpoch < 1 {
			t.Fatalf("ConsumerGroupHeartbeat join: error %v, epoch %d", kerr.ErrorForCode(resp.ErrorCode), resp.MemberEpoch)
		}
		epoch := resp.MemberEpoch
		wantCode(t, "commit with the member's epoch", commitCode(r, commitRequest(9, group, me, epoch, topic, 1, 10)), errNone)
		// Kafka answers any epoch mismatch of a regular commit with
		// STALE_MEMBER_EPOCH (ConsumerGroup.validateMemberEpoch; KIP-1251).
		wantCode(t, "commit with a newer epoch", commitCode(r, commitRequest(9, group, me, epoch+1, topic, 1, 3)), kerr.StaleMemberEpoch)
		wantCode(t, "commit by an unknown member", commitCode(r, commitRequest(9, group, "no-such-member", epoch, topic, 1, 3)), kerr.UnknownMemberID)
		if got := fetchCommitted(r, group, topic, 1); got != 10 {
			t.Errorf("committed offset after rejected commits = %d, want 10", got)
		}
		bad := r.roundTrip(hbReq(me, epoch+5)).(*kmsg.ConsumerGroupHeartbeatResponse)
		wantCode(t, "ConsumerGroupHeartbeat with a future epoch", bad.ErrorCode, kerr.FencedMemberEpoch)
		bad = r.roundTrip(hbReq("no-such-member", 3)).(*kmsg.ConsumerGroupHeartbeatResponse)
		wantCode(t, "ConsumerGroupHeartbeat by an unknown member", bad.ErrorCode, kerr.UnknownMemberID)
		// A classic JoinGroup on a KIP-848 group with members.
		jr := r.roundTrip(joinRequest(group, topic, "", 10*time.Second, 10*time.Second)).(*kmsg.JoinGroupResponse)
		wantCode(t, "classic JoinGroup on a KIP-848 group", jr.ErrorCode, kerr.InconsistentGroupProtocol)
	})
}

// TestGroupThousandMembers: 1,000 members join one group at once through
// KIP-394's member-ID round trip on 20 connections; the rebalance
// completes with a single generation, one leader that sees all of them,
// and every member gets the assignment the leader sent.
func TestGroupThousandMembers(t *testing.T) {
	b := startGroupBroker(t)
	const members, conns = 1000, 20
	topic := createTopic(t, b, 10)
	group := groupName(t)
	res := joinMany(t, b, group, topic, members, conns)
	t.Logf("%d members: all JoinGroup answered %v after the last was sent, all SyncGroup %v after the leader's",
		members, res.joinTook.Round(time.Millisecond), res.syncTook.Round(time.Millisecond))
	if res.generation != 1 {
		t.Errorf("the rebalance ended in generation %d, want 1 (a single generation)", res.generation)
	}
	adm := newKgo(t, b)
	req := kmsg.NewPtrDescribeGroupsRequest()
	req.Groups = []string{group}
	resp, err := req.RequestWith(testCtx(t, 10*time.Second), adm)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Groups) != 1 || resp.Groups[0].State != "Stable" || len(resp.Groups[0].Members) != members {
		g := resp.Groups[0]
		t.Errorf("DescribeGroups: state %q with %d members, want Stable with %d", g.State, len(g.Members), members)
	}
}

type joinManyResult struct {
	generation int32
	joinTook   time.Duration // last JoinGroup sent -> all answered
	syncTook   time.Duration // leader's SyncGroup sent -> all answered
}

// joinMany joins n members to group over conns connections (KIP-394 two
// step, then SyncGroup with a range-like assignment by the leader) and
// checks every answer.
func joinMany(t testing.TB, b *broker, group, topic string, n, conns int) joinManyResult {
	t.Helper()
	rs := make([]*rawConn, conns)
	for i := range rs {
		rs[i] = dialRaw(t, b)
	}
	per := func(c int) []int { // member indexes on connection c
		var idx []int
		for i := c; i < n; i += conns {
			idx = append(idx, i)
		}
		return idx
	}
	ids := make([]string, n)
	const session = 30 * time.Second
	// Step 1: every member asks for a member ID.
	runConns(t, conns, func(c int) error {
		var reqs []kmsg.Request
		for range per(c) {
			reqs = append(reqs, joinRequest(group, topic, "", session, session))
		}
		resps, err := rs[c].pipeline(reqs, 30*time.Second)
		if err != nil {
			return err
		}
		for k, i := range per(c) {
			jr := resps[k].(*kmsg.JoinGroupResponse)
			if jr.ErrorCode != kerr.MemberIDRequired.Code || jr.MemberID == "" {
				return fmt.Errorf("member %d first join: error %v, member ID %q", i, kerr.ErrorForCode(jr.ErrorCode), jr.MemberID)
			}
			ids[i] = jr.MemberID
		}
		return nil
	})
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Fatalf("member ID %q handed out twice", id)
		}
		seen[id] = true
	}
	// Step 2: all rejoin with their IDs; the answers come when the
	// rebalance completes.
	joins := make([]*kmsg.JoinGroupResponse, n)
	var sentMu sync.Mutex
	var lastSent time.Time
	runConns(t, conns, func(c int) error {
		var reqs []kmsg.Request
		for _, i := range per(c) {
			reqs = append(reqs, joinRequest(group, topic, ids[i], session, session))
		}
		first := rs[c].corr + 1
		var buf []byte
		for _, req := range reqs {
			buf = append(buf, rs[c].frame(req)...)
		}
		if err := rs[c].write(buf); err != nil {
			return err
		}
		sentMu.Lock()
		lastSent = time.Now()
		sentMu.Unlock()
		for k, i := range per(c) {
			frame, err := rs[c].readFrame(60 * time.Second)
			if err != nil {
				return fmt.Errorf("member %d join: %w", i, err)
			}
			if corr := int32(uint32(frame[0])<<24 | uint32(frame[1])<<16 | uint32(frame[2])<<8 | uint32(frame[3])); corr != first+int32(k) {
				return fmt.Errorf("member %d join: correlation id %d, want %d", i, corr, first+int32(k))
			}
			resp, err := decodeFrame(reqs[k], frame)
			if err != nil {
				return err
			}
			joins[i] = resp.(*kmsg.JoinGroupResponse)
		}
		return nil
	})
	var res joinManyResult
	res.joinTook = time.Since(lastSent)
	leader := -1
	for i, jr := range joins {
		if err := kerr.ErrorForCode(jr.ErrorCode); err != nil {
			t.Fatalf("member %d join: %v", i, err)
		}
		if jr.MemberID != ids[i] || jr.LeaderID != joins[0].LeaderID || jr.Generation != joins[0].Generation {
			t.Fatalf("member %d join: member %q leader %q generation %d; member 0 got leader %q generation %d",
				i, jr.MemberID, jr.LeaderID, jr.Generation, joins[0].LeaderID, joins[0].Generation)
		}
		if jr.LeaderID == jr.MemberID {
			leader = i
			if len(jr.Members) != n {
				t.Fatalf("the leader sees %d members, want %d", len(jr.Members), n)
			}
		} else if len(jr.Members) != 0 {
			t.Fatalf("follower %d got %d members", i, len(jr.Members))
		}
	}
	if leader < 0 {
		t.Fatalf("no member is the leader %q", joins[0].LeaderID)
	}
	res.generation = joins[0].Generation
	gen := res.generation
	// Step 3: the leader assigns partition i to member i (10 partitions);
	// everyone syncs, the leader first on its connection.
	assign := map[string][]byte{}
	for i, id := range ids {
		if i < 10 {
			assign[id] = consumerAssignment(topic, int32(i))
		} else {
			assign[id] = consumerAssignment(topic)
		}
	}
	syncStart := time.Now()
	runConns(t, conns, func(c int) error {
		idx := per(c)
		for k, i := range idx {
			if i == leader {
				idx[0], idx[k] = idx[k], idx[0]
			}
		}
		var reqs []kmsg.Request
		for _, i := range idx {
			var a map[string][]byte
			if i == leader {
				a = assign
			}
			reqs = append(reqs, syncRequest(group, ids[i], gen, a))
		}
		resps, err := rs[c].pipeline(reqs, 60*time.Second)
		if err != nil {
			return err
		}
		for k, i := range idx {
			sr := resps[k].(*kmsg.SyncGroupResponse)
			if err := kerr.ErrorForCode(sr.ErrorCode); err != nil {
				return fmt.Errorf("member %d sync: %w", i, err)
			}
			if string(sr.MemberAssignment) != string(assign[ids[i]]) {
				return fmt.Errorf("member %d got assignment %x, the leader sent %x", i, sr.MemberAssignment, assign[ids[i]])
			}
		}
		return nil
	})
	res.syncTook = time.Since(syncStart)
	return res
}

// runConns runs f for every connection index concurrently and fails the
// test with the first error.
func runConns(t testing.TB, conns int, f func(c int) error) {
	t.Helper()
	errs := make([]error, conns)
	var wg sync.WaitGroup
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = f(c)
		}()
	}
	wg.Wait()
	for c, err := range errs {
		if err != nil {
			t.Fatalf("connection %d: %v", c, err)
		}
	}
}

// TestGroupSilentMembers: a member that joined and then never heartbeats,
// and a member that asked for a member ID and never came back, are expired
// after their session timeouts; a live member joining meanwhile gets every
// partition and consumes, and the silent member is fenced afterwards.
func TestGroupSilentMembers(t *testing.T) {
	b := startGroupBroker(t)
	topic := createTopic(t, b, 3)
	group := groupName(t)
	const silentSession = time.Second

	r := dialRaw(t, b)
	join := joinClassic(r, group, topic, silentSession)
	silent, gen := join.MemberID, join.Generation
	sync := r.roundTrip(syncRequest(group, silent, gen, map[string][]byte{silent: consumerAssignment(topic, 0, 1, 2)})).(*kmsg.SyncGroupResponse)
	wantCode(t, "SyncGroup", sync.ErrorCode, errNone)
	// Another would-be member stops after MEMBER_ID_REQUIRED.
	pending := r.roundTrip(joinRequest(group, topic, "", silentSession, silentSession)).(*kmsg.JoinGroupResponse)
	wantCode(t, "JoinGroup without member ID", pending.ErrorCode, kerr.MemberIDRequired)

	led := newLedger()
	prod := newStreamProducer(t, b, topic, 3)
	if err := prod.produce(testCtx(t, 10*time.Second), 10); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	live := startKgoMember(t, b, group, topic, "live", led, kgoMemberOpts{})
	waitFor(t, 20*time.Second, "the live member to own every partition", func() bool { return len(live.Owned()) == 3 })
	t.Logf("live member owns every partition %v after joining (silent members' session %v)", time.Since(start).Round(time.Millisecond), silentSession)
	produced := maps32(prod.produced)
	led.waitCovered(t, produced, 20*time.Second)
	led.check(t, produced, nil)

	hb := r.roundTrip(heartbeatRequest(group, silent, gen)).(*kmsg.HeartbeatResponse)
	wantCode(t, "heartbeat of the expired member", hb.ErrorCode, kerr.UnknownMemberID)
	wantCode(t, "commit of the expired member", commitCode(r, commitRequest(8, group, silent, gen, topic, 0, 1)), kerr.UnknownMemberID)
	late := r.roundTrip(joinRequest(group, topic, pending.MemberID, silentSession, silentSession)).(*kmsg.JoinGroupResponse)
	// Kafka forgets an expired pending member ID: a join with it is from an
	// unknown member.
	wantCode(t, "join with an expired pending member ID", late.ErrorCode, kerr.UnknownMemberID)
}
