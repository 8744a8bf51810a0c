# Shared by the VM stages (sourced): Debian's kernel booted under qemu with
# TCG (KVM here is a PVM hypervisor that stock kernels cannot use), a root
# shared read-only over 9p under a tmpfs overlay, and a result the guest
# prints on the console as "HOSTD-VM-RESULT <rc>" (qemu's own exit code is
# always 0).

vm_cache=/var/tmp/hostd-vm
# The initrd's /init prints this first: a console without it never ran
# anything of ours.
vm_init_marker="hostd-vm: initrd init started"
# Loaded by the initrd (the guest's /lib/modules is the host's, not its
# own): 9p and overlay for the root; dummy for an interface with no route
# out in the container stage's network namespace.
vm_modules="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci netfs fscache 9pnet 9pnet_virtio 9p overlay dummy"

# vm_kernel [bookworm|backports]
# Sets $kernel and $moddir; fetches the kernel package once (no host
# install). bookworm: Debian 12's own kernel (6.1, Landlock ABI 2).
# backports: bookworm-backports' (6.12, Landlock ABI 6, which hostd's strict
# default policy needs), fetched with a private apt list so the host's
# sources stay as they are.
vm_kernel() {
  local flavour=${1:-bookworm}
  mkdir -p "$vm_cache"; chmod 777 "$vm_cache"
  local need=()
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  [ -x /bin/busybox ] || need+=(busybox-static)
  command -v cpio >/dev/null || need+=(cpio)
  command -v xz >/dev/null || need+=(xz-utils)
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
  local dir=$vm_cache/k apt_opts=()
  if [ "$flavour" = backports ]; then
    dir=$vm_cache/k-backports
    local a=$vm_cache/apt-backports
    apt_opts=(-o "Dir::Etc::SourceList=$a/sources.list" -o Dir::Etc::SourceParts=/nonexistent
              -o "Dir::State::Lists=$a/lists" -o "Dir::Cache=$a/cache")
    if ! ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then
      mkdir -p "$a/lists/partial" "$a/cache/archives/partial"
      echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-backports main" > "$a/sources.list"
      apt-get "${apt_opts[@]}" update -qq
    fi
  fi
  if ! ls "$dir"/boot/vmlinuz-* >/dev/null 2>&1; then
    local pkg
    pkg=$(apt-cache "${apt_opts[@]}" depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/{print $2; exit}')
    [ -n "$pkg" ] || { echo "vm: no linux-image package found ($flavour)" >&2; return 1; }
    (cd "$vm_cache" && apt-get "${apt_opts[@]}" download "$pkg" 2>&1 | grep -v "couldn't be accessed by user '_apt'" || true)
    ls "$vm_cache"/"$pkg"_*.deb >/dev/null || { echo "vm: downloading $pkg failed" >&2; return 1; }
    rm -rf "$dir" && mkdir "$dir" && dpkg-deb -x "$vm_cache"/"$pkg"_*.deb "$dir"
  fi
  kernel=$(ls "$dir"/boot/vmlinuz-* | head -1)
  moddir=$(ls -d "$dir"/lib/modules/* | head -1)
}

# vm_initrd <work dir> <program to exec after switch_root> [stage2 script]
# Writes <work>/initrd.gz: mounts the 9p root read-only under a tmpfs
# overlay, copies the optional stage2 script in as /hostd-vm-stage2, then
# switch_root's into the program. The stage2 script's last command's status
# becomes the guest's result: a trailer added here reports it and powers off.
vm_initrd() {
  local work=$1 next=$2 stage2=${3:-}
  local root="$work/initramfs"
  mkdir -p "$root"/{bin,proc,sys,dev,lower,upper,newroot,modules}
  cp /bin/busybox "$root/bin/busybox"
  local m f
  for m in $vm_modules; do
    # Newer Debian kernels (6.12) ship xz-compressed modules, which
    # busybox's insmod cannot load: decompress them here.
    f=$(find "$moddir" \( -name "$m.ko" -o -name "$m.ko.xz" \) | head -1)
    case "$f" in
      "") ;;
      *.xz) xz -dc "$f" > "$root/modules/$m.ko" ;;
      *) cp "$f" "$root/modules/" ;;
    esac
  done
  if [ -n "$stage2" ]; then
    { cat "$stage2"; printf '%s\n' 'echo "HOSTD-VM-RESULT $?"' 'echo o > /proc/sysrq-trigger' 'sleep 10'; } > "$root/stage2"
  fi
  cat > "$root/init" <<INIT
#!/bin/busybox sh
/bin/busybox --install -s /bin
echo "$vm_init_marker"
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $vm_modules; do
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
#
# A guest kernel that panics before the initrd's /init has run is booted
# once more, loudly. Nothing of ours has run by then, and TCG causes such
# panics: with -smp 2 (multi-threaded TCG) Debian's 6.12 kernel now and then
# takes an "Oops: int3" in a function whose static branch it has just
# patched (text_poke_bp; seen in sched_clock_cpu ~2.3 s into the boot, in
# one of 24 boots in a row here), as a vCPU runs the int3 from a stale
# translation.
# A panic once /init has run may be ours and is never retried.
vm_boot() {
  local work=$1 share=$2 args=$3
  local log="$work/console.log" attempt rc
  for attempt in 1 2; do
    timeout "${VM_TIMEOUT:-900}" qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m "${VM_MEMORY_MB:-1536}" -nographic -no-reboot \
      -kernel "$kernel" -initrd "$work/initrd.gz" \
      -append "console=ttyS0 panic=-1 sysrq_always_enabled=1 $args" \
      -virtfs local,path="$share",mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
      -nic none </dev/null | tee "$log" | grep -v '^\s*$' || true
    rc=$(grep -a -o 'HOSTD-VM-RESULT [0-9]*' "$log" | tail -1 | awk '{print $2}')
    [ -z "$rc" ] || return "$rc"
    if [ "$attempt" = 1 ] && ! grep -a -q "$vm_init_marker" "$log" && grep -a -q 'Kernel panic' "$log"; then
      echo "vm: the guest kernel panicked before the initrd's init ran ($(grep -a -o -m1 'Oops: .*\|Kernel panic.*' "$log" | tr -d '\r')); booting it once more" >&2
      continue
    fi
    break
  done
  echo "vm: the guest reported no result (boot failure or timeout)" >&2
  return 98
}
