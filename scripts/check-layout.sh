#!/bin/sh
# check-layout.sh - the layout file sdk/include/cmdhost/plugin-layout.txt
# must be what scripts/gen-layout.sh makes of the header now (regenerate
# it with `make layout` after an ABI change, and bump CMDHOST_ABI_MINOR).
# The lines of it the guide (sdk/README.md) quotes must be in it.  Then
# prove the check can fail: in a scratch copy of the header, move one
# member of struct cmdhost_api and require a difference naming it.
set -eu
cd "$(dirname "$0")/.."
want=sdk/include/cmdhost/plugin-layout.txt
if [ "$(getconf LONG_BIT)" != 64 ]; then
	echo "check-layout: skipped: $want describes LP64 targets only"
	exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cmdhost-layout-check.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

scripts/gen-layout.sh sdk/include > "$tmp/now.txt"
if ! diff -u "$want" "$tmp/now.txt"; then
	echo "check-layout: $want is out of date with cmdhost/plugin.h" \
	    "(run make layout; an incompatible move needs a new ABI major)" >&2
	exit 1
fi

# The guide quotes a few lines of the file: they must be in it.
stale=$(grep -E '^(struct cmdhost_|member cmdhost_|const CMDHOST_)' \
    sdk/README.md | while IFS= read -r line; do
	grep -qxF "$line" "$want" || echo "$line"
done)
if [ -n "$stale" ]; then
	echo "check-layout: sdk/README.md quotes lines that are not in $want:" >&2
	echo "$stale" >&2
	exit 1
fi

# The scratch copy: ctx_state moves after ctx_command.
mkdir -p "$tmp/inc/cmdhost"
sed -e '/^	void \*(\*ctx_state)(cmdhost_ctx \*ctx);$/d' \
    -e 's/^	const char \*(\*ctx_command)(cmdhost_ctx \*ctx);$/&\
	void *(*ctx_state)(cmdhost_ctx *ctx);/' \
    sdk/include/cmdhost/plugin.h > "$tmp/inc/cmdhost/plugin.h"
if cmp -s sdk/include/cmdhost/plugin.h "$tmp/inc/cmdhost/plugin.h"; then
	echo "check-layout: the self-test could not move ctx_state" >&2
	exit 1
fi
scripts/gen-layout.sh "$tmp/inc" > "$tmp/moved.txt"
if diff "$want" "$tmp/moved.txt" > "$tmp/diff"; then
	echo "check-layout: a moved member went unnoticed" >&2
	exit 1
fi
grep -q '^> member cmdhost_api ctx_state ' "$tmp/diff" || {
	echo "check-layout: the difference does not name ctx_state" >&2
	cat "$tmp/diff" >&2
	exit 1
}
echo "check-layout: $want matches the header ($(grep -c '^member' "$want")" \
    "members); a moved member is caught"
