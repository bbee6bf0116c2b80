//! Models already in the Hugging Face cache and LM Studio's folder are listed and run
//! in place (never copied), through the real binary; links out of the cache are skipped.

mod common;
use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Put `files` (name → source file) into `hub` the way huggingface_hub does: content in
/// `blobs/`, the snapshot's files symlinks to them, `refs/main` naming the revision.
fn cache_repo(hub: &Path, repo: &str, rev: &str, files: &[(&str, PathBuf)]) -> PathBuf {
    let dir = hub.join(format!("models--{}", repo.replace('/', "--")));
    let snap = dir.join("snapshots").join(rev);
    std::fs::create_dir_all(dir.join("blobs")).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(dir.join("refs")).unwrap();
    std::fs::write(dir.join("refs/main"), rev).unwrap();
    for (i, (name, src)) in files.iter().enumerate() {
        let blob = dir.join("blobs").join(format!("{i:064x}"));
        std::fs::copy(src, &blob).unwrap();
        std::os::unix::fs::symlink(format!("../../blobs/{i:064x}"), snap.join(name)).unwrap();
    }
    snap
}

fn list(env: &Env, hf_home: &Path, lms: &Path) -> Vec<Value> {
    let out = env
        .cmd()
        .env("HF_HOME", hf_home)
        .env("SWITCHYARD_LMSTUDIO_MODELS", lms)
        .args(["--json", "models", "list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap()
}

#[test]
fn cached_models_are_listed_and_generate_in_place() {
    let env = Env::new();
    let tmp = tempfile::tempdir().unwrap();
    let hf_home = tmp.path().join("hf");
    let hub = hf_home.join("hub");
    let mlx = fixture(".fixtures/smollm2/mlx");
    let folder: Vec<(&str, PathBuf)> = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    .iter()
    .map(|f| (*f, mlx.join(f)))
    .collect();
    let snap = cache_repo(&hub, "acme/smol-mlx", "0123abcd", &folder);
    cache_repo(
        &hub,
        "acme/smol-gguf",
        "89ef",
        &[(
            "smol.Q4_1.gguf",
            fixture(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        )],
    );
    // A repository whose snapshot links outside the cache is not trusted.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for (f, src) in &folder {
        std::fs::copy(src, outside.join(f)).unwrap();
    }
    let evil = hub.join("models--evil--out/snapshots/1");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::create_dir_all(hub.join("models--evil--out/refs")).unwrap();
    std::fs::write(hub.join("models--evil--out/refs/main"), "1").unwrap();
    for (f, _) in &folder {
        std::os::unix::fs::symlink(outside.join(f), evil.join(f)).unwrap();
    }
    // LM Studio keeps plain files under PUBLISHER/REPO.
    let lms = tmp.path().join("lmstudio");
    std::fs::create_dir_all(lms.join("pub/smol-GGUF")).unwrap();
    std::fs::copy(
        fixture(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
        lms.join("pub/smol-GGUF/smol.Q4_1.gguf"),
    )
    .unwrap();

    let models = list(&env, &hf_home, &lms);
    let mut names: Vec<(&str, &str)> = models
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["source"].as_str().unwrap()))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            ("acme/smol-gguf/smol.Q4_1", "hf-cache"),
            ("acme/smol-mlx", "hf-cache"),
            ("pub/smol-GGUF/smol.Q4_1", "lmstudio"),
        ]
    );
    let m = models
        .iter()
        .find(|m| m["name"] == "acme/smol-mlx")
        .unwrap();
    assert_eq!(m["format"], "mlx");
    assert_eq!(m["architecture"], "llama");
    assert_eq!(m["revision"], "0123abcd");
    assert_eq!(
        m["path"],
        std::fs::canonicalize(&snap).unwrap().display().to_string()
    );

    // Listing again adds nothing; it generates from the cache, nothing is copied.
    assert_eq!(list(&env, &hf_home, &lms).len(), 3);
    let out = env
        .cmd()
        .env("HF_HOME", &hf_home)
        .args([
            "--json",
            "generate",
            "--model",
            "acme/smol-mlx",
            "--prompt",
            "What is the capital of France?",
            "--temperature",
            "0",
            "--max-tokens",
            "8",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let g: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!g["token_ids"].as_array().unwrap().is_empty(), "{g}");
    let copied: Vec<PathBuf> = files_under(env.data_dir())
        .into_iter()
        .filter(|p| {
            p.extension()
                .is_some_and(|x| x == "safetensors" || x == "gguf")
        })
        .collect();
    assert!(copied.is_empty(), "copied into the data dir: {copied:?}");

    // A snapshot removed from the cache leaves the registry on the next listing.
    std::fs::remove_dir_all(hub.join("models--acme--smol-gguf")).unwrap();
    let names: Vec<String> = list(&env, &hf_home, &lms)
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        !names.contains(&"acme/smol-gguf/smol.Q4_1".to_string()),
        "{names:?}"
    );
    assert_eq!(names.len(), 2);
}
