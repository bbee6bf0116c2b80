//! The decoder-only transformer on mlx-rs: embeddings, RMSNorm, attention with RoPE
//! and grouped-query heads over a KV cache, SwiGLU MLP, tied or separate LM head;
//! linear layers dense or MLX-affine-quantized.
//!
//! Every op is MLX's own fused kernel where one exists (`fast::rms_norm`, `fast::rope`,
//! `fast::scaled_dot_product_attention`, `quantized_matmul`), graphs are built lazily
//! and evaluated once per step by the caller, and the LM head runs only on the
//! positions whose logits are needed. This module never touches threads: the worker
//! (`worker.rs`) owns the model and calls it from one dedicated thread.

use super::config::{Activation, ModelConfig, MoeConfig, QuantMode, Routing};
use mlx_rs::error::Exception;
use mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use mlx_rs::ops::indexing::{TryIndexMutOp, TryIndexOp};
use mlx_rs::ops::{self};
use mlx_rs::{Array, Dtype, Stream};

pub type MlxResult<T> = std::result::Result<T, Exception>;

/// A linear layer `y = x Wᵀ (+ b)`. Cloning gives another handle on the same weights
/// (MLX arrays are reference-counted; nothing is copied).
#[derive(Debug, Clone)]
pub enum Linear {
    Dense {
        /// `[out, in]`, as stored.
        weight: Array,
        bias: Option<Array>,
    },
    /// An MLX-quantized weight `[out, in]`.
    Quantized { packed: Packed, bias: Option<Array> },
    /// The output rows cut into parts, each computed on its own MLX stream, outputs
    /// concatenated. MLX's CPU backend runs one matrix-vector product on one thread (a
    /// stream's thread), so a decode step uses one core; splitting the big products
    /// over two streams puts the second core to work. The parts are views of the same
    /// weight buffers (no copy), and each output row is the same dot product as before,
    /// so results are bit-identical.
    Split {
        parts: Vec<(Linear, Option<Stream>)>,
    },
}

impl Linear {
    pub fn forward(&self, x: &Array) -> MlxResult<Array> {
        let (y, bias) = match self {
            Linear::Split { parts } => {
                let mut outs = Vec::with_capacity(parts.len());
                for (part, stream) in parts {
                    outs.push(match stream {
                        Some(s) => mlx_rs::with_stream(s, || part.forward(x))?,
                        None => part.forward(x)?,
                    });
                }
                return ops::concatenate(&outs, -1);
            }
            Linear::Dense { weight, bias } => {
                (ops::matmul(x, ops::transpose_axes(weight, &[1, 0])?)?, bias)
            }
            Linear::Quantized { packed, bias } => (packed.matmul(x)?, bias),
        };
        match bias {
            Some(b) => ops::add(&y, b),
            None => Ok(y),
        }
    }

    /// Output features (rows of the weight).
    pub fn out_features(&self) -> i32 {
        match self {
            Linear::Dense { weight, .. } => weight.dim(0),
            Linear::Quantized { packed, .. } => packed.weight.dim(0),
            Linear::Split { parts } => parts.iter().map(|(p, _)| p.out_features()).sum(),
        }
    }

    /// Input features (columns of the unpacked weight).
    pub fn in_features(&self) -> i32 {
        match self {
            Linear::Dense { weight, .. } => weight.dim(1),
            Linear::Quantized { packed, .. } => packed.in_features(),
            Linear::Split { parts } => parts.first().map(|(p, _)| p.in_features()).unwrap_or(0),
        }
    }

    /// Cut the output rows into `streams.len()` equal parts, part `i` computed on
    /// `streams[i]` (`None` = the caller's stream). Returns `self` unchanged when the
    /// rows do not divide evenly.
    pub fn split_rows(self, streams: &[Option<Stream>]) -> MlxResult<Linear> {
        let n = streams.len() as i32;
        let rows = self.out_features();
        if n < 2 || rows % n != 0 || matches!(self, Linear::Split { .. }) {
            return Ok(self);
        }
        let h = rows / n;
        let mut parts = Vec::with_capacity(streams.len());
        for (i, stream) in streams.iter().enumerate() {
            let i = i as i32;
            parts.push((self.rows(i * h, (i + 1) * h)?, stream.clone()));
        }
        Ok(Linear::Split { parts })
    }

    /// Output rows `start..end` (views of the same buffers): a fused projection's parts.
    pub fn rows(&self, start: i32, end: i32) -> MlxResult<Linear> {
        let rows_of = |a: &Array| a.try_index(start..end);
        Ok(match self {
            Linear::Dense { weight, bias } => Linear::Dense {
                weight: rows_of(weight)?,
                bias: bias.as_ref().map(rows_of).transpose()?,
            },
            Linear::Quantized { packed, bias } => Linear::Quantized {
                packed: packed.rows(start, end)?,
                bias: bias.as_ref().map(rows_of).transpose()?,
            },
            Linear::Split { .. } => {
                return Err(Exception::custom("a split linear cannot be cut again"));
            }
        })
    }

    pub fn arrays(&self) -> Vec<&Array> {
        match self {
            Linear::Dense { weight, bias } => std::iter::once(weight).chain(bias).collect(),
            Linear::Quantized { packed, bias } => packed.arrays().chain(bias).collect(),
            Linear::Split { parts } => parts.iter().flat_map(|(p, _)| p.arrays()).collect(),
        }
    }
}

