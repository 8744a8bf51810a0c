#!/usr/bin/env bash
# The package under a real systemd: boot a Debian 12 root (the package
# tests' debootstrap chroot, with the .deb installed and a signed example
# module added) as a qemu guest whose init is systemd, on a pure cgroup v2
# hierarchy, and check from inside that hostd.service came up (Type=notify),
# dropped to the hostd user with exactly the documented capabilities, and
# launched the module's sandbox in a delegated cgroup next to its own leaf.
#
# usage: run-systemd.sh <hostd .deb> <chroot base> <release bin dir>
set -euo pipefail
deb=$(readlink -f "$1"); base=$2; bin=$3
source "$(dirname "$(readlink -f "$0")")/common.sh"
vm_kernel
work=$(mktemp -d /var/tmp/hostd-sysvm.XXXXXX)
root="$work/root"
trap 'rm -rf "$work"' EXIT
cp -a "$base/." "$root/"
cp "$deb" "$root/tmp/hostd.deb"
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin dpkg -i /tmp/hostd.deb >/dev/null

# A signed module and the key that signs it as the only trust anchor.
"$bin/hostd" keygen --out "$work/vm.key" > "$work/vm.pub"
mod="$root/var/lib/hostd/modules/hello"
mkdir -p "$mod"
cp modules/examples/hello/module.toml modules/examples/hello/config.toml "$mod/"
cp "$bin/hello" "$mod/hello"
"$bin/hostd" sign "$mod" --key "$work/vm.key" --name vm >/dev/null
cat >> "$root/etc/hostd/hostd.toml" <<TOML

[[trust.anchors]]
name = "vm"
public_key = "$(cat "$work/vm.pub")"

# Debian 12's kernel (6.1) has Landlock ABI 2: allowed, and reported, here.
[sandbox]
allow_downgrade = ["landlock", "landlock_scope", "landlock_net"]
TOML

cat > "$root/usr/local/bin/hostd-vm-check" <<'CHECK'
#!/bin/sh
# Runs as a oneshot unit after hostd.service; reports on the console.
exec > /dev/ttyS0 2>&1
fail() { echo "vm check: FAIL: $*"; journalctl -b -u hostd --no-pager | tail -n 40; echo "HOSTD-VM-RESULT 1"; systemctl poweroff --force --force; }
systemctl is-active --quiet hostd || fail "hostd.service is not active"
pid=$(systemctl show -p MainPID --value hostd)
for i in $(seq 120); do
  hostd status --json > /tmp/status.json 2>/dev/null && grep -q '"handshaken": true' /tmp/status.json && break
  sleep 1
done
grep -q '"handshaken": true' /tmp/status.json || fail "the hello module never handshook"
hostd status
uid=$(id -u hostd)
grep -q "^Uid:[[:space:]]*$uid[[:space:]]*$uid[[:space:]]*$uid[[:space:]]*$uid" /proc/$pid/status || fail "daemon uid: $(grep Uid /proc/$pid/status)"
# The daemon parses module input and keeps no capability at all.
grep -q "^CapEff:[[:space:]]*0000000000000000" /proc/$pid/status || fail "daemon CapEff: $(grep CapEff /proc/$pid/status)"
grep -q "^CapBnd:[[:space:]]*0000000000000000" /proc/$pid/status || fail "daemon CapBnd: $(grep CapBnd /proc/$pid/status)"
launcher=$(cat /proc/$pid/task/$pid/children | awk '{print $1}')
grep -q "^Uid:[[:space:]]*$uid" /proc/$launcher/status || fail "launcher uid"
# CHOWN, FOWNER (ownership work for the daemon), SETGID, SETUID.
grep -q "^CapEff:[[:space:]]*00000000000000c9" /proc/$launcher/status || fail "launcher CapEff: $(grep CapEff /proc/$launcher/status)"
cg=$(cat /proc/$pid/cgroup)
case "$cg" in */hostd.service/supervisor) ;; *) fail "daemon cgroup $cg is not hostd.service/supervisor";; esac
# The module's cgroup is a sibling of the daemon's leaf, with its limits.
mdir=$(ls -d /sys/fs/cgroup/system.slice/hostd.service/hostd-hello-* 2>/dev/null | head -n 1)
[ -n "$mdir" ] || fail "no hostd-hello-* cgroup beside $(ls /sys/fs/cgroup/system.slice/hostd.service)"
mpid=$(head -n 1 "$mdir/cgroup.procs")
[ -n "$mpid" ] || fail "$mdir is empty"
mcg=$(cat /proc/$mpid/cgroup)
[ "$(cat "$mdir/memory.max")" != max ] && [ "$(cat "$mdir/pids.max")" != max ] || fail "$mdir has no memory/pids limit"
[ "$(stat -c %U "$mdir")" = hostd ] || fail "$mdir is not hostd's (delegation)"
muid=$(awk '/^Uid:/{print $2}' /proc/$mpid/status)
[ "$muid" != 0 ] && [ "$muid" != "$uid" ] || fail "module uid $muid"
out=$(hostd module hello greet vm) || fail "hostd module hello greet: $out"
echo "$out" | grep -q "hello, vm!" || fail "greet answered: $out"
echo "vm check: hostd.service active (Type=notify), daemon uid $uid CapEff=none, launcher CapEff=CHOWN,FOWNER,SETGID,SETUID, module pid $mpid uid $muid in $mcg; greet: $out"
echo "HOSTD-VM-RESULT 0"
systemctl poweroff --force --force
CHECK
chmod 755 "$root/usr/local/bin/hostd-vm-check"
cat > "$root/etc/systemd/system/hostd-vm-check.service" <<'UNIT'
[Unit]
Description=hostd VM stage check
After=hostd.service
Wants=hostd.service

[Service]
Type=oneshot
ExecStart=/usr/local/bin/hostd-vm-check

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/hostd-vm-check.service "$root/etc/systemd/system/multi-user.target.wants/hostd-vm-check.service"
# The package enables hostd but never starts it; this boot is the start.
vm_initrd "$work" /lib/systemd/systemd
rc=0
vm_boot "$work" "$root" "systemd.unit=multi-user.target systemd.show_status=0 quiet loglevel=3" || rc=$?
exit "$rc"
