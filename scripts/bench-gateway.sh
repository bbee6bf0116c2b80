#!/usr/bin/env bash
# Gateway benchmark (benchmarks.md "Gateway"): switchyard serve next to LiteLLM and the
# bare upstream, all in front of the same fixed-response nginx, driven by wrk through
# the shared harness (scripts/bench/gateway/run.sh). Reports the rps ratio vs LiteLLM
# at 16 connections (target >= 100x), the p50 added over the direct upstream at 1
# connection (target <= 0.3 ms), the p99 added at 16 (<= 2 ms), the gateway's peak RSS
# under that load (<= 50 MB) and serve's start-to-ready time (<= 300 ms).
# Usage: scripts/bench-gateway.sh [--duration 10s]   (one JSON summary line last)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
duration=10s
[ "${1:-}" = --duration ] && duration=$2
port=${GATEWAY_PORT:-18399}
harness=$root/scripts/bench/gateway/run.sh

"$harness" setup >&2
cargo build --release --no-default-features --bin switchyard >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release/switchyard

dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
sy() { SWITCHYARD_LOG=error "$bin" --data-dir "$dir" --vault file "$@"; }
echo sk-bench | sy provider add bench-plain --kind openai-compatible --base-url http://127.0.0.1:18080/plain --api-key-stdin >/dev/null 2>&1
echo sk-bench | sy provider add bench-sse --kind openai-compatible --base-url http://127.0.0.1:18080/sse --api-key-stdin >/dev/null 2>&1
sy rule add --pattern bench-plain --match exact --to bench-plain --model up-model >/dev/null 2>&1
sy rule add --pattern bench-sse --match exact --to bench-sse --model up-model >/dev/null 2>&1

SWITCHYARD_LOG=warn "$bin" --data-dir "$dir" --vault file --json serve --port "$port" >"$dir/serve.json" 2>"$dir/serve.log" &
pid=$!
for _ in $(seq 100); do [ -s "$dir/serve.json" ] && break; sleep 0.1; done
ready_ms=$(python3 -c "import json,sys; print(round(json.load(open('$dir/serve.json'))['ready_ms'],1))")
echo "serve start_to_ready_ms=$ready_ms"

# Peak RSS of the gateway while the harness runs.
(peak=0; while kill -0 "$pid" 2>/dev/null; do
   r=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r
   echo "$peak" >"$dir/peak_rss_kb"; sleep 0.2; done) &

"$harness" compare --target "http://127.0.0.1:$port" --model bench-plain --stream-model bench-sse \
  --duration "$duration" --conns 1,16 | tee "$dir/harness.out"
peak_kb=$(cat "$dir/peak_rss_kb" 2>/dev/null || echo 0)
echo "gateway peak_rss_mb=$(python3 -c "print(round($peak_kb/1024,1))")"
python3 - "$dir/harness.out" "$ready_ms" "$peak_kb" <<'PY'
import json, sys
harness = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(json.dumps({"benchmark": "gateway", "start_to_ready_ms": float(sys.argv[2]),
                  "peak_rss_mb": round(int(sys.argv[3]) / 1024, 1), "harness": harness}, separators=(",", ":")))
PY
