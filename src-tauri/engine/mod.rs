//! The local inference engine: decoder-only transformers on MLX (mlx-rs), loaded from
//! GGUF files or MLX / Hugging Face folders, generating token streams.
//!
//! # Using it (the gateway and the pool call exactly this)
//!
//! ```no_run
//! # async fn demo() -> switchyard::Result<()> {
//! use switchyard::engine::{self, ChatMessage, Event, GenerateRequest, LoadOptions};
//! let model = engine::load("model.gguf", LoadOptions::default()).await?;   // a ModelHandle
//! let prompt = model.chat_prompt(&[ChatMessage::new("user", "Hi")], None)?;  // token ids
//! let mut generation = model.generate(GenerateRequest::new(prompt))?;
//! while let Some(event) = generation.events.recv().await {
//!     match event {
//!         Event::Token(t) => print!("{}", t.text),
//!         Event::Done(done) => println!("\n{:?} {:?}", done.finish_reason, done.usage),
//!         Event::Error(e) => return Err(e),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! - [`load`] (async) / [`load_blocking`] open a path (a `.gguf` file or a folder) and
//!   return a [`ModelHandle`] once the weights are in memory. The registry resolves
//!   names to paths (`crate::models::resolve`).
//! - [`ModelHandle`] is cheap to clone and `Send + Sync`. Its text methods
//!   ([`ModelHandle::tokenize`], [`ModelHandle::render_chat`],
//!   [`ModelHandle::chat_prompt`], [`ModelHandle::count_tokens`]) are synchronous and
//!   run on the caller's thread (plain Rust, no MLX): they are fast, but call them from
//!   `spawn_blocking` for megabyte inputs.
//! - [`ModelHandle::generate`] validates the request (context length, sampling values,
//!   token ids) and returns at once with a [`Generation`]: an unbounded tokio receiver of
//!   [`Event`]s — one [`Event::Token`] per generated token (its text delta, which may be
//!   empty while a multi-byte character or a possible stop string is held back, its id,
//!   and logprobs if asked), then exactly one [`Event::Done`] (finish reason, usage incl.
//!   cached prompt tokens, timings, peak memory) or [`Event::Error`]. Dropping the
//!   receiver or calling [`CancelToken::cancel`] stops generation before the next token,
//!   or while the prompt is being processed, after the current layer.
//!
//! # Threads
//!
//! Each loaded model owns one dedicated OS thread (`mlx-<name>`) that holds every MLX
//! array of the model and runs its requests together (continuous batching: a request
//! joins the running batch when it arrives, its prompt prefilled in chunks between the
//! others' decode steps, and leaves it when it finishes; up to `max_batch` at once, the
//! rest wait in order); nothing MLX ever runs on tokio's executor threads. Handles talk to it over a channel; the thread ends
//! when the last handle is dropped or [`ModelHandle::unload`] is awaited.
//!
//! # Numerics
//!
//! On the CPU the residual stream is float32 (MLX's CPU kernels are 25–30× slower in
//! float16); unquantized float16/bfloat16 weights are converted once at load, quantized
//! weights stay packed. Prompts are prefilled like mlx-lm (all but the last token in
//! chunks of `prefill_step_size`, then the last token), so greedy output is
//! token-for-token mlx-lm's (checked by `tests/engine.rs` against the fixture). In a
//! batch, each sequence's rows go through the same matrix products as alone (the
//! quantized CPU kernels compute each row on its own), and attention runs per sequence
//! over its own cache: a batched generation's greedy tokens are its solo tokens
//! (`concurrent_generations_batch_and_each_gets_its_solo_tokens`).
//!
//! Module map: `gguf` (header parser), `config` (hyper-parameters), `source` (format
//! detection, registry metadata), `weights` (files -> model), `model` (the network and
//! KV cache), `prefix` (prefix cache policy), `tokenizer`, `template` (chat templates),
//! `text` (UTF-8-safe streaming, stop strings), `tool_calls` (calls in the output),
//! `reasoning` (`<think>` blocks in the output),
//! `sampling`, `worker` (the thread).

pub mod config;
pub mod disk_cache;
pub mod gguf;
pub mod harmony;
pub mod memory;
pub mod model;
pub mod prefix;
pub mod reasoning;
pub mod sampling;
pub mod source;
pub mod template;
pub mod text;
pub mod tokenizer;
pub mod tool_calls;
pub mod weights;
mod worker;

