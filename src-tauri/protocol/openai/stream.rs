//! OpenAI streaming: upstream `chat.completion.chunk`s → canonical events, and canonical
//! events → the chunks an OpenAI client expects.

use super::chunk;
use super::wire::*;
use super::{finish_reason, logprobs_from_wire, logprobs_to_wire, stop_reason_from_finish};
use super::{usage_from_wire, usage_to_wire};
use crate::error::{Code, Error, Result};
use crate::protocol::Protocol;
use crate::protocol::canonical::{BlockStart, Event, EventBuilder, StopReason, StreamError, Usage};
use crate::protocol::errors::{code_for_openai_error, stream_error_frame};
use crate::protocol::sse::{self, Frame, FrameSink};
use std::collections::BTreeMap;

/// A tool call seen in the upstream stream, keyed by OpenAI's `index`.
#[derive(Debug, Default)]
struct ToolSlot {
    id: Option<String>,
    name: Option<String>,
    /// Arguments received before the name was known (some servers split id, name and
    /// arguments over several chunks).
    pending_args: String,
    started: bool,
}

/// Turns an upstream Chat Completions SSE stream into canonical events.
///
/// OpenAI streams tool calls as deltas keyed by `index`; each index becomes one
/// `tool_use` block. Blocks are sequential in the canonical stream, so arguments for a
/// tool call that was already followed by another block are a protocol violation we
/// report (no known server interleaves them). `reasoning_content` / `reasoning` deltas
/// become a thinking block. The stop reason is held until `[DONE]` (or the end of the
/// body) so that the usage chunk OpenAI sends after `finish_reason` is included before
/// `MessageStop`.
#[derive(Debug, Default)]
pub struct ChatStreamDecoder {
    b: EventBuilder,
    msg_id: String,
    tools: BTreeMap<u32, ToolSlot>,
    open_tool: Option<u32>,
    finish: Option<StopReason>,
    refused: bool,
    done: bool,
}

