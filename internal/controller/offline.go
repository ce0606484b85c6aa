package controller

// Offline replicas: a broker whose log of a partition failed (a full disk,
// an I/O error) reports it in its heartbeats, as KRaft brokers report
// offline log directories. The controller records the list on the broker
// (brokerRecord.Offline) and treats those replicas as it treats a fenced
// broker, partition by partition: leadership moves to another eligible
// ISR member (leader epoch +1; -1 when there is none), the replica leaves
// the ISR unless it is the last member, and it may neither lead nor join
// the ISR until it is reported back online. Then a leaderless partition it
// is in the ISR of gets it as leader again, and a follower rejoins the ISR
// through AlterPartition once caught up, as usual.

import (
	"maps"
	"slices"
)

// ReportOffline sets the partitions whose replicas on this broker are
// offline; the next heartbeat (sent at once when the set changed) tells
// the controller.
func (s *Store) ReportOffline(partitions map[string][]int32) {
	var tps []TopicPartition
	for _, topic := range slices.Sorted(maps.Keys(partitions)) {
		ps := slices.Clone(partitions[topic])
		slices.Sort(ps)
		for _, p := range ps {
			tps = append(tps, TopicPartition{Topic: topic, Partition: p})
		}
	}
	s.offlineMu.Lock()
	changed := !slices.Equal(tps, s.offline)
	s.offline = tps
	s.offlineMu.Unlock()
	if changed {
		select {
		case s.servedCh <- struct{}{}:
		default:
		}
	}
}

// reportedOffline is what this broker's heartbeats report as offline.
func (s *Store) reportedOffline() []TopicPartition {
	s.offlineMu.Lock()
	defer s.offlineMu.Unlock()
	return slices.Clone(s.offline)
}

// offlineOn reports whether broker id's replica of topic/partition is
// offline.
func offlineOn(st *state, id int32, topic string, partition int32) bool {
	b, ok := st.Brokers[id]
	return ok && slices.Contains(b.Offline, TopicPartition{Topic: topic, Partition: partition})
}

// eligibleFor reports whether broker id may lead or join the ISR of
// topic/partition: registered, unfenced, and its replica not offline.
func eligibleFor(st *state, id int32, topic string, partition int32) bool {
	return eligible(st, id) && !offlineOn(st, id, topic, partition)
}

// setOffline applies a broker's offline report to next: newly offline
// replicas lose leadership and ISR membership; replicas back online may
// lead leaderless partitions again.
func setOffline(next *state, id int32, offline []TopicPartition) {
	b := next.Brokers[id]
	was := b.Offline
	b.Offline = slices.Clone(offline)
	next.Brokers[id] = b
	for _, tp := range offline {
		if slices.Contains(was, tp) {
			continue
		}
		t, p, _, ok := partitionOf(next, tp.Topic, tp.Partition)
		if !ok {
			continue
		}
		changed := false
		if len(p.ISR) > 1 && slices.Contains(p.ISR, id) {
			p.ISR = slices.DeleteFunc(slices.Clone(p.ISR), func(r int32) bool { return r == id })
			changed = true
		}
		if p.Leader == id {
			p.Leader = electLeader(next, t.Name, p, id)
			p.LeaderEpoch++
			changed = true
		}
		if changed {
			setPartition(next, t, p)
		}
	}
	if len(was) > 0 {
		electLeaderless(next)
	}
}
