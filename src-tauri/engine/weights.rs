//! From files to a [`Transformer`]: GGUF through MLX's GGUF loader, model folders
//! through MLX's safetensors loader (single file or sharded with an index), both
//! renamed to Hugging Face tensor names and assembled by one builder.
//!
//! Everything a file claims is checked before MLX reads it (GGUF header in `gguf.rs`,
//! safetensors headers here): missing, truncated or inconsistent files are
//! `model_invalid`, unknown tensor types `model_unsupported_quant`.

use super::config::{
    Arch, ModelConfig, MoeConfig, QuantMode, QuantSpec, RopeScaling, rope_freqs, yarn_mscale,
};
use super::gguf::GgufHeader;
use super::model::{
    Attention, Block, Embedding, Ffn, Linear, Mlp, Moe, Packed, Rope, SwitchLinear, Transformer,
};
use crate::error::{Code, Error, Result};
use mlx_rs::{Array, Dtype, ops};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::ModelInvalid, msg)
}

fn mlx_err(what: &str) -> impl FnOnce(mlx_rs::error::Exception) -> Error + '_ {
    move |e| Error::new(Code::Engine, format!("{what}: {e}"))
}

/// One tensor as a safetensors header describes it.
#[derive(Debug, Clone)]
pub struct StTensor {
    pub dtype: String,
    pub shape: Vec<u64>,
}

/// Read and check a `.safetensors` header: size fields, JSON, and every tensor's byte
/// range inside the file.
pub fn read_safetensors_header(path: &Path) -> Result<BTreeMap<String, StTensor>> {
    let f = std::fs::File::open(path)
        .map_err(|e| invalid(format!("cannot open {}: {e}", path.display())))?;
    let size = f.metadata().map(|m| m.len()).unwrap_or(0);
    safetensors_header_from(f, size, path)
}

/// [`read_safetensors_header`] over bytes in memory (the fuzz target's entry point).
pub fn parse_safetensors_header_bytes(bytes: &[u8]) -> Result<BTreeMap<String, StTensor>> {
    safetensors_header_from(bytes, bytes.len() as u64, Path::new("<memory>"))
}

fn safetensors_header_from(
    mut f: impl std::io::Read,
    size: u64,
    path: &Path,
) -> Result<BTreeMap<String, StTensor>> {
    let bad = |m: &str| {
        invalid(format!(
            "{} is not a valid safetensors file: {m}",
            path.display()
        ))
    };
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| bad("the file is truncated"))?;
    let n = u64::from_le_bytes(n);
    if n > size.saturating_sub(8) || n > 256 << 20 {
        return Err(bad("its header length exceeds the file"));
    }
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf)
        .map_err(|_| bad("the file is truncated"))?;
    let doc: serde_json::Map<String, Value> =
        serde_json::from_slice(&buf).map_err(|_| bad("its header is not JSON"))?;
    let data_len = size - 8 - n;
    let mut out = BTreeMap::new();
    for (name, t) in doc {
        if name == "__metadata__" {
            continue;
        }
        let dtype = t
            .get("dtype")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let shape: Vec<u64> = t
            .get("shape")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let offs: Vec<u64> = t
            .get("data_offsets")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        if offs.len() != 2 || offs[0] > offs[1] || offs[1] > data_len {
            return Err(bad(&format!(
                "tensor {name} lies outside the file (is it truncated?)"
            )));
        }
        // The shape must account for exactly the bytes the tensor spans: MLX sizes its
        // buffers from the shape, so a lying shape would make it allocate what the file
        // does not hold.
        let width = match dtype.as_str() {
            "BOOL" | "U8" | "I8" | "F8_E4M3" | "F8_E5M2" => 1,
            "F16" | "BF16" | "I16" | "U16" => 2,
            "F32" | "I32" | "U32" => 4,
            "F64" | "I64" | "U64" => 8,
            other => {
                return Err(bad(&format!(
                    "tensor {name} has an unknown dtype {other:?}"
                )));
            }
        };
        let bytes = shape
            .iter()
            .try_fold(width, |acc: u64, &d| acc.checked_mul(d));
        if shape.len() > 8 || bytes != Some(offs[1] - offs[0]) {
            return Err(bad(&format!(
                "tensor {name}'s shape {shape:?} ({dtype}) does not match its {} bytes",
                offs[1] - offs[0]
            )));
        }
        out.insert(name, StTensor { dtype, shape });
    }
    Ok(out)
}

