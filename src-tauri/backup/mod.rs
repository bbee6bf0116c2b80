//! Backups: everything a user configured — providers with their API keys, rules in
//! order, pool settings, client records and the token signing key, the model registry
//! (not the weights) — in one file sealed under a passphrase, to be restored on another
//! Mac (another root secret).
//!
//! The file is a JSON envelope (`format: "switchyard-backup"`, `schema_version: 1`,
//! `created_at`, `app_version`, the source install's key fingerprint, the KDF and its
//! parameters, nonce, a passphrase check, ciphertext). Argon2id (64 MiB, t=3, p=1 by
//! default) turns the passphrase into 64 bytes: an AES-256-GCM key and a check value
//! (only its SHA-256 is stored), so a wrong passphrase (`backup_bad_passphrase`) is told
//! apart from a damaged file (`backup_corrupt`: the GCM tag covers the ciphertext, and the
//! header fields are its associated data). The file is written atomically with mode 0600.
//!
//! Import is two-stage: [`preview`] decrypts, validates and diffs against this install
//! (nothing written); [`apply`] re-reads, re-validates and applies the same file in one
//! `BEGIN IMMEDIATE` transaction, sealing every key under this install's root. After an
//! import providers, rules, pool settings and clients are exactly the backup's; models in
//! the backup are added or updated by name and other local registry entries are kept
//! (their files are on this machine). What is secret is decided by this schema (the
//! `api_key` field), never by anything the file says about itself.

use crate::app::App;
use crate::error::{Code, Error, Result};
use crate::settings::providers::{self, ProviderKind, key_context, key_hint};
use crate::settings::rules::{self, TargetName};
use crate::store::audit::{self, Actor};
use crate::store::entities::{client, model, provider, routing_rule};
use crate::vault::SecretString;
use crate::vault::envelope::SecretContext;
use crate::vault::keys::{hex, unhex};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, Set, Statement,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use zeroize::Zeroizing;

pub const FORMAT: &str = "switchyard-backup";
pub const SCHEMA_VERSION: u32 = 1;
/// A larger file is refused before it is read (`backup_too_large`).
pub const MAX_FILE_BYTES: u64 = 16 << 20;
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Argon2id parameters of new backups.
pub const KDF_M_KIB: u32 = 64 * 1024;
pub const KDF_T: u32 = 3;
pub const KDF_P: u32 = 1;
/// What a file may ask of the KDF (a hostile file must not take the machine's memory).
const KDF_M_KIB_RANGE: std::ops::RangeInclusive<u32> = 8 * 1024..=1024 * 1024;
const KDF_T_RANGE: std::ops::RangeInclusive<u32> = 1..=16;
const KDF_P_RANGE: std::ops::RangeInclusive<u32> = 1..=8;
/// Rows per section a backup may hold.
const MAX_ROWS: usize = 10_000;

// ------------------------------------------------------------------ the file

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Envelope {
    format: String,
    schema_version: u32,
    created_at: i64,
    app_version: String,
    /// The source install's key fingerprint (tells a same-machine restore apart).
    source_fingerprint: Option<String>,
    kdf: Kdf,
    cipher: String,
    nonce: String,
    /// SHA-256 of the second half of the KDF output.
    check: String,
    ciphertext: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Kdf {
    alg: String,
    m_kib: u32,
    t: u32,
    p: u32,
    salt: String,
}

impl Envelope {
    /// The associated data: every header field, so none can be altered unnoticed.
    fn aad(&self) -> Vec<u8> {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.format,
            self.schema_version,
            self.created_at,
            self.app_version,
            self.source_fingerprint.as_deref().unwrap_or(""),
            self.kdf.alg,
            self.kdf.m_kib,
            self.kdf.t,
            self.kdf.p,
            self.kdf.salt,
            self.cipher,
            self.nonce
        )
        .into_bytes()
    }
}

/// The sealed contents.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Payload {
    providers: Vec<BProvider>,
    rules: Vec<BRule>,
    pool: BPool,
    models: Vec<BModel>,
    clients: Vec<BClient>,
    /// The client-token signing key (hex), so tokens issued before the export keep
    /// verifying after a restore. Absent before the first token.
    #[serde(default)]
    token_key: Option<SecretHex>,
}

/// A secret in hex: never printed by `Debug`, wiped on drop.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
struct SecretHex(String);

impl std::fmt::Debug for SecretHex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Drop for SecretHex {
    fn drop(&mut self) {
        drop(Zeroizing::new(std::mem::take(&mut self.0)));
    }
}

#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct BProvider {
    name: String,
    kind: String,
    base_url: String,
    /// The API key in plaintext (inside the sealed payload only).
    api_key: Option<String>,
}

