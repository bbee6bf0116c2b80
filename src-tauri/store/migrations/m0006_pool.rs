//! Per-model pool settings: an idle TTL and a context length that override the pool's
//! and the model's own (NULL = use those).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_pool"
    }
}

const SQL: &str = r#"
ALTER TABLE models ADD COLUMN ttl_seconds INTEGER;
ALTER TABLE models ADD COLUMN context_override INTEGER;
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
