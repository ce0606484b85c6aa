package group

import (
	"container/heap"
	"slices"
	"time"
)

// timerKind names what a timer does when it fires.
type timerKind uint8

const (
	timerSession         timerKind = iota // classic member missed its heartbeats
	timerJoin                             // join phase ends (rebalance timeout or initial delay)
	timerSync                             // members that did not SyncGroup in time are removed
	timerPending                          // KIP-394 member ID was never used to rejoin
	timerExpire                           // offsets retention and empty-group expiry
	timerConsumerSession                  // KIP-848 member missed its heartbeats
	timerConsumerRevoke                   // KIP-848 member did not revoke within its rebalance timeout
)

type timerKey struct {
	kind   timerKind
	group  string
	member string
}

type timer struct {
	key timerKey
	at  time.Time
	idx int
}

// timerHeap is a min-heap of deadlines addressable by key, so resetting a
// member's session on every heartbeat is O(log n) and never leaves garbage.
type timerHeap struct {
	h timerSlice
	m map[timerKey]*timer
}

func newTimerHeap() timerHeap { return timerHeap{m: make(map[timerKey]*timer)} }

func (t *timerHeap) set(k timerKey, at time.Time) {
	if tm, ok := t.m[k]; ok {
		tm.at = at
		heap.Fix(&t.h, tm.idx)
		return
	}
	tm := &timer{key: k, at: at}
	t.m[k] = tm
	heap.Push(&t.h, tm)
}

func (t *timerHeap) cancel(k timerKey) {
	if tm, ok := t.m[k]; ok {
		heap.Remove(&t.h, tm.idx)
		delete(t.m, k)
	}
}

func (t *timerHeap) has(k timerKey) (time.Time, bool) {
	tm, ok := t.m[k]
	if !ok {
		return time.Time{}, false
	}
	return tm.at, true
}

// popDue removes and returns the earliest timer due at now, if any.
func (t *timerHeap) popDue(now time.Time) (timerKey, bool) {
	if len(t.h) == 0 || t.h[0].at.After(now) {
		return timerKey{}, false
	}
	tm := heap.Pop(&t.h).(*timer)
	delete(t.m, tm.key)
	return tm.key, true
}

func (t *timerHeap) next() time.Time {
	if len(t.h) == 0 {
		return time.Time{}
	}
	return t.h[0].at
}

type timerSlice []*timer

func (s timerSlice) Len() int { return len(s) }

// Less breaks ties by key so that timers due together fire in a
// deterministic order.
func (s timerSlice) Less(i, j int) bool {
	if !s[i].at.Equal(s[j].at) {
		return s[i].at.Before(s[j].at)
	}
	a, b := s[i].key, s[j].key
	if a.group != b.group {
		return a.group < b.group
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	return a.member < b.member
}
func (s timerSlice) Swap(i, j int) { s[i], s[j] = s[j], s[i]; s[i].idx = i; s[j].idx = j }
func (s *timerSlice) Push(x any) {
	tm := x.(*timer)
	tm.idx = len(*s)
	*s = append(*s, tm)
}
func (s *timerSlice) Pop() any {
	old := *s
	tm := old[len(old)-1]
	old[len(old)-1] = nil
	*s = old[:len(old)-1]
	return tm
}

// fireTimers runs every timer due at c.now, including ones that handlers
// schedule for c.now while running.
func (c *Coordinator) fireTimers() {
	for {
		k, ok := c.timers.popDue(c.now)
		if !ok {
			return
		}
		g := c.groups[k.group]
		if g == nil {
			continue
		}
		switch k.kind {
		case timerSession:
			c.onSessionExpired(g, k.member)
		case timerJoin:
			c.onJoinDeadline(g)
		case timerSync:
			c.onSyncDeadline(g)
		case timerPending:
			if g.classic != nil {
				delete(g.classic.pending, k.member)
				c.maybeCompleteJoin(g)
			}
		case timerExpire:
			c.expireOffsets(g)
		case timerConsumerSession:
			c.onConsumerSessionExpired(g, k.member)
		case timerConsumerRevoke:
			c.onConsumerRevokeExpired(g, k.member)
		}
	}
}

func sortStrings(s []string) { slices.Sort(s) }
