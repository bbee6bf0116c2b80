//! The vault: seals secret columns (provider API keys, later token signing keys) with
//! data keys wrapped by a root secret that lives in the OS keychain (or the explicit
//! file vault). See security.md "Keys and envelope" and "Rotation".
//!
//! Invariants this module keeps:
//! - `vault_meta.root_id` names the one root that decrypts the database, at every
//!   instant. A root item is written to the keychain *before* the database points at
//!   it and deleted only *after* the database stopped pointing at it; the journal row
//!   (`vault_meta.root_journal`) lets the next start finish or roll back whatever a
//!   kill -9 interrupted.
//! - Once a root id is recorded, a missing root is never replaced while secrets exist:
//!   that fails closed with `vault_root_missing`.
//! - Every secret is sealed under the one `active` data key; `keys rotate --data`
//!   re-encrypts all of them and retires (shreds) the old key in one transaction.
//! - Keychain calls block and run on tokio's blocking pool, never on the executor.
//! - Writers of key material hold `vault.lock` (an `flock`, released by the kernel
//!   when a process dies) so two processes never rotate at once.

pub mod backend;
pub mod columns;
pub mod envelope;
pub mod keys;
pub mod secret;

pub use backend::{BackendKind, FILE_VAULT_HINT, RootStore, set_process_default};
pub use envelope::SecretContext;
pub use secret::{SecretBytes, SecretString};

use crate::error::{Code, Error, Result};
use crate::store::{self, audit::Actor};
use backend::FileLock;
use keys::{DATA_KEY_PURPOSE, DataKey, PURPOSE_WRAP, RootId, RootSecret};
use ring::aead::LessSafeKey;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `vault_meta` keys.
const META_INSTALL_ID: &str = "install_id";
const META_ROOT_ID: &str = "root_id";
const META_ROOT_BACKEND: &str = "root_backend";
const META_JOURNAL: &str = "root_journal";

/// The vault lock file in the data dir.
pub const LOCK_FILE: &str = "vault.lock";
/// How long a writer waits for another process's rotation before `vault_busy`.
const LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The vault of one process. Cheap to build; the keychain is first touched when a
/// secret is sealed or opened (or a rotation/recovery runs).
pub struct Vault {
    store: Arc<RootStore>,
    lock_path: PathBuf,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    root: Option<Arc<LoadedRoot>>,
    data_keys: HashMap<u32, Arc<LessSafeKey>>,
}

/// The root in use, reduced to what the process needs: its id, fingerprint and the
/// HKDF wrapping key (the raw root is dropped — zeroized — right after derivation).
struct LoadedRoot {
    id: RootId,
    fingerprint: String,
    wrap: LessSafeKey,
}

/// The journal of a root change, in `vault_meta.root_journal` while one is under way.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
struct Journal {
    /// `init` (first root, or a new one replacing a missing root with no secrets) or `rotate_root`.
    op: String,
    old: Option<String>,
    new: String,
    /// `begin` (new item may exist, DB not switched) or `switched` (DB uses `new`).
    step: String,
}

#[derive(Debug, Default)]
struct Meta {
    install_id: Option<Vec<u8>>,
    root_id: Option<RootId>,
    root_backend: Option<String>,
    journal: Option<Journal>,
}

/// What `keys rotate --data` did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DataRotation {
    pub old_key_ids: Vec<String>,
    pub new_key_id: String,
    pub secrets: u64,
    pub elapsed_ms: f64,
}

/// What `keys rotate --root` did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RootRotation {
    pub old_root_id: String,
    pub new_root_id: String,
    pub old_fingerprint: String,
    pub new_fingerprint: String,
    pub data_keys: u64,
    /// False when the keychain refused to delete the old item; it is retried at the
    /// next start.
    pub old_root_deleted: bool,
}

/// What start-up recovery did with an interrupted root change.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Recovery {
    pub op: String,
    /// `finished` (the DB had switched: the old item was deleted) or `rolled_back`
    /// (the DB had not switched: the new item was deleted).
    pub action: String,
    pub root_id: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct DataKeyInfo {
    pub key_id: String,
    pub purpose: String,
    pub state: String,
    pub root_id: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// Secrets currently sealed under this key.
    pub secrets: u64,
}

