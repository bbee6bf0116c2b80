//! The model pool on the real engine and the fixture model: copies of SmolLM2-135M
//! registered under different names, a budget that holds one or two of them, and the
//! policies, pins, TTLs, single-flight loads and memory figures the pool promises.
//!
//! One pool at a time in this binary (a lock): MLX's active memory, which the pool
//! measures around each load, is process-wide.

mod common;

use futures_util::StreamExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use switchyard::Code;
use switchyard::app::{App, AppOptions, SharedApp};
use switchyard::gateway::local::LocalModels;
use switchyard::pool::model_settings::{self, ModelChange};
use switchyard::pool::{Pool, PoolEvent, PoolEventKind, control};
use switchyard::protocol::canonical::{Event, Message, Request, Role};
use switchyard::settings::pool::{self as pool_settings, Eviction, Limit, PoolChange};
use switchyard::store::audit::Actor;
use switchyard::vault::BackendKind;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn fixture_gguf() -> PathBuf {
    let p = common::repo_root().join(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        p.exists(),
        "fixture {} is missing: run scripts/fetch-fixtures.sh",
        p.display()
    );
    p
}

struct Setup {
    _dir: tempfile::TempDir,
    app: SharedApp,
    pool: Arc<Pool>,
    events: tokio::sync::broadcast::Receiver<PoolEvent>,
}

/// 1 MB = 10^6 bytes; the fixture's footprint at its full 8192-token context is about
/// 475 MB (98 MB of weights, 377 MB of KV cache in float32).
const FOOTPRINT_MB: f64 = 475.0;