impl ChatStreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed one SSE event of the upstream body.
    pub fn push(&mut self, ev: &sse::Event) -> Result<Vec<Event>> {
        self.push_data(&ev.data)
    }

    /// Feed the `data` of one SSE event.
    pub fn push_data(&mut self, data: &str) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        self.push_data_to(data, &mut out)?;
        Ok(out)
    }

    /// Feed the `data` of one SSE event, appending its events to `out`; on an error,
    /// `out` is left as it was.
    pub fn push_data_to(&mut self, data: &str, out: &mut Vec<Event>) -> Result<()> {
        let before = out.len();
        self.read_data(data, out)
            .inspect_err(|_| out.truncate(before))
    }

    fn read_data(&mut self, data: &str, out: &mut Vec<Event>) -> Result<()> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return self.end(out);
        }
        let chunk = chunk::read(data).map_err(|e| {
            Error::new(
                Code::ProviderBadResponse,
                format!("upstream stream chunk is not valid: {e}"),
            )
        })?;
        if let Some(err) = chunk.error {
            self.done = true;
            let message = err
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| err.to_string());
            let code = code_for_openai_error(
                err.get("code").and_then(|c| c.as_str()),
                err.get("type").and_then(|c| c.as_str()),
            );
            out.push(Event::Error(StreamError {
                code,
                message: format!("upstream error during the stream: {message}"),
            }));
            return Ok(());
        }
        if !self.b.is_started() {
            self.msg_id.clear();
            self.msg_id.push_str(&chunk.id);
            out.push(self.b.start(&*chunk.id, &*chunk.model));
        }
        for choice in chunk.choices {
            if choice.index != 0 {
                return Err(Error::new(
                    Code::ProviderBadResponse,
                    format!(
                        "upstream streamed choice {} (only one was asked for)",
                        choice.index
                    ),
                ));
            }
            let d = choice.delta;
            if let Some(r) = d.reasoning_content.as_deref().or(d.reasoning.as_deref()) {
                if !r.is_empty() {
                    self.before_other_block();
                }
                self.b.thinking(r, out);
            }
            if let Some(t) = &d.content {
                if !t.is_empty() {
                    self.before_other_block();
                }
                self.b.text(t, out);
            }
            if let Some(r) = &d.refusal {
                self.refused = true;
                if !r.is_empty() {
                    self.before_other_block();
                }
                self.b.text(r, out);
            }
            for tc in d.tool_calls.unwrap_or_default() {
                self.tool_delta(tc, out)?;
            }
            if let Some(lp) = choice.logprobs.and_then(|l| l.content) {
                self.b.logprobs(logprobs_from_wire(lp), out);
            }
            if let Some(r) = choice.finish_reason {
                self.finish = Some(stop_reason_from_finish(&r));
            }
        }
        if let Some(u) = &chunk.usage {
            self.b.usage(&usage_from_wire(u));
        }
        Ok(())
    }

    /// Text or thinking is about to open a new block: the open tool call is over.
    fn before_other_block(&mut self) {
        self.open_tool = None;
    }

    fn tool_delta(&mut self, tc: ToolCallDelta, out: &mut Vec<Event>) -> Result<()> {
        // Without an `index`, a delta that brings a new call id (or a name while the
        // current call already has one) starts the next call; anything else continues
        // the last one. Merging them all into call 0 would fuse several calls into one.
        let idx = match tc.index {
            Some(i) => i,
            None => {
                let last = self.tools.iter().next_back();
                let starts_new = match last {
                    None => true,
                    Some((_, slot)) => {
                        let new_id = tc
                            .id
                            .as_deref()
                            .is_some_and(|id| !id.is_empty() && slot.id.as_deref() != Some(id));
                        let new_name = tc
                            .function
                            .as_ref()
                            .and_then(|f| f.name.as_deref())
                            .is_some_and(|n| {
                                !n.is_empty() && slot.name.is_some() && tc.id.is_none()
                            });
                        new_id || new_name
                    }
                };
                match (last, starts_new) {
                    (Some((&i, _)), false) => i,
                    (Some((&i, _)), true) => i + 1,
                    (None, _) => 0,
                }
            }
        };
        let slot = self.tools.entry(idx).or_default();
        if let Some(id) = tc.id.filter(|s| !s.is_empty()) {
            slot.id.get_or_insert(id);
        }
        let (name, args) = match tc.function {
            Some(f) => (
                f.name.filter(|s| !s.is_empty()),
                f.arguments.unwrap_or_default(),
            ),
            None => (None, String::new()),
        };
        if let Some(n) = name {
            slot.name.get_or_insert(n);
        }
        if slot.started {
            if self.open_tool != Some(idx) {
                return Err(Error::new(
                    Code::ProviderBadResponse,
                    format!(
                        "upstream sent arguments for tool call {idx} after a later block began"
                    ),
                ));
            }
            return self.b.tool_arguments(&args, out);
        }
        slot.pending_args.push_str(&args);
        if let Some(name) = slot.name.clone() {
            let id = slot
                .id
                .clone()
                .unwrap_or_else(|| format!("call_{}_{idx}", self.msg_id));
            let pending = std::mem::take(&mut slot.pending_args);
            slot.started = true;
            self.b.tool_start(&id, &name, out);
            self.open_tool = Some(idx);
            self.b.tool_arguments(&pending, out)?;
        }
        Ok(())
    }

    fn end(&mut self, out: &mut Vec<Event>) -> Result<()> {
        if let Some((idx, _)) = self.tools.iter().find(|(_, s)| !s.started) {
            return Err(Error::new(
                Code::ProviderBadResponse,
                format!("upstream tool call {idx} never got a function name"),
            ));
        }
        if !self.b.is_started() {
            out.push(self.b.start("", ""));
        }
        let reason = if self.refused {
            StopReason::Refusal
        } else {
            self.finish.clone().unwrap_or(StopReason::EndTurn)
        };
        self.b.finish(reason, out);
        Ok(())
    }

    /// The upstream body ended. A stream that stopped before `finish_reason` and
    /// `[DONE]` was cut off: that is an error event, not a silent end of turn.
    pub fn finish(&mut self) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        self.finish_to(&mut out)?;
        Ok(out)
    }

    /// [`Self::finish`], appending to `out` (nothing on an error: `end` checks before
    /// it writes).
    pub fn finish_to(&mut self, out: &mut Vec<Event>) -> Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        if self.finish.is_none() {
            out.push(Event::Error(StreamError {
                code: Code::UpstreamError,
                message: "upstream stream ended before it finished".into(),
            }));
            return Ok(());
        }
        self.end(out)
    }
}

