//! Stored Responses API answers, for `previous_response_id` on routes that do not reach
//! OpenAI itself (OpenAI keeps its own). One row per response: the input items of its
//! request and its output items, linked to the response it continued. Bounded in rows
//! and age by `gateway::stored`.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_responses"
    }
}

const SQL: &str = r#"
CREATE TABLE stored_responses (
    id          TEXT    PRIMARY KEY,
    previous_id TEXT,
    model       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    input       TEXT    NOT NULL,
    output      TEXT    NOT NULL,
    bytes       INTEGER NOT NULL
);
CREATE INDEX stored_responses_created ON stored_responses(created_at);
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
