//! The gateway's side of client tokens: who is calling, and may they use this model.
//!
//! A token seen for the first time is parsed and its signature checked against this
//! install's public key (tens of microseconds); the result is cached by the token's
//! text, so later requests cost a hash lookup. Revocation and expiry are checked on
//! every request against an in-memory snapshot of the `clients` table, which is
//! reloaded whenever the clients marker file (appended to by every process that issues,
//! revokes, imports or changes the access setting) changed size — one `stat` per request.
//! Model scopes are decided by the token's own Datalog checks, run by an authorizer with
//! run limits and a `time` fact, once per (token, model) and then cached.

use super::{TOKEN_PREFIX, key_id_of, loopback_auth, marker_path};
use crate::error::{Code, Error, Result};
use arc_swap::ArcSwap;
use axum::http::HeaderMap;
use biscuit_auth::{AuthorizerBuilder, AuthorizerLimits, Biscuit, PublicKey, macros::*};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Tokens whose verification is remembered (the cache is emptied when full).
const CACHE_TOKENS: usize = 4096;
/// Models whose decision one token remembers.
const CACHE_MODELS: usize = 256;
/// The longest credential looked at.
const MAX_TOKEN_LEN: usize = 8192;
/// Blocks a token may have (ours have one; a holder may attenuate it with more).
const MAX_BLOCKS: usize = 8;

fn limits() -> AuthorizerLimits {
    AuthorizerLimits {
        max_facts: 1000,
        max_iterations: 100,
        // Generous against preemption on a loaded machine, still a bound.
        max_time: Duration::from_millis(50),
    }
}

/// Who a request is from (an extension of the request once authenticated).
#[derive(Clone)]
pub struct Client {
    pub id: i64,
    pub name: Arc<str>,
    verified: Arc<Verified>,
    now: SystemTime,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish()
    }
}

impl Client {
    /// Whether this client's token lets it use `model`: `model_not_allowed` if not.
    pub fn allow_model(&self, model: &str) -> Result<()> {
        if self.verified.allows(model, self.now) {
            Ok(())
        } else {
            Err(Error::new(
                Code::ModelNotAllowed,
                format!(
                    "the client token {:?} may not use model {:?}",
                    self.name,
                    crate::gateway::log::printable(model, 80)
                ),
            ))
        }
    }

    /// Whether `model` is within this client's scope (for listings).
    pub fn may_use(&self, model: &str) -> bool {
        self.verified.allows(model, self.now)
    }
}

/// A token whose signature checked, with what the gateway needs of it.
struct Verified {
    revocation_id: String,
    expires: Option<SystemTime>,
    biscuit: Biscuit,
    decisions: Mutex<HashMap<String, bool>>,
}

impl Verified {
    fn allows(&self, model: &str, now: SystemTime) -> bool {
        if let Some(&d) = self
            .decisions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(model)
        {
            return d;
        }
        let ok = authorize(&self.biscuit, model, now);
        let mut d = self.decisions.lock().unwrap_or_else(|p| p.into_inner());
        if d.len() < CACHE_MODELS {
            d.insert(model.to_string(), ok);
        }
        ok
    }
}

/// Run the token's checks with `time(now)` and `model(model)` as facts (parameters,
/// never text spliced into Datalog), under run limits.
fn authorize(b: &Biscuit, model: &str, now: SystemTime) -> bool {
    let built = AuthorizerBuilder::new()
        .fact(fact!("time({now})", now = now))
        .and_then(|a| a.fact(fact!("model({model})", model = model)))
        .and_then(|a| a.policy(policy!("allow if true")))
        .map(|a| a.set_limits(limits()))
        .and_then(|a| a.build(b));
    match built {
        Ok(mut a) => a.authorize().is_ok(),
        Err(_) => false,
    }
}

#[derive(Debug, Clone)]
struct ClientRow {
    id: i64,
    name: Arc<str>,
    revoked: bool,
}

#[derive(Default)]
struct Snapshot {
    /// The marker's (inode, size) when this snapshot was read.
    stamp: Option<(u64, u64)>,
    key: Option<(u32, PublicKey)>,
    loopback_auth: bool,
    clients: HashMap<String, ClientRow>,
}

pub struct Verifier {
    marker: PathBuf,
    db: DatabaseConnection,
    clock: fn() -> SystemTime,
    snap: ArcSwap<Snapshot>,
    reload: tokio::sync::Mutex<()>,
    cache: Mutex<HashMap<Box<str>, Arc<Verified>>>,
    /// Bound to a non-loopback address: tokens are required whatever the setting says.
    forced: AtomicBool,
}

fn stamp(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.ino(), m.size()))
}

