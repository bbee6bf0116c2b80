//! `switchyard pool show|set`: the loaded-model pool's configuration.

use super::Output;
use crate::app::{App, AppOptions};
use crate::error::Result;
use crate::settings::pool::{self, Eviction, Limit, PoolChange, PoolView, format_duration};
use crate::store::audit::Actor;
use clap::Subcommand;

#[derive(Debug, clap::Args)]
pub struct PoolArgs {
    #[command(subcommand)]
    cmd: PoolCmd,
}

#[derive(Debug, Subcommand)]
enum PoolCmd {
    /// Show the configuration and the memory budget on this machine
    Show,
    /// Change the configuration (only the options given)
    Set(SetArgs),
}

#[derive(Debug, clap::Args)]
struct SetArgs {
    /// Memory for loaded models: a percent of RAM (1–95%) or a size (GB = 2^30 bytes)
    #[arg(long, value_name = "75%|12GB", allow_hyphen_values = true)]
    limit: Option<String>,
    /// Which model to unload when room is needed: lru | lfu | ttl
    #[arg(long, value_name = "lru|lfu|ttl")]
    eviction: Option<String>,
    /// Unload models idle this long (30s, 15m, 2h, 1d); `off` to never unload idle ones
    #[arg(long, value_name = "15m|off", allow_hyphen_values = true)]
    ttl: Option<String>,
    /// Models to load at start, comma-separated (empty string for none)
    #[arg(long, value_name = "M,M")]
    preload: Option<String>,
    /// Generations a model runs together, their decode steps batched (1–64; applies to
    /// models loaded after the change)
    #[arg(long, value_name = "N")]
    batch: Option<usize>,
    /// Generations a model accepts at once, running and waiting; the next gets
    /// model_busy (batch–1024; applies to models loaded after the change)
    #[arg(long, value_name = "N")]
    queue: Option<usize>,
    /// Disk space for the prefix cache (KV of long prompts kept across unloads and
    /// restarts), all models together: 4GB, 512MB or off
    #[arg(long, value_name = "4GB|off", allow_hyphen_values = true)]
    disk_cache: Option<String>,
}

pub async fn run(opts: AppOptions, args: PoolArgs, out: &Output) -> Result<i32> {
    // Parse before opening the store: a typo must not even create the data dir.
    let change = match &args.cmd {
        PoolCmd::Show => None,
        PoolCmd::Set(a) => Some(PoolChange {
            limit: a.limit.as_deref().map(Limit::parse).transpose()?,
            eviction: a.eviction.as_deref().map(Eviction::parse).transpose()?,
            ttl: match a.ttl.as_deref().map(str::trim) {
                None => None,
                Some("off") | Some("none") => Some(None),
                Some(t) => Some(Some(pool::parse_duration(t)?)),
            },
            preload: a
                .preload
                .as_deref()
                .map(|p| p.split(',').map(str::to_string).collect()),
            batch: a.batch,
            queue: a.queue,
            disk_cache_bytes: a
                .disk_cache
                .as_deref()
                .map(pool::parse_disk_cache)
                .transpose()?,
        }),
    };
    let app = App::open(opts).await?;
    let view = match change {
        None => pool::show(&app).await?,
        Some(change) => pool::set(&app, Actor::Cli, change).await?,
    };
    if !out.json {
        for w in &view.warnings {
            eprintln!("warning[{}]: {}", w.code, w.message);
        }
    }
    out.print(&view, render);
    Ok(0)
}

fn gb(bytes: u64) -> String {
    format!("{:.1} GB", bytes as f64 / pool::GB as f64)
}

fn render(v: &PoolView) -> String {
    let limit = if v.limit_kind == "percent" {
        format!("{} of RAM", v.limit)
    } else {
        v.limit.clone()
    };
    let ttl = match v.ttl_seconds {
        Some(t) => format!("{} (unload models idle this long)", format_duration(t)),
        None => "off".into(),
    };
    let list = |l: &[String]| {
        if l.is_empty() {
            "none".to_string()
        } else {
            l.join(", ")
        }
    };
    let loaded = if !v.serving {
        "none (no gateway is running for this data dir)".to_string()
    } else if v.loaded.is_empty() {
        "none".to_string()
    } else {
        let mut t = String::new();
        for m in &v.loaded {
            let mut tags = Vec::new();
            if m.pinned {
                tags.push("pinned".to_string());
            }
            if m.busy {
                tags.push(format!("serving {}", m.in_flight));
            }
            t.push_str(&format!(
                "\n  {:<32} est {:>6} MB  measured {:>6} MB  ctx {:>6}  uses {:>5}{}",
                m.name,
                m.bytes_estimated / 1_000_000,
                m.bytes_measured / 1_000_000,
                m.context,
                m.uses,
                if tags.is_empty() {
                    String::new()
                } else {
                    format!("  ({})", tags.join(", "))
                }
            ));
        }
        t
    };
    let disk = if v.disk_cache_bytes == 0 {
        "off".to_string()
    } else {
        format!(
            "up to {} (KV of long prompts, kept across unloads)",
            gb(v.disk_cache_bytes)
        )
    };
    format!(
        "limit     {limit}\nbudget    {} ({} bytes) of {} physical RAM\neviction  {}\nidle ttl  {ttl}\npreload   {}\nbatch     {} generations per model together, {} accepted at once\nkv disk   {disk}\nloaded    {loaded}\n",
        gb(v.budget_bytes),
        v.budget_bytes,
        gb(v.physical_ram_bytes),
        v.eviction.as_str(),
        list(&v.preload),
        v.batch,
        v.queue,
    )
}