/// Turns canonical events into the SSE frames of an OpenAI chat completion stream.
#[derive(Debug)]
pub struct ChatStreamEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Usage,
    next_tool: u32,
    open_tool: Option<u32>,
    finished: bool,
}

impl ChatStreamEncoder {
    /// `include_usage` is what *the client* asked for (`stream_options.include_usage`);
    /// `created` is the Unix time in seconds.
    pub fn new(include_usage: bool, created: u64) -> Self {
        ChatStreamEncoder {
            id: String::new(),
            model: String::new(),
            created,
            include_usage,
            usage: Usage::default(),
            next_tool: 0,
            open_tool: None,
            finished: false,
        }
    }

    fn chunk<S: FrameSink>(
        &self,
        out: &mut S,
        delta: Delta,
        finish: Option<String>,
        logprobs: Option<ChoiceLogprobs>,
    ) {
        let c = ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            system_fingerprint: None,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs,
                finish_reason: finish,
            }],
            usage: self.include_usage.then_some(None),
        };
        out.json(None, &c);
    }

    /// The frames of one event, one by one.
    pub fn encode(&mut self, ev: &Event) -> Vec<Frame> {
        let mut out = Vec::new();
        self.encode_to(ev, &mut out);
        out
    }

    /// Encode one event into `out`.
    pub fn encode_to<S: FrameSink>(&mut self, ev: &Event, out: &mut S) {
        if self.finished {
            return;
        }
        match ev {
            Event::MessageStart { id, model } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.chunk(
                    out,
                    Delta {
                        role: Some("assistant".into()),
                        content: Some(String::new()),
                        ..Default::default()
                    },
                    None,
                    None,
                )
            }
            Event::BlockStart {
                block: BlockStart::ToolUse { id, name },
                ..
            } => {
                let index = self.next_tool;
                self.next_tool += 1;
                self.open_tool = Some(index);
                self.chunk(
                    out,
                    Delta {
                        tool_calls: Some(vec![ToolCallDelta {
                            index: Some(index),
                            id: Some(id.clone()),
                            kind: Some("function".into()),
                            function: Some(FunctionDelta {
                                name: Some(name.clone()),
                                arguments: Some(String::new()),
                            }),
                        }]),
                        ..Default::default()
                    },
                    None,
                    None,
                )
            }
            Event::BlockStart { .. } => {}
            Event::TextDelta { text, .. } => self.chunk(
                out,
                Delta {
                    content: Some(text.clone()),
                    ..Default::default()
                },
                None,
                None,
            ),
            Event::ThinkingDelta { thinking, .. } => self.chunk(
                out,
                Delta {
                    reasoning_content: Some(thinking.clone()),
                    ..Default::default()
                },
                None,
                None,
            ),
            // OpenAI has no field for thinking signatures (they only matter when the
            // turn is replayed to Anthropic, which an OpenAI client cannot do).
            Event::SignatureDelta { .. } => {}
            Event::ToolInputDelta { partial_json, .. } => {
                if let Some(index) = self.open_tool {
                    self.chunk(
                        out,
                        Delta {
                            tool_calls: Some(vec![ToolCallDelta {
                                index: Some(index),
                                id: None,
                                kind: None,
                                function: Some(FunctionDelta {
                                    name: None,
                                    arguments: Some(partial_json.clone()),
                                }),
                            }]),
                            ..Default::default()
                        },
                        None,
                        None,
                    );
                }
            }
            Event::BlockStop { .. } => {
                self.open_tool = None;
            }
            Event::Logprobs(lp) => self.chunk(
                out,
                Delta::default(),
                None,
                Some(ChoiceLogprobs {
                    content: Some(logprobs_to_wire(lp)),
                }),
            ),
            Event::Usage(u) => {
                self.usage.merge(u);
            }
            Event::MessageStop { stop_reason } => {
                self.finished = true;
                self.chunk(
                    out,
                    Delta::default(),
                    Some(finish_reason(stop_reason)),
                    None,
                );
                if self.include_usage {
                    let c = ChatChunk {
                        id: self.id.clone(),
                        object: "chat.completion.chunk".into(),
                        created: self.created,
                        model: self.model.clone(),
                        system_fingerprint: None,
                        choices: vec![],
                        usage: Some(Some(usage_to_wire(&self.usage))),
                    };
                    out.json(None, &c);
                }
                out.frame(Frame::data("[DONE]"));
            }
            Event::Error(e) => {
                self.finished = true;
                out.frame(stream_error_frame(Protocol::OpenAi, &e.clone().into()));
            }
        }
    }
}

