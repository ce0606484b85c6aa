package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestClusterAutoLeaderBalance: with auto.leader.rebalance.enable (the
// default) a broker that comes back after a kill -9 gets the leadership of
// the partitions it is the preferred replica of back by itself, while a
// producer keeps writing, and nothing acknowledged is lost.
func TestClusterAutoLeaderBalance(t *testing.T) {
	env := append(slices.Clone(chaosEnv), "STREAMBUS_LEADER_IMBALANCE_CHECK_INTERVAL_SECONDS=1")
	bs := startCluster(t, 3, env...)
	ctx := testCtx(t, 60*time.Second)
	const topic = "balance"
	cl := newReassignClient(t, bs, kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RecordRetries(1<<30), kgo.ProducerLinger(5*time.Millisecond))
	adm := kadm.NewClient(cl)
	createRotationTopic(ctx, t, cl, adm, topic)
	w := startWorkload(ctx, t, cl, topic, int32(len(rotationFrom)))
	w.waitAcked(ctx, 100)

	bs[0].kill() // the preferred leader of partition 0 (replicas 1, 2)
	waitPartitions(ctx, t, adm, topic, func(p int32, pd kadm.PartitionDetail) bool {
		return p != 0 || pd.Leader == 2
	})
	w.waitAcked(ctx, 100)
	bs[0].Restart()
	if err := bs[0].waitReady(); err != nil {
		t.Fatal(err)
	}
	// No election is asked for: the controller's balancing pass (every
	// second here) moves partition 0 back once broker 1 is in its ISR.
	waitPartitions(ctx, t, adm, topic, func(p int32, pd kadm.PartitionDetail) bool {
		return pd.Leader == rotationFrom[p][0]
	})
	w.waitAcked(ctx, 100)
	w.finish(ctx, bs, adm)
}