/// An MLX-quantized weight: `weight` packs `32 / bits` values per u32 along its last
/// axis, with `scales` (and, affine, `biases`) per group of `group_size`; `[out, in]`
/// for a linear layer, `[experts, out, in]` for stacked experts. Cloning gives another
/// handle on the same buffers.
///
/// Affine with biases runs through mlx-rs; MXFP4 (no biases) calls mlx-c directly,
/// because mlx-rs 0.33 always asks MLX for "affine".
#[derive(Debug, Clone)]
pub struct Packed {
    pub weight: Array,
    pub scales: Array,
    pub biases: Option<Array>,
    pub group_size: i32,
    pub bits: i32,
    pub mode: QuantMode,
}

impl Packed {
    /// Input features (the unpacked last axis).
    pub fn in_features(&self) -> i32 {
        self.weight.dim(-1) * 32 / self.bits
    }

    /// Rows `start..end` of the first axis (views of the same buffers).
    fn rows(&self, start: i32, end: i32) -> MlxResult<Packed> {
        let rows_of = |a: &Array| a.try_index(start..end);
        Ok(Packed {
            weight: rows_of(&self.weight)?,
            scales: rows_of(&self.scales)?,
            biases: self.biases.as_ref().map(rows_of).transpose()?,
            ..*self
        })
    }

    fn arrays(&self) -> impl Iterator<Item = &Array> {
        [&self.weight, &self.scales].into_iter().chain(&self.biases)
    }

    /// The affine biases, when this is the affine form mlx-rs can run.
    fn affine(&self) -> Option<&Array> {
        match self.mode {
            QuantMode::Affine => self.biases.as_ref(),
            QuantMode::Mxfp4 => None,
        }
    }

    fn mode_name(&self) -> std::ffi::CString {
        std::ffi::CString::new(self.mode.as_str()).unwrap_or_default()
    }

    /// `x Wᵀ`.
    fn matmul(&self, x: &Array) -> MlxResult<Array> {
        let (w, s) = (&self.weight, &self.scales);
        if let Some(b) = self.affine() {
            return ops::quantized_matmul(x, w, s, b, true, self.group_size, self.bits);
        }
        let m = self.mode_name();
        // SAFETY: every handle is a live array (or mlx-c's empty "none"); see `mlx_c`.
        mlx_c(|res, none, st| unsafe {
            mlx_sys::mlx_quantized_matmul(
                res,
                x.as_ptr(),
                w.as_ptr(),
                s.as_ptr(),
                self.biases.as_ref().map_or(none, Array::as_ptr),
                true,
                opt_int(self.group_size),
                opt_int(self.bits),
                m.as_ptr(),
                st,
            )
        })
    }

    /// `x` through the stacked experts `experts[...]` (`[..., k, 1, out]`).
    fn gather(&self, x: &Array, experts: &Array) -> MlxResult<Array> {
        let (w, s) = (&self.weight, &self.scales);
        if let Some(b) = self.affine() {
            return ops::gather_qmm(
                x,
                w,
                s,
                b,
                None,
                experts,
                true,
                self.group_size,
                self.bits,
                false,
            );
        }
        let m = self.mode_name();
        // SAFETY: as in `matmul`.
        mlx_c(|res, none, st| unsafe {
            mlx_sys::mlx_gather_qmm(
                res,
                x.as_ptr(),
                w.as_ptr(),
                s.as_ptr(),
                self.biases.as_ref().map_or(none, Array::as_ptr),
                none,
                experts.as_ptr(),
                true,
                opt_int(self.group_size),
                opt_int(self.bits),
                m.as_ptr(),
                false,
                st,
            )
        })
    }

    /// The float values of rows `ids` (embedding lookups).
    fn dequantize_rows(&self, ids: &Array) -> MlxResult<Array> {
        let w = self.weight.take_axis(ids, 0)?;
        let s = self.scales.take_axis(ids, 0)?;
        let biases = self
            .biases
            .as_ref()
            .map(|b| b.take_axis(ids, 0))
            .transpose()?;
        if let (QuantMode::Affine, Some(b)) = (self.mode, &biases) {
            return ops::dequantize(&w, &s, b, self.group_size, self.bits);
        }
        let m = self.mode_name();
        let no_dtype = mlx_sys::mlx_optional_dtype {
            value: mlx_sys::mlx_dtype__MLX_FLOAT32,
            has_value: false,
        };
        // SAFETY: as in `matmul`.
        mlx_c(|res, none, st| unsafe {
            mlx_sys::mlx_dequantize(
                res,
                w.as_ptr(),
                s.as_ptr(),
                biases.as_ref().map_or(none, Array::as_ptr),
                opt_int(self.group_size),
                opt_int(self.bits),
                m.as_ptr(),
                none,
                no_dtype,
                st,
            )
        })
    }
}

fn opt_int(v: i32) -> mlx_sys::mlx_optional_int {
    mlx_sys::mlx_optional_int {
        value: v,
        has_value: true,
    }
}

/// Run one mlx-c op writing its result array; an empty array stands for "none".
fn mlx_c(
    f: impl FnOnce(*mut mlx_sys::mlx_array, mlx_sys::mlx_array, mlx_sys::mlx_stream) -> i32,
) -> MlxResult<Array> {
    let stream = Stream::thread_local_or_default();
    // SAFETY: mlx-c's protocol: `res` and `none` are fresh handles, `res` is set by the
    // op on success (0) and owned by the returned Array; both are freed otherwise.
    unsafe {
        let mut res = mlx_sys::mlx_array_new();
        let none = mlx_sys::mlx_array_new();
        let rc = f(&mut res, none, stream.as_ptr());
        mlx_sys::mlx_array_free(none);
        if rc != 0 {
            mlx_sys::mlx_array_free(res);
            return Err(Exception::custom("MLX quantized operation failed"));
        }
        Ok(Array::from_ptr(res))
    }
}

/// Token embedding; `as_linear` reuses it as the LM head when embeddings are tied.
#[derive(Debug)]
pub struct Embedding(pub Linear);

