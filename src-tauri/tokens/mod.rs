//! Client tokens: who may call the gateway.
//!
//! A token is a biscuit (Ed25519-signed, with Datalog facts and checks) printed as
//! `sy-<base64url>`. Its authority block says which models it may use
//! (`model_pattern(re)` facts and a check that the requested `model` matches one) and
//! when it expires (`expires(date)` and a check against the authorizer's `time`); its
//! root key id names this install's signing key, so a token of another install is told
//! apart from a forged one. The signing key pair is made on first use: the public half
//! is stored in the clear (the gateway verifies without opening the vault), the private
//! half sealed in the vault like a provider key (rotation re-seals it, backups carry it).
//!
//! The database keeps one row per issued token (`clients`: name, scopes, expiry,
//! revocation), keyed by the token's revocation id — never the token itself, which is
//! printed once by [`issue`] and nowhere else. Every change to clients or to the
//! gateway's access setting appends a byte to a marker file in the data dir; the
//! gateway's [`verify::Verifier`] looks at the marker's size on every request, so a
//! revocation made by any process holds from the next request on.

pub mod verify;

use crate::app::App;
use crate::error::{Code, Error, Result};
use crate::store::audit::{self, Actor};
use crate::store::entities::client;
use crate::vault::columns::token_key_context;
use crate::vault::keys::{hex, unhex};
use biscuit_auth::{Algorithm, Biscuit, KeyPair, PrivateKey, PublicKey, macros::*};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryOrder, Set,
    Statement,
};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What every token starts with (so a stray OpenAI key is recognised as "not ours", and
/// secret scanners can find tokens pasted where they should not be).
pub const TOKEN_PREFIX: &str = "sy-";
/// Model patterns one token may carry.
pub const MAX_SCOPES: usize = 32;
const MAX_PATTERN: usize = 256;
const MAX_NAME: usize = 64;
/// The name of the token the first gateway start issues.
pub const DEFAULT_NAME: &str = "default";
/// The marker file whose size changes with every change to clients or access settings.
const MARKER: &str = "clients.changed";

const CONFIG_LOOPBACK_AUTH: &str = "loopback_auth";
const CONFIG_DEFAULT_ISSUED: &str = "default_token_issued";

/// `token issue`'s answer: the only place a token is ever shown.
#[derive(Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Issued {
    pub id: i64,
    pub name: String,
    pub token: String,
    /// Unix milliseconds, or none for a token that does not expire.
    pub expires_at: Option<i64>,
    /// Model name patterns (`*`, `?`); empty = every model.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// One row of `token list`: everything about a client but its token.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ClientInfo {
    pub id: i64,
    pub name: String,
    pub scopes: Vec<String>,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    pub last_used_at: Option<i64>,
    pub requests: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
}

/// `token revoke`'s answer.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Revoked {
    pub id: i64,
    pub name: String,
    pub revoked_at: i64,
    /// It was revoked before this call (nothing changed).
    pub already: bool,
}

/// Whether the gateway asks loopback clients for a token.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AuthSetting {
    pub loopback_auth: bool,
}

// ------------------------------------------------------------------ validation

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::InvalidArgument, msg)
}

fn check_name(name: &str) -> Result<()> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > MAX_NAME || n.chars().any(char::is_control) {
        return Err(invalid(format!(
            "a client name is 1 to {MAX_NAME} printable characters"
        )));
    }
    Ok(())
}

/// Check model patterns and turn each into the anchored regex the token carries.
pub fn patterns_to_regexes(patterns: &[String]) -> Result<Vec<String>> {
    if patterns.len() > MAX_SCOPES {
        return Err(invalid(format!(
            "a token may name at most {MAX_SCOPES} model patterns (got {})",
            patterns.len()
        )));
    }
    patterns
        .iter()
        .map(|p| {
            if p.is_empty()
                || p.len() > MAX_PATTERN
                || p.chars().any(|c| c.is_control() || c == ',')
            {
                return Err(invalid(format!(
                    "model pattern {:?} must be 1 to {MAX_PATTERN} printable characters without commas",
                    crate::gateway::log::printable(p, 40)
                )));
            }
            let mut re = String::from("^");
            let mut lit = [0u8; 4];
            for c in p.chars() {
                match c {
                    '*' => re.push_str(".*"),
                    '?' => re.push('.'),
                    c => re.push_str(&regex::escape(c.encode_utf8(&mut lit))),
                }
            }
            re.push('$');
            Ok(re)
        })
        .collect()
}

