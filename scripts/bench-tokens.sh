#!/usr/bin/env bash
# Benchmark: client-token verification per gateway request (issue 15: <= 20 us cached).
# Release build of the bench_tokens example; one line per measurement, JSON summary last.
# The gateway benchmark (scripts/bench-gateway.sh) runs with tokens on as well.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --no-default-features --example bench_tokens >&2
SWITCHYARD_LOG=error "${CARGO_TARGET_DIR:-target}/release/examples/bench_tokens"
