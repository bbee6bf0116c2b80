//! `switchyard models list | import PATH | remove ID | load | unload | pin | unpin | set ID`.

use super::Output;
use crate::app::AppOptions;
use crate::error::{Code, Error, Result};
use crate::models::{self, ModelEntry, pull};
use crate::pool::LoadedModel;
use crate::pool::control;
use crate::pool::model_settings::{self, ModelChange};
use crate::store::audit::Actor;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// List registered models, and those in the Hugging Face cache and LM Studio's folder (used in place)
    List,
    /// Register a GGUF file or an MLX / Hugging Face model folder
    Import {
        /// A .gguf file or a folder with config.json, *.safetensors and tokenizer.json
        path: PathBuf,
        /// Name to register it under [default: the file or folder name]
        #[arg(long)]
        name: Option<String>,
    },
    /// Download a model from the Hugging Face Hub into the Hugging Face cache (HF_ENDPOINT, HF_TOKEN); resumes an interrupted pull
    Pull {
        /// ORG/NAME, e.g. mlx-community/SmolLM2-135M-Instruct-4bit
        repo: String,
        /// Branch, tag or commit [default: main]
        #[arg(long)]
        revision: Option<String>,
        /// Only files matching these globs (repeat or comma-separate), e.g. '*Q4_K_M.gguf' [default: the model's safetensors, JSON and tokenizer files, or its only GGUF file]
        #[arg(long, value_delimiter = ',')]
        include: Vec<String>,
    },
    /// Load a model into the running gateway's pool (making room by the eviction policy)
    Load {
        /// Model id or name
        id: String,
    },
    /// Unload a model from the running gateway's pool
    Unload {
        /// Model id or name
        id: String,
    },
    /// Keep a model loaded: never unloaded to make room or for idleness
    Pin {
        /// Model id or name
        id: String,
    },
    /// Let a pinned model be unloaded again
    Unpin {
        /// Model id or name
        id: String,
    },
    /// Per-model pool settings
    Set {
        /// Model id or name
        id: String,
        /// Unload after idle this long (30s, 15m, 2h, 1d), over the pool's TTL; `default` for the pool's
        #[arg(long, value_name = "15m|default")]
        ttl: Option<String>,
        /// Context length to serve and budget it with (tokens); `default` for the model's own up to 32768
        #[arg(long, value_name = "N|default")]
        context: Option<String>,
    },
    /// Remove a model from the registry (files outside the data dir are kept); refused while it is loaded or preloaded
    Remove {
        /// Model id or name
        id: String,
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(opts: AppOptions, cmd: ModelsCommand, out: &Output) -> Result<i32> {
    let app = super::open_app(opts).await?;
    match cmd {
        ModelsCommand::List => {
            models::discover::sync(&app.db).await?;
            let mut list = models::list(&app.db).await?;
            if let Some(loaded) = control::loaded(app.data_dir()).await? {
                for m in &mut list {
                    m.loaded = loaded.iter().any(|l| l.id == m.id);
                }
            }
            out.print(&list, |l| render_list(l));
        }
        ModelsCommand::Pull {
            repo,
            revision,
            include,
        } => {
            let spec = pull::PullSpec {
                repo,
                revision,
                include,
            };
            let hub = pull::Hub::from_env()?;
            let root = models::discover::hf_cache_root().ok_or_else(|| {
                Error::new(
                    Code::Io,
                    "no Hugging Face cache folder: set HF_HOME or HF_HUB_CACHE (or HOME)",
                )
            })?;
            let cancel = crate::engine::CancelToken::new();
            let c = cancel.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    c.cancel();
                }
            });
            let printer = ProgressPrinter::new();
            let done = pull::pull(
                &app.db,
                Actor::Cli,
                &hub,
                &root,
                &spec,
                &|p| printer.show(p),
                &cancel,
            )
            .await;
            printer.finish();
            let done = done?;
            out.print(&done, |d| {
                let mut s = format!(
                    "pulled {} at {} into {}: {} files, {} MB ({} MB downloaded, {} MB already there, {} MB resumed{})",
                    d.repo,
                    &d.commit[..12.min(d.commit.len())],
                    d.path,
                    d.files,
                    d.bytes_total / 1_000_000,
                    d.bytes_downloaded / 1_000_000,
                    d.bytes_reused / 1_000_000,
                    d.bytes_resumed / 1_000_000,
                    if d.retries > 0 {
                        format!(", {} dropped connections resumed", d.retries)
                    } else {
                        String::new()
                    }
                );
                for m in &d.models {
                    s.push_str(&format!("\n  model '{}' (id {}): {} {}", m.name, m.id, m.format, m.architecture));
                }
                if d.models.is_empty() {
                    s.push_str("\n  no runnable model among these files (see `switchyard models import` for why)");
                }
                s
            });
        }
        ModelsCommand::Load { id } => {
            let req = control::Request::Load { model: id };
            let v = control::call(app.data_dir(), &req)
                .await?
                .ok_or_else(|| control::not_running(app.data_dir()))?;
            let m: LoadedModel = serde_json::from_value(v)?;
            out.print(&m, |m| {
                format!(
                    "loaded '{}' ({} MB estimated, {} MB measured, context {})",
                    m.name,
                    m.bytes_estimated / 1_000_000,
                    m.bytes_measured / 1_000_000,
                    m.context
                )
            });
        }
        ModelsCommand::Unload { id } => {
            let req = control::Request::Unload { model: id };
            let v = control::call(app.data_dir(), &req)
                .await?
                .ok_or_else(|| control::not_running(app.data_dir()))?;
            let m: LoadedModel = serde_json::from_value(v)?;
            out.print(&m, |m| format!("unloaded '{}'", m.name));
        }
        ModelsCommand::Pin { ref id } | ModelsCommand::Unpin { ref id } => {
            let pin = matches!(cmd, ModelsCommand::Pin { .. });
            let change = ModelChange {
                pinned: Some(pin),
                ..Default::default()
            };
            let e = model_settings::change(&app.db, id, change, Actor::Cli).await?;
            out.print(&e, |e| {
                if e.pinned {
                    format!("pinned '{}': once loaded it stays loaded", e.name)
                } else {
                    format!("unpinned '{}'", e.name)
                }
            });
        }
        ModelsCommand::Set { id, ttl, context } => {
            let mut change = ModelChange::default();
            if let Some(t) = ttl.as_deref().map(str::trim) {
                change.ttl_seconds = Some(match t {
                    "default" => None,
                    t => Some(crate::settings::pool::parse_duration(t).map_err(|e| {
                        Error::new(Code::InvalidArgument, format!("--ttl: {}", e.message))
                    })?),
                });
            }
            if let Some(c) = context.as_deref().map(str::trim) {
                change.context = Some(match c {
                    "default" => None,
                    c => Some(c.parse::<u32>().map_err(|_| {
                        Error::new(
                            Code::InvalidArgument,
                            format!("--context {c:?}: give a number of tokens or `default`"),
                        )
                    })?),
                });
            }
            if change.ttl_seconds.is_none() && change.context.is_none() {
                return Err(Error::new(
                    Code::Usage,
                    "nothing to change: give --ttl and/or --context",
                ));
            }
            let e = model_settings::change(&app.db, &id, change, Actor::Cli).await?;
            out.print(&e, |e| {
                format!(
                    "'{}': idle ttl {}, context {}",
                    e.name,
                    e.ttl_seconds
                        .map(|t| crate::settings::pool::format_duration(t as u64))
                        .unwrap_or_else(|| "the pool's".into()),
                    e.context_override
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "the model's (up to 32768)".into())
                )
            });
        }
        ModelsCommand::Import { path, name } => {
            let entry = models::import(&app.db, &path, name, Actor::Cli).await?;
            out.print(&entry, |e| {
                format!(
                    "imported '{}' (id {}): {} {}, {}{}",
                    e.name,
                    e.id,
                    e.format,
                    e.architecture,
                    human_params(e.parameters, e.active_parameters),
                    e.quantization
                        .as_deref()
                        .map(|q| format!(", {q}"))
                        .unwrap_or_default()
                )
            });
        }
        ModelsCommand::Remove { id, yes } => {
            let m = models::find(&app.db, &id).await?.ok_or_else(|| {
                Error::new(
                    Code::ModelNotFound,
                    format!("no model '{id}' in the registry (see `switchyard models list`)"),
                )
            })?;
            crate::pool::check_removable(&app, &m).await?;
            if !yes
                && !confirm(&format!(
                    "Remove model '{}' (id {}) from the registry?",
                    m.name, m.id
                ))?
            {
                return Err(Error::new(Code::Cancelled, "not removed"));
            }
            let root = models::models_dir(app.data_dir());
            let removed = models::remove(&app.db, &root, &m.id.to_string(), Actor::Cli).await?;
            out.print(&removed, |e| format!("removed '{}' (id {})", e.name, e.id));
        }
    }
    Ok(0)
}

