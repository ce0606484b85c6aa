#!/usr/bin/env bash
# dev-cluster.sh: run N local StreamBus brokers as one cluster for development.
#
#   scripts/dev-cluster.sh start [N]    build and start N brokers (default 3)
#   scripts/dev-cluster.sh stop         SIGTERM every broker and wait for it
#   scripts/dev-cluster.sh status       which brokers run, and their readiness
#   scripts/dev-cluster.sh add [ID]     start one more broker as a Raft non-voter
#                                       (default: the next free node ID; an ID
#                                       added before restarts it on its data)
#
# Broker i listens on 127.0.0.i: Kafka :9092, HTTP :9644, Raft :9093, and
# keeps its data in $CLUSTER_DIR/node-i (default ./streambus-cluster). All of
# 127.0.0.0/8 is loopback on Linux, so no setup is needed. Extra broker
# settings go through STREAMBUS_* environment variables. The N brokers of
# `start` are the metadata quorum's voters; an added broker is not among
# --voters, so it joins as a non-voter (it keeps a copy of the metadata log
# without voting). Remove one for good with UnregisterBroker after stopping it.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
DIR=${CLUSTER_DIR:-./streambus-cluster}
cmd=${1:-status}
n=${2:-3}

case $cmd in
start)
	if [ -f "$DIR/size" ] && [ -n "$(ls "$DIR"/node-*/pid 2>/dev/null)" ]; then
		echo "a cluster is already running in $DIR (stop it first)" >&2; exit 1
	fi
	mkdir -p "$DIR"
	go build -o "$DIR/streambus-broker" ./cmd/streambus-broker
	voters=""
	for i in $(seq "$n"); do voters="$voters${voters:+,}$i=127.0.0.$i:9093"; done
	echo "$n" >"$DIR/size"
	for i in $(seq "$n"); do
		d="$DIR/node-$i"
		mkdir -p "$d"
		"$DIR/streambus-broker" --node-id "$i" --data-dir "$d/data" \
			--kafka-addr "127.0.0.$i:9092" --http-addr "127.0.0.$i:9644" \
			--raft-addr "127.0.0.$i:9093" --voters "$voters" >"$d/log" 2>&1 &
		echo $! >"$d/pid"
	done
	for i in $(seq "$n"); do
		for _ in $(seq 300); do
			curl -sf "http://127.0.0.$i:9644/readyz" >/dev/null 2>&1 && break
			sleep 0.1
		done
	done
	"$0" status
	echo "bootstrap servers: $(seq -s, -f '127.0.0.%g:9092' "$n")"
	;;
stop)
	# Highest node ID first: added non-voters stop while the voters still
	# form a quorum to hand their partitions over to.
	for i in $(for d in "$DIR"/node-*; do [ -d "$d" ] && echo "${d##*-}"; done | sort -nr); do
		p="$DIR/node-$i/pid"
		[ -f "$p" ] || continue
		pid=$(cat "$p")
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		rm -f "$p"
	done
	echo "stopped (data kept in $DIR)"
	;;
add)
	[ -f "$DIR/size" ] || { echo "no cluster in $DIR (start one first)" >&2; exit 1; }
	size=$(cat "$DIR/size")
	i=${2:-}
	if [ -z "$i" ]; then
		i=$((size + 1))
		while [ -d "$DIR/node-$i" ]; do i=$((i + 1)); done
	fi
	if [ "$i" -le "$size" ]; then echo "node $i is a voter; use start" >&2; exit 1; fi
	if [ "$i" -gt 254 ]; then echo "node $i: no 127.0.0.$i address" >&2; exit 1; fi
	d="$DIR/node-$i"
	if [ -f "$d/pid" ] && kill -0 "$(cat "$d/pid")" 2>/dev/null; then echo "node $i already runs" >&2; exit 1; fi
	voters=""
	for v in $(seq "$size"); do voters="$voters${voters:+,}$v=127.0.0.$v:9093"; done
	mkdir -p "$d"
	"$DIR/streambus-broker" --node-id "$i" --data-dir "$d/data" \
		--kafka-addr "127.0.0.$i:9092" --http-addr "127.0.0.$i:9644" \
		--raft-addr "127.0.0.$i:9093" --voters "$voters" >>"$d/log" 2>&1 &
	echo $! >"$d/pid"
	for _ in $(seq 300); do
		curl -sf "http://127.0.0.$i:9644/readyz" >/dev/null 2>&1 && break
		sleep 0.1
	done
	"$0" status
	;;
status)
	[ -f "$DIR/size" ] || { echo "no cluster in $DIR"; exit 0; }
	ids=$(seq "$(cat "$DIR/size")"; for d in "$DIR"/node-*; do [ -d "$d" ] && echo "${d##*-}"; done)
	for i in $(echo "$ids" | sort -nu); do
		p="$DIR/node-$i/pid"
		if [ -f "$p" ] && kill -0 "$(cat "$p")" 2>/dev/null; then
			ready=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.$i:9644/readyz" || true)
			echo "node $i: running (pid $(cat "$p")), kafka 127.0.0.$i:9092, readyz $ready"
		else
			echo "node $i: not running"
		fi
	done
	;;
*)
	echo "usage: $0 start [N] | stop | status | add [ID]" >&2; exit 2
	;;
esac