impl Embedding {
    pub fn forward(&self, ids: &Array) -> MlxResult<Array> {
        match &self.0 {
            Linear::Split { .. } => Err(Exception::custom("a split embedding cannot be indexed")),
            Linear::Dense { weight, .. } => weight.take_axis(ids, 0),
            Linear::Quantized { packed, .. } => packed.dequantize_rows(ids),
        }
    }

    pub fn as_linear(&self, x: &Array) -> MlxResult<Array> {
        self.0.forward(x)
    }
}

/// One layer's key/value cache, pre-allocated in steps of 256 positions and written in
/// place (`slice_update`), as mlx-lm's `KVCache` does: no per-token concatenation.
#[derive(Debug, Default)]
pub struct LayerCache {
    keys: Option<Array>,
    values: Option<Array>,
    pub offset: i32,
}

const CACHE_STEP: i32 = 256;

/// `parts` (`len` positions along axis 2) in a new buffer with at least one free
/// position, up to the next whole step — always a fresh copy.
fn with_room(parts: &[Array], len: i32) -> MlxResult<Array> {
    let a = &parts[0];
    let room = (len / CACHE_STEP + 1) * CACHE_STEP - len;
    let pad = ops::zeros_dtype(&[a.dim(0), a.dim(1), room, a.dim(3)], a.dtype())?;
    let mut all = parts.to_vec();
    all.push(pad);
    ops::concatenate(&all, 2)
}

impl LayerCache {
    /// Append `[B, kvH, L, D]` keys/values; return all cached ones up to the new offset.
    pub fn update(&mut self, k: Array, v: Array) -> MlxResult<(Array, Array)> {
        let prev = self.offset;
        let n = k.dim(2);
        let needs_room = match &self.keys {
            None => true,
            Some(keys) => prev + n > keys.dim(2),
        };
        if needs_room {
            let (b, h, d) = (k.dim(0), k.dim(1), k.dim(3));
            let steps = (CACHE_STEP + n - 1) / CACHE_STEP;
            let shape = [b, h, steps * CACHE_STEP, d];
            let new_k = ops::zeros_dtype(&shape, k.dtype())?;
            let new_v = ops::zeros_dtype(&shape, v.dtype())?;
            match (self.keys.take(), self.values.take()) {
                (Some(mut keys), Some(mut values)) => {
                    if keys.dim(2) != prev {
                        keys = keys.try_index((.., .., ..prev, ..))?;
                        values = values.try_index((.., .., ..prev, ..))?;
                    }
                    self.keys = Some(ops::concatenate(&[keys, new_k], 2)?);
                    self.values = Some(ops::concatenate(&[values, new_v], 2)?);
                }
                _ => {
                    self.keys = Some(new_k);
                    self.values = Some(new_v);
                }
            }
        }
        self.offset = prev + n;
        let end = self.offset;
        let (Some(keys), Some(values)) = (self.keys.as_mut(), self.values.as_mut()) else {
            return Err(Exception::custom("KV cache buffers missing"));
        };
        keys.try_index_mut((.., .., prev..end, ..), &k)?;
        values.try_index_mut((.., .., prev..end, ..), &v)?;
        Ok((
            keys.try_index((.., .., ..end, ..))?,
            values.try_index((.., .., ..end, ..))?,
        ))
    }

    /// The first `len` positions in new buffers, with room to grow to the next step.
    fn fork(&self, len: i32) -> MlxResult<LayerCache> {
        let len = len.min(self.offset);
        let (Some(keys), Some(values)) = (&self.keys, &self.values) else {
            return Ok(LayerCache::default());
        };
        if len <= 0 {
            return Ok(LayerCache::default());
        }
        let head = |a: &Array| a.try_index((.., .., ..len, ..));
        Ok(LayerCache {
            keys: Some(with_room(&[head(keys)?], len)?),
            values: Some(with_room(&[head(values)?], len)?),
            offset: len,
        })
    }

    /// A cache of `len` positions made of consecutive `[B, kvH, L, D]` pieces.
    pub fn from_parts(keys: &[&Array], values: &[&Array], len: i32) -> MlxResult<LayerCache> {
        let owned = |v: &[&Array]| v.iter().map(|a| (*a).clone()).collect::<Vec<_>>();
        Ok(LayerCache {
            keys: Some(with_room(&owned(keys), len)?),
            values: Some(with_room(&owned(values), len)?),
            offset: len,
        })
    }

    /// Forget everything after `len` positions (the buffers stay; later writes overwrite).
    pub fn truncate(&mut self, len: i32) {
        self.offset = self.offset.min(len);
    }

    pub fn arrays(&self) -> impl Iterator<Item = &Array> {
        self.keys.iter().chain(self.values.iter())
    }

    /// Bytes held by the buffers.
    pub fn nbytes(&self) -> usize {
        self.arrays().map(Array::nbytes).sum()
    }
}

/// The whole model's cache: one [`LayerCache`] per layer.
#[derive(Debug, Default)]
pub struct KvCache {
    pub layers: Vec<LayerCache>,
}

impl KvCache {
    pub fn new(num_layers: usize) -> Self {
        KvCache {
            layers: (0..num_layers).map(|_| LayerCache::default()).collect(),
        }
    }
    pub fn offset(&self) -> i32 {
        self.layers.first().map(|l| l.offset).unwrap_or(0)
    }
    pub fn truncate(&mut self, len: i32) {
        self.layers.iter_mut().for_each(|l| l.truncate(len));
    }
    pub fn nbytes(&self) -> usize {
        self.layers.iter().map(LayerCache::nbytes).sum()
    }
    pub fn arrays(&self) -> Vec<&Array> {
        self.layers.iter().flat_map(LayerCache::arrays).collect()
    }