pub use config::{Arch, ModelConfig};
pub use harmony::HarmonyParser;
pub use reasoning::{Part, ThinkParser};
pub use sampling::SamplingParams;
pub use source::{ModelFormat, ModelMetadata, inspect};
pub use template::{ChatMessage, PromptSwitches};
pub use tool_calls::{Piece, ToolCallFormat, ToolCallParser};

use crate::error::{Code, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::mpsc;

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// KV caches kept for prefix reuse (0 disables the prefix cache). Each holds up to
    /// the longest conversation's KV; see `prefix.rs` for the policy.
    pub prefix_cache_entries: usize,
    /// Prompt tokens per prefill step (bounds the attention scores' memory).
    pub prefill_step_size: usize,
    /// MLX streams (one CPU thread each) the large matrix products are split over on
    /// the CPU. 1 = MLX's usual single stream. Default: up to 2, by available cores.
    pub compute_streams: usize,
    /// Generations a model accepts at once, running and waiting (FIFO); the next is
    /// `model_busy` rather than an unbounded wait behind the others.
    pub max_queued: usize,
    /// Generations that run at once, their decode steps batched (continuous batching:
    /// they join and leave at token boundaries); the rest of `max_queued` waits.
    pub max_batch: usize,
    /// The prefix cache on disk (`None`: memory only). See `disk_cache.rs`.
    pub disk_cache: Option<disk_cache::DiskCacheOptions>,
}

/// Default of [`LoadOptions::max_queued`].
pub const DEFAULT_MAX_QUEUED: usize = 8;

/// Default of [`LoadOptions::max_batch`]: every accepted generation runs.
pub const DEFAULT_MAX_BATCH: usize = 8;

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            prefix_cache_entries: 1,
            prefill_step_size: 2048,
            compute_streams: std::thread::available_parallelism()
                .map(|n| n.get().min(2))
                .unwrap_or(1),
            max_queued: DEFAULT_MAX_QUEUED,
            max_batch: DEFAULT_MAX_BATCH,
            disk_cache: None,
        }
    }
}

/// What a loaded model is.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub format: ModelFormat,
    pub architecture: String,
    pub config: ModelConfig,
    pub context_length: u32,
    pub vocab_size: usize,
    pub eos_token_ids: Vec<u32>,
    pub has_chat_template: bool,
    /// Bytes of the weights in memory.
    pub weights_bytes: u64,
    /// MLX's active memory after the load minus before it: what loading really took.
    pub load_bytes_measured: u64,
    pub load_seconds: f64,
}

/// One generation request. Build with [`GenerateRequest::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct GenerateRequest {
    pub prompt: Vec<u32>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    /// Text that ends generation; it is not emitted (matched across token boundaries).
    pub stop: Vec<String>,
    /// `Some(n)`: report the chosen token's logprob and the `n` most likely alternatives.
    pub logprobs: Option<usize>,
    /// Reuse (and afterwards keep) the KV of a shared prompt prefix.
    pub use_prefix_cache: bool,
    /// Keep going past EOS tokens (benchmarks measure a fixed number of tokens).
    pub ignore_eos: bool,
}

impl GenerateRequest {
    pub fn new(prompt: Vec<u32>) -> Self {
        GenerateRequest {
            prompt,
            max_tokens: 256,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
            logprobs: None,
            use_prefix_cache: true,
            ignore_eos: false,
        }
    }
}

/// Cancels a generation between tokens (or between layers of a prompt chunk).
/// Cloneable; cancelling is idempotent.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A running generation: its events and the means to stop it.
#[derive(Debug)]
pub struct Generation {
    pub events: mpsc::UnboundedReceiver<Event>,
    pub cancel: CancelToken,
}

impl Generation {
    /// Drain the stream into one result (for non-streaming callers and tests).
    pub async fn collect(mut self) -> Result<Collected> {
        let mut out = Collected::default();
        while let Some(ev) = self.events.recv().await {
            match ev {
                Event::Token(t) => {
                    out.text.push_str(&t.text);
                    out.token_ids.push(t.token_id);
                    out.tokens.push(t);
                }
                Event::Done(d) => {
                    out.done = Some(d);
                    return Ok(out);
                }
                Event::Error(e) => return Err(e),
            }
        }
        Err(Error::new(
            Code::Engine,
            "the engine stopped without finishing the generation",
        ))
    }
}

