//! Same-protocol passthrough: an Anthropic client routed to an Anthropic provider, or an
//! OpenAI client routed to an OpenAI(-compatible) provider, gets its own JSON forwarded
//! with only `model` replaced, and the upstream's bytes back unchanged.
//!
//! Why not decode and re-encode: fields newer than our types (new thinking modes, server
//! tools, documents, betas) must keep working on the day a client starts sending them,
//! and a byte-exact body is the only way to be sure nothing was lost or reordered.
//!
//! So this module does not parse the body into a tree. [`peek`] scans the top-level
//! object once, reading `model` and `stream` and remembering where their values are;
//! [`Peek::rewrite`] splices a new model name (and, for OpenAI chat streams, the
//! `stream_options.include_usage` the request log needs) into the original bytes.
//! [`StreamTap`] and [`usage_of_json`] read usage on the side as the answer passes by.
//!
//! Hostile input: the scanner is linear, allocation-light, and refuses what could make the
//! gateway and the upstream read different models (a second `model` key, escaped or not).

use super::canonical::Usage;
use super::sse;
use crate::error::{Code, Error, Result};
use bytes::Bytes;
use serde::Deserialize;
use std::ops::Range;

/// What the gateway reads of a client body before routing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peek {
    pub model: String,
    pub stream: bool,
    /// `stream_options.include_usage` as the client set it.
    pub include_usage: bool,
    model_span: Range<usize>,
    stream_options_span: Option<Range<usize>>,
    /// Members to leave out (with one adjacent comma): endpoints and credentials a
    /// client put in its body.
    strip: Vec<Range<usize>>,
    /// Index of the top-level object's closing `}`.
    close: usize,
}

/// Top-level body fields never forwarded (security.md: client-supplied endpoints and
/// credentials are ignored). They cannot change where a request goes — the gateway never
/// reads them — and a credential must not reach a third party.
pub const NEVER_FORWARDED: [&str; 3] = ["api_key", "api_base", "base_url"];

fn bad(msg: impl Into<String>) -> Error {
    Error::new(Code::InvalidRequest, msg)
}

/// The longest model name accepted (real ones are under 100 bytes).
pub const MODEL_NAME_BYTES: usize = 256;

/// A model name is printable text of bounded length: it is matched against every rule,
/// logged, and shown by `switchyard logs`, so control characters (terminal escapes,
/// newlines that would forge log lines) and megabyte names are refused up front.
pub fn check_model_name(name: &str) -> Result<()> {
    if name.len() > MODEL_NAME_BYTES {
        return Err(bad(format!(
            "`model` is {} bytes long; at most {MODEL_NAME_BYTES}",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("`model` contains control characters"));
    }
    Ok(())
}

/// Scan the top level of a JSON request body.
pub fn peek(body: &[u8]) -> Result<Peek> {
    let mut s = Scanner { b: body, i: 0 };
    s.ws();
    if s.next() != Some(b'{') {
        return Err(bad("the request body must be a JSON object"));
    }
    let mut model: Option<(String, Range<usize>)> = None;
    let mut stream = false;
    let mut stream_options: Option<Range<usize>> = None;
    // Every member's span (key start .. value end), and whether it is to be left out.
    let mut members: Vec<(Range<usize>, bool)> = Vec::new();
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.ws();
            let key = s.string()?;
            s.ws();
            if s.next() != Some(b':') {
                return Err(bad("invalid JSON: expected `:` after an object key"));
            }
            s.ws();
            let value = s.value()?;
            let name = key_name(&body[key.clone()])?;
            members.push((
                key.start..value.end,
                name.as_deref()
                    .is_some_and(|n| NEVER_FORWARDED.contains(&n)),
            ));
            match name.as_deref() {
                Some("model") => {
                    if model.is_some() {
                        return Err(bad("the request has more than one `model` field"));
                    }
                    let raw = &body[value.clone()];
                    let name: String =
                        serde_json::from_slice(raw).map_err(|_| bad("`model` must be a string"))?;
                    check_model_name(&name)?;
                    model = Some((name, value));
                }
                Some("stream") => stream = &body[value] == b"true",
                Some("stream_options") => stream_options = Some(value),
                _ => {}
            }
            s.ws();
            match s.next() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => {
                    return Err(bad(
                        "invalid JSON: expected `,` or `}` in the request object",
                    ));
                }
            }
        }
    }
    let close = s.i - 1;
    s.ws();
    if s.i != body.len() {
        return Err(bad("invalid JSON: text after the request object"));
    }
    let Some((model, model_span)) = model else {
        return Err(bad("model: Field required"));
    };
    // Leave each run of such members out with the comma after it, or — a run at the
    // end — the comma before it.
    let mut strip = Vec::new();
    let mut i = 0;
    while i < members.len() {
        if !members[i].1 {
            i += 1;
            continue;
        }
        let mut j = i;
        while j + 1 < members.len() && members[j + 1].1 {
            j += 1;
        }
        strip.push(match (members.get(j + 1), i.checked_sub(1)) {
            (Some((next, _)), _) => members[i].0.start..next.start,
            (None, Some(prev)) => members[prev].0.end..members[j].0.end,
            (None, None) => members[i].0.start..members[j].0.end,
        });
        i = j + 1;
    }
    let include_usage = stream_options
        .as_ref()
        .and_then(|r| serde_json::from_slice::<StreamOptions>(&body[r.clone()]).ok())
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    Ok(Peek {
        model,
        stream,
        include_usage,
        model_span,
        stream_options_span: stream_options,
        strip,
        close,
    })
}

