//! Canonical events → the Responses API's SSE events, in the official order:
//!
//! ```text
//! response.created, response.in_progress
//! per output item: response.output_item.added
//!   message:   content_part.added, output_text.delta…, output_text.done, content_part.done
//!   function:  function_call_arguments.delta…, function_call_arguments.done
//!   custom:    custom_tool_call_input.delta, custom_tool_call_input.done
//!   reasoning: reasoning_summary_part.added, reasoning_summary_text.delta…, …text.done,
//!              …part.done   (or reasoning_text.delta…, reasoning_text.done)
//! response.output_item.done
//! response.completed (usage) | response.incomplete (max tokens) | response.failed (error)
//! ```
//!
//! Every event carries `sequence_number` (0, 1, 2, …); every output item has an `id`
//! (Codex drops a stream whose items have none). The same encoder builds the response
//! object of a non-streaming request ([`ResponsesEncoder::silent`]: no frames are made,
//! only the object). This encoder runs once per event of every Responses answer: the
//! events of a message (every answer has one) and the response object are written by
//! hand, held by a test to the API's JSON byte for byte; the rarer events and items are
//! typed structs serialized straight to text.

use super::super::canonical::{BlockStart, Event, StopReason, Usage};
use super::super::sse::{Frame, FrameSink, put_json};
use super::{EncodeOptions, REDACTED_PREFIX, SIGNATURE_PREFIX};
use serde::Serialize;
use serde_json::Value;

/// One output item, as the API shows it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Item {
    Message {
        id: String,
        status: &'static str,
        role: &'static str,
        content: Vec<OutputText>,
    },
    FunctionCall {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        status: &'static str,
    },
    CustomToolCall {
        id: String,
        call_id: String,
        name: String,
        input: String,
        status: &'static str,
    },
    Reasoning {
        id: String,
        summary: Vec<TextPart>,
        #[serde(skip_serializing_if = "Option::is_none")]
        content: Option<Vec<TextPart>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputText {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
    annotations: [(); 0],
    logprobs: [(); 0],
}

impl OutputText {
    fn new(text: String) -> Self {
        OutputText {
            kind: "output_text",
            text,
            annotations: [],
            logprobs: [],
        }
    }
}

/// `summary_text` / `reasoning_text` parts.
#[derive(Debug, Clone, Serialize)]
pub struct TextPart {
    #[serde(rename = "type")]
    kind: &'static str,
    text: String,
}

#[derive(Debug)]
enum Open {
    Text {
        id: String,
        text: String,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        custom: bool,
    },
    Reasoning {
        id: String,
        text: String,
        signature: String,
    },
}

/// Append an event's JSON to `out`: `type` and `sequence_number`, then the fields of
/// `body` (a struct, so a JSON object). What `#[serde(flatten)]` would write, without
/// its slow map path, straight into the frame: this runs for every event of every
/// Responses answer.
fn write_envelope<B: Serialize>(out: &mut Vec<u8>, kind: &str, seq: u64, body: &B) {
    write_envelope_head(out, kind, seq);
    let at = out.len();
    if serde_json::to_writer(&mut *out, body).is_err() {
        out.truncate(at);
    }
    // The body's `{` becomes the comma after the head. An empty object, or anything
    // else (nothing of it can be an event's field), leaves the head closed by itself.
    match out.get(at..) {
        Some([b'{', rest @ ..]) if rest != b"}" => out[at] = b',',
        _ => {
            out.truncate(at);
            out.push(b'}');
        }
    }
}

/// `{"type":"<kind>","sequence_number":<seq>`.
fn write_envelope_head(out: &mut Vec<u8>, kind: &str, seq: u64) {
    out.extend_from_slice(b"{\"type\":\"");
    // Event names are our own constants: letters, dots and underscores.
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\",\"sequence_number\":");
    put_json(out, &seq);
}

const TEXT_DELTA: &str = "response.output_text.delta";

/// The `response.output_text.delta` event: one per token of every answer, so written
/// by hand (the other deltas go through [`Delta`]), without serde's escaping pass over
/// every field name.
fn write_text_delta(out: &mut Vec<u8>, seq: u64, item_id: &str, output_index: usize, delta: &str) {
    write_text_event_head(out, TEXT_DELTA, seq, item_id, output_index);
    out.extend_from_slice(b",\"delta\":");
    put_json(out, delta);
    out.extend_from_slice(b",\"logprobs\":[]}");
}

