#!/usr/bin/env bash
# The container stage's VM: Debian's bookworm-backports kernel (6.12:
# Landlock ABI 6, so hostd's strict default policy runs unchanged) under
# qemu (common.sh) with the host's / as the root, a pure cgroup v2
# hierarchy, and scripts/container/in-vm.sh as the guest's program, which
# runs the tests in Podman containers. Exits with the guest's status.
#
# usage: run-container.sh <work dir with the test lists (in-vm.sh)>
#          <release bin dir> <container root filesystem>
set -euo pipefail
work=$(readlink -f "$1"); bin=$(readlink -f "$2"); rootfs=$(readlink -f "$3")
repo=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
source "$repo/scripts/vm/common.sh"
vm_kernel backports
vm=$(mktemp -d /tmp/hostd-ctvm.XXXXXX)
trap 'rm -rf "$vm"' EXIT
cat > "$vm/stage2" <<STAGE2
#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin RUST_BACKTRACE=1
sh "$repo/scripts/container/in-vm.sh" "$work" "$bin" "$rootfs" "$repo"
STAGE2
vm_initrd "$vm" /hostd-vm-stage2 "$vm/stage2"
rc=0
# The daemon test and the containers' storage (tmpfs) need more than the
# other stages' 1.5 GiB; the escape suite under TCG takes minutes.
VM_MEMORY_MB=4096 VM_TIMEOUT=2400 vm_boot "$vm" / "quiet loglevel=3" || rc=$?
exit "$rc"