/// The safetensors files of a model folder: the index's shards, else every
/// `*.safetensors` file.
pub fn safetensors_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let index = dir.join("model.safetensors.index.json");
    let mut files: Vec<PathBuf> = if index.is_file() {
        let v = super::tokenizer::read_json_opt(&index)?.unwrap_or(Value::Null);
        let map = v
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| invalid(format!("{} has no weight_map", index.display())))?;
        let mut names: Vec<&str> = map.values().filter_map(Value::as_str).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .map(|n| {
                if n.contains('/') || n.contains('\\') || n.starts_with('.') {
                    Err(invalid(format!(
                        "the index names an unsafe shard path {n:?}"
                    )))
                } else {
                    Ok(dir.join(n))
                }
            })
            .collect::<Result<_>>()?
    } else {
        let rd = std::fs::read_dir(dir)
            .map_err(|e| invalid(format!("cannot read {}: {e}", dir.display())))?;
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
            .collect();
        v.sort();
        v
    };
    if files.is_empty() {
        return Err(invalid(format!(
            "{} has no *.safetensors weights",
            dir.display()
        )));
    }
    for f in &files {
        if !f.is_file() {
            return Err(invalid(format!("weight shard {} is missing", f.display())));
        }
    }
    files.dedup();
    Ok(files)
}

/// GGUF tensor name -> Hugging Face name (`blk.3.attn_q.scales` ->
/// `model.layers.3.self_attn.q_proj.scales`), llama.cpp's names per family (Gemma's
/// `ffn_norm` is its pre-feed-forward norm, Phi-3's `ffn_up` the fused gate and up).
/// Unknown names are kept as they are.
pub fn gguf_to_hf_name(arch: Arch, name: &str) -> String {
    let parts: Vec<&str> = name.splitn(4, '.').collect();
    if parts.len() == 4 && parts[0] == "blk" {
        let module = match (arch, parts[2]) {
            (Arch::Gemma3, "post_attention_norm") => "post_attention_layernorm",
            (Arch::Gemma3, "ffn_norm") => "pre_feedforward_layernorm",
            (Arch::Gemma3, "post_ffw_norm") => "post_feedforward_layernorm",
            (Arch::Phi3, "ffn_up") => "mlp.gate_up_proj",
            (_, other) => match other {
                "attn_q" => "self_attn.q_proj",
                "attn_k" => "self_attn.k_proj",
                "attn_v" => "self_attn.v_proj",
                "attn_output" => "self_attn.o_proj",
                "attn_q_norm" => "self_attn.q_norm",
                "attn_k_norm" => "self_attn.k_norm",
                "ffn_gate" => "mlp.gate_proj",
                "ffn_up" => "mlp.up_proj",
                "ffn_down" => "mlp.down_proj",
                "attn_norm" => "input_layernorm",
                "ffn_norm" => "post_attention_layernorm",
                "attn_qkv" => "self_attn.qkv_proj",
                "ffn_gate_inp" => "mlp.gate",
                "ffn_gate_exps" => "mlp.switch_mlp.gate_proj",
                "ffn_up_exps" => "mlp.switch_mlp.up_proj",
                "ffn_down_exps" => "mlp.switch_mlp.down_proj",
                _ => return name.to_string(),
            },
        };
        return format!("model.layers.{}.{module}.{}", parts[1], parts[3]);
    }
    let (head, leaf) = name.split_once('.').unwrap_or((name, ""));
    let module = match head {
        "token_embd" => "model.embed_tokens",
        "output_norm" => "model.norm",
        "output" => "lm_head",
        _ => return name.to_string(),
    };
    format!("{module}.{leaf}")
}

/// Where a layer's MoE block, its router and its stacked experts live in each family's
/// names.
fn moe_names(p: &str, arch: Arch) -> (String, &'static str, &'static str) {
    match arch {
        Arch::Mixtral => (format!("{p}.block_sparse_moe"), "gate", "switch_mlp"),
        Arch::GptOss => (format!("{p}.mlp"), "router", "experts"),
        _ => (format!("{p}.mlp"), "gate", "switch_mlp"),
    }
}

/// Where the quantization parameters of a module come from.
enum QuantSource<'a> {
    /// A model folder's `quantization` config.
    Config(&'a super::config::QuantConfig),
    /// GGUF: MLX unpacks every GGML block format with group size 32; bits follow from shapes.
    Gguf,
}

struct Builder<'a> {
    tensors: HashMap<String, Array>,
    quant: QuantSource<'a>,
    /// Convert unquantized float weights to this dtype (float32 on the CPU).
    float_dtype: Option<Dtype>,
    /// Streams the big products are split over (`[None]` = no split).
    streams: Vec<Option<mlx_rs::Stream>>,
}

/// Products smaller than this (in × out) stay whole: below it the cross-stream
/// synchronisation costs more than the second core saves.
const SPLIT_MIN_MACS: i64 = 256 * 1024;

