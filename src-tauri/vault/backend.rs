//! Where the root secret lives: the OS keychain through `keyring` 3, or the explicit
//! file vault.
//!
//! The backend is chosen once, explicitly (`--vault` / `SWITCHYARD_VAULT`), and never
//! changes behind the user's back: if the chosen store does not work, the error says so
//! (`vault_unavailable`) and how to pick another; there is no fallback from one store to
//! another and never keyring's in-memory mock (which keyring silently uses when built
//! without a backend feature — `tests` below prove this build has real ones).
//!
//! | `--vault`  | macOS                   | Linux                                      |
//! |------------|-------------------------|--------------------------------------------|
//! | `keychain` | login Keychain          | Secret Service (D-Bus; GNOME Keyring, KWallet) |
//! | `keyutils` | —                       | kernel keyutils (persistent + session keyring; lost at reboot) |
//! | `file`     | 0600 file in the data dir | 0600 file in the data dir                |
//!
//! All calls here block (D-Bus round trips, Keychain prompts, file locks): the
//! [`Vault`](super::Vault) runs them on tokio's blocking pool.

use super::keys::{RootId, RootSecret};
use crate::error::{Code, Error, Result};
use keyring::credential::{
    Credential, CredentialApi, CredentialBuilder, CredentialBuilderApi, CredentialPersistence,
};
use serde::Serialize;
use std::any::Any;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// The keychain service name of every Switchyard item.
pub const SERVICE: &str = "Switchyard";
/// The file vault's file name in the data dir.
pub const FILE_VAULT_NAME: &str = "vault-file.keys";

/// Which store holds the root secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, clap::ValueEnum)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The OS keychain: macOS Keychain, or the Secret Service on Linux.
    #[default]
    Keychain,
    /// Linux only: the kernel key store (keyutils). Survives logout, not reboot.
    Keyutils,
    /// A 0600 file in the data dir. Weaker than a keychain: for headless machines and tests.
    File,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Keychain => "keychain",
            BackendKind::Keyutils => "keyutils",
            BackendKind::File => "file",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "keychain" => Some(BackendKind::Keychain),
            "keyutils" => Some(BackendKind::Keyutils),
            "file" => Some(BackendKind::File),
            _ => None,
        }
    }

    /// The warning printed on every start for backends weaker than the OS keychain.
    pub fn weakness(self) -> Option<&'static str> {
        match self {
            BackendKind::Keychain => None,
            BackendKind::Keyutils => Some(
                "the kernel keyring (--vault keyutils) loses the root secret at reboot, and with it every stored API key (they must then be entered again)",
            ),
            BackendKind::File => Some(
                "the file vault (--vault file) keeps the root secret in a 0600 file in the data dir: anyone who can read the data dir can decrypt your API keys; prefer the OS keychain where there is one",
            ),
        }
    }
}

/// How to get out of an unusable keychain, appended to `vault_unavailable` messages.
pub const FILE_VAULT_HINT: &str = "on a machine without a usable keychain, start Switchyard with `--vault file` (or SWITCHYARD_VAULT=file): the root secret is then kept in a 0600 file in the data dir, which is weaker";

/// The store of root secrets for one process: one item per account, as in a keychain.
pub struct RootStore {
    kind: BackendKind,
    builder: Box<CredentialBuilder>,
    file: Option<Arc<FileStore>>,
}

