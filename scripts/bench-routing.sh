#!/usr/bin/env bash
# Routing benchmarks (benchmarks.md "Core"): route lookup with 10,000 mixed rules
# (p50 target <= 2 us, and the ratio against a naive in-order scan) and a reorder of
# 1,000 rules in one transaction (target < 50 ms).
# Prints one line per measurement and a JSON summary as the last line.
# Usage: scripts/bench-routing.sh [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -f /work/helper-env.sh && -z "${MLX_PREFIX:-}" ]]; then
  # Helper worktrees share one prebuilt MLX and target dir.
  source /work/helper-env.sh
fi
cargo build --release --no-default-features --example bench_routing >&2
exe="${CARGO_TARGET_DIR:-target}/release/examples/bench_routing"
echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ) $(uname -sm), $(nproc 2>/dev/null || sysctl -n hw.ncpu) cpus, load $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)" >&2
exec "$exe" "$@"
