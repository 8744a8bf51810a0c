#!/usr/bin/env bash
# Fetch what the VM, package and container stages need from Debian's
# archive, once (all cached under /var/tmp): the two guest kernels
# (bookworm's and bookworm-backports') and the debootstrap'd Debian root.
# scripts/test.sh runs this in the background while it compiles, since it
# is mostly download and unpacking; each stage would otherwise fetch the
# same on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/vm/common.sh
vm_kernel bookworm
vm_kernel backports
root=$(bash scripts/debian-base.sh)
echo "stages prepared: kernels in $vm_cache, Debian root $root"
