//! `App`: the core context, built once per process and shared by the desktop shell,
//! the CLI and the gateway. It owns the data dir, the database, the vault, the
//! routing snapshot and the published pool settings; later parts (pool, upstreams)
//! hang off it.

use crate::error::{Code, Error, Result};
use crate::routing::Router;
use crate::settings::pool::PoolSettings;
use crate::store;
use crate::vault::{BackendKind, Vault};
use sea_orm::DatabaseConnection;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How the process was asked to start; resolved from flags and environment by the CLI.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// `--data-dir` / `SWITCHYARD_DATA_DIR`; `None` = the platform default.
    pub data_dir: Option<PathBuf>,
    /// `--vault` / `SWITCHYARD_VAULT`: where the root secret lives (default: the OS keychain).
    pub vault: BackendKind,
}

/// Resolved, immutable configuration of this process.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub vault: BackendKind,
}

pub struct App {
    pub config: Config,
    pub db: DatabaseConnection,
    pub vault: Vault,
    /// The live routing table (`app.router.route(model)`); rebuilt by every rule write.
    pub router: Router,
    /// The pool configuration; the pool subscribes (`app.pool_settings.subscribe()`)
    /// and sees every committed `pool set`.
    pub pool_settings: tokio::sync::watch::Sender<PoolSettings>,
    /// The model pool of this process, once a gateway started one (`pool::Pool::start`);
    /// read it with [`App::pool`].
    pub(crate) pool: std::sync::Mutex<std::sync::Weak<crate::pool::Pool>>,
}

pub type SharedApp = Arc<App>;

/// The platform's app-data dir: `~/Library/Application Support/Switchyard` on macOS,
/// `$XDG_DATA_HOME/switchyard` (default `~/.local/share/switchyard`) on Linux.
pub fn default_data_dir() -> Result<PathBuf> {
    let base = dirs::data_dir().ok_or_else(|| {
        Error::new(
            Code::DataDirUnavailable,
            "cannot determine the platform data directory (is HOME set?); pass --data-dir",
        )
    })?;
    let name = if cfg!(target_os = "macos") {
        "Switchyard"
    } else {
        "switchyard"
    };
    Ok(base.join(name))
}

/// The permission bits of `dir` when group or others may enter or read it (Unix).
pub fn loose_mode(dir: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        None
    }
}

/// Create the data dir (mode 0700 on Unix) if it does not exist, tighten an existing
/// one that group or others can reach to 0700, and check that it is a writable
/// directory. Nothing is written when this fails.
pub fn ensure_data_dir(dir: &Path) -> Result<()> {
    let fail = |what: &str, e: std::io::Error| {
        Error::new(
            Code::DataDirUnavailable,
            format!("data directory {} {what}: {e}", dir.display()),
        )
        .with_source(e)
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            // The data dir holds the database of sealed keys (and, with the file vault,
            // the root secret): no one but its owner has business in it.
            if let Some(mode) = loose_mode(dir) {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
                        .map_err(|e| fail("cannot be made private (chmod 700)", e))?;
                }
                tracing::warn!(
                    "data directory {} was open to other users (mode {mode:o}); now 700",
                    dir.display()
                );
            }
        }
        Ok(_) => {
            return Err(Error::new(
                Code::DataDirUnavailable,
                format!(
                    "data directory {} exists but is not a directory",
                    dir.display()
                ),
            ));
        }
        Err(_) => {
            let mut b = std::fs::DirBuilder::new();
            b.recursive(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            b.create(dir).map_err(|e| fail("cannot be created", e))?;
        }
    }
    // A read-only directory would otherwise surface later as an obscure SQLite error.
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(|e| fail("is not writable", e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

impl AppOptions {
    /// The absolute data dir these options name (flag/env, else the platform default).
    pub fn resolve_data_dir(&self) -> Result<PathBuf> {
        match &self.data_dir {
            Some(d) => absolute(d),
            None => default_data_dir(),
        }
    }
}

impl App {
    /// Resolve the data dir, create it, open and migrate the database, and set up the
    /// vault. The keychain is not read here — unless a root rotation was interrupted,
    /// in which case it is finished or rolled back before anything else runs.
    pub async fn open(opts: AppOptions) -> Result<SharedApp> {
        let data_dir = opts.resolve_data_dir()?;
        ensure_data_dir(&data_dir)?;
        let vault = Vault::new(opts.vault, &data_dir)?;
        if let Some(w) = opts.vault.weakness() {
            tracing::warn!("{w}");
        }
        let db = store::open(&data_dir).await?;
        // Reading secrets is safe with a pending journal (the database always names a
        // root that exists); only the clean-up of the other root item waits. So a
        // keychain that is unavailable right now must not stop commands that never
        // touch it: the vault retries before its next write.
        if let Err(e) = vault.recover(&db).await {
            tracing::warn!(
                "an interrupted root change could not be completed yet ({}): {}",
                e.code,
                e.message
            );
        }
        let router = Router::default();
        crate::settings::rules::reload_router(&db, &router).await?;
        let pool_settings = crate::settings::pool::load(&db).await?;
        Ok(Arc::new(App {
            config: Config {
                data_dir,
                vault: opts.vault,
            },
            db,
            vault,
            router,
            pool_settings: tokio::sync::watch::Sender::new(pool_settings),
            pool: std::sync::Mutex::new(std::sync::Weak::new()),
        }))
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// The model pool running in this process, if a gateway started one.
    pub fn pool(&self) -> Option<Arc<crate::pool::Pool>> {
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .upgrade()
    }
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.as_os_str().is_empty() {
        return Err(Error::new(
            Code::InvalidArgument,
            "--data-dir must not be empty",
        ));
    }
    std::path::absolute(p).map_err(|e| {
        Error::new(
            Code::DataDirUnavailable,
            format!("bad data directory {}: {e}", p.display()),
        )
    })
}

/// The core facts the Dashboard and `doctor` show.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct AppInfo {
    pub version: String,
    pub data_dir: String,
    pub schema_version: u32,
    pub schema_latest: String,
}

impl App {
    pub async fn info(&self) -> Result<AppInfo> {
        let v = store::schema_version(&self.db).await?;
        Ok(AppInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            data_dir: self.config.data_dir.display().to_string(),
            schema_version: v.version,
            schema_latest: v.latest,
        })
    }
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    #[test]
    fn a_data_dir_open_to_others_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("data");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(loose_mode(&d), Some(0o755));
        ensure_data_dir(&d).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(loose_mode(&d), None);
    }

    use super::*;

    #[test]
    fn a_data_dir_under_a_file_is_refused_and_nothing_is_created() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("plain-file");
        std::fs::write(&file, b"x").unwrap();
        let err = ensure_data_dir(&file.join("sub")).unwrap_err();
        assert_eq!(err.code, Code::DataDirUnavailable);
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn open_creates_the_dir_and_reports_the_schema() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        let app = App::open(AppOptions {
            data_dir: Some(dir.clone()),
            vault: BackendKind::File,
        })
        .await
        .unwrap();
        let info = app.info().await.unwrap();
        assert_eq!(info.data_dir, dir.display().to_string());
        assert!(info.schema_version >= 1);
        assert!(dir.join(store::DB_FILE).exists());
    }
}
