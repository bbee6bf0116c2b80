//! Model files come from strangers. A model whose chat template is a bomb, and model
//! files that lie about their contents, are coded errors for their own request or
//! import — never an abort of `switchyard serve`, never a stall of other requests.

mod common;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use switchyard::app::{App, AppOptions};
use switchyard::error::Code;
use switchyard::gateway::{self, GatewayOptions, GatewayState};
use switchyard::store::audit::Actor;
use switchyard::vault::BackendKind;

fn fixture_mlx() -> PathBuf {
    let p = common::repo_root().join(".fixtures/smollm2/mlx");
    assert!(
        p.join("model.safetensors").exists(),
        "fixture {} is missing: run scripts/fetch-fixtures.sh",
        p.display()
    );
    p
}

/// The fixture's weights and tokenizer (linked, not copied) with `edit` applied to its
/// tokenizer_config.json and config.json.
fn model_dir(root: &Path, name: &str, edit: impl FnOnce(&mut Value, &mut Value)) -> PathBuf {
    let src = fixture_mlx();
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::os::unix::fs::symlink(src.join(f), dir.join(f)).unwrap();
    }
    let read = |f: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(src.join(f)).unwrap()).unwrap()
    };
    let (mut tok, mut cfg) = (read("tokenizer_config.json"), read("config.json"));
    edit(&mut tok, &mut cfg);
    std::fs::write(dir.join("tokenizer_config.json"), tok.to_string()).unwrap();
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

const BOMBS: &[(&str, &str)] = &[
    (
        "indent",
        "{{ messages | tojson(indent=1000000000000000000) }}",
    ),
    (
        "width",
        "{{ '{:>999999999999}'.format(messages[0].content) }}",
    ),
    (
        "loop",
        "{% for i in range(100000) %}{% for j in range(100000) %}{{ messages[0].content }}{% endfor %}{% endfor %}",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_bomb_is_its_requests_coded_error_and_serve_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(AppOptions {
        data_dir: Some(dir.path().join("data")),
        vault: BackendKind::File,
    })
    .await
    .unwrap();
    for (name, template) in BOMBS {
        let d = model_dir(dir.path(), name, |tok, _| {
            tok["chat_template"] = json!(template);
        });
        switchyard::models::import(&app.db, &d, Some(format!("bomb-{name}")), Actor::Cli)
            .await
            .unwrap();
    }
    switchyard::models::import(&app.db, &fixture_mlx(), Some("good".into()), Actor::Cli)
        .await
        .unwrap();
    let local = switchyard::pool::Pool::start(&app);
    let state = GatewayState::new(app.clone(), GatewayOptions::default(), local)
        .await
        .unwrap();
    let server = gateway::serve(state, "127.0.0.1".parse().unwrap(), 0)
        .await
        .unwrap();
    let http = common::http_with_token(&common::issue_token(&app, "tests").await);
    let url = server.url();
    let ask = |model: String, path: &'static str| {
        // The same body is valid in both APIs.
        let body = json!({"model": model, "max_tokens": 4, "temperature": 0,
                          "messages": [{"role": "user", "content": "Hi"}]});
        let req = http.post(format!("{url}{path}")).json(&body);
        async move { req.send().await.unwrap() }
    };
    for (name, _) in BOMBS {
        let r = ask(format!("bomb-{name}"), "/v1/chat/completions").await;
        assert_eq!(r.status(), 422, "{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], "model_template_invalid", "{name}: {v}");
        let r = ask(format!("bomb-{name}"), "/v1/messages").await;
        assert_eq!(r.status(), 422, "{name}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["type"], "error", "{name}: {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains("sandbox"),
            "{name}: {v}"
        );
        // The process is still up and the next request to a sane model is answered.
        let r = ask("good".into(), "/v1/chat/completions").await;
        assert_eq!(r.status(), 200, "after {name}");
    }
}

/// Model folders whose config.json lies: a coded `model_invalid` naming the field, at
/// import, before any weight is loaded.
#[tokio::test]
async fn lying_configs_are_refused_at_import() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(AppOptions {
        data_dir: Some(dir.path().join("data")),
        vault: BackendKind::File,
    })
    .await
    .unwrap();
    let cases: [(&str, &str, Value); 5] = [
        ("layers", "num_hidden_layers", json!(1_000_000_000)),
        ("heads", "num_attention_heads", json!(2_000_000)),
        ("vocab", "vocab_size", json!(2_000_000_000)),
        ("hidden", "hidden_size", json!(-64)),
        (
            "context",
            "max_position_embeddings",
            json!(4_000_000_000u64),
        ),
    ];
    for (name, field, value) in cases {
        let d = model_dir(dir.path(), name, |_, cfg| {
            cfg[field] = value.clone();
        });
        let e = switchyard::models::import(&app.db, &d, None, Actor::Cli)
            .await
            .unwrap_err();
        assert!(
            matches!(e.code, Code::ModelInvalid),
            "{name}: {:?} {}",
            e.code,
            e.message
        );
        assert!(e.message.contains(field), "{name}: {}", e.message);
    }
    assert!(switchyard::models::list(&app.db).await.unwrap().is_empty());
}

/// A GGUF cut short anywhere in its header: `model_invalid`, nothing registered.
#[tokio::test]
async fn truncated_gguf_files_are_refused_at_import() {
    let gguf = common::repo_root().join(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
    let bytes = std::fs::read(&gguf).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(AppOptions {
        data_dir: Some(dir.path().join("data")),
        vault: BackendKind::File,
    })
    .await
    .unwrap();
    // Inside the magic, the counts, the metadata (the tokenizer arrays are most of
    // the header), the tensor table, and the tensor data.
    for cut in [
        3usize,
        20,
        1000,
        100_000,
        1_000_000,
        1_800_000,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        let p = dir.path().join(format!("cut-{cut}.gguf"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = switchyard::models::import(&app.db, &p, None, Actor::Cli)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::ModelInvalid, "cut at {cut}: {}", e.message);
    }
    assert!(switchyard::models::list(&app.db).await.unwrap().is_empty());
}