impl std::fmt::Debug for RootStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootStore")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl RootStore {
    /// Build the store for `kind`. Cheap: nothing is read or written yet.
    pub fn new(kind: BackendKind, data_dir: &Path) -> Result<Self> {
        let (builder, file) = match kind {
            BackendKind::File => {
                let store = Arc::new(FileStore::new(data_dir.join(FILE_VAULT_NAME)));
                let b: Box<CredentialBuilder> = Box::new(FileCredentialBuilder {
                    store: store.clone(),
                });
                (b, Some(store))
            }
            other => (os_builder(other)?, None),
        };
        Ok(RootStore {
            kind,
            builder,
            file,
        })
    }

    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Human description of the store, for `doctor` and `keys status`.
    pub fn description(&self) -> String {
        match (&self.file, self.kind) {
            (Some(f), _) => format!("file vault {}", f.path.display()),
            (None, BackendKind::Keychain) if cfg!(target_os = "macos") => {
                "macOS Keychain".to_string()
            }
            (None, BackendKind::Keychain) => "Secret Service (D-Bus)".to_string(),
            (None, _) => "kernel keyring (keyutils)".to_string(),
        }
    }

    /// The file store behind `--vault file` (tests and `keys status` list its items).
    pub fn file_store(&self) -> Option<&FileStore> {
        self.file.as_deref()
    }

    fn entry(&self, account: &str) -> Result<keyring::Entry> {
        let cred = self
            .builder
            .build(None, SERVICE, account)
            .map_err(|e| self.map_err(e))?;
        Ok(keyring::Entry::new_with_credential(cred))
    }

    /// The root stored under `root-v1-<id>`, or `None` when there is no such item.
    pub fn get_root(&self, id: RootId) -> Result<Option<RootSecret>> {
        match self.entry(&id.account())?.get_password() {
            Ok(s) => {
                let s = Zeroizing::new(s);
                RootSecret::from_hex(&s).map(Some)
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Store `root` under `root-v1-<id>`, then read it back: a store that accepts an
    /// item but cannot return it (a keyutils session that is not there) fails here,
    /// before anything depends on the new item.
    pub fn put_root(&self, id: RootId, root: &RootSecret) -> Result<()> {
        let entry = self.entry(&id.account())?;
        entry
            .set_password(&root.to_hex())
            .map_err(|e| self.map_err(e))?;
        match self.get_root(id)? {
            Some(back) if back.fingerprint() == root.fingerprint() => Ok(()),
            _ => Err(Error::new(
                Code::VaultUnavailable,
                format!(
                    "{} accepted the root secret but did not return it when read back; {FILE_VAULT_HINT}",
                    self.description()
                ),
            )),
        }
    }

    /// Delete `root-v1-<id>`; `false` when there was no such item.
    pub fn delete_root(&self, id: RootId) -> Result<bool> {
        match self.entry(&id.account())?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(e) => Err(self.map_err(e)),
        }
    }

    /// Prove the store works on this machine: write, read back and delete a probe item.
    pub fn probe(&self) -> Result<()> {
        let mut n = [0u8; 6];
        super::keys::random_bytes(&mut n)?;
        let account = format!("probe-{}", super::keys::hex(&n));
        let entry = self.entry(&account)?;
        entry
            .set_password("switchyard-probe")
            .map_err(|e| self.map_err(e))?;
        let back = entry.get_password();
        let _ = entry.delete_credential();
        match back {
            Ok(v) if v == "switchyard-probe" => Ok(()),
            Ok(_) => Err(Error::new(
                Code::VaultUnavailable,
                format!(
                    "{} returned a different value than was stored; {FILE_VAULT_HINT}",
                    self.description()
                ),
            )),
            Err(keyring::Error::NoEntry) => Err(Error::new(
                Code::VaultUnavailable,
                format!(
                    "{} accepted an item but could not read it back (no session keyring?); {FILE_VAULT_HINT}",
                    self.description()
                ),
            )),
            Err(e) => Err(self.map_err(e)),
        }
    }

    fn map_err(&self, e: keyring::Error) -> Error {
        match e {
            keyring::Error::Ambiguous(items) => Error::new(
                Code::VaultCorrupt,
                format!(
                    "{} has {} items for one Switchyard root; remove the duplicates",
                    self.description(),
                    items.len()
                ),
            ),
            keyring::Error::BadEncoding(_) => Error::new(
                Code::VaultCorrupt,
                format!(
                    "{} holds a root secret that is not text",
                    self.description()
                ),
            ),
            other => Error::new(
                Code::VaultUnavailable,
                format!(
                    "{} is not usable: {other}{}; {FILE_VAULT_HINT}",
                    self.description(),
                    self.setup_hint()
                ),
            ),
        }
    }

    /// What the store needs to work, for error messages.
    fn setup_hint(&self) -> &'static str {
        match self.kind {
            BackendKind::Keychain if cfg!(target_os = "linux") => {
                " (it needs a Secret Service provider such as GNOME Keyring or KWallet on the D-Bus session bus, with an unlocked default collection — a desktop login provides one)"
            }
            BackendKind::Keyutils => {
                " (keyutils needs a session keyring, which a login session provides; `keyctl session` starts one)"
            }
            _ => "",
        }
    }
}

