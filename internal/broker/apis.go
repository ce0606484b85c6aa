package broker

import (
	"context"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streambus/streambus/internal/wire"
)

// handler serves one API: it gets the request context and the decoded
// request (of the API's type) and returns its result (handler.go).
type handler func(b *Broker, rc *reqContext, req kmsg.Request) result

// api is one Kafka API this broker serves: the versions it advertises and
// its handler.
type api struct {
	versions wire.VersionRange
	handle   handler
}

// apis is every API this broker serves, the one table that ApiVersions,
// the decoder and dispatch read. Every client named in the README
// negotiates within these ranges: librdkafka before 2.11.1 keeps
// compression only if Produce v0 is advertised (v0–2 are then answered with
// UNSUPPORTED_VERSION), kafka-go needs Produce 2/3/7, Fetch 5/10 and
// Metadata 1/6. Fetch starts at v4, the first version that returns magic-2
// record batches as stored. The coordinator APIs are routed to the
// coordinator of their group (group_routing.go).
var apis map[int16]api

func init() {
	apis = map[int16]api{
		kmsg.Produce.Int16():                 {wire.VersionRange{Min: 0, Max: 11}, withContext((*Broker).handleProduce)},
		kmsg.Fetch.Int16():                   {wire.VersionRange{Min: 4, Max: 16}, withContext((*Broker).handleFetch)},
		kmsg.ListOffsets.Int16():             {wire.VersionRange{Min: 1, Max: 8}, now((*Broker).handleListOffsets)},
		kmsg.Metadata.Int16():                {wire.VersionRange{Min: 0, Max: 12}, admin((*Broker).handleMetadata)},
		kmsg.ApiVersions.Int16():             {wire.VersionRange{Min: 0, Max: 3}, now((*Broker).handleApiVersions)},
		kmsg.CreateTopics.Int16():            {wire.VersionRange{Min: 0, Max: 7}, admin((*Broker).handleCreateTopics)},
		kmsg.DeleteTopics.Int16():            {wire.VersionRange{Min: 0, Max: 6}, admin((*Broker).handleDeleteTopics)},
		kmsg.DeleteRecords.Int16():           {wire.VersionRange{Min: 0, Max: 2}, withContext((*Broker).handleDeleteRecords)},
		kmsg.InitProducerID.Int16():          {wire.VersionRange{Min: 0, Max: 5}, admin((*Broker).handleInitProducerID)},
		kmsg.OffsetForLeaderEpoch.Int16():    {wire.VersionRange{Min: 0, Max: 4}, now((*Broker).handleOffsetForLeaderEpoch)},
		kmsg.DescribeConfigs.Int16():         {wire.VersionRange{Min: 0, Max: 4}, now((*Broker).handleDescribeConfigs)},
		kmsg.AlterConfigs.Int16():            {wire.VersionRange{Min: 0, Max: 2}, admin((*Broker).handleAlterConfigs)},
		kmsg.DescribeLogDirs.Int16():         {wire.VersionRange{Min: 0, Max: 4}, now((*Broker).handleDescribeLogDirs)},
		kmsg.CreatePartitions.Int16():        {wire.VersionRange{Min: 0, Max: 3}, admin((*Broker).handleCreatePartitions)},
		kmsg.IncrementalAlterConfigs.Int16(): {wire.VersionRange{Min: 0, Max: 1}, admin((*Broker).handleIncrementalAlterConfigs)},
		kmsg.DescribeCluster.Int16():         {wire.VersionRange{Min: 0, Max: 1}, now((*Broker).handleDescribeCluster)},
		kmsg.UnregisterBroker.Int16():        {wire.VersionRange{Min: 0, Max: 0}, admin((*Broker).handleUnregisterBroker)},

		kmsg.ElectLeaders.Int16():               {wire.VersionRange{Min: 0, Max: 2}, admin((*Broker).handleElectLeaders)},
		kmsg.AlterPartitionAssignments.Int16():  {wire.VersionRange{Min: 0, Max: 0}, admin((*Broker).handleAlterPartitionReassignments)},
		kmsg.ListPartitionReassignments.Int16(): {wire.VersionRange{Min: 0, Max: 0}, now((*Broker).handleListPartitionReassignments)},

		kmsg.FindCoordinator.Int16():        {wire.VersionRange{Min: 0, Max: 5}, now((*Broker).handleFindCoordinator)},
		kmsg.JoinGroup.Int16():              {wire.VersionRange{Min: 0, Max: 9}, toGroup(oneGroup(func(r *kmsg.JoinGroupRequest) string { return r.Group }))},
		kmsg.Heartbeat.Int16():              {wire.VersionRange{Min: 0, Max: 4}, toGroup(oneGroup(func(r *kmsg.HeartbeatRequest) string { return r.Group }))},
		kmsg.LeaveGroup.Int16():             {wire.VersionRange{Min: 0, Max: 5}, toGroup(oneGroup(func(r *kmsg.LeaveGroupRequest) string { return r.Group }))},
		kmsg.SyncGroup.Int16():              {wire.VersionRange{Min: 0, Max: 5}, toGroup(oneGroup(func(r *kmsg.SyncGroupRequest) string { return r.Group }))},
		kmsg.OffsetCommit.Int16():           {wire.VersionRange{Min: 0, Max: 9}, toGroup(oneGroup(func(r *kmsg.OffsetCommitRequest) string { return r.Group }))},
		kmsg.OffsetFetch.Int16():            {wire.VersionRange{Min: 0, Max: 9}, toGroup(offsetFetchRoute)},
		kmsg.DescribeGroups.Int16():         {wire.VersionRange{Min: 0, Max: 5}, toGroup(describeGroupsRoute)},
		kmsg.ListGroups.Int16():             {wire.VersionRange{Min: 0, Max: 5}, toGroup(listGroupsRoute)},
		kmsg.DeleteGroups.Int16():           {wire.VersionRange{Min: 0, Max: 2}, toGroup(deleteGroupsRoute)},
		kmsg.OffsetDelete.Int16():           {wire.VersionRange{Min: 0, Max: 0}, toGroup(oneGroup(func(r *kmsg.OffsetDeleteRequest) string { return r.Group }))},
		kmsg.ConsumerGroupHeartbeat.Int16(): {wire.VersionRange{Min: 0, Max: 1}, toGroup(oneGroup(func(r *kmsg.ConsumerGroupHeartbeatRequest) string { return r.Group }))},
		kmsg.ConsumerGroupDescribe.Int16():  {wire.VersionRange{Min: 0, Max: 1}, toGroup(consumerGroupDescribeRoute)},
	}
}

