//! Tokenizers: `tokenizer.json` from a model folder, or one built from a GGUF file's
//! `tokenizer.ggml.*` metadata, plus the facts generation needs (BOS/EOS, stop ids,
//! chat template).
//!
//! A GGUF tokenizer is built as a Hugging Face `tokenizer.json` document and handed to
//! the `tokenizers` crate, so both paths run the same, well-tested encoder. The
//! document mirrors what llama.cpp's vocabulary means:
//! - `gpt2` (byte-level BPE: SmolLM, Llama 3, Qwen): vocab + merges, the pre-tokenizer
//!   chosen by `tokenizer.ggml.pre` (digits split for `smollm`/`starcoder`, the Llama 3
//!   and Qwen2 regexes, plain GPT-2 otherwise), CONTROL and USER_DEFINED tokens as
//!   special added tokens;
//! - `llama` (SentencePiece BPE: Llama 2, Mistral): byte fallback, `▁` for spaces, merges
//!   derived from the token scores (a merge's rank is the score of the token it makes).

use super::gguf::{GgufHeader, MetaValue};
use crate::error::{Code, Error, Result};
use serde_json::{Value, json};
use std::path::Path;

/// llama.cpp token types (`llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// A model's tokenizer and its special tokens.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    /// Generation stops on any of these.
    pub eos_ids: Vec<u32>,
    pub chat_template: Option<String>,
    /// Decode control tokens as text too (harmony's markers are the structure of the
    /// answer; see `harmony.rs`).
    pub keep_special: bool,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("vocab", &self.vocab_size())
            .field("bos", &self.bos_token)
            .field("eos", &self.eos_token)
            .field("eos_ids", &self.eos_ids)
            .finish()
    }
}

fn tk_err(what: &str) -> impl FnOnce(tokenizers::Error) -> Error + '_ {
    move |e| Error::new(Code::ModelInvalid, format!("{what}: {e}"))
}

