#!/bin/bash
# bench-curves.sh - the command-count and loop-count curves of issue 19.
# Commands: tests/plugins/many.so registering N = 1, 10, 100, 1000 (and
# 10000 for the load time and memory) commands; for each N the time
# host.reload takes to load it (watch = false), the daemon's resident
# memory before and after, rps of calls to its last command and to
# echo.so's echo in turn (so that each is a lookup in the table, not in
# a loop's cache of its last command) at c=16 p=32 and c=1 p=1, and
# host.list's latency and size; then, under callgrind
# (if valgrind is there), instructions per call at N=1 and N=1000.
# Loops: the echo plugin with workers = 1 and 2 at c=1, c=16 p=1 and
# c=16 p=32, against the transport floor (one thread) in the same run.
# Prints the tables with ratios and writes build/bench-curves.json.
# Usage: scripts/bench-curves.sh BUILD_DIR   (make bench runs it)
# Env:   BENCH_SECONDS (default 2) seconds per figure.
set -u

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$BUILD/bench
OUT=$(dirname "$BUILD")/bench-curves.json
SECS=${BENCH_SECONDS:-2}
WARM=0.5
MANY=$BUILD/tests/plugins/many.so

for f in "$BUILD/cmdhostd" "$BIN/loadgen" "$BIN/floor_transport" \
    "$BUILD/plugins/echo.so" "$MANY"; do
	[ -e "$f" ] || { echo "bench-curves: missing $f (run make bench)" >&2; exit 2; }
done

. "$(dirname "$0")/bench-lib.sh"
bench_begin bench-curves

declare -A R
JSON=""
# run KEY LABEL SOCKET CONNS PIPELINE TEMPLATE [TEMPLATE2]: with two
# templates the requests take them in turn.
run() {
	local line
	line=$("$BIN/loadgen" -s "$3" -c "$4" -p "$5" -d "$SECS" -w "$WARM" \
	    -r "$6" ${7:+-r "$7"} 2>"$TMP/loadgen.err")
	case $line in
	'{'*) ;;
	*) line='{"error":"loadgen failed"}'; cat "$TMP/loadgen.err" >&2 ;;
	esac
	R[$1]=$line
	R[$1.load]=$(load)
	JSON="$JSON${JSON:+,}\"$1\":$line"
	if [ "$(jget non_ok "$line")" != 0 ] || [ "$(jget lost "$line")" != 0 ]; then
		fail "$2: $line"
	fi
	printf '  %-34s %9s rps  p50 %7s  p99 %7s µs  load %s\n' "$2" \
	    "$(jget rps "$line")" "$(jget p50_us "$line")" \
	    "$(jget p99_us "$line")" "${R[$1.load]}"
}

