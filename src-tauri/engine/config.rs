//! Hyper-parameters of the decoder-only family, from a Hugging Face `config.json` or
//! from GGUF metadata, normalised into one [`ModelConfig`].
//!
//! Validation happens here, before any weight is read: an unknown architecture, RoPE
//! scaling or quantization mode is refused with a code naming it, and impossible
//! shapes (heads not dividing the hidden size, zero layers) are `model_invalid`.

use super::gguf::GgufHeader;
use crate::error::{Code, Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;

/// Architectures we run. Mistral and SmolLM(2) are Llama-shaped; Qwen2 adds q/k/v
/// biases; Qwen3 adds per-head RMSNorm on q and k. Biases and q/k norms are taken
/// from the presence of their tensors, so the arch mostly selects naming and defaults.
/// Gemma 3 adds sliding-window layers, `(1 + w)` norms around both halves of a layer,
/// GeGLU and scaled embeddings; Phi-3 fuses projections (split at load) and may use
/// LongRoPE; Mixtral and Qwen3-MoE replace the MLP by a sparse mixture of experts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    Llama,
    Mistral,
    Qwen2,
    Qwen3,
    Gemma2,
    #[serde(rename = "gemma3_text")]
    Gemma3,
    Phi3,
    Mixtral,
    Qwen3Moe,
    GptOss,
    Glm4Moe,
}

impl Arch {
    pub const SUPPORTED: &'static str = "llama, mistral, qwen2, qwen3, gemma2, gemma3_text, phi3, mixtral, \
         qwen3_moe, gpt_oss, glm4_moe (incl. SmolLM/SmolLM2, Llama 2/3, Qwen2.5, Gemma 2, \
         Gemma 3, Phi-3/Phi-4, Qwen3-30B-A3B, gpt-oss-20b/120b, GLM-4.5/4.5-Air)";

    /// GGUF loading (llama.cpp's architecture names).
    pub const SUPPORTED_GGUF: &'static str = "llama, mistral, qwen2, qwen3, gemma3, phi3, qwen3moe";

    /// An architecture as llama.cpp names it in GGUF files.
    pub fn parse_gguf(name: &str) -> Option<Arch> {
        match name.to_ascii_lowercase().as_str() {
            "gemma3" => Some(Arch::Gemma3),
            "qwen3moe" => Some(Arch::Qwen3Moe),
            // The rest share the Hugging Face name.
            other => Arch::parse(other).filter(|a| {
                matches!(
                    a,
                    Arch::Llama | Arch::Mistral | Arch::Qwen2 | Arch::Qwen3 | Arch::Phi3
                )
            }),
        }
    }

    pub fn parse(name: &str) -> Option<Arch> {
        Some(match name.to_ascii_lowercase().as_str() {
            "llama" | "smollm" | "smollm2" => Arch::Llama,
            "mistral" => Arch::Mistral,
            "qwen2" => Arch::Qwen2,
            "qwen3" => Arch::Qwen3,
            "gemma2" => Arch::Gemma2,
            "gemma3_text" => Arch::Gemma3,
            "phi3" => Arch::Phi3,
            "mixtral" => Arch::Mixtral,
            "qwen3_moe" => Arch::Qwen3Moe,
            "gpt_oss" => Arch::GptOss,
            "glm4_moe" => Arch::Glm4Moe,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Llama => "llama",
            Arch::Mistral => "mistral",
            Arch::Qwen2 => "qwen2",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma2 => "gemma2",
            Arch::Gemma3 => "gemma3_text",
            Arch::Phi3 => "phi3",
            Arch::Mixtral => "mixtral",
            Arch::Qwen3Moe => "qwen3_moe",
            Arch::GptOss => "gpt_oss",
            Arch::Glm4Moe => "glm4_moe",
        }
    }
}

/// The MLP's activation: SwiGLU (`silu(gate) * up`) or GeGLU with the tanh
/// approximation of GELU (Gemma).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Silu,
    GeluTanh,
    /// gpt-oss: `(clip(up, ±7) + 1) * g * sigmoid(1.702 g)` with `g = min(gate, 7)`.
    SwigluClamped,
}

/// How a mixture-of-experts block weighs the experts it picks.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Routing {
    /// Mixtral: the top-k router logits, then a softmax over those k.
    TopKThenSoftmax,
    /// Qwen3-MoE: a softmax over all experts, the top k of it, renormalised to sum 1
    /// when `norm_topk_prob`.
    SoftmaxThenTopK { renormalize: bool },
    /// GLM-4.5 / DeepSeek-V3 ("noaux_tc"): sigmoid scores; the choice adds the router's
    /// correction bias and keeps only the `topk_group` best of `n_group` expert groups
    /// (a group ranked by its two best); the weights are the chosen experts' plain
    /// scores, renormalised when asked, times `scale`.
    SigmoidGroups {
        n_group: i32,
        topk_group: i32,
        scale: f32,
        renormalize: bool,
    },
}

/// A sparse mixture-of-experts MLP.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MoeConfig {
    pub num_experts: i32,
    pub experts_per_token: i32,
    /// Hidden width of one expert.
    pub expert_size: i32,
    pub routing: Routing,
    /// Hidden width of the shared experts every token also runs through (GLM-4.5).
    pub shared_size: Option<i32>,
    /// Layers with a dense MLP instead (Qwen3-MoE's `mlp_only_layers` and
    /// `decoder_sparse_step`).
    pub dense_layers: Vec<i32>,
}

/// Position-scaling variants of RoPE.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f32,
    },
    /// Phi-3's LongRoPE ("su"/"longrope"), as mlx-lm applies it: the long factors
    /// divide the frequencies, and the rotated part of q and k is scaled by `mscale`.
    /// Empty `long_factor`: in a GGUF file's `rope_factors_long` tensor.
    SuScaled {
        long_factor: Vec<f32>,
        mscale: f32,
    },
    /// YaRN (gpt-oss, long-context Qwen/DeepSeek), as mlx-lm's `YarnRoPE`: frequencies
    /// blended between interpolated and original by a linear ramp over the dimensions,
    /// the rotated part scaled by `mscale`.
    Yarn {
        factor: f32,
        original_max_position_embeddings: f32,
        beta_fast: f32,
        beta_slow: f32,
        mscale: f32,
        mscale_all_dim: f32,
    },
    /// Llama 3.x frequency-dependent scaling.
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_max_position_embeddings: f32,
    },
}

/// MLX quantization modes: affine (scales and biases per group) and MXFP4 (4-bit floats
/// with a shared power-of-two scale per 32 values, no biases; gpt-oss's experts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QuantMode {
    #[default]
    Affine,
    Mxfp4,
}

