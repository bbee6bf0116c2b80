//! Anthropic streaming: upstream Messages SSE events → canonical events, and canonical
//! events → the named SSE events an Anthropic client expects.

use super::wire::*;
use super::{client_usage, stop_reason_from_wire, stop_reason_to_wire, usage_from_wire};
use crate::error::{Code, Error, Result};
use crate::protocol::Protocol;
use crate::protocol::canonical::{BlockStart, Event, StopReason, StreamError, Usage};
use crate::protocol::errors::{code_for_anthropic_type, stream_error_frame};
use crate::protocol::sse::{self, Frame, FrameSink, put_json};
use serde_json::Value;

/// Turns an upstream Messages stream into canonical events. Anthropic's stream already
/// has the canonical shape (sequential indexed blocks), so this is mostly renaming;
/// usage is tracked in Anthropic's terms and re-emitted whole at each report, because
/// `message_start` and `message_delta` each carry only part of it.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    usage: UsageWire,
    stop: Option<StopReason>,
    done: bool,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::new(Code::ProviderBadResponse, msg)
}

impl StreamDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, ev: &sse::Event) -> Result<Vec<Event>> {
        self.push_data(&ev.data)
    }

    /// Feed the `data` of one SSE event (its JSON `type` names the event).
    pub fn push_data(&mut self, data: &str) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        if self.done {
            return Ok(out);
        }
        let ev: StreamEvent = serde_json::from_str(data)
            .map_err(|e| bad(format!("upstream stream event is not valid: {e}")))?;
        match ev {
            StreamEvent::MessageStart { message } => {
                out.push(Event::MessageStart {
                    id: message.id,
                    model: message.model,
                });
                self.usage.merge(&message.usage);
                if self.usage != UsageWire::default() {
                    out.push(Event::Usage(usage_from_wire(&self.usage)));
                }
            }
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                let (block, initial) = match content_block {
                    ContentBlock::Text { text, .. } => (
                        BlockStart::Text,
                        (!text.is_empty()).then_some(Event::TextDelta { index, text }),
                    ),
                    ContentBlock::ToolUse {
                        id, name, input, ..
                    } => {
                        let initial = match &input {
                            Value::Object(m) if m.is_empty() => None,
                            Value::Null => None,
                            v => Some(Event::ToolInputDelta {
                                index,
                                partial_json: v.to_string(),
                            }),
                        };
                        (BlockStart::ToolUse { id, name }, initial)
                    }
                    ContentBlock::Thinking { thinking, .. } => (
                        BlockStart::Thinking,
                        (!thinking.is_empty()).then_some(Event::ThinkingDelta { index, thinking }),
                    ),
                    ContentBlock::RedactedThinking { data } => {
                        (BlockStart::RedactedThinking { data }, None)
                    }
                    other => {
                        return Err(bad(format!(
                            "upstream streamed a `{}` block, which Switchyard does not request or carry",
                            other.type_name()
                        )));
                    }
                };
                out.push(Event::BlockStart { index, block });
                out.extend(initial);
            }
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => out.push(Event::TextDelta { index, text }),
                BlockDelta::InputJsonDelta { partial_json } => {
                    if !partial_json.is_empty() {
                        out.push(Event::ToolInputDelta {
                            index,
                            partial_json,
                        })
                    }
                }
                BlockDelta::ThinkingDelta { thinking } => {
                    out.push(Event::ThinkingDelta { index, thinking })
                }
                BlockDelta::SignatureDelta { signature } => {
                    out.push(Event::SignatureDelta { index, signature })
                }
                BlockDelta::CitationsDelta {} => {
                    return Err(bad(
                        "upstream streamed citations, which Switchyard does not request or carry",
                    ));
                }
                BlockDelta::Unknown => {}
            },
            StreamEvent::ContentBlockStop { index } => out.push(Event::BlockStop { index }),
            StreamEvent::MessageDelta { delta, usage } => {
                if let Some(r) = delta.stop_reason {
                    self.stop = Some(stop_reason_from_wire(&r, delta.stop_sequence));
                }
                if let Some(u) = usage {
                    self.usage.merge(&u);
                    out.push(Event::Usage(usage_from_wire(&self.usage)));
                }
            }
            StreamEvent::MessageStop => {
                self.done = true;
                out.push(Event::MessageStop {
                    stop_reason: self.stop.clone().unwrap_or(StopReason::EndTurn),
                });
            }
            StreamEvent::Ping | StreamEvent::Unknown => {}
            StreamEvent::Error { error } => {
                self.done = true;
                out.push(Event::Error(StreamError {
                    code: code_for_anthropic_type(&error.kind),
                    message: format!(
                        "upstream error during the stream: {}: {}",
                        error.kind, error.message
                    ),
                }));
            }
        }
        Ok(out)
    }

    /// The upstream body ended; without `message_stop` the stream was cut off.
    pub fn finish(&mut self) -> Vec<Event> {
        if self.done {
            return vec![];
        }
        self.done = true;
        vec![Event::Error(StreamError {
            code: Code::UpstreamError,
            message: "upstream stream ended before message_stop".into(),
        })]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Tool,
    Thinking,
    Other,
}

