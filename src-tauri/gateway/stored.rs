//! Stored Responses API answers, so that `previous_response_id` works on routes that do
//! not reach OpenAI (which keeps its own): chat-only compatible servers, Anthropic and
//! local models.
//!
//! A response is stored, as the API does by default, unless the request said
//! `store: false`: the input items of its request and its output items, linked to the
//! response it continued. A later request naming it gets the whole chain back, oldest
//! first. Bounded: rows expire after [`TTL_MS`], at most [`MAX_ROWS`] are kept (oldest
//! dropped first; pruned every [`PRUNE_EVERY`] saves), a response bigger than [`MAX_ROW_BYTES`] is not stored, and a chain
//! is followed at most [`MAX_CHAIN`] links. This is conversation text kept on the user's
//! own disk, in the app's database, because the client asked the API to keep it.

use crate::error::{Code, Error, Result};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use serde_json::Value;

pub const TTL_MS: i64 = 30 * 24 * 3600 * 1000;
/// Rows kept at most.
pub const MAX_ROWS: i64 = 5_000;
/// Largest response (input + output items, JSON) stored.
pub const MAX_ROW_BYTES: usize = 8 * 1024 * 1024;
/// Longest chain of `previous_response_id` links followed.
pub const MAX_CHAIN: usize = 1_000;

/// Store one answered response.
pub async fn save(
    db: &DatabaseConnection,
    id: &str,
    previous: Option<&str>,
    model: &str,
    input: &[Value],
    output: &[Value],
) -> Result<()> {
    let input = serde_json::to_string(input)?;
    let output = serde_json::to_string(output)?;
    let bytes = input.len() + output.len();
    if bytes > MAX_ROW_BYTES {
        tracing::warn!(
            response = id,
            bytes,
            "response not stored: larger than the limit"
        );
        return Ok(());
    }
    let now = crate::store::now_ms();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "INSERT INTO stored_responses (id, previous_id, model, created_at, expires_at, input, output, bytes) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [
            id.into(),
            previous.map(str::to_owned).into(),
            model.into(),
            now.into(),
            (now + TTL_MS).into(),
            input.into(),
            output.into(),
            (bytes as i64).into(),
        ],
    ))
    .await?;
    // Expiry and the row cap are enforced every PRUNE_EVERY saves, not on each: the
    // hot path is one INSERT (pruning scans the table; per request it cost a quarter of
    // the translated Responses stream's throughput in the gateway benchmark).
    static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if SAVES
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .is_multiple_of(PRUNE_EVERY)
    {
        prune(db, now).await?;
    }
    Ok(())
}

/// Saves between two prunings: the table holds at most `MAX_ROWS + PRUNE_EVERY` rows.
pub const PRUNE_EVERY: u64 = 64;

/// Drop expired rows and all but the newest [`MAX_ROWS`].
pub async fn prune(db: &DatabaseConnection, now: i64) -> Result<()> {
    let txn = crate::store::begin_immediate(db).await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "DELETE FROM stored_responses WHERE expires_at < ?",
        [now.into()],
    ))
    .await?;
    txn.execute_raw(Statement::from_sql_and_values(
        DbBackend::Sqlite,
        "DELETE FROM stored_responses WHERE id IN (SELECT id FROM stored_responses \
         ORDER BY created_at DESC, rowid DESC LIMIT -1 OFFSET ?)",
        [MAX_ROWS.into()],
    ))
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The items of response `id` and every response before it, oldest first: what a
/// request continuing it starts from.
pub async fn history(db: &DatabaseConnection, id: &str) -> Result<Vec<Value>> {
    let now = crate::store::now_ms();
    let mut chain: Vec<(String, String)> = Vec::new();
    let mut next = Some(id.to_owned());
    while let Some(cur) = next.take() {
        if chain.len() >= MAX_CHAIN {
            return Err(Error::new(
                Code::InvalidRequest,
                format!(
                    "previous_response_id {id}: the conversation is longer than {MAX_CHAIN} responses"
                ),
            ));
        }
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT previous_id, input, output FROM stored_responses WHERE id = ? AND expires_at >= ?",
                [cur.clone().into(), now.into()],
            ))
            .await?;
        let Some(row) = row else {
            return Err(Error::new(
                Code::ResponseNotFound,
                format!(
                    "previous response {cur:?} is not stored here: it was made with store: false, has expired, or came from another server"
                ),
            ));
        };
        let previous: Option<String> = row.try_get("", "previous_id")?;
        chain.push((row.try_get("", "input")?, row.try_get("", "output")?));
        next = previous;
    }
    let mut items = Vec::new();
    for (input, output) in chain.into_iter().rev() {
        for part in [input, output] {
            let v: Vec<Value> = serde_json::from_str(&part)?;
            items.extend(v);
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_chain_comes_back_oldest_first_and_unknown_ids_are_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(dir.path()).await.unwrap();
        save(
            &db,
            "resp_1",
            None,
            "m",
            &[json!({"n": 1})],
            &[json!({"n": 2})],
        )
        .await
        .unwrap();
        save(
            &db,
            "resp_2",
            Some("resp_1"),
            "m",
            &[json!({"n": 3})],
            &[json!({"n": 4})],
        )
        .await
        .unwrap();
        let items = history(&db, "resp_2").await.unwrap();
        assert_eq!(
            items,
            vec![
                json!({"n": 1}),
                json!({"n": 2}),
                json!({"n": 3}),
                json!({"n": 4})
            ]
        );
        let e = history(&db, "resp_nope").await.unwrap_err();
        assert_eq!(e.code, Code::ResponseNotFound);
        // A link that is gone breaks the chain with the same error.
        db.execute_unprepared("DELETE FROM stored_responses WHERE id = 'resp_1'")
            .await
            .unwrap();
        assert_eq!(
            history(&db, "resp_2").await.unwrap_err().code,
            Code::ResponseNotFound
        );
    }

    #[tokio::test]
    async fn rows_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(dir.path()).await.unwrap();
        let big = vec![json!("x".repeat(MAX_ROW_BYTES))];
        save(&db, "resp_big", None, "m", &big, &[]).await.unwrap();
        assert_eq!(
            history(&db, "resp_big").await.unwrap_err().code,
            Code::ResponseNotFound
        );
        // Expired rows are not served, and are swept by the periodic prune.
        save(&db, "resp_old", None, "m", &[], &[]).await.unwrap();
        db.execute_unprepared("UPDATE stored_responses SET expires_at = 0 WHERE id = 'resp_old'")
            .await
            .unwrap();
        assert_eq!(
            history(&db, "resp_old").await.unwrap_err().code,
            Code::ResponseNotFound
        );
        save(&db, "resp_new", None, "m", &[], &[]).await.unwrap();
        prune(&db, crate::store::now_ms()).await.unwrap();
        let n = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT count(*) AS n FROM stored_responses".to_owned(),
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<i64>("", "n")
            .unwrap();
        assert_eq!(n, 1);
    }
}
