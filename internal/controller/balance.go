package controller

// Automatic leader balancing, as Kafka's auto.leader.rebalance.enable:
// fencing and controlled shutdowns move leadership away from a broker and
// nothing moves it back, so a restarted broker would lead nothing. Every
// LeaderImbalanceCheckInterval the controller computes, per broker, the
// share of the partitions whose preferred (first) replica it is that it
// does not lead; above LeaderImbalancePerBrokerPercentage it runs a
// preferred election for those of them whose preferred replica is
// unfenced and in the ISR. Partitions being reassigned count in the share
// but are left alone, as in Kafka: their replica list is about to change.

import (
	"context"
	"maps"
	"slices"

	"github.com/hashicorp/raft"
)

// balanceLoop balances leaders every LeaderImbalanceCheckInterval while
// this node leads, until the Store closes. It returns at once when
// balancing is disabled.
func (s *Store) balanceLoop() {
	if s.cfg.DisableLeaderRebalance {
		return
	}
	s.every(s.cfg.LeaderImbalanceCheckInterval, "balance partition leaders", s.balanceLeaders)
}

// balanceLeaders runs one balancing pass if this node leads: a preferred
// election of the partitions imbalancedPartitions picks. The election is
// computed again on the controller's current state, so a partition that
// changed meanwhile is skipped.
func (s *Store) balanceLeaders(ctx context.Context) error {
	if s.raft.State() != raft.Leader {
		return nil
	}
	tps := imbalancedPartitions(s.fsm.current(), s.cfg.LeaderImbalancePerBrokerPercentage)
	if len(tps) == 0 {
		return nil
	}
	s.log.Info("moving partition leaders back to their preferred replicas", "partitions", len(tps))
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	_, err := s.execLocal(ctx, &request{Op: opElectPreferred, Elect: tps})
	return err
}

// imbalancedPartitions returns, sorted, the partitions to hand back to
// their preferred replica: for every broker for which more than pct
// percent of the partitions it is the preferred replica of are led by
// others, those of them not being reassigned whose preferred replica may
// lead now (checkPreferred).
func imbalancedPartitions(st *state, pct int32) []TopicPartition {
	preferred := map[int32]int64{}
	notLed := map[int32][]TopicPartition{}
	for _, name := range slices.Sorted(maps.Keys(st.Topics)) {
		for _, p := range st.Topics[name].Partitions {
			if len(p.Replicas) == 0 {
				continue
			}
			pref := p.Replicas[0]
			preferred[pref]++
			if p.Leader != pref {
				notLed[pref] = append(notLed[pref], TopicPartition{Topic: name, Partition: p.Index})
			}
		}
	}
	var out []TopicPartition
	for _, b := range slices.Sorted(maps.Keys(notLed)) {
		if int64(len(notLed[b]))*100 <= int64(pct)*preferred[b] {
			continue
		}
		for _, tp := range notLed[b] {
			if _, moving := st.Reassigning[tp]; !moving && checkPreferred(st, tp) == nil {
				out = append(out, tp)
			}
		}
	}
	slices.SortFunc(out, compareTP)
	return out
}
