#!/usr/bin/env bash
# Build hostd's .deb (cargo-deb) and .rpm (cargo-generate-rpm) from the
# release build and the metadata in hostd/Cargo.toml. Prints the two paths.
set -euo pipefail
cd "$(dirname "$0")/.."
# CARGO_TARGET_DIR overrides .cargo/config.toml's target-dir, as for cargo.
target_dir=${CARGO_TARGET_DIR:-/var/tmp/hostd-target}
triple=x86_64-unknown-linux-gnu
out="$target_dir/packages"
# Pinned: the versions measured on these machines (docs/kernel.md, "Tools").
command -v cargo-deb >/dev/null || (cd / && cargo install --locked cargo-deb@3.8.0)
command -v cargo-generate-rpm >/dev/null || (cd / && cargo install --locked cargo-generate-rpm@0.21.1)
cargo build --release --locked -p hostd -p hostd-sandbox >&2
# The man page and completions come from the CLI definition itself
# (hostd/Cargo.toml names them as target/release/gen-docs/…).
gen="$target_dir/$triple/release/gen-docs"
rm -rf "$gen"
"$target_dir/$triple/release/hostd" gen-docs "$gen"
gzip -9n "$gen/hostd.1"
rm -rf "$out" && mkdir -p "$out"
cargo deb -p hostd --no-build --target "$triple" --output "$out/" >&2
cargo generate-rpm -p hostd --target "$triple" --target-dir "$target_dir" --output "$out/" >&2
ls "$out"/*.deb "$out"/*.rpm