/// `30d`, `12h`, `90m`, `45s`, `2w` → a duration (at least a second, at most ten years).
pub fn parse_expiry(s: &str) -> Result<Duration> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num
        .parse()
        .map_err(|_| invalid(format!("--expires {s:?}: expected e.g. 30d, 12h, 90m, 45s")))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" | "" => n.checked_mul(86_400),
        "w" => n.checked_mul(7 * 86_400),
        _ => None,
    };
    match secs {
        Some(s) if (1..=10 * 366 * 86_400).contains(&s) => Ok(Duration::from_secs(s)),
        _ => Err(invalid(format!(
            "--expires {s:?}: expected a duration from 1s to 10 years, e.g. 30d, 12h, 90m"
        ))),
    }
}

// ------------------------------------------------------------------ the signing key

/// The 32-bit id a token carries for its root key: the first bytes of the public key's
/// SHA-256 (what tells "another install's token" from "a forged one").
pub fn key_id_of(public: &PublicKey) -> u32 {
    let d = ring::digest::digest(&ring::digest::SHA256, &public.to_bytes());
    u32::from_be_bytes([d.as_ref()[0], d.as_ref()[1], d.as_ref()[2], d.as_ref()[3]])
}

/// The public half of this install's signing key and its id, if one was made.
pub async fn public_key<C: ConnectionTrait>(db: &C) -> Result<Option<(u32, PublicKey)>> {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT key_id, public_key FROM token_keys WHERE id = 1",
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    let key_id: i64 = r.try_get_by_index(0)?;
    let public: String = r.try_get_by_index(1)?;
    let pk = PublicKey::from_bytes_hex(&public, Algorithm::Ed25519)
        .map_err(|e| Error::new(Code::VaultCorrupt, format!("stored token key: {e}")))?;
    Ok(Some((key_id as u32, pk)))
}

/// Make this install's signing key pair unless it exists (inside `txn`, after
/// `vault.prepare`).
async fn ensure_key_in<C: ConnectionTrait>(app: &App, txn: &C) -> Result<()> {
    if public_key(txn).await?.is_some() {
        return Ok(());
    }
    store_key(app, txn, &KeyPair::new()).await?;
    audit::record(
        txn,
        Actor::System,
        "token.key_create",
        None,
        serde_json::json!({}),
    )
    .await?;
    Ok(())
}

/// The signing key pair (the private half opened from the vault).
async fn keypair<C: ConnectionTrait>(app: &App, txn: &C) -> Result<KeyPair> {
    let row = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT public_key, private_key FROM token_keys WHERE id = 1",
        ))
        .await?
        .ok_or_else(|| Error::internal("no token signing key after creating it"))?;
    let public_hex: String = row.try_get_by_index(0)?;
    let sealed: Vec<u8> = row.try_get_by_index(1)?;
    let private = app
        .vault
        .open(txn, &token_key_context(1, &public_hex), &sealed)
        .await?;
    let pk = PrivateKey::from_bytes(private.expose(), Algorithm::Ed25519)
        .map_err(|e| Error::new(Code::VaultCorrupt, format!("stored token key: {e}")))?;
    let kp = KeyPair::from(&pk);
    if kp.public().to_bytes_hex() != public_hex {
        return Err(Error::new(
            Code::VaultCorrupt,
            "the token signing key does not match its public key",
        ));
    }
    Ok(kp)
}

/// The sealed signing key as plaintext hex, for a backup (`None` before the first token).
pub(crate) async fn export_key<C: ConnectionTrait>(app: &App, db: &C) -> Result<Option<String>> {
    if public_key(db).await?.is_none() {
        return Ok(None);
    }
    let kp = keypair(app, db).await?;
    Ok(Some(hex(&kp.private().to_bytes())))
}

