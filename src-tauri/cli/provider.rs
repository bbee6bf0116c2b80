//! `switchyard provider add|list|show|remove|test`.

use super::{Output, prompt};
use crate::app::AppOptions;
use crate::error::Result;
use crate::settings::providers::{self, KeyChange, Provider, ProviderInput, ProviderKind};
use crate::store::audit::Actor;

#[derive(Debug, clap::Args)]
pub struct ProviderArgs {
    #[command(subcommand)]
    cmd: ProviderCmd,
}

#[derive(Debug, clap::Subcommand)]
enum ProviderCmd {
    /// Add a provider, or update the one with this name. The API key is read from stdin
    /// (--api-key-stdin) or a hidden prompt on a terminal — never from the command line.
    Add {
        name: String,
        #[arg(long, value_enum)]
        kind: ProviderKind,
        /// The API's base URL, the part before /v1 [default: the kind's official API]
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        /// Read the API key from stdin
        #[arg(long)]
        api_key_stdin: bool,
        /// Remove the stored API key
        #[arg(long, conflicts_with = "api_key_stdin")]
        no_key: bool,
    },
    /// List providers (never their keys)
    List,
    /// Show one provider (never its key)
    Show { name: String },
    /// Remove a provider and its key (refused while routing rules use it)
    Remove { name: String },
    /// Check the provider's base URL and key: GET {base}/v1/models
    Test { name: String },
}

pub async fn run(opts: AppOptions, args: ProviderArgs, out: &Output) -> Result<i32> {
    let app = super::open_app(opts).await?;
    match args.cmd {
        ProviderCmd::Add {
            name,
            kind,
            base_url,
            api_key_stdin,
            no_key,
        } => {
            let key = if no_key {
                KeyChange::Clear
            } else if api_key_stdin {
                KeyChange::Set(prompt::secret_from_stdin("API key")?)
            } else if prompt::stdin_is_tty() {
                match prompt::secret_from_tty(&format!(
                    "API key for {name} (input hidden; Enter for none / keep the stored one)"
                ))? {
                    Some(k) => KeyChange::Set(k),
                    None => KeyChange::Keep,
                }
            } else {
                KeyChange::Keep
            };
            let outcome = providers::upsert(
                &app,
                Actor::Cli,
                ProviderInput {
                    name,
                    kind,
                    base_url,
                    key,
                },
            )
            .await?;
            out.print(&outcome, |o| {
                format!(
                    "{} provider {} ({}, {}); key {}",
                    if o.created { "added" } else { "updated" },
                    o.provider.name,
                    o.provider.kind.as_str(),
                    o.provider.base_url,
                    key_text(&o.provider, o.key)
                )
            });
        }
        ProviderCmd::List => {
            // --json: an array of providers with name, kind, base_url, has_key,
            // key_hint, last_test (interfaces.md) — `Provider` has no key to leak.
            let list = providers::list(&app).await?;
            out.print(&list, |l| render_list(l));
        }
        ProviderCmd::Show { name } => {
            let p = providers::get(&app, &name).await?;
            out.print(&p, render_one);
        }
        ProviderCmd::Remove { name } => {
            let p = providers::remove(&app, Actor::Cli, &name).await?;
            out.print(&serde_json::json!({ "removed": p }), |_| {
                format!("removed provider {}", p.name)
            });
        }
        ProviderCmd::Test { name } => {
            let t = providers::test(&app, Actor::Cli, &name).await?;
            if let Some(e) = t.error() {
                return Err(e);
            }
            out.print(&t, |t| {
                format!("ok  {}: {} in {} ms", t.name, t.message, t.latency_ms)
            });
        }
    }
    Ok(0)
}

fn key_text(p: &Provider, change: &str) -> String {
    let hint = p
        .key_hint
        .as_deref()
        .map(|h| format!(" (…{h})"))
        .unwrap_or_default();
    match change {
        "set" => format!("stored{hint}"),
        "kept" => format!("unchanged{hint}"),
        "cleared" => "removed".into(),
        _ => "none".into(),
    }
}

fn key_cell(p: &Provider) -> String {
    match (p.has_key, &p.key_hint) {
        (true, Some(h)) => format!("…{h}"),
        (true, None) => "yes".into(),
        (false, _) => "-".into(),
    }
}

fn test_cell(p: &Provider) -> String {
    match &p.last_test {
        Some(t) => t.result.clone(),
        None => "never".into(),
    }
}

/// The gateway's circuit breaker for the provider: `ok`, or `skipped` while open.
fn circuit_cell(p: &Provider) -> String {
    match &p.health {
        Some(h) if h.is_open() => {
            let left = h
                .open_until_ms
                .map(|u| (u - crate::store::now_ms()).max(0) / 1000)
                .unwrap_or(0);
            if left > 0 {
                format!("open {left}s")
            } else {
                "open (probing)".into()
            }
        }
        _ => "ok".into(),
    }
}

fn render_list(list: &[Provider]) -> String {
    if list.is_empty() {
        return "no providers (add one with `switchyard provider add NAME --kind openai --api-key-stdin`)".into();
    }
    let w = list.iter().map(|p| p.name.len()).max().unwrap_or(4).max(4);
    let mut s = format!(
        "{:<w$}  {:<17}  {:<6}  {:<20}  {:<14}  BASE URL\n",
        "NAME", "KIND", "KEY", "LAST TEST", "CIRCUIT"
    );
    for p in list {
        s.push_str(&format!(
            "{:<w$}  {:<17}  {:<6}  {:<20}  {:<14}  {}\n",
            p.name,
            p.kind.as_str(),
            key_cell(p),
            test_cell(p),
            circuit_cell(p),
            p.base_url
        ));
    }
    s
}

fn render_one(p: &Provider) -> String {
    let mut s = format!(
        "name:      {}\nkind:      {}\nbase url:  {}\nkey:       {}\n",
        p.name,
        p.kind.as_str(),
        p.base_url,
        key_cell(p)
    );
    match &p.last_test {
        Some(t) => s.push_str(&format!(
            "last test: {} — {}\n",
            t.result,
            t.message.as_deref().unwrap_or("")
        )),
        None => s.push_str("last test: never\n"),
    }
    if let Some(h) = &p.health {
        s.push_str(&format!(
            "circuit:   {} ({} failures in a row)\n",
            circuit_cell(p),
            h.failures
        ));
    }
    s
}
