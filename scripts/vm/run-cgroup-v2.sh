#!/usr/bin/env bash
# Boot Debian's kernel under qemu (TCG: KVM here is a PVM hypervisor that
# stock kernels cannot use) with the host's / shared read-only over 9p and a
# tmpfs overlay, mount a pure cgroup v2 hierarchy, run one test binary inside,
# and exit with its status. qemu's own exit code is always 0, so the guest
# reports its status on the console as "HOSTD-VM-RESULT <rc>".
#
# usage: run-cgroup-v2.sh <static-test-binary> [test args...]
set -euo pipefail
test_bin=$(readlink -f "$1"); shift
test_args="$*"
cache=/var/tmp/hostd-vm
mkdir -p "$cache"; chmod 777 "$cache"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
if ! ls "$cache"/k/boot/vmlinuz-* >/dev/null 2>&1; then
  pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
  (cd "$cache" && apt-get download "$pkg")
  rm -rf "$cache/k" && mkdir "$cache/k" && dpkg-deb -x "$cache"/"$pkg"_*.deb "$cache/k"
fi
kernel=$(ls "$cache"/k/boot/vmlinuz-* | head -1)
moddir=$(ls -d "$cache"/k/lib/modules/* | head -1)

work=$(mktemp -d /tmp/hostd-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/initramfs"
mkdir -p "$root"/{bin,proc,sys,dev,lower,upper,newroot,modules}
cp /bin/busybox "$root/bin/busybox"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
  f=$(find "$moddir" -name "$m.ko" | head -1)
  [ -n "$f" ] && cp "$f" "$root/modules/"
done
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
  [ -f /modules/$m.ko ] && insmod /modules/$m.ko
done
fail() { echo "HOSTD-VM-RESULT 99 ($1)"; echo o > /proc/sysrq-trigger; sleep 5; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /lower || fail "9p mount"
mount -t tmpfs tmpfs /upper && mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || fail "overlay"
cp /stage2 /newroot/hostd-vm-stage2 && chmod 755 /newroot/hostd-vm-stage2
for d in proc sys dev; do mount --move /$d /newroot/$d; done
exec switch_root /newroot /hostd-vm-stage2
INIT
cat > "$root/stage2" <<STAGE2
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
echo "HOSTD-VM-RESULT \$?"
echo o > /proc/sysrq-trigger
sleep 10
STAGE2
chmod 755 "$root/init" "$root/stage2"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"

log="$work/console.log"
timeout 900 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1536 -nographic -no-reboot \
  -kernel "$kernel" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3 sysrq_always_enabled=1" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -nic none </dev/null | tee "$log" | grep -v '^\s*$' || true
rc=$(grep -a -o 'HOSTD-VM-RESULT [0-9]*' "$log" | tail -1 | awk '{print $2}')
if [ -z "$rc" ]; then
  echo "vm: the guest reported no result (boot failure or timeout)" >&2
  exit 98
fi
exit "$rc"
