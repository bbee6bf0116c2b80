//! `keys status`, `keys rotate --data|--root`, the fail-closed missing root, and the
//! doctor's vault line — against the real binary, the real SQLite store and the file
//! vault.

mod common;

use common::*;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::path::Path;

use switchyard::settings::providers;
use switchyard::vault::backend::{FILE_VAULT_NAME, SERVICE};
use switchyard::vault::envelope;

fn add_with_key(env: &Env, name: &str, key: &str) {
    let out = env.run(
        &[
            "provider",
            "add",
            name,
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some(key),
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every provider's key, decrypted by a freshly opened App (a "new process").
fn decrypt_all(dir: &Path) -> Vec<(String, String)> {
    rt().block_on(async {
        let app = open_app(dir).await;
        let mut out = Vec::new();
        for p in providers::list(&app).await.unwrap() {
            let k = providers::decrypt_provider_key(&app, &p).await.unwrap();
            out.push((
                p.name.clone(),
                k.map(|k| k.expose().to_string()).unwrap_or_default(),
            ));
        }
        out
    })
}

fn sealed_keys(dir: &Path) -> Vec<Vec<u8>> {
    rt().block_on(async {
        let app = open_app(dir).await;
        app.db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT api_key FROM providers WHERE api_key IS NOT NULL ORDER BY id",
            ))
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get_by_index(0).unwrap())
            .collect()
    })
}

fn vault_accounts(dir: &Path) -> Vec<String> {
    switchyard::vault::backend::FileStore::new(dir.join(FILE_VAULT_NAME))
        .accounts(SERVICE)
        .unwrap()
}

/// The fingerprint computed independently of the vault module: SHA-256 over
/// "switchyard/fp" ‖ root, first 8 bytes, hex — from the root in the file vault.
fn fingerprint_from_file(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join(FILE_VAULT_NAME)).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Switchyard\troot-v1-"))
        .unwrap();
    let item_hex = line.split('\t').nth(2).unwrap();
    let unhex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let root_hex = String::from_utf8(unhex(item_hex)).unwrap();
    let root = unhex(&root_hex);
    assert_eq!(root.len(), 32);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"switchyard/fp");
    ctx.update(&root);
    ctx.finish().as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn keys_status_shows_backend_fingerprint_data_keys_and_secret_count() {
    let env = Env::new();
    let st = env.json(&["keys", "status"]);
    assert_eq!(st["backend"], "file");
    assert_eq!(st["root_state"], "none");
    assert_eq!(st["root_id"], serde_json::Value::Null);
    assert_eq!(st["secrets"], 0);
    assert_eq!(st["data_keys"], serde_json::json!([]));
    assert!(st["warning"].as_str().unwrap().contains("0600"));

    add_with_key(&env, "a", "sk-status-a-0123456789abcdef");
    add_with_key(&env, "b", "sk-status-b-0123456789abcdef");
    env.json(&["provider", "add", "nokey", "--kind", "anthropic"]);
    let st = env.json(&["keys", "status"]);
    assert_eq!(st["root_state"], "ok");
    assert_eq!(st["secrets"], 2);
    let fp = st["fingerprint"].as_str().unwrap();
    assert_eq!(fp, fingerprint_from_file(env.data_dir()));
    let keys = st["data_keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(keys[0]["secrets"], 2);
    assert_eq!(keys[0]["root_id"], st["root_id"]);
    assert_eq!(
        vault_accounts(env.data_dir()),
        vec![format!("root-v1-{}", st["root_id"].as_str().unwrap())]
    );
    let human = stdout(&env.run(&["keys", "status"], None));
    assert!(
        human.contains(fp) && human.contains("secrets:     2"),
        "{human}"
    );
}

#[test]
fn rotate_data_reencrypts_every_secret_under_a_new_key_and_retires_the_old_one() {
    let env = Env::new();
    let keys = [
        "sk-rot-one-0123456789abcdef",
        "sk-rot-two-0123456789abcdef",
        "sk-rot-three-0123456789abcd",
    ];
    for (i, k) in keys.iter().enumerate() {
        add_with_key(&env, &format!("p{i}"), k);
    }
    let before = sealed_keys(env.data_dir());
    let old_key = env.json(&["keys", "status"])["data_keys"][0]["key_id"].clone();

    let r = env.json(&["keys", "rotate", "--data"]);
    assert_eq!(r["secrets"], 3);
    assert_eq!(r["old_key_ids"], serde_json::json!([old_key]));
    let new_key = r["new_key_id"].as_str().unwrap().to_string();
    assert_ne!(serde_json::json!(new_key), old_key);

    let after = sealed_keys(env.data_dir());
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a, "a secret was not re-encrypted");
        let h = envelope::parse_header(a).unwrap();
        assert_eq!(format!("{:08x}", h.key_id), new_key);
    }
    let st = env.json(&["keys", "status"]);
    let ks = st["data_keys"].as_array().unwrap();
    let old = ks.iter().find(|k| k["key_id"] == old_key).unwrap();
    let new = ks.iter().find(|k| k["key_id"] == new_key.as_str()).unwrap();
    assert_eq!(
        (old["state"].as_str(), old["secrets"].as_u64()),
        (Some("retired"), Some(0))
    );
    assert!(old["retired_at"].is_i64());
    assert_eq!(
        (new["state"].as_str(), new["secrets"].as_u64()),
        (Some("active"), Some(3))
    );
    // The retired key's material is destroyed, not just flagged.
    rt().block_on(async {
        let app = open_app(env.data_dir()).await;
        let row = app
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT length(wrapped) FROM vault_keys WHERE state = 'retired'",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get_by_index::<i64>(0).unwrap(), 0);
    });
    let got: Vec<String> = decrypt_all(env.data_dir())
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    assert_eq!(got, keys);
}

