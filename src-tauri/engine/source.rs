//! What a path on disk is: a GGUF file or a model folder, and what it holds
//! (architecture, size, quantization, context) — read from headers and JSON only, no
//! weights and no MLX, so `models import` of a large file is instant.

use super::config::ModelConfig;
use super::gguf::{self, GgufHeader};
use super::weights::{read_safetensors_header, safetensors_files};
use crate::error::{Code, Error, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelFormat {
    /// A single `.gguf` file.
    Gguf,
    /// An MLX / Hugging Face folder: `config.json`, `*.safetensors`, `tokenizer.json`.
    Mlx,
}

impl ModelFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelFormat::Gguf => "gguf",
            ModelFormat::Mlx => "mlx",
        }
    }
}

/// The facts the model registry stores about a model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelMetadata {
    /// Absolute path of the file or folder.
    pub path: PathBuf,
    pub format: ModelFormat,
    /// A default display name: GGUF file stem or folder name.
    pub name: String,
    pub architecture: String,
    /// Number of weights (quantized weights count as the values they stand for).
    pub parameters: Option<u64>,
    /// Mixture-of-experts models: the shared weights plus `experts_per_token` of the
    /// experts (what one token runs through). `None` for dense models.
    pub active_parameters: Option<u64>,
    /// `Q4_1`, `F16`, `4bit-g64`, `bf16`, … (`mixed` lists the default first).
    pub quantization: Option<String>,
    pub size_bytes: u64,
    pub context_length: Option<u32>,
}

/// A model on disk, opened far enough to know its format and configuration.
pub enum Source {
    Gguf {
        path: PathBuf,
        header: Box<GgufHeader>,
    },
    Folder {
        path: PathBuf,
        config_json: serde_json::Value,
    },
}