/// The keyring builder for an OS backend, chosen explicitly (never keyring's default).
fn os_builder(kind: BackendKind) -> Result<Box<CredentialBuilder>> {
    match kind {
        BackendKind::Keychain => keychain_builder(),
        BackendKind::Keyutils => keyutils_builder(),
        BackendKind::File => unreachable!("the file vault has its own builder"),
    }
}

#[cfg(target_os = "macos")]
fn keychain_builder() -> Result<Box<CredentialBuilder>> {
    Ok(keyring::macos::default_credential_builder())
}

#[cfg(target_os = "linux")]
fn keychain_builder() -> Result<Box<CredentialBuilder>> {
    Ok(keyring::secret_service::default_credential_builder())
}

#[cfg(not(any(target_os = "macos", target_os = "linux")))]
fn keychain_builder() -> Result<Box<CredentialBuilder>> {
    Err(Error::new(
        Code::VaultUnavailable,
        format!("this build has no keychain backend for this platform; {FILE_VAULT_HINT}"),
    ))
}

#[cfg(target_os = "linux")]
fn keyutils_builder() -> Result<Box<CredentialBuilder>> {
    Ok(keyring::keyutils::default_credential_builder())
}

#[cfg(not(target_os = "linux"))]
fn keyutils_builder() -> Result<Box<CredentialBuilder>> {
    Err(Error::new(
        Code::VaultUnavailable,
        "--vault keyutils exists only on Linux; use --vault keychain (the default) or --vault file",
    ))
}

/// Make `kind` keyring's process-wide default, so that no code path can reach keyring's
/// built-in default store (or its mock) by calling `keyring::Entry::new`. The vault
/// itself always uses its own explicit builder. With the file vault the default is a
/// builder that refuses: every item must go through the [`Vault`](super::Vault).
pub fn set_process_default(kind: BackendKind) {
    let builder: Box<CredentialBuilder> = match kind {
        BackendKind::File => Box::new(RefusingBuilder),
        other => os_builder(other).unwrap_or_else(|_| Box::new(RefusingBuilder)),
    };
    keyring::set_default_credential_builder(builder);
}

/// A keyring builder whose entries all fail: installed as the process default when
/// keyring's own default must not be used.
#[derive(Debug)]
struct RefusingBuilder;

