#!/usr/bin/env bash
# Commons Mesh paid-routing benchmark (release build): lines of four hostd
# in network namespaces made for the run; bursts of prepared packets
# (paid with pre-minted bundles, free, and open mode as the baseline)
# through two routers. Usage: [packets per burst].
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (network namespaces, real sandboxes)" >&2; exit 1; fi
id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/mesh-paid-bench "${1:-3000}"