/// The credential a request carries: `Authorization: Bearer`, `x-api-key` or `api-key`.
pub fn credential(headers: &HeaderMap) -> Option<&str> {
    if let Some(v) = headers.get("authorization").and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer ") {
            return Some(v[7..].trim());
        }
    }
    ["x-api-key", "api-key"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok())
        .map(str::trim)
}

fn auth_required() -> Error {
    Error::new(
        Code::AuthRequired,
        "this gateway needs a client token: send it as `Authorization: Bearer <token>` or \
         `x-api-key: <token>` (OPENAI_API_KEY / ANTHROPIC_API_KEY); `switchyard token issue NAME` makes one",
    )
}

impl Verifier {
    /// A verifier for the data dir's clients, reading `now` from `clock`.
    pub async fn new(
        db: DatabaseConnection,
        data_dir: &std::path::Path,
        clock: fn() -> SystemTime,
    ) -> Result<Verifier> {
        let v = Verifier {
            marker: marker_path(data_dir),
            db,
            clock,
            snap: ArcSwap::from_pointee(Snapshot::default()),
            reload: tokio::sync::Mutex::new(()),
            cache: Mutex::default(),
            forced: AtomicBool::new(false),
        };
        v.reload().await?;
        Ok(v)
    }

    /// Require tokens whatever the setting says (a non-loopback bind).
    pub fn force(&self) {
        self.forced.store(true, Ordering::Relaxed);
    }

    /// Whether requests need a token right now.
    pub fn required(&self) -> bool {
        self.forced.load(Ordering::Relaxed) || self.snap.load().loopback_auth
    }

    /// Re-read the clients and the signing key from the store (another process changed
    /// them), whatever the marker says.
    pub async fn reload(&self) -> Result<()> {
        let _g = self.reload.lock().await;
        self.reload_locked().await
    }

    async fn reload_locked(&self) -> Result<()> {
        // The stamp is taken before the reads: a change after it is seen next time.
        let stamp = stamp(&self.marker);
        let key = super::public_key(&self.db).await?;
        let loopback_auth = loopback_auth(&self.db).await?;
        let rows = self
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT id, name, revocation_id, revoked_at FROM clients",
            ))
            .await?;
        let mut clients = HashMap::with_capacity(rows.len());
        for r in rows {
            let id: i64 = r.try_get_by_index(0)?;
            let name: String = r.try_get_by_index(1)?;
            let rev: String = r.try_get_by_index(2)?;
            let revoked: Option<i64> = r.try_get_by_index(3)?;
            clients.insert(
                rev,
                ClientRow {
                    id,
                    name: name.into(),
                    revoked: revoked.is_some(),
                },
            );
        }
        let old = self.snap.load();
        if old.key.as_ref().map(|k| k.1.to_bytes()) != key.as_ref().map(|k| k.1.to_bytes()) {
            self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
        self.snap.store(Arc::new(Snapshot {
            stamp,
            key,
            loopback_auth,
            clients,
        }));
        Ok(())
    }

    /// Reload when the marker moved since the snapshot was read.
    async fn refresh(&self) -> Result<()> {
        if stamp(&self.marker) == self.snap.load().stamp {
            return Ok(());
        }
        let _g = self.reload.lock().await;
        if stamp(&self.marker) != self.snap.load().stamp {
            self.reload_locked().await?;
        }
        Ok(())
    }

    /// Who sent this request: `Ok(None)` when tokens are off and none was sent (or the
    /// one sent does not verify), else the client, or the reason it is refused.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Option<Client>> {
        self.refresh().await?;
        let required = self.required();
        let Some(token) = credential(headers) else {
            return if required {
                Err(auth_required())
            } else {
                Ok(None)
            };
        };
        match self.check(token) {
            Ok(c) => Ok(Some(c)),
            Err(e) if required => Err(e),
            // Tokens are off: an unknown credential is no reason to refuse.
            Err(_) => Ok(None),
        }
    }

    /// Verify `token` now (cached), then its revocation and expiry.
    pub fn check(&self, token: &str) -> Result<Client> {
        let snap = self.snap.load();
        let verified = self.verified(&snap, token)?;
        let Some(row) = snap.clients.get(&verified.revocation_id) else {
            return Err(Error::new(
                Code::TokenRevoked,
                "this client token's record is gone from this install (removed or replaced by a restored backup); issue a new one",
            ));
        };
        if row.revoked {
            return Err(Error::new(
                Code::TokenRevoked,
                format!("the client token {:?} was revoked", row.name),
            ));
        }
        let now = (self.clock)();
        if verified.expires.is_some_and(|e| now > e) {
            return Err(Error::new(
                Code::TokenExpired,
                format!(
                    "the client token {:?} has expired; issue a new one with `switchyard token issue NAME`",
                    row.name
                ),
            ));
        }
        Ok(Client {
            id: row.id,
            name: row.name.clone(),
            verified,
            now,
        })
    }

    fn verified(&self, snap: &Snapshot, token: &str) -> Result<Arc<Verified>> {
        if let Some(v) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
        {
            return Ok(v.clone());
        }
        let v = Arc::new(parse(snap.key.as_ref(), token)?);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_TOKENS {
            cache.clear();
        }
        cache.insert(token.into(), v.clone());
        Ok(v)
    }
}

