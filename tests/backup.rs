//! `backup export | import` through the real binary: a round trip to a new data dir
//! with another root secret (keys decrypt and work against the fake upstream, rules in
//! the same order), the preview writes nothing, every bad file is a coded error that
//! changes nothing, and `kill -9` during `import --apply` leaves the database wholly
//! before or after.

mod common;
#[path = "common/fake_cloud.rs"]
mod fake_cloud;

use common::*;
use fake_cloud::Api as Flavor;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASS: &str = "correct horse battery staple";
const KEY_A: &str = "sk-backup-alpha-0123456789abcdef";
const KEY_B: &str = "sk-backup-beta-0123456789abcdef";

fn ok(o: &std::process::Output) -> Value {
    assert!(
        o.status.success(),
        "failed ({:?}): {}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn code(o: &std::process::Output) -> String {
    assert!(!o.status.success(), "expected a failure: {}", stdout(o));
    let v: Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}{}", stdout(o), stderr(o)));
    v["error"]["code"].as_str().unwrap().to_string()
}

/// A configured install: two providers with keys (one at the fake upstream), one
/// without, three rules in a chosen order, pool settings.
fn configured(base: &str) -> Env {
    let env = Env::new();
    let add = |name: &str, kind: &str, url: Option<&str>, key: Option<&str>| {
        let mut a = vec!["--json", "provider", "add", name, "--kind", kind];
        if let Some(u) = url {
            a.extend(["--base-url", u]);
        }
        if key.is_some() {
            a.push("--api-key-stdin");
        } else {
            a.push("--no-key");
        }
        ok(&env.run(&a, key));
    };
    add("alpha", "openai-compatible", Some(base), Some(KEY_A));
    add("beta", "anthropic", None, Some(KEY_B));
    add("gamma", "openai", None, None);
    for (pat, m, to) in [
        ("gpt-", "prefix", "alpha"),
        ("claude-.*", "regex", "beta"),
        ("llama", "exact", "local"),
    ] {
        ok(&env.run(
            &[
                "--json",
                "rule",
                "add",
                "--pattern",
                pat,
                "--match",
                m,
                "--to",
                to,
            ],
            None,
        ));
    }
    // A chosen order: the regex rule first.
    let ids: Vec<i64> = env
        .json(&["rule", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    ok(&env.run(
        &[
            "--json",
            "rule",
            "reorder",
            &format!("{},{},{}", ids[1], ids[2], ids[0]),
        ],
        None,
    ));
    ok(&env.run(
        &["--json", "pool", "set", "--eviction", "lfu", "--ttl", "20m"],
        None,
    ));
    env
}

/// What a restore must reproduce: providers (name, kind, URL, key hint), rules in
/// order (without row ids and times), pool settings.
type State = (Vec<(String, String, String, Value)>, Value, Value);

fn state(env: &Env) -> State {
    let mut pool = env.json(&["pool", "show"]);
    pool.as_object_mut().unwrap().remove("loaded");
    (
        providers_view(&env.json(&["provider", "list"])),
        strip_ids(env.json(&["rule", "list"])),
        pool,
    )
}

/// Rules without their ids and times (a restore makes new rows).
fn strip_ids(mut v: Value) -> Value {
    for r in v.as_array_mut().unwrap() {
        let o = r.as_object_mut().unwrap();
        o.remove("id");
        o.remove("created_at");
        o.remove("updated_at");
    }
    v
}

fn providers_view(v: &Value) -> Vec<(String, String, String, Value)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["kind"].as_str().unwrap().to_string(),
                p["base_url"].as_str().unwrap().to_string(),
                p["key_hint"].clone(),
            )
        })
        .collect()
}

