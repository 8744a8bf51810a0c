#!/usr/bin/env bash
# Commons Mesh routing benchmark (release build): four hostd in a line of
# network namespaces made for the run, commons-mesh and meshping on each;
# round trips through two routers beside raw TCP over IP forwarding
# through the same namespaces. Usage: [round trips per row].
set -euo pipefail
source "$(dirname "$0")/netns-bench.sh"
run_netns_bench mesh-route-bench "${1:-20000}"
