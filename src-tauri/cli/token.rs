//! `switchyard token issue NAME | list | revoke ID | auth [on|off]`: the client tokens
//! that let the user's own tools call the gateway.

use super::Output;
use super::output::ago;
use crate::app::AppOptions;
use crate::error::Result;
use crate::store::audit::Actor;
use crate::tokens;

#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCommand {
    /// Issue a token for a client; it is printed this once and never again
    Issue {
        name: String,
        /// Model names it may use, as patterns (`*`, `?`), comma-separated; default: every model
        #[arg(long, value_delimiter = ',', value_name = "GLOB,...")]
        models: Vec<String>,
        /// Lifetime, e.g. 30d, 12h, 90m; default: no expiry
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// Every client: scopes, dates, state and usage (never the tokens)
    List,
    /// Revoke a client's token: refused from the next request on, in every running gateway
    Revoke { id: i64 },
    /// Whether loopback clients need a token (on by default; always on for a non-loopback address)
    Auth {
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
    },
}

fn day(ms: i64) -> String {
    crate::gateway::models::rfc3339((ms / 1000).max(0) as u64)
}

pub async fn run(opts: AppOptions, args: TokenArgs, out: &Output) -> Result<i32> {
    let app = super::open_app(opts).await?;
    match args.command {
        TokenCommand::Issue {
            name,
            models,
            expires,
        } => {
            let expires = expires.as_deref().map(tokens::parse_expiry).transpose()?;
            let issued = tokens::issue(&app, &name, &models, expires, Actor::Cli).await?;
            out.print(&issued, |i| {
                let scope = if i.scopes.is_empty() {
                    "every model".to_string()
                } else {
                    i.scopes.join(", ")
                };
                let until = i.expires_at.map_or("does not expire".to_string(), |e| {
                    format!("expires {}", day(e))
                });
                format!(
                    "{}\n\nClient token #{} {:?} ({scope}; {until}). It is shown this once: \
                     store it where your tool reads its API key.",
                    i.token, i.id, i.name
                )
            });
        }
        TokenCommand::List => {
            let list = tokens::list(&app.db).await?;
            let now = crate::store::now_ms();
            out.print(&list, |l| {
                if l.is_empty() {
                    return "No client tokens yet; `switchyard token issue NAME` makes one.".into();
                }
                let mut s = format!(
                    "{:<4} {:<20} {:<8} {:<24} {:<12} {:>8} {:>10} {:>10}  {}\n",
                    "ID",
                    "NAME",
                    "STATE",
                    "MODELS",
                    "LAST USED",
                    "REQS",
                    "TOK IN",
                    "TOK OUT",
                    "EXPIRES"
                );
                for c in l {
                    let models = if c.scopes.is_empty() {
                        "*".to_string()
                    } else {
                        c.scopes.join(",")
                    };
                    s.push_str(&format!(
                        "{:<4} {:<20} {:<8} {:<24} {:<12} {:>8} {:>10} {:>10}  {}\n",
                        c.id,
                        crate::gateway::log::printable(&c.name, 20),
                        c.state,
                        crate::gateway::log::printable(&models, 24),
                        ago(c.last_used_at, now),
                        c.requests,
                        c.tokens_in,
                        c.tokens_out,
                        c.expires_at.map_or("never".into(), day),
                    ));
                }
                s.trim_end().to_string()
            });
        }
        TokenCommand::Revoke { id } => {
            let r = tokens::revoke(&app, id, Actor::Cli).await?;
            out.print(&r, |r| {
                if r.already {
                    format!("Client token #{} {:?} was already revoked.", r.id, r.name)
                } else {
                    format!(
                        "Revoked client token #{} {:?}: running gateways refuse it from the next request.",
                        r.id, r.name
                    )
                }
            });
        }
        TokenCommand::Auth { state } => {
            let setting = match state.as_deref() {
                Some(s) => tokens::set_loopback_auth(&app, s == "on", Actor::Cli).await?,
                None => tokens::AuthSetting {
                    loopback_auth: tokens::loopback_auth(&app.db).await?,
                },
            };
            out.print(&setting, |s| {
                if s.loopback_auth {
                    "Client tokens are required (loopback included).".into()
                } else {
                    format!(
                        "warning: {}.\nTurn them back on with `switchyard token auth on`.",
                        tokens::AUTH_OFF_WARNING
                    )
                }
            });
        }
    }
    Ok(0)
}