func supportedVersion(key int16) (wire.VersionRange, bool) {
	a, ok := apis[key]
	return a.versions, ok
}

// dispatch runs the handler of req's API. The decoder admits only keys in
// apis, so every request has one.
func (b *Broker) dispatch(rc *reqContext, req *wire.Request) result {
	return apis[req.Key].handle(b, rc, req.Msg)
}

// now adapts a handler that answers at once from the request alone.
func now[Req kmsg.Request, Resp kmsg.Response](fn func(*Broker, Req) Resp) handler {
	return func(b *Broker, _ *reqContext, req kmsg.Request) result {
		return answer(fn(b, req.(Req)))
	}
}

// admin adapts a handler that reads or changes the metadata through the
// controller, bounded by adminTimeout.
func admin[Req kmsg.Request, Resp kmsg.Response](fn func(*Broker, context.Context, Req) Resp) handler {
	return func(b *Broker, _ *reqContext, req kmsg.Request) result {
		ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
		defer cancel()
		return answer(fn(b, ctx, req.(Req)))
	}
}

// withContext adapts a handler that needs the request context and may
// answer later.
func withContext[Req kmsg.Request](fn func(*Broker, *reqContext, Req) result) handler {
	return func(b *Broker, rc *reqContext, req kmsg.Request) result {
		return fn(b, rc, req.(Req))
	}
}