fn invalid(msg: &str) -> Error {
    Error::new(
        Code::TokenInvalid,
        format!("the client token is not valid: {msg}"),
    )
}

/// Parse and check the signature of a token (uncached).
fn parse(key: Option<&(u32, PublicKey)>, token: &str) -> Result<Verified> {
    let Some(b64) = token.strip_prefix(TOKEN_PREFIX) else {
        return Err(invalid(
            "this is not a Switchyard client token (those start with `sy-`); `switchyard token issue NAME` makes one",
        ));
    };
    if token.len() > MAX_TOKEN_LEN {
        return Err(invalid("it is too long"));
    }
    let Some(&(our_id, our_key)) = key else {
        // No key here yet: whatever signed it, it was not this install.
        return Err(wrong_install());
    };
    let provider = move |kid: Option<u32>| {
        if kid == Some(our_id) {
            Ok(our_key)
        } else {
            Err(biscuit_auth::error::Format::UnknownPublicKey)
        }
    };
    let b = match Biscuit::from_base64(b64, provider) {
        Ok(b) => b,
        Err(biscuit_auth::error::Token::Format(biscuit_auth::error::Format::UnknownPublicKey)) => {
            return Err(wrong_install());
        }
        Err(_) => return Err(invalid("it is damaged or its signature does not check")),
    };
    if b.block_count() > MAX_BLOCKS {
        return Err(invalid("it has too many blocks"));
    }
    debug_assert_eq!(key_id_of(&our_key), our_id);
    let revocation_id = crate::vault::keys::hex(
        b.revocation_identifiers()
            .first()
            .ok_or_else(|| invalid("it has no revocation id"))?,
    );
    let expires = {
        let mut a = AuthorizerBuilder::new()
            .set_limits(limits())
            .build(&b)
            .map_err(|_| invalid("its facts cannot be read"))?;
        let found: Vec<(SystemTime,)> = a
            .query(rule!("data($e) <- expires($e)"))
            .map_err(|_| invalid("its facts cannot be read"))?;
        found.into_iter().map(|(t,)| t).min()
    };
    Ok(Verified {
        revocation_id,
        expires,
        biscuit: b,
        decisions: Mutex::default(),
    })
}

