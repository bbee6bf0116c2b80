//! `switchyard rule …` through the real binary on a real database.

mod common;
use common::*;
use serde_json::Value;

/// Rows of the tables rule and pool commands write, read straight from the DB file,
/// for "nothing was written" checks.
fn db_dump(env: &Env) -> String {
    use sea_orm::EntityTrait;
    use switchyard::store::entities::{audit_log, pool_config, provider, routing_rule};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = switchyard::store::open(env.data_dir()).await.unwrap();
        let rules = routing_rule::Entity::find().all(&db).await.unwrap();
        let audit = audit_log::Entity::find().all(&db).await.unwrap();
        let pool = pool_config::Entity::find().all(&db).await.unwrap();
        let providers = provider::Entity::find().all(&db).await.unwrap();
        db.close().await.unwrap();
        format!("{rules:?}\n{audit:?}\n{pool:?}\n{providers:?}")
    })
}

/// A provider row written straight to the DB (the provider commands are another
/// part's; a rule only needs the row).
fn add_provider(env: &Env, name: &str) {
    use sea_orm::{ActiveModelTrait, Set};
    use switchyard::store::entities::provider;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = switchyard::store::open(env.data_dir()).await.unwrap();
        provider::ActiveModel {
            name: Set(name.into()),
            kind: Set("openai-compatible".into()),
            base_url: Set("http://127.0.0.1:9".into()),
            created_at: Set(0),
            updated_at: Set(0),
            ..Default::default()
        }
        .insert(&db)
        .await
        .unwrap();
        db.close().await.unwrap();
    });
}

fn ids(env: &Env) -> Vec<i64> {
    let list = env.json(&["rule", "list"]);
    let rules = list.as_array().unwrap();
    let positions: Vec<i64> = rules
        .iter()
        .map(|r| r["position"].as_i64().unwrap())
        .collect();
    assert_eq!(
        positions,
        (0..rules.len() as i64).collect::<Vec<_>>(),
        "positions not dense: {list:#}"
    );
    rules.iter().map(|r| r["id"].as_i64().unwrap()).collect()
}

fn add(env: &Env, args: &[&str]) -> i64 {
    let mut a = vec!["rule", "add"];
    a.extend_from_slice(args);
    env.json(&a)["id"].as_i64().unwrap()
}

fn code_of(out: &std::process::Output) -> String {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}{}", stdout(out), stderr(out)));
    v["error"]["code"].as_str().unwrap().to_string()
}

#[test]
fn add_move_reorder_remove_keep_positions_dense_through_the_cli() {
    let env = Env::new();
    assert_eq!(ids(&env), Vec::<i64>::new());
    let a = add(
        &env,
        &["--pattern", "a", "--match", "exact", "--to", "local"],
    );
    let b = add(
        &env,
        &["--pattern", "b", "--match", "prefix", "--to", "local"],
    );
    let c = add(
        &env,
        &[
            "--pattern",
            "c.*",
            "--match",
            "regex",
            "--to",
            "local",
            "--position",
            "0",
        ],
    );
    assert_eq!(ids(&env), vec![c, a, b]);

    let moved = env.json(&["rule", "move", &a.to_string(), "--to", "2"]);
    assert_eq!(moved.as_array().unwrap().len(), 3);
    assert_eq!(ids(&env), vec![c, b, a]);

    let order = format!("{a},{c},{b}");
    env.json(&["rule", "reorder", &order]);
    assert_eq!(ids(&env), vec![a, c, b]);

    let removed = env.json(&["rule", "remove", &c.to_string()]);
    assert_eq!(removed["id"], c);
    assert_eq!(ids(&env), vec![a, b]);

    let out = env.run(&["--json", "rule", "remove", &c.to_string()], None);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(code_of(&out), "rule_not_found");
    let out = env.run(
        &["--json", "rule", "move", &a.to_string(), "--to", "2"],
        None,
    );
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(code_of(&out), "invalid_argument");
}

