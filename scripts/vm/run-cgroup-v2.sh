#!/usr/bin/env bash
# Boot Debian's kernel under qemu (common.sh) with the host's / as the
# read-only root, mount a pure cgroup v2 hierarchy, run one test binary
# inside, and exit with its status.
#
# usage: run-cgroup-v2.sh <static-test-binary> [test args...]
set -euo pipefail
test_bin=$(readlink -f "$1"); shift
test_args="$*"
source "$(dirname "$(readlink -f "$0")")/common.sh"
vm_kernel
work=$(mktemp -d /tmp/hostd-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat > "$work/stage2" <<STAGE2
#!/bin/sh
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mount -t cgroup2 none /sys/fs/cgroup
echo "+memory +cpu +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkdir /sys/fs/cgroup/hostd-test && echo \$\$ > /sys/fs/cgroup/hostd-test/cgroup.procs
echo "cgroup2 controllers: \$(cat /sys/fs/cgroup/hostd-test/cgroup.controllers)"
export HOSTD_IN_VM=1 HOSTD_REQUIRE_PRIVILEGED=1 HOSTD_BIN_DIR=$(dirname "$(dirname "$test_bin")") RUST_BACKTRACE=1
cd /tmp
$test_bin $test_args
STAGE2
vm_initrd "$work" /hostd-vm-stage2 "$work/stage2"
rc=0
vm_boot "$work" / "quiet loglevel=3" || rc=$?
exit "$rc"
