#!/usr/bin/env bash
# The main job on embedded defaults: start a real Bitcoin node (blvm-node
# on loopback regtest, scripts/regtest-node.sh), install the example
# modules (signed by a fresh demo maintainer key, the only trust anchor),
# start `hostd run` attached to the node with them sandboxed, mine blocks
# while it runs and show `chainwatch` following them, drive the other
# modules' CLI commands, then stop hostd and the node.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (hostd creates namespaces and cgroups)" >&2; exit 1; fi
need_apt=()
command -v c++ >/dev/null || need_apt+=(g++)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 && command -v clang++ >/dev/null || need_apt+=(clang libclang-dev)   # RocksDB: bindgen and clang++ (.cargo/config.toml)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# hostd run drops root to this user (the packages create it with sysusers.d).
if ! id hostd >/dev/null 2>&1; then
  echo "==> useradd --system hostd"
  useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
fi
echo "==> build (first build compiles RocksDB and the regtest node: ~30 min on 2 cores)"
(BUILD_ONLY=1 bash scripts/regtest-node.sh) > /var/tmp/hostd-node-build.log 2>&1 &
node_build=$!
cargo build --release --workspace --bins --locked -q
wait $node_build || { tail -30 /var/tmp/hostd-node-build.log; exit 1; }
node_bin=$(tail -1 /var/tmp/hostd-node-build.log)
bin="${CARGO_TARGET_DIR:-/var/tmp/hostd-target}/x86_64-unknown-linux-gnu/release"
demo=/var/tmp/hostd-demo
rm -rf "$demo" && mkdir -p "$demo/modules" "$demo/data" "$demo/run" "$demo/regtest"
# The node runs as the hostd user, so its .cookie (0600) is readable by
# the unprivileged daemon ([node] cookie_file).
chown hostd: "$demo/regtest"
rpc_port=18443
echo "==> regtest node on 127.0.0.1:$rpc_port (log: $demo/regtest/node.log)"
setpriv --reuid hostd --regid hostd --clear-groups "$node_bin" "$demo/regtest" 127.0.0.1:18444 127.0.0.1:$rpc_port > "$demo/regtest/node.log" 2>&1 &
node_pid=$!
# JSON-RPC from bash (/dev/tcp), cookie auth: rpc <method> <params json>.
rpc() {
  local body="{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"$1\",\"params\":$2}"
  exec 5<>/dev/tcp/127.0.0.1/$rpc_port || return 1
  printf 'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
    "$(base64 -w0 < "$demo/regtest/.cookie")" "${#body}" "$body" >&5
  tail -n 1 <&5; exec 5>&-
}
mine() { rpc generatetoaddress "[$1, \"bcrt1qft5p2uhsdcdc3l2ua4ap5qqfg4pjaqlp250x7us7a8qqhrxrxfsqseac85\"]" > /dev/null; }
for _ in $(seq 100); do [ -f "$demo/regtest/.cookie" ] && rpc getbestblockhash 2>/dev/null | grep -q result && break; sleep 0.2; done
"$bin/hostd" keygen --out "$demo/demo-maintainer.key" > "$demo/demo-maintainer.pub"
cat > "$demo/hostd.toml" <<TOML
[paths]
modules_dir = "modules"
data_dir = "data"
run_dir = "run"

[[trust.anchors]]
name = "demo-maintainer"
public_key = "$(cat "$demo/demo-maintainer.pub")"

# The operator's values win over the module's own config.toml.
[modules.hello]
greeting = "good morning"

[node]
backend = "rpc"
rpc_url = "http://127.0.0.1:$rpc_port"
cookie_file = "$demo/regtest/.cookie"
TOML
for m in hello notes chainwatch; do
  mkdir -p "$demo/modules/$m"
  cp "modules/examples/$m/module.toml" "$demo/modules/$m/"
  [ -f "modules/examples/$m/config.toml" ] && cp "modules/examples/$m/config.toml" "$demo/modules/$m/"
  cp "$bin/$m" "$demo/modules/$m/$m"
  "$bin/hostd" sign "$demo/modules/$m" --key "$demo/demo-maintainer.key" --name demo-maintainer >/dev/null
done
export HOSTD_CONFIG="$demo/hostd.toml"
echo "==> hostd run (log: $demo/hostd.log)"
"$bin/hostd" --log info run 2> "$demo/hostd.log" &
hostd_pid=$!
trap 'kill -TERM $hostd_pid $node_pid 2>/dev/null; wait $hostd_pid $node_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  "$bin/hostd" status --json 2>/dev/null | grep -q '"handshaken": true' && break
  sleep 0.1
done
sleep 0.5
echo "==> hostd status"
"$bin/hostd" status
echo "==> mine 3 blocks, one a second, while hostd runs"
for _ in 1 2 3; do mine 1; sleep 1; done
echo "==> hostd module chainwatch tip 5"
"$bin/hostd" module chainwatch tip 5
echo "==> hostd module hello greet operator"
"$bin/hostd" module hello greet operator
echo "==> hostd module notes add / list"
"$bin/hostd" module notes add "sandboxed and durable"
"$bin/hostd" module notes list
echo "==> the module's own file, written inside its sandbox to /data"
cat "$demo/data/modules/notes/files/notes.txt"
echo "==> hostd rpc hello_greet '\"node operator\"'"
"$bin/hostd" rpc hello_greet '"node operator"'
echo "==> hostd logs hello"
"$bin/hostd" logs hello -n 5
echo "==> hostd policy show hello (first lines)"
"$bin/hostd" policy show hello | head -n 12 || true
echo "==> hostd logs chainwatch"
"$bin/hostd" logs chainwatch -n 3
echo "==> stopping hostd and the node"
kill -TERM $hostd_pid; wait $hostd_pid || true
kill -TERM $node_pid; wait $node_pid || true
trap - EXIT
grep -E "stopped|unloaded|shutting down" "$demo/hostd.log" | tail -n 3 || true
