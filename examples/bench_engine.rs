//! Our side of `scripts/bench-engine.sh`: one measurement per process, printed as one
//! JSON line on stdout.
//!
//!   bench_engine throughput MODEL_DIR PROMPT_IDS.json GEN_TOKENS
//!       warm-up, then one timed greedy generation of exactly GEN_TOKENS (EOS ignored)
//!       -> {"side":"switchyard","prompt_tps","generation_tps","peak_memory_bytes",...}
//!   bench_engine prefix MODEL_DIR PROMPT_IDS.json GEN_TOKENS
//!       a two-turn chat: time to first token of turn 2 with the prefix cache vs without
//!       -> {"side":"switchyard","ttft_cached_s","ttft_uncached_s","ratio",...}
//!   bench_engine batch MODEL_DIR PROMPTS.json GEN_TOKENS
//!       PROMPTS.json holds N prompts (arrays of ids): a warm-up batch, then all N
//!       generated at once (continuous batching), GEN_TOKENS each, EOS ignored; the
//!       wall time from submitting to the last token
//!       -> {"side":"switchyard","streams":N,"aggregate_tps","wall_s",...}
//!   bench_engine arrival MODEL_DIR PROMPT_IDS.json GEN_TOKENS
//!       a request (PROMPT_IDS) arriving while another generates GEN_TOKENS: its time
//!       to first token, against the same request alone plus two decode steps
//!       -> {"side":"switchyard","ttft_alone_s","decode_step_s","ttft_arriving_s","ratio",...}
//!   bench_engine disk MODEL_DIR PROMPT_IDS.json GEN_TOKENS
//!       the prefix cache on disk: time to first token of a long prompt on a fresh load
//!       with an empty disk cache (cold), then after the model is unloaded and loaded
//!       again with the blocks the first run saved (warm)
//!       -> {"side":"switchyard","ttft_cold_s","ttft_warm_s","ratio","cached_prompt_tokens",...}

use switchyard::engine::{self, GenerateRequest, LoadOptions, ModelHandle};

fn fail(msg: String) -> ! {
    eprintln!("bench_engine: {msg}");
    std::process::exit(1)
}

fn run(m: &ModelHandle, req: GenerateRequest) -> engine::Collected {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|e| fail(format!("runtime: {e}")));
    rt.block_on(async { m.generate(req)?.collect().await })
        .unwrap_or_else(|e| fail(format!("{e:?}")))
}

