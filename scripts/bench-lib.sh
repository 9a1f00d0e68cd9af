# bench-lib.sh - what every benchmark script shares; sourced, never run.
#
#   . "$(dirname "$0")/bench-lib.sh"
#   bench_begin NAME        # sets TMP (a fresh dir), PIDS, FAILS; traps
#
# NAME prefixes every message ("NAME: FAIL: ...").  The scripts set BIN
# (the bench tools' dir) before they call wait_ready.  Everything a script
# starts in the background goes in PIDS; the EXIT trap sends those a
# SIGTERM, waits for them, runs bench_cleanup_extra if the script defined
# it, and removes TMP.

bench_begin() {
	BENCH_NAME=$1
	TMP=$(mktemp -d "/tmp/cmdhost-$1.XXXXXX") || exit 1
	PIDS=""
	FAILS=""
	trap bench_cleanup EXIT
	trap 'echo "$BENCH_NAME: interrupted" >&2; exit 130' INT TERM HUP
}

bench_cleanup() {
	local p
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	for p in $PIDS; do wait "$p" 2>/dev/null; done
	if declare -F bench_cleanup_extra >/dev/null; then bench_cleanup_extra; fi
	rm -rf "$TMP"
}

# fail TEXT...: say it now, and list it again at the end ($FAILS).
fail() {
	echo "$BENCH_NAME: FAIL: $*" >&2
	FAILS="$FAILS
  $*"
}

# jget FIELD JSON: the value of a numeric field of a one-line JSON object
# (the first, if it occurs twice).
jget() {
	printf '%s\n' "$2" |
	    sed -n "s/.*\"$1\":\(-\{0,1\}[0-9.][0-9.e+-]*\).*/\1/p" | head -n 1
}

# div A B [FORMAT]: A/B, or "null" when either is missing or B is 0.
div() {
	awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN {
		if (a == "" || b == "" || a == "null" || b == "null" || b + 0 == 0)
			print "null"; else printf f "\n", a / b }'
}

# target NAME VALUE OP LIMIT: print one aim's line, met or MISSED, and
# add it to TARGETS_JSON.
target() {
	local v=$2 ok
	if [ "$v" = null ] || [ -z "$v" ]; then
		ok="n/a"
	else
		ok=$(awk -v v="$v" -v l="$4" -v op="$3" 'BEGIN {
			r = (op == ">=") ? v >= l : (op == "<=") ? v <= l : v < l
			print r ? "met" : "MISSED" }')
	fi
	printf '  %-46s %10s %2s %-8s %s\n' "$1" "$v" "$3" "$4" "$ok"
	TARGETS_JSON="$TARGETS_JSON${TARGETS_JSON:+,}{\"target\":\"$1\",\"value\":${v:-null},\"op\":\"$3\",\"limit\":$4,\"result\":\"$ok\"}"
}

load() { cut -d' ' -f1 /proc/loadavg; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
del_pid() { PIDS=$(printf '%s\n' $PIDS | grep -vx "$1" | tr '\n' ' '); }

# wait_ready SOCKET PID NAME: until SOCKET answers host.ping (20 s), or
# exit 1 showing what NAME wrote ($TMP/NAME.err or $TMP/NAME/stderr.log).
wait_ready() {
	local i
	for i in $(seq 400); do
		"$BIN/loadgen" -s "$1" -q '{"id":0,"command":"host.ping"}' \
		    >/dev/null 2>&1 && return 0
		kill -0 "$2" 2>/dev/null || break
		sleep 0.05
	done
	echo "$BENCH_NAME: $3 did not come up on $1" >&2
	[ -f "$TMP/$3.err" ] && tail -n 20 "$TMP/$3.err" >&2
	[ -f "$TMP/$3/stderr.log" ] && tail -n 20 "$TMP/$3/stderr.log" >&2
	exit 1
}
