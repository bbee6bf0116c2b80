//! `switchyard logs`: the request log (never prompt text, never keys).

use super::Output;
use crate::app::AppOptions;
use crate::error::Result;
use crate::gateway::log;

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// How many of the newest requests to show
    #[arg(long, default_value_t = 20)]
    tail: u64,
}

pub async fn run(opts: AppOptions, args: LogsArgs, out: &Output) -> Result<i32> {
    let app = crate::app::App::open(opts).await?;
    let rows = log::tail(&app.db, args.tail).await?;
    let json: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "id": r.id, "ts": r.ts, "protocol": r.protocol, "endpoint": r.endpoint,
                "requested_model": r.requested_model, "rule_id": r.rule_id, "backend": r.backend,
                "upstream_model": r.upstream_model, "status": r.status, "latency_ms": r.latency_ms,
                "ttfb_ms": r.ttfb_ms, "tokens_in": r.tokens_in, "tokens_out": r.tokens_out,
                "fallback": r.fallback, "fallback_reason": r.fallback_reason, "error_code": r.error_code, "stream": r.stream,
            })
        })
        .collect();
    out.print(&json, |_| {
        if rows.is_empty() {
            return "no requests logged yet".to_string();
        }
        let mut s = format!(
            "{:<24} {:<9} {:<28} {:<16} {:>6} {:>9} {:>11}  {}\n",
            "time (UTC)", "protocol", "model", "backend", "status", "ms", "tokens", "notes"
        );
        for r in &rows {
            let mut notes = Vec::new();
            if r.fallback {
                notes.push(match &r.fallback_reason {
                    Some(why) => format!("fallback ({why})"),
                    None => "fallback".to_string(),
                });
            }
            if r.stream {
                notes.push("stream".to_string());
            }
            if let Some(c) = &r.error_code {
                notes.push(c.clone());
            }
            s.push_str(&format!(
                "{:<24} {:<9} {:<28} {:<16} {:>6} {:>9.1} {:>11}  {}\n",
                crate::store::format_ts(r.ts),
                r.protocol,
                truncate(r.requested_model.as_deref().unwrap_or("-"), 28),
                truncate(r.backend.as_deref().unwrap_or("-"), 16),
                r.status,
                r.latency_ms,
                format!("{}/{}", r.tokens_in.unwrap_or(0), r.tokens_out.unwrap_or(0)),
                notes.join(",")
            ));
        }
        s
    });
    Ok(0)
}

fn truncate(s: &str, n: usize) -> String {
    crate::gateway::log::printable(s, n)
}
