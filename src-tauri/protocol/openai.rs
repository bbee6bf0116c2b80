//! OpenAI Chat Completions: client requests → canonical, canonical → upstream requests,
//! upstream responses → canonical, canonical → client responses; plus the legacy
//! `/v1/completions` shapes and the `/v1/models` list. Streams are in [`stream`].

mod chunk;
pub mod stream;
pub mod wire;

use super::canonical::{
    Block, ImageSource, Message, Request, ResponseFormat, Role, StopReason, SystemBlock,
    ThinkingConfig, TokenLogprob, Tool, TopLogprob, Usage,
};
use super::wire::Content;
use super::{invalid, unsupported};
use crate::error::{Code, Error, Result};
use wire::*;

/// Which kind of OpenAI-speaking server an upstream request is for. They differ in
/// what they accept, and an encoder must not send a field the target rejects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// api.openai.com: `max_completion_tokens` (reasoning models reject `max_tokens`),
    /// no `top_k`.
    OpenAi,
    /// vLLM, llama.cpp, LM Studio, Ollama, …: `max_tokens` (what they all understand) and
    /// the `top_k` extension.
    Compatible,
}

impl Dialect {
    fn target(self) -> &'static str {
        match self {
            Dialect::OpenAi => "an OpenAI upstream",
            Dialect::Compatible => "an OpenAI-compatible upstream",
        }
    }
}

// ================================================================ requests: decode

/// Decode a client's `POST /v1/chat/completions` body.
pub fn decode_chat_request(body: &[u8]) -> Result<Request> {
    let w: ChatRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid chat completion request: {e}")))?;
    chat_request_from_wire(w)
}

const SWITCHYARD: &str = "Switchyard's OpenAI endpoint";