/// Ask on a TTY; without one, refuse rather than guess (interfaces.md).
fn confirm(question: &str) -> Result<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Error::new(
            Code::ConfirmationRequired,
            "this needs a confirmation: run it in a terminal or pass --yes",
        ));
    }
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    stdin.read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes"))
}

/// A parameter count as model names give it: `1.7B`, `135M`, or the number itself.
fn short_count(n: i64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.1}B", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.0}M", n as f64 / 1e6)
    } else {
        n.to_string()
    }
}

pub fn human_params(p: Option<i64>, active: Option<i64>) -> String {
    let n = short_count;
    match (p, active) {
        (Some(p), Some(a)) => format!("{} params ({} active)", n(p), n(a)),
        (Some(p), None) => format!("{} params", n(p)),
        (None, _) => "? params".into(),
    }
}

fn render_list(list: &[ModelEntry]) -> String {
    if list.is_empty() {
        return "no models registered; add one with `switchyard models import PATH` or `switchyard models pull ORG/NAME`".into();
    }
    let now = crate::store::now_ms();
    let mut s = format!(
        "{:<4} {:<36} {:<9} {:<5} {:<11} {:<12} {:<14} {:>9} {:>7} {:<14} {}\n",
        "ID",
        "NAME",
        "SOURCE",
        "FMT",
        "ARCH",
        "PARAMS",
        "QUANT",
        "SIZE",
        "CTX",
        "STATE",
        "LAST USED"
    );
    for m in list {
        let short = short_count;
        // Mixture of experts: total and active, as model names say it ("30B-A3B").
        let params = match (m.parameters, m.active_parameters) {
            (Some(n), Some(a)) => format!("{}-A{}", short(n), short(a)),
            (Some(n), None) => short(n),
            (None, _) => "-".into(),
        };
        let state = match (m.loaded, m.pinned) {
            (true, true) => "loaded, pinned",
            (true, false) => "loaded",
            (false, true) => "pinned",
            (false, false) => "-",
        };
        let used = super::output::ago(m.last_used_at, now);
        s.push_str(&format!(
            "{:<4} {:<36} {:<9} {:<5} {:<11} {:<12} {:<14} {:>7}MB {:>7} {:<14} {}\n",
            m.id,
            m.name,
            m.source.as_deref().unwrap_or("import"),
            m.format,
            m.architecture,
            params,
            m.quantization.as_deref().unwrap_or("-"),
            m.size_bytes / 1_000_000,
            m.context_length
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into()),
            state,
            used
        ));
    }
    s
}