#[derive(Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

/// A key's text: the raw bytes between the quotes, unescaped only when needed. `None`
/// for keys that cannot be one of ours (no allocation for the common case).
fn key_name(raw: &[u8]) -> Result<Option<std::borrow::Cow<'_, str>>> {
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains(&b'\\') {
        return Ok(std::str::from_utf8(inner)
            .ok()
            .map(std::borrow::Cow::Borrowed));
    }
    let s: String = serde_json::from_slice(raw).map_err(|_| bad("invalid JSON string"))?;
    Ok(Some(std::borrow::Cow::Owned(s)))
}

impl Peek {
    /// The body to send upstream: the client's bytes with `model` set to `model`,
    /// without [`NEVER_FORWARDED`] fields, and — when `force_usage` is set on a streaming
    /// request whose client did not ask for it — `stream_options.include_usage: true`
    /// (the gateway's own need: token counts for the request log). Everything else is
    /// byte-for-byte what the client sent.
    pub fn rewrite(&self, body: &[u8], model: &str, force_usage: bool) -> Vec<u8> {
        let model_json = serde_json::to_vec(model).unwrap_or_default();
        let mut edits: Vec<(Range<usize>, Vec<u8>)> = vec![(self.model_span.clone(), model_json)];
        // A stripped member's cut may take the comma before the model or stream_options;
        // it never takes their values.
        edits.extend(self.strip.iter().map(|r| (r.clone(), Vec::new())));
        if force_usage && self.stream && !self.include_usage {
            match &self.stream_options_span {
                Some(span) => {
                    let mut v: serde_json::Value =
                        serde_json::from_slice(&body[span.clone()]).unwrap_or_default();
                    if !v.is_object() {
                        v = serde_json::json!({});
                    }
                    v["include_usage"] = serde_json::Value::Bool(true);
                    edits.push((span.clone(), serde_json::to_vec(&v).unwrap_or_default()));
                }
                None => edits.push((
                    self.close..self.close,
                    br#","stream_options":{"include_usage":true}"#.to_vec(),
                )),
            }
        }
        edits.sort_by_key(|(r, _)| r.start);
        let mut out = Vec::with_capacity(body.len() + 64);
        let mut at = 0;
        for (r, with) in edits {
            out.extend_from_slice(&body[at..r.start]);
            out.extend_from_slice(&with);
            at = r.end;
        }
        out.extend_from_slice(&body[at..]);
        out
    }

    /// Whether [`Peek::rewrite`] with `force_usage` adds a usage report the client did not
    /// ask for (its stream must then be filtered with [`StreamTap::hide_usage_chunk`]).
    pub fn forces_usage(&self) -> bool {
        self.stream && !self.include_usage
    }
}

