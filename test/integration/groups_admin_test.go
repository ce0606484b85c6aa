package integration

import (
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// TestGroupAdmin: what kadm (DescribeGroups, ListGroups, DeleteGroups,
// OffsetDelete, ConsumerGroupDescribe) sees of live and emptied groups,
// classic and KIP-848.
func TestGroupAdmin(t *testing.T) {
	b := startGroupBroker(t)
	const parts = 4
	topic := createTopic(t, b, parts)
	group := groupName(t)
	adm := kadm.NewClient(newKgo(t, b))
	ctx := testCtx(t, 60*time.Second)

	led := newLedger()
	prod := newStreamProducer(t, b, topic, parts)
	if err := prod.produce(ctx, 20); err != nil {
		t.Fatal(err)
	}
	produced := maps32(prod.produced)
	m1 := startKgoMember(t, b, group, topic, "m1", led, kgoMemberOpts{})
	m2 := startKgoMember(t, b, group, topic, "m2", led, kgoMemberOpts{})
	waitAssignment(t, 30*time.Second, parts, m1, m2)
	led.waitCovered(t, produced, 20*time.Second)

	described, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe groups: %v", err)
	}
	d := described[group]
	if d.Err != nil || d.State != "Stable" || d.ProtocolType != "consumer" || d.Protocol != "range" || len(d.Members) != 2 {
		t.Errorf("DescribeGroups: err %v, state %q, protocol type %q, protocol %q, %d members; want Stable consumer/range with 2",
			d.Err, d.State, d.ProtocolType, d.Protocol, len(d.Members))
	}
	if got := d.AssignedPartitions()[topic]; len(got) != parts {
		t.Errorf("DescribeGroups: %d partitions of %s assigned, want %d", len(got), topic, parts)
	}
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("list groups: %v", err)
	}
	if l, ok := listed[group]; !ok || l.State != "Stable" || l.GroupType != "classic" || l.ProtocolType != "consumer" {
		t.Errorf("ListGroups entry %+v (listed %v), want Stable classic consumer", l, ok)
	}

	// A group with members can be neither deleted nor stripped of the
	// offsets of a topic it consumes.
	dg, err := adm.DeleteGroups(ctx, group)
	if err != nil {
		t.Fatalf("delete groups: %v", err)
	}
	if !errors.Is(dg[group].Err, kerr.NonEmptyGroup) {
		t.Errorf("DeleteGroups of a group with members: %v, want NON_EMPTY_GROUP", dg[group].Err)
	}
	do, err := adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}}})
	if err != nil {
		t.Fatalf("delete offsets: %v", err)
	}
	if !errors.Is(do[topic][0], kerr.GroupSubscribedToTopic) {
		t.Errorf("OffsetDelete on a consumed topic: %v, want GROUP_SUBSCRIBED_TO_TOPIC", do[topic][0])
	}

	m1.Stop()
	m2.Stop()
	checkCommittedAtEnd(t, b, group, topic, produced)
	described, err = adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("describe groups: %v", err)
	}
	if d := described[group]; d.State != "Empty" || len(d.Members) != 0 {
		t.Errorf("after both members left: state %q with %d members, want Empty", d.State, len(d.Members))
	}
	do, err = adm.DeleteOffsets(ctx, group, kadm.TopicsSet{topic: {0: {}}})
	if err != nil || do[topic][0] != nil {
		t.Fatalf("OffsetDelete on an empty group: %v / %v", err, do[topic][0])
	}
	got := committed(t, b, group, topic)
	if off, ok := got[0]; ok && off >= 0 {
		t.Errorf("partition 0 still has committed offset %d after OffsetDelete", off)
	}
	if got[1] != produced[1] {
		t.Errorf("partition 1 committed offset %d after deleting partition 0's, want %d", got[1], produced[1])
	}
	dg, err = adm.DeleteGroups(ctx, group)
	if err != nil || dg[group].Err != nil {
		t.Fatalf("DeleteGroups of an empty group: %v / %v", err, dg[group].Err)
	}
	fetched, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets of a deleted group: %v", err)
	}
	for p, r := range fetched[topic] {
		if r.Err == nil && r.At >= 0 {
			t.Errorf("deleted group still has offset %d for partition %d", r.At, p)
		}
	}

	t.Run("kip848", func(t *testing.T) {
		group := groupName(t)
		led := newLedger()
		m := startKgoMember(t, b, group, topic, "c1", led, kgoMemberOpts{serverSide: true})
		waitAssignment(t, 30*time.Second, parts, m)
		dcg, err := adm.DescribeConsumerGroups(ctx, group)
		if err != nil {
			t.Fatalf("describe consumer groups: %v", err)
		}
		g := dcg[group]
		if g.Err != nil || g.State != "Stable" || g.AssignorName != "range" || len(g.Members) != 1 || g.Epoch < 1 {
			t.Fatalf("ConsumerGroupDescribe: err %v, state %q, assignor %q, %d members, epoch %d; want Stable range, 1 member",
				g.Err, g.State, g.AssignorName, len(g.Members), g.Epoch)
		}
		if mm := g.Members[0]; len(mm.Assignment[topic]) != parts || mm.ClientID != "c1" || mm.MemberEpoch != g.Epoch {
			t.Errorf("member %+v: want all %d partitions, client c1, epoch %d", mm, parts, g.Epoch)
		}
		m.Stop()
		dg, err := adm.DeleteGroups(ctx, group)
		if err != nil || dg[group].Err != nil {
			t.Errorf("DeleteGroups of an emptied KIP-848 group: %v / %v", err, dg[group].Err)
		}
	})
}
