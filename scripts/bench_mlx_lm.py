"""The peer side of scripts/bench-engine.sh: mlx-lm's own generation loop
(stream_generate, as `python -m mlx_lm benchmark` uses it) on the same model and
prompt ids as our engine; EOS disabled, one warm-up, one timed run, one JSON line.

    python bench_mlx_lm.py MODEL_DIR PROMPT_IDS.json GEN_TOKENS

With a file of several prompts (a JSON array of arrays of ids), mlx-lm's
batch_generate runs them all at once instead: one warm-up batch, then the wall time of
the timed one (aggregate tokens per second, EOS disabled).
"""

import json
import sys
import time

import mlx.core as mx
from mlx_lm import load, stream_generate


def main():
    model_dir, prompt_file, gen = sys.argv[1], sys.argv[2], int(sys.argv[3])
    model, tokenizer = load(model_dir)
    tokenizer._eos_token_ids = {}  # as mlx_lm.benchmark: never stop early
    with open(prompt_file) as f:
        prompt = json.load(f)
    if prompt and isinstance(prompt[0], list):
        return batch(model, tokenizer, prompt, gen)

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


def batch(model, tokenizer, prompts, gen):
    from mlx_lm.generate import batch_generate

    def run(n):
        t = time.perf_counter()
        r = batch_generate(model, tokenizer, prompts, max_tokens=n, return_token_ids=True)
        return sum(len(ids) for ids in r.token_ids), time.perf_counter() - t

    run(8)  # warm-up
    tokens, wall = run(gen)
    print(json.dumps({
        "side": "mlx-lm",
        "streams": len(prompts),
        "generation_tokens": tokens,
        "wall_s": wall,
        "aggregate_tps": tokens / wall,
    }))


if __name__ == "__main__":
    main()
