//! The engine on the real fixture model (SmolLM2-135M-Instruct, Q4_1 GGUF and its
//! mlx-lm conversion), against mlx-lm's own outputs in tests/fixtures/smollm2/.
//!
//! Fixtures come from `scripts/fetch-fixtures.sh`; a missing fixture fails the test
//! with that instruction (never a silent skip). Models are loaded once per test binary
//! and shared: the engine serialises requests per model on its worker thread.

mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::sync::OnceLock;
use switchyard::engine::disk_cache::{self, DiskCacheOptions};
use switchyard::engine::{
    self, CancelToken, ChatMessage, Event, FinishReason, GenerateRequest, LoadOptions, ModelHandle,
    SamplingParams,
};
use switchyard::{Code, Error};

/// Maximum absolute difference allowed between our first-position logits and mlx-lm's
/// (reference-logits.jsonl, rounded to 5 decimals). Both run the same MLX CPU kernels in
/// float32 over one forward pass: the observed difference is 6e-6, the rounding. The
/// red checks (each broken once, the test went red): RMSNorm epsilon 1e-6 instead of
/// 1e-5 moves the top logit by 4.9e-3; the other RoPE layout by 8.1; a chat template
/// without the generation prompt changes the prompt ids.
const LOGIT_TOLERANCE: f32 = 1e-4;
/// Greedy tokens compared per prompt (mlx-lm's first 32, or up to its EOS).
const GREEDY_TOKENS: usize = 32;

fn fixture(env: &str, rel: &str) -> PathBuf {
    let p = std::env::var_os(env)
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join(rel));
    assert!(
        p.exists(),
        "fixture {} is missing: run scripts/fetch-fixtures.sh (or set {env})",
        p.display()
    );
    p
}

fn gguf_path() -> PathBuf {
    fixture(
        "SWITCHYARD_FIXTURE_GGUF",
        ".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    )
}

fn mlx_path() -> PathBuf {
    fixture("SWITCHYARD_FIXTURE_MLX", ".fixtures/smollm2/mlx")
}

fn mlx_model() -> &'static ModelHandle {
    static M: OnceLock<ModelHandle> = OnceLock::new();
    M.get_or_init(|| engine::load_blocking(mlx_path(), LoadOptions::default()).unwrap())
}

fn gguf_model() -> &'static ModelHandle {
    static M: OnceLock<ModelHandle> = OnceLock::new();
    M.get_or_init(|| engine::load_blocking(gguf_path(), LoadOptions::default()).unwrap())
}