# daemon NAME WORKERS PLUGIN-SO-OR-EMPTY EXTRA-CONFIG: start one in
# $TMP/NAME; sets DPID and DSOCK.
daemon() {
	mkdir -p "$TMP/$1/plugins"
	[ -n "$3" ] && cp "$3" "$TMP/$1/plugins/"
	printf '[host]\nsocket = cmdhost.sock\nplugin_dir = plugins\nworkers = %s\n%s\n' \
	    "$2" "$4" >"$TMP/$1/cmdhost.ini"
	"$BUILD/cmdhostd" -c "$TMP/$1/cmdhost.ini" 2>"$TMP/$1.err" &
	DPID=$!; PIDS="$PIDS $DPID"
	DSOCK=$TMP/$1/cmdhost.sock
	wait_ready "$DSOCK" "$DPID" "$1"
}
stop() { # PID
	kill -TERM "$1"; wait "$1" || fail "cmdhostd exited with status $?"
	PIDS=$(printf '%s\n' $PIDS | grep -vx "$1" | tr '\n' ' ')
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench-curves: $(nproc) CPUs, load average $LOAD0, ${SECS}s per figure"

# ---------------------------------------------------------- command count
NS="1 10 100 1000"
NS_LOAD="$NS 10000"
# Calls alternate between many.so's last command and echo.so's echo:
# a loop keeps only the last command it found, so every call here is a
# lookup in the table, not in that cache.
ECHO_TPL='{"command":"echo","payload":{"msg":"hello"}}'
echo "== curve: registered commands (many.so), calls to the last one and echo in turn"
for n in $NS_LOAD; do
	daemon "many$n" 0 "$BUILD/plugins/echo.so" "watch = false
load_timeout_ms = 60000
[plugin:many]
commands = $n"
	R[cmds.$n.rss0]=$(rss_kib "$DPID")
	cp "$MANY" "$TMP/many$n/plugins/"
	t0=$(now_us)
	rep=$("$BIN/loadgen" -s "$DSOCK" -q '{"command":"host.reload"}')
	t1=$(now_us)
	case $rep in *'"loaded":["many.so"]'*) ;; *) fail "N=$n: host.reload: $rep" ;; esac
	R[cmds.$n.load_ms]=$(awk -v d=$((t1 - t0)) 'BEGIN { printf "%.1f", d / 1000 }')
	R[cmds.$n.rss1]=$(rss_kib "$DPID")
	list=$("$BIN/loadgen" -s "$DSOCK" -q '{"command":"host.list"}')
	R[cmds.$n.list_bytes]=${#list}
	printf '  N=%-6s load (host.reload) %8s ms  RSS %s -> %s KiB  host.list %s B\n' \
	    "$n" "${R[cmds.$n.load_ms]}" "${R[cmds.$n.rss0]}" \
	    "${R[cmds.$n.rss1]}" "${R[cmds.$n.list_bytes]}"
	JSON="$JSON${JSON:+,}\"cmds.$n.load\":{\"load_ms\":${R[cmds.$n.load_ms]},\"rss_before_kib\":${R[cmds.$n.rss0]},\"rss_after_kib\":${R[cmds.$n.rss1]},\"list_bytes\":${R[cmds.$n.list_bytes]}}"
	case " $NS " in *" $n "*)
		last=$(printf 'many.c%05d' $((n - 1)))
		tpl="{\"command\":\"$last\"}"
		run "cmds.$n.c16p32" "N=$n $last+echo c=16 p=32" "$DSOCK" 16 32 \
		    "$tpl" "$ECHO_TPL"
		run "cmds.$n.c1p1" "N=$n $last+echo c=1 p=1" "$DSOCK" 1 1 \
		    "$tpl" "$ECHO_TPL"
		run "cmds.$n.list" "N=$n host.list c=1 p=1" "$DSOCK" 1 1 \
		    '{"command":"host.list"}'
		;;
	esac
	stop "$DPID"
done

# Instructions per call under callgrind: N=1 against N=1000.
IR=""
if command -v valgrind >/dev/null 2>&1 && [ "${BENCH_IR:-1}" != 0 ]; then
	for n in 1 1000; do
		dir=$TMP/ir$n
		mkdir -p "$dir/plugins"
		cp "$MANY" "$BUILD/plugins/echo.so" "$dir/plugins/"
		printf '[host]\nsocket = cmdhost.sock\nplugin_dir = plugins\nworkers = 1\naccess_log = false\n[plugin:many]\ncommands = %s\n' \
		    "$n" >"$dir/cmdhost.ini"
		valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
		    "$BUILD/cmdhostd" -c "$dir/cmdhost.ini" 2>"$dir/log" &
		pid=$!; PIDS="$PIDS $pid"
		for i in $(seq 300); do
			"$BIN/loadgen" -s "$dir/cmdhost.sock" -q \
			    '{"command":"host.ping"}' >/dev/null 2>&1 && break
			sleep 0.1
		done
		callgrind_control -z "$pid" >/dev/null 2>&1
		line=$("$BIN/loadgen" -s "$dir/cmdhost.sock" -c 16 -p 32 -d 3 \
		    -w 0 -r "{\"command\":\"$(printf 'many.c%05d' $((n - 1)))\"}" \
		    -r "$ECHO_TPL" 2>/dev/null)
		kill -TERM "$pid"; wait "$pid" 2>/dev/null
		PIDS=$(printf '%s\n' $PIDS | grep -vx "$pid" | tr '\n' ' ')
		req=$(jget requests "$line")
		tot=$(awk '/^summary:/ { print $2 }' "$dir/cg.out" 2>/dev/null)
		R[ir.$n]=$(div "$tot" "$req" %.0f)
		echo "  N=$n callgrind: ${R[ir.$n]} instructions/call ($req calls)"
		JSON="$JSON${JSON:+,}\"ir.$n\":{\"instructions_per_call\":${R[ir.$n]},\"calls\":${req:-0}}"
	done
	IR=1