impl TextTokenizer {
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Encode text. `add_special_tokens` applies the tokenizer's post-processor (e.g. a
    /// BOS); rendered chat templates already contain their special tokens, so they are
    /// encoded without.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        self.inner
            .encode_fast(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| Error::new(Code::Engine, format!("tokenization failed: {e}")))
    }

    /// A model whose chat format is harmony: its control tokens are kept in the text,
    /// and both of its stop tokens end a generation (some folders name only one EOS).
    pub fn speak_harmony(&mut self) {
        self.keep_special = true;
        for t in super::harmony::STOP_TOKENS {
            if let Some(id) = self.inner.token_to_id(t) {
                push_unique(&mut self.eos_ids, id);
            }
        }
    }

    /// Decode ids; special tokens (BOS, EOS, control tokens) are left out unless the
    /// model's format needs them (`keep_special`).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, !self.keep_special)
            .map_err(|e| Error::new(Code::Engine, format!("detokenization failed: {e}")))
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// From a model folder: `tokenizer.json`, `tokenizer_config.json` (special tokens,
    /// chat template), `chat_template.jinja`, and EOS ids from `generation_config.json`
    /// and `config.json`.
    pub fn from_folder(dir: &Path, config: &Value) -> Result<Self> {
        let tj = dir.join("tokenizer.json");
        if !tj.is_file() {
            return Err(Error::new(
                Code::ModelInvalid,
                format!("{} has no tokenizer.json", dir.display()),
            ));
        }
        let inner = tokenizers::Tokenizer::from_file(&tj).map_err(|e| {
            Error::new(
                Code::ModelInvalid,
                format!("{} cannot be read: {e}", tj.display()),
            )
        })?;
        let tc = read_json_opt(&dir.join("tokenizer_config.json"))?.unwrap_or(Value::Null);
        let token_str = |k: &str| -> Option<String> {
            match tc.get(k)? {
                Value::String(s) => Some(s.clone()),
                Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
                _ => None,
            }
        };
        let bos_token = token_str("bos_token");
        let eos_token = token_str("eos_token");
        let mut chat_template = match tc.get("chat_template") {
            Some(Value::String(s)) => Some(s.clone()),
            // A list of named templates: the "default" one is for chat.
            Some(Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(Value::as_str)
                .map(str::to_string),
            _ => None,
        };
        let jinja = dir.join("chat_template.jinja");
        if chat_template.is_none() && jinja.is_file() {
            chat_template = Some(std::fs::read_to_string(&jinja).map_err(|e| {
                Error::new(
                    Code::ModelInvalid,
                    format!("cannot read {}: {e}", jinja.display()),
                )
            })?);
        }
        let mut eos_ids = Vec::new();
        let generation = read_json_opt(&dir.join("generation_config.json"))?.unwrap_or(Value::Null);
        for v in [generation.get("eos_token_id"), config.get("eos_token_id")]
            .into_iter()
            .flatten()
        {
            collect_ids(v, &mut eos_ids);
        }
        if let Some(id) = eos_token.as_deref().and_then(|t| inner.token_to_id(t)) {
            push_unique(&mut eos_ids, id);
        }
        Ok(TextTokenizer {
            inner,
            bos_token,
            eos_token,
            eos_ids,
            chat_template,
            keep_special: false,
        })
    }

    /// From GGUF metadata.
    pub fn from_gguf(h: &GgufHeader) -> Result<Self> {
        let (doc, specials) = gguf_tokenizer_json(h)?;
        let bytes = serde_json::to_vec(&doc)?;
        let inner = tokenizers::Tokenizer::from_bytes(&bytes).map_err(tk_err(
            "the GGUF tokenizer metadata does not make a valid tokenizer",
        ))?;
        let tokens = specials;
        let name = |key: &str| -> Option<String> {
            let id = h.u64(&format!("tokenizer.ggml.{key}_token_id"))?;
            tokens.get(id as usize).cloned()
        };
        let bos_token = name("bos");
        let eos_token = name("eos");
        let mut eos_ids = Vec::new();
        for key in ["eos", "eot", "eom"] {
            if let Some(id) = h.u64(&format!("tokenizer.ggml.{key}_token_id")) {
                push_unique(&mut eos_ids, id as u32);
            }
        }
        Ok(TextTokenizer {
            inner,
            bos_token,
            eos_token,
            eos_ids,
            chat_template: h.str("tokenizer.chat_template").map(str::to_string),
            keep_special: false,
        })
    }
}

fn push_unique(v: &mut Vec<u32>, id: u32) {
    if !v.contains(&id) {
        v.push(id);
    }
}

fn collect_ids(v: &Value, out: &mut Vec<u32>) {
    match v {
        Value::Number(n) => {
            if let Some(id) = n.as_u64() {
                push_unique(out, id as u32);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_ids(x, out)),
        _ => {}
    }
}

pub(crate) fn read_json_opt(path: &Path) -> Result<Option<Value>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                Code::ModelInvalid,
                format!("{} is not valid JSON: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::new(
            Code::ModelInvalid,
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

fn strings(h: &GgufHeader, key: &str) -> Result<Vec<String>> {
    let arr = h
        .get(key)
        .and_then(MetaValue::as_array)
        .ok_or_else(|| Error::new(Code::ModelInvalid, format!("GGUF has no {key}")))?;
    arr.iter()
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .ok_or_else(|| Error::new(Code::ModelInvalid, format!("{key} holds a non-string")))
        })
        .collect()
}

fn ints(h: &GgufHeader, key: &str) -> Vec<i64> {
    h.get(key)
        .and_then(MetaValue::as_array)
        .map(|a| {
            a.iter()
                .map(|v| match v {
                    MetaValue::Int(i) => *i,
                    MetaValue::UInt(u) => *u as i64,
                    _ => 0,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn floats(h: &GgufHeader, key: &str) -> Vec<f64> {
    h.get(key)
        .and_then(MetaValue::as_array)
        .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect())
        .unwrap_or_default()
}

fn byte_level() -> Value {
    json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
}

/// The pre-tokenizer llama.cpp applies for `tokenizer.ggml.pre`.
fn gpt2_pre_tokenizer(pre: &str) -> Result<Value> {
    let split = |re: &str| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
        ]})
    };
    Ok(match pre {
        "default" | "gpt2" | "gpt-2" | "mpt" | "olmo" => byte_level(),
        // llama.cpp splits every \p{N} on its own before the GPT-2 regex.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" => {
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, byte_level()
            ]})
        }
        "llama3" | "llama-bpe" | "llama-v3" | "smaug-bpe" => split(LLAMA3_REGEX),
        "qwen2" | "deepseek-r1-qwen" => split(QWEN2_REGEX),
        other => {
            return Err(Error::new(
                Code::ModelUnsupportedArch,
                format!(
                    "GGUF pre-tokenizer '{other}' is not supported (supported: gpt2, smollm/starcoder, llama3, qwen2)"
                ),
            ));
        }
    })
}