impl QuantMode {
    pub fn as_str(self) -> &'static str {
        match self {
            QuantMode::Affine => "affine",
            QuantMode::Mxfp4 => "mxfp4",
        }
    }
}

/// MLX quantization of one linear/embedding module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct QuantSpec {
    pub group_size: i32,
    pub bits: i32,
    pub mode: QuantMode,
}

/// `quantization` from config.json: a default plus per-module overrides (mlx-lm's
/// mixed-precision form); `None` in an override means "this module is not quantized".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QuantConfig {
    pub default: Option<QuantSpec>,
    pub per_module: BTreeMap<String, Option<QuantSpec>>,
}

impl QuantConfig {
    pub fn for_module(&self, module: &str) -> Option<QuantSpec> {
        match self.per_module.get(module) {
            Some(spec) => *spec,
            None => self.default,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    pub arch: Arch,
    pub hidden_size: i32,
    pub intermediate_size: i32,
    pub num_layers: i32,
    pub num_heads: i32,
    pub num_kv_heads: i32,
    pub head_dim: i32,
    pub rms_norm_eps: f32,
    pub rope_theta: f32,
    /// Rotate interleaved pairs (GGUF llama layout) instead of halves (HF layout).
    pub rope_traditional: bool,
    pub rope_scaling: RopeScaling,
    /// Leading dimensions of each head that RoPE rotates (`partial_rotary_factor`).
    pub rope_dims: i32,
    /// Softmax scale of attention: `head_dim^-0.5`, or Gemma's `query_pre_attn_scalar^-0.5`.
    pub attn_scale: f32,
    /// Sliding-window attention: the window (positions a query sees, itself included)
    /// and which layers use it; those layers use `rope_local_theta` without scaling.
    pub sliding_window: Option<i32>,
    #[serde(skip)]
    pub sliding_layers: Vec<bool>,
    pub rope_local_theta: Option<f32>,
    /// Gemma 2: attention scores and final logits squashed by `cap * tanh(x / cap)`.
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    /// Norm weights are stored as `w - 1` (Gemma): the norm multiplies by `1 + w`.
    pub norm_plus_one: bool,
    /// Embeddings multiplied by `sqrt(hidden_size)` (rounded to bfloat16, as Gemma does).
    pub scale_embeddings: bool,
    pub activation: Activation,
    pub moe: Option<MoeConfig>,
    /// The language model of a multimodal checkpoint (Gemma 3 4B+): its tensors are
    /// under `language_model.` (see [`text_tensor_name`]); the vision tower is not loaded.
    pub text_of_multimodal: bool,
    pub context_length: u32,
    pub vocab_size: i32,
    #[serde(skip)]
    pub quantization: QuantConfig,
}

fn unsupported_arch(name: &str) -> Error {
    Error::new(
        Code::ModelUnsupportedArch,
        format!(
            "model architecture '{name}' is not supported (supported: {})",
            Arch::SUPPORTED
        ),
    )
}

/// An integer from a model's config, saturated into `i32`: a value out of range becomes
/// `i32::MAX` / `i32::MIN` (and is then refused by the bounds in `validate`), never a
/// wrapped small number that would pass them.
fn sat_i32<T: TryInto<i32> + PartialOrd + Default>(x: T) -> i32 {
    let negative = x < T::default();
    x.try_into()
        .unwrap_or(if negative { i32::MIN } else { i32::MAX })
}

fn sat_u32<T: TryInto<u32>>(x: T) -> u32 {
    x.try_into().unwrap_or(u32::MAX)
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::ModelInvalid, msg)
}

impl ModelConfig {
    /// A Llama-shaped model with heads of `head_dim`: every family trait off, shapes
    /// zero (the constructors fill them in).
    fn plain(head_dim: i32) -> Self {
        ModelConfig {
            arch: Arch::Llama,
            hidden_size: 0,
            intermediate_size: 0,
            num_layers: 0,
            num_heads: 0,
            num_kv_heads: 0,
            head_dim,
            rms_norm_eps: 1e-6,
            rope_theta: 10000.0,
            rope_traditional: false,
            rope_scaling: RopeScaling::None,
            rope_dims: head_dim,
            attn_scale: (head_dim.max(1) as f32).powf(-0.5),
            sliding_window: None,
            sliding_layers: Vec::new(),
            rope_local_theta: None,
            attn_softcap: None,
            final_softcap: None,
            norm_plus_one: false,
            scale_embeddings: false,
            activation: Activation::Silu,
            moe: None,
            text_of_multimodal: false,
            context_length: 4096,
            vocab_size: 0,
            quantization: QuantConfig::default(),
        }
    }

