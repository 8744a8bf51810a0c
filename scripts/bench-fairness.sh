#!/usr/bin/env bash
# Fairness benchmark (release build), hostd's default limits: a bystander
# module's round trip idle and while 1, 5 and 20 modules flood requests,
# events, calls and logs, side by side. Usage: [rounds] [samples] [extra
# [daemon] TOML].
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (real sandboxes)" >&2; exit 1; fi
id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/fairness-bench "${1:-5}" "${2:-5000}" "${3:-}"
