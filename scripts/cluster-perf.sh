#!/usr/bin/env bash
# cluster-perf.sh: the docs/PERFORMANCE.md cluster workload. Three local
# brokers (scripts/dev-cluster.sh, 127.0.0.1-3) and the client on this
# machine; RF=1 and RF=3 interleaved, each rep on a fresh cluster.
#
#   scripts/cluster-perf.sh [REPS]     (default 3)
#
# Per RF: produce throughput (1 KiB records, 16 partitions, acks=all,
# linger 10 ms, 10 s), then produce->ack latency at 5,000 records/s
# (linger 0, 10 s after 2 s of warm-up) on a second topic. RF=3 topics
# get min.insync.replicas=2. Prints JSON lines to $OUT/results.jsonl and
# the medians.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
REPS=${1:-3}
OUT=${OUT:-$(mktemp -d /tmp/streambus-cluster-perf.XXXX)}
mkdir -p "$OUT"
go build -o "$OUT/streambus-cli" ./cmd/streambus-cli
B=127.0.0.1:9092,127.0.0.2:9092,127.0.0.3:9092
: >"$OUT/results.jsonl"
for rep in $(seq "$REPS"); do
	for rf in 1 3; do
		export CLUSTER_DIR=$OUT/cluster
		rm -rf "$CLUSTER_DIR"
		sync
		scripts/dev-cluster.sh start 3 >/dev/null
		minisr=1
		[ "$rf" = 3 ] && minisr=2
		"$OUT/streambus-cli" -b $B topic create tp --partitions 16 --replication-factor "$rf" --config min.insync.replicas=$minisr >/dev/null
		"$OUT/streambus-cli" -b $B topic create lat --partitions 1 --replication-factor "$rf" --config min.insync.replicas=$minisr >/dev/null
		"$OUT/streambus-cli" -b $B bench --topic tp --mode produce --duration 10s --json 2>/dev/null >"$OUT/tp.json"
		"$OUT/streambus-cli" -b $B bench --topic lat --mode produce --rate 5000 --linger 0 --duration 2s >/dev/null 2>&1
		"$OUT/streambus-cli" -b $B bench --topic lat --mode produce --rate 5000 --linger 0 --duration 10s --json 2>/dev/null >"$OUT/lat.json"
		scripts/dev-cluster.sh stop >/dev/null
		rm -rf "$CLUSTER_DIR" # several GB per run
		python3 - "$rf" "$rep" "$OUT/tp.json" "$OUT/lat.json" >>"$OUT/results.jsonl" <<'PY'
import json, sys
rf, rep, tp, lat = sys.argv[1:]
tp, lat = json.load(open(tp)), json.load(open(lat))
print(json.dumps({"rf": int(rf), "rep": int(rep),
    "produce_mib_s": tp["produce"]["mib_per_second"], "produce_failed": tp["produce"]["failed"],
    "lat_p50_ms": lat["produce"]["latency_ms"]["p50"], "lat_p99_ms": lat["produce"]["latency_ms"]["p99"],
    "lat_max_ms": lat["produce"]["latency_ms"]["max"], "lat_failed": lat["produce"]["failed"]}))
PY
		tail -1 "$OUT/results.jsonl"
	done
done
python3 - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["produce_mib_s", "lat_p50_ms", "lat_p99_ms", "lat_max_ms"]
print("\nmedians over %d reps" % (len(rows) // 2))
print("%-16s %10s %10s" % ("metric", "RF=1", "RF=3"))
for k in keys:
    m = {rf: statistics.median(r[k] for r in rows if r["rf"] == rf) for rf in (1, 3)}
    print("%-16s %10.2f %10.2f" % (k, m[1], m[3]))
PY
echo "results: $OUT/results.jsonl"
