#!/bin/bash
# bench-events.sh - the cost of emitting: echo that emits one event per
# call (tests/plugins/emit_echo.so) against plain echo, with the event
# routed to a local command (the embedded outbox) and published to a
# JetStream stream (NATS), at c=16 p=1 and c=16 p=32.  After each
# emitting run it waits for the outbox to drain and checks that every
# event was delivered.  Prints a table and the ratios; writes JSON to
# build/bench-events.json.
# Usage: scripts/bench-events.sh BUILD_DIR  (make bench runs it on build/bench)
# Env:   BENCH_SECONDS (default 5) measured seconds per scenario.
set -u

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$BUILD/bench
OUT=$(dirname "$BUILD")/bench-events.json
SECS=${BENCH_SECONDS:-5}
WARM=0.5
LOADS="16:1 16:32"

for f in "$BUILD/cmdhostd" "$BIN/loadgen" "$BUILD/plugins/echo.so" \
    "$BUILD/tests/plugins/emit_echo.so"; do
	[ -e "$f" ] || { echo "bench-events: missing $f (run make bench)" >&2; exit 2; }
done

. "$(dirname "$0")/bench-lib.sh"
bench_begin bench-events

q() { "$BIN/loadgen" -s "$1" -q "$2" 2>/dev/null; }

# start_daemon NAME EXTRA_CONFIG PLUGIN...; sets PID_NAME, SOCK_NAME.
start_daemon() {
	local name=$1 extra=$2 dir=$TMP/$1 i
	shift 2
	mkdir -p "$dir/plugins"
	cp "$@" "$dir/plugins/"
	cat >"$dir/cmdhost.ini" <<EOF
[host]
socket = cmdhost.sock
plugin_dir = plugins
workers = 0
$extra
EOF
	"$BUILD/cmdhostd" -c "$dir/cmdhost.ini" 2>"$dir/stderr.log" &
	eval "PID_$name=$!"
	eval "SOCK_$name=$dir/cmdhost.sock"
	PIDS="$PIDS $!"
	for i in $(seq 200); do
		q "$dir/cmdhost.sock" '{"command":"host.ping"}' | grep -q '"status":200' &&
		    return 0
		kill -0 "$!" 2>/dev/null || break
		sleep 0.05
	done
	echo "bench-events: $name did not come up" >&2
	tail -n 20 "$dir/stderr.log" >&2
	exit 1
}

stop_daemon() { # PID NAME
	kill -TERM "$1" 2>/dev/null
	wait "$1"
	local rc=$?
	del_pid "$1"
	[ "$rc" -eq 0 ] || fail "$2 exited with status $rc"
}

declare -A R OKRPS
JSON=""
run() { # KEY LABEL SOCKET C P TEMPLATE
	local line
	line=$("$BIN/loadgen" -s "$3" -c "$4" -p "$5" -d "$SECS" -w "$WARM" \
	    -r "$6" 2>"$TMP/loadgen.err")
	case $line in '{'*) ;; *) line='{"error":"loadgen failed"}'
	    cat "$TMP/loadgen.err" >&2 ;; esac
	R[$1]=$line
	JSON="$JSON${JSON:+,}\"$1\":$line"
	# An emitting call may be refused 503 when the outbox is full (its
	# delivery is slower than the calls): counted and shown, the
	# design's back-pressure, not a failure.  Anything else fails.
	local nok full
	nok=$(jget non_ok "$line")
	full=0
	if [ -n "$nok" ] && [ "$nok" != 0 ]; then
		case $line in
		*'outbox is full'*) full=$nok ;;
		*) fail "$2: $line" ;;
		esac
	fi
	[ "$(jget lost "$line")" = 0 ] || fail "$2: $line"
	OKRPS[$1]=$(awk -v ok="$(jget ok "$line")" -v s="$(jget seconds "$line")" \
	    'BEGIN { if (s + 0 > 0) printf "%d", ok / s; else print "" }')
	printf '  %-30s %9s ok/s  p50 %6s  p99 %6s µs%s\n' "$2" \
	    "${OKRPS[$1]}" "$(jget p50_us "$line")" "$(jget p99_us "$line")" \
	    "$([ "$full" != 0 ] && echo "  ($full refused 503: outbox full)")"
}

# drain NAME SOCKET: wait (120 s) until nothing is pending; print counts.
drain() {
	local st i pend
	for i in $(seq 1200); do
		st=$(q "$2" '{"command":"host.stats"}')
		pend=$(printf '%s' "$st" | sed -n 's/.*"events":{[^}]*"pending":\([0-9]*\).*/\1/p')
		[ "$pend" = 0 ] && break
		sleep 0.1
	done
	EMITTED=$(printf '%s' "$st" | sed -n 's/.*"events":{"emitted":\([0-9]*\).*/\1/p')
	DELIVERED=$(printf '%s' "$st" | sed -n 's/.*"events":{[^}]*"delivered":\([0-9]*\).*/\1/p')
	DEAD=$(printf '%s' "$st" | sed -n 's/.*"events":{[^}]*"dead":\([0-9]*\).*/\1/p')
	echo "  $1: emitted $EMITTED, delivered $DELIVERED, pending ${pend:-?}, dead ${DEAD:-?}"
	[ "$pend" = 0 ] || fail "$1: events still pending: $pend"
	[ "$EMITTED" = "$DELIVERED" ] || fail "$1: emitted $EMITTED, delivered $DELIVERED"
	JSON="$JSON${JSON:+,}\"$1.events\":{\"emitted\":${EMITTED:-null},\"delivered\":${DELIVERED:-null},\"pending\":${pend:-null}}"
}

