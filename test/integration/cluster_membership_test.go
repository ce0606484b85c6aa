package integration

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestClusterMembership adds a broker to a running 3-voter cluster as a
// Raft non-voter, uses it, restarts it after kill -9, refuses a second
// process with its node ID, stops it and unregisters it, while the chaos
// workload (an idempotent acks=all producer and a consumer group on an
// RF=3 topic of the three voters) runs throughout; at the end every
// acknowledged record is read exactly once where it was acknowledged.
func TestClusterMembership(t *testing.T) {
	c := startChaos(t, 90*time.Second)
	voters := flagValue(t, c.bs[0].opts.Args, "--voters")
	nonVoter := func(raftAddr string) brokerOpts {
		return brokerOpts{Env: chaosEnv, Host: "127.0.0.4",
			Args: []string{"--node-id", "4", "--raft-addr", raftAddr, "--voters", voters}}
	}

	// Broker 4 joins as a non-voter and shows up like any broker.
	b4 := startBroker(t, nonVoter(freeAddrOn(t, "127.0.0.4")))
	c.waitBrokers("broker 4 listed", 1, 2, 3, 4)
	c.waitDescribeCluster(1, 2, 3, 4)
	if !strings.Contains(b4.proc.output.Tail(1<<20), "member of the metadata quorum as a non-voter") {
		t.Fatalf("broker 4 did not join as a non-voter:\n%s", b4.proc.output.Tail(8<<10))
	}
	c.waitProgress(100)

	// A topic placed on broker 4 by a manual assignment.
	const on4 = "on4"
	c.createAssigned(on4, []int32{4, 1, 2})
	c.produceAndRead(on4, "first", 30)

	// kill -9 and an immediate restart: the new process waits out the old
	// session (DUPLICATE_BROKER_REGISTRATION meanwhile) and comes back.
	b4.kill()
	b4.Restart()
	c.waitBrokers("broker 4 back after kill -9", 1, 2, 3, 4)
	c.produceAndRead(on4, "after-restart", 30)
	c.waitProgress(100)

	// A second process with node ID 4 (its own addresses and data) is
	// refused; broker 4 keeps its registration and goes on serving.
	dup := startBroker(t, brokerOpts{Env: chaosEnv, Host: "127.0.0.5", noWait: true,
		Args: []string{"--node-id", "4", "--raft-addr", freeAddrOn(t, "127.0.0.5"), "--voters", voters}})
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(dup.proc.output.Tail(1<<20), "DUPLICATE_BROKER_REGISTRATION") {
		if time.Now().After(deadline) || dup.exited() {
			t.Fatalf("second process with node ID 4 not refused:\n%s", dup.proc.output.Tail(8<<10))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, err := http.Get("http://" + dup.HTTPAddr + "/readyz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("the duplicate process reports ready")
		}
	}
	if md := c.metadataAll(); brokerAddr(md, 4) != b4.Addr {
		t.Fatalf("broker 4 is at %q in metadata, want %s", brokerAddr(md, 4), b4.Addr)
	}
	c.produceAndRead(on4, "beside-duplicate", 30)
	dup.kill()

	// SIGTERM, then UnregisterBroker: broker 4 leaves the metadata and the
	// Raft configuration; on4 keeps it as a replica (until reassigned).
	if code, _ := b4.Stop(syscall.SIGTERM, shutdownLimit); code != 0 {
		t.Fatalf("broker 4 exit code %d", code)
	}
	req := kmsg.NewPtrUnregisterBrokerRequest()
	req.BrokerID = 4
	resp, err := req.RequestWith(c.ctx, c.client())
	if err != nil || resp.ErrorCode != 0 {
		t.Fatalf("UnregisterBroker: %v %+v", err, resp)
	}
	c.waitBrokers("broker 4 gone", 1, 2, 3)
	c.waitDescribeCluster(1, 2, 3)
	removed := false
	for _, b := range c.bs {
		out := b.proc.output.Tail(4 << 20)
		removed = removed || strings.Contains(out, "removed from the Raft configuration") && strings.Contains(out, "broker=4")
	}
	if !removed {
		t.Error("no controller logged removing broker 4 from the Raft configuration")
	}
	resp, err = req.RequestWith(c.ctx, c.client())
	if err != nil || resp.ErrorCode != 102 { // BROKER_ID_NOT_REGISTERED
		t.Fatalf("UnregisterBroker again: %v %+v", err, resp)
	}
	md := c.metadataAll()
	if p := md.Topics[on4].Partitions[0]; !slices.Equal(p.Replicas, []int32{4, 1, 2}) || slices.Contains(p.ISR, 4) || p.Leader == 4 {
		t.Fatalf("on4-0 after unregistering broker 4: %+v", p)
	}
	c.produceAndRead(on4, "after-unregister", 30)
	c.heal()
}

// flagValue returns the value after name in args.
func flagValue(t *testing.T, args []string, name string) string {
	t.Helper()
	i := slices.Index(args, name)
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("no %s in %v", name, args)
	}
	return args[i+1]
}

