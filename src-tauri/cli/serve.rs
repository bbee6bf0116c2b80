//! `switchyard serve`: the gateway without the desktop app. Prints the URL once it
//! accepts connections; stops cleanly on Ctrl-C / SIGTERM.

use super::Output;
use crate::app::AppOptions;
use crate::error::{Code, Error, Result};
use crate::gateway::{self, GatewayOptions, GatewayState};
use std::net::IpAddr;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (any other than loopback requires client tokens on every request)
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0 picks a free one)
    #[arg(long, default_value_t = crate::DEFAULT_PORT)]
    port: u16,
    /// Another name accepted in the Host header (repeatable), e.g. my-mac.local
    #[arg(long = "allow-host", value_name = "NAME")]
    allow_hosts: Vec<String>,
    /// How long an upstream may take to start answering, e.g. 90s, 5m
    #[arg(long, default_value = "5m", value_name = "DURATION")]
    upstream_timeout: String,
}

pub async fn run(opts: AppOptions, args: ServeArgs, out: &Output) -> Result<i32> {
    let started = std::time::Instant::now();
    let timeout = crate::settings::pool::parse_duration(&args.upstream_timeout).map_err(|e| {
        Error::new(
            Code::InvalidArgument,
            format!("--upstream-timeout: {}", e.message),
        )
    })?;
    let app = crate::app::App::open(opts).await?;
    let first_token = if !args.host.is_loopback() || crate::tokens::loopback_auth(&app.db).await? {
        crate::tokens::ensure_default(&app).await?
    } else {
        None
    };
    let mut options = GatewayOptions {
        allowed_hosts: args.allow_hosts,
        ..Default::default()
    };
    options.timeouts.first_byte = Duration::from_secs(timeout);
    let app_db = app.db.clone();
    let pool = crate::pool::Pool::start(&app);
    // `models load|unload` and `pool show` in other processes reach this pool.
    let _control = crate::pool::control::serve(&pool, app.data_dir());
    let state = GatewayState::new(app, options, pool).await?;
    let server = gateway::serve(state.clone(), args.host, args.port).await?;
    crate::models::discover::sync_in_background(&app_db);
    let url = server.url();
    let ready_ms = started.elapsed().as_secs_f64() * 1000.0;
    let auth = if state.auth.required() { "on" } else { "off" };
    out.print(
        &serde_json::json!({
            "url": url,
            "ready_ms": ready_ms,
            "auth": auth,
            "default_token": first_token,
        }),
        |_| {
            let mut s = format!(
                "Switchyard gateway listening on {url} (ready in {ready_ms:.0} ms); Ctrl-C stops it"
            );
            if let Some(t) = &first_token {
                s.push_str(&format!(
                    "\n\nFirst start: a client token named `default` was issued. It is shown this once:\n\n    {}\n\n\
                     Give it to your tools as their API key, e.g.\n    \
                     export OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY=<token>\n    \
                     export ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=<token>\n\
                     (`switchyard token issue NAME` makes more; `switchyard doctor` shows these settings again.)",
                    t.token
                ));
            }
            if auth == "off" {
                s.push_str(&format!("\nwarning: {}", crate::tokens::AUTH_OFF_WARNING));
            }
            s
        },
    );
    wait_for_signal().await;
    tracing::info!("shutting down");
    server.shutdown().await;
    Ok(0)
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
