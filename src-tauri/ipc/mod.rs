//! What crosses the boundary between the desktop UI and the core, minus Tauri itself.
//!
//! `desktop/commands.rs` is a list of thin adapters; everything here is plain Rust so
//! that it builds and is tested without the webview (`--no-default-features`):
//!
//! - the command inputs the UI sends, and their conversion into the inputs of the same
//!   services the CLI calls (`ProviderUpsert` → [`ProviderInput`], …);
//! - the gateway the desktop app runs, and its status as the Dashboard and the tray
//!   show it ([`GatewayStatus`], [`start_gateway`], [`tray`]);
//! - the confirmed root rotation ([`rotate_root_confirmed`]);
//! - in tests, the TypeScript bindings of all of these and of the service types the
//!   commands return (`bindings.rs`), with a drift check against `ui/src/lib/bindings/`.

#[cfg(test)]
mod bindings;
pub mod tray;

use crate::app::{App, SharedApp};
use crate::error::{Code, Error, Result};
use crate::gateway::{self, GatewayOptions, GatewayState, Server};
use crate::routing::MatchType;
use crate::settings::pool::{self, Eviction, Limit, PoolChange};
use crate::settings::providers::{KeyChange, ProviderInput, ProviderKind};
use crate::settings::rules::{NewRule, RulePatch, TargetName};
use crate::store::audit::Actor;
use crate::vault::{RootRotation, SecretString};
use serde::{Deserialize, Deserializer, Serialize};
use std::net::{IpAddr, Ipv4Addr};

/// The environment variable that picks the desktop app's gateway port.
pub const GATEWAY_PORT_ENV: &str = "SWITCHYARD_GATEWAY_PORT";

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))`. With
/// `#[serde(default)]` this tells "leave as is" from "clear" in a patch.
fn present<'de, D, T>(d: D) -> std::result::Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

// ------------------------------------------------------------------ providers

/// An API key typed into the UI. It goes straight into a zeroizing [`SecretString`]
/// and has no `Serialize`: the UI can send a key, nothing can send one back.
pub struct KeyInput(SecretString);

impl std::fmt::Debug for KeyInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyInput(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for KeyInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(KeyInput(SecretString::new(String::deserialize(d)?)))
    }
}

/// `provider_upsert`: add a provider, or update the one with this name.
#[derive(Debug, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct ProviderUpsert {
    pub name: String,
    pub kind: ProviderKind,
    /// `null` = the kind's official API (required for `openai-compatible`).
    pub base_url: Option<String>,
    /// A new API key, or `null` to keep the stored one.
    #[cfg_attr(test, ts(type = "string | null"))]
    pub api_key: Option<KeyInput>,
    /// Remove the stored key (only with `api_key: null`).
    pub clear_key: bool,
}

impl ProviderUpsert {
    pub fn into_input(self) -> Result<ProviderInput> {
        let key = match (self.api_key, self.clear_key) {
            (Some(_), true) => {
                return Err(Error::invalid(
                    "give a new API key or remove the stored one, not both",
                ));
            }
            (Some(k), false) => KeyChange::Set(k.0),
            (None, true) => KeyChange::Clear,
            (None, false) => KeyChange::Keep,
        };
        let base_url = self.base_url.filter(|u| !u.trim().is_empty());
        Ok(ProviderInput {
            name: self.name.trim().to_string(),
            kind: self.kind,
            base_url,
            key,
        })
    }
}

// ------------------------------------------------------------------ rules

/// `local` or a provider name; an empty or blank value means none (for fallbacks).
fn target(s: &str) -> Result<TargetName> {
    TargetName::parse(s)
}

/// An optional text field of a form: blank means none.
fn non_blank(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

/// `rule_add`: a new rule, at the end or at `position`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    pub pattern: String,
    #[serde(rename = "match")]
    pub match_type: MatchType,
    /// `local` or a provider name.
    pub target: String,
    /// The model name to ask the target for; `null` = the requested name.
    pub model: Option<String>,
    /// `local`, a provider name, or `null`.
    pub fallback: Option<String>,
    pub enabled: bool,
    /// Where to insert (0 = first); `null` = at the end.
    pub position: Option<i64>,
}