pub fn chat_request_from_wire(w: ChatRequest) -> Result<Request> {
    match w.n {
        Some(0) => return Err(invalid("n must be at least 1")),
        Some(n) if n > 1 => {
            return Err(unsupported(
                format!("n = {n} (several choices per request); send n separate requests"),
                SWITCHYARD,
            ));
        }
        _ => {}
    }
    if let Some(lb) = &w.logit_bias
        && !lb.is_null()
        && lb.as_object().is_none_or(|m| !m.is_empty())
    {
        return Err(unsupported("logit_bias", SWITCHYARD));
    }
    if w.audio.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(unsupported("audio output", SWITCHYARD));
    }
    if let Some(m) = &w.modalities
        && m.iter().any(|x| x != "text")
    {
        return Err(unsupported("modalities other than text", SWITCHYARD));
    }
    for (field, v) in [
        ("prediction (predicted outputs)", &w.prediction),
        ("web_search_options", &w.web_search_options),
        ("functions (deprecated; use tools)", &w.functions),
        (
            "function_call (deprecated; use tool_choice)",
            &w.function_call,
        ),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(unsupported(field, SWITCHYARD));
        }
    }

    let mut req = Request {
        model: w.model,
        ..Default::default()
    };
    for (name, v) in [
        ("store", &w.store),
        ("metadata", &w.metadata),
        ("service_tier", &w.service_tier),
        ("prompt_cache_key", &w.prompt_cache_key),
        ("safety_identifier", &w.safety_identifier),
    ] {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            req.drop_field(name);
        }
    }
    let mut leading = true;
    for (i, m) in w.messages.into_iter().enumerate() {
        match m {
            ChatMessage::System { content, name } | ChatMessage::Developer { content, name } => {
                let blocks = text_parts(content);
                if leading && name.is_none() {
                    req.system
                        .extend(blocks.into_iter().map(|text| SystemBlock {
                            text,
                            cache_control: None,
                        }));
                    continue;
                }
                // A named or later system message keeps its place; whatever follows
                // it is no longer part of the leading system prompt.
                req.messages.push(Message {
                    role: Role::System,
                    content: blocks.into_iter().map(Block::text).collect(),
                    name,
                });
            }
            ChatMessage::User { content, name } => {
                let content = match content {
                    Content::Text(t) => vec![Block::text(t)],
                    Content::Parts(parts) => parts
                        .into_iter()
                        .map(|p| user_part(p, i))
                        .collect::<Result<_>>()?,
                };
                req.messages.push(Message {
                    role: Role::User,
                    content,
                    name,
                });
            }
            ChatMessage::Assistant {
                content,
                name,
                tool_calls,
                refusal,
                function_call,
                audio,
            } => {
                if function_call.is_some_and(|v| !v.is_null()) {
                    return Err(unsupported(
                        "assistant function_call (deprecated; use tool_calls)",
                        SWITCHYARD,
                    ));
                }
                if audio.is_some_and(|v| !v.is_null()) {
                    return Err(unsupported("assistant audio", SWITCHYARD));
                }
                let mut blocks = Vec::new();
                match content {
                    None => {}
                    // `content: ""` beside tool calls says nothing; an empty text block
                    // would be refused by Anthropic upstreams.
                    Some(Content::Text(t)) if t.is_empty() => {}
                    Some(Content::Text(t)) => blocks.push(Block::text(t)),
                    Some(Content::Parts(parts)) => {
                        for p in parts {
                            blocks.push(Block::text(match p {
                                AssistantPart::Text { text } => text,
                                AssistantPart::Refusal { refusal } => refusal,
                            }))
                        }
                    }
                }
                if let Some(r) = refusal {
                    blocks.push(Block::text(r));
                }
                for tc in tool_calls.unwrap_or_default() {
                    if tc.kind != "function" {
                        return Err(unsupported(
                            format!("tool call type `{}`", tc.kind),
                            SWITCHYARD,
                        ));
                    }
                    blocks.push(Block::ToolUse {
                        id: tc.id,
                        name: tc.function.name,
                        input: super::canonical::parse_tool_arguments(&tc.function.arguments),
                        cache_control: None,
                    });
                }
                req.messages.push(Message {
                    role: Role::Assistant,
                    content: blocks,
                    name,
                });
            }
            ChatMessage::Tool {
                content,
                tool_call_id,
            } => {
                let result = Block::ToolResult {
                    tool_use_id: tool_call_id,
                    content: text_parts(content).into_iter().map(Block::text).collect(),
                    is_error: false,
                    cache_control: None,
                };
                match req.messages.last_mut() {
                    Some(last) if last.role == Role::Tool => last.content.push(result),
                    _ => req.messages.push(Message::new(Role::Tool, vec![result])),
                }
            }
            ChatMessage::Function { .. } => {
                return Err(unsupported(
                    "role `function` (deprecated functions API; use tools)",
                    SWITCHYARD,
                ));
            }
        }
        leading = false;
    }

    for t in w.tools.unwrap_or_default() {
        match t {
            ChatTool::Function { function } => req.tools.push(Tool {
                name: function.name,
                description: function.description,
                input_schema: function.parameters,
                strict: function.strict,
                cache_control: None,
            }),
            ChatTool::Custom {} => return Err(unsupported("custom (free-form) tools", SWITCHYARD)),
        }
    }
    req.tool_choice = match w.tool_choice {
        None => None,
        Some(ToolChoice::Mode(m)) => Some(match m.as_str() {
            "auto" => super::canonical::ToolChoice::Auto,
            "none" => super::canonical::ToolChoice::None,
            "required" => super::canonical::ToolChoice::Required,
            other => return Err(invalid(format!("unknown tool_choice `{other}`"))),
        }),
        Some(ToolChoice::Named(n)) => match (n.kind.as_str(), n.function) {
            ("function", Some(f)) => Some(super::canonical::ToolChoice::Tool(f.name)),
            ("function", None) => return Err(invalid("tool_choice.function.name is required")),
            (other, _) => {
                return Err(unsupported(
                    format!("tool_choice type `{other}`"),
                    SWITCHYARD,
                ));
            }
        },
    };
    req.parallel_tool_calls = w.parallel_tool_calls;
    req.sampling.temperature = w.temperature;
    req.sampling.top_p = w.top_p;
    req.sampling.top_k = w.top_k;
    req.sampling.seed = w.seed;
    req.sampling.presence_penalty = w.presence_penalty;
    req.sampling.frequency_penalty = w.frequency_penalty;
    req.max_tokens = w.max_completion_tokens.or(w.max_tokens);
    req.stop = match w.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    req.stream = w.stream.unwrap_or(false);
    req.include_usage = w
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    req.user = w.user;
    req.logprobs = w.logprobs.unwrap_or(false);
    req.top_logprobs = w.top_logprobs;
    req.reasoning_effort = w.reasoning_effort;
    req.verbosity = w.verbosity;
    (req.thinking, req.thinking_display) = super::anthropic::thinking_from_wire(w.thinking);
    req.response_format = w.response_format.map(|f| match f {
        wire::ResponseFormat::Text => ResponseFormat::Text,
        wire::ResponseFormat::JsonObject => ResponseFormat::JsonObject,
        wire::ResponseFormat::JsonSchema { json_schema } => ResponseFormat::JsonSchema {
            name: json_schema.name,
            description: json_schema.description,
            schema: json_schema.schema,
            strict: json_schema.strict,
        },
    });
    Ok(req)
}

