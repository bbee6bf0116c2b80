//! The initial schema. Released migrations are never edited: change the schema with
//! a new migration file. Times are INTEGER milliseconds since the Unix epoch (UTC).
//! Secret columns (BLOB) hold vault envelopes, never plaintext.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_initial"
    }
}

const SQL: &str = r#"
CREATE TABLE providers (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    name              TEXT    NOT NULL UNIQUE,
    kind              TEXT    NOT NULL CHECK (kind IN ('openai', 'anthropic', 'openai-compatible')),
    base_url          TEXT    NOT NULL,
    api_key           BLOB,
    key_hint          TEXT,
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL,
    last_test_at      INTEGER,
    last_test_result  TEXT,
    last_test_message TEXT
);

CREATE TABLE routing_rules (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    position             INTEGER NOT NULL CHECK (position >= 0),
    pattern              TEXT    NOT NULL,
    match_type           TEXT    NOT NULL CHECK (match_type IN ('exact', 'prefix', 'regex')),
    target_provider_id   INTEGER REFERENCES providers(id) ON DELETE RESTRICT,
    upstream_model       TEXT,
    fallback_kind        TEXT    CHECK (fallback_kind IN ('local', 'provider')),
    fallback_provider_id INTEGER REFERENCES providers(id) ON DELETE RESTRICT,
    enabled              INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    CHECK ((fallback_kind = 'provider') = (fallback_provider_id IS NOT NULL))
);
CREATE INDEX routing_rules_position ON routing_rules(position);

CREATE TABLE pool_config (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    limit_kind   TEXT    NOT NULL CHECK (limit_kind IN ('percent', 'gb')),
    limit_value  REAL    NOT NULL,
    eviction     TEXT    NOT NULL CHECK (eviction IN ('lru', 'lfu', 'ttl')),
    ttl_seconds  INTEGER,
    preload      TEXT    NOT NULL DEFAULT '[]',
    updated_at   INTEGER NOT NULL
);
INSERT INTO pool_config (id, limit_kind, limit_value, eviction, ttl_seconds, preload, updated_at)
VALUES (1, 'percent', 75, 'lru', NULL, '[]', 0);

CREATE TABLE models (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    name           TEXT    NOT NULL UNIQUE,
    path           TEXT    NOT NULL,
    format         TEXT    NOT NULL CHECK (format IN ('gguf', 'mlx')),
    architecture   TEXT    NOT NULL,
    parameters     INTEGER,
    quantization   TEXT,
    size_bytes     INTEGER NOT NULL,
    context_length INTEGER,
    pinned         INTEGER NOT NULL DEFAULT 0,
    source         TEXT,
    revision       TEXT,
    created_at     INTEGER NOT NULL,
    last_used_at   INTEGER
);

CREATE TABLE downloads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    repo        TEXT    NOT NULL,
    revision    TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    bytes_total INTEGER,
    bytes_done  INTEGER NOT NULL DEFAULT 0,
    error_code  TEXT,
    model_id    INTEGER REFERENCES models(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE clients (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT    NOT NULL,
    revocation_id TEXT   NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL DEFAULT '{}',
    expires_at   INTEGER,
    revoked_at   INTEGER,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);

CREATE TABLE vault_keys (
    key_id      INTEGER PRIMARY KEY,
    purpose     TEXT    NOT NULL,
    state       TEXT    NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    root_id     TEXT    NOT NULL,
    wrapped     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);

CREATE TABLE vault_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE request_log (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    ts              INTEGER NOT NULL,
    protocol        TEXT    NOT NULL,
    endpoint        TEXT    NOT NULL,
    requested_model TEXT,
    rule_id         INTEGER,
    backend         TEXT,
    upstream_model  TEXT,
    status          INTEGER NOT NULL,
    latency_ms      REAL    NOT NULL,
    ttfb_ms         REAL,
    tokens_in       INTEGER,
    tokens_out      INTEGER,
    fallback        INTEGER NOT NULL DEFAULT 0,
    error_code      TEXT,
    client_id       INTEGER,
    stream          INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX request_log_ts ON request_log(ts);

CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    ts      INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    target  TEXT,
    details TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_ts ON audit_log(ts);
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
