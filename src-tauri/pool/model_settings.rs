//! Per-model pool settings kept in the registry row: pinned (never unloaded to make
//! room or for idleness), an idle TTL and a context length of its own. Written here,
//! read by the pool of whichever process serves (it re-reads loaded models' rows when
//! the store changes).

use crate::error::{Code, Error, Result};
use crate::models::ModelEntry;
use crate::store::audit::{self, Actor};
use crate::store::entities::model;
use sea_orm::{ActiveModelTrait, DatabaseConnection, Set, TransactionTrait};

/// A change: `None` keeps a field; `Some(None)` goes back to the default.
#[derive(Debug, Clone, Default)]
pub struct ModelChange {
    pub pinned: Option<bool>,
    pub ttl_seconds: Option<Option<u64>>,
    pub context: Option<Option<u32>>,
}

/// The smallest context a model may be given.
pub const MIN_CONTEXT: u32 = 256;

pub async fn change(
    db: &DatabaseConnection,
    id_or_name: &str,
    change: ModelChange,
    actor: Actor,
) -> Result<ModelEntry> {
    let txn = db.begin().await?;
    let m = crate::models::find(&txn, id_or_name)
        .await?
        .ok_or_else(|| {
            Error::new(
                Code::ModelNotFound,
                format!("no model '{id_or_name}' in the registry (see `switchyard models list`)"),
            )
        })?;
    if let Some(Some(c)) = change.context {
        let max = m.context_length.unwrap_or(i64::MAX);
        if c < MIN_CONTEXT || c as i64 > max {
            return Err(Error::new(
                Code::InvalidArgument,
                format!(
                    "context {c} is out of range for {}: give {MIN_CONTEXT} to {max} tokens",
                    m.name
                ),
            ));
        }
    }
    let mut row: model::ActiveModel = m.clone().into();
    if let Some(p) = change.pinned {
        row.pinned = Set(p);
    }
    if let Some(t) = change.ttl_seconds {
        row.ttl_seconds = Set(t.map(|t| t as i64));
    }
    if let Some(c) = change.context {
        row.context_override = Set(c.map(i64::from));
    }
    let updated = row.update(&txn).await?;
    audit::record(
        &txn,
        actor,
        "model.settings",
        Some(&m.name),
        serde_json::json!({
            "id": m.id,
            "pinned": updated.pinned,
            "ttl_seconds": updated.ttl_seconds,
            "context": updated.context_override,
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(updated.into())
}
