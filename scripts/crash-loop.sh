#!/usr/bin/env bash
# crash-loop.sh: the kill -9 crash tests (issue #10, as in issue #2) run
# again and again, each run reported, then "crash loop: X/N passed".
#
#   scripts/crash-loop.sh [RUNS]     (default 20)
#
# Environment:
#   RUNS     runs when no argument is given (default 20)
#   TESTS    the tests, a go test -run pattern (default: TestRestartAfterKill,
#            4 partitions, and TestKillUnderMultiPartitionLoad, 32 partitions)
#   TIMEOUT  go test -timeout of one run (default 10m)
#   OUT      where each run's output is kept (default: a new
#            /tmp/streambus-crash-loop.XXXX)
#
# Both tests kill -9 a broker while idempotent acks=all producers are
# writing, restart it on the same data directory and check that every
# acknowledged record is at its acknowledged offset, intact and stored
# once, twice per test (the second kill hits a log that was itself
# recovered). The integration tests are compiled once; each run is a fresh
# process of that binary, which builds the broker from the working tree as
# the harness always does, so keep the tree unchanged while the loop runs
# ($OUT/build.txt records what was built). A run passes when every test it
# names reports PASS: a failure, a skip, a timeout or a test that did not
# run fails it. The exit status is 1 if any run failed.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."
RUNS=${1:-${RUNS:-20}}
TESTS=${TESTS:-'^(TestRestartAfterKill|TestKillUnderMultiPartitionLoad)$'}
TIMEOUT=${TIMEOUT:-10m}
OUT=${OUT:-$(mktemp -d /tmp/streambus-crash-loop.XXXX)}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive number, not '$RUNS'" >&2; exit 2; }
mkdir -p "$OUT/runs"

go test -c -o "$OUT/integration.test" ./test/integration
REV=$(git describe --always --dirty 2>/dev/null || echo unknown)
{ echo "$REV built $(date -u +%FT%TZ)"; git status --short 2>/dev/null || true; } >"$OUT/build.txt"
# The tests that the pattern selects, to check that each one ran.
mapfile -t WANT < <(cd test/integration && "$OUT/integration.test" -test.list "$TESTS" 2>"$OUT/list.err")
((${#WANT[@]})) || { cat "$OUT/list.err" >&2; echo "TESTS=$TESTS selects no test" >&2; exit 2; }
echo "crash loop: $RUNS run(s) of ${WANT[*]} at $REV; output in $OUT/runs"

# verdict LOG: PASS, or why the run failed; and each test's own time.
verdict() {
	local log=$1 why= times= t line
	for t in "${WANT[@]}"; do
		line=$(grep -E "^--- (PASS|FAIL|SKIP): $t " "$log" | tail -1 || true)
		case $line in
		"--- PASS: "*) times+=" $t ${line##* }" ;;
		"") why+=" $t did not finish;" ;;
		*) why+=" ${line#--- };" ;;
		esac
	done
	if [[ -n $why ]]; then echo "FAIL:${why%;}"; else echo "PASS (${times# })"; fi
}

passed=0
durations=()
for i in $(seq "$RUNS"); do
	log=$OUT/runs/run$i.log
	start=$(date +%s.%N)
	(cd test/integration && "$OUT/integration.test" -test.run "$TESTS" -test.count 1 -test.v -test.timeout "$TIMEOUT") >"$log" 2>&1 || true
	took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}')
	durations+=("$took")
	v=$(verdict "$log")
	if [[ $v == PASS* ]]; then
		passed=$((passed + 1))
		echo "run $i/$RUNS: $v in ${took}s"
	else
		echo "run $i/$RUNS: $v in ${took}s; output: $log"
	fi
done

stats=$(printf '%s\n' "${durations[@]}" | sort -n | awk '{d[NR] = $1} END {printf "min %ss, median %ss, max %ss", d[1], d[int((NR + 1) / 2)], d[NR]}')
echo "crash loop: $passed/$RUNS passed (run time $stats)"
((passed == RUNS))