/// `[a,b,…]`, each element written by `write`.
fn write_list<T>(out: &mut Vec<u8>, items: &[T], write: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item);
    }
    out.push(b']');
}

/// An output item. A message — every answer has one — is written by hand: the JSON
/// serde gives for [`Item::Message`] (a test holds them equal). The others go through
/// serde.
fn write_item(out: &mut Vec<u8>, item: &Item) {
    match item {
        Item::Message {
            id,
            status,
            role,
            content,
        } => {
            out.extend_from_slice(b"{\"type\":\"message\",\"id\":");
            put_json(out, id);
            out.extend_from_slice(b",\"status\":\"");
            out.extend_from_slice(status.as_bytes());
            out.extend_from_slice(b"\",\"role\":\"");
            out.extend_from_slice(role.as_bytes());
            out.extend_from_slice(b"\",\"content\":");
            write_list(out, content, |out, part| write_output_text(out, &part.text));
            out.push(b'}');
        }
        _ => put_json(out, item),
    }
}

/// An `output_text` part: `{"type":"output_text","text":…,"annotations":[],"logprobs":[]}`.
fn write_output_text(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(b"{\"type\":\"output_text\",\"text\":");
    put_json(out, text);
    out.extend_from_slice(b",\"annotations\":[],\"logprobs\":[]}");
}

/// The start of a message part's event: its head, `item_id`, `output_index` and
/// `content_index` 0.
fn write_text_event_head(out: &mut Vec<u8>, kind: &str, seq: u64, item_id: &str, index: usize) {
    write_envelope_head(out, kind, seq);
    out.extend_from_slice(b",\"item_id\":");
    put_json(out, item_id);
    out.extend_from_slice(b",\"output_index\":");
    put_json(out, &index);
    out.extend_from_slice(b",\"content_index\":0");
}

/// `response.content_part.added` / `.done` of a message's text.
fn write_text_part_event(
    out: &mut Vec<u8>,
    kind: &str,
    seq: u64,
    item_id: &str,
    index: usize,
    text: &str,
) {
    write_text_event_head(out, kind, seq, item_id, index);
    out.extend_from_slice(b",\"part\":");
    write_output_text(out, text);
    out.push(b'}');
}

/// `response.output_text.done`.
fn write_text_done(out: &mut Vec<u8>, seq: u64, item_id: &str, index: usize, text: &str) {
    write_text_event_head(out, TEXT_DONE, seq, item_id, index);
    out.extend_from_slice(b",\"text\":");
    put_json(out, text);
    out.extend_from_slice(b",\"logprobs\":[]}");
}

const TEXT_DONE: &str = "response.output_text.done";
const PART_ADDED: &str = "response.content_part.added";
const PART_DONE: &str = "response.content_part.done";

#[derive(Serialize)]
struct Delta<'a> {
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    delta: &'a str,
}

#[derive(Serialize)]
struct Done<'a> {
    item_id: &'a str,
    output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    summary_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    arguments: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    part: Option<Part<'a>>,
}

impl<'a> Done<'a> {
    fn new(item_id: &'a str, output_index: usize) -> Self {
        Done {
            item_id,
            output_index,
            content_index: None,
            summary_index: None,
            text: None,
            name: None,
            arguments: None,
            input: None,
            part: None,
        }
    }
}

/// A reasoning summary's part (a message's `output_text` part is written by hand).
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Part<'a> {
    SummaryText { text: &'a str },
}

#[derive(Serialize)]
pub struct UsageJson {
    input_tokens: u64,
    input_tokens_details: Cached,
    output_tokens: u64,
    output_tokens_details: Reasoned,
    total_tokens: u64,
}

