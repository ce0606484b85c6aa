package broker

import (
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/wire"
)

// apiRanges is every API this broker serves and the versions it advertises.
// Every client named in the README negotiates within these ranges:
// librdkafka before 2.11.1 keeps compression only if Produce v0 is
// advertised (v0–2 are then answered with UNSUPPORTED_VERSION), kafka-go
// needs Produce 2/3/7, Fetch 5/10 and Metadata 1/6. Fetch starts at v4,
// the first version that returns magic-2 record batches as stored.
var apiRanges = map[int16]wire.VersionRange{
	kmsg.Produce.Int16():                 {Min: 0, Max: 11},
	kmsg.Fetch.Int16():                   {Min: 4, Max: 16},
	kmsg.ListOffsets.Int16():             {Min: 1, Max: 8},
	kmsg.Metadata.Int16():                {Min: 0, Max: 12},
	kmsg.ApiVersions.Int16():             {Min: 0, Max: 3},
	kmsg.CreateTopics.Int16():            {Min: 0, Max: 7},
	kmsg.DeleteTopics.Int16():            {Min: 0, Max: 6},
	kmsg.DeleteRecords.Int16():           {Min: 0, Max: 2},
	kmsg.InitProducerID.Int16():          {Min: 0, Max: 5},
	kmsg.OffsetForLeaderEpoch.Int16():    {Min: 0, Max: 4},
	kmsg.DescribeConfigs.Int16():         {Min: 0, Max: 4},
	kmsg.AlterConfigs.Int16():            {Min: 0, Max: 2},
	kmsg.DescribeLogDirs.Int16():         {Min: 0, Max: 4},
	kmsg.CreatePartitions.Int16():        {Min: 0, Max: 3},
	kmsg.IncrementalAlterConfigs.Int16(): {Min: 0, Max: 1},
	kmsg.DescribeCluster.Int16():         {Min: 0, Max: 1},
	kmsg.UnregisterBroker.Int16():        {Min: 0, Max: 0},

	kmsg.ElectLeaders.Int16():               {Min: 0, Max: 2},
	kmsg.AlterPartitionAssignments.Int16():  {Min: 0, Max: 0},
	kmsg.ListPartitionReassignments.Int16(): {Min: 0, Max: 0},

	kmsg.FindCoordinator.Int16():        {Min: 0, Max: 5},
	kmsg.JoinGroup.Int16():              {Min: 0, Max: 9},
	kmsg.Heartbeat.Int16():              {Min: 0, Max: 4},
	kmsg.LeaveGroup.Int16():             {Min: 0, Max: 5},
	kmsg.SyncGroup.Int16():              {Min: 0, Max: 5},
	kmsg.OffsetCommit.Int16():           {Min: 0, Max: 9},
	kmsg.OffsetFetch.Int16():            {Min: 0, Max: 9},
	kmsg.DescribeGroups.Int16():         {Min: 0, Max: 5},
	kmsg.ListGroups.Int16():             {Min: 0, Max: 5},
	kmsg.DeleteGroups.Int16():           {Min: 0, Max: 2},
	kmsg.OffsetDelete.Int16():           {Min: 0, Max: 0},
	kmsg.ConsumerGroupHeartbeat.Int16(): {Min: 0, Max: 1},
	kmsg.ConsumerGroupDescribe.Int16():  {Min: 0, Max: 1},
}

func supportedVersion(key int16) (wire.VersionRange, bool) {
	r, ok := apiRanges[key]
	return r, ok
}
