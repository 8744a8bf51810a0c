#!/usr/bin/env bash
# Commons Mesh routing benchmark (release build): four hostd in a line of
# network namespaces made for the run, commons-mesh and meshping on each;
# round trips through two routers beside raw TCP over IP forwarding
# through the same namespaces. Usage: [round trips per row].
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (network namespaces, real sandboxes)" >&2; exit 1; fi
id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/mesh-route-bench "${1:-20000}"