#[test]
fn rule_list_json_has_the_documented_fields() {
    let env = Env::new();
    add_provider(&env, "openrouter");
    add(
        &env,
        &[
            "--pattern",
            "fast",
            "--match",
            "exact",
            "--to",
            "openrouter",
            "--model",
            "meta-llama/llama-3.1-8b",
            "--fallback",
            "local",
            "--disabled",
        ],
    );
    let list = env.json(&["rule", "list"]);
    let r = &list[0];
    for key in [
        "id", "position", "pattern", "match", "target", "model", "fallback", "enabled",
    ] {
        assert!(r.get(key).is_some(), "missing {key} in {r:#}");
    }
    assert_eq!(r["match"], "exact");
    assert_eq!(r["target"], "openrouter");
    assert_eq!(r["model"], "meta-llama/llama-3.1-8b");
    assert_eq!(r["fallback"], "local");
    assert_eq!(r["enabled"], false);
    let human = env.run(&["rule", "list"], None);
    assert!(stdout(&human).contains("openrouter"), "{}", stdout(&human));
}

#[test]
fn update_enable_and_disable_change_what_rule_test_reports() {
    let env = Env::new();
    add_provider(&env, "openai");
    let id = add(
        &env,
        &[
            "--pattern",
            "gpt-",
            "--match",
            "prefix",
            "--to",
            "openai",
            "--model",
            "gpt-4o",
        ],
    );
    let t = env.json(&["rule", "test", "gpt-5"]);
    assert_eq!(
        (
            t["matched"].clone(),
            t["target"].clone(),
            t["model"].clone()
        ),
        (Value::Bool(true), "openai".into(), "gpt-4o".into())
    );
    assert_eq!(t["rule"]["id"], id);
    assert_eq!(t["rule"]["position"], 0);

    let u = env.json(&[
        "rule",
        "update",
        &id.to_string(),
        "--no-model",
        "--to",
        "local",
        "--fallback",
        "openai",
    ]);
    assert_eq!(u["model"], Value::Null);
    assert_eq!(u["target"], "local");
    assert_eq!(u["warnings"], serde_json::json!([]));
    let t = env.json(&["rule", "test", "gpt-5"]);
    assert_eq!(
        (
            t["target"].as_str(),
            t["model"].as_str(),
            t["fallback"].as_str()
        ),
        (Some("local"), Some("gpt-5"), Some("openai"))
    );

    env.json(&["rule", "disable", &id.to_string()]);
    let t = env.json(&["rule", "test", "gpt-5"]);
    assert_eq!(t["matched"], false);
    assert_eq!(t["code"], "model_not_found");
    assert_eq!(t["disabled_matches"][0]["id"], id);
    env.json(&["rule", "enable", &id.to_string()]);
    assert_eq!(env.json(&["rule", "test", "gpt-5"])["matched"], true);

    let out = env.run(
        &[
            "rule",
            "update",
            &id.to_string(),
            "--model",
            "x",
            "--no-model",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "conflicting flags are a usage error"
    );
    let out = env.run(&["--json", "rule", "update", &id.to_string()], None);
    assert_eq!(out.status.code(), Some(4));
}

#[test]
fn a_stale_reorder_is_refused_with_exit_4_and_changes_nothing() {
    let env = Env::new();
    let a = add(
        &env,
        &["--pattern", "a", "--match", "exact", "--to", "local"],
    );
    let b = add(
        &env,
        &["--pattern", "b", "--match", "exact", "--to", "local"],
    );
    let seen = format!("{b},{a}"); // what a window showed before…
    let c = add(
        &env,
        &["--pattern", "c", "--match", "exact", "--to", "local"],
    ); // …someone added c
    let before = db_dump(&env);
    let out = env.run(&["--json", "rule", "reorder", &seen], None);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(code_of(&out), "rule_order_conflict");
    assert_eq!(db_dump(&env), before);

    env.json(&["rule", "remove", &a.to_string()]); // …and someone removed a
    let before = db_dump(&env);
    let stale = format!("{c},{b},{a}");
    let out = env.run(&["rule", "reorder", &stale], None);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).starts_with("error[rule_order_conflict]: "),
        "{}",
        stderr(&out)
    );
    assert_eq!(db_dump(&env), before);
    assert_eq!(ids(&env), vec![b, c]);
}

