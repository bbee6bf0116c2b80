//! Faults the user's machine throws at the real binary: `kill -9` in the middle of
//! settings writes and model imports (the database is before or after, never between),
//! and a full disk during settings writes and request logging (coded errors, every
//! committed change still there, `serve` keeps answering).
//!
//! "Disk full" is the file-size resource limit (RLIMIT_FSIZE) of the child process:
//! every write past it fails with EFBIG, exactly where ENOSPC would, without needing
//! root to mount a small file system.

mod common;
#[path = "common/fake_cloud.rs"]
mod fake_cloud;

use common::*;
use serde_json::Value;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A small xorshift PRNG; the seed is printed so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn seed() -> u64 {
    let s = std::env::var("SWITCHYARD_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
        | 1;
    eprintln!("fault test seed {s} (replay with SWITCHYARD_FAULT_SEED={s})");
    s
}

/// Run `c`, SIGKILL it after `after` unless it finished; true if it was killed.
fn kill_after(mut c: Command, stdin: Option<&str>, after: Duration) -> bool {
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(text.as_bytes());
    }
    let deadline = Instant::now() + after;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let killed = child.try_wait().unwrap().is_none();
    if killed {
        child.kill().unwrap();
    }
    child.wait().unwrap();
    killed
}

fn time_of(env: &Env, args: &[&str], stdin: Option<&str>) -> Duration {
    let t = Instant::now();
    let out = env.run(args, stdin);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    t.elapsed()
}

/// Every provider's key decrypts (a fresh process opens the store).
fn all_keys_decrypt(env: &Env) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let app = open_app(env.data_dir()).await;
        let list = switchyard::settings::providers::list(&app).await.unwrap();
        for p in &list {
            let k = switchyard::settings::providers::decrypt_provider_key(&app, p)
                .await
                .unwrap_or_else(|e| panic!("{}'s key does not decrypt: {e:?}", p.name));
            assert_eq!(
                k.map(|k| k.expose().to_string()),
                Some(format!("sk-fault-{}-0123456789abcdef", p.name)),
                "{}",
                p.name
            );
        }
        list.len()
    })
}

#[test]
fn kill_9_during_settings_writes_leaves_the_database_before_or_after() {
    let mut rng = Rng(seed());
    let env = Env::new();
    // Calibrate how long one write takes on this machine now.
    let key = |n: &str| format!("sk-fault-{n}-0123456789abcdef");
    let t_provider = time_of(
        &env,
        &[
            "provider",
            "add",
            "p0",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some(&key("p0")),
    );
    let t_rule = time_of(
        &env,
        &[
            "rule",
            "add",
            "--pattern",
            "r0",
            "--match",
            "exact",
            "--to",
            "p0",
        ],
        None,
    );
    let (mut providers, mut rules, mut killed) = (1usize, 1usize, 0usize);
    // On until 20 kills landed before the write finished (timings drift under load).
    let mut i = 0;
    while killed < 20 {
        i += 1;
        assert!(i <= 300, "only {killed} kills landed in 300 runs");
        let provider = i % 2 == 0;
        let name = format!("p{i}");
        let pattern = format!("r{i}");
        let (args, stdin, t): (Vec<&str>, Option<String>, Duration) = if provider {
            (
                vec![
                    "provider",
                    "add",
                    &name,
                    "--kind",
                    "openai",
                    "--api-key-stdin",
                ],
                Some(key(&name)),
                t_provider,
            )
        } else {
            (
                vec![
                    "rule",
                    "add",
                    "--pattern",
                    &pattern,
                    "--match",
                    "exact",
                    "--to",
                    "p0",
                ],
                None,
                t_rule,
            )
        };
        let mut c = env.cmd();
        c.args(&args);
        killed += kill_after(c, stdin.as_deref(), t.mul_f64(rng.unit() * 1.2)) as usize;
        // Before or after: the count moved by 0 or 1, and everything present is whole.
        let n_prov = all_keys_decrypt(&env);
        let n_rules = env.json(&["rule", "list"]).as_array().unwrap().len();
        assert!(
            n_prov == providers || n_prov == providers + 1,
            "iteration {i}: {providers} → {n_prov} providers"
        );
        assert!(
            n_rules == rules || n_rules == rules + 1,
            "iteration {i}: {rules} → {n_rules} rules"
        );
        (providers, rules) = (n_prov, n_rules);
    }
    eprintln!("settings writes: {killed} of {i} killed before they finished");
}

#[test]
fn kill_9_during_models_import_registers_the_model_wholly_or_not_at_all() {
    let gguf = repo_root().join(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.exists(),
        "fixture missing: run scripts/fetch-fixtures.sh"
    );
    let mut rng = Rng(seed());
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    // A distinct path per attempt (a path is registered once).
    let copy = |i: usize| {
        let p = dir.path().join(format!("m{i}.gguf"));
        std::os::unix::fs::symlink(&gguf, &p).unwrap();
        p
    };
    let p0 = copy(0);
    let t = time_of(
        &env,
        &["models", "import", p0.to_str().unwrap(), "--name", "m0"],
        None,
    );
    let mut killed = 0;
    let mut count = 1;
    let mut i = 0;
    while killed < 10 {
        i += 1;
        assert!(i <= 150, "only {killed} kills landed in 150 runs");
        let p = copy(i);
        let mut c = env.cmd();
        c.args([
            "models",
            "import",
            p.to_str().unwrap(),
            "--name",
            &format!("m{i}"),
        ]);
        killed += kill_after(c, None, t.mul_f64(rng.unit() * 1.2)) as usize;
        let list = env.json(&["models", "list"]);
        let registered: Vec<&Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["name"].as_str().is_some_and(|n| n.starts_with('m')))
            .collect();
        assert!(
            registered.len() == count || registered.len() == count + 1,
            "iteration {i}: {count} → {}",
            registered.len()
        );
        count = registered.len();
        for m in registered {
            // Whole rows only: a registered model has its metadata.
            assert!(m["path"].as_str().is_some_and(|p| !p.is_empty()), "{m}");
            assert!(m["format"].is_string(), "{m}");
        }
    }
    eprintln!("models import: {killed} of {i} killed before they finished");
}

