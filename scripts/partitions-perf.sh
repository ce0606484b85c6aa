#!/usr/bin/env bash
# partitions-perf.sh: produce throughput against the partition count (issue
# #10), StreamBus beside franz-go's kfake (with a data dir, no fsync) and,
# when KLITE_BIN names a klite binary, klite, interleaved in one run.
#
#   scripts/partitions-perf.sh [REPS]        (default 1; each rep runs every peer
#                                             on every partition count)
#
# Environment:
#   OUT         results directory (default: a new /tmp/streambus-partitions-perf.XXXX)
#   PARTITIONS  partition counts (default "16 1000 10000"); up to 100 is one
#               topic, above that N/100 topics of 100 partitions (N a multiple of 100)
#   DURATION    length of each timed produce run, in ms, s or m (default 10s)
#   KLITE_BIN   path to a klite binary (github.com/klaudworks/klite, run with
#               --listen and --data-dir). The script does not fetch or build
#               klite: without KLITE_BIN it is left out.
#   MIN_FREE_GB free space needed on $OUT's file system before each run (default 15)
#
# Workload per peer, partition count and rep, on an empty data dir after
# sync(1): create the topics (`streambus-cli bench --mode create`: one
# CreateTopics request, timed until every partition has a leader in the
# metadata), sync, then `streambus-cli bench --mode produce` for DURATION:
# one franz-go producer, 1 KiB incompressible records, acks=all (idempotent),
# linger 5 ms, records sent to the topics in turn and to each topic's
# partitions round-robin, so every partition gets the same share. Creation is
# not timed into the throughput. Fsyncs during the produce run: for StreamBus
# its own count (streambus_fsync_duration_seconds_count on /metrics, read
# before and after); for kfake (which does not fsync) and klite the fsync(2)
# and fdatasync(2) calls counted by `perf stat` (n/a without perf; the JSON
# has StreamBus's syscall count too). With 16 in PARTITIONS, each peer also
# gets a fresh run of produce->ack latency at 5,000 records/s on 1 topic x 16
# partitions (linger 0, round-robin; 2 s of warm-up, then DURATION). Each
# run's data dir is deleted as soon as the run ends.
#
# Open files: a partition can cost a peer several (StreamBus: log, index and
# time index; kfake: segment and index, once written), so 10,000 partitions
# can need more than 30,000. The script raises the soft limit as far as the
# hard limit allows; a peer that still runs out ("too many open files" in its
# log) is reported as such, and its produce run is skipped if that happened
# during creation.
#
# Every run is a JSON line in $OUT/results.jsonl (each run's peer log and
# bench output are kept in $OUT/runs/, what was built in $OUT/build.txt); at
# the end a markdown table of medians, ready for docs/PERFORMANCE.md, and the
# machine line.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
REPS=${1:-1}
OUT=${OUT:-$(mktemp -d /tmp/streambus-partitions-perf.XXXX)}
PARTITIONS=${PARTITIONS:-"16 1000 10000"}
DURATION=${DURATION:-10s}
KLITE_BIN=${KLITE_BIN:-}
MIN_FREE_GB=${MIN_FREE_GB:-15}
BIN=$OUT/bin
mkdir -p "$BIN" "$OUT/runs"
go build -o "$BIN/streambus-broker" ./cmd/streambus-broker
go build -o "$BIN/streambus-cli" ./cmd/streambus-cli
go build -o "$BIN/kfakepeer" ./test/perf/kfakepeer
# What was built: the commit, and any uncommitted changes in the tree.
REV=$(git describe --always --dirty 2>/dev/null || echo unknown)
{ echo "$REV built $(date -u +%FT%TZ)"; git status --short 2>/dev/null || true; } >"$OUT/build.txt"
PEERS="streambus kfake"
if [[ -n $KLITE_BIN ]]; then
	[[ -x $KLITE_BIN ]] || { echo "KLITE_BIN=$KLITE_BIN is not an executable" >&2; exit 2; }
	PEERS="$PEERS klite"
