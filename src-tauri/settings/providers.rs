//! Cloud providers: the service behind `switchyard provider …` and the UI's provider
//! commands. Each write is one transaction — validation first, then the change and its
//! audit row — so bad input changes nothing.
//!
//! The API key is sealed by the vault and bound (AAD) to the provider's row and its
//! normalized origin: a key entered for `https://api.openai.com` does not decrypt once
//! the base URL points elsewhere, so it can never be sent to a host it was not entered
//! for. Reads return `has_key` and a hint of at most the last 4 characters, never the
//! key; only [`decrypt_provider_key`] opens it, just in time, for the upstream request.

use crate::app::App;
use crate::error::{Code, Error, Result};
use crate::store::{self, audit::Actor, entities::provider};
use crate::vault::SecretString;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Set, Statement,
};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};

/// `anthropic-version` sent to Anthropic's API.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";
/// How long a connection test may take, end to end.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Model lists are small; anything bigger is not a model list.
const MAX_TEST_BODY: usize = 4 << 20;
/// Longest accepted API key (real ones are < 200 bytes).
const MAX_KEY_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub enum ProviderKind {
    #[serde(rename = "openai")]
    #[value(name = "openai")]
    OpenAi,
    #[serde(rename = "anthropic")]
    #[value(name = "anthropic")]
    Anthropic,
    /// Any OpenAI-compatible API (OpenRouter, Groq, a local server, …); needs a base URL.
    #[serde(rename = "openai-compatible")]
    #[value(name = "openai-compatible")]
    OpenAiCompatible,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::OpenAiCompatible => "openai-compatible",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "openai" => Some(ProviderKind::OpenAi),
            "anthropic" => Some(ProviderKind::Anthropic),
            "openai-compatible" => Some(ProviderKind::OpenAiCompatible),
            _ => None,
        }
    }

    /// The base URL used when none is given (the part before `/v1`).
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com"),
            ProviderKind::OpenAiCompatible => None,
        }
    }
}

/// A provider as every reader sees it: no key, only whether there is one and its hint.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Provider {
    pub id: i64,
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub has_key: bool,
    /// At most the last 4 characters of the key (none for short keys).
    pub key_hint: Option<String>,
    pub last_test: Option<LastTest>,
    /// The gateway's circuit breaker for it, when it has tripped since the gateway
    /// started (`list` and `get` fill it in).
    pub health: Option<crate::store::health::ProviderHealth>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct LastTest {
    pub at: i64,
    pub ok: bool,
    /// `ok` or the error code (`provider_auth_failed`, …).
    pub result: String,
    pub message: Option<String>,
}

/// What an add/update does with the key.
#[derive(Debug)]
pub enum KeyChange {
    /// Leave the stored key as it is (none for a new provider).
    Keep,
    Set(SecretString),
    Clear,
}

#[derive(Debug)]
pub struct ProviderInput {
    pub name: String,
    pub kind: ProviderKind,
    /// `None` = the kind's default (required for `openai-compatible`).
    pub base_url: Option<String>,
    pub key: KeyChange,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct UpsertOutcome {
    pub created: bool,
    /// `set`, `kept`, `cleared` or `none`.
    pub key: &'static str,
    pub provider: Provider,
}

/// The result of a connection test, as stored in `last_test_*` and shown to the user.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct TestOutcome {
    pub name: String,
    pub ok: bool,
    /// `ok` or the error code.
    pub result: String,
    pub message: String,
    /// The HTTP status, when the provider answered.
    pub status: Option<u16>,
    /// How many models the provider listed, on success.
    pub models: Option<usize>,
    pub latency_ms: u64,
}

impl TestOutcome {
    /// The failure as a coded error (for the CLI's exit code), `None` on success.
    pub fn error(&self) -> Option<Error> {
        if self.ok {
            return None;
        }
        let code = result_code(&self.result);
        Some(Error::new(
            code,
            format!("provider {}: {}", self.name, self.message),
        ))
    }
}

