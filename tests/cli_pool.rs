//! `switchyard pool show|set` through the real binary on a real database.

mod common;
use common::*;
use serde_json::Value;

const GB: u64 = 1 << 30;

/// MemTotal from /proc/meminfo, read here independently of the code under test.
fn physical_ram() -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

fn db_dump(env: &Env) -> String {
    use sea_orm::EntityTrait;
    use switchyard::store::entities::{audit_log, pool_config};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = switchyard::store::open(env.data_dir()).await.unwrap();
        let pool = pool_config::Entity::find().all(&db).await.unwrap();
        let audit = audit_log::Entity::find().all(&db).await.unwrap();
        db.close().await.unwrap();
        format!("{pool:?}\n{audit:?}")
    })
}

#[test]
fn pool_show_prints_the_documented_fields_and_the_budget_of_this_machine() {
    let env = Env::new();
    let v = env.json(&["pool", "show"]);
    for key in [
        "limit",
        "budget_bytes",
        "eviction",
        "ttl_seconds",
        "preload",
        "loaded",
    ] {
        assert!(v.get(key).is_some(), "missing {key}: {v:#}");
    }
    let ram = physical_ram();
    assert_eq!(v["limit"], "75%");
    assert_eq!(v["physical_ram_bytes"], ram);
    assert_eq!(v["budget_bytes"], ram * 75 / 100);
    assert_eq!(v["eviction"], "lru");
    assert_eq!(v["ttl_seconds"], Value::Null);
    assert_eq!(v["loaded"], serde_json::json!([]));
    let out = env.run(&["pool", "show"], None);
    assert!(stdout(&out).contains("75% of RAM"), "{}", stdout(&out));
}

#[test]
fn pool_set_stores_each_option_and_show_reads_it_back() {
    let env = Env::new();
    let v = env.json(&[
        "pool",
        "set",
        "--limit",
        "1GB",
        "--eviction",
        "ttl",
        "--ttl",
        "15m",
    ]);
    assert_eq!(v["limit"], "1GB");
    assert_eq!(v["budget_bytes"], GB);
    assert_eq!(v["ttl_seconds"], 900);
    let v = env.json(&["pool", "show"]);
    assert_eq!(
        (
            v["limit"].as_str(),
            v["eviction"].as_str(),
            v["ttl_seconds"].as_u64()
        ),
        (Some("1GB"), Some("ttl"), Some(900))
    );

    let v = env.json(&[
        "pool",
        "set",
        "--eviction",
        "lfu",
        "--ttl",
        "off",
        "--limit",
        "50%",
    ]);
    assert_eq!(v["ttl_seconds"], Value::Null);
    assert_eq!(v["budget_bytes"], physical_ram() / 2);

    let out = env.run(
        &["pool", "set", "--preload", "llama-1b,qwen,llama-1b"],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("warning[model_not_found]").count(),
        2,
        "{}",
        stderr(&out)
    );
    let v = env.json(&["pool", "show"]);
    assert_eq!(v["preload"], serde_json::json!(["llama-1b", "qwen"]));
    assert_eq!(v["warnings"].as_array().unwrap().len(), 2);
    let v = env.json(&["pool", "set", "--preload", ""]);
    assert_eq!(v["preload"], serde_json::json!([]));

    // The engine's settings: defaults, then changed and read back.
    let v = env.json(&["pool", "show"]);
    assert_eq!(
        (&v["batch"], &v["queue"], &v["disk_cache_bytes"]),
        (
            &serde_json::json!(8),
            &serde_json::json!(8),
            &serde_json::json!(4 * GB)
        )
    );
    env.json(&[
        "pool",
        "set",
        "--batch",
        "4",
        "--queue",
        "16",
        "--disk-cache",
        "512MB",
    ]);
    let v = env.json(&["pool", "show"]);
    assert_eq!(
        (&v["batch"], &v["queue"], &v["disk_cache_bytes"]),
        (
            &serde_json::json!(4),
            &serde_json::json!(16),
            &serde_json::json!(512 << 20)
        )
    );
    let out = env.run(&["pool", "show"], None);
    let text = stdout(&out);
    assert!(
        text.contains("batch     4 generations per model together, 16 accepted at once"),
        "{text}"
    );
    let v = env.json(&["pool", "set", "--disk-cache", "off"]);
    assert_eq!(v["disk_cache_bytes"], 0);
    assert!(stdout(&env.run(&["pool", "show"], None)).contains("kv disk   off"));
}