fn records(file: &str) -> Vec<Value> {
    let p = common::repo_root()
        .join("tests/fixtures/smollm2")
        .join(file);
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn messages(v: &Value) -> Vec<ChatMessage> {
    serde_json::from_value(v["messages"].clone()).unwrap()
}

async fn generate(m: &ModelHandle, req: GenerateRequest) -> engine::Collected {
    m.generate(req).unwrap().collect().await.unwrap()
}

fn request(prompt: Vec<u32>, max_tokens: usize) -> GenerateRequest {
    let mut r = GenerateRequest::new(prompt);
    r.max_tokens = max_tokens;
    r.sampling = SamplingParams::default();
    r.use_prefix_cache = false;
    r
}

/// Our greedy ids against mlx-lm's: equal over the first GREEDY_TOKENS (or to EOS).
fn assert_greedy_prefix(id: u64, ours: &[u32], reference: &[u32]) {
    let n = reference.len().min(GREEDY_TOKENS);
    let first_diff = ours.iter().zip(reference).position(|(a, b)| a != b);
    assert!(
        ours.len() >= n && first_diff.is_none_or(|i| i >= n),
        "prompt {id}: greedy tokens diverge from mlx-lm at position {first_diff:?}\n ours: {ours:?}\n mlx-lm: {reference:?}"
    );
}

#[tokio::test]
async fn differential_prompt_ids_greedy_tokens_and_first_logits_equal_mlx_lm() {
    let m = mlx_model();
    let logit_refs = records("reference-logits.jsonl");
    let mut worst = 0f32;
    for (rec, lrec) in records("reference.jsonl").iter().zip(&logit_refs) {
        let id = rec["id"].as_u64().unwrap();
        // Template and tokenizer: the rendered text, then the ids.
        let text = m.render_chat(&messages(rec), None, true).unwrap();
        assert_eq!(
            text,
            rec["prompt_text"].as_str().unwrap(),
            "prompt {id}: chat template"
        );
        let prompt = m.chat_prompt(&messages(rec), None).unwrap();
        assert_eq!(
            prompt,
            ids(&rec["prompt_token_ids"]),
            "prompt {id}: token ids"
        );

        // First-position logits of one forward pass (as reference.py computes them).
        let logits = m.logits(prompt.clone()).await.unwrap();
        assert_eq!(logits.len(), 49152);
        for (tok, want) in ids(&lrec["top_ids"])
            .iter()
            .zip(lrec["top_logits"].as_array().unwrap())
        {
            let want = want.as_f64().unwrap() as f32;
            let got = logits[*tok as usize];
            worst = worst.max((got - want).abs());
            assert!(
                (got - want).abs() <= LOGIT_TOLERANCE,
                "prompt {id}: logit of token {tok} is {got}, mlx-lm {want}"
            );
        }
        let n = logits.len() as f64;
        let mean = logits.iter().map(|&x| x as f64).sum::<f64>() / n;
        let want_mean = lrec["logits_stats"]["mean"].as_f64().unwrap();
        assert!(
            (mean - want_mean).abs() < 1e-3,
            "prompt {id}: mean logit {mean} vs {want_mean}"
        );

        // Greedy generation, the way mlx-lm generates.
        let reference = ids(&rec["generated_token_ids"]);
        let out = generate(m, request(prompt, reference.len().min(GREEDY_TOKENS))).await;
        assert_greedy_prefix(id, &out.token_ids, &reference);
        let done = out.done.unwrap();
        if reference.len() <= GREEDY_TOKENS && rec["finish_reason"] == "stop" {
            assert_eq!(done.finish_reason, FinishReason::Stop, "prompt {id}");
            assert_eq!(out.text, rec["text"].as_str().unwrap(), "prompt {id}: text");
        }
        assert_eq!(
            done.usage.prompt_tokens,
            rec["prompt_token_ids"].as_array().unwrap().len()
        );
        assert_eq!(done.usage.completion_tokens, out.token_ids.len());
        assert!(done.peak_memory_bytes > 0);
    }
    eprintln!(
        "largest top-5 logit difference from mlx-lm: {worst:.6} (tolerance {LOGIT_TOLERANCE})"
    );
}

#[tokio::test]
async fn gguf_and_the_converted_folder_give_the_same_greedy_tokens() {
    let (g, f) = (gguf_model(), mlx_model());
    assert_eq!(g.info().format, engine::ModelFormat::Gguf);
    assert!(
        g.info().config.rope_traditional,
        "GGUF llama q/k rows are interleaved"
    );
    assert!(!f.info().config.rope_traditional);
    for rec in records("reference.jsonl").iter().take(3) {
        let prompt_g = g.chat_prompt(&messages(rec), None).unwrap();
        assert_eq!(
            prompt_g,
            f.chat_prompt(&messages(rec), None).unwrap(),
            "tokenizer from GGUF metadata"
        );
        let a = generate(g, request(prompt_g.clone(), GREEDY_TOKENS)).await;
        let b = generate(f, request(prompt_g, GREEDY_TOKENS)).await;
        assert_eq!(a.token_ids, b.token_ids, "prompt {}", rec["id"]);
        assert_eq!(a.text, b.text);
    }
}

#[tokio::test]
async fn a_second_turn_reuses_the_cached_prefix_and_yields_the_same_tokens_as_uncached() {
    // Its own model instance: the prefix cache is per model.
    let m = engine::load(mlx_path(), LoadOptions::default())
        .await
        .unwrap();
    let mut conv = vec![ChatMessage::new("user", "What is the capital of France?")];
    let first = generate(&m, {
        let mut r = request(m.chat_prompt(&conv, None).unwrap(), 16);
        r.use_prefix_cache = true;
        r
    })
    .await;
    assert_eq!(first.done.as_ref().unwrap().usage.cached_prompt_tokens, 0);
    conv.push(ChatMessage::new("assistant", first.text.clone()));
    conv.push(ChatMessage::new("user", "And of Italy?"));
    let prompt = m.chat_prompt(&conv, None).unwrap();

    let mut cached_req = request(prompt.clone(), 12);
    cached_req.use_prefix_cache = true;
    let cached = generate(&m, cached_req).await;
    let uncached = generate(&m, request(prompt.clone(), 12)).await;
    let usage = cached.done.as_ref().unwrap().usage;
    // Everything up to the end of the first answer was in the cache (the first turn's
    // prompt, its answer tokens) — at least the whole first prompt.
    let first_prompt_len = first.done.as_ref().unwrap().usage.prompt_tokens;
    assert!(
        usage.cached_prompt_tokens >= first_prompt_len,
        "cached {} of {} prompt tokens; first prompt had {first_prompt_len}",
        usage.cached_prompt_tokens,
        prompt.len()
    );
    assert!(usage.cached_prompt_tokens < prompt.len());
    assert_eq!(
        uncached.done.as_ref().unwrap().usage.cached_prompt_tokens,
        0
    );
    assert_eq!(cached.token_ids, uncached.token_ids);
    assert_eq!(cached.text, uncached.text);

    // The same prompt again reuses all but its last token.
    let mut again = request(prompt.clone(), 4);
    again.use_prefix_cache = true;
    let again = generate(&m, again).await;
    assert_eq!(
        again.done.unwrap().usage.cached_prompt_tokens,
        prompt.len() - 1
    );
    assert_eq!(again.token_ids, uncached.token_ids[..4]);
    m.unload().await.unwrap();
}

/// Requests with the same preamble (system prompt) and different questions: sent
/// together, the second copies the preamble the first computed instead of computing it
/// again; a later one copies it from the prefix cache, which keeps it for the next. Every
/// answer equals the same prompt generated without any cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_with_the_same_preamble_share_its_cache_concurrently_and_later() {
    let opts = LoadOptions {
        prefix_cache_entries: 4,
        ..LoadOptions::default()
    };
    let m = engine::load(mlx_path(), opts).await.unwrap();
    let system = "You are a careful assistant for a travel agency. Answer in one short \
        sentence, name the country, and never invent facts you are unsure of.";
    let prompt = |q: &str| {
        m.chat_prompt(
            &[
                ChatMessage::new("system", system),
                ChatMessage::new("user", q),
            ],
            None,
        )
        .unwrap()
    };
    let questions = ["Where is Paris?", "Where is Rome?", "Where is Lisbon?"];
    let prompts: Vec<Vec<u32>> = questions.iter().map(|q| prompt(q)).collect();
    let shared = prompts
        .iter()
        .map(|p| common_prefix(p, &prompts[0]))
        .filter(|&n| n < prompts[0].len())
        .min()
        .unwrap();
    assert!(shared > 30, "the preamble is {shared} tokens");
    let solo: Vec<Vec<u32>> = {
        let mut v = Vec::new();
        for p in &prompts {
            v.push(generate(&m, request(p.clone(), 8)).await.token_ids);
        }
        v
    };
    let cached = |p: &Vec<u32>| {
        let mut r = request(p.clone(), 8);
        r.use_prefix_cache = true;
        r
    };
    // Sent together: the first computes everything, the second copies the preamble.
    let a = m.generate(cached(&prompts[0])).unwrap();
    let b = m.generate(cached(&prompts[1])).unwrap();
    let (a, b) = tokio::join!(a.collect(), b.collect());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.done.as_ref().unwrap().usage.cached_prompt_tokens, 0);
    let b_cached = b.done.as_ref().unwrap().usage.cached_prompt_tokens;
    assert!(
        b_cached >= shared,
        "the concurrent request reused {b_cached} tokens, the preamble is {shared}"
    );
    assert_eq!(a.token_ids, solo[0]);
    assert_eq!(b.token_ids, solo[1]);
    // Later: the preamble comes from the prefix cache, twice (it stays there).
    for (p, want) in [(&prompts[2], &solo[2]), (&prompts[1], &solo[1])] {
        let c = generate(&m, cached(p)).await;
        let got = c.done.as_ref().unwrap().usage.cached_prompt_tokens;
        assert!(got >= shared, "reused {got} of the {shared}-token preamble");
        assert_eq!(&c.token_ids, want);
    }
    m.unload().await.unwrap();
}