/// Replace the signing key with `private_hex` (a backup's), sealed under this install's
/// root, inside `txn` (after `vault.prepare`).
pub(crate) async fn import_key<C: ConnectionTrait>(
    app: &App,
    txn: &C,
    private_hex: &str,
) -> Result<()> {
    let bytes = zeroize::Zeroizing::new(
        unhex(private_hex).ok_or_else(|| Error::new(Code::BackupCorrupt, "token key"))?,
    );
    let pk = PrivateKey::from_bytes(&bytes, Algorithm::Ed25519).map_err(|_| {
        Error::new(
            Code::BackupCorrupt,
            "the backup's token signing key is not a key",
        )
    })?;
    store_key(app, txn, &KeyPair::from(&pk)).await
}

/// Write `kp` as this install's signing key (row 1): the public half in the clear, the
/// private half sealed for that row and that public key.
async fn store_key<C: ConnectionTrait>(app: &App, txn: &C, kp: &KeyPair) -> Result<()> {
    let public_hex = kp.public().to_bytes_hex();
    let sealed = app
        .vault
        .seal(
            txn,
            &token_key_context(1, &public_hex),
            &kp.private().to_bytes(),
        )
        .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "INSERT OR REPLACE INTO token_keys (id, key_id, public_key, private_key, created_at) VALUES (1, ?, ?, ?, ?)",
        [
            (key_id_of(&kp.public()) as i64).into(),
            public_hex.into(),
            sealed.into(),
            crate::store::now_ms().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Validate a backup's token signing key without writing anything.
pub(crate) fn check_key_hex(private_hex: &str) -> bool {
    unhex(private_hex)
        .is_some_and(|b| b.len() == 32 && PrivateKey::from_bytes(&b, Algorithm::Ed25519).is_ok())
}

// ------------------------------------------------------------------ marker

fn marker_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MARKER)
}

/// Tell every running gateway that clients or access settings changed (after commit).
pub fn touch(data_dir: &Path) {
    use std::io::Write;
    let r = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(marker_path(data_dir))
        .and_then(|mut f| f.write_all(b"."));
    if let Err(e) = r {
        // The gateways' settings poll (audit revision) still sees it within half a second.
        tracing::warn!(error = %e, "could not write the clients marker");
    }
}

// ------------------------------------------------------------------ issue / list / revoke

fn datalog_err(e: biscuit_auth::error::Token) -> Error {
    Error::internal(format!("building a client token: {e}"))
}

/// Sign a token for a new client row (inside `txn`, with the key pair); `regexes` are
/// `scopes` as [`patterns_to_regexes`] made them.
async fn issue_in<C: ConnectionTrait>(
    txn: &C,
    kp: &KeyPair,
    name: &str,
    (scopes, regexes): (&[String], &[String]),
    expires: Option<Duration>,
    actor: Actor,
) -> Result<Issued> {
    let now = crate::store::now_ms();
    let expires_at = expires.map(|d| now + d.as_millis() as i64);
    let mut b = Biscuit::builder().root_key_id(key_id_of(&kp.public()));
    for re in regexes {
        b = b
            .fact(fact!("model_pattern({re})", re = re.as_str()))
            .map_err(datalog_err)?;
    }
    if !regexes.is_empty() {
        b = b
            .check(check!(
                "check if model($m), model_pattern($p), $m.matches($p)"
            ))
            .map_err(datalog_err)?;
    }
    if let Some(at) = expires_at {
        let when = SystemTime::UNIX_EPOCH + Duration::from_millis(at as u64);
        b = b
            .fact(fact!("expires({when})", when = when))
            .map_err(datalog_err)?
            .check(check!("check if time($t), expires($e), $t <= $e"))
            .map_err(datalog_err)?;
    }
    let token = b.build(kp).map_err(datalog_err)?;
    let revocation_id = hex(&token.revocation_identifiers()[0]);
    let text = format!("{TOKEN_PREFIX}{}", token.to_base64().map_err(datalog_err)?);
    let row = client::ActiveModel {
        name: Set(name.trim().to_string()),
        revocation_id: Set(revocation_id),
        scopes: Set(serde_json::json!({ "models": scopes }).to_string()),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
        created_at: Set(now),
        last_used_at: Set(None),
        ..Default::default()
    }
    .insert(txn)
    .await?;
    audit::record(
        txn,
        actor,
        "token.issue",
        Some(&row.id.to_string()),
        serde_json::json!({ "name": row.name, "scopes": scopes, "expires_at": expires_at }),
    )
    .await?;
    Ok(Issued {
        id: row.id,
        name: row.name,
        token: text,
        expires_at,
        scopes: scopes.to_vec(),
    })
}