    /// A new cache with a copy of the first `len` positions (in buffers of its own,
    /// evaluated now, so that it neither waits on nor keeps alive this one's).
    pub fn fork(&self, len: i32) -> MlxResult<KvCache> {
        let copy = KvCache {
            layers: self
                .layers
                .iter()
                .map(|l| l.fork(len))
                .collect::<MlxResult<_>>()?,
        };
        mlx_rs::transforms::eval(copy.arrays())?;
        Ok(copy)
    }
}

#[derive(Debug)]
pub struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    /// Qwen3: RMSNorm over each head's vector before RoPE.
    pub q_norm: Option<Array>,
    pub k_norm: Option<Array>,
    /// gpt-oss: one learned logit per head that joins every softmax (attention sinks).
    pub sinks: Option<Array>,
}

#[derive(Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

/// The gated product of an MLP: `silu(g) * up`; `gelu(g) * up` with the tanh
/// approximation as mlx's `gelu_approx` computes it (`0.5 g (1 + tanh(sqrt(2/π) (g +
/// 0.044715 g³)))`); or gpt-oss's clamped form, as mlx-lm's `swiglu_oai`.
fn glu(act: Activation, g: &Array, up: &Array) -> MlxResult<Array> {
    let f = |v: f32| Array::from_f32(v);
    let gated = match act {
        Activation::Silu => ops::multiply(g, ops::sigmoid(g)?)?,
        Activation::GeluTanh => {
            let cube = ops::multiply(f(0.044715), g.power(f(3.0))?)?;
            let inner = ops::multiply(f((2.0 / std::f32::consts::PI).sqrt()), ops::add(g, cube)?)?;
            let t = ops::add(f(1.0), ops::tanh(inner)?)?;
            ops::multiply(ops::multiply(f(0.5), g)?, t)?
        }
        Activation::SwigluClamped => {
            let limit = 7.0;
            let g = ops::minimum(g, f(limit))?;
            let up = ops::clip(up, (f(-limit), f(limit)))?;
            let glu = ops::multiply(&g, ops::sigmoid(ops::multiply(f(1.702), &g)?)?)?;
            return ops::multiply(ops::add(up, f(1.0))?, glu);
        }
    };
    ops::multiply(gated, up)
}

impl Mlp {
    fn forward(&self, x: &Array, act: Activation) -> MlxResult<Array> {
        let h = glu(act, &self.gate_proj.forward(x)?, &self.up_proj.forward(x)?)?;
        self.down_proj.forward(&h)
    }

    fn arrays(&self) -> Vec<&Array> {
        [&self.gate_proj, &self.up_proj, &self.down_proj]
            .into_iter()
            .flat_map(Linear::arrays)
            .collect()
    }
}

/// The experts' stacked weights `[experts, out, in]`, applied to the chosen experts of
/// each token only (MLX's gathered matrix products), with per-expert output biases
/// `[experts, out]` where the model has them (gpt-oss).
#[derive(Debug)]
pub enum SwitchLinear {
    Dense { weight: Array, bias: Option<Array> },
    Quantized { packed: Packed, bias: Option<Array> },
}

impl SwitchLinear {
    /// `x` `[..., 1, in]` through expert `experts[...]` each: `[..., k, 1, out]`.
    fn forward(&self, x: &Array, experts: &Array) -> MlxResult<Array> {
        let (y, bias) = match self {
            SwitchLinear::Dense { weight, bias } => (
                ops::gather_mm(x, weight.swap_axes(-1, -2)?, None, experts, false)?,
                bias,
            ),
            SwitchLinear::Quantized { packed, bias } => (packed.gather(x, experts)?, bias),
        };
        match bias {
            Some(b) => ops::add(&y, b.take_axis(experts, 0)?.expand_dims(-2)?),
            None => Ok(y),
        }
    }

    fn weight(&self) -> &Array {
        match self {
            SwitchLinear::Dense { weight, .. } => weight,
            SwitchLinear::Quantized { packed, .. } => &packed.weight,
        }
    }

    pub fn out_features(&self) -> i32 {
        self.weight().dim(1)
    }

    pub fn in_features(&self) -> i32 {
        match self {
            SwitchLinear::Dense { weight, .. } => weight.dim(2),
            SwitchLinear::Quantized { packed, .. } => packed.in_features(),
        }
    }

    pub fn experts(&self) -> i32 {
        self.weight().dim(0)
    }

    fn arrays(&self) -> Vec<&Array> {
        match self {
            SwitchLinear::Dense { weight, bias } => std::iter::once(weight).chain(bias).collect(),
            SwitchLinear::Quantized { packed, bias } => packed.arrays().chain(bias).collect(),
        }
    }
}

/// A sparse mixture-of-experts MLP: the router picks `experts_per_token` experts per
/// token, whose SwiGLU outputs are summed with the routing weights (plus, in GLM-4.5,
/// shared experts every token runs through).
#[derive(Debug)]
pub struct Moe {
    pub router: Linear,
    /// GLM-4.5's per-expert bias on the choice (not on the weights).
    pub correction: Option<Array>,
    pub gate_proj: SwitchLinear,
    pub up_proj: SwitchLinear,
    pub down_proj: SwitchLinear,
    pub shared: Option<Mlp>,
}

