#!/bin/sh
# bench-ir.sh BUILD LOADGEN - user-space instructions per request under
# callgrind (the measure that does not move with the machine's load), for
# the echo plugin (text in, text out: no json-c tree) and for good.so's
# test.echo (asks for the json-c payload and replies with it), small and
# 4 KiB payloads, one event loop, c=16 p=32 for 3 s.  Counted from when
# the daemon answers (counters zeroed) until it stops.  Prints one line
# per case: NAME instructions/request.
set -u
BUILD=${1:-build}
LOADGEN=${2:-$BUILD/bench/loadgen}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT INT TERM
big=$(head -c 4000 /dev/zero | tr '\0' 'x')
ir() { # NAME PLUGIN-SO REQUEST
	dir=$TMP/$1
	mkdir -p "$dir/plugins"
	cp "$2" "$dir/plugins/"
	printf '[host]\nsocket = cmdhost.sock\nplugin_dir = plugins\nworkers = 1\naccess_log = false\n' \
	    >"$dir/cmdhost.ini"
	valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" \
	    "$BUILD/cmdhostd" -c "$dir/cmdhost.ini" 2>"$dir/log" &
	pid=$!
	for i in $(seq 300); do
		"$LOADGEN" -s "$dir/cmdhost.sock" -q '{"command":"host.ping"}' \
		    >/dev/null 2>&1 && break
		sleep 0.1
	done
	callgrind_control -z "$pid" >/dev/null 2>&1
	line=$("$LOADGEN" -s "$dir/cmdhost.sock" -c 16 -p 32 -d 3 -w 0 \
	    -r "$3" 2>/dev/null)
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	n=$(printf '%s' "$line" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
	tot=$(awk '/^summary:/ { print $2 }' "$dir/cg.out" 2>/dev/null)
	awk -v name="$1" -v t="$tot" -v n="$n" 'BEGIN { if (t == "" || n + 0 == 0)
		printf "%-28s null\n", name; else printf "%-28s %.0f (%d requests)\n", name, t / n, n }'
}
ir echo-text "$BUILD/plugins/echo.so" '{"command":"echo","payload":{"msg":"hello"}}'
ir echo-jsonc-payload "$BUILD/tests/plugins/good.so" '{"command":"test.echo","payload":{"msg":"hello"}}'
ir echo-text-4k "$BUILD/plugins/echo.so" "{\"command\":\"echo\",\"payload\":{\"msg\":\"$big\"}}"
ir echo-jsonc-4k "$BUILD/tests/plugins/good.so" "{\"command\":\"test.echo\",\"payload\":{\"msg\":\"$big\"}}"
