package broker

// Routing of group requests to the coordinator runners (groups.go).
// Single-group requests (JoinGroup 11, Heartbeat 12, LeaveGroup 13,
// SyncGroup 14, OffsetCommit 8, OffsetFetch 9 before v8, OffsetDelete 47,
// ConsumerGroupHeartbeat 68) go to the runner of their group. Requests that
// name several groups (OffsetFetch v8+, DescribeGroups 15, DeleteGroups 42,
// ConsumerGroupDescribe 69) are split by runner and the answers merged;
// ListGroups 16 asks every runner. A runner that is loading, or that stops
// while holding a request, answers with COORDINATOR_LOAD_IN_PROGRESS or by
// closing the connection, respectively, so that clients look again.

import (
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/group"
)

// groupOf names the group of a single-group request.
func groupOf(req kmsg.Request) (string, bool) {
	switch r := req.(type) {
	case *kmsg.JoinGroupRequest:
		return r.Group, true
	case *kmsg.HeartbeatRequest:
		return r.Group, true
	case *kmsg.LeaveGroupRequest:
		return r.Group, true
	case *kmsg.SyncGroupRequest:
		return r.Group, true
	case *kmsg.OffsetCommitRequest:
		return r.Group, true
	case *kmsg.OffsetFetchRequest:
		if r.Version < 8 {
			return r.Group, true
		}
	case *kmsg.OffsetDeleteRequest:
		return r.Group, true
	case *kmsg.ConsumerGroupHeartbeatRequest:
		return r.Group, true
	}
	return "", false
}

// handleGroup routes a group request; it reports false for other requests.
func (b *Broker) handleGroup(req kmsg.Request, who requester, p *pending) bool {
	if !isGroupRequest(req) {
		return false
	}
	// The coordinator keeps parts of requests (a member's protocol
	// metadata) after dispatch returns, but decoded bytes alias the pooled
	// frame buffer, which the next request overwrites: give it a copy.
	req = cloneRequest(req)
	if g, ok := groupOf(req); ok {
		b.routeOne(g, req, who, p)
		return true
	}
	switch r := req.(type) {
	case *kmsg.OffsetFetchRequest:
		b.fanOut(req, who, p, splitOffsetFetch(b, r), mergeOffsetFetch)
	case *kmsg.DescribeGroupsRequest:
		b.fanOut(req, who, p, splitByGroup(b, r.Groups, func(gs []string) kmsg.Request {
			c := *r
			c.Groups = gs
			return &c
		}), mergeDescribeGroups)
	case *kmsg.DeleteGroupsRequest:
		b.fanOut(req, who, p, splitByGroup(b, r.Groups, func(gs []string) kmsg.Request {
			c := *r
			c.Groups = gs
			return &c
		}), mergeDeleteGroups)
	case *kmsg.ConsumerGroupDescribeRequest:
		b.fanOut(req, who, p, splitByGroup(b, r.Groups, func(gs []string) kmsg.Request {
			c := *r
			c.Groups = gs
			return &c
		}), mergeConsumerGroupDescribe)
	case *kmsg.ListGroupsRequest:
		b.groups.mu.Lock()
		subs := make(map[*coordRunner]kmsg.Request, len(b.groups.runners))
		for _, rn := range b.groups.runners {
			subs[rn] = r
		}
		b.groups.mu.Unlock()
		b.fanOut(req, who, p, subs, mergeListGroups)
	default:
		return false
	}
	return true
}

func isGroupRequest(req kmsg.Request) bool {
	switch req.(type) {
	case *kmsg.JoinGroupRequest, *kmsg.HeartbeatRequest, *kmsg.LeaveGroupRequest, *kmsg.SyncGroupRequest,
		*kmsg.OffsetCommitRequest, *kmsg.OffsetFetchRequest, *kmsg.OffsetDeleteRequest,
		*kmsg.ConsumerGroupHeartbeatRequest, *kmsg.DescribeGroupsRequest, *kmsg.DeleteGroupsRequest,
		*kmsg.ConsumerGroupDescribeRequest, *kmsg.ListGroupsRequest:
		return true
	}
	return false
}

// cloneRequest deep-copies a request by encoding and decoding it.
func cloneRequest(req kmsg.Request) kmsg.Request {
	c := kmsg.RequestForKey(req.Key())
	c.SetVersion(req.GetVersion())
	if err := c.ReadFrom(req.AppendTo(nil)); err != nil {
		return req // cannot happen for a request kmsg decoded itself
	}
	return c
}

