//! The prefix cache on disk: KV blocks of long prompts kept under the data dir, so that
//! an agent's preamble is not computed again after its model was unloaded or the app
//! restarted (on a CPU a 10k-token preamble takes minutes).
//!
//! - **Layout**: `<dir>/<model fingerprint>/<chain hash>.kv`, one file per block of
//!   `block_tokens` prompt tokens. A block's name is a SHA-256 chain over the model's
//!   fingerprint (its files' paths, sizes and modification times) and every token up to
//!   the block's end, so a file is found only for the exact token prefix on the exact
//!   weights, and prompts that share a preamble share its blocks.
//! - **Checked on read**: each file carries its tokens (compared with the prompt's),
//!   the layer count, heads, head size and dtype (compared with the model's) and a
//!   SHA-256 of its contents. A file failing any check is deleted and its positions are
//!   computed as if it were not there; nothing in a cache file can crash the engine.
//! - **Bounded**: after each write the least recently used files (modification time,
//!   renewed on every use) are deleted until all models' blocks fit `max_bytes`.
//! - **Mostly off the model's thread**: blocks are copied out of MLX on the model's
//!   thread and written by a thread of their own from a queue of [`QUEUE`] blocks (the
//!   memory they hold meanwhile is bounded by that); when the queue is full the model's
//!   thread waits for the writer, so every block of a long prompt is saved at the cost
//!   of a short pause (a block's write) for the others generating then.
//! - Only prompts of at least `min_tokens` tokens are saved: short chats stay in memory.

use super::model::{KvCache, LayerCache};
use crate::error::{Code, Error, Result};
use mlx_rs::ops::indexing::TryIndexOp;
use mlx_rs::{Array, Dtype};
use ring::digest::{Context, SHA256};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::SystemTime;

/// Where and how much.
#[derive(Debug, Clone)]
pub struct DiskCacheOptions {
    /// The root shared by all models (a folder per model fingerprint below it).
    pub dir: PathBuf,
    /// All models' blocks together stay within this many bytes.
    pub max_bytes: u64,
    /// Prompt tokens per block.
    pub block_tokens: usize,
    /// Prompts shorter than this are not saved.
    pub min_tokens: usize,
}

/// Default [`DiskCacheOptions::block_tokens`] (the KV buffers' growth step too).
pub const DEFAULT_BLOCK_TOKENS: usize = 256;
/// Default [`DiskCacheOptions::min_tokens`].
pub const DEFAULT_MIN_TOKENS: usize = 1024;
/// Blocks waiting to be written at most.
const QUEUE: usize = 4;
const MAGIC: &[u8; 8] = b"SYKV\x01\n\0\0";
/// Largest header accepted (tokens of a block as JSON and the shapes).
const MAX_HEADER: usize = 1 << 20;

/// What a block must match to be used: the model's cache shape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub layers: usize,
    pub kv_heads: i32,
    pub head_dim: i32,
    pub dtype: Dtype,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    tokens: Vec<u32>,
    layers: usize,
    kv_heads: i32,
    head_dim: i32,
    dtype: String,
}

struct Job {
    path: PathBuf,
    bytes: Vec<u8>,
}

/// One model's blocks.
pub struct DiskCache {
    root: PathBuf,
    dir: PathBuf,
    seed: [u8; 32],
    block: usize,
    min_tokens: usize,
    jobs: mpsc::SyncSender<Job>,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskCache").field("dir", &self.dir).finish()
    }
}

