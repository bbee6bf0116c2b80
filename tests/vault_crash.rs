//! Crash safety of key rotation: `keys rotate --root` and `keys rotate --data`, mixed,
//! killed with SIGKILL at random moments, each kill followed by a fresh start. After
//! every start: every provider key decrypts to its original, exactly one root item
//! exists in the (file) keychain and it is the one the database uses, and no rotation
//! is left pending.
//!
//! Kill moments are drawn around the rotation itself, not just anywhere in the
//! process's life: the child logs a debug line at each rotation step, a reader thread
//! timestamps those lines, and kills are aimed between two consecutive steps (from a
//! running estimate of when each is reached), so every step gets its share. Each iteration is then classified by the steps the
//! child reached before it died; the test asserts that a good share landed mid-rotation
//! and prints the statistics.

mod common;

use common::*;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use switchyard::app::{App, AppOptions};
use switchyard::settings::providers::{self, KeyChange, ProviderInput, ProviderKind};
use switchyard::store::audit::Actor;
use switchyard::vault::backend::{FILE_VAULT_NAME, FileStore, SERVICE};
use switchyard::vault::{BackendKind, SecretString};

const PROVIDERS: usize = 200;

/// Kills that must land in the middle of each kind of rotation.
const MID_KILLS: usize = 25;

fn iterations() -> usize {
    std::env::var("SWITCHYARD_CRASH_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(240)
        .max(200)
}

/// A small xorshift PRNG seeded from the clock; the seed is printed so a failing run
/// can be replayed with SWITCHYARD_CRASH_SEED.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    Data,
    Root,
}

impl Op {
    fn args(self) -> &'static [&'static str] {
        match self {
            Op::Data => &["keys", "rotate", "--data"],
            Op::Root => &["keys", "rotate", "--root", "--yes"],
        }
    }
    /// The debug lines the rotation logs, in order (see `vault::Vault::rotate_*`).
    fn steps(self) -> &'static [&'static str] {
        match self {
            Op::Data => &["rotate-data: begin", "rotate-data: committed"],
            Op::Root => &[
                "rotate-root: begin",
                "rotate-root: journal written",
                "rotate-root: new root stored",
                "rotate-root: database switched",
                "rotate-root: old root deleted",
                "rotate-root: done",
            ],
        }
    }
    fn last(self) -> &'static str {
        self.steps()[self.steps().len() - 1]
    }
}

/// One run of the child: the steps it logged, with their time since spawn.
struct Run {
    steps: Vec<(Duration, String)>,
    exited_by_itself: bool,
}

fn run_child(env: &Env, op: Op, kill_after: Option<Duration>) -> Run {
    let mut c = env.cmd();
    c.env("SWITCHYARD_LOG", "switchyard=debug")
        .args(op.args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = c.spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut steps = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("vault: rotate-") {
                steps.push((start.elapsed(), line[i + "vault: ".len()..].to_string()));
            }
        }
        steps
    });
    let mut exited_by_itself = true;
    if let Some(d) = kill_after {
        let deadline = start + d;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            std::thread::sleep(left.min(Duration::from_micros(200)));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            exited_by_itself = false;
        }
    }
    let status = child.wait().unwrap();
    if exited_by_itself {
        assert!(status.success(), "an unkilled rotation failed: {status:?}");
    }
    Run {
        steps: reader.join().unwrap(),
        exited_by_itself,
    }
}

fn at(run: &Run, step: &str) -> Option<Duration> {
    run.steps.iter().find(|(_, s)| s == step).map(|(t, _)| *t)
}

/// Where the kill landed, by the last step the child reported.
fn classify(op: Op, run: &Run) -> String {
    if run.exited_by_itself {
        return "completed".into();
    }
    match run.steps.last() {
        None => "before".into(),
        Some((_, s)) if s == op.last() => "after".into(),
        Some((_, s)) => format!("mid ({})", s.trim_start_matches("rotate-")),
    }
}