#[derive(Serialize)]
struct Cached {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct Reasoned {
    reasoning_tokens: u64,
}

/// Canonical usage in the Responses shape.
pub fn usage_json(u: &Usage) -> UsageJson {
    let input = u.input_tokens.unwrap_or(0);
    let output = u.output_tokens.unwrap_or(0);
    UsageJson {
        input_tokens: input,
        input_tokens_details: Cached {
            cached_tokens: u.cache_read_tokens.unwrap_or(0),
        },
        output_tokens: output,
        output_tokens_details: Reasoned {
            reasoning_tokens: u.reasoning_tokens.unwrap_or(0),
        },
        total_tokens: input + output,
    }
}

/// Turns canonical events into Responses SSE frames and the response object.
#[derive(Debug)]
pub struct ResponsesEncoder {
    id: String,
    created_at: u64,
    model: String,
    opts: EncodeOptions,
    sink: Sink,
    output: Vec<Item>,
    open: Option<Open>,
    usage: Usage,
    /// `completed`, `incomplete` or `failed` once the stream ended.
    status: Option<&'static str>,
    incomplete_reason: Option<&'static str>,
    error: Option<Value>,
}

/// Where events go: numbered in order, and made into frames unless only the response
/// object is wanted. Apart from the encoder's state, so that an event can borrow the
/// open item while it is emitted.
#[derive(Debug)]
struct Sink {
    seq: u64,
    /// Make SSE frames (false: only the response object is wanted).
    frames: bool,
}

impl Sink {
    /// One event: `body`'s fields with `type` and `sequence_number`.
    fn emit<S: FrameSink, B: Serialize>(&mut self, out: &mut S, name: &'static str, body: B) {
        self.emit_with(out, name, |buf, seq| write_envelope(buf, name, seq, &body));
    }

    /// One event whose JSON `write` appends, given its sequence number.
    fn emit_with<S: FrameSink>(
        &mut self,
        out: &mut S,
        name: &'static str,
        write: impl FnOnce(&mut Vec<u8>, u64),
    ) {
        let seq = self.seq;
        self.seq += 1;
        if self.frames {
            out.frame_with(Some(name), |buf| write(buf, seq));
        }
    }
}

impl ResponsesEncoder {
    /// `id` is the response id (`resp_…`), `created_at` Unix seconds: the caller's, as
    /// this module has no clock and no randomness.
    pub fn new(id: String, created_at: u64, opts: EncodeOptions) -> Self {
        ResponsesEncoder {
            id,
            created_at,
            model: String::new(),
            opts,
            sink: Sink {
                seq: 0,
                frames: true,
            },
            output: Vec::new(),
            open: None,
            usage: Usage::default(),
            status: None,
            incomplete_reason: None,
            error: None,
        }
    }

    /// Build the response object only (a non-streaming request): `encode` returns no
    /// frames.
    pub fn silent(mut self) -> Self {
        self.sink.frames = false;
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The output items so far (all of them once the stream ended).
    pub fn output(&self) -> &[Item] {
        &self.output
    }

    /// The output items as JSON (what is stored, and handed back by clients).
    pub fn output_json(&self) -> Vec<Value> {
        self.output
            .iter()
            .map(|i| serde_json::to_value(i).unwrap_or_default())
            .collect()
    }

    /// Whether the response ended successfully (completed or incomplete).
    pub fn succeeded(&self) -> bool {
        matches!(self.status, Some("completed" | "incomplete"))
    }

    fn item_id(&self, prefix: &str) -> String {
        let base = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{base}_{}", self.output.len())
    }

    /// The response object as JSON text: its own fields, the repeated request fields,
    /// and the usage once the answer ended.
    fn response_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.response_size());
        self.write_response(&mut out);
        out
    }

    /// Room for the response object's text without its output (which grows the buffer
    /// when there is much).
    fn response_size(&self) -> usize {
        320 + self.opts.echo_json.len()
    }

