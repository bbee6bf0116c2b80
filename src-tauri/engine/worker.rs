//! The model's thread: loads the weights, then serves commands one at a time. Every
//! MLX array of a model lives and dies on this thread.

use super::model::{KvCache, Linear, Transformer};
use super::prefix::{PrefixCache, Taken, Truncate};
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

impl Truncate for KvCache {
    fn truncate(&mut self, len: usize) {
        KvCache::truncate(self, len as i32);
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
            inner_parts.0.load_bytes_measured =
                (mlx_rs::memory::active_memory().unwrap_or(0) as u64).saturating_sub(before);
            let (info, tokenizer, template) = inner_parts;
            let tokenizer = Arc::new(tokenizer);
            let pending = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let serving_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let mut worker = Worker {
                pending: pending.clone(),
                serving_bytes: serving_bytes.clone(),
                context_length: info.context_length as usize,
                eos: info.eos_token_ids.clone(),
                model,
                tokenizer: tokenizer.clone(),
                prefix: PrefixCache::new(opts.prefix_cache_entries),
                step: opts.prefill_step_size.max(1),
            };
            ready(Ok(Inner {
                info,
                tokenizer,
                template,
                tx,
                pending,
                serving_bytes,
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
/// the process exits while model threads are still live, it ends at once with its exit
/// status (`_exit`, from an `on_exit` handler, which sees the status): nothing is left
/// to save by then (the database is written by committed transactions), and the OS
/// takes the memory back. With no model thread live, the exit is the normal one. (Where
/// there is no `on_exit`, macOS, the exit waits up to 5 s for the model threads.)
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
        if LIVE_WORKERS.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            // SAFETY: `_exit` ends the process without running further handlers.
            unsafe { libc::_exit(status) }
        }
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
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: registering a plain `extern "C" fn` with no state.
        unsafe {
            #[cfg(target_os = "linux")]
            on_exit(at_exit, std::ptr::null_mut());
            #[cfg(not(target_os = "linux"))]
            libc::atexit(at_exit);
        }
    });
}

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
    let (tokenizer, model) = match &source {
        Source::Gguf { path, header } => (
            TextTokenizer::from_gguf(header)?,
            weights::load_gguf(path, header, config.clone(), opts.compute_streams)?,
        ),
        Source::Folder { path, config_json } => (
            TextTokenizer::from_folder(path, config_json)?,
            weights::load_folder(path, config.clone(), opts.compute_streams)?,
        ),
    };
    let template = tokenizer.chat_template.clone().map(ChatTemplate::new);
    let rows = match &model.embed.0 {
        Linear::Dense { weight, .. } | Linear::Quantized { weight, .. } => weight.dim(0),
        Linear::Split { .. } => model.embed.0.out_features(),
    };
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
    model: Transformer,
    tokenizer: Arc<TextTokenizer>,
    prefix: PrefixCache<KvCache>,
    step: usize,
    context_length: usize,
    eos: Vec<u32>,
}

fn ids_array(ids: &[u32]) -> Array {
    let v: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
    Array::from_slice(&v, &[1, v.len() as i32])
}

impl Worker {
    /// Serve commands until the handle is gone (`None`) or a shutdown asks for a reply
    /// once the memory is released (`Some`).
    fn run(&mut self, rx: std::sync::mpsc::Receiver<Command>) -> Option<oneshot::Sender<()>> {
        while let Ok(cmd) = rx.recv() {
            match cmd {
                Command::Generate {
                    req,
                    events,
                    cancel,
                } => {
                    // Left while it waited (the client hung up, or cancelled): it
                    // costs nothing, not even a first prefill step.
                    let r = if cancel.is_cancelled() || events.is_closed() {
                        let done = self.finish(
                            FinishReason::Cancelled,
                            None,
                            Usage {
                                prompt_tokens: req.prompt.len(),
                                ..Default::default()
                            },
                            Timings::default(),
                        );
                        let _ = events.send(Event::Done(done));
                        Ok(Ok(()))
                    } else {
                        let start = mlx_rs::memory::active_memory().unwrap_or(0) as u64;
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            self.generate(&req, &events, &cancel)
                        }));
                        // `generate` reset the peak when it started.
                        let peak = mlx_rs::memory::peak_memory().unwrap_or(0) as u64;
                        self.serving_bytes.fetch_max(
                            peak.saturating_sub(start),
                            std::sync::atomic::Ordering::Relaxed,
                        );
                        r
                    };
                    self.pending
                        .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
                    let err = match r {
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
                    if let Some(e) = err {
                        let _ = events.send(Event::Error(e));
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
                    self.prefix.clear();
                    return Some(reply);
                }
            }
        }
        None
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