/// A pool with `copies` copies of the fixture registered as m0, m1, … and a budget
/// that holds `fit` of them.
async fn setup(copies: usize, fit: usize, eviction: Eviction) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(AppOptions {
        data_dir: Some(dir.path().join("data")),
        vault: BackendKind::File,
    })
    .await
    .unwrap();
    for i in 0..copies {
        let f = dir.path().join(format!("m{i}.gguf"));
        std::fs::copy(fixture_gguf(), &f).unwrap();
        switchyard::models::import(&app.db, &f, Some(format!("m{i}")), Actor::Cli)
            .await
            .unwrap();
    }
    // Room for `fit` models and half of one more.
    let gb = (fit as f64 + 0.5) * FOOTPRINT_MB * 1e6 / (1u64 << 30) as f64;
    pool_settings::set(
        &app,
        Actor::Cli,
        PoolChange {
            limit: Some(Limit::Gb(gb)),
            eviction: Some(eviction),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let pool = Pool::start(&app);
    let events = pool.subscribe();
    Setup {
        _dir: dir,
        app,
        pool,
        events,
    }
}

impl Setup {
    fn loaded(&self) -> Vec<String> {
        let mut v: Vec<String> = self.pool.loaded().into_iter().map(|m| m.name).collect();
        v.sort();
        v
    }

    /// One request's worth of use: acquire and release.
    async fn use_model(&self, name: &str) {
        drop(self.pool.acquire(name).await.unwrap());
    }

    fn drain(&mut self) -> Vec<PoolEvent> {
        let mut v = Vec::new();
        while let Ok(e) = self.events.try_recv() {
            v.push(e);
        }
        v
    }

    /// The next event that `pick` accepts (an unload is announced after the model has
    /// left the list, once its memory is released).
    async fn wait_event(&mut self, what: &str, pick: impl Fn(&PoolEvent) -> bool) -> PoolEvent {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Ok(e)) if pick(&e) => return e,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("pool events: {e}"),
                Err(_) => panic!("timed out waiting for {what}"),
            }
        }
    }

    async fn wait_until(&self, what: &str, ok: impl Fn(&Setup) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ok(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn ask(text: &str) -> Request {
    let mut r = Request {
        messages: vec![Message::text(Role::User, text)],
        max_tokens: Some(8),
        ..Default::default()
    };
    r.sampling.temperature = Some(0.0);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lru_loading_a_second_model_evicts_the_first() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = setup(2, 1, Eviction::Lru).await;
    s.use_model("m0").await;
    assert_eq!(s.loaded(), ["m0"]);
    s.use_model("m1").await;
    assert_eq!(s.loaded(), ["m1"]);
    let ev = s.drain();
    let evicted = ev
        .iter()
        .find(|e| e.kind == PoolEventKind::Unloaded)
        .expect("an unload event");
    assert_eq!(evicted.model, "m0");
    assert_eq!(evicted.reason, "evicted (lru) for m1");
    // Each load is announced and reported, with its reason.
    let loads: Vec<_> = ev
        .iter()
        .filter(|e| e.kind == PoolEventKind::Loaded)
        .map(|e| (e.model.as_str(), e.reason.as_str()))
        .collect();
    assert_eq!(loads, [("m0", "request"), ("m1", "request")]);
    // The budget held throughout.
    let used: u64 = s
        .pool
        .loaded()
        .iter()
        .map(|m| m.bytes_estimated.max(m.bytes_measured))
        .sum();
    assert!(used <= s.pool.budget_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lfu_keeps_the_more_used_model_where_lru_would_not() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = setup(3, 2, Eviction::Lfu).await;
    for _ in 0..4 {
        s.use_model("m0").await;
    }
    s.use_model("m1").await; // used once, but more recently than m0
    assert_eq!(s.loaded(), ["m0", "m1"]);
    s.use_model("m2").await;
    assert_eq!(s.loaded(), ["m0", "m2"], "LFU unloads m1, used least");
    let ev = s.drain();
    assert!(
        ev.iter().any(|e| e.kind == PoolEventKind::Unloaded
            && e.model == "m1"
            && e.reason == "evicted (lfu) for m2"),
        "{ev:?}"
    );
    let m0 = s
        .pool
        .loaded()
        .into_iter()
        .find(|m| m.name == "m0")
        .unwrap();
    assert_eq!(m0.uses, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_model_is_unloaded_after_its_ttl() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = setup(2, 2, Eviction::Lru).await;
    model_settings::change(
        &s.app.db,
        "m0",
        ModelChange {
            ttl_seconds: Some(Some(1)),
            ..Default::default()
        },
        Actor::Cli,
    )
    .await
    .unwrap();
    s.use_model("m0").await;
    s.use_model("m1").await; // no TTL of its own and none for the pool: stays
    let gone = s
        .wait_event("m0's TTL", |e| e.kind == PoolEventKind::Unloaded)
        .await;
    assert_eq!(gone.model, "m0");
    assert_eq!(s.loaded(), ["m1"]);
    assert!(gone.reason.ends_with("(ttl)"), "{}", gone.reason);
    // A model in use does not idle out: hold m1 while a pool-wide TTL of 1 s passes.
    let lease = s.pool.acquire("m1").await.unwrap();
    pool_settings::set(
        &s.app,
        Actor::Cli,
        PoolChange {
            ttl: Some(Some(1)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(s.loaded(), ["m1"]);
    drop(lease);
    s.wait_until("m1's idle TTL once released", |s| s.loaded().is_empty())
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_model_stays_and_the_other_load_is_insufficient_memory() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup(2, 1, Eviction::Lru).await;
    model_settings::change(
        &s.app.db,
        "m0",
        ModelChange {
            pinned: Some(true),
            ..Default::default()
        },
        Actor::Cli,
    )
    .await
    .unwrap();
    s.use_model("m0").await;
    let e = s.pool.acquire("m1").await.err().unwrap();
    assert_eq!(e.code, Code::InsufficientMemory);
    assert!(
        e.message.contains("m0") && e.message.contains("pinned"),
        "{}",
        e.message
    );
    assert_eq!(s.loaded(), ["m0"]);
    // Through the gateway's interface it is the same coded error (HTTP 503).
    let e = s.pool.generate("m1", &ask("Hi")).await.err().unwrap();
    assert_eq!(e.code, Code::InsufficientMemory);
    assert_eq!(e.code.http_status(), 503);
    // Unpinned (by another process: only the row changes), m0 makes room again.
    model_settings::change(
        &s.app.db,
        "m0",
        ModelChange {
            pinned: Some(false),
            ..Default::default()
        },
        Actor::Cli,
    )
    .await
    .unwrap();
    s.use_model("m1").await;
    assert_eq!(s.loaded(), ["m1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_serving_a_request_is_never_evicted() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup(2, 1, Eviction::Lru).await;
    let stream = s
        .pool
        .generate("m0", &ask("Count to twenty."))
        .await
        .unwrap();
    let e = s.pool.acquire("m1").await.err().unwrap();
    assert_eq!(e.code, Code::InsufficientMemory);
    assert!(e.message.contains("serving"), "{}", e.message);
    // The answer is complete, and once it is done m0 may go.
    let events: Vec<Event> = stream.collect().await;
    assert!(
        matches!(events.last(), Some(Event::MessageStop { .. })),
        "{events:?}"
    );
    s.use_model("m1").await;
    assert_eq!(s.loaded(), ["m1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_first_requests_load_the_model_once() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut s = setup(1, 1, Eviction::Lru).await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let pool = s.pool.clone();
        tasks.push(tokio::spawn(async move {
            let stream = pool.generate("m0", &ask(&format!("Say {i}."))).await?;
            Ok::<_, switchyard::Error>(stream.collect::<Vec<Event>>().await)
        }));
    }
    for t in tasks {
        let events = t.await.unwrap().unwrap();
        assert!(
            matches!(events.last(), Some(Event::MessageStop { .. })),
            "{events:?}"
        );
    }
    let loads = s
        .drain()
        .into_iter()
        .filter(|e| e.kind == PoolEventKind::Loading)
        .count();
    assert_eq!(loads, 1);
    assert_eq!(s.pool.loaded()[0].uses, 8);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimated_and_measured_memory_agree_within_20_percent() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup(1, 1, Eviction::Lru).await;
    // A small context, so that the estimate's KV reserve is what a short answer uses.
    model_settings::change(
        &s.app.db,
        "m0",
        ModelChange {
            context: Some(Some(512)),
            ..Default::default()
        },
        Actor::Cli,
    )
    .await
    .unwrap();
    let stream = s
        .pool
        .generate("m0", &ask("Write a long story about a lighthouse."))
        .await
        .unwrap();
    let _: Vec<Event> = stream.collect().await;
    let m = s.pool.loaded().remove(0);
    assert_eq!(m.context, 512);
    let (est, meas) = (m.bytes_estimated as f64, m.bytes_measured as f64);
    assert!(meas > 0.0, "MLX measured nothing: {m:?}");
    let ratio = meas / est;
    eprintln!("estimated {est} measured {meas} ratio {ratio:.3}");
    assert!((0.8..=1.2).contains(&ratio), "{m:?} ratio {ratio}");
    // And a prompt longer than the model's context setting is refused as such.
    let long = "word ".repeat(700);
    let e = s.pool.generate("m0", &ask(&long)).await.err().unwrap();
    assert_eq!(e.code, Code::ContextLengthExceeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_smaller_budget_evicts_at_once_and_preload_loads_in_order() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir_models = ["m0", "m1"];
    let mut s = setup(2, 2, Eviction::Lru).await;
    // A preload list set while the pool runs loads the new names, in order, into free room
    // (the list at start goes the same way).
    pool_settings::set(
        &s.app,
        Actor::Cli,
        PoolChange {
            preload: Some(dir_models.iter().map(|m| m.to_string()).collect()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut reasons = Vec::new();
    for _ in 0..2 {
        let e = s
            .wait_event("the preload list applied live", |e| {
                e.kind == PoolEventKind::Loaded
            })
            .await;
        reasons.push((e.model, e.reason));
    }
    assert_eq!(
        reasons,
        [
            ("m0".to_string(), "preload 1/2".to_string()),
            ("m1".to_string(), "preload 2/2".to_string())
        ]
    );
    assert_eq!(s.loaded(), ["m0", "m1"]);
    s.use_model("m1").await;
    // Room for one: the least recently used goes at once.
    let gb = 1.5 * FOOTPRINT_MB * 1e6 / (1u64 << 30) as f64;
    pool_settings::set(
        &s.app,
        Actor::Cli,
        PoolChange {
            limit: Some(Limit::Gb(gb)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let gone = s
        .wait_event("the smaller budget", |e| e.kind == PoolEventKind::Unloaded)
        .await;
    assert_eq!(
        (gone.model.as_str(), gone.reason.as_str()),
        ("m0", "budget lowered")
    );
    assert_eq!(s.loaded(), ["m1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_processes_reach_the_pool_through_its_socket() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup(2, 1, Eviction::Lru).await;
    let data = s.app.data_dir().to_path_buf();
    assert!(control::loaded(&data).await.unwrap().is_none());
    let e = control::not_running(&data);
    assert_eq!(e.code, Code::GatewayNotRunning);
    let _control = control::serve(&s.pool, &data).expect("socket served");
    mode_is_private(&control::socket_path(&data));
    let load = control::Request::Load { model: "m0".into() };
    let v = control::call(&data, &load).await.unwrap().unwrap();
    assert_eq!(v["name"], "m0");
    assert_eq!(v["uses"], 0, "a load command is not a use");
    let shown = control::loaded(&data).await.unwrap().unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].name, "m0");
    // Errors come back coded.
    let bad = control::Request::Unload { model: "m1".into() };
    let e = control::call(&data, &bad).await.unwrap_err();
    assert_eq!(e.code, Code::ModelNotFound);
    let unload = control::Request::Unload { model: "m0".into() };
    control::call(&data, &unload).await.unwrap().unwrap();
    assert!(control::loaded(&data).await.unwrap().unwrap().is_empty());
    // A second server on the same data dir leaves the first one's socket alone.
    assert!(control::serve(&s.pool, &data).is_none());
}

fn mode_is_private(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{}", p.display());
}

/// The pool's engine settings reach the models it loads: the queue bounds the
/// generations a model accepts (the next is `model_busy`), and the prefix cache on disk
/// lives under the data dir only while it is on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_load_with_the_pools_batch_queue_and_disk_cache_settings() {
    let _one = ONE_AT_A_TIME.lock().await;
    let s = setup(2, 2, Eviction::Lru).await;
    let kv = s.app.data_dir().join("prefix-cache");
    pool_settings::set(
        &s.app,
        Actor::Cli,
        PoolChange {
            batch: Some(1),
            queue: Some(2),
            disk_cache_bytes: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let lease = s.pool.acquire("m0").await.unwrap();
    let long = || {
        let prompt = lease
            .handle
            .chat_prompt(
                &[switchyard::engine::ChatMessage::new(
                    "user",
                    "Count to a thousand.",
                )],
                None,
            )
            .unwrap();
        let mut r = switchyard::engine::GenerateRequest::new(prompt);
        r.max_tokens = 512;
        r
    };
    let first = lease.handle.generate(long()).unwrap();
    let second = lease.handle.generate(long()).unwrap();
    let third = lease.handle.generate(long()).map(|_| ()).unwrap_err();
    assert_eq!(third.code, Code::ModelBusy, "{}", third.message);
    // The two are cancelled; they end at their next token (not left computing when
    // the test binary exits).
    let handle = lease.handle.clone();
    drop((first, second, lease));
    common::wait_generations_end(&handle, "the cancelled generations did not end").await;
    drop(handle);
    assert!(!kv.exists(), "no disk cache while it is off");

    // On: the next model loaded keeps its blocks in a folder of its own there.
    pool_settings::set(
        &s.app,
        Actor::Cli,
        PoolChange {
            disk_cache_bytes: Some(1 << 30),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    s.use_model("m1").await;
    let folders: Vec<_> = std::fs::read_dir(&kv).unwrap().flatten().collect();
    assert_eq!(folders.len(), 1, "{folders:?}");
}
