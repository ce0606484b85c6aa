package group

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// FuzzLoad feeds arbitrary records to Load: each must either fail or leave
// a coordinator that serves requests without panicking.
func FuzzLoad(f *testing.F) {
	e := &offsetEntry{offset: 5, leaderEpoch: 2, metadata: "m", commitTime: scriptEpoch}
	k, v := offsetRecord("g", "t", 0, e)
	f.Add(k, v)
	f.Add(k, []byte(nil))
	gv := kmsg.NewGroupMetadataValue()
	gv.Version = 3
	gv.ProtocolType, gv.Generation, gv.Protocol, gv.Leader = "consumer", 3, strp("range"), strp("m1")
	gm := kmsg.NewGroupMetadataValueMember()
	gm.MemberID, gm.InstanceID, gm.SessionTimeoutMillis, gm.Subscription, gm.Assignment = "m1", strp("i1"), 10000, []byte{0, 0, 0, 0, 0, 0}, []byte("a")
	gv.Members = []kmsg.GroupMetadataValueMember{gm}
	gk := kmsg.GroupMetadataKey{Version: 2, Group: "g"}
	f.Add(gk.AppendTo(nil), gv.AppendTo(nil))
	f.Add(consumerGroupKey("c"), consumerGroupValue(7))
	f.Add([]byte{0, 9, 0, 1, 'x'}, []byte{0, 0})
	f.Fuzz(func(t *testing.T, key, value []byte) {
		c := New(Config{})
		_ = c.Load(key, value)
		// A second record for the same key, as a tombstone, must also be safe.
		_ = c.Load(key, nil)
		_ = c.Load(key, value)
		c.Loaded(scriptEpoch)
		now := scriptEpoch.Add(time.Second)
		for _, id := range c.Groups() {
			fetch := kmsg.NewPtrOffsetFetchRequest()
			fetch.SetVersion(8)
			fetch.Groups = []kmsg.OffsetFetchRequestGroup{{Group: id}}
			c.Step(Input{Now: now, Req: fetch})
			desc := kmsg.NewPtrDescribeGroupsRequest()
			desc.Groups = []string{id}
			c.Step(Input{Now: now, Req: desc})
			join := kmsg.NewPtrJoinGroupRequest()
			join.SetVersion(5)
			join.Group, join.SessionTimeoutMillis, join.ProtocolType = id, 10000, "consumer"
			join.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range"}}
			c.Step(Input{Now: now, Req: join})
		}
		c.Tick(now.Add(365*24*time.Hour), nil)
	})
}