/// A minimal structural JSON scanner: finds where values start and end. It checks the
/// structure it walks (brackets, strings, literals) but not number syntax or UTF-8 inside
/// strings; the upstream's own parser is the judge of those.
struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// Deeper nesting than this is refused (the real APIs refuse far less deep documents).
const MAX_DEPTH: usize = 512;

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// A string starting here (with its quotes).
    fn string(&mut self) -> Result<Range<usize>> {
        let start = self.i;
        if self.next() != Some(b'"') {
            return Err(bad("invalid JSON: expected a string"));
        }
        loop {
            // Jump to the next quote or backslash.
            match self.b[self.i..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\')
            {
                None => return Err(bad("invalid JSON: unterminated string")),
                Some(p) => {
                    self.i += p;
                    if self.next() == Some(b'"') {
                        return Ok(start..self.i);
                    }
                    // A backslash: skip the escaped character.
                    if self.next().is_none() {
                        return Err(bad("invalid JSON: unterminated string"));
                    }
                }
            }
        }
    }

    /// Any value starting here.
    fn value(&mut self) -> Result<Range<usize>> {
        let start = self.i;
        match self.peek() {
            Some(b'"') => {
                self.string()?;
            }
            Some(b'{' | b'[') => {
                let mut stack: Vec<u8> = Vec::new();
                loop {
                    match self.peek() {
                        None => return Err(bad("invalid JSON: unterminated object or array")),
                        Some(b'"') => {
                            self.string()?;
                            continue;
                        }
                        Some(c @ (b'{' | b'[')) => {
                            if stack.len() >= MAX_DEPTH {
                                return Err(bad("invalid JSON: nested too deeply"));
                            }
                            stack.push(if c == b'{' { b'}' } else { b']' });
                        }
                        Some(c @ (b'}' | b']')) => {
                            if stack.pop() != Some(c) {
                                return Err(bad("invalid JSON: mismatched brackets"));
                            }
                            if stack.is_empty() {
                                self.i += 1;
                                return Ok(start..self.i);
                            }
                        }
                        Some(_) => {}
                    }
                    self.i += 1;
                }
            }
            Some(_) => {
                while let Some(c) = self.peek() {
                    if matches!(c, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                        break;
                    }
                    self.i += 1;
                }
                if self.i == start {
                    return Err(bad("invalid JSON: expected a value"));
                }
                let lit = &self.b[start..self.i];
                let ok = matches!(lit, b"true" | b"false" | b"null")
                    || lit.iter().all(|c| {
                        c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E')
                    });
                if !ok {
                    return Err(bad("invalid JSON: unexpected characters"));
                }
            }
            None => return Err(bad("invalid JSON: expected a value")),
        }
        Ok(start..self.i)
    }
}

// ================================================================ usage on the side

/// Which API's answer is passing through (decides where usage is and what an error looks like).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    AnthropicMessages,
    OpenAiChat,
    OpenAiResponses,
    OpenAiCompletions,
    OpenAiEmbeddings,
}

#[derive(Deserialize, Default)]
struct AnyUsage {
    // Anthropic
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
    // OpenAI chat / completions / embeddings
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    // OpenAI chat: cached tokens; Responses: input_tokens_details
    prompt_tokens_details: Option<Cached>,
    input_tokens_details: Option<Cached>,
}

#[derive(Deserialize, Default)]
struct Cached {
    cached_tokens: Option<u64>,
}

impl AnyUsage {
    fn canonical(&self, api: Api) -> Usage {
        match api {
            Api::AnthropicMessages => {
                super::anthropic::usage_from_wire(&super::anthropic::wire::UsageWire {
                    input_tokens: self.input_tokens,
                    output_tokens: self.output_tokens,
                    cache_read_input_tokens: self.cache_read_input_tokens,
                    cache_creation_input_tokens: self.cache_creation_input_tokens,
                })
            }
            Api::OpenAiResponses => Usage {
                input_tokens: self.input_tokens,
                output_tokens: self.output_tokens,
                cache_read_tokens: self
                    .input_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens),
                ..Default::default()
            },
            _ => Usage {
                input_tokens: self.prompt_tokens,
                output_tokens: self.completion_tokens,
                cache_read_tokens: self
                    .prompt_tokens_details
                    .as_ref()
                    .and_then(|d| d.cached_tokens),
                ..Default::default()
            },
        }
    }
}

