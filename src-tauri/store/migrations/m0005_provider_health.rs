//! Provider health (circuit breaker transitions, written by the gateway) and, per
//! request, why the fallback served.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_provider_health"
    }
}

const SQL: &str = r#"
CREATE TABLE provider_health (
    provider_id   INTEGER PRIMARY KEY REFERENCES providers(id) ON DELETE CASCADE,
    state         TEXT    NOT NULL,
    failures      INTEGER NOT NULL,
    open_until_ms INTEGER,
    changed_ms    INTEGER NOT NULL
);
ALTER TABLE request_log ADD COLUMN fallback_reason TEXT;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(SQL).await?;
        Ok(())
    }

    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }
}