/// `token issue NAME [--models GLOB,…] [--expires 30d]`.
pub async fn issue(
    app: &App,
    name: &str,
    scopes: &[String],
    expires: Option<Duration>,
    actor: Actor,
) -> Result<Issued> {
    check_name(name)?;
    // Patterns as typed around commas (`gpt-4*, claude-*`), from any surface.
    let scopes: Vec<String> = scopes.iter().map(|p| p.trim().to_string()).collect();
    let regexes = patterns_to_regexes(&scopes)?;
    app.vault.prepare(&app.db).await?;
    let txn = crate::store::begin_immediate(&app.db).await?;
    ensure_key_in(app, &txn).await?;
    let kp = keypair(app, &txn).await?;
    let issued = issue_in(&txn, &kp, name, (&scopes, &regexes), expires, actor).await?;
    txn.commit().await?;
    touch(app.data_dir());
    Ok(issued)
}

/// On the first gateway start that asks for tokens: the signing key and a token named
/// `default`, issued once per install (revoking it does not bring it back). `None`
/// when it was issued before, or when the user issued tokens of their own first.
pub async fn ensure_default(app: &App) -> Result<Option<Issued>> {
    if config(&app.db, CONFIG_DEFAULT_ISSUED).await?.is_some() || has_clients(&app.db).await? {
        // Issued before, or the user made their own tokens first.
        return Ok(None);
    }
    app.vault.prepare(&app.db).await?;
    let txn = crate::store::begin_immediate(&app.db).await?;
    // Another process may have issued it while we waited for the write lock.
    if config(&txn, CONFIG_DEFAULT_ISSUED).await?.is_some() || has_clients(&txn).await? {
        return Ok(None);
    }
    ensure_key_in(app, &txn).await?;
    let kp = keypair(app, &txn).await?;
    let issued = issue_in(&txn, &kp, DEFAULT_NAME, (&[], &[]), None, Actor::System).await?;
    set_config(&txn, CONFIG_DEFAULT_ISSUED, &issued.id.to_string()).await?;
    txn.commit().await?;
    touch(app.data_dir());
    Ok(Some(issued))
}

async fn has_clients<C: ConnectionTrait>(db: &C) -> Result<bool> {
    Ok(db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT 1 FROM clients LIMIT 1",
        ))
        .await?
        .is_some())
}

fn scopes_of(json: &str) -> Vec<String> {
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| {
            v.get("models")?.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(String::from))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// `token list`: every client with its usage from the request log.
pub async fn list(db: &DatabaseConnection) -> Result<Vec<ClientInfo>> {
    let rows = client::Entity::find()
        .order_by_asc(client::Column::Id)
        .all(db)
        .await?;
    let usage = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT client_id, COUNT(*), COALESCE(SUM(tokens_in), 0), COALESCE(SUM(tokens_out), 0), MAX(ts) \
             FROM request_log WHERE client_id IS NOT NULL GROUP BY client_id",
        ))
        .await?;
    let mut by_id = std::collections::HashMap::new();
    for u in usage {
        let id: i64 = u.try_get_by_index(0)?;
        by_id.insert(
            id,
            (
                u.try_get_by_index::<i64>(1)?,
                u.try_get_by_index::<i64>(2)?,
                u.try_get_by_index::<i64>(3)?,
                u.try_get_by_index::<Option<i64>>(4)?,
            ),
        );
    }
    let now = crate::store::now_ms();
    Ok(rows
        .into_iter()
        .map(|c| {
            let (requests, tokens_in, tokens_out, last) =
                by_id.get(&c.id).copied().unwrap_or((0, 0, 0, None));
            let state = if c.revoked_at.is_some() {
                "revoked"
            } else if c.expires_at.is_some_and(|e| e <= now) {
                "expired"
            } else {
                "active"
            };
            ClientInfo {
                id: c.id,
                scopes: scopes_of(&c.scopes),
                name: c.name,
                created_at: c.created_at,
                expires_at: c.expires_at,
                revoked_at: c.revoked_at,
                state: state.into(),
                last_used_at: last,
                requests,
                tokens_in,
                tokens_out,
            }
        })
        .collect())
}