/// Limit every file the child writes to `bytes` (writes past it fail with EFBIG; the
/// SIGXFSZ signal is ignored so the process sees the error rather than dying).
fn with_file_limit(c: &mut Command, bytes: u64) {
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn db_bytes(env: &Env) -> u64 {
    std::fs::read_dir(env.data_dir())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("switchyard.db"))
        // SQLite removes `-wal`/`-shm` when the last connection closes, which the
        // set-up's pool may still be doing: a file gone since the listing has no size.
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(0)
}

#[test]
fn a_full_disk_during_settings_writes_is_a_coded_error_and_loses_nothing_committed() {
    let env = Env::new();
    let out = env.run(
        &[
            "provider",
            "add",
            "p0",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some("sk-fault-p0-0123456789abcdef"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // Fold the write-ahead log into the database first: a WAL left large by the set-up
    // (whether the last process checkpointed it at exit is up to timing) would set the
    // limit so high that the database never reaches it in 200 writes.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use sea_orm::ConnectionTrait;
        let app = open_app(env.data_dir()).await;
        app.db
            .execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)")
            .await
            .unwrap();
    });
    drop(rt);
    // Room for a little growth, then none.
    let limit = db_bytes(&env) + 24 * 1024;
    let mut committed = Vec::new();
    let mut refused = 0;
    for i in 0..200 {
        let pattern = format!("rule-{i}-{}", "x".repeat(200));
        let mut c = env.cmd();
        c.args([
            "--json",
            "rule",
            "add",
            "--pattern",
            &pattern,
            "--match",
            "exact",
            "--to",
            "p0",
        ]);
        with_file_limit(&mut c, limit);
        let out = c.output().unwrap();
        match out.status.code() {
            Some(0) => committed.push(pattern),
            Some(1) => {
                let v: Value = serde_json::from_slice(&out.stdout)
                    .unwrap_or_else(|_| panic!("not a coded error: {}", stderr(&out)));
                let code = v["error"]["code"].as_str().unwrap();
                assert!(
                    ["database_error", "io_error", "data_dir_unavailable"].contains(&code),
                    "{v}"
                );
                refused += 1;
                if refused >= 3 {
                    break;
                }
            }
            other => panic!("exit {other:?} (a crash?): {}", stderr(&out)),
        }
    }
    assert!(
        refused >= 3,
        "the disk never filled up (limit {limit} bytes)"
    );
    assert!(
        !committed.is_empty(),
        "nothing fit before the disk was full"
    );
    // With room again: the database opens and holds every committed rule, in order.
    let rules = env.json(&["rule", "list"]);
    let patterns: Vec<&str> = rules
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pattern"].as_str().unwrap())
        .collect();
    assert_eq!(patterns, committed);
    assert_eq!(all_keys_decrypt(&env), 1);
    let out = env.run(
        &[
            "rule",
            "add",
            "--pattern",
            "after",
            "--match",
            "exact",
            "--to",
            "p0",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_full_disk_during_request_logging_leaves_serve_answering() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(fake_cloud::Fake::start(
        fake_cloud::Api::OpenAi,
        "sk-fault-oai-0123456789abcdef",
    ));
    let env = Env::new();
    let out = env.run(
        &[
            "provider",
            "add",
            "oai",
            "--kind",
            "openai",
            "--base-url",
            &fake.base_url,
            "--api-key-stdin",
        ],
        Some("sk-fault-oai-0123456789abcdef"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(
        &[
            "rule",
            "add",
            "--pattern",
            "gpt-",
            "--match",
            "prefix",
            "--to",
            "oai",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    // The client token is issued before the file limit is measured.
    let token = env.json(&["token", "issue", "faults"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = env.cmd();
    c.args(["--json", "serve", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    with_file_limit(&mut c, db_bytes(&env) + 16 * 1024);
    let mut serve = c.spawn().unwrap();
    let url = ready_url(&mut serve);
    let body = serde_json::json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x".repeat(2000)}]});
    rt.block_on(async {
        let http = common::http_with_token(&token);
        for i in 0..400 {
            let r = http
                .post(format!("{url}/v1/chat/completions"))
                .json(&body)
                .send()
                .await
                .unwrap_or_else(|e| panic!("request {i}: serve stopped answering: {e}"));
            assert_eq!(r.status(), 200, "request {i}");
            if i % 100 == 99 {
                // Let the log writer run into the limit.
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        }
    });
    assert!(serve.try_wait().unwrap().is_none(), "serve exited");
    let _ = serve.kill();
    let _ = serve.wait();
    // The database still opens, and what was logged is readable.
    let logs = env.json(&["logs", "--tail", "1000"]);
    let n = logs.as_array().unwrap().len();
    assert!(n < 400, "the limit never bit: all {n} rows were logged");
    eprintln!("request log under a full disk: {n} of 400 rows written");
}