#[test]
fn bad_pool_settings_exit_4_with_a_code_and_write_nothing() {
    let env = Env::new();
    env.json(&["pool", "show"]);
    let before = db_dump(&env);
    let above = format!("{}GB", physical_ram() / GB + 1);
    let cases: Vec<Vec<&str>> = vec![
        vec!["--limit", "0%"],
        vec!["--limit", "200%"],
        vec!["--limit", &above],
        vec!["--limit", "0GB"],
        vec!["--limit", "lots"],
        vec!["--eviction", "fifo"],
        vec!["--eviction", "ttl"],
        vec!["--ttl", "15"],
        vec!["--ttl", "0s"],
        vec!["--ttl", "45d"],
        vec!["--limit", "50%", "--ttl", "bogus"],
        vec!["--batch", "0"],
        vec!["--batch", "65", "--queue", "100"],
        vec!["--queue", "2"],
        vec!["--queue", "5000"],
        vec!["--disk-cache", "4"],
        vec!["--disk-cache", "lots"],
    ];
    for args in cases {
        let mut a = vec!["--json", "pool", "set"];
        a.extend_from_slice(&args);
        let out = env.run(&a, None);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stdout(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], "pool_config_invalid", "{args:?}");
    }
    let out = env.run(&["pool", "set", "--limit", "200%"], None);
    assert!(
        error_line(&out).starts_with("error[pool_config_invalid]: "),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["--json", "pool", "set"], None);
    assert_eq!(out.status.code(), Some(4), "nothing to change");
    assert_eq!(db_dump(&env), before);
}

/// `models load|unload|pin|unpin|set` and `pool show` from the CLI against a running
/// `serve` on the same data dir (its pool socket), and `gateway_not_running` without one.
#[test]
fn the_cli_loads_pins_and_unloads_models_in_the_running_gateway() {
    use std::process::Stdio;
    let env = Env::new();
    let gguf = repo_root().join(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        gguf.exists(),
        "fixture missing: run scripts/fetch-fixtures.sh"
    );
    env.json(&["models", "import", gguf.to_str().unwrap(), "--name", "smol"]);

    // Nothing serves yet: load is refused with a code that says so; pin works (a setting).
    let out = env.run(&["models", "load", "smol"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        error_line(&out).starts_with("error[gateway_not_running]"),
        "{}",
        error_line(&out)
    );
    let v = env.json(&["models", "pin", "smol"]);
    assert_eq!(v["pinned"], true);
    let v = env.json(&["models", "set", "smol", "--ttl", "15m", "--context", "1024"]);
    assert_eq!(v["ttl_seconds"], 900);
    assert_eq!(v["context_override"], 1024);
    let out = env.run(&["models", "set", "smol", "--context", "10"], None);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(env.json(&["pool", "show"])["serving"], false);

    let mut serve = env
        .cmd()
        .args(["--json", "serve", "--port", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ready_url(&mut serve);

    let v = env.json(&["models", "load", "smol"]);
    assert_eq!(v["name"], "smol");
    assert_eq!(v["pinned"], true);
    assert_eq!(v["context"], 1024);
    let shown = env.json(&["pool", "show"]);
    assert_eq!(shown["serving"], true);
    let loaded = shown["loaded"].as_array().unwrap();
    assert_eq!(loaded.len(), 1);
    for key in [
        "name",
        "bytes_estimated",
        "bytes_measured",
        "pinned",
        "busy",
        "uses",
        "last_used_ms",
        "loaded_ms",
    ] {
        assert!(loaded[0].get(key).is_some(), "missing {key}: {shown:#}");
    }
    assert!(loaded[0]["bytes_measured"].as_u64().unwrap() > 0);
    let list = env.json(&["models", "list"]);
    assert_eq!(list[0]["loaded"], true);
    // doctor shows the same.
    let out = env.run(&["--json", "doctor"], None);
    let doc: Value = serde_json::from_slice(&out.stdout).expect("doctor --json");
    let pool = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "pool")
        .expect("a pool check");
    assert!(
        pool["message"].as_str().unwrap().contains("loaded: smol"),
        "{pool:#}"
    );
    assert_eq!(pool["data"]["loaded"][0]["name"], "smol");
    // A loaded model cannot be removed (nor a preloaded one, below).
    let out = env.run(&["--json", "models", "remove", "smol", "--yes"], None);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "model_in_use");
    // Text output lists it with both figures.
    let out = env.run(&["pool", "show"], None);
    assert!(stdout(&out).contains("smol"), "{}", stdout(&out));
    assert!(stdout(&out).contains("pinned"), "{}", stdout(&out));

    let v = env.json(&["models", "unload", "smol"]);
    assert_eq!(v["name"], "smol");
    assert_eq!(env.json(&["pool", "show"])["loaded"], serde_json::json!([]));
    let out = env.run(&["models", "unload", "smol"], None);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    env.json(&["pool", "set", "--preload", "smol"]);
    let out = env.run(&["--json", "models", "remove", "smol", "--yes"], None);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "model_in_use", "{v}");
    env.json(&["pool", "set", "--preload", ""]);
    env.json(&["models", "remove", "smol", "--yes"]);
    assert_eq!(env.json(&["models", "list"]), serde_json::json!([]));

    serve.kill().unwrap();
    serve.wait().unwrap();
}