/// A whole generation, collected.
#[derive(Debug, Default)]
pub struct Collected {
    pub text: String,
    pub token_ids: Vec<u32>,
    pub tokens: Vec<TokenEvent>,
    pub done: Option<Completion>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Token(TokenEvent),
    Done(Completion),
    Error(Error),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenEvent {
    /// The text this token completes; empty while bytes or a possible stop string are held.
    pub text: String,
    pub token_id: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprob: Option<f32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub top_logprobs: Vec<(u32, f32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FinishReason {
    /// An EOS token or a stop string.
    Stop,
    /// `max_tokens` or the context length.
    Length,
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Generated tokens, including a final EOS token.
    pub completion_tokens: usize,
    /// Prompt tokens whose KV came from the prefix cache (not recomputed).
    pub cached_prompt_tokens: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Timings {
    /// Request start to first token (prefill of the uncached prompt + first step).
    pub time_to_first_token_s: f64,
    /// Computed prompt tokens / time to first token (mlx-lm's definition).
    pub prompt_tokens_per_s: f64,
    /// Generated tokens / time after the first token (mlx-lm's definition).
    pub generation_tokens_per_s: f64,
    pub total_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Completion {
    pub finish_reason: FinishReason,
    /// The EOS token that ended generation (not sent as a token event).
    pub stop_token: Option<u32>,
    /// The stop string that ended generation (never part of the text).
    pub stop_sequence: Option<String>,
    pub usage: Usage,
    pub timings: Timings,
    /// MLX's peak memory during the request (process-wide).
    pub peak_memory_bytes: u64,
}

/// A loaded model. Clone freely; the model unloads when the last clone is dropped.
#[derive(Clone)]
pub struct ModelHandle {
    inner: Arc<Inner>,
}

struct Inner {
    info: ModelInfo,
    tokenizer: Arc<tokenizer::TextTokenizer>,
    /// `Err`: the model ships a template minijinja cannot compile (reported on use).
    template: Option<std::result::Result<template::ChatTemplate, Error>>,
    tx: std::sync::mpsc::Sender<worker::Command>,
    /// Generations sent to the worker and not finished yet (the worker counts them down).
    pending: Arc<std::sync::atomic::AtomicUsize>,
    /// The worker's measured growth while serving (see `Worker::serving_bytes`).
    serving_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// The most generations one decode step has run together.
    largest_batch: Arc<std::sync::atomic::AtomicUsize>,
    max_queued: usize,
}

impl std::fmt::Debug for ModelHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelHandle")
            .field("path", &self.inner.info.path)
            .finish()
    }
}

/// Load a model from a `.gguf` file or a model folder.
pub async fn load(path: impl AsRef<Path>, opts: LoadOptions) -> Result<ModelHandle> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    worker::spawn(path.as_ref().to_path_buf(), opts, move |r| {
        let _ = tx.send(r);
    })?;
    rx.await
        .map_err(|_| Error::new(Code::Engine, "the model loader stopped unexpectedly"))?
        .map(|inner| ModelHandle {
            inner: Arc::new(inner),
        })
}

/// [`load`] for callers without an async runtime (benchmarks, blocking tests).
pub fn load_blocking(path: impl AsRef<Path>, opts: LoadOptions) -> Result<ModelHandle> {
    let (tx, rx) = std::sync::mpsc::channel();
    worker::spawn(path.as_ref().to_path_buf(), opts, move |r| {
        let _ = tx.send(r);
    })?;
    rx.recv()
        .map_err(|_| Error::new(Code::Engine, "the model loader stopped unexpectedly"))?
        .map(|inner| ModelHandle {
            inner: Arc::new(inner),
        })
}

impl ModelHandle {
    pub fn info(&self) -> &ModelInfo {
        &self.inner.info
    }

    /// Measured memory: what the load took plus the most a generation has added
    /// since (KV cache and activations).
    pub fn measured_bytes(&self) -> u64 {
        self.inner.info.load_bytes_measured + self.inner.serving_bytes.load(Ordering::Relaxed)
    }

    /// The most generations one decode step of this model has run together so far.
    pub fn largest_batch(&self) -> usize {
        self.inner.largest_batch.load(Ordering::Relaxed)
    }

    /// Generations running or waiting on this model.
    pub fn in_flight(&self) -> usize {
        self.inner.pending.load(Ordering::Acquire)
    }

    /// Encode text; `add_special_tokens` adds what the tokenizer adds to raw text (BOS).
    pub fn tokenize(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner.tokenizer.encode(text, add_special_tokens)
    }

    pub fn detokenize(&self, ids: &[u32]) -> Result<String> {
        self.inner.tokenizer.decode(ids)
    }

    /// The chat template applied to `messages` (with `tools` when given), ending with
    /// the assistant's turn opener when `add_generation_prompt`.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.render_chat_with(
            messages,
            tools,
            add_generation_prompt,
            PromptSwitches::default(),
        )
    }

