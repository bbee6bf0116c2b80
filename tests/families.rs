//! Each architecture family against mlx-lm: tiny random models made by mlx-lm 0.32.2
//! (tests/fixtures/families/make_tiny.py, run by scripts/fetch-fixtures.sh into
//! .fixtures/families/), with the family's real config keys, quantized as the published
//! MLX conversions are, and mlx-lm's own outputs for them.
//!
//! Per family and prompt: the first generated position's logits (the whole vector)
//! within `LOGIT_TOLERANCE` of mlx-lm's, and the greedy tokens equal, alone and with the
//! four prompts decoded as one batch while prefilled in 16-token chunks. Prompts run up
//! to 70 tokens and generation 24 more, past Gemma's 8-position window.
//!
//! Red checks (each detail broken once in the engine, the test went red — see the
//! table in tests/fixtures/families/README.md).

mod common;

use serde_json::Value;
use std::path::PathBuf;
use switchyard::engine::{self, GenerateRequest, LoadOptions, ModelHandle, SamplingParams};

/// Both sides run MLX's CPU kernels in float32; what differs is the order of a few
/// reductions (mlx-lm's rotating window cache, compiled activations).
const LOGIT_TOLERANCE: f32 = 1e-4;

struct Case {
    prompt: Vec<u32>,
    logits: Vec<f32>,
    greedy: Vec<u32>,
}

fn family(name: &str) -> (PathBuf, Vec<Case>) {
    let dir = common::fixture(&format!(".fixtures/families/{name}"));
    let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let nums = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let cases = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| Case {
            prompt: nums(&r["prompt"]).iter().map(|&x| x as u32).collect(),
            logits: nums(&r["logits"]).iter().map(|&x| x as f32).collect(),
            greedy: nums(&r["greedy"]).iter().map(|&x| x as u32).collect(),
        })
        .collect();
    (dir, cases)
}

fn request(c: &Case) -> GenerateRequest {
    let mut r = GenerateRequest::new(c.prompt.clone());
    r.max_tokens = c.greedy.len();
    r.sampling = SamplingParams::default();
    r.use_prefix_cache = false;
    r.ignore_eos = true;
    r
}

async fn greedy(m: &ModelHandle, c: &Case) -> Vec<u32> {
    let s = m.generate(request(c)).unwrap();
    s.collect().await.unwrap().token_ids
}

async fn check(name: &str, arch: &str) {
    let (dir, cases) = family(name);
    check_file(name, dir, &cases, arch).await;
}

/// `name`'s GGUF file (tests/fixtures/families/to_gguf.py: its weights dequantized, named
/// and described as llama.cpp writes the family) against the same mlx-lm outputs.
async fn check_gguf(name: &str, arch: &str) {
    let (dir, cases) = family(name);
    let file = dir.with_extension("gguf");
    assert!(
        file.exists(),
        "{} is missing: run scripts/fetch-fixtures.sh",
        file.display()
    );
    check_file(name, file, &cases, arch).await;
}

async fn check_file(name: &str, dir: PathBuf, cases: &[Case], arch: &str) {
    let m = engine::load(dir.clone(), LoadOptions::default())
        .await
        .unwrap();
    assert_eq!(m.info().config.arch.as_str(), arch);
    let gguf = dir.extension().is_some_and(|e| e == "gguf");
    assert_eq!(m.info().format == engine::ModelFormat::Gguf, gguf);
    let mut worst = 0f32;
    for (i, c) in cases.iter().enumerate() {
        let logits = m.logits(c.prompt.clone()).await.unwrap();
        assert_eq!(logits.len(), c.logits.len());
        let (at, diff) = logits
            .iter()
            .zip(&c.logits)
            .map(|(a, b)| (a - b).abs())
            .enumerate()
            .fold((0, 0f32), |w, (j, d)| if d > w.1 { (j, d) } else { w });
        worst = worst.max(diff);
        assert!(
            diff <= LOGIT_TOLERANCE,
            "{name} prompt {i} ({} tokens): logit {at} differs from mlx-lm's by {diff}",
            c.prompt.len()
        );
        assert_eq!(
            greedy(&m, c).await,
            c.greedy,
            "{name} prompt {i} ({} tokens): greedy tokens",
            c.prompt.len()
        );
    }
    eprintln!("{name}: largest logit difference from mlx-lm {worst:.2e}");

    // The batched decode path, prompts read 16 tokens at a time (windows cut across
    // chunk boundaries): every answer still mlx-lm's.
    let opts = LoadOptions {
        prefill_step_size: 16,
        ..LoadOptions::default()
    };
    let m = engine::load(dir, opts).await.unwrap();
    let streams: Vec<_> = cases
        .iter()
        .map(|c| m.generate(request(c)).unwrap())
        .collect();
    for (i, (s, c)) in streams.into_iter().zip(cases).enumerate() {
        let got = s.collect().await.unwrap().token_ids;
        assert_eq!(got, c.greedy, "{name} prompt {i}: batched greedy tokens");
    }
}

