// Package assignor implements the server-side partition assignors that a
// KIP-848 group coordinator offers its consumer groups (the broker setting
// group.consumer.assignors, whose Kafka default is "uniform,range"):
//
//   - [Uniform] mirrors Kafka's UniformAssignor: partitions are spread so that
//     member loads are as even as possible, and a member keeps what it owns
//     whenever balance allows.
//   - [Range] mirrors Kafka's server-side RangeAssignor: each topic is split
//     into contiguous ranges over its subscribers, so co-partitioned topics
//     with the same subscribers line up, again keeping current ownership where
//     the per-topic quota allows.
//
// Both are pure functions of their input: no I/O, no clock, no randomness and
// no shared state, so one value may be used from many goroutines at once. The
// result does not depend on the order of the member slice, of a member's
// topic list or on map iteration order; every partition list is sorted.
//
// # Input the coordinator may hand over unclean
//
// The coordinator resolves subscriptions to topic names and passes each
// member's current (target) assignment. Both assignors tolerate stale or
// inconsistent input rather than fail, because a rebalance must always make
// progress: unknown topic names are ignored, current partitions of topics a
// member no longer subscribes to, of deleted topics or beyond the partition
// count are dropped, and a partition claimed by several members stays only
// with the first of them in member-ID order. The only error is a duplicate
// member ID, which no consistent group can produce.
//
// # Balance
//
// For the uniform assignor with every member subscribed to the same topics,
// member partition counts differ by at most one. With different
// subscriptions an even spread may be impossible (a topic only one member
// reads must all go to it); the assignor then produces an optimal
// "semi-matching" in the sense of Harvey, Ladner, Lovász and Tamir (2003):
// no chain of single-partition moves along subscriptions can take a partition
// from a member holding k to one holding k-2 or fewer. Such an assignment
// minimises the largest load and the spread of loads at the same time.
//
// Racks (Member.Rack) are accepted but, as in Kafka 4.0's built-in
// server-side assignors, do not influence the result.
package assignor
