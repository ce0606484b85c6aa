#!/usr/bin/env bash
# Runs franz-go's own kgo integration tests against a StreamBus broker and
# prints one PASS/FAIL/SKIP line per test, then a summary.
#
# Usage: scripts/franz-go-suite.sh [extra flags for the kgo test binary]
#   e.g. scripts/franz-go-suite.sh -test.run 'TestGroupETL|TestTxn'
#
# Environment:
#   KGO_SEEDS         use this running broker (host:port) instead of starting one
#   KGO_TEST_RECORDS  records per test (default here 10000; kgo's is 500000)
#   SUITE_TIMEOUT     -test.timeout for the kgo binary (default 20m)
#   SUITE_SKIP        -test.skip pattern (default TestTxn: no transactions yet)
#   KGO_TEST_RF       replication factor of the topics the tests create (default 1;
#                     3 against a 3-broker cluster: KGO_SEEDS=127.0.0.1:9092,127.0.0.2:9092,127.0.0.3:9092)
#
# Without KGO_SEEDS the script builds cmd/streambus-broker, starts it on free
# 127.0.0.1 ports with a temporary data directory, and stops it at the end.
# The compiled kgo test binary runs from kgo's source directory in the module
# cache, because one of its tests reads config.go from the working directory.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

work=$(mktemp -d)
broker_pid=
cleanup() {
	if [ -n "$broker_pid" ] && kill -0 "$broker_pid" 2>/dev/null; then
		kill -TERM "$broker_pid" 2>/dev/null || true
		wait "$broker_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

# free_port prints a 127.0.0.1 port nothing answers on.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return
		fi
	done
}

# ready reports whether GET /readyz on port $1 answers 200.
ready() {
	local status
	exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
	printf 'GET /readyz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
	IFS= read -r -t 2 status <&3 || status=
	exec 3<&- 3>&-
	[[ $status == *" 200"* ]]
}

if [ -z "${KGO_SEEDS:-}" ]; then
	echo "building cmd/streambus-broker" >&2
	go build -o "$work/streambus-broker" ./cmd/streambus-broker
	kport=$(free_port)
	hport=$(free_port)
	"$work/streambus-broker" --data-dir "$work/data" \
		--kafka-addr "127.0.0.1:$kport" --advertised-kafka-addr "127.0.0.1:$kport" \
		--http-addr "127.0.0.1:$hport" >"$work/broker.log" 2>&1 &
	broker_pid=$!
	for _ in $(seq 300); do
		ready "$hport" 2>/dev/null && break
		kill -0 "$broker_pid" 2>/dev/null || { cat "$work/broker.log" >&2; echo "broker exited" >&2; exit 1; }
		sleep 0.1
	done
	ready "$hport" 2>/dev/null || { cat "$work/broker.log" >&2; echo "broker not ready in 30s" >&2; exit 1; }
	export KGO_SEEDS="127.0.0.1:$kport"
	echo "broker pid $broker_pid on $KGO_SEEDS" >&2
fi

echo "compiling github.com/twmb/franz-go/pkg/kgo tests" >&2
go test -c -o "$work/kgo.test" github.com/twmb/franz-go/pkg/kgo
kgo_dir="$(go list -m -f '{{.Dir}}' github.com/twmb/franz-go)/pkg/kgo"

export KGO_TEST_RF="${KGO_TEST_RF:-1}"
export KGO_TEST_RECORDS="${KGO_TEST_RECORDS:-10000}"
set +e
# Transactions are not served yet: kgo retries a transactional
# InitProducerId's COORDINATOR_NOT_AVAILABLE forever, so TestTxn* would only
# run into the timeout. SUITE_SKIP='' runs them anyway.
(cd "$kgo_dir" && "$work/kgo.test" -test.v -test.timeout "${SUITE_TIMEOUT:-20m}" -test.skip "${SUITE_SKIP-TestTxn}" "$@") >"$work/suite.log" 2>&1
status=$?
set -e

# Top-level results only; subtests are indented.
grep -E '^--- (PASS|FAIL|SKIP)' "$work/suite.log" | sed -E 's/^--- (PASS|FAIL|SKIP): ([^ ]+) \((.*)\)/\1 \2 (\3)/' || true
logs="${TMPDIR:-/tmp}/franz-go-suite"
mkdir -p "$logs"
cp "$work/suite.log" "$logs/suite.log"
[ -z "$broker_pid" ] || cp "$work/broker.log" "$logs/broker.log"
if [ "$status" -ne 0 ]; then
	echo "---- distinct test log lines (first 60) ----"
	grep -E '^\s+[A-Za-z0-9_]+_test\.go:[0-9]+:' "$work/suite.log" | awk '!seen[$0]++' | head -n 60 || true
fi
echo "full logs: $logs/"
pass=$(grep -cE '^--- PASS' "$work/suite.log" || true)
fail=$(grep -cE '^--- FAIL' "$work/suite.log" || true)
skip=$(grep -cE '^--- SKIP' "$work/suite.log" || true)
echo "franz-go kgo suite: $pass passed, $fail failed, $skip skipped (exit $status)"
exit "$status"
