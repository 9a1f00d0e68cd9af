#!/bin/bash
# bench-obs.sh - what metrics and logging cost: echo throughput of one
# optimized daemon build (A) with access_log off and (B) with access_log
# on, its lines going to a file, against (C) the same sources built with
# -DCMDHOST_NO_METRICS.  The three run in turn, ROUNDS times, and the
# ratios use the medians, so a drifting machine hurts all three alike.
# Each daemon runs one event loop pinned to the last CPU and the load
# generator is pinned to the first: on a 2-vCPU VM, two loops and a client
# (three busy threads on two CPUs) make the scheduler's noise larger than
# the few percent being measured.
# Usage: scripts/bench-obs.sh BUILD_DIR NOMETRICS_BUILD_DIR
# Env:   BENCH_OBS_SECONDS (default 1.5) per run; BENCH_OBS_ROUNDS (11):
#        short runs, many rounds, so that the slow phases of a shared VM
#        fall on every configuration alike.
# Writes BUILD_DIR/../bench-obs.json.  Only a non-OK or lost request
# fails it: the ratios are reported, not enforced.
set -u

[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR NOMETRICS_BUILD_DIR" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
NOMET=$(cd "$2" && pwd) || exit 2
OUT=$(dirname "$BUILD")/bench-obs.json
SECS=${BENCH_OBS_SECONDS:-1.5}
ROUNDS=${BENCH_OBS_ROUNDS:-11}
LOADGEN=$BUILD/bench/loadgen

for f in "$BUILD/cmdhostd" "$NOMET/cmdhostd" "$LOADGEN" \
    "$BUILD/plugins/echo.so"; do
	[ -e "$f" ] || { echo "bench-obs: missing $f (run make bench)" >&2; exit 2; }
done

. "$(dirname "$0")/bench-lib.sh"
bench_begin bench-obs
bench_cleanup_extra() { [ -n "${SHM:-}" ] && rm -f "$SHM"; }

# start NAME DAEMON EXTRA [LOG]: a daemon in $TMP/NAME with echo.so; its
# stderr (the log) goes to LOG, by default the file $TMP/NAME/log.
start() {
	local dir=$TMP/$1 i
	mkdir -p "$dir/plugins"
	cp "$BUILD/plugins/echo.so" "$dir/plugins/"
	printf '[host]\nsocket = cmdhost.sock\nplugin_dir = plugins\nworkers = 1\n%s\n' \
	    "$3" >"$dir/cmdhost.ini"
	LOGF[$1]=${4:-$dir/log}
	$PIN_DAEMON "$2" -c "$dir/cmdhost.ini" 2>>"${LOGF[$1]}" &
	PIDS="$PIDS $!"
	PID[$1]=$!
	for i in $(seq 200); do
		"$LOADGEN" -s "$dir/cmdhost.sock" -q '{"command":"host.ping"}' \
		    >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "bench-obs: $1 did not start" >&2
	exit 1
}

declare -A PID LOGF
PIN_DAEMON=""
PIN_CLIENT=""
NCPU=$(nproc)
if [ "$NCPU" -ge 2 ] && command -v taskset >/dev/null 2>&1; then
	PIN_DAEMON="taskset -c $((NCPU - 1))"
	PIN_CLIENT="taskset -c 0"
fi
# cpu_ticks PID: the process's user + system time, in clock ticks.
TICK=$(getconf CLK_TCK)

start nometrics "$NOMET/cmdhostd" ""
start metrics "$BUILD/cmdhostd" "access_log = false"
start access "$BUILD/cmdhostd" "access_log = true"
# The same, its log to a file in memory (tmpfs) and to /dev/null: how
# much of the access log's cost is the file system's.
SHM=$(mktemp /dev/shm/cmdhost-bench-obs.XXXXXX 2>/dev/null || echo "$TMP/shm.log")
start access_tmpfs "$BUILD/cmdhostd" "access_log = true" "$SHM"
start access_null "$BUILD/cmdhostd" "access_log = true" /dev/null

REQ='{"command":"echo","payload":{"msg":"hello"}}'
declare -A RPS CPU
echo "bench-obs: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)," \
    "$ROUNDS rounds of ${SECS}s, echo c=16 p=32, one event loop${PIN_DAEMON:+ (daemon: $PIN_DAEMON, client: $PIN_CLIENT)}"
for r in $(seq "$ROUNDS"); do
	for name in nometrics metrics access access_tmpfs access_null; do
		t0=$(cpu_ticks "${PID[$name]}")
		line=$($PIN_CLIENT "$LOADGEN" -s "$TMP/$name/cmdhost.sock" -c 16 -p 32 \
		    -d "$SECS" -w 0.2 -r "$REQ" 2>"$TMP/err")
		t1=$(cpu_ticks "${PID[$name]}")
		if [ "$(jget non_ok "$line")" != 0 ] || [ "$(jget lost "$line")" != 0 ]; then
			FAILS="$FAILS $name:round$r"
			echo "bench-obs: $name round $r: $line $(cat "$TMP/err")" >&2
		fi
		# The daemon's CPU per request, warm-up included on both sides
		# (loadgen sends through it too): less noisy than rps when
		# others share the machine.
		cpr=$(awk -v t="$((t1 - t0))" -v hz="$TICK" -v n="$(jget requests "$line")" \
		    -v w="$(jget warmup_requests "$line")" -v rps="$(jget rps "$line")" \
		    -v s="$SECS" 'BEGIN { tot = rps * (s + 0.2); if (tot > 0)
			printf "%.3f", t / hz * 1e6 / tot; else print "null" }')
		# Empty the log after each run (the daemon appends, so it
		# starts again at 0): a few GB of access log would otherwise
		# fill the page cache, and the kernel's write-back throttling
		# would measure this VM's disk, and slow every daemon.
		if [ -f "${LOGF[$name]}" ]; then
			LOG_LINES=$((${LOG_LINES:-0} + $(wc -l <"${LOGF[$name]}")))
			: >"${LOGF[$name]}"
		fi
		RPS[$name]="${RPS[$name]:-} $(jget rps "$line")"
		CPU[$name]="${CPU[$name]:-} $cpr"
		printf '  round %d %-10s %10s rps  %6s µs CPU/request\n' "$r" "$name" \
		    "$(jget rps "$line")" "$cpr"
	done
done

median() {
	printf '%s\n' $1 | sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) print "null"; else if (NR % 2) print v[(NR + 1) / 2];
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
M_NOMET=$(median "${RPS[nometrics]}")
M_MET=$(median "${RPS[metrics]}")
M_ACC=$(median "${RPS[access]}")
M_SHM=$(median "${RPS[access_tmpfs]}")
M_NULL=$(median "${RPS[access_null]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 == 0) print "null"; else printf "%.3f\n", a / b }'; }
# paired A B: the median of the per-round ratios A[r] / B[r].  The rounds
# pair the builds in time, so a slow phase of the machine (they come and
# go on this VM, for every daemon at once) cancels out of each ratio.
paired() {
	local a=($1) b=($2) r out=""
	for r in "${!a[@]}"; do
		out="$out $(ratio "${a[$r]}" "${b[$r]:-0}")"
	done
	median "$out" | awk '{ printf "%.3f\n", $1 }'
}
R_MET=$(paired "${RPS[metrics]}" "${RPS[nometrics]}")
R_ACC=$(paired "${RPS[access]}" "${RPS[nometrics]}")
C_NOMET=$(median "${CPU[nometrics]}")
C_MET=$(median "${CPU[metrics]}")
C_ACC=$(median "${CPU[access]}")
C_SHM=$(median "${CPU[access_tmpfs]}")
C_NULL=$(median "${CPU[access_null]}")
# CPU ratios inverted, so that like rps higher is better.
RC_MET=$(paired "${CPU[nometrics]}" "${CPU[metrics]}")
RC_ACC=$(paired "${CPU[nometrics]}" "${CPU[access]}")
R_SHM=$(paired "${RPS[access_tmpfs]}" "${RPS[nometrics]}")
R_NULL=$(paired "${RPS[access_null]}" "${RPS[nometrics]}")


echo
echo "observability cost (rps: medians; rps ratios: medians of the per-round ratios; $ROUNDS runs, echo c=16 p=32):"
printf '  %-40s %10s rps %7s µs CPU/req\n' "metrics compiled out" "$M_NOMET" "$C_NOMET"
printf '  %-40s %10s rps %7s µs CPU/req  ratios: rps %s, CPU %s (target >= 0.97)\n' \
    "metrics, access_log = false" "$M_MET" "$C_MET" "$R_MET" "$RC_MET"
printf '  %-40s %10s rps %7s µs CPU/req  ratios: rps %s, CPU %s (target >= 0.85)\n' \
    "metrics, access_log = true (to a file)" "$M_ACC" "$C_ACC" "$R_ACC" "$RC_ACC"
printf '  %-40s %10s rps %7s µs CPU/req  ratio: rps %s\n' \
    "  the same, log on tmpfs" "$M_SHM" "$C_SHM" "$R_SHM"
printf '  %-40s %10s rps %7s µs CPU/req  ratio: rps %s\n' \
    "  the same, log to /dev/null" "$M_NULL" "$C_NULL" "$R_NULL"
echo "  access log: $LOG_LINES lines written to files (each emptied after its run)"

# Instructions per request under callgrind: the same three builds, counted
# from when the daemon is ready (counters zeroed) until it stops.  Unlike time, the count
# does not move with whatever else the machine is doing.
IR_NOMET=null IR_MET=null IR_ACC=null
if command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1; then
	# ir NAME DAEMON EXTRA: prints instructions per request, or null.
	ir() {
		local dir=$TMP/cg-$1 i pid line n tot
		mkdir -p "$dir/plugins"
		cp "$BUILD/plugins/echo.so" "$dir/plugins/"
		printf '[host]\nsocket = cmdhost.sock\nplugin_dir = plugins\nworkers = 1\n%s\n' \
		    "$3" >"$dir/cmdhost.ini"
		valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
		    "$2" -c "$dir/cmdhost.ini" 2>"$dir/log" &
		pid=$!
		PIDS="$PIDS $pid"
		for i in $(seq 300); do
			"$LOADGEN" -s "$dir/cmdhost.sock" -q '{"command":"host.ping"}' \
			    >/dev/null 2>&1 && break
			sleep 0.1
		done
		callgrind_control -z "$pid" >/dev/null 2>&1 # count from here
		line=$("$LOADGEN" -s "$dir/cmdhost.sock" -c 16 -p 32 -d 3 -w 0 \
		    -r "$REQ" 2>/dev/null)
		kill -TERM "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		n=$(jget requests "$line")
		tot=$(awk '/^summary:/ { print $2 }' "$dir/cg.out" 2>/dev/null)
		awk -v t="$tot" -v n="$n" 'BEGIN { if (t == "" || n + 0 == 0)
			print "null"; else printf "%.0f\n", t / n }'
	}
	IR_NOMET=$(ir nometrics "$NOMET/cmdhostd" "")
	IR_MET=$(ir metrics "$BUILD/cmdhostd" "access_log = false")
	IR_ACC=$(ir access "$BUILD/cmdhostd" "access_log = true")
	RI_MET=$(ratio "$IR_NOMET" "$IR_MET")
	RI_ACC=$(ratio "$IR_NOMET" "$IR_ACC")
	echo "instructions per request (callgrind, user space only):"
	printf '  %-40s %10s\n' "metrics compiled out" "$IR_NOMET"
	printf '  %-40s %10s  ratio %s\n' "metrics, access_log = false" "$IR_MET" "$RI_MET"
	printf '  %-40s %10s  ratio %s\n' "metrics, access_log = true (to a file)" "$IR_ACC" "$RI_ACC"
else
	RI_MET=null RI_ACC=null
	echo "bench-obs: valgrind not installed: no instruction counts"
fi

printf '{"date":"%s","rounds":%s,"seconds":%s,"rps":{"nometrics":[%s],"metrics":[%s],"access_log":[%s]},"median":{"nometrics":%s,"metrics":%s,"access_log":%s},"ratio":{"metrics_vs_nometrics":%s,"access_log_vs_nometrics":%s},"cpu_us_per_request":{"nometrics":%s,"metrics":%s,"access_log":%s},"cpu_ratio":{"metrics_vs_nometrics":%s,"access_log_vs_nometrics":%s},"access_log_tmpfs":{"rps":%s,"cpu_us":%s,"ratio":%s},"access_log_null":{"rps":%s,"cpu_us":%s,"ratio":%s},"access_log_lines":%s,"instructions_per_request":{"nometrics":%s,"metrics":%s,"access_log":%s},"instructions_ratio":{"metrics_vs_nometrics":%s,"access_log_vs_nometrics":%s}}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ROUNDS" "$SECS" \
    "$(echo ${RPS[nometrics]} | tr ' ' ,)" "$(echo ${RPS[metrics]} | tr ' ' ,)" \
    "$(echo ${RPS[access]} | tr ' ' ,)" "$M_NOMET" "$M_MET" "$M_ACC" \
    "$R_MET" "$R_ACC" "$C_NOMET" "$C_MET" "$C_ACC" "$RC_MET" "$RC_ACC" \
    "$M_SHM" "$C_SHM" "$R_SHM" "$M_NULL" "$C_NULL" "$R_NULL" \
    "$LOG_LINES" "$IR_NOMET" "$IR_MET" "$IR_ACC" "$RI_MET" "$RI_ACC" >"$OUT"
echo "bench-obs: wrote $OUT"
[ -z "$FAILS" ] || { echo "bench-obs: FAILED:$FAILS" >&2; exit 1; }
exit 0
