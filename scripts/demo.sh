#!/usr/bin/env bash
# The main job on embedded defaults: install the example modules (signed
# by a fresh demo maintainer key, the only trust anchor), start `hostd run`
# with them sandboxed, show `hostd status`, drive their CLI commands, then
# stop hostd. Also shows what the default sandbox stops.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then echo "run as root (hostd creates namespaces and cgroups)" >&2; exit 1; fi
need_apt=()
command -v c++ >/dev/null || need_apt+=(g++)
ls /usr/lib/llvm-*/lib/libclang.so >/dev/null 2>&1 || need_apt+=(clang libclang-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
# hostd run drops root to this user (the packages create it with sysusers.d).
if ! id hostd >/dev/null 2>&1; then
  echo "==> useradd --system hostd"
  useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
fi
echo "==> build (first build compiles RocksDB: ~20 min on 2 cores)"
cargo build --release --workspace --bins --locked -q
bin="${CARGO_TARGET_DIR:-/var/tmp/hostd-target}/x86_64-unknown-linux-gnu/release"
demo=/var/tmp/hostd-demo
rm -rf "$demo" && mkdir -p "$demo/modules" "$demo/data" "$demo/run"
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
TOML
for m in hello notes; do
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
trap 'kill -TERM $hostd_pid 2>/dev/null; wait $hostd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  "$bin/hostd" status --json 2>/dev/null | grep -q '"handshaken": true' && break
  sleep 0.1
done
sleep 0.5
echo "==> hostd status"
"$bin/hostd" status
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
echo "==> stopping hostd"
kill -TERM $hostd_pid; wait $hostd_pid || true
trap - EXIT
grep -E "stopped|unloaded|shutting down" "$demo/hostd.log" | tail -n 3 || true
