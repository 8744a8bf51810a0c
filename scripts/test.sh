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

# apt_install [apt-get options] packages…: a package's service is never
# started here (policy-rc.d answers 101, "not allowed"): prometheus, which
# brings promtool, would otherwise start its server.
apt_install() {
  local had_policy= rc=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  [ -n "$had_policy" ] || { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" || rc=$?
  [ -n "$had_policy" ] || rm -f /usr/sbin/policy-rc.d
  return $rc
}
# What the build needs, now; what only the tests and stages need is
# installed in the background while the build compiles (below).
need_build=()
command -v cc >/dev/null || need_build+=(gcc)
command -v c++ >/dev/null || need_build+=(g++)   # libstdc++'s headers, for clang++
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 && command -v clang++ >/dev/null || need_build+=(clang libclang-dev)
need_tests=()
command -v bwrap >/dev/null || need_tests+=(bubblewrap)
command -v qemu-system-x86_64 >/dev/null || need_tests+=(qemu-system-x86)
[ -x /bin/busybox ] || need_tests+=(busybox-static)
command -v cpio >/dev/null || need_tests+=(cpio)
command -v xz >/dev/null || need_tests+=(xz-utils)
command -v ip >/dev/null || need_tests+=(iproute2)
command -v lintian >/dev/null || need_tests+=(lintian)
command -v rpmbuild >/dev/null || need_tests+=(rpm)
command -v debootstrap >/dev/null || need_tests+=(debootstrap)
command -v systemd-analyze >/dev/null || need_tests+=(systemd)
command -v podman >/dev/null || need_tests+=(podman)
# promtool (Prometheus's parser and linter) checks `hostd metrics`; the
# server's recommends (web assets, exporters) are not needed.
need_promtool=; command -v promtool >/dev/null || need_promtool=prometheus
if [ ${#need_build[@]} -gt 0 ] || [ ${#need_tests[@]} -gt 0 ] || [ -n "$need_promtool" ]; then
  apt-get update -qq
fi
if [ ${#need_build[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_build[*]}"
  apt_install "${need_build[@]}"
fi
if ! command -v cargo-nextest >/dev/null; then
  echo "==> cargo install cargo-nextest"
  # Without the self-update feature: nothing to download later, less to compile.
  cargo install --locked --no-default-features --features default-no-update cargo-nextest
fi

# hostd run drops root to this user (the packages create it with sysusers.d).
if ! id hostd >/dev/null 2>&1; then
  echo "==> useradd --system hostd"
  useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
fi
# The real Bitcoin node the chain tests run (tools/regtest-node: blvm-node,
# its own lockfile and target dir /var/tmp/hostd-node-target) builds in the
# background beside the main build; done before it cold, seconds
# warm. The tests wait for it.
echo "==> build the regtest node (background, log /var/tmp/hostd-node-build.log)"
(BUILD_ONLY=1 nice -n 5 bash scripts/regtest-node.sh) > /var/tmp/hostd-node-build.log 2>&1 &
node_pid=$!

# The tests' packages, the guest kernels and the debootstrap'd Debian root
# the VM, package and container stages use: installed and fetched while the
# build compiles (mostly download and unpacking); the tests wait for them.
what="fetch the stages' kernels and Debian root"
[ ${#need_tests[@]} -eq 0 ] && [ -z "$need_promtool" ] || what="apt-get install ${need_tests[*]} $need_promtool; $what"
echo "==> $what (background, log /var/tmp/hostd-stages-prepare.log)"
( { [ ${#need_tests[@]} -eq 0 ] || apt_install "${need_tests[@]}"; } &&
  { [ -z "$need_promtool" ] || apt_install --no-install-recommends prometheus; } &&
  nice -n 5 bash scripts/prepare-stages.sh ) > /var/tmp/hostd-stages-prepare.log 2>&1 &
stages_pid=$!

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

if ! wait "$stages_pid"; then
  tail -50 /var/tmp/hostd-stages-prepare.log
  echo "installing the tests' packages or fetching the stages' kernels or Debian root failed (log above)" >&2
  exit 1
fi

echo "==> tests"
status=0
cargo nextest run --release --workspace --locked --no-fail-fast "$@" || status=$?

echo "==> packages (.deb, .rpm, unit, chroot install/upgrade/remove/purge, systemd VM)"
bash scripts/test-packages.sh || status=$?

echo "==> container stage (Podman containers in the cgroup v2 VM: escape suite, cgroup limits, daemon)"
bash scripts/test-container.sh || status=$?
exit $status
