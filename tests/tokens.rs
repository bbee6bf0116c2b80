//! Client tokens through the real `switchyard serve` and CLI processes: the gateway asks
//! for a token by default and answers each failure with its own code in the client
//! protocol's error shape; scopes, expiry, revocation from another process (effective
//! on the next request), another install's tokens, the loopback opt-out and the forced
//! check on a non-loopback address; and a planted token is found nowhere on disk.

mod common;
#[path = "common/fake_cloud.rs"]
mod fake_cloud;

use common::{Env, files_under, ready_doc};
use fake_cloud::{Api, Fake};
use serde_json::{Value, json};
use std::process::{Child, Stdio};
use std::time::Duration;

const OAI_KEY: &str = "sk-upstream-tokens-0123456789";

struct Serve {
    child: Child,
    url: String,
    ready: Value,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &Env, extra: &[&str]) -> Serve {
    let mut child = env
        .cmd()
        .args(["--json", "serve", "--port", "0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchyard serve");
    let ready = ready_doc(&mut child);
    // Bound to 0.0.0.0, it is reached through loopback.
    let url = ready["url"]
        .as_str()
        .unwrap()
        .replace("0.0.0.0", "127.0.0.1");
    Serve { child, url, ready }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn issue(env: &Env, args: &[&str]) -> String {
    let mut a = vec!["token", "issue"];
    a.extend_from_slice(args);
    env.json(&a)["token"].as_str().unwrap().to_string()
}

/// What a request got: status and body.
async fn send(
    http: &reqwest::Client,
    url: &str,
    anthropic: bool,
    model: &str,
    cred: Option<(&str, &str)>,
) -> (u16, Value) {
    let (path, body) = if anthropic {
        (
            "/v1/messages",
            json!({"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}),
        )
    } else {
        (
            "/v1/chat/completions",
            json!({"model": model, "messages": [{"role": "user", "content": "Hi"}]}),
        )
    };
    let mut rb = http.post(format!("{url}{path}")).json(&body);
    if anthropic {
        rb = rb.header("anthropic-version", "2023-06-01");
    }
    if let Some((h, v)) = cred {
        rb = rb.header(h, v);
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The code and type of an error body in the shape of its protocol (panics on another shape).
fn error_of(anthropic: bool, v: &Value) -> (String, String) {
    if anthropic {
        assert_eq!(v["type"], "error", "Anthropic shape: {v}");
        (
            v["error"]["code"].as_str().unwrap().into(),
            v["error"]["type"].as_str().unwrap().into(),
        )
    } else {
        assert!(v.get("type").is_none(), "OpenAI shape: {v}");
        (
            v["error"]["code"].as_str().unwrap().into(),
            v["error"]["type"].as_str().unwrap().into(),
        )
    }
}

/// A credential (header, value), the model asked for, and the refusal expected:
/// status, code, error type.
type Refusal<'a> = (Option<(&'a str, String)>, &'a str, u16, &'a str, &'a str);

fn bearer(t: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {t}")))
}

#[test]
fn tokens_are_required_by_default_and_every_refusal_has_its_code_in_both_shapes() {
    let rt = rt();
    let oai = rt.block_on(Fake::start(Api::OpenAi, OAI_KEY));
    let env = Env::new();
    let out = env.run(
        &[
            "provider",
            "add",
            "oai",
            "--kind",
            "openai",
            "--base-url",
            &oai.base_url,
            "--api-key-stdin",
        ],
        Some(OAI_KEY),
    );
    assert!(out.status.success(), "{}", common::stderr(&out));
    for pattern in ["gpt-", "claude-"] {
        env.json(&[
            "rule",
            "add",
            "--pattern",
            pattern,
            "--match",
            "prefix",
            "--to",
            "oai",
        ]);
    }
    let s = serve(&env, &[]);
    assert_eq!(s.ready["auth"], "on");
    let default = s.ready["default_token"]["token"]
        .as_str()
        .expect("the first start issues `default`")
        .to_string();
    assert_eq!(s.ready["default_token"]["name"], "default");
    assert!(default.starts_with("sy-"));

    // Issued by other processes while the gateway runs.
    let scoped = issue(&env, &["scoped", "--models", "claude-*"]);
    let short = issue(&env, &["short", "--expires", "2s"]);
    let other_env = Env::new();
    let foreign = issue(&other_env, &["elsewhere"]);
    let mut tampered = default.clone().into_bytes();
    let i = tampered.len() / 2;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();

    let http = reqwest::Client::new();
    rt.block_on(async {
        let health = http.get(format!("{}/health", s.url)).send().await.unwrap();
        assert_eq!(health.status(), 200, "/health stays open");

        for anthropic in [false, true] {
            let cases: Vec<Refusal> = vec![
                (None, "gpt-4o", 401, "auth_required", "authentication_error"),
                (
                    bearer("sk-proj-not-ours-0123456789"),
                    "gpt-4o",
                    401,
                    "token_invalid",
                    "authentication_error",
                ),
                (
                    bearer(&tampered),
                    "gpt-4o",
                    401,
                    "token_invalid",
                    "authentication_error",
                ),
                (
                    Some(("x-api-key", foreign.clone())),
                    "gpt-4o",
                    401,
                    "token_wrong_install",
                    "authentication_error",
                ),
                (
                    bearer(&scoped),
                    "gpt-4o",
                    403,
                    "model_not_allowed",
                    "permission_error",
                ),
            ];
            for (cred, model, status, code, ty) in cases {
                let c = cred.as_ref().map(|(h, v)| (*h, v.as_str()));
                let (got, body) = send(&http, &s.url, anthropic, model, c).await;
                assert_eq!(got, status, "{code} anthropic={anthropic}: {body}");
                assert_eq!(
                    error_of(anthropic, &body),
                    (code.to_string(), ty.to_string()),
                    "anthropic={anthropic}"
                );
            }
            // Allowed: the default token (any model), the scoped one on its models, in
            // each header a client may use.
            for (h, v) in [
                ("authorization", format!("Bearer {default}")),
                ("x-api-key", default.clone()),
                ("api-key", default.clone()),
            ] {
                let (got, body) = send(&http, &s.url, anthropic, "gpt-4o", Some((h, &v))).await;
                assert_eq!(got, 200, "{h}: {body}");
            }
            let (got, body) = send(
                &http,
                &s.url,
                anthropic,
                "claude-x",
                Some(("x-api-key", &scoped)),
            )
            .await;
            assert_eq!(got, 200, "{body}");
        }
        // A scoped token lists only what it may use.
        let listed: Value = http
            .get(format!("{}/v1/models", s.url))
            .header("authorization", format!("Bearer {scoped}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            listed["data"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["id"].as_str().unwrap().starts_with("claude-")),
            "{listed}"
        );

        // Expiry.
        let (got, _) = send(&http, &s.url, false, "gpt-4o", Some(("x-api-key", &short))).await;
        assert_eq!(got, 200);
        tokio::time::sleep(Duration::from_millis(2600)).await;
        for anthropic in [false, true] {
            let (got, body) = send(
                &http,
                &s.url,
                anthropic,
                "gpt-4o",
                Some(("x-api-key", &short)),
            )
            .await;
            assert_eq!(got, 401);
            assert_eq!(error_of(anthropic, &body).0, "token_expired");
        }
    });

    // Revoked from another process: refused from the very next request, no restart.
    let list = env.json(&["token", "list"]);
    let id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "default")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    env.json(&["token", "revoke", &id.to_string()]);
    rt.block_on(async {
        for anthropic in [false, true] {
            let (got, body) = send(
                &http,
                &s.url,
                anthropic,
                "gpt-4o",
                bearer(&default).as_ref().map(|(h, v)| (*h, v.as_str())),
            )
            .await;
            assert_eq!(got, 401, "{body}");
            assert_eq!(
                error_of(anthropic, &body),
                ("token_revoked".into(), "authentication_error".into())
            );
        }
    });

    // `token list`: usage from the request log (written in batches), never a token.
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = env.json(&["token", "list"]);
        if listed[0]["requests"].as_i64() >= Some(6) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let d = &listed.as_array().unwrap()[0];
    assert_eq!(d["name"], "default");
    assert_eq!(d["state"], "revoked");
    assert_eq!(d["requests"], 6, "{d}");
    assert!(d["tokens_in"].as_i64().unwrap() > 0, "{d}");
    assert!(d["last_used_at"].is_i64());
    let short_row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "short")
        .unwrap();
    assert_eq!(short_row["state"], "expired");
    let text = listed.to_string();
    for t in [&default, &scoped, &short] {
        assert!(!text.contains(t.as_str()));
    }

    // The tokens never went upstream, and are nowhere on disk or in the logs.
    for r in oai.received() {
        for (_, v) in r.headers.iter() {
            let v = v.to_str().unwrap_or("");
            assert!(!v.contains("sy-"), "a client token went upstream: {v}");
        }
        assert!(!r.body.to_string().contains("sy-"));
    }
    let mut s = s;
    let _ = s.child.kill();
    let mut stderr = String::new();
    use std::io::Read;
    s.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    for t in [&default, &scoped, &short] {
        let body = &t[3..];
        assert!(!stderr.contains(body), "a token in serve's log");
        for f in files_under(env.data_dir()) {
            if f.is_file() {
                let bytes = std::fs::read(&f).unwrap();
                assert!(
                    !bytes.windows(body.len()).any(|w| w == body.as_bytes()),
                    "a token in {}",
                    f.display()
                );
            }
        }
    }
}

#[test]
fn the_loopback_opt_out_is_live_warned_and_overridden_by_a_non_loopback_bind() {
    let env = Env::new();
    let off = env.json(&["token", "auth", "off"]);
    assert_eq!(off["loopback_auth"], false);
    let human = env.run(&["token", "auth"], None);
    assert!(
        common::stdout(&human).contains("warning: client tokens are off for loopback"),
        "{}",
        common::stdout(&human)
    );
    let s = serve(&env, &[]);
    assert_eq!(s.ready["auth"], "off");
    assert!(
        s.ready["default_token"].is_null(),
        "no token is issued while tokens are off"
    );
    let rt = rt();
    let http = reqwest::Client::new();
    let models = |url: String| {
        let http = http.clone();
        async move {
            http.get(format!("{url}/v1/models"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(rt.block_on(models(s.url.clone())), 200);
    // Turned back on by another process: the next request needs a token.
    env.json(&["token", "auth", "on"]);
    assert_eq!(rt.block_on(models(s.url.clone())), 401);
    env.json(&["token", "auth", "off"]);
    assert_eq!(rt.block_on(models(s.url.clone())), 200);
    drop(s);

    // Shared on the network: tokens whatever the setting.
    let lan = serve(&env, &["--host", "0.0.0.0"]);
    assert_eq!(lan.ready["auth"], "on");
    assert_eq!(rt.block_on(models(lan.url.clone())), 401);
}

#[test]
fn doctor_says_whether_tokens_are_required_which_are_active_and_how_to_use_them() {
    let env = Env::new();
    let check = || {
        let v = env.json(&["doctor", "--port", "8399"]);
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "tokens")
            .cloned()
            .expect("a tokens check")
    };
    let none = check();
    assert_eq!(none["status"], "warn", "{none}");
    assert_eq!(none["data"]["active"], 0);
    issue(&env, &["laptop"]);
    let one = check();
    assert_eq!(one["status"], "ok", "{one}");
    assert_eq!(one["data"]["names"], json!(["laptop"]));
    let msg = one["message"].as_str().unwrap();
    for needle in [
        "OPENAI_BASE_URL=http://127.0.0.1:8399/v1 OPENAI_API_KEY=<token>",
        "ANTHROPIC_BASE_URL=http://127.0.0.1:8399 ANTHROPIC_API_KEY=<token>",
        "env_key",
    ] {
        assert!(msg.contains(needle), "{needle} in {msg}");
    }
    // Patterns as people type them around commas keep no spaces.
    issue(&env, &["spaced", "--models", "gpt-4*, claude-*"]);
    let listed = env.json(&["token", "list"]);
    assert_eq!(listed[1]["scopes"], json!(["gpt-4*", "claude-*"]));
    env.json(&["token", "auth", "off"]);
    let off = check();
    assert_eq!(off["status"], "warn");
    assert!(
        off["message"]
            .as_str()
            .unwrap()
            .contains("spend your cloud keys")
    );
}

#[test]
fn key_rotations_reseal_the_signing_key_and_tokens_keep_working() {
    let env = Env::new();
    let before = issue(&env, &["before"]);
    assert_eq!(
        env.json(&["keys", "status"])["secrets"],
        1,
        "the signing key is a sealed secret"
    );
    let r = env.json(&["keys", "rotate", "--data"]);
    assert_eq!(r["secrets"], 1, "{r}");
    let r = env.json(&["keys", "rotate", "--root", "--yes"]);
    assert!(r["new_fingerprint"].is_string(), "{r}");
    // Issuing opens the private half under the new keys.
    let after = issue(&env, &["after"]);
    let s = serve(&env, &[]);
    let rt = rt();
    let http = reqwest::Client::new();
    for t in [&before, &after] {
        let code = rt.block_on(async {
            http.get(format!("{}/v1/models", s.url))
                .bearer_auth(t)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
        assert_eq!(code, 200);
    }
}
