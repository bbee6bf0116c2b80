//! The store: SQLite through sea-orm, in WAL mode with foreign keys on.
//!
//! One database file, `switchyard.db`, in the data dir. Migrations run at open.
//! A database written by a newer Switchyard (an applied migration we do not know)
//! is refused with `database_too_new` rather than touched.

pub mod audit;
pub mod entities;
pub mod health;
pub mod migrations;

use crate::error::{Code, Error, Result};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, Statement};
use sea_orm_migration::MigratorTrait;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use migrations::Migrator;

pub const DB_FILE: &str = "switchyard.db";

/// Milliseconds since the Unix epoch: the time format of every table.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Open (creating if needed) and migrate the database in `data_dir`.
pub async fn open(data_dir: &Path) -> Result<DatabaseConnection> {
    let db = connect(data_dir, 8, true).await?;
    migrate(&db).await?;
    Ok(db)
}

/// A single extra connection for the request log's writer, on an already-migrated
/// database. Its commits skip the fsync (`synchronous=NORMAL`; WAL keeps the database
/// consistent): a power cut may lose the last second of log rows, never settings, and
/// the gateway does not pay a disk flush per batch under load.
pub async fn open_log_writer(data_dir: &Path) -> Result<DatabaseConnection> {
    connect(data_dir, 1, false).await
}

async fn connect(data_dir: &Path, connections: u32, durable: bool) -> Result<DatabaseConnection> {
    let path = db_path(data_dir);
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let mut opts = ConnectOptions::new(url);
    opts.max_connections(connections)
        .min_connections(1)
        .sqlx_logging(false)
        .acquire_timeout(Duration::from_secs(30))
        .map_sqlx_sqlite_opts(move |o| {
            use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
            o.journal_mode(SqliteJournalMode::Wal)
                .synchronous(if durable {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                })
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(10))
        });
    Database::connect(opts).await.map_err(|e| {
        Error::new(
            Code::Database,
            format!("cannot open database {}: {e}", path.display()),
        )
        .with_source(e)
    })
}

/// Begin a write transaction with `BEGIN IMMEDIATE`: the write lock is taken up front,
/// so a transaction that reads and then writes cannot fail half-way with SQLITE_BUSY
/// because another writer slipped in between (it waits at BEGIN instead).
pub async fn begin_immediate(db: &DatabaseConnection) -> Result<sea_orm::DatabaseTransaction> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    Ok(db
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?)
}

/// Apply pending migrations; refuse a database from a newer version.
pub async fn migrate(db: &DatabaseConnection) -> Result<()> {
    let known: Vec<String> = Migrator::migrations()
        .iter()
        .map(|m| m.name().to_string())
        .collect();
    let applied = Migrator::get_migration_models(db).await?;
    if let Some(unknown) = applied.iter().find(|m| !known.contains(&m.version)) {
        return Err(Error::new(
            Code::DatabaseTooNew,
            format!(
                "the database has migration {} which this Switchyard does not know; it was written by a newer version — upgrade Switchyard",
                unknown.version
            ),
        ));
    }
    Migrator::up(db, None).await?;
    Ok(())
}

/// Schema version = the number of applied migrations, plus the newest one's name.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SchemaVersion {
    pub version: u32,
    pub latest: String,
    pub pending: u32,
}

pub async fn schema_version(db: &DatabaseConnection) -> Result<SchemaVersion> {
    let all = Migrator::get_migration_with_status(db).await?;
    let applied: Vec<_> = all
        .iter()
        .filter(|m| m.status() == sea_orm_migration::MigrationStatus::Applied)
        .collect();
    Ok(SchemaVersion {
        version: applied.len() as u32,
        latest: applied
            .last()
            .map(|m| m.name().to_string())
            .unwrap_or_default(),
        pending: (all.len() - applied.len()) as u32,
    })
}

/// Read a single PRAGMA value as text (used by doctor and tests).
pub async fn pragma(db: &DatabaseConnection, name: &str) -> Result<String> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            format!("PRAGMA {name}"),
        ))
        .await?
        .ok_or_else(|| Error::internal(format!("PRAGMA {name} returned no row")))?;
    // Pragmas return either text or integers.
    if let Ok(s) = row.try_get_by_index::<String>(0) {
        return Ok(s);
    }
    Ok(row.try_get_by_index::<i64>(0)?.to_string())
}

/// The store's settings revision: the newest audit row id (0 when none). Every
/// settings write adds an audit row in its transaction, so this grows with every
/// committed change, in every process sharing the database.
pub async fn revision<C: ConnectionTrait>(db: &C) -> Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COALESCE(MAX(id), 0) FROM audit_log",
        ))
        .await?
        .ok_or_else(|| Error::internal("MAX(id) returned no row"))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_sets_wal_and_foreign_keys_and_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let db = open(dir.path()).await.unwrap();
        assert_eq!(pragma(&db, "journal_mode").await.unwrap(), "wal");
        assert_eq!(pragma(&db, "foreign_keys").await.unwrap(), "1");
        let v = schema_version(&db).await.unwrap();
        assert_eq!(v.version as usize, Migrator::migrations().len());
        assert_eq!(v.pending, 0);
        // Idempotent: a second open applies nothing new.
        drop(db);
        let db = open(dir.path()).await.unwrap();
        assert_eq!(schema_version(&db).await.unwrap().version, v.version);
    }
}

/// `YYYY-MM-DD HH:MM:SS.mmm` (UTC) for a millisecond timestamp, for human output.
pub fn format_ts(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{millis:03}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod format_tests {
    #[test]
    fn formats_utc_timestamps() {
        assert_eq!(super::format_ts(0), "1970-01-01 00:00:00.000");
        assert_eq!(super::format_ts(951_782_400_123), "2000-02-29 00:00:00.123");
        assert_eq!(
            super::format_ts(1_795_478_400_000),
            "2026-11-24 00:00:00.000"
        );
    }
}
