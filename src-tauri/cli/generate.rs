//! `switchyard generate`: run a local model once, streaming the reply to stdout.

use super::Output;
use crate::app::AppOptions;
use crate::engine::{self, ChatMessage, Event, GenerateRequest, LoadOptions, SamplingParams};
use crate::error::{Code, Error, Result};
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["prompt", "messages", "prompts"])))]
pub struct GenerateArgs {
    /// A registered model (name or id) or a path to a .gguf file / model folder
    #[arg(long)]
    model: String,
    /// The user message
    #[arg(long)]
    prompt: Option<String>,
    /// A system message to put first (with --prompt)
    #[arg(long, requires = "prompt")]
    system: Option<String>,
    /// A JSON file with an array of {"role", "content"} messages
    #[arg(long, value_name = "FILE.json")]
    messages: Option<PathBuf>,
    /// A text file of user messages, one per line: all generated, --concurrency at once
    /// (batched), each printed when done, with the aggregate speed
    #[arg(long, value_name = "FILE")]
    prompts: Option<PathBuf>,
    /// With --prompts: how many run at once (default 1, at most 8)
    #[arg(long)]
    concurrency: Option<usize>,
    /// Send --prompt as it is, without the chat template
    #[arg(long)]
    raw: bool,
    /// 0 = greedy (deterministic)
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// 0 = off
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    /// 0 = off
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    /// 1 = off
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    #[arg(long)]
    seed: Option<u64>,
    /// Stop when this text appears (not printed); repeatable
    #[arg(long)]
    stop: Vec<String>,
}

/// The `--json` document (interfaces.md names the first seven fields).
#[derive(Debug, Serialize)]
pub struct GenerateReport {
    pub text: String,
    pub prompt_token_ids: Vec<u32>,
    pub token_ids: Vec<u32>,
    pub finish_reason: String,
    pub prompt_tokens_per_s: f64,
    pub generation_tokens_per_s: f64,
    pub peak_memory_bytes: u64,
    pub time_to_first_token_s: f64,
    pub usage: engine::Usage,
    pub model: String,
}

pub async fn run(opts: AppOptions, args: GenerateArgs, out: &Output) -> Result<i32> {
    if args.concurrency.is_some() && args.prompts.is_none() {
        return Err(Error::new(
            Code::Usage,
            "--concurrency applies to --prompts FILE (several prompts at once)",
        ));
    }
    if args.raw && args.messages.is_some() {
        return Err(Error::new(
            Code::InvalidArgument,
            "--raw applies to --prompt; --messages always uses the chat template",
        ));
    }
    if args.raw && args.system.is_some() {
        return Err(Error::new(
            Code::InvalidArgument,
            "--system needs the chat template; drop --raw or put it in the prompt",
        ));
    }
    let messages: Option<Vec<ChatMessage>> = match &args.messages {
        Some(f) => {
            let bytes = std::fs::read(f).map_err(|e| {
                Error::new(
                    Code::InvalidArgument,
                    format!("cannot read {}: {e}", f.display()),
                )
            })?;
            Some(serde_json::from_slice(&bytes).map_err(|e| {
                Error::new(
                    Code::InvalidArgument,
                    format!(
                        "{} is not a JSON array of {{\"role\", \"content\"}} messages: {e}",
                        f.display()
                    ),
                )
            })?)
        }
        None => None,
    };
    let sampling = SamplingParams {
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        min_p: args.min_p,
        repetition_penalty: args.repetition_penalty,
        seed: args.seed,
        ..Default::default()
    };
    sampling.validate()?;

    let app = super::open_app(opts).await?;
    let resolved = crate::models::resolve(&app.db, &args.model).await?;
    if let Some(file) = &args.prompts {
        return run_many(&app, &resolved, file, &args, sampling, out).await;
    }
    let model = engine::load(&resolved.path, LoadOptions::default()).await?;

    let prompt_ids = match (&messages, &args.prompt) {
        (Some(msgs), _) => model.chat_prompt(msgs, None)?,
        (None, Some(p)) if args.raw => model.tokenize(p, true)?,
        (None, Some(p)) => {
            let mut msgs = Vec::new();
            if let Some(s) = &args.system {
                msgs.push(ChatMessage::new("system", s.clone()));
            }
            msgs.push(ChatMessage::new("user", p.clone()));
            model.chat_prompt(&msgs, None)?
        }
        (None, None) => return Err(Error::new(Code::Usage, "give --prompt or --messages")),
    };
    let mut req = GenerateRequest::new(prompt_ids.clone());
    req.max_tokens = args.max_tokens;
    req.sampling = sampling;
    req.stop = args.stop.clone();
    req.use_prefix_cache = false;
    let mut generation = model.generate(req)?;
    let cancel = generation.cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    });

    let mut text = String::new();
    let mut token_ids = Vec::new();
    let mut stdout = std::io::stdout();
    let done = loop {
        match generation.events.recv().await {
            Some(Event::Token(t)) => {
                if !out.json && !t.text.is_empty() {
                    let _ = stdout.write_all(t.text.as_bytes());
                    let _ = stdout.flush();
                }
                text.push_str(&t.text);
                token_ids.push(t.token_id);
            }
            Some(Event::Done(d)) => break d,
            Some(Event::Error(e)) => return Err(e),
            None => return Err(Error::new(Code::Engine, "the engine stopped unexpectedly")),
        }
    };
    if let Some(entry) = &resolved.entry {
        crate::models::touch(&app.db, entry.id).await?;
    }
    let report = GenerateReport {
        text,
        prompt_token_ids: prompt_ids,
        token_ids,
        finish_reason: done.finish_reason.as_str().to_string(),
        prompt_tokens_per_s: done.timings.prompt_tokens_per_s,
        generation_tokens_per_s: done.timings.generation_tokens_per_s,
        peak_memory_bytes: done.peak_memory_bytes,
        time_to_first_token_s: done.timings.time_to_first_token_s,
        usage: done.usage,
        model: resolved
            .entry
            .as_ref()
            .map(|e| e.name.clone())
            .unwrap_or_else(|| resolved.path.display().to_string()),
    };
    if out.json {
        out.print(&report, |_| String::new());
    } else {
        println!();
        eprintln!(
            "[{}: {} prompt tokens at {:.1} tok/s, {} generated at {:.1} tok/s, peak {:.0} MB]",
            report.finish_reason,
            report.usage.prompt_tokens,
            report.prompt_tokens_per_s,
            report.usage.completion_tokens,
            report.generation_tokens_per_s,
            report.peak_memory_bytes as f64 / 1e6
        );
    }
    Ok(if done.finish_reason == engine::FinishReason::Cancelled {
        Code::Cancelled.exit_code()
    } else {
        0
    })
}