    fn render_chat_with(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        switches: PromptSwitches,
    ) -> Result<String> {
        let t = match &self.inner.template {
            Some(Ok(t)) => t,
            Some(Err(e)) => return Err(e.clone()),
            None => {
                return Err(Error::new(
                    Code::UnsupportedFeature,
                    "this model has no chat template; send a raw prompt instead",
                ));
            }
        };
        if tools.is_some() && !t.takes_tools() {
            return Err(Error::new(
                Code::UnsupportedFeature,
                "this model's chat template does not take tools; send the request without \
                 tools or route it to a model that supports them",
            ));
        }
        let tk = &self.inner.tokenizer;
        t.render(
            messages,
            tools,
            add_generation_prompt,
            tk.bos_token.as_deref(),
            tk.eos_token.as_deref(),
            switches,
        )
    }

    /// Whether this model writes its reasoning in `<think>` tags (see [`reasoning`]).
    pub fn thinks(&self) -> bool {
        matches!(&self.inner.template, Some(Ok(t)) if t.thinks())
    }

    /// Whether the model answers in harmony (gpt-oss): its output is read by
    /// [`HarmonyParser`], reasoning, answer and tool calls alike.
    pub fn harmony(&self) -> bool {
        self.inner.tokenizer.keep_special
    }

    /// How this model writes tool calls, when its chat template takes tools in a
    /// format we parse (see [`tool_calls`]).
    pub fn tool_call_format(&self) -> Option<ToolCallFormat> {
        match &self.inner.template {
            Some(Ok(t)) if t.takes_tools() => t.tool_format(),
            _ => None,
        }
    }

    /// Prompt token ids for a chat: template rendered, then encoded without adding
    /// special tokens (the template writes them), exactly as `apply_chat_template`.
    pub fn chat_prompt(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
    ) -> Result<Vec<u32>> {
        Ok(self
            .chat_prompt_with(messages, tools, PromptSwitches::default())?
            .0)
    }

    /// [`ModelHandle::chat_prompt`] with the request's switches for templates that read
    /// them; also says whether the prompt leaves the model inside a `<think>` block.
    pub fn chat_prompt_with(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        switches: PromptSwitches,
    ) -> Result<(Vec<u32>, bool)> {
        let text = self.render_chat_with(messages, tools, true, switches)?;
        let in_think = self.thinks() && reasoning::opens_thinking(&text);
        Ok((self.tokenize(&text, false)?, in_think))
    }

    /// Exact prompt token count of a chat (what `count_tokens` endpoints report).
    pub fn count_tokens(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
    ) -> Result<usize> {
        Ok(self.chat_prompt(messages, tools)?.len())
    }

