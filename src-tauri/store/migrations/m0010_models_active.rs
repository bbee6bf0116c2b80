//! Active parameters of mixture-of-experts models (those one token runs through: the
//! shared weights plus `experts_per_token` of the experts). NULL for dense models.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_models_active"
    }
}

const SQL: &str = r#"
ALTER TABLE models ADD COLUMN active_parameters INTEGER CHECK (active_parameters IS NULL OR active_parameters >= 0);
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
