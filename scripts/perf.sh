#!/usr/bin/env bash
# perf.sh: the docs/PERFORMANCE.md workload, StreamBus against franz-go's kfake
# (with a data dir, no fsync) in the same run, interleaved.
#
#   scripts/perf.sh [REPS]        (default 3; each rep runs both peers)
#
# Workload: 1 KiB records, 16 partitions, acks=all, franz-go producer with
# linger 10 ms, 10 s produce then consume everything (bench --mode both);
# then, on a fresh peer, produce->ack latency at 5,000 records/s (linger 0)
# with the broker's RSS sampled at that rate. Every run starts on an empty
# data dir after sync(1). Prints
# every run as JSON lines to $OUT/results.jsonl and a summary of medians.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
REPS=${1:-3}
OUT=${OUT:-$(mktemp -d /tmp/streambus-perf.XXXX)}
BIN=$OUT/bin
mkdir -p "$BIN"
go build -o "$BIN/streambus-broker" ./cmd/streambus-broker
go build -o "$BIN/streambus-cli" ./cmd/streambus-cli
go build -o "$BIN/kfakepeer" ./test/perf/kfakepeer
PORT=19392
HTTP=19394

start_peer() { # name datadir
	case $1 in
	streambus) "$BIN/streambus-broker" --data-dir "$2" --kafka-addr 127.0.0.1:$PORT --http-addr 127.0.0.1:$HTTP >"$OUT/$1.log" 2>&1 & ;;
	kfake) "$BIN/kfakepeer" --addr 127.0.0.1:$PORT --data-dir "$2" --partitions 16 >"$OUT/$1.log" 2>&1 & ;;
	esac
	PID=$!
	for _ in $(seq 100); do
		if (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; then return; fi
		sleep 0.1
	done
	echo "peer $1 did not start" >&2; exit 1
}

stop_peer() { kill -TERM "$PID"; wait "$PID" || true; }

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }

: >"$OUT/results.jsonl"
for rep in $(seq "$REPS"); do
	for peer in streambus kfake; do
		dir=$(mktemp -d "$OUT/data.XXXX")
		sync
		start_peer $peer "$dir"
		"$BIN/streambus-cli" -b 127.0.0.1:$PORT bench --mode both --duration 10s --json 2>/dev/null >"$OUT/tp.json"
		tp_rss=$(rss_kb)
		stop_peer
		rm -rf "$dir"
		# Latency on a fresh peer after sync: the throughput run leaves GBs
		# of dirty pages whose writeback would otherwise queue every fsync.
		dir=$(mktemp -d "$OUT/data.XXXX")
		sync
		start_peer $peer "$dir"
		# 2 s of warm-up at the same rate (topic creation, first segments).
		"$BIN/streambus-cli" -b 127.0.0.1:$PORT bench --topic lat --mode produce --rate 5000 --linger 0 --duration 2s >/dev/null 2>&1
		"$BIN/streambus-cli" -b 127.0.0.1:$PORT bench --topic lat --mode produce --rate 5000 --linger 0 --duration 10s --json 2>/dev/null >"$OUT/lat.json" &
		bpid=$!
		sleep 8; lat_rss=$(rss_kb)
		wait $bpid
		stop_peer
		rm -rf "$dir"
		python3 - "$peer" "$rep" "$tp_rss" "$lat_rss" "$OUT/tp.json" "$OUT/lat.json" >>"$OUT/results.jsonl" <<'PY'
import json, sys
peer, rep, tp_rss, lat_rss, tp, lat = sys.argv[1:]
tp, lat = json.load(open(tp)), json.load(open(lat))
print(json.dumps({"peer": peer, "rep": int(rep),
    "produce_mib_s": tp["produce"]["mib_per_second"], "consume_mib_s": tp["consume"]["mib_per_second"],
    "produce_p99_ms_saturated": tp["produce"]["latency_ms"]["p99"],
    "lat_p50_ms": lat["produce"]["latency_ms"]["p50"], "lat_p99_ms": lat["produce"]["latency_ms"]["p99"],
    "lat_max_ms": lat["produce"]["latency_ms"]["max"], "lat_failed": lat["produce"]["failed"],
    "rss_mb_after_throughput": int(tp_rss) / 1024, "rss_mb_at_5000": int(lat_rss) / 1024}))
PY
		tail -1 "$OUT/results.jsonl"
	done
done

python3 - "$OUT/results.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["produce_mib_s", "consume_mib_s", "lat_p50_ms", "lat_p99_ms", "lat_max_ms", "rss_mb_at_5000", "rss_mb_after_throughput"]
med = {p: {k: statistics.median(r[k] for r in rows if r["peer"] == p) for k in keys} for p in ("streambus", "kfake")}
print("\nmedians over %d reps" % (len(rows) // 2))
print("%-26s %12s %12s %8s" % ("metric", "streambus", "kfake", "ratio"))
for k in keys:
    s, f = med["streambus"][k], med["kfake"][k]
    print("%-26s %12.2f %12.2f %8.2f" % (k, s, f, s / f if f else float("nan")))
PY
echo "results: $OUT/results.jsonl"