    /// Check the shapes hang together; called by both constructors.
    fn validate(self) -> Result<Self> {
        let pos = |v: i32, what: &str| {
            if v <= 0 {
                Err(invalid(format!("config has {what} = {v}")))
            } else {
                Ok(())
            }
        };
        // Upper bounds far above any real model (the largest open models have ~16k
        // hidden, ~130 layers, 128 heads, 256k vocabularies): a config past them is a
        // lie that would make us size buffers from it.
        let at_most = |v: i64, max: i64, what: &str| {
            if v > max {
                Err(invalid(format!(
                    "config has {what} = {v}; at most {max} is accepted"
                )))
            } else {
                Ok(())
            }
        };
        at_most(self.hidden_size.into(), 1 << 17, "hidden_size")?;
        at_most(self.intermediate_size.into(), 1 << 19, "intermediate_size")?;
        at_most(self.num_layers.into(), 1024, "num_hidden_layers")?;
        at_most(self.num_heads.into(), 1024, "num_attention_heads")?;
        at_most(self.head_dim.into(), 4096, "head_dim")?;
        at_most(self.vocab_size.into(), 1 << 22, "vocab_size")?;
        at_most(
            self.context_length.into(),
            1 << 24,
            "max_position_embeddings",
        )?;
        pos(self.hidden_size, "hidden_size")?;
        pos(self.intermediate_size, "intermediate_size")?;
        pos(self.num_layers, "num_hidden_layers")?;
        pos(self.num_heads, "num_attention_heads")?;
        pos(self.num_kv_heads, "num_key_value_heads")?;
        pos(self.head_dim, "head_dim")?;
        pos(self.vocab_size, "vocab_size")?;
        // Products the engine sizes buffers with must not overflow.
        let q = i64::from(self.num_heads) * i64::from(self.head_dim);
        at_most(q, 1 << 20, "num_attention_heads × head_dim")?;
        if self.num_kv_heads > self.num_heads {
            return Err(invalid(format!(
                "{} key/value heads for {} attention heads",
                self.num_kv_heads, self.num_heads
            )));
        }
        if self.num_heads % self.num_kv_heads != 0 {
            return Err(invalid(format!(
                "{} attention heads cannot be grouped over {} key/value heads",
                self.num_heads, self.num_kv_heads
            )));
        }
        if self.head_dim % 2 != 0 {
            return Err(invalid(format!("head_dim {} is odd", self.head_dim)));
        }
        if !(self.rms_norm_eps.is_finite() && self.rms_norm_eps > 0.0) {
            return Err(invalid(format!(
                "rms_norm_eps {} is not positive",
                self.rms_norm_eps
            )));
        }
        if self.rope_dims <= 0 || self.rope_dims > self.head_dim || self.rope_dims % 2 != 0 {
            return Err(invalid(format!(
                "RoPE over {} of {} head dimensions",
                self.rope_dims, self.head_dim
            )));
        }
        if !(self.attn_scale.is_finite() && self.attn_scale > 0.0) {
            return Err(invalid(format!(
                "attention scale {} is not positive",
                self.attn_scale
            )));
        }
        if let Some(w) = self.sliding_window {
            pos(w, "sliding_window")?;
        }
        if let RopeScaling::SuScaled {
            long_factor,
            mscale,
        } = &self.rope_scaling
            && ((!long_factor.is_empty() && long_factor.len() != (self.rope_dims / 2) as usize)
                || long_factor.iter().any(|f| !(f.is_finite() && *f > 0.0))
                || !(mscale.is_finite() && *mscale > 0.0))
        {
            return Err(invalid(format!(
                "LongRoPE needs {} positive long_factor values, the config has {}",
                self.rope_dims / 2,
                long_factor.len()
            )));
        }
        if let RopeScaling::Yarn {
            factor,
            original_max_position_embeddings,
            beta_fast,
            beta_slow,
            mscale,
            mscale_all_dim,
        } = self.rope_scaling
            && !([
                factor,
                original_max_position_embeddings,
                beta_fast,
                beta_slow,
            ]
            .iter()
            .all(|x| x.is_finite() && *x > 0.0)
                && [mscale, mscale_all_dim].iter().all(|x| x.is_finite()))
        {
            return Err(invalid(
                "YaRN rope_scaling needs positive factor, beta_fast, beta_slow and \
                 original_max_position_embeddings",
            ));
        }
        if let Some(m) = &self.moe {
            at_most(m.num_experts.into(), 1024, "num_experts")?;
            at_most(m.expert_size.into(), 1 << 19, "moe_intermediate_size")?;
            pos(m.num_experts, "num_experts")?;
            pos(m.expert_size, "moe_intermediate_size")?;
            if m.experts_per_token <= 0 || m.experts_per_token > m.num_experts {
                return Err(invalid(format!(
                    "{} experts per token of {}",
                    m.experts_per_token, m.num_experts
                )));
            }
            if let Routing::SigmoidGroups {
                n_group,
                topk_group,
                scale,
                ..
            } = m.routing
                && (n_group <= 0
                    || m.num_experts % n_group != 0
                    || m.num_experts / n_group < 2
                    || topk_group <= 0
                    || topk_group > n_group
                    || topk_group * (m.num_experts / n_group) < m.experts_per_token
                    || !scale.is_finite())
            {
                return Err(invalid(format!(
                    "{} experts in {n_group} groups, {topk_group} kept, cannot route {} per token",
                    m.num_experts, m.experts_per_token
                )));
            }
            if let Some(s) = m.shared_size {
                at_most(s.into(), 1 << 19, "shared experts' size")?;
            }
        }
        if !(self.rope_theta.is_finite() && self.rope_theta > 0.0) {
            return Err(invalid(format!(
                "rope_theta {} is not positive",
                self.rope_theta
            )));
        }
        Ok(self)
    }

