//! How much memory a model will take once loaded, from its headers alone: the pool
//! decides whether a model fits (and what to unload first) before it loads anything.
//!
//! The figures follow what the loader does (`weights.rs`): quantized tensors keep their
//! packed size (GGUF Q4_0/Q4_1/Q8_0 become MLX affine 4/8-bit with f16 scales and
//! biases per 32 values), float tensors become float32 on the CPU backend (their own
//! dtype on a GPU), and the KV cache holds keys and values for every layer in the
//! activation dtype. After a load the pool also keeps what MLX measured
//! (`ModelHandle::measured_bytes`) and budgets with the larger of the two.

use super::gguf::GgmlType;
use super::source::Source;
use super::weights::{on_cpu, read_safetensors_header, safetensors_files};
use crate::error::Result;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MemoryEstimate {
    /// The weights in memory.
    pub weights_bytes: u64,
    /// Keys and values of one token across all layers.
    pub kv_bytes_per_token: u64,
    /// The model's own context length.
    pub context_length: u32,
}

impl MemoryEstimate {
    /// Weights plus a KV cache of `context` tokens.
    pub fn footprint(&self, context: u32) -> u64 {
        self.weights_bytes
            .saturating_add(self.kv_bytes_per_token.saturating_mul(context as u64))
    }
}

/// Estimate `path`'s footprint (headers only: GGUF tensor infos, safetensors headers).
pub fn estimate(path: &Path) -> Result<MemoryEstimate> {
    let source = Source::open(path)?;
    let config = source.config()?;
    let cpu = on_cpu();
    let float = |own: u64| if cpu { 4 } else { own };
    let mut weights: u64 = 0;
    match &source {
        Source::Gguf { header, .. } => {
            for t in &header.tensors {
                let n = t.elements();
                let bytes = match t.ggml_type {
                    GgmlType::F32 => n.saturating_mul(float(4)),
                    GgmlType::F16 | GgmlType::BF16 => n.saturating_mul(float(2)),
                    // bits/8 per value + an f16 scale and bias per group of 32.
                    GgmlType::Q4_0 | GgmlType::Q4_1 => n / 2 + n / 8,
                    GgmlType::Q8_0 => n + n / 8,
                    // Not loadable; the load will say so. Count the file's bytes.
                    other => other.bytes_for(n).unwrap_or(n),
                };
                weights = weights.saturating_add(bytes);
            }
        }
        Source::Folder { path, .. } => {
            for f in safetensors_files(path)? {
                for (name, t) in read_safetensors_header(&f)? {
                    let n: u64 = t.shape.iter().copied().fold(1u64, u64::saturating_mul);
                    // Quantization scales and biases are used as stored; other floats
                    // are converted by the loader.
                    let packed = name.ends_with(".scales") || name.ends_with(".biases");
                    let own = match t.dtype.as_str() {
                        "F64" | "I64" => 8,
                        "F32" | "U32" | "I32" => 4,
                        "F16" | "BF16" | "I16" | "U16" => 2,
                        _ => 1,
                    };
                    let size = match t.dtype.as_str() {
                        "F32" | "F16" | "BF16" if !packed => float(own),
                        _ => own,
                    };
                    weights = weights.saturating_add(n.saturating_mul(size));
                }
            }
        }
    }
    let act = if cpu { 4 } else { 2 };
    let kv = 2u64
        .saturating_mul(config.num_layers.max(0) as u64)
        .saturating_mul(config.num_kv_heads.max(0) as u64)
        .saturating_mul(config.head_dim.max(0) as u64)
        .saturating_mul(act);
    Ok(MemoryEstimate {
        weights_bytes: weights,
        kv_bytes_per_token: kv,
        context_length: config.context_length,
    })
}
