"""The peer side of scripts/bench-engine.sh: mlx-lm's own generation loop
(stream_generate, as `python -m mlx_lm benchmark` uses it) on the same model and
prompt ids as our engine; EOS disabled, one warm-up, one timed run, one JSON line.

    python bench_mlx_lm.py MODEL_DIR PROMPT_IDS.json GEN_TOKENS
"""

import json
import sys

import mlx.core as mx
from mlx_lm import load, stream_generate


def main():
    model_dir, prompt_file, gen = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model, tokenizer = load(model_dir)
    tokenizer._eos_token_ids = {}  # as mlx_lm.benchmark: never stop early
    with open(prompt_file) as f:
        prompt = json.load(f)

    def bench():
        response = None
        for response in stream_generate(model, tokenizer, prompt, max_tokens=gen):
            pass
        return response

    bench()  # warm-up
    # Peak of the request itself (our engine resets the peak at each request's start).
    mx.reset_peak_memory()
    r = bench()
    print(json.dumps({
        "side": "mlx-lm",
        "prompt_tokens": len(prompt),
        "generation_tokens": r.generation_tokens,
        "prompt_tps": r.prompt_tps,
        "generation_tps": r.generation_tps,
        "peak_memory_bytes": int(mx.get_peak_memory()),
    }))


if __name__ == "__main__":
    main()
