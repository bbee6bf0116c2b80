//! Settings services: the one place where providers, routing rules and the pool
//! configuration are changed, whether the request comes from the CLI or the UI.
//!
//! Each write is one transaction: validate the input first, then write, add the
//! audit row, check the resulting state (e.g. that the rule set still compiles), and
//! commit — so a rejected write changes nothing. After the commit the new state is
//! published to the live parts (the router's snapshot, the pool's watch channel).

pub mod pool;
pub mod providers;
pub mod rules;

use crate::app::{App, SharedApp};
use crate::error::Result;
use serde::Serialize;
use std::sync::Weak;
use std::time::Duration;

/// A remark about a write that succeeded but may not do what the user meant
/// (a shadowed duplicate rule, a preload name no model has). Printed on stderr by the
/// CLI; `"warnings"` in `--json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

impl Warning {
    pub fn new(code: &'static str, message: impl Into<String>) -> Warning {
        Warning {
            code,
            message: message.into(),
        }
    }
}

/// Bring the in-memory router and pool settings up to date with the store if
/// another process (e.g. the CLI while the app runs) changed them. Cheap when
/// nothing changed: one `MAX(id)` query.
pub async fn refresh(app: &App) -> Result<bool> {
    let revision = crate::store::revision(&app.db).await?;
    if revision <= app.router.snapshot().revision() {
        return Ok(false);
    }
    rules::reload_router(&app.db, &app.router).await?;
    // A data-key rotation in another process retired keys this one may hold.
    app.vault.forget_data_keys();
    pool::republish(app).await?;
    Ok(true)
}

/// Poll the store every `every` and [`refresh`] when it changed. Holds only a weak
/// reference: the task ends when the app is dropped.
pub fn watch_store(app: &SharedApp, every: Duration) -> tokio::task::JoinHandle<()> {
    let weak: Weak<App> = std::sync::Arc::downgrade(app);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(app) = weak.upgrade() else { return };
            if let Err(e) = refresh(&app).await {
                tracing::warn!("settings refresh failed: {}", e.message);
            }
        }
    })
}
