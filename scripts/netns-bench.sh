# Sourced by the benchmarks that build network namespaces and run real
# sandboxes (bench-mesh.sh, bench-mesh-route.sh, bench-mesh-paid.sh):
# run_netns_bench <benchmark binary> <its argument> checks root, creates
# the user hostd drops to, installs iproute2 if missing, builds (release)
# and replaces the shell with the benchmark.
run_netns_bench() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  if [ "$(id -u)" != 0 ]; then echo "run as root (network namespaces, real sandboxes)" >&2; exit 1; fi
  id hostd >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /var/lib/hostd --shell /usr/sbin/nologin hostd
  command -v ip >/dev/null || { apt-get update -qq && apt-get install -y -qq iproute2; }
  cargo build --release --workspace --bins --locked -q
  exec "${CARGO_TARGET_DIR:-/var/tmp/hostd-target}"/x86_64-unknown-linux-gnu/release/"$1" "$2"
}
