package broker

// Routing of the group APIs to the group coordinators, which run on the
// coordinator runtime (groups.go). The apis table names each API's route:
// a request naming one group (JoinGroup 11, Heartbeat 12, LeaveGroup 13,
// SyncGroup 14, OffsetCommit 8, OffsetFetch 9 before v8, OffsetDelete 47,
// ConsumerGroupHeartbeat 68) goes to the coordinator of its group; one
// naming several (OffsetFetch v8+, DescribeGroups 15, DeleteGroups 42,
// ConsumerGroupDescribe 69) is split by coordinator and the answers merged;
// ListGroups 16 asks every coordinator here. A coordinator that is loading
// answers COORDINATOR_LOAD_IN_PROGRESS, one not here NOT_COORDINATOR, and
// one that stops while holding a request closes its connection, so that
// clients look again.

import (
	"errors"
	"sort"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/coordinator"
	"github.com/streambus/streambus/internal/group"
)

// groupRoute sends a (copied) group request to the coordinators.
type groupRoute func(b *Broker, rc *reqContext, req kmsg.Request) result

// toGroup is the handler of a group API. The coordinator keeps parts of
// requests (a member's protocol metadata) after dispatch returns, but
// decoded bytes alias the pooled frame buffer, which the next request
// overwrites: it gets a copy.
func toGroup(route groupRoute) handler {
	return func(b *Broker, rc *reqContext, req kmsg.Request) result {
		return route(b, rc, cloneRequest(req))
	}
}

// oneGroup routes requests that name one group.
func oneGroup[Req kmsg.Request](groupOf func(Req) string) groupRoute {
	return func(b *Broker, rc *reqContext, req kmsg.Request) result {
		return b.routeOne(groupOf(req.(Req)), req, rc)
	}
}

// byGroup routes requests that name several groups: groups lists them,
// sub makes the request for those at the given indexes, merge adds one
// coordinator's answer to the whole.
func byGroup[Req kmsg.Request, Resp kmsg.Response](groups func(Req) []string, sub func(r Req, idx []int) Req, merge func(into, part Resp)) groupRoute {
	return func(b *Broker, rc *reqContext, req kmsg.Request) result {
		r := req.(Req)
		byShard := make(map[int32][]int)
		for i, g := range groups(r) {
			s := b.groupShard(g)
			byShard[s] = append(byShard[s], i)
		}
		subs := make(map[int32]kmsg.Request, len(byShard))
		for s, idx := range byShard {
			subs[s] = sub(r, idx)
		}
		return b.fanOut(req, rc, subs, func(req kmsg.Request, parts []kmsg.Response) kmsg.Response {
			resp := req.ResponseKind().(Resp)
			for _, p := range parts {
				merge(resp, p.(Resp))
			}
			return resp
		})
	}
}

// pick is the elements of s at idx.
func pick[T any](s []T, idx []int) []T {
	out := make([]T, len(idx))
	for i, j := range idx {
		out[i] = s[j]
	}
	return out
}