#[test]
fn rotate_root_without_a_terminal_or_yes_is_refused_and_changes_nothing() {
    let env = Env::new();
    add_with_key(&env, "a", "sk-confirm-0123456789abcdef");
    let vault_file = std::fs::read(env.data_dir().join(FILE_VAULT_NAME)).unwrap();
    let st = env.json(&["keys", "status"]);
    let out = env.run(&["--json", "keys", "rotate", "--root"], None);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "confirmation_required");
    assert_eq!(
        std::fs::read(env.data_dir().join(FILE_VAULT_NAME)).unwrap(),
        vault_file
    );
    assert_eq!(
        env.json(&["keys", "status"])["fingerprint"],
        st["fingerprint"]
    );
}

#[test]
fn rotate_root_moves_to_a_new_keychain_item_and_deletes_the_old_one() {
    let env = Env::new();
    add_with_key(&env, "a", "sk-root-a-0123456789abcdef");
    add_with_key(&env, "b", "sk-root-b-0123456789abcdef");
    env.json(&["keys", "rotate", "--data"]); // a retired key must survive the root change too
    let before = env.json(&["keys", "status"]);
    let r = env.json(&["keys", "rotate", "--root", "--yes"]);
    assert_eq!(r["old_root_id"], before["root_id"]);
    assert_eq!(r["old_fingerprint"], before["fingerprint"]);
    assert_ne!(r["new_fingerprint"], before["fingerprint"]);
    assert_eq!(
        r["data_keys"], 1,
        "only the live data key has material to re-wrap"
    );
    let after = env.json(&["keys", "status"]);
    assert_eq!(after["root_id"], r["new_root_id"]);
    assert_eq!(after["fingerprint"], r["new_fingerprint"]);
    assert_eq!(
        after["fingerprint"].as_str().unwrap(),
        fingerprint_from_file(env.data_dir())
    );
    assert_eq!(after["rotation_pending"], false);
    for k in after["data_keys"].as_array().unwrap() {
        assert_eq!(k["root_id"], after["root_id"]);
    }
    assert_eq!(
        vault_accounts(env.data_dir()),
        vec![format!("root-v1-{}", r["new_root_id"].as_str().unwrap())],
        "the old root item was left behind"
    );
    assert_eq!(
        decrypt_all(env.data_dir()),
        vec![
            ("a".to_string(), "sk-root-a-0123456789abcdef".to_string()),
            ("b".to_string(), "sk-root-b-0123456789abcdef".to_string())
        ]
    );
    rt().block_on(async {
        let app = open_app(env.data_dir()).await;
        let rows = app
            .db
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT actor, action, details FROM audit_log WHERE action LIKE 'vault.%' ORDER BY id",
            ))
            .await
            .unwrap();
        let acts: Vec<(String, String)> = rows
            .iter()
            .map(|r| (r.try_get_by_index(0).unwrap(), r.try_get_by_index(1).unwrap()))
            .collect();
        let want = [
            ("system", "vault.init"),
            ("system", "vault.data_key.create"),
            ("cli", "vault.rotate_data"),
            ("cli", "vault.rotate_root"),
        ];
        assert_eq!(
            acts,
            want.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>()
        );
    });
}