fn text_parts(c: Content<TextPart>) -> Vec<String> {
    match c {
        Content::Text(t) => vec![t],
        Content::Parts(p) => p.into_iter().map(|TextPart::Text { text }| text).collect(),
    }
}

fn user_part(p: UserPart, msg_index: usize) -> Result<Block> {
    Ok(match p {
        UserPart::Text { text } => Block::text(text),
        UserPart::ImageUrl { image_url } => Block::Image {
            source: parse_image_url(&image_url.url)
                .map_err(|e| invalid(format!("messages[{msg_index}]: {}", e.message)))?,
            detail: image_url.detail,
            cache_control: None,
        },
        UserPart::InputAudio {} => return Err(unsupported("input_audio content", SWITCHYARD)),
        UserPart::File {} => return Err(unsupported("file content parts", SWITCHYARD)),
    })
}

/// `data:<media type>;base64,<data>` → base64 source; any other URL stays a URL.
pub fn parse_image_url(url: &str) -> Result<ImageSource> {
    let Some(rest) = url.strip_prefix("data:") else {
        return Ok(ImageSource::Url {
            url: url.to_owned(),
        });
    };
    let Some((meta, data)) = rest.split_once(',') else {
        return Err(invalid("image data URL has no `,`"));
    };
    let Some(media_type) = meta.strip_suffix(";base64") else {
        return Err(invalid(
            "image data URLs must be base64 (`data:<type>;base64,…`)",
        ));
    };
    if media_type.is_empty() {
        return Err(invalid("image data URL has no media type"));
    }
    Ok(ImageSource::Base64 {
        media_type: media_type.to_owned(),
        data: data.to_owned(),
    })
}

fn image_url(source: &ImageSource) -> String {
    match source {
        ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        ImageSource::Url { url } => url.clone(),
    }
}

// ================================================================ requests: encode

/// Map an Anthropic thinking budget to OpenAI's coarse `reasoning_effort`
/// (< 4096 → low, < 16384 → medium, else high); the inverse of the table in
/// `anthropic::effort_budget` for the values it produces.
pub fn effort_for_budget(budget_tokens: u64) -> &'static str {
    match budget_tokens {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

/// The longest `user` OpenAI accepts.
pub const MAX_USER_CHARS: usize = 64;

/// Advisory fields an OpenAI(-compatible) upstream request cannot carry, for
/// `x-switchyard-dropped`.
pub fn dropped(req: &Request) -> Vec<&'static str> {
    let mut out = req.dropped.clone();
    if req.has_cache_control() {
        out.push("cache_control");
    }
    if req
        .user
        .as_ref()
        .is_some_and(|u| u.chars().count() > MAX_USER_CHARS)
    {
        out.push("user");
    }
    out
}

/// Reasoning effort for Chat Completions: the client's effort (Anthropic's `max` is
/// OpenAI's `high`), else one derived from a thinking budget; adaptive thinking without an
/// effort leaves the model's default.
fn chat_effort(req: &Request) -> Option<String> {
    match (&req.reasoning_effort, &req.thinking) {
        (Some(e), _) if e == "max" => Some("high".into()),
        (Some(e), _) => Some(e.clone()),
        (None, Some(ThinkingConfig::Enabled { budget_tokens })) => {
            Some(effort_for_budget(*budget_tokens).to_owned())
        }
        // Disabled thinking is the default of a chat request: nothing to send.
        (None, _) => None,
    }
}