var (
	describeGroupsRoute = byGroup(
		func(r *kmsg.DescribeGroupsRequest) []string { return r.Groups },
		func(r *kmsg.DescribeGroupsRequest, idx []int) *kmsg.DescribeGroupsRequest {
			c := *r
			c.Groups = pick(r.Groups, idx)
			return &c
		},
		func(into, part *kmsg.DescribeGroupsResponse) { into.Groups = append(into.Groups, part.Groups...) })

	deleteGroupsRoute = byGroup(
		func(r *kmsg.DeleteGroupsRequest) []string { return r.Groups },
		func(r *kmsg.DeleteGroupsRequest, idx []int) *kmsg.DeleteGroupsRequest {
			c := *r
			c.Groups = pick(r.Groups, idx)
			return &c
		},
		func(into, part *kmsg.DeleteGroupsResponse) { into.Groups = append(into.Groups, part.Groups...) })

	consumerGroupDescribeRoute = byGroup(
		func(r *kmsg.ConsumerGroupDescribeRequest) []string { return r.Groups },
		func(r *kmsg.ConsumerGroupDescribeRequest, idx []int) *kmsg.ConsumerGroupDescribeRequest {
			c := *r
			c.Groups = pick(r.Groups, idx)
			return &c
		},
		func(into, part *kmsg.ConsumerGroupDescribeResponse) {
			into.Groups = append(into.Groups, part.Groups...)
		})

	offsetFetchGroupsRoute = byGroup(
		func(r *kmsg.OffsetFetchRequest) []string {
			gs := make([]string, len(r.Groups))
			for i, g := range r.Groups {
				gs[i] = g.Group
			}
			return gs
		},
		func(r *kmsg.OffsetFetchRequest, idx []int) *kmsg.OffsetFetchRequest {
			c := *r
			c.Groups = pick(r.Groups, idx)
			return &c
		},
		func(into, part *kmsg.OffsetFetchResponse) { into.Groups = append(into.Groups, part.Groups...) })
)

// offsetFetchRoute: OffsetFetch names one group before v8, several from v8.
func offsetFetchRoute(b *Broker, rc *reqContext, req kmsg.Request) result {
	if r := req.(*kmsg.OffsetFetchRequest); r.Version < 8 {
		return b.routeOne(r.Group, req, rc)
	}
	return offsetFetchGroupsRoute(b, rc, req)
}

// listGroupsRoute asks every coordinator here and merges the lists, sorted.
func listGroupsRoute(b *Broker, rc *reqContext, req kmsg.Request) result {
	subs := make(map[int32]kmsg.Request)
	for _, s := range b.groups.Shards() {
		subs[s] = req
	}
	return b.fanOut(req, rc, subs, func(req kmsg.Request, parts []kmsg.Response) kmsg.Response {
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
	})
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

// submitCode is the error code answered when the coordinator runtime
// refuses a request.
func submitCode(err error) int16 {
	if errors.Is(err, coordinator.ErrLoading) {
		return kerr.CoordinatorLoadInProgress.Code
	}
	return kerr.NotCoordinator.Code
}

// routeOne sends a single-group request to its coordinator.
func (b *Broker) routeOne(g string, req kmsg.Request, rc *reqContext) result {
	d := newDeferred()
	err := b.groups.Submit(b.groupShard(g), groupRequest{req, requester{rc.clientID, rc.host}}, func(resp kmsg.Response, ok bool) {
		if ok {
			d.answer(resp)
		} else {
			d.fail()
		}
	})
	if err != nil {
		return answer(group.ErrorResponse(req, submitCode(err)))
	}
	return d.result()
}

// fanOut sends sub-requests to coordinators (by __consumer_offsets
// partition) and merges their answers. A coordinator that cannot take its
// part contributes an error answer for it; one that fails closes the
// connection.
func (b *Broker) fanOut(req kmsg.Request, rc *reqContext, subs map[int32]kmsg.Request, merge func(kmsg.Request, []kmsg.Response) kmsg.Response) result {
	if len(subs) == 0 {
		return answer(merge(req, nil))
	}
	d := newDeferred()
	var mu sync.Mutex
	resps := make([]kmsg.Response, 0, len(subs))
	left := len(subs)
	failed := false
	done := func(resp kmsg.Response, ok bool) {
		mu.Lock()
		defer mu.Unlock()
		if !ok {
			failed = true
		} else {
			resps = append(resps, resp)
		}
		if left--; left == 0 {
			if failed {
				d.fail()
			} else {
				d.answer(merge(req, resps))
			}
		}
	}
	who := requester{rc.clientID, rc.host}
	for shard, sub := range subs {
		if err := b.groups.Submit(shard, groupRequest{sub, who}, done); err != nil {
			done(group.ErrorResponse(sub, submitCode(err)), true)
		}
	}
	return d.result()
}
