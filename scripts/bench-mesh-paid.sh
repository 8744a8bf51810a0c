#!/usr/bin/env bash
# Commons Mesh paid-routing benchmark (release build): lines of four hostd
# in network namespaces made for the run; bursts of prepared packets
# (paid with pre-minted bundles, free, and open mode as the baseline)
# through two routers. Usage: [packets per burst].
set -euo pipefail
source "$(dirname "$0")/netns-bench.sh"
run_netns_bench mesh-paid-bench "${1:-3000}"
