//! The audit log: one row per settings change (who, what, when). Never a secret:
//! callers pass names and ids, and `details` is built from non-secret fields only.

use super::entities::audit_log;
use crate::error::Result;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde::Serialize;

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Actor {
    Ui,
    Cli,
    System,
}

impl Actor {
    pub fn as_str(self) -> &'static str {
        match self {
            Actor::Ui => "ui",
            Actor::Cli => "cli",
            Actor::System => "system",
        }
    }
}

/// Append an audit row inside the caller's transaction (or connection), so the row
/// exists exactly when the change does.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    actor: Actor,
    action: &str,
    target: Option<&str>,
    details: serde_json::Value,
) -> Result<()> {
    audit_log::ActiveModel {
        ts: Set(super::now_ms()),
        actor: Set(actor.as_str().to_string()),
        action: Set(action.to_string()),
        target: Set(target.map(str::to_string)),
        details: Set(details.to_string()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(())
}

/// The action a backup export is recorded as (the backup reminder looks for it).
pub const BACKUP_EXPORT: &str = "backup.export";

/// When `action` was last recorded (ms), if ever.
pub async fn last_at<C: ConnectionTrait>(db: &C, action: &str) -> Result<Option<i64>> {
    let row = db
        .query_one_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            "SELECT MAX(ts) FROM audit_log WHERE action = ?",
            [action.into()],
        ))
        .await?;
    Ok(row.and_then(|r| r.try_get_by_index::<Option<i64>>(0).ok().flatten()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{EntityTrait, TransactionTrait};

    #[tokio::test]
    async fn a_rolled_back_change_leaves_no_audit_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(dir.path()).await.unwrap();
        let txn = db.begin().await.unwrap();
        record(
            &txn,
            Actor::Cli,
            "rule.add",
            Some("rule 1"),
            serde_json::json!({}),
        )
        .await
        .unwrap();
        txn.rollback().await.unwrap();
        assert_eq!(audit_log::Entity::find().all(&db).await.unwrap().len(), 0);
        record(
            &db,
            Actor::Ui,
            "pool.set",
            None,
            serde_json::json!({"eviction": "lru"}),
        )
        .await
        .unwrap();
        let rows = audit_log::Entity::find().all(&db).await.unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].actor, "ui");
        assert_eq!(rows[0].action, "pool.set");
    }
}
