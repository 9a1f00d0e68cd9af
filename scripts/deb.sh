#!/bin/sh
# deb.sh - `make deb`: build the Debian packages cmdhost and cmdhost-dev
# with dpkg-buildpackage in a copy of the tree under build/deb/ (so the
# checkout stays clean), leave the .deb files in build/deb/, then run
# lintian on them.  Prints one closing line, "deb: ..."; exits non-zero
# when the build fails or lintian reports anything not overridden.
#
# The copy holds the files git knows (tracked, and new ones not ignored),
# as they are in the work tree; outside a git checkout, every file but
# build/.  Logs: build/deb/build.log, build/deb/lintian.log.
set -eu
cd "$(dirname "$0")/.."

out=build/deb
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
upstream=${version%%-*}
if ! grep -q "^#define CMDHOST_VERSION \"$upstream\"" host/core/version.h; then
	echo "deb: debian/changelog is at $version but host/core/version.h" \
	    "says: $(grep '^#define CMDHOST_VERSION ' host/core/version.h)" >&2
	exit 1
fi

rm -rf "$out"
src="$out/cmdhost-$upstream"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	git ls-files --cached --others --exclude-standard | sort -u |
	    while IFS= read -r f; do
		# A file deleted but not yet committed is not copied.
		if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi
	    done | tar -cf - -T - | tar -C "$src" -xf -
else
	tar --exclude=./build -cf - . | tar -C "$src" -xf -
fi

# The package build's make must not join an outer make's jobserver.
echo "deb: building cmdhost $version in $src (log: $out/build.log)"
if ! (cd "$src" && env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL \
    dpkg-buildpackage -us -uc -b -j2) >"$out/build.log" 2>&1; then
	tail -n 40 "$out/build.log" >&2
	echo "deb: FAIL: dpkg-buildpackage failed (see $out/build.log)" >&2
	exit 1
fi
rm -rf "$src"

set -- "$out"/cmdhost_"$version"_*.changes
changes=$1
# Every tag counts, info included; the accepted ones are overridden in
# debian/*lintian-overrides, each with its reason.
set +e
lintian --info --display-info --fail-on error,warning,info "$changes" \
    >"$out/lintian.log" 2>&1
rc=$?
set -e
cat "$out/lintian.log"
echo "$rc" >"$out/lintian.status"
if [ "$rc" -ne 0 ]; then
	echo "deb: FAIL: lintian exit $rc (see $out/lintian.log)" >&2
	exit 1
fi
debs=""
for f in "$out"/*.deb; do debs="$debs ${f##*/}"; done
echo "deb: ok:$debs (lintian clean)"