    /// From a Hugging Face / mlx-lm `config.json`.
    pub fn from_hf(v: &Value) -> Result<Self> {
        if v.get("model_type").and_then(Value::as_str) == Some("gemma3") {
            let mut c = Self::from_hf(&gemma3_text_config(v)?)?;
            c.text_of_multimodal = true;
            return Ok(c);
        }
        let model_type = v
            .get("model_type")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("config.json has no model_type"))?;
        let arch = Arch::parse(model_type).ok_or_else(|| unsupported_arch(model_type))?;
        let int = |k: &str| v.get(k).and_then(Value::as_i64).map(sat_i32);
        let req = |k: &str| int(k).ok_or_else(|| invalid(format!("config.json has no {k}")));
        let hidden_size = req("hidden_size")?;
        let num_heads = req("num_attention_heads")?;
        let head_dim = int("head_dim").unwrap_or(if num_heads > 0 {
            hidden_size / num_heads
        } else {
            0
        });
        // transformers >= 5 moves RoPE settings into `rope_parameters`.
        let rope_params = v.get("rope_parameters").filter(|p| p.is_object());
        let rope_theta = v
            .get("rope_theta")
            .or_else(|| rope_params.and_then(|p| p.get("rope_theta")))
            .and_then(Value::as_f64)
            .unwrap_or(10000.0) as f32;
        let scaling = v
            .get("rope_scaling")
            .filter(|s| s.is_object())
            .or(rope_params);
        let rope_scaling = match scaling {
            // Phi-3's LongRoPE has keys of its own (see `phi3_rope_scaling`).
            Some(s) if arch != Arch::Phi3 => parse_rope_scaling(s)?,
            _ => RopeScaling::None,
        };
        let quantization = match v
            .get("quantization")
            .or_else(|| v.get("quantization_config"))
        {
            Some(q) => parse_quant_config(q)?,
            None => QuantConfig::default(),
        };
        let num_layers = req("num_hidden_layers")?;
        let mut c = ModelConfig {
            arch,
            hidden_size,
            intermediate_size: req("intermediate_size")?,
            num_layers,
            num_heads,
            num_kv_heads: int("num_key_value_heads").unwrap_or(num_heads),
            head_dim,
            rms_norm_eps: v
                .get("rms_norm_eps")
                .and_then(Value::as_f64)
                .unwrap_or(1e-6) as f32,
            rope_theta,
            rope_traditional: v
                .get("rope_traditional")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            rope_scaling,
            context_length: v
                .get("max_position_embeddings")
                .and_then(Value::as_u64)
                .map_or(4096, sat_u32),
            vocab_size: req("vocab_size")?,
            quantization,
            ..ModelConfig::plain(head_dim)
        };
        let float = |k: &str| v.get(k).and_then(Value::as_f64);
        let softcap = |k: &str| -> Result<Option<f32>> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(x) => match x.as_f64() {
                    Some(c) if c.is_finite() && c > 0.0 => Ok(Some(c as f32)),
                    _ => Err(invalid(format!("{k} {x} is not a positive number"))),
                },
            }
        };
        // Mixtral's and gpt-oss's experts: `num_local_experts`, as wide as the MLP.
        let top_k_softmax = |c: &ModelConfig| -> Result<MoeConfig> {
            Ok(MoeConfig {
                num_experts: req("num_local_experts")?,
                experts_per_token: req("num_experts_per_tok")?,
                expert_size: c.intermediate_size,
                routing: Routing::TopKThenSoftmax,
                shared_size: None,
                dense_layers: Vec::new(),
            })
        };
        let partial_rotary = |c: &ModelConfig| {
            (c.head_dim as f64 * float("partial_rotary_factor").unwrap_or(1.0)) as i32
        };
        if matches!(arch, Arch::Gemma2 | Arch::Gemma3) {
            // Defaults of the two families' configurations.
            let (scalar, window, pattern) = if arch == Arch::Gemma2 {
                (144.0, 4096, 2)
            } else {
                (256.0, 512, 6)
            };
            c.norm_plus_one = true;
            c.scale_embeddings = true;
            c.activation = Activation::GeluTanh;
            c.attn_scale = (float("query_pre_attn_scalar").unwrap_or(scalar) as f32).powf(-0.5);
            c.sliding_window = Some(int("sliding_window").unwrap_or(window));
            c.sliding_layers = sliding_layers_of(v, num_layers, pattern)?;
            // Gemma 2's caps; null in Gemma 3's published configs, honoured when set,
            // as transformers does.
            c.attn_softcap = softcap("attn_logit_softcapping")?;
            c.final_softcap = softcap("final_logit_softcapping")?;
        }
        match arch {
            Arch::Gemma3 => {
                // transformers >= 5: one RoPE setting per layer type.
                let per_type =
                    |t: &str| rope_params.and_then(|p| p.get(t)).filter(|p| p.is_object());
                if let Some(full) = per_type("full_attention") {
                    c.rope_theta = full
                        .get("rope_theta")
                        .and_then(Value::as_f64)
                        .unwrap_or(1e6) as f32;
                    c.rope_scaling = parse_rope_scaling(full)?;
                }
                c.rope_local_theta = Some(
                    float("rope_local_base_freq")
                        .or_else(|| per_type("sliding_attention")?.get("rope_theta")?.as_f64())
                        .unwrap_or(10000.0) as f32,
                );
            }
            Arch::Phi3 | Arch::Mixtral => {
                // Both derive the head size from the hidden size, whatever else is stored.
                c.head_dim = if num_heads > 0 {
                    hidden_size / num_heads
                } else {
                    0
                };
                c.attn_scale = (c.head_dim.max(1) as f32).powf(-0.5);
                c.rope_dims = c.head_dim;
                if arch == Arch::Phi3 {
                    c.rope_dims = partial_rotary(&c);
                    c.rope_scaling = phi3_rope_scaling(v)?;
                    // Phi-3 configs default to a 128k context when the key is absent.
                    c.context_length = v
                        .get("max_position_embeddings")
                        .and_then(Value::as_u64)
                        .map_or(131072, sat_u32);
                } else {
                    c.moe = Some(top_k_softmax(&c)?);
                }
            }
            Arch::GptOss => {
                c.activation = Activation::SwigluClamped;
                c.sliding_window = Some(int("sliding_window").unwrap_or(128));
                c.sliding_layers = sliding_layers_of(v, num_layers, 2)?;
                c.moe = Some(top_k_softmax(&c)?);
            }
            Arch::Glm4Moe => {
                c.rope_dims = partial_rotary(&c);
                if v.get("scoring_func")
                    .and_then(Value::as_str)
                    .unwrap_or("sigmoid")
                    != "sigmoid"
                    || v.get("topk_method")
                        .and_then(Value::as_str)
                        .unwrap_or("noaux_tc")
                        != "noaux_tc"
                {
                    return Err(Error::new(
                        Code::ModelUnsupportedArch,
                        format!(
                            "{model_type} routing other than sigmoid noaux_tc is not supported"
                        ),
                    ));
                }
                let expert_size = req("moe_intermediate_size")?;
                let dense = int("first_k_dense_replace")
                    .unwrap_or(0)
                    .clamp(0, num_layers);
                c.moe = Some(MoeConfig {
                    num_experts: req("n_routed_experts")?,
                    experts_per_token: req("num_experts_per_tok")?,
                    expert_size,
                    routing: Routing::SigmoidGroups {
                        n_group: int("n_group").unwrap_or(1),
                        topk_group: int("topk_group").unwrap_or(1),
                        scale: float("routed_scaling_factor").unwrap_or(1.0) as f32,
                        renormalize: v
                            .get("norm_topk_prob")
                            .and_then(Value::as_bool)
                            .unwrap_or(true),
                    },
                    shared_size: int("n_shared_experts")
                        .filter(|n| *n > 0)
                        .map(|n| n.saturating_mul(expert_size)),
                    dense_layers: (0..dense).collect(),
                });
            }
            Arch::Qwen3Moe => {
                let step = int("decoder_sparse_step").unwrap_or(1).max(1);
                let only: Vec<i32> = v
                    .get("mlp_only_layers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_i64).map(sat_i32).collect())
                    .unwrap_or_default();
                c.moe = Some(MoeConfig {
                    num_experts: req("num_experts")?,
                    experts_per_token: req("num_experts_per_tok")?,
                    expert_size: req("moe_intermediate_size")?,
                    routing: Routing::SoftmaxThenTopK {
                        renormalize: v
                            .get("norm_topk_prob")
                            .and_then(Value::as_bool)
                            .unwrap_or(false),
                    },
                    shared_size: None,
                    dense_layers: (0..num_layers)
                        .filter(|i| only.contains(i) || (i + 1) % step != 0)
                        .collect(),
                });
            }
            Arch::Llama | Arch::Mistral | Arch::Qwen2 | Arch::Qwen3 | Arch::Gemma2 => {}
        }
        c.validate()
    }

    /// From GGUF metadata (`{arch}.*` keys, llama.cpp names).
    pub fn from_gguf(h: &GgufHeader) -> Result<Self> {
        let arch_name = h
            .architecture()
            .ok_or_else(|| invalid("GGUF has no general.architecture"))?;
        let arch = Arch::parse_gguf(arch_name).ok_or_else(|| {
            Error::new(
                Code::ModelUnsupportedArch,
                format!(
                    "GGUF model architecture '{arch_name}' is not supported (GGUF: {}; \
                         other families load from an MLX folder: {})",
                    Arch::SUPPORTED_GGUF,
                    Arch::SUPPORTED
                ),
            )
        })?;
        let req = |k: &str| {
            h.arch_u64(k)
                .map(sat_i32)
                .ok_or_else(|| invalid(format!("GGUF has no {arch_name}.{k}")))
        };
        let hidden_size = req("embedding_length")?;
        let num_heads = req("attention.head_count")?;
        // As llama.cpp: the head size from key_length, else n_embd / n_head; RoPE's
        // dimensions from rope.dimension_count, else the whole head.
        let head_dim =
            h.arch_u64("attention.key_length")
                .map(sat_i32)
                .unwrap_or(if num_heads > 0 {
                    hidden_size / num_heads
                } else {
                    0
                });
        let rope_dims = h.arch_u64("rope.dimension_count").map_or(head_dim, sat_i32);
        let vocab_size = h
            .arch_u64("vocab_size")
            .map(sat_i32)
            .or_else(|| {
                h.get("tokenizer.ggml.tokens")
                    .and_then(|t| t.as_array())
                    .map(|a| a.len() as i32)
            })
            .ok_or_else(|| invalid("GGUF has neither a vocab_size nor tokenizer.ggml.tokens"))?;
        let scaling_type = h.str(&format!("{arch_name}.rope.scaling.type"));
        let rope_scaling = match scaling_type {
            None | Some("none") => RopeScaling::None,
            Some("linear") => RopeScaling::Linear {
                factor: h.arch_f64("rope.scaling.factor").unwrap_or(1.0) as f32,
            },
            Some(other) => {
                return Err(Error::new(
                    Code::ModelUnsupportedArch,
                    format!(
                        "RoPE scaling '{other}' is not supported (supported: linear, llama3, yarn)"
                    ),
                ));
            }
        };
        let mut c = ModelConfig {
            arch,
            hidden_size,
            intermediate_size: req("feed_forward_length")?,
            num_layers: req("block_count")?,
            num_heads,
            num_kv_heads: h
                .arch_u64("attention.head_count_kv")
                .map(sat_i32)
                .unwrap_or(num_heads),
            head_dim,
            rms_norm_eps: h
                .arch_f64("attention.layer_norm_rms_epsilon")
                .unwrap_or(1e-5) as f32,
            rope_theta: h.arch_f64("rope.freq_base").unwrap_or(10000.0) as f32,
            // llama.cpp's HF->GGUF converter permutes q/k rows of llama-family models for
            // interleaved ("normal") RoPE; Qwen models keep the halves layout (NEOX).
            rope_traditional: matches!(arch, Arch::Llama | Arch::Mistral),
            rope_scaling,
            rope_dims,
            context_length: h.arch_u64("context_length").map_or(4096, sat_u32),
            vocab_size,
            quantization: QuantConfig::default(),
            ..ModelConfig::plain(head_dim)
        };
        c.gguf_family(h)?;
        c.validate()
    }

    /// What llama.cpp's GGUF files of the Gemma 3, Phi-3 and Qwen3-MoE families say (or
    /// its loader assumes) beyond the shared keys.
    fn gguf_family(&mut self, h: &GgufHeader) -> Result<()> {
        let f = |k: &str| h.arch_f64(k);
        match self.arch {
            Arch::Gemma3 => {
                // The converter stores norm weights already shifted by one.
                self.scale_embeddings = true;
                self.activation = Activation::GeluTanh;
                // llama.cpp's rule (no query scalar in the file): n_embd / n_head for the
                // 62-layer 27B, the head size otherwise.
                let scalar = if self.num_layers == 62 && self.num_heads > 0 {
                    (self.hidden_size / self.num_heads) as f32
                } else {
                    self.head_dim as f32
                };
                self.attn_scale = scalar.max(1.0).powf(-0.5);
                let window = h
                    .arch_u64("attention.sliding_window")
                    .ok_or_else(|| invalid("GGUF gemma3 has no attention.sliding_window"))?;
                self.sliding_window = Some(sat_i32(window));
                let pattern = h
                    .arch_u64("attention.sliding_window_pattern")
                    .map_or(6, |p| p.clamp(1, 1024) as i64);
                self.sliding_layers = sliding_pattern(self.num_layers, pattern);
                self.rope_local_theta = Some(f("rope.freq_base_swa").unwrap_or(10000.0) as f32);
                self.final_softcap = f("final_logit_softcapping").map(|c| c as f32);
                self.attn_softcap = f("attn_logit_softcapping").map(|c| c as f32);
            }
            Arch::Phi3 if h.tensor("rope_factors_long.weight").is_some() => {
                // LongRoPE: the long factors are a tensor the loader reads.
                let original = h
                    .arch_u64("rope.scaling.original_context_length")
                    .unwrap_or(4096) as f64;
                let scale = self.context_length as f64 / original;
                let computed = if scale > 1.0 {
                    (1.0 + scale.ln() / original.ln()).sqrt()
                } else {
                    1.0
                };
                self.rope_scaling = RopeScaling::SuScaled {
                    long_factor: Vec::new(),
                    mscale: f("rope.scaling.attn_factor").unwrap_or(computed) as f32,
                };
            }
            Arch::Qwen3Moe => {
                let req = |k: &str| {
                    h.arch_u64(k)
                        .map(sat_i32)
                        .ok_or_else(|| invalid(format!("GGUF qwen3moe has no {k}")))
                };
                self.moe = Some(MoeConfig {
                    num_experts: req("expert_count")?,
                    experts_per_token: req("expert_used_count")?,
                    expert_size: req("expert_feed_forward_length")?,
                    // llama.cpp's qwen3moe always renormalises the chosen weights.
                    routing: Routing::SoftmaxThenTopK { renormalize: true },
                    shared_size: None,
                    dense_layers: Vec::new(),
                });
            }
            _ => {}
        }
        Ok(())
    }
}

