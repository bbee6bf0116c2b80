//! Client tokens: the install's token-signing key pair (the public half in the clear,
//! for verification without the vault; the private half sealed, for issuing) and the
//! gateway's access settings.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_tokens"
    }
}

const SQL: &str = r#"
CREATE TABLE token_keys (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    key_id      INTEGER NOT NULL,
    public_key  TEXT    NOT NULL,
    private_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE gateway_config (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
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