/// Turns canonical events into Anthropic SSE events.
///
/// Guarantees what Anthropic clients rely on whatever the backend: one
/// `message_start` first; every `content_block_start` paired with a
/// `content_block_stop`, indexes 0, 1, 2, … assigned here; `message_delta` (stop reason
/// and final usage) before `message_stop`. `message_start` is held back until the first
/// event that is not usage, so that the input token count an Anthropic upstream reports
/// right after its start lands in `message_start`, where clients read it. Use
/// [`StreamEncoder::encode_all`] for each batch a decoder returns: it releases a held
/// `message_start` at the end of the batch.
#[derive(Debug, Default)]
pub struct StreamEncoder {
    pending_start: Option<(String, String)>,
    started: bool,
    usage: Usage,
    next_index: usize,
    open: Option<(usize, Open)>,
    finished: bool,
}

/// Anthropic's keep-alive event (`event: ping`), for the gateway to send while a slow
/// backend (a local model's prefill) has produced nothing yet. Clients ignore it.
pub fn ping_frame() -> Frame {
    frame(&StreamEvent::Ping)
}

fn frame(ev: &StreamEvent) -> Frame {
    Frame::named(ev.name(), serde_json::to_string(ev).unwrap_or_default())
}

fn put<S: FrameSink>(out: &mut S, ev: &StreamEvent) {
    out.json(Some(ev.name()), ev);
}

/// A `content_block_delta` carrying text: one per token of every answer, so written by
/// hand — the JSON `put` gives for it (a test holds them equal), without copying the
/// text into a `StreamEvent` first.
fn put_text_delta<S: FrameSink>(out: &mut S, index: usize, text: &str) {
    out.frame_with(Some("content_block_delta"), |buf| {
        buf.extend_from_slice(b"{\"type\":\"content_block_delta\",\"index\":");
        put_json(buf, &index);
        buf.extend_from_slice(b",\"delta\":{\"type\":\"text_delta\",\"text\":");
        put_json(buf, text);
        buf.extend_from_slice(b"}}");
    });
}

impl StreamEncoder {
    pub fn new() -> Self {
        Self::default()
    }

    fn flush_start<S: FrameSink>(&mut self, out: &mut S) {
        if let Some((id, model)) = self.pending_start.take() {
            self.started = true;
            put(
                out,
                &StreamEvent::MessageStart {
                    message: MessageResponse {
                        id,
                        kind: "message".into(),
                        role: "assistant".into(),
                        model,
                        content: vec![],
                        stop_reason: None,
                        stop_sequence: None,
                        usage: client_usage(&self.usage),
                    },
                },
            );
        }
    }

    fn close<S: FrameSink>(&mut self, out: &mut S) {
        if let Some((index, _)) = self.open.take() {
            put(out, &StreamEvent::ContentBlockStop { index });
        }
    }