fn result_code(s: &str) -> Code {
    match s {
        "provider_auth_failed" => Code::ProviderAuthFailed,
        "provider_timeout" => Code::ProviderTimeout,
        "provider_unreachable" => Code::ProviderUnreachable,
        _ => Code::ProviderBadResponse,
    }
}

// --------------------------------------------------------------------- validation

/// Provider names are identifiers used in rules and on the command line.
pub fn validate_name(name: &str) -> Result<()> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    let starts_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.is_empty() || name.len() > 64 || !ok_chars || !starts_ok {
        return Err(Error::invalid(format!(
            "provider name {name:?} is invalid: use 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )));
    }
    if name.eq_ignore_ascii_case("local") {
        return Err(Error::invalid(
            "`local` is reserved for the local engine in routing rules; pick another provider name",
        ));
    }
    Ok(())
}

/// API keys are single tokens of printable ASCII; anything else is a paste accident.
pub fn validate_key(key: &SecretString) -> Result<()> {
    let k = key.expose();
    if k.is_empty() {
        return Err(Error::invalid("the API key is empty"));
    }
    if k.len() > MAX_KEY_LEN {
        return Err(Error::invalid(format!(
            "the API key is longer than {MAX_KEY_LEN} bytes"
        )));
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Error::invalid(
            "the API key contains spaces, control or non-ASCII characters; paste only the key",
        ));
    }
    Ok(())
}

/// True for hosts that never leave the machine, where plain `http` is acceptable.
fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn invalid_url(msg: impl Into<String>) -> Error {
    Error::new(Code::ProviderInvalidUrl, msg)
}

/// Validate and normalize a base URL: http(s) only, `https` unless the host is
/// loopback, no credentials, query or fragment; trailing `/` and a trailing `/v1` are
/// dropped (the base URL is the part before `/v1`, to which `/v1/models`,
/// `/v1/chat/completions`, … are appended).
pub fn normalize_base_url(kind: ProviderKind, input: Option<&str>) -> Result<String> {
    let raw = match input.map(str::trim) {
        Some(s) if !s.is_empty() => s,
        _ => {
            return kind.default_base_url().map(str::to_string).ok_or_else(|| {
                invalid_url(format!(
                    "a {} provider needs --base-url (e.g. https://openrouter.ai/api)",
                    kind.as_str()
                ))
            });
        }
    };
    let url = url::Url::parse(raw).map_err(|e| invalid_url(format!("base URL {raw:?}: {e}")))?;
    match url.scheme() {
        "https" | "http" => {}
        other => {
            return Err(invalid_url(format!(
                "base URL {raw:?} has scheme {other:?}; use https://"
            )));
        }
    }
    let host = url
        .host()
        .ok_or_else(|| invalid_url(format!("base URL {raw:?} has no host")))?;
    if url.scheme() == "http" && !is_loopback(&host) {
        return Err(invalid_url(format!(
            "base URL {raw:?} uses plain http to a host that is not this machine; the API key would travel unencrypted — use https:// (http is accepted only for localhost, 127.0.0.0/8 and [::1])"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid_url(
            "the base URL must not contain a user name or password; the key is entered separately (--api-key-stdin)",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid_url(format!(
            "base URL {raw:?} must not have a query (?…) or fragment (#…)"
        )));
    }
    let mut path = url.path().trim_end_matches('/').to_string();
    if let Some(p) = path.strip_suffix("/v1") {
        path = p.to_string();
    }
    Ok(format!("{}{path}", url.origin().ascii_serialization()))
}

// The AAD context of a provider's key is the vault's business (its column registry);
// re-exported here for the settings code that seals keys.
pub use crate::vault::columns::{origin_of, provider_key_context as key_context};

/// At most the last 4 characters, and only for keys long enough that 4 characters
/// say little about the rest (≥ 16).
pub fn key_hint(key: &str) -> Option<String> {
    if key.len() < 16 || !key.is_ascii() {
        return None;
    }
    Some(key[key.len() - 4..].to_string())
}

// --------------------------------------------------------------------- reads

fn view(m: provider::Model) -> Result<Provider> {
    let kind = ProviderKind::parse(&m.kind).ok_or_else(|| {
        Error::new(
            Code::Database,
            format!("provider {} has unknown kind {:?}", m.name, m.kind),
        )
    })?;
    let last_test = m.last_test_at.map(|at| {
        let result = m.last_test_result.clone().unwrap_or_default();
        LastTest {
            at,
            ok: result == "ok",
            result,
            message: m.last_test_message.clone(),
        }
    });
    Ok(Provider {
        id: m.id,
        name: m.name,
        kind,
        base_url: m.base_url,
        has_key: m.api_key.is_some(),
        key_hint: m.api_key.as_ref().and(m.key_hint),
        last_test,
        health: None,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn not_found(name: &str) -> Error {
    Error::new(
        Code::ProviderNotFound,
        format!("no provider named {name:?} (see `switchyard provider list`)"),
    )
}

async fn find_model<C: ConnectionTrait>(conn: &C, name: &str) -> Result<Option<provider::Model>> {
    Ok(provider::Entity::find()
        .filter(provider::Column::Name.eq(name))
        .one(conn)
        .await?)
}

/// All providers, by name.
pub async fn list(app: &App) -> Result<Vec<Provider>> {
    let mut health = crate::store::health::all(&app.db).await?;
    provider::Entity::find()
        .order_by_asc(provider::Column::Name)
        .all(&app.db)
        .await?
        .into_iter()
        .map(|m| {
            let mut p = view(m)?;
            p.health = health.remove(&p.id);
            Ok(p)
        })
        .collect()
}

pub async fn get(app: &App, name: &str) -> Result<Provider> {
    let mut p = find_model(&app.db, name)
        .await?
        .map(view)
        .transpose()?
        .ok_or_else(|| not_found(name))?;
    p.health = crate::store::health::all(&app.db).await?.remove(&p.id);
    Ok(p)
}

pub async fn get_by_id(app: &App, id: i64) -> Result<Provider> {
    provider::Entity::find_by_id(id)
        .one(&app.db)
        .await?
        .map(view)
        .transpose()?
        .ok_or_else(|| Error::new(Code::ProviderNotFound, format!("no provider with id {id}")))
}

// --------------------------------------------------------------------- writes

/// Add a provider, or update the one with this name. Changing the base URL's origin
/// while a key is stored requires entering the key again (or clearing it): the old
/// key is bound to the old origin and is never sent to the new one.
pub async fn upsert(app: &App, actor: Actor, input: ProviderInput) -> Result<UpsertOutcome> {
    validate_name(&input.name)?;
    let base_url = normalize_base_url(input.kind, input.base_url.as_deref())?;
    let origin = origin_of(&base_url)?;
    if let KeyChange::Set(k) = &input.key {
        validate_key(k)?;
        // Root and data key are created outside the write transaction below.
        app.vault.prepare(&app.db).await?;
    }
    let now = store::now_ms();
    let txn = store::begin_immediate(&app.db).await?;
    let existing = find_model(&txn, &input.name).await?;
    let created = existing.is_none();
    let (id, key_word) = match existing {
        None => {
            let m = provider::ActiveModel {
                name: Set(input.name.clone()),
                kind: Set(input.kind.as_str().to_string()),
                base_url: Set(base_url.clone()),
                api_key: Set(None),
                key_hint: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                ..Default::default()
            }
            .insert(&txn)
            .await?;
            let word = match &input.key {
                KeyChange::Set(_) => "set",
                _ => "none",
            };
            (m.id, word)
        }
        Some(m) => {
            let origin_changed = origin_of(&m.base_url).map(|o| o != origin).unwrap_or(true);
            if matches!(input.key, KeyChange::Keep) && m.api_key.is_some() && origin_changed {
                return Err(Error::new(
                    Code::ProviderKeyRequired,
                    format!(
                        "provider {}'s key was entered for {} and is not sent to {origin}: enter the key again (--api-key-stdin) or remove it (--no-key)",
                        m.name,
                        origin_of(&m.base_url).unwrap_or_else(|_| m.base_url.clone())
                    ),
                ));
            }
            let config_changed = m.kind != input.kind.as_str() || m.base_url != base_url;
            let mut am: provider::ActiveModel = m.clone().into();
            am.kind = Set(input.kind.as_str().to_string());
            am.base_url = Set(base_url.clone());
            am.updated_at = Set(now);
            if config_changed {
                // The last test was of another endpoint.
                am.last_test_at = Set(None);
                am.last_test_result = Set(None);
                am.last_test_message = Set(None);
            }
            let word = match &input.key {
                KeyChange::Set(_) => "set",
                KeyChange::Clear => {
                    am.api_key = Set(None);
                    am.key_hint = Set(None);
                    if m.api_key.is_some() {
                        "cleared"
                    } else {
                        "none"
                    }
                }
                KeyChange::Keep => {
                    if m.api_key.is_some() {
                        "kept"
                    } else {
                        "none"
                    }
                }
            };
            am.update(&txn).await?;
            (m.id, word)
        }
    };
    if let KeyChange::Set(key) = &input.key {
        let sealed = app
            .vault
            .seal(&txn, &key_context(id, &base_url)?, key.expose().as_bytes())
            .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE providers SET api_key = ?, key_hint = ? WHERE id = ?",
            [sealed.into(), key_hint(key.expose()).into(), id.into()],
        ))
        .await?;
    }
    store::audit::record(
        &txn,
        actor,
        if created {
            "provider.add"
        } else {
            "provider.update"
        },
        Some(&input.name),
        serde_json::json!({
            "kind": input.kind.as_str(),
            "base_url": base_url,
            "key": key_word,
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(UpsertOutcome {
        created,
        key: key_word,
        provider: get_by_id(app, id).await?,
    })
}

/// A routing rule that points at a provider (read straight from `routing_rules`).
#[derive(Debug, Clone, Serialize)]
pub struct RuleRef {
    pub id: i64,
    pub position: i64,
    pub pattern: String,
    /// `target` or `fallback`.
    pub role: &'static str,
}

async fn rules_using<C: ConnectionTrait>(conn: &C, provider_id: i64) -> Result<Vec<RuleRef>> {
    let rows = conn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT id, position, pattern, target_provider_id = ?1 FROM routing_rules \
             WHERE target_provider_id = ?1 OR fallback_provider_id = ?1 ORDER BY position, id",
            [provider_id.into()],
        ))
        .await?;
    rows.into_iter()
        .map(|r| {
            Ok(RuleRef {
                id: r.try_get_by_index(0)?,
                position: r.try_get_by_index(1)?,
                pattern: r.try_get_by_index(2)?,
                role: if r.try_get_by_index::<bool>(3)? {
                    "target"
                } else {
                    "fallback"
                },
            })
        })
        .collect()
}

/// Remove a provider and its key. Refused with `provider_in_use` while a routing rule
/// targets it or falls back to it.
pub async fn remove(app: &App, actor: Actor, name: &str) -> Result<Provider> {
    let txn = store::begin_immediate(&app.db).await?;
    let m = find_model(&txn, name)
        .await?
        .ok_or_else(|| not_found(name))?;
    let rules = rules_using(&txn, m.id).await?;
    if !rules.is_empty() {
        let list: Vec<String> = rules
            .iter()
            .map(|r| {
                format!(
                    "rule {} (position {}, pattern {:?}, as {})",
                    r.id, r.position, r.pattern, r.role
                )
            })
            .collect();
        return Err(Error::new(
            Code::ProviderInUse,
            format!(
                "provider {name} is used by {} routing rule{}: {}; remove those rules or point them elsewhere first",
                rules.len(),
                if rules.len() == 1 { "" } else { "s" },
                list.join(", ")
            ),
        ));
    }
    let out = view(m.clone())?;
    provider::Entity::delete_by_id(m.id).exec(&txn).await?;
    store::audit::record(
        &txn,
        actor,
        "provider.remove",
        Some(name),
        serde_json::json!({ "kind": m.kind, "base_url": m.base_url, "had_key": m.api_key.is_some() }),
    )
    .await?;
    txn.commit().await?;
    Ok(out)
}

/// The provider's API key, decrypted just in time for a request to `provider.base_url`.
/// `Ok(None)` when no key is stored. Fails with `vault_decrypt_failed` when the key was
/// sealed for another origin (the base URL changed) or the stored bytes were altered.
/// Keep the result only for the request; it zeroizes on drop.
pub async fn decrypt_provider_key(app: &App, provider: &Provider) -> Result<Option<SecretString>> {
    let row = app
        .db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT api_key FROM providers WHERE id = ?",
            [provider.id.into()],
        ))
        .await?
        .ok_or_else(|| not_found(&provider.name))?;
    let Some(sealed) = row.try_get_by_index::<Option<Vec<u8>>>(0)? else {
        return Ok(None);
    };
    let ctx = key_context(provider.id, &provider.base_url)?;
    let plain = app.vault.open(&app.db, &ctx, &sealed).await.map_err(|e| {
        Error::new(
            e.code,
            format!("provider {}'s API key: {}", provider.name, e.message),
        )
    })?;
    SecretString::from_utf8(plain).map(Some).ok_or_else(|| {
        Error::new(
            Code::VaultCorrupt,
            format!("provider {}'s API key is not text", provider.name),
        )
    })
}

// --------------------------------------------------------------------- connection test

/// Test with the default 10 s timeout.
pub async fn test(app: &App, actor: Actor, name: &str) -> Result<TestOutcome> {
    test_with_timeout(app, actor, name, DEFAULT_TEST_TIMEOUT).await
}

/// `GET {base}/v1/models` with the provider's own auth header; no redirects followed.
/// The outcome is stored in `last_test_*`. Returns `Err` only when the test could not
/// be run (unknown provider, vault problems); a failing provider is an `Ok` outcome
/// with `ok: false` and the code in `result`.
pub async fn test_with_timeout(
    app: &App,
    actor: Actor,
    name: &str,
    timeout: Duration,
) -> Result<TestOutcome> {
    let p = get(app, name).await?;
    let key = decrypt_provider_key(app, &p).await?;
    let started = Instant::now();
    let probe = if key.is_none() && p.kind != ProviderKind::OpenAiCompatible {
        Err((
            Code::ProviderAuthFailed,
            format!(
                "no API key is stored; add one with `switchyard provider add {} --kind {} --api-key-stdin`",
                p.name,
                p.kind.as_str()
            ),
            None,
        ))
    } else {
        probe_models(p.kind, &p.base_url, key.as_ref(), timeout).await
    };
    drop(key);
    let latency_ms = started.elapsed().as_millis() as u64;
    let outcome = match probe {
        Ok((status, models)) => TestOutcome {
            name: p.name.clone(),
            ok: true,
            result: "ok".into(),
            message: format!("{models} models listed (HTTP {status})"),
            status: Some(status),
            models: Some(models),
            latency_ms,
        },
        Err((code, message, status)) => TestOutcome {
            name: p.name.clone(),
            ok: false,
            result: code.as_str().into(),
            message,
            status,
            models: None,
            latency_ms,
        },
    };
    let txn = store::begin_immediate(&app.db).await?;
    // Only if the provider still has the endpoint that was tested.
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "UPDATE providers SET last_test_at = ?, last_test_result = ?, last_test_message = ? \
         WHERE id = ? AND base_url = ?",
        [
            store::now_ms().into(),
            outcome.result.clone().into(),
            outcome.message.clone().into(),
            p.id.into(),
            p.base_url.clone().into(),
        ],
    ))
    .await?;
    store::audit::record(
        &txn,
        actor,
        "provider.test",
        Some(&p.name),
        serde_json::json!({ "result": outcome.result, "latency_ms": latency_ms }),
    )
    .await?;
    txn.commit().await?;
    Ok(outcome)
}

type ProbeError = (Code, String, Option<u16>);

/// One `GET {base}/v1/models`. Returns (status, number of models).
async fn probe_models(
    kind: ProviderKind,
    base_url: &str,
    key: Option<&SecretString>,
    timeout: Duration,
) -> std::result::Result<(u16, usize), ProbeError> {
    use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderValue, LOCATION};
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| {
            (
                Code::ProviderUnreachable,
                format!("cannot build an HTTP client: {e}"),
                None,
            )
        })?;
    let url = format!("{base_url}/v1/models");
    let mut req = client.get(&url).header(ACCEPT, "application/json");
    if let Some(key) = key {
        // Keys are validated as printable ASCII on entry, so this cannot fail for them.
        let secret_header = |v: &str| {
            let mut h = HeaderValue::from_str(v).map_err(|_| {
                (
                    Code::ProviderAuthFailed,
                    "the stored API key cannot be sent in an HTTP header".to_string(),
                    None,
                )
            })?;
            h.set_sensitive(true);
            Ok::<_, ProbeError>(h)
        };
        req = match kind {
            ProviderKind::Anthropic => req
                .header("x-api-key", secret_header(key.expose())?)
                .header("anthropic-version", ANTHROPIC_VERSION),
            _ => {
                let bearer = zeroize::Zeroizing::new(format!("Bearer {}", key.expose()));
                req.header(AUTHORIZATION, secret_header(&bearer)?)
            }
        };
    }
    let mut resp = req
        .send()
        .await
        .map_err(|e| map_send_error(&url, &e, timeout))?;
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = Vec::new();
    if (200..300).contains(&status) {
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    if body.len() + c.len() > MAX_TEST_BODY {
                        return Err((
                            Code::ProviderBadResponse,
                            format!(
                                "{url} answered with more than {MAX_TEST_BODY} bytes; not a model list"
                            ),
                            Some(status),
                        ));
                    }
                    body.extend_from_slice(&c);
                }
                Ok(None) => break,
                Err(e) => return Err(map_send_error(&url, &e, timeout)),
            }
        }
    }
    classify(&url, status, location.as_deref(), &body)
        .map(|models| (status, models))
        .map_err(|(c, m)| (c, m, Some(status)))
}

