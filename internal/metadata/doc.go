// Package metadata holds the types of cluster metadata: the brokers, the
// topics, their partitions and who leads them. Every other component reads
// it through the Store interface (api.go), implemented by the
// Raft-replicated controller.Store, as an immutable Image and changes it
// only through Store methods.
//
// Local, below, is the single-node store of earlier builds. The server no
// longer opens it: it reads an earlier data directory's snapshot with
// ReadLegacy and imports it into the Raft store once. Local remains for
// writing such directories in tests, until it is removed.
//
// # Local
//
// Local is the single-node Store. It keeps the whole state in memory as the
// current *Image (read lock-free through an atomic pointer) and persists it
// as one snapshot file in its directory. Every mutation is serialized, builds
// a new Image, writes the snapshot durably and only then publishes the new
// Image and wakes Changes() waiters, so nothing is visible or acknowledged
// that a crash could lose.
//
// Producer IDs are handed out from a reserved block: the snapshot records the
// end of the reserved range, and a new block is persisted before the first ID
// from it is returned. After a restart (clean or not) allocation resumes at
// the persisted end, so an ID is never returned twice; IDs left unused in a
// block are skipped, as in Kafka.
//
// # Snapshot file
//
// The file is <Dir>/metadata.snapshot, replaced atomically (write
// metadata.snapshot.tmp, fsync, rename, fsync the directory). A leftover
// temporary file from a crash is ignored and removed at open. Layout, all
// integers big-endian; the magic, version and header layout are part of the
// on-disk format:
//
//	0       4         6          10         14
//	+-------+---------+----------+----------+---------------------+
//	| magic | version |  length  |  crc32c  | body (length bytes) |
//	| SBMD  | uint16  |  uint32  |  uint32  | JSON, see snapBody  |
//	+-------+---------+----------+----------+---------------------+
//
// crc32c is CRC-32 (Castagnoli) of the body only. The file must end exactly
// after the body. The body is a JSON object with unknown fields rejected;
// any incompatible change to it must bump the version. A file that fails any
// check makes OpenLocal fail with ErrCorruptSnapshot: the store never
// silently starts empty over existing metadata.
package metadata
