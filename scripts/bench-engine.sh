#!/usr/bin/env bash
# Engine benchmark (benchmarks.md "Local inference"): our engine vs mlx-lm on the same
# converted fixture (SmolLM2-135M-Instruct), same 256 prompt token ids, 128 new tokens,
# greedy, EOS ignored. Each measurement is its own process (model loaded, one warm-up,
# one timed run); the two sides alternate back to back ROUNDS times (default 3) and
# the medians are compared. Then the prefix cache: time to first token of a second
# chat turn with the cache vs without. Then a request arriving while another generates
# 512 tokens (its time to first token vs alone + 2 decode steps). Then the prefix cache
# on disk (a 4,096-token prompt after an unload and a new load, warm vs cold). Then
# concurrent streams (1, 2, 4, 8) against mlx-lm's batch_generate. Then a
# mixture-of-experts model, one stream against mlx-lm. One line per measurement, JSON
# summary last.
#
#   scripts/bench-engine.sh            (make bench-engine)
#   ROUNDS=5 PROMPT_TOKENS=512 GEN_TOKENS=64 scripts/bench-engine.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
ROUNDS=${ROUNDS:-3}
# Which parts to run: single (one stream vs mlx-lm), prefix (cache), disk (prefix cache
# on disk), arrival (a request arriving mid-generation), streams (concurrent), moe (a
# mixture-of-experts model, one stream vs mlx-lm).
PARTS=${PARTS:-single,prefix,arrival,streams,disk,moe}
has() { [[ ",$PARTS," == *",$1,"* ]]; }
PROMPT_TOKENS=${PROMPT_TOKENS:-256}
GEN_TOKENS=${GEN_TOKENS:-128}

scripts/fetch-fixtures.sh >&2
model=$root/.fixtures/smollm2/mlx
py=$root/.tools/venv/bin/python
cargo build --quiet --release --no-default-features --example bench_engine >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release/examples/bench_engine

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Fixed pseudo-random ids outside the 17 special tokens, the same for both sides.
python3 -c "import json, random; random.seed(0); print(json.dumps([random.randrange(17, 49152) for _ in range($PROMPT_TOKENS)]))" >"$tmp/prompt.json"

results=$tmp/results.jsonl
line() { # side round json
  python3 -c 'import json,sys; r=json.loads(sys.argv[3]); r["peak_mb"]=r["peak_memory_bytes"]/1e6; print("{0:<10} round {1}: prompt {2[prompt_tps]:7.2f} tok/s  generation {2[generation_tps]:6.2f} tok/s  peak {2[peak_mb]:7.1f} MB".format(sys.argv[1], sys.argv[2], r))' "$1" "$2" "$3"
}
# The sides in the order they run in round $1: alternating, so neither always gets the
# warmer machine.
sides_of_round() { if (( $1 % 2 == 1 )); then echo "mlx-lm switchyard"; else echo "switchyard mlx-lm"; fi; }
# One measurement's JSON line: mlx-lm's script, or our bench binary's SUBCOMMAND, on
# MODEL with the prompt ids in INPUT and TOKENS new tokens.
measure() { # side subcommand model input tokens
  if [ "$1" = mlx-lm ]; then
    "$py" scripts/bench_mlx_lm.py "$3" "$4" "$5" | tail -1
  else
    "$bin" "$2" "$3" "$4" "$5" | tail -1
  fi
}
# One stream, ours vs mlx-lm on MODEL, ROUNDS rounds; result sides named PREFIX + side.
single_stream() { # model prefix
  local i side out
  for i in $(seq 1 "$ROUNDS"); do
    for side in $(sides_of_round "$i"); do
      out=$(measure "$side" throughput "$1" "$tmp/prompt.json" "$GEN_TOKENS")
      echo "$out" | sed "s/\"side\": *\"\([a-z-]*\)\"/\"side\": \"$2\1\"/" >>"$results"
      line "$2$side" "$i" "$out"
    done
  done
}
if has single; then
  single_stream "$model" ""
fi
for i in $(seq 1 "$ROUNDS"); do
  has prefix || break
  out=$("$bin" prefix "$model" "$tmp/prompt.json" 32 | tail -1)
  echo "$out" | sed 's/"side": *"switchyard"/"side": "prefix"/' >>"$results"
  python3 -c 'import json,sys; r=json.loads(sys.argv[2]); print("prefix     round {0}: turn 2 of {1[turn2_prompt_tokens]} tokens ({1[cached_prompt_tokens]} cached): ttft {1[ttft_cached_s]:.3f} s cached vs {1[ttft_uncached_s]:.3f} s uncached = {1[ratio]:.3f}x".format(sys.argv[1], r))' "$i" "$out"
done