else
	echo "bench-curves: no valgrind (or BENCH_IR=0): instructions per call skipped"
fi

# ------------------------------------------------------------- loop count
echo "== curve: event loops (workers = 1, 2), echo, against the transport floor"
"$BIN/floor_transport" -s "$TMP/transport.sock" 2>"$TMP/transport.err" &
PID_T=$!; PIDS="$PIDS $PID_T"
wait_ready "$TMP/transport.sock" "$PID_T" transport
SMALL='{"command":"echo","payload":{"msg":"hello"}}'
LOADS="1:1 16:1 16:32"
LOOPS="1 2"
for w in $LOOPS; do
	daemon "loops$w" "$w" "$BUILD/plugins/echo.so" ""
	eval "PID_L$w=$DPID; S_L$w=$DSOCK"
done
for cp in $LOADS; do
	c=${cp%%:*}; p=${cp#*:}; k=c${c}p$p
	for w in $LOOPS; do
		eval "s=\$S_L$w"
		run "loops.$w.$k" "echo c=$c p=$p workers=$w" "$s" "$c" "$p" "$SMALL"
	done
	run "loops.floor.$k" "echo c=$c p=$p transport floor" \
	    "$TMP/transport.sock" "$c" "$p" "$SMALL"
done
for w in $LOOPS; do eval "stop \$PID_L$w"; done

# ---------------------------------------------------------------- tables
rps() { jget rps "${R[$1]:-}"; }
echo
echo "commands curve (rps of calls to the last command and echo in turn; ratio = N / N=1)"
printf '%-7s %9s %8s %7s %11s %6s %10s %6s %9s %9s %8s\n' N load_ms \
    KiB/cmd c16p32 rps ratio c1p1_rps ratio list_p50 list_B load
b32=$(rps cmds.1.c16p32); b1=$(rps cmds.1.c1p1)
for n in $NS_LOAD; do
	kib=$(awk -v a="${R[cmds.$n.rss1]}" -v b="${R[cmds.$n.rss0]}" -v n="$n" \
	    'BEGIN { printf "%.1f", (a - b) / n }')
	a32=$(rps "cmds.$n.c16p32"); a1=$(rps "cmds.$n.c1p1")
	printf '%-7s %9s %8s %7s %11s %6s %10s %6s %9s %9s %8s\n' "$n" \
	    "${R[cmds.$n.load_ms]}" "$kib" "" "${a32:--}" "$(div "$a32" "$b32")" \
	    "${a1:--}" "$(div "$a1" "$b1")" \
	    "$(jget p50_us "${R[cmds.$n.list]:-}")" "${R[cmds.$n.list_bytes]}" \
	    "${R[cmds.$n.c16p32.load]:-}"
done
[ -n "$IR" ] && echo "instructions per call: N=1 ${R[ir.1]}, N=1000" \
    "${R[ir.1000]}, ratio $(div "${R[ir.1000]}" "${R[ir.1]}" %.3f)"
echo
echo "loops curve (rps; ratios: 2 loops / 1 loop, each / the transport floor)"
printf '%-10s %10s %10s %10s | %7s %9s %9s\n' load workers=1 workers=2 floor \
    '2/1' '1/floor' '2/floor'
for cp in $LOADS; do
	c=${cp%%:*}; p=${cp#*:}; k=c${c}p$p
	a=$(rps "loops.1.$k"); b=$(rps "loops.2.$k"); t=$(rps "loops.floor.$k")
	printf '%-10s %10s %10s %10s | %7s %9s %9s\n' "c=$c p=$p" "$a" "$b" "$t" \
	    "$(div "$b" "$a")" "$(div "$a" "$t")" "$(div "$b" "$t")"
done

{
	printf '{"date":"%s","cpus":%s,"seconds":%s,"load_start":"%s","load_end":"%s",' \
	    "$(date -u +%FT%TZ)" "$(nproc)" "$SECS" "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '"commit":"%s","results":{%s}}\n' \
	    "$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)" "$JSON"
} >"$OUT"
echo
echo "bench-curves: wrote $OUT"
if [ -n "$FAILS" ]; then
	echo "bench-curves: failures:$FAILS" >&2
	exit 1
fi
exit 0