impl Builder<'_> {
    fn take(&mut self, name: &str) -> Result<Array> {
        let a = self
            .tensors
            .remove(name)
            .ok_or_else(|| invalid(format!("the model has no tensor {name}")))?;
        self.float(a)
    }

    fn take_opt(&mut self, name: &str) -> Result<Option<Array>> {
        match self.tensors.remove(name) {
            Some(a) => Ok(Some(self.float(a)?)),
            None => Ok(None),
        }
    }

    fn float(&self, a: Array) -> Result<Array> {
        match self.float_dtype {
            Some(dt)
                if a.dtype() != dt
                    && matches!(a.dtype(), Dtype::Float16 | Dtype::Bfloat16 | Dtype::Float32) =>
            {
                a.as_dtype(dt).map_err(mlx_err("converting weights"))
            }
            _ => Ok(a),
        }
    }

    fn linear(&mut self, module: &str) -> Result<Linear> {
        if !self.tensors.contains_key(&format!("{module}.scales")) {
            return Ok(Linear::Dense {
                weight: self.take(&format!("{module}.weight"))?,
                bias: self.take_opt(&format!("{module}.bias"))?,
            });
        }
        Ok(Linear::Quantized {
            packed: self.quantized(module, 2)?,
            bias: self.take_opt(&format!("{module}.bias"))?,
        })
    }

    /// A quantized module's packed weight, scales and (affine) biases, checked against
    /// its quantization: `ndim` 2 for a linear, 3 for stacked experts.
    fn quantized(&mut self, module: &str, ndim: usize) -> Result<Packed> {
        let mut take = |part: &str| {
            self.tensors
                .remove(&format!("{module}.{part}"))
                .ok_or_else(|| invalid(format!("the model has no tensor {module}.{part}")))
        };
        let (weight, scales) = (take("weight")?, take("scales")?);
        let biases = self.tensors.remove(&format!("{module}.biases"));
        if weight.dtype() != Dtype::Uint32 || weight.ndim() != ndim || scales.ndim() != ndim {
            return Err(invalid(format!(
                "{module} has an unexpected quantized layout"
            )));
        }
        let spec = match &self.quant {
            QuantSource::Config(q) => q.for_module(module).ok_or_else(|| {
                invalid(format!(
                    "{module} is quantized but config.json has no quantization for it"
                ))
            })?,
            QuantSource::Gguf => {
                let group_size = 32;
                let in_features = scales.shape()[ndim - 1] * group_size;
                QuantSpec {
                    group_size,
                    bits: if in_features > 0 {
                        weight.shape()[ndim - 1] * 32 / in_features
                    } else {
                        0
                    },
                    mode: QuantMode::Affine,
                }
            }
        };
        let biases_ok = match (spec.mode, &biases) {
            (QuantMode::Affine, Some(b)) => b.shape() == scales.shape(),
            (QuantMode::Affine, None) => {
                return Err(Error::new(
                    Code::ModelUnsupportedQuant,
                    format!("{module} is quantized without biases, as no supported mode is"),
                ));
            }
            (QuantMode::Mxfp4, b) => b.is_none() && scales.dtype() == Dtype::Uint8,
        };
        let last = ndim - 1;
        let lead_ok = (0..last).all(|d| weight.shape()[d] == scales.shape()[d]);
        if !biases_ok
            || !lead_ok
            || weight.shape()[last] * 32 != scales.shape()[last] * spec.group_size * spec.bits
        {
            return Err(invalid(format!(
                "{module}: weight {:?} and scales {:?} do not match {} {}-bit quantization with group size {}",
                weight.shape(),
                scales.shape(),
                spec.mode.as_str(),
                spec.bits,
                spec.group_size
            )));
        }
        Ok(Packed {
            weight,
            scales,
            biases,
            group_size: spec.group_size,
            bits: spec.bits,
            mode: spec.mode,
        })
    }

    /// A norm's weight; Gemma stores `w - 1` and multiplies by `1 + w`, added here once.
    fn norm(&mut self, name: &str, c: &ModelConfig) -> Result<Array> {
        let w = self.take(name)?;
        self.plus_one(w, c)
    }

    fn norm_opt(&mut self, name: &str, c: &ModelConfig) -> Result<Option<Array>> {
        match self.take_opt(name)? {
            Some(w) => Ok(Some(self.plus_one(w, c)?)),
            None => Ok(None),
        }
    }

    fn plus_one(&self, w: Array, c: &ModelConfig) -> Result<Array> {
        if !c.norm_plus_one {
            return Ok(w);
        }
        ops::add(&w, Array::from_f32(1.0))
            .and_then(|a| a.as_dtype(w.dtype()))
            .map_err(mlx_err("norm weights"))
    }

    /// q, k and v projections: separate, or Phi-3's fused `qkv_proj` cut by rows.
    fn qkv(&mut self, p: &str, c: &ModelConfig) -> Result<(Linear, Linear, Linear)> {
        let fused = format!("{p}.self_attn.qkv_proj");
        if !self.tensors.contains_key(&format!("{fused}.weight")) {
            return Ok((
                self.linear(&format!("{p}.self_attn.q_proj"))?,
                self.linear(&format!("{p}.self_attn.k_proj"))?,
                self.linear(&format!("{p}.self_attn.v_proj"))?,
            ));
        }
        let qkv = self.linear(&fused)?;
        let (q, kv) = (c.num_heads * c.head_dim, c.num_kv_heads * c.head_dim);
        if qkv.out_features() != q + 2 * kv {
            return Err(invalid(format!(
                "{fused} has {} outputs, the config implies {}",
                qkv.out_features(),
                q + 2 * kv
            )));
        }
        let cut = |a, b| qkv.rows(a, b).map_err(mlx_err("cutting qkv_proj"));
        Ok((cut(0, q)?, cut(q, q + kv)?, cut(q + kv, q + 2 * kv)?))
    }

    /// A dense MLP: separate gate and up projections or Phi-3's fused `gate_up_proj`.
    fn mlp(&mut self, p: &str) -> Result<Mlp> {
        let fused = format!("{p}.gate_up_proj");
        let (gate, up) = if self.tensors.contains_key(&format!("{fused}.weight")) {
            let gu = self.linear(&fused)?;
            let n = gu.out_features();
            if n % 2 != 0 {
                return Err(invalid(format!(
                    "{fused} has an odd number of outputs ({n})"
                )));
            }
            let cut = |a, b| gu.rows(a, b).map_err(mlx_err("cutting gate_up_proj"));
            (cut(0, n / 2)?, cut(n / 2, n)?)
        } else {
            (
                self.linear(&format!("{p}.gate_proj"))?,
                self.linear(&format!("{p}.up_proj"))?,
            )
        };
        let down = self.linear(&format!("{p}.down_proj"))?;
        Ok(Mlp {
            gate_proj: self.split(gate)?,
            up_proj: self.split(up)?,
            down_proj: self.split(down)?,
        })
    }

    /// A mixture-of-experts block: the router and the experts' stacked projections
    /// (mlx-lm's `switch_mlp`), stacked here from per-expert tensors when the folder
    /// holds Hugging Face's layout.
    fn moe(&mut self, p: &str, c: &ModelConfig, m: &MoeConfig) -> Result<Moe> {
        let (block, router_name, experts_name) = moe_names(p, c.arch);
        let router = self.linear(&format!("{block}.{router_name}"))?;
        if router.out_features() != m.num_experts || router.in_features() != c.hidden_size {
            return Err(invalid(format!(
                "{block}.{router_name} is {}x{}, the config implies {}x{}",
                router.out_features(),
                router.in_features(),
                m.num_experts,
                c.hidden_size
            )));
        }
        // Hugging Face names of the three projections per expert.
        let hf = match c.arch {
            Arch::Mixtral => ["w1", "w3", "w2"],
            _ => ["gate_proj", "up_proj", "down_proj"],
        };
        let mut proj = Vec::with_capacity(3);
        for (name, hf_name) in ["gate_proj", "up_proj", "down_proj"].into_iter().zip(hf) {
            let module = format!("{block}.{experts_name}.{name}");
            if !self.tensors.contains_key(&format!("{module}.weight")) {
                self.stack_experts(&module, &format!("{block}.experts"), hf_name, m.num_experts)?;
            }
            proj.push(self.switch_linear(&module)?);
        }
        let [gate_proj, up_proj, down_proj]: [SwitchLinear; 3] =
            proj.try_into().map_err(|_| invalid("experts"))?;
        let shapes = [
            (&gate_proj, m.expert_size, c.hidden_size, "gate_proj"),
            (&up_proj, m.expert_size, c.hidden_size, "up_proj"),
            (&down_proj, c.hidden_size, m.expert_size, "down_proj"),
        ];
        for (s, out, inp, what) in shapes {
            if (s.experts(), s.out_features(), s.in_features()) != (m.num_experts, out, inp) {
                return Err(invalid(format!(
                    "{block} experts' {what} is {}x{}x{}, the config implies {}x{out}x{inp}",
                    s.experts(),
                    s.out_features(),
                    s.in_features(),
                    m.num_experts
                )));
            }
        }
        let correction = self.take_opt(&format!("{block}.gate.e_score_correction_bias"))?;
        if correction
            .as_ref()
            .is_some_and(|b| b.shape() != [m.num_experts])
        {
            return Err(invalid(format!(
                "{block}.gate.e_score_correction_bias is not one per expert"
            )));
        }
        let shared = match m.shared_size {
            Some(size) => {
                let mlp = self.mlp(&format!("{block}.shared_experts"))?;
                if mlp.gate_proj.out_features() != size {
                    return Err(invalid(format!(
                        "{block}.shared_experts is {} wide, the config implies {size}",
                        mlp.gate_proj.out_features()
                    )));
                }
                Some(mlp)
            }
            None => None,
        };
        Ok(Moe {
            router,
            correction,
            gate_proj,
            up_proj,
            down_proj,
            shared,
        })
    }

    /// Whether layer `p` has a router (GGUF files of a MoE family mark their dense
    /// layers only by its absence).
    fn has_router(&self, p: &str, c: &ModelConfig) -> bool {
        let (block, router, _) = moe_names(p, c.arch);
        self.tensors
            .contains_key(&format!("{block}.{router}.weight"))
    }

    /// `{experts}.{e}.{hf_name}.{weight,scales,biases}` for every expert, stacked into
    /// `{module}.*` (what mlx-lm's `sanitize` does for Hugging Face checkpoints).
    fn stack_experts(&mut self, module: &str, experts: &str, hf_name: &str, n: i32) -> Result<()> {
        for part in ["weight", "scales", "biases"] {
            let first = format!("{experts}.0.{hf_name}.{part}");
            if !self.tensors.contains_key(&first) {
                if part == "weight" {
                    return Err(invalid(format!(
                        "the model has neither {module}.weight nor {first}"
                    )));
                }
                continue;
            }
            let mut each = Vec::with_capacity(n as usize);
            for e in 0..n {
                let name = format!("{experts}.{e}.{hf_name}.{part}");
                each.push(
                    self.tensors
                        .remove(&name)
                        .ok_or_else(|| invalid(format!("the model has no tensor {name}")))?,
                );
            }
            let stacked = ops::stack(&each, 0).map_err(mlx_err("stacking experts"))?;
            self.tensors.insert(format!("{module}.{part}"), stacked);
        }
        Ok(())
    }

    /// The experts' stacked projection `{module}.*`, quantized per the config or dense,
    /// with per-expert output biases `{module}.bias` where present.
    fn switch_linear(&mut self, module: &str) -> Result<SwitchLinear> {
        let bias = self.take_opt(&format!("{module}.bias"))?;
        if !self.tensors.contains_key(&format!("{module}.scales")) {
            let weight = self.take(&format!("{module}.weight"))?;
            if weight.ndim() != 3 {
                return Err(invalid(format!(
                    "{module}.weight is not [experts, out, in]"
                )));
            }
            return Ok(SwitchLinear::Dense { weight, bias });
        }
        let packed = self.quantized(module, 3)?;
        let w = &packed.weight;
        if bias
            .as_ref()
            .is_some_and(|b| b.shape() != [w.dim(0), w.dim(1)])
        {
            return Err(invalid(format!("{module}.bias is not [experts, out]")));
        }
        Ok(SwitchLinear::Quantized { packed, bias })
    }

    /// Split a big product over the streams (see `Linear::Split`).
    fn split(&self, lin: Linear) -> Result<Linear> {
        if self.streams.len() < 2
            || (lin.in_features() as i64) * (lin.out_features() as i64) < SPLIT_MIN_MACS
        {
            return Ok(lin);
        }
        lin.split_rows(&self.streams)
            .map_err(mlx_err("splitting weights"))
    }

    fn build(
        mut self,
        config: ModelConfig,
        gguf_rope_factors: Option<Vec<f32>>,
    ) -> Result<Transformer> {
        let c = &config;
        let embed = Embedding(self.linear("model.embed_tokens")?);
        let (rows, width) = (embed.0.out_features(), embed.0.in_features());
        if width != c.hidden_size || rows == 0 {
            return Err(invalid(format!(
                "the token embedding is {rows}x{width}, the config says hidden size {}",
                c.hidden_size
            )));
        }
        let mut layers = Vec::with_capacity(c.num_layers as usize);
        for i in 0..c.num_layers {
            let p = format!("model.layers.{i}");
            let (q_proj, k_proj, v_proj) = self.qkv(&p, c)?;
            let o_proj = self.linear(&format!("{p}.self_attn.o_proj"))?;
            let attn = Attention {
                q_proj: self.split(q_proj)?,
                k_proj: self.split(k_proj)?,
                v_proj: self.split(v_proj)?,
                o_proj: self.split(o_proj)?,
                q_norm: self.norm_opt(&format!("{p}.self_attn.q_norm.weight"), c)?,
                k_norm: self.norm_opt(&format!("{p}.self_attn.k_norm.weight"), c)?,
                sinks: self.take_opt(&format!("{p}.self_attn.sinks"))?,
            };
            if attn
                .sinks
                .as_ref()
                .is_some_and(|s| s.shape() != [c.num_heads])
            {
                return Err(invalid(format!(
                    "layer {i} has attention sinks that are not one per head"
                )));
            }
            let expect = [
                (
                    attn.q_proj.out_features(),
                    c.num_heads * c.head_dim,
                    "q_proj",
                ),
                (
                    attn.k_proj.out_features(),
                    c.num_kv_heads * c.head_dim,
                    "k_proj",
                ),
                (
                    attn.v_proj.out_features(),
                    c.num_kv_heads * c.head_dim,
                    "v_proj",
                ),
            ];
            for (got, want, what) in expect {
                if got != want {
                    return Err(invalid(format!(
                        "layer {i} {what} has {got} outputs, the config implies {want}"
                    )));
                }
            }
            let ffn = match &c.moe {
                Some(m) if !m.dense_layers.contains(&i) && self.has_router(&p, c) => {
                    Ffn::Moe(Box::new(self.moe(&p, c, m)?))
                }
                _ => Ffn::Dense(self.mlp(&format!("{p}.mlp"))?),
            };
            let gemma = matches!(c.arch, Arch::Gemma2 | Arch::Gemma3);
            let (pre_ffn, attn_out, ffn_out) = if gemma {
                (
                    "pre_feedforward_layernorm",
                    Some("post_attention_layernorm"),
                    Some("post_feedforward_layernorm"),
                )
            } else {
                ("post_attention_layernorm", None, None)
            };
            let norm_at = |b: &mut Self, name: &str| b.norm(&format!("{p}.{name}.weight"), c);
            layers.push(Block {
                attn,
                ffn,
                input_norm: norm_at(&mut self, "input_layernorm")?,
                pre_ffn_norm: norm_at(&mut self, pre_ffn)?,
                attn_out_norm: attn_out.map(|n| norm_at(&mut self, n)).transpose()?,
                ffn_out_norm: ffn_out.map(|n| norm_at(&mut self, n)).transpose()?,
                sliding: c.sliding_layers.get(i as usize).copied().unwrap_or(false),
            });
        }
        let norm = self.norm("model.norm.weight", c)?;
        let head_tied = !self.tensors.contains_key("lm_head.weight");
        let lm_head = if head_tied {
            // Tied: the head is the embedding matrix; split views of it when splitting pays.
            let view = embed.0.clone();
            match self.split(view)? {
                split @ Linear::Split { .. } => Some(split),
                _ => None,
            }
        } else {
            let head = self.linear("lm_head")?;
            Some(self.split(head)?)
        };
        let freqs = match (gguf_rope_factors, rope_freqs(c)) {
            (Some(factors), _) => {
                if factors.len() != (c.rope_dims / 2) as usize {
                    return Err(invalid(format!(
                        "the file has {} RoPE factors for {} frequencies",
                        factors.len(),
                        c.rope_dims / 2
                    )));
                }
                Some(
                    (0..c.rope_dims / 2)
                        .map(|i| {
                            c.rope_theta.powf(2.0 * i as f32 / c.rope_dims as f32)
                                * factors[i as usize]
                        })
                        .collect::<Vec<f32>>(),
                )
            }
            (None, Some(f)) if f.is_empty() => {
                return Err(invalid("LongRoPE factors are missing from the file"));
            }
            (None, f) => f,
        };
        let scale = match c.rope_scaling {
            RopeScaling::Linear { factor } if factor > 0.0 => 1.0 / factor,
            _ => 1.0,
        };
        let rope = Rope {
            dims: c.rope_dims,
            traditional: c.rope_traditional,
            base: c.rope_theta,
            scale,
            freqs: freqs.map(|f| Array::from_slice(&f, &[f.len() as i32])),
            pre_scale: match c.rope_scaling {
                RopeScaling::SuScaled { mscale, .. } if mscale != 1.0 => Some(mscale),
                RopeScaling::Yarn {
                    factor,
                    mscale,
                    mscale_all_dim,
                    ..
                } => Some(yarn_mscale(factor, mscale, mscale_all_dim)).filter(|m| *m != 1.0),
                _ => None,
            },
        };
        // Gemma 3's sliding layers: their own base, no scaling.
        let local_rope = c.rope_local_theta.map(|base| Rope {
            dims: c.rope_dims,
            traditional: c.rope_traditional,
            base,
            scale: 1.0,
            freqs: None,
            pre_scale: None,
        });
        // Gemma multiplies by sqrt(hidden); Gemma 3 (in mlx-lm as in transformers) as a
        // bfloat16 constant.
        let embed_scale = c.scale_embeddings.then(|| {
            let s = (c.hidden_size as f32).sqrt();
            match c.arch {
                Arch::Gemma3 => half::bf16::from_f32(s).to_f32(),
                _ => s,
            }
        });
        Ok(Transformer {
            config,
            embed,
            layers,
            norm,
            lm_head,
            rope,
            local_rope,
            embed_scale,
            activation_dtype: self.float_dtype.unwrap_or(Dtype::Float32),
            head_tied,
        })
    }
}