/// Usage of a whole (non-streaming) answer body; empty when it has none.
pub fn usage_of_json(api: Api, body: &[u8]) -> Usage {
    #[derive(Deserialize)]
    struct Top {
        usage: Option<AnyUsage>,
    }
    serde_json::from_slice::<Top>(body)
        .ok()
        .and_then(|t| t.usage)
        .map(|u| u.canonical(api))
        .unwrap_or_default()
}

/// Reads an upstream SSE stream as it passes: usage, and whether it ended in an error.
/// The bytes go on unchanged, except with [`StreamTap::hide_usage_chunk`] (the OpenAI
/// usage chunk the gateway asked for and the client did not).
pub struct StreamTap {
    api: Api,
    parser: sse::Parser,
    pub usage: Usage,
    /// The code of an error event the upstream sent in the stream.
    pub error: Option<Code>,
    hide_usage: bool,
}

impl StreamTap {
    pub fn new(api: Api) -> Self {
        StreamTap {
            api,
            parser: sse::Parser::new(),
            usage: Usage::default(),
            error: None,
            hide_usage: false,
        }
    }

    /// Leave out the `choices: []` usage chunk: the gateway added `include_usage` for its
    /// own log, the client did not ask for it.
    pub fn hide_usage_chunk(mut self) -> Self {
        self.hide_usage = true;
        self
    }

    /// Feed a chunk; returns what to send the client.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        let events = match self.parser.push(&chunk) {
            Ok(e) => e,
            // An oversized event: stop reading on the side, keep forwarding.
            Err(_) => return chunk,
        };
        if !self.hide_usage {
            let mut error_here = false;
            for ev in &events {
                self.read(ev);
                error_here |= self.error.is_some();
            }
            // An upstream error event may quote a credential: redact the chunk that
            // carries it (the events before it in a stream are the model's own text
            // and pass untouched). An error event split over two chunks has its first
            // part already sent; upstream error events are small and arrive whole.
            if error_here && let Some(clean) = super::redact::redact_bytes(&chunk, None) {
                return Bytes::from(clean);
            }
            return chunk;
        }
        // Re-frame, leaving the usage-only chunk out (comments and ids are dropped too;
        // the client gets the same events).
        let mut out = Vec::with_capacity(chunk.len());
        for ev in &events {
            if self.read(ev) {
                continue;
            }
            let data = match self.error {
                Some(_) => super::redact::redact(&ev.data, None).into_owned(),
                None => ev.data.clone(),
            };
            let frame = sse::Frame { event: None, data };
            if let Some(name) = &ev.event {
                out.extend_from_slice(b"event: ");
                out.extend_from_slice(name.as_bytes());
                out.push(b'\n');
            }
            frame.write_to(&mut out);
        }
        Bytes::from(out)
    }

    /// Note usage and errors of one event; true if it is a usage-only chunk.
    fn read(&mut self, ev: &sse::Event) -> bool {
        let name = ev.event.as_deref();
        match self.api {
            Api::AnthropicMessages => match name {
                Some("message_start") => {
                    #[derive(Deserialize)]
                    struct Start {
                        message: Msg,
                    }
                    #[derive(Deserialize)]
                    struct Msg {
                        usage: Option<AnyUsage>,
                    }
                    if let Ok(s) = serde_json::from_str::<Start>(&ev.data)
                        && let Some(u) = s.message.usage
                    {
                        self.usage.merge(&u.canonical(self.api));
                    }
                }
                Some("message_delta") => {
                    #[derive(Deserialize)]
                    struct Delta {
                        usage: Option<AnyUsage>,
                    }
                    if let Ok(d) = serde_json::from_str::<Delta>(&ev.data)
                        && let Some(u) = d.usage
                    {
                        // message_delta counts are cumulative; input may be absent.
                        let mut u = u.canonical(self.api);
                        if u.input_tokens == Some(0) && self.usage.input_tokens.is_some() {
                            u.input_tokens = None;
                        }
                        self.usage.merge(&u);
                    }
                }
                Some("error") => self.error = Some(error_code_anthropic(&ev.data)),
                _ => {}
            },
            Api::OpenAiResponses => match name.or_else(|| type_of(&ev.data)) {
                Some("response.completed" | "response.incomplete" | "response.failed") => {
                    #[derive(Deserialize)]
                    struct Done {
                        response: Resp,
                    }
                    #[derive(Deserialize)]
                    struct Resp {
                        usage: Option<AnyUsage>,
                        status: Option<String>,
                    }
                    if let Ok(d) = serde_json::from_str::<Done>(&ev.data) {
                        if let Some(u) = d.response.usage {
                            self.usage.merge(&u.canonical(self.api));
                        }
                        if d.response.status.as_deref() == Some("failed") {
                            self.error = Some(Code::UpstreamError);
                        }
                    }
                }
                Some("error") => self.error = Some(Code::UpstreamError),
                _ => {}
            },
            _ => {
                let data = ev.data.as_str();
                // `{"error": …}` as the whole chunk (an `"error"` inside generated text
                // is escaped, so it cannot start the object).
                let body = data
                    .trim_start()
                    .strip_prefix('{')
                    .unwrap_or("")
                    .trim_start();
                if body.starts_with("\"error\"") {
                    self.error = Some(Code::UpstreamError);
                    return false;
                }
                if let Some(at) = data.find("\"usage\":") {
                    let rest = data[at + 8..].trim_start();
                    if rest.starts_with('{') {
                        #[derive(Deserialize)]
                        struct Chunk {
                            usage: Option<AnyUsage>,
                            #[serde(default)]
                            choices: Vec<serde::de::IgnoredAny>,
                        }
                        if let Ok(c) = serde_json::from_str::<Chunk>(data)
                            && let Some(u) = c.usage
                        {
                            self.usage.merge(&u.canonical(self.api));
                            return c.choices.is_empty();
                        }
                    }
                }
            }
        }
        false
    }
}