/// The `tokenizer.json` document equivalent to the GGUF vocabulary, and the token list.
pub fn gguf_tokenizer_json(h: &GgufHeader) -> Result<(Value, Vec<String>)> {
    let model = h.str("tokenizer.ggml.model").unwrap_or("gpt2");
    let tokens = strings(h, "tokenizer.ggml.tokens")?;
    let types = ints(h, "tokenizer.ggml.token_type");
    let mut vocab = serde_json::Map::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        // Duplicate strings (a few SentencePiece vocabularies have them) keep the first id.
        vocab.entry(t.clone()).or_insert(json!(i));
    }
    let added: Vec<Value> = types
        .iter()
        .enumerate()
        .filter(|(_, t)| **t == TOKEN_TYPE_CONTROL || **t == TOKEN_TYPE_USER_DEFINED)
        .filter_map(|(i, _)| tokens.get(i).map(|c| (i, c)))
        .map(|(i, content)| {
            json!({"id": i, "content": content, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let flag = |k: &str| h.get(k).and_then(MetaValue::as_bool);
    let bos = h
        .u64("tokenizer.ggml.bos_token_id")
        .and_then(|id| tokens.get(id as usize).map(|t| (id, t.clone())));
    let bos_post = |default: bool| -> Value {
        match (
            &bos,
            flag("tokenizer.ggml.add_bos_token").unwrap_or(default),
        ) {
            (Some((id, tok)), true) => json!({
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": tok, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": tok, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {tok.as_str(): {"id": tok, "ids": [id], "tokens": [tok]}}
            }),
            _ => Value::Null,
        }
    };
    let doc = match model {
        "gpt2" => {
            let merges: Vec<Value> = strings(h, "tokenizer.ggml.merges")?
                .iter()
                .map(|m| {
                    let (a, b) = m.split_once(' ').unwrap_or((m.as_str(), ""));
                    json!([a, b])
                })
                .collect();
            let pre = h.str("tokenizer.ggml.pre").unwrap_or("default");
            let post = match bos_post(false) {
                Value::Null => {
                    json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
                }
                v => v,
            };
            json!({
                "version": "1.0", "truncation": null, "padding": null,
                "added_tokens": added, "normalizer": null,
                "pre_tokenizer": gpt2_pre_tokenizer(pre)?,
                "post_processor": post,
                "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
                "model": {"type": "BPE", "dropout": null, "unk_token": null,
                          "continuing_subword_prefix": null, "end_of_word_suffix": null,
                          "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                          "vocab": vocab, "merges": merges}
            })
        }
        "llama" => {
            let scores = floats(h, "tokenizer.ggml.scores");
            let merges = spm_merges(&tokens, &scores);
            let unk = h
                .u64("tokenizer.ggml.unknown_token_id")
                .and_then(|id| tokens.get(id as usize).cloned());
            json!({
                "version": "1.0", "truncation": null, "padding": null,
                "added_tokens": added,
                "normalizer": {"type": "Sequence", "normalizers": [
                    {"type": "Prepend", "prepend": "▁"},
                    {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}
                ]},
                "pre_tokenizer": null,
                "post_processor": bos_post(true),
                "decoder": {"type": "Sequence", "decoders": [
                    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
                    {"type": "ByteFallback"}, {"type": "Fuse"},
                    {"type": "Strip", "content": " ", "start": 1, "stop": 0}
                ]},
                "model": {"type": "BPE", "dropout": null, "unk_token": unk,
                          "continuing_subword_prefix": null, "end_of_word_suffix": null,
                          "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
                          "vocab": vocab, "merges": merges}
            })
        }
        other => {
            return Err(Error::new(
                Code::ModelUnsupportedArch,
                format!("GGUF tokenizer model '{other}' is not supported (supported: gpt2, llama)"),
            ));
        }
    };
    Ok((doc, tokens))
}

/// SentencePiece BPE merges from scores: every split of a vocabulary token into two
/// vocabulary tokens is a merge, ranked by the merged token's score (best first), as
/// llama.cpp's tokenizer prioritises bigrams.
pub fn spm_merges(tokens: &[String], scores: &[f64]) -> Vec<Value> {
    let index: std::collections::HashMap<&str, usize> = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.as_str(), i))
        .collect();
    let mut merges: Vec<(f64, usize, usize, usize)> = Vec::new();
    for (id, t) in tokens.iter().enumerate() {
        let score = scores.get(id).copied().unwrap_or(0.0);
        for (cut, _) in t.char_indices().skip(1) {
            let (l, r) = t.split_at(cut);
            if let (Some(&li), Some(&ri)) = (index.get(l), index.get(r)) {
                merges.push((score, id, li, ri));
            }
        }
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    merges
        .into_iter()
        .map(|(_, _, l, r)| json!([tokens[l], tokens[r]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::gguf::{self, tests::Builder};

    fn header(b: Builder) -> (tempfile::TempDir, GgufHeader) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.gguf");
        std::fs::write(&p, b.build()).unwrap();
        let h = gguf::read_header(&p).unwrap();
        (dir, h)
    }

    /// The 256 byte-level symbols GPT-2 uses, so any text can be encoded.
    fn byte_symbols() -> Vec<String> {
        let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
            .chain(0xA1..=0xAC)
            .chain(0xAE..=0xFF)
            .collect();
        let mut cs = bs.clone();
        let mut n = 0;
        for b in 0..256u32 {
            if !bs.contains(&b) {
                bs.push(b);
                cs.push(256 + n);
                n += 1;
            }
        }
        let mut pairs: Vec<(u32, u32)> = bs.into_iter().zip(cs).collect();
        pairs.sort();
        pairs
            .into_iter()
            .map(|(_, c)| char::from_u32(c).unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_gpt2_gguf_vocabulary_tokenizes_with_merges_digits_and_specials() {
        let mut tokens = vec!["<|endoftext|>".to_string(), "<|im_end|>".to_string()];
        tokens.extend(byte_symbols());
        tokens.push("he".into());
        tokens.push("hel".into());
        tokens.push("Ġ1".into()); // must never be produced: digits are split first
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mut types = vec![3, 3];
        types.extend(std::iter::repeat_n(1, tokens.len() - 2));
        let (_d, h) = header(
            Builder::default()
                .str("general.architecture", "llama")
                .str("tokenizer.ggml.model", "gpt2")
                .str("tokenizer.ggml.pre", "smollm")
                .strs("tokenizer.ggml.tokens", &refs)
                .i32s("tokenizer.ggml.token_type", &types)
                .strs("tokenizer.ggml.merges", &["h e", "he l", "Ġ 1"])
                .u32("tokenizer.ggml.eos_token_id", 1)
                .u32("tokenizer.ggml.bos_token_id", 1),
        );
        let t = TextTokenizer::from_gguf(&h).unwrap();
        assert_eq!(t.eos_ids, vec![1]);
        assert_eq!(t.eos_token.as_deref(), Some("<|im_end|>"));
        let id = |s: &str| t.token_to_id(s).unwrap();
        assert_eq!(
            t.encode("hello", true).unwrap(),
            vec![id("hel"), id("l"), id("o")]
        );
        // " 1": the digit is its own pre-token, so "Ġ1" never forms.
        assert_eq!(t.encode(" 1", false).unwrap(), vec![id("Ġ"), id("1")]);
        // Special tokens are matched verbatim and skipped on decode.
        let ids = t.encode("hi<|im_end|>", false).unwrap();
        assert_eq!(ids.last(), Some(&1));
        assert_eq!(t.decode(&ids).unwrap(), "hi");
        // Byte-level round trip of non-ASCII text.
        let ids = t.encode("naïve 👋", false).unwrap();
        assert_eq!(t.decode(&ids).unwrap(), "naïve 👋");
    }

    #[test]
    fn a_sentencepiece_gguf_vocabulary_uses_scores_bos_and_byte_fallback() {
        let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
        tokens.extend((0..256).map(|b| format!("<0x{b:02X}>")));
        for t in ["▁", "h", "i", "▁h", "▁hi", "hi"] {
            tokens.push(t.into());
        }
        let mut scores = vec![0.0f32; tokens.len()];
        let n = tokens.len();
        scores[n - 2] = -1.0; // "▁hi" preferred over "hi"
        scores[n - 1] = -5.0;
        let mut types = vec![2, 3, 3];
        types.extend(std::iter::repeat_n(6, 256));
        types.extend(std::iter::repeat_n(1, 6));
        let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
        let mut b = Builder::default()
            .str("general.architecture", "llama")
            .str("tokenizer.ggml.model", "llama")
            .strs("tokenizer.ggml.tokens", &refs)
            .i32s("tokenizer.ggml.token_type", &types)
            .u32("tokenizer.ggml.bos_token_id", 1)
            .u32("tokenizer.ggml.eos_token_id", 2)
            .u32("tokenizer.ggml.unknown_token_id", 0);
        // scores as an f32 array
        b = b.f32s("tokenizer.ggml.scores", &scores);
        let (_d, h) = header(b);
        let t = TextTokenizer::from_gguf(&h).unwrap();
        let id = |s: &str| t.token_to_id(s).unwrap();
        assert_eq!(t.encode("hi", true).unwrap(), vec![1, id("▁hi")]);
        // "é" is not in the vocabulary: it falls back to its two UTF-8 bytes.
        let ids = t.encode("é", false).unwrap();
        assert_eq!(ids, vec![id("▁"), id("<0xC3>"), id("<0xA9>")]);
        assert_eq!(t.decode(&ids).unwrap(), "é");
        assert_eq!(
            t.decode(&t.encode("hi hi", true).unwrap()).unwrap(),
            "hi hi"
        );
    }

    #[test]
    fn unknown_pre_tokenizers_and_models_are_refused_by_name() {
        let (_d, h) = header(
            Builder::default()
                .str("tokenizer.ggml.model", "gpt2")
                .str("tokenizer.ggml.pre", "tekken")
                .strs("tokenizer.ggml.tokens", &["a"])
                .strs("tokenizer.ggml.merges", &[]),
        );
        let e = TextTokenizer::from_gguf(&h).unwrap_err();
        assert_eq!(e.code, Code::ModelUnsupportedArch);
        assert!(e.message.contains("tekken"));
        let (_d, h) = header(
            Builder::default()
                .str("tokenizer.ggml.model", "t5")
                .strs("tokenizer.ggml.tokens", &["a"]),
        );
        assert!(
            TextTokenizer::from_gguf(&h)
                .unwrap_err()
                .message
                .contains("t5")
        );
    }

    #[test]
    fn llama3_and_qwen2_pre_tokenizers_group_digits_differently() {
        use tokenizers::{PreTokenizedString, PreTokenizer, pre_tokenizers::PreTokenizerWrapper};
        let split = |pre: &str, text: &str| -> Vec<String> {
            let pt: PreTokenizerWrapper =
                serde_json::from_value(gpt2_pre_tokenizer(pre).unwrap()).unwrap();
            let mut s = PreTokenizedString::from(text);
            pt.pre_tokenize(&mut s).unwrap();
            s.get_splits(
                tokenizers::OffsetReferential::Original,
                tokenizers::OffsetType::Byte,
            )
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect()
        };
        assert_eq!(split("llama3", "12345"), vec!["123", "45"]);
        assert_eq!(split("qwen2", "123"), vec!["1", "2", "3"]);
        assert_eq!(split("gpt2", "a 12"), vec!["a", "Ġ12"]);
        assert_eq!(split("smollm", "a 12"), vec!["a", "Ġ", "1", "2"]);
    }
}