#[test]
fn a_missing_root_fails_closed_and_never_creates_a_new_one() {
    let env = Env::new();
    add_with_key(&env, "a", "sk-missing-0123456789abcdef");
    std::fs::remove_file(env.data_dir().join(FILE_VAULT_NAME)).unwrap();
    let providers_before = env.json(&["provider", "list"]);

    for args in [
        &["provider", "test", "a"][..],
        &["keys", "rotate", "--data"],
        &["keys", "rotate", "--root", "--yes"],
    ] {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = env.run(&a, None);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], "vault_root_missing", "{args:?}");
    }
    let out = env.run(
        &[
            "--json",
            "provider",
            "add",
            "b",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some("sk-another-0123456789abcdef"),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "vault_root_missing");
    assert!(v["error"]["message"].as_str().unwrap().contains("--no-key"));
    assert!(
        !env.data_dir().join(FILE_VAULT_NAME).exists(),
        "a new root was created"
    );
    assert_eq!(env.json(&["provider", "list"]), providers_before);

    let out = env.run(&["--json", "keys", "status"], None);
    assert_eq!(out.status.code(), Some(1));
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["root_state"], "missing");
    assert_eq!(st["problem"]["code"], "vault_root_missing");
    assert_eq!(st["secrets"], 1);

    let out = env.run(&["--json", "doctor"], None);
    assert_eq!(out.status.code(), Some(1));
    let d: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vault = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "vault")
        .unwrap();
    assert_eq!(vault["status"], "fail");
    assert_eq!(vault["code"], "vault_root_missing");

    // The way out the message names works: drop the unreadable key, then enter it again
    // (a new root is made only once nothing is sealed under the lost one).
    let out = env.run(
        &["provider", "add", "a", "--kind", "openai", "--no-key"],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    add_with_key(&env, "a", "sk-again-0123456789abcdef");
    let st = env.json(&["keys", "status"]);
    assert_eq!(st["secrets"], 1);
}

