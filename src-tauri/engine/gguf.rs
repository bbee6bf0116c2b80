//! A reader for the GGUF container's header: metadata key/values and tensor
//! descriptors, in pure Rust.
//!
//! Why our own parser when MLX loads GGUF: MLX's C API cannot enumerate metadata keys,
//! it reads every tensor (slow for `models import` of a multi-GB file), and its C code
//! is not the place to meet a truncated or hostile file. This reader validates the whole
//! header and checks that every tensor's bytes lie inside the file *before* MLX sees it,
//! so a bad file becomes `model_invalid` / `model_unsupported_quant`, never a crash.
//! MLX still loads the tensors (see `weights.rs`).

use crate::error::{Code, Error, Result};
use std::collections::BTreeMap;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

/// GGUF magic, "GGUF" read as a little-endian u32.
const MAGIC: u32 = 0x4655_4747;
/// Longest metadata string we accept (chat templates are the longest real ones, ~10 KB).
const MAX_STRING: u64 = 16 << 20;

/// A metadata value. Integers of every width are widened; arrays keep their elements.
#[derive(Debug, Clone, PartialEq)]
pub enum MetaValue {
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    String(String),
    Array(Vec<MetaValue>),
}

impl MetaValue {
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            MetaValue::UInt(v) => Some(v),
            MetaValue::Int(v) if v >= 0 => Some(v as u64),
            _ => None,
        }
    }
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            MetaValue::Float(v) => Some(v),
            MetaValue::UInt(v) => Some(v as f64),
            MetaValue::Int(v) => Some(v as f64),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            MetaValue::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetaValue::String(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[MetaValue]> {
        match self {
            MetaValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// GGML tensor types that appear in model files. Only the ones MLX's GGUF loader turns
/// into something we can run are marked supported (see [`GgmlType::supported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GgmlType(pub u32);

impl GgmlType {
    pub const F32: GgmlType = GgmlType(0);
    pub const F16: GgmlType = GgmlType(1);
    pub const Q4_0: GgmlType = GgmlType(2);
    pub const Q4_1: GgmlType = GgmlType(3);
    pub const Q8_0: GgmlType = GgmlType(8);
    pub const BF16: GgmlType = GgmlType(30);

    pub fn name(self) -> String {
        let n = match self.0 {
            0 => "F32",
            1 => "F16",
            2 => "Q4_0",
            3 => "Q4_1",
            6 => "Q5_0",
            7 => "Q5_1",
            8 => "Q8_0",
            9 => "Q8_1",
            10 => "Q2_K",
            11 => "Q3_K",
            12 => "Q4_K",
            13 => "Q5_K",
            14 => "Q6_K",
            15 => "Q8_K",
            16 => "IQ2_XXS",
            17 => "IQ2_XS",
            18 => "IQ3_XXS",
            19 => "IQ1_S",
            20 => "IQ4_NL",
            21 => "IQ3_S",
            22 => "IQ2_S",
            23 => "IQ4_XS",
            24 => "I8",
            25 => "I16",
            26 => "I32",
            27 => "I64",
            28 => "F64",
            29 => "IQ1_M",
            30 => "BF16",
            34 => "TQ1_0",
            35 => "TQ2_0",
            39 => "MXFP4",
            other => return format!("GGML type {other}"),
        };
        n.to_string()
    }

    /// Types MLX loads natively (float) or maps onto its affine quantization.
    pub fn supported(self) -> bool {
        matches!(self.0, 0 | 1 | 2 | 3 | 8 | 30)
    }

    /// Bytes that `n` values of this type take in the file, when the type is known.
    pub fn bytes_for(self, n: u64) -> Option<u64> {
        let (per, bytes) = self.block()?;
        Some(n.div_ceil(per).saturating_mul(bytes))
    }

    /// (elements per block, bytes per block), for the types we can size.
    fn block(self) -> Option<(u64, u64)> {
        Some(match self.0 {
            0 => (1, 4),
            1 | 30 => (1, 2),
            2 => (32, 18),
            3 => (32, 20),
            6 => (32, 22),
            7 => (32, 24),
            8 => (32, 34),
            9 => (32, 36),
            10 => (256, 84),
            11 => (256, 110),
            12 => (256, 144),
            13 => (256, 176),
            14 => (256, 210),
            15 => (256, 292),
            24 => (1, 1),
            25 => (1, 2),
            26 => (1, 4),
            27 | 28 => (1, 8),
            _ => return None,
        })
    }

    /// Bits per weight as MLX stores it (for the quantization label).
    pub fn quant_bits(self) -> Option<u32> {
        match self.0 {
            2 | 3 => Some(4),
            8 => Some(8),
            _ => None,
        }
    }
}

/// One tensor's descriptor. `dims` are GGML order (innermost first), as in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dims: Vec<u64>,
    pub ggml_type: GgmlType,
    /// Offset of the data from the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// The parsed header of a GGUF file.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub version: u32,
    pub metadata: BTreeMap<String, MetaValue>,
    pub tensors: Vec<TensorInfo>,
    pub file_size: u64,
}

impl GgufHeader {
    pub fn get(&self, key: &str) -> Option<&MetaValue> {
        self.metadata.get(key)
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(MetaValue::as_str)
    }
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(MetaValue::as_u64)
    }
    pub fn f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(MetaValue::as_f64)
    }
    pub fn architecture(&self) -> Option<&str> {
        self.str("general.architecture")
    }
    /// `{arch}.{key}`, the per-architecture hyper-parameter namespace.
    pub fn arch_u64(&self, key: &str) -> Option<u64> {
        self.u64(&format!("{}.{key}", self.architecture()?))
    }
    pub fn arch_f64(&self, key: &str) -> Option<f64> {
        self.f64(&format!("{}.{key}", self.architecture()?))
    }
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
    /// The first tensor whose type MLX cannot load, if any.
    pub fn unsupported_tensor(&self) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| !t.ggml_type.supported())
    }
    /// `model_unsupported_quant`, naming the first tensor MLX cannot load.
    pub fn ensure_supported(&self) -> Result<()> {
        match self.unsupported_tensor() {
            None => Ok(()),
            Some(t) => Err(Error::new(
                Code::ModelUnsupportedQuant,
                format!(
                    "tensor {} is {}, which MLX cannot load (supported GGUF types: F32, F16, BF16, Q4_0, Q4_1, Q8_0)",
                    t.name,
                    t.ggml_type.name()
                ),
            )),
        }
    }
    /// Number of weights (logical elements over all tensors).
    pub fn parameters(&self) -> u64 {
        self.tensors.iter().map(TensorInfo::elements).sum()
    }
    /// A short label of the quantization: llama.cpp's file type when present
    /// (e.g. `Q4_1`), else the most common tensor type among 2-D tensors.
    pub fn quantization_label(&self) -> String {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for t in self.tensors.iter().filter(|t| t.dims.len() >= 2) {
            *counts.entry(t.ggml_type.name()).or_default() += t.elements();
        }
        if let Some(ft) = self.u64("general.file_type").and_then(file_type_name) {
            return ft.to_string();
        }
        counts
            .into_iter()
            .max_by_key(|(_, n)| *n)
            .map(|(k, _)| k)
            .unwrap_or_else(|| "F32".into())
    }
}

