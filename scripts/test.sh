#!/usr/bin/env bash
# The whole test suite, as root on a fresh Debian machine: installs what it
# needs, builds every binary (release), runs every test with nextest, then
# builds and tests the .deb and .rpm (scripts/test-packages.sh). Under CI=true (or
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
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
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
# One release build serves the tests, the demo and the packages: the
# tests check the code that ships, and RocksDB's C++ is compiled only once.
echo "==> build (release; target dir: /var/tmp/hostd-target, see .cargo/config.toml)"
cargo build --release --workspace --bins --locked

echo "==> tests"
status=0
cargo nextest run --release --workspace --locked --no-fail-fast "$@" || status=$?

echo "==> packages (.deb, .rpm, unit, chroot install/upgrade/remove/purge)"
bash scripts/test-packages.sh || status=$?
exit $status