/// Encode a canonical request as an upstream Chat Completions body.
pub fn encode_chat_request(req: &Request, dialect: Dialect) -> Result<ChatRequest> {
    let target = dialect.target();
    if req.raw_prompt {
        return Err(unsupported("a raw prompt (/v1/completions)", target));
    }
    if req
        .messages
        .last()
        .is_some_and(|m| m.role == Role::Assistant)
    {
        return Err(unsupported(
            "a final assistant message to continue (prefill; a chat completion answers in a new turn)",
            target,
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        let mut parts: Vec<String> = req.system.iter().map(|b| b.text.clone()).collect();
        messages.push(ChatMessage::System {
            content: if parts.len() == 1 {
                Content::Text(parts.pop().unwrap_or_default())
            } else {
                Content::Parts(
                    parts
                        .into_iter()
                        .map(|text| TextPart::Text { text })
                        .collect(),
                )
            },
            name: None,
        });
    }
    for (i, m) in req.messages.iter().enumerate() {
        encode_message(m, i, target, &mut messages)?;
    }
    let tools = (!req.tools.is_empty()).then(|| {
        req.tools
            .iter()
            .map(|t| ChatTool::Function {
                function: FunctionDef {
                    name: t.name.clone(),
                    description: t.description.clone(),
                    parameters: t.input_schema.clone(),
                    strict: t.strict,
                },
            })
            .collect()
    });
    let tool_choice = req.tool_choice.as_ref().map(|c| match c {
        super::canonical::ToolChoice::Auto => ToolChoice::Mode("auto".into()),
        super::canonical::ToolChoice::None => ToolChoice::Mode("none".into()),
        super::canonical::ToolChoice::Required => ToolChoice::Mode("required".into()),
        super::canonical::ToolChoice::Tool(name) => ToolChoice::Named(NamedToolChoice {
            kind: "function".into(),
            function: Some(NamedFunction { name: name.clone() }),
        }),
    });
    let top_k = match (req.sampling.top_k, dialect) {
        (Some(_), Dialect::OpenAi) => return Err(unsupported("top_k", target)),
        (k, _) => k,
    };
    let (max_tokens, max_completion_tokens) = match dialect {
        Dialect::OpenAi => (None, req.max_tokens),
        Dialect::Compatible => (req.max_tokens, None),
    };
    let reasoning_effort = chat_effort(req);
    Ok(ChatRequest {
        model: req.model.clone(),
        messages,
        max_tokens,
        max_completion_tokens,
        temperature: req.sampling.temperature,
        top_p: req.sampling.top_p,
        top_k,
        seed: req.sampling.seed,
        presence_penalty: req.sampling.presence_penalty,
        frequency_penalty: req.sampling.frequency_penalty,
        stop: (!req.stop.is_empty()).then(|| Stop::Many(req.stop.clone())),
        stream: req.stream.then_some(true),
        stream_options: (req.stream && req.include_usage).then_some(StreamOptions {
            include_usage: Some(true),
        }),
        tools,
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        logprobs: req.logprobs.then_some(true),
        top_logprobs: req.top_logprobs,
        response_format: req.response_format.as_ref().map(|f| match f {
            ResponseFormat::Text => wire::ResponseFormat::Text,
            ResponseFormat::JsonObject => wire::ResponseFormat::JsonObject,
            ResponseFormat::JsonSchema {
                name,
                description,
                schema,
                strict,
            } => wire::ResponseFormat::JsonSchema {
                json_schema: JsonSchema {
                    name: name.clone(),
                    description: description.clone(),
                    schema: schema.clone(),
                    strict: *strict,
                },
            },
        }),
        user: req
            .user
            .clone()
            .filter(|u| u.chars().count() <= MAX_USER_CHARS),
        reasoning_effort,
        verbosity: req.verbosity.clone(),
        ..Default::default()
    })
}

fn encode_message(m: &Message, i: usize, target: &str, out: &mut Vec<ChatMessage>) -> Result<()> {
    let misplaced = |b: &Block| {
        invalid(format!(
            "messages[{i}]: a {} block cannot be in a {:?} message",
            b.kind(),
            m.role
        ))
    };
    match m.role {
        Role::System => {
            let mut parts = Vec::new();
            for b in &m.content {
                match b {
                    Block::Text { text, .. } => parts.push(text.clone()),
                    other => return Err(misplaced(other)),
                }
            }
            out.push(ChatMessage::System {
                content: text_content(parts),
                name: m.name.clone(),
            });
        }
        Role::User => {
            let mut parts = Vec::new();
            for b in &m.content {
                parts.push(match b {
                    Block::Text { text, .. } => UserPart::Text { text: text.clone() },
                    Block::Image { source, detail, .. } => UserPart::ImageUrl {
                        image_url: ImageUrl {
                            url: image_url(source),
                            detail: detail.clone(),
                        },
                    },
                    other => return Err(misplaced(other)),
                });
            }
            let content = match parts.as_slice() {
                [UserPart::Text { text }] => Content::Text(text.clone()),
                _ => Content::Parts(parts),
            };
            out.push(ChatMessage::User {
                content,
                name: m.name.clone(),
            });
        }
        Role::Assistant => {
            let mut texts: Vec<String> = Vec::new();
            let mut calls = Vec::new();
            for b in &m.content {
                match b {
                    Block::Text { text, .. } => texts.push(text.clone()),
                    Block::ToolUse {
                        id, name, input, ..
                    } => calls.push(ToolCall {
                        id: id.clone(),
                        kind: "function".into(),
                        function: FunctionCall {
                            name: name.clone(),
                            arguments: super::canonical::tool_arguments_text(input),
                        },
                    }),
                    // Chat Completions has no input field for earlier reasoning; OpenAI
                    // models reason afresh each turn. Documented in the mapping table.
                    Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
                    Block::Image { .. } => {
                        return Err(unsupported(
                            format!("messages[{i}]: an image in an assistant message"),
                            target,
                        ));
                    }
                    other => return Err(misplaced(other)),
                }
            }
            out.push(ChatMessage::Assistant {
                content: (!texts.is_empty()).then(|| match texts.len() {
                    1 => Content::Text(texts.pop().unwrap_or_default()),
                    _ => Content::Parts(
                        texts
                            .into_iter()
                            .map(|text| AssistantPart::Text { text })
                            .collect(),
                    ),
                }),
                name: m.name.clone(),
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: None,
                function_call: None,
                audio: None,
            });
        }
        Role::Tool => {
            for b in &m.content {
                let Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                    ..
                } = b
                else {
                    return Err(misplaced(b));
                };
                let mut parts = Vec::new();
                for c in content {
                    match c {
                        Block::Text { text, .. } => parts.push(text.clone()),
                        Block::Image { .. } => {
                            return Err(unsupported(
                                format!(
                                    "messages[{i}]: an image inside a tool result (OpenAI tool messages take text only)"
                                ),
                                target,
                            ));
                        }
                        other => return Err(misplaced(other)),
                    }
                }
                // OpenAI tool messages have no error flag; the error travels as text.
                if *is_error {
                    match parts.first_mut() {
                        Some(first) => first.insert_str(0, "Error: "),
                        None => parts.push("Error".into()),
                    }
                }
                out.push(ChatMessage::Tool {
                    content: text_content(parts),
                    tool_call_id: tool_use_id.clone(),
                });
            }
        }
    }
    Ok(())
}

fn text_content(mut parts: Vec<String>) -> Content<TextPart> {
    if parts.len() == 1 {
        Content::Text(parts.pop().unwrap_or_default())
    } else {
        Content::Parts(
            parts
                .into_iter()
                .map(|text| TextPart::Text { text })
                .collect(),
        )
    }
}

// ================================================================ responses

pub fn stop_reason_from_finish(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "length" => StopReason::MaxTokens,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "content_filter" => StopReason::Refusal,
        other => StopReason::Other(other.to_owned()),
    }
}