/// llama.cpp's `general.file_type` enum (`llama_ftype`), the label users know.
fn file_type_name(ft: u64) -> Option<&'static str> {
    Some(match ft {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        32 => "BF16",
        _ => return None,
    })
}

fn invalid(path: &Path, what: impl std::fmt::Display) -> Error {
    Error::new(
        Code::ModelInvalid,
        format!("{} is not a valid GGUF file: {what}", path.display()),
    )
}

/// True if the file starts with the GGUF magic (used to detect the format).
pub fn has_magic(path: &Path) -> bool {
    let mut b = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .map(|_| u32::from_le_bytes(b) == MAGIC)
        .unwrap_or(false)
}

/// Read and validate the header of `path`. Tensor data is not read, only bounds-checked.
pub fn read_header(path: &Path) -> Result<GgufHeader> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::new(
            Code::ModelInvalid,
            format!("cannot open model file {}: {e}", path.display()),
        )
        .with_source(e)
    })?;
    let file_size = file.metadata().map(|m| m.len()).unwrap_or(0);
    parse_from(BufReader::with_capacity(1 << 16, file), file_size, path)
}

/// [`read_header`] over bytes already in memory (the fuzz target's entry point).
pub fn parse_header_bytes(bytes: &[u8]) -> Result<GgufHeader> {
    parse_from(
        std::io::Cursor::new(bytes),
        bytes.len() as u64,
        Path::new("<memory>"),
    )
}

