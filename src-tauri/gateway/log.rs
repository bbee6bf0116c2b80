//! The request log: one row per gateway request (when, which protocol and endpoint,
//! requested model, rule, backend, upstream model, status, latency, time to first
//! byte, tokens, fallback, error code) — never prompt or completion text, never a key.
//!
//! Handlers hand a finished [`Entry`] to [`RequestLog::record`], which only queues it;
//! one writer task inserts queued rows in batches, one transaction per batch, so the
//! request path never waits on SQLite.

use crate::store::entities::request_log;
use sea_orm::{ActiveValue::Set, DatabaseConnection, EntityTrait, QueryOrder, QuerySelect};
use serde::Serialize;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Default, Serialize)]
pub struct Entry {
    pub ts: i64,
    pub protocol: &'static str,
    pub endpoint: &'static str,
    pub requested_model: Option<String>,
    pub rule_id: Option<i64>,
    pub backend: Option<String>,
    pub upstream_model: Option<String>,
    pub status: u16,
    pub latency_ms: f64,
    pub ttfb_ms: Option<f64>,
    pub tokens_in: Option<u64>,
    pub tokens_out: Option<u64>,
    pub fallback: bool,
    pub error_code: Option<&'static str>,
    pub stream: bool,
}

#[derive(Clone)]
pub struct RequestLog {
    tx: mpsc::UnboundedSender<Entry>,
}

const MAX_BATCH: usize = 2_000;

impl RequestLog {
    /// Start the writer task on the current runtime.
    pub fn start(db: DatabaseConnection) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Entry>();
        let task = tokio::spawn(async move {
            let mut batch = Vec::with_capacity(256);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                if let Err(e) = write(&db, &mut batch).await {
                    tracing::warn!(error = %e, rows = batch.len(), "could not write the request log");
                }
                batch.clear();
            }
        });
        (RequestLog { tx }, task)
    }

    pub fn record(&self, e: Entry) {
        // The writer only stops with the runtime; a failed send then loses nothing that matters.
        let _ = self.tx.send(e);
    }
}

async fn write(db: &DatabaseConnection, batch: &mut [Entry]) -> crate::Result<()> {
    let rows = batch.iter().map(|e| request_log::ActiveModel {
        ts: Set(e.ts),
        protocol: Set(e.protocol.to_string()),
        endpoint: Set(e.endpoint.to_string()),
        requested_model: Set(e.requested_model.clone()),
        rule_id: Set(e.rule_id),
        backend: Set(e.backend.clone()),
        upstream_model: Set(e.upstream_model.clone()),
        status: Set(e.status as i64),
        latency_ms: Set(e.latency_ms),
        ttfb_ms: Set(e.ttfb_ms),
        tokens_in: Set(e.tokens_in.map(|v| v as i64)),
        tokens_out: Set(e.tokens_out.map(|v| v as i64)),
        fallback: Set(e.fallback),
        error_code: Set(e.error_code.map(str::to_string)),
        client_id: Set(None),
        stream: Set(e.stream),
        ..Default::default()
    });
    // SQLite caps bound parameters per statement; 17 columns × 500 rows stays well under it.
    let rows: Vec<_> = rows.collect();
    for chunk in rows.chunks(500) {
        request_log::Entity::insert_many(chunk.to_vec())
            .exec(db)
            .await?;
    }
    Ok(())
}

/// The newest `limit` rows, oldest first (what `switchyard logs --tail N` prints).
pub async fn tail(db: &DatabaseConnection, limit: u64) -> crate::Result<Vec<request_log::Model>> {
    let mut rows = request_log::Entity::find()
        .order_by_desc(request_log::Column::Id)
        .limit(limit)
        .all(db)
        .await?;
    rows.reverse();
    Ok(rows)
}