fi
# Ports apart from scripts/perf.sh's, so the two can share a machine.
PORT=19492
HTTP=19494
CLI=("$BIN/streambus-cli" -b 127.0.0.1:$PORT)
# The duration in seconds, for the watchdog on each bench run.
DUR_S=$(python3 -c 'import sys,re; m=re.fullmatch(r"([0-9.]+)(ms|s|m)", sys.argv[1]); print(int(float(m[1])*{"ms":0.001,"s":1,"m":60}[m[2]])+1)' "$DURATION")

# Ask for plenty of descriptors (see the top); where the hard limit is lower
# (raising it needs CAP_SYS_RESOURCE) take that.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
echo "open-file limit for the peers: $NOFILE"

# Each peer runs under `perf stat`, counting its fsync(2) and fdatasync(2)
# calls only while a throughput run is timed (counting is switched on and
# off through perf's control FIFO), so every peer's fsyncs are counted the
# same way, klite's included. Without a working perf the peers run bare and
# only StreamBus's own metric is reported.
PERF=()
if perf stat -x, -e syscalls:sys_enter_fsync -o /dev/null -- true 2>/dev/null; then
	rm -f "$OUT/perf.ctl" "$OUT/perf.ack"
	mkfifo "$OUT/perf.ctl" "$OUT/perf.ack"
	PERF=(perf stat -x, -D -1 --control "fifo:$OUT/perf.ctl,$OUT/perf.ack" -o "$OUT/perf.txt"
		-e syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync --)
else
	echo "perf stat cannot count syscalls here: fsyncs of kfake and klite not counted" >&2
fi