/// The text model of a multimodal Gemma 3 `config.json` (`model_type: gemma3`, the
/// language model's keys in `text_config`) as a `gemma3_text` config, with mlx-lm's
/// defaults for keys the published configs leave out, and the quantization of the text
/// model's modules under their text-model names.
fn gemma3_text_config(v: &Value) -> Result<Value> {
    let mut t = v
        .get("text_config")
        .filter(|t| t.is_object())
        .cloned()
        .ok_or_else(|| invalid("gemma3 config.json has no text_config"))?;
    let defaults = serde_json::json!({
        "hidden_size": 1152, "num_hidden_layers": 26, "intermediate_size": 6912,
        "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 256,
        "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0, "rope_local_base_freq": 10_000.0,
        "query_pre_attn_scalar": 256, "sliding_window": 512, "sliding_window_pattern": 6,
        "max_position_embeddings": 32768,
    });
    let obj = t.as_object_mut().ok_or_else(|| invalid("text_config"))?;
    for (k, d) in defaults.as_object().into_iter().flatten() {
        obj.entry(k.clone()).or_insert_with(|| d.clone());
    }
    obj.insert("model_type".into(), "gemma3_text".into());
    obj.insert(
        "vocab_size".into(),
        v.get("vocab_size").cloned().unwrap_or(262208.into()),
    );
    for key in ["quantization", "quantization_config"] {
        if let Some(Value::Object(q)) = v.get(key) {
            let renamed: serde_json::Map<String, Value> = q
                .iter()
                .filter_map(|(k, x)| match x {
                    Value::Object(_) | Value::Bool(_) => {
                        text_tensor_name(k).map(|n| (n, x.clone()))
                    }
                    _ => Some((k.clone(), x.clone())),
                })
                .collect();
            obj.insert(key.into(), Value::Object(renamed));
        }
    }
    Ok(t)
}

