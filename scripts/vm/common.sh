# Shared by the VM stages (sourced): Debian's kernel booted under qemu with
# TCG (KVM here is a PVM hypervisor that stock kernels cannot use), a root
# shared read-only over 9p under a tmpfs overlay, and a result the guest
# prints on the console as "HOSTD-VM-RESULT <rc>" (qemu's own exit code is
# always 0).

vm_cache=/var/tmp/hostd-vm

# Sets $kernel and $moddir; fetches the kernel package once (no host install).
vm_kernel() {
  mkdir -p "$vm_cache"; chmod 777 "$vm_cache"
  local need=()
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  [ -x /bin/busybox ] || need+=(busybox-static)
  command -v cpio >/dev/null || need+=(cpio)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
  if ! ls "$vm_cache"/k/boot/vmlinuz-* >/dev/null 2>&1; then
    local pkg
    pkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    (cd "$vm_cache" && apt-get download "$pkg")
    rm -rf "$vm_cache/k" && mkdir "$vm_cache/k" && dpkg-deb -x "$vm_cache"/"$pkg"_*.deb "$vm_cache/k"
  fi
  kernel=$(ls "$vm_cache"/k/boot/vmlinuz-* | head -1)
  moddir=$(ls -d "$vm_cache"/k/lib/modules/* | head -1)
}

# vm_initrd <work dir> <program to exec after switch_root> [stage2 script]
# Writes <work>/initrd.gz: mounts the 9p root read-only under a tmpfs
# overlay, copies the optional stage2 script in as /hostd-vm-stage2, then
# switch_root's into the program.
vm_initrd() {
  local work=$1 next=$2 stage2=${3:-}
  local root="$work/initramfs"
  mkdir -p "$root"/{bin,proc,sys,dev,lower,upper,newroot,modules}
  cp /bin/busybox "$root/bin/busybox"
  local m f
  for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
    f=$(find "$moddir" -name "$m.ko" | head -1)
    [ -n "$f" ] && cp "$f" "$root/modules/"
  done
  [ -n "$stage2" ] && cp "$stage2" "$root/stage2"
  cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay; do
  [ -f /modules/\$m.ko ] && insmod /modules/\$m.ko
done
fail() { echo "HOSTD-VM-RESULT 99 (\$1)"; echo o > /proc/sysrq-trigger; sleep 5; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /lower || fail "9p mount"
mount -t tmpfs tmpfs /upper && mkdir -p /upper/u /upper/w
mount -t overlay overlay -o lowerdir=/lower,upperdir=/upper/u,workdir=/upper/w /newroot || fail "overlay"
[ -f /stage2 ] && cp /stage2 /newroot/hostd-vm-stage2 && chmod 755 /newroot/hostd-vm-stage2
for d in proc sys dev; do mount --move /\$d /newroot/\$d; done
exec switch_root /newroot $next
INIT
  chmod 755 "$root/init"
  (cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initrd.gz"
}

# vm_boot <work dir> <directory shared as the root> <extra kernel args>
# Boots, tees the console to <work>/console.log, and returns the guest's rc
# (98: no result, e.g. a boot failure or the timeout).
vm_boot() {
  local work=$1 share=$2 args=$3
  local log="$work/console.log"
  timeout 900 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1536 -nographic -no-reboot \
    -kernel "$kernel" -initrd "$work/initrd.gz" \
    -append "console=ttyS0 panic=-1 sysrq_always_enabled=1 $args" \
    -virtfs local,path="$share",mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -nic none </dev/null | tee "$log" | grep -v '^\s*$' || true
  local rc
  rc=$(grep -a -o 'HOSTD-VM-RESULT [0-9]*' "$log" | tail -1 | awk '{print $2}')
  if [ -z "$rc" ]; then
    echo "vm: the guest reported no result (boot failure or timeout)" >&2
    return 98
  fi
  return "$rc"
}
