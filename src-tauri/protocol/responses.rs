//! OpenAI Responses API (`POST /v1/responses`): client requests → canonical, and canonical
//! events → the Responses SSE events and response object ([`stream`]).
//!
//! To an `openai` provider a Responses request passes through untouched
//! (`protocol::passthrough`); this module is for every other target — chat-only
//! OpenAI-compatible servers, Anthropic, local models — reached through the canonical model.
//!
//! # Input items → canonical
//!
//! | item | canonical |
//! |---|---|
//! | `instructions`; leading `system`/`developer` messages | system blocks |
//! | later `system`/`developer` messages | `Role::System` messages |
//! | `message` user: `input_text`, `input_image` (URL or data URL) | user text / image blocks; `input_file`, `file_id` images, audio: **unsupported_feature** |
//! | `message` assistant: `output_text`, `refusal` | assistant text |
//! | `function_call` {call_id, name, arguments} | assistant `tool_use` (id = call_id); consecutive assistant items are one turn |
//! | `custom_tool_call` {call_id, name, input} | `tool_use` with input `{"input": …}` |
//! | `function_call_output` / `custom_tool_call_output` | tool results (text and images) |
//! | `reasoning` handed back | thinking (its `encrypted_content` carries an Anthropic signature we issued, `sy1:…`; redacted thinking `sy1r:…`) |
//! | `item_reference`, other item types | **unsupported_feature** |
//!
//! # Tools, options
//!
//! | field | canonical |
//! |---|---|
//! | `function` tools | tools |
//! | `custom` tools (free-form input) | a tool taking `{"input": string}`; calls come back as `custom_tool_call` items. A grammar `format` cannot be enforced: its definition goes into the description and `tools.custom.format` is named as dropped |
//! | `namespace` tools, hosted tools (`web_search`, `file_search`, `code_interpreter`, `image_generation`, `computer_use_preview`, `mcp`, `local_shell`, `tool_search`, …) | dropped and named (`tools.<type>`): no target here can run them; forcing one with `tool_choice`: **unsupported_feature** |
//! | `tool_choice` auto / none / required / {function or custom, name} | same; `allowed_tools` and hosted choices: **unsupported_feature** |
//! | `reasoning.effort` | reasoning effort; `reasoning.summary` makes reasoning come back as `summary_text` (else as `reasoning_text` content) |
//! | `text.format` text / json_object / json_schema | response format; `text.verbosity` → verbosity |
//! | `max_output_tokens`, `temperature`, `top_p`, `parallel_tool_calls`, `user`, `stream` | same |
//! | `top_logprobs` with `include: ["message.output_text.logprobs"]` | logprobs |
//! | `include: ["reasoning.encrypted_content"]` | reasoning items carry `encrypted_content`; other includes: dropped and named |
//! | `store`, `previous_response_id` | honoured by the gateway (stored responses) |
//! | `metadata`, `safety_identifier`, `prompt_cache_key`, `prompt_cache_retention`, `service_tier`, `client_metadata`, `stream_options`, `max_tool_calls`, `truncation: auto` | advisory: dropped and named |
//! | `background: true`, `conversation`, `prompt` (stored prompts) | **unsupported_feature** |

pub mod stream;
pub mod wire;

use super::canonical::{
    Block, Message, Request, ResponseFormat, Role, SystemBlock, Tool, ToolChoice,
};
use super::sse::put_json;
use super::{invalid, unsupported};
use crate::error::Result;
use serde::Serialize;
use serde_json::{Value, json};
use wire::*;

const SWITCHYARD: &str = "Switchyard's Responses endpoint";

/// Prefix of an `encrypted_content` that holds an Anthropic thinking signature.
pub const SIGNATURE_PREFIX: &str = "sy1:";
/// Prefix of an `encrypted_content` that holds Anthropic redacted thinking.
pub const REDACTED_PREFIX: &str = "sy1r:";

/// Parse a client's body.
pub fn parse_request(body: &[u8]) -> Result<ResponsesRequest> {
    serde_json::from_slice(body).map_err(|e| invalid(format!("invalid responses request: {e}")))
}

