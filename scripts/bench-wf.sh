#!/bin/bash
# bench-wf.sh - what a workflow step costs: a three-step workflow of echo
# steps against three direct echo calls, in the same run, with the
# workflow store's durability at each level (workflow_synchronous off,
# normal, full).  Each configuration is its own daemon (echo.so, one
# event loop pinned to the last CPU, the load generator to the first);
# they run in turn, ROUNDS times, and the figures are the medians.
#   latency: one connection, one request at a time: the time of one
#     workflow call against three echo calls one after the other; the
#     overhead per step is (workflow - 3 x echo) / 3.
#   throughput: 4 connections x 16 in flight: executions/s against
#     echo calls/s / 3, and the CPU time the daemon spends per step.
# Usage: scripts/bench-wf.sh BUILD_DIR      (make bench runs it)
# Env:   BENCH_WF_SECONDS (default 2) per run; BENCH_WF_ROUNDS (3).
# Writes BUILD_DIR/../bench-wf.json.  Only a non-OK or lost request fails
# it: the figures are reported, not enforced.
set -u

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
OUT=$(dirname "$BUILD")/bench-wf.json
SECS=${BENCH_WF_SECONDS:-2}
ROUNDS=${BENCH_WF_ROUNDS:-3}
LOADGEN=$BUILD/bench/loadgen
for f in "$BUILD/cmdhostd" "$LOADGEN" "$BUILD/plugins/echo.so"; do
	[ -e "$f" ] || { echo "bench-wf: missing $f (run make bench)" >&2; exit 2; }
done

. "$(dirname "$0")/bench-lib.sh"
bench_begin bench-wf
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

PIN_DAEMON=""
PIN_CLIENT=""
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	PIN_DAEMON="taskset -c $((NCPU - 1))"
	PIN_CLIENT="taskset -c 0"
fi
TICK=$(getconf CLK_TCK)

declare -A PID
# start NAME SYNC: a daemon in $TMP/NAME with echo.so and the workflow
# "three" (three echo Tasks, each result kept), its store at SYNC.
start() {
	local dir=$TMP/$1 i
	mkdir -p "$dir/plugins" "$dir/wf" "$dir/state"
	cp "$BUILD/plugins/echo.so" "$dir/plugins/"
	cat >"$dir/wf/three.json" <<'EOF'
{"StartAt": "A", "States": {
  "A": {"Type": "Task", "Resource": "echo", "ResultPath": "$.a", "Next": "B"},
  "B": {"Type": "Task", "Resource": "echo", "ResultPath": "$.b", "Next": "C"},
  "C": {"Type": "Task", "Resource": "echo", "ResultPath": "$.c", "End": true}}}
EOF
	printf '[host]\nsocket = cmdhost.sock\nplugin_dir = plugins\nworkers = 1\nstate_dir = state\nworkflow_dir = wf\nworkflow_synchronous = %s\nworkflow_max_running = 100000\nlog_level = warn\n' \
	    "$2" >"$dir/cmdhost.ini"
	(cd "$dir" && exec $PIN_DAEMON "$BUILD/cmdhostd" -c cmdhost.ini \
	    2>>"$dir/log") &
	PIDS="$PIDS $!"
	PID[$1]=$!
	for i in $(seq 200); do
		"$LOADGEN" -s "$dir/cmdhost.sock" -q \
		    '{"command":"three","payload":{}}' 2>/dev/null |
		    grep -q '"status":200' && return 0
		sleep 0.05
	done
	echo "bench-wf: $1 did not start" >&2
	cat "$dir/log" >&2
	exit 1
}

FAILS=""
# run NAME CONNS PIPELINE TEMPLATE: one measured run; prints its JSON
# line with the daemon's CPU ticks added.
run() {
	local dir=$TMP/$1 out t0 t1
	t0=$(cpu_ticks "${PID[$1]}")
	out=$($PIN_CLIENT "$LOADGEN" -s "$dir/cmdhost.sock" -c "$2" -p "$3" \
	    -d "$SECS" -w 0.3 -r "$4")
	t1=$(cpu_ticks "${PID[$1]}")
	if [ "$(jget non_ok "$out")" != 0 ] || [ "$(jget lost "$out")" != 0 ]; then
		FAILS="$FAILS $1"
		echo "bench-wf: FAIL: $1: $out" >&2
	fi
	printf '%s,"daemon_ticks":%s}\n' "${out%\}}" "$((t1 - t0))"
}