impl CredentialBuilderApi for RefusingBuilder {
    fn build(&self, _: Option<&str>, _: &str, _: &str) -> keyring::Result<Box<Credential>> {
        Err(keyring::Error::NoStorageAccess(
            "Switchyard reaches its key store only through its vault".into(),
        ))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------
// The file vault
// ---------------------------------------------------------------------------------

/// A keychain in one 0600 text file: one item per (service, account), each write a
/// whole-file atomic replace (temp file, fsync, rename, fsync dir) under an exclusive
/// `flock` on a sidecar lock file, so concurrent processes and a kill -9 at any moment
/// leave either the old or the new set of items — like a keychain's per-item writes.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
}

type Items = BTreeMap<(String, String), Zeroizing<Vec<u8>>>;

const FILE_HEADER: &str = "# Switchyard file vault (--vault file). Weaker than the OS keychain: anyone who\n\
# can read this file and the database can decrypt the stored API keys. Keep it mode 0600.\n\
# Format: service<TAB>account<TAB>hex(secret), one item per line.\n";

impl FileStore {
    pub fn new(path: PathBuf) -> Self {
        FileStore { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_path(&self) -> PathBuf {
        self.path.with_extension("lock")
    }

    /// The accounts stored for `service`, sorted.
    pub fn accounts(&self, service: &str) -> std::io::Result<Vec<String>> {
        let _g = FileLock::exclusive(&self.lock_path())?;
        Ok(self
            .read_items()?
            .keys()
            .filter(|(s, _)| s == service)
            .map(|(_, a)| a.clone())
            .collect())
    }

    fn read_items(&self) -> std::io::Result<Items> {
        let text = match std::fs::read(&self.path) {
            Ok(b) => Zeroizing::new(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Items::new()),
            Err(e) => return Err(e),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(&self.path)
                && m.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    "the file vault {} is readable by other users (mode {:o}); run chmod 600 on it",
                    self.path.display(),
                    m.permissions().mode() & 0o777
                );
            }
        }
        let bad = |line: usize| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} line {line} is malformed", self.path.display()),
            )
        };
        let text = std::str::from_utf8(&text).map_err(|_| bad(0))?;
        let mut items = Items::new();
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split('\t');
            let (Some(s), Some(a), Some(v), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(i + 1));
            };
            let value = super::keys::unhex(v).ok_or_else(|| bad(i + 1))?;
            items.insert((s.to_string(), a.to_string()), Zeroizing::new(value));
        }
        Ok(items)
    }

    fn write_items(&self, items: &Items) -> std::io::Result<()> {
        let mut text = Zeroizing::new(String::from(FILE_HEADER));
        for ((s, a), v) in items {
            text.push_str(s);
            text.push('\t');
            text.push_str(a);
            text.push('\t');
            text.push_str(&super::keys::hex(v));
            text.push('\n');
        }
        // Always a new file: one left behind (by a crash, or planted with a looser
        // mode or as a symlink) is removed, never written through.
        let tmp = self.path.with_extension("tmp");
        match std::fs::remove_file(&tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Read-modify-write under the lock; `f` returns whether it changed anything.
    fn update<T>(&self, f: impl FnOnce(&mut Items) -> (bool, T)) -> std::io::Result<T> {
        let _g = FileLock::exclusive(&self.lock_path())?;
        let mut items = self.read_items()?;
        let (changed, out) = f(&mut items);
        if changed {
            self.write_items(&items)?;
        }
        Ok(out)
    }

    fn get(&self, service: &str, account: &str) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
        let _g = FileLock::exclusive(&self.lock_path())?;
        Ok(self
            .read_items()?
            .remove(&(service.to_string(), account.to_string())))
    }
}

/// An exclusive `flock` held until drop. The kernel releases it when the process dies,
/// so a kill -9 never leaves a stale lock behind.
pub(crate) struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    pub(crate) fn open(path: &Path) -> std::io::Result<std::fs::File> {
        let mut opts = std::fs::OpenOptions::new();
        opts.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        opts.open(path)
    }

    /// Block until the lock is ours.
    pub(crate) fn exclusive(path: &Path) -> std::io::Result<Self> {
        let file = Self::open(path)?;
        flock(&file, false)?;
        Ok(FileLock { _file: file })
    }

    /// Take the lock if it is free; `Ok(None)` when another process holds it.
    pub(crate) fn try_exclusive(path: &Path) -> std::io::Result<Option<Self>> {
        let file = Self::open(path)?;
        match flock(&file, true) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(unix)]