pub fn finish_reason(reason: &StopReason) -> String {
    match reason {
        StopReason::EndTurn | StopReason::StopSequence(_) | StopReason::PauseTurn => "stop",
        StopReason::MaxTokens | StopReason::ContextWindowExceeded => "length",
        StopReason::ToolUse => "tool_calls",
        StopReason::Refusal => "content_filter",
        StopReason::Other(s) => return s.clone(),
    }
    .to_owned()
}

pub(crate) fn usage_from_wire(u: &ChatUsage) -> Usage {
    Usage {
        input_tokens: Some(u.prompt_tokens),
        output_tokens: Some(u.completion_tokens),
        cache_read_tokens: u
            .prompt_tokens_details
            .as_ref()
            .and_then(|d| d.cached_tokens),
        cache_write_tokens: None,
        reasoning_tokens: u
            .completion_tokens_details
            .as_ref()
            .and_then(|d| d.reasoning_tokens),
    }
}

pub(crate) fn usage_to_wire(u: &Usage) -> ChatUsage {
    let p = u.input_tokens.unwrap_or(0);
    let c = u.output_tokens.unwrap_or(0);
    ChatUsage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: p + c,
        prompt_tokens_details: u.cache_read_tokens.map(|t| PromptTokensDetails {
            cached_tokens: Some(t),
        }),
        completion_tokens_details: u.reasoning_tokens.map(|t| CompletionTokensDetails {
            reasoning_tokens: Some(t),
        }),
    }
}