    fn generate(
        &mut self,
        req: &GenerateRequest,
        events: &mpsc::UnboundedSender<Event>,
        cancel: &CancelToken,
    ) -> Result<()> {
        let t0 = Instant::now();
        let _ = mlx_rs::memory::reset_peak_memory();
        let prompt = &req.prompt;
        let Taken { cache, reused } = if req.use_prefix_cache {
            self.prefix.take(prompt)
        } else {
            Taken {
                cache: None,
                reused: 0,
            }
        };
        let mut cache = cache.unwrap_or_else(|| KvCache::new(self.model.layers.len()));
        let stopped = || cancel.is_cancelled() || events.is_closed();

        // Prefill all but the last prompt token, in chunks, keeping only the cache.
        let mut pos = reused;
        while prompt.len() - pos > 1 {
            let n = (prompt.len() - 1 - pos).min(self.step);
            let whole = self
                .model
                .prefill(&ids_array(&prompt[pos..pos + n]), &mut cache, &stopped)
                .map_err(engine("prefill"))?;
            if whole {
                pos += n;
            } else {
                cache.truncate(pos as i32);
            }
            if stopped() {
                let done = self.finish(
                    FinishReason::Cancelled,
                    None,
                    Usage {
                        prompt_tokens: prompt.len(),
                        completion_tokens: 0,
                        cached_prompt_tokens: reused,
                    },
                    Timings {
                        total_s: t0.elapsed().as_secs_f64(),
                        ..Default::default()
                    },
                );
                if req.use_prefix_cache {
                    self.prefix.put(prompt[..pos].to_vec(), cache);
                }
                let _ = events.send(Event::Done(done));
                return Ok(());
            }
        }

        let mut logits = self.step_logits(&prompt[pos..], &mut cache)?;
        let mut history = prompt.clone();
        let mut sampler = Sampler::new(req.sampling.clone());
        let mut decoder = IncrementalDecoder::new();
        let mut stops = StopMatcher::new(req.stop.iter().cloned());
        let tk = self.tokenizer.clone();
        let decode = |ids: &[u32]| tk.decode(ids);
        let mut generated = 0usize;
        let mut t_first: Option<Instant> = None;
        let mut stop_token = None;
        let mut stop_sequence = None;
        let finish = loop {
            let raw = req.logprobs.is_some().then(|| logits.clone());
            let token = sampler.sample(&mut logits, &history);
            generated += 1;
            t_first.get_or_insert_with(Instant::now);
            history.push(token);
            let is_eos = !req.ignore_eos && self.eos.contains(&token);
            let delta = if is_eos {
                String::new()
            } else {
                decoder.push(token, decode)?
            };
            let step = stops.push(&delta);
            if step.matched.is_some() {
                stop_sequence.clone_from(&step.matched);
            }
            let mut text = step.emit;
            let mut finish = if is_eos || step.stopped {
                Some(FinishReason::Stop)
            } else if generated >= req.max_tokens
                || cache.offset() as usize + 1 >= self.context_length
            {
                Some(FinishReason::Length)
            } else {
                None
            };
            if is_eos {
                stop_token = Some(token);
            }
            if finish.is_some() && !step.stopped {
                // Release what was held back: bytes of an unfinished character, or the
                // start of a stop string that never completed.
                let tail = decoder.flush(decode)?;
                let tail_step = stops.push(&tail);
                text.push_str(&tail_step.emit);
                if tail_step.stopped {
                    finish = Some(FinishReason::Stop);
                    stop_sequence = tail_step.matched;
                } else {
                    text.push_str(&stops.finish());
                }
            }
            let (logprob, top_logprobs) = match (&raw, req.logprobs) {
                (Some(raw), Some(n)) => {
                    let (lp, top) = sampling::logprobs(raw, token, n);
                    (Some(lp), top)
                }
                _ => (None, Vec::new()),
            };
            let sent = events.send(Event::Token(TokenEvent {
                text,
                token_id: token,
                logprob,
                top_logprobs,
            }));
            if sent.is_err() {
                break FinishReason::Cancelled;
            }
            if let Some(f) = finish {
                break f;
            }
            if cancel.is_cancelled() {
                break FinishReason::Cancelled;
            }
            logits = self.step_logits(&[token], &mut cache)?;
        };
        let t_end = Instant::now();
        let ttft = t_first.map(|t| t - t0).unwrap_or_default().as_secs_f64();
        let gen_s = t_first.map(|t| t_end - t).unwrap_or_default().as_secs_f64();
        let computed = prompt.len() - reused;
        let timings = Timings {
            time_to_first_token_s: ttft,
            prompt_tokens_per_s: if ttft > 0.0 {
                computed as f64 / ttft
            } else {
                0.0
            },
            generation_tokens_per_s: if gen_s > 0.0 {
                generated as f64 / gen_s
            } else {
                0.0
            },
            total_s: (t_end - t0).as_secs_f64(),
        };
        let usage = Usage {
            prompt_tokens: prompt.len(),
            completion_tokens: generated,
            cached_prompt_tokens: reused,
        };
        if req.use_prefix_cache {
            let held = cache.offset() as usize;
            history.truncate(held);
            self.prefix.put(history, cache);
        }
        let mut done = self.finish(finish, stop_token, usage, timings);
        done.stop_sequence = stop_sequence;
        let _ = events.send(Event::Done(done));
        Ok(())
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