// routeOne sends a single-group request to its runner.
func (b *Broker) routeOne(g string, req kmsg.Request, who requester, p *pending) {
	rn := b.coordinatorFor(g)
	if rn == nil {
		p.finish(groupError(req, kerr.NotCoordinator.Code))
		return
	}
	p.ready = make(chan struct{})
	code, ok := rn.submit(req, who, func(resp kmsg.Response) {
		if resp == nil {
			p.out.closeConn = true
		} else {
			p.finish(resp)
		}
		close(p.ready)
	})
	if !ok {
		p.finish(groupError(req, code))
		close(p.ready)
	}
}

// fanOut sends sub-requests to runners and merges their answers. A runner
// that cannot take its part contributes an error answer for it.
func (b *Broker) fanOut(req kmsg.Request, who requester, p *pending, subs map[*coordRunner]kmsg.Request, merge func(kmsg.Request, []kmsg.Response) kmsg.Response) {
	if len(subs) == 0 {
		p.finish(merge(req, nil))
		return
	}
	p.ready = make(chan struct{})
	var mu sync.Mutex
	resps := make([]kmsg.Response, 0, len(subs))
	left := len(subs)
	closeConn := false
	done := func(resp kmsg.Response) {
		mu.Lock()
		defer mu.Unlock()
		if resp == nil {
			closeConn = true
		} else {
			resps = append(resps, resp)
		}
		if left--; left == 0 {
			if closeConn {
				p.out.closeConn = true
			} else {
				p.finish(merge(req, resps))
			}
			close(p.ready)
		}
	}
	for rn, sub := range subs {
		if rn == nil {
			done(groupError(sub, kerr.NotCoordinator.Code))
			continue
		}
		sub := sub
		if code, ok := rn.submit(sub, who, done); !ok {
			done(groupError(sub, code))
		}
	}
}

// splitByGroup groups names by runner (nil runner: no coordinator here).
func splitByGroup(b *Broker, groups []string, mk func([]string) kmsg.Request) map[*coordRunner]kmsg.Request {
	by := make(map[*coordRunner][]string)
	for _, g := range groups {
		rn := b.coordinatorFor(g)
		by[rn] = append(by[rn], g)
	}
	subs := make(map[*coordRunner]kmsg.Request, len(by))
	for rn, gs := range by {
		subs[rn] = mk(gs)
	}
	return subs
}

func splitOffsetFetch(b *Broker, r *kmsg.OffsetFetchRequest) map[*coordRunner]kmsg.Request {
	by := make(map[*coordRunner][]kmsg.OffsetFetchRequestGroup)
	for _, g := range r.Groups {
		rn := b.coordinatorFor(g.Group)
		by[rn] = append(by[rn], g)
	}
	subs := make(map[*coordRunner]kmsg.Request, len(by))
	for rn, gs := range by {
		c := *r
		c.Groups = gs
		subs[rn] = &c
	}
	return subs
}

func mergeOffsetFetch(req kmsg.Request, parts []kmsg.Response) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	for _, pr := range parts {
		resp.Groups = append(resp.Groups, pr.(*kmsg.OffsetFetchResponse).Groups...)
	}
	return resp
}

func mergeDescribeGroups(req kmsg.Request, parts []kmsg.Response) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	for _, pr := range parts {
		resp.Groups = append(resp.Groups, pr.(*kmsg.DescribeGroupsResponse).Groups...)
	}
	return resp
}

func mergeDeleteGroups(req kmsg.Request, parts []kmsg.Response) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	for _, pr := range parts {
		resp.Groups = append(resp.Groups, pr.(*kmsg.DeleteGroupsResponse).Groups...)
	}
	return resp
}

func mergeConsumerGroupDescribe(req kmsg.Request, parts []kmsg.Response) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ConsumerGroupDescribeResponse)
	for _, pr := range parts {
		resp.Groups = append(resp.Groups, pr.(*kmsg.ConsumerGroupDescribeResponse).Groups...)
	}
	return resp
}

func mergeListGroups(req kmsg.Request, parts []kmsg.Response) kmsg.Response {
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	for _, pr := range parts {
		lr := pr.(*kmsg.ListGroupsResponse)
		if lr.ErrorCode != 0 && resp.ErrorCode == 0 {
			resp.ErrorCode = lr.ErrorCode
		}
		resp.Groups = append(resp.Groups, lr.Groups...)
	}
	sort.Slice(resp.Groups, func(i, j int) bool { return resp.Groups[i].Group < resp.Groups[j].Group })
	return resp
}

// groupError answers a group request with code (group.ErrorResponse).
func groupError(req kmsg.Request, code int16) kmsg.Response {
	if resp := group.ErrorResponse(req, code); resp != nil {
		return resp
	}
	return req.ResponseKind()
}
