//! Providers end to end: the CLI contract, connection tests against local fake OpenAI
//! and Anthropic servers, the key's binding to row and origin, the audit trail, and a
//! planted key that must never show up anywhere but the fake server.

mod common;
#[path = "common/fake_cloud.rs"]
mod fake_cloud;

use common::*;
use fake_cloud::{Api as Flavor, Fake as FakeCloud};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::path::Path;
use std::time::{Duration, Instant};
use switchyard::Code;
use switchyard::app::App;
use switchyard::settings::providers::{
    self, KeyChange, ProviderInput, ProviderKind, UpsertOutcome,
};
use switchyard::store::audit::Actor;
use switchyard::vault::SecretString;

fn set_key(k: &str) -> KeyChange {
    KeyChange::Set(SecretString::new(k.to_string()))
}

async fn add(
    app: &App,
    name: &str,
    kind: ProviderKind,
    base: Option<&str>,
    key: KeyChange,
) -> switchyard::Result<UpsertOutcome> {
    providers::upsert(
        app,
        Actor::Cli,
        ProviderInput {
            name: name.into(),
            kind,
            base_url: base.map(str::to_string),
            key,
        },
    )
    .await
}

async fn exec(app: &App, sql: &str, values: Vec<sea_orm::Value>) {
    app.db
        .execute_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            sql,
            values,
        ))
        .await
        .unwrap();
}

async fn stored_key(app: &App, name: &str) -> Vec<u8> {
    let row = app
        .db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Sqlite,
            "SELECT api_key FROM providers WHERE name = ?",
            [name.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}

async fn decrypt(app: &App, name: &str) -> switchyard::Result<Option<String>> {
    let p = providers::get(app, name).await?;
    Ok(providers::decrypt_provider_key(app, &p)
        .await?
        .map(|s| s.expose().to_string()))
}

// ------------------------------------------------------------------ connection tests

#[tokio::test]
async fn connection_test_succeeds_against_fake_openai_and_anthropic_and_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    for (flavor, kind, key, models) in [
        (
            Flavor::OpenAi,
            ProviderKind::OpenAiCompatible,
            "sk-openai-key-0123456789",
            3,
        ),
        (
            Flavor::Anthropic,
            ProviderKind::Anthropic,
            "sk-ant-api03-key-0123456789",
            2,
        ),
    ] {
        let cloud = FakeCloud::start(flavor, key).await;
        let name = format!("{flavor:?}").to_lowercase();
        add(&app, &name, kind, Some(&cloud.base("ok")), set_key(key))
            .await
            .unwrap();
        let t = providers::test(&app, Actor::Cli, &name).await.unwrap();
        assert!(t.ok, "{t:?}");
        assert_eq!(t.result, "ok");
        assert_eq!(t.status, Some(200));
        assert_eq!(t.models, Some(models));
        let seen = cloud.seen_keys();
        let want = match flavor {
            Flavor::OpenAi => format!("Bearer {key}"),
            Flavor::Anthropic => key.to_string(),
        };
        assert_eq!(
            seen,
            vec![want],
            "the key went out in the provider's own header"
        );
        let p = providers::get(&app, &name).await.unwrap();
        let last = p.last_test.unwrap();
        assert!(last.ok);
        assert_eq!(last.result, "ok");
    }
}

async fn failing_test(
    flavor: Flavor,
    kind: ProviderKind,
    behaviour: &str,
    key_sent: &str,
    timeout: Duration,
) -> (providers::TestOutcome, providers::Provider, FakeCloud) {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    let cloud = FakeCloud::start(flavor, "sk-the-right-key-0123456789").await;
    add(
        &app,
        "p",
        kind,
        Some(&cloud.base(behaviour)),
        set_key(key_sent),
    )
    .await
    .unwrap();
    let t = providers::test_with_timeout(&app, Actor::Cli, "p", timeout)
        .await
        .unwrap();
    let p = providers::get(&app, "p").await.unwrap();
    (t, p, cloud)
}

