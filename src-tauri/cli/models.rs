//! `switchyard models list | import PATH | remove ID`.

use super::Output;
use crate::app::AppOptions;
use crate::error::{Code, Error, Result};
use crate::models::{self, ModelEntry};
use crate::store::audit::Actor;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// List registered models
    List,
    /// Register a GGUF file or an MLX / Hugging Face model folder
    Import {
        /// A .gguf file or a folder with config.json, *.safetensors and tokenizer.json
        path: PathBuf,
        /// Name to register it under [default: the file or folder name]
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a model from the registry (files outside the data dir are kept)
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
            let list = models::list(&app.db).await?;
            out.print(&list, |l| render_list(l));
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
                    human_params(e.parameters),
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

pub fn human_params(p: Option<i64>) -> String {
    match p {
        Some(n) if n >= 1_000_000_000 => format!("{:.1}B params", n as f64 / 1e9),
        Some(n) if n >= 1_000_000 => format!("{:.0}M params", n as f64 / 1e6),
        Some(n) => format!("{n} params"),
        None => "? params".into(),
    }
}

fn render_list(list: &[ModelEntry]) -> String {
    if list.is_empty() {
        return "no models registered; add one with `switchyard models import PATH`".into();
    }
    let mut s = format!(
        "{:<4} {:<36} {:<5} {:<8} {:<8} {:<14} {:>9} {:>7}\n",
        "ID", "NAME", "FMT", "ARCH", "PARAMS", "QUANT", "SIZE", "CTX"
    );
    for m in list {
        let params = match m.parameters {
            Some(n) if n >= 1_000_000_000 => format!("{:.1}B", n as f64 / 1e9),
            Some(n) => format!("{:.0}M", n as f64 / 1e6),
            None => "-".into(),
        };
        s.push_str(&format!(
            "{:<4} {:<36} {:<5} {:<8} {:<8} {:<14} {:>7}MB {:>7}\n",
            m.id,
            m.name,
            m.format,
            m.architecture,
            params,
            m.quantization.as_deref().unwrap_or("-"),
            m.size_bytes / 1_000_000,
            m.context_length
                .map(|c| c.to_string())
                .unwrap_or_else(|| "-".into())
        ));
    }
    s
}