SMALL='{"command":"echo","payload":{"msg":"hello"}}'
EMIT='{"command":"emit.echo","payload":{"msg":"hello"}}'
echo "bench-events: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), ${SECS}s per scenario"

echo "== plain echo"
start_daemon plain "" "$BUILD/plugins/echo.so"
for cp in $LOADS; do
	c=${cp%%:*}; p=${cp#*:}
	run "plain.c${c}p$p" "echo c=$c p=$p" "$SOCK_plain" "$c" "$p" "$SMALL"
done
stop_daemon "$PID_plain" plain

echo "== emit + route (embedded outbox, consumer: echo)"
start_daemon route "[events]
window = 32
[route:bench.ev]
command = echo" "$BUILD/plugins/echo.so" "$BUILD/tests/plugins/emit_echo.so"
for cp in $LOADS; do
	c=${cp%%:*}; p=${cp#*:}
	run "route.c${c}p$p" "emit+route c=$c p=$p" "$SOCK_route" "$c" "$p" "$EMIT"
done
drain route "$SOCK_route"
stop_daemon "$PID_route" route

NATS_OK=""
if command -v nats-server >/dev/null 2>&1 && command -v node >/dev/null 2>&1 &&
    [ -e "$BUILD/lib/cmdhost-nats.so" ] && [ -d "$SRC/tests/nats/node_modules" ]; then
	for try in 1 2 3 4 5; do
		NATS_PORT=$((20000 + RANDOM % 40000))
		(exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && continue
		nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$TMP/nats-store" \
		    >"$TMP/nats-server.log" 2>&1 &
		NATS_PID=$!
		for i in $(seq 100); do
			(exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
			sleep 0.05
		done
		kill -0 "$NATS_PID" 2>/dev/null && { NATS_OK=1; break; }
	done
fi
if [ -n "$NATS_OK" ]; then
	PIDS="$PIDS $NATS_PID"
	URL=nats://127.0.0.1:$NATS_PORT
	node "$SRC/tests/nats/stream.js" "$URL" BENCH 'bench.>' >/dev/null ||
	    fail "cannot add the JetStream stream"
	echo "== emit + NATS (JetStream stream BENCH on bench.>)"
	start_daemon nats "[nats]
url = $URL
[events]
window = 32" "$BUILD/plugins/echo.so" "$BUILD/tests/plugins/emit_echo.so"
	for cp in $LOADS; do
		c=${cp%%:*}; p=${cp#*:}
		run "nats.c${c}p$p" "emit+JetStream c=$c p=$p" "$SOCK_nats" "$c" "$p" "$EMIT"
	done
	drain nats "$SOCK_nats"
	MSGS=$(node "$SRC/tests/nats/stream.js" "$URL" BENCH x info | sed -n 's/.*"messages":\([0-9]*\).*/\1/p')
	echo "  the stream holds $MSGS messages"
	[ "$MSGS" = "$EMITTED" ] || fail "stream holds $MSGS, emitted $EMITTED"
	stop_daemon "$PID_nats" nats
	kill -TERM "$NATS_PID"; wait "$NATS_PID" 2>/dev/null; del_pid "$NATS_PID"
else
	echo "== emit + NATS: skipped (needs nats-server, node, tests/nats/node_modules, cmdhost-nats.so)"
fi

echo
echo "ratios (emitting echo / plain echo, calls answered 200 per second):"
RATIOS=""
for k in route nats; do
	for cp in $LOADS; do
		c=${cp%%:*}; p=${cp#*:}
		[ -n "${R[$k.c${c}p$p]:-}" ] || continue
		r=$(div "${OKRPS[$k.c${c}p$p]}" "${OKRPS[plain.c${c}p$p]}")
		printf '  %-6s c=%s p=%-3s %s\n' "$k" "$c" "$p" "$r"
		RATIOS="$RATIOS${RATIOS:+,}\"$k.c${c}p$p\":$r"
	done
done
printf '{"date":"%s","seconds":%s,"results":{%s},"ratios":{%s},"ok":%s}\n' \
    "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$SECS" "$JSON" "$RATIOS" \
    "$([ -z "$FAILS" ] && echo true || echo false)" >"$OUT"
echo "bench-events: wrote $OUT"
[ -z "$FAILS" ] || { echo "bench-events: FAILED:$FAILS" >&2; exit 1; }
exit 0