fn wrong_install() -> Error {
    Error::new(
        Code::TokenWrongInstall,
        "the client token was issued by another Switchyard install (another signing key); issue one here with `switchyard token issue NAME`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::{App, AppOptions, SharedApp};
    use crate::store::audit::Actor;
    use std::sync::atomic::AtomicU64;

    /// The injected clock: unix milliseconds, or 0 for the real time.
    static NOW_MS: AtomicU64 = AtomicU64::new(0);

    fn fake_now() -> SystemTime {
        match NOW_MS.load(Ordering::SeqCst) {
            0 => SystemTime::now(),
            ms => SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
        }
    }

    async fn open(dir: &std::path::Path) -> SharedApp {
        App::open(AppOptions {
            data_dir: Some(dir.to_path_buf()),
            vault: crate::vault::BackendKind::File,
        })
        .await
        .unwrap()
    }

    async fn verifier(app: &App) -> Verifier {
        Verifier::new(app.db.clone(), app.data_dir(), fake_now)
            .await
            .unwrap()
    }

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            value.parse().unwrap(),
        );
        h
    }

    fn code(r: Result<Client>) -> Code {
        r.map(|_| ()).unwrap_err().code
    }

    #[tokio::test]
    async fn scopes_are_the_tokens_own_checks_and_model_names_are_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let app = open(dir.path()).await;
        let t = super::super::issue(
            &app,
            "scoped",
            &["gpt-4.1*".into(), "claude-?-haiku".into()],
            None,
            Actor::Cli,
        )
        .await
        .unwrap();
        let v = verifier(&app).await;
        let c = v.check(&t.token).unwrap();
        assert_eq!(c.name.as_ref(), "scoped");
        for ok in ["gpt-4.1", "gpt-4.1-mini", "claude-3-haiku"] {
            assert!(c.allow_model(ok).is_ok(), "{ok}");
        }
        for no in [
            "gpt-4o",
            "gpt-4x1",         // `.` is a literal dot
            "xgpt-4.1",        // anchored
            "claude-35-haiku", // `?` is one character
            // Spliced into Datalog text, this would add a matching fact; as a parameter
            // it is one odd name.
            "gpt-4o\"), model(\"gpt-4.1",
            "",
        ] {
            assert_eq!(
                c.allow_model(no).unwrap_err().code,
                Code::ModelNotAllowed,
                "{no:?}"
            );
        }
        // A token without scopes may use any model.
        let all = super::super::issue(&app, "all", &[], None, Actor::Cli)
            .await
            .unwrap();
        v.reload().await.unwrap();
        assert!(v.check(&all.token).unwrap().allow_model("anything").is_ok());
    }

    #[tokio::test]
    async fn expiry_follows_the_injected_clock_in_rust_and_in_datalog() {
        let dir = tempfile::tempdir().unwrap();
        let app = open(dir.path()).await;
        let t = super::super::issue(
            &app,
            "short",
            &[],
            Some(Duration::from_secs(3600)),
            Actor::Cli,
        )
        .await
        .unwrap();
        let exp = t.expires_at.unwrap() as u64;
        let v = verifier(&app).await;
        NOW_MS.store(exp - 60_000, Ordering::SeqCst);
        let c = v.check(&t.token).unwrap();
        assert!(c.allow_model("m").is_ok());
        NOW_MS.store(exp + 1_000, Ordering::SeqCst);
        assert_eq!(code(v.check(&t.token)), Code::TokenExpired);
        // The token's own check refuses too, should the Rust check ever be skipped.
        let late = Client {
            now: fake_now(),
            ..c
        };
        assert_eq!(
            late.allow_model("other").unwrap_err().code,
            Code::ModelNotAllowed
        );
        NOW_MS.store(0, Ordering::SeqCst);
    }

    #[tokio::test]
    async fn damaged_foreign_and_missing_tokens_each_have_their_code() {
        let dir = tempfile::tempdir().unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        let app = open(dir.path()).await;
        let other = open(other_dir.path()).await;
        // Before this install has a key, every token is another install's.
        let foreign = super::super::issue(&other, "elsewhere", &[], None, Actor::Cli)
            .await
            .unwrap();
        let v = verifier(&app).await;
        assert_eq!(code(v.check(&foreign.token)), Code::TokenWrongInstall);
        let t = super::super::issue(&app, "mine", &[], None, Actor::Cli)
            .await
            .unwrap();
        assert_eq!(code(v.check(&foreign.token)), Code::TokenWrongInstall);
        v.reload().await.unwrap();
        assert!(v.check(&t.token).is_ok());
        assert_eq!(code(v.check(&foreign.token)), Code::TokenWrongInstall);

        let mut bytes = t.token.clone().into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        for bad in [
            tampered.as_str(),
            &t.token[..t.token.len() - 10],
            "sy-",
            "sy-!!!!",
            "sk-proj-0123456789",
            &format!("sy-{}", "A".repeat(MAX_TOKEN_LEN)),
        ] {
            assert_eq!(code(v.check(bad)), Code::TokenInvalid, "{bad:.40}");
        }

        // Headers: a missing credential is auth_required; all three header forms work.
        let e = v.authenticate(&HeaderMap::new()).await.unwrap_err();
        assert_eq!(e.code, Code::AuthRequired);
        for (h, val) in [
            ("authorization", format!("Bearer {}", t.token)),
            ("authorization", format!("bearer  {}", t.token)),
            ("x-api-key", t.token.clone()),
            ("api-key", t.token.clone()),
        ] {
            let c = v.authenticate(&headers(h, &val)).await.unwrap().unwrap();
            assert_eq!(c.name.as_ref(), "mine", "{h}");
        }
    }

    #[tokio::test]
    async fn revocation_and_the_access_setting_hold_from_the_next_request() {
        let dir = tempfile::tempdir().unwrap();
        let app = open(dir.path()).await;
        let t = super::super::issue(&app, "soon-gone", &[], None, Actor::Cli)
            .await
            .unwrap();
        let v = verifier(&app).await;
        let h = headers("x-api-key", &t.token);
        assert!(v.authenticate(&h).await.unwrap().is_some());
        // No reload called: the marker tells the verifier.
        super::super::revoke(&app, t.id, Actor::Cli).await.unwrap();
        assert_eq!(
            v.authenticate(&h).await.unwrap_err().code,
            Code::TokenRevoked
        );

        super::super::set_loopback_auth(&app, false, Actor::Cli)
            .await
            .unwrap();
        assert!(v.authenticate(&HeaderMap::new()).await.unwrap().is_none());
        // Off, a revoked token is no reason to refuse, but it identifies nobody.
        assert!(v.authenticate(&h).await.unwrap().is_none());
        // A non-loopback bind forces tokens on whatever the setting.
        v.force();
        assert_eq!(
            v.authenticate(&HeaderMap::new()).await.unwrap_err().code,
            Code::AuthRequired
        );
    }
}