# A request (the 256-id prompt) arriving while another generates 512 tokens: its time to
# first token vs the same request alone plus two decode steps (target <= 1.0).
for i in $(seq 1 "$ROUNDS"); do
  has arrival || break
  out=$("$bin" arrival "$model" "$tmp/prompt.json" 512 | tail -1)
  echo "$out" | sed 's/"side": *"switchyard"/"side": "arrival"/' >>"$results"
  python3 -c 'import json,sys; r=json.loads(sys.argv[2]); print("arrival    round {0}: ttft {1[ttft_arriving_s]:.2f} s while another generates vs {1[ttft_alone_s]:.2f} s alone + 2 x {1[decode_step_s]:.3f} s = {1[ratio]:.3f}x".format(sys.argv[1], r))' "$i" "$out"
done

# The prefix cache on disk: time to first token of a DISK_PROMPT_TOKENS prompt on a
# fresh load with an empty disk cache, then after an unload and a new load with the
# blocks the first run saved. Long (the cold prompt alone takes minutes on a CPU):
# DISK_ROUNDS rounds, default 1.
DISK_PROMPT_TOKENS=${DISK_PROMPT_TOKENS:-4096}
for i in $(seq 1 "${DISK_ROUNDS:-1}"); do
  has disk || break
  python3 -c "import json, random; random.seed(7); print(json.dumps([random.randrange(17, 49152) for _ in range($DISK_PROMPT_TOKENS)]))" >"$tmp/disk.json"
  out=$("$bin" disk "$model" "$tmp/disk.json" 1 | tail -1)
  echo "$out" | sed 's/"side": *"switchyard"/"side": "disk"/' >>"$results"
  python3 -c 'import json,sys; r=json.loads(sys.argv[2]); print("disk       round {0}: {1[prompt_tokens]} tokens ({1[cached_prompt_tokens]} from disk): ttft {1[ttft_warm_s]:.2f} s warm vs {1[ttft_cold_s]:.2f} s cold = {1[ratio]:.3f}x".format(sys.argv[1], r))' "$i" "$out"
done

# Concurrent streams: N different prompts (BATCH_PROMPT_TOKENS ids each) generated at
# once, BATCH_GEN_TOKENS each, our continuous batching vs mlx-lm's batch_generate;
# aggregate tokens per second over the wall time, sides alternating, medians compared.
BATCH_PROMPT_TOKENS=${BATCH_PROMPT_TOKENS:-32}
BATCH_GEN_TOKENS=${BATCH_GEN_TOKENS:-64}
for n in ${STREAMS:-1 2 4 8}; do
  has streams || break
  python3 -c "import json, random; random.seed($n); print(json.dumps([[random.randrange(17, 49152) for _ in range($BATCH_PROMPT_TOKENS)] for _ in range($n)]))" >"$tmp/batch$n.json"
  for i in $(seq 1 "$ROUNDS"); do
    for side in $(sides_of_round "$i"); do
      out=$(measure "$side" batch "$model" "$tmp/batch$n.json" "$BATCH_GEN_TOKENS")
      echo "$out" | sed "s/\"side\": *\"\([a-z-]*\)\"/\"side\": \"batch-\1\"/" >>"$results"
      python3 -c 'import json,sys; r=json.loads(sys.argv[3]); print("{0:<10} {1} streams round {2}: {3[aggregate_tps]:6.2f} tok/s aggregate ({3[generation_tokens]} tokens in {3[wall_s]:.2f} s)".format(sys.argv[1], r["streams"], sys.argv[2], r))' "$side" "$i" "$out"
    done
  done
done

# A mixture-of-experts model: a random Qwen3-MoE of 0.16B parameters, 68M active (32
# experts, 4 per token; made by tests/fixtures/families/make_tiny.py --bench), the same
# prompt ids and token count as the single-stream part, sides alternating.
if has moe; then
  moe_model=$root/.fixtures/families/qwen3_moe_bench
  if [ ! -f "$moe_model/model.safetensors" ]; then
    "$py" tests/fixtures/families/make_tiny.py "$root/.fixtures/families" "$model" --bench 2>&1 | grep -v '^\[' >&2 || true
  fi
  single_stream "$moe_model" "moe-"
fi

python3 - "$results" "$PROMPT_TOKENS" "$GEN_TOKENS" <<'PY'
import json, statistics, sys, datetime
rows = [json.loads(l) for l in open(sys.argv[1])]
def med(side, key):
    return statistics.median(r[key] for r in rows if r["side"] == side)
