#!/usr/bin/env bash
# The full IPC fuzz run (release build): generated frames through the
# frame decoder, then at a live hostd connection from a sandboxed module
# while a bystander pair keeps answering. Prints frames/s and findings;
# exits 1 on any finding. Usage: [frames] (default 10,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (real sandboxes)" >&2; exit 1; fi
id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/ipc-fuzz "${1:-10000000}"