func brokerAddr(md kadm.Metadata, id int32) string {
	for _, b := range md.Brokers {
		if b.NodeID == id {
			return fmt.Sprintf("%s:%d", b.Host, b.Port)
		}
	}
	return ""
}

// metadataAll polls until a Metadata request for all topics is answered.
func (c *chaos) metadataAll() kadm.Metadata {
	c.t.Helper()
	for {
		md, err := c.adm.Metadata(c.ctx)
		if err == nil {
			return md
		}
		if c.ctx.Err() != nil {
			c.t.Fatalf("metadata: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitBrokers waits until Metadata lists exactly the brokers ids.
func (c *chaos) waitBrokers(what string, ids ...int32) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := c.metadataAll().Brokers.NodeIDs()
		slices.Sort(got)
		if slices.Equal(got, ids) {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: Metadata lists brokers %v, want %v", what, got, ids)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitDescribeCluster waits until DescribeCluster, asked of every voter
// (each answers from its own image), lists exactly the brokers ids.
func (c *chaos) waitDescribeCluster(ids ...int32) {
	c.t.Helper()
	cl := c.client()
	deadline := time.Now().Add(30 * time.Second)
	for _, b := range c.bs {
		for {
			var got []int32
			resp, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(c.ctx, cl.Broker(int(nodeID(c, b))))
			if err == nil && resp.ErrorCode == 0 {
				for _, rb := range resp.Brokers {
					got = append(got, rb.NodeID)
				}
				slices.Sort(got)
				if slices.Equal(got, ids) {
					break
				}
			}
			if time.Now().After(deadline) {
				c.t.Fatalf("DescribeCluster of %s lists %v (%v), want %v", b.Addr, got, err, ids)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// nodeID is b's --node-id.
func nodeID(c *chaos, b *broker) int32 {
	var id int32
	fmt.Sscan(flagValue(c.t, b.opts.Args, "--node-id"), &id)
	return id
}

// createAssigned creates a one-partition topic on the given replicas.
func (c *chaos) createAssigned(topic string, replicas []int32) {
	c.t.Helper()
	req := kmsg.NewPtrCreateTopicsRequest()
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = topic, -1, -1
	ra := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
	ra.Partition, ra.Replicas = 0, replicas
	rt.ReplicaAssignment = append(rt.ReplicaAssignment, ra)
	req.Topics = append(req.Topics, rt)
	req.TimeoutMillis = 10000
	resp, err := req.RequestWith(c.ctx, c.client())
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 {
		c.t.Fatalf("create %s on %v: %v %+v", topic, replicas, err, resp)
	}
}

// produceAndRead writes n records tagged tag to topic with acks=all and
// reads them back from the start: each exactly once.
func (c *chaos) produceAndRead(topic, tag string, n int) {
	c.t.Helper()
	prod := c.client(kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.RecordRetries(1<<30))
	for i := range n {
		if err := prod.ProduceSync(c.ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%s-%d", tag, i))}).FirstErr(); err != nil {
			c.t.Fatalf("produce to %s: %v", topic, err)
		}
	}
	prod.Close()
	cons := c.client(kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().AtStart()}}))
	defer cons.Close()
	seen := map[string]int{}
	for len(seen) < n {
		if c.ctx.Err() != nil {
			c.t.Fatalf("read %s: %d of %d %q records", topic, len(seen), n, tag)
		}
		cons.PollFetches(c.ctx).EachRecord(func(r *kgo.Record) {
			if v := string(r.Value); strings.HasPrefix(v, tag+"-") {
				seen[v]++
			}
		})
	}
	for v, k := range seen {
		if k != 1 {
			c.t.Errorf("%s: %s read %d times", topic, v, k)
		}
	}
}
