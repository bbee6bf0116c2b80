//! The canonical request, response and stream event: one model of a chat turn that is a
//! superset of the OpenAI Chat Completions and Anthropic Messages APIs.
//!
//! Every decoder produces these types and every encoder consumes them, so a handler never
//! translates OpenAI to Anthropic directly: it decodes the client's protocol, routes, and
//! encodes for the upstream; the reply goes the same way back. Fields a client can send
//! but a target cannot express are kept here so that the *encoder* for that target can
//! refuse them with `unsupported_feature` instead of dropping them silently.
//!
//! There is deliberately no field for endpoints or credentials (`api_base`, `base_url`,
//! `api_key`): whatever a client puts in a body cannot reach an upstream.

use crate::error::{Code, Error, Result};
use serde_json::Value;

/// A chat request in canonical form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub model: String,
    /// The system prompt as blocks (Anthropic sends several, with cache hints; an OpenAI
    /// client's leading `system`/`developer` messages become one block per text part).
    pub system: Vec<SystemBlock>,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` = at most one tool call per turn (Anthropic `disable_parallel_tool_use`).
    pub parallel_tool_calls: Option<bool>,
    pub sampling: Sampling,
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// OpenAI `stream_options.include_usage`: the client wants a final usage chunk.
    pub include_usage: bool,
    /// End-user id: OpenAI `user`, Anthropic `metadata.user_id`.
    pub user: Option<String>,
    /// Anthropic extended thinking (OpenAI clients may send the same object as an extension).
    pub thinking: Option<ThinkingConfig>,
    /// Anthropic `thinking.display`: `summarized` or `omitted` (reasoning not shown).
    pub thinking_display: Option<String>,
    /// How hard to think: OpenAI `reasoning_effort` / Responses `reasoning.effort`
    /// (`none|minimal|low|medium|high|xhigh`) or Anthropic `output_config.effort`
    /// (`low|medium|high|max`), as given.
    pub reasoning_effort: Option<String>,
    /// OpenAI `verbosity` (GPT-5).
    pub verbosity: Option<String>,
    pub response_format: Option<ResponseFormat>,
    pub logprobs: bool,
    pub top_logprobs: Option<u32>,
    /// The request came from `/v1/completions`: the single user text is a raw prompt, to
    /// be fed to the model without a chat template.
    pub raw_prompt: bool,
    /// Advisory fields the client sent that the canonical model does not carry
    /// (`context_management`, `service_tier`, …): whoever translates the request names
    /// them in `x-switchyard-dropped`. Fields that would change the answer are never
    /// here: decoding refuses them instead.
    pub dropped: Vec<&'static str>,
}

/// Bounds on the request fields that drive work (see [`Request::check_bounds`]).
pub mod bounds {
    /// OpenAI's own limit on `top_logprobs` (alternatives per generated token).
    pub const TOP_LOGPROBS: u32 = 20;
    /// Stop strings, and the bytes of each: matched after every generated token.
    pub const STOP_STRINGS: usize = 32;
    pub const STOP_BYTES: usize = 1024;
    /// Tools offered in one request (Claude Code offers a few dozen, with MCP servers
    /// a few hundred), a tool name, and the nesting of a tool's input schema.
    pub const TOOLS: usize = 1024;
    pub const TOOL_NAME_BYTES: usize = 256;
    pub const SCHEMA_DEPTH: usize = 64;
}

impl Request {
    /// Refuse a request whose work-driving fields are out of bounds (`invalid_request`,
    /// naming the field), before any backend sees it.
    pub fn check_bounds(&self) -> Result<()> {
        let bad = |m: String| Err(Error::new(Code::InvalidRequest, m));
        if let Some(n) = self.top_logprobs
            && n > bounds::TOP_LOGPROBS
        {
            return bad(format!(
                "top_logprobs must be at most {} (got {n})",
                bounds::TOP_LOGPROBS
            ));
        }
        if self.stop.len() > bounds::STOP_STRINGS {
            return bad(format!(
                "at most {} stop sequences (got {})",
                bounds::STOP_STRINGS,
                self.stop.len()
            ));
        }
        if let Some(s) = self.stop.iter().find(|s| s.len() > bounds::STOP_BYTES) {
            return bad(format!(
                "a stop sequence is {} bytes long (at most {})",
                s.len(),
                bounds::STOP_BYTES
            ));
        }
        if self.tools.len() > bounds::TOOLS {
            return bad(format!(
                "at most {} tools per request (got {})",
                bounds::TOOLS,
                self.tools.len()
            ));
        }
        for t in &self.tools {
            if t.name.is_empty() || t.name.len() > bounds::TOOL_NAME_BYTES {
                return bad(format!(
                    "a tool name must be 1 to {} bytes long",
                    bounds::TOOL_NAME_BYTES
                ));
            }
            if let Some(schema) = &t.input_schema
                && depth(schema) > bounds::SCHEMA_DEPTH
            {
                return bad(format!(
                    "the input schema of tool {:?} is nested deeper than {} levels",
                    t.name,
                    bounds::SCHEMA_DEPTH
                ));
            }
        }
        Ok(())
    }

    /// Record an advisory field as dropped (once).
    pub fn drop_field(&mut self, name: &'static str) {
        if !self.dropped.contains(&name) {
            self.dropped.push(name);
        }
    }

    /// Whether any block, system block or tool carries a prompt-caching hint.
    pub fn has_cache_control(&self) -> bool {
        fn block(b: &Block) -> bool {
            match b {
                Block::Text { cache_control, .. }
                | Block::Image { cache_control, .. }
                | Block::ToolUse { cache_control, .. } => cache_control.is_some(),
                Block::ToolResult {
                    cache_control,
                    content,
                    ..
                } => cache_control.is_some() || content.iter().any(block),
                Block::Thinking { .. } | Block::RedactedThinking { .. } => false,
            }
        }
        self.system.iter().any(|s| s.cache_control.is_some())
            || self.tools.iter().any(|t| t.cache_control.is_some())
            || self.messages.iter().any(|m| m.content.iter().any(block))
    }
}

/// How deeply a JSON value nests (a scalar is 0), without recursion.
fn depth(v: &Value) -> usize {
    let mut max = 0;
    let mut todo = vec![(v, 0usize)];
    while let Some((v, d)) = todo.pop() {
        max = max.max(d);
        match v {
            Value::Array(a) => todo.extend(a.iter().map(|x| (x, d + 1))),
            Value::Object(o) => todo.extend(o.values().map(|x| (x, d + 1))),
            _ => {}
        }
    }
    max
}

/// Sampling parameters. Every field is optional and an explicit value is kept exactly as
/// given: `temperature: Some(0.0)` means greedy and is never replaced by a default.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sampling {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u32>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SystemBlock {
    pub text: String,
    pub cache_control: Option<CacheControl>,
}

/// Anthropic prompt-caching breakpoint (`{"type":"ephemeral","ttl":"5m"|"1h"}`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CacheControl {
    pub ttl: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A system message *inside* the conversation (OpenAI allows them anywhere); leading
    /// system messages are moved to [`Request::system`].
    System,
    User,
    Assistant,
    /// Results of tool calls: only [`Block::ToolResult`] blocks. Consecutive results are
    /// one message (OpenAI sends one `tool` message per result, Anthropic puts them all
    /// at the start of one user message).
    Tool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
    /// OpenAI participant name.
    pub name: Option<String>,
}

impl Message {
    pub fn new(role: Role, content: Vec<Block>) -> Self {
        Message {
            role,
            content,
            name: None,
        }
    }

    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Message::new(role, vec![Block::text(text)])
    }
}

/// A content block. The response side uses the same type (text, tool_use, thinking).
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text {
        text: String,
        cache_control: Option<CacheControl>,
    },
    Image {
        source: ImageSource,
        /// OpenAI `image_url.detail` (`auto|low|high`).
        detail: Option<String>,
        cache_control: Option<CacheControl>,
    },
    ToolUse {
        id: String,
        name: String,
        /// The arguments as JSON (normally an object). If an upstream produced arguments
        /// that are not JSON, they are kept verbatim as a `Value::String`.
        input: Value,
        cache_control: Option<CacheControl>,
    },
    ToolResult {
        tool_use_id: String,
        /// Text and image blocks only.
        content: Vec<Block>,
        is_error: bool,
        cache_control: Option<CacheControl>,
    },
    Thinking {
        thinking: String,
        /// Anthropic's signature; `None` when the reasoning came from an OpenAI-compatible
        /// server (`reasoning_content`), which has none.
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
}

impl Block {
    pub fn text(text: impl Into<String>) -> Self {
        Block::Text {
            text: text.into(),
            cache_control: None,
        }
    }

    /// The block's type name in Anthropic's vocabulary, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Block::Text { .. } => "text",
            Block::Image { .. } => "image",
            Block::ToolUse { .. } => "tool_use",
            Block::ToolResult { .. } => "tool_result",
            Block::Thinking { .. } => "thinking",
            Block::RedactedThinking { .. } => "redacted_thinking",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ImageSource {
    Base64 { media_type: String, data: String },
    Url { url: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON schema of the input. `None` = the OpenAI client gave no `parameters`.
    pub input_schema: Option<Value>,
    /// OpenAI strict function calling.
    pub strict: Option<bool>,
    pub cache_control: Option<CacheControl>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// OpenAI `required`, Anthropic `any`.
    Required,
    Tool(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ThinkingConfig {
    Enabled {
        budget_tokens: u64,
    },
    /// The model decides whether and how much to think (effort may guide it).
    Adaptive,
    Disabled,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Option<Value>,
        strict: Option<bool>,
    },
}

/// Why generation stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    /// A stop sequence matched (Anthropic names it; OpenAI reports plain `stop`).
    StopSequence(String),
    ToolUse,
    /// Anthropic server-tool turn paused; the client should continue it.
    PauseTurn,
    /// The model refused (Anthropic `refusal`, OpenAI `content_filter`).
    Refusal,
    ContextWindowExceeded,
    /// A reason this code does not know, passed on verbatim.
    Other(String),
}

/// Token counts. `input_tokens` is the *whole* prompt, cached parts included (OpenAI's
/// `prompt_tokens`); Anthropic's `input_tokens` excludes cache reads and writes, and its
/// codec converts. Every field is optional because streams report them piecemeal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
}

impl Usage {
    /// Overwrite with every field `newer` knows (stream usage reports are snapshots).
    pub fn merge(&mut self, newer: &Usage) {
        fn m(a: &mut Option<u64>, b: Option<u64>) {
            if b.is_some() {
                *a = b;
            }
        }
        m(&mut self.input_tokens, newer.input_tokens);
        m(&mut self.output_tokens, newer.output_tokens);
        m(&mut self.cache_read_tokens, newer.cache_read_tokens);
        m(&mut self.cache_write_tokens, newer.cache_write_tokens);
        m(&mut self.reasoning_tokens, newer.reasoning_tokens);
    }

    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

/// OpenAI log probabilities of one sampled token.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Option<Vec<u8>>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f64,
    pub bytes: Option<Vec<u8>>,
}

/// A complete (non-streamed) assistant turn.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub id: String,
    pub model: String,
    /// Text, tool_use, thinking and redacted_thinking blocks in generation order.
    pub content: Vec<Block>,
    pub stop_reason: Option<StopReason>,
    pub usage: Usage,
    pub logprobs: Option<Vec<TokenLogprob>>,
}

/// What kind of block a [`Event::BlockStart`] opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockStart {
    Text,
    ToolUse { id: String, name: String },
    Thinking,
    RedactedThinking { data: String },
}

/// An error that ended a stream after it began (it cannot become an HTTP status any more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub code: Code,
    pub message: String,
}

impl From<&Error> for StreamError {
    fn from(e: &Error) -> Self {
        StreamError {
            code: e.code,
            message: e.message.clone(),
        }
    }
}

impl From<StreamError> for Error {
    fn from(e: StreamError) -> Self {
        Error::new(e.code, e.message)
    }
}

/// One canonical stream event.
///
/// The contract every producer keeps and every consumer may rely on:
/// `MessageStart` comes first; blocks are sequential — `BlockStart(i)`, deltas for `i`,
/// `BlockStop(i)` — with `i` counting 0, 1, 2, …, and at most one block open at a time;
/// `Usage` may come any time after `MessageStart` (each is a snapshot; merge them);
/// `MessageStop` is last, after the final `Usage`. `Error` ends a stream early.
/// `Logprobs` belongs to the `TextDelta` just before it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    MessageStart { id: String, model: String },
    BlockStart { index: usize, block: BlockStart },
    TextDelta { index: usize, text: String },
    ToolInputDelta { index: usize, partial_json: String },
    ThinkingDelta { index: usize, thinking: String },
    SignatureDelta { index: usize, signature: String },
    BlockStop { index: usize },
    Logprobs(Vec<TokenLogprob>),
    Usage(Usage),
    MessageStop { stop_reason: StopReason },
    Error(StreamError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenKind {
    Text,
    Tool,
    Thinking,
    Redacted,
}

/// Builds a well-formed canonical event stream from loosely ordered pieces: it opens and
/// closes blocks and numbers them. The local engine's token stream and the OpenAI
/// upstream decoder both produce events through it, so neither has to track block state.
#[derive(Debug, Default)]
pub struct EventBuilder {
    started: bool,
    open: Option<OpenKind>,
    next_index: usize,
    usage: Usage,
    stopped: bool,
}

impl EventBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn start(&mut self, id: impl Into<String>, model: impl Into<String>) -> Event {
        self.started = true;
        Event::MessageStart {
            id: id.into(),
            model: model.into(),
        }
    }

    pub fn is_started(&self) -> bool {
        self.started
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    fn current(&self) -> usize {
        self.next_index - 1
    }

    /// Close the open block, if any.
    pub fn close(&mut self, out: &mut Vec<Event>) {
        if self.open.take().is_some() {
            out.push(Event::BlockStop {
                index: self.current(),
            });
        }
    }

    fn open(&mut self, kind: OpenKind, block: BlockStart, out: &mut Vec<Event>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(kind);
        out.push(Event::BlockStart { index, block });
        index
    }

    fn ensure(&mut self, kind: OpenKind, block: BlockStart, out: &mut Vec<Event>) -> usize {
        if self.open == Some(kind) {
            self.current()
        } else {
            self.open(kind, block, out)
        }
    }

    /// Append text, opening a text block if the open block is not one. Empty text is
    /// ignored (OpenAI's first chunk carries `content: ""`).
    pub fn text(&mut self, text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        let index = self.ensure(OpenKind::Text, BlockStart::Text, out);
        out.push(Event::TextDelta {
            index,
            text: text.to_owned(),
        });
    }

    pub fn thinking(&mut self, text: &str, out: &mut Vec<Event>) {
        if text.is_empty() {
            return;
        }
        let index = self.ensure(OpenKind::Thinking, BlockStart::Thinking, out);
        out.push(Event::ThinkingDelta {
            index,
            thinking: text.to_owned(),
        });
    }

    pub fn signature(&mut self, signature: &str, out: &mut Vec<Event>) {
        let index = self.ensure(OpenKind::Thinking, BlockStart::Thinking, out);
        out.push(Event::SignatureDelta {
            index,
            signature: signature.to_owned(),
        });
    }

    pub fn redacted_thinking(&mut self, data: &str, out: &mut Vec<Event>) {
        self.open(
            OpenKind::Redacted,
            BlockStart::RedactedThinking {
                data: data.to_owned(),
            },
            out,
        );
        self.close(out);
    }

    /// Start a tool call; its arguments follow with [`EventBuilder::tool_arguments`].
    pub fn tool_start(&mut self, id: &str, name: &str, out: &mut Vec<Event>) -> usize {
        self.open(
            OpenKind::Tool,
            BlockStart::ToolUse {
                id: id.to_owned(),
                name: name.to_owned(),
            },
            out,
        )
    }

    /// A fragment of the open tool call's JSON arguments.
    pub fn tool_arguments(&mut self, fragment: &str, out: &mut Vec<Event>) -> Result<()> {
        if fragment.is_empty() {
            return Ok(());
        }
        if self.open != Some(OpenKind::Tool) {
            return Err(Error::new(
                Code::ProviderBadResponse,
                "tool call arguments arrived with no tool call open",
            ));
        }
        out.push(Event::ToolInputDelta {
            index: self.current(),
            partial_json: fragment.to_owned(),
        });
        Ok(())
    }

    /// A whole tool call at once (what a local model's parser produces).
    pub fn tool_call(&mut self, id: &str, name: &str, arguments_json: &str, out: &mut Vec<Event>) {
        self.tool_start(id, name, out);
        if !arguments_json.is_empty() {
            out.push(Event::ToolInputDelta {
                index: self.current(),
                partial_json: arguments_json.to_owned(),
            });
        }
        self.close(out);
    }

    pub fn logprobs(&mut self, lp: Vec<TokenLogprob>, out: &mut Vec<Event>) {
        if !lp.is_empty() {
            out.push(Event::Logprobs(lp));
        }
    }

    /// Record usage; it is emitted once, just before `MessageStop`.
    pub fn usage(&mut self, usage: &Usage) {
        self.usage.merge(usage);
    }

    /// Close the open block, emit the merged usage (if any) and `MessageStop`.
    pub fn finish(&mut self, stop_reason: StopReason, out: &mut Vec<Event>) {
        if self.stopped {
            return;
        }
        self.close(out);
        if !self.usage.is_empty() {
            out.push(Event::Usage(self.usage));
        }
        out.push(Event::MessageStop { stop_reason });
        self.stopped = true;
    }
}

/// Leaves reasoning out of a stream (Anthropic `thinking.display: "omitted"`): the
/// thinking and redacted-thinking blocks and their deltas. Encoders number the blocks
/// they write themselves, so the gaps this leaves in the indexes do not show.
#[derive(Debug, Default)]
pub struct OmitThinking {
    skipping: Option<usize>,
}

impl OmitThinking {
    /// Whether `ev` stays in the stream.
    pub fn keep(&mut self, ev: &Event) -> bool {
        match ev {
            Event::BlockStart {
                index,
                block: BlockStart::Thinking | BlockStart::RedactedThinking { .. },
            } => {
                self.skipping = Some(*index);
                false
            }
            Event::ThinkingDelta { index, .. } | Event::SignatureDelta { index, .. } => {
                self.skipping != Some(*index)
            }
            Event::BlockStop { index } if self.skipping == Some(*index) => {
                self.skipping = None;
                false
            }
            _ => true,
        }
    }
}

/// Folds a canonical event stream into a [`Response`]: serves a non-streaming client
/// from a streaming backend.
#[derive(Debug, Default)]
pub struct Aggregator {
    resp: Response,
    /// Raw JSON argument text of the tool call being streamed.
    tool_json: String,
    stopped: bool,
}

impl Aggregator {
    pub fn new() -> Self {
        Self::default()
    }

    fn block_mut(&mut self, index: usize) -> Result<&mut Block> {
        let n = self.resp.content.len();
        if index + 1 != n {
            return Err(Error::new(
                Code::ProviderBadResponse,
                format!(
                    "stream delta for block {index} while block {} is open",
                    n as i64 - 1
                ),
            ));
        }
        Ok(&mut self.resp.content[index])
    }

    pub fn push(&mut self, event: &Event) -> Result<()> {
        match event {
            Event::MessageStart { id, model } => {
                self.resp.id.clone_from(id);
                self.resp.model.clone_from(model);
            }
            Event::BlockStart { index, block } => {
                if *index != self.resp.content.len() {
                    return Err(Error::new(
                        Code::ProviderBadResponse,
                        format!(
                            "stream started block {index}, expected {}",
                            self.resp.content.len()
                        ),
                    ));
                }
                self.tool_json.clear();
                self.resp.content.push(match block {
                    BlockStart::Text => Block::text(""),
                    BlockStart::ToolUse { id, name } => Block::ToolUse {
                        id: id.clone(),
                        name: name.clone(),
                        input: Value::Object(Default::default()),
                        cache_control: None,
                    },
                    BlockStart::Thinking => Block::Thinking {
                        thinking: String::new(),
                        signature: None,
                    },
                    BlockStart::RedactedThinking { data } => {
                        Block::RedactedThinking { data: data.clone() }
                    }
                });
            }
            Event::TextDelta { index, text } => match self.block_mut(*index)? {
                Block::Text { text: t, .. } => t.push_str(text),
                other => return Err(wrong_delta("text", other)),
            },
            Event::ThinkingDelta { index, thinking } => match self.block_mut(*index)? {
                Block::Thinking { thinking: t, .. } => t.push_str(thinking),
                other => return Err(wrong_delta("thinking", other)),
            },
            Event::SignatureDelta { index, signature } => match self.block_mut(*index)? {
                Block::Thinking { signature: s, .. } => {
                    s.get_or_insert_with(String::new).push_str(signature)
                }
                other => return Err(wrong_delta("signature", other)),
            },
            Event::ToolInputDelta {
                index,
                partial_json,
            } => match self.block_mut(*index)? {
                Block::ToolUse { .. } => self.tool_json.push_str(partial_json),
                other => return Err(wrong_delta("tool input", other)),
            },
            Event::BlockStop { index } => {
                let json = std::mem::take(&mut self.tool_json);
                if let Block::ToolUse { input, .. } = self.block_mut(*index)?
                    && !json.is_empty()
                {
                    *input = parse_tool_arguments(&json);
                }
            }
            Event::Logprobs(lp) => self
                .resp
                .logprobs
                .get_or_insert_with(Vec::new)
                .extend(lp.iter().cloned()),
            Event::Usage(u) => self.resp.usage.merge(u),
            Event::MessageStop { stop_reason } => {
                self.resp.stop_reason = Some(stop_reason.clone());
                self.stopped = true;
            }
            Event::Error(e) => return Err(e.clone().into()),
        }
        Ok(())
    }

    /// The response, or an error if the stream never reached `MessageStop`.
    pub fn finish(self) -> Result<Response> {
        if !self.stopped {
            return Err(Error::new(
                Code::UpstreamError,
                "upstream stream ended before the message was complete",
            ));
        }
        Ok(self.resp)
    }
}

fn wrong_delta(what: &str, block: &Block) -> Error {
    Error::new(
        Code::ProviderBadResponse,
        format!("stream sent a {what} delta for a {} block", block.kind()),
    )
}

/// Tool arguments text → JSON. Empty means no arguments (`{}`); text that is not JSON is
/// kept verbatim as a string rather than lost (see [`Block::ToolUse`]).
pub fn parse_tool_arguments(s: &str) -> Value {
    if s.trim().is_empty() {
        return Value::Object(Default::default());
    }
    serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()))
}

/// JSON → tool arguments text; the inverse of [`parse_tool_arguments`].
pub fn tool_arguments_text(input: &Value) -> String {
    match input {
        Value::String(raw) => raw.clone(),
        v => v.to_string(),
    }
}

/// The events a streaming client sees for a complete response (a non-streaming backend,
/// e.g. a fallback, serving a streaming client).
pub fn response_to_events(resp: &Response) -> Vec<Event> {
    let mut b = EventBuilder::new();
    let mut out = vec![b.start(&resp.id, &resp.model)];
    // Everything is known up front: report usage first, so that a protocol which
    // announces input tokens at the start (Anthropic's message_start) can.
    if !resp.usage.is_empty() {
        out.push(Event::Usage(resp.usage));
    }
    let mut logprobs = resp.logprobs.clone();
    for block in &resp.content {
        match block {
            Block::Text { text, .. } => {
                // An empty text block still exists in the response; keep it visible.
                if text.is_empty() {
                    b.open(OpenKind::Text, BlockStart::Text, &mut out);
                } else {
                    b.close(&mut out);
                    b.text(text, &mut out);
                }
                // Log probabilities describe the text tokens: they follow the text.
                if let Some(lp) = logprobs.take() {
                    b.logprobs(lp, &mut out);
                }
            }
            Block::Thinking {
                thinking,
                signature,
            } => {
                b.close(&mut out);
                b.open(OpenKind::Thinking, BlockStart::Thinking, &mut out);
                b.thinking(thinking, &mut out);
                if let Some(s) = signature {
                    b.signature(s, &mut out);
                }
            }
            Block::RedactedThinking { data } => b.redacted_thinking(data, &mut out),
            Block::ToolUse {
                id, name, input, ..
            } => {
                let args = match input {
                    Value::Object(m) if m.is_empty() => String::new(),
                    v => tool_arguments_text(v),
                };
                b.tool_call(id, name, &args, &mut out);
            }
            // Not produced by models; a response never carries them.
            Block::Image { .. } | Block::ToolResult { .. } => {}
        }
    }
    if let Some(lp) = logprobs {
        b.logprobs(lp, &mut out);
    }
    b.finish(
        resp.stop_reason.clone().unwrap_or(StopReason::EndTurn),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builder_opens_and_closes_blocks_with_increasing_indexes() {
        let mut b = EventBuilder::new();
        let mut out = vec![b.start("m1", "x")];
        b.thinking("hmm", &mut out);
        b.text("", &mut out);
        b.text("Hi", &mut out);
        b.text(" there", &mut out);
        b.tool_start("c1", "f", &mut out);
        b.tool_arguments("{\"a\":", &mut out).unwrap();
        b.tool_arguments("1}", &mut out).unwrap();
        b.text("after", &mut out);
        b.usage(&super::Usage {
            input_tokens: Some(3),
            ..Default::default()
        });
        b.usage(&super::Usage {
            output_tokens: Some(5),
            ..Default::default()
        });
        b.finish(StopReason::ToolUse, &mut out);
        use Event::*;
        assert_eq!(
            out,
            vec![
                MessageStart {
                    id: "m1".into(),
                    model: "x".into()
                },
                BlockStart {
                    index: 0,
                    block: super::BlockStart::Thinking
                },
                ThinkingDelta {
                    index: 0,
                    thinking: "hmm".into()
                },
                BlockStop { index: 0 },
                BlockStart {
                    index: 1,
                    block: super::BlockStart::Text
                },
                TextDelta {
                    index: 1,
                    text: "Hi".into()
                },
                TextDelta {
                    index: 1,
                    text: " there".into()
                },
                BlockStop { index: 1 },
                BlockStart {
                    index: 2,
                    block: super::BlockStart::ToolUse {
                        id: "c1".into(),
                        name: "f".into()
                    }
                },
                ToolInputDelta {
                    index: 2,
                    partial_json: "{\"a\":".into()
                },
                ToolInputDelta {
                    index: 2,
                    partial_json: "1}".into()
                },
                BlockStop { index: 2 },
                BlockStart {
                    index: 3,
                    block: super::BlockStart::Text
                },
                TextDelta {
                    index: 3,
                    text: "after".into()
                },
                BlockStop { index: 3 },
                Usage(super::Usage {
                    input_tokens: Some(3),
                    output_tokens: Some(5),
                    ..Default::default()
                }),
                MessageStop {
                    stop_reason: StopReason::ToolUse
                },
            ]
        );
    }

    #[test]
    fn omitting_thinking_leaves_the_rest_of_the_stream() {
        let mut b = EventBuilder::new();
        let mut out = vec![b.start("m", "x")];
        b.thinking("secret plan", &mut out);
        b.signature("sig", &mut out);
        b.text("Hi", &mut out);
        b.redacted_thinking("xx", &mut out);
        b.tool_call("c", "f", "{}", &mut out);
        b.finish(StopReason::ToolUse, &mut out);
        let mut f = OmitThinking::default();
        let kept: Vec<Event> = out.into_iter().filter(|e| f.keep(e)).collect();
        let mut agg = Aggregator::new();
        for e in &kept {
            assert!(
                !matches!(
                    e,
                    Event::ThinkingDelta { .. } | Event::SignatureDelta { .. }
                ),
                "{e:?}"
            );
            // The indexes jump, but each block still opens and closes in order.
            let _ = agg.push(e);
        }
        assert_eq!(
            kept.iter()
                .filter(|e| matches!(e, Event::BlockStart { .. }))
                .count(),
            2
        );
    }

    #[test]
    fn tool_arguments_without_open_tool_is_an_error() {
        let mut b = EventBuilder::new();
        let mut out = vec![];
        b.text("x", &mut out);
        let e = b.tool_arguments("{}", &mut out).unwrap_err();
        assert_eq!(e.code, Code::ProviderBadResponse);
    }

    #[test]
    fn aggregating_the_events_of_a_response_gives_the_response_back() {
        let resp = Response {
            id: "msg_1".into(),
            model: "m".into(),
            content: vec![
                Block::Thinking {
                    thinking: "think".into(),
                    signature: Some("sig".into()),
                },
                Block::RedactedThinking { data: "xx".into() },
                Block::text("Hello"),
                Block::ToolUse {
                    id: "t1".into(),
                    name: "get".into(),
                    input: json!({"q": [1, 2]}),
                    cache_control: None,
                },
                Block::ToolUse {
                    id: "t2".into(),
                    name: "noargs".into(),
                    input: json!({}),
                    cache_control: None,
                },
                Block::text(""),
            ],
            stop_reason: Some(StopReason::ToolUse),
            usage: Usage {
                input_tokens: Some(10),
                output_tokens: Some(2),
                cache_read_tokens: Some(4),
                ..Default::default()
            },
            logprobs: None,
        };
        let mut agg = Aggregator::new();
        for e in response_to_events(&resp) {
            agg.push(&e).unwrap();
        }
        assert_eq!(agg.finish().unwrap(), resp);
    }

    #[test]
    fn aggregator_keeps_non_json_tool_arguments_verbatim() {
        let mut b = EventBuilder::new();
        let mut out = vec![b.start("a", "b")];
        b.tool_call("c", "f", "{not json", &mut out);
        b.finish(StopReason::ToolUse, &mut out);
        let mut agg = Aggregator::new();
        for e in &out {
            agg.push(e).unwrap();
        }
        let r = agg.finish().unwrap();
        assert_eq!(
            r.content,
            vec![Block::ToolUse {
                id: "c".into(),
                name: "f".into(),
                input: Value::String("{not json".into()),
                cache_control: None
            }]
        );
        assert_eq!(tool_arguments_text(&r.content_input()), "{not json");
    }

    impl Response {
        fn content_input(&self) -> Value {
            match &self.content[0] {
                Block::ToolUse { input, .. } => input.clone(),
                _ => Value::Null,
            }
        }
    }

    #[test]
    fn aggregator_reports_stream_errors_and_truncation() {
        let mut agg = Aggregator::new();
        agg.push(&Event::MessageStart {
            id: "a".into(),
            model: "b".into(),
        })
        .unwrap();
        let e = agg
            .push(&Event::Error(StreamError {
                code: Code::RateLimited,
                message: "slow down".into(),
            }))
            .unwrap_err();
        assert_eq!(e.code, Code::RateLimited);
        assert_eq!(e.message, "slow down");
        let truncated = Aggregator::new().finish().unwrap_err();
        assert_eq!(truncated.code, Code::UpstreamError);
    }

    #[test]
    fn aggregator_rejects_a_delta_for_a_block_that_is_not_open() {
        let mut agg = Aggregator::new();
        agg.push(&Event::BlockStart {
            index: 0,
            block: BlockStart::Text,
        })
        .unwrap();
        let e = agg
            .push(&Event::ToolInputDelta {
                index: 0,
                partial_json: "{}".into(),
            })
            .unwrap_err();
        assert_eq!(e.code, Code::ProviderBadResponse);
        let e = agg
            .push(&Event::TextDelta {
                index: 3,
                text: "x".into(),
            })
            .unwrap_err();
        assert_eq!(e.code, Code::ProviderBadResponse);
    }

    #[test]
    fn usage_merge_keeps_known_fields_and_overwrites_with_newer() {
        let mut u = Usage {
            input_tokens: Some(5),
            output_tokens: Some(1),
            ..Default::default()
        };
        u.merge(&Usage {
            output_tokens: Some(9),
            cache_read_tokens: Some(2),
            ..Default::default()
        });
        assert_eq!(
            u,
            Usage {
                input_tokens: Some(5),
                output_tokens: Some(9),
                cache_read_tokens: Some(2),
                ..Default::default()
            }
        );
    }
}
