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
//! object of a non-streaming request: feed it the events, take [`ResponsesEncoder::response`].

use super::super::canonical::{BlockStart, Event, StopReason, Usage};
use super::super::sse::Frame;
use super::{EncodeOptions, REDACTED_PREFIX, SIGNATURE_PREFIX};
use serde_json::{Value, json};

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

/// Turns canonical events into Responses SSE frames and the response object.
#[derive(Debug)]
pub struct ResponsesEncoder {
    id: String,
    created_at: u64,
    model: String,
    opts: EncodeOptions,
    seq: u64,
    output: Vec<Value>,
    open: Option<Open>,
    usage: Usage,
    /// `completed`, `incomplete` or `failed` once the stream ended.
    status: Option<&'static str>,
    incomplete_reason: Option<&'static str>,
    error: Option<Value>,
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
            seq: 0,
            output: Vec::new(),
            open: None,
            usage: Usage::default(),
            status: None,
            incomplete_reason: None,
            error: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The output items so far (all of them once the stream ended).
    pub fn output(&self) -> &[Value] {
        &self.output
    }

    /// Whether the response ended successfully (completed or incomplete).
    pub fn succeeded(&self) -> bool {
        matches!(self.status, Some("completed" | "incomplete"))
    }

    fn item_id(&self, prefix: &str) -> String {
        let base = self.id.strip_prefix("resp_").unwrap_or(&self.id);
        format!("{prefix}_{base}_{}", self.output.len())
    }

    fn event(&mut self, name: &'static str, mut body: Value) -> Frame {
        body["type"] = json!(name);
        body["sequence_number"] = json!(self.seq);
        self.seq += 1;
        Frame::named(name, body.to_string())
    }

    /// The response object as it stands.
    pub fn response(&self) -> Value {
        let mut r = serde_json::Map::new();
        r.insert("id".into(), json!(self.id));
        r.insert("object".into(), json!("response"));
        r.insert("created_at".into(), json!(self.created_at));
        r.insert("status".into(), json!(self.status.unwrap_or("in_progress")));
        r.insert("error".into(), self.error.clone().unwrap_or(Value::Null));
        r.insert(
            "incomplete_details".into(),
            match self.incomplete_reason {
                Some(reason) => json!({"reason": reason}),
                None => Value::Null,
            },
        );
        r.insert("model".into(), json!(self.model));
        r.insert("output".into(), Value::Array(self.output.clone()));
        for (k, v) in &self.opts.echo {
            r.insert(k.clone(), v.clone());
        }
        r.insert(
            "usage".into(),
            if self.status.is_some() && !self.usage.is_empty() {
                usage_json(&self.usage)
            } else {
                Value::Null
            },
        );
        Value::Object(r)
    }

    pub fn encode(&mut self, ev: &Event) -> Vec<Frame> {
        let mut out = Vec::new();
        if self.status.is_some() {
            return out;
        }
        match ev {
            Event::MessageStart { model, .. } => {
                self.model.clone_from(model);
                let r = self.response();
                out.push(self.event("response.created", json!({"response": r})));
                let r = self.response();
                out.push(self.event("response.in_progress", json!({"response": r})));
            }
            Event::BlockStart { block, .. } => {
                self.close(&mut out);
                self.open_block(block, &mut out);
            }
            Event::TextDelta { text, .. } => {
                if !matches!(self.open, Some(Open::Text { .. })) {
                    self.close(&mut out);
                    self.open_block(&BlockStart::Text, &mut out);
                }
                if let Some(Open::Text { id, text: acc }) = &mut self.open {
                    acc.push_str(text);
                    let id = id.clone();
                    let index = self.output.len();
                    out.push(self.event(
                        "response.output_text.delta",
                        json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
                    ));
                }
            }
            Event::ToolInputDelta { partial_json, .. } => {
                if let Some(Open::Call {
                    id,
                    arguments,
                    custom,
                    ..
                }) = &mut self.open
                {
                    arguments.push_str(partial_json);
                    if !*custom {
                        let id = id.clone();
                        let index = self.output.len();
                        out.push(self.event(
                            "response.function_call_arguments.delta",
                            json!({"item_id": id, "output_index": index, "delta": partial_json}),
                        ));
                    }
                }
            }
            Event::ThinkingDelta { thinking, .. } => {
                if let Some(Open::Reasoning { id, text, .. }) = &mut self.open {
                    text.push_str(thinking);
                    let id = id.clone();
                    let index = self.output.len();
                    let frame = if self.opts.summary {
                        self.event(
                            "response.reasoning_summary_text.delta",
                            json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": thinking}),
                        )
                    } else {
                        self.event(
                            "response.reasoning_text.delta",
                            json!({"item_id": id, "output_index": index, "content_index": 0, "delta": thinking}),
                        )
                    };
                    out.push(frame);
                }
            }
            Event::SignatureDelta { signature, .. } => {
                if let Some(Open::Reasoning { signature: s, .. }) = &mut self.open {
                    s.push_str(signature);
                }
            }
            Event::BlockStop { .. } => self.close(&mut out),
            // Logprobs are reported on the finished text part only.
            Event::Logprobs(_) => {}
            Event::Usage(u) => self.usage.merge(u),
            Event::MessageStop { stop_reason } => {
                self.close(&mut out);
                let (status, name) = match stop_reason {
                    StopReason::MaxTokens => {
                        self.incomplete_reason = Some("max_output_tokens");
                        ("incomplete", "response.incomplete")
                    }
                    StopReason::ContextWindowExceeded => {
                        self.incomplete_reason = Some("max_output_tokens");
                        ("incomplete", "response.incomplete")
                    }
                    _ => ("completed", "response.completed"),
                };
                self.status = Some(status);
                let r = self.response();
                out.push(self.event(name, json!({"response": r})));
            }
            Event::Error(e) => {
                self.close(&mut out);
                self.status = Some("failed");
                self.error = Some(json!({"code": e.code.as_str(), "message": e.message}));
                let r = self.response();
                out.push(self.event("response.failed", json!({"response": r})));
            }
        }
        out
    }