fn opts_streams() -> usize {
    std::env::var("BENCH_COMPUTE_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| LoadOptions::default().compute_streams)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        fail(
            "usage: bench_engine throughput|prefix|batch|arrival|disk MODEL PROMPT_IDS.json GEN_TOKENS"
                .into(),
        );
    }
    let (mode, model, prompt_file) = (&args[1], &args[2], &args[3]);
    let n_gen: usize = args[4]
        .parse()
        .unwrap_or_else(|_| fail("GEN_TOKENS".into()));
    let text = std::fs::read(prompt_file).unwrap_or_else(|e| fail(format!("{prompt_file}: {e}")));
    let (prompt, batch): (Vec<u32>, Vec<Vec<u32>>) = if mode == "batch" {
        let all: Vec<Vec<u32>> =
            serde_json::from_slice(&text).unwrap_or_else(|e| fail(format!("{prompt_file}: {e}")));
        (Vec::new(), all)
    } else {
        let one =
            serde_json::from_slice(&text).unwrap_or_else(|e| fail(format!("{prompt_file}: {e}")));
        (one, Vec::new())
    };
    // BENCH_COMPUTE_STREAMS=1 measures MLX's usual single stream (see LoadOptions).
    let mut opts = LoadOptions::default();
    if let Some(n) = std::env::var("BENCH_COMPUTE_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.compute_streams = n;
    }
    if mode == "disk" {
        return disk(model, opts, prompt, n_gen);
    }
    let m = engine::load_blocking(model, opts).unwrap_or_else(|e| fail(format!("{e:?}")));

    let request = |prompt: Vec<u32>, n: usize, cache: bool| {
        let mut r = GenerateRequest::new(prompt);
        r.max_tokens = n;
        r.ignore_eos = true;
        r.use_prefix_cache = cache;
        r
    };
    match mode.as_str() {
        "throughput" => {
            // Warm-up, as mlx-lm's benchmark does; no prefix reuse anywhere.
            run(&m, request(prompt.clone(), n_gen, false));
            let out = run(&m, request(prompt.clone(), n_gen, false));
            let d = out.done.unwrap_or_else(|| fail("no completion".into()));
            assert_eq!(d.usage.completion_tokens, n_gen);
            println!(
                "{}",
                serde_json::json!({
                    "side": "switchyard",
                    "prompt_tokens": prompt.len(),
                    "generation_tokens": n_gen,
                    "prompt_tps": d.timings.prompt_tokens_per_s,
                    "generation_tps": d.timings.generation_tokens_per_s,
                    "peak_memory_bytes": d.peak_memory_bytes,
                    "compute_streams": opts_streams(),
                })
            );
        }
        "prefix" => {
            // Turn 1 fills the cache; turn 2 = turn 1 + its answer + a new question.
            let first = run(&m, request(prompt.clone(), n_gen, true));
            let mut turn2 = prompt.clone();
            turn2.extend(&first.token_ids);
            turn2.extend(
                m.tokenize("\nAnd now, in one sentence?", false)
                    .unwrap_or_default(),
            );
            let uncached = run(&m, request(turn2.clone(), 1, false));
            let cached = run(&m, request(turn2.clone(), 1, true));
            let (u, c) = (uncached.done.unwrap(), cached.done.unwrap());
            println!(
                "{}",
                serde_json::json!({
                    "side": "switchyard",
                    "turn2_prompt_tokens": turn2.len(),
                    "cached_prompt_tokens": c.usage.cached_prompt_tokens,
                    "ttft_uncached_s": u.timings.time_to_first_token_s,
                    "ttft_cached_s": c.timings.time_to_first_token_s,
                    "ratio": c.timings.time_to_first_token_s / u.timings.time_to_first_token_s,
                })
            );
        }
        "batch" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .build()
                .unwrap_or_else(|e| fail(format!("runtime: {e}")));
            let all = |n_gen: usize| {
                rt.block_on(async {
                    let t = std::time::Instant::now();
                    let running: Vec<_> = batch
                        .iter()
                        .map(|p| {
                            m.generate(request(p.clone(), n_gen, false))
                                .unwrap_or_else(|e| fail(format!("{e:?}")))
                        })
                        .collect();
                    let mut tokens = 0;
                    for g in running {
                        let out = g.collect().await.unwrap_or_else(|e| fail(format!("{e:?}")));
                        tokens += out.token_ids.len();
                    }
                    (tokens, t.elapsed().as_secs_f64())
                })
            };
            all(8); // warm-up
            let (tokens, wall) = all(n_gen);
            assert_eq!(tokens, n_gen * batch.len());
            println!(
                "{}",
                serde_json::json!({
                    "side": "switchyard",
                    "streams": batch.len(),
                    "generation_tokens": tokens,
                    "wall_s": wall,
                    "aggregate_tps": tokens as f64 / wall,
                    "largest_batch": m.largest_batch(),
                })
            );
        }
        "arrival" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_time()
                .build()
                .unwrap_or_else(|e| fail(format!("runtime: {e}")));
            // Client-side time from submitting to the first token.
            let first_token = |g: engine::Generation| async move {
                let t = std::time::Instant::now();
                let mut g = g;
                match g.events.recv().await {
                    Some(engine::Event::Token(_)) => t.elapsed().as_secs_f64(),
                    other => fail(format!("no first token: {other:?}")),
                }
            };
            let other: Vec<u32> = prompt.iter().take(32).map(|t| t + 1).collect();
            let submit = |p: &Vec<u32>, n: usize| {
                m.generate(request(p.clone(), n, false))
                    .unwrap_or_else(|e| fail(format!("{e:?}")))
            };
            rt.block_on(async {
                // Warm-up, then the request alone and a decode step alone.
                first_token(submit(&prompt, 1)).await;
                let alone = first_token(submit(&prompt, 1)).await;
                let d = submit(&other, 32)
                    .collect()
                    .await
                    .unwrap_or_else(|e| fail(format!("{e:?}")))
                    .done
                    .unwrap_or_else(|| fail("no completion".into()));
                let step = 1.0 / d.timings.generation_tokens_per_s;
                // The long generation runs; the request arrives after its 16th token.
                let mut long = submit(&other, n_gen);
                let mut seen = 0;
                while seen < 16 {
                    match long.events.recv().await {
                        Some(engine::Event::Token(_)) => seen += 1,
                        other => fail(format!("the long generation ended early: {other:?}")),
                    }
                }
                let arriving = first_token(submit(&prompt, 1)).await;
                let mut after = 0;
                while let Some(ev) = long.events.recv().await {
                    if matches!(ev, engine::Event::Token(_)) {
                        after += 1;
                    }
                }
                assert_eq!(seen + after, n_gen, "the long generation was not cut");
                let bound = alone + 2.0 * step;
                println!(
                    "{}",
                    serde_json::json!({
                        "side": "switchyard",
                        "prompt_tokens": prompt.len(),
                        "running_tokens": n_gen,
                        "ttft_alone_s": alone,
                        "decode_step_s": step,
                        "ttft_arriving_s": arriving,
                        "bound_s": bound,
                        "ratio": arriving / bound,
                    })
                );
            });
        }
        other => fail(format!("unknown mode {other}")),
    }
}

/// The prefix cache on disk, cold then warm (after an unload and a new load).
fn disk(model: &str, mut opts: LoadOptions, prompt: Vec<u32>, n_gen: usize) {
    use switchyard::engine::disk_cache::{self, DiskCacheOptions};
    let dir = std::env::temp_dir().join(format!("sy-bench-kv-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    opts.disk_cache = Some(DiskCacheOptions {
        dir: dir.clone(),
        max_bytes: 64 << 30,
        block_tokens: disk_cache::DEFAULT_BLOCK_TOKENS,
        min_tokens: disk_cache::DEFAULT_MIN_TOKENS,
    });
    let blocks = prompt.len() / disk_cache::DEFAULT_BLOCK_TOKENS;
    let once = || {
        let m =
            engine::load_blocking(model, opts.clone()).unwrap_or_else(|e| fail(format!("{e:?}")));
        let mut r = GenerateRequest::new(prompt.clone());
        r.max_tokens = n_gen;
        r.ignore_eos = true;
        r.use_prefix_cache = true;
        let d = run(&m, r)
            .done
            .unwrap_or_else(|| fail("no completion".into()));
        // The blocks are written by their own thread: wait for all of them.
        let t = std::time::Instant::now();
        while disk_cache::blocks(&dir).len() < blocks && t.elapsed().as_secs() < 120 {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        drop(m);
        d
    };
    let cold = once();
    let warm = once();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{}",
        serde_json::json!({
            "side": "switchyard",
            "prompt_tokens": prompt.len(),
            "blocks": blocks,
            "cached_prompt_tokens": warm.usage.cached_prompt_tokens,
            "ttft_cold_s": cold.timings.time_to_first_token_s,
            "ttft_warm_s": warm.timings.time_to_first_token_s,
            "ratio": warm.timings.time_to_first_token_s / cold.timings.time_to_first_token_s,
        })
    );
}