/// `keys status`: what protects the secrets, without revealing any.
#[derive(Debug, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct VaultStatus {
    pub backend: BackendKind,
    pub store: String,
    /// `ok` (root readable), `none` (no root yet), `missing`, `unavailable`, `corrupt`.
    pub root_state: &'static str,
    pub root_id: Option<String>,
    pub fingerprint: Option<String>,
    /// The backend the root was created with, when recorded.
    pub root_backend: Option<String>,
    pub data_keys: Vec<DataKeyInfo>,
    pub secrets: u64,
    pub rotation_pending: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub warning: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(test, ts(optional))]
    pub problem: Option<Error>,
    /// When a backup was last exported (`null`: never — the UI's backup reminder).
    pub last_backup_at: Option<i64>,
}

impl Vault {
    /// Build the vault for `kind` over `data_dir`. Touches neither keychain nor database.
    pub fn new(kind: BackendKind, data_dir: &Path) -> Result<Self> {
        Ok(Vault {
            store: Arc::new(RootStore::new(kind, data_dir)?),
            lock_path: data_dir.join(LOCK_FILE),
            cache: Mutex::new(Cache::default()),
        })
    }

    pub fn backend(&self) -> BackendKind {
        self.store.kind()
    }

    /// The root store (tests list the file vault's items through it).
    pub fn root_store(&self) -> &RootStore {
        &self.store
    }