impl RuleInput {
    pub fn into_new_rule(self) -> Result<NewRule> {
        Ok(NewRule {
            pattern: self.pattern,
            match_type: self.match_type,
            target: target(&self.target)?,
            model: non_blank(self.model),
            fallback: non_blank(self.fallback)
                .as_deref()
                .map(target)
                .transpose()?,
            enabled: self.enabled,
            position: self.position,
        })
    }
}

/// `rule_update`: the fields to change. A missing field stays as it is; for `model`
/// and `fallback`, `null` clears the value.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct RuleUpdate {
    #[cfg_attr(test, ts(optional))]
    pub pattern: Option<String>,
    #[serde(rename = "match")]
    #[cfg_attr(test, ts(optional))]
    pub match_type: Option<MatchType>,
    #[cfg_attr(test, ts(optional))]
    pub target: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(test, ts(optional, type = "string | null"))]
    pub model: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(test, ts(optional, type = "string | null"))]
    pub fallback: Option<Option<String>>,
    #[cfg_attr(test, ts(optional))]
    pub enabled: Option<bool>,
}

impl RuleUpdate {
    pub fn into_patch(self) -> Result<RulePatch> {
        Ok(RulePatch {
            pattern: self.pattern,
            match_type: self.match_type,
            target: self.target.as_deref().map(target).transpose()?,
            model: self.model.map(non_blank),
            fallback: match self.fallback {
                None => None,
                Some(f) => Some(non_blank(f).as_deref().map(target).transpose()?),
            },
            enabled: self.enabled,
        })
    }
}

// ------------------------------------------------------------------ pool

/// `pool_set`: the settings to change; a missing field stays as it is.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct PoolSet {
    /// `75%` (of RAM) or `12GB`, as on the command line.
    #[cfg_attr(test, ts(optional))]
    pub limit: Option<String>,
    #[cfg_attr(test, ts(optional))]
    pub eviction: Option<Eviction>,
    /// `30s`, `15m`, `2h`, `1d`; `null` = never unload idle models.
    #[serde(default, deserialize_with = "present")]
    #[cfg_attr(test, ts(optional, type = "string | null"))]
    pub ttl: Option<Option<String>>,
    #[cfg_attr(test, ts(optional))]
    pub preload: Option<Vec<String>>,
    /// Generations a model runs together (1–64).
    #[cfg_attr(test, ts(optional))]
    pub batch: Option<usize>,
    /// Generations a model accepts at once, running and waiting (batch–1024).
    #[cfg_attr(test, ts(optional))]
    pub queue: Option<usize>,
    /// The prefix cache on disk: `4GB`, `512MB` or `off`.
    #[cfg_attr(test, ts(optional))]
    pub disk_cache: Option<String>,
}

impl PoolSet {
    pub fn into_change(self) -> Result<PoolChange> {
        Ok(PoolChange {
            limit: self.limit.as_deref().map(Limit::parse).transpose()?,
            eviction: self.eviction,
            ttl: match self.ttl {
                None => None,
                Some(t) => Some(
                    non_blank(t)
                        .as_deref()
                        .map(pool::parse_duration)
                        .transpose()?,
                ),
            },
            preload: self.preload,
            batch: self.batch,
            queue: self.queue,
            disk_cache_bytes: self
                .disk_cache
                .as_deref()
                .map(pool::parse_disk_cache)
                .transpose()?,
        })
    }
}

// ------------------------------------------------------------------ keys

/// `keys_rotate_root` from the UI: the user confirmed replacing the root whose
/// fingerprint they were shown (`None`: there was no root yet). If the root changed
/// in the meantime (another window, the CLI), the confirmation is for a different
/// root and the rotation is refused with `confirmation_required`.
pub async fn rotate_root_confirmed(
    app: &crate::app::App,
    actor: Actor,
    confirmed_fingerprint: Option<&str>,
) -> Result<RootRotation> {
    let current = app.vault.fingerprint(&app.db).await?;
    if current.as_deref() != confirmed_fingerprint {
        return Err(Error::new(
            Code::ConfirmationRequired,
            format!(
                "the root secret's fingerprint is {}, not the {} that was confirmed; review it and confirm again",
                current.as_deref().unwrap_or("(none yet)"),
                confirmed_fingerprint.unwrap_or("(none)")
            ),
        ));
    }
    app.vault.rotate_root(&app.db, actor).await
}