/// A long prompt arriving while another generation streams is read one chunk per step,
/// the running stream getting a token between chunks (it is not frozen for the whole
/// prompt); prefill steps of 16 tokens make the chunks countable on a small model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prompt_arriving_mid_stream_is_read_between_the_running_streams_tokens() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let opts = LoadOptions {
        prefill_step_size: 16,
        ..LoadOptions::default()
    };
    let m = engine::load(mlx_path(), opts).await.unwrap();
    let running_prompt = m
        .chat_prompt(&[ChatMessage::new("user", "Tell me a story.")], None)
        .unwrap();
    let mut long_text = String::new();
    for i in 0..40 {
        long_text.push_str(&format!("Item {i} is a small red box. "));
    }
    let long_prompt = m
        .chat_prompt(&[ChatMessage::new("user", long_text.as_str())], None)
        .unwrap();
    let chunks = (long_prompt.len() - 1).div_ceil(16);
    assert!(chunks >= 12, "{} tokens", long_prompt.len());

    let mut running = m
        .generate({
            let mut r = request(running_prompt, 400);
            r.ignore_eos = true;
            r
        })
        .unwrap();
    // The stream is going.
    for _ in 0..3 {
        assert!(matches!(running.events.recv().await, Some(Event::Token(_))));
    }
    let tokens = Arc::new(AtomicUsize::new(0));
    let stop = running.cancel.clone();
    let counter = {
        let tokens = tokens.clone();
        tokio::spawn(async move {
            while let Some(ev) = running.events.recv().await {
                if matches!(ev, Event::Token(_)) {
                    tokens.fetch_add(1, Ordering::SeqCst);
                }
            }
        })
    };
    let before = tokens.load(Ordering::SeqCst);
    let mut long = m.generate(request(long_prompt, 1)).unwrap();
    let during = loop {
        match long.events.recv().await {
            Some(Event::Token(_)) => break tokens.load(Ordering::SeqCst) - before,
            Some(Event::Error(e)) => panic!("{e:?}"),
            _ => {}
        }
    };
    // One token per chunk (give or take the step it arrived in and the last one).
    assert!(
        during + 2 >= chunks,
        "the running stream got {during} tokens while a {chunks}-chunk prompt was read"
    );
    stop.cancel();
    counter.await.unwrap();
    m.unload().await.unwrap();
}

