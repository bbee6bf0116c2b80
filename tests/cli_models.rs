//! `switchyard models …` and `switchyard generate` through the real binary, on the
//! fixture model (fetched by scripts/fetch-fixtures.sh; missing = failure).

mod common;

use common::{Env, stderr, stdout};
use serde_json::Value;
use std::path::PathBuf;

fn gguf() -> PathBuf {
    common::fixture(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn mlx() -> PathBuf {
    common::fixture(".fixtures/smollm2/mlx")
}

fn reference(i: usize) -> Value {
    let text =
        std::fs::read_to_string(common::repo_root().join("tests/fixtures/smollm2/reference.jsonl"))
            .unwrap();
    serde_json::from_str(text.lines().nth(i).unwrap()).unwrap()
}

fn error_of(out: &std::process::Output) -> (i32, String) {
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}{}", stdout(out), stderr(out)));
    (
        out.status.code().unwrap(),
        v["error"]["code"].as_str().unwrap().to_string(),
    )
}

#[test]
fn import_list_and_remove_keep_the_registry_and_user_files_consistent() {
    let env = Env::new();
    let g = gguf();
    let imported = env.json(&["models", "import", g.to_str().unwrap()]);
    assert_eq!(imported["name"], "SmolLM2-135M-Instruct.Q4_1");
    assert_eq!(imported["format"], "gguf");
    assert_eq!(imported["architecture"], "llama");
    assert_eq!(imported["quantization"], "Q4_1");
    assert_eq!(imported["context_length"], 8192);
    assert_eq!(imported["size_bytes"], 98_362_432);
    let params = imported["parameters"].as_i64().unwrap();
    assert!((130_000_000..140_000_000).contains(&params), "{params}");

    let m = mlx();
    let folder = env.json(&[
        "models",
        "import",
        m.to_str().unwrap(),
        "--name",
        "smol-mlx",
    ]);
    assert_eq!(folder["format"], "mlx");
    assert_eq!(folder["quantization"], "4bit-g32-mixed");
    assert_eq!(
        folder["parameters"], imported["parameters"],
        "same weights, same count"
    );

    // The same path twice, or a taken name: model_exists (exit 4), nothing added.
    let (code, err) =
        error_of(&env.run(&["--json", "models", "import", g.to_str().unwrap()], None));
    assert_eq!((code, err.as_str()), (4, "model_exists"));
    let (code, err) = error_of(&env.run(
        &[
            "--json",
            "models",
            "import",
            g.to_str().unwrap(),
            "--name",
            "smol-mlx",
        ],
        None,
    ));
    assert_eq!((code, err.as_str()), (4, "model_exists"));
    // Not a model: model_invalid.
    let junk = env.data_dir().join("junk.gguf");
    std::fs::write(&junk, b"not a model").unwrap();
    let (code, err) = error_of(&env.run(
        &["--json", "models", "import", junk.to_str().unwrap()],
        None,
    ));
    assert_eq!((code, err.as_str()), (1, "model_invalid"));

    let list = env.json(&["models", "list"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    for key in [
        "id",
        "name",
        "format",
        "architecture",
        "parameters",
        "quantization",
        "size_bytes",
        "context_length",
        "pinned",
        "loaded",
    ] {
        assert!(list[0].get(key).is_some(), "models list lacks {key}");
    }
    assert_eq!(list[1]["pinned"], false);
    assert_eq!(list[1]["loaded"], false);

    // No TTY, no --yes: refused, still listed.
    let out = env.run(&["--json", "models", "remove", "smol-mlx"], None);
    assert_eq!(error_of(&out), (4, "confirmation_required".into()));
    assert_eq!(env.json(&["models", "list"]).as_array().unwrap().len(), 2);
    let id = imported["id"].as_i64().unwrap().to_string();
    let removed = env.json(&["models", "remove", &id, "--yes"]);
    assert_eq!(removed["name"], "SmolLM2-135M-Instruct.Q4_1");
    let left = env.json(&["models", "list"]);
    assert_eq!(left.as_array().unwrap().len(), 1);
    assert_eq!(left[0]["name"], "smol-mlx");
    assert!(g.exists(), "the user's file outside the data dir is kept");
    let (code, err) = error_of(&env.run(&["--json", "models", "remove", &id, "--yes"], None));
    assert_eq!((code, err.as_str()), (3, "model_not_found"));
    let human = env.run(&["models", "list"], None);
    assert!(stdout(&human).contains("smol-mlx"), "{}", stdout(&human));
}

#[test]
fn generate_json_reproduces_mlx_lm_for_a_registered_model_and_a_path() {
    let env = Env::new();
    env.json(&[
        "models",
        "import",
        gguf().to_str().unwrap(),
        "--name",
        "smol",
    ]);
    let r = reference(0);
    let v = env.json(&[
        "generate",
        "--model",
        "smol",
        "--prompt",
        r["prompt"].as_str().unwrap(),
        "--max-tokens",
        "16",
    ]);
    assert_eq!(v["text"], r["text"]);
    assert_eq!(v["prompt_token_ids"], r["prompt_token_ids"]);
    assert_eq!(
        v["token_ids"], r["generated_token_ids"],
        "includes the final EOS, like mlx-lm"
    );
    assert_eq!(v["finish_reason"], "stop");
    for key in ["prompt_tokens_per_s", "generation_tokens_per_s"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(v["peak_memory_bytes"].as_u64().unwrap() > 50_000_000);
    let listed = env.json(&["models", "list"]);
    assert!(listed[0]["last_used_at"].as_i64().is_some());

    // A folder path, --messages, a stop string, human mode streaming to stdout.
    let msgs = env.data_dir().join("m.json");
    std::fs::write(&msgs, serde_json::to_string(&r["messages"]).unwrap()).unwrap();
    let out = env.run(
        &[
            "generate",
            "--model",
            mlx().to_str().unwrap(),
            "--messages",
            msgs.to_str().unwrap(),
            "--stop",
            " Paris",
            "--max-tokens",
            "16",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "The capital of France is\n");
    assert!(stderr(&out).contains("stop"), "{}", stderr(&out));

    // --raw: the text goes in as it is (no template), length-limited.
    let v = env.json(&[
        "generate",
        "--model",
        "smol",
        "--raw",
        "--prompt",
        "1, 2, 3,",
        "--max-tokens",
        "3",
    ]);
    assert_eq!(
        v["prompt_token_ids"],
        serde_json::json!([33, 28, 216, 34, 28, 216, 35, 28])
    );
    assert_eq!(v["finish_reason"], "length");
    assert_eq!(v["token_ids"].as_array().unwrap().len(), 3);
}

#[test]
fn generate_reports_missing_models_and_overlong_prompts_with_codes() {
    let env = Env::new();
    let (code, err) = error_of(&env.run(
        &["--json", "generate", "--model", "nope", "--prompt", "hi"],
        None,
    ));
    assert_eq!((code, err.as_str()), (3, "model_not_found"));
    let long = "a ".repeat(9000);
    let out = env.run(
        &[
            "--json",
            "generate",
            "--model",
            gguf().to_str().unwrap(),
            "--raw",
            "--prompt",
            &long,
        ],
        None,
    );
    assert_eq!(error_of(&out), (4, "context_length_exceeded".into()));
    let out = env.run(&["generate", "--model", "x"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "neither --prompt nor --messages is a usage error"
    );
}

#[test]
fn generate_prompts_runs_them_together_and_each_answer_is_its_solo_answer() {
    let env = Env::new();
    let prompts: Vec<String> = (0..3)
        .map(|i| reference(i)["prompt"].as_str().unwrap().to_string())
        .collect();
    let solo: Vec<Value> = prompts
        .iter()
        .map(|p| {
            let mlx = mlx();
            let v = env.json(&[
                "generate",
                "--model",
                mlx.to_str().unwrap(),
                "--prompt",
                p,
                "--max-tokens",
                "12",
            ]);
            v["token_ids"].clone()
        })
        .collect();
    let file = env.data_dir().join("prompts.txt");
    std::fs::write(
        &file,
        format!("{}\n\n{}\n{}\n", prompts[0], prompts[1], prompts[2]),
    )
    .unwrap();
    let mlx = mlx();
    let v = env.json(&[
        "generate",
        "--model",
        mlx.to_str().unwrap(),
        "--prompts",
        file.to_str().unwrap(),
        "--concurrency",
        "3",
        "--max-tokens",
        "12",
    ]);
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "blank lines are skipped: {v}");
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r["index"], i);
        assert_eq!(r["token_ids"], solo[i], "prompt {i}: batched = alone");
    }
    assert_eq!(v["concurrency"], 3);
    assert!(v["largest_batch"].as_u64().unwrap() >= 2, "{v}");
    assert!(v["aggregate_tokens_per_s"].as_f64().unwrap() > 0.0);

    let out = env.run(
        &[
            "generate",
            "--model",
            "x",
            "--prompt",
            "hi",
            "--concurrency",
            "2",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2), "--concurrency needs --prompts");
}

#[test]
fn a_mixture_of_experts_lists_its_total_and_active_parameters() {
    let env = Env::new();
    // (family, experts' parameters: E experts × 3 projections × layers, share used per token)
    for (family, expert_params, used) in [
        ("qwen3_moe", 8 * 3 * 64 * 64 * 2, 2.0 / 8.0),
        ("mixtral", 4 * 3 * 128 * 64 * 2, 2.0 / 4.0),
    ] {
        let dir = common::fixture(&format!(".fixtures/families/{family}"));
        let m = env.json(&["models", "import", dir.to_str().unwrap()]);
        assert_eq!(m["architecture"], family);
        let total = m["parameters"].as_i64().unwrap();
        let active = m["active_parameters"].as_i64().unwrap();
        let idle = (expert_params as f64 * (1.0 - used)) as i64;
        assert_eq!(total - active, idle, "{family}: {m}");
    }
    let dense = env.json(&[
        "models",
        "import",
        common::fixture(".fixtures/families/gemma3")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(dense["architecture"], "gemma3_text");
    assert!(dense["active_parameters"].is_null());
    let list = env.run(&["models", "list"], None);
    let text = stdout(&list);
    let row = text.lines().find(|l| l.contains("qwen3_moe ")).unwrap();
    assert!(row.contains("M-A"), "{row}");
}
