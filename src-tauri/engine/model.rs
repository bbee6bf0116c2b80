//! The decoder-only transformer on mlx-rs: embeddings, RMSNorm, attention with RoPE
//! and grouped-query heads over a KV cache, SwiGLU MLP, tied or separate LM head;
//! linear layers dense or MLX-affine-quantized.
//!
//! Every op is MLX's own fused kernel where one exists (`fast::rms_norm`, `fast::rope`,
//! `fast::scaled_dot_product_attention`, `quantized_matmul`), graphs are built lazily
//! and evaluated once per step by the caller, and the LM head runs only on the
//! positions whose logits are needed. This module never touches threads: the worker
//! (`worker.rs`) owns the model and calls it from one dedicated thread.

use super::config::ModelConfig;
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
    /// MLX affine quantization: `weight` packs `32 / bits` values per u32.
    Quantized {
        weight: Array,
        scales: Array,
        biases: Array,
        bias: Option<Array>,
        group_size: i32,
        bits: i32,
    },
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
            Linear::Quantized {
                weight,
                scales,
                biases,
                bias,
                group_size,
                bits,
            } => (
                ops::quantized_matmul(x, weight, scales, biases, true, *group_size, *bits)?,
                bias,
            ),
        };
        match bias {
            Some(b) => ops::add(&y, b),
            None => Ok(y),
        }
    }

    /// Output features (rows of the weight).
    pub fn out_features(&self) -> i32 {
        match self {
            Linear::Dense { weight, .. } | Linear::Quantized { weight, .. } => weight.dim(0),
            Linear::Split { parts } => parts.iter().map(|(p, _)| p.out_features()).sum(),
        }
    }

    /// Input features (columns of the unpacked weight).
    pub fn in_features(&self) -> i32 {
        match self {
            Linear::Dense { weight, .. } => weight.dim(1),
            Linear::Quantized { weight, bits, .. } => weight.dim(1) * 32 / bits,
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
        let rows_of = |a: &Array, i: i32| a.try_index(i * h..(i + 1) * h);
        let mut parts = Vec::with_capacity(streams.len());
        for (i, stream) in streams.iter().enumerate() {
            let i = i as i32;
            let part = match &self {
                Linear::Dense { weight, bias } => Linear::Dense {
                    weight: rows_of(weight, i)?,
                    bias: bias.as_ref().map(|b| rows_of(b, i)).transpose()?,
                },
                Linear::Quantized {
                    weight,
                    scales,
                    biases,
                    bias,
                    group_size,
                    bits,
                } => Linear::Quantized {
                    weight: rows_of(weight, i)?,
                    scales: rows_of(scales, i)?,
                    biases: rows_of(biases, i)?,
                    bias: bias.as_ref().map(|b| rows_of(b, i)).transpose()?,
                    group_size: *group_size,
                    bits: *bits,
                },
                Linear::Split { .. } => unreachable!("checked above"),
            };
            parts.push((part, stream.clone()));
        }
        Ok(Linear::Split { parts })
    }

    pub fn arrays(&self) -> Vec<&Array> {
        match self {
            Linear::Dense { weight, bias } => std::iter::once(weight).chain(bias).collect(),
            Linear::Quantized {
                weight,
                scales,
                biases,
                bias,
                ..
            } => [weight, scales, biases].into_iter().chain(bias).collect(),
            Linear::Split { parts } => parts.iter().flat_map(|(p, _)| p.arrays()).collect(),
        }
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
            Linear::Quantized {
                weight,
                scales,
                biases,
                group_size,
                bits,
                ..
            } => ops::dequantize(
                weight.take_axis(ids, 0)?,
                scales.take_axis(ids, 0)?,
                &biases.take_axis(ids, 0)?,
                *group_size,
                *bits,
            ),
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
}

#[derive(Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    fn forward(&self, x: &Array) -> MlxResult<Array> {
        let g = self.gate_proj.forward(x)?;
        let silu = ops::multiply(&g, ops::sigmoid(&g)?)?;
        self.down_proj
            .forward(&ops::multiply(silu, self.up_proj.forward(x)?)?)
    }
}

#[derive(Debug)]
pub struct Block {
    pub attn: Attention,
    pub mlp: Mlp,
    pub input_norm: Array,
    pub post_attn_norm: Array,
}

/// RoPE settings shared by all layers.
#[derive(Debug)]
pub struct Rope {
    pub dims: i32,
    pub traditional: bool,
    pub base: f32,
    pub scale: f32,
    /// Llama 3 scaled frequencies (replace `base` when present).
    pub freqs: Option<Array>,
}

impl Rope {
    fn apply(&self, x: &Array, offset: i32) -> MlxResult<Array> {
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
    /// The LM head is (views of) the embedding: its bytes are not counted twice.
    pub head_tied: bool,
    /// Residual-stream dtype. Float32 on the CPU: MLX's CPU kernels are 25–30× slower
    /// with float16 activations.
    pub activation_dtype: Dtype,
}

impl Transformer {
    /// Queries, keys and values of `x` (`[B, L, D]`) as `[B, heads, L, head_dim]`, with
    /// Qwen3's per-head norm where the model has it.
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

