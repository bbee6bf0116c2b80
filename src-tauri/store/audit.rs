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
