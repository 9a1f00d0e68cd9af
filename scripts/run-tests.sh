#!/bin/sh
# Run every Criterion test binary given, then print one closing line that
# adds up their results: "N passed, N failed".
# Usage: run-tests.sh BUILD_DIR BIN...
set -u
build="$1"; shift
# Under ASan+UBSan builds: Criterion's own allocations are not ours.
LSAN_OPTIONS="suppressions=$(cd "$(dirname "$0")/.." && pwd)/tests/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export LSAN_OPTIONS
passed=0; failed=0; status=0
fails=""
for t in "$@"; do
	echo "==> $t"
	out="$build/test-logs/$(basename "$t").log"
	mkdir -p "$build/test-logs"
	"$t" --jobs 2 --timeout 120 >"$out" 2>&1
	rc=$?
	cat "$out"
	line=$(grep 'Synthesis: Tested:' "$out" | tail -n 1)
	if [ -z "$line" ]; then
		echo "run-tests: $t printed no synthesis (exit $rc)" >&2
		fails="$fails  $(basename "$t"): no synthesis (exit $rc)
"
		failed=$((failed + 1)); status=1; continue
	fi
	p=$(echo "$line" | sed -n 's/.*Passing: \([0-9]*\).*/\1/p')
	f=$(echo "$line" | sed -n 's/.*Failing: \([0-9]*\).*/\1/p')
	c=$(echo "$line" | sed -n 's/.*Crashing: \([0-9]*\).*/\1/p')
	passed=$((passed + p)); failed=$((failed + f))
	if [ "$f" -ne 0 ] || [ "$rc" -ne 0 ]; then
		fails="$fails$(grep -E '^\[(----|FAIL)\]' "$out" | sed "s|^|  $(basename "$t"): |")
"
	fi
	[ "$rc" -ne 0 ] && status=1
	[ "$f" -ne 0 ] && status=1
	: "$c"
done
echo "tests: $passed passed, $failed failed"
# Repeat what failed at the very end, where a log's tail shows it.
[ -n "$fails" ] && printf 'failures:\n%s' "$fails"
exit $status