fn io(what: &str, e: std::io::Error) -> Error {
    Error::new(Code::Io, format!("prefix cache on disk: {what}: {e}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The model's identity: the paths, sizes and modification times of its files.
fn fingerprint(model: &Path) -> Result<[u8; 32]> {
    let mut files = vec![model.to_path_buf()];
    if model.is_dir() {
        files = std::fs::read_dir(model)
            .map_err(|e| io("reading the model's folder", e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
    }
    let mut ctx = Context::new(&SHA256);
    ctx.update(b"switchyard-kv-v1\0");
    for f in files {
        let meta = std::fs::metadata(&f).map_err(|e| io("reading the model's files", e))?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        ctx.update(f.to_string_lossy().as_bytes());
        ctx.update(&[0]);
        ctx.update(&meta.len().to_le_bytes());
        ctx.update(&mtime.to_le_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

impl DiskCache {
    /// The cache of the model at `model` (its file or folder).
    pub fn open(opts: &DiskCacheOptions, model: &Path) -> Result<DiskCache> {
        let seed = fingerprint(model)?;
        let dir = opts.dir.join(&hex(&seed)[..32]);
        std::fs::create_dir_all(&dir).map_err(|e| io("creating its folder", e))?;
        let (jobs, rx) = mpsc::sync_channel::<Job>(QUEUE);
        let (root, max_bytes) = (opts.dir.clone(), opts.max_bytes);
        std::thread::Builder::new()
            .name("kv-disk".into())
            .spawn(move || {
                for job in rx {
                    if let Err(e) = write_atomically(&job.path, &job.bytes) {
                        tracing::warn!(error = %e, "could not save a prefix cache block");
                    }
                    drop(job);
                    evict(&root, max_bytes);
                }
            })
            .map_err(|e| io("starting its writer", e))?;
        Ok(DiskCache {
            root: opts.dir.clone(),
            dir,
            seed,
            block: opts.block_tokens.max(1),
            min_tokens: opts.min_tokens,
            jobs,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// File paths of the prompt's first `blocks` whole blocks.
    fn chain(&self, prompt: &[u32], blocks: usize) -> Vec<PathBuf> {
        let mut h = self.seed;
        prompt
            .chunks_exact(self.block)
            .take(blocks)
            .map(|chunk| {
                let mut ctx = Context::new(&SHA256);
                ctx.update(&h);
                for t in chunk {
                    ctx.update(&t.to_le_bytes());
                }
                h.copy_from_slice(ctx.finish().as_ref());
                self.dir.join(format!("{}.kv", &hex(&h)[..40]))
            })
            .collect()
    }

    /// A cache holding the first positions of `prompt` from disk, when the blocks there
    /// cover more than `better_than` of its first `limit` tokens.
    pub fn load(
        &self,
        prompt: &[u32],
        limit: usize,
        better_than: usize,
        layout: Layout,
    ) -> Option<KvCache> {
        let paths = self.chain(prompt, limit.min(prompt.len()) / self.block);
        let present = paths.iter().take_while(|p| p.is_file()).count();
        if present * self.block <= better_than {
            return None;
        }
        let mut blocks: Vec<Vec<(Array, Array)>> = Vec::new();
        for (i, path) in paths[..present].iter().enumerate() {
            let tokens = &prompt[i * self.block..(i + 1) * self.block];
            match read_block(path, tokens, layout) {
                Ok(b) => {
                    touch(path);
                    blocks.push(b);
                }
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "a prefix cache block was unusable and is deleted");
                    let _ = std::fs::remove_file(path);
                    break;
                }
            }
        }
        if blocks.len() * self.block <= better_than {
            return None;
        }
        match assemble(blocks, layout.layers) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "could not rebuild a cached prefix from disk");
                None
            }
        }
    }

    /// Queue the whole blocks of `prompt` that `cache` holds and the disk does not yet.
    pub fn save(&self, prompt: &[u32], cache: &KvCache) {
        let held = (cache.offset().max(0) as usize).min(prompt.len());
        if prompt.len() < self.min_tokens || held < self.block {
            return;
        }
        for (i, path) in self
            .chain(prompt, held / self.block)
            .into_iter()
            .enumerate()
        {
            if path.is_file() {
                touch(&path);
                continue;
            }
            let tokens = &prompt[i * self.block..(i + 1) * self.block];
            let bytes = match encode_block(cache, i * self.block, tokens) {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "could not copy a prefix cache block");
                    return;
                }
            };
            if self.jobs.send(Job { path, bytes }).is_err() {
                // The writer is gone (it never stops before this cache): nothing to save.
                return;
            }
        }
    }
}

fn touch(path: &Path) {
    if let Ok(f) = std::fs::File::options().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Every entry of every model's folder under `root`.
fn entries(root: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|model| {
            std::fs::read_dir(model.path())
                .into_iter()
                .flatten()
                .flatten()
        })
}

/// The block files under `root` (all models), sorted.
pub fn blocks(root: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = entries(root)
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "kv"))
        .collect();
    out.sort();
    out
}

/// Delete the least recently used files (all models; blocks being written count too)
/// until the total fits.
fn evict(root: &Path, max_bytes: u64) {
    let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
    for f in entries(root) {
        let Ok(meta) = f.metadata() else { continue };
        if meta.is_file() {
            let t = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            files.push((t, meta.len(), f.path()));
        }
    }
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    if total <= max_bytes {
        return;
    }
    files.sort();
    for (_, len, path) in files {
        if total <= max_bytes {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            total -= len;
        }
    }
}

fn element_size(dtype: Dtype) -> Option<usize> {
    match dtype {
        Dtype::Float32 => Some(4),
        Dtype::Float16 | Dtype::Bfloat16 => Some(2),
        _ => None,
    }
}

/// An array's elements as little-endian bytes.
fn array_bytes(a: &Array, out: &mut Vec<u8>) -> Result<()> {
    let a = a.contiguous().map_err(engine)?;
    a.eval().map_err(engine)?;
    let bad = |e: mlx_rs::error::AsSliceError| Error::new(Code::Engine, e.to_string());
    match a.dtype() {
        Dtype::Float32 => out.extend(
            a.try_as_slice::<f32>()
                .map_err(bad)?
                .iter()
                .flat_map(|x| x.to_le_bytes()),
        ),
        Dtype::Float16 => out.extend(
            a.try_as_slice::<half::f16>()
                .map_err(bad)?
                .iter()
                .flat_map(|x| x.to_le_bytes()),
        ),
        Dtype::Bfloat16 => out.extend(
            a.try_as_slice::<half::bf16>()
                .map_err(bad)?
                .iter()
                .flat_map(|x| x.to_le_bytes()),
        ),
        d => {
            return Err(Error::new(
                Code::Engine,
                format!("KV cache dtype {d:?} is not saved"),
            ));
        }
    }
    Ok(())
}

fn array_from_bytes(b: &[u8], shape: &[i32], dtype: Dtype) -> Result<Array> {
    Ok(match dtype {
        Dtype::Float32 => {
            let v: Vec<f32> = b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            Array::from_slice(&v, shape)
        }
        Dtype::Float16 => {
            let v: Vec<half::f16> = b
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
                .collect();
            Array::from_slice(&v, shape)
        }
        Dtype::Bfloat16 => {
            let v: Vec<half::bf16> = b
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]))
                .collect();
            Array::from_slice(&v, shape)
        }
        d => {
            return Err(Error::new(
                Code::Engine,
                format!("KV cache dtype {d:?} is not saved"),
            ));
        }
    })
}