/// True when MLX computes on the CPU (Linux; or forced): use float32 activations.
pub fn on_cpu() -> bool {
    mlx_rs::Device::try_default()
        .and_then(|d| d.get_type())
        .map(|t| matches!(t, mlx_rs::DeviceType::Cpu))
        .unwrap_or(true)
}

/// Load a GGUF file's tensors with MLX and build the model.
/// The streams big products are split over: the caller's plus `n - 1` new CPU streams
/// (each MLX CPU stream has its own thread). Only on the CPU; `n <= 1` = no split.
pub fn compute_streams(n: usize) -> Vec<Option<mlx_rs::Stream>> {
    let mut v = vec![None];
    if on_cpu() {
        for _ in 1..n.clamp(1, 8) {
            v.push(Some(
                mlx_rs::Stream::new_with_device(&mlx_rs::Device::cpu()),
            ));
        }
    }
    v
}

pub fn load_gguf(
    path: &Path,
    header: &GgufHeader,
    config: ModelConfig,
    streams: usize,
) -> Result<Transformer> {
    header.ensure_supported()?;
    if path
        .extension()
        .is_none_or(|e| !e.eq_ignore_ascii_case("gguf"))
    {
        return Err(invalid(format!(
            "{} is a GGUF file but MLX only loads files named *.gguf; rename it",
            path.display()
        )));
    }
    let file = mlx_rs::io::GgufFile::load(path)
        .map_err(|e| invalid(format!("MLX cannot load {}: {e}", path.display())))?;
    let keys = file.array_keys().map_err(|e| {
        invalid(format!(
            "MLX cannot list the tensors of {}: {e}",
            path.display()
        ))
    })?;
    let mut tensors = HashMap::with_capacity(keys.len());
    for k in keys {
        let a = file
            .get_array(&k)
            .map_err(|e| invalid(format!("MLX cannot read tensor {k}: {e}")))?
            .ok_or_else(|| invalid(format!("tensor {k} vanished")))?;
        tensors.insert(gguf_to_hf_name(config.arch, &k), a);
    }
    drop(file);
    // Llama 3's frequency factors, or Phi-3's LongRoPE long factors (mlx-lm uses the long
    // ones at every length; the short ones are not used).
    tensors.remove("rope_factors_short.weight");
    let factors = tensors
        .remove("rope_freqs.weight")
        .or_else(|| tensors.remove("rope_factors_long.weight"));
    let rope_factors = match factors {
        Some(a) => {
            let a = a
                .as_dtype(Dtype::Float32)
                .map_err(mlx_err("rope factors"))?;
            a.eval().map_err(mlx_err("rope factors"))?;
            Some(
                a.try_as_slice::<f32>()
                    .map_err(|e| invalid(format!("rope_freqs: {e}")))?
                    .to_vec(),
            )
        }
        None => None,
    };
    let b = Builder {
        tensors,
        quant: QuantSource::Gguf,
        float_dtype: on_cpu().then_some(Dtype::Float32),
        streams: compute_streams(streams),
    };
    let model = b.build(config, rope_factors)?;
    eval_weights(&model)?;
    Ok(model)
}