impl Moe {
    fn forward(&self, x: &Array, cfg: &MoeConfig, act: Activation) -> MlxResult<Array> {
        let k = cfg.experts_per_token;
        let logits = self.router.forward(x)?;
        let e = logits.dim(-1);
        let last_k = |a: &Array, from: i32| a.try_index((.., .., from..));
        let (experts, weights) = match cfg.routing {
            Routing::TopKThenSoftmax => {
                let experts = largest_k(&logits, k)?;
                let w = logits.take_along_axis(&experts, -1)?;
                let w = ops::softmax_axis(&w, -1, true)?;
                (experts, w)
            }
            Routing::SoftmaxThenTopK { renormalize } => {
                let probs = ops::softmax_axis(&logits, -1, true)?;
                let experts = last_k(&ops::argpartition_axis(&probs, e - k, -1)?, e - k)?;
                let mut w = probs.take_along_axis(&experts, -1)?;
                if renormalize {
                    w = ops::divide(&w, w.sum_axis(-1, true)?)?;
                }
                (experts, w)
            }
            Routing::SigmoidGroups {
                n_group,
                topk_group,
                scale,
                renormalize,
            } => {
                let scores = ops::sigmoid(&logits)?;
                let mut choice = match &self.correction {
                    Some(b) => ops::add(&scores, b)?,
                    None => scores.clone(),
                };
                let drop = n_group - topk_group;
                if n_group > 1 && drop > 0 {
                    // Groups ranked by their two best experts; the worst `drop` zeroed.
                    let (b, l) = (x.dim(0), x.dim(1));
                    let grouped = choice.reshape(&[b, l, n_group, e / n_group])?;
                    let rank = ops::indexing::topk_axis(&grouped, 2, -1)?.sum_axis(-1, true)?;
                    let worst = ops::argpartition_axis(&rank, drop - 1, -2)?.try_index((
                        ..,
                        ..,
                        ..drop,
                        ..,
                    ))?;
                    choice = grouped
                        .put_along_axis(&worst, Array::from_f32(0.0), -2)?
                        .reshape(&[b, l, e])?;
                }
                let experts = largest_k(&choice, k)?;
                let mut w = scores.take_along_axis(&experts, -1)?;
                if k > 1 && renormalize {
                    w = ops::divide(&w, w.sum_axis(-1, true)?)?;
                }
                (experts, ops::multiply(&w, Array::from_f32(scale))?)
            }
        };
        let xe = x.expand_dims_axes(&[-2, -3])?;
        let h = glu(
            act,
            &self.gate_proj.forward(&xe, &experts)?,
            &self.up_proj.forward(&xe, &experts)?,
        )?;
        let y = self.down_proj.forward(&h, &experts)?.squeeze_axes(&[-2])?;
        let y = ops::multiply(y, weights.expand_dims(-1)?)?.sum_axis(-2, false)?;
        match &self.shared {
            Some(mlp) => ops::add(&y, mlp.forward(x, act)?),
            None => Ok(y),
        }
    }

    fn arrays(&self) -> Vec<&Array> {
        let mut v = self.router.arrays();
        v.extend(self.correction.iter());
        for s in [&self.gate_proj, &self.up_proj, &self.down_proj] {
            v.extend(s.arrays());
        }
        if let Some(mlp) = &self.shared {
            v.extend(mlp.arrays());
        }
        v
    }
}

/// Indices of the `k` largest of `a`'s last axis (`[B, L, E]`), in the order mlx-lm's
/// `argpartition(-a, k - 1)[..., :k]` gives them (the order the weighted sum follows).
fn largest_k(a: &Array, k: i32) -> MlxResult<Array> {
    ops::argpartition_axis(a.negative()?, k - 1, -1)?.try_index((.., .., ..k))
}

/// The second half of a layer: a dense MLP or a mixture of experts.
#[derive(Debug)]
pub enum Ffn {
    Dense(Mlp),
    Moe(Box<Moe>),
}

#[derive(Debug)]
pub struct Block {
    pub attn: Attention,
    pub ffn: Ffn,
    pub input_norm: Array,
    /// The norm before the MLP (Llama's `post_attention_layernorm`, Gemma's
    /// `pre_feedforward_layernorm`).
    pub pre_ffn_norm: Array,
    /// Gemma: norms of the attention's and the MLP's outputs before the residual add.
    pub attn_out_norm: Option<Array>,
    pub ffn_out_norm: Option<Array>,
    /// A sliding-window layer (its own RoPE, attention over the last window only).
    pub sliding: bool,
}

/// RoPE settings of a group of layers.
#[derive(Debug)]
pub struct Rope {
    /// Leading dimensions of each head rotated (the rest pass through).
    pub dims: i32,
    pub traditional: bool,
    pub base: f32,
    pub scale: f32,
    /// Precomputed frequencies (Llama 3, LongRoPE, GGUF factors); replace `base`.
    pub freqs: Option<Array>,
    /// LongRoPE: the rotated dimensions are first multiplied by this.
    pub pre_scale: Option<f32>,
}

impl Rope {
    fn apply(&self, x: &Array, offset: i32) -> MlxResult<Array> {
        let scaled;
        let x = match self.pre_scale {
            Some(s) if x.dim(-1) == self.dims => {
                scaled = ops::multiply(x, Array::from_f32(s))?;
                &scaled
            }
            Some(s) => {
                let head =
                    ops::multiply(x.try_index((.., .., .., ..self.dims))?, Array::from_f32(s))?;
                scaled = ops::concatenate(&[head, x.try_index((.., .., .., self.dims..))?], -1)?;
                &scaled
            }
            None => x,
        };
        match &self.freqs {
            Some(f) => fast::rope(x, self.dims, self.traditional, None, self.scale, offset, f),
            None => fast::rope(
                x,
                self.dims,
                self.traditional,
                self.base,
                self.scale,
                offset,
                None,
            ),
        }
    }
}