    fn open_block(&mut self, block: &BlockStart, out: &mut Vec<Frame>) {
        let index = self.output.len();
        match block {
            BlockStart::Text => {
                let id = self.item_id("msg");
                let item = json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
                out.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                ));
                out.push(self.event(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
                ));
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
                    let item = json!({"type": "function_call", "id": id, "call_id": call_id,
                                      "name": name, "arguments": "", "status": "in_progress"});
                    out.push(self.event(
                        "response.output_item.added",
                        json!({"output_index": index, "item": item}),
                    ));
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
                let item = json!({"type": "reasoning", "id": id, "summary": []});
                out.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                ));
                if self.opts.summary {
                    out.push(self.event(
                        "response.reasoning_summary_part.added",
                        json!({"item_id": id, "output_index": index, "summary_index": 0,
                               "part": {"type": "summary_text", "text": ""}}),
                    ));
                }
                self.open = Some(Open::Reasoning {
                    id,
                    text: String::new(),
                    signature: String::new(),
                });
            }
            BlockStart::RedactedThinking { data } => {
                let id = self.item_id("rs");
                let mut item = json!({"type": "reasoning", "id": id, "summary": []});
                if self.opts.encrypted_content {
                    item["encrypted_content"] = json!(format!("{REDACTED_PREFIX}{data}"));
                }
                out.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": item}),
                ));
                out.push(self.event(
                    "response.output_item.done",
                    json!({"output_index": index, "item": item}),
                ));
                self.output.push(item);
            }
        }
    }

    /// Finish the open item: its `.done` events and `output_item.done`.
    fn close(&mut self, out: &mut Vec<Frame>) {
        let Some(open) = self.open.take() else {
            return;
        };
        let index = self.output.len();
        let item = match open {
            Open::Text { id, text } => {
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                out.push(self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                ));
                out.push(self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
                ));
                json!({"type": "message", "id": id, "status": "completed", "role": "assistant", "content": [part]})
            }
            Open::Call {
                id,
                call_id,
                name,
                arguments,
                custom: false,
            } => {
                out.push(self.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments}),
                ));
                json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
                       "arguments": arguments, "status": "completed"})
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
                let added = json!({"type": "custom_tool_call", "id": id, "call_id": call_id,
                                   "name": name, "input": "", "status": "in_progress"});
                out.push(self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": added}),
                ));
                out.push(self.event(
                    "response.custom_tool_call_input.delta",
                    json!({"item_id": id, "output_index": index, "delta": input}),
                ));
                out.push(self.event(
                    "response.custom_tool_call_input.done",
                    json!({"item_id": id, "output_index": index, "input": input}),
                ));
                json!({"type": "custom_tool_call", "id": id, "call_id": call_id, "name": name,
                       "input": input, "status": "completed"})
            }
            Open::Reasoning {
                id,
                text,
                signature,
            } => {
                let mut item = json!({"type": "reasoning", "id": id, "summary": []});
                if self.opts.summary {
                    let part = json!({"type": "summary_text", "text": text});
                    out.push(self.event(
                        "response.reasoning_summary_text.done",
                        json!({"item_id": id, "output_index": index, "summary_index": 0, "text": text}),
                    ));
                    out.push(self.event(
                        "response.reasoning_summary_part.done",
                        json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part}),
                    ));
                    item["summary"] = json!([part]);
                } else {
                    out.push(self.event(
                        "response.reasoning_text.done",
                        json!({"item_id": id, "output_index": index, "content_index": 0, "text": text}),
                    ));
                    item["content"] = json!([{"type": "reasoning_text", "text": text}]);
                }
                if self.opts.encrypted_content && !signature.is_empty() {
                    item["encrypted_content"] = json!(format!("{SIGNATURE_PREFIX}{signature}"));
                }
                item
            }
        };
        out.push(self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        ));
        self.output.push(item);
    }
}

/// Canonical usage in the Responses shape.
pub fn usage_json(u: &Usage) -> Value {
    let input = u.input_tokens.unwrap_or(0);
    let output = u.output_tokens.unwrap_or(0);
    json!({
        "input_tokens": input,
        "input_tokens_details": {"cached_tokens": u.cache_read_tokens.unwrap_or(0)},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens.unwrap_or(0)},
        "total_tokens": input + output,
    })
}