impl std::fmt::Debug for BProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Drop for BProvider {
    fn drop(&mut self) {
        if let Some(k) = self.api_key.take() {
            drop(Zeroizing::new(k));
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct BRule {
    pattern: String,
    match_type: String,
    /// `local` or a provider's name.
    target: String,
    model: Option<String>,
    /// `local`, a provider's name, or none.
    fallback: Option<String>,
    enabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct BPool {
    limit_kind: String,
    limit_value: f64,
    eviction: String,
    ttl_seconds: Option<i64>,
    preload: Vec<String>,
    /// Engine settings (absent from backups made before they existed: the defaults).
    #[serde(default = "default_batch")]
    batch: usize,
    #[serde(default = "default_queue")]
    queue: usize,
    #[serde(default = "default_disk_cache")]
    disk_cache_bytes: u64,
}

fn default_batch() -> usize {
    crate::engine::DEFAULT_MAX_BATCH
}
fn default_queue() -> usize {
    crate::engine::DEFAULT_MAX_QUEUED
}
fn default_disk_cache() -> u64 {
    crate::settings::pool::DEFAULT_DISK_CACHE_BYTES
}

impl BPool {
    fn from_settings(s: &crate::settings::pool::PoolSettings) -> BPool {
        BPool {
            limit_kind: s.limit.kind().into(),
            limit_value: s.limit.value(),
            eviction: s.eviction.as_str().into(),
            ttl_seconds: s.ttl_seconds.map(|t| t as i64),
            preload: s.preload.clone(),
            batch: s.batch,
            queue: s.queue,
            disk_cache_bytes: s.disk_cache_bytes,
        }
    }

    fn limit(&self) -> crate::settings::pool::Limit {
        match self.limit_kind.as_str() {
            "gb" => crate::settings::pool::Limit::Gb(self.limit_value),
            _ => crate::settings::pool::Limit::Percent(self.limit_value),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct BModel {
    name: String,
    path: String,
    format: String,
    architecture: String,
    parameters: Option<i64>,
    #[serde(default)]
    active_parameters: Option<i64>,
    quantization: Option<String>,
    size_bytes: i64,
    context_length: Option<i64>,
    pinned: bool,
    source: Option<String>,
    revision: Option<String>,
    ttl_seconds: Option<i64>,
    context_override: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct BClient {
    name: String,
    revocation_id: String,
    scopes: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    created_at: i64,
}

// ------------------------------------------------------------------ results

/// What an export wrote.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Exported {
    pub path: String,
    pub bytes: u64,
    pub created_at: i64,
    pub providers: u32,
    pub keys: u32,
    pub rules: u32,
    pub models: u32,
    pub clients: u32,
}

/// Added / changed / removed names of one section.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Diff {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: u32,
}

/// What an import would do (preview) or did (apply).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ImportReport {
    pub path: String,
    pub created_at: i64,
    pub app_version: String,
    pub source_fingerprint: Option<String>,
    /// The backup was made by this install (same root secret).
    pub same_install: bool,
    pub applied: bool,
    pub providers: Diff,
    /// Rules are replaced as a whole, in the backup's order.
    pub rules_before: u32,
    pub rules_after: u32,
    pub rules_changed: bool,
    /// Pool settings that differ (`limit`, `eviction`, `ttl`, `preload`).
    pub pool_changed: Vec<String>,
    pub models: Diff,
    pub clients: Diff,
    pub warnings: Vec<String>,
}

// ------------------------------------------------------------------ crypto

fn check_passphrase(p: &SecretString) -> Result<()> {
    if p.expose().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(Error::invalid(format!(
            "the passphrase must be at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    Ok(())
}

/// 64 bytes from the passphrase: the AES key, then the check value.
fn derive(p: &SecretString, kdf: &Kdf) -> Result<Zeroizing<[u8; 64]>> {
    let salt = unhex(&kdf.salt).ok_or_else(|| corrupt("the KDF salt is not hex"))?;
    let params = argon2::Params::new(kdf.m_kib, kdf.t, kdf.p, Some(64))
        .map_err(|e| corrupt(format!("the KDF parameters are unusable: {e}")))?;
    let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut out = Zeroizing::new([0u8; 64]);
    a.hash_password_into(p.expose().as_bytes(), &salt, &mut out[..])
        .map_err(|e| corrupt(format!("the KDF failed: {e}")))?;
    Ok(out)
}

fn sha256_hex(b: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

fn corrupt(msg: impl std::fmt::Display) -> Error {
    Error::new(
        Code::BackupCorrupt,
        format!("the backup file is damaged or not a Switchyard backup: {msg}"),
    )
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b)
        .map_err(|_| Error::internal("the system random generator failed"))?;
    Ok(b)
}

fn aes(key: &[u8]) -> Result<ring::aead::LessSafeKey> {
    let k = ring::aead::UnboundKey::new(&ring::aead::AES_256_GCM, key)
        .map_err(|_| Error::internal("cannot make the backup key"))?;
    Ok(ring::aead::LessSafeKey::new(k))
}

fn seal(
    payload: &Payload,
    p: &SecretString,
    created_at: i64,
    fp: Option<String>,
) -> Result<Envelope> {
    let kdf = Kdf {
        alg: "argon2id".into(),
        m_kib: KDF_M_KIB,
        t: KDF_T,
        p: KDF_P,
        salt: hex(&random::<16>()?),
    };
    let nonce = random::<12>()?;
    let mut env = Envelope {
        format: FORMAT.into(),
        schema_version: SCHEMA_VERSION,
        created_at,
        app_version: env!("CARGO_PKG_VERSION").into(),
        source_fingerprint: fp,
        kdf,
        cipher: "aes-256-gcm".into(),
        nonce: hex(&nonce),
        check: String::new(),
        ciphertext: String::new(),
    };
    let keys = derive(p, &env.kdf)?;
    env.check = sha256_hex(&keys[32..]);
    let mut buf = Zeroizing::new(serde_json::to_vec(payload)?);
    aes(&keys[..32])?
        .seal_in_place_append_tag(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(env.aad()),
            &mut *buf,
        )
        .map_err(|_| Error::internal("sealing the backup failed"))?;
    env.ciphertext = hex(&buf);
    Ok(env)
}

/// Read, check and decrypt `path`.
fn open_file(path: &Path, p: &SecretString) -> Result<(Envelope, Payload)> {
    let meta = std::fs::metadata(path).map_err(|e| {
        Error::new(
            Code::Io,
            format!("cannot read the backup {}: {e}", path.display()),
        )
    })?;
    if !meta.is_file() {
        return Err(Error::invalid(format!("{} is not a file", path.display())));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::new(
            Code::BackupTooLarge,
            format!(
                "{} is {} MB; a Switchyard backup is at most 16 MiB",
                path.display(),
                meta.len() / 1_000_000
            ),
        ));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::fs::File::open(path)?, MAX_FILE_BYTES + 1),
        &mut bytes,
    )?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::new(
            Code::BackupTooLarge,
            "the backup grew past 16 MiB while read",
        ));
    }
    // The version is read first, so a newer format gets its own code.
    let head: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("not JSON ({e})")))?;
    if head.get("format").and_then(|v| v.as_str()) != Some(FORMAT) {
        return Err(corrupt("it has no `format: switchyard-backup`"));
    }
    match head.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == SCHEMA_VERSION as u64 => {}
        Some(v) => {
            return Err(Error::new(
                Code::BackupSchemaUnsupported,
                format!(
                    "the backup has schema version {v}; this Switchyard ({}) reads version {SCHEMA_VERSION}",
                    env!("CARGO_PKG_VERSION")
                ),
            ));
        }
        None => return Err(corrupt("it has no schema_version")),
    }
    let env: Envelope =
        serde_json::from_value(head).map_err(|e| corrupt(format!("bad header ({e})")))?;
    if env.kdf.alg != "argon2id" || env.cipher != "aes-256-gcm" {
        return Err(corrupt("unknown KDF or cipher"));
    }
    if !KDF_M_KIB_RANGE.contains(&env.kdf.m_kib)
        || !KDF_T_RANGE.contains(&env.kdf.t)
        || !KDF_P_RANGE.contains(&env.kdf.p)
    {
        return Err(corrupt("KDF parameters out of range"));
    }
    let nonce: [u8; 12] = unhex(&env.nonce)
        .and_then(|n| n.try_into().ok())
        .ok_or_else(|| corrupt("the nonce is not 12 bytes of hex"))?;
    let mut ct = unhex(&env.ciphertext).ok_or_else(|| corrupt("the ciphertext is not hex"))?;
    let keys = derive(p, &env.kdf)?;
    if !ring_eq(sha256_hex(&keys[32..]).as_bytes(), env.check.as_bytes()) {
        return Err(Error::new(
            Code::BackupBadPassphrase,
            "wrong passphrase for this backup (or its key-derivation fields were altered)",
        ));
    }
    let plain = aes(&keys[..32])?
        .open_in_place(
            ring::aead::Nonce::assume_unique_for_key(nonce),
            ring::aead::Aad::from(env.aad()),
            &mut ct,
        )
        .map_err(|_| corrupt("its contents or header were altered or truncated"))?;
    let plain = Zeroizing::new(plain.to_vec());
    ct.iter_mut().for_each(|b| *b = 0);
    let payload: Payload =
        serde_json::from_slice(&plain).map_err(|e| corrupt(format!("bad contents ({e})")))?;
    validate(&payload)?;
    Ok((env, payload))
}

fn ring_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Everything in a payload is checked as if a user typed it.
fn validate(p: &Payload) -> Result<()> {
    let bad = |what: String, e: Error| corrupt(format!("{what}: {}", e.message));
    for (n, len) in [
        ("providers", p.providers.len()),
        ("rules", p.rules.len()),
        ("models", p.models.len()),
        ("clients", p.clients.len()),
    ] {
        if len > MAX_ROWS {
            return Err(corrupt(format!("{len} {n} (at most {MAX_ROWS})")));
        }
    }
    let mut names = std::collections::HashSet::new();
    for pr in &p.providers {
        providers::validate_name(&pr.name)
            .map_err(|e| bad(format!("provider {:?}", pr.name), e))?;
        if !names.insert(pr.name.as_str()) {
            return Err(corrupt(format!("provider {:?} twice", pr.name)));
        }
        let kind = ProviderKind::parse(&pr.kind)
            .ok_or_else(|| corrupt(format!("provider {:?} has kind {:?}", pr.name, pr.kind)))?;
        let url = providers::normalize_base_url(kind, Some(&pr.base_url))
            .map_err(|e| bad(format!("provider {:?}", pr.name), e))?;
        if url != pr.base_url {
            return Err(corrupt(format!(
                "provider {:?} has an unnormalized URL",
                pr.name
            )));
        }
        if let Some(k) = &pr.api_key {
            providers::validate_key(&SecretString::new(k.clone()))
                .map_err(|e| bad(format!("provider {:?}'s key", pr.name), e))?;
        }
    }
    let target_ok = |t: &str| t == "local" || names.contains(t);
    for (i, r) in p.rules.iter().enumerate() {
        let mt = crate::routing::MatchType::parse(&r.match_type)
            .ok_or_else(|| corrupt(format!("rule {} has match type {:?}", i + 1, r.match_type)))?;
        rules::check_pattern(&r.pattern, mt).map_err(|e| bad(format!("rule {}", i + 1), e))?;
        rules::check_model(&r.model).map_err(|e| bad(format!("rule {}", i + 1), e))?;
        if !target_ok(&r.target) || r.fallback.as_deref().is_some_and(|f| !target_ok(f)) {
            return Err(corrupt(format!(
                "rule {} names a provider the backup does not have",
                i + 1
            )));
        }
    }
    crate::settings::pool::Eviction::parse(&p.pool.eviction)
        .map_err(|e| bad("pool eviction".into(), e))?;
    if !matches!(p.pool.limit_kind.as_str(), "percent" | "gb") || !p.pool.limit_value.is_finite() {
        return Err(corrupt("the pool limit"));
    }
    if p.pool.preload.len() > 64 || p.pool.preload.iter().any(|n| n.len() > 200) {
        return Err(corrupt("the pool's preload list"));
    }
    crate::settings::pool::check_engine(p.pool.batch, p.pool.queue, p.pool.disk_cache_bytes)
        .map_err(|_| corrupt("the pool's engine settings"))?;
    let mut model_names = std::collections::HashSet::new();
    for m in &p.models {
        if m.name.is_empty()
            || m.name.len() > 200
            || m.name.chars().any(char::is_control)
            || !model_names.insert(m.name.as_str())
            || !matches!(m.format.as_str(), "gguf" | "mlx")
            || m.path.is_empty()
            || m.path.len() > 4096
        {
            return Err(corrupt(format!("model entry {:?}", m.name)));
        }
    }
    for c in &p.clients {
        if c.name.is_empty() || c.name.len() > 200 || c.revocation_id.len() > 256 {
            return Err(corrupt(format!("client entry {:?}", c.name)));
        }
    }
    if let Some(k) = &p.token_key
        && !crate::tokens::check_key_hex(&k.0)
    {
        return Err(corrupt("the token signing key"));
    }
    Ok(())
}

// ------------------------------------------------------------------ export

/// This install's settings as a payload. With `strict` off (for the diff), a key that
/// cannot be decrypted stands as a value no backup holds (so the provider shows as
/// changed) and is counted, rather than failing.
async fn snapshot(app: &App, strict: bool) -> Result<(Payload, usize)> {
    let rows = provider::Entity::find()
        .order_by_asc(provider::Column::Id)
        .all(&app.db)
        .await?;
    let mut provs = Vec::new();
    let mut by_id = HashMap::new();
    let mut undecryptable = 0;
    for r in rows {
        let api_key = match &r.api_key {
            None => None,
            Some(sealed) => {
                let ctx: SecretContext = key_context(r.id, &r.base_url)?;
                match app.vault.open(&app.db, &ctx, sealed).await {
                    Ok(k) => Some(
                        String::from_utf8(k.expose().to_vec())
                            .map_err(|_| Error::internal("a stored key is not UTF-8"))?,
                    ),
                    Err(e) if !strict && is_vault_error(e.code) => {
                        undecryptable += 1;
                        Some("\u{0}undecryptable".into())
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        by_id.insert(r.id, r.name.clone());
        provs.push(BProvider {
            name: r.name.clone(),
            kind: r.kind.clone(),
            base_url: r.base_url.clone(),
            api_key,
        });
    }
    let target = |id: Option<i64>| -> String {
        id.and_then(|i| by_id.get(&i).cloned())
            .unwrap_or_else(|| "local".into())
    };
    let rules = routing_rule::Entity::find()
        .order_by_asc(routing_rule::Column::Position)
        .order_by_asc(routing_rule::Column::Id)
        .all(&app.db)
        .await?
        .into_iter()
        .map(|r| BRule {
            pattern: r.pattern,
            match_type: r.match_type,
            target: target(r.target_provider_id),
            model: r.upstream_model,
            fallback: match r.fallback_kind.as_deref() {
                Some("local") => Some("local".into()),
                Some(_) => Some(target(r.fallback_provider_id)),
                None => None,
            },
            enabled: r.enabled,
        })
        .collect();
    let pool = BPool::from_settings(&crate::settings::pool::load(&app.db).await?);
    let models = model::Entity::find()
        .order_by_asc(model::Column::Id)
        .all(&app.db)
        .await?
        .into_iter()
        .map(|m| BModel {
            name: m.name,
            path: m.path,
            format: m.format,
            architecture: m.architecture,
            parameters: m.parameters,
            active_parameters: m.active_parameters,
            quantization: m.quantization,
            size_bytes: m.size_bytes,
            context_length: m.context_length,
            pinned: m.pinned,
            source: m.source,
            revision: m.revision,
            ttl_seconds: m.ttl_seconds,
            context_override: m.context_override,
        })
        .collect();
    let clients = client::Entity::find()
        .order_by_asc(client::Column::Id)
        .all(&app.db)
        .await?
        .into_iter()
        .map(|c| BClient {
            name: c.name,
            revocation_id: c.revocation_id,
            scopes: c.scopes,
            expires_at: c.expires_at,
            revoked_at: c.revoked_at,
            created_at: c.created_at,
        })
        .collect();
    let token_key = match crate::tokens::export_key(app, &app.db).await {
        Ok(k) => k.map(SecretHex),
        Err(e) if !strict && is_vault_error(e.code) => {
            undecryptable += 1;
            Some(SecretHex(String::new()))
        }
        Err(e) => return Err(e),
    };
    Ok((
        Payload {
            providers: provs,
            rules,
            pool,
            models,
            clients,
            token_key,
        },
        undecryptable,
    ))
}

/// `backup export FILE`.
pub async fn export(
    app: &App,
    path: &Path,
    passphrase: &SecretString,
    actor: Actor,
) -> Result<Exported> {
    check_passphrase(passphrase)?;
    if path.as_os_str().is_empty() {
        return Err(Error::invalid("give the file to write the backup to"));
    }
    if path.is_dir() {
        return Err(Error::invalid(format!(
            "{} is a folder; give a file name, e.g. {}",
            path.display(),
            path.join("switchyard.backup").display()
        )));
    }
    let (payload, _) = snapshot(app, true).await?;
    let created_at = crate::store::now_ms();
    let fp = app.vault.fingerprint(&app.db).await?;
    let p = SecretString::new(passphrase.expose().to_string());
    let pl = payload.clone();
    let env = tokio::task::spawn_blocking(move || seal(&pl, &p, created_at, fp))
        .await
        .map_err(|e| Error::internal(format!("sealing the backup crashed: {e}")))??;
    let text = serde_json::to_string_pretty(&env)?;
    write_private(path, text.as_bytes())?;
    let out = Exported {
        path: std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string(),
        bytes: text.len() as u64,
        created_at,
        providers: payload.providers.len() as u32,
        keys: payload
            .providers
            .iter()
            .filter(|p| p.api_key.is_some())
            .count() as u32,
        rules: payload.rules.len() as u32,
        models: payload.models.len() as u32,
        clients: payload.clients.len() as u32,
    };
    audit::record(
        &app.db,
        actor,
        audit::BACKUP_EXPORT,
        None,
        serde_json::json!({
            "path": out.path, "providers": out.providers, "keys": out.keys,
            "rules": out.rules, "models": out.models, "clients": out.clients,
        }),
    )
    .await?;
    Ok(out)
}

/// Write `bytes` to `path` with mode 0600, atomically (temp file, fsync, rename).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("backup"),
        std::process::id()
    ));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let _ = std::fs::remove_file(&tmp);
    let mut f = opts
        .open(&tmp)
        .map_err(|e| Error::new(Code::Io, format!("cannot write {}: {e}", tmp.display())))?;
    let r = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = r.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::new(
            Code::Io,
            format!("cannot write {}: {e}", path.display()),
        ));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// When the last backup was exported from this install (from the audit log).
pub async fn last_export<C: ConnectionTrait>(db: &C) -> Result<Option<i64>> {
    audit::last_at(db, audit::BACKUP_EXPORT).await
}

// ------------------------------------------------------------------ import

fn names_diff<T>(
    before: &BTreeMap<String, T>,
    after: &BTreeMap<String, T>,
    same: impl Fn(&T, &T) -> bool,
    remove_missing: bool,
) -> Diff {
    let mut d = Diff::default();
    for (n, a) in after {
        match before.get(n) {
            None => d.added.push(n.clone()),
            Some(b) if !same(b, a) => d.changed.push(n.clone()),
            Some(_) => d.unchanged += 1,
        }
    }
    if remove_missing {
        d.removed = before
            .keys()
            .filter(|n| !after.contains_key(*n))
            .cloned()
            .collect();
    }
    d
}

async fn report(app: &App, path: &Path, env: &Envelope, new: &Payload) -> Result<ImportReport> {
    let (cur, undecryptable) = snapshot(app, false).await?;
    let fp = app.vault.fingerprint(&app.db).await.ok().flatten();
    let by_name = |v: &[BProvider]| -> BTreeMap<String, BProvider> {
        v.iter().map(|p| (p.name.clone(), p.clone())).collect()
    };
    let providers = names_diff(
        &by_name(&cur.providers),
        &by_name(&new.providers),
        |a, b| a == b,
        true,
    );
    let models = names_diff(
        &new_models_map(&cur.models),
        &new_models_map(&new.models),
        |a, b| a == b,
        false,
    );
    let clients = names_diff(
        &cur.clients
            .iter()
            .map(|c| (c.revocation_id.clone(), c.clone()))
            .collect(),
        &new.clients
            .iter()
            .map(|c| (c.revocation_id.clone(), c.clone()))
            .collect(),
        |a, b| a == b,
        true,
    );
    let mut pool_changed = Vec::new();
    let mut warnings = Vec::new();
    let target_pool = pool_for_here(&new.pool, &cur.pool, &mut warnings);
    if (target_pool.limit_kind.as_str(), target_pool.limit_value)
        != (cur.pool.limit_kind.as_str(), cur.pool.limit_value)
    {
        pool_changed.push("limit".to_string());
    }
    if target_pool.eviction != cur.pool.eviction {
        pool_changed.push("eviction".into());
    }
    if target_pool.ttl_seconds != cur.pool.ttl_seconds {
        pool_changed.push("ttl".into());
    }
    if target_pool.preload != cur.pool.preload {
        pool_changed.push("preload".into());
    }
    for (name, changed) in [
        ("batch", target_pool.batch != cur.pool.batch),
        ("queue", target_pool.queue != cur.pool.queue),
        (
            "disk_cache",
            target_pool.disk_cache_bytes != cur.pool.disk_cache_bytes,
        ),
    ] {
        if changed {
            pool_changed.push(name.into());
        }
    }
    for m in &new.models {
        if !Path::new(&m.path).exists() {
            warnings.push(format!(
                "model {}: {} is not on this machine (the entry is restored; pull or copy the files to use it)",
                m.name, m.path
            ));
        }
    }
    if undecryptable > 0 {
        warnings.push(format!(
            "{undecryptable} stored key(s) of this install cannot be decrypted; they are replaced by the backup's"
        ));
    }
    if new.token_key.is_some() && cur.token_key.is_some() && new.token_key != cur.token_key {
        warnings.push(
            "the backup's token signing key replaces this install's: client tokens issued here stop working, the backup's clients' tokens work".into(),
        );
    }
    Ok(ImportReport {
        path: std::path::absolute(path)
            .unwrap_or_else(|_| path.to_path_buf())
            .display()
            .to_string(),
        created_at: env.created_at,
        app_version: env.app_version.clone(),
        source_fingerprint: env.source_fingerprint.clone(),
        same_install: fp.is_some() && fp == env.source_fingerprint,
        applied: false,
        providers,
        rules_before: cur.rules.len() as u32,
        rules_after: new.rules.len() as u32,
        rules_changed: cur.rules != new.rules,
        pool_changed,
        models,
        clients,
        warnings,
    })
}

fn new_models_map(v: &[BModel]) -> BTreeMap<String, BModel> {
    v.iter().map(|m| (m.name.clone(), m.clone())).collect()
}

/// The backup's pool settings as they can apply here: a limit this machine cannot
/// give keeps the current one (and says so).
fn pool_for_here(new: &BPool, cur: &BPool, warnings: &mut Vec<String>) -> BPool {
    let limit = new.limit();
    let fits = crate::settings::pool::physical_ram_bytes()
        .and_then(|ram| limit.validate(ram))
        .is_ok();
    let mut p = new.clone();
    if !fits {
        warnings.push(format!(
            "the backup's pool limit {} does not fit this machine; the current {} {} is kept",
            limit.label(),
            cur.limit_value,
            cur.limit_kind
        ));
        p.limit_kind = cur.limit_kind.clone();
        p.limit_value = cur.limit_value;
    }
    p
}

fn is_vault_error(c: Code) -> bool {
    matches!(
        c,
        Code::VaultRootMissing
            | Code::VaultDecryptFailed
            | Code::VaultUnavailable
            | Code::VaultCorrupt
    )
}

async fn open_blocking(path: &Path, passphrase: &SecretString) -> Result<(Envelope, Payload)> {
    let path = path.to_path_buf();
    let p = SecretString::new(passphrase.expose().to_string());
    tokio::task::spawn_blocking(move || open_file(&path, &p))
        .await
        .map_err(|e| Error::internal(format!("reading the backup crashed: {e}")))?
}

/// `backup import FILE`: what applying it would change; nothing is written.
pub async fn preview(app: &App, path: &Path, passphrase: &SecretString) -> Result<ImportReport> {
    let (env, payload) = open_blocking(path, passphrase).await?;
    report(app, path, &env, &payload).await
}

/// `backup import FILE --apply`: re-read and re-validate the file, then make this
/// install's settings the backup's in one transaction.
pub async fn apply(
    app: &App,
    path: &Path,
    passphrase: &SecretString,
    actor: Actor,
) -> Result<ImportReport> {
    let (env, payload) = open_blocking(path, passphrase).await?;
    let mut rep = report(app, path, &env, &payload).await?;
    let cur_pool = BPool::from_settings(&crate::settings::pool::load(&app.db).await?);
    let pool = pool_for_here(&payload.pool, &cur_pool, &mut Vec::new());
    if payload.providers.iter().any(|p| p.api_key.is_some()) || payload.token_key.is_some() {
        app.vault.prepare(&app.db).await?;
    }
    let now = crate::store::now_ms();
    let txn = crate::store::begin_immediate(&app.db).await?;
    // Rules go first: they point at providers.
    routing_rule::Entity::delete_many().exec(&txn).await?;
    let existing: HashMap<String, provider::Model> = provider::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(|p| (p.name.clone(), p))
        .collect();
    let mut ids: HashMap<String, i64> = HashMap::new();
    for bp in &payload.providers {
        let id = match existing.get(&bp.name) {
            Some(m) => {
                let changed = m.kind != bp.kind || m.base_url != bp.base_url;
                let mut am: provider::ActiveModel = m.clone().into();
                am.kind = Set(bp.kind.clone());
                am.base_url = Set(bp.base_url.clone());
                am.api_key = Set(None);
                am.key_hint = Set(None);
                am.updated_at = Set(now);
                if changed {
                    am.last_test_at = Set(None);
                    am.last_test_result = Set(None);
                    am.last_test_message = Set(None);
                }
                am.update(&txn).await?;
                m.id
            }
            None => {
                provider::ActiveModel {
                    name: Set(bp.name.clone()),
                    kind: Set(bp.kind.clone()),
                    base_url: Set(bp.base_url.clone()),
                    api_key: Set(None),
                    key_hint: Set(None),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&txn)
                .await?
                .id
            }
        };
        if let Some(k) = &bp.api_key {
            let sealed = app
                .vault
                .seal(&txn, &key_context(id, &bp.base_url)?, k.as_bytes())
                .await?;
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "UPDATE providers SET api_key = ?, key_hint = ? WHERE id = ?",
                [sealed.into(), key_hint(k).into(), id.into()],
            ))
            .await?;
        }
        ids.insert(bp.name.clone(), id);
    }
    for (name, m) in &existing {
        if !ids.contains_key(name) {
            provider::Entity::delete_by_id(m.id).exec(&txn).await?;
        }
    }
    for (pos, r) in payload.rules.iter().enumerate() {
        let target = match TargetName::parse(&r.target)? {
            TargetName::Local => None,
            TargetName::Provider(n) => Some(ids[&n]),
        };
        let (fallback_kind, fallback_provider_id) = match r.fallback.as_deref() {
            None => (None, None),
            Some("local") => (Some("local".to_string()), None),
            Some(n) => (Some("provider".to_string()), Some(ids[n])),
        };
        routing_rule::ActiveModel {
            position: Set(pos as i64),
            pattern: Set(r.pattern.clone()),
            match_type: Set(r.match_type.clone()),
            target_provider_id: Set(target),
            upstream_model: Set(r.model.clone()),
            fallback_kind: Set(fallback_kind),
            fallback_provider_id: Set(fallback_provider_id),
            enabled: Set(r.enabled),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&txn)
        .await?;
    }
    let settings = crate::settings::pool::PoolSettings {
        limit: pool.limit(),
        eviction: crate::settings::pool::Eviction::parse(&pool.eviction)?,
        ttl_seconds: pool.ttl_seconds.map(|t| t.max(0) as u64),
        preload: pool.preload.clone(),
        batch: pool.batch,
        queue: pool.queue,
        disk_cache_bytes: pool.disk_cache_bytes,
        revision: 0,
    };
    crate::settings::pool::save_row(&txn, &settings).await?;
    for m in &payload.models {
        let found = model::Entity::find()
            .filter(model::Column::Name.eq(&m.name))
            .one(&txn)
            .await?;
        let mut am: model::ActiveModel = match found {
            Some(row) => row.into(),
            None => model::ActiveModel {
                created_at: Set(now),
                last_used_at: Set(None),
                ..Default::default()
            },
        };
        am.name = Set(m.name.clone());
        am.path = Set(m.path.clone());
        am.format = Set(m.format.clone());
        am.architecture = Set(m.architecture.clone());
        am.parameters = Set(m.parameters);
        am.active_parameters = Set(m.active_parameters);
        am.quantization = Set(m.quantization.clone());
        am.size_bytes = Set(m.size_bytes);
        am.context_length = Set(m.context_length);
        am.pinned = Set(m.pinned);
        am.source = Set(m.source.clone());
        am.revision = Set(m.revision.clone());
        am.ttl_seconds = Set(m.ttl_seconds);
        am.context_override = Set(m.context_override);
        am.save(&txn).await?;
    }
    // A client this install already has keeps its row id, and with it the usage the
    // request log holds for it (`token list`).
    let known: HashMap<String, i64> = client::Entity::find()
        .all(&txn)
        .await?
        .into_iter()
        .map(|c| (c.revocation_id, c.id))
        .collect();
    client::Entity::delete_many().exec(&txn).await?;
    for c in &payload.clients {
        client::ActiveModel {
            id: match known.get(&c.revocation_id) {
                Some(&id) => Set(id),
                None => sea_orm::ActiveValue::NotSet,
            },
            name: Set(c.name.clone()),
            revocation_id: Set(c.revocation_id.clone()),
            scopes: Set(c.scopes.clone()),
            expires_at: Set(c.expires_at),
            revoked_at: Set(c.revoked_at),
            created_at: Set(c.created_at),
            last_used_at: Set(None),
        }
        .insert(&txn)
        .await?;
    }
    audit::record(
        &txn,
        actor,
        "backup.import",
        None,
        serde_json::json!({
            "path": rep.path,
            "created_at": env.created_at,
            "source_fingerprint": env.source_fingerprint,
            "providers": payload.providers.len(),
            "rules": payload.rules.len(),
            "models": payload.models.len(),
            "clients": payload.clients.len(),
        }),
    )
    .await?;
    if let Some(k) = &payload.token_key {
        crate::tokens::import_key(app, &txn, &k.0).await?;
    }
    // Compiles the restored rule set, commits, and installs the new router.
    rules::commit(app, txn).await?;
    // Running gateways pick up the clients and the signing key from the next request.
    crate::tokens::touch(app.data_dir());
    crate::settings::pool::republish(app).await?;
    rep.applied = true;
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> Payload {
        Payload {
            providers: vec![BProvider {
                name: "openai".into(),
                kind: "openai".into(),
                base_url: providers::normalize_base_url(ProviderKind::OpenAi, None).unwrap(),
                api_key: Some("sk-test-0123456789abcdef".into()),
            }],
            rules: vec![BRule {
                pattern: "gpt-".into(),
                match_type: "prefix".into(),
                target: "openai".into(),
                model: None,
                fallback: Some("local".into()),
                enabled: true,
            }],
            pool: BPool {
                limit_kind: "percent".into(),
                limit_value: 75.0,
                eviction: "lru".into(),
                ttl_seconds: None,
                preload: vec![],
                batch: 8,
                queue: 8,
                disk_cache_bytes: 0,
            },
            models: vec![],
            clients: vec![],
            token_key: None,
        }
    }