/// The request's input as a list of items (a string input is one user message), taken
/// out of the request (an agent's input can be megabytes: it is not copied).
pub fn input_items(w: &mut ResponsesRequest) -> Result<Vec<Value>> {
    match w.input.take() {
        None | Some(Value::Null) => Ok(vec![]),
        // A message's content may be a plain string: one map, not three.
        Some(Value::String(s)) => Ok(vec![
            json!({"type": "message", "role": "user", "content": s}),
        ]),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(invalid("input must be a string or a list of items")),
    }
}

/// What the answer's shape depends on, taken from the request.
#[derive(Debug, Clone, Default)]
pub struct EncodeOptions {
    /// Reasoning comes back as `summary_text` (the client asked for summaries).
    pub summary: bool,
    /// Reasoning items carry `encrypted_content` (the client included it).
    pub encrypted_content: bool,
    /// Names of `custom` tools: their calls are `custom_tool_call` items.
    pub custom_tools: Vec<String>,
    /// Request fields the response object repeats (`instructions`, `tools`, …), as JSON
    /// members (`"k":v,…`): written once per request, repeated in every response object
    /// of the answer, shared by every attempt.
    pub echo_json: std::sync::Arc<str>,
}

/// Decode a Responses request into canonical form. `history` holds the items of earlier
/// responses (`previous_response_id`, oldest first); `items` are this request's input.
pub fn to_canonical(
    w: &ResponsesRequest,
    history: &[Value],
    items: &[Value],
) -> Result<(Request, EncodeOptions)> {
    if w.background == Some(true) {
        return Err(unsupported("background responses", SWITCHYARD));
    }
    for (field, v) in [("conversation", &w.conversation), ("prompt", &w.prompt)] {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(unsupported(field, SWITCHYARD));
        }
    }
    let mut req = Request {
        model: w.model.clone(),
        stream: w.stream.unwrap_or(false),
        max_tokens: w.max_output_tokens,
        parallel_tool_calls: w.parallel_tool_calls,
        user: w.user.clone(),
        ..Default::default()
    };
    req.sampling.temperature = w.temperature;
    req.sampling.top_p = w.top_p;
    let mut opts = EncodeOptions::default();

    match &w.instructions {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(s)) => req.system.push(SystemBlock {
            text: s.clone(),
            cache_control: None,
        }),
        Some(Value::Array(list)) => {
            for (i, it) in list.iter().enumerate() {
                for b in content_blocks(&it["content"], i, false)? {
                    if let Block::Text { text, .. } = b {
                        req.system.push(SystemBlock {
                            text,
                            cache_control: None,
                        });
                    }
                }
            }
        }
        Some(_) => return Err(invalid("instructions must be a string")),
    }

    let mut leading = true;
    for (i, item) in history.iter().chain(items.iter()).enumerate() {
        item_to_canonical(item, i, &mut req, &mut leading)?;
    }

    // ---- tools
    for (i, t) in w.tools.iter().flatten().enumerate() {
        let kind = t["type"].as_str().unwrap_or("");
        match kind {
            "function" => req.tools.push(Tool {
                name: str_field(t, "name", || format!("tools[{i}]"))?,
                description: t["description"].as_str().map(str::to_owned),
                input_schema: t.get("parameters").filter(|p| !p.is_null()).cloned(),
                strict: t["strict"].as_bool(),
                cache_control: None,
            }),
            "custom" => {
                let name = str_field(t, "name", || format!("tools[{i}]"))?;
                let mut description = t["description"].as_str().unwrap_or("").to_owned();
                let format = &t["format"];
                if format["type"].as_str() == Some("grammar") {
                    req.drop_field("tools.custom.format");
                    if let Some(def) = format["definition"].as_str() {
                        description.push_str(&format!(
                            "\n\nThe input must follow this {} grammar:\n{def}",
                            format["syntax"].as_str().unwrap_or("")
                        ));
                    }
                }
                req.tools.push(Tool {
                    name: name.clone(),
                    description: (!description.is_empty()).then_some(description),
                    input_schema: Some(json!({
                        "type": "object",
                        "properties": {"input": {"type": "string", "description": "The tool's free-form input."}},
                        "required": ["input"],
                    })),
                    strict: None,
                    cache_control: None,
                });
                opts.custom_tools.push(name);
            }
            other => match hosted_tool_name(other) {
                Some(name) => req.drop_field(name),
                None => {
                    return Err(unsupported(
                        format!("tools of type `{other}` (tools[{i}])"),
                        SWITCHYARD,
                    ));
                }
            },
        }
    }
    req.tool_choice = match &w.tool_choice {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(match m.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => return Err(invalid(format!("unknown tool_choice `{other}`"))),
        }),
        Some(o) => match o["type"].as_str() {
            Some("function" | "custom") => Some(ToolChoice::Tool(str_field(o, "name", || {
                "tool_choice".to_owned()
            })?)),
            Some(other) => {
                return Err(unsupported(
                    format!("tool_choice of type `{other}`"),
                    SWITCHYARD,
                ));
            }
            None => return Err(invalid("tool_choice needs a type")),
        },
    };

    // ---- reasoning, text, includes
    if let Some(r) = &w.reasoning {
        req.reasoning_effort = r.effort.clone();
        opts.summary = r
            .summary
            .as_deref()
            .or(r.generate_summary.as_deref())
            .is_some();
    }
    if let Some(t) = &w.text {
        req.verbosity = t.verbosity.clone();
        req.response_format = t.format.as_ref().map(|f| match f {
            TextFormat::Text => ResponseFormat::Text,
            TextFormat::JsonObject => ResponseFormat::JsonObject,
            TextFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            } => ResponseFormat::JsonSchema {
                name: name.clone().unwrap_or_else(|| "response".into()),
                description: description.clone(),
                schema: schema.clone(),
                strict: *strict,
            },
        });
    }
    for inc in w.include.iter().flatten() {
        match inc.as_str() {
            "reasoning.encrypted_content" => opts.encrypted_content = true,
            "message.output_text.logprobs" => {
                req.logprobs = true;
                req.top_logprobs = w.top_logprobs;
            }
            _ => req.drop_field("include"),
        }
    }
    if w.truncation.as_deref() == Some("auto") {
        req.drop_field("truncation");
    }
    for (name, v) in [
        ("metadata", &w.metadata),
        ("safety_identifier", &w.safety_identifier),
        ("prompt_cache_key", &w.prompt_cache_key),
        ("prompt_cache_retention", &w.prompt_cache_retention),
        ("service_tier", &w.service_tier),
        ("client_metadata", &w.client_metadata),
        ("stream_options", &w.stream_options),
        ("max_tool_calls", &w.max_tool_calls),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            req.drop_field(name);
        }
    }
    opts.echo_json = echo_json(w).into();
    Ok((req, opts))
}

