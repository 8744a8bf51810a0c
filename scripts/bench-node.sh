#!/usr/bin/env bash
# Node benchmark (release build) against a real regtest node: request
# round trips via hostd vs direct RPC vs bare IPC, block-to-event latency,
# hostd's RSS with a full header window. Usage: [requests] [blocks].
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (real sandboxes)" >&2; exit 1; fi
id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
HOSTD_NODE_BIN=$(BUILD_ONLY=1 bash scripts/regtest-node.sh)
export HOSTD_NODE_BIN
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/node-bench "${1:-2000}" "${2:-40}"
