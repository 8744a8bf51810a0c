#!/usr/bin/env bash
# The container stage of the test command (run by scripts/test.sh after the
# tests): inside the cgroup v2 VM, Podman containers made from a local
# Debian root filesystem run the escape suite (every case and control), the
# cgroup limit tests (memory OOM, pids, cpu throttling, teardown) and a
# daemon smoke test, with --privileged in a private and in the host cgroup
# namespace, and (every attack, no controls) with the minimum flags
# docs/containers.md names; a container
# with Podman's defaults must be refused by name (scripts/container/in-vm.sh).
# Any failure inside fails this script. Needs root, podman (installed here
# when missing) and the release test binaries (`cargo nextest run --release`
# builds them).
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v podman >/dev/null || need_apt+=(podman)
command -v ip >/dev/null || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
rootfs=$(bash scripts/debian-base.sh)

# The test binaries nextest built, by name (their file names carry a hash).
suites=$(cargo nextest list --release --workspace --locked --message-format json \
  -E 'binary(escape) | binary(cgroup_v2) | binary(container)') || { echo "container stage: cargo nextest list failed" >&2; exit 1; }
binary() {
  python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["rust-suites"]["hostd-tests::"+sys.argv[1]]["binary-path"])' "$1" <<<"$suites"
}
escape=$(binary escape); cgroup=$(binary cgroup_v2); container=$(binary container)
bin=$(dirname "$(dirname "$escape")")
for f in "$escape" "$cgroup" "$container" "$bin/hostd" "$bin/hostd-sandbox" "$bin/hostd-probe" "$bin/hostd-testmod"; do
  [ -x "$f" ] || { echo "container stage: $f is missing (build with cargo build --release --workspace --bins and cargo nextest run --release)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/hostd-ctstage.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"
cat > "$work/full.tests" <<LIST
$container inside_container_the_layout_is_reported
$cgroup inside_vm_cgroup_v2 HOSTD_IN_VM=1
$container inside_container_a_daemon_runs_a_signed_module
$escape escape_suite
LIST
# With the minimum flags the container itself lacks the capabilities some
# controls need (CAP_NET_RAW, CAP_BPF, CAP_DAC_READ_SEARCH, …), so the
# controls are proven in the privileged scenarios; here every attack is
# checked through `hostd sandbox run`, the command inside the daemon's binary.
cat > "$work/minimum.tests" <<LIST
$container inside_container_the_layout_is_reported
$cgroup inside_vm_cgroup_v2 HOSTD_IN_VM=1
$container inside_container_a_daemon_runs_a_signed_module
$escape escape_suite_through_hostd_sandbox_run
LIST
cat > "$work/unprivileged.tests" <<LIST
$container inside_container_the_layout_is_reported
$container inside_unprivileged_container_a_launch_is_refused_by_name
LIST

# One VM runs every scenario; its console goes to console.log (a guest
# kernel that panics before anything of ours ran is booted once more by
# vm_boot, which says so on a "vm:" line).
start=$(date +%s)
rc=0
bash scripts/vm/run-container.sh "$work" "$bin" "$rootfs" > "$work/console.log" 2>&1 || rc=$?
grep -a -E '^(==> container|CONTAINER-|CT-|container stage:|vm:)' "$work/console.log" || true
# No summary line must reach the failure report below, not end this
# script silently under set -e.
summary=$(grep -a -o 'CONTAINER-STAGE scenarios=[0-9]* passed=[0-9]*' "$work/console.log" | tail -1 || true)
echo "container stage: ${summary:-no summary} in $(($(date +%s) - start)) s (VM boot included)"
if [ "$rc" -ne 0 ] || [ "$summary" != "CONTAINER-STAGE scenarios=4 passed=4" ]; then
  grep -a -v '^\s*$' "$work/console.log" | tail -n 300
  echo "container stage failed (rc $rc); the guest's console is above" >&2
  exit 1
fi
