//! Benchmark (not a test): data-key rotation over 10,000 sealed secrets.
//!
//! `cargo run --release --no-default-features --example bench_vault -- [DATA_DIR] [N]`
//! (or `scripts/bench-vault.sh`, which also times the CLI end to end). Fills a fresh
//! data dir (file vault) with N providers whose keys are sealed as `provider add`
//! seals them, then rotates the data key several times in process, each rotation
//! re-encrypting all N secrets in one `BEGIN IMMEDIATE` transaction. Prints one line
//! per measurement and a JSON summary last. Target (benchmarks.md): < 1 s for 10,000.

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::time::Instant;
use switchyard::app::{App, AppOptions};
use switchyard::settings::providers;
use switchyard::store::{self, audit::Actor};
use switchyard::vault::BackendKind;

const ROUNDS: usize = 5;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> switchyard::Result<()> {
    let mut args = std::env::args().skip(1);
    let keep_dir = args.next().map(std::path::PathBuf::from);
    let n: i64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let tmp = tempfile::tempdir()?;
    let dir = keep_dir.unwrap_or_else(|| tmp.path().to_path_buf());
    let app = App::open(AppOptions {
        data_dir: Some(dir.clone()),
        vault: BackendKind::File,
    })
    .await?;

    // Fill: N providers, each key sealed for its own row and origin, in one transaction.
    let t = Instant::now();
    app.vault.prepare(&app.db).await?;
    let txn = store::begin_immediate(&app.db).await?;
    for id in 1..=n {
        let base = format!("https://p{id}.example");
        let key = format!("sk-bench-{id:06}-0123456789abcdefghijklmnopqrstuvwxyz");
        let sealed = app
            .vault
            .seal(&txn, &providers::key_context(id, &base)?, key.as_bytes())
            .await?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "INSERT INTO providers (id, name, kind, base_url, api_key, key_hint, created_at, updated_at) \
             VALUES (?, ?, 'openai-compatible', ?, ?, NULL, 0, 0)",
            [id.into(), format!("p{id}").into(), base.into(), sealed.into()],
        ))
        .await?;
    }
    txn.commit().await?;
    println!(
        "fill: {n} secrets sealed and stored in {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );

    let mut wall = Vec::new();
    let mut inside = Vec::new();
    for round in 1..=ROUNDS {
        let t = Instant::now();
        let r = app.vault.rotate_data(&app.db, Actor::Cli).await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(r.secrets as i64, n);
        println!(
            "rotate-data round {round}: {n} secrets re-encrypted in {ms:.1} ms (transaction {:.1} ms)",
            r.elapsed_ms
        );
        wall.push(ms);
        inside.push(r.elapsed_ms);
    }

    // The result is usable: spot-check keys decrypt to what was stored.
    for id in [1, n / 2, n] {
        let p = providers::get_by_id(&app, id).await?;
        let k = providers::decrypt_provider_key(&app, &p)
            .await?
            .expect("a key");
        assert_eq!(
            k.expose(),
            format!("sk-bench-{id:06}-0123456789abcdefghijklmnopqrstuvwxyz")
        );
    }

    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let summary = serde_json::json!({
        "benchmark": "vault_rotate_data",
        "secrets": n,
        "rounds": ROUNDS,
        "median_ms": median(&mut wall),
        "min_ms": wall.iter().cloned().fold(f64::INFINITY, f64::min),
        "max_ms": wall.iter().cloned().fold(0.0, f64::max),
        "median_transaction_ms": median(&mut inside),
        "target_ms": 1000,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    });
    println!("{summary}");
    Ok(())
}