/// The `type` of an event whose SSE `event:` line was left out (data-only streams).
fn type_of(data: &str) -> Option<&str> {
    let at = data.find("\"type\":\"")? + 8;
    let rest = &data[at..];
    Some(&rest[..rest.find('"')?])
}

fn error_code_anthropic(data: &str) -> Code {
    #[derive(Deserialize)]
    struct E {
        error: Inner,
    }
    #[derive(Deserialize)]
    struct Inner {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<E>(data)
        .map(|e| super::errors::code_for_anthropic_type(&e.error.kind))
        .unwrap_or(Code::UpstreamError)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn peek_reads_model_and_stream_and_keeps_everything_else() {
        let body = br#" { "stream" : true, "model":"claude-x", "thinking":{"type":"adaptive","display":"omitted"},
            "weird": [1, {"model": "inner"}, "a\"b"], "n": -1.5e3 } "#;
        let p = peek(body).unwrap();
        assert_eq!(p.model, "claude-x");
        assert!(p.stream);
        let out = p.rewrite(body, "claude-real", false);
        let a: Value = serde_json::from_slice(body).unwrap();
        let mut b: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(b["model"], "claude-real");
        b["model"] = json!("claude-x");
        assert_eq!(a, b);
        // Only the model's bytes changed.
        let s = String::from_utf8(out).unwrap();
        assert_eq!(
            s,
            String::from_utf8_lossy(body).replace("\"claude-x\"", "\"claude-real\"")
        );
    }

    #[test]
    fn a_second_model_key_even_escaped_is_refused() {
        for body in [
            &br#"{"model":"a","model":"b"}"#[..],
            br#"{"model":"a","mod\u0065l":"b"}"#,
        ] {
            assert_eq!(peek(body).unwrap_err().code, Code::InvalidRequest);
        }
    }

    #[test]
    fn malformed_bodies_are_invalid_requests() {
        for body in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"model\":\"a\"",
            b"{\"model\":\"a\"} x",
            b"{\"model\":1}",
            b"{\"stream\":true}",
            b"{\"model\":\"a\",\"x\":[}",
            b"{\"model\":\"a\",\"x\":\"unterminated}",
            b"{\"model\":\"a\",\"x\":tru e}",
            b"{\"model\" \"a\"}",
        ] {
            assert_eq!(
                peek(body).unwrap_err().code,
                Code::InvalidRequest,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let deep = format!(
            "{{\"model\":\"a\",\"x\":{}{}}}",
            "[".repeat(600),
            "]".repeat(600)
        );
        assert!(peek(deep.as_bytes()).is_err());
    }

    #[test]
    fn endpoints_and_credentials_in_the_body_are_never_forwarded() {
        for body in [
            &br#"{"api_key":"sk-x","model":"m","api_base":"http://evil","x":1,"base_url":"u"}"#[..],
            br#"{"model":"m","api_key":"sk-x"}"#,
            br#"{"api_key":"sk-x","base_url":"u","model":"m"}"#,
            br#"{ "model" : "m" , "api_key" : {"nested": [1]} , "keep" : true }"#,
            br#"{"model":"m","stream":false,"api_base":"http://127.0.0.1:1/v1","base_url":"b","api_key":"k"}"#,
            br#"{"api_base":"a","model":"m","base_url":"b","keep":1,"api_key":"k"}"#,
        ] {
            let out = peek(body).unwrap().rewrite(body, "up", false);
            let v: Value = serde_json::from_slice(&out)
                .unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&out)));
            assert_eq!(v["model"], "up");
            for k in NEVER_FORWARDED {
                assert!(v.get(k).is_none(), "{k} in {v}");
            }
            let mut expected: Value = serde_json::from_slice(body).unwrap();
            let o = expected.as_object_mut().unwrap();
            for k in NEVER_FORWARDED {
                o.remove(k);
            }
            o.insert("model".into(), json!("up"));
            assert_eq!(v, expected);
        }
    }

    #[test]
    fn include_usage_is_added_only_when_the_client_did_not_ask() {
        let body = br#"{"model":"m","stream":true,"messages":[]}"#;
        let p = peek(body).unwrap();
        assert!(p.forces_usage());
        let v: Value = serde_json::from_slice(&p.rewrite(body, "up", true)).unwrap();
        assert_eq!(v["stream_options"], json!({"include_usage": true}));
        assert_eq!(v["model"], "up");

        let body = br#"{"stream_options":{"foo":1},"model":"m","stream":true}"#;
        let p = peek(body).unwrap();
        let v: Value = serde_json::from_slice(&p.rewrite(body, "up", true)).unwrap();
        assert_eq!(
            v["stream_options"],
            json!({"foo": 1, "include_usage": true})
        );

        let body = br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#;
        let p = peek(body).unwrap();
        assert!(p.include_usage && !p.forces_usage());
        assert_eq!(p.rewrite(body, "m", true), body.to_vec());

        let body = br#"{"model":"m"}"#;
        assert_eq!(peek(body).unwrap().rewrite(body, "m", true), body.to_vec());
    }

    proptest! {
        /// Whatever JSON object a client sends, the rewrite changes `model` and nothing else.
        #[test]
        fn rewrite_changes_only_the_model(
            keys in proptest::collection::vec("[a-z_]{1,8}", 0..6),
            vals in proptest::collection::vec(any::<(bool, i32, String)>(), 0..6),
            model in "[^\\p{Cc}]{0,20}",
            new_model in ".{0,20}",
        ) {
            let mut obj = serde_json::Map::new();
            for (k, (b, n, s)) in keys.iter().zip(vals.iter()) {
                if k == "model" { continue; }
                obj.insert(k.clone(), json!([b, n, s, {"k": s}]));
            }
            obj.insert("model".into(), json!(model));
            let body = serde_json::to_vec_pretty(&Value::Object(obj.clone())).unwrap();
            let p = peek(&body).unwrap();
            prop_assert_eq!(&p.model, &model);
            let out: Value = serde_json::from_slice(&p.rewrite(&body, &new_model, false)).unwrap();
            obj.insert("model".into(), json!(new_model));
            prop_assert_eq!(out, Value::Object(obj));
        }
    }

    #[test]
    fn the_tap_reads_anthropic_usage_and_passes_bytes_unchanged() {
        let stream = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":10,\"cache_read_input_tokens\":5,\"output_tokens\":1}}}\n\n",
            "event: ping\ndata: {\"type\":\"ping\"}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n",
        );
        let mut tap = StreamTap::new(Api::AnthropicMessages);
        let mut out = Vec::new();
        for piece in stream.as_bytes().chunks(17) {
            out.extend_from_slice(&tap.push(Bytes::copy_from_slice(piece)));
        }
        assert_eq!(out, stream.as_bytes());
        assert_eq!(tap.usage.input_tokens, Some(15));
        assert_eq!(tap.usage.output_tokens, Some(7));
        assert_eq!(tap.error, None);
        tap.push(Bytes::from_static(
            b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"x\"}}\n\n",
        ));
        assert_eq!(tap.error, Some(Code::UpstreamError));
    }

    #[test]
    fn the_tap_redacts_credentials_in_error_events_only() {
        // Generated text mentioning a key shape is the user's content: unchanged.
        let text = "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"export KEY=sk-abcdefgh12345678\"}}\n\n";
        let mut tap = StreamTap::new(Api::AnthropicMessages);
        assert_eq!(
            tap.push(Bytes::from_static(text.as_bytes())),
            text.as_bytes()
        );
        let err = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key sk-ant-api03-SECRETSECRET\"}}\n\n";
        let out = tap.push(Bytes::from_static(err.as_bytes()));
        let out = std::str::from_utf8(&out).unwrap();
        assert!(!out.contains("SECRETSECRET"), "{out}");
        assert!(out.contains("invalid x-api-key [redacted]"), "{out}");
        // OpenAI's in-stream error, also through the re-framing path.
        let err = "data: {\"error\":{\"message\":\"Incorrect API key provided: sk-proj-SECRETSECRET1\",\"type\":\"invalid_request_error\"}}\n\n";
        for tap in [
            StreamTap::new(Api::OpenAiChat),
            StreamTap::new(Api::OpenAiChat).hide_usage_chunk(),
        ] {
            let mut tap = tap;
            let out = tap.push(Bytes::from_static(err.as_bytes()));
            let out = std::str::from_utf8(&out).unwrap();
            assert!(!out.contains("SECRETSECRET"), "{out}");
            assert!(out.contains("[redacted]"), "{out}");
        }
    }

    #[test]
    fn the_tap_hides_the_usage_chunk_only_when_asked() {
        let chunk = "data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n";
        let usage = "data: {\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}}\n\n";
        let done = "data: [DONE]\n\n";
        let all = format!("{chunk}{usage}{done}");
        let mut keep = StreamTap::new(Api::OpenAiChat);
        assert_eq!(keep.push(Bytes::from(all.clone())), all.as_bytes());
        assert_eq!(keep.usage.input_tokens, Some(3));
        let mut hide = StreamTap::new(Api::OpenAiChat).hide_usage_chunk();
        let got = hide.push(Bytes::from(all));
        assert_eq!(got, format!("{chunk}{done}").as_bytes());
        assert_eq!(hide.usage.output_tokens, Some(2));
    }

    #[test]
    fn the_tap_reads_responses_usage_from_completed() {
        let mut tap = StreamTap::new(Api::OpenAiResponses);
        tap.push(Bytes::from_static(b"data: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":\"completed\",\"usage\":{\"input_tokens\":4,\"output_tokens\":6,\"total_tokens\":10,\"input_tokens_details\":{\"cached_tokens\":1}}}}\n\n"));
        assert_eq!(tap.usage.input_tokens, Some(4));
        assert_eq!(tap.usage.output_tokens, Some(6));
        assert_eq!(tap.usage.cache_read_tokens, Some(1));
    }

    #[test]
    fn usage_of_whole_bodies() {
        let u = usage_of_json(
            Api::OpenAiChat,
            br#"{"id":"x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":1,"total_tokens":10}}"#,
        );
        assert_eq!((u.input_tokens, u.output_tokens), (Some(9), Some(1)));
        let u = usage_of_json(
            Api::AnthropicMessages,
            br#"{"usage":{"input_tokens":2,"cache_creation_input_tokens":3,"output_tokens":4}}"#,
        );
        assert_eq!((u.input_tokens, u.output_tokens), (Some(5), Some(4)));
        assert!(usage_of_json(Api::OpenAiChat, b"not json").is_empty());
    }
}