    /// Run a blocking keychain call on the blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&RootStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .map_err(|e| Error::internal(format!("keychain call panicked: {e}")))?
    }

    /// Take the vault lock, waiting up to 30 s for another process's rotation.
    async fn lock(&self) -> Result<FileLock> {
        let deadline = tokio::time::Instant::now() + LOCK_TIMEOUT;
        loop {
            match FileLock::try_exclusive(&self.lock_path) {
                Ok(Some(l)) => return Ok(l),
                Ok(None) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Ok(None) => {
                    return Err(Error::new(
                        Code::VaultBusy,
                        "another Switchyard process has held the vault lock for 30 s (a key rotation?); try again when it has finished",
                    ));
                }
                Err(e) => {
                    return Err(Error::new(
                        Code::DataDirUnavailable,
                        format!(
                            "cannot open the vault lock {}: {e}",
                            self.lock_path.display()
                        ),
                    ));
                }
            }
        }
    }

    // ----------------------------------------------------------------- metadata

    async fn read_meta<C: ConnectionTrait>(conn: &C) -> Result<Meta> {
        let rows = conn
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT key, value FROM vault_meta",
            ))
            .await?;
        let mut m = Meta::default();
        for r in rows {
            let k: String = r.try_get_by_index(0)?;
            let v: String = r.try_get_by_index(1)?;
            match k.as_str() {
                META_INSTALL_ID => {
                    m.install_id = Some(keys::unhex(&v).ok_or_else(|| {
                        Error::new(
                            Code::VaultCorrupt,
                            "the install id in vault_meta is not hex",
                        )
                    })?)
                }
                META_ROOT_ID => m.root_id = Some(RootId::parse(&v)?),
                META_ROOT_BACKEND => m.root_backend = Some(v),
                META_JOURNAL => {
                    m.journal = Some(serde_json::from_str(&v).map_err(|e| {
                        Error::new(
                            Code::VaultCorrupt,
                            format!("the root rotation journal is unreadable: {e}"),
                        )
                    })?)
                }
                _ => {}
            }
        }
        Ok(m)
    }

    async fn set_meta<C: ConnectionTrait>(conn: &C, key: &str, value: &str) -> Result<()> {
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO vault_meta (key, value) VALUES (?, ?) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [key.into(), value.into()],
        ))
        .await?;
        Ok(())
    }

    async fn delete_meta<C: ConnectionTrait>(conn: &C, key: &str) -> Result<()> {
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "DELETE FROM vault_meta WHERE key = ?",
            [key.into()],
        ))
        .await?;
        Ok(())
    }

    async fn set_journal<C: ConnectionTrait>(conn: &C, j: &Journal) -> Result<()> {
        Self::set_meta(conn, META_JOURNAL, &serde_json::to_string(j)?).await
    }

    // ----------------------------------------------------------------- the root

    fn root_missing(&self, id: RootId, meta: &Meta) -> Error {
        let mut msg = format!(
            "the database's secrets are sealed under root {id}, but {} has no item `{}` — refusing to create a new root, which would make every stored key unreadable",
            self.store.description(),
            id.account()
        );
        match meta.root_backend.as_deref() {
            Some(b) if b != self.store.kind().as_str() => msg.push_str(&format!(
                "; the root was created with `--vault {b}`: start Switchyard with `--vault {b}` (or SWITCHYARD_VAULT={b})"
            )),
            _ => msg.push_str(
                "; to start over, remove each provider's stored key (`switchyard provider add NAME --kind KIND --no-key`, or the Providers page) and enter the keys again, or restore a backup into a new data dir (`switchyard --data-dir NEW_DIR backup import FILE --apply`)",
            ),
        }
        Error::new(Code::VaultRootMissing, msg)
    }

    /// The root the database uses (per `meta`), loaded from the keychain once per process.
    /// `Ok(None)` when no root was ever created.
    async fn load_root(&self, meta: &Meta) -> Result<Option<Arc<LoadedRoot>>> {
        let Some(id) = meta.root_id else {
            return Ok(None);
        };
        if let Some(r) = self.cache.lock().expect("vault cache").root.clone()
            && r.id == id
        {
            return Ok(Some(r));
        }
        let salt = meta.install_id.clone().ok_or_else(|| {
            Error::new(
                Code::VaultCorrupt,
                "vault_meta has a root id but no install id",
            )
        })?;
        let root = self.blocking(move |s| s.get_root(id)).await?;
        let Some(root) = root else {
            return Err(self.root_missing(id, meta));
        };
        let loaded = Arc::new(LoadedRoot {
            id,
            fingerprint: root.fingerprint(),
            wrap: root.purpose_key(&salt, PURPOSE_WRAP),
        });
        self.cache.lock().expect("vault cache").root = Some(loaded.clone());
        Ok(Some(loaded))
    }

    /// The root that wrapped a data key, checked against the database's current root.
    async fn root_for<C: ConnectionTrait>(&self, conn: &C, id: RootId) -> Result<Arc<LoadedRoot>> {
        if let Some(r) = self.cache.lock().expect("vault cache").root.clone()
            && r.id == id
        {
            return Ok(r);
        }
        let meta = Self::read_meta(conn).await?;
        if meta.root_id != Some(id) {
            return Err(Error::new(
                Code::VaultCorrupt,
                format!(
                    "a data key is wrapped by root {id} but the database's root is {}",
                    meta.root_id.map(|r| r.to_string()).unwrap_or("none".into())
                ),
            ));
        }
        self.load_root(&meta)
            .await?
            .ok_or_else(|| Error::internal("root vanished while loading"))
    }

    /// Make sure a root and an active data key exist, creating them on first use (or
    /// replacing a missing root when — and only when — no secret is sealed). Call it
    /// before opening the write transaction in which [`seal`](Self::seal) runs.
    pub async fn prepare(&self, db: &DatabaseConnection) -> Result<()> {
        let meta = Self::read_meta(db).await?;
        if meta.journal.is_some() {
            self.recover(db).await?;
        }
        let meta = Self::read_meta(db).await?;
        match self.load_root(&meta).await {
            Ok(Some(_)) => {}
            // No root named: a first run — unless secrets are sealed already, which
            // means the vault's metadata was lost or tampered with. A new root would
            // never decrypt them: fail closed and say so.
            Ok(None) => {
                let sealed = count_secrets(db).await?;
                if sealed != 0 {
                    return Err(Error::new(
                        Code::VaultCorrupt,
                        format!(
                            "the database holds {sealed} sealed secret(s) but names no vault root \
                             (vault_meta.root_id is missing); refusing to create a new root that \
                             could not decrypt them — restore the database or a backup"
                        ),
                    ));
                }
                self.init_root(db, false).await?
            }
            Err(e) if e.code == Code::VaultRootMissing && count_secrets(db).await? == 0 => {
                tracing::warn!(
                    "the vault's root is missing and no secret is sealed; creating a new root"
                );
                self.init_root(db, true).await?
            }
            Err(e) => return Err(e),
        }
        self.ensure_data_key(db).await
    }

    /// Create the first root (or a replacement for a missing one when no secret
    /// depends on it), journaled like a rotation.
    async fn init_root(&self, db: &DatabaseConnection, replace_missing: bool) -> Result<()> {
        let _lock = self.lock().await?;
        self.recover_locked(db).await?;
        let meta = Self::read_meta(db).await?;
        // Another process may have done it while we waited for the lock.
        match self.load_root(&meta).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            Err(e) if replace_missing && e.code == Code::VaultRootMissing => {
                if count_secrets(db).await? != 0 {
                    return Err(e);
                }
            }
            Err(e) => return Err(e),
        }
        let new_id = loop {
            let id = RootId(keys::random_id()?);
            if Some(id) != meta.root_id {
                break id;
            }
        };
        let root = RootSecret::generate()?;
        let salt = match &meta.install_id {
            Some(s) => s.clone(),
            None => {
                let mut s = vec![0u8; 16];
                keys::random_bytes(&mut s)?;
                s
            }
        };
        let journal = Journal {
            op: "init".into(),
            old: meta.root_id.map(|r| r.to_string()),
            new: new_id.to_string(),
            step: "begin".into(),
        };
        let txn = store::begin_immediate(db).await?;
        Self::set_meta(&txn, META_INSTALL_ID, &keys::hex(&salt)).await?;
        Self::set_journal(&txn, &journal).await?;
        txn.commit().await?;

        let fingerprint = root.fingerprint();
        let wrap = root.purpose_key(&salt, PURPOSE_WRAP);
        if let Err(e) = self.blocking(move |s| s.put_root(new_id, &root)).await {
            let _ = self.recover_locked(db).await;
            return Err(e);
        }

        let txn = store::begin_immediate(db).await?;
        if replace_missing {
            txn.execute_unprepared("DELETE FROM vault_keys").await?;
        }
        Self::set_meta(&txn, META_ROOT_ID, &new_id.to_string()).await?;
        Self::set_meta(&txn, META_ROOT_BACKEND, self.store.kind().as_str()).await?;
        Self::delete_meta(&txn, META_JOURNAL).await?;
        store::audit::record(
            &txn,
            Actor::System,
            "vault.init",
            Some(&new_id.to_string()),
            serde_json::json!({
                "backend": self.store.kind().as_str(),
                "fingerprint": fingerprint,
                "replaced_missing_root": replace_missing,
            }),
        )
        .await?;
        txn.commit().await?;
        let mut c = self.cache.lock().expect("vault cache");
        c.data_keys.clear();
        c.root = Some(Arc::new(LoadedRoot {
            id: new_id,
            fingerprint,
            wrap,
        }));
        Ok(())
    }

    async fn active_key_id<C: ConnectionTrait>(conn: &C) -> Result<Option<u32>> {
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT key_id FROM vault_keys WHERE purpose = ? AND state = 'active' ORDER BY created_at DESC LIMIT 1",
                [DATA_KEY_PURPOSE.into()],
            ))
            .await?;
        Ok(match row {
            Some(r) => Some(key_id_from_db(r.try_get_by_index::<i64>(0)?)?),
            None => None,
        })
    }

    async fn ensure_data_key(&self, db: &DatabaseConnection) -> Result<()> {
        if Self::active_key_id(db).await?.is_some() {
            return Ok(());
        }
        let _lock = self.lock().await?;
        let meta = Self::read_meta(db).await?;
        let root = self
            .load_root(&meta)
            .await?
            .ok_or_else(|| Error::internal("no root after prepare"))?;
        let txn = store::begin_immediate(db).await?;
        if Self::active_key_id(&txn).await?.is_some() {
            return Ok(());
        }
        let (key_id, cipher) = self.insert_data_key(&txn, &root).await?;
        store::audit::record(
            &txn,
            Actor::System,
            "vault.data_key.create",
            Some(&format!("{key_id:08x}")),
            serde_json::json!({ "root_id": root.id.to_string() }),
        )
        .await?;
        txn.commit().await?;
        self.cache
            .lock()
            .expect("vault cache")
            .data_keys
            .insert(key_id, Arc::new(cipher));
        Ok(())
    }

    /// Insert a fresh active data key wrapped under `root`; returns its id and cipher.
    async fn insert_data_key<C: ConnectionTrait>(
        &self,
        conn: &C,
        root: &LoadedRoot,
    ) -> Result<(u32, LessSafeKey)> {
        let meta = Self::read_meta(conn).await?;
        if meta.root_id != Some(root.id) {
            return Err(Error::new(
                Code::VaultBusy,
                "the vault's root changed while a data key was being created; try again",
            ));
        }
        let key_id = loop {
            let id = keys::random_id()?;
            let exists = conn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "SELECT 1 FROM vault_keys WHERE key_id = ?",
                    [i64::from(id).into()],
                ))
                .await?
                .is_some();
            if !exists {
                break id;
            }
        };
        let dk = DataKey::generate()?;
        let wrapped = dk.wrap(&root.wrap, root.id, key_id, keys::random_nonce()?);
        conn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO vault_keys (key_id, purpose, state, root_id, wrapped, created_at) VALUES (?, ?, 'active', ?, ?, ?)",
            [
                i64::from(key_id).into(),
                DATA_KEY_PURPOSE.into(),
                root.id.to_string().into(),
                wrapped.into(),
                store::now_ms().into(),
            ],
        ))
        .await?;
        Ok((key_id, dk.cipher()))
    }

    /// The data key `key_id`, unwrapped once per process.
    async fn data_key<C: ConnectionTrait>(
        &self,
        conn: &C,
        key_id: u32,
    ) -> Result<Arc<LessSafeKey>> {
        if let Some(k) = self
            .cache
            .lock()
            .expect("vault cache")
            .data_keys
            .get(&key_id)
        {
            return Ok(k.clone());
        }
        let row = conn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT state, root_id, wrapped FROM vault_keys WHERE key_id = ?",
                [i64::from(key_id).into()],
            ))
            .await?
            .ok_or_else(|| {
                Error::new(
                    Code::VaultDecryptFailed,
                    format!(
                        "a sealed value names data key {key_id:08x}, which this vault does not have"
                    ),
                )
            })?;
        let state: String = row.try_get_by_index(0)?;
        let root_id: String = row.try_get_by_index(1)?;
        let wrapped: Vec<u8> = row.try_get_by_index(2)?;
        if state == "retired" || wrapped.is_empty() {
            return Err(Error::new(
                Code::VaultDecryptFailed,
                format!(
                    "a sealed value names data key {key_id:08x}, which was retired and destroyed"
                ),
            ));
        }
        let root = self.root_for(conn, RootId::parse(&root_id)?).await?;
        let dk = DataKey::unwrap(&root.wrap, root.id, key_id, &wrapped)?;
        let cipher = Arc::new(dk.cipher());
        self.cache
            .lock()
            .expect("vault cache")
            .data_keys
            .insert(key_id, cipher.clone());
        Ok(cipher)
    }

    // ----------------------------------------------------------------- seal / open

    /// Seal `plaintext` for `ctx` under the active data key. Runs inside the caller's
    /// write transaction (pass it as `conn`), after [`prepare`](Self::prepare).
    pub async fn seal<C: ConnectionTrait>(
        &self,
        conn: &C,
        ctx: &SecretContext,
        plaintext: &[u8],
    ) -> Result<Vec<u8>> {
        let key_id = Self::active_key_id(conn).await?.ok_or_else(|| {
            Error::internal("the vault has no active data key: call Vault::prepare before sealing")
        })?;
        let key = self.data_key(conn, key_id).await?;
        Ok(envelope::seal(
            &key,
            key_id,
            keys::random_nonce()?,
            &ctx.to_bytes(),
            plaintext,
        ))
    }

    /// Open a sealed value stored at `ctx`. Fails with `vault_decrypt_failed` when it
    /// was altered or moved, `vault_root_missing` / `vault_unavailable` when the root
    /// cannot be read.
    /// Forget every unwrapped data key (the next use unwraps it again from the
    /// database). Called when another process changed the settings, so a key it
    /// retired in a rotation does not live on in this process's memory.
    pub fn forget_data_keys(&self) {
        self.cache.lock().expect("vault cache").data_keys.clear();
    }

    pub async fn open<C: ConnectionTrait>(
        &self,
        conn: &C,
        ctx: &SecretContext,
        sealed: &[u8],
    ) -> Result<SecretBytes> {
        let h = envelope::parse_header(sealed)?;
        let key = self.data_key(conn, h.key_id).await?;
        envelope::open(&key, sealed, &ctx.to_bytes())
    }

    // ----------------------------------------------------------------- rotation

    /// `keys rotate --data`: a new data key; every secret re-encrypted under it and the
    /// old key retired (its wrapped bytes destroyed), all in one `BEGIN IMMEDIATE`
    /// transaction — a kill at any point leaves either the old or the new state.
    pub async fn rotate_data(&self, db: &DatabaseConnection, actor: Actor) -> Result<DataRotation> {
        self.prepare(db).await?;
        let _lock = self.lock().await?;
        self.recover_locked(db).await?;
        let meta = Self::read_meta(db).await?;
        let root = self
            .load_root(&meta)
            .await?
            .ok_or_else(|| Error::internal("no root after prepare"))?;
        let started = std::time::Instant::now();
        tracing::debug!("vault: rotate-data: begin");
        let txn = store::begin_immediate(db).await?;
        let old: Vec<u32> = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT key_id FROM vault_keys WHERE purpose = ? AND state != 'retired'",
                [DATA_KEY_PURPOSE.into()],
            ))
            .await?
            .into_iter()
            .map(|r| key_id_from_db(r.try_get_by_index::<i64>(0)?))
            .collect::<Result<_>>()?;
        for id in &old {
            // Unwrap the old keys now, while they still exist.
            self.data_key(&txn, *id).await?;
        }
        let (new_id, cipher) = self.insert_data_key(&txn, &root).await?;
        let mut count = 0u64;
        for col in columns::ALL {
            let rows = col.rows(&txn).await?;
            let mut updates = Vec::with_capacity(rows.len());
            for row in rows {
                let ctx = row.context()?;
                let plain = self.open(&txn, &ctx, &row.sealed).await.map_err(|e| {
                    Error::new(
                        e.code,
                        format!(
                            "{} (row {} of {}.{}); nothing was changed",
                            e.message,
                            row.id,
                            col.table(),
                            col.column()
                        ),
                    )
                })?;
                let sealed = envelope::seal(
                    &cipher,
                    new_id,
                    keys::random_nonce()?,
                    &ctx.to_bytes(),
                    plain.expose(),
                );
                updates.push((row.id, sealed));
            }
            count += updates.len() as u64;
            col.update_many(&txn, updates).await?;
        }
        let now = store::now_ms();
        for id in &old {
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "UPDATE vault_keys SET state = 'retired', retired_at = ?, wrapped = x'' WHERE key_id = ?",
                [now.into(), i64::from(*id).into()],
            ))
            .await?;
        }
        let old_hex: Vec<String> = old.iter().map(|k| format!("{k:08x}")).collect();
        store::audit::record(
            &txn,
            actor,
            "vault.rotate_data",
            Some(&format!("{new_id:08x}")),
            serde_json::json!({ "retired": old_hex, "secrets": count }),
        )
        .await?;
        txn.commit().await?;
        tracing::debug!("vault: rotate-data: committed");
        {
            let mut c = self.cache.lock().expect("vault cache");
            for id in &old {
                c.data_keys.remove(id);
            }
            c.data_keys.insert(new_id, Arc::new(cipher));
        }
        Ok(DataRotation {
            old_key_ids: old_hex,
            new_key_id: format!("{new_id:08x}"),
            secrets: count,
            elapsed_ms: started.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// `keys rotate --root`, journaled: (1) journal + new root under a new account,
    /// (2) re-wrap the data keys and switch `root_id` in one transaction, (3) delete
    /// the old item, (4) clear the journal. [`recover`](Self::recover) completes or
    /// undoes an interrupted run.
    pub async fn rotate_root(&self, db: &DatabaseConnection, actor: Actor) -> Result<RootRotation> {
        self.prepare(db).await?;
        let _lock = self.lock().await?;
        self.recover_locked(db).await?;
        let meta = Self::read_meta(db).await?;
        let old = self
            .load_root(&meta)
            .await?
            .ok_or_else(|| Error::internal("no root after prepare"))?;
        let salt = meta
            .install_id
            .clone()
            .ok_or_else(|| Error::new(Code::VaultCorrupt, "vault_meta has no install id"))?;
        let new_id = loop {
            let id = RootId(keys::random_id()?);
            if id != old.id {
                break id;
            }
        };
        let new_root = RootSecret::generate()?;
        let new_fp = new_root.fingerprint();
        let new_wrap = new_root.purpose_key(&salt, PURPOSE_WRAP);
        let mut journal = Journal {
            op: "rotate_root".into(),
            old: Some(old.id.to_string()),
            new: new_id.to_string(),
            step: "begin".into(),
        };

        tracing::debug!("vault: rotate-root: begin");
        let txn = store::begin_immediate(db).await?;
        Self::set_journal(&txn, &journal).await?;
        txn.commit().await?;
        tracing::debug!("vault: rotate-root: journal written");

        if let Err(e) = self.blocking(move |s| s.put_root(new_id, &new_root)).await {
            let _ = self.recover_locked(db).await;
            return Err(e);
        }
        tracing::debug!("vault: rotate-root: new root stored");

        let txn = store::begin_immediate(db).await?;
        if Self::read_meta(&txn).await?.root_id != Some(old.id) {
            return Err(Error::new(
                Code::VaultBusy,
                "the vault's root changed during the rotation; try again",
            ));
        }
        let rows = txn
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT key_id, wrapped FROM vault_keys WHERE length(wrapped) > 0",
            ))
            .await?;
        let mut rewrapped = 0u64;
        for r in rows {
            let key_id = key_id_from_db(r.try_get_by_index::<i64>(0)?)?;
            let wrapped: Vec<u8> = r.try_get_by_index(1)?;
            let dk = DataKey::unwrap(&old.wrap, old.id, key_id, &wrapped)?;
            let again = dk.wrap(&new_wrap, new_id, key_id, keys::random_nonce()?);
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "UPDATE vault_keys SET wrapped = ?, root_id = ? WHERE key_id = ?",
                [
                    again.into(),
                    new_id.to_string().into(),
                    i64::from(key_id).into(),
                ],
            ))
            .await?;
            rewrapped += 1;
        }
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "UPDATE vault_keys SET root_id = ? WHERE length(wrapped) = 0",
            [new_id.to_string().into()],
        ))
        .await?;
        Self::set_meta(&txn, META_ROOT_ID, &new_id.to_string()).await?;
        Self::set_meta(&txn, META_ROOT_BACKEND, self.store.kind().as_str()).await?;
        journal.step = "switched".into();
        Self::set_journal(&txn, &journal).await?;
        store::audit::record(
            &txn,
            actor,
            "vault.rotate_root",
            Some(&new_id.to_string()),
            serde_json::json!({
                "old_root_id": old.id.to_string(),
                "old_fingerprint": old.fingerprint,
                "new_fingerprint": new_fp,
                "data_keys": rewrapped,
            }),
        )
        .await?;
        txn.commit().await?;
        tracing::debug!("vault: rotate-root: database switched");
        self.cache.lock().expect("vault cache").root = Some(Arc::new(LoadedRoot {
            id: new_id,
            fingerprint: new_fp.clone(),
            wrap: new_wrap,
        }));

        // The rotation has happened; what is left is clean-up. If the keychain fails
        // now, the journal stays and the next start (or vault write) deletes the item.
        let old_id = old.id;
        let old_root_deleted = match self.blocking(move |s| s.delete_root(old_id)).await {
            Ok(_) => {
                tracing::debug!("vault: rotate-root: old root deleted");
                let txn = store::begin_immediate(db).await?;
                Self::delete_meta(&txn, META_JOURNAL).await?;
                txn.commit().await?;
                true
            }
            Err(e) => {
                tracing::warn!(
                    "the new root is in use, but the old keychain item {} could not be deleted yet ({}): {}",
                    old_id.account(),
                    e.code,
                    e.message
                );
                false
            }
        };
        tracing::debug!("vault: rotate-root: done");
        Ok(RootRotation {
            old_root_id: old.id.to_string(),
            new_root_id: new_id.to_string(),
            old_fingerprint: old.fingerprint.clone(),
            new_fingerprint: new_fp,
            data_keys: rewrapped,
            old_root_deleted,
        })
    }

    /// Finish or roll back a root change interrupted by a crash. Cheap when there is
    /// nothing to do (one query, no keychain access). Called at start-up.
    pub async fn recover(&self, db: &DatabaseConnection) -> Result<Option<Recovery>> {
        if Self::read_meta(db).await?.journal.is_none() {
            return Ok(None);
        }
        let _lock = self.lock().await?;
        self.recover_locked(db).await
    }

    async fn recover_locked(&self, db: &DatabaseConnection) -> Result<Option<Recovery>> {
        let meta = Self::read_meta(db).await?;
        let Some(j) = meta.journal.clone() else {
            return Ok(None);
        };
        let new = RootId::parse(&j.new)?;
        let old = j.old.as_deref().map(RootId::parse).transpose()?;
        let action = if meta.root_id == Some(new) {
            // The database switched: only the old item may be left to delete.
            if let (Some(old), "rotate_root") = (old, j.op.as_str()) {
                self.blocking(move |s| s.delete_root(old)).await?;
            }
            "finished"
        } else if meta.root_id == old {
            // The database never switched: the new item (if written) is an orphan.
            self.blocking(move |s| s.delete_root(new)).await?;
            "rolled_back"
        } else {
            return Err(Error::new(
                Code::VaultCorrupt,
                format!(
                    "the root journal ({} → {}) matches neither the database's root ({})",
                    j.old.as_deref().unwrap_or("none"),
                    j.new,
                    meta.root_id.map(|r| r.to_string()).unwrap_or("none".into())
                ),
            ));
        };
        let txn = store::begin_immediate(db).await?;
        Self::delete_meta(&txn, META_JOURNAL).await?;
        store::audit::record(
            &txn,
            Actor::System,
            "vault.recover",
            meta.root_id.map(|r| r.to_string()).as_deref(),
            serde_json::json!({ "op": j.op, "action": action, "old": j.old, "new": j.new }),
        )
        .await?;
        txn.commit().await?;
        tracing::info!(op = %j.op, action, "vault: recovered an interrupted root change");
        Ok(Some(Recovery {
            op: j.op,
            action: action.into(),
            root_id: meta.root_id.map(|r| r.to_string()),
        }))
    }

    // ----------------------------------------------------------------- status

    /// The fingerprint of the root in use (`None` before the first secret), reading
    /// the keychain if this process has not yet.
    pub async fn fingerprint(&self, db: &DatabaseConnection) -> Result<Option<String>> {
        let meta = Self::read_meta(db).await?;
        Ok(self.load_root(&meta).await?.map(|r| r.fingerprint.clone()))
    }

    /// Everything `keys status` and `doctor` show. Problems reading the root are
    /// reported in `root_state`/`problem`, not as an error, so the rest is still shown.
    pub async fn status(&self, db: &DatabaseConnection) -> Result<VaultStatus> {
        let meta = Self::read_meta(db).await?;
        let (root_state, fingerprint, problem) = match self.load_root(&meta).await {
            Ok(Some(r)) => ("ok", Some(r.fingerprint.clone()), None),
            Ok(None) => ("none", None, None),
            Err(e) => (
                match e.code {
                    Code::VaultRootMissing => "missing",
                    Code::VaultUnavailable => "unavailable",
                    _ => "corrupt",
                },
                None,
                Some(e),
            ),
        };
        let mut per_key: HashMap<u32, u64> = HashMap::new();
        let mut secrets = 0u64;
        for col in columns::ALL {
            for row in col.rows(db).await? {
                secrets += 1;
                if let Ok(h) = envelope::parse_header(&row.sealed) {
                    *per_key.entry(h.key_id).or_default() += 1;
                }
            }
        }
        let rows = db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT key_id, purpose, state, root_id, created_at, retired_at FROM vault_keys ORDER BY created_at, key_id",
            ))
            .await?;
        let mut data_keys = Vec::with_capacity(rows.len());
        for r in rows {
            let id = key_id_from_db(r.try_get_by_index::<i64>(0)?)?;
            data_keys.push(DataKeyInfo {
                key_id: format!("{id:08x}"),
                purpose: r.try_get_by_index(1)?,
                state: r.try_get_by_index(2)?,
                root_id: r.try_get_by_index(3)?,
                created_at: r.try_get_by_index(4)?,
                retired_at: r.try_get_by_index(5)?,
                secrets: per_key.get(&id).copied().unwrap_or(0),
            });
        }
        Ok(VaultStatus {
            backend: self.store.kind(),
            store: self.store.description(),
            root_state,
            root_id: meta.root_id.map(|r| r.to_string()),
            fingerprint,
            root_backend: meta.root_backend,
            data_keys,
            secrets,
            rotation_pending: meta.journal.is_some(),
            warning: self.store.kind().weakness(),
            problem,
            last_backup_at: crate::store::audit::last_at(db, crate::store::audit::BACKUP_EXPORT)
                .await?,
        })
    }

    /// Write, read back and delete a probe item: does the chosen store work here?
    pub async fn probe(&self) -> Result<()> {
        self.blocking(|s| s.probe()).await
    }
}

/// How many sealed secrets the database holds (all registered secret columns).
pub async fn count_secrets<C: ConnectionTrait>(conn: &C) -> Result<u64> {
    let mut n = 0;
    for col in columns::ALL {
        n += col.count(conn).await?;
    }
    Ok(n)
}

fn key_id_from_db(v: i64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::new(Code::VaultCorrupt, format!("bad data key id {v}")))
}
