#!/usr/bin/env bash
# Launch benchmark (release build), one run: bare exec, bubblewrap, hostd-sandbox
# run, hostd sandbox run, and the library's cold and standby launches.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v bwrap >/dev/null || { apt-get update -qq && apt-get install -y -qq bubblewrap; }
cargo build --release --workspace --bins --locked -q
exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/launch-bench "${1:-300}"
