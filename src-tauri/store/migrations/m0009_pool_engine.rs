//! The pool's engine settings: generations a model runs together (`batch`), accepts at
//! once (`queue`, running and waiting), and the bytes the prefix cache may keep on disk
//! (0 = off). Defaults: 8, 8 and 4 GiB.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_pool_engine"
    }
}

const SQL: &str = r#"
ALTER TABLE pool_config ADD COLUMN batch INTEGER NOT NULL DEFAULT 8 CHECK (batch BETWEEN 1 AND 64);
ALTER TABLE pool_config ADD COLUMN queue INTEGER NOT NULL DEFAULT 8 CHECK (queue BETWEEN 1 AND 1024);
ALTER TABLE pool_config ADD COLUMN disk_cache_bytes INTEGER NOT NULL DEFAULT 4294967296 CHECK (disk_cache_bytes >= 0);
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