    /// Start generating. Errors that need no model work (empty or too long prompt, bad
    /// sampling values, token ids outside the vocabulary) are returned here, before any
    /// stream exists.
    pub fn generate(&self, req: GenerateRequest) -> Result<Generation> {
        let info = &self.inner.info;
        if req.prompt.is_empty() {
            return Err(Error::new(Code::InvalidArgument, "the prompt is empty"));
        }
        if req.max_tokens == 0 {
            return Err(Error::new(
                Code::InvalidArgument,
                "max_tokens must be at least 1",
            ));
        }
        if req.prompt.len() >= info.context_length as usize {
            return Err(Error::new(
                Code::ContextLengthExceeded,
                format!(
                    "the prompt has {} tokens; this model's context is {} tokens (including the reply)",
                    req.prompt.len(),
                    info.context_length
                ),
            ));
        }
        let vocab = info.vocab_size as u32;
        if let Some(bad) = req.prompt.iter().find(|&&t| t >= vocab) {
            return Err(Error::new(
                Code::InvalidArgument,
                format!("token id {bad} is outside the vocabulary ({vocab} tokens)"),
            ));
        }
        req.sampling.validate()?;
        let pending = &self.inner.pending;
        let max = self.inner.max_queued;
        if pending
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_err()
        {
            return Err(Error::new(
                Code::ModelBusy,
                format!(
                    "the model {} already has {max} requests running or waiting; retry shortly",
                    info.path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
            ));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let cancel = CancelToken::new();
        if self
            .inner
            .tx
            .send(worker::Command::Generate {
                req: Box::new(req),
                events: tx,
                cancel: cancel.clone(),
            })
            .is_err()
        {
            pending.fetch_sub(1, Ordering::AcqRel);
            return Err(Error::new(Code::Engine, "the model's worker has stopped"));
        }
        Ok(Generation { events: rx, cancel })
    }

    /// Raw logits of the last position after one forward pass over `prompt` (a fresh
    /// cache, no prefix reuse): for scoring and for checking numerics.
    pub async fn logits(&self, prompt: Vec<u32>) -> Result<Vec<f32>> {
        if prompt.is_empty() || prompt.len() >= self.inner.info.context_length as usize {
            return Err(Error::new(
                Code::ContextLengthExceeded,
                "prompt is empty or longer than the context",
            ));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .tx
            .send(worker::Command::Logits { prompt, reply: tx })
            .map_err(|_| Error::new(Code::Engine, "the model's worker has stopped"))?;
        rx.await
            .map_err(|_| Error::new(Code::Engine, "the model's worker has stopped"))?
    }

    /// Drop every cached prefix (frees their KV memory).
    pub async fn clear_prefix_cache(&self) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .tx
            .send(worker::Command::ClearPrefixCache { reply: tx })
            .map_err(|_| Error::new(Code::Engine, "the model's worker has stopped"))?;
        rx.await
            .map_err(|_| Error::new(Code::Engine, "the model's worker has stopped"))
    }

    /// Stop the worker after queued requests and wait until its memory is released.
    /// Other clones of this handle get `engine_error` afterwards.
    pub async fn unload(self) -> Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .tx
            .send(worker::Command::Shutdown { reply: tx })
            .map_err(|_| Error::new(Code::Engine, "the model's worker has stopped"))?;
        rx.await
            .map_err(|_| Error::new(Code::Engine, "the model's worker has stopped"))
    }
}

/// Mutation fuzzing of untrusted-file parsers: seeds are mutated at random (bit flips,
/// byte overwrites with boundary values, truncations, duplicated and deleted spans) and
/// the parser must return `Ok` or a coded `model_invalid` — never panic, never allocate
/// past its budget. `make test` runs a few thousand cases; `make fuzz` runs each target
/// for `SWITCHYARD_FUZZ_SECS` seconds.
#[cfg(test)]
pub(crate) mod fuzz {
    use std::time::{Duration, Instant};

    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed | 1)
        }
        pub fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        pub fn below(&mut self, n: usize) -> usize {
            if n == 0 {
                0
            } else {
                (self.next() % n as u64) as usize
            }
        }
    }

    pub fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
        let mut b = seed.to_vec();
        for _ in 0..1 + rng.below(4) {
            match rng.below(6) {
                0 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] ^= 1 << rng.below(8);
                }
                1 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] = [0u8, 1, 0x7f, 0x80, 0xff][rng.below(5)];
                }
                2 if b.len() >= 8 => {
                    // A length or count field set to a boundary value.
                    let i = rng.below(b.len() - 7);
                    let v: u64 =
                        [0, 1, u32::MAX as u64, i64::MAX as u64, u64::MAX, 1 << 40][rng.below(6)];
                    b[i..i + 8].copy_from_slice(&v.to_le_bytes());
                }
                3 => {
                    let n = rng.below(b.len() + 1);
                    b.truncate(n);
                }
                4 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    let n = rng.below((b.len() - i).min(64) + 1);
                    let span = b[i..i + n].to_vec();
                    let j = rng.below(b.len() + 1);
                    b.splice(j..j, span);
                }
                _ if !b.is_empty() => {
                    let i = rng.below(b.len());
                    let n = rng.below((b.len() - i).min(64) + 1);
                    b.drain(i..i + n);
                }
                _ => {}
            }
        }
        b
    }

    /// How long (or how many cases) a fuzz target runs.
    pub fn budget() -> (Duration, usize) {
        match std::env::var("SWITCHYARD_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
        {
            Some(secs) => (Duration::from_secs(secs), usize::MAX),
            None => (Duration::MAX, 3000),
        }
    }

    /// Run `check` on mutations of `seeds` until the budget is spent; returns the count.
    pub fn run(name: &str, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8])) -> usize {
        let (time, cases) = budget();
        let start = Instant::now();
        let mut rng = Rng::new(0x5eed_f022 ^ name.len() as u64);
        let mut n = 0;
        while n < cases && start.elapsed() < time {
            let seed = &seeds[rng.below(seeds.len())];
            let input = mutate(&mut rng, seed);
            check(&input);
            n += 1;
        }
        eprintln!(
            "fuzz {name}: {n} cases in {:.1} s",
            start.elapsed().as_secs_f64()
        );
        n
    }
}