fn parse_from<R: Read + Seek>(inner: R, file_size: u64, path: &Path) -> Result<GgufHeader> {
    let mut r = Reader {
        inner,
        file_size,
        budget: header_budget(file_size),
    };
    parse(&mut r, file_size).map_err(|e| match e {
        ParseError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            invalid(path, "the file is truncated")
        }
        ParseError::Io(e) => invalid(path, e),
        ParseError::Bad(msg) => invalid(path, msg),
    })
}

enum ParseError {
    Io(std::io::Error),
    Bad(String),
}

impl From<std::io::Error> for ParseError {
    fn from(e: std::io::Error) -> Self {
        ParseError::Io(e)
    }
}

type PResult<T> = std::result::Result<T, ParseError>;

fn bad<T>(msg: impl Into<String>) -> PResult<T> {
    Err(ParseError::Bad(msg.into()))
}

struct Reader<R> {
    inner: R,
    file_size: u64,
    /// Bytes of memory the parsed header may still take: twice the file (a real
    /// file's header is a few percent of it), at least 16 MiB. Every metadata value,
    /// string and tensor entry is paid for before it is allocated, so no file makes us
    /// hold many times its own size.
    budget: u64,
}

/// Memory a header may take, for a file of `file_size` bytes.
fn header_budget(file_size: u64) -> u64 {
    file_size.saturating_mul(2).max(16 << 20)
}

impl<R: Read + Seek> Reader<R> {
    fn bytes<const N: usize>(&mut self) -> PResult<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b)?;
        Ok(b)
    }
    fn u8(&mut self) -> PResult<u8> {
        Ok(self.bytes::<1>()?[0])
    }
    fn u32(&mut self) -> PResult<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> PResult<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    /// Pay `bytes` of the header's memory budget.
    fn charge(&mut self, bytes: u64) -> PResult<()> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => bad(format!(
                "the header would take more than {} MiB of memory for a {} MiB file",
                header_budget(self.file_size) >> 20,
                self.file_size >> 20
            )),
        }
    }
    fn string(&mut self) -> PResult<String> {
        let len = self.u64()?;
        if len > MAX_STRING || len > self.file_size {
            return bad(format!("a string claims {len} bytes"));
        }
        self.charge(len)?;
        let mut buf = vec![0u8; len as usize];
        self.inner.read_exact(&mut buf)?;
        String::from_utf8(buf).or_else(|_| bad("a string is not UTF-8"))
    }
    fn position(&mut self) -> PResult<u64> {
        Ok(self.inner.stream_position()?)
    }

    fn value(&mut self, ty: u32, depth: u32) -> PResult<MetaValue> {
        self.charge(std::mem::size_of::<MetaValue>() as u64)?;
        Ok(match ty {
            0 => MetaValue::UInt(self.u8()? as u64),
            1 => MetaValue::Int(self.u8()? as i8 as i64),
            2 => MetaValue::UInt(u16::from_le_bytes(self.bytes()?) as u64),
            3 => MetaValue::Int(i16::from_le_bytes(self.bytes()?) as i64),
            4 => MetaValue::UInt(self.u32()? as u64),
            5 => MetaValue::Int(self.u32()? as i32 as i64),
            6 => MetaValue::Float(f32::from_le_bytes(self.bytes()?) as f64),
            7 => MetaValue::Bool(self.u8()? != 0),
            8 => MetaValue::String(self.string()?),
            9 => {
                if depth > 2 {
                    return bad("metadata arrays nested too deeply");
                }
                let elem = self.u32()?;
                let n = self.u64()?;
                // Every element takes at least one byte: a larger count is a lie.
                if n > self.file_size {
                    return bad(format!("a metadata array claims {n} elements"));
                }
                self.charge(n.saturating_mul(std::mem::size_of::<MetaValue>() as u64))?;
                let mut v = Vec::new();
                v.try_reserve_exact(n as usize)
                    .or_else(|_| bad(format!("no memory for a metadata array of {n} elements")))?;
                for _ in 0..n {
                    v.push(self.value(elem, depth + 1)?);
                }
                MetaValue::Array(v)
            }
            10 => MetaValue::UInt(self.u64()?),
            11 => MetaValue::Int(self.u64()? as i64),
            12 => MetaValue::Float(f64::from_le_bytes(self.bytes()?)),
            other => return bad(format!("unknown metadata value type {other}")),
        })
    }
}