/// The name under which a hosted tool type is reported as dropped (`None`: not a tool type
/// the API defines).
fn hosted_tool_name(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "namespace" => "tools.namespace",
        "web_search" | "web_search_preview" | "web_search_2025_08_26" => "tools.web_search",
        "file_search" => "tools.file_search",
        "code_interpreter" => "tools.code_interpreter",
        "image_generation" => "tools.image_generation",
        "computer_use_preview" | "computer_use" => "tools.computer_use",
        "mcp" => "tools.mcp",
        "local_shell" | "shell" => "tools.shell",
        "apply_patch" => "tools.apply_patch",
        "tool_search" => "tools.tool_search",
        _ => return None,
    })
}

fn str_field(v: &Value, field: &str, at: impl Fn() -> String) -> Result<String> {
    v[field]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("{}.{field}: a string is required", at())))
}

/// Append one input item to the canonical conversation.
fn item_to_canonical(item: &Value, i: usize, req: &mut Request, leading: &mut bool) -> Result<()> {
    let kind = match item["type"].as_str() {
        Some(k) => k,
        None if item.get("role").is_some() => "message",
        None => return Err(invalid(format!("input[{i}]: an item needs a type"))),
    };
    let at = || format!("input[{i}]");
    match kind {
        "message" => {
            let role = item["role"].as_str().unwrap_or("");
            match role {
                "system" | "developer" => {
                    let blocks = content_blocks(&item["content"], i, false)?;
                    if *leading {
                        for b in blocks {
                            if let Block::Text { text, .. } = b {
                                req.system.push(SystemBlock {
                                    text,
                                    cache_control: None,
                                });
                            }
                        }
                    } else {
                        req.messages.push(Message::new(Role::System, blocks));
                    }
                    return Ok(());
                }
                "user" => {
                    let blocks = content_blocks(&item["content"], i, false)?;
                    req.messages.push(Message::new(Role::User, blocks));
                }
                "assistant" => {
                    for b in content_blocks(&item["content"], i, true)? {
                        assistant_block(req, b);
                    }
                }
                other => {
                    return Err(invalid(format!(
                        "input[{i}]: unknown message role `{other}`"
                    )));
                }
            }
        }
        "function_call" => assistant_block(
            req,
            Block::ToolUse {
                id: str_field(item, "call_id", at)?,
                name: str_field(item, "name", at)?,
                input: super::canonical::parse_tool_arguments(
                    item["arguments"].as_str().unwrap_or(""),
                ),
                cache_control: None,
            },
        ),
        "custom_tool_call" => assistant_block(
            req,
            Block::ToolUse {
                id: str_field(item, "call_id", at)?,
                name: str_field(item, "name", at)?,
                input: json!({"input": item["input"].as_str().unwrap_or("")}),
                cache_control: None,
            },
        ),
        "function_call_output" | "custom_tool_call_output" => {
            let content = match &item["output"] {
                Value::String(s) => vec![Block::text(s.clone())],
                Value::Null => vec![],
                v @ Value::Array(_) => content_blocks(v, i, false)?,
                _ => return Err(invalid(format!("{}.output must be a string", at()))),
            };
            let result = Block::ToolResult {
                tool_use_id: str_field(item, "call_id", at)?,
                content,
                is_error: false,
                cache_control: None,
            };
            match req.messages.last_mut() {
                Some(last) if last.role == Role::Tool => last.content.push(result),
                _ => req.messages.push(Message::new(Role::Tool, vec![result])),
            }
        }
        "reasoning" => {
            let encrypted = item["encrypted_content"].as_str().unwrap_or("");
            if let Some(data) = encrypted.strip_prefix(REDACTED_PREFIX) {
                assistant_block(
                    req,
                    Block::RedactedThinking {
                        data: data.to_owned(),
                    },
                );
            } else {
                let mut text = String::new();
                for part in item["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .chain(item["summary"].as_array().into_iter().flatten())
                {
                    if let Some(t) = part["text"].as_str() {
                        text.push_str(t);
                    }
                }
                // Only our own signatures are signatures; another server's opaque blob
                // means nothing to the targets reached through the canonical model.
                let signature = encrypted.strip_prefix(SIGNATURE_PREFIX).map(str::to_owned);
                if !text.is_empty() || signature.is_some() {
                    assistant_block(
                        req,
                        Block::Thinking {
                            thinking: text,
                            signature,
                        },
                    );
                }
            }
        }
        other => {
            return Err(unsupported(
                format!("input items of type `{other}` ({})", at()),
                SWITCHYARD,
            ));
        }
    }
    *leading = false;
    Ok(())
}

/// Add a block to the assistant turn in progress (consecutive assistant items — a
/// message, its reasoning, its function calls — are one turn).
fn assistant_block(req: &mut Request, b: Block) {
    match req.messages.last_mut() {
        Some(last) if last.role == Role::Assistant => last.content.push(b),
        _ => req.messages.push(Message::new(Role::Assistant, vec![b])),
    }
}

/// A message's `content`: a string or typed parts.
fn content_blocks(content: &Value, i: usize, assistant: bool) -> Result<Vec<Block>> {
    let parts = match content {
        Value::String(s) if s.is_empty() && assistant => return Ok(vec![]),
        Value::String(s) => return Ok(vec![Block::text(s.clone())]),
        Value::Array(p) => p,
        Value::Null => return Ok(vec![]),
        _ => {
            return Err(invalid(format!(
                "input[{i}].content must be a string or a list"
            )));
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for p in parts {
        match p["type"].as_str().unwrap_or("") {
            "input_text" | "output_text" | "text" | "summary_text" => {
                let text = p["text"].as_str().unwrap_or("").to_owned();
                if assistant && text.is_empty() {
                    continue;
                }
                out.push(Block::text(text));
            }
            "refusal" => out.push(Block::text(p["refusal"].as_str().unwrap_or(""))),
            "input_image" => {
                let Some(url) = p["image_url"].as_str() else {
                    return Err(unsupported(
                        format!("input[{i}]: images by file_id (the Files API)"),
                        SWITCHYARD,
                    ));
                };
                out.push(Block::Image {
                    source: super::openai::parse_image_url(url)
                        .map_err(|e| invalid(format!("input[{i}]: {}", e.message)))?,
                    detail: p["detail"].as_str().map(str::to_owned),
                    cache_control: None,
                });
            }
            "input_file" | "input_audio" => {
                return Err(unsupported(
                    format!("input[{i}]: {} content", p["type"].as_str().unwrap_or("")),
                    SWITCHYARD,
                ));
            }
            other => {
                return Err(invalid(format!(
                    "input[{i}]: unknown content part type `{other}`"
                )));
            }
        }
    }
    Ok(out)
}

/// `reasoning` as the response object repeats it.
#[derive(Serialize)]
struct EchoReasoning<'a> {
    effort: Option<&'a str>,
    summary: Option<&'a str>,
}

/// `text` as the response object repeats it.
#[derive(Serialize)]
struct EchoText<'a> {
    format: EchoFormat<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verbosity: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EchoFormat<'a> {
    Text,
    JsonObject,
    JsonSchema {
        name: Option<&'a str>,
        description: Option<&'a str>,
        schema: Option<&'a Value>,
        strict: Option<bool>,
    },
}

/// The request fields a response object repeats, as JSON members (`"k":v,…`, without
/// the braces), borrowed from the request and written straight to text.
fn echo_json(w: &ResponsesRequest) -> String {
    // Written member by member: the names are constants, only values go through serde
    // (this runs for every Responses request).
    fn put<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, value: &T) {
        if !out.is_empty() {
            out.push(b',');
        }
        out.push(b'"');
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        put_json(out, value);
    }
    let reasoning = w.reasoning.as_ref();
    let text = w.text.as_ref();
    let mut out = Vec::with_capacity(320);
    put(&mut out, "instructions", &w.instructions);
    put(&mut out, "max_output_tokens", &w.max_output_tokens);
    put(
        &mut out,
        "parallel_tool_calls",
        &w.parallel_tool_calls.unwrap_or(true),
    );
    put(&mut out, "previous_response_id", &w.previous_response_id);
    put(
        &mut out,
        "reasoning",
        &EchoReasoning {
            effort: reasoning.and_then(|r| r.effort.as_deref()),
            summary: reasoning.and_then(|r| r.summary.as_deref()),
        },
    );
    put(&mut out, "store", &w.store.unwrap_or(true));
    put(&mut out, "temperature", &w.temperature);
    put(&mut out, "top_p", &w.top_p);
    match &w.tool_choice {
        Some(v) => put(&mut out, "tool_choice", v),
        None => put(&mut out, "tool_choice", "auto"),
    }
    put(&mut out, "tools", w.tools.as_deref().unwrap_or_default());
    put(
        &mut out,
        "text",
        &EchoText {
            format: match text.and_then(|t| t.format.as_ref()) {
                None | Some(TextFormat::Text) => EchoFormat::Text,
                Some(TextFormat::JsonObject) => EchoFormat::JsonObject,
                Some(TextFormat::JsonSchema {
                    name,
                    description,
                    schema,
                    strict,
                }) => EchoFormat::JsonSchema {
                    name: name.as_deref(),
                    description: description.as_deref(),
                    schema: schema.as_ref(),
                    strict: *strict,
                },
            },
            verbosity: text.and_then(|t| t.verbosity.as_deref()),
        },
    );
    put(
        &mut out,
        "truncation",
        w.truncation.as_deref().unwrap_or("disabled"),
    );
    put(&mut out, "user", &w.user);
    match &w.metadata {
        Some(v) => put(&mut out, "metadata", v),
        None => put(&mut out, "metadata", &serde_json::Map::new()),
    }
    // Only JSON text was written.
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests;