impl Source {
    /// Identify `path`. A missing path, a file that is neither GGUF nor a folder with
    /// `config.json`, or an unreadable header is `model_invalid`.
    pub fn open(path: &Path) -> Result<Self> {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let meta = std::fs::metadata(&path).map_err(|e| {
            Error::new(
                Code::ModelInvalid,
                format!("model path {} cannot be read: {e}", path.display()),
            )
        })?;
        if meta.is_dir() {
            let cfg = path.join("config.json");
            let config_json = super::tokenizer::read_json_opt(&cfg)?.ok_or_else(|| {
                Error::new(
                    Code::ModelInvalid,
                    format!(
                        "{} is not a model folder: it has no config.json",
                        path.display()
                    ),
                )
            })?;
            return Ok(Source::Folder { path, config_json });
        }
        if gguf::has_magic(&path) {
            let header = Box::new(gguf::read_header(&path)?);
            return Ok(Source::Gguf { path, header });
        }
        let hint = if path.extension().is_some_and(|e| e == "safetensors") {
            ": pass the folder that holds it with config.json and tokenizer.json"
        } else {
            " (expected a .gguf file or a model folder)"
        };
        Err(Error::new(
            Code::ModelInvalid,
            format!("{} is not a model file{hint}", path.display()),
        ))
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Gguf { path, .. } | Source::Folder { path, .. } => path,
        }
    }

    pub fn format(&self) -> ModelFormat {
        match self {
            Source::Gguf { .. } => ModelFormat::Gguf,
            Source::Folder { .. } => ModelFormat::Mlx,
        }
    }

    /// Hyper-parameters, validated (unknown architectures are refused here).
    pub fn config(&self) -> Result<ModelConfig> {
        match self {
            Source::Gguf { header, .. } => ModelConfig::from_gguf(header),
            Source::Folder { config_json, .. } => ModelConfig::from_hf(config_json),
        }
    }

    /// Everything the registry stores, without reading weights.
    pub fn metadata(&self) -> Result<ModelMetadata> {
        let config = self.config()?;
        let path = self.path().to_path_buf();
        let stem = |p: &Path| {
            p.file_stem()
                .or(p.file_name())
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        };
        match self {
            Source::Gguf { header, .. } => {
                header.ensure_supported()?;
                Ok(ModelMetadata {
                    name: stem(&path),
                    format: ModelFormat::Gguf,
                    architecture: config.arch.as_str().into(),
                    parameters: Some(header.parameters()),
                    active_parameters: None,
                    quantization: Some(header.quantization_label()),
                    size_bytes: header.file_size,
                    context_length: Some(config.context_length),
                    path,
                })
            }
            Source::Folder { .. } => {
                let mut params = 0u64;
                // Parameters of the experts (stacked `switch_mlp` or per-expert tensors).
                let mut expert_params = 0u64;
                let mut float_dtype: Option<String> = None;
                for f in safetensors_files(&path)? {
                    for (name, t) in read_safetensors_header(&f)? {
                        let n: u64 = t.shape.iter().product();
                        if name.ends_with(".scales") || name.ends_with(".biases") {
                            continue;
                        }
                        // A multimodal checkpoint: the language model's parameters only.
                        let name = if config.text_of_multimodal {
                            match super::config::text_tensor_name(&name) {
                                Some(n) => n,
                                None => continue,
                            }
                        } else {
                            name
                        };
                        let module = name.strip_suffix(".weight").unwrap_or(&name);
                        let count = match (t.dtype.as_str(), config.quantization.for_module(module))
                        {
                            ("U32", Some(q)) => n * 32 / q.bits as u64,
                            (dt @ ("F16" | "BF16" | "F32"), _) => {
                                if name.ends_with(".weight") && t.shape.len() == 2 {
                                    float_dtype.get_or_insert_with(|| dt.to_ascii_lowercase());
                                }
                                n
                            }
                            _ => n,
                        };
                        params += count;
                        if name.contains(".switch_mlp.") || name.contains(".experts.") {
                            expert_params += count;
                        }
                    }
                }
                let active_parameters = config.moe.as_ref().map(|m| {
                    let per_token =
                        expert_params / m.num_experts.max(1) as u64 * m.experts_per_token as u64;
                    params - expert_params + per_token
                });
                let q = &config.quantization;
                let quantization = match q.default {
                    Some(d) => {
                        let mixed = q.per_module.values().any(|s| *s != Some(d));
                        Some(format!(
                            "{}bit-g{}{}",
                            d.bits,
                            d.group_size,
                            if mixed { "-mixed" } else { "" }
                        ))
                    }
                    None => float_dtype,
                };
                Ok(ModelMetadata {
                    name: stem(&path),
                    format: ModelFormat::Mlx,
                    architecture: config.arch.as_str().into(),
                    parameters: Some(params),
                    active_parameters,
                    quantization,
                    size_bytes: dir_size(&path),
                    context_length: Some(config.context_length),
                    path,
                })
            }
        }
    }
}

/// Bytes of the regular files directly in `dir` (a model folder is flat).
fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            // Through symlinks: a Hugging Face cache snapshot is links into `blobs/`.
            rd.flatten()
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// [`Source::open`] + [`Source::metadata`].
pub fn inspect(path: &Path) -> Result<ModelMetadata> {
    Source::open(path)?.metadata()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_paths_and_foreign_files_are_model_invalid() {
        let dir = tempfile::tempdir().unwrap();
        let e = inspect(&dir.path().join("nope.gguf")).err().unwrap();
        assert_eq!(e.code, Code::ModelInvalid);
        let txt = dir.path().join("notes.txt");
        std::fs::write(&txt, "hello").unwrap();
        let e = inspect(&txt).err().unwrap();
        assert_eq!(e.code, Code::ModelInvalid);
        assert!(e.message.contains("not a model file"));
        // A folder without config.json.
        let e = inspect(dir.path()).err().unwrap();
        assert_eq!(e.code, Code::ModelInvalid);
        assert!(e.message.contains("config.json"));
    }

    #[test]
    fn a_folder_with_an_unknown_architecture_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"model_type": "gpt_neox", "hidden_size": 8}"#,
        )
        .unwrap();
        let e = inspect(dir.path()).err().unwrap();
        assert_eq!(e.code, Code::ModelUnsupportedArch);
        assert!(e.message.contains("gpt_neox"));
    }
}