#[test]
fn a_backup_restores_on_a_new_install_with_another_root() {
    let (cloud, rt) = fake_cloud::start_in_background(Flavor::OpenAi, KEY_A);
    let a = configured(&cloud.base("ok"));
    // A client token issued before the export: it must work on the restored install.
    let laptop = a.json(&["token", "issue", "laptop", "--models", "gpt-*"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let file = a.data_dir().join("exports/all.backup");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let out = ok(&a.run(
        &[
            "--json",
            "backup",
            "export",
            file.to_str().unwrap(),
            "--passphrase-stdin",
        ],
        Some(PASS),
    ));
    assert_eq!(out["providers"], 3);
    assert_eq!(out["keys"], 2);
    assert_eq!(out["rules"], 3);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(KEY_A) && !text.contains("sk-backup") && !text.contains(&laptop[3..]),
        "a key or token in plaintext"
    );
    let head: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(head["format"], "switchyard-backup");
    assert_eq!(head["schema_version"], 1);
    assert_eq!(head["kdf"]["alg"], "argon2id");
    assert_eq!(head["kdf"]["m_kib"], 65536);

    // A new install: its own root (another fingerprint), nothing configured.
    let b = Env::new();
    ok(&b.run(
        &[
            "--json",
            "provider",
            "add",
            "old",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some("sk-old-0123456789abcdef"),
    ));
    let b_own = b.json(&["token", "issue", "b-own"])["token"]
        .as_str()
        .unwrap()
        .to_string();
    let before = state(&b);
    let preview = ok(&b.run(
        &[
            "--json",
            "backup",
            "import",
            file.to_str().unwrap(),
            "--passphrase-stdin",
        ],
        Some(PASS),
    ));
    assert_eq!(preview["applied"], false);
    assert_eq!(preview["same_install"], false);
    assert_eq!(
        preview["providers"]["added"],
        serde_json::json!(["alpha", "beta", "gamma"])
    );
    assert_eq!(preview["providers"]["removed"], serde_json::json!(["old"]));
    assert_eq!(preview["rules_after"], 3);
    assert_eq!(preview["rules_changed"], true);
    assert!(preview["pool_changed"].as_array().unwrap().len() >= 2);
    assert_eq!(preview["clients"]["added"].as_array().unwrap().len(), 1);
    assert_eq!(preview["clients"]["removed"].as_array().unwrap().len(), 1);
    assert!(
        preview["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("token signing key replaces")),
        "{preview}"
    );
    assert_eq!(state(&b), before, "the preview wrote nothing");

    // --apply without a terminal needs --yes.
    let out = b.run(
        &[
            "--json",
            "backup",
            "import",
            file.to_str().unwrap(),
            "--passphrase-stdin",
            "--apply",
        ],
        Some(PASS),
    );
    assert_eq!(code(&out), "confirmation_required");
    assert_eq!(state(&b), before);

    let done = ok(&b.run(
        &[
            "--json",
            "backup",
            "import",
            file.to_str().unwrap(),
            "--passphrase-stdin",
            "--apply",
            "--yes",
        ],
        Some(PASS),
    ));
    assert_eq!(done["applied"], true);
    let (pa, ra, pool_a) = state(&a);
    let (pb, rb, pool_b) = state(&b);
    assert_eq!(pb, pa);
    assert_eq!(rb, ra, "the same rules in the same order");
    assert_eq!(pool_b, pool_a);
    assert_ne!(
        a.json(&["keys", "status"])["fingerprint"],
        b.json(&["keys", "status"])["fingerprint"],
        "two installs, two roots"
    );
    // The restored key decrypts under the new root and is the right one upstream.
    let t = b.json(&["provider", "test", "alpha"]);
    assert_eq!(t["ok"], true, "{t}");
    assert!(
        cloud.seen_keys().contains(&format!("Bearer {KEY_A}")),
        "{:?}",
        cloud.seen_keys()
    );

    // The signing key travelled: the token issued on `a` opens `b`'s gateway (with its
    // scopes); `b`'s own token, signed by the key the restore replaced, does not.
    let listed = b.json(&["token", "list"]);
    assert_eq!(listed[0]["name"], "laptop");
    assert_eq!(listed[0]["scopes"], serde_json::json!(["gpt-*"]));
    let mut serve = b
        .cmd()
        .args(["--json", "serve", "--port", "0"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = common::ready_doc(&mut serve);
    assert!(
        ready["default_token"].is_null(),
        "clients exist: no `default`"
    );
    let url = ready["url"].as_str().unwrap().to_string();
    let status = |token: &str, model: &str| {
        let (url, token, model) = (url.clone(), token.to_string(), model.to_string());
        rt.block_on(async move {
            let r = reqwest::Client::new()
                .post(format!("{url}/v1/chat/completions"))
                .header("authorization", format!("Bearer {token}"))
                .json(&serde_json::json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}))
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            let v: Value = r.json().await.unwrap_or(Value::Null);
            (s, v["error"]["code"].as_str().unwrap_or("").to_string())
        })
    };
    // Past the token check, the request reaches the fake (which has no chat endpoint).
    assert_eq!(status(&laptop, "gpt-4o").0, 404);
    let models = rt.block_on(
        reqwest::Client::new()
            .get(format!("{url}/v1/models"))
            .bearer_auth(&laptop)
            .send(),
    );
    assert_eq!(models.unwrap().status(), 200);
    assert_eq!(status(&laptop, "llama").1, "model_not_allowed");
    assert_eq!(status(&b_own, "gpt-4o").1, "token_wrong_install");
    let _ = serve.kill();
    let _ = serve.wait();

    // Applying the same file again changes nothing.
    let again = ok(&b.run(
        &[
            "--json",
            "backup",
            "import",
            file.to_str().unwrap(),
            "--passphrase-stdin",
        ],
        Some(PASS),
    ));
    assert!(again["providers"]["added"].as_array().unwrap().is_empty());
    assert!(
        again["providers"]["changed"].as_array().unwrap().is_empty(),
        "{again}"
    );
    assert_eq!(again["rules_changed"], false);
    assert_eq!(again["same_install"], false);
}

#[test]
fn bad_files_and_passphrases_are_coded_errors_that_change_nothing() {
    let a = configured("http://127.0.0.1:9/v1");
    let file = a.data_dir().join("a.backup");
    let f = file.to_str().unwrap();
    // Too short a passphrase writes nothing.
    let out = a.run(
        &["--json", "backup", "export", f, "--passphrase-stdin"],
        Some("short"),
    );
    assert_eq!(code(&out), "invalid_argument");
    assert!(!file.exists());
    ok(&a.run(
        &["--json", "backup", "export", f, "--passphrase-stdin"],
        Some(PASS),
    ));
    let good = std::fs::read_to_string(&file).unwrap();

    let b = Env::new();
    let before = state(&b);
    let try_import = |path: &std::path::Path, pass: &str| {
        let out = b.run(
            &[
                "--json",
                "backup",
                "import",
                path.to_str().unwrap(),
                "--passphrase-stdin",
                "--apply",
                "--yes",
            ],
            Some(pass),
        );
        assert_eq!(out.status.code(), Some(4), "{}", stdout(&out));
        code(&out)
    };
    assert_eq!(
        try_import(&file, "the wrong passphrase!"),
        "backup_bad_passphrase"
    );

    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    assert_eq!(
        try_import(&write("trunc", &good[..good.len() / 2]), PASS),
        "backup_corrupt"
    );
    let mut v: Value = serde_json::from_str(&good).unwrap();
    let ct = v["ciphertext"].as_str().unwrap().to_string();
    let flipped = format!(
        "{}{}{}",
        &ct[..100],
        if &ct[100..101] == "a" { "b" } else { "a" },
        &ct[101..]
    );
    v["ciphertext"] = Value::String(flipped);
    assert_eq!(
        try_import(&write("flip", &v.to_string()), PASS),
        "backup_corrupt"
    );
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["created_at"] = Value::from(1);
    assert_eq!(
        try_import(&write("hdr", &v.to_string()), PASS),
        "backup_corrupt"
    );
    let mut v: Value = serde_json::from_str(&good).unwrap();
    v["schema_version"] = Value::from(2);
    assert_eq!(
        try_import(&write("v2", &v.to_string()), PASS),
        "backup_schema_unsupported"
    );
    assert_eq!(
        try_import(&write("junk", "PK\u{3}\u{4}zip"), PASS),
        "backup_corrupt"
    );
    let big = dir.path().join("big");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(17 << 20)
        .unwrap();
    assert_eq!(try_import(&big, PASS), "backup_too_large");
    assert_eq!(state(&b), before, "nothing was written by any of them");
}

#[test]
fn kill_9_during_import_apply_leaves_the_database_before_or_after() {
    let a = configured("http://127.0.0.1:9/v1");
    let file = a.data_dir().join("a.backup");
    ok(&a.run(
        &[
            "--json",
            "backup",
            "export",
            file.to_str().unwrap(),
            "--passphrase-stdin",
        ],
        Some(PASS),
    ));
    let b = Env::new();
    ok(&b.run(
        &[
            "--json",
            "provider",
            "add",
            "old",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some("sk-old-0123456789abcdef"),
    ));
    ok(&b.run(
        &[
            "--json",
            "rule",
            "add",
            "--pattern",
            "x",
            "--match",
            "exact",
            "--to",
            "old",
        ],
        None,
    ));
    let before = state(&b);
    let args = [
        "backup",
        "import",
        file.to_str().unwrap(),
        "--passphrase-stdin",
        "--apply",
        "--yes",
    ];
    // What the import makes of an install, on a scratch one.
    let scratch = Env::new();
    ok(&scratch.run(&[&["--json"][..], &args].concat(), Some(PASS)));

    let mut rng = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill -9 seed {rng}");
    let before_file = b.data_dir().join("before.backup");
    ok(&b.run(
        &[
            "--json",
            "backup",
            "export",
            before_file.to_str().unwrap(),
            "--passphrase-stdin",
        ],
        Some(PASS),
    ));
    let after = state(&scratch);
    assert_ne!(after, before);
    // A whole `import --apply` of the backup of `b`'s state before the import under test.
    let restore_before = || {
        ok(&b.run(
            &[
                "--json",
                "backup",
                "import",
                before_file.to_str().unwrap(),
                "--passphrase-stdin",
                "--apply",
                "--yes",
            ],
            Some(PASS),
        ));
    };
    // How long a whole import takes on this install: the fastest of three full applies
    // (of the backup of its own state, which changes nothing), so that tests running
    // beside this one cannot stretch the window the kills are spread over.
    let full = (0..3)
        .map(|_| {
            let t = Instant::now();
            restore_before();
            t.elapsed()
        })
        .min()
        .unwrap();
    assert_eq!(state(&b), before);
    let (mut killed, mut finished, mut applied) = (0, 0, 0);
    for _ in 0..100 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Key derivation takes the first half; the transaction is at the end, so the
        // kills land from the middle to a little past the whole (some runs finish).
        let at = full.mul_f64(0.5 + 0.7 * (rng % 10_000) as f64 / 10_000.0);
        let mut c: Command = b.cmd();
        c.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = c.spawn().unwrap();
        {
            use std::io::Write;
            let _ = child.stdin.take().unwrap().write_all(PASS.as_bytes());
        }
        let deadline = Instant::now() + at;
        while Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_micros(200));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        } else {
            finished += 1;
        }
        child.wait().unwrap();
        let now = state(&b);
        if now != before {
            assert_eq!(now, after, "neither before nor after the import");
            applied += 1;
            // Back to the old state for the next kill.
            restore_before();
            assert_eq!(state(&b), before);
        }
    }
    eprintln!("{killed} killed, {finished} finished, {applied} applied");
    assert!(
        killed >= 20,
        "only {killed} of 100 runs were killed before they finished"
    );
}