/// Turns canonical events into a legacy `/v1/completions` stream (`text_completion`
/// chunks). Only text reaches a legacy client; it cannot ask for tools or reasoning.
#[derive(Debug)]
pub struct CompletionStreamEncoder {
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    usage: Usage,
    finished: bool,
}

impl CompletionStreamEncoder {
    pub fn new(include_usage: bool, created: u64) -> Self {
        CompletionStreamEncoder {
            id: String::new(),
            model: String::new(),
            created,
            include_usage,
            usage: Usage::default(),
            finished: false,
        }
    }

    fn frame<S: FrameSink>(
        &self,
        out: &mut S,
        choices: Vec<CompletionChoice>,
        usage: Option<Option<ChatUsage>>,
    ) {
        let c = Completion {
            id: self.id.clone(),
            object: "text_completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage,
        };
        out.json(None, &c);
    }

    fn text_choice(text: String, finish: Option<String>) -> Vec<CompletionChoice> {
        vec![CompletionChoice {
            text,
            index: 0,
            logprobs: None,
            finish_reason: finish,
        }]
    }

    /// The frames of one event, one by one.
    pub fn encode(&mut self, ev: &Event) -> Vec<Frame> {
        let mut out = Vec::new();
        self.encode_to(ev, &mut out);
        out
    }

    /// Encode one event into `out`.
    pub fn encode_to<S: FrameSink>(&mut self, ev: &Event, out: &mut S) {
        if self.finished {
            return;
        }
        let usage_null = self.include_usage.then_some(None);
        match ev {
            Event::MessageStart { id, model } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            Event::TextDelta { text, .. } => {
                self.frame(out, Self::text_choice(text.clone(), None), usage_null);
            }
            Event::Usage(u) => {
                self.usage.merge(u);
            }
            Event::MessageStop { stop_reason } => {
                self.finished = true;
                self.frame(
                    out,
                    Self::text_choice(String::new(), Some(finish_reason(stop_reason))),
                    usage_null,
                );
                if self.include_usage {
                    self.frame(out, vec![], Some(Some(usage_to_wire(&self.usage))));
                }
                out.frame(Frame::data("[DONE]"));
            }
            Event::Error(e) => {
                self.finished = true;
                out.frame(stream_error_frame(Protocol::OpenAi, &e.clone().into()));
            }
            _ => {}
        }
    }
}