pub(crate) fn logprobs_from_wire(lp: Vec<WireLogprob>) -> Vec<TokenLogprob> {
    lp.into_iter()
        .map(|l| TokenLogprob {
            token: l.token,
            logprob: l.logprob,
            bytes: l.bytes,
            top_logprobs: l
                .top_logprobs
                .into_iter()
                .map(|t| TopLogprob {
                    token: t.token,
                    logprob: t.logprob,
                    bytes: t.bytes,
                })
                .collect(),
        })
        .collect()
}

pub(crate) fn logprobs_to_wire(lp: &[TokenLogprob]) -> Vec<WireLogprob> {
    lp.iter()
        .map(|l| WireLogprob {
            token: l.token.clone(),
            logprob: l.logprob,
            bytes: l.bytes.clone(),
            top_logprobs: l
                .top_logprobs
                .iter()
                .map(|t| WireTopLogprob {
                    token: t.token.clone(),
                    logprob: t.logprob,
                    bytes: t.bytes.clone(),
                })
                .collect(),
        })
        .collect()
}

fn bad_response(msg: impl Into<String>) -> Error {
    Error::new(Code::ProviderBadResponse, msg)
}

/// Decode an upstream's non-streaming chat completion.
pub fn decode_chat_response(body: &[u8]) -> Result<super::canonical::Response> {
    let w: ChatCompletion = serde_json::from_slice(body)
        .map_err(|e| bad_response(format!("upstream chat completion is not valid: {e}")))?;
    let Some(choice) = w.choices.into_iter().next() else {
        return Err(bad_response("upstream chat completion has no choices"));
    };
    let msg = choice.message;
    let mut content = Vec::new();
    if let Some(r) = msg.reasoning_content.or(msg.reasoning)
        && !r.is_empty()
    {
        content.push(Block::Thinking {
            thinking: r,
            signature: None,
        });
    }
    if let Some(t) = msg.content
        && !t.is_empty()
    {
        content.push(Block::text(t));
    }
    let refused = msg.refusal.is_some();
    if let Some(r) = msg.refusal {
        content.push(Block::text(r));
    }
    for tc in msg.tool_calls.unwrap_or_default() {
        content.push(Block::ToolUse {
            id: tc.id,
            name: tc.function.name,
            input: super::canonical::parse_tool_arguments(&tc.function.arguments),
            cache_control: None,
        });
    }
    let stop_reason = match choice.finish_reason.as_deref() {
        _ if refused => Some(StopReason::Refusal),
        Some(r) => Some(stop_reason_from_finish(r)),
        None => None,
    };
    Ok(super::canonical::Response {
        id: w.id,
        model: w.model,
        content,
        stop_reason,
        usage: w.usage.as_ref().map(usage_from_wire).unwrap_or_default(),
        logprobs: choice
            .logprobs
            .and_then(|l| l.content)
            .map(logprobs_from_wire),
    })
}

/// Encode a canonical response as the client's `chat.completion` JSON. `created` is the
/// Unix time in seconds (the caller's clock; this module does no I/O).
///
/// Text blocks are concatenated into `content` (the streamed form concatenates the same
/// deltas, so both forms agree); thinking becomes `reasoning_content`.
pub fn encode_chat_response(resp: &super::canonical::Response, created: u64) -> ChatCompletion {
    let mut text: Option<String> = None;
    let mut reasoning: Option<String> = None;
    let mut calls = Vec::new();
    for b in &resp.content {
        match b {
            Block::Text { text: t, .. } => text.get_or_insert_with(String::new).push_str(t),
            Block::Thinking { thinking, .. } => {
                reasoning.get_or_insert_with(String::new).push_str(thinking)
            }
            Block::ToolUse {
                id, name, input, ..
            } => calls.push(ToolCall {
                id: id.clone(),
                kind: "function".into(),
                function: FunctionCall {
                    name: name.clone(),
                    arguments: super::canonical::tool_arguments_text(input),
                },
            }),
            _ => {}
        }
    }
    if text.is_none() && calls.is_empty() {
        text = Some(String::new());
    }
    ChatCompletion {
        id: resp.id.clone(),
        object: "chat.completion".into(),
        created,
        model: resp.model.clone(),
        choices: vec![Choice {
            index: 0,
            message: ResponseMessage {
                role: "assistant".into(),
                content: text,
                reasoning_content: reasoning,
                reasoning: None,
                tool_calls: (!calls.is_empty()).then_some(calls),
                refusal: None,
            },
            logprobs: resp.logprobs.as_ref().map(|l| ChoiceLogprobs {
                content: Some(logprobs_to_wire(l)),
            }),
            finish_reason: Some(finish_reason(
                resp.stop_reason.as_ref().unwrap_or(&StopReason::EndTurn),
            )),
        }],
        usage: Some(usage_to_wire(&resp.usage)),
        system_fingerprint: None,
    }
}