#[test]
fn duplicate_exact_patterns_warn_on_stderr_and_in_json() {
    let env = Env::new();
    add(
        &env,
        &["--pattern", "m", "--match", "exact", "--to", "local"],
    );
    let out = env.run(
        &[
            "rule",
            "add",
            "--pattern",
            "m",
            "--match",
            "exact",
            "--to",
            "local",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr(&out).contains("warning[duplicate_pattern]"),
        "{}",
        stderr(&out)
    );
    let v = env.json(&[
        "rule",
        "add",
        "--pattern",
        "m",
        "--match",
        "exact",
        "--to",
        "local",
    ]);
    assert_eq!(v["warnings"].as_array().unwrap().len(), 2, "{v:#}");
    assert_eq!(v["warnings"][0]["code"], "duplicate_pattern");
}

#[test]
fn bad_rules_are_coded_errors_and_write_nothing() {
    let env = Env::new();
    add(
        &env,
        &["--pattern", "keep", "--match", "exact", "--to", "local"],
    );
    let before = db_dump(&env);
    let long = "x".repeat(10 * 1024);
    let cases: Vec<(Vec<&str>, &str, i32)> = vec![
        (
            vec!["--pattern", "gpt-(4", "--match", "regex", "--to", "local"],
            "rule_regex_invalid",
            4,
        ),
        (
            vec!["--pattern", "a)|(b", "--match", "regex", "--to", "local"],
            "rule_regex_invalid",
            4,
        ),
        (
            vec![
                "--pattern",
                r"\w{500}\w{500}\w{500}",
                "--match",
                "regex",
                "--to",
                "local",
            ],
            "rule_regex_invalid",
            4,
        ),
        (
            vec!["--pattern", &long, "--match", "exact", "--to", "local"],
            "invalid_argument",
            4,
        ),
        (
            vec!["--pattern", "", "--match", "prefix", "--to", "local"],
            "invalid_argument",
            4,
        ),
        (
            vec![
                "--pattern",
                "x",
                "--match",
                "exact",
                "--to",
                "local",
                "--position",
                "5",
            ],
            "invalid_argument",
            4,
        ),
        (
            vec!["--pattern", "x", "--match", "exact", "--to", "nowhere"],
            "provider_not_found",
            3,
        ),
        (
            vec![
                "--pattern",
                "x",
                "--match",
                "exact",
                "--to",
                "local",
                "--fallback",
                "nowhere",
            ],
            "provider_not_found",
            3,
        ),
    ];
    for (args, code, exit) in cases {
        let mut a = vec!["--json", "rule", "add"];
        a.extend_from_slice(&args);
        let out = env.run(&a, None);
        let shown: Vec<String> = args.iter().map(|s| s.chars().take(30).collect()).collect();
        assert_eq!(out.status.code(), Some(exit), "{shown:?}: {}", stdout(&out));
        assert_eq!(code_of(&out), code, "{shown:?}");
    }
    let out = env.run(
        &[
            "rule",
            "add",
            "--pattern",
            "gpt-(4",
            "--match",
            "regex",
            "--to",
            "local",
        ],
        None,
    );
    assert!(
        stderr(&out).contains("unclosed group"),
        "the regex error is shown: {}",
        stderr(&out)
    );
    let out = env.run(
        &[
            "rule",
            "add",
            "--pattern",
            "x",
            "--match",
            "glob",
            "--to",
            "local",
        ],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(2),
        "an unknown match type is a usage error"
    );
    assert_eq!(db_dump(&env), before);
}

#[test]
fn a_catastrophic_looking_regex_is_accepted_and_matches_a_long_name_quickly() {
    let env = Env::new();
    let id = add(
        &env,
        &["--pattern", "(a+)+$", "--match", "regex", "--to", "local"],
    );
    // 100,000 characters: a backtracking engine would take ~2^100000 steps on the
    // non-matching one; Rust's engines are linear in the name.
    let miss = format!("{}!", "a".repeat(100_000));
    let hit = "a".repeat(100_000);
    let started = std::time::Instant::now();
    let t = env.json(&["rule", "test", &miss]);
    assert_eq!(t["matched"], false);
    let t = env.json(&["rule", "test", &hit]);
    assert_eq!(t["rule"]["id"], id);
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(30), "took {took:?}");
}