// ------------------------------------------------------------------ client tokens

/// `token_issue`: as `switchyard token issue NAME [--models GLOB,…] [--expires 30d]`.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(deny_unknown_fields)]
pub struct TokenIssue {
    pub name: String,
    /// Model name patterns (`*`, `?`); empty = every model.
    #[serde(default)]
    pub models: Vec<String>,
    /// `30d`, `12h`, `90m`; `null` = no expiry.
    #[serde(default)]
    pub expires: Option<String>,
}

/// Issue a token from the window's form (the token is in the answer, shown once).
pub async fn issue_token(app: &App, input: &TokenIssue) -> Result<crate::tokens::Issued> {
    let expires = match input.expires.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(e) => Some(
            crate::tokens::parse_expiry(e)
                .map_err(|err| Error::invalid(err.message.replace("--expires ", "expiry ")))?,
        ),
    };
    crate::tokens::issue(app, &input.name, &input.models, expires, Actor::Ui).await
}

// ------------------------------------------------------------------ requests

/// One request as the Dashboard lists it (a request-log row; never prompt text).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RequestRow {
    /// When it started, unix ms.
    pub ts: i64,
    pub protocol: String,
    pub endpoint: String,
    pub model: Option<String>,
    pub rule_id: Option<i64>,
    pub backend: Option<String>,
    pub upstream_model: Option<String>,
    pub status: i64,
    pub latency_ms: f64,
    pub tokens_in: Option<i64>,
    pub tokens_out: Option<i64>,
    pub fallback: bool,
    pub error_code: Option<String>,
    pub client_id: Option<i64>,
    pub stream: bool,
}

impl From<&crate::gateway::log::Entry> for RequestRow {
    fn from(e: &crate::gateway::log::Entry) -> Self {
        RequestRow {
            ts: e.ts,
            protocol: e.protocol.into(),
            endpoint: e.endpoint.into(),
            model: e.requested_model.clone(),
            rule_id: e.rule_id,
            backend: e.backend.clone(),
            upstream_model: e.upstream_model.clone(),
            status: e.status.into(),
            latency_ms: e.latency_ms,
            tokens_in: e.tokens_in.map(|n| n as i64),
            tokens_out: e.tokens_out.map(|n| n as i64),
            fallback: e.fallback,
            error_code: e.error_code.map(String::from),
            client_id: e.client_id,
            stream: e.stream,
        }
    }
}

impl From<crate::store::entities::request_log::Model> for RequestRow {
    fn from(m: crate::store::entities::request_log::Model) -> Self {
        RequestRow {
            ts: m.ts,
            protocol: m.protocol,
            endpoint: m.endpoint,
            model: m.requested_model,
            rule_id: m.rule_id,
            backend: m.backend,
            upstream_model: m.upstream_model,
            status: m.status,
            latency_ms: m.latency_ms,
            tokens_in: m.tokens_in,
            tokens_out: m.tokens_out,
            fallback: m.fallback,
            error_code: m.error_code,
            client_id: m.client_id,
            stream: m.stream,
        }
    }
}

/// The newest `limit` requests (at most 200), newest first.
pub async fn recent_requests(app: &App, limit: u32) -> Result<Vec<RequestRow>> {
    let rows = crate::gateway::log::newest(&app.db, u64::from(limit.clamp(1, 200))).await?;
    Ok(rows.into_iter().map(RequestRow::from).collect())
}

// ------------------------------------------------------------------ gateway

/// The desktop app's gateway, as the Dashboard and the tray show it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum GatewayStatus {
    /// Binding; lasts milliseconds.
    Starting { host: String, port: u16 },
    /// Listening at `url` (`port` is the bound one, also when 0 was asked for).
    Running {
        url: String,
        host: String,
        port: u16,
    },
    /// Not listening: `port_in_use`, `invalid_argument` (a bad port setting), …
    Failed {
        host: String,
        port: u16,
        error: Error,
    },
    /// Stopped by the user (tray or window); `port` is where it will listen again.
    Stopped { host: String, port: u16 },
}

