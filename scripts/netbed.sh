#!/usr/bin/env bash
# A multi-host mesh test bed by hand: N hostd instances in a line, each in
# its own network namespace (hostd-bed-<i>), joined by veth pairs with
# 169.254.<e+1>.1/30 and .2/30 (edge e joins host e and host e+1) and no
# route anywhere else; each runs the meshecho example listening on :9000.
#
#   scripts/netbed.sh up 3        # start 3 hosts (state in /var/tmp/hostd-netbed)
#   hostd --config /var/tmp/hostd-netbed/host0/hostd.toml module meshecho connect 169.254.1.2:9000
#   scripts/netbed.sh down        # stop them and remove namespaces and veths
#
# The tests do the same from Rust (tests/src/netbed.rs). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
BED=${NETBED_DIR:-/var/tmp/hostd-netbed}
BIN=${CARGO_TARGET_DIR:-/var/tmp/hostd-target}/x86_64-unknown-linux-gnu/release

down() {
  for pidfile in "$BED"/host*/hostd.pid; do
    [ -e "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    # Only the hostd this script started: check the pid still runs hostd.
    if [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$BIN/hostd" ]; then
      kill -TERM "$pid" && for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$pidfile"
  done
  for ns in $(ip netns list | awk '/^hostd-bed-/ {print $1}'); do ip netns del "$ns"; done
  echo "netbed: down"
}

up() {
  local n=$1
  [ "$n" -ge 2 ] || { echo "usage: $0 up <hosts >= 2>" >&2; exit 2; }
  down >/dev/null
  cargo build --release --workspace --bins --locked -q
  id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
  mkdir -p "$BED"
  [ -e "$BED/key" ] || "$BIN/hostd" keygen --out "$BED/key" > "$BED/key.pub"
  for i in $(seq 0 $((n - 1))); do
    ip netns add "hostd-bed-$i"
    ip -n "hostd-bed-$i" link set lo up
  done
  for e in $(seq 0 $((n - 2))); do
    ip link add "hbed${e}a" type veth peer name "hbed${e}b"
    ip link set "hbed${e}a" netns "hostd-bed-$e"
    ip link set "hbed${e}b" netns "hostd-bed-$((e + 1))"
    ip -n "hostd-bed-$e" addr add "169.254.$((e + 1)).1/30" dev "hbed${e}a"
    ip -n "hostd-bed-$((e + 1))" addr add "169.254.$((e + 1)).2/30" dev "hbed${e}b"
    ip -n "hostd-bed-$e" link set "hbed${e}a" up
    ip -n "hostd-bed-$((e + 1))" link set "hbed${e}b" up
  done
  for i in $(seq 0 $((n - 1))); do
    h="$BED/host$i"
    rm -rf "$h" && mkdir -p "$h/modules/meshecho" "$h/data" "$h/run"
    cp "$BIN/meshecho" modules/examples/meshecho/module.toml "$h/modules/meshecho/"
    "$BIN/hostd" sign "$h/modules/meshecho" --key "$BED/key" >/dev/null
    cat > "$h/hostd.toml" <<TOML
[paths]
modules_dir = "modules"
data_dir = "data"
run_dir = "run"

[[trust.anchors]]
name = "netbed"
public_key = "$(cat "$BED/key.pub")"

[mesh]
bind_allow = ["0.0.0.0/32:9000"]
connect_allow = ["169.254.0.0/17"]

[modules.meshecho]
mesh = { listen_addr = "0.0.0.0:9000" }
TOML
    nsenter --net="/run/netns/hostd-bed-$i" "$BIN/hostd" --config "$h/hostd.toml" run > "$h/hostd.log" 2>&1 &
    echo $! > "$h/hostd.pid"
  done
  for i in $(seq 0 $((n - 1))); do
    for _ in $(seq 100); do "$BIN/hostd" --config "$BED/host$i/hostd.toml" status >/dev/null 2>&1 && break; sleep 0.1; done
    echo "host$i: namespace hostd-bed-$i, config $BED/host$i/hostd.toml, log $BED/host$i/hostd.log"
  done
  echo "e.g.: $BIN/hostd --config $BED/host0/hostd.toml module meshecho connect 169.254.1.2:9000"
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  down) down ;;
  *) echo "usage: $0 up <hosts> | down" >&2; exit 2 ;;
esac