/// Rule sets built from a fixed seed; `rule test` must pick what an in-order scan of
/// `rule list` picks. The scan here is the test's own (regex crate, whole-name
/// anchors), independent of the matcher under test.
#[test]
fn rule_test_agrees_with_an_in_order_scan_of_rule_list() {
    let env = Env::new();
    add_provider(&env, "cloud");
    let mut seed: u64 = 0x5eed_1234;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let pieces = ["gpt", "-4o", "-mini", "claude", "-3", "llama", "x"];
    let regexes = [
        "gpt-.*",
        "claude-\\d+",
        ".*-mini",
        "(gpt|llama)-4o",
        "x+",
        "[a-z]+",
    ];
    let mut created = 0;
    while created < 24 {
        let kind = ["exact", "prefix", "regex"][next(3) as usize];
        let pattern = match kind {
            "regex" => regexes[next(regexes.len() as u64) as usize].to_string(),
            _ => (0..1 + next(2))
                .map(|_| pieces[next(pieces.len() as u64) as usize])
                .collect(),
        };
        let to = if next(2) == 0 { "local" } else { "cloud" };
        let pos = next(created + 1).to_string();
        let mut args = vec![
            "--pattern",
            &pattern,
            "--match",
            kind,
            "--to",
            to,
            "--position",
            &pos,
        ];
        if next(5) == 0 {
            args.push("--disabled");
        }
        add(&env, &args);
        created += 1;
    }
    let list = env.json(&["rule", "list"]);
    let rules = list.as_array().unwrap();
    let scan = |name: &str| -> Option<i64> {
        rules
            .iter()
            .filter(|r| r["enabled"] == true)
            .find(|r| {
                let p = r["pattern"].as_str().unwrap();
                match r["match"].as_str().unwrap() {
                    "exact" => name == p,
                    "prefix" => name.starts_with(p),
                    _ => regex::Regex::new(&format!("^(?:{p})$"))
                        .unwrap()
                        .is_match(name),
                }
            })
            .map(|r| r["id"].as_i64().unwrap())
    };
    let names = [
        "Z-9",
        "9",
        "gpt",
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-3",
        "claude",
        "claude-3",
        "claude-35",
        "llama-4o",
        "llama",
        "x",
        "xx",
        "xgpt",
        "gpt-mini",
        "unknown",
        "claude-3-mini",
        "llama-3",
    ];
    let mut winners = std::collections::HashSet::new();
    for name in names {
        let t = env.json(&["rule", "test", name]);
        let got = t["rule"]["id"].as_i64();
        winners.insert(got);
        assert_eq!(got, scan(name), "name {name:?}: {t:#}");
        assert_eq!(t["matched"], got.is_some());
        if let Some(id) = got {
            let r = rules.iter().find(|r| r["id"] == id).unwrap();
            assert_eq!(t["rule"]["position"], r["position"]);
            assert_eq!(t["target"], r["target"]);
        }
    }
    // The seed must produce a set where different rules win (and some names miss),
    // or the comparison above proves little.
    assert!(winners.len() >= 5 && winners.contains(&None), "{winners:?}");
}

#[test]
fn concurrent_rule_adds_from_separate_processes_all_land_with_dense_positions() {
    let env = Env::new();
    env.json(&["rule", "list"]); // create the DB first
    let children: Vec<_> = (0..8)
        .map(|i| {
            let mut c = env.cmd();
            c.args([
                "--json",
                "rule",
                "add",
                "--pattern",
                &format!("m{i}"),
                "--match",
                "exact",
                "--to",
                "local",
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
            if i % 2 == 0 {
                c.args(["--position", "0"]);
            }
            c.spawn().unwrap()
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    }
    let ids = ids(&env); // asserts density
    assert_eq!(ids.len(), 8);
    let list = env.json(&["rule", "list"]);
    let mut patterns: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["pattern"].as_str().unwrap())
        .collect();
    patterns.sort();
    assert_eq!(
        patterns,
        (0..8).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
}
