// Package metadata holds the types of cluster metadata: the brokers, the
// topics, their partitions and who leads them (an immutable Image), the
// Store interface through which every component reads and changes them,
// Kafka's topic-name rules and IDs (names.go), and the errors the broker
// maps to Kafka error codes. It holds no store: the Raft-replicated
// controller.Store implements Store, for a single node as a one-voter
// quorum. An earlier build's single-node store (meta/metadata.snapshot) is
// read and imported by the controller (controller.ReadLegacy).
package metadata