fn engine(e: mlx_rs::error::Exception) -> Error {
    Error::new(Code::Engine, format!("prefix cache on disk: {e}"))
}

/// A block file: magic, header length and JSON header, each layer's keys then values
/// (`[1, kv_heads, block, head_dim]`, little-endian), and a SHA-256 of all that.
fn encode_block(cache: &KvCache, start: usize, tokens: &[u32]) -> Result<Vec<u8>> {
    let (start, end) = (start as i32, (start + tokens.len()) as i32);
    let first = cache
        .layers
        .first()
        .and_then(|l| l.arrays().next())
        .ok_or_else(|| Error::new(Code::Engine, "an empty KV cache"))?;
    let header = Header {
        tokens: tokens.to_vec(),
        layers: cache.layers.len(),
        kv_heads: first.dim(1),
        head_dim: first.dim(3),
        dtype: format!("{:?}", first.dtype()),
    };
    let header = serde_json::to_vec(&header).map_err(Error::from)?;
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    for layer in &cache.layers {
        let mut arrays = layer.arrays();
        let (Some(k), Some(v)) = (arrays.next(), arrays.next()) else {
            return Err(Error::new(Code::Engine, "a KV cache layer without buffers"));
        };
        for a in [k, v] {
            let part = a.try_index((.., .., start..end, ..)).map_err(engine)?;
            array_bytes(&part, &mut out)?;
        }
    }
    let sum = ring::digest::digest(&SHA256, &out);
    out.extend_from_slice(sum.as_ref());
    Ok(out)
}

