#!/usr/bin/env bash
# Gateway benchmark (benchmarks.md "Gateway"): switchyard serve next to LiteLLM and the
# bare upstream, all in front of the same fixed-response nginx, driven by wrk through
# the shared harness (scripts/bench/gateway/run.sh). Reports the rps ratio vs LiteLLM
# at 16 connections (target >= 100x), the p50 added over the direct upstream at 1
# connection (target <= 0.1 ms), the p99 added at 16 (<= 2 ms), the gateway's peak RSS
# under that load (<= 50 MB) and serve's start-to-ready time (<= 300 ms). The harness
# posts chat completions to an OpenAI-compatible provider: the relayed (same-protocol)
# path. Phase 2 puts the translated paths beside it on the same upstream: Anthropic
# messages and the Responses API, each vs chat (target: >= 0.85x throughput).
# Usage: [API_ROUNDS=5] [API_DURATION=5s] scripts/bench-gateway.sh [--duration 10s]
#        (one JSON summary line last)
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
# Phase 2 only: the same upstream as an `openai` provider, to which /v1/responses is relayed.
echo sk-bench | sy provider add oai-plain --kind openai --base-url http://127.0.0.1:18080/plain --api-key-stdin >/dev/null 2>&1
echo sk-bench | sy provider add oai-sse --kind openai --base-url http://127.0.0.1:18080/sse --api-key-stdin >/dev/null 2>&1
sy rule add --pattern oai-plain --match exact --to oai-plain --model up-model >/dev/null 2>&1
sy rule add --pattern oai-sse --match exact --to oai-sse --model up-model >/dev/null 2>&1

# Client tokens are on (the default): every request of the run carries a real token, so
# its verification (cached after the first sight, revocation checked per request) is in
# every figure below.
token=$(sy --json token issue bench | python3 -c "import json,sys; print(json.load(sys.stdin)['token'])")
export TARGET_TOKEN=$token

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

# Phase 2: the gateway's own APIs against the same nginx upstream. Chat completions to
# an OpenAI-compatible provider and the Responses API to an `openai` provider are relayed
# (same protocol); Anthropic messages and the Responses API to the chat-only provider are
# translated to chat. Same machine, same run; ratios vs chat. Every point is measured in
# API_ROUNDS rounds (default 5) of API_DURATION (default 5s) after a 2 s warm-up, the
# rounds interleaved so that a slow spell of the shared VM falls on every API alike, and
# each round starting with the next API (none is always measured first); a ratio is taken
# within a round (against chat measured moments apart) and the median over the rounds is
# reported with its spread. The relayed Responses API does chat's work: its ratio shows
# the run's noise.
api_rounds=${API_ROUNDS:-5}
api_duration=${API_DURATION:-5s}
ngx=$dir/nginx
mkdir -p "$ngx"
sed -e "s|__RUN_DIR__|$ngx|g" -e "s|__UPSTREAM_PORT__|18080|g" "$root/scripts/bench/gateway/nginx.conf" \
  | sed "/location = \/plain\/v1\/models/r $root/scripts/bench/responses-locations.conf" >"$ngx/nginx.conf"
setsid nginx -p "$ngx/" -e "$ngx/nginx-error.log" -c "$ngx/nginx.conf" >/dev/null 2>&1 &
ngx_pid=$!
for _ in $(seq 100); do curl -fsS -o /dev/null http://127.0.0.1:18080/plain/v1/models 2>/dev/null && break; sleep 0.1; done
: >"$dir/apis.out"
for round in $(seq "$api_rounds"); do
for conns in 1 16; do
  for stream in false true; do
    model=bench-plain; [ "$stream" = true ] && model=bench-sse
    order=(chat messages responses responses_relayed)
    shift_by=$(((round - 1) % 4))
    for api in "${order[@]:shift_by}" "${order[@]:0:shift_by}"; do
      path=/v1/chat/completions m=$model lua_api=$api
      [ "$api" = messages ] && path=/v1/messages
      [ "$api" = responses ] && path=/v1/responses
      if [ "$api" = responses_relayed ]; then
        path=/v1/responses lua_api=responses m=oai-plain
        [ "$stream" = true ] && m=oai-sse
      fi
      TOKEN=$token API=$lua_api MODEL=$m STREAM=$stream wrk -t1 -c"$conns" -d2s -s "$root/scripts/bench/api-mix.lua" "http://127.0.0.1:$port$path" >/dev/null 2>&1
      line=$(TOKEN=$token API=$lua_api MODEL=$m STREAM=$stream wrk -t1 -c"$conns" -d"$api_duration" --timeout 10s -s "$root/scripts/bench/api-mix.lua" "http://127.0.0.1:$port$path" | grep '^RESULT' | sed 's/^RESULT //')
      echo "round=$round api=$api conns=$conns stream=$stream $line" | tee -a "$dir/apis.out"
    done
  done
done
done
kill -TERM -- "-$ngx_pid" 2>/dev/null || kill "$ngx_pid" 2>/dev/null || true

python3 - "$dir/harness.out" "$ready_ms" "$peak_kb" "$dir/apis.out" "$api_rounds" <<'PY'
import json, statistics, sys
harness = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
runs = {}
for line in open(sys.argv[4]):
    kv = dict(p.split("=", 1) for p in line.split())
    runs.setdefault((kv["api"], kv["conns"], kv["stream"]), []).append(
        {k: float(kv[k]) for k in ("rps", "p50_ms", "p99_ms")} | {"non2xx": int(kv["non2xx"]), "errors": int(kv["errors"])})
med = statistics.median
# Per point: the median of each figure over the rounds, errors summed.
apis = {k: {f: round(med(r[f] for r in rs), 3) for f in ("rps", "p50_ms", "p99_ms")}
           | {"non2xx": sum(r["non2xx"] for r in rs), "errors": sum(r["errors"] for r in rs), "rounds": len(rs)}
        for k, rs in runs.items()}
ratios = {}
for api in ("messages", "responses", "responses_relayed"):
    for conns in ("1", "16"):
        for stream in ("false", "true"):
            a, c = runs[(api, conns, stream)], runs[("chat", conns, stream)]
            per_round = [x["rps"] / y["rps"] for x, y in zip(a, c)]
            added = [x["p50_ms"] - y["p50_ms"] for x, y in zip(a, c)]
            key = f"{api}_vs_chat conns={conns} stream={stream}"
            ratios[key] = {"rps": round(med(per_round), 3), "rps_min": round(min(per_round), 3),
                           "rps_max": round(max(per_round), 3), "added_p50_ms": round(med(added), 3)}
            r = ratios[key]
            print(f"ratio {key} rps={r['rps']} (rounds {r['rps_min']}..{r['rps_max']}) added_p50_ms={r['added_p50_ms']}")
print(json.dumps({"benchmark": "gateway", "start_to_ready_ms": float(sys.argv[2]),
                  "peak_rss_mb": round(int(sys.argv[3]) / 1024, 1), "harness": harness,
                  "apis": {" ".join(k): v for k, v in apis.items()}, "api_rounds": int(sys.argv[5]),
                  "api_ratios": ratios},
                 separators=(",", ":")))
PY