#[derive(Debug)]
pub struct Transformer {
    pub config: ModelConfig,
    pub embed: Embedding,
    pub layers: Vec<Block>,
    pub norm: Array,
    /// `None` = tied to the embedding.
    pub lm_head: Option<Linear>,
    pub rope: Rope,
    /// The sliding-window layers' RoPE (Gemma 3: another base, no scaling).
    pub local_rope: Option<Rope>,
    /// Gemma: embeddings times `sqrt(hidden_size)` rounded to bfloat16.
    pub embed_scale: Option<f32>,
    /// The LM head is (views of) the embedding: its bytes are not counted twice.
    pub head_tied: bool,
    /// Residual-stream dtype. Float32 on the CPU: MLX's CPU kernels are 25–30× slower
    /// with float16 activations.
    pub activation_dtype: Dtype,
}

/// Which cached positions a sliding-window layer's queries `[offset, end)` attend:
/// from `start`, with a mask when some query must not see all of `start..end`.
fn window_span(window: i32, offset: i32, end: i32) -> MlxResult<(i32, Option<Array>)> {
    let start = (offset + 1 - window).max(0);
    // Every query sees every earlier position from `start`: plain causal.
    if end - start <= window {
        return Ok((start, None));
    }
    Ok((
        start,
        Some(position_mask(offset, start, end, Some(window))?),
    ))
}

/// `[L, end - start]` booleans: query `offset + i` sees key `start + j` when it is not
/// later and (with a window) fewer than `window` positions earlier.
fn position_mask(offset: i32, start: i32, end: i32, window: Option<i32>) -> MlxResult<Array> {
    let q = ops::arange::<_, i32>(offset, end, None)?.reshape(&[end - offset, 1])?;
    let k = ops::arange::<_, i32>(start, end, None)?.reshape(&[1, end - start])?;
    let causal = q.ge(&k)?;
    match window {
        Some(w) => causal.logical_and(q.lt(ops::add(&k, Array::from_int(w))?)?),
        None => Ok(causal),
    }
}

/// `cap * tanh(x / cap)` (Gemma 2's soft-capping of scores and logits).
fn softcap(x: &Array, cap: f32) -> MlxResult<Array> {
    let cap = Array::from_f32(cap);
    ops::multiply(ops::tanh(ops::divide(x, &cap)?)?, &cap)
}

impl Transformer {
    fn rope_of(&self, block: &Block) -> &Rope {
        match (&self.local_rope, block.sliding) {
            (Some(r), true) => r,
            _ => &self.rope,
        }
    }

    fn window_of(&self, block: &Block) -> Option<i32> {
        if block.sliding {
            self.config.sliding_window
        } else {
            None
        }
    }

    /// Queries, keys and values of `x` (`[B, L, D]`) as `[B, heads, L, head_dim]`, with
    /// the per-head norm where the model has it (Qwen3, Gemma 3).
    fn project_heads(&self, a: &Attention, x: &Array) -> MlxResult<(Array, Array, Array)> {
        let c = &self.config;
        let (b, l) = (x.dim(0), x.dim(1));
        let heads = |lin: &Linear, n: i32, norm: &Option<Array>| -> MlxResult<Array> {
            let mut t = ops::reshape(lin.forward(x)?, &[b, l, n, c.head_dim])?;
            if let Some(w) = norm {
                t = fast::rms_norm(&t, Some(w), c.rms_norm_eps)?;
            }
            ops::transpose_axes(&t, &[0, 2, 1, 3])
        };
        Ok((
            heads(&a.q_proj, c.num_heads, &a.q_norm)?,
            heads(&a.k_proj, c.num_kv_heads, &a.k_norm)?,
            heads(&a.v_proj, c.num_kv_heads, &None)?,
        ))
    }

    /// Attention of queries `q` (`[1, H, L, D]`, at positions `end - L..end`) over the
    /// cached `k`, `v` (`end` positions), causal and, on sliding layers, windowed.
    fn attend(&self, block: &Block, q: Array, k: Array, v: Array) -> MlxResult<Array> {
        let (l, end) = (q.dim(2), k.dim(2));
        let scale = self.config.attn_scale;
        let (start, mask) = match self.window_of(block) {
            Some(w) => window_span(w, end - l, end)?,
            None => (0, None),
        };
        let (k, v) = if start > 0 {
            let tail = |a: &Array| a.try_index((.., .., start.., ..));
            (tail(&k)?, tail(&v)?)
        } else {
            (k, v)
        };
        if let Some(cap) = self.config.attn_softcap {
            let mask = match mask {
                None if l > 1 => Some(position_mask(end - l, start, end, None)?),
                m => m,
            };
            return self.softcapped_attention(q, k, v, mask.as_ref(), cap);
        }
        let sinks = block.attn.sinks.as_ref();
        match (&mask, l > 1) {
            (Some(m), _) => fast::scaled_dot_product_attention(
                q,
                k,
                v,
                scale,
                ScaledDotProductAttentionMask::Array(m),
                sinks,
            ),
            (None, true) => fast::scaled_dot_product_attention(
                q,
                k,
                v,
                scale,
                ScaledDotProductAttentionMask::Causal,
                sinks,
            ),
            (None, false) => fast::scaled_dot_product_attention(q, k, v, scale, None, sinks),
        }
    }

    /// Attention with soft-capped scores, step by step as mlx-lm's Gemma 2 computes it
    /// (MLX's fused kernel has no cap): scaled queries, grouped heads broadcast over
    /// their key/value head, `cap * tanh(s / cap)`, masked, precise softmax.
    fn softcapped_attention(
        &self,
        q: Array,
        k: Array,
        v: Array,
        mask: Option<&Array>,
        cap: f32,
    ) -> MlxResult<Array> {
        let (b, h, l, d) = (q.dim(0), q.dim(1), q.dim(2), q.dim(3));
        let kv_heads = k.dim(1);
        let mut q = ops::multiply(&q, Array::from_f32(self.config.attn_scale))?;
        let (mut k, mut v) = (k, v);
        if h > kv_heads {
            q = q.reshape(&[b, kv_heads, h / kv_heads, l, d])?;
            k = k.expand_dims(2)?;
            v = v.expand_dims(2)?;
        }
        let mut s = softcap(&ops::matmul(&q, k.swap_axes(-1, -2)?)?, cap)?;
        if let Some(m) = mask {
            s = ops::select(m, &s, Array::from_f32(f32::MIN))?;
        }
        let o = ops::matmul(ops::softmax_axis(&s, -1, true)?, &v)?;
        o.reshape(&[b, h, l, d])
    }

