#!/usr/bin/env bash
# A real Bitcoin node on loopback regtest (blvm-node 0.1.83, built from
# tools/regtest-node into /var/tmp/hostd-node-target, outside the clone).
# Usage: scripts/regtest-node.sh <datadir> [rpc port=18443] [p2p port=18444]
# Runs in the foreground; SIGTERM or Ctrl-C ends it. RPC: cookie auth,
# the cookie is <datadir>/.cookie (mode 0600). Build only: BUILD_ONLY=1.
# The RPC port answers at once, but a fresh datadir has no chain tip until
# the node's 10 s peer-handshake period is over: wait for getbestblockhash.
# Cold build: 12 min on 2 cores (measured 2026-12-01), 40 MB static binary.
set -euo pipefail
cd "$(dirname "$0")/.."
target=/var/tmp/hostd-node-target
cargo build --release --locked --manifest-path tools/regtest-node/Cargo.toml --target-dir "$target" -q
bin="$target/x86_64-unknown-linux-gnu/release/hostd-regtest-node"
[ -x "$bin" ] || bin="$target/release/hostd-regtest-node"
[ -z "${BUILD_ONLY:-}" ] || { echo "$bin"; exit 0; }
datadir=${1:?usage: scripts/regtest-node.sh <datadir> [rpc port] [p2p port]}
rpc=${2:-18443}
p2p=${3:-18444}
mkdir -p "$datadir"
datadir=$(cd "$datadir" && pwd)
# No outbound peers, no self-advertisement: the node talks to nobody. The
# RPC limits are raised for tests (the defaults drop the 11th connection
# per IP per minute and allow 10 requests a second per user). Cookie auth:
# required, with no password set.
cat > "$datadir/node.toml" <<TOML
listen_addr = "127.0.0.1:$p2p"
max_outbound_peers = 0
enable_self_advertisement = false

[rpc]
max_connections_per_ip_per_minute = 100000
ip_rate_limit_burst = 100000
ip_rate_limit_rate = 100000

[rpc_auth]
required = true
rate_limit_burst = 100000
rate_limit_rate = 100000
ip_rate_limit_burst = 100000
ip_rate_limit_rate = 100000
TOML
chmod 600 "$datadir/node.toml"
exec "$bin" "$datadir" "$datadir/node.toml" "127.0.0.1:$p2p" "127.0.0.1:$rpc"