    fn open_block<S: FrameSink>(&mut self, kind: Open, block: ContentBlock, out: &mut S) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, kind));
        put(
            out,
            &StreamEvent::ContentBlockStart {
                index,
                content_block: block,
            },
        );
        index
    }

    /// The open block's index if it is of `kind`; opens a fresh one of that kind if
    /// `fresh` is given (a delta with no matching block started).
    fn ensure<S: FrameSink>(
        &mut self,
        kind: Open,
        fresh: impl FnOnce() -> Option<ContentBlock>,
        out: &mut S,
    ) -> Option<usize> {
        match self.open {
            Some((i, k)) if k == kind => Some(i),
            _ => fresh().map(|b| self.open_block(kind, b, out)),
        }
    }

    /// Encode a batch of events (what one decoder call returned).
    pub fn encode_all(&mut self, events: &[Event]) -> Vec<Frame> {
        let mut out = Vec::new();
        self.encode_all_to(events, &mut out);
        out
    }

    /// Encode a batch of events into `out`.
    pub fn encode_all_to<S: FrameSink>(&mut self, events: &[Event], out: &mut S) {
        for e in events {
            self.encode_to(e, out);
        }
        self.flush_start(out);
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
                if !self.started {
                    self.pending_start = Some((id.clone(), model.clone()));
                }
                return;
            }
            Event::Usage(u) => {
                self.usage.merge(u);
                return;
            }
            _ => {}
        }
        self.flush_start(out);
        match ev {
            Event::MessageStart { .. } | Event::Usage(_) => {}
            Event::BlockStart { block, .. } => {
                let (kind, cb) = match block {
                    BlockStart::Text => (
                        Open::Text,
                        ContentBlock::Text {
                            text: String::new(),
                            cache_control: None,
                            citations: None,
                        },
                    ),
                    BlockStart::ToolUse { id, name } => (
                        Open::Tool,
                        ContentBlock::ToolUse {
                            id: id.clone(),
                            name: name.clone(),
                            input: Value::Object(Default::default()),
                            cache_control: None,
                        },
                    ),
                    BlockStart::Thinking => (
                        Open::Thinking,
                        ContentBlock::Thinking {
                            thinking: String::new(),
                            signature: Some(String::new()),
                        },
                    ),
                    BlockStart::RedactedThinking { data } => (
                        Open::Other,
                        ContentBlock::RedactedThinking { data: data.clone() },
                    ),
                };
                self.open_block(kind, cb, out);
            }
            Event::TextDelta { text, .. } => {
                let fresh = || {
                    Some(ContentBlock::Text {
                        text: String::new(),
                        cache_control: None,
                        citations: None,
                    })
                };
                if let Some(index) = self.ensure(Open::Text, fresh, out) {
                    put_text_delta(out, index, text);
                }
            }
            Event::ThinkingDelta { thinking, .. } => {
                let fresh = || {
                    Some(ContentBlock::Thinking {
                        thinking: String::new(),
                        signature: Some(String::new()),
                    })
                };
                if let Some(index) = self.ensure(Open::Thinking, fresh, out) {
                    put(
                        out,
                        &StreamEvent::ContentBlockDelta {
                            index,
                            delta: BlockDelta::ThinkingDelta {
                                thinking: thinking.clone(),
                            },
                        },
                    );
                }
            }
            Event::SignatureDelta { signature, .. } => {
                if let Some(index) = self.ensure(Open::Thinking, || None, out) {
                    put(
                        out,
                        &StreamEvent::ContentBlockDelta {
                            index,
                            delta: BlockDelta::SignatureDelta {
                                signature: signature.clone(),
                            },
                        },
                    );
                }
            }
            Event::ToolInputDelta { partial_json, .. } => {
                // A tool call cannot be opened without its id and name.
                if let Some(index) = self.ensure(Open::Tool, || None, out) {
                    put(
                        out,
                        &StreamEvent::ContentBlockDelta {
                            index,
                            delta: BlockDelta::InputJsonDelta {
                                partial_json: partial_json.clone(),
                            },
                        },
                    );
                }
            }
            Event::BlockStop { .. } => self.close(out),
            // Anthropic has no log probabilities (and its clients cannot ask for them).
            Event::Logprobs(_) => {}
            Event::MessageStop { stop_reason } => {
                self.close(out);
                let (stop_reason, stop_sequence) = stop_reason_to_wire(stop_reason);
                let mut usage = super::usage_to_wire(&self.usage);
                usage.output_tokens.get_or_insert(0);
                put(
                    out,
                    &StreamEvent::MessageDelta {
                        delta: MessageDeltaBody {
                            stop_reason: Some(stop_reason),
                            stop_sequence,
                        },
                        usage: Some(usage),
                    },
                );
                put(out, &StreamEvent::MessageStop);
                self.finished = true;
            }
            Event::Error(e) => {
                self.finished = true;
                out.frame(stream_error_frame(Protocol::Anthropic, &e.clone().into()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hand_written_text_delta_is_what_the_event_type_gives() {
        for (index, text) in [(0, ""), (12, "a \"quote\",\n\u{e9} \u{1F600}\\")] {
            let mut fast: Vec<Frame> = Vec::new();
            put_text_delta(&mut fast, index, text);
            let slow = frame(&StreamEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::TextDelta { text: text.into() },
            });
            assert_eq!(fast, vec![slow]);
        }
    }
}