/// Load a model folder's safetensors shards with MLX and build the model.
pub fn load_folder(dir: &Path, config: ModelConfig, streams: usize) -> Result<Transformer> {
    let mut tensors = HashMap::new();
    for f in safetensors_files(dir)? {
        let header = read_safetensors_header(&f)?;
        for (name, t) in &header {
            if !matches!(
                t.dtype.as_str(),
                "F32" | "F16" | "BF16" | "U32" | "I32" | "I64" | "U8" | "BOOL"
            ) {
                return Err(Error::new(
                    Code::ModelUnsupportedQuant,
                    format!(
                        "tensor {name} in {} has dtype {}, which is not supported",
                        f.display(),
                        t.dtype
                    ),
                ));
            }
        }
        let arrays = Array::load_safetensors(&f)
            .map_err(|e| invalid(format!("MLX cannot load {}: {e}", f.display())))?;
        if config.text_of_multimodal {
            // The language model only; the vision tower's tensors are dropped unread.
            tensors.extend(
                arrays
                    .into_iter()
                    .filter_map(|(k, a)| super::config::text_tensor_name(&k).map(|n| (n, a))),
            );
        } else {
            tensors.extend(arrays);
        }
    }
    let b = Builder {
        tensors,
        quant: QuantSource::Config(&config.quantization),
        float_dtype: on_cpu().then_some(Dtype::Float32),
        streams: compute_streams(streams),
    };
    let model = b.build(config.clone(), None)?;
    eval_weights(&model)?;
    Ok(model)
}

