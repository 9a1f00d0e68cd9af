#!/bin/bash
# bench-peers.sh - cmdhost beside its peers, and its load curves, in one
# run with the same client: the small echo against a Node.js `net` +
# JSON.parse server, the seed's pattern in Python asyncio (both in
# tests/bench/, driven by loadgen like cmdhost) and Redis ECHO
# (redis-benchmark, the same payload, connections and pipeline depth);
# then echo by payload size (16 B .. 64 KiB, MB/s against the transport
# floor) and by connection count (16, 1,000, 10,000).  Prints the tables
# and ratios against cmdhost and writes build/bench-peers.json.
# Usage: scripts/bench-peers.sh BUILD_DIR   (make bench runs it)
# Env:   BENCH_SECONDS (default 5) seconds per figure.
# A peer that is not installed is skipped with a line saying so.
set -u

[ $# -eq 1 ] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
BUILD=$(cd "$1" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=$BUILD/bench
OUT=$(dirname "$BUILD")/bench-peers.json
SECS=${BENCH_SECONDS:-5}
WARM=0.5

for f in "$BUILD/cmdhostd" "$BIN/loadgen" "$BIN/floor_transport" \
    "$BUILD/plugins/echo.so"; do
	[ -e "$f" ] || { echo "bench-peers: missing $f (run make bench)" >&2; exit 2; }
done

. "$(dirname "$0")/bench-lib.sh"
bench_begin bench-peers

# 10,000 connections need 10,000 fds in the client and in each server:
# raise the soft RLIMIT_NOFILE to the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)


declare -A R
JSON=""
# run KEY LABEL SERVER SOCKET CONNS PIPELINE TEMPLATE
run() {
	local line
	line=$("$BIN/loadgen" -s "$4" -c "$5" -p "$6" -d "$SECS" -w "$WARM" \
	    -r "$7" 2>"$TMP/loadgen.err")
	case $line in
	'{'*) ;;
	*) line='{"error":"loadgen failed"}'; cat "$TMP/loadgen.err" >&2 ;;
	esac
	R[$1]=$line
	JSON="$JSON${JSON:+,}\"$1\":$line"
	if [ "$(jget non_ok "$line")" != 0 ] || [ "$(jget lost "$line")" != 0 ]; then
		fail "$2 ($3): $line"
	fi
	printf '  %-30s %-10s %9s rps  p50 %6s  p99 %6s µs\n' "$2" "$3" \
	    "$(jget rps "$line")" "$(jget p50_us "$line")" "$(jget p99_us "$line")"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "bench-peers: $(nproc) CPUs, load average $LOAD0, ${SECS}s per figure, RLIMIT_NOFILE $NOFILE"

# ---------------------------------------------------------------- servers
"$BIN/floor_transport" -s "$TMP/transport.sock" 2>"$TMP/transport.err" &
PID_T=$!; PIDS="$PIDS $PID_T"
wait_ready "$TMP/transport.sock" "$PID_T" transport
mkdir -p "$TMP/main/plugins"
cp "$BUILD/plugins/echo.so" "$TMP/main/plugins/"
cat >"$TMP/main/cmdhost.ini" <<EOF
[host]
socket = cmdhost.sock
plugin_dir = plugins
workers = 0
max_connections = 10200
EOF
"$BUILD/cmdhostd" -c "$TMP/main/cmdhost.ini" 2>"$TMP/main.err" &
PID_D=$!; PIDS="$PIDS $PID_D"
wait_ready "$TMP/main/cmdhost.sock" "$PID_D" main
S_CMD=$TMP/main/cmdhost.sock
S_TRA=$TMP/transport.sock

HAVE_NODE=""; HAVE_PY=""; HAVE_REDIS=""
if command -v node >/dev/null 2>&1; then
	node "$SRC/tests/bench/peer_node.js" "$TMP/node.sock" 2>"$TMP/node.err" &
	PID_N=$!; PIDS="$PIDS $PID_N"
	wait_ready "$TMP/node.sock" "$PID_N" node
	HAVE_NODE=1
else
	echo "bench-peers: no node: the Node.js peer is skipped"
fi
if command -v python3 >/dev/null 2>&1; then
	python3 "$SRC/tests/bench/peer_asyncio.py" "$TMP/py.sock" 2>"$TMP/py.err" &
	PID_P=$!; PIDS="$PIDS $PID_P"
	wait_ready "$TMP/py.sock" "$PID_P" py
	HAVE_PY=1
else
	echo "bench-peers: no python3: the asyncio peer is skipped"
fi
if command -v redis-server >/dev/null 2>&1 &&
    command -v redis-benchmark >/dev/null 2>&1; then
	redis-server --port 0 --unixsocket "$TMP/redis.sock" --save '' \
	    --appendonly no --dir "$TMP" --maxclients 10100 \
	    >"$TMP/redis.err" 2>&1 &
	PID_R=$!; PIDS="$PIDS $PID_R"
	for i in $(seq 200); do
		redis-cli -s "$TMP/redis.sock" ping >/dev/null 2>&1 && break
		sleep 0.05
	done
	HAVE_REDIS=1
else
	echo "bench-peers: no redis-server/redis-benchmark: Redis is skipped" \
	    "(scripts/install-deps.sh --bench installs them)"
fi

# redis KEY CONNS PIPELINE: ECHO of the same payload, about SECS seconds
# (a first short run sizes the request count).
redis() {
	local n=20000 rps line
	line=$(redis-benchmark -s "$TMP/redis.sock" -c "$2" -P "$3" -n "$n" \
	    --csv ECHO "$SMALL_MSG" 2>/dev/null | tail -n 1)
	rps=$(printf '%s\n' "$line" | cut -d, -f2 | tr -d '"')
	n=$(awk -v r="$rps" -v s="$SECS" 'BEGIN { n = int(r * s);
		print n < 20000 ? 20000 : n }')
	line=$(redis-benchmark -s "$TMP/redis.sock" -c "$2" -P "$3" -n "$n" \
	    --csv ECHO "$SMALL_MSG" 2>/dev/null | tail -n 1)
	rps=$(printf '%s\n' "$line" | cut -d, -f2 | tr -d '"')
	case $rps in [0-9]*) ;; *) fail "redis-benchmark c=$2 P=$3: $line"; rps=0 ;; esac
	R[$1]="{\"rps\":$rps,\"requests\":$n}"
	JSON="$JSON${JSON:+,}\"$1\":{\"rps\":$rps,\"requests\":$n,\"csv\":\"$(printf '%s' "$line" | sed 's/"/\\"/g')\"}"
	printf '  %-30s %-10s %9s rps\n' "echo small c=$2 p=$3" redis "$rps"
}

