#!/usr/bin/env bash
# Mesh benchmark (release build): two hostd in two network namespaces made
# for the run, meshecho on each; throughput and round trips through hostd
# beside raw TCP between the same namespaces. Usage: [frames per row].
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (network namespaces, real sandboxes)" >&2; exit 1; fi
id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/mesh-bench "${1:-20000}"
