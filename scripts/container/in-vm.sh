#!/bin/sh
# The container stage, inside its VM (scripts/vm/run-container.sh): a pure
# cgroup v2 host with Podman, no systemd, no image registry. Runs the tests
# in containers made from a local root filesystem, one scenario each:
#   privileged-private  --privileged, private cgroup namespace (Podman's
#                       default on cgroup v2): the full list;
#   privileged-host     --privileged --cgroupns=host (hostd's cgroup is the
#                       runtime's /libpod_parent/libpod-<id>): the full list;
#   minimum-private     the narrowest flags found to suffice
#                       (scripts/container/minimum-flags, docs/containers.md):
#                       the full list, the escape suite without its controls
#                       (the container lacks the capabilities they need);
#   unprivileged        Podman's defaults: hostd must refuse, naming the fix.
# Each container gets a network namespace of its own holding lo and a dummy
# interface with a link-local address and no route out, and its own
# /tmp (the tests' scratch directories are named by pid, and pids repeat
# across containers).
# The work dir holds the lists: full.tests, minimum.tests, unprivileged.tests.
# usage: in-vm.sh <work dir> <release bin dir> <root filesystem> <repo>
work=$1 bin=$2 rootfs=$3 repo=$4
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /var/lib/containers /dev/shm /dev/pts
# Podman's storage on tmpfs: overlayfs cannot use the VM's overlay root as
# its upper layer. /dev/shm holds its lock file.
mount -t tmpfs tmpfs /var/lib/containers
mount -t tmpfs tmpfs /dev/shm
mount -t devpts devpts /dev/pts
mount -t cgroup2 none /sys/fs/cgroup
# The empty line first: the console's reset sequences end up on it, so the
# line after starts at column 0 for the host's grep.
echo
echo "container stage: $(uname -r), cgroup2 controllers: $(cat /sys/fs/cgroup/cgroup.controllers), podman $(podman --version | awk '{print $3}')"

# `hostd run` drops root to this user (the packages create it); made once,
# before the containers share the root filesystem.
chroot "$rootfs" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin sh -c \
  'id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd'

# The scenarios run side by side (the VM has 2 vCPUs; each suite is mostly
# one launch after another), each into its own log, printed in order after.
set -f # the flags hold globs for Podman (unmask=/proc/*), not for this shell
logs=/tmp/container-logs
mkdir -p "$logs"
names=""
# scenario <name> <expected layout> <tests file> <podman flags...>
scenario() {
  name=$1 expect=$2 tests=$3
  shift 3
  names="$names $name"
  # Its own network namespace: abstract socket names (the escape suite
  # binds one named by pid) are per network namespace.
  net=hostd-ct-$name n=$(($(echo "$names" | wc -w) * 4))
  ip netns add "$net"
  ip -n "$net" link set lo up
  ip -n "$net" link add hostd-dummy0 type dummy
  ip -n "$net" addr add "169.254.77.$((n + 1))/30" dev hostd-dummy0
  ip -n "$net" link set hostd-dummy0 up
  (
    echo "==> container $name: podman run $*"
    t0=$(date +%s)
    podman run --rm --name "hostd-$name" --network "ns:/run/netns/$net" \
      -v "$bin:$bin:ro" -v "$repo:$repo:ro" -v "$work:$work:ro" \
      -e HOSTD_IN_CONTAINER="$expect" -e HOSTD_REQUIRE_PRIVILEGED=1 -e HOSTD_BIN_DIR="$bin" -e RUST_BACKTRACE=1 -e HOSTD_ESCAPE_TIMEOUT_MS=180000 \
      --tmpfs /tmp:rw,exec,mode=1777 "$@" --rootfs "$rootfs" /bin/sh "$repo/scripts/container/in-container.sh" "$tests" </dev/null
    rc=$?
    echo "CONTAINER-RESULT $name rc=$rc $(($(date +%s) - t0))s"
  ) > "$logs/$name.log" 2>&1 &
}

scenario privileged-private v2_private_cgroupns "$work/full.tests" --privileged --cgroupns=private
scenario privileged-host v2_host_cgroupns "$work/full.tests" --privileged --cgroupns=host
# shellcheck disable=SC2046 # one flag per word
scenario minimum-private v2_private_cgroupns "$work/minimum.tests" --cgroupns=private $(cat "$repo/scripts/container/minimum-flags")
scenario unprivileged unprivileged "$work/unprivileged.tests" --cgroupns=private
wait

scenarios=0 passed=0
for name in $names; do
  cat "$logs/$name.log"
  scenarios=$((scenarios + 1))
  grep -q "^CONTAINER-RESULT $name rc=0 " "$logs/$name.log" && passed=$((passed + 1))
done
echo "CONTAINER-STAGE scenarios=$scenarios passed=$passed"
[ "$passed" -eq "$scenarios" ]