/// A multimodal checkpoint's tensor (or module) name as the text model's, or `None` for
/// the parts a text model does not use (vision tower, projector): `language_model.X` (as
/// mlx-vlm and transformers < 5 save) -> `X`, `model.language_model.X` (transformers 5)
/// -> `model.X`.
pub fn text_tensor_name(name: &str) -> Option<String> {
    if let Some(rest) = name.strip_prefix("language_model.") {
        return Some(rest.to_string());
    }
    if let Some(rest) = name.strip_prefix("model.language_model.") {
        return Some(format!("model.{rest}"));
    }
    if name == "lm_head" || name.starts_with("lm_head.") {
        return Some(name.to_string());
    }
    None
}

/// Which layers slide (Gemma, gpt-oss): `layer_types` (transformers >= 4.53) or, in
/// older configs, every layer but each `sliding_window_pattern`-th (default `pattern`;
/// 2 = every other, from layer 0).
fn sliding_layers_of(v: &Value, num_layers: i32, pattern: i64) -> Result<Vec<bool>> {
    if let Some(types) = v.get("layer_types").and_then(Value::as_array) {
        if types.len() != num_layers.max(0) as usize {
            return Err(invalid(format!(
                "layer_types lists {} layers, the model has {num_layers}",
                types.len()
            )));
        }
        return types
            .iter()
            .map(|t| match t.as_str() {
                Some("sliding_attention") => Ok(true),
                Some("full_attention") => Ok(false),
                other => Err(invalid(format!("unknown layer type {other:?}"))),
            })
            .collect();
    }
    let pattern = v
        .get("sliding_window_pattern")
        .and_then(Value::as_i64)
        .unwrap_or(pattern)
        .max(1);
    Ok(sliding_pattern(num_layers, pattern))
}

/// Every layer slides but each `pattern`-th (which attends globally).
fn sliding_pattern(num_layers: i32, pattern: i64) -> Vec<bool> {
    (0..num_layers as i64)
        .map(|i| (i + 1) % pattern != 0)
        .collect()
}

/// Phi-3's `rope_scaling`: none, linear, or LongRoPE ("longrope"/"su") with per-frequency
/// factors. mlx-lm uses the long factors at every length and scales the rotated part by
/// `sqrt(1 + ln(max / original) / ln(original))` when the context was extended.
fn phi3_rope_scaling(v: &Value) -> Result<RopeScaling> {
    let Some(s) = v.get("rope_scaling").filter(|s| s.is_object()) else {
        return Ok(RopeScaling::None);
    };
    match s
        .get("type")
        .or_else(|| s.get("rope_type"))
        .and_then(Value::as_str)
    {
        Some("longrope" | "su") => {
            let long_factor: Vec<f32> = s
                .get("long_factor")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid("LongRoPE rope_scaling has no long_factor list"))?
                .iter()
                .map(|f| f.as_f64().unwrap_or(f64::NAN) as f32)
                .collect();
            let f = |k: &str, d: f64| v.get(k).and_then(Value::as_f64).unwrap_or(d);
            let original = f("original_max_position_embeddings", 4096.0);
            let factor = f("max_position_embeddings", 131072.0) / original;
            let mscale = if factor <= 1.0 {
                1.0
            } else {
                (1.0 + factor.ln() / original.ln()).sqrt()
            };
            Ok(RopeScaling::SuScaled {
                long_factor,
                mscale: mscale as f32,
            })
        }
        _ => parse_rope_scaling(s),
    }
}

fn parse_rope_scaling(s: &Value) -> Result<RopeScaling> {
    let ty = s
        .get("rope_type")
        .or_else(|| s.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let f = |k: &str, d: f64| s.get(k).and_then(Value::as_f64).unwrap_or(d) as f32;
    Ok(match ty {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: f("factor", 1.0),
        },
        "yarn" => RopeScaling::Yarn {
            factor: f("factor", 1.0),
            original_max_position_embeddings: f("original_max_position_embeddings", 4096.0),
            beta_fast: f("beta_fast", 32.0),
            beta_slow: f("beta_slow", 1.0),
            mscale: f("mscale", 1.0),
            mscale_all_dim: f("mscale_all_dim", 0.0),
        },
        "llama3" => RopeScaling::Llama3 {
            factor: f("factor", 8.0),
            low_freq_factor: f("low_freq_factor", 1.0),
            high_freq_factor: f("high_freq_factor", 4.0),
            original_max_position_embeddings: f("original_max_position_embeddings", 8192.0),
        },
        other => {
            return Err(Error::new(
                Code::ModelUnsupportedArch,
                format!(
                    "RoPE scaling '{other}' is not supported (supported: linear, llama3, yarn)"
                ),
            ));
        }
    })
}

fn parse_spec(v: &Value, what: &str) -> Result<QuantSpec> {
    let unsupported = |msg: String| Error::new(Code::ModelUnsupportedQuant, msg);
    let bits = v.get("bits").and_then(Value::as_i64).map_or(0, sat_i32);
    let group = |d: i32| {
        v.get("group_size")
            .and_then(Value::as_i64)
            .map_or(d, sat_i32)
    };
    match v.get("mode").and_then(Value::as_str).unwrap_or("affine") {
        "affine" => {}
        "mxfp4" => {
            let group_size = group(32);
            if (bits, group_size) != (4, 32) {
                return Err(unsupported(format!(
                    "MXFP4 quantization of {what} with {bits} bits and group size {group_size} \
                     is not supported (MXFP4 is 4 bits in groups of 32)"
                )));
            }
            return Ok(QuantSpec {
                group_size,
                bits,
                mode: QuantMode::Mxfp4,
            });
        }
        mode => {
            return Err(unsupported(format!(
                "quantization mode '{mode}' of {what} is not supported (supported: MLX affine, mxfp4)"
            )));
        }
    }
    let group_size = group(64);
    if ![2, 3, 4, 5, 6, 8].contains(&bits) {
        return Err(unsupported(format!(
            "{bits}-bit quantization of {what} is not supported (MLX affine 2, 3, 4, 5, 6 or 8 bits)"
        )));
    }
    if ![32, 64, 128].contains(&group_size) {
        return Err(unsupported(format!(
            "quantization group size {group_size} of {what} is not supported (32, 64 or 128)"
        )));
    }
    Ok(QuantSpec {
        group_size,
        bits,
        mode: QuantMode::Affine,
    })
}