    fn write(dir: &Path, env: &Envelope) -> std::path::PathBuf {
        let p = dir.join("b.json");
        std::fs::write(&p, serde_json::to_vec(env).unwrap()).unwrap();
        p
    }

    #[test]
    fn a_sealed_payload_opens_with_its_passphrase_only_and_tampering_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let pass = SecretString::new("correct horse battery".into());
        let env = seal(&payload(), &pass, 1, Some("ab".into())).unwrap();
        let text = serde_json::to_string(&env).unwrap();
        assert!(
            !text.contains("sk-test"),
            "the key is not in the file in plaintext"
        );
        let p = write(dir.path(), &env);
        let (_, got) = open_file(&p, &pass).unwrap();
        assert_eq!(got, payload());

        let wrong = SecretString::new("incorrect horse battery".into());
        assert_eq!(
            open_file(&p, &wrong).unwrap_err().code,
            Code::BackupBadPassphrase
        );

        // Any header field or ciphertext byte changed: corrupt.
        let mut e = env.clone();
        e.created_at = 2;
        assert_eq!(
            open_file(&write(dir.path(), &e), &pass).unwrap_err().code,
            Code::BackupCorrupt
        );
        let mut e = env.clone();
        e.app_version = "9.9.9".into();
        assert_eq!(
            open_file(&write(dir.path(), &e), &pass).unwrap_err().code,
            Code::BackupCorrupt
        );
        for i in [0, env.ciphertext.len() / 2, env.ciphertext.len() - 1] {
            let mut e = env.clone();
            let mut b = e.ciphertext.into_bytes();
            b[i] = if b[i] == b'0' { b'1' } else { b'0' };
            e.ciphertext = String::from_utf8(b).unwrap();
            assert_eq!(
                open_file(&write(dir.path(), &e), &pass).unwrap_err().code,
                Code::BackupCorrupt,
                "byte {i}"
            );
        }
        let mut e = env.clone();
        e.ciphertext.truncate(e.ciphertext.len() - 10);
        assert_eq!(
            open_file(&write(dir.path(), &e), &pass).unwrap_err().code,
            Code::BackupCorrupt
        );
        // A newer schema has its own code; a hostile KDF demand is refused unrun.
        let mut e = env.clone();
        e.schema_version = 2;
        assert_eq!(
            open_file(&write(dir.path(), &e), &pass).unwrap_err().code,
            Code::BackupSchemaUnsupported
        );
        let mut e = env.clone();
        e.kdf.m_kib = 64 * 1024 * 1024;
        assert_eq!(
            open_file(&write(dir.path(), &e), &pass).unwrap_err().code,
            Code::BackupCorrupt
        );
        // Truncated file, not JSON, too large.
        let p = dir.path().join("t.json");
        std::fs::write(&p, &text.as_bytes()[..text.len() / 2]).unwrap();
        assert_eq!(open_file(&p, &pass).unwrap_err().code, Code::BackupCorrupt);
        let big = dir.path().join("big.json");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(MAX_FILE_BYTES + 1)
            .unwrap();
        assert_eq!(
            open_file(&big, &pass).unwrap_err().code,
            Code::BackupTooLarge
        );
    }

    #[test]
    fn contents_are_validated_as_if_typed() {
        let dir = tempfile::tempdir().unwrap();
        let pass = SecretString::new("correct horse battery".into());
        let mut bad = payload();
        bad.rules[0].target = "nobody".into();
        let p = write(dir.path(), &seal(&bad, &pass, 1, None).unwrap());
        assert_eq!(open_file(&p, &pass).unwrap_err().code, Code::BackupCorrupt);
        let mut bad = payload();
        bad.rules[0].match_type = "regex".into();
        bad.rules[0].pattern = "(".into();
        let p = write(dir.path(), &seal(&bad, &pass, 1, None).unwrap());
        assert_eq!(open_file(&p, &pass).unwrap_err().code, Code::BackupCorrupt);
        let mut bad = payload();
        bad.providers[0].base_url = "file:///etc/passwd".into();
        let p = write(dir.path(), &seal(&bad, &pass, 1, None).unwrap());
        assert_eq!(open_file(&p, &pass).unwrap_err().code, Code::BackupCorrupt);
        assert_eq!(
            check_passphrase(&SecretString::new("short".into()))
                .unwrap_err()
                .code,
            Code::InvalidArgument
        );
    }
}