fn flock(file: &std::fs::File, nonblocking: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let op = libc::LOCK_EX | if nonblocking { libc::LOCK_NB } else { 0 };
    loop {
        // SAFETY: flock on a valid, owned file descriptor.
        let r = unsafe { libc::flock(file.as_raw_fd(), op) };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(not(unix))]
fn flock(_file: &std::fs::File, _nonblocking: bool) -> std::io::Result<()> {
    Ok(())
}

fn io_to_keyring(e: std::io::Error) -> keyring::Error {
    keyring::Error::PlatformFailure(Box::new(e))
}

#[derive(Debug)]
struct FileCredentialBuilder {
    store: Arc<FileStore>,
}

impl CredentialBuilderApi for FileCredentialBuilder {
    fn build(
        &self,
        _target: Option<&str>,
        service: &str,
        user: &str,
    ) -> keyring::Result<Box<Credential>> {
        for (name, v) in [("service", service), ("user", user)] {
            if v.is_empty() || v.contains(['\t', '\n', '\r']) {
                return Err(keyring::Error::Invalid(
                    name.into(),
                    "must be non-empty without tabs or newlines".into(),
                ));
            }
        }
        Ok(Box::new(FileCredential {
            store: self.store.clone(),
            service: service.to_string(),
            account: user.to_string(),
        }))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn persistence(&self) -> CredentialPersistence {
        CredentialPersistence::UntilDelete
    }
}

#[derive(Debug)]
struct FileCredential {
    store: Arc<FileStore>,
    service: String,
    account: String,
}

impl CredentialApi for FileCredential {
    fn set_secret(&self, secret: &[u8]) -> keyring::Result<()> {
        let key = (self.service.clone(), self.account.clone());
        let value = Zeroizing::new(secret.to_vec());
        self.store
            .update(move |items| {
                items.insert(key, value);
                (true, ())
            })
            .map_err(io_to_keyring)
    }

    fn get_secret(&self) -> keyring::Result<Vec<u8>> {
        match self.store.get(&self.service, &self.account) {
            Ok(Some(mut v)) => Ok(std::mem::take(&mut *v)),
            Ok(None) => Err(keyring::Error::NoEntry),
            Err(e) => Err(io_to_keyring(e)),
        }
    }

    fn delete_credential(&self) -> keyring::Result<()> {
        let key = (self.service.clone(), self.account.clone());
        let existed = self
            .store
            .update(move |items| {
                let existed = items.remove(&key).is_some();
                (existed, existed)
            })
            .map_err(io_to_keyring)?;
        if existed {
            Ok(())
        } else {
            Err(keyring::Error::NoEntry)
        }
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyrings_platform_default_in_this_build_is_a_real_store_not_the_mock() {
        let b = keyring::default::default_credential_builder();
        assert!(
            !b.as_any().is::<keyring::mock::MockCredentialBuilder>(),
            "keyring was built without a backend feature: its default store is the in-memory mock"
        );
        assert!(
            matches!(
                b.persistence(),
                CredentialPersistence::UntilDelete | CredentialPersistence::UntilReboot
            ),
            "keyring's default store does not persist beyond the process"
        );
    }

    #[test]
    fn the_keychain_backend_is_the_platforms_persistent_store() {
        let b = os_builder(BackendKind::Keychain).unwrap();
        assert!(!b.as_any().is::<keyring::mock::MockCredentialBuilder>());
        assert!(matches!(
            b.persistence(),
            CredentialPersistence::UntilDelete
        ));
        #[cfg(target_os = "linux")]
        assert!(
            b.as_any()
                .is::<keyring::secret_service::SsCredentialBuilder>()
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_keyutils_backend_is_the_kernel_store() {
        let b = os_builder(BackendKind::Keyutils).unwrap();
        assert!(!b.as_any().is::<keyring::mock::MockCredentialBuilder>());
        assert!(matches!(
            b.persistence(),
            CredentialPersistence::UntilReboot
        ));
    }

    #[test]
    fn file_items_persist_across_separate_entries_and_stores() {
        let dir = tempfile::tempdir().unwrap();
        let root = RootSecret::generate().unwrap();
        let id = RootId(0x1234_5678);
        RootStore::new(BackendKind::File, dir.path())
            .unwrap()
            .put_root(id, &root)
            .unwrap();
        // A second, independent store over the same file sees the item.
        let other = RootStore::new(BackendKind::File, dir.path()).unwrap();
        let back = other.get_root(id).unwrap().unwrap();
        assert_eq!(back.fingerprint(), root.fingerprint());
        assert_eq!(other.get_root(RootId(1)).unwrap().map(|_| ()), None);
        assert_eq!(
            other.file_store().unwrap().accounts(SERVICE).unwrap(),
            vec![id.account()]
        );
        assert!(other.delete_root(id).unwrap());
        assert!(!other.delete_root(id).unwrap());
        assert!(other.get_root(id).unwrap().is_none());
        other.probe().unwrap();
        assert!(
            other
                .file_store()
                .unwrap()
                .accounts(SERVICE)
                .unwrap()
                .is_empty()
        );
    }

    /// A temp file left behind with a loose mode (or planted) is never written through:
    /// the secret lands only in a fresh 0600 file.
    #[cfg(unix)]
    #[test]
    fn a_stale_world_readable_temp_file_is_replaced_not_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(FILE_VAULT_NAME);
        let tmp = p.with_extension("tmp");
        std::fs::write(&tmp, b"stale").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        // And one planted as a symlink to a file an attacker can read.
        let bait = dir.path().join("bait");
        std::fs::write(&bait, b"").unwrap();
        let s = RootStore::new(BackendKind::File, dir.path()).unwrap();
        s.put_root(RootId(1), &RootSecret::generate().unwrap())
            .unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        std::os::unix::fs::symlink(&bait, &tmp).unwrap();
        s.put_root(RootId(2), &RootSecret::generate().unwrap())
            .unwrap();
        assert_eq!(
            std::fs::read(&bait).unwrap(),
            b"",
            "written through a symlink"
        );
        assert!(
            !std::fs::symlink_metadata(&p)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_file_vault_is_mode_0600_and_holds_one_line_per_item() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let s = RootStore::new(BackendKind::File, dir.path()).unwrap();
        s.put_root(RootId(1), &RootSecret::generate().unwrap())
            .unwrap();
        s.put_root(RootId(2), &RootSecret::generate().unwrap())
            .unwrap();
        s.put_root(RootId(2), &RootSecret::generate().unwrap())
            .unwrap();
        let p = dir.path().join(FILE_VAULT_NAME);
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&p).unwrap();
        let items: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(items.len(), 2, "{text}");
        assert!(items[0].starts_with("Switchyard\troot-v1-00000001\t"));
    }

    #[test]
    fn a_malformed_file_vault_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_VAULT_NAME), "Switchyard\tonly-two\n").unwrap();
        let s = RootStore::new(BackendKind::File, dir.path()).unwrap();
        let e = s.get_root(RootId(1)).unwrap_err();
        assert_eq!(e.code, Code::VaultUnavailable);
        assert!(e.message.contains("malformed"), "{}", e.message);
    }

    #[test]
    fn the_process_default_under_the_file_vault_refuses_instead_of_using_a_mock() {
        let b = RefusingBuilder;
        assert!(matches!(
            b.build(None, SERVICE, "x"),
            Err(keyring::Error::NoStorageAccess(_))
        ));
    }

    #[test]
    fn backend_names_round_trip() {
        for k in [
            BackendKind::Keychain,
            BackendKind::Keyutils,
            BackendKind::File,
        ] {
            assert_eq!(BackendKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(BackendKind::parse("mock"), None);
        assert!(BackendKind::Keychain.weakness().is_none());
        assert!(BackendKind::File.weakness().unwrap().contains("0600"));
    }
}
