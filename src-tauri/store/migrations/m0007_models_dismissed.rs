//! Models found in the Hugging Face cache or LM Studio's folder that the user removed
//! from the registry: discovery leaves them out until they are imported or pulled again
//! (their files belong to those apps and are not deleted).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_models_dismissed"
    }
}

const SQL: &str = r#"
CREATE TABLE models_dismissed (
    path         TEXT    PRIMARY KEY,
    dismissed_at INTEGER NOT NULL
);
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