async fn open(dir: &Path) -> std::sync::Arc<App> {
    App::open(AppOptions {
        data_dir: Some(dir.to_path_buf()),
        vault: BackendKind::File,
    })
    .await
    .unwrap()
}

/// The root the database names, read without running recovery.
async fn db_root_id(dir: &Path) -> Option<String> {
    let db = switchyard::store::open(dir).await.unwrap();
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT value FROM vault_meta WHERE key = 'root_id'",
        ))
        .await
        .unwrap();
    let id = row.map(|r| r.try_get_by_index::<String>(0).unwrap());
    db.close().await.unwrap();
    id
}

#[test]
fn rotations_killed_at_random_moments_never_lose_a_key_or_leave_a_second_root() {
    let seed = std::env::var("SWITCHYARD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("crash test seed {seed} (replay with SWITCHYARD_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let env = Env::new();
    let dir = env.data_dir().to_path_buf();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    // 200 providers with distinct keys.
    let originals: BTreeMap<String, String> = (0..PROVIDERS)
        .map(|i| {
            (
                format!("p{i:03}"),
                format!("sk-crash-{i:03}-{:016x}", rng.next()),
            )
        })
        .collect();
    rt.block_on(async {
        let app = open(&dir).await;
        for (name, key) in &originals {
            providers::upsert(
                &app,
                Actor::Cli,
                ProviderInput {
                    name: name.clone(),
                    kind: ProviderKind::OpenAi,
                    base_url: None,
                    key: KeyChange::Set(SecretString::new(key.clone())),
                },
            )
            .await
            .unwrap();
        }
    });

    // Calibrate: when is each step reached after spawn? (running estimates per step)
    let mut when: BTreeMap<(Op, &'static str), f64> = BTreeMap::new();
    for op in [Op::Data, Op::Root] {
        for _ in 0..3 {
            let r = run_child(&env, op, None);
            for step in op.steps() {
                let t = at(&r, step).unwrap().as_secs_f64();
                *when.entry((op, *step)).or_default() += t / 3.0;
            }
        }
    }
    eprintln!("calibration (s after spawn): {when:?}");

    let n = iterations();
    let mut stats: BTreeMap<(Op, String), usize> = BTreeMap::new();
    let mut recovered: BTreeMap<String, usize> = BTreeMap::new();
    let mut orphans_before_recovery = 0usize;
    let store = FileStore::new(dir.join(FILE_VAULT_NAME));
    let started = Instant::now();
    // At least `n` kills, and on until enough of them landed mid-rotation of each kind
    // (under load the timing estimates drift, so more kills may be needed), within a cap.
    let enough = |stats: &BTreeMap<(Op, String), usize>, op: Op| -> bool {
        stats
            .iter()
            .filter(|((o, c), _)| *o == op && c.starts_with("mid"))
            .map(|(_, n)| n)
            .sum::<usize>()
            >= MID_KILLS
    };
    let mut i = 0;
    while i < n || (i < 4 * n && !(enough(&stats, Op::Data) && enough(&stats, Op::Root))) {
        i += 1;
        let op = if rng.next().is_multiple_of(2) {
            Op::Data
        } else {
            Op::Root
        };
        // Mostly between two consecutive steps (each gap equally often, so the short
        // late steps of a root rotation get their share), sometimes anywhere.
        let steps = op.steps();
        let t = if rng.unit() < 0.1 {
            rng.unit() * when[&(op, op.last())] * 1.2
        } else {
            let k = (rng.next() as usize) % (steps.len() - 1);
            let (a, b) = (when[&(op, steps[k])], when[&(op, steps[k + 1])]);
            let gap = (b - a).max(0.0005);
            a - 0.1 * gap + rng.unit() * 1.2 * gap
        };
        let run = run_child(&env, op, Some(Duration::from_secs_f64(t.max(0.0))));
        // Follow the real timing (the machine's load changes).
        for step in steps {
            if let Some(seen) = at(&run, step) {
                let e = when.get_mut(&(op, *step)).unwrap();
                *e = 0.8 * *e + 0.2 * seen.as_secs_f64();
            }
        }
        *stats.entry((op, classify(op, &run))).or_default() += 1;

        // Before recovery: the root the database names must exist (one root always decrypts).
        let named = rt
            .block_on(db_root_id(&dir))
            .expect("the database lost its root id");
        let accounts = store.accounts(SERVICE).unwrap();
        assert!(
            accounts.contains(&format!("root-v1-{named}")),
            "iteration {i} ({op:?}, {}): the database names root {named} but the keychain has {accounts:?}",
            classify(op, &run)
        );
        orphans_before_recovery += accounts.len() - 1;

        // A fresh start: recovery runs in App::open.
        rt.block_on(async {
            let app = open(&dir).await;
            let st = app.vault.status(&app.db).await.unwrap();
            assert_eq!(st.root_state, "ok", "iteration {i}: {:?}", st.problem);
            assert!(
                !st.rotation_pending,
                "iteration {i}: journal left after recovery"
            );
            let root = st.root_id.clone().unwrap();
            assert_eq!(
                store.accounts(SERVICE).unwrap(),
                vec![format!("root-v1-{root}")],
                "iteration {i}: not exactly one root item after recovery"
            );
            let active: Vec<_> = st
                .data_keys
                .iter()
                .filter(|k| k.state != "retired")
                .collect();
            assert_eq!(active.len(), 1, "iteration {i}: live data keys {active:?}");
            assert_eq!(active[0].secrets as usize, PROVIDERS, "iteration {i}");
            assert!(st.data_keys.iter().all(|k| k.root_id == root));
            for p in providers::list(&app).await.unwrap() {
                let k = providers::decrypt_provider_key(&app, &p)
                    .await
                    .unwrap_or_else(|e| panic!("iteration {i}: {} does not decrypt: {e:?}", p.name))
                    .unwrap();
                assert_eq!(k.expose(), originals[&p.name], "iteration {i}: {}", p.name);
            }
            let rows = app
                .db
                .query_all_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT details FROM audit_log WHERE action = 'vault.recover'",
                ))
                .await
                .unwrap();
            recovered.clear();
            for r in rows {
                let d: serde_json::Value =
                    serde_json::from_str(&r.try_get_by_index::<String>(0).unwrap()).unwrap();
                *recovered
                    .entry(format!(
                        "{} {}",
                        d["op"].as_str().unwrap(),
                        d["action"].as_str().unwrap()
                    ))
                    .or_default() += 1;
            }
            app.db.clone().close().await.unwrap();
        });
    }

    let mid: usize = stats
        .iter()
        .filter(|((_, c), _)| c.starts_with("mid"))
        .map(|(_, n)| n)
        .sum();
    let mid_of = |op: Op| -> usize {
        stats
            .iter()
            .filter(|((o, c), _)| *o == op && c.starts_with("mid"))
            .map(|(_, n)| n)
            .sum()
    };
    for ((op, class), count) in &stats {
        println!("crash: {op:?} {class}: {count}");
    }
    println!(
        "crash: recoveries at start-up: {recovered:?}; orphan root items found before recovery: {orphans_before_recovery}"
    );
    let summary = serde_json::json!({
        "iterations": i,
        "seed": seed,
        "killed_mid_rotation": mid,
        "killed_mid_data_rotation": mid_of(Op::Data),
        "killed_mid_root_rotation": mid_of(Op::Root),
        "outcomes": stats.iter().map(|((o, c), n)| (format!("{o:?} {c}"), *n)).collect::<BTreeMap<_, _>>(),
        "recoveries": recovered,
        "orphans_before_recovery": orphans_before_recovery,
        "seconds": started.elapsed().as_secs_f64(),
    });
    println!("{summary}");
    assert!(
        mid_of(Op::Data) >= MID_KILLS && mid_of(Op::Root) >= MID_KILLS,
        "only {mid} kills landed mid-rotation in {i} runs; the test is not testing crashes: {summary}"
    );
}