/// Progress of a pull on stderr: one line rewritten in place on a terminal, otherwise a
/// line when a file starts or ends and at most one every 5 seconds in between.
struct ProgressPrinter {
    tty: bool,
    state: std::sync::Mutex<(Option<std::time::Instant>, u32)>,
}

impl ProgressPrinter {
    fn new() -> Self {
        ProgressPrinter {
            tty: std::io::stderr().is_terminal(),
            state: std::sync::Mutex::new((None, 0)),
        }
    }

    fn show(&self, p: &pull::PullProgress) {
        let line = format!(
            "{} {}/{} {}  {} / {} MB  {:.1} MB/s{}",
            p.repo,
            p.file_index,
            p.files,
            p.file,
            p.bytes_done / 1_000_000,
            p.bytes_total / 1_000_000,
            p.rate_bps as f64 / 1e6,
            p.eta_secs
                .map(|s| format!("  ETA {s}s"))
                .unwrap_or_default()
        );
        if self.tty {
            eprint!("\r\x1b[2K{line}");
            return;
        }
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = std::time::Instant::now();
        let new_file = p.file_index != st.1;
        if new_file
            || st
                .0
                .is_none_or(|t| now - t >= std::time::Duration::from_secs(5))
        {
            eprintln!("{line}");
            *st = (Some(now), p.file_index);
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
