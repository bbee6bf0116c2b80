//! The model's thread: loads the weights, then serves commands in order, its
//! generations together (continuous batching, see [`Worker::run`]). Every MLX array of
//! a model lives and dies on this thread.

use super::disk_cache::{DiskCache, Layout};
use super::model::{KvCache, Transformer};
use super::prefix::{Kv, PrefixCache, Taken, common_prefix};
use super::sampling::{self, Sampler};
use super::source::Source;
use super::template::ChatTemplate;
use super::text::{IncrementalDecoder, StopMatcher};
use super::tokenizer::TextTokenizer;
use super::{
    CancelToken, Completion, Event, FinishReason, GenerateRequest, Inner, LoadOptions, ModelInfo,
    Timings, TokenEvent, Usage, weights,
};
use crate::error::{Code, Error, Result};
use mlx_rs::{Array, Dtype};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

pub(super) enum Command {
    Generate {
        req: Box<GenerateRequest>,
        events: mpsc::UnboundedSender<Event>,
        cancel: CancelToken,
    },
    Logits {
        prompt: Vec<u32>,
        reply: oneshot::Sender<Result<Vec<f32>>>,
    },
    ClearPrefixCache {
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

impl Kv for KvCache {
    fn truncate(&mut self, len: usize) {
        KvCache::truncate(self, len as i32);
    }
    fn fork(&self, len: usize) -> Option<Self> {
        KvCache::fork(self, len as i32)
            .inspect_err(|e| tracing::warn!(error = %e, "could not copy a cached prefix"))
            .ok()
    }
}

fn engine(what: &str) -> impl FnOnce(mlx_rs::error::Exception) -> Error + '_ {
    move |e| Error::new(Code::Engine, format!("{what}: {e}"))
}

/// Start the thread; `ready` gets the handle's contents once the model is loaded (or
/// the load error).
pub(super) fn spawn(
    path: PathBuf,
    opts: LoadOptions,
    ready: impl FnOnce(Result<Inner>) + Send + 'static,
) -> Result<()> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().chars().take(10).collect::<String>())
        .unwrap_or_default();
    let (tx, rx) = std::sync::mpsc::channel::<Command>();
    exit_waits_for_workers();
    LIVE_WORKERS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let spawned = std::thread::Builder::new()
        .name(format!("mlx-{name}"))
        .spawn(move || {
            let _live = LiveWorker;
            // MLX's active memory around the load is the model's measured footprint
            // (process-wide: the pool loads one model at a time so that it is this one's).
            let before = mlx_rs::memory::active_memory().unwrap_or(0) as u64;
            let loaded =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| load(&path, &opts)));
            let (mut inner_parts, model) = match loaded {
                Ok(Ok(x)) => x,
                Ok(Err(e)) => return ready(Err(e)),
                Err(_) => {
                    return ready(Err(Error::new(
                        Code::Engine,
                        format!("loading {} crashed", path.display()),
                    )));
                }
            };
            exit_waits_for_workers();
            inner_parts.0.load_bytes_measured =
                (mlx_rs::memory::active_memory().unwrap_or(0) as u64).saturating_sub(before);
            let (info, tokenizer, template) = inner_parts;
            let tokenizer = Arc::new(tokenizer);
            let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let serving_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let largest_batch = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut worker = Worker {
                largest_batch: largest_batch.clone(),
                pending: pending.clone(),
                serving_bytes: serving_bytes.clone(),
                context_length: info.context_length as usize,
                eos: info.eos_token_ids.clone(),
                model,
                tokenizer: tokenizer.clone(),
                prefix: PrefixCache::new(opts.prefix_cache_entries),
                disk: opts.disk_cache.as_ref().and_then(|o| {
                    DiskCache::open(o, &path)
                        .inspect_err(|e| tracing::warn!(error = %e, "no prefix cache on disk"))
                        .ok()
                }),
                exit_handler_after_generation: false,
                step: opts.prefill_step_size.max(1),
                max_batch: opts.max_batch.max(1),
            };
            ready(Ok(Inner {
                info,
                tokenizer,
                template,
                tx,
                pending,
                serving_bytes,
                largest_batch,
                max_queued: opts.max_queued.max(1),
            }));
            let shutdown = worker.run(rx);
            // Free the model's arrays first, then MLX's buffer cache that took them in,
            // and only then say the memory is back.
            drop(worker);
            let _ = mlx_rs::memory::clear_cache();
            if let Some(reply) = shutdown {
                let _ = reply.send(());
            }
        });
    if let Err(e) = spawned {
        LIVE_WORKERS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        return Err(Error::new(
            Code::Engine,
            format!("cannot start the model thread: {e}"),
        ));
    }
    Ok(())
}