PID=  # the peer
WPID= # what the script started: perf, or the peer itself
DIR=
cleanup() {
	if [[ -n $PID ]]; then kill -TERM "$PID" 2>/dev/null || true; fi
	if [[ -n $WPID ]]; then wait "$WPID" 2>/dev/null || true; fi
	if [[ -n $DIR ]]; then rm -rf "$DIR"; fi
}
trap cleanup EXIT

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start_peer() { # name datadir logfile
	if port_open $PORT; then echo "port $PORT is already in use" >&2; exit 1; fi
	rm -f "$OUT/perf.txt"
	case $1 in
	streambus) "${PERF[@]}" "$BIN/streambus-broker" --data-dir "$2" --kafka-addr 127.0.0.1:$PORT --http-addr 127.0.0.1:$HTTP >"$3" 2>&1 & ;;
	kfake) "${PERF[@]}" "$BIN/kfakepeer" --addr 127.0.0.1:$PORT --data-dir "$2" --log-level warn >"$3" 2>&1 & ;;
	klite) "${PERF[@]}" "$KLITE_BIN" --listen 127.0.0.1:$PORT --data-dir "$2" --log-level warn >"$3" 2>&1 & ;;
	esac
	WPID=$!
	PID=$WPID
	for _ in $(seq 300); do
		if ((${#PERF[@]})) && [[ $PID == "$WPID" ]]; then PID=$(pgrep -P "$WPID" || echo "$WPID"); fi
		if port_open $PORT && [[ $PID != "$WPID" || ${#PERF[@]} == 0 ]]; then return; fi
		sleep 0.1
	done
	echo "peer $1 did not start; its log:" >&2; tail -20 "$3" >&2; exit 1
}

# stop_peer stops the peer; perf, if any, then exits and writes perf.txt.
stop_peer() { kill -TERM "$PID"; wait "$WPID" || true; PID= WPID=; }

# perf_ctl enable|disable: switch the syscall counting of the peer's perf.
perf_ctl() {
	((${#PERF[@]})) || return 0
	timeout 10 bash -c 'echo "$1" >"$2" && read -r _ <"$3"' _ "$1" "$OUT/perf.ctl" "$OUT/perf.ack" ||
		echo "perf did not answer $1" >&2
}

# perf_fsyncs: fsync + fdatasync calls counted while enabled (after stop_peer).
perf_fsyncs() {
	[[ -s $OUT/perf.txt ]] || return 0
	awk -F, '$3 ~ /sys_enter_f(data)?sync$/ && $1 ~ /^[0-9]+$/ {n += $1; ok = 1} END {if (ok) print n}' "$OUT/perf.txt"
}

# fresh_dir: a new empty data dir once there is room for a run.
fresh_dir() {
	local avail
	avail=$(df -P -BG "$OUT" | awk 'NR == 2 {sub("G", "", $4); print $4}')
	echo "free on $OUT: ${avail} GB"
	if ((avail < MIN_FREE_GB)); then
		echo "less than MIN_FREE_GB=$MIN_FREE_GB GB free on $OUT; stopping" >&2; exit 1
	fi
	DIR=$(mktemp -d "$OUT/data.XXXX")
	sync
}

drop_dir() { rm -rf "$DIR"; DIR=; }

# fsyncs: the broker's fsync count so far (StreamBus only; empty otherwise).
fsyncs() {
	[[ $1 == streambus ]] || return 0
	curl -sf "http://127.0.0.1:$HTTP/metrics" | awk '/^streambus_fsync_duration_seconds_count/ {n += $NF} END {printf "%d\n", n}'
}

rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PID/status" 2>/dev/null || echo 0; }
nfds() { find "/proc/$PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }

# bench: streambus-cli bench with a watchdog: a partition that never accepts
# a record would otherwise keep the producer retrying forever. SIGINT makes
# bench print what it has and exit 1.
bench() { # outfile args...
	local out=$1; shift
	timeout -s INT -k 30 $((DUR_S + 120)) "${CLI[@]}" --request-timeout 900s bench "$@" --json >"$out" 2>"$out.err" || true
}

shape() { # partitions -> "topics per-topic"
	if (($1 <= 100)); then echo "1 $1"
	elif (($1 % 100 == 0)); then echo "$(($1 / 100)) 100"
	else echo "PARTITIONS: $1 is above 100 and not a multiple of 100" >&2; exit 2
	fi
}
for n in $PARTITIONS; do shape "$n" >/dev/null; done

: >"$OUT/results.jsonl"
for rep in $(seq "$REPS"); do
	for n in $PARTITIONS; do
		read -r topics per < <(shape "$n")
		for peer in $PEERS; do
			echo "== rep $rep, $n partitions ($topics x $per), $peer"
			run=$OUT/runs/rep$rep-p$n-$peer # the run's peer log and bench output
			fresh_dir
			start_peer $peer "$DIR" "$run.log"
			: >"$run.tp.json"
			bench "$run.create.json" --topic p --topic-count "$topics" --partitions "$per" --mode create
			fds=$(nfds)
			# A peer out of descriptors cannot open every partition; the
			# produce run would only wait for the watchdog.
			emfile=$(grep -ci "too many open files" "$run.log" || true)
			f0= f1= tp_rss=0 tp_fds=
			if [[ $emfile == 0 ]] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))["create"]' "$run.create.json" 2>/dev/null; then
				sync
				f0=$(fsyncs $peer || true)
				perf_ctl enable
				bench "$run.tp.json" --topic p --topic-count "$topics" --partitions "$per" --partitioner round-robin \
					--record-size 1024 --acks all --linger 5ms --duration "$DURATION"
				perf_ctl disable
				f1=$(fsyncs $peer || true)
				tp_rss=$(rss_kb)
				tp_fds=$(nfds)
				emfile=$(grep -ci "too many open files" "$run.log" || true)
			fi
			stop_peer
			drop_dir
			pf=$(perf_fsyncs)
			python3 - "$peer" "$rep" "$n" "$topics" "$fds" "$tp_fds" "$NOFILE" "$emfile" "$tp_rss" "$f0" "$f1" "$pf" "$run.create.json" "$run.tp.json" >>"$OUT/results.jsonl" <<'PY'
import json, sys
peer, rep, n, topics, fds, tp_fds, nofile, emfile, rss, f0, f1, pf, create, tp = sys.argv[1:]
def load(p):
    try:
        return json.load(open(p))
    except (OSError, ValueError):
        return None
def err(p):
    try:
        lines = [l for l in open(p + ".err") if l.startswith("streambus-cli:")]
        return lines[-1].strip() if lines else None
    except OSError:
        return None
row = {"kind": "throughput", "peer": peer, "rep": int(rep), "partitions": int(n), "topics": int(topics),
       "peer_fds_after_create": int(fds), "peer_fds_after_produce": int(tp_fds) if tp_fds else None,
       "fd_limit": int(nofile)}
c, t = load(create), load(tp)
row["create_s"] = c["create"]["elapsed_seconds"] if c and c.get("create") else None
errors = []
if int(emfile):
    errors.append("peer ran out of file descriptors (%s 'too many open files' in its log, limit %s)" % (emfile, nofile))
if row["create_s"] is None and err(create):
    errors.append(err(create))
if t and t.get("produce"):
    p = t["produce"]
    row.update(produce_mib_s=p["mib_per_second"], records=p["records"], failed=p["failed"],
               produce_p99_ms=p["latency_ms"]["p99"], elapsed_s=p["elapsed_seconds"],
               rss_mb_after=int(rss) / 1024)
    if p["failed"]:
        errors.append("%d records failed: %s" % (p["failed"], p.get("first_error")))
elif row["create_s"] is not None and not int(emfile):
    errors.append(err(tp) or "no produce result")
else:
    errors.append("produce run skipped")
if t and t.get("produce"):
    p = t["produce"]
    def per(fs):
        return {"per_s": fs / p["elapsed_seconds"], "per_mib": fs / (p["bytes"] / 2**20) if p["bytes"] else None}
    # The broker's own count where it has one (StreamBus), else the syscalls.
    if f0 and f1:
        fs = int(f1) - int(f0)
        row.update(fsyncs_metric=fs, fsyncs_source="metric")
    elif pf:
        fs = int(pf)
        row["fsyncs_source"] = "syscalls"
    else:
        fs = None
    if pf:
        row["fsync_syscalls"] = int(pf)
    if fs is not None:
        q = per(fs)
        row.update(fsyncs=fs, fsyncs_per_s=q["per_s"], fsyncs_per_mib=q["per_mib"])
if errors:
    row["error"] = "; ".join(errors)
print(json.dumps(row))
PY
			tail -1 "$OUT/results.jsonl"
		done
		[[ $n == 16 ]] || continue
		for peer in $PEERS; do
			echo "== rep $rep, latency at 5,000 records/s on 16 partitions, $peer"
			run=$OUT/runs/rep$rep-lat16-$peer
			fresh_dir
			start_peer $peer "$DIR" "$run.log"
			bench "$run.create.json" --topic lat --partitions 16 --mode create
			sync
			# 2 s of warm-up at the same rate (producer ID, first segments).
			bench "$run.warm.json" --topic lat --rate 5000 --linger 0 --partitioner round-robin --duration 2s
			bench "$run.lat.json" --topic lat --rate 5000 --linger 0 --partitioner round-robin --duration "$DURATION"
			lat_rss=$(rss_kb)
			stop_peer
			drop_dir
			python3 - "$peer" "$rep" "$lat_rss" "$run.lat.json" >>"$OUT/results.jsonl" <<'PY'
import json, sys
peer, rep, rss, lat = sys.argv[1:]
row = {"kind": "latency", "peer": peer, "rep": int(rep), "partitions": 16, "rate": 5000}
try:
    p = json.load(open(lat))["produce"]
    row.update(lat_p50_ms=p["latency_ms"]["p50"], lat_p99_ms=p["latency_ms"]["p99"],
               lat_max_ms=p["latency_ms"]["max"], failed=p["failed"], rss_mb=int(rss) / 1024)
except (OSError, ValueError, KeyError, TypeError) as e:
    row["error"] = "no latency result: %s" % e
print(json.dumps(row))
PY
			tail -1 "$OUT/results.jsonl"
		done
	done
done

MACHINE="$(nproc) vCPU, $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, Linux $(uname -r), $(go version | awk '{print $3}'), $(date -u +%Y-%m-%d), open-file limit $NOFILE, StreamBus $REV"
[[ -z $KLITE_BIN ]] || MACHINE="$MACHINE, $("$KLITE_BIN" --version 2>&1 | head -1)"
python3 - "$OUT/results.jsonl" "$PEERS" "$PARTITIONS" "$DURATION" "$MACHINE" <<'PY'
import json, statistics, sys
path, peers, parts, duration, machine = sys.argv[1:]
peers, parts = peers.split(), [int(p) for p in parts.split()]
rows = [json.loads(l) for l in open(path)]
tp = [r for r in rows if r["kind"] == "throughput"]
names = {"streambus": "StreamBus", "kfake": "kfake", "klite": "klite"}

def runs(p, n, key):
    return [r.get(key) for r in tp if r["peer"] == p and r["partitions"] == n]
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
def f(x, fmt="%.1f"):
    return "—" if x is None else fmt % x

reps = max((r["rep"] for r in rows), default=0)
print("\nMedians of %d rep(s), %s produce per run; produce MiB/s over the acknowledged records." % (reps, duration))
print("One franz-go producer, 1 KiB incompressible records, acks=all, linger 5 ms, round-robin over every partition.")
print("Fsyncs during the produce run: StreamBus's streambus_fsync_duration_seconds_count (in parentheses its fsync(2) + fdatasync(2) calls);")
print("kfake and klite: fsync(2) + fdatasync(2) calls, counted by perf stat.\n")
print("| partitions (topics × partitions) | peer | topic creation, s | peer's open files after creation / after produce | produce MiB/s (runs) | StreamBus / peer | fsyncs/s | fsyncs per MiB |")
print("|---|---|---|---|---|---|---|---|")
notes = []
for n in parts:
    shape = "1 × %d" % n if n <= 100 else "%d × 100" % (n // 100)
    sb = med(runs("streambus", n, "produce_mib_s"))
    for p in peers:
        mibs = runs(p, n, "produce_mib_s")
        m = med(mibs)
        ratio = "" if p == "streambus" else ("—" if not (sb and m) else "%.2f" % (sb / m))
        fs_s = f(med(runs(p, n, "fsyncs_per_s")), "%.0f").replace("—", "n/a")
        fs_m = f(med(runs(p, n, "fsyncs_per_mib")), "%.2f").replace("—", "n/a")
        sc = [r["fsync_syscalls"] / r["elapsed_s"] for r in tp
              if r["peer"] == p and r["partitions"] == n and r.get("fsyncs_source") == "metric" and r.get("fsync_syscalls") is not None]
        if sc:
            fs_s += " (syscalls: %.0f)" % med(sc)
        failed = [r for r in tp if r["peer"] == p and r["partitions"] == n and r.get("error")]
        shown = " / ".join(f(x, "%.0f") for x in mibs)
        mark = ""
        if failed:
            mark = " ⚠%d" % (len(notes) + 1)
            notes.append("%s at {:,} partitions, %d of %d run(s): %s".format(n) % (names[p], len(failed), len(mibs), failed[0]["error"]))
        print("| %s | %s | %s | %s | %s (%s)%s | %s | %s | %s |" % (
            "{:,}".format(n) + " (" + shape + ")", names[p], f(med(runs(p, n, "create_s")), "%.2f"),
            f(med(runs(p, n, "peer_fds_after_create")), "%.0f") + " / " + f(med(runs(p, n, "peer_fds_after_produce")), "%.0f"),
            f(m), shown, mark, ratio, fs_s, fs_m))
lat = [r for r in rows if r["kind"] == "latency"]
if lat:
    print("\nproduce→ack at 5,000 records/s, 1 topic × 16 partitions, linger 0 (medians):\n")
    print("| peer | p50 ms | p99 ms (runs) | max ms | broker RSS, MB |")
    print("|---|---|---|---|---|")
    for p in peers:
        rs = [r for r in lat if r["peer"] == p]
        p99 = [r.get("lat_p99_ms") for r in rs]
        print("| %s | %s | %s (%s) | %s | %s |" % (names[p], f(med(r.get("lat_p50_ms") for r in rs), "%.2f"),
            f(med(p99), "%.2f"), " / ".join(f(x, "%.2f") for x in p99), f(med(r.get("lat_max_ms") for r in rs), "%.1f"),
            f(med(r.get("rss_mb") for r in rs), "%.0f")))
        for r in rs:
            if r.get("error") or r.get("failed"):
                notes.append("%s latency rep %d: %s" % (names[p], r["rep"], r.get("error") or "%d records failed" % r["failed"]))
for i, n in enumerate(notes, 1):
    print("\n⚠%d %s" % (i, n))
print("\nMachine: %s." % machine)
PY
echo "results: $OUT/results.jsonl"
