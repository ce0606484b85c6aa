// Package integration holds black-box tests of the StreamBus broker: real
// broker processes, real sockets and real Kafka clients (franz-go, sarama,
// kafka-go, librdkafka through kcat).
//
// The package has no code of its own; everything lives in _test.go files.
// How the broker under test is chosen (see harness_test.go):
//
//   - STREAMBUS_TEST_ADDR=host:port: an already running broker. Tests that
//     need to start, configure, stop or restart a process are skipped.
//   - STREAMBUS_TEST_BROKER=kfake: franz-go's kfake, run as a child process
//     of the test binary so that process tests (signals, restarts, memory)
//     work the same way. Useful while the real broker is missing or broken.
//   - otherwise: cmd/streambus-broker is built once per test binary and every
//     test starts its own broker processes on free 127.0.0.1 ports with
//     temporary data directories. If cmd/streambus-broker does not exist yet
//     the harness falls back to kfake and says so.
//
// What is where:
//
//   - interop_test.go: kgo (zstd, idempotent), sarama (snappy, acks=all,
//     default Version), kafka-go (lz4) and kcat/librdkafka (gzip) each write
//     keyed records with headers; every client reads every client's writes.
//   - listoffsets_test.go: ListOffsets by timestamp, earliest and latest.
//   - delete_records_test.go: DeleteRecords on an RF=3 partition of three
//     brokers (every replica's log start moves; a new leader keeps it) and
//     cleanup.policy refusals on one broker.
//   - restart_test.go, recovery_test.go: SIGTERM and kill -9 restarts, torn
//     segment tails; acknowledged records survive intact, exactly once.
//   - malformed_test.go: bad frame sizes, TLS on the plaintext port,
//     truncated headers, unknown keys and versions, corrupt batches,
//     stalled and idle connections.
//   - http_test.go: /healthz, /readyz, /metrics.
//   - connections_test.go: max.connections (accepting pauses),
//     max.connections.per.ip and its overrides (closed at once), accept
//     surviving RLIMIT_NOFILE exhaustion, the RSS of 10,000 idle
//     connections.
//   - groups_test.go, groups_clients_test.go: consumer groups with kgo
//     (range, cooperative-sticky, static membership, KIP-848), sarama,
//     kafka-go and kcat -G: shared topics, members leaving, joining and
//     being killed, exactly-once consumption and offsets never going back.
//   - groups_restart_test.go: committed offsets across SIGTERM and kill -9.
//   - groups_raw_test.go: commit/heartbeat error codes, 1,000 members in one
//     rebalance, members that never heartbeat.
//   - groups_admin_test.go: Describe/List/DeleteGroups, OffsetDelete,
//     ConsumerGroupDescribe.
//   - groups_perf_test.go: join latency and commit throughput against kfake,
//     only with STREAMBUS_GROUP_PERF=1.
//   - librdkafka_test.go: librdkafka 2.11 (confluent-kafka-go, cgo) with the
//     KIP-848 and classic group protocols; librdkafka_nocgo_test.go skips
//     in its place, saying why, when cgo is off.
//   - cli_test.go: streambus-cli against a broker process: records larger
//     than the client's default batch limit, RECORD_LIST_TOO_LARGE, topic
//     trim.
//   - legacy_metadata_test.go: a data directory an earlier build wrote with
//     its single-node metadata file (testdata/legacy-datadir) is imported:
//     cluster ID, topic IDs and records kept.
//   - cluster_test.go (startCluster, used by every cluster test): three
//     brokers with RF=1 and RF=3 topics, a leader kill under an idempotent
//     acks=all producer.
//   - cluster_chaos_test.go: leader kills, SIGSTOP pauses, controller
//     kills and a broker down for a while under a checking workload.
//   - cluster_membership_test.go: a fourth broker joining as a Raft
//     non-voter, restarts, a duplicate node ID, UnregisterBroker.
//   - cluster_reassign_test.go, cluster_balance_test.go: reassignment under
//     load, preferred elections, automatic leader balancing.
//   - cluster_rack_test.go, cluster_rack_librdkafka_test.go: fetching from
//     followers (KIP-392) with kgo and librdkafka, and the loss of the
//     preferred replica.
//   - cluster_ryw_test.go: read-your-writes: kgo, sarama, kafka-go and kcat
//     produce at once to topics created through another broker;
//     CreatePartitions, AlterConfigs and DeleteTopics seen by every broker
//     at once; 20 concurrent auto-creations; fresh Metadata after a pause
//     and a restart; a dead broker does not hold answers.
//   - cluster_host_test.go: a broker opens and deletes the logs of a topic
//     created and deleted through another broker with no request reaching
//     it (its partition host follows metadata images).
//   - cluster_perf_test.go, cluster_ryw_perf_test.go: failover time and the
//     cost of read-your-writes, only with STREAMBUS_FAILOVER_PERF=1 and
//     STREAMBUS_RYW_PERF=1.
//   - harness_test.go, rawconn_test.go: starting and stopping broker
//     processes, free ports, raw Kafka connections for malformed input.
//
// Run with `go test -count=1 ./test/integration/` (add -v to see per-test
// output). kcat tests skip when kcat is not installed, unless
// STREAMBUS_REQUIRE_KCAT is set, as .ci/run does after installing it.
package integration