/// Materialise every weight now, so load errors (and load time) happen at load, not in
/// the first request.
fn eval_weights(m: &Transformer) -> Result<()> {
    mlx_rs::transforms::eval(m.arrays())
        .map_err(|e| invalid(format!("the model's weights cannot be read: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_hugging_face_names() {
        for (g, hf) in [
            (
                "blk.3.attn_q.scales",
                "model.layers.3.self_attn.q_proj.scales",
            ),
            (
                "blk.0.attn_output.weight",
                "model.layers.0.self_attn.o_proj.weight",
            ),
            (
                "blk.12.ffn_down.biases",
                "model.layers.12.mlp.down_proj.biases",
            ),
            (
                "blk.1.attn_k_norm.weight",
                "model.layers.1.self_attn.k_norm.weight",
            ),
            (
                "blk.1.attn_norm.weight",
                "model.layers.1.input_layernorm.weight",
            ),
            (
                "blk.1.ffn_norm.weight",
                "model.layers.1.post_attention_layernorm.weight",
            ),
            ("token_embd.weight", "model.embed_tokens.weight"),
            ("output_norm.weight", "model.norm.weight"),
            ("output.weight", "lm_head.weight"),
            ("rope_freqs.weight", "rope_freqs.weight"),
        ] {
            assert_eq!(gguf_to_hf_name(Arch::Llama, g), hf);
        }
    }

    /// The safetensors header parser under mutation: `Ok` or `model_invalid`.
    #[test]
    fn fuzz_safetensors_header() {
        let file = |header: &str, data: usize| {
            let mut b = (header.len() as u64).to_le_bytes().to_vec();
            b.extend(header.as_bytes());
            b.extend(vec![0u8; data]);
            b
        };
        let seeds = vec![
            file(
                r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                8,
            ),
            file(
                r#"{"__metadata__":{"format":"mlx"},"a.weight":{"dtype":"U32","shape":[4,2],"data_offsets":[0,32]},"a.scales":{"dtype":"BF16","shape":[4,1],"data_offsets":[32,40]}}"#,
                40,
            ),
        ];
        let n = crate::engine::fuzz::run("safetensors_header", &seeds, |bytes| {
            if let Err(e) = parse_safetensors_header_bytes(bytes) {
                assert_eq!(e.code, Code::ModelInvalid, "{e}");
            }
        });
        assert!(n > 0);
    }

    /// The sharded model's index under mutation: `Ok` with shards inside the folder, or
    /// `model_invalid` — never a path outside it, never a panic.
    #[test]
    fn fuzz_safetensors_index() {
        let dir = tempfile::tempdir().unwrap();
        for shard in [
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ] {
            std::fs::write(dir.path().join(shard), b"").unwrap();
        }
        let seeds = vec![
            br#"{"metadata":{"total_size":16},"weight_map":{"a.weight":"model-00001-of-00002.safetensors","b.weight":"model-00002-of-00002.safetensors"}}"#.to_vec(),
            br#"{"weight_map":{"x":"../model-00001-of-00002.safetensors","y":"/etc/passwd"}}"#.to_vec(),
        ];
        let index = dir.path().join("model.safetensors.index.json");
        let root = dir.path().canonicalize().unwrap();
        let n = crate::engine::fuzz::run("safetensors_index", &seeds, |bytes| {
            std::fs::write(&index, bytes).unwrap();
            match safetensors_files(dir.path()) {
                Ok(files) => {
                    for f in files {
                        let f = f.canonicalize().unwrap();
                        assert!(f.starts_with(&root), "{} escapes the folder", f.display());
                    }
                }
                Err(e) => assert_eq!(e.code, Code::ModelInvalid, "{e}"),
            }
        });
        assert!(n > 0);
    }

    #[test]
    fn safetensors_headers_are_checked_against_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        let header = br#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header);
        bytes.extend([0u8; 8]);
        std::fs::write(&p, &bytes).unwrap();
        let h = read_safetensors_header(&p).unwrap();
        assert_eq!(h["w"].shape, vec![2]);
        std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
        assert_eq!(
            read_safetensors_header(&p).unwrap_err().code,
            Code::ModelInvalid
        );
        std::fs::write(&p, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
        assert_eq!(
            read_safetensors_header(&p).unwrap_err().code,
            Code::ModelInvalid
        );
        // Lying shapes, unknown dtypes, absurd dimensions: refused before MLX sizes a buffer.
        for header in [
            r#"{"w":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,8]}}"#,
            r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
            r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            r#"{"w":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}}"#,
            r#"{"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
            r#"{"w":{"dtype":"F32","shape":[2]}}"#,
        ] {
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend(header.as_bytes());
            bytes.extend([0u8; 8]);
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(
                read_safetensors_header(&p).unwrap_err().code,
                Code::ModelInvalid,
                "{header}"
            );
        }
    }
}