    fn attention(&self, a: &Attention, x: &Array, cache: &mut LayerCache) -> MlxResult<Array> {
        let c = &self.config;
        let (b, l) = (x.dim(0), x.dim(1));
        let (q, k, v) = self.project_heads(a, x)?;
        let q = self.rope.apply(&q, cache.offset)?;
        let k = self.rope.apply(&k, cache.offset)?;
        let (k, v) = cache.update(k, v)?;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let o = if l > 1 {
            fast::scaled_dot_product_attention(
                q,
                k,
                v,
                scale,
                ScaledDotProductAttentionMask::Causal,
                None,
            )?
        } else {
            fast::scaled_dot_product_attention(q, k, v, scale, None, None)?
        };
        let o = ops::reshape(
            ops::transpose_axes(&o, &[0, 2, 1, 3])?,
            &[b, l, c.num_heads * c.head_dim],
        )?;
        a.o_proj.forward(&o)
    }

    /// Attention for a decode step of several sequences at once: `x` is `[N, 1, D]`,
    /// sequence `i` attends over its own cache `caches[i].layers[layer]`. The
    /// projections run batched (one matrix product for all N rows: where batching
    /// pays); RoPE, the cache append and the attention itself run per sequence, each at
    /// its own position, so caches of different lengths need no padding or mask.
    fn attention_batch(
        &self,
        a: &Attention,
        x: &Array,
        caches: &mut [&mut KvCache],
        layer: usize,
    ) -> MlxResult<Array> {
        let c = &self.config;
        let b = x.dim(0);
        let (q, k, v) = self.project_heads(a, x)?;
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        let mut outs = Vec::with_capacity(b as usize);
        for (i, cache) in caches.iter_mut().enumerate() {
            let i = i as i32;
            let lc = &mut cache.layers[layer];
            let qi = self.rope.apply(&q.try_index(i..i + 1)?, lc.offset)?;
            let ki = self.rope.apply(&k.try_index(i..i + 1)?, lc.offset)?;
            let (ks, vs) = lc.update(ki, v.try_index(i..i + 1)?)?;
            outs.push(fast::scaled_dot_product_attention(
                qi, ks, vs, scale, None, None,
            )?);
        }
        let o = ops::concatenate(&outs, 0)?;
        let o = ops::reshape(
            ops::transpose_axes(&o, &[0, 2, 1, 3])?,
            &[b, 1, c.num_heads * c.head_dim],
        )?;
        a.o_proj.forward(&o)
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
                &block.attn,
                &fast::rms_norm(&h, Some(&block.input_norm), eps)?,
                caches,
                li,
            )?;
            h = self.mlp_residual(block, &ops::add(&h, &r)?)?;
        }
        ops::reshape(&self.head(&h)?, &[n, -1])
    }

    fn embed_ids(&self, ids: &Array) -> MlxResult<Array> {
        let h = self.embed.forward(ids)?;
        if h.dtype() != self.activation_dtype {
            return h.as_dtype(self.activation_dtype);
        }
        Ok(h)
    }

    /// One decoder layer over the residual stream `h`, appending to its cache.
    fn layer(&self, block: &Block, h: &Array, lc: &mut LayerCache) -> MlxResult<Array> {
        let eps = self.config.rms_norm_eps;
        let r = self.attention(
            &block.attn,
            &fast::rms_norm(h, Some(&block.input_norm), eps)?,
            lc,
        )?;
        self.mlp_residual(block, &ops::add(h, &r)?)
    }

    /// `h + MLP(norm(h))`: the second half of a decoder layer.
    fn mlp_residual(&self, block: &Block, h: &Array) -> MlxResult<Array> {
        let r = block.mlp.forward(&fast::rms_norm(
            h,
            Some(&block.post_attn_norm),
            self.config.rms_norm_eps,
        )?)?;
        ops::add(h, &r)
    }

    /// The final norm and the LM head over `h`'s positions.
    fn head(&self, h: &Array) -> MlxResult<Array> {
        let x = fast::rms_norm(h, Some(&self.norm), self.config.rms_norm_eps)?;
        match &self.lm_head {
            Some(head) => head.forward(&x),
            None => self.embed.as_linear(&x),
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
                &b.mlp.gate_proj,
                &b.mlp.up_proj,
                &b.mlp.down_proj,
            ] {
                v.extend(lin.arrays());
            }
            v.extend(b.attn.q_norm.iter());
            v.extend(b.attn.k_norm.iter());
            v.push(&b.input_norm);
            v.push(&b.post_attn_norm);
        }
        v.push(&self.norm);
        if let Some(h) = &self.lm_head {
            v.extend(h.arrays());
        }
        v.extend(self.rope.freqs.iter());
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
                weight: wq,
                scales,
                biases,
                bias: None,
                group_size: 32,
                bits: 4,
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
