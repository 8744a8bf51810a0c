#!/usr/bin/env bash
# A real Bitcoin node on loopback regtest (blvm-node 0.1.83, built from
# tools/regtest-node into /var/tmp/hostd-node-target, outside the clone).
# Usage: scripts/regtest-node.sh <datadir> [rpc port=18443] [p2p port=18444]
# Runs in the foreground; SIGTERM or Ctrl-C ends it. RPC: cookie auth,
# the cookie is <datadir>/.cookie (mode 0600). Build only: BUILD_ONLY=1.
# The RPC port answers within a second; wait for getbestblockhash to
# answer before mining (the chain tip comes right after the RPC).
# Cold build: done within the main build's 24 min when run beside it
# (scripts/test.sh, measured 2026-12-01), 40 MB static binary.
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
exec "$bin" "$datadir" "127.0.0.1:$p2p" "127.0.0.1:$rpc"