ours = peer = ratios = prefix = None
targets = {}
if any(r["side"] == "switchyard" for r in rows):
    ours = {k: med("switchyard", k) for k in ("prompt_tps", "generation_tps", "peak_memory_bytes")}
    peer = {k: med("mlx-lm", k) for k in ("prompt_tps", "generation_tps", "peak_memory_bytes")}
    ratios = {
        "prompt_tps": ours["prompt_tps"] / peer["prompt_tps"],
        "generation_tps": ours["generation_tps"] / peer["generation_tps"],
        "peak_memory": ours["peak_memory_bytes"] / peer["peak_memory_bytes"],
    }
    targets.update({"prompt_tps": ratios["prompt_tps"] >= 1.0, "generation_tps": ratios["generation_tps"] >= 1.0,
                    "peak_memory": ratios["peak_memory"] <= 1.1})
    print(f"median     switchyard: prompt {ours['prompt_tps']:.2f} tok/s, generation {ours['generation_tps']:.2f} tok/s, peak {ours['peak_memory_bytes']/1e6:.1f} MB")
    print(f"median     mlx-lm:     prompt {peer['prompt_tps']:.2f} tok/s, generation {peer['generation_tps']:.2f} tok/s, peak {peer['peak_memory_bytes']/1e6:.1f} MB")
    print(f"ratio      prompt {ratios['prompt_tps']:.3f}x (target >= 1.0), generation {ratios['generation_tps']:.3f}x (>= 1.0), memory {ratios['peak_memory']:.3f}x (<= 1.1)")
if any(r["side"] == "prefix" for r in rows):
    prefix = {k: med("prefix", k) for k in ("ttft_cached_s", "ttft_uncached_s", "ratio")}
    targets["prefix_ttft"] = prefix["ratio"] <= 0.2
    print(f"prefix     cached turn-2 ttft {prefix['ratio']:.3f}x of uncached (target <= 0.2)")
arrival = None
if any(r["side"] == "arrival" for r in rows):
    arrival = {k: med("arrival", k) for k in ("ttft_alone_s", "decode_step_s", "ttft_arriving_s", "ratio")}
    targets["arrival_ttft"] = arrival["ratio"] <= 1.0
    print(f"arrival    ttft while another generates {arrival['ratio']:.3f}x of (alone + 2 decode steps) (target <= 1.0)")
disk = None
if any(r["side"] == "disk" for r in rows):
    disk = {k: med("disk", k) for k in ("ttft_cold_s", "ttft_warm_s", "ratio", "cached_prompt_tokens", "prompt_tokens")}
    targets["disk_ttft"] = disk["ratio"] <= 0.2
    print(f"disk       {disk['prompt_tokens']:.0f}-token prompt after unload + load: ttft {disk['ratio']:.3f}x of cold (target <= 0.2)")
batches = {}
for n in sorted({r["streams"] for r in rows if r["side"].startswith("batch-")}):
    o = statistics.median(r["aggregate_tps"] for r in rows if r["side"] == "batch-switchyard" and r["streams"] == n)
    p = statistics.median(r["aggregate_tps"] for r in rows if r["side"] == "batch-mlx-lm" and r["streams"] == n)
    batches[n] = {"switchyard_tps": o, "mlx_lm_tps": p, "ratio": o / p}
    print(f"streams {n}: switchyard {o:.2f} tok/s aggregate, mlx-lm batch_generate {p:.2f} tok/s = {o / p:.3f}x (target >= 1.0)")
if batches:
    targets["batch"] = all(b["ratio"] >= 1.0 for b in batches.values())
moe = None
if any(r["side"] == "moe-switchyard" for r in rows):
    keys = ("prompt_tps", "generation_tps", "peak_memory_bytes")
    o = {k: med("moe-switchyard", k) for k in keys}
    p = {k: med("moe-mlx-lm", k) for k in keys}
    moe = {"switchyard": o, "mlx_lm": p, "ratios": {k: o[k] / p[k] for k in keys}}
    targets["moe_generation_tps"] = moe["ratios"]["generation_tps"] >= 1.0
    print(f"moe        switchyard prompt {o['prompt_tps']:.2f} / generation {o['generation_tps']:.2f} tok/s, "
          f"mlx-lm {p['prompt_tps']:.2f} / {p['generation_tps']:.2f} = {moe['ratios']['prompt_tps']:.3f}x / "
          f"{moe['ratios']['generation_tps']:.3f}x, memory {moe['ratios']['peak_memory_bytes']:.3f}x")
print(json.dumps({
    "date": datetime.date.today().isoformat(),
    "prompt_tokens": int(sys.argv[2]), "generation_tokens": int(sys.argv[3]),
    "switchyard": ours, "mlx_lm": peer, "ratios": ratios, "prefix_cache": prefix,
    "arrival": arrival, "disk_prefix_cache": disk, "concurrent_streams": batches, "moe": moe,
    "targets_met": targets,
}))
PY
