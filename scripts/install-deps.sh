#!/bin/sh
# Install the Debian packages cmdhost needs to build, run and test.
# Does nothing when every package is already installed.
set -eu

PKGS="gcc g++ make pkg-config libinih-dev libjson-c-dev libcriterion-dev libsqlite3-dev socat man-db groff-base"
# prometheus: only for its promtool, which the tests run on the output of
# `cmdhost stats --prometheus` (the Prometheus server is not started).
PKGS="$PKGS prometheus"
# systemd: systemd-socket-activate and systemd-analyze, which the tests
# run (the daemon never links libsystemd; PID 1 need not be systemd).
PKGS="$PKGS systemd"
# libmicrohttpd: the HTTP library of the optional monitoring endpoint
# ([host] http_listen: /metrics, /healthz, /readyz, the status page).
PKGS="$PKGS libmicrohttpd-dev"
# chromium: the tests load the status page in headless Chromium (its DOM
# and a screenshot), as the person it is for would.
PKGS="$PKGS chromium"
# NATS: the server for the tests, cnats for the bridge module and the CLI.
PKGS="$PKGS nats-server libnats-dev"
# The discovery tests use nats.js (npm) as an independent client; a Node.js
# installed some other way (nodesource, nvm) is fine.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	PKGS="$PKGS nodejs npm"
fi
# Rust: the crate sdk/rust and plugins/rust_greet build with Debian 12's
# own cargo (1.65, rustc 1.63); a cargo installed some other way (rustup)
# is fine.  Without any, make skips them and says so.
if ! command -v cargo >/dev/null 2>&1; then
	PKGS="$PKGS cargo"
fi
# The package: `make deb` (which `make test` runs and checks) builds
# build/deb/*.deb with dpkg-buildpackage and debhelper under fakeroot,
# then checks them with lintian.
PKGS="$PKGS debhelper dpkg-dev fakeroot lintian"
# --fuzz: also what `make fuzz` needs (clang with libFuzzer).
if [ "${1:-}" = "--fuzz" ]; then
	PKGS="$PKGS clang libclang-rt-dev"
fi

# --bench: also the peers `make bench` measures cmdhost against (not the
# tests'): Redis (redis-server, and redis-benchmark from redis-tools) and
# Python 3 for the seed's asyncio pattern (tests/bench/peer_asyncio.py).
if [ "${1:-}" = "--bench" ]; then
	PKGS="$PKGS redis-server redis-tools python3"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Server packages (prometheus) start their service when installed; on a
# machine without a policy of its own, forbid that for this install.
POLICY=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$POLICY" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
	$SUDO chmod 755 "$POLICY"
	made_policy=1
	trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