/// One prompt's answer in `generate --prompts`.
#[derive(Debug, Serialize)]
pub struct ManyItem {
    pub index: usize,
    pub text: String,
    pub token_ids: Vec<u32>,
    pub finish_reason: String,
}

/// The `--json` document of `generate --prompts`.
#[derive(Debug, Serialize)]
pub struct ManyReport {
    pub model: String,
    pub concurrency: usize,
    pub results: Vec<ManyItem>,
    pub generation_tokens: usize,
    pub wall_s: f64,
    /// Generated tokens of all prompts over the wall time.
    pub aggregate_tokens_per_s: f64,
    pub largest_batch: usize,
}

/// `generate --prompts FILE --concurrency N`: every line of FILE as a user message,
/// N in flight at once on one loaded model (its decode steps batched).
async fn run_many(
    app: &crate::app::App,
    resolved: &crate::models::Resolved,
    file: &std::path::Path,
    args: &GenerateArgs,
    sampling: SamplingParams,
    out: &Output,
) -> Result<i32> {
    if args.raw || args.system.is_some() {
        return Err(Error::new(
            Code::InvalidArgument,
            "--prompts takes one user message per line; --raw and --system do not apply",
        ));
    }
    let text = std::fs::read_to_string(file).map_err(|e| {
        Error::new(
            Code::InvalidArgument,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    let prompts: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if prompts.is_empty() {
        return Err(Error::new(
            Code::InvalidArgument,
            format!("{} has no prompts (one per line)", file.display()),
        ));
    }
    let concurrency = args
        .concurrency
        .unwrap_or(1)
        .clamp(1, engine::DEFAULT_MAX_BATCH);
    let model = engine::load(
        &resolved.path,
        LoadOptions {
            max_queued: concurrency,
            max_batch: concurrency,
            ..Default::default()
        },
    )
    .await?;
    let mut requests = Vec::with_capacity(prompts.len());
    for p in &prompts {
        let ids = model.chat_prompt(&[ChatMessage::new("user", (*p).to_string())], None)?;
        let mut req = GenerateRequest::new(ids);
        req.max_tokens = args.max_tokens;
        req.sampling = sampling.clone();
        req.stop = args.stop.clone();
        req.use_prefix_cache = false;
        requests.push(req);
    }
    let started = std::time::Instant::now();
    let mut pending = requests.into_iter().enumerate();
    let mut running = tokio::task::JoinSet::new();
    let mut results = Vec::new();
    loop {
        while running.len() < concurrency {
            let Some((i, req)) = pending.next() else {
                break;
            };
            let g = model.generate(req)?;
            running.spawn(async move { (i, g.collect().await) });
        }
        let Some(done) = running.join_next().await else {
            break;
        };
        let (i, collected) =
            done.map_err(|e| Error::internal(format!("a generation task failed: {e}")))?;
        let c = collected?;
        let finish = c
            .done
            .as_ref()
            .map(|d| d.finish_reason.as_str().to_string())
            .unwrap_or_default();
        if !out.json {
            println!("[{}] {}", i + 1, c.text.trim());
        }
        results.push(ManyItem {
            index: i,
            text: c.text,
            token_ids: c.token_ids,
            finish_reason: finish,
        });
    }
    results.sort_by_key(|r| r.index);
    let wall_s = started.elapsed().as_secs_f64();
    let generation_tokens: usize = results.iter().map(|r| r.token_ids.len()).sum();
    if let Some(entry) = &resolved.entry {
        crate::models::touch(&app.db, entry.id).await?;
    }
    let report = ManyReport {
        model: resolved
            .entry
            .as_ref()
            .map(|e| e.name.clone())
            .unwrap_or_else(|| resolved.path.display().to_string()),
        concurrency,
        results,
        generation_tokens,
        wall_s,
        aggregate_tokens_per_s: generation_tokens as f64 / wall_s.max(1e-9),
        largest_batch: model.largest_batch(),
    };
    if out.json {
        out.print(&report, |_| String::new());
    } else {
        eprintln!(
            "[{} prompts, {} at once: {} tokens in {:.1} s = {:.1} tok/s aggregate]",
            report.results.len(),
            concurrency,
            generation_tokens,
            wall_s,
            report.aggregate_tokens_per_s
        );
    }
    Ok(0)
}
