#!/usr/bin/env bash
# dev-cluster.sh: run N local StreamBus brokers as one cluster for development.
#
#   scripts/dev-cluster.sh start [N]    build and start N brokers (default 3)
#   scripts/dev-cluster.sh stop         SIGTERM every broker and wait for it
#   scripts/dev-cluster.sh status       which brokers run, and their readiness
#
# Broker i listens on 127.0.0.i: Kafka :9092, HTTP :9644, Raft :9093, and
# keeps its data in $CLUSTER_DIR/node-i (default ./streambus-cluster). All of
# 127.0.0.0/8 is loopback on Linux, so no setup is needed. Extra broker
# settings go through STREAMBUS_* environment variables.
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
	for p in "$DIR"/node-*/pid; do
		[ -f "$p" ] || continue
		pid=$(cat "$p")
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		rm -f "$p"
	done
	echo "stopped (data kept in $DIR)"
	;;
status)
	[ -f "$DIR/size" ] || { echo "no cluster in $DIR"; exit 0; }
	for i in $(seq "$(cat "$DIR/size")"); do
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
	echo "usage: $0 start [N] | stop | status" >&2; exit 2
	;;
esac