#[tokio::test]
async fn gemma2_with_soft_capped_scores_and_logits_equals_mlx_lm() {
    check("gemma2", "gemma2").await;
}

#[tokio::test]
async fn gemma3_text_equals_mlx_lm_past_its_sliding_window() {
    check("gemma3", "gemma3_text").await;
}

#[tokio::test]
async fn gemma3_multimodal_checkpoint_runs_its_language_model_like_mlx_lm() {
    check("gemma3_vlm", "gemma3_text").await;
}

#[tokio::test]
async fn gpt_oss_with_sinks_mxfp4_experts_and_yarn_equals_mlx_lm() {
    check("gpt_oss", "gpt_oss").await;
}

/// The gpt-oss fixture's tokenizer carries harmony's control tokens and a chat template
/// in its format (make_tiny.py): the engine reads its answers as harmony.
#[tokio::test]
async fn a_harmony_model_keeps_its_control_tokens_and_stops_on_return_and_call() {
    let (dir, _) = family("gpt_oss");
    let m = engine::load(dir, LoadOptions::default()).await.unwrap();
    assert!(m.harmony());
    let id = |t: &str| m.tokenize(t, false).unwrap()[0];
    let (ret, call, channel) = (id("<|return|>"), id("<|call|>"), id("<|channel|>"));
    let eos = &m.info().eos_token_ids;
    assert!(eos.contains(&ret) && eos.contains(&call), "{eos:?}");
    assert_eq!(m.detokenize(&[channel]).unwrap(), "<|channel|>");
    let msgs: Vec<engine::ChatMessage> =
        serde_json::from_value(serde_json::json!([{"role": "user", "content": "hi"}])).unwrap();
    assert_eq!(
        m.render_chat(&msgs, None, true).unwrap(),
        "<|start|>user<|message|>hi<|end|><|start|>assistant"
    );
    // Other models keep skipping their control tokens.
    let (dir, _) = family("qwen3_moe");
    let q = engine::load(dir, LoadOptions::default()).await.unwrap();
    assert!(!q.harmony());
    assert_eq!(
        q.detokenize(&[q.tokenize("<|im_end|>", false).unwrap()[0]])
            .unwrap(),
        ""
    );
}

#[tokio::test]
async fn glm4_moe_with_grouped_sigmoid_routing_and_a_shared_expert_equals_mlx_lm() {
    check("glm4_moe", "glm4_moe").await;
}

#[tokio::test]
async fn gemma3_1b_shape_equals_mlx_lm_from_the_folder_and_from_gguf() {
    check("gemma3_1b", "gemma3_text").await;
    check_gguf("gemma3_1b", "gemma3_text").await;
}

#[tokio::test]
async fn phi3_and_qwen3_moe_gguf_files_equal_mlx_lm() {
    check_gguf("phi3", "phi3").await;
    check_gguf("qwen3_moe", "qwen3_moe").await;
}

#[tokio::test]
async fn phi3_with_fused_projections_and_longrope_equals_mlx_lm() {
    check("phi3", "phi3").await;
}

#[tokio::test]
async fn mixtral_top2_of_4_experts_equals_mlx_lm() {
    check("mixtral", "mixtral").await;
}

#[tokio::test]
async fn mixtral_as_hugging_face_stores_it_one_tensor_per_expert_equals_mlx_lm() {
    check("mixtral_hf", "mixtral").await;
}

#[tokio::test]
async fn qwen3_moe_with_a_dense_layer_equals_mlx_lm() {
    check("qwen3_moe", "qwen3_moe").await;
}
