package broker

// Connection limits, as Kafka's acceptor applies them:
//
//   - max.connections: once that many connections are open, the broker
//     stops accepting (new connections wait in the listen backlog) until
//     one closes;
//   - max.connections.per.ip, with per-address exceptions in
//     max.connections.per.ip.overrides: a connection from an address at its
//     limit is accepted and closed at once (Kafka's
//     TooManyConnectionsException), so the client backs off and retries.

import (
	"sync"
)

// connLimits counts open connections, in total and by remote IP.
type connLimits struct {
	max       int            // max.connections; ≤ 0: no limit
	perIP     int            // max.connections.per.ip; ≤ 0: no limit
	overrides map[string]int // per-IP limits replacing perIP (0 refuses every connection)

	mu    sync.Mutex
	total int
	byIP  map[string]int
	freed chan struct{} // closed and replaced when a connection closes
}

func newConnLimits(max, perIP int, overrides map[string]int) *connLimits {
	return &connLimits{max: max, perIP: perIP, overrides: overrides, byIP: make(map[string]int), freed: make(chan struct{})}
}

// waitRoom blocks while max.connections are open; false once stop closes.
func (l *connLimits) waitRoom(stop <-chan struct{}) bool {
	for {
		l.mu.Lock()
		if l.max <= 0 || l.total < l.max {
			l.mu.Unlock()
			return true
		}
		freed := l.freed
		l.mu.Unlock()
		select {
		case <-freed:
		case <-stop:
			return false
		}
	}
}

// admit counts a new connection from ip, or refuses it when ip is at its
// limit.
func (l *connLimits) admit(ip string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	limit, ok := l.overrides[ip]
	if !ok {
		limit = l.perIP
	}
	if (ok || limit > 0) && l.byIP[ip] >= limit {
		return false
	}
	l.total++
	l.byIP[ip]++
	return true
}

// release uncounts a connection admitted from ip.
func (l *connLimits) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.byIP[ip]--; l.byIP[ip] <= 0 {
		delete(l.byIP, ip)
	}
	close(l.freed)
	l.freed = make(chan struct{})
}