ECHO='{"command":"echo","payload":{"n":1}}'
WF='{"command":"three","payload":{"n":1}}'
SYNCS="off normal full"
for s in $SYNCS; do start "$s" "$s"; done

declare -A LAT_E LAT_W TPS_E TPS_W CPU_E CPU_W
for r in $(seq "$ROUNDS"); do
	for s in $SYNCS; do
		o=$(run "$s" 1 1 "$ECHO"); LAT_E[$s]="${LAT_E[$s]:-} $(jget rps "$o")"
		o=$(run "$s" 1 1 "$WF"); LAT_W[$s]="${LAT_W[$s]:-} $(jget rps "$o")"
		o=$(run "$s" 4 16 "$ECHO")
		TPS_E[$s]="${TPS_E[$s]:-} $(jget rps "$o")"
		CPU_E[$s]="${CPU_E[$s]:-} $(awk -v t="$(jget daemon_ticks "$o")" \
		    -v n="$(jget requests "$o")" -v k="$TICK" \
		    'BEGIN { printf "%.2f", n ? t / k / n * 1e6 : 0 }')"
		o=$(run "$s" 4 16 "$WF")
		TPS_W[$s]="${TPS_W[$s]:-} $(jget rps "$o")"
		CPU_W[$s]="${CPU_W[$s]:-} $(awk -v t="$(jget daemon_ticks "$o")" \
		    -v n="$(jget requests "$o")" -v k="$TICK" \
		    'BEGIN { printf "%.2f", n ? t / k / n * 1e6 : 0 }')"
	done
done

printf '\n%-8s %12s %12s %12s %11s | %10s %10s %9s %11s %11s\n' \
    sync "3 echo us" "wf us" "+us/step" "x direct" "echo/s/3" "wf/s" \
    "wf/(e/3)" "cpu us/stp" "(echo)"
JSON="{\"seconds\":$SECS,\"rounds\":$ROUNDS,\"steps\":3,\"levels\":{"
first=1
for s in $SYNCS; do
	le=$(median ${LAT_E[$s]}); lw=$(median ${LAT_W[$s]})
	te=$(median ${TPS_E[$s]}); tw=$(median ${TPS_W[$s]})
	ce=$(median ${CPU_E[$s]}); cw=$(median ${CPU_W[$s]})
	# Latency from rps at one request in flight: 1e6 / rps us each.
	line=$(awk -v le="$le" -v lw="$lw" -v te="$te" -v tw="$tw" \
	    -v ce="$ce" -v cw="$cw" 'BEGIN {
		e3 = 3 * 1e6 / le; w = 1e6 / lw; step = (w - e3) / 3
		printf "%.1f %.1f %.1f %.2f %.0f %.0f %.4f %.1f %.1f",
		    e3, w, step, w / e3, te / 3, tw, tw / (te / 3), cw / 3, ce }')
	set -- $line
	printf '%-8s %12s %12s %12s %11s | %10s %10s %9s %11s %11s\n' \
	    "$s" "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "$9"
	[ $first = 1 ] || JSON="$JSON,"
	first=0
	JSON="$JSON\"$s\":{\"three_echo_us\":$1,\"workflow_us\":$2,\"overhead_us_per_step\":$3,\"latency_ratio\":$4,\"echo_calls_per_s_div3\":$5,\"workflow_per_s\":$6,\"throughput_ratio\":$7,\"daemon_cpu_us_per_step\":$8,\"daemon_cpu_us_per_echo\":$9}"
done
JSON="$JSON},\"fails\":\"${FAILS# }\"}"
printf '%s\n' "$JSON" >"$OUT"
echo
echo "bench-wf: wrote $OUT"
[ -z "$FAILS" ] || exit 1
