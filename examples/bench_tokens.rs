//! Benchmark (not a test): what checking a client token costs the gateway per request.
//!
//! `cargo run --release --no-default-features --example bench_tokens` (or
//! `scripts/bench-tokens.sh`). In a fresh data dir (file vault) with 1,000 issued
//! tokens, it times what the gateway's guard and handler do for every request — read
//! the credential from the headers, look at the clients marker (one `stat`), find the
//! verified token in the cache, check revocation and expiry, decide the model scope —
//! for a cached token with and without model scopes; then the first sight of a token
//! (signature and Datalog, uncached) and the reload after a revocation. Prints one line
//! per measurement and a JSON summary last. Target (issue 15): ≤ 20 µs per request,
//! cached.

use std::time::{Duration, Instant, SystemTime};
use switchyard::app::{App, AppOptions};
use switchyard::store::audit::Actor;
use switchyard::tokens::{self, verify::Verifier};
use switchyard::vault::BackendKind;

const CACHED_ROUNDS: u32 = 200_000;
const FIRST_SIGHT: usize = 500;

fn headers(token: &str) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        axum::http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    h
}

/// Median of `rounds` batches, each timing `per_batch` calls of `f`; µs per call.
async fn per_call<F, Fut>(rounds: usize, per_batch: u32, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut batches = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..per_batch {
            f().await;
        }
        batches.push(t.elapsed().as_secs_f64() * 1e6 / per_batch as f64);
    }
    batches.sort_by(f64::total_cmp);
    batches[rounds / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> switchyard::Result<()> {
    let tmp = tempfile::tempdir()?;
    let app = App::open(AppOptions {
        data_dir: Some(tmp.path().to_path_buf()),
        vault: BackendKind::File,
    })
    .await?;
    let t = Instant::now();
    let mut issued = Vec::new();
    for i in 0..1000 {
        let scopes: Vec<String> = if i % 2 == 0 {
            vec![]
        } else {
            vec!["gpt-4*".into(), "claude-*".into(), "llama-3.?-*".into()]
        };
        issued.push(
            tokens::issue(
                &app,
                &format!("client-{i}"),
                &scopes,
                Some(Duration::from_secs(86_400)),
                Actor::Cli,
            )
            .await?,
        );
    }
    println!(
        "issued 1000 tokens in {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let v = Verifier::new(app.db.clone(), app.data_dir(), SystemTime::now).await?;

    let open_h = headers(&issued[0].token);
    let scoped_h = headers(&issued[1].token);
    let model = "gpt-4o-mini";
    // Warm the caches (first sight, first decision).
    for h in [&open_h, &scoped_h] {
        let c = v.authenticate(h).await?.expect("a client");
        c.allow_model(model)?;
    }
    let request = |h: &axum::http::HeaderMap| {
        let (v, h) = (&v, h.clone());
        async move {
            let c = v.authenticate(&h).await.unwrap().unwrap();
            c.allow_model(model).unwrap();
        }
    };
    let cached_open = per_call(9, CACHED_ROUNDS / 9, || request(&open_h)).await;
    println!("per request, cached token, no scopes: {cached_open:.2} µs");
    let cached_scoped = per_call(9, CACHED_ROUNDS / 9, || request(&scoped_h)).await;
    println!("per request, cached token, 3 model patterns: {cached_scoped:.2} µs");

    // First sight: parse, check the signature, read the expiry, run the scope check.
    let t = Instant::now();
    for unseen in issued.iter().skip(2).take(FIRST_SIGHT) {
        let c = v
            .authenticate(&headers(&unseen.token))
            .await?
            .expect("a client");
        // Every token here allows it (half have no scopes, half `gpt-4*` among theirs).
        c.allow_model(model)?;
    }
    let first_sight = t.elapsed().as_secs_f64() * 1e6 / FIRST_SIGHT as f64;
    println!("first sight of a token (signature + Datalog, uncached): {first_sight:.1} µs");

    // A revocation: the next request reloads the clients (1,000 rows) and is refused.
    let mut reloads = Vec::new();
    for revoked in issued.iter().skip(600).take(20) {
        tokens::revoke(&app, revoked.id, Actor::Cli).await?;
        let t = Instant::now();
        let e = v.authenticate(&headers(&revoked.token)).await.unwrap_err();
        reloads.push(t.elapsed().as_secs_f64() * 1e6);
        assert_eq!(e.code, switchyard::Code::TokenRevoked);
    }
    reloads.sort_by(f64::total_cmp);
    let reload = reloads[reloads.len() / 2];
    println!("the request after a revocation (reload of 1,000 clients): {reload:.0} µs");

    println!(
        "{}",
        serde_json::json!({
            "benchmark": "token_verification",
            "clients": 1000,
            "cached_us_per_request_no_scopes": (cached_open * 100.0).round() / 100.0,
            "cached_us_per_request_scoped": (cached_scoped * 100.0).round() / 100.0,
            "first_sight_us": (first_sight * 10.0).round() / 10.0,
            "after_revocation_us": reload.round(),
            "target_cached_us": 20,
        })
    );
    Ok(())
}