// ================================================================ legacy completions

/// Decode a client's `POST /v1/completions` body: the prompt becomes one user text
/// block with [`Request::raw_prompt`] set. As in OpenAI's API, `max_tokens` defaults
/// to 16 when absent.
pub fn decode_completion_request(body: &[u8]) -> Result<Request> {
    let w: CompletionRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid completion request: {e}")))?;
    const LEGACY: &str = "Switchyard's /v1/completions";
    let prompt = match w.prompt {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(serde_json::Value::Array(a)) => match a.as_slice() {
            [serde_json::Value::String(s)] => s.clone(),
            [] => String::new(),
            [serde_json::Value::Number(_), ..] | [serde_json::Value::Array(_), ..] => {
                return Err(unsupported("token-id prompts", LEGACY));
            }
            _ => {
                return Err(unsupported(
                    "several prompts in one request (batching)",
                    LEGACY,
                ));
            }
        },
        Some(_) => return Err(invalid("prompt must be a string")),
    };
    match w.n {
        Some(0) => return Err(invalid("n must be at least 1")),
        Some(n) if n > 1 => return Err(unsupported(format!("n = {n}"), LEGACY)),
        _ => {}
    }
    if w.best_of.is_some_and(|b| b > 1) {
        return Err(unsupported("best_of", LEGACY));
    }
    if w.suffix.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(unsupported("suffix (fill-in-the-middle)", LEGACY));
    }
    if w.echo == Some(true) {
        return Err(unsupported("echo", LEGACY));
    }
    if w.logprobs.is_some() {
        return Err(unsupported("logprobs", LEGACY));
    }
    if w.logit_bias
        .as_ref()
        .is_some_and(|v| !v.is_null() && v.as_object().is_none_or(|m| !m.is_empty()))
    {
        return Err(unsupported("logit_bias", LEGACY));
    }
    let mut req = Request {
        model: w.model,
        messages: vec![Message::text(Role::User, prompt)],
        raw_prompt: true,
        max_tokens: Some(w.max_tokens.unwrap_or(16)),
        stream: w.stream.unwrap_or(false),
        include_usage: w
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false),
        user: w.user,
        ..Default::default()
    };
    req.sampling.temperature = w.temperature;
    req.sampling.top_p = w.top_p;
    req.sampling.top_k = w.top_k;
    req.sampling.seed = w.seed;
    req.sampling.presence_penalty = w.presence_penalty;
    req.sampling.frequency_penalty = w.frequency_penalty;
    req.stop = match w.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    Ok(req)
}

/// Encode a canonical response as a legacy `text_completion` (text blocks concatenated).
pub fn encode_completion_response(resp: &super::canonical::Response, created: u64) -> Completion {
    let text: String = resp
        .content
        .iter()
        .filter_map(|b| match b {
            Block::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    Completion {
        id: resp.id.clone(),
        object: "text_completion".into(),
        created,
        model: resp.model.clone(),
        choices: vec![CompletionChoice {
            text,
            index: 0,
            logprobs: None,
            finish_reason: Some(finish_reason(
                resp.stop_reason.as_ref().unwrap_or(&StopReason::EndTurn),
            )),
        }],
        usage: Some(Some(usage_to_wire(&resp.usage))),
    }
}

// ================================================================ models

/// One entry of `GET /v1/models`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub id: String,
    /// Unix seconds.
    pub created: u64,
    /// `switchyard` for local models, the provider name for routed ones.
    pub owned_by: String,
}

pub fn models_list(models: &[ModelEntry]) -> ModelList {
    ModelList {
        object: "list".into(),
        data: models
            .iter()
            .map(|m| ModelObject {
                id: m.id.clone(),
                object: "model".into(),
                created: m.created,
                owned_by: m.owned_by.clone(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests;