/// mlx-lm's `quantization` object: `{"group_size", "bits", ["mode"], "<module>": {..} | false}`.
/// Hugging Face `quantization_config` of other methods (GPTQ, AWQ, bitsandbytes…) is refused.
pub fn parse_quant_config(q: &Value) -> Result<QuantConfig> {
    if let Some(method) = q.get("quant_method").and_then(Value::as_str) {
        return Err(Error::new(
            Code::ModelUnsupportedQuant,
            format!("quantization method '{method}' is not supported (supported: MLX affine)"),
        ));
    }
    let obj = q
        .as_object()
        .ok_or_else(|| invalid("config.json quantization is not an object"))?;
    let mut out = QuantConfig::default();
    if obj.contains_key("bits") {
        out.default = Some(parse_spec(q, "the model")?);
    }
    for (k, v) in obj {
        match v {
            Value::Object(_) => {
                out.per_module.insert(k.clone(), Some(parse_spec(v, k)?));
            }
            Value::Bool(false) => {
                out.per_module.insert(k.clone(), None);
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The frequencies MLX's `fast::rope` takes for Llama 3 scaling (`base^(2i/d)`, with
/// low-frequency bands stretched by `factor` and a smooth ramp between), computed as
/// mlx-lm and transformers do. `None` when plain `base` suffices.
/// YaRN's scale of the rotated dimensions (mlx-lm's `yarn_get_mscale` ratio).
pub fn yarn_mscale(factor: f32, mscale: f32, mscale_all_dim: f32) -> f32 {
    let m = |s: f32| {
        if factor <= 1.0 {
            1.0
        } else {
            0.1 * s * factor.ln() + 1.0
        }
    };
    m(mscale) / m(mscale_all_dim)
}

pub fn rope_freqs(cfg: &ModelConfig) -> Option<Vec<f32>> {
    if let RopeScaling::Yarn {
        factor,
        original_max_position_embeddings: original,
        beta_fast,
        beta_slow,
        ..
    } = cfg.rope_scaling
    {
        let dims = cfg.rope_dims as f32;
        let base = cfg.rope_theta;
        let correction = |rotations: f32| {
            (dims * (original / (rotations * 2.0 * std::f32::consts::PI)).ln()) / (2.0 * base.ln())
        };
        let low = correction(beta_fast).floor().max(0.0);
        let mut high = correction(beta_slow).ceil().min(dims - 1.0);
        if low == high {
            high += 0.001;
        }
        return Some(
            (0..cfg.rope_dims / 2)
                .map(|i| {
                    let extra = base.powf((2 * i) as f32 / dims);
                    let inter = factor * extra;
                    let ramp = ((i as f32 - low) / (high - low)).clamp(0.0, 1.0);
                    let mask = 1.0 - ramp;
                    (inter * extra) / (inter * mask + extra * (1.0 - mask))
                })
                .collect(),
        );
    }
    if let RopeScaling::SuScaled { long_factor, .. } = &cfg.rope_scaling {
        let dims = cfg.rope_dims;
        return Some(
            long_factor
                .iter()
                .enumerate()
                .map(|(i, f)| f * cfg.rope_theta.powf((2 * i) as f32 / dims as f32))
                .collect(),
        );
    }
    let RopeScaling::Llama3 {
        factor,
        low_freq_factor,
        high_freq_factor,
        original_max_position_embeddings: old_ctx,
    } = cfg.rope_scaling
    else {
        return None;
    };
    let dims = cfg.rope_dims;
    let low_freq_wavelen = old_ctx / low_freq_factor;
    let high_freq_wavelen = old_ctx / high_freq_factor;
    Some(
        (0..dims)
            .step_by(2)
            .map(|i| {
                let freq = cfg.rope_theta.powf(i as f32 / dims as f32);
                let wavelen = 2.0 * std::f32::consts::PI * freq;
                if wavelen > low_freq_wavelen {
                    freq * factor
                } else if wavelen < high_freq_wavelen {
                    freq
                } else {
                    let smooth = (old_ctx / wavelen - low_freq_factor)
                        / (high_freq_factor - low_freq_factor);
                    freq / ((1.0 - smooth) / factor + smooth)
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smollm() -> Value {
        json!({
            "model_type": "llama", "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "head_dim": 64, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
            "rope_traditional": false, "max_position_embeddings": 8192, "vocab_size": 49152,
            "quantization": {"bits": 4, "group_size": 32, "model.embed_tokens": {"bits": 8, "group_size": 32}}
        })
    }

    #[test]
    fn reads_an_mlx_lm_config_with_mixed_quantization() {
        let c = ModelConfig::from_hf(&smollm()).unwrap();
        assert_eq!(c.arch, Arch::Llama);
        assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim), (9, 3, 64));
        assert_eq!(c.rms_norm_eps, 1e-5);
        assert_eq!(c.context_length, 8192);
        let q = &c.quantization;
        assert_eq!(
            q.for_module("model.layers.0.mlp.up_proj"),
            Some(QuantSpec {
                group_size: 32,
                bits: 4,
                mode: QuantMode::Affine
            })
        );
        assert_eq!(
            q.for_module("model.embed_tokens"),
            Some(QuantSpec {
                group_size: 32,
                bits: 8,
                mode: QuantMode::Affine
            })
        );
    }

    #[test]
    fn unknown_architecture_and_quantization_are_named_in_the_error() {
        let mut v = smollm();
        v["model_type"] = json!("mamba");
        let e = ModelConfig::from_hf(&v).unwrap_err();
        assert_eq!(e.code, Code::ModelUnsupportedArch);
        assert!(e.message.contains("mamba"));

        let mut v = smollm();
        v["quantization"] = json!({"bits": 4, "group_size": 16, "mode": "nvfp4"});
        let e = ModelConfig::from_hf(&v).unwrap_err();
        assert_eq!(e.code, Code::ModelUnsupportedQuant);
        assert!(e.message.contains("nvfp4"));
        v["quantization"] = json!({"bits": 8, "group_size": 32, "mode": "mxfp4"});
        assert_eq!(
            ModelConfig::from_hf(&v).unwrap_err().code,
            Code::ModelUnsupportedQuant
        );

        let mut v = smollm();
        v["quantization_config"] = json!({"quant_method": "gptq", "bits": 4});
        v.as_object_mut().unwrap().remove("quantization");
        let e = ModelConfig::from_hf(&v).unwrap_err();
        assert_eq!(e.code, Code::ModelUnsupportedQuant);
        assert!(e.message.contains("gptq"));

        let mut v = smollm();
        v["rope_scaling"] = json!({"type": "dynamic", "factor": 4.0});
        assert_eq!(
            ModelConfig::from_hf(&v).unwrap_err().code,
            Code::ModelUnsupportedArch
        );
    }

    #[test]
    fn inconsistent_shapes_are_model_invalid() {
        let mut v = smollm();
        v["num_key_value_heads"] = json!(4);
        assert_eq!(
            ModelConfig::from_hf(&v).unwrap_err().code,
            Code::ModelInvalid
        );
        let mut v = smollm();
        v.as_object_mut().unwrap().remove("hidden_size");
        assert_eq!(
            ModelConfig::from_hf(&v).unwrap_err().code,
            Code::ModelInvalid
        );
    }

    #[test]
    fn llama3_rope_frequencies_follow_the_published_formula() {
        let mut v = smollm();
        v["head_dim"] = json!(128);
        v["hidden_size"] = json!(1152);
        v["rope_theta"] = json!(500000.0);
        v["rope_scaling"] = json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let c = ModelConfig::from_hf(&v).unwrap();
        let f = rope_freqs(&c).unwrap();
        assert_eq!(f.len(), 64);
        // Highest frequency (i=0): wavelength 2π < 2048 -> unchanged.
        assert_eq!(f[0], 1.0);
        // Lowest frequencies: wavelength > 8192 -> stretched by the factor.
        let plain = 500000f32.powf(126.0 / 128.0);
        assert!((f[63] - plain * 8.0).abs() / (plain * 8.0) < 1e-5);
        // In between the ramp is monotone.
        assert!(f.windows(2).all(|w| w[1] > w[0]));
        assert!(rope_freqs(&ModelConfig::from_hf(&smollm()).unwrap()).is_none());
    }

    #[test]
    fn family_configs_are_read_and_their_impossible_values_refused() {
        let gemma = json!({
            "model_type": "gemma3_text", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 32, "vocab_size": 100, "query_pre_attn_scalar": 256,
            "sliding_window": 512, "sliding_window_pattern": 3, "rope_local_base_freq": 10000.0,
            "rope_parameters": {"full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1e6}}
        });
        let c = ModelConfig::from_hf(&gemma).unwrap();
        assert_eq!(c.sliding_layers, vec![true, true, false]);
        assert_eq!((c.rope_theta, c.rope_local_theta), (1e6, Some(10000.0)));
        assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 8.0 });
        assert_eq!(c.attn_scale, 1.0 / 16.0);
        assert!(c.norm_plus_one && c.scale_embeddings);
        let mut v = gemma.clone();
        v["layer_types"] = json!(["sliding_attention", "full_attention"]);
        assert_eq!(
            ModelConfig::from_hf(&v).unwrap_err().code,
            Code::ModelInvalid
        );
        let mut v = gemma.clone();
        v["final_logit_softcapping"] = json!(30.0);
        assert_eq!(ModelConfig::from_hf(&v).unwrap().final_softcap, Some(30.0));
        v["attn_logit_softcapping"] = json!(-1.0);
        assert_eq!(
            ModelConfig::from_hf(&v).unwrap_err().code,
            Code::ModelInvalid
        );
        let mut v = gemma.clone();
        v["model_type"] = json!("gemma2");
        v.as_object_mut().unwrap().remove("sliding_window_pattern");
        let c = ModelConfig::from_hf(&v).unwrap();
        assert_eq!(c.sliding_layers, vec![true, false, true]);
        assert_eq!((c.attn_softcap, c.rope_local_theta), (None, None));

        let moe = json!({
            "model_type": "qwen3_moe", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "vocab_size": 100, "num_experts": 8, "num_experts_per_tok": 2,
            "moe_intermediate_size": 32, "decoder_sparse_step": 2, "mlp_only_layers": [3],
            "norm_topk_prob": true
        });
        let m = ModelConfig::from_hf(&moe).unwrap().moe.unwrap();
        assert_eq!(m.dense_layers, vec![0, 2, 3]);
        assert_eq!(m.routing, Routing::SoftmaxThenTopK { renormalize: true });
        for (k, bad) in [
            ("num_experts_per_tok", 9),
            ("num_experts", 0),
            ("num_experts", 100_000),
        ] {
            let mut v = moe.clone();
            v[k] = json!(bad);
            assert_eq!(
                ModelConfig::from_hf(&v).unwrap_err().code,
                Code::ModelInvalid,
                "{k} {bad}"
            );
        }

        let oss = json!({
            "model_type": "gpt_oss", "hidden_size": 64, "intermediate_size": 64,
            "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 16, "vocab_size": 100, "num_local_experts": 4, "num_experts_per_tok": 2,
            "sliding_window": 128, "rope_theta": 150000,
            "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0,
                             "beta_slow": 1.0, "original_max_position_embeddings": 4096}
        });
        let c = ModelConfig::from_hf(&oss).unwrap();
        assert_eq!(c.sliding_layers, vec![true, false, true, false]);
        assert_eq!(c.activation, Activation::SwigluClamped);
        assert!((yarn_mscale(32.0, 1.0, 0.0) - (0.1 * 32f32.ln() + 1.0)).abs() < 1e-6);
        let f = rope_freqs(&c).unwrap();
        // Fast-rotating dimensions keep their frequency, slow ones are interpolated.
        assert_eq!(f[0], 1.0);
        let last = 150000f32.powf(14.0 / 16.0);
        assert!((f[7] - last * 32.0).abs() / (last * 32.0) < 1e-5, "{f:?}");
        let mut v = oss.clone();
        v["rope_scaling"]["factor"] = json!(-2.0);
        assert_eq!(
            ModelConfig::from_hf(&v).unwrap_err().code,
            Code::ModelInvalid
        );

        let phi = json!({
            "model_type": "phi3", "hidden_size": 64, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100,
            "partial_rotary_factor": 0.75, "max_position_embeddings": 131072,
            "original_max_position_embeddings": 4096,
            "rope_scaling": {"type": "longrope", "long_factor": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                             "short_factor": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]}
        });
        let c = ModelConfig::from_hf(&phi).unwrap();
        assert_eq!((c.head_dim, c.rope_dims), (16, 12));
        let RopeScaling::SuScaled { mscale, .. } = c.rope_scaling else {
            panic!("{:?}", c.rope_scaling)
        };
        assert!((mscale - (1.0f32 + 32f32.ln() / 4096f32.ln()).sqrt()).abs() < 1e-6);
        let mut v = phi.clone();
        v["rope_scaling"]["long_factor"] = json!([1.0, 2.0]);
        assert_eq!(
            ModelConfig::from_hf(&v).unwrap_err().code,
            Code::ModelInvalid
        );
    }
}
