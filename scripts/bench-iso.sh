#!/bin/bash
# bench-iso.sh - what isolation costs besides a call (docs/isolation.md):
# the respawn time of an isolated plugin (its worker killed by a crash to
# the first answer from the new one, tests/bench/respawnbench.c) and the
# load probe's cost per load (the duration the daemon logs for each probe,
# over N starts with one in-process plugin).
# Usage: scripts/bench-iso.sh BUILD_DIR   (make bench runs it on build/bench)
# Env:   BENCH_ISO_ROUNDS (default 200) respawns; BENCH_ISO_STARTS (20).
set -u

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
ROUNDS=${BENCH_ISO_ROUNDS:-200}
STARTS=${BENCH_ISO_STARTS:-20}
for f in "$BUILD/cmdhostd" "$BUILD/bench/respawnbench" "$BUILD/bench/loadgen" \
    "$BUILD/tests/plugins/crashy.so" "$BUILD/plugins/echo.so"; do
	[ -e "$f" ] || { echo "bench-iso: missing $f (run make bench)" >&2; exit 2; }
done
TMP=$(mktemp -d /tmp/cmdhost-bench-iso.XXXXXX) || exit 1
PID=""
trap '[ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$TMP"' EXIT

# start CONFIG_EXTRA PLUGIN...: a daemon in $TMP/d, until it answers.
start() {
	local extra=$1 i
	shift
	rm -rf "$TMP/d"; mkdir -p "$TMP/d/plugins"
	cp "$@" "$TMP/d/plugins/"
	printf '[host]\nsocket = s.sock\nplugin_dir = plugins\nworkers = 0\n%s\n' \
	    "$extra" >"$TMP/d/cmdhost.ini"
	"$BUILD/cmdhostd" -c "$TMP/d/cmdhost.ini" 2>"$TMP/d/stderr.log" &
	PID=$!
	for i in $(seq 1000); do
		"$BUILD/bench/loadgen" -s "$TMP/d/s.sock" \
		    -q '{"command":"host.ping"}' >/dev/null 2>&1 && return 0
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.01
	done
	echo "bench-iso: daemon did not start:" >&2
	cat "$TMP/d/stderr.log" >&2
	exit 1
}

stop() {
	kill -TERM "$PID"; wait "$PID"; PID=""
}

echo "== respawn: crashy.segv then crashy.ok, workers = 1, $ROUNDS rounds"
start "[plugin:crashy]
isolation = process
workers = 1" "$BUILD/tests/plugins/crashy.so"
RESPAWN=$("$BUILD/bench/respawnbench" -s "$TMP/d/s.sock" -n "$ROUNDS") || exit 1
stop
echo "$RESPAWN"

# The probe's own figure: the daemon logs each probe's duration at debug.
echo "== probe: $STARTS starts with echo.so, the logged probe time"
: >"$TMP/probe"
for i in $(seq "$STARTS"); do
	start "probe = true
log_level = debug" "$BUILD/plugins/echo.so"
	stop
	sed -n 's/.*"message":"plugin file probed".*"duration_ms":\([0-9.]*\).*/\1/p;
	    s/.*"duration_ms":\([0-9.]*\).*"message":"plugin file probed".*/\1/p' \
	    "$TMP/d/stderr.log" >>"$TMP/probe"
done
N=$(wc -l <"$TMP/probe")
[ "$N" -gt 0 ] || { echo "bench-iso: no probe line in the log" >&2; exit 1; }
P50=$(sort -n "$TMP/probe" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
MAX=$(sort -n "$TMP/probe" | tail -n 1)
printf '{"probes":%d,"probe_p50_ms":%s,"probe_max_ms":%s}\n' "$N" "$P50" "$MAX"