    fn attention(&self, block: &Block, x: &Array, cache: &mut LayerCache) -> MlxResult<Array> {
        let c = &self.config;
        let (b, l) = (x.dim(0), x.dim(1));
        let rope = self.rope_of(block);
        let (q, k, v) = self.project_heads(&block.attn, x)?;
        let q = rope.apply(&q, cache.offset)?;
        let k = rope.apply(&k, cache.offset)?;
        let (k, v) = cache.update(k, v)?;
        let o = self.attend(block, q, k, v)?;
        let o = ops::reshape(
            ops::transpose_axes(&o, &[0, 2, 1, 3])?,
            &[b, l, c.num_heads * c.head_dim],
        )?;
        block.attn.o_proj.forward(&o)
    }

    /// Attention for a decode step of several sequences at once: `x` is `[N, 1, D]`,
    /// sequence `i` attends over its own cache `caches[i].layers[layer]`. The
    /// projections run batched (one matrix product for all N rows: where batching
    /// pays); RoPE, the cache append and the attention itself run per sequence, each at
    /// its own position, so caches of different lengths need no padding or mask.
    fn attention_batch(
        &self,
        block: &Block,
        x: &Array,
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> MlxResult<Array> {
        let c = &self.config;
        let b = x.dim(0);
        let rope = self.rope_of(block);
        let (q, k, v) = self.project_heads(&block.attn, x)?;
        let mut outs = Vec::with_capacity(b as usize);
        for (i, cache) in caches.iter_mut().enumerate() {
            let i = i as i32;
            let lc = &mut cache.layers[layer];
            let qi = rope.apply(&q.try_index(i..i + 1)?, lc.offset)?;
            let ki = rope.apply(&k.try_index(i..i + 1)?, lc.offset)?;
            let (ks, vs) = lc.update(ki, v.try_index(i..i + 1)?)?;
            outs.push(self.attend(block, qi, ks, vs)?);
        }
        let o = ops::concatenate(&outs, 0)?;
        let o = ops::reshape(
            ops::transpose_axes(&o, &[0, 2, 1, 3])?,
            &[b, 1, c.num_heads * c.head_dim],
        )?;
        block.attn.o_proj.forward(&o)
    }

    /// One decode step for several sequences: `ids[i]` is sequence `i`'s next input
    /// token, appended to `caches[i]`. Returns the logits `[N, vocab]`.
    pub fn forward_batch(&self, ids: &[u32], caches: &mut [&mut KvCache]) -> MlxResult<Array> {
        let n = ids.len() as i32;
        let v: Vec<i32> = ids.iter().map(|&t| t as i32).collect();
        let eps = self.config.rms_norm_eps;
        let mut h = self.embed_ids(&Array::from_slice(&v, &[n, 1]))?;
        for (li, block) in self.layers.iter().enumerate() {
            let r = self.attention_batch(
                block,
                &fast::rms_norm(&h, Some(&block.input_norm), eps)?,
                caches,
                li,
            )?;
            h = self.residual(&h, r, &block.attn_out_norm)?;
            h = self.ffn_residual(block, &h)?;
        }
        ops::reshape(&self.head(&h)?, &[n, -1])
    }

    fn embed_ids(&self, ids: &Array) -> MlxResult<Array> {
        let mut h = self.embed.forward(ids)?;
        if h.dtype() != self.activation_dtype {
            h = h.as_dtype(self.activation_dtype)?;
        }
        match self.embed_scale {
            Some(s) => ops::multiply(&h, Array::from_f32(s)),
            None => Ok(h),
        }
    }

    /// One decoder layer over the residual stream `h`, appending to its cache.
    fn layer(&self, block: &Block, h: &Array, lc: &mut LayerCache) -> MlxResult<Array> {
        let eps = self.config.rms_norm_eps;
        let r = self.attention(block, &fast::rms_norm(h, Some(&block.input_norm), eps)?, lc)?;
        let h = self.residual(h, r, &block.attn_out_norm)?;
        self.ffn_residual(block, &h)
    }

    /// `h + r`, or `h + norm(r)` where the layer normalises its outputs (Gemma).
    fn residual(&self, h: &Array, r: Array, norm: &Option<Array>) -> MlxResult<Array> {
        match norm {
            Some(w) => ops::add(h, fast::rms_norm(&r, Some(w), self.config.rms_norm_eps)?),
            None => ops::add(h, &r),
        }
    }

    /// `h + FFN(norm(h))`: the second half of a decoder layer.
    fn ffn_residual(&self, block: &Block, h: &Array) -> MlxResult<Array> {
        let c = &self.config;
        let x = fast::rms_norm(h, Some(&block.pre_ffn_norm), c.rms_norm_eps)?;
        let r = match (&block.ffn, &c.moe) {
            (Ffn::Dense(mlp), _) => mlp.forward(&x, c.activation)?,
            (Ffn::Moe(moe), Some(cfg)) => moe.forward(&x, cfg, c.activation)?,
            (Ffn::Moe(_), None) => return Err(Exception::custom("experts without a MoE config")),
        };
        self.residual(h, r, &block.ffn_out_norm)
    }

    /// The final norm and the LM head over `h`'s positions.
    fn head(&self, h: &Array) -> MlxResult<Array> {
        let x = fast::rms_norm(h, Some(&self.norm), self.config.rms_norm_eps)?;
        let logits = match &self.lm_head {
            Some(head) => head.forward(&x)?,
            None => self.embed.as_linear(&x)?,
        };
        match self.config.final_softcap {
            Some(cap) => softcap(&logits, cap),
            None => Ok(logits),
        }
    }

    /// A prefill chunk: `ids` into `cache`, no logits, computed layer by layer with
    /// `stop` asked after each, so that a client who left does not wait for a whole
    /// chunk (seconds to minutes on a CPU). The same kernels as [`Model::forward`], so
    /// the same numbers. `Ok(false)` when stopped: some layers then hold the chunk and
    /// others not, and the caller truncates the cache back to where the chunk began.
    pub fn prefill(
        &self,
        ids: &Array,
        cache: &mut KvCache,
        stop: &dyn Fn() -> bool,
    ) -> MlxResult<bool> {
        let mut h = self.embed_ids(ids)?;
        for (block, lc) in self.layers.iter().zip(cache.layers.iter_mut()) {
            h = self.layer(block, &h, lc)?;
            let mut done: Vec<&Array> = vec![&h];
            done.extend(lc.arrays());
            mlx_rs::transforms::eval(done)?;
            if stop() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Run `ids` (`[1, L]` int32) through the model, appending to `cache`. Returns the
    /// logits of the last `logit_positions` positions (`[1, n, vocab]`), or `None` when
    /// 0 (prefill chunks: only the cache matters, and the LM head is skipped entirely).
    pub fn forward(
        &self,
        ids: &Array,
        cache: &mut KvCache,
        logit_positions: i32,
    ) -> MlxResult<Option<Array>> {
        let mut h = self.embed_ids(ids)?;
        for (block, lc) in self.layers.iter().zip(cache.layers.iter_mut()) {
            h = self.layer(block, &h, lc)?;
        }
        if logit_positions == 0 {
            return Ok(None);
        }
        let l = h.dim(1);
        let last = if logit_positions < l {
            h.try_index((.., (l - logit_positions).., ..))?
        } else {
            h.clone()
        };
        Ok(Some(self.head(&last)?))
    }

    /// Bytes of the weights (a tied head's views are not counted again).
    pub fn weights_bytes(&self) -> u64 {
        let head = match (&self.lm_head, self.head_tied) {
            (Some(h), true) => h.arrays().iter().map(|a| a.nbytes() as u64).sum(),
            _ => 0,
        };
        self.arrays().iter().map(|a| a.nbytes() as u64).sum::<u64>() - head
    }

    /// Every weight array (for eval after load and memory accounting).
    pub fn arrays(&self) -> Vec<&Array> {
        let mut v: Vec<&Array> = self.embed.0.arrays();
        for b in &self.layers {
            for lin in [
                &b.attn.q_proj,
                &b.attn.k_proj,
                &b.attn.v_proj,
                &b.attn.o_proj,
            ] {
                v.extend(lin.arrays());
            }
            match &b.ffn {
                Ffn::Dense(mlp) => v.extend(mlp.arrays()),
                Ffn::Moe(moe) => v.extend(moe.arrays()),
            }
            v.extend(b.attn.q_norm.iter());
            v.extend(b.attn.k_norm.iter());
            v.extend(b.attn.sinks.iter());
            v.push(&b.input_norm);
            v.push(&b.pre_ffn_norm);
            v.extend(b.attn_out_norm.iter());
            v.extend(b.ffn_out_norm.iter());
        }
        v.push(&self.norm);
        if let Some(h) = &self.lm_head {
            v.extend(h.arrays());
        }
        for rope in std::iter::once(&self.rope).chain(&self.local_rope) {
            v.extend(rope.freqs.iter());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(a: &Array) -> Vec<f32> {
        a.eval().unwrap();
        a.try_as_slice::<f32>().unwrap().to_vec()
    }

    #[test]
    fn a_product_split_over_two_streams_equals_the_whole_bit_for_bit() {
        let key = mlx_rs::random::key(3).unwrap();
        let w = mlx_rs::random::normal::<f32>(&[64, 128][..], None, None, &key).unwrap();
        let x = mlx_rs::random::normal::<f32>(&[1, 5, 128][..], None, None, &key).unwrap();
        let (wq, scales, biases) = ops::quantize(&w, 32, 4).unwrap();
        let streams = [None, Some(Stream::new_with_device(&mlx_rs::Device::cpu()))];
        for lin in [
            Linear::Dense {
                weight: w.clone(),
                bias: Some(ops::ones::<f32>(&[64]).unwrap()),
            },
            Linear::Quantized {
                packed: Packed {
                    weight: wq,
                    scales,
                    biases: Some(biases),
                    group_size: 32,
                    bits: 4,
                    mode: QuantMode::Affine,
                },
                bias: None,
            },
        ] {
            let whole = lin.forward(&x).unwrap();
            let split = lin.clone().split_rows(&streams).unwrap();
            assert!(matches!(split, Linear::Split { .. }));
            assert_eq!((split.out_features(), split.in_features()), (64, 128));
            let parts = split.forward(&x).unwrap();
            assert_eq!(parts.shape(), &[1, 5, 64]);
            assert_eq!(values(&whole), values(&parts));
        }
        // Rows that do not divide evenly stay whole.
        let odd = Linear::Dense {
            weight: ops::ones::<f32>(&[3, 4]).unwrap(),
            bias: None,
        };
        assert!(!matches!(
            odd.split_rows(&streams).unwrap(),
            Linear::Split { .. }
        ));
    }
}
