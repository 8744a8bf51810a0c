#!/usr/bin/env bash
# The whole test suite, as root on a fresh Debian machine: installs what it
# needs, builds every binary (release), runs every test with nextest, then
# builds and tests the .deb and .rpm (scripts/test-packages.sh), then runs
# the container stage (scripts/test-container.sh: Podman containers inside
# the cgroup v2 VM). The chain
# tests run a real regtest node, built here too (scripts/regtest-node.sh). Under CI=true (or
# HOSTD_REQUIRE_PRIVILEGED=1) a privileged test that cannot run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v bwrap >/dev/null || need_apt+=(bubblewrap)
command -v cc >/dev/null || need_apt+=(gcc)
command -v c++ >/dev/null || need_apt+=(g++)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need_apt+=(clang libclang-dev)
command -v qemu-system-x86_64 >/dev/null || need_apt+=(qemu-system-x86)
[ -x /bin/busybox ] || need_apt+=(busybox-static)
command -v cpio >/dev/null || need_apt+=(cpio)
command -v ip >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# promtool (Prometheus's parser and linter) checks `hostd metrics`. It comes
# in the prometheus package, whose server must not start here: policy-rc.d
# answers 101 ("not allowed") to the package's service start.
if ! command -v promtool >/dev/null; then
  echo "==> apt-get install prometheus (for promtool; its service is not started)"
  had_policy=; [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ -n "$had_policy" ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus || status_apt=$?
  [ -n "$had_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ -z "${status_apt:-}" ] || { echo "apt-get install prometheus failed" >&2; exit 1; }
fi
if ! command -v cargo-nextest >/dev/null; then
  echo "==> cargo install cargo-nextest"
  cargo install --locked cargo-nextest
fi

# hostd run drops root to this user (the packages create it with sysusers.d).
if ! id hostd >/dev/null 2>&1; then
  echo "==> useradd --system hostd"
  useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
fi
# The real Bitcoin node the chain tests run (tools/regtest-node: blvm-node,
# its own lockfile and target dir /var/tmp/hostd-node-target) builds in the
# background beside the main build; about 12 min cold on 2 cores, seconds
# warm. The tests wait for it.
echo "==> build the regtest node (background, log /var/tmp/hostd-node-build.log)"
(BUILD_ONLY=1 nice -n 5 bash scripts/regtest-node.sh) > /var/tmp/hostd-node-build.log 2>&1 &
node_pid=$!

# One release build serves the tests, the demo and the packages: the
# tests check the code that ships, and RocksDB's C++ is compiled only once.
echo "==> build (release; target dir: ${CARGO_TARGET_DIR:-/var/tmp/hostd-target}, see .cargo/config.toml)"
cargo build --release --workspace --bins --locked

if ! wait "$node_pid"; then
  tail -50 /var/tmp/hostd-node-build.log
  echo "building the regtest node failed (log above); the chain tests need it" >&2
  exit 1
fi
HOSTD_NODE_BIN=$(tail -1 /var/tmp/hostd-node-build.log)
export HOSTD_NODE_BIN

echo "==> tests"
status=0
cargo nextest run --release --workspace --locked --no-fail-fast "$@" || status=$?

echo "==> packages (.deb, .rpm, unit, chroot install/upgrade/remove/purge, systemd VM)"
bash scripts/test-packages.sh || status=$?

echo "==> container stage (Podman containers in the cgroup v2 VM: escape suite, cgroup limits, daemon)"
bash scripts/test-container.sh || status=$?
exit $status
