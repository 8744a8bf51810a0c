#!/usr/bin/env bash
# Daemon benchmarks (release build), one run, figures side by side: IPC
# round trip vs raw socketpair, pipelined throughput, start of N modules,
# event fan-out to N modules, memory per module. Usage: [modules] [rounds].
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (real sandboxes)" >&2; exit 1; fi
id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/daemon-bench "${1:-50}" "${2:-5}"