# ---------------------------------------------------------------- peers
SMALL_MSG='{"msg":"hello"}'
SMALL="{\"command\":\"echo\",\"payload\":$SMALL_MSG}"
LOADS="16:32 16:1 1:1"
echo "== peers: echo $SMALL_MSG, same client (Redis: redis-benchmark)"
for cp in $LOADS; do
	c=${cp%%:*}; p=${cp#*:}; k=c${c}p$p
	run "peers.$k.cmdhost" "echo small c=$c p=$p" cmdhost "$S_CMD" "$c" "$p" "$SMALL"
	[ -n "$HAVE_NODE" ] && run "peers.$k.node" "echo small c=$c p=$p" node \
	    "$TMP/node.sock" "$c" "$p" "$SMALL"
	[ -n "$HAVE_PY" ] && run "peers.$k.python" "echo small c=$c p=$p" \
	    python "$TMP/py.sock" "$c" "$p" "$SMALL"
	[ -n "$HAVE_REDIS" ] && redis "peers.$k.redis" "$c" "$p"
	run "peers.$k.transport" "echo small c=$c p=$p" transport "$S_TRA" "$c" "$p" "$SMALL"
done
# The peers are done: give the curves the CPUs.
for p in ${PID_N:-} ${PID_P:-} ${PID_R:-}; do
	kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null
	PIDS=$(printf '%s\n' $PIDS | grep -vx "$p" | tr '\n' ' ')
done

# ---------------------------------------------------------------- curves
# Payload size: msg is a string of SIZE bytes; MB/s counts request bytes.
echo "== curve: payload size, c=16 p=32 (c=16 p=4 at 64 KiB)"
SIZES="16 1024 4096 65536"
for sz in $SIZES; do
	msg=$(head -c "$sz" /dev/zero | tr '\0' x)
	tpl="{\"command\":\"echo\",\"payload\":{\"msg\":\"$msg\"}}"
	p=32; [ "$sz" -ge 65536 ] && p=4
	run "size.$sz.cmdhost" "echo ${sz} B c=16 p=$p" cmdhost "$S_CMD" 16 "$p" "$tpl"
	run "size.$sz.transport" "echo ${sz} B c=16 p=$p" transport "$S_TRA" 16 "$p" "$tpl"
done
echo "== curve: connections, p=1 each"
CONNS="16 1000"
if [ "$NOFILE" -ge 10300 ]; then
	CONNS="$CONNS 10000"
else
	echo "bench-peers: RLIMIT_NOFILE $NOFILE: 10,000 connections skipped"
fi
for c in $CONNS; do
	run "conns.$c.cmdhost" "echo small c=$c p=1" cmdhost "$S_CMD" "$c" 1 "$SMALL"
	run "conns.$c.transport" "echo small c=$c p=1" transport "$S_TRA" "$c" 1 "$SMALL"
done

kill -TERM "$PID_D"; wait "$PID_D" || fail "cmdhostd exited with status $?"
PIDS=$(printf '%s\n' $PIDS | grep -vx "$PID_D" | tr '\n' ' ')

# ---------------------------------------------------------------- tables
rps() { jget rps "${R[$1]:-}"; }
echo
echo "peers, echo $SMALL_MSG (rps; ratio = cmdhost / peer, above 1 cmdhost is faster)"
printf '%-12s %10s %10s %10s %10s %10s | %7s %7s %7s %7s\n' load cmdhost node \
    python redis transport '/node' '/python' '/redis' '/transp'
RJSON=""
for cp in $LOADS; do
	c=${cp%%:*}; p=${cp#*:}; k=c${c}p$p
	a=$(rps "peers.$k.cmdhost")
	n=$(rps "peers.$k.node"); y=$(rps "peers.$k.python")
	r=$(rps "peers.$k.redis"); t=$(rps "peers.$k.transport")
	printf '%-12s %10s %10s %10s %10s %10s | %7s %7s %7s %7s\n' "c=$c p=$p" \
	    "$a" "${n:--}" "${y:--}" "${r:--}" "$t" "$(div "$a" "$n")" \
	    "$(div "$a" "$y")" "$(div "$a" "$r")" "$(div "$a" "$t")"
	RJSON="$RJSON${RJSON:+,}\"$k\":{\"vs_node\":$(div "$a" "$n"),\"vs_python\":$(div "$a" "$y"),\"vs_redis\":$(div "$a" "$r"),\"vs_transport\":$(div "$a" "$t")}"
done
echo
echo "payload size curve (MB/s of request bytes; ratio = cmdhost / transport floor)"
printf '%-10s %12s %10s %12s %10s %8s\n' size cmdhost_rps MB/s transport_rps MB/s ratio
for sz in $SIZES; do
	a=$(rps "size.$sz.cmdhost"); t=$(rps "size.$sz.transport")
	len=$((sz + 48))
	printf '%-10s %12s %10s %12s %10s %8s\n' "$sz B" "$a" \
	    "$(awk -v r="$a" -v l="$len" 'BEGIN{printf "%.1f", r * l / 1e6}')" "$t" \
	    "$(awk -v r="$t" -v l="$len" 'BEGIN{printf "%.1f", r * l / 1e6}')" \
	    "$(div "$a" "$t")"
done
echo
echo "connections curve (p=1: one request in flight per connection)"
printf '%-8s %12s %8s %8s %12s %8s\n' conns cmdhost_rps p50_us p99_us transport_rps ratio
for c in $CONNS; do
	a=${R[conns.$c.cmdhost]}; t=${R[conns.$c.transport]}
	printf '%-8s %12s %8s %8s %12s %8s\n' "$c" "$(jget rps "$a")" \
	    "$(jget p50_us "$a")" "$(jget p99_us "$a")" "$(jget rps "$t")" \
	    "$(div "$(jget rps "$a")" "$(jget rps "$t")")"
done

echo
echo "targets (issue 19):"
TARGETS_JSON=""
target "c=16 p=32 rps / Redis ECHO" "$(div "$(rps peers.c16p32.cmdhost)" \
    "$(rps peers.c16p32.redis)")" ">=" 1.0
target "c=16 p=1 rps / transport floor" "$(div "$(rps peers.c16p1.cmdhost)" \
    "$(rps peers.c16p1.transport)")" ">=" 0.9
# Mean latency from rps at one request in flight: 1/rps.
target "c=1 p=1 mean latency / transport floor's" \
    "$(div "$(rps peers.c1p1.transport)" "$(rps peers.c1p1.cmdhost)")" "<=" 1.15
target "4 KiB echo c=16 p=32 / transport floor" "$(div "$(rps size.4096.cmdhost)" \
    "$(rps size.4096.transport)")" ">=" 0.5

{
	printf '{"date":"%s","cpus":%s,"seconds":%s,"load_start":"%s","load_end":"%s",' \
	    "$(date -u +%FT%TZ)" "$(nproc)" "$SECS" "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '"commit":"%s","results":{%s},"peer_ratios":{%s},"targets":[%s]}\n' \
	    "$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null)" "$JSON" "$RJSON" \
	    "$TARGETS_JSON"
} >"$OUT"
echo
echo "bench-peers: wrote $OUT"
if [ -n "$FAILS" ]; then
	echo "bench-peers: failures:$FAILS" >&2
	exit 1
fi
exit 0