fn corrupt(why: impl Into<String>) -> Error {
    Error::new(Code::ModelInvalid, why.into())
}

/// Read and check one block: each layer's (keys, values).
fn read_block(path: &Path, tokens: &[u32], layout: Layout) -> Result<Vec<(Array, Array)>> {
    let el = element_size(layout.dtype).ok_or_else(|| corrupt("an unsupported KV dtype"))?;
    let part = layout.kv_heads as usize * tokens.len() * layout.head_dim as usize * el;
    // The size is known before reading: a planted huge file is not read in.
    let max = MAGIC.len() + 4 + MAX_HEADER + 2 * layout.layers * part + 32;
    let len = std::fs::metadata(path)
        .map_err(|e| io("reading a block", e))?
        .len();
    if len as usize > max {
        return Err(corrupt("a block larger than the model's blocks"));
    }
    let bytes = std::fs::read(path).map_err(|e| io("reading a block", e))?;
    if bytes.len() < MAGIC.len() + 4 + 32 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(corrupt("not a block file"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if ring::digest::digest(&SHA256, body).as_ref() != sum {
        return Err(corrupt("checksum mismatch"));
    }
    let at = MAGIC.len();
    let hlen =
        u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
    if hlen > MAX_HEADER || at + 4 + hlen > body.len() {
        return Err(corrupt("bad header length"));
    }
    let header: Header = serde_json::from_slice(&body[at + 4..at + 4 + hlen])
        .map_err(|e| corrupt(format!("bad header: {e}")))?;
    if header.tokens != tokens {
        return Err(corrupt("tokens differ from the prompt's"));
    }
    if (
        header.layers,
        header.kv_heads,
        header.head_dim,
        header.dtype.as_str(),
    ) != (
        layout.layers,
        layout.kv_heads,
        layout.head_dim,
        format!("{:?}", layout.dtype).as_str(),
    ) {
        return Err(corrupt("made for another cache shape"));
    }
    let data = &body[at + 4 + hlen..];
    if data.len() != 2 * layout.layers * part {
        return Err(corrupt("wrong data length"));
    }
    let shape = [1, layout.kv_heads, tokens.len() as i32, layout.head_dim];
    data.chunks_exact(2 * part)
        .map(|l| {
            Ok((
                array_from_bytes(&l[..part], &shape, layout.dtype)?,
                array_from_bytes(&l[part..], &shape, layout.dtype)?,
            ))
        })
        .collect()
}

/// Blocks (in order) into one cache, with room to grow.
fn assemble(blocks: Vec<Vec<(Array, Array)>>, layers: usize) -> Result<KvCache> {
    let len: i32 = blocks.iter().map(|b| b[0].0.dim(2)).sum();
    let mut cache = KvCache::new(layers);
    for (l, layer) in cache.layers.iter_mut().enumerate() {
        let keys: Vec<&Array> = blocks.iter().map(|b| &b[l].0).collect();
        let values: Vec<&Array> = blocks.iter().map(|b| &b[l].1).collect();
        *layer = LayerCache::from_parts(&keys, &values, len).map_err(engine)?;
    }
    mlx_rs::transforms::eval(cache.arrays()).map_err(engine)?;
    Ok(cache)
}