/// Model threads still running (loading, serving, or freeing their arrays).
static LIVE_WORKERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts a model thread as live until it ends (also when it panics).
struct LiveWorker;

impl Drop for LiveWorker {
    fn drop(&mut self) {
        LIVE_WORKERS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A model thread is detached: when its handle goes, it frees the model's MLX arrays on
/// its own time. A process that exits meanwhile (the end of `serve`, of a test binary)
/// would run libmlx's static destructors and the C runtime's teardown under that
/// thread's feet; seen as heap corruption reported from the worker's `free` at the end
/// of a test binary ("malloc_consolidate: unaligned fastbin chunk", SIGSEGV). So when
/// a process in which a model thread has run ends at once with its exit status
/// (`_exit`, from an `on_exit` handler, which sees the status; Rust's own cleanup, which
/// flushes stdout, has run by then): nothing is left to save (the database is written by
/// committed transactions), and the OS takes the memory back. Not only while threads
/// are counted live: a thread that has just uncounted itself is still finishing (its
/// thread-local teardown). The handler is registered again after each load and first
/// generation, so that it runs before the destructors libmlx registers lazily (when it
/// ran after them, a test binary exiting while two models were being freed hit "double
/// free or corruption" once in ~15 runs). (Where there is no `on_exit`, macOS, the exit
/// waits up to 5 s for the model threads.)
fn exit_waits_for_workers() {
    // glibc's `on_exit` (the handler sees the status; the libc crate does not bind it).
    #[cfg(target_os = "linux")]
    unsafe extern "C" {
        fn on_exit(
            f: extern "C" fn(libc::c_int, *mut libc::c_void),
            arg: *mut libc::c_void,
        ) -> libc::c_int;
    }
    #[cfg(target_os = "linux")]
    extern "C" fn at_exit(status: libc::c_int, _arg: *mut libc::c_void) {
        // SAFETY: `_exit` ends the process without running further handlers.
        unsafe { libc::_exit(status) }
    }
    // Elsewhere (no `on_exit`): wait, up to 5 s, for the model threads to finish.
    #[cfg(not(target_os = "linux"))]
    extern "C" fn at_exit() {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while LIVE_WORKERS.load(std::sync::atomic::Ordering::SeqCst) > 0
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    // Exit handlers run last-registered first, and libmlx registers destructors of
    // function-local statics when they are first used (its scheduler and allocator, at
    // the first evaluation): registered again after a model's load and its first
    // generation, this handler runs before those (bounded: the statics are all made
    // after the first few).
    static REGISTERED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    if REGISTERED.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= MAX_EXIT_HANDLERS {
        return;
    }
    // SAFETY: registering a plain `extern "C" fn` with no state.
    unsafe {
        #[cfg(target_os = "linux")]
        on_exit(at_exit, std::ptr::null_mut());
        #[cfg(not(target_os = "linux"))]
        libc::atexit(at_exit);
    }
}

/// Registrations of the exit handler at most (see [`exit_waits_for_workers`]).
const MAX_EXIT_HANDLERS: usize = 16;

type Loaded = (
    (
        ModelInfo,
        TextTokenizer,
        Option<std::result::Result<ChatTemplate, Error>>,
    ),
    Transformer,
);

fn load(path: &Path, opts: &LoadOptions) -> Result<Loaded> {
    let t0 = Instant::now();
    let source = Source::open(path)?;
    let config = source.config()?;
    let (mut tokenizer, model) = match &source {
        Source::Gguf { path, header } => (
            TextTokenizer::from_gguf(header)?,
            weights::load_gguf(path, header, config.clone(), opts.compute_streams)?,
        ),
        Source::Folder { path, config_json } => (
            TextTokenizer::from_folder(path, config_json)?,
            weights::load_folder(path, config.clone(), opts.compute_streams)?,
        ),
    };
    if tokenizer
        .chat_template
        .as_deref()
        .is_some_and(super::harmony::is_harmony_template)
    {
        tokenizer.speak_harmony();
    }
    let template = tokenizer.chat_template.clone().map(ChatTemplate::new);
    let rows = model.embed.0.out_features();
    let info = ModelInfo {
        path: source.path().to_path_buf(),
        format: source.format(),
        architecture: config.arch.as_str().to_string(),
        context_length: config.context_length,
        vocab_size: rows as usize,
        eos_token_ids: tokenizer.eos_ids.clone(),
        has_chat_template: template.as_ref().is_some_and(|t| t.is_ok()),
        weights_bytes: model.weights_bytes(),
        load_bytes_measured: 0,
        load_seconds: t0.elapsed().as_secs_f64(),
        config,
    };
    Ok(((info, tokenizer, template), model))
}

struct Worker {
    /// Generations accepted by `ModelHandle::generate` and not yet finished here.
    pending: Arc<std::sync::atomic::AtomicUsize>,
    /// The most memory a generation has added on top of what was in use when it
    /// started (KV cache, activations): the measured growth while serving.
    serving_bytes: Arc<std::sync::atomic::AtomicU64>,
    /// The most generations one decode step ran together.
    largest_batch: Arc<std::sync::atomic::AtomicUsize>,
    model: Transformer,
    tokenizer: Arc<TextTokenizer>,
    prefix: PrefixCache<KvCache>,
    disk: Option<DiskCache>,
    /// Whether the exit handler was registered again after a generation.
    exit_handler_after_generation: bool,
    step: usize,
    /// Generations running at once.
    max_batch: usize,
    context_length: usize,
    eos: Vec<u32>,
}

fn ids_array(ids: &[u32]) -> Array {
    let v: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
    Array::from_slice(&v, &[1, v.len() as i32])
}

/// Where a running generation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Prompt chunks left to prefill.
    Prefill,
    /// Logits in hand: the next token is to be sampled.
    Sample,
    /// A token was sampled: it goes through the model next (batched with the others).
    Decode,
}

/// One generation in the running batch: its own cache, sampler, text decoding, stop
/// strings and cancellation.
struct Seq {
    req: Box<GenerateRequest>,
    events: mpsc::UnboundedSender<Event>,
    cancel: CancelToken,
    t0: Instant,
    cache: KvCache,
    /// Whether `cache` was taken from the prefix cache (or a running generation) yet.
    cache_chosen: bool,
    reused: usize,
    /// Prompt tokens in the cache.
    pos: usize,
    phase: Phase,
    logits: Vec<f32>,
    /// The token sampled last (the next decode step's input).
    last: u32,
    history: Vec<u32>,
    sampler: Sampler,
    decoder: IncrementalDecoder,
    stops: StopMatcher,
    generated: usize,
    t_first: Option<Instant>,
    stop_token: Option<u32>,
    stop_sequence: Option<String>,
}

impl Seq {
    fn stopped(&self) -> bool {
        self.cancel.is_cancelled() || self.events.is_closed()
    }
}

/// A prompt chunk while other generations are decoding: small enough that their
/// streams do not freeze for long behind a long prompt.
const INTERLEAVED_PREFILL: usize = 512;

impl Worker {
    /// Serve commands until the handle is gone (`None`) or a shutdown asks for a reply
    /// once the memory is released (`Some`).
    ///
    /// Generations run together (continuous batching): each turn of the loop takes in
    /// new commands, prefills one chunk of the oldest prompt still being read, samples a
    /// token for every generation that has logits, and runs one decode step for all
    /// the others at once. A generation joins the batch as soon as it arrives (up to
    /// `max_batch`; the rest wait in order) and leaves it when it finishes.
    fn run(&mut self, rx: std::sync::mpsc::Receiver<Command>) -> Option<oneshot::Sender<()>> {
        let mut active: Vec<Seq> = Vec::new();
        let mut waiting: std::collections::VecDeque<Command> = Default::default();
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        let mut closed = false;
        let mut mem_start = 0u64;
        loop {
            // Take in commands: wait for one when there is nothing to do.
            if active.is_empty() && waiting.is_empty() {
                if shutdown.is_some() || closed {
                    break;
                }
                match rx.recv() {
                    Ok(cmd) => waiting.push_back(cmd),
                    Err(_) => break,
                }
            }
            if shutdown.is_none() && !closed {
                loop {
                    match rx.try_recv() {
                        Ok(cmd) => waiting.push_back(cmd),
                        Err(std::sync::mpsc::TryRecvError::Empty) => break,
                        Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                            closed = true;
                            break;
                        }
                    }
                }
            }
            // Commands in order; generations join the batch while there is room.
            while let Some(cmd) = waiting.front() {
                if matches!(cmd, Command::Generate { .. }) && active.len() >= self.max_batch {
                    break;
                }
                let Some(cmd) = waiting.pop_front() else {
                    break;
                };
                match cmd {
                    Command::Generate {
                        req,
                        events,
                        cancel,
                    } => {
                        if active.is_empty() {
                            let _ = mlx_rs::memory::reset_peak_memory();
                            mem_start = mlx_rs::memory::active_memory().unwrap_or(0) as u64;
                        }
                        if let Some(seq) = self.admit(req, events, cancel) {
                            active.push(seq);
                        }
                    }
                    Command::Logits { prompt, reply } => {
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            let mut cache = KvCache::new(self.model.layers.len());
                            self.step_logits(&prompt, &mut cache)
                        }))
                        .unwrap_or_else(|_| Err(Error::new(Code::Engine, "the engine failed")));
                        let _ = reply.send(r);
                    }
                    Command::ClearPrefixCache { reply } => {
                        self.prefix.clear();
                        let _ = mlx_rs::memory::clear_cache();
                        let _ = reply.send(());
                    }
                    Command::Shutdown { reply } => {
                        // What was accepted before finishes; nothing after is served.
                        shutdown = Some(reply);
                        for cmd in waiting.drain(..) {
                            if matches!(cmd, Command::Generate { .. }) {
                                self.pending
                                    .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                            }
                        }
                    }
                }
            }
            if active.is_empty() {
                continue;
            }
            let turn =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.turn(&mut active)));
            let peak = mlx_rs::memory::peak_memory().unwrap_or(0) as u64;
            self.serving_bytes.fetch_max(
                peak.saturating_sub(mem_start),
                std::sync::atomic::Ordering::Relaxed,
            );
            let failed = match turn {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => {
                    // State of the caches is unknown after a panic: start clean.
                    self.prefix.clear();
                    Some(Error::new(
                        Code::Engine,
                        "the engine failed during generation",
                    ))
                }
            };
            if let Some(e) = failed {
                // A failed step leaves every cache of the batch in doubt.
                for seq in active.drain(..) {
                    self.end(&seq.events, Event::Error(e.clone()));
                }
            }
        }
        if shutdown.is_some() {
            self.prefix.clear();
        }
        shutdown
    }

    /// A generation joins: `None` when its client left while it waited (it costs
    /// nothing, not even a first prefill step) — it is answered at once.
    fn admit(
        &mut self,
        req: Box<GenerateRequest>,
        events: mpsc::UnboundedSender<Event>,
        cancel: CancelToken,
    ) -> Option<Seq> {
        if cancel.is_cancelled() || events.is_closed() {
            let done = self.finish(
                FinishReason::Cancelled,
                None,
                Usage {
                    prompt_tokens: req.prompt.len(),
                    ..Default::default()
                },
                Timings::default(),
            );
            self.end(&events, Event::Done(done));
            return None;
        }
        // The cache is chosen when the prompt's turn to be read comes (see `turn`): by
        // then an earlier request with the same preamble has computed it.
        Some(Seq {
            t0: Instant::now(),
            cache: KvCache::new(self.model.layers.len()),
            cache_chosen: !req.use_prefix_cache,
            reused: 0,
            pos: 0,
            phase: Phase::Prefill,
            logits: Vec::new(),
            last: 0,
            history: req.prompt.clone(),
            sampler: Sampler::new(req.sampling.clone()),
            decoder: IncrementalDecoder::new(),
            stops: StopMatcher::new(req.stop.iter().cloned()),
            generated: 0,
            t_first: None,
            stop_token: None,
            stop_sequence: None,
            req,
            events,
            cancel,
        })
    }

    /// One turn of the batch: a prefill chunk, samples, one batched decode step.
    fn turn(&mut self, active: &mut Vec<Seq>) -> Result<()> {
        // Clients that left: answered as cancelled, their caches kept for reuse.
        let mut i = 0;
        while i < active.len() {
            if active[i].stopped() {
                let seq = active.remove(i);
                self.complete(seq, FinishReason::Cancelled);
            } else {
                i += 1;
            }
        }
        // The oldest prompt still being read advances by one chunk; a generation whose
        // prompt is in gets its first logits from the last prompt token.
        let others_decoding = active.iter().any(|s| s.phase != Phase::Prefill);
        if let Some(i) = active.iter().position(|s| s.phase == Phase::Prefill) {
            let step = if others_decoding {
                self.step.min(INTERLEAVED_PREFILL)
            } else {
                self.step
            };
            if !active[i].cache_chosen {
                let Taken { cache, reused } = self.reuse(&active[i].req.prompt, active);
                let seq = &mut active[i];
                if let Some(cache) = cache {
                    seq.cache = cache;
                }
                (seq.reused, seq.pos, seq.cache_chosen) = (reused, reused, true);
            }
            let seq = &mut active[i];
            let left = seq.req.prompt.len() - seq.pos;
            if left > 1 {
                let n = (left - 1).min(step);
                let (events, cancel) = (seq.events.clone(), seq.cancel.clone());
                let stop = || cancel.is_cancelled() || events.is_closed();
                let whole = self
                    .model
                    .prefill(
                        &ids_array(&seq.req.prompt[seq.pos..seq.pos + n]),
                        &mut seq.cache,
                        &stop,
                    )
                    .map_err(engine("prefill"))?;
                if whole {
                    seq.pos += n;
                } else {
                    seq.cache.truncate(seq.pos as i32);
                }
            }
            let seq = &mut active[i];
            if !seq.stopped() && seq.req.prompt.len() - seq.pos == 1 {
                let last = &seq.req.prompt[seq.pos..];
                seq.logits = self.step_logits(last, &mut seq.cache)?;
                seq.phase = Phase::Sample;
                // The whole prompt is in: its long prefix goes to disk too.
                if let Some(disk) = &self.disk
                    && seq.req.use_prefix_cache
                {
                    disk.save(&seq.req.prompt, &seq.cache);
                }
            }
        }
        // Sample; finished generations leave the batch.
        let mut i = 0;
        while i < active.len() {
            if active[i].phase != Phase::Sample {
                i += 1;
                continue;
            }
            match self.sample(&mut active[i]) {
                Ok(None) => {
                    active[i].phase = Phase::Decode;
                    i += 1;
                }
                Ok(Some(finish)) => {
                    let seq = active.remove(i);
                    self.complete(seq, finish);
                }
                Err(e) => {
                    let seq = active.remove(i);
                    self.end(&seq.events, Event::Error(e));
                }
            }
        }
        // One decode step for everyone with a token to feed. Alone, a generation takes
        // the single-sequence path (the numbers the differential tests check); together,
        // their rows share each matrix product.
        let mut decoding: Vec<&mut Seq> = active
            .iter_mut()
            .filter(|s| s.phase == Phase::Decode)
            .collect();
        self.largest_batch
            .fetch_max(decoding.len(), std::sync::atomic::Ordering::Relaxed);
        match decoding.len() {
            0 => {}
            1 => {
                let seq = &mut decoding[0];
                seq.logits = self.step_logits(&[seq.last], &mut seq.cache)?;
                seq.phase = Phase::Sample;
            }
            n => {
                let ids: Vec<u32> = decoding.iter().map(|s| s.last).collect();
                let logits = {
                    let mut caches: Vec<&mut KvCache> =
                        decoding.iter_mut().map(|s| &mut s.cache).collect();
                    self.model
                        .forward_batch(&ids, &mut caches)
                        .map_err(engine("batched decode step"))?
                };
                let mut logits = logits;
                if logits.dtype() != Dtype::Float32 {
                    logits = logits.as_dtype(Dtype::Float32).map_err(engine("logits"))?;
                }
                logits.eval().map_err(engine("batched decode step"))?;
                let all = logits
                    .try_as_slice::<f32>()
                    .map_err(|e| Error::new(Code::Engine, format!("reading logits: {e}")))?;
                let vocab = all.len() / n;
                for (seq, row) in decoding.iter_mut().zip(all.chunks(vocab)) {
                    seq.logits = row.to_vec();
                    seq.phase = Phase::Sample;
                }
            }
        }
        Ok(())
    }

    /// Sample `seq`'s next token from its logits and send it; `Some` when that ends it.
    fn sample(&self, seq: &mut Seq) -> Result<Option<FinishReason>> {
        let req = &seq.req;
        let raw = req.logprobs.is_some().then(|| seq.logits.clone());
        let token = seq.sampler.sample(&mut seq.logits, &seq.history);
        seq.generated += 1;
        seq.t_first.get_or_insert_with(Instant::now);
        seq.history.push(token);
        seq.last = token;
        let tk = self.tokenizer.clone();
        let decode = |ids: &[u32]| tk.decode(ids);
        let is_eos = !req.ignore_eos && self.eos.contains(&token);
        let delta = if is_eos {
            String::new()
        } else {
            seq.decoder.push(token, decode)?
        };
        let step = seq.stops.push(&delta);
        if step.matched.is_some() {
            seq.stop_sequence.clone_from(&step.matched);
        }
        let mut text = step.emit;
        let mut finish = if is_eos || step.stopped {
            Some(FinishReason::Stop)
        } else if seq.generated >= req.max_tokens
            || seq.cache.offset() as usize + 1 >= self.context_length
        {
            Some(FinishReason::Length)
        } else {
            None
        };
        if is_eos {
            seq.stop_token = Some(token);
        }
        if finish.is_some() && !step.stopped {
            // Release what was held back: bytes of an unfinished character, or the
            // start of a stop string that never completed.
            let tail = seq.decoder.flush(decode)?;
            let tail_step = seq.stops.push(&tail);
            text.push_str(&tail_step.emit);
            if tail_step.stopped {
                finish = Some(FinishReason::Stop);
                seq.stop_sequence = tail_step.matched;
            } else {
                text.push_str(&seq.stops.finish());
            }
        }
        let (logprob, top_logprobs) = match (&raw, req.logprobs) {
            (Some(raw), Some(n)) => {
                let (lp, top) = sampling::logprobs(raw, token, n);
                (Some(lp), top)
            }
            _ => (None, Vec::new()),
        };
        let sent = seq.events.send(Event::Token(TokenEvent {
            text,
            token_id: token,
            logprob,
            top_logprobs,
        }));
        if sent.is_err() {
            return Ok(Some(FinishReason::Cancelled));
        }
        if finish.is_none() && seq.cancel.is_cancelled() {
            return Ok(Some(FinishReason::Cancelled));
        }
        Ok(finish)
    }

    /// The cache a generation starts from when its prompt's turn comes: the prefix
    /// cache's best, or a copy of a running generation's when that holds more of the
    /// prompt (requests sent together with the same preamble: prompts are read one
    /// after the other, so the first computes the preamble and the others copy it).
    fn reuse(&mut self, prompt: &[u32], running: &[Seq]) -> Taken<KvCache> {
        let limit = prompt.len().saturating_sub(1);
        let best_running = running
            .iter()
            .map(|s| {
                let held = (s.cache.offset().max(0) as usize).min(s.history.len());
                (common_prefix(&s.history[..held], prompt).min(limit), s)
            })
            .max_by_key(|(n, _)| *n);
        let in_memory = self.prefix.best_len(prompt);
        let running_len = best_running.as_ref().map_or(0, |(n, _)| *n);
        // Blocks on disk, when they hold more than memory does (after an unload or a
        // restart).
        if let Some(disk) = &self.disk {
            let layout = Layout {
                layers: self.model.layers.len(),
                kv_heads: self.model.config.num_kv_heads,
                head_dim: self.model.config.head_dim,
                dtype: self.model.activation_dtype,
            };
            if let Some(cache) = disk.load(prompt, limit, in_memory.max(running_len), layout) {
                let reused = cache.offset() as usize;
                return Taken {
                    cache: Some(cache),
                    reused,
                };
            }
        }
        if let Some((n, s)) = best_running
            && n > 0
            && n > in_memory
            && let Some(cache) = Kv::fork(&s.cache, n)
        {
            return Taken {
                cache: Some(cache),
                reused: n,
            };
        }
        self.prefix.take(prompt)
    }

    /// `seq` is done: its usage and timings to the client, its cache to the prefix cache.
    fn complete(&mut self, mut seq: Seq, finish: FinishReason) {
        if !self.exit_handler_after_generation {
            self.exit_handler_after_generation = true;
            exit_waits_for_workers();
        }
        let t_end = Instant::now();
        let ttft = seq
            .t_first
            .map(|t| t - seq.t0)
            .unwrap_or_default()
            .as_secs_f64();
        let gen_s = seq
            .t_first
            .map(|t| t_end - t)
            .unwrap_or_default()
            .as_secs_f64();
        let computed = seq.pos.max(seq.reused) - seq.reused + usize::from(seq.t_first.is_some());
        let timings = Timings {
            time_to_first_token_s: ttft,
            prompt_tokens_per_s: if ttft > 0.0 {
                computed as f64 / ttft
            } else {
                0.0
            },
            generation_tokens_per_s: if gen_s > 0.0 {
                seq.generated as f64 / gen_s
            } else {
                0.0
            },
            total_s: (t_end - seq.t0).as_secs_f64(),
        };
        let usage = Usage {
            prompt_tokens: seq.req.prompt.len(),
            completion_tokens: seq.generated,
            cached_prompt_tokens: seq.reused,
        };
        if seq.req.use_prefix_cache {
            // The cache holds the prompt read so far and every generated token that went
            // through the model.
            let held = seq.cache.offset() as usize;
            seq.history.truncate(held);
            let history = std::mem::take(&mut seq.history);
            let cache = std::mem::take(&mut seq.cache);
            if held > 0 {
                self.prefix.put(history, cache);
            }
        }
        let mut done = self.finish(finish, seq.stop_token, usage, timings);
        done.stop_sequence = seq.stop_sequence.take();
        self.end(&seq.events, Event::Done(done));
    }

    /// A generation's last event (its completion or its error). Its place is freed
    /// first: a client that sends its next request as soon as it hears must not find the
    /// model still full.
    fn end(&self, events: &mpsc::UnboundedSender<Event>, last: Event) {
        self.pending
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        let _ = events.send(last);
    }

    /// Run `tokens` and return the last position's logits on the host.
    fn step_logits(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>> {
        let logits = self
            .model
            .forward(&ids_array(tokens), cache, 1)
            .map_err(engine("forward pass"))?
            .ok_or_else(|| Error::new(Code::Internal, "no logits"))?;
        let v = logits.dim(-1);
        let mut logits = logits.reshape(&[v]).map_err(engine("logits"))?;
        if logits.dtype() != Dtype::Float32 {
            logits = logits.as_dtype(Dtype::Float32).map_err(engine("logits"))?;
        }
        logits.eval().map_err(engine("forward pass"))?;
        Ok(logits
            .try_as_slice::<f32>()
            .map_err(|e| Error::new(Code::Engine, format!("reading logits: {e}")))?
            .to_vec())
    }

    fn finish(
        &self,
        finish_reason: FinishReason,
        stop_token: Option<u32>,
        usage: Usage,
        timings: Timings,
    ) -> Completion {
        Completion {
            finish_reason,
            stop_token,
            stop_sequence: None,
            usage,
            timings,
            peak_memory_bytes: mlx_rs::memory::peak_memory().unwrap_or(0) as u64,
        }
    }
}