    /// Append the response object's text to `out`: written by hand, as it goes out
    /// two or three times in every streamed answer.
    fn write_response(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        put_json(out, &self.id);
        out.extend_from_slice(b",\"object\":\"response\",\"created_at\":");
        put_json(out, &self.created_at);
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(self.status.unwrap_or("in_progress").as_bytes());
        out.extend_from_slice(b"\",\"error\":");
        put_json(out, &self.error);
        out.extend_from_slice(b",\"incomplete_details\":");
        match self.incomplete_reason {
            Some(reason) => {
                out.extend_from_slice(b"{\"reason\":\"");
                out.extend_from_slice(reason.as_bytes());
                out.extend_from_slice(b"\"}");
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"model\":");
        put_json(out, &self.model);
        out.extend_from_slice(b",\"output\":");
        write_list(out, &self.output, write_item);
        if !self.opts.echo_json.is_empty() {
            out.push(b',');
            out.extend_from_slice(self.opts.echo_json.as_bytes());
        }
        out.extend_from_slice(b",\"usage\":");
        let usage =
            (self.status.is_some() && !self.usage.is_empty()).then(|| usage_json(&self.usage));
        put_json(out, &usage);
        out.push(b'}');
    }

    /// The response object as it stands.
    pub fn response(&self) -> Value {
        serde_json::from_slice(&self.response_json()).unwrap_or_default()
    }

    /// The response object as text.
    pub fn response_text(&self) -> String {
        String::from_utf8(self.response_json()).unwrap_or_default()
    }

    /// Events whose body is the response object, one per name in `names` (the object
    /// is written once for all of them: `created` and `in_progress` carry the same).
    fn emit_response<S: FrameSink>(&mut self, out: &mut S, names: &[&'static str]) {
        if !self.sink.frames {
            self.sink.seq += names.len() as u64;
            return;
        }
        let mut body = Vec::with_capacity(self.response_size() + 16);
        body.extend_from_slice(b",\"response\":");
        self.write_response(&mut body);
        body.push(b'}');
        for name in names {
            self.sink.emit_with(out, name, |buf, seq| {
                write_envelope_head(buf, name, seq);
                buf.extend_from_slice(&body);
            });
        }
    }

    fn emit_item<S: FrameSink>(&mut self, out: &mut S, name: &'static str, item: &Item) {
        let output_index = self.output.len();
        self.sink.emit_with(out, name, |buf, seq| {
            write_envelope_head(buf, name, seq);
            buf.extend_from_slice(b",\"output_index\":");
            put_json(buf, &output_index);
            buf.extend_from_slice(b",\"item\":");
            write_item(buf, item);
            buf.push(b'}');
        });
    }

    /// The frames of one event, one by one.
    pub fn encode(&mut self, ev: &Event) -> Vec<Frame> {
        let mut out = Vec::new();
        self.encode_to(ev, &mut out);
        out
    }

    /// Encode one event into `out`.
    pub fn encode_to<S: FrameSink>(&mut self, ev: &Event, out: &mut S) {
        if self.status.is_some() {
            return;
        }
        match ev {
            Event::MessageStart { model, .. } => {
                self.model.clone_from(model);
                self.emit_response(out, &["response.created", "response.in_progress"]);
            }
            Event::BlockStart { block, .. } => {
                self.close(out);
                self.open_block(block, out);
            }
            Event::TextDelta { text, .. } => {
                if !matches!(self.open, Some(Open::Text { .. })) {
                    self.close(out);
                    self.open_block(&BlockStart::Text, out);
                }
                let output_index = self.output.len();
                if let Some(Open::Text { id, text: acc }) = &mut self.open {
                    acc.push_str(text);
                    self.sink.emit_with(out, TEXT_DELTA, |buf, seq| {
                        write_text_delta(buf, seq, id, output_index, text)
                    });
                }
            }
            Event::ToolInputDelta { partial_json, .. } => {
                let output_index = self.output.len();
                if let Some(Open::Call {
                    id,
                    arguments,
                    custom,
                    ..
                }) = &mut self.open
                {
                    arguments.push_str(partial_json);
                    if !*custom {
                        self.sink.emit(
                            out,
                            "response.function_call_arguments.delta",
                            Delta {
                                item_id: id,
                                output_index,
                                content_index: None,
                                summary_index: None,
                                delta: partial_json,
                            },
                        );
                    }
                }
            }
            Event::ThinkingDelta { thinking, .. } => {
                let output_index = self.output.len();
                let summary = self.opts.summary;
                if let Some(Open::Reasoning { id, text, .. }) = &mut self.open {
                    text.push_str(thinking);
                    let (name, content_index, summary_index) = if summary {
                        ("response.reasoning_summary_text.delta", None, Some(0))
                    } else {
                        ("response.reasoning_text.delta", Some(0), None)
                    };
                    self.sink.emit(
                        out,
                        name,
                        Delta {
                            item_id: id,
                            output_index,
                            content_index,
                            summary_index,
                            delta: thinking,
                        },
                    );
                }
            }
            Event::SignatureDelta { signature, .. } => {
                if let Some(Open::Reasoning { signature: s, .. }) = &mut self.open {
                    s.push_str(signature);
                }
            }
            Event::BlockStop { .. } => self.close(out),
            // Logprobs are not reported on Responses output text (yet).
            Event::Logprobs(_) => {}
            Event::Usage(u) => self.usage.merge(u),
            Event::MessageStop { stop_reason } => {
                self.close(out);
                let (status, name) = match stop_reason {
                    StopReason::MaxTokens | StopReason::ContextWindowExceeded => {
                        self.incomplete_reason = Some("max_output_tokens");
                        ("incomplete", "response.incomplete")
                    }
                    _ => ("completed", "response.completed"),
                };
                self.status = Some(status);
                self.emit_response(out, &[name]);
            }
            Event::Error(e) => {
                self.close(out);
                self.status = Some("failed");
                self.error =
                    Some(serde_json::json!({"code": e.code.as_str(), "message": e.message}));
                self.emit_response(out, &["response.failed"]);
            }
        }
    }

    fn open_block<S: FrameSink>(&mut self, block: &BlockStart, out: &mut S) {
        let output_index = self.output.len();
        match block {
            BlockStart::Text => {
                let id = self.item_id("msg");
                let item = Item::Message {
                    id: id.clone(),
                    status: "in_progress",
                    role: "assistant",
                    content: vec![],
                };
                self.emit_item(out, "response.output_item.added", &item);
                self.sink.emit_with(out, PART_ADDED, |buf, seq| {
                    write_text_part_event(buf, PART_ADDED, seq, &id, output_index, "")
                });
                self.open = Some(Open::Text {
                    id,
                    text: String::new(),
                });
            }
            BlockStart::ToolUse { id: call_id, name } => {
                let custom = self.opts.custom_tools.iter().any(|n| n == name);
                let id = self.item_id(if custom { "ctc" } else { "fc" });
                // A custom call's input is unwrapped from `{"input": …}` at its end, so
                // its item is announced then.
                if !custom {
                    let item = Item::FunctionCall {
                        id: id.clone(),
                        call_id: call_id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                        status: "in_progress",
                    };
                    self.emit_item(out, "response.output_item.added", &item);
                }
                self.open = Some(Open::Call {
                    id,
                    call_id: call_id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                    custom,
                });
            }
            BlockStart::Thinking => {
                let id = self.item_id("rs");
                let item = Item::Reasoning {
                    id: id.clone(),
                    summary: vec![],
                    content: None,
                    encrypted_content: None,
                };
                self.emit_item(out, "response.output_item.added", &item);
                if self.opts.summary {
                    let mut added = Done::new(&id, output_index);
                    added.summary_index = Some(0);
                    added.part = Some(Part::SummaryText { text: "" });
                    self.sink
                        .emit(out, "response.reasoning_summary_part.added", added);
                }
                self.open = Some(Open::Reasoning {
                    id,
                    text: String::new(),
                    signature: String::new(),
                });
            }
            BlockStart::RedactedThinking { data } => {
                let item = Item::Reasoning {
                    id: self.item_id("rs"),
                    summary: vec![],
                    content: None,
                    encrypted_content: self
                        .opts
                        .encrypted_content
                        .then(|| format!("{REDACTED_PREFIX}{data}")),
                };
                self.emit_item(out, "response.output_item.added", &item);
                self.emit_item(out, "response.output_item.done", &item);
                self.output.push(item);
            }
        }
    }

    /// Finish the open item: its `.done` events and `output_item.done`.
    fn close<S: FrameSink>(&mut self, out: &mut S) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = self.output.len();
        let item = match open {
            Open::Text { id, text } => {
                self.sink.emit_with(out, TEXT_DONE, |buf, seq| {
                    write_text_done(buf, seq, &id, index, &text)
                });
                self.sink.emit_with(out, PART_DONE, |buf, seq| {
                    write_text_part_event(buf, PART_DONE, seq, &id, index, &text)
                });
                Item::Message {
                    id,
                    status: "completed",
                    role: "assistant",
                    content: vec![OutputText::new(text)],
                }
            }
            Open::Call {
                id,
                call_id,
                name,
                arguments,
                custom: false,
            } => {
                let mut done = Done::new(&id, index);
                done.name = Some(&name);
                done.arguments = Some(&arguments);
                self.sink
                    .emit(out, "response.function_call_arguments.done", done);
                Item::FunctionCall {
                    id,
                    call_id,
                    name,
                    arguments,
                    status: "completed",
                }
            }
            Open::Call {
                id,
                call_id,
                name,
                arguments,
                custom: true,
            } => {
                let input = serde_json::from_str::<Value>(&arguments)
                    .ok()
                    .and_then(|v| v["input"].as_str().map(str::to_owned))
                    .unwrap_or(arguments);
                let added = Item::CustomToolCall {
                    id: id.clone(),
                    call_id: call_id.clone(),
                    name: name.clone(),
                    input: String::new(),
                    status: "in_progress",
                };
                self.emit_item(out, "response.output_item.added", &added);
                self.sink.emit(
                    out,
                    "response.custom_tool_call_input.delta",
                    Delta {
                        item_id: &id,
                        output_index: index,
                        content_index: None,
                        summary_index: None,
                        delta: &input,
                    },
                );
                let mut done = Done::new(&id, index);
                done.input = Some(&input);
                self.sink
                    .emit(out, "response.custom_tool_call_input.done", done);
                Item::CustomToolCall {
                    id,
                    call_id,
                    name,
                    input,
                    status: "completed",
                }
            }
            Open::Reasoning {
                id,
                text,
                signature,
            } => {
                let (summary, content) = if self.opts.summary {
                    let mut done = Done::new(&id, index);
                    done.summary_index = Some(0);
                    done.text = Some(&text);
                    self.sink
                        .emit(out, "response.reasoning_summary_text.done", done);
                    let mut part = Done::new(&id, index);
                    part.summary_index = Some(0);
                    part.part = Some(Part::SummaryText { text: &text });
                    self.sink
                        .emit(out, "response.reasoning_summary_part.done", part);
                    (
                        vec![TextPart {
                            kind: "summary_text",
                            text,
                        }],
                        None,
                    )
                } else {
                    let mut done = Done::new(&id, index);
                    done.content_index = Some(0);
                    done.text = Some(&text);
                    self.sink.emit(out, "response.reasoning_text.done", done);
                    (
                        vec![],
                        Some(vec![TextPart {
                            kind: "reasoning_text",
                            text,
                        }]),
                    )
                };
                Item::Reasoning {
                    id,
                    summary,
                    content,
                    encrypted_content: (self.opts.encrypted_content && !signature.is_empty())
                        .then(|| format!("{SIGNATURE_PREFIX}{signature}")),
                }
            }
        };
        self.emit_item(out, "response.output_item.done", &item);
        self.output.push(item);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope<B: Serialize>(kind: &str, seq: u64, body: &B) -> String {
        let mut out = Vec::new();
        write_envelope(&mut out, kind, seq, body);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_hand_written_text_delta_is_the_apis_event() {
        for (text, index) in [("", 0), ("a \"quote\",\n\u{e9} \u{1F600}\\", 7)] {
            let mut out = Vec::new();
            write_text_delta(&mut out, 41, "msg_x_0", index, text);
            let v: Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(
                v,
                serde_json::json!({
                    "type": TEXT_DELTA,
                    "sequence_number": 41,
                    "item_id": "msg_x_0",
                    "output_index": index,
                    "content_index": 0,
                    "delta": text,
                    "logprobs": [],
                })
            );
            // The fields in the API's order (the JSON map keeps the text's order).
            let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(
                keys,
                [
                    "type",
                    "sequence_number",
                    "item_id",
                    "output_index",
                    "content_index",
                    "delta",
                    "logprobs"
                ]
            );
        }
    }

    #[test]
    fn an_envelope_puts_type_and_sequence_before_the_bodys_fields() {
        #[derive(Serialize)]
        struct Empty {}
        #[derive(Serialize)]
        struct Body<'a> {
            delta: &'a str,
            output_index: usize,
        }
        assert_eq!(
            envelope("response.x", 3, &Empty {}),
            r#"{"type":"response.x","sequence_number":3}"#
        );
        let text = envelope(
            "response.output_text.delta",
            12,
            &Body {
                delta: "a \"quote\" and \u{e9}",
                output_index: 0,
            },
        );
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "type": "response.output_text.delta",
                "sequence_number": 12,
                "delta": "a \"quote\" and \u{e9}",
                "output_index": 0,
            })
        );
        assert!(text.starts_with(r#"{"type":"response.output_text.delta","sequence_number":12,"#));
        // What is not an object adds no field.
        assert_eq!(
            envelope("response.z", 1, &[1]),
            r#"{"type":"response.z","sequence_number":1}"#
        );
    }
}
