#!/usr/bin/env bash
# Launch benchmark (release build): bare exec vs bubblewrap vs hostd, one run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap; }
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/launch-bench "${1:-300}"