fn parse<R: Read + Seek>(r: &mut Reader<R>, file_size: u64) -> PResult<GgufHeader> {
    if r.u32()? != MAGIC {
        return bad("it does not start with the GGUF magic");
    }
    let version = r.u32()?;
    if !(2..=3).contains(&version) {
        return bad(format!("GGUF version {version} (supported: 2 and 3)"));
    }
    let n_tensors = r.u64()?;
    let n_kv = r.u64()?;
    if n_tensors > file_size || n_kv > file_size {
        return bad("the header's counts exceed the file size");
    }
    let mut metadata = BTreeMap::new();
    for _ in 0..n_kv {
        let key = r.string()?;
        let ty = r.u32()?;
        let value = r.value(ty, 0)?;
        metadata.insert(key, value);
    }
    let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16) as usize);
    for _ in 0..n_tensors {
        r.charge(std::mem::size_of::<TensorInfo>() as u64)?;
        let name = r.string()?;
        let n_dims = r.u32()?;
        if n_dims == 0 || n_dims > 4 {
            return bad(format!("tensor {name} has {n_dims} dimensions"));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(r.u64()?);
        }
        let ggml_type = GgmlType(r.u32()?);
        let offset = r.u64()?;
        tensors.push(TensorInfo {
            name,
            dims,
            ggml_type,
            offset,
        });
    }
    let alignment = metadata
        .get("general.alignment")
        .and_then(MetaValue::as_u64)
        .unwrap_or(32);
    if alignment == 0 || !alignment.is_power_of_two() {
        return bad(format!("alignment {alignment} is not a power of two"));
    }
    let header_end = r.position()?;
    let data_start = header_end.div_ceil(alignment) * alignment;
    for t in &tensors {
        let elements = t
            .dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| ParseError::Bad(format!("tensor {} is impossibly large", t.name)))?;
        // Unknown types cannot be sized; they are refused later as unsupported.
        let Some((per_block, block_bytes)) = t.ggml_type.block() else {
            continue;
        };
        if elements % per_block != 0 {
            return bad(format!(
                "tensor {} has {elements} elements, not a multiple of its block size",
                t.name
            ));
        }
        let end = (elements / per_block)
            .checked_mul(block_bytes)
            .and_then(|n| n.checked_add(t.offset))
            .and_then(|n| n.checked_add(data_start));
        match end {
            Some(end) if end <= file_size => {}
            _ => {
                return bad(format!(
                    "tensor {} extends past the end of the file (is it truncated?)",
                    t.name
                ));
            }
        }
    }
    Ok(GgufHeader {
        version,
        metadata,
        tensors,
        file_size,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds small GGUF files for tests (the format is simple enough to write by hand).
    #[derive(Default)]
    pub struct Builder {
        kv: Vec<(String, Vec<u8>)>,
        tensors: Vec<(String, Vec<u64>, u32, Vec<u8>)>,
    }

    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend((v.len() as u64).to_le_bytes());
        out.extend(v.as_bytes());
    }

    impl Builder {
        pub fn str(mut self, k: &str, v: &str) -> Self {
            let mut b = 8u32.to_le_bytes().to_vec();
            s(&mut b, v);
            self.kv.push((k.into(), b));
            self
        }
        pub fn u32(mut self, k: &str, v: u32) -> Self {
            let mut b = 4u32.to_le_bytes().to_vec();
            b.extend(v.to_le_bytes());
            self.kv.push((k.into(), b));
            self
        }
        pub fn f32(mut self, k: &str, v: f32) -> Self {
            let mut b = 6u32.to_le_bytes().to_vec();
            b.extend(v.to_le_bytes());
            self.kv.push((k.into(), b));
            self
        }
        pub fn strs(mut self, k: &str, v: &[&str]) -> Self {
            let mut b = 9u32.to_le_bytes().to_vec();
            b.extend(8u32.to_le_bytes());
            b.extend((v.len() as u64).to_le_bytes());
            for x in v {
                s(&mut b, x);
            }
            self.kv.push((k.into(), b));
            self
        }
        pub fn i32s(mut self, k: &str, v: &[i32]) -> Self {
            let mut b = 9u32.to_le_bytes().to_vec();
            b.extend(5u32.to_le_bytes());
            b.extend((v.len() as u64).to_le_bytes());
            for x in v {
                b.extend(x.to_le_bytes());
            }
            self.kv.push((k.into(), b));
            self
        }
        pub fn f32s(mut self, k: &str, v: &[f32]) -> Self {
            let mut b = 9u32.to_le_bytes().to_vec();
            b.extend(6u32.to_le_bytes());
            b.extend((v.len() as u64).to_le_bytes());
            for x in v {
                b.extend(x.to_le_bytes());
            }
            self.kv.push((k.into(), b));
            self
        }
        /// An F32 tensor with the given GGML dims, filled with `fill`.
        pub fn f32_tensor(mut self, name: &str, dims: &[u64], fill: f32) -> Self {
            let n: u64 = dims.iter().product();
            let data = (0..n).flat_map(|_| fill.to_le_bytes()).collect();
            self.tensors.push((name.into(), dims.to_vec(), 0, data));
            self
        }
        pub fn raw_tensor(mut self, name: &str, dims: &[u64], ty: u32, data: Vec<u8>) -> Self {
            self.tensors.push((name.into(), dims.to_vec(), ty, data));
            self
        }
        pub fn build(self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend(MAGIC.to_le_bytes());
            out.extend(3u32.to_le_bytes());
            out.extend((self.tensors.len() as u64).to_le_bytes());
            out.extend((self.kv.len() as u64).to_le_bytes());
            for (k, v) in &self.kv {
                s(&mut out, k);
                out.extend(v);
            }
            let mut offset = 0u64;
            let mut offsets = vec![];
            for (name, dims, ty, data) in &self.tensors {
                s(&mut out, name);
                out.extend((dims.len() as u32).to_le_bytes());
                for d in dims {
                    out.extend(d.to_le_bytes());
                }
                out.extend(ty.to_le_bytes());
                out.extend(offset.to_le_bytes());
                offsets.push(offset);
                offset += (data.len() as u64).div_ceil(32) * 32;
            }
            while out.len() % 32 != 0 {
                out.push(0);
            }
            for ((_, _, _, data), off) in self.tensors.iter().zip(offsets) {
                let start = out.len();
                debug_assert_eq!(start % 32, 0);
                let _ = off;
                out.extend(data);
                while out.len() % 32 != 0 {
                    out.push(0);
                }
            }
            out
        }
    }

    fn write(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.gguf");
        std::fs::write(&p, bytes).unwrap();
        (dir, p)
    }

    #[test]
    fn reads_metadata_and_tensor_descriptors() {
        let bytes = Builder::default()
            .str("general.architecture", "llama")
            .u32("llama.block_count", 2)
            .f32("llama.rope.freq_base", 10000.0)
            .strs("tokenizer.ggml.tokens", &["a", "b"])
            .i32s("tokenizer.ggml.token_type", &[1, 3])
            .f32_tensor("output_norm.weight", &[8], 1.0)
            .f32_tensor("token_embd.weight", &[8, 2], 0.5)
            .build();
        let (_d, p) = write(&bytes);
        assert!(has_magic(&p));
        let h = read_header(&p).unwrap();
        assert_eq!(h.architecture(), Some("llama"));
        assert_eq!(h.arch_u64("block_count"), Some(2));
        assert_eq!(h.arch_f64("rope.freq_base"), Some(10000.0));
        assert_eq!(
            h.get("tokenizer.ggml.tokens")
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            2
        );
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.tensor("token_embd.weight").unwrap().dims, vec![8, 2]);
        assert_eq!(h.parameters(), 24);
        assert_eq!(h.quantization_label(), "F32");
        assert!(h.unsupported_tensor().is_none());
    }

    #[test]
    fn truncated_or_foreign_files_are_model_invalid() {
        let bytes = Builder::default()
            .str("general.architecture", "llama")
            .f32_tensor("token_embd.weight", &[64, 4], 0.5)
            .build();
        for cut in [3usize, 20, 60, bytes.len() - 40] {
            let (_d, p) = write(&bytes[..cut]);
            let e = read_header(&p).unwrap_err();
            assert_eq!(e.code, Code::ModelInvalid, "cut at {cut}: {e:?}");
        }
        let (_d, p) = write(b"PK\x03\x04 definitely a zip file, not a model");
        assert!(!has_magic(&p));
        let e = read_header(&p).unwrap_err();
        assert_eq!(e.code, Code::ModelInvalid);
        assert!(e.message.contains("magic"), "{}", e.message);
        let e = read_header(Path::new("/nonexistent/x.gguf")).unwrap_err();
        assert_eq!(e.code, Code::ModelInvalid);
    }

    #[test]
    fn absurd_lengths_are_refused_without_allocating_them() {
        let mut bytes = Vec::new();
        bytes.extend(MAGIC.to_le_bytes());
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend(1u64.to_le_bytes());
        bytes.extend(u64::MAX.to_le_bytes()); // key length
        let (_d, p) = write(&bytes);
        assert_eq!(read_header(&p).unwrap_err().code, Code::ModelInvalid);
    }

    /// A header cut short at every byte is a coded error, never a panic.
    #[test]
    fn truncated_at_every_byte_is_model_invalid() {
        let bytes = Builder::default()
            .str("general.architecture", "llama")
            .u32("llama.block_count", 2)
            .strs("tokenizer.ggml.tokens", &["a", "b", "c"])
            .i32s("tokenizer.ggml.token_type", &[1, 1, 1])
            .raw_tensor("blk.0.attn_q.weight", &[256, 1], 12, vec![0; 144])
            .build();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cut.gguf");
        for len in 0..bytes.len() - 144 {
            std::fs::write(&p, &bytes[..len]).unwrap();
            let e = read_header(&p).unwrap_err();
            assert_eq!(e.code, Code::ModelInvalid, "cut at {len}: {e}");
        }
    }

    /// One-byte array elements that would each take a 32-byte value in memory: a
    /// 1 MiB file may not make us hold 32 MiB.
    #[test]
    fn metadata_may_not_take_many_times_the_files_size() {
        let n: u64 = 1 << 20;
        let mut bytes = Vec::new();
        bytes.extend(MAGIC.to_le_bytes());
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(0u64.to_le_bytes()); // tensors
        bytes.extend(1u64.to_le_bytes()); // key/values
        bytes.extend(3u64.to_le_bytes());
        bytes.extend(b"arr");
        bytes.extend(9u32.to_le_bytes()); // array
        bytes.extend(0u32.to_le_bytes()); // of u8
        bytes.extend(n.to_le_bytes());
        bytes.extend(std::iter::repeat_n(7u8, n as usize));
        let (_d, p) = write(&bytes);
        let e = read_header(&p).unwrap_err();
        assert_eq!(e.code, Code::ModelInvalid);
        assert!(e.message.contains("memory"), "{e}");
    }

    /// The GGUF header parser under mutation: `Ok` or `model_invalid`, never a panic.
    #[test]
    fn fuzz_gguf_header() {
        let seeds = vec![
            Builder::default()
                .str("general.architecture", "llama")
                .u32("llama.block_count", 2)
                .f32("llama.rope.freq_base", 10000.0)
                .strs("tokenizer.ggml.tokens", &["a", "b", "<s>"])
                .i32s("tokenizer.ggml.token_type", &[1, 1, 3])
                .raw_tensor("blk.0.attn_q.weight", &[32, 2], 0, vec![0; 256])
                .raw_tensor("output.weight", &[256, 1], 12, vec![0; 144])
                .build(),
            Builder::default()
                .str("general.architecture", "qwen2")
                .build(),
        ];
        let n = crate::engine::fuzz::run("gguf_header", &seeds, |bytes| {
            if let Err(e) = parse_header_bytes(bytes) {
                assert_eq!(e.code, Code::ModelInvalid, "{e}");
            }
        });
        assert!(n > 0);
    }

    #[test]
    fn k_quant_tensors_are_reported_as_unsupported() {
        // Q4_K: 256 elements in 144 bytes.
        let bytes = Builder::default()
            .str("general.architecture", "llama")
            .raw_tensor("blk.0.attn_q.weight", &[256, 1], 12, vec![0; 144])
            .build();
        let (_d, p) = write(&bytes);
        let h = read_header(&p).unwrap();
        assert_eq!(h.unsupported_tensor().unwrap().ggml_type.name(), "Q4_K");
    }
}
