//! Provider health as the gateway's circuit breakers see it (`upstream::breaker`):
//! one row per provider in `provider_health`, written on every transition, so that
//! `switchyard provider list` and the Providers page — other processes, or the same one
//! without a handle on the gateway — show which providers are being skipped.

use crate::error::Result;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde::Serialize;
use std::collections::HashMap;

/// One provider's recorded state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct ProviderHealth {
    /// `open` (skipped until `open_until_ms`, then probed) or `closed`.
    pub state: String,
    /// Retryable failures in a row when it opened.
    pub failures: u32,
    pub open_until_ms: Option<i64>,
    pub changed_ms: i64,
}

impl ProviderHealth {
    /// Open now (a row whose cool-down has passed is waiting for its probe: still open
    /// until a request succeeds).
    pub fn is_open(&self) -> bool {
        self.state == "open"
    }
}

/// Record a transition: `open` until `open_until_ms`, or `closed`.
pub async fn record(
    db: &DatabaseConnection,
    provider: i64,
    state: &str,
    failures: u32,
    open_until_ms: Option<i64>,
) -> Result<()> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "INSERT INTO provider_health (provider_id, state, failures, open_until_ms, changed_ms) \
         VALUES (?, ?, ?, ?, ?) ON CONFLICT(provider_id) DO UPDATE SET state = excluded.state, \
         failures = excluded.failures, open_until_ms = excluded.open_until_ms, changed_ms = excluded.changed_ms",
        [
            provider.into(),
            state.into(),
            i64::from(failures).into(),
            open_until_ms.into(),
            super::now_ms().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// Forget what an earlier process recorded (called when a gateway starts).
pub async fn clear(db: &DatabaseConnection) -> Result<()> {
    db.execute_unprepared("DELETE FROM provider_health").await?;
    Ok(())
}

/// Every provider's recorded state, by provider id.
pub async fn all(db: &DatabaseConnection) -> Result<HashMap<i64, ProviderHealth>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT provider_id, state, failures, open_until_ms, changed_ms FROM provider_health",
        ))
        .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in rows {
        out.insert(
            row.try_get::<i64>("", "provider_id")?,
            ProviderHealth {
                state: row.try_get("", "state")?,
                failures: row
                    .try_get::<i64>("", "failures")?
                    .clamp(0, u32::MAX as i64) as u32,
                open_until_ms: row.try_get("", "open_until_ms")?,
                changed_ms: row.try_get("", "changed_ms")?,
            },
        );
    }
    Ok(out)
}
