#!/usr/bin/env python3
"""mlx-lm's model decoding greedily two ways, to measure what pipelining is worth:
synchronous steps (each token evaluated and read before the next step's graph is built,
as Switchyard's worker steps today) and pipelined (the next step dispatched with
mx.async_eval before the current token is read, as mlx_lm.generate_step does).

    python scripts/bench_mlx_lm_stepping.py MODEL_DIR PROMPT_IDS.json

One warm-up of each, then three rounds of 64 tokens each way; tokens per second.
(README, Performance: the single-stream decode deficit.)
"""
import json, sys, time
import mlx.core as mx
from mlx_lm import load
from mlx_lm.models.cache import make_prompt_cache

model, _ = load(sys.argv[1])
prompt = mx.array(json.load(open(sys.argv[2])))
N = 64

def prefill():
    cache = make_prompt_cache(model)
    logits = model(prompt[None], cache=cache)[:, -1, :]
    y = mx.argmax(logits, axis=-1)
    mx.eval(y)
    return cache, y

def sync():
    cache, y = prefill()
    t = time.perf_counter()
    for _ in range(N):
        logits = model(y[None], cache=cache)[:, -1, :]
        y = mx.argmax(logits, axis=-1)
        mx.eval(y)
        y.item()
    return N / (time.perf_counter() - t)

def pipelined():
    cache, y = prefill()
    t = time.perf_counter()
    nxt = None
    for i in range(N):
        logits = model(y[None], cache=cache)[:, -1, :]
        nxt = mx.argmax(logits, axis=-1)
        mx.async_eval(nxt)
        y.item()
        y = nxt
    y.item()
    return N / (time.perf_counter() - t)

sync(); pipelined()  # warm-up
for r in range(3):
    print(f"round {r+1}: sync {sync():.2f} tok/s, pipelined {pipelined():.2f} tok/s", flush=True)