/// `token revoke ID`: from the next request on, in every running gateway.
pub async fn revoke(app: &App, id: i64, actor: Actor) -> Result<Revoked> {
    let txn = crate::store::begin_immediate(&app.db).await?;
    let Some(row) = client::Entity::find_by_id(id).one(&txn).await? else {
        return Err(Error::new(
            Code::ClientNotFound,
            format!("no client token with id {id}; `switchyard token list` shows them"),
        ));
    };
    if let Some(at) = row.revoked_at {
        return Ok(Revoked {
            id,
            name: row.name,
            revoked_at: at,
            already: true,
        });
    }
    let now = crate::store::now_ms();
    let name = row.name.clone();
    let mut am: client::ActiveModel = row.into();
    am.revoked_at = Set(Some(now));
    am.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        "token.revoke",
        Some(&id.to_string()),
        serde_json::json!({ "name": name }),
    )
    .await?;
    txn.commit().await?;
    touch(app.data_dir());
    Ok(Revoked {
        id,
        name,
        revoked_at: now,
        already: false,
    })
}

// ------------------------------------------------------------------ access setting

async fn config<C: ConnectionTrait>(db: &C, key: &str) -> Result<Option<String>> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT value FROM gateway_config WHERE key = ?",
            [key.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get_by_index(0)?),
        None => None,
    })
}

async fn set_config<C: ConnectionTrait>(db: &C, key: &str, value: &str) -> Result<()> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "INSERT INTO gateway_config (key, value) VALUES (?, ?) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key.into(), value.into()],
    ))
    .await?;
    Ok(())
}

/// Whether loopback clients need a token (the default: yes).
pub async fn loopback_auth<C: ConnectionTrait>(db: &C) -> Result<bool> {
    Ok(config(db, CONFIG_LOOPBACK_AUTH).await?.as_deref() != Some("off"))
}

/// `token auth on|off`: turn the token check for loopback clients on or off (a gateway
/// bound to another address checks tokens regardless).
pub async fn set_loopback_auth(app: &App, on: bool, actor: Actor) -> Result<AuthSetting> {
    let txn = crate::store::begin_immediate(&app.db).await?;
    set_config(&txn, CONFIG_LOOPBACK_AUTH, if on { "on" } else { "off" }).await?;
    audit::record(
        &txn,
        actor,
        "gateway.auth",
        None,
        serde_json::json!({ "loopback_auth": on }),
    )
    .await?;
    txn.commit().await?;
    touch(app.data_dir());
    Ok(AuthSetting { loopback_auth: on })
}

/// The warning every surface shows while loopback auth is off.
pub const AUTH_OFF_WARNING: &str = "client tokens are off for loopback: any program of any user on this Mac can use the gateway and spend your cloud keys";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_become_anchored_escaped_regexes() {
        let r = patterns_to_regexes(&["gpt-4*".into(), "claude-?.5".into(), "a+b".into()]).unwrap();
        assert_eq!(r, ["^gpt\\-4.*$", "^claude\\-.\\.5$", "^a\\+b$"]);
        for bad in ["", "a,b", "x\ny"] {
            let e = patterns_to_regexes(&[bad.into()]).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{bad:?}");
        }
        let many: Vec<String> = (0..=MAX_SCOPES).map(|i| format!("m{i}")).collect();
        assert_eq!(
            patterns_to_regexes(&many).unwrap_err().code,
            Code::InvalidArgument
        );
    }

    #[test]
    fn expiry_durations_parse_with_units_and_bounds() {
        assert_eq!(
            parse_expiry("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(parse_expiry("12h").unwrap(), Duration::from_secs(12 * 3600));
        assert_eq!(parse_expiry("90m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_expiry("45s").unwrap(), Duration::from_secs(45));
        assert_eq!(
            parse_expiry("2w").unwrap(),
            Duration::from_secs(14 * 86_400)
        );
        assert_eq!(parse_expiry("7").unwrap(), Duration::from_secs(7 * 86_400));
        for bad in ["", "0s", "d", "5y", "-1d", "99999999999999999999d", "4000d"] {
            assert!(parse_expiry(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_are_bounded_and_printable() {
        assert!(check_name("laptop scripts").is_ok());
        for bad in ["", "  ", "a\u{1b}b", &"x".repeat(65)] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }
}