/// A database whose vault metadata lost its root id while secrets are sealed: every
/// command that would seal or open fails closed with `vault_corrupt`; no new root is
/// made (it could never decrypt the stored keys) and the vault file is untouched.
#[test]
fn sealed_secrets_without_a_root_id_fail_closed() {
    let env = Env::new();
    add_with_key(&env, "a", "sk-rootless-0123456789abcdef");
    rt().block_on(async {
        let app = open_app(env.data_dir()).await;
        app.db
            .execute_unprepared("DELETE FROM vault_meta WHERE key = 'root_id'")
            .await
            .unwrap();
    });
    let vault_before = std::fs::read(env.data_dir().join(FILE_VAULT_NAME)).unwrap();
    let out = env.run(
        &[
            "--json",
            "provider",
            "add",
            "b",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some("sk-another-0123456789abcdef"),
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "vault_corrupt", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("names no vault root"),
        "{v}"
    );
    assert_eq!(
        std::fs::read(env.data_dir().join(FILE_VAULT_NAME)).unwrap(),
        vault_before,
        "the vault was written"
    );
    let names: Vec<String> = env
        .json(&["provider", "list"])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a"]);
}

#[test]
fn a_missing_root_is_replaced_only_once_no_secret_depends_on_it() {
    let env = Env::new();
    add_with_key(&env, "a", "sk-gone-0123456789abcdef");
    let old_root = env.json(&["keys", "status"])["root_id"].clone();
    env.json(&["provider", "remove", "a"]);
    std::fs::remove_file(env.data_dir().join(FILE_VAULT_NAME)).unwrap();
    add_with_key(&env, "b", "sk-fresh-0123456789abcdef");
    let st = env.json(&["keys", "status"]);
    assert_eq!(st["root_state"], "ok");
    assert_ne!(st["root_id"], old_root);
    assert_eq!(st["data_keys"].as_array().unwrap().len(), 1);
    assert_eq!(
        decrypt_all(env.data_dir()),
        vec![("b".into(), "sk-fresh-0123456789abcdef".into())]
    );
}

#[test]
fn doctor_shows_the_file_vault_as_a_warning_with_its_fingerprint() {
    let env = Env::new();
    let d = env.json(&["doctor"]);
    let vault = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "vault")
        .unwrap()
        .clone();
    assert_eq!(vault["status"], "warn");
    assert_eq!(vault["data"]["backend"], "file");
    assert_eq!(vault["data"]["root_state"], "none");
    assert!(
        vault["message"].as_str().unwrap().contains("no root yet"),
        "{vault}"
    );

    add_with_key(&env, "a", "sk-doctor-0123456789abcdef");
    let d = env.json(&["doctor"]);
    assert_eq!(d["ok"], true);
    let vault = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "vault")
        .unwrap()
        .clone();
    assert_eq!(
        vault["status"], "warn",
        "the file vault is weaker: always a warning"
    );
    let fp = fingerprint_from_file(env.data_dir());
    assert_eq!(vault["data"]["fingerprint"], fp.as_str());
    let msg = vault["message"].as_str().unwrap();
    assert!(msg.contains(&fp) && msg.contains("0600"), "{msg}");
}

#[test]
fn every_start_with_the_file_vault_warns_that_it_is_weaker() {
    let env = Env::new();
    let out = env.run(&["provider", "list"], None);
    assert!(out.status.success());
    assert!(stderr(&out).contains("file vault"), "{}", stderr(&out));
}

#[test]
fn a_store_that_fails_mid_init_is_cleaned_up_once_it_works_again() {
    let env = Env::new();
    // A directory where the file vault's file should be: every read and write fails.
    let blocker = env.data_dir().join(FILE_VAULT_NAME);
    std::fs::create_dir(&blocker).unwrap();
    let out = env.run(
        &[
            "--json",
            "provider",
            "add",
            "a",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some("sk-later-0123456789abcdef"),
    );
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "vault_unavailable");
    // Commands that do not need the keychain still work; the pending clean-up shows.
    assert_eq!(env.json(&["provider", "list"]), serde_json::json!([]));
    let st = env.json(&["keys", "status"]);
    assert_eq!(st["rotation_pending"], true);
    assert_eq!(st["root_id"], serde_json::Value::Null);

    std::fs::remove_dir(&blocker).unwrap();
    let st = env.json(&["keys", "status"]);
    assert_eq!(
        st["rotation_pending"], false,
        "the start-up did not recover"
    );
    add_with_key(&env, "a", "sk-later-0123456789abcdef");
    assert_eq!(vault_accounts(env.data_dir()).len(), 1);
    assert_eq!(
        decrypt_all(env.data_dir()),
        vec![("a".into(), "sk-later-0123456789abcdef".into())]
    );
}
