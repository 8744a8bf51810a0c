#!/usr/bin/env bash
# A minimal Debian 12 root filesystem, debootstrap'd once and kept at
# /var/tmp/hostd-chroot-base: the package tests copy it into a chroot and
# boot it under systemd; the container stage runs Podman containers from it
# (`podman run --rootfs`: no image registry needed). Prints its path.
set -euo pipefail
base=/var/tmp/hostd-chroot-base
if [ ! -x "$base/usr/bin/dpkg" ]; then
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap; } >&2
  rm -rf "$base.tmp"
  debootstrap --variant=minbase --include=systemd,init-system-helpers,passwd bookworm "$base.tmp" http://deb.debian.org/debian >/dev/null
  mv "$base.tmp" "$base"
fi
echo "$base"