/// Wait (bounded) until the writer thread has `n` block files on disk.
async fn wait_for_files(root: &std::path::Path, n: usize) -> Vec<PathBuf> {
    for _ in 0..200 {
        let files = disk_cache::blocks(root);
        if files.len() >= n {
            return files;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "expected {n} block files, found {:?}",
        disk_cache::blocks(root)
    );
}

/// The prefix cache on disk: a long prompt's blocks are saved; after the model is
/// unloaded and loaded again (as after a restart) the prefix comes from disk and the
/// answer is the same; a damaged block is deleted, its positions computed and the block
/// saved again; the total stays within its bound.
#[tokio::test]
async fn a_long_prefix_survives_an_unload_on_disk_and_a_damaged_block_is_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("kv");
    let opts = |max_bytes: u64| LoadOptions {
        disk_cache: Some(DiskCacheOptions {
            dir: root.clone(),
            max_bytes,
            block_tokens: 16,
            min_tokens: 16,
        }),
        ..LoadOptions::default()
    };
    let run = |m: ModelHandle, prompt: Vec<u32>| async move {
        let mut r = request(prompt, 6);
        r.use_prefix_cache = true;
        let out = generate(&m, r).await;
        m.unload().await.unwrap();
        let cached = out.done.as_ref().unwrap().usage.cached_prompt_tokens;
        (out.token_ids, cached)
    };
    let m = engine::load(mlx_path(), opts(1 << 30)).await.unwrap();
    let prompt = m
        .chat_prompt(
            &[
                ChatMessage::new(
                    "system",
                    "You are a careful assistant for a travel agency. Answer in one short \
                     sentence and never invent facts you are unsure of.",
                ),
                ChatMessage::new("user", "Where is Lisbon?"),
            ],
            None,
        )
        .unwrap();
    let blocks = (prompt.len() - 1) / 16;
    assert!(blocks >= 2, "{} prompt tokens", prompt.len());
    let (first, cached) = run(m, prompt.clone()).await;
    assert_eq!(cached, 0);
    let files = wait_for_files(&root, blocks).await;
    assert_eq!(files.len(), blocks);

    // A new load: memory is empty, the blocks come from disk.
    let m = engine::load(mlx_path(), opts(1 << 30)).await.unwrap();
    let (again, cached) = run(m, prompt.clone()).await;
    assert_eq!(cached, blocks * 16, "every whole block came from disk");
    assert_eq!(again, first);

    // One damaged block: it and the blocks after it are computed, and it is written anew.
    let victim = &files[0];
    let mut bytes = std::fs::read(victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(victim, &bytes).unwrap();
    let m = engine::load(mlx_path(), opts(1 << 30)).await.unwrap();
    let (again, cached) = run(m, prompt.clone()).await;
    assert!(
        cached < blocks * 16,
        "the damaged block was not used ({cached})"
    );
    assert_eq!(cached % 16, 0);
    assert_eq!(again, first);
    let files_after = wait_for_files(&root, blocks).await;
    assert_eq!(files_after, files, "the damaged block was saved again");
    assert_ne!(std::fs::read(victim).unwrap(), bytes);

    // Bounded: with room for two blocks, no more than two stay.
    let one = std::fs::metadata(&files[0]).unwrap().len();
    let m = engine::load(mlx_path(), opts(one * 5 / 2)).await.unwrap();
    let longer: Vec<u32> = prompt.iter().chain(prompt.iter()).copied().collect();
    let _ = run(m, longer).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let total: u64 = disk_cache::blocks(&root)
        .iter()
        .map(|f| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(
        total <= one * 5 / 2,
        "{total} bytes on disk, bound {}",
        one * 5 / 2
    );
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[tokio::test]
async fn stop_strings_seeds_logprobs_and_cancellation_work_end_to_end() {
    let m = mlx_model();
    let prompt = m
        .chat_prompt(
            &[ChatMessage::new("user", "What is the capital of France?")],
            None,
        )
        .unwrap();

    // "The capital of France is Paris." with stop " Paris": cut before it, finish "stop".
    let mut r = request(prompt.clone(), 16);
    r.stop = vec![" Paris".into()];
    r.logprobs = Some(3);
    let out = generate(m, r).await;
    assert_eq!(out.text, "The capital of France is");
    assert_eq!(out.done.unwrap().finish_reason, FinishReason::Stop);
    let first = &out.tokens[0];
    assert_eq!(first.top_logprobs.len(), 3);
    assert_eq!(
        first.top_logprobs[0].0, first.token_id,
        "greedy picks the most likely"
    );
    assert!(
        (first.logprob.unwrap() - (-1.88118)).abs() < 1e-2,
        "{:?}",
        first.logprob
    );

    // Seeded sampling is reproducible; another seed differs somewhere.
    let sampled = |seed| {
        let mut r = request(prompt.clone(), 12);
        r.sampling = SamplingParams {
            temperature: 1.0,
            top_p: 0.95,
            seed: Some(seed),
            ..Default::default()
        };
        r
    };
    let a = generate(m, sampled(7)).await;
    let b = generate(m, sampled(7)).await;
    assert_eq!(a.token_ids, b.token_ids);
    let c = generate(m, sampled(8)).await;
    let d = generate(m, sampled(9)).await;
    assert!(a.token_ids != c.token_ids || a.token_ids != d.token_ids);

    // max_tokens ends with "length".
    let out = generate(m, request(prompt.clone(), 3)).await;
    assert_eq!(out.token_ids.len(), 3);
    assert_eq!(out.done.unwrap().finish_reason, FinishReason::Length);

    // Cancel after the first token: "cancelled", few tokens.
    let mut g = m.generate(request(prompt.clone(), 50)).unwrap();
    let cancel: CancelToken = g.cancel.clone();
    let mut tokens = 0;
    let reason = loop {
        match g.events.recv().await.unwrap() {
            Event::Token(_) => {
                tokens += 1;
                cancel.cancel();
            }
            Event::Done(d) => break d.finish_reason,
            Event::Error(e) => panic!("{e:?}"),
        }
    };
    assert_eq!(reason, FinishReason::Cancelled);
    // Normally 1-2 (the worker checks between tokens); a loaded machine may let a few
    // more through before the test thread runs, never the 50 asked for.
    assert!(tokens < 10, "{tokens} tokens after cancelling");

    // Dropping the receiver stops the generation too: the next request is served at once.
    drop(m.generate(request(prompt.clone(), 200)).unwrap());
    let t = std::time::Instant::now();
    let out = generate(m, request(prompt, 1)).await;
    assert_eq!(out.token_ids.len(), 1);
    assert!(t.elapsed().as_secs() < 60);
}

/// A model accepts `max_queued` generations at once (running and waiting, in order);
/// the next is `model_busy`. A waiting request whose client left costs nothing and
/// frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_is_model_busy_and_a_cancelled_waiter_frees_its_place() {
    let m = engine::load(
        mlx_path(),
        LoadOptions {
            max_queued: 2,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let prompt = m.tokenize("Once upon a time", true).unwrap();
    let running = m.generate(request(prompt.clone(), 400)).unwrap();
    let waiting = m.generate(request(prompt.clone(), 400)).unwrap();
    let e = m.generate(request(prompt.clone(), 4)).unwrap_err();
    assert_eq!(e.code, Code::ModelBusy, "{e}");
    // The waiting one leaves; the running one is cancelled too: both places free up.
    drop(waiting);
    running.cancel.cancel();
    drop(running);
    let mut accepted = None;
    for _ in 0..500 {
        match m.generate(request(prompt.clone(), 4)) {
            Ok(g) => {
                accepted = Some(g);
                break;
            }
            Err(e) => assert_eq!(e.code, Code::ModelBusy),
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let out = accepted
        .expect("no place freed after the waiter left")
        .collect()
        .await
        .unwrap();
    assert_eq!(out.token_ids.len(), 4);
}

/// Continuous batching: prompts generated together (4, then all 6 at once, joining at
/// different moments) give each exactly the tokens it gets alone — which are mlx-lm's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_generations_batch_and_each_gets_its_solo_tokens() {
    let m = engine::load(mlx_path(), LoadOptions::default())
        .await
        .unwrap();
    let recs = records("reference.jsonl");
    let prompts: Vec<Vec<u32>> = recs
        .iter()
        .map(|r| m.chat_prompt(&messages(r), None).unwrap())
        .collect();
    // Past EOS too, so that every generation stays in the batch for its whole length.
    let request = |p: Vec<u32>, n: usize| {
        let mut r = request(p, n);
        r.ignore_eos = true;
        r
    };
    let mut solo = Vec::new();
    for (p, r) in prompts.iter().zip(&recs) {
        let out = generate(&m, request(p.clone(), GREEDY_TOKENS)).await;
        assert_greedy_prefix(
            r["id"].as_u64().unwrap(),
            &out.token_ids,
            &ids(&r["generated_token_ids"]),
        );
        solo.push(out.token_ids);
    }
    assert_eq!(m.largest_batch(), 1, "alone, one at a time");
    for width in [4, prompts.len()] {
        let running: Vec<_> = prompts[..width]
            .iter()
            .enumerate()
            .map(|(i, p)| {
                // Different lengths, so generations leave the batch at different steps.
                let g = m.generate(request(p.clone(), GREEDY_TOKENS - i)).unwrap();
                tokio::spawn(g.collect())
            })
            .collect();
        for (i, h) in running.into_iter().enumerate() {
            let out = h.await.unwrap().unwrap();
            assert_eq!(
                out.token_ids,
                solo[i][..GREEDY_TOKENS - i],
                "prompt {i} in a batch of {width}"
            );
            assert_eq!(out.done.unwrap().usage.completion_tokens, GREEDY_TOKENS - i);
        }
        assert!(
            m.largest_batch() >= 2,
            "decode steps ran batched (largest batch {})",
            m.largest_batch()
        );
    }
}

#[tokio::test]
async fn bad_files_and_requests_fail_with_stable_codes() {
    let dir = tempfile::tempdir().unwrap();
    let load =
        |p: PathBuf| async move { engine::load(p, LoadOptions::default()).await.unwrap_err() };

    // Missing file.
    let e: Error = load(dir.path().join("missing.gguf")).await;
    assert_eq!(e.code, Code::ModelInvalid, "{e:?}");
    // Corrupt: the real GGUF cut in half.
    let bytes = std::fs::read(gguf_path()).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load(cut).await;
    assert_eq!(e.code, Code::ModelInvalid, "{e:?}");
    assert!(e.message.contains("truncated"), "{}", e.message);
    // Garbage with a .gguf name.
    let junk = dir.path().join("junk.gguf");
    std::fs::write(&junk, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    assert_eq!(load(junk).await.code, Code::ModelInvalid);
    // A folder whose weights are corrupt.
    let folder = dir.path().join("broken");
    std::fs::create_dir(&folder).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(mlx_path().join(f), folder.join(f)).unwrap();
    }
    std::fs::write(
        folder.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json",
    )
    .unwrap();
    assert_eq!(load(folder.clone()).await.code, Code::ModelInvalid);
    // Unknown architecture, named.
    let mut cfg: Value =
        serde_json::from_slice(&std::fs::read(mlx_path().join("config.json")).unwrap()).unwrap();
    cfg["model_type"] = "mamba2".into();
    std::fs::write(folder.join("config.json"), cfg.to_string()).unwrap();
    let e = load(folder).await;
    assert_eq!(e.code, Code::ModelUnsupportedArch);
    assert!(e.message.contains("mamba2"));

    // A prompt longer than the context (8192).
    let m = mlx_model();
    let e = m.generate(request(vec![28; 9000], 1)).unwrap_err();
    assert_eq!(e.code, Code::ContextLengthExceeded);
    assert!(e.message.contains("9000"), "{}", e.message);
    let e = m.generate(request(vec![49152], 1)).unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    let mut r = request(vec![1, 2], 1);
    r.sampling.temperature = -1.0;
    assert_eq!(m.generate(r).unwrap_err().code, Code::InvalidArgument);
}

/// A tiny random model in one of the supported layouts, written as an MLX / HF folder
/// (the fixture's tokenizer, so chat templates work).
struct Layout {
    model_type: &'static str,
    dtype: mlx_rs::Dtype,
    /// (bits, group size) for every linear layer and the embedding.
    quant: Option<(i32, i32)>,
    qkv_bias: bool,
    qk_norm: bool,
    tied: bool,
    rope_scaling: Value,
    sharded: bool,
}

fn write_layout(dir: &std::path::Path, l: &Layout) {
    use mlx_rs::{Array, ops};
    let (hidden, heads, kv, hd, inter, layers, vocab) = (64, 4, 2, 16, 128, 2, 49152);
    // Each tensor from its own fixed key: the model is the same on every run.
    let mut n = 0u64;
    let mut rand = |shape: &[i32]| -> Array {
        n += 1;
        let k = mlx_rs::random::key(n).unwrap();
        let a = mlx_rs::random::normal::<f32>(shape, None, 0.08f32, &k).unwrap();
        a.as_dtype(l.dtype).unwrap()
    };
    let mut t: Vec<(String, Array)> = Vec::new();
    let linear = |t: &mut Vec<(String, Array)>, name: String, w: Array| match l.quant {
        Some((bits, group)) => {
            let (q, s, b) = ops::quantize(&w, group, bits).unwrap();
            t.push((format!("{name}.weight"), q));
            t.push((format!("{name}.scales"), s));
            t.push((format!("{name}.biases"), b));
        }
        None => t.push((format!("{name}.weight"), w)),
    };
    linear(&mut t, "model.embed_tokens".into(), rand(&[vocab, hidden]));
    for i in 0..layers {
        let p = format!("model.layers.{i}");
        for (m, out, inp) in [
            ("self_attn.q_proj", heads * hd, hidden),
            ("self_attn.k_proj", kv * hd, hidden),
            ("self_attn.v_proj", kv * hd, hidden),
            ("self_attn.o_proj", hidden, heads * hd),
            ("mlp.gate_proj", inter, hidden),
            ("mlp.up_proj", inter, hidden),
            ("mlp.down_proj", hidden, inter),
        ] {
            let w = rand(&[out, inp]);
            linear(&mut t, format!("{p}.{m}"), w);
            if l.qkv_bias
                && ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"].contains(&m)
            {
                t.push((format!("{p}.{m}.bias"), rand(&[out])));
            }
        }
        if l.qk_norm {
            t.push((
                format!("{p}.self_attn.q_norm.weight"),
                ops::ones::<f32>(&[hd]).unwrap(),
            ));
            t.push((
                format!("{p}.self_attn.k_norm.weight"),
                ops::ones::<f32>(&[hd]).unwrap(),
            ));
        }
        t.push((
            format!("{p}.input_layernorm.weight"),
            ops::ones::<f32>(&[hidden]).unwrap(),
        ));
        t.push((
            format!("{p}.post_attention_layernorm.weight"),
            ops::ones::<f32>(&[hidden]).unwrap(),
        ));
    }
    t.push((
        "model.norm.weight".into(),
        ops::ones::<f32>(&[hidden]).unwrap(),
    ));
    if !l.tied {
        linear(&mut t, "lm_head".into(), rand(&[vocab, hidden]));
    }
    let shards: Vec<Vec<(String, Array)>> = if l.sharded {
        let half = t.len() / 2;
        let second = t.split_off(half);
        vec![t, second]
    } else {
        vec![t]
    };
    let mut weight_map = serde_json::Map::new();
    for (i, shard) in shards.iter().enumerate() {
        let file = if l.sharded {
            format!("model-0000{}-of-00002.safetensors", i + 1)
        } else {
            "model.safetensors".to_string()
        };
        for (k, _) in shard {
            weight_map.insert(k.clone(), file.clone().into());
        }
        Array::save_safetensors(
            shard.iter().map(|(k, a)| (k.as_str(), a)),
            None,
            dir.join(&file),
        )
        .unwrap();
    }
    if l.sharded {
        std::fs::write(
            dir.join("model.safetensors.index.json"),
            serde_json::json!({"metadata": {}, "weight_map": weight_map}).to_string(),
        )
        .unwrap();
    }
    let mut config = serde_json::json!({
        "model_type": l.model_type, "hidden_size": hidden, "intermediate_size": inter,
        "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
        "head_dim": hd, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": vocab,
        "max_position_embeddings": 256, "tie_word_embeddings": l.tied, "eos_token_id": [2],
        "rope_scaling": l.rope_scaling,
    });
    if let Some((bits, group)) = l.quant {
        config["quantization"] = serde_json::json!({"bits": bits, "group_size": group});
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(mlx_path().join(f), dir.join(f)).unwrap();
    }
}

#[tokio::test]
async fn every_supported_layout_loads_and_generates_consistently() {
    use mlx_rs::Dtype;
    let layouts = [
        // Qwen3: bfloat16, q/k norm, separate LM head, sharded with an index.
        Layout {
            model_type: "qwen3",
            dtype: Dtype::Bfloat16,
            quant: None,
            qkv_bias: false,
            qk_norm: true,
            tied: false,
            rope_scaling: Value::Null,
            sharded: true,
        },
        // Qwen2.5: float16, q/k/v biases, tied embeddings.
        Layout {
            model_type: "qwen2",
            dtype: Dtype::Float16,
            quant: None,
            qkv_bias: true,
            qk_norm: false,
            tied: true,
            rope_scaling: Value::Null,
            sharded: false,
        },
        // Llama 3: 4-bit group 64 everywhere, Llama 3 RoPE scaling, separate head.
        Layout {
            model_type: "llama",
            dtype: Dtype::Float32,
            quant: Some((4, 64)),
            qkv_bias: false,
            qk_norm: false,
            tied: false,
            sharded: false,
            rope_scaling: serde_json::json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
        },
        // Mistral: 8-bit group 32, tied, linear RoPE scaling.
        Layout {
            model_type: "mistral",
            dtype: Dtype::Float32,
            quant: Some((8, 32)),
            qkv_bias: false,
            qk_norm: false,
            tied: true,
            sharded: false,
            rope_scaling: serde_json::json!({"type": "linear", "factor": 2.0}),
        },
    ];
    for l in &layouts {
        let dir = tempfile::tempdir().unwrap();
        write_layout(dir.path(), l);
        let meta = engine::inspect(dir.path()).unwrap();
        assert_eq!(meta.architecture, l.model_type);
        let one = engine::load(
            dir.path(),
            LoadOptions {
                compute_streams: 1,
                ..Default::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e:?}", l.model_type));
        let two = engine::load(
            dir.path(),
            LoadOptions {
                compute_streams: 2,
                prefill_step_size: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(one.info().context_length, 256);
        let prompt = one
            .chat_prompt(&[ChatMessage::new("user", "Hello there")], None)
            .unwrap();
        let mut r = request(prompt.clone(), 6);
        r.ignore_eos = true;
        let a = generate(&one, r.clone()).await;
        // Split products, chunked prefill: the same greedy tokens.
        let b = generate(&two, r.clone()).await;
        assert_eq!(a.token_ids.len(), 6, "{}", l.model_type);
        assert_eq!(
            a.token_ids, b.token_ids,
            "{}: split/chunked vs plain",
            l.model_type
        );
        // The logits are finite and the first token is their argmax.
        let logits = one.logits(prompt.clone()).await.unwrap();
        assert!(logits.iter().all(|v| v.is_finite()), "{}", l.model_type);
        assert_eq!(
            engine::sampling::argmax(&logits),
            a.token_ids[0],
            "{}",
            l.model_type
        );
    }
}

/// A client that leaves during a long prefill does not wait for the whole chunk: the
/// engine asks between layers. On this 2-core CPU a 1,500-token chunk takes well over a
/// minute in one piece, one layer of it a few seconds (red check: with the stop check
/// disabled this waited 144 s; with it the whole test takes 9 s). The model (its own
/// worker, not the shared one) then answers the next prompt exactly as mlx-lm does.
#[tokio::test]
async fn a_long_prefill_stops_between_layers_and_leaves_the_cache_consistent() {
    let m = engine::load(gguf_path(), LoadOptions::default())
        .await
        .unwrap();
    let rec = &records("reference.jsonl")[0];
    let base = ids(&rec["prompt_token_ids"]);
    let long: Vec<u32> = base.iter().copied().cycle().take(1500).collect();
    let mut req = request(long, 8);
    req.use_prefix_cache = true;
    let mut g = m.generate(req).unwrap();
    // Let the prefill begin (the model is idle, so it starts at once; the chunk takes
    // over a minute): a request cancelled before it starts is skipped outright, which
    // is not what this test is about.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    g.cancel.cancel();
    let t = std::time::Instant::now();
    let done = match g.events.recv().await.unwrap() {
        Event::Done(d) => d,
        Event::Token(t) => panic!("a token after cancelling during the prefill: {t:?}"),
        Event::Error(e) => panic!("{e:?}"),
    };
    let waited = t.elapsed();
    assert_eq!(done.finish_reason, FinishReason::Cancelled);
    assert_eq!(done.usage.completion_tokens, 0);
    assert!(
        waited.as_secs() < 30,
        "the cancelled prefill ran on for {waited:?}: it finished the whole chunk"
    );

    let mut next = request(base, GREEDY_TOKENS);
    next.use_prefix_cache = true;
    let out = generate(&m, next).await;
    assert_greedy_prefix(0, &out.token_ids, &ids(&rec["generated_token_ids"]));
}