/// The desktop gateway's port: `SWITCHYARD_GATEWAY_PORT` (0 = any free port), else 8399.
pub fn gateway_port(env: Option<&str>) -> Result<u16> {
    match env.map(str::trim) {
        None | Some("") => Ok(crate::DEFAULT_PORT),
        Some(v) => v.parse::<u16>().map_err(|_| {
            Error::invalid(format!(
                "{GATEWAY_PORT_ENV}={v:?} is not a port number (0–65535; 0 picks a free port)"
            ))
        }),
    }
}

/// Start the gateway on 127.0.0.1 with the port from `port_env` (the value of
/// [`GATEWAY_PORT_ENV`]). Never fails: a gateway that cannot start is a status the
/// user sees, while the rest of the app works. Returns the server to keep (dropping
/// it stops the gateway) and, on the first start that needs tokens, the `default`
/// token to show the user once.
pub async fn start_gateway(
    app: SharedApp,
    port_env: Option<&str>,
) -> (GatewayStatus, Option<Server>, Option<crate::tokens::Issued>) {
    let host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let port = match gateway_port(port_env) {
        Ok(p) => p,
        Err(error) => {
            return (
                GatewayStatus::Failed {
                    host: host.to_string(),
                    port: crate::DEFAULT_PORT,
                    error,
                },
                None,
                None,
            );
        }
    };
    let first_token = async {
        if crate::tokens::loopback_auth(&app.db).await? {
            crate::tokens::ensure_default(&app).await
        } else {
            Ok(None)
        }
    };
    let first_token = match first_token.await {
        Ok(t) => t,
        Err(error) => {
            let status = GatewayStatus::Failed {
                host: host.to_string(),
                port,
                error,
            };
            return (status, None, None);
        }
    };
    let pool = crate::pool::Pool::start(&app);
    let control = crate::pool::control::serve(&pool, app.data_dir());
    let db = app.db.clone();
    let started = async {
        let state = GatewayState::new(app, GatewayOptions::default(), pool).await?;
        gateway::serve(state, host, port).await
    };
    match started.await {
        Ok(mut server) => {
            server.attach_control(control);
            crate::models::discover::sync_in_background(&db);
            (
                GatewayStatus::Running {
                    url: server.url(),
                    host: host.to_string(),
                    port: server.addr.port(),
                },
                Some(server),
                first_token,
            )
        }
        Err(error) => (
            GatewayStatus::Failed {
                host: host.to_string(),
                port,
                error,
            },
            None,
            first_token,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{App, AppOptions};
    use crate::vault::BackendKind;

    async fn open() -> (tempfile::TempDir, SharedApp) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::open(AppOptions {
            data_dir: Some(dir.path().to_path_buf()),
            vault: BackendKind::File,
        })
        .await
        .unwrap();
        (dir, app)
    }

    #[test]
    fn a_key_from_the_ui_is_kept_secret_and_maps_to_the_key_change() {
        let json = r#"{"name":" openai ","kind":"openai","base_url":"  ","api_key":"sk-test-xyz-0123456789","clear_key":false}"#;
        let u: ProviderUpsert = serde_json::from_str(json).unwrap();
        assert!(!format!("{u:?}").contains("sk-test"), "{u:?}");
        let input = u.into_input().unwrap();
        assert_eq!(input.name, "openai");
        assert_eq!(
            input.base_url, None,
            "a blank base URL is the kind's default"
        );
        assert!(matches!(&input.key, KeyChange::Set(k) if k.expose() == "sk-test-xyz-0123456789"));

        let keep: ProviderUpsert = serde_json::from_str(
            r#"{"name":"a","kind":"openai-compatible","base_url":"http://127.0.0.1:9","api_key":null,"clear_key":false}"#,
        )
        .unwrap();
        assert!(matches!(keep.into_input().unwrap().key, KeyChange::Keep));
        let clear: ProviderUpsert = serde_json::from_str(
            r#"{"name":"a","kind":"openai","base_url":null,"api_key":null,"clear_key":true}"#,
        )
        .unwrap();
        assert!(matches!(clear.into_input().unwrap().key, KeyChange::Clear));
        let both: ProviderUpsert = serde_json::from_str(
            r#"{"name":"a","kind":"openai","base_url":null,"api_key":"k","clear_key":true}"#,
        )
        .unwrap();
        assert_eq!(both.into_input().unwrap_err().code, Code::InvalidArgument);
    }

    #[test]
    fn unknown_fields_and_kinds_are_refused() {
        assert!(
            serde_json::from_str::<ProviderUpsert>(
                r#"{"name":"a","kind":"openai","base_url":null,"api_key":null,"clear_key":false,"key":"x"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<ProviderUpsert>(
                r#"{"name":"a","kind":"azure","base_url":null,"api_key":null,"clear_key":false}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<RuleUpdate>(r#"{"position":3}"#).is_err());
    }

    #[test]
    fn rule_inputs_become_the_services_inputs() {
        let r: RuleInput = serde_json::from_str(
            r#"{"pattern":"gpt-","match":"prefix","target":"openai","model":"  ","fallback":"local","enabled":true,"position":null}"#,
        )
        .unwrap();
        let n = r.into_new_rule().unwrap();
        assert_eq!(n.match_type, MatchType::Prefix);
        assert_eq!(n.target, TargetName::Provider("openai".into()));
        assert_eq!(n.model, None, "a blank model is no rename");
        assert_eq!(n.fallback, Some(TargetName::Local));
        let bad: RuleInput = serde_json::from_str(
            r#"{"pattern":"x","match":"exact","target":" ","model":null,"fallback":null,"enabled":true,"position":null}"#,
        )
        .unwrap();
        assert_eq!(bad.into_new_rule().unwrap_err().code, Code::InvalidArgument);
    }

    #[test]
    fn rule_updates_tell_keep_from_clear() {
        let keep: RuleUpdate = serde_json::from_str(r#"{"pattern":"a"}"#).unwrap();
        let p = keep.into_patch().unwrap();
        assert_eq!(p.pattern.as_deref(), Some("a"));
        assert_eq!(p.model, None);
        assert_eq!(p.fallback, None);
        let clear: RuleUpdate =
            serde_json::from_str(r#"{"model":null,"fallback":null,"enabled":false}"#).unwrap();
        let p = clear.into_patch().unwrap();
        assert_eq!(p.model, Some(None));
        assert_eq!(p.fallback, Some(None));
        assert_eq!(p.enabled, Some(false));
        let set: RuleUpdate =
            serde_json::from_str(r#"{"model":"m2","fallback":"local","target":"local"}"#).unwrap();
        let p = set.into_patch().unwrap();
        assert_eq!(p.model, Some(Some("m2".into())));
        assert_eq!(p.fallback, Some(Some(TargetName::Local)));
        assert_eq!(p.target, Some(TargetName::Local));
        assert!(
            RuleUpdate::default().into_patch().unwrap().is_empty(),
            "an empty update is refused by the service as nothing to change"
        );
    }

    #[test]
    fn pool_inputs_parse_like_the_command_line() {
        let s: PoolSet = serde_json::from_str(
            r#"{"limit":"12GB","eviction":"ttl","ttl":"15m","preload":["a","b"]}"#,
        )
        .unwrap();
        let c = s.into_change().unwrap();
        assert_eq!(c.limit, Some(Limit::Gb(12.0)));
        assert_eq!(c.eviction, Some(Eviction::Ttl));
        assert_eq!(c.ttl, Some(Some(900)));
        assert_eq!(c.preload, Some(vec!["a".to_string(), "b".to_string()]));
        let off: PoolSet = serde_json::from_str(r#"{"ttl":null}"#).unwrap();
        assert_eq!(off.into_change().unwrap().ttl, Some(None));
        let keep: PoolSet = serde_json::from_str(r#"{"limit":"50%"}"#).unwrap();
        let c = keep.into_change().unwrap();
        assert_eq!((c.limit, c.ttl), (Some(Limit::Percent(50.0)), None));
        for bad in [r#"{"limit":"75"}"#, r#"{"ttl":"15x"}"#] {
            let s: PoolSet = serde_json::from_str(bad).unwrap();
            assert_eq!(
                s.into_change().unwrap_err().code,
                Code::PoolConfigInvalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_gateway_port_comes_from_the_environment() {
        assert_eq!(gateway_port(None).unwrap(), 8399);
        assert_eq!(gateway_port(Some("")).unwrap(), 8399);
        assert_eq!(gateway_port(Some(" 0 ")).unwrap(), 0);
        assert_eq!(gateway_port(Some("9001")).unwrap(), 9001);
        for bad in ["http", "-1", "65536", "80 80"] {
            assert_eq!(
                gateway_port(Some(bad)).unwrap_err().code,
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn the_tray_line_says_where_the_gateway_listens_or_why_not() {
        let running = GatewayStatus::Running {
            url: "http://127.0.0.1:8399".into(),
            host: "127.0.0.1".into(),
            port: 8399,
        };
        assert_eq!(
            tray::EN.status_line(&running, false),
            "Gateway: http://127.0.0.1:8399"
        );
        assert_eq!(
            tray::EN.status_line(&running, true),
            "Gateway: http://127.0.0.1:8399 — client tokens off"
        );
        let busy = GatewayStatus::Failed {
            host: "127.0.0.1".into(),
            port: 8399,
            error: Error::new(Code::PortInUse, "in use"),
        };
        assert_eq!(
            tray::EN.status_line(&busy, false),
            "Gateway: port 8399 in use"
        );
        let stopped = GatewayStatus::Stopped {
            host: "127.0.0.1".into(),
            port: 8399,
        };
        assert_eq!(tray::EN.status_line(&stopped, false), "Gateway: stopped");
        let bad = GatewayStatus::Failed {
            host: "127.0.0.1".into(),
            port: 8399,
            error: Error::invalid("x"),
        };
        assert_eq!(
            tray::EN.status_line(&bad, false),
            "Gateway: not running (invalid_argument)"
        );
        let json = serde_json::to_value(&busy).unwrap();
        assert_eq!(json["state"], "failed");
        assert_eq!(json["error"]["code"], "port_in_use");
    }

    /// The names after `start` in `text`, each up to the first of `end`.
    fn names_after(text: &str, start: &str, end: &[char]) -> std::collections::BTreeSet<String> {
        text.match_indices(start)
            .map(|(i, _)| {
                let rest = &text[i + start.len()..];
                rest[..rest.find(end).unwrap_or(rest.len())].to_string()
            })
            .collect()
    }

    /// A command that is defined but not listed in build.rs, not registered, not
    /// granted by the capability or not wrapped by the UI cannot be called (or is
    /// dead); the desktop build cannot check this without the webview, so this does.
    #[test]
    fn every_command_is_registered_listed_granted_and_wrapped() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        let commands_rs = read("src-tauri/desktop/commands.rs");
        let defined: std::collections::BTreeSet<String> = commands_rs
            .split("#[tauri::command")
            .skip(1)
            .map(|chunk| {
                let f = match chunk.find("pub async fn ") {
                    Some(i) if chunk.find("pub fn ").is_none_or(|j| i < j) => &chunk[i + 13..],
                    _ => &chunk[chunk.find("pub fn ").expect("command fn") + 7..],
                };
                f[..f.find(['(', '<']).unwrap()].to_string()
            })
            .collect();
        assert!(defined.len() >= 22, "{defined:?}");

        let build_rs = read("src-tauri/build.rs");
        let list = &build_rs[build_rs.find("const COMMANDS").unwrap()..];
        let list = &list[..list.find("];").unwrap()];
        // Every other piece between quotes is a name.
        let listed: std::collections::BTreeSet<String> = list
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        assert_eq!(listed, defined, "build.rs COMMANDS vs desktop/commands.rs");

        let registered = names_after(
            &read("src-tauri/desktop/mod.rs"),
            "commands::",
            &[',', '\n', ']'],
        );
        assert_eq!(registered, defined, "generate_handler! in desktop/mod.rs");

        let conf: serde_json::Value = serde_json::from_str(&read("tauri.conf.json")).unwrap();
        let granted: std::collections::BTreeSet<String> = conf["app"]["security"]["capabilities"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["permissions"].as_array().unwrap().iter())
            .filter_map(|p| {
                p.as_str()?
                    .strip_prefix("allow-")
                    .map(|n| n.replace('-', "_"))
            })
            .collect();
        assert_eq!(granted, defined, "tauri.conf.json capability");

        let api_ts = read("ui/src/lib/api.ts");
        let wrapped = names_after(&api_ts, "call<", &[')'])
            .into_iter()
            .filter_map(|c| Some(c.split('"').nth(1)?.to_string()))
            .collect::<std::collections::BTreeSet<_>>();
        assert_eq!(wrapped, defined, "ui/src/lib/api.ts wrappers");
    }

    /// The webview's guard rails, as configured: a CSP without inline or eval'd script,
    /// frozen prototypes, no global Tauri object, and no permission beyond our own
    /// commands and event listening — in particular none on the store plugin, whose
    /// `load` takes any path (the UI's preferences go through `prefs_get`/`prefs_set`).
    #[test]
    fn the_webview_is_locked_down() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let conf: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(root.join("tauri.conf.json")).unwrap())
                .unwrap();
        let sec = &conf["app"]["security"];
        assert_eq!(sec["freezePrototype"], true);
        assert_eq!(conf["app"]["withGlobalTauri"], false);
        assert_eq!(sec["dangerousDisableAssetCspModification"], false);
        let csp = sec["csp"].as_object().unwrap();
        for (directive, want) in [
            ("default-src", "'self'"),
            ("script-src", "'self'"),
            ("object-src", "'none'"),
            ("base-uri", "'none'"),
            ("form-action", "'none'"),
            ("frame-ancestors", "'none'"),
        ] {
            assert_eq!(csp[directive], want, "{directive}");
        }
        for (directive, v) in csp {
            let v = v.as_str().unwrap();
            assert!(
                !v.contains("unsafe") && !v.contains('*') && !v.contains("http://")
                    || directive == "connect-src",
                "{directive}: {v}"
            );
        }
        assert_eq!(csp["connect-src"], "ipc: http://ipc.localhost");
        for cap in sec["capabilities"].as_array().unwrap() {
            for p in cap["permissions"].as_array().unwrap() {
                let p = p.as_str().unwrap();
                assert!(
                    p.starts_with("allow-")
                        || p == "core:event:allow-listen"
                        || p == "core:event:allow-unlisten",
                    "the webview is granted {p}"
                );
            }
        }
    }

    #[tokio::test]
    async fn the_desktop_gateway_serves_health_and_reports_a_busy_port() {
        let (_d, app) = open().await;
        let (status, server, first) = start_gateway(app.clone(), Some("0")).await;
        assert_eq!(
            first.expect("the first start issues `default`").name,
            "default"
        );
        let GatewayStatus::Running { url, port, .. } = &status else {
            panic!("not running: {status:?}");
        };
        assert_ne!(*port, 0, "the bound port is reported, not the 0 asked for");
        assert_eq!(url, &format!("http://127.0.0.1:{port}"));
        let body = reqwest::get(format!("{url}/health"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, r#"{"status":"ok"}"#);

        // The same port again: in use, and the app goes on without a gateway.
        let (busy, none, again) = start_gateway(app.clone(), Some(&port.to_string())).await;
        assert!(none.is_none());
        assert!(again.is_none(), "`default` is issued once");
        assert_eq!(
            tray::EN.status_line(&busy, false),
            format!("Gateway: port {port} in use")
        );

        let (bad, none, _) = start_gateway(app, Some("nope")).await;
        assert!(none.is_none());
        assert!(
            matches!(&bad, GatewayStatus::Failed { error, .. } if error.code == Code::InvalidArgument)
        );
        server.unwrap().shutdown().await;
    }

    #[tokio::test]
    async fn a_root_rotation_needs_the_fingerprint_the_user_saw() {
        let (_d, app) = open().await;
        // No root yet: confirming "none" creates one and rotates it.
        let wrong = rotate_root_confirmed(&app, Actor::Ui, Some("0011223344556677"))
            .await
            .unwrap_err();
        assert_eq!(wrong.code, Code::ConfirmationRequired);
        let first = rotate_root_confirmed(&app, Actor::Ui, None).await.unwrap();
        let stale = rotate_root_confirmed(&app, Actor::Ui, Some(&first.old_fingerprint))
            .await
            .unwrap_err();
        assert_eq!(stale.code, Code::ConfirmationRequired);
        assert!(
            stale.message.contains(&first.new_fingerprint),
            "{}",
            stale.message
        );
        let second = rotate_root_confirmed(&app, Actor::Ui, Some(&first.new_fingerprint))
            .await
            .unwrap();
        assert_eq!(second.old_fingerprint, first.new_fingerprint);
        assert_ne!(second.new_fingerprint, first.new_fingerprint);
    }
}