#[tokio::test]
async fn a_rejected_key_is_provider_auth_failed_for_both_protocols() {
    for (flavor, kind) in [
        (Flavor::OpenAi, ProviderKind::OpenAi),
        (Flavor::Anthropic, ProviderKind::Anthropic),
    ] {
        let (t, p, cloud) = failing_test(
            flavor,
            kind,
            "ok",
            "sk-wrong-key-000000000000",
            Duration::from_secs(5),
        )
        .await;
        assert!(!t.ok);
        assert_eq!(t.result, "provider_auth_failed", "{t:?}");
        assert_eq!(t.status, Some(401));
        assert_eq!(t.error().unwrap().code, Code::ProviderAuthFailed);
        assert_eq!(cloud.ok_hits(), 1);
        let last = p.last_test.unwrap();
        assert!(!last.ok);
        assert_eq!(last.result, "provider_auth_failed");
    }
}

#[tokio::test]
async fn a_base_url_without_the_models_endpoint_is_provider_bad_response_404() {
    let (t, _, _) = failing_test(
        Flavor::OpenAi,
        ProviderKind::OpenAiCompatible,
        "missing",
        "sk-the-right-key-0123456789",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(t.result, "provider_bad_response");
    assert_eq!(t.status, Some(404));
    assert!(t.message.contains("404"), "{}", t.message);
}

#[tokio::test]
async fn a_slow_provider_is_provider_timeout_within_the_configured_timeout() {
    let started = Instant::now();
    let (t, p, _) = failing_test(
        Flavor::Anthropic,
        ProviderKind::Anthropic,
        "slow",
        "sk-the-right-key-0123456789",
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(t.result, "provider_timeout", "{t:?}");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the test waited for the slow server ({:?})",
        started.elapsed()
    );
    assert_eq!(p.last_test.unwrap().result, "provider_timeout");
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_is_provider_bad_response() {
    let (t, _, cloud) = failing_test(
        Flavor::OpenAi,
        ProviderKind::OpenAiCompatible,
        "redirect",
        "sk-the-right-key-0123456789",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(t.result, "provider_bad_response");
    assert_eq!(t.status, Some(302));
    assert!(t.message.contains("redirect"), "{}", t.message);
    assert_eq!(cloud.ok_hits(), 0, "the redirect target was requested");
}

#[tokio::test]
async fn a_garbage_body_is_provider_bad_response() {
    let (t, _, _) = failing_test(
        Flavor::OpenAi,
        ProviderKind::OpenAiCompatible,
        "garbage",
        "sk-the-right-key-0123456789",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(t.result, "provider_bad_response");
    assert_eq!(t.status, Some(200));
    assert!(
        !t.message.contains("nginx"),
        "the body was quoted: {}",
        t.message
    );
}

#[tokio::test]
async fn a_closed_port_is_provider_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    add(
        &app,
        "gone",
        ProviderKind::OpenAiCompatible,
        Some(&format!("http://127.0.0.1:{port}")),
        set_key("sk-some-key-0123456789"),
    )
    .await
    .unwrap();
    let t = providers::test_with_timeout(&app, Actor::Cli, "gone", Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(t.result, "provider_unreachable", "{t:?}");
}

#[tokio::test]
async fn an_official_provider_without_a_key_fails_auth_without_calling_out() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    add(&app, "oa", ProviderKind::OpenAi, None, KeyChange::Keep)
        .await
        .unwrap();
    let t = providers::test(&app, Actor::Cli, "oa").await.unwrap();
    assert_eq!(t.result, "provider_auth_failed");
    assert_eq!(t.status, None);
    assert!(t.message.contains("--api-key-stdin"), "{}", t.message);
}

#[test]
fn provider_test_on_the_cli_prints_the_result_or_exits_with_the_code() {
    let (cloud, _rt) =
        fake_cloud::start_in_background(Flavor::OpenAi, "sk-cli-good-key-0123456789");
    let env = Env::new();
    let base = cloud.base("ok");
    let out = env.run(
        &[
            "provider",
            "add",
            "good",
            "--kind",
            "openai-compatible",
            "--base-url",
            &base,
            "--api-key-stdin",
        ],
        Some("sk-cli-good-key-0123456789\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.run(
        &[
            "provider",
            "add",
            "bad",
            "--kind",
            "openai-compatible",
            "--base-url",
            &base,
            "--api-key-stdin",
        ],
        Some("sk-cli-bad-key-00000000000"),
    );
    assert!(out.status.success(), "{}", stderr(&out));

    let ok = env.json(&["provider", "test", "good"]);
    assert_eq!(ok["ok"], true);
    assert_eq!(ok["models"], 3);

    let out = env.run(&["--json", "provider", "test", "bad"], None);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "provider_auth_failed");
    let out = env.run(&["provider", "test", "bad"], None);
    assert!(
        error_line(&out).starts_with("error[provider_auth_failed]: "),
        "{}",
        stderr(&out)
    );

    let list = env.json(&["provider", "list"]);
    let by_name = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("good")["last_test"]["result"], "ok");
    assert_eq!(
        by_name("bad")["last_test"]["result"],
        "provider_auth_failed"
    );
}

// ------------------------------------------------------------------ CLI contract

#[test]
fn add_list_show_remove_follow_the_cli_contract() {
    let env = Env::new();
    let out = env.run(
        &[
            "--json",
            "provider",
            "add",
            "openai",
            "--kind",
            "openai",
            "--api-key-stdin",
        ],
        Some("sk-proj-abcdefghijklmnopWXYZ\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["created"], true);
    assert_eq!(v["key"], "set");
    assert_eq!(v["provider"]["base_url"], "https://api.openai.com");

    let out = env.run(&["provider", "add", "claude", "--kind", "anthropic"], None);
    assert!(out.status.success(), "{}", stderr(&out));

    let list = env.json(&["provider", "list"]);
    let arr = list.as_array().unwrap();
    assert_eq!(arr.len(), 2);
    for p in arr {
        for field in [
            "name",
            "kind",
            "base_url",
            "has_key",
            "key_hint",
            "last_test",
        ] {
            assert!(p.get(field).is_some(), "missing {field} in {p}");
        }
    }
    assert_eq!(arr[0]["name"], "claude");
    assert_eq!(arr[0]["kind"], "anthropic");
    assert_eq!(arr[0]["base_url"], "https://api.anthropic.com");
    assert_eq!(arr[0]["has_key"], false);
    assert_eq!(arr[0]["key_hint"], serde_json::Value::Null);
    assert_eq!(arr[1]["has_key"], true);
    assert_eq!(arr[1]["key_hint"], "WXYZ");
    assert_eq!(arr[1]["last_test"], serde_json::Value::Null);

    // Upsert by name: same name, new kind/base URL, key kept (same origin).
    let v = env.json(&[
        "provider",
        "add",
        "claude",
        "--kind",
        "anthropic",
        "--base-url",
        "https://api.anthropic.com/v1/",
    ]);
    assert_eq!(v["created"], false);
    assert_eq!(env.json(&["provider", "list"]).as_array().unwrap().len(), 2);

    let show = env.json(&["provider", "show", "openai"]);
    assert_eq!(show["name"], "openai");
    assert_eq!(show["has_key"], true);

    let human = stdout(&env.run(&["provider", "list"], None));
    assert!(
        human.contains("openai") && human.contains("…WXYZ"),
        "{human}"
    );

    let v = env.json(&["provider", "remove", "claude"]);
    assert_eq!(v["removed"]["name"], "claude");
    let out = env.run(&["--json", "provider", "show", "claude"], None);
    assert_eq!(out.status.code(), Some(3));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(e["error"]["code"], "provider_not_found");
    let out = env.run(&["provider", "remove", "claude"], None);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn invalid_input_is_refused_with_a_code_and_writes_nothing() {
    let env = Env::new();
    env.json(&["provider", "add", "keep", "--kind", "openai"]);
    let before = env.json(&["provider", "list"]);
    let cases: &[(&[&str], Option<&str>, i32, &str)] = &[
        (
            &[
                "provider",
                "add",
                "lan",
                "--kind",
                "openai-compatible",
                "--base-url",
                "http://192.168.1.20:11434",
            ],
            None,
            4,
            "provider_invalid_url",
        ),
        (
            &["provider", "add", "nourl", "--kind", "openai-compatible"],
            None,
            4,
            "provider_invalid_url",
        ),
        (
            &[
                "provider",
                "add",
                "q",
                "--kind",
                "openai",
                "--base-url",
                "https://x.example/?k=1",
            ],
            None,
            4,
            "provider_invalid_url",
        ),
        (
            &["provider", "add", "bad name", "--kind", "openai"],
            None,
            4,
            "invalid_argument",
        ),
        (
            &["provider", "add", "local", "--kind", "openai"],
            None,
            4,
            "invalid_argument",
        ),
        (
            &[
                "provider",
                "add",
                "empty",
                "--kind",
                "openai",
                "--api-key-stdin",
            ],
            Some("\n"),
            4,
            "invalid_argument",
        ),
        (
            &[
                "provider",
                "add",
                "spaces",
                "--kind",
                "openai",
                "--api-key-stdin",
            ],
            Some("sk one two"),
            4,
            "invalid_argument",
        ),
        (
            &["provider", "add", "x", "--kind", "gemini"],
            None,
            2,
            "usage",
        ),
        // There is no way to pass a key on the command line.
        (
            &[
                "provider",
                "add",
                "x",
                "--kind",
                "openai",
                "--api-key",
                "sk-on-argv",
            ],
            None,
            2,
            "usage",
        ),
    ];
    for (args, stdin, exit, code) in cases {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = env.run(&a, *stdin);
        assert_eq!(out.status.code(), Some(*exit), "{args:?}: {}", stdout(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["error"]["code"], *code, "{args:?}");
    }
    assert_eq!(env.json(&["provider", "list"]), before);
}

#[test]
fn changing_the_origin_requires_the_key_again_and_otherwise_changes_nothing() {
    let env = Env::new();
    let out = env.run(
        &[
            "provider",
            "add",
            "router",
            "--kind",
            "openai-compatible",
            "--base-url",
            "https://openrouter.ai/api",
            "--api-key-stdin",
        ],
        Some("sk-or-v1-0123456789abcdef"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let before = env.json(&["provider", "show", "router"]);

    let out = env.run(
        &[
            "--json",
            "provider",
            "add",
            "router",
            "--kind",
            "openai-compatible",
            "--base-url",
            "https://evil.example/api",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "provider_key_required");
    assert_eq!(env.json(&["provider", "show", "router"]), before);

    // Same origin, other path: the key stays valid.
    let v = env.json(&[
        "provider",
        "add",
        "router",
        "--kind",
        "openai-compatible",
        "--base-url",
        "https://openrouter.ai/api/v1",
    ]);
    assert_eq!(v["key"], "kept");

    // New origin with a new key, or explicitly without one.
    let out = env.run(
        &[
            "--json",
            "provider",
            "add",
            "router",
            "--kind",
            "openai-compatible",
            "--base-url",
            "https://other.example",
            "--api-key-stdin",
        ],
        Some("sk-other-0123456789abcdef"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v = env.json(&[
        "provider",
        "add",
        "router",
        "--kind",
        "openai-compatible",
        "--base-url",
        "https://third.example",
        "--no-key",
    ]);
    assert_eq!(v["key"], "cleared");
    assert_eq!(v["provider"]["has_key"], false);
}

#[tokio::test]
async fn remove_is_refused_while_a_rule_targets_or_falls_back_to_the_provider() {
    let env = Env::new();
    let app = open_app(env.data_dir()).await;
    add(
        &app,
        "groq",
        ProviderKind::OpenAiCompatible,
        Some("https://api.groq.com/openai/v1"),
        KeyChange::Keep,
    )
    .await
    .unwrap();
    add(&app, "openai", ProviderKind::OpenAi, None, KeyChange::Keep)
        .await
        .unwrap();
    let groq = providers::get(&app, "groq").await.unwrap().id;
    let oa = providers::get(&app, "openai").await.unwrap().id;
    // The rules service is another component; write its table directly.
    exec(&app, "INSERT INTO routing_rules (id, position, pattern, match_type, target_provider_id, fallback_kind, fallback_provider_id, created_at, updated_at) VALUES (11, 0, 'llama-*', 'prefix', ?, 'provider', ?, 0, 0)", vec![groq.into(), oa.into()]).await;
    exec(&app, "INSERT INTO routing_rules (id, position, pattern, match_type, target_provider_id, created_at, updated_at) VALUES (12, 1, 'mixtral', 'exact', ?, 0, 0)", vec![groq.into()]).await;

    let out = env.run(&["--json", "provider", "remove", "groq"], None);
    assert_eq!(out.status.code(), Some(4));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "provider_in_use");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("rule 11") && msg.contains("rule 12"), "{msg}");

    let out = env.run(&["provider", "remove", "openai"], None);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("rule 11") && stderr(&out).contains("fallback"),
        "{}",
        stderr(&out)
    );
    assert_eq!(providers::list(&app).await.unwrap().len(), 2);

    exec(&app, "DELETE FROM routing_rules", vec![]).await;
    assert!(
        env.run(&["provider", "remove", "groq"], None)
            .status
            .success()
    );
    assert!(
        env.run(&["provider", "remove", "openai"], None)
            .status
            .success()
    );
}

#[tokio::test]
async fn every_provider_change_writes_an_audit_row_naming_the_actor() {
    let env = Env::new();
    let app = open_app(env.data_dir()).await;
    add(
        &app,
        "ui-made",
        ProviderKind::OpenAi,
        None,
        set_key("sk-audit-0123456789abcdef"),
    )
    .await
    .unwrap();
    providers::upsert(
        &app,
        Actor::Ui,
        ProviderInput {
            name: "ui-made".into(),
            kind: ProviderKind::OpenAi,
            base_url: None,
            key: KeyChange::Clear,
        },
    )
    .await
    .unwrap();
    assert!(
        env.run(
            &["provider", "add", "cli-made", "--kind", "anthropic"],
            None
        )
        .status
        .success()
    );
    assert!(
        env.run(&["provider", "remove", "cli-made"], None)
            .status
            .success()
    );
    let rows = app
        .db
        .query_all_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT actor, action, target, details FROM audit_log WHERE action LIKE 'provider.%' ORDER BY id",
        ))
        .await
        .unwrap();
    let got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(0).unwrap(),
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
            )
        })
        .collect();
    let want = [
        ("cli", "provider.add", "ui-made"),
        ("ui", "provider.update", "ui-made"),
        ("cli", "provider.add", "cli-made"),
        ("cli", "provider.remove", "cli-made"),
    ];
    assert_eq!(
        got,
        want.iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
            .collect::<Vec<_>>()
    );
    let details: Vec<String> = rows
        .iter()
        .map(|r| r.try_get_by_index(3).unwrap())
        .collect();
    assert!(details[0].contains(r#""key":"set""#), "{}", details[0]);
    assert!(details[1].contains(r#""key":"cleared""#), "{}", details[1]);
    assert!(details.iter().all(|d| !d.contains("sk-audit")));
}

// ------------------------------------------------------------------ binding and tamper

#[tokio::test]
async fn every_single_byte_tamper_of_a_stored_key_fails_with_a_coded_error() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    add(
        &app,
        "p",
        ProviderKind::OpenAi,
        None,
        set_key("sk-tamper-0123456789abcdef"),
    )
    .await
    .unwrap();
    let original = stored_key(&app, "p").await;
    assert!(original.len() >= 18 + 16 + 26);
    for i in 0..original.len() {
        for flip in [0x01u8, 0xff] {
            let mut t = original.clone();
            t[i] ^= flip;
            exec(
                &app,
                "UPDATE providers SET api_key = ? WHERE name = 'p'",
                vec![t.into()],
            )
            .await;
            let e = decrypt(&app, "p").await.unwrap_err();
            assert!(
                matches!(e.code, Code::VaultDecryptFailed | Code::VaultCorrupt),
                "byte {i} ^ {flip:#x} gave {e:?}"
            );
        }
    }
    for cut in [0, 1, 17, 18, original.len() - 1] {
        exec(
            &app,
            "UPDATE providers SET api_key = ? WHERE name = 'p'",
            vec![original[..cut].to_vec().into()],
        )
        .await;
        assert!(decrypt(&app, "p").await.is_err(), "truncated to {cut}");
    }
    exec(
        &app,
        "UPDATE providers SET api_key = ? WHERE name = 'p'",
        vec![original.into()],
    )
    .await;
    assert_eq!(
        decrypt(&app, "p").await.unwrap().as_deref(),
        Some("sk-tamper-0123456789abcdef")
    );
}

#[tokio::test]
async fn ciphertexts_swapped_between_two_providers_do_not_decrypt() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    // Same origin for both: only the row binding tells them apart.
    add(
        &app,
        "a",
        ProviderKind::OpenAi,
        None,
        set_key("sk-key-of-provider-a-0001"),
    )
    .await
    .unwrap();
    add(
        &app,
        "b",
        ProviderKind::OpenAi,
        None,
        set_key("sk-key-of-provider-b-0002"),
    )
    .await
    .unwrap();
    let (ka, kb) = (stored_key(&app, "a").await, stored_key(&app, "b").await);
    exec(
        &app,
        "UPDATE providers SET api_key = ? WHERE name = 'a'",
        vec![kb.clone().into()],
    )
    .await;
    exec(
        &app,
        "UPDATE providers SET api_key = ? WHERE name = 'b'",
        vec![ka.clone().into()],
    )
    .await;
    for n in ["a", "b"] {
        assert_eq!(
            decrypt(&app, n).await.unwrap_err().code,
            Code::VaultDecryptFailed
        );
    }
    exec(
        &app,
        "UPDATE providers SET api_key = ? WHERE name = 'a'",
        vec![ka.into()],
    )
    .await;
    exec(
        &app,
        "UPDATE providers SET api_key = ? WHERE name = 'b'",
        vec![kb.into()],
    )
    .await;
    assert_eq!(
        decrypt(&app, "a").await.unwrap().as_deref(),
        Some("sk-key-of-provider-a-0001")
    );
    assert_eq!(
        decrypt(&app, "b").await.unwrap().as_deref(),
        Some("sk-key-of-provider-b-0002")
    );
}

#[tokio::test]
async fn a_changed_base_url_makes_the_stored_key_undecryptable() {
    let dir = tempfile::tempdir().unwrap();
    let app = open_app(dir.path()).await;
    add(
        &app,
        "p",
        ProviderKind::OpenAiCompatible,
        Some("https://api.example.com/v1"),
        set_key("sk-origin-bound-0123456789"),
    )
    .await
    .unwrap();
    // Behind the service's back (a restored backup, a hand edit): the origin changes.
    exec(
        &app,
        "UPDATE providers SET base_url = 'https://attacker.example' WHERE name = 'p'",
        vec![],
    )
    .await;
    assert_eq!(
        decrypt(&app, "p").await.unwrap_err().code,
        Code::VaultDecryptFailed
    );
    exec(
        &app,
        "UPDATE providers SET base_url = 'https://api.example.com:8443' WHERE name = 'p'",
        vec![],
    )
    .await;
    assert_eq!(
        decrypt(&app, "p").await.unwrap_err().code,
        Code::VaultDecryptFailed
    );
    exec(
        &app,
        "UPDATE providers SET base_url = 'http://api.example.com' WHERE name = 'p'",
        vec![],
    )
    .await;
    assert_eq!(
        decrypt(&app, "p").await.unwrap_err().code,
        Code::VaultDecryptFailed
    );
    // A path change within the same origin keeps it usable.
    exec(
        &app,
        "UPDATE providers SET base_url = 'https://api.example.com/other' WHERE name = 'p'",
        vec![],
    )
    .await;
    assert_eq!(
        decrypt(&app, "p").await.unwrap().as_deref(),
        Some("sk-origin-bound-0123456789")
    );
    // Through the service the change is refused outright.
    let e = add(
        &app,
        "p",
        ProviderKind::OpenAiCompatible,
        Some("https://attacker.example"),
        KeyChange::Keep,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, Code::ProviderKeyRequired);
    // And a connection test never sends a key to an origin it was not sealed for.
    exec(
        &app,
        "UPDATE providers SET base_url = 'https://attacker.example' WHERE name = 'p'",
        vec![],
    )
    .await;
    let e = providers::test(&app, Actor::Cli, "p").await.unwrap_err();
    assert_eq!(e.code, Code::VaultDecryptFailed);
}

// ------------------------------------------------------------------ the planted key

fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    getrandom_fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn getrandom_fill(b: &mut [u8]) {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(b)
        .unwrap();
}

fn hex_of(s: &[u8]) -> String {
    s.iter().map(|x| format!("{x:02x}")).collect()
}

/// Forms of the secret to look for: the key, its unique middle part (the hint shows
/// the last 4 characters legitimately), and both in hex.
fn needles(planted: &str) -> Vec<Vec<u8>> {
    let middle = &planted[..planted.len() - 4];
    vec![
        planted.as_bytes().to_vec(),
        middle.as_bytes().to_vec(),
        hex_of(middle.as_bytes()).into_bytes(),
    ]
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Read a file through `cat`: opening and closing the database files in this process
/// would drop the POSIX locks of this process's SQLite connections (fcntl locks are per
/// process), and the CLI would then believe it is alone and delete the WAL under test.
fn read_via_child(path: &Path) -> Vec<u8> {
    let out = std::process::Command::new("cat")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "cat {}", path.display());
    out.stdout
}

fn assert_clean(what: &str, hay: &[u8], planted: &str) {
    for n in needles(planted) {
        assert!(!contains(hay, &n), "the planted key appears in {what}");
    }
}

#[test]
fn a_planted_key_never_appears_in_the_db_wal_logs_or_json_output() {
    let planted = format!("sk-test-PLANTED-{}", random_hex(16));
    let (cloud, rt) = fake_cloud::start_in_background(Flavor::OpenAi, &planted);
    let (anthropic, _rt2) = fake_cloud::start_in_background(Flavor::Anthropic, &planted);
    let env = Env::new();
    let app = rt.block_on(open_app(env.data_dir()));
    // Drops (also while unwinding from a failed assertion) need the runtime's context.
    let _enter = rt.enter();
    // An open read transaction pins the WAL: no checkpoint can reset it, so every frame
    // the commands below write stays in the WAL file for inspection.
    let reader = rt.block_on(async {
        use sea_orm::TransactionTrait;
        let t = app.db.begin().await.unwrap();
        t.query_one_raw(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT count(*) FROM providers",
        ))
        .await
        .unwrap();
        t
    });

    let run = |args: &[&str], stdin: Option<&str>| {
        let mut c = env.cmd();
        c.env("SWITCHYARD_LOG", "trace").arg("--json").args(args);
        c.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert_clean(&format!("stdout of {args:?}"), &out.stdout, &planted);
        assert_clean(&format!("stderr of {args:?}"), &out.stderr, &planted);
        assert!(
            !out.stderr.is_empty(),
            "trace logging produced nothing for {args:?}"
        );
        for f in files_under(env.data_dir()) {
            if f.is_file() {
                assert_clean(
                    &format!("{} after {args:?}", f.display()),
                    &read_via_child(&f),
                    &planted,
                );
            }
        }
        out
    };

    let base = cloud.base("ok");
    let abase = anthropic.base("ok");
    let stdin = format!("{planted}\n");
    assert!(
        run(
            &[
                "provider",
                "add",
                "oa",
                "--kind",
                "openai-compatible",
                "--base-url",
                &base,
                "--api-key-stdin"
            ],
            Some(&stdin)
        )
        .status
        .success()
    );
    assert!(
        run(
            &[
                "provider",
                "add",
                "an",
                "--kind",
                "anthropic",
                "--base-url",
                &abase,
                "--api-key-stdin"
            ],
            Some(&stdin)
        )
        .status
        .success()
    );
    let wal = env.data_dir().join("switchyard.db-wal");
    assert!(
        wal.exists() && std::fs::metadata(&wal).unwrap().len() > 0,
        "no WAL to inspect"
    );
    for args in [
        &["provider", "list"][..],
        &["provider", "show", "oa"],
        &["provider", "test", "oa"],
        &["provider", "test", "an"],
        &["keys", "status"],
        &["keys", "rotate", "--data"],
        &["keys", "rotate", "--root", "--yes"],
        &["provider", "test", "oa"],
        &[
            "provider",
            "add",
            "oa",
            "--kind",
            "openai-compatible",
            "--base-url",
            &base,
        ],
        &["doctor"],
    ] {
        let out = run(args, None);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    assert!(
        !run(
            &[
                "provider",
                "add",
                "oa",
                "--kind",
                "openai-compatible",
                "--base-url",
                "https://elsewhere.example"
            ],
            None
        )
        .status
        .success()
    );
    assert_eq!(cloud.ok_hits(), 2);
    assert_eq!(anthropic.ok_hits(), 1);
    assert!(
        cloud
            .seen_keys()
            .iter()
            .all(|k| k == &format!("Bearer {planted}"))
    );

    // What the UI's commands would send: the service results, serialized.
    rt.block_on(async {
        let list = providers::list(&app).await.unwrap();
        assert_clean(
            "provider list payload",
            serde_json::to_string(&list).unwrap().as_bytes(),
            &planted,
        );
        let t = providers::test(&app, Actor::Ui, "oa").await.unwrap();
        assert!(t.ok);
        assert_clean(
            "provider test payload",
            serde_json::to_string(&t).unwrap().as_bytes(),
            &planted,
        );
        let st = app.vault.status(&app.db).await.unwrap();
        assert_clean(
            "vault status payload",
            serde_json::to_string(&st).unwrap().as_bytes(),
            &planted,
        );
        let key = providers::decrypt_provider_key(&app, &list[1])
            .await
            .unwrap()
            .unwrap();
        assert_eq!(key.expose(), planted, "the key itself still decrypts");
        assert_clean(
            "Debug of the decrypted key",
            format!("{key:?}").as_bytes(),
            &planted,
        );
    });
    assert!(run(&["provider", "remove", "oa"], None).status.success());
    let wal_len = std::fs::metadata(&wal).unwrap().len();
    assert!(wal_len > 100_000, "the WAL was reset ({wal_len} bytes)");
    rt.block_on(async { reader.rollback().await.unwrap() });
    for f in files_under(env.data_dir()) {
        if f.is_file() {
            assert_clean(&f.display().to_string(), &read_via_child(&f), &planted);
        }
    }
    drop(app);
}