fn map_send_error(url: &str, e: &reqwest::Error, timeout: Duration) -> ProbeError {
    if e.is_timeout() {
        return (
            Code::ProviderTimeout,
            format!("{url} did not answer within {} ms", timeout.as_millis()),
            None,
        );
    }
    // The innermost cause says what actually happened (refused, DNS, TLS, …).
    let mut cause: &dyn std::error::Error = e;
    while let Some(s) = cause.source() {
        cause = s;
    }
    (
        Code::ProviderUnreachable,
        format!("cannot reach {url}: {cause}"),
        None,
    )
}

/// Map an answer to `GET …/v1/models` to the number of models or a coded failure.
/// Never quotes the body or full redirect target: a hostile server could put anything
/// there, and this message is stored and shown.
pub fn classify(
    url: &str,
    status: u16,
    location: Option<&str>,
    body: &[u8],
) -> std::result::Result<usize, (Code, String)> {
    match status {
        200..=299 => {
            let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
                (
                    Code::ProviderBadResponse,
                    format!("{url} answered {status} but the body is not JSON; is the base URL an API endpoint?"),
                )
            })?;
            v.get("data")
                .and_then(|d| d.as_array())
                .map(|a| a.len())
                .ok_or_else(|| {
                    (
                        Code::ProviderBadResponse,
                        format!("{url} answered {status} with JSON that is not a model list (no `data` array)"),
                    )
                })
        }
        300..=399 => {
            let target = location
                .and_then(|l| url::Url::parse(l).ok())
                .map(|u| format!(" to {}", u.origin().ascii_serialization()))
                .unwrap_or_default();
            Err((
                Code::ProviderBadResponse,
                format!(
                    "{url} redirected ({status}){target}; redirects are not followed — set the base URL to the final address"
                ),
            ))
        }
        401 | 403 => Err((
            Code::ProviderAuthFailed,
            format!(
                "{url} rejected the API key ({status}); check the key and enter it again with --api-key-stdin"
            ),
        )),
        404 => Err((
            Code::ProviderBadResponse,
            format!("{url} does not exist (404); check the base URL (it is the part before /v1)"),
        )),
        _ => Err((
            Code::ProviderBadResponse,
            format!("{url} answered HTTP {status}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile-time check: the gateway (axum) and the Tauri commands run these on a
    /// multi-threaded runtime, so their futures must be `Send` (no lock guard held
    /// across an `.await` anywhere below them).
    #[allow(dead_code, clippy::let_underscore_future)]
    fn service_futures_are_send(app: &App, p: &Provider) {
        fn send<T: Send>(_: T) {}
        send(list(app));
        send(get(app, "x"));
        send(upsert(
            app,
            Actor::Ui,
            ProviderInput {
                name: "x".into(),
                kind: ProviderKind::OpenAi,
                base_url: None,
                key: KeyChange::Keep,
            },
        ));
        send(remove(app, Actor::Ui, "x"));
        send(test(app, Actor::Ui, "x"));
        send(decrypt_provider_key(app, p));
        send(app.vault.rotate_data(&app.db, Actor::Ui));
        send(app.vault.rotate_root(&app.db, Actor::Ui));
        send(app.vault.status(&app.db));
        send(app.vault.recover(&app.db));
    }

    #[test]
    fn base_urls_are_validated_and_normalized() {
        use ProviderKind::*;
        let ok: &[(ProviderKind, Option<&str>, &str)] = &[
            (OpenAi, None, "https://api.openai.com"),
            (Anthropic, None, "https://api.anthropic.com"),
            (
                OpenAi,
                Some("https://API.OpenAI.com/"),
                "https://api.openai.com",
            ),
            (
                OpenAi,
                Some("https://api.openai.com/v1"),
                "https://api.openai.com",
            ),
            (
                OpenAi,
                Some("https://api.openai.com/v1/"),
                "https://api.openai.com",
            ),
            (
                OpenAiCompatible,
                Some("https://openrouter.ai/api/v1"),
                "https://openrouter.ai/api",
            ),
            (
                OpenAiCompatible,
                Some("https://api.groq.com/openai/v1"),
                "https://api.groq.com/openai",
            ),
            (
                OpenAiCompatible,
                Some("https://h.example:443/x"),
                "https://h.example/x",
            ),
            (
                OpenAiCompatible,
                Some("https://h.example:8443"),
                "https://h.example:8443",
            ),
            (
                OpenAiCompatible,
                Some("http://127.0.0.1:11434"),
                "http://127.0.0.1:11434",
            ),
            (
                OpenAiCompatible,
                Some("http://127.8.9.1:80/"),
                "http://127.8.9.1",
            ),
            (
                OpenAiCompatible,
                Some("http://localhost:8080/v1"),
                "http://localhost:8080",
            ),
            (
                OpenAiCompatible,
                Some("http://[::1]:9000"),
                "http://[::1]:9000",
            ),
            (
                OpenAiCompatible,
                Some("  https://x.example  "),
                "https://x.example",
            ),
        ];
        for (kind, input, want) in ok {
            assert_eq!(
                normalize_base_url(*kind, *input).unwrap(),
                *want,
                "{input:?}"
            );
        }
        let bad: &[(ProviderKind, Option<&str>)] = &[
            (OpenAiCompatible, None),
            (OpenAiCompatible, Some("")),
            (OpenAiCompatible, Some("http://192.168.1.5:11434")),
            (OpenAiCompatible, Some("http://api.example.com")),
            (OpenAiCompatible, Some("http://localhost.evil.com")),
            (OpenAiCompatible, Some("ftp://x.example")),
            (OpenAiCompatible, Some("file:///etc/passwd")),
            (OpenAiCompatible, Some("https://user:pw@x.example")),
            (OpenAiCompatible, Some("https://x.example/?key=1")),
            (OpenAiCompatible, Some("https://x.example/#f")),
            (OpenAiCompatible, Some("not a url")),
            (OpenAi, Some("api.openai.com")),
        ];
        for (kind, input) in bad {
            let e = normalize_base_url(*kind, *input).unwrap_err();
            assert_eq!(e.code, Code::ProviderInvalidUrl, "{input:?}: {e:?}");
        }
    }

    #[test]
    fn origins_ignore_path_and_default_port() {
        assert_eq!(
            origin_of("https://openrouter.ai/api").unwrap(),
            "https://openrouter.ai"
        );
        assert_eq!(
            origin_of("https://h.example:443").unwrap(),
            "https://h.example"
        );
        assert_eq!(
            origin_of("http://127.0.0.1:9").unwrap(),
            "http://127.0.0.1:9"
        );
        assert_ne!(
            key_context(1, "https://a.example").unwrap(),
            key_context(1, "https://b.example").unwrap()
        );
        assert_ne!(
            key_context(1, "https://a.example").unwrap(),
            key_context(2, "https://a.example").unwrap()
        );
    }

    #[test]
    fn names_are_identifiers_and_local_is_reserved() {
        for ok in ["openai", "my-groq", "a", "x.y_z-1", &"a".repeat(64)] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "-x",
            ".x",
            "a b",
            "ä",
            "local",
            "LOCAL",
            &"a".repeat(65),
            "a/b",
        ] {
            assert_eq!(
                validate_name(bad).unwrap_err().code,
                Code::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_must_be_one_printable_token() {
        validate_key(&SecretString::new("sk-abc_DEF.123".into())).unwrap();
        for bad in [
            "",
            "sk abc",
            "sk\tabc",
            "sk\nabc",
            "ключ",
            &"k".repeat(MAX_KEY_LEN + 1),
        ] {
            assert!(
                validate_key(&SecretString::new(bad.to_string())).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn hints_show_at_most_four_characters_of_long_keys() {
        assert_eq!(key_hint("sk-proj-abcdefgh1234").as_deref(), Some("1234"));
        assert_eq!(key_hint("0123456789abcdef").as_deref(), Some("cdef"));
        assert_eq!(key_hint("short-key-15chr"), None);
        assert_eq!(key_hint(""), None);
    }

    #[test]
    fn answers_are_classified_into_codes() {
        let u = "https://x.example/v1/models";
        assert_eq!(
            classify(
                u,
                200,
                None,
                br#"{"object":"list","data":[{"id":"a"},{"id":"b"}]}"#
            ),
            Ok(2)
        );
        assert_eq!(
            classify(u, 200, None, br#"{"data":[],"has_more":false}"#),
            Ok(0)
        );
        let code = |s, l, b: &[u8]| classify(u, s, l, b).unwrap_err().0;
        assert_eq!(
            code(200, None, b"<html>hi</html>"),
            Code::ProviderBadResponse
        );
        assert_eq!(
            code(200, None, br#"{"models":[]}"#),
            Code::ProviderBadResponse
        );
        assert_eq!(code(200, None, b""), Code::ProviderBadResponse);
        assert_eq!(code(401, None, b""), Code::ProviderAuthFailed);
        assert_eq!(code(403, None, b""), Code::ProviderAuthFailed);
        assert_eq!(code(404, None, b""), Code::ProviderBadResponse);
        assert_eq!(code(500, None, b""), Code::ProviderBadResponse);
        assert_eq!(code(429, None, b""), Code::ProviderBadResponse);
        let (c, m) =
            classify(u, 302, Some("https://evil.example/steal?k=sk-secret"), b"").unwrap_err();
        assert_eq!(c, Code::ProviderBadResponse);
        assert!(
            m.contains("https://evil.example") && !m.contains("sk-secret"),
            "{m}"
        );
    }

    #[test]
    fn failure_results_map_back_to_their_codes() {
        for c in [
            Code::ProviderAuthFailed,
            Code::ProviderTimeout,
            Code::ProviderUnreachable,
            Code::ProviderBadResponse,
        ] {
            assert_eq!(result_code(c.as_str()), c);
        }
    }
}
