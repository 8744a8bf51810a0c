#!/usr/bin/env bash
# Package tests (part of scripts/test.sh): build the .deb and .rpm, lint
# them, verify the systemd unit, print its exposure score, then install,
# upgrade over itself, remove and purge the .deb in a debootstrap'd Debian
# chroot, checking files, the hostd user and conffile handling each step;
# finally boot that Debian with the package under systemd in a VM
# (scripts/vm/run-systemd.sh) and check the running service from inside.
set -euo pipefail
cd "$(dirname "$0")/.."
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "==> packages: $*"; }

need_apt=()
command -v lintian >/dev/null || need_apt+=(lintian)
command -v rpm >/dev/null || need_apt+=(rpm)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v systemd-analyze >/dev/null || need_apt+=(systemd)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi

step "build"
mapfile -t pkgs < <(bash scripts/package.sh)
deb=$(printf '%s\n' "${pkgs[@]}" | grep '\.deb$')
rpm=$(printf '%s\n' "${pkgs[@]}" | grep '\.rpm$')
[ -f "$deb" ] && [ -f "$rpm" ] || fail "package.sh did not produce both packages: ${pkgs[*]}"

# Scratch for this script (rpm's database, lintian's temporary files):
# lintian leaves its ELF cache (mldbm-elf-*) behind in TMPDIR.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

step "lintian $(basename "$deb")"
lintian_out=$(TMPDIR=$scratch lintian --fail-on error "$deb" 2>&1) || { echo "$lintian_out"; fail "lintian reports errors"; }
echo "$lintian_out"

step "rpm -qpil / --scripts $(basename "$rpm")"
rpmdb=$scratch/rpmdb
mkdir "$rpmdb"
files=$(rpm --dbpath "$rpmdb" -qpl "$rpm")
rpm --dbpath "$rpmdb" -qpi "$rpm" | head -n 12
for f in /usr/bin/hostd /usr/bin/hostd-sandbox /usr/lib/hostd/hostd-setup /etc/hostd/hostd.toml /usr/lib/systemd/system/hostd.service /usr/lib/sysusers.d/hostd.conf \
         /usr/lib/tmpfiles.d/hostd.conf /usr/share/man/man1/hostd.1.gz /usr/share/hostd/policies/seccomp-baseline.toml; do
  grep -qx "$f" <<<"$files" || fail "rpm lacks $f"
done
rpm --dbpath "$rpmdb" -qpc "$rpm" | grep -qx /etc/hostd/hostd.toml || fail "rpm: hostd.toml is not a config file"
scripts=$(rpm --dbpath "$rpmdb" -qp --scripts "$rpm")
for s in "postinstall scriptlet" "preuninstall scriptlet" "postuninstall scriptlet" /usr/lib/hostd/hostd-setup "systemctl enable" userdel; do
  grep -q "$s" <<<"$scripts" || fail "rpm scriptlets lack: $s"
done
echo "rpm: ${#files} bytes of file list, scriptlets ok"

step "systemd-analyze security --offline=true (exposure floor: 4.0)"
sec=$(systemd-analyze security --offline=true packaging/systemd/hostd.service 2>&1 | tail -n 1)
echo "$sec"
score=$(sed -n 's/.*exposure level for hostd.service: \([0-9.]*\).*/\1/p' <<<"$sec")
[ -n "$score" ] || fail "no exposure score in: $sec"
awk -v s="$score" 'BEGIN { exit !(s <= 4.0) }' || fail "exposure $score is above the documented floor 4.0"

step "debootstrap chroot (Debian bookworm)"
base=$(bash scripts/debian-base.sh)
root=$(mktemp -d /var/tmp/hostd-chroot.XXXXXX)
cleanup() { umount "$root/proc" 2>/dev/null || true; rm -rf "$root" "$scratch"; }
trap cleanup EXIT
cp -a "$base/." "$root/"
mount -t proc proc "$root/proc"
cp "$deb" "$root/tmp/hostd.deb"
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

step "install"
in_root dpkg -i /tmp/hostd.deb
in_root /usr/bin/hostd --version
in_root /usr/bin/hostd-sandbox --version
in_root getent passwd hostd >/dev/null || fail "install: no hostd user"
for f in /etc/hostd/hostd.toml /usr/lib/systemd/system/hostd.service /usr/share/man/man1/hostd.1.gz \
         /usr/share/bash-completion/completions/hostd /usr/share/hostd/policies/seccomp-baseline.toml; do
  [ -e "$root$f" ] || fail "install: $f missing"
done
[ -L "$root/etc/systemd/system/multi-user.target.wants/hostd.service" ] || fail "install: unit not enabled"
[ "$(in_root stat -c %U /var/lib/hostd/data)" = hostd ] || fail "install: /var/lib/hostd/data is not hostd's"
grep -qx /etc/hostd/hostd.toml "$root/var/lib/dpkg/info/hostd.conffiles" || fail "install: hostd.toml is not a conffile"

step "systemd-analyze verify (installed unit; any stderr fails)"
verify_err=$(systemd-analyze verify --root="$root" hostd.service 2>&1 >/dev/null) || fail "verify failed: $verify_err"
[ -z "$verify_err" ] || fail "systemd-analyze verify: $verify_err"

step "upgrade over itself keeps a local conffile edit and module data"
echo "# local edit" >> "$root/etc/hostd/hostd.toml"
mkdir -p "$root/var/lib/hostd/data/modules/kept/files"
echo precious > "$root/var/lib/hostd/data/modules/kept/files/state"
in_root dpkg -i /tmp/hostd.deb
grep -q "# local edit" "$root/etc/hostd/hostd.toml" || fail "upgrade: local conffile edit lost"

step "remove"
in_root dpkg -r hostd
[ ! -e "$root/usr/bin/hostd" ] && [ ! -e "$root/usr/bin/hostd-sandbox" ] || fail "remove: binary still there"
[ -f "$root/etc/hostd/hostd.toml" ] || fail "remove: conffile must stay until purge"
in_root getent passwd hostd >/dev/null || fail "remove: user must stay until purge"

step "purge"
in_root dpkg -P hostd
[ ! -e "$root/etc/hostd" ] || fail "purge: /etc/hostd still there"
! in_root getent passwd hostd >/dev/null || fail "purge: hostd user still there"
[ "$(cat "$root/var/lib/hostd/data/modules/kept/files/state")" = precious ] || fail "purge: module data was removed"

step "under systemd: boot the chroot with the package in a VM (cgroup v2), start hostd.service"
bash scripts/vm/run-systemd.sh "$deb" "$base" "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release \
  || fail "hostd.service under systemd (console above)"
step "ok"
