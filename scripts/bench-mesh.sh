#!/usr/bin/env bash
# Mesh benchmark (release build): two hostd in two network namespaces made
# for the run, meshecho on each; throughput and round trips through hostd
# beside raw TCP between the same namespaces. Usage: [frames per row].
set -euo pipefail
source "$(dirname "$0")/netns-bench.sh"
run_netns_bench mesh-bench "${1:-20000}"
