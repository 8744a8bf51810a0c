#!/usr/bin/env bash
# The main job on embedded defaults: what this kernel can enforce, then a
# binary run under the strict default policy, with a few attacks it stops.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --bins --locked -q
bin=/var/tmp/hostd-target/x86_64-unknown-linux-gnu/debug
echo "==> hostd sandbox features"
"$bin/hostd" sandbox features
run() {
  local out
  out=$("$bin/hostd" sandbox run --outcome-json /tmp/hostd-demo-outcome.json -- "$bin/hostd-probe" "$@" || true)
  printf '%-36s %-48s %s\n' "$*" "${out:-<no output>}" "$(cut -c1-70 /tmp/hostd-demo-outcome.json)"
}
echo "==> hostd sandbox run (default policy) -- hostd-probe <attack>"
run status_caps
run read_path /etc/shadow
run create_file /pwned
run socket inet
run mount_tmpfs /dev
run fork_bomb 100
rm -f /tmp/hostd-demo-outcome.json
