//! Anthropic Messages: client requests → canonical, canonical → upstream requests,
//! upstream responses → canonical, canonical → client responses, and the count_tokens
//! shapes. Streams are in [`stream`].

pub mod stream;
pub mod wire;

use super::canonical::{
    Block, CacheControl, ImageSource, Message, Request, ResponseFormat, Role, StopReason,
    SystemBlock, ThinkingConfig, Tool, ToolChoice, Usage,
};
use super::wire::{CacheControlParam, Content, ThinkingParam};
use super::{invalid, unsupported};
use crate::error::{Code, Error, Result};
use wire::*;

const SWITCHYARD: &str = "Switchyard's Anthropic endpoint";
const UPSTREAM: &str = "an Anthropic upstream";

/// What an Anthropic upstream request needs that a canonical request may lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamOptions {
    /// Anthropic requires `max_tokens`; OpenAI clients usually omit it. The gateway
    /// picks this (e.g. the model's output limit from the routing rule).
    pub default_max_tokens: u64,
}

impl Default for UpstreamOptions {
    fn default() -> Self {
        UpstreamOptions {
            default_max_tokens: DEFAULT_MAX_TOKENS,
        }
    }
}

/// A conservative output cap every current Claude model accepts.
pub const DEFAULT_MAX_TOKENS: u64 = 8192;

// ================================================================ cache_control

fn cc_from(p: Option<CacheControlParam>) -> Option<CacheControl> {
    p.map(|p| CacheControl { ttl: p.ttl })
}

fn cc_to(c: &Option<CacheControl>) -> Option<CacheControlParam> {
    c.as_ref().map(|c| CacheControlParam {
        kind: "ephemeral".into(),
        ttl: c.ttl.clone(),
    })
}

// ================================================================ requests: decode

/// Decode a client's `POST /v1/messages` body.
pub fn decode_request(body: &[u8]) -> Result<Request> {
    let w: MessagesRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid messages request: {e}")))?;
    if w.max_tokens.is_none() {
        return Err(invalid("max_tokens: Field required"));
    }
    request_from_wire(w)
}

/// Decode a client's `POST /v1/messages/count_tokens` body (no `max_tokens`).
pub fn decode_count_tokens_request(body: &[u8]) -> Result<Request> {
    let w: MessagesRequest = serde_json::from_slice(body)
        .map_err(|e| invalid(format!("invalid count_tokens request: {e}")))?;
    request_from_wire(w)
}

pub fn request_from_wire(w: MessagesRequest) -> Result<Request> {
    for (field, v) in [("container", &w.container), ("mcp_servers", &w.mcp_servers)] {
        if v.as_ref().is_some_and(|v| !v.is_null()) {
            return Err(unsupported(field, SWITCHYARD));
        }
    }
    let mut req = Request {
        model: w.model,
        max_tokens: w.max_tokens,
        stop: w.stop_sequences.unwrap_or_default(),
        stream: w.stream.unwrap_or(false),
        user: w.metadata.and_then(|m| m.user_id),
        ..Default::default()
    };
    // Advisory: how the context is managed and which capacity tier serves it change
    // cost and latency, not what a model answers.
    if w.context_management.as_ref().is_some_and(|v| !v.is_null()) {
        req.drop_field("context_management");
    }
    if w.service_tier.as_ref().is_some_and(|v| !v.is_null()) {
        req.drop_field("service_tier");
    }
    if let Some(oc) = w.output_config {
        req.reasoning_effort = oc.effort;
        req.response_format = oc.format.map(|f| match f {
            OutputFormat::JsonSchema { schema } => ResponseFormat::JsonSchema {
                name: "response".into(),
                description: None,
                schema: Some(schema),
                strict: Some(true),
            },
        });
    }
    req.system = match w.system {
        None => vec![],
        Some(Content::Text(text)) => vec![SystemBlock {
            text,
            cache_control: None,
        }],
        Some(Content::Parts(parts)) => parts
            .into_iter()
            .map(
                |SystemBlockParam::Text {
                     text,
                     cache_control,
                 }| SystemBlock {
                    text,
                    cache_control: cc_from(cache_control),
                },
            )
            .collect(),
    };
    for (i, m) in w.messages.into_iter().enumerate() {
        let blocks = match m.content {
            Content::Text(t) => vec![ContentBlock::Text {
                text: t,
                cache_control: None,
                citations: None,
            }],
            Content::Parts(p) => p,
        };
        match m.role {
            wire::Role::User => {
                // Tool results become Tool messages and other blocks User messages, in
                // order; blocks of different wire messages are never merged.
                let mut segments: Vec<Message> = Vec::new();
                for b in blocks {
                    let role = if matches!(b, ContentBlock::ToolResult { .. }) {
                        Role::Tool
                    } else {
                        Role::User
                    };
                    let block = block_from_wire(b, i, false)?;
                    match segments.last_mut() {
                        Some(last) if last.role == role => last.content.push(block),
                        _ => segments.push(Message::new(role, vec![block])),
                    }
                }
                if segments.is_empty() {
                    segments.push(Message::new(Role::User, vec![]));
                }
                req.messages.extend(segments);
            }
            wire::Role::Assistant => {
                let content = blocks
                    .into_iter()
                    .map(|b| block_from_wire(b, i, true))
                    .collect::<Result<Vec<_>>>()?;
                req.messages.push(Message::new(Role::Assistant, content));
            }
            wire::Role::System => {
                let content = blocks
                    .into_iter()
                    .map(|b| match b {
                        ContentBlock::Text {
                            text,
                            cache_control,
                            ..
                        } => Ok(Block::Text {
                            text,
                            cache_control: cc_from(cache_control),
                        }),
                        other => Err(invalid(format!(
                            "messages[{i}]: a system message holds text blocks only, not {}",
                            other.type_name()
                        ))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                req.messages.push(Message::new(Role::System, content));
            }
        }
    }
    for (i, t) in w.tools.unwrap_or_default().into_iter().enumerate() {
        if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
            return Err(unsupported(
                format!("built-in/server tool `{kind}` (tools[{i}])"),
                SWITCHYARD,
            ));
        }
        // A deferred tool is not shown to the model until it searches for it (tool
        // search, a client tool here). A target without tool search would show it at
        // once; leaving it out is what the model would have seen.
        if t.defer_loading == Some(true) {
            req.drop_field("tools.defer_loading");
            continue;
        }
        let Some(schema) = t.input_schema else {
            return Err(invalid(format!("tools[{i}].input_schema: Field required")));
        };
        req.tools.push(Tool {
            name: t.name,
            description: t.description,
            input_schema: Some(schema),
            strict: t.strict,
            cache_control: cc_from(t.cache_control),
        });
    }
    let parallel = |d: Option<bool>| d.map(|d| !d);
    (req.tool_choice, req.parallel_tool_calls) = match w.tool_choice {
        None => (None, None),
        Some(ToolChoiceParam::Auto {
            disable_parallel_tool_use: d,
        }) => (Some(ToolChoice::Auto), parallel(d)),
        Some(ToolChoiceParam::Any {
            disable_parallel_tool_use: d,
        }) => (Some(ToolChoice::Required), parallel(d)),
        Some(ToolChoiceParam::Tool {
            name,
            disable_parallel_tool_use: d,
        }) => (Some(ToolChoice::Tool(name)), parallel(d)),
        Some(ToolChoiceParam::None {}) => (Some(ToolChoice::None), None),
    };
    req.sampling.temperature = w.temperature;
    req.sampling.top_p = w.top_p;
    req.sampling.top_k = w.top_k;
    (req.thinking, req.thinking_display) = thinking_from_wire(w.thinking);
    Ok(req)
}

/// The `thinking` object (Anthropic's, or the same object sent by an OpenAI client).
pub(crate) fn thinking_from_wire(
    t: Option<ThinkingParam>,
) -> (Option<ThinkingConfig>, Option<String>) {
    match t {
        None => (None, None),
        Some(ThinkingParam::Enabled {
            budget_tokens,
            display,
        }) => (Some(ThinkingConfig::Enabled { budget_tokens }), display),
        Some(ThinkingParam::Adaptive { display }) => (Some(ThinkingConfig::Adaptive), display),
        Some(ThinkingParam::Disabled) => (Some(ThinkingConfig::Disabled), None),
    }
}

fn block_from_wire(b: ContentBlock, msg: usize, assistant: bool) -> Result<Block> {
    let type_name = b.type_name();
    let misplaced = || {
        invalid(format!(
            "messages[{msg}]: a {type_name} block cannot be in a {} message",
            if assistant { "assistant" } else { "user" }
        ))
    };
    Ok(match b {
        ContentBlock::Text {
            text,
            cache_control,
            citations,
        } => {
            if citations.is_some_and(|c| !c.is_null() && c.as_array().is_none_or(|a| !a.is_empty()))
            {
                return Err(unsupported("citations", SWITCHYARD));
            }
            Block::Text {
                text,
                cache_control: cc_from(cache_control),
            }
        }
        ContentBlock::Image {
            source,
            cache_control,
        } => Block::Image {
            source: image_from_wire(source)?,
            detail: None,
            cache_control: cc_from(cache_control),
        },
        ContentBlock::ToolUse {
            id,
            name,
            input,
            cache_control,
        } => {
            if !assistant {
                return Err(misplaced());
            }
            Block::ToolUse {
                id,
                name,
                input,
                cache_control: cc_from(cache_control),
            }
        }
        ContentBlock::ToolResult {
            tool_use_id,
            content,
            is_error,
            cache_control,
        } => {
            if assistant {
                return Err(misplaced());
            }
            let content = match content {
                None => vec![],
                Some(Content::Text(t)) => vec![Block::text(t)],
                Some(Content::Parts(parts)) => parts
                    .into_iter()
                    .map(|p| match p {
                        ContentBlock::Text { .. } | ContentBlock::Image { .. } => {
                            block_from_wire(p, msg, false)
                        }
                        ContentBlock::Document {} | ContentBlock::SearchResult {} => {
                            Err(unsupported(
                                format!("{} inside tool_result", p.type_name()),
                                SWITCHYARD,
                            ))
                        }
                        other => Err(invalid(format!(
                            "messages[{msg}]: a {} block cannot be inside a tool_result",
                            other.type_name()
                        ))),
                    })
                    .collect::<Result<_>>()?,
            };
            Block::ToolResult {
                tool_use_id,
                content,
                is_error: is_error.unwrap_or(false),
                cache_control: cc_from(cache_control),
            }
        }
        ContentBlock::Thinking {
            thinking,
            signature,
        } => {
            if !assistant {
                return Err(misplaced());
            }
            Block::Thinking {
                thinking,
                signature,
            }
        }
        ContentBlock::RedactedThinking { data } => {
            if !assistant {
                return Err(misplaced());
            }
            Block::RedactedThinking { data }
        }
        other => {
            return Err(unsupported(
                format!("`{}` content blocks", other.type_name()),
                SWITCHYARD,
            ));
        }
    })
}

fn image_from_wire(s: ImageSourceParam) -> Result<ImageSource> {
    match s {
        ImageSourceParam::Base64 { media_type, data } => {
            Ok(ImageSource::Base64 { media_type, data })
        }
        ImageSourceParam::Url { url } => Ok(ImageSource::Url { url }),
        ImageSourceParam::File {} => {
            Err(unsupported("image source `file` (Files API)", SWITCHYARD))
        }
    }
}

// ================================================================ requests: encode

/// Map a reasoning effort (OpenAI's `reasoning_effort` / Responses `reasoning.effort`) to
/// an Anthropic thinking budget and `max_tokens`: none → no thinking, minimal → 1024,
/// low → 2048, medium → 8192, high → 16384, xhigh/max → 32768 tokens.
///
/// Anthropic counts thinking inside `max_tokens`. Without a client `max_tokens` the answer
/// keeps `default_max` tokens on top of the budget; with one, the budget takes at most half
/// of it (the answer keeps the rest), and Anthropic's minimum budget of 1024 then needs
/// `max_tokens` ≥ 2048. Returns `(budget, max_tokens)`.
pub fn effort_thinking(
    effort: &str,
    client_max: Option<u64>,
    default_max: u64,
) -> Result<(Option<u64>, u64)> {
    let table: u64 = match effort {
        "none" => return Ok((None, client_max.unwrap_or(default_max))),
        "minimal" => 1024,
        "low" => 2048,
        "medium" => 8192,
        "high" => 16384,
        "xhigh" | "max" => 32768,
        other => {
            return Err(unsupported(format!("reasoning effort `{other}`"), UPSTREAM));
        }
    };
    let Some(max) = client_max else {
        return Ok((Some(table), default_max + table));
    };
    let budget = table.min(max / 2);
    if budget < 1024 {
        return Err(unsupported(
            format!(
                "reasoning effort `{effort}` with max_tokens {max} (Anthropic needs a thinking budget of at least 1024 tokens inside max_tokens; give max_tokens of 2048 or more)"
            ),
            UPSTREAM,
        ));
    }
    Ok((Some(budget), max))
}

/// Advisory fields an Anthropic upstream request cannot carry, for `x-switchyard-dropped`.
pub fn dropped(req: &Request) -> Vec<&'static str> {
    let mut out = req.dropped.clone();
    let detail = req.messages.iter().any(|m| {
        m.content.iter().any(|b| {
            matches!(
                b,
                Block::Image {
                    detail: Some(_),
                    ..
                }
            )
        })
    });
    if detail {
        out.push("image_url.detail");
    }
    out
}

/// Encode a canonical request as an upstream Messages body.
pub fn encode_request(req: &Request, opts: &UpstreamOptions) -> Result<MessagesRequest> {
    if req.raw_prompt {
        return Err(unsupported("a raw prompt (/v1/completions)", UPSTREAM));
    }
    let s = &req.sampling;
    if s.seed.is_some() {
        return Err(unsupported("seed", UPSTREAM));
    }
    for (name, v) in [
        ("presence_penalty", s.presence_penalty),
        ("frequency_penalty", s.frequency_penalty),
    ] {
        // 0 is the documented default, i.e. no penalty: exactly what Anthropic does.
        if v.is_some_and(|v| v != 0.0) {
            return Err(unsupported(name, UPSTREAM));
        }
    }
    // top_p 1 is "no nucleus cut", the default: not sent. Claude models from 4.5 on refuse
    // temperature and top_p together, and either alone would sample differently.
    let top_p = s.top_p.filter(|p| *p != 1.0);
    if s.temperature.is_some() && top_p.is_some() {
        return Err(unsupported(
            "temperature together with top_p (Claude models take one of them; send only one)",
            UPSTREAM,
        ));
    }
    if req.logprobs {
        return Err(unsupported("logprobs", UPSTREAM));
    }
    if req.top_logprobs.is_some() {
        return Err(unsupported("top_logprobs", UPSTREAM));
    }
    let format = match &req.response_format {
        None | Some(ResponseFormat::Text) => None,
        Some(ResponseFormat::JsonObject) => {
            return Err(unsupported(
                "response_format json_object (use json_schema)",
                UPSTREAM,
            ));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => Some(OutputFormat::JsonSchema {
            schema: schema
                .clone()
                .unwrap_or_else(|| serde_json::json!({"type": "object"})),
        }),
    };
    if req.verbosity.is_some() {
        return Err(unsupported("verbosity", UPSTREAM));
    }
    let display = req.thinking_display.clone();
    let (thinking, max_tokens) = match (&req.thinking, &req.reasoning_effort) {
        (Some(ThinkingConfig::Enabled { budget_tokens }), _) => (
            Some(ThinkingParam::Enabled {
                budget_tokens: *budget_tokens,
                display,
            }),
            req.max_tokens.unwrap_or(opts.default_max_tokens),
        ),
        (Some(ThinkingConfig::Adaptive), _) => (
            Some(ThinkingParam::Adaptive { display }),
            req.max_tokens.unwrap_or(opts.default_max_tokens),
        ),
        (Some(ThinkingConfig::Disabled), _) => (
            Some(ThinkingParam::Disabled),
            req.max_tokens.unwrap_or(opts.default_max_tokens),
        ),
        (None, Some(effort)) => {
            let (budget, max) = effort_thinking(effort, req.max_tokens, opts.default_max_tokens)?;
            (
                budget.map(|budget_tokens| ThinkingParam::Enabled {
                    budget_tokens,
                    display,
                }),
                max,
            )
        }
        (None, None) => (None, req.max_tokens.unwrap_or(opts.default_max_tokens)),
    };
    // A thinking Claude samples at temperature 1 without top_k: other values would be
    // refused upstream, and dropping them would change the answer.
    let thinks = matches!(
        thinking,
        Some(ThinkingParam::Enabled { .. } | ThinkingParam::Adaptive { .. })
    );
    if thinks && s.temperature.is_some_and(|t| t != 1.0) {
        return Err(unsupported(
            "temperature other than 1 together with reasoning (a thinking Claude model samples at temperature 1)",
            UPSTREAM,
        ));
    }
    if thinks && s.top_k.is_some() {
        return Err(unsupported("top_k together with reasoning", UPSTREAM));
    }

    let system = match req.system.as_slice() {
        [] => None,
        [one] if one.cache_control.is_none() => Some(Content::Text(one.text.clone())),
        many => Some(Content::Parts(
            many.iter()
                .map(|b| SystemBlockParam::Text {
                    text: b.text.clone(),
                    cache_control: cc_to(&b.cache_control),
                })
                .collect(),
        )),
    };

    let mut messages: Vec<MessageParam> = Vec::with_capacity(req.messages.len());
    let mut merge_next_user = false;
    for (i, m) in req.messages.iter().enumerate() {
        if m.name.is_some() {
            return Err(unsupported(format!("messages[{i}].name"), UPSTREAM));
        }
        match m.role {
            Role::System => {
                return Err(unsupported(
                    format!(
                        "messages[{i}]: a system message inside the conversation (Anthropic takes one system prompt, before the messages)"
                    ),
                    UPSTREAM,
                ));
            }
            Role::User | Role::Tool => {
                let blocks = m
                    .content
                    .iter()
                    .map(|b| block_to_wire(b, i, m.role))
                    .collect::<Result<Vec<_>>>()?;
                // A user message right after tool results shares their wire message
                // (Anthropic wants results first in the user turn that follows the
                // tool calls).
                let merge = merge_next_user && m.role == Role::User;
                merge_next_user = m.role == Role::Tool;
                if merge
                    && let Some(MessageParam {
                        content: Content::Parts(p),
                        ..
                    }) = messages.last_mut()
                {
                    p.extend(blocks);
                    continue;
                }
                let content = match blocks.as_slice() {
                    [
                        ContentBlock::Text {
                            text,
                            cache_control: None,
                            ..
                        },
                    ] if m.role == Role::User => Content::Text(text.clone()),
                    _ => Content::Parts(blocks),
                };
                messages.push(MessageParam {
                    role: wire::Role::User,
                    content,
                });
            }
            Role::Assistant => {
                merge_next_user = false;
                let mut blocks = Vec::with_capacity(m.content.len());
                for b in &m.content {
                    // Reasoning without a signature came from another vendor's model
                    // (an Anthropic client gets it with `signature: ""`). Anthropic
                    // rejects unsigned thinking, and it is not its own: leave it out.
                    if let Block::Thinking { signature, .. } = b
                        && signature.as_deref().is_none_or(str::is_empty)
                    {
                        continue;
                    }
                    // Anthropic rejects empty text blocks; OpenAI clients send
                    // `content: ""` beside tool calls.
                    if matches!(b, Block::Text { text, .. } if text.is_empty()) {
                        continue;
                    }
                    blocks.push(block_to_wire(b, i, Role::Assistant)?);
                }
                if blocks.is_empty() {
                    continue; // nothing was said; an empty assistant turn is refused
                }
                messages.push(MessageParam {
                    role: wire::Role::Assistant,
                    content: Content::Parts(blocks),
                });
            }
        }
    }

    let tools =
        (!req.tools.is_empty()).then(|| {
            req.tools
                .iter()
                .map(|t| ToolParam {
                    kind: None,
                    defer_loading: None,
                    name: t.name.clone(),
                    description: t.description.clone(),
                    input_schema: Some(t.input_schema.clone().unwrap_or_else(
                        || serde_json::json!({"type": "object", "properties": {}}),
                    )),
                    strict: t.strict,
                    cache_control: cc_to(&t.cache_control),
                })
                .collect()
        });
    let disable = req.parallel_tool_calls.map(|p| !p);
    let tool_choice = match &req.tool_choice {
        None if disable.is_some() && !req.tools.is_empty() => Some(ToolChoiceParam::Auto {
            disable_parallel_tool_use: disable,
        }),
        None => None,
        Some(ToolChoice::Auto) => Some(ToolChoiceParam::Auto {
            disable_parallel_tool_use: disable,
        }),
        Some(ToolChoice::Required) => Some(ToolChoiceParam::Any {
            disable_parallel_tool_use: disable,
        }),
        Some(ToolChoice::Tool(name)) => Some(ToolChoiceParam::Tool {
            name: name.clone(),
            disable_parallel_tool_use: disable,
        }),
        Some(ToolChoice::None) => Some(ToolChoiceParam::None {}),
    };

    Ok(MessagesRequest {
        model: req.model.clone(),
        messages,
        max_tokens: Some(max_tokens),
        system,
        metadata: req.user.as_ref().map(|u| Metadata {
            user_id: Some(u.clone()),
        }),
        stop_sequences: (!req.stop.is_empty()).then(|| req.stop.clone()),
        stream: req.stream.then_some(true),
        temperature: s.temperature,
        top_p,
        top_k: s.top_k,
        tools,
        tool_choice,
        thinking,
        output_config: format.map(|f| OutputConfig {
            effort: None,
            format: Some(f),
        }),
        ..Default::default()
    })
}

/// Encode the upstream `count_tokens` body: only the fields that endpoint accepts.
pub fn encode_count_tokens_request(req: &Request) -> Result<MessagesRequest> {
    let full = encode_request(
        &Request {
            stream: false,
            sampling: Default::default(),
            stop: vec![],
            user: None,
            ..req.clone()
        },
        &UpstreamOptions::default(),
    )?;
    Ok(MessagesRequest {
        model: full.model,
        messages: full.messages,
        system: full.system,
        tools: full.tools,
        tool_choice: full.tool_choice,
        thinking: full.thinking,
        ..Default::default()
    })
}

pub fn count_tokens_response(input_tokens: u64) -> CountTokensResponse {
    CountTokensResponse { input_tokens }
}

pub fn decode_count_tokens_response(body: &[u8]) -> Result<u64> {
    let r: CountTokensResponse = serde_json::from_slice(body).map_err(|e| {
        Error::new(
            Code::ProviderBadResponse,
            format!("upstream count_tokens response is not valid: {e}"),
        )
    })?;
    Ok(r.input_tokens)
}

fn block_to_wire(b: &Block, msg: usize, role: Role) -> Result<ContentBlock> {
    let misplaced = || {
        invalid(format!(
            "messages[{msg}]: a {} block cannot be in a {role:?} message",
            b.kind()
        ))
    };
    Ok(match b {
        Block::Text {
            text,
            cache_control,
        } => {
            if role == Role::Tool {
                return Err(misplaced());
            }
            ContentBlock::Text {
                text: text.clone(),
                cache_control: cc_to(cache_control),
                citations: None,
            }
        }
        // `detail` is OpenAI's resolution hint; Anthropic sizes images itself.
        Block::Image {
            source,
            cache_control,
            ..
        } => {
            if role == Role::Tool {
                return Err(misplaced());
            }
            ContentBlock::Image {
                source: image_to_wire(source),
                cache_control: cc_to(cache_control),
            }
        }
        Block::ToolUse {
            id,
            name,
            input,
            cache_control,
        } => {
            if role != Role::Assistant {
                return Err(misplaced());
            }
            if !input.is_object() {
                return Err(invalid(format!(
                    "messages[{msg}]: the arguments of tool call `{id}` are not a JSON object, which Anthropic requires"
                )));
            }
            ContentBlock::ToolUse {
                id: id.clone(),
                name: name.clone(),
                input: input.clone(),
                cache_control: cc_to(cache_control),
            }
        }
        Block::ToolResult {
            tool_use_id,
            content,
            is_error,
            cache_control,
        } => {
            if role != Role::Tool {
                return Err(misplaced());
            }
            let blocks = content
                .iter()
                .map(|c| match c {
                    Block::Text { .. } | Block::Image { .. } => block_to_wire(c, msg, Role::User),
                    other => Err(invalid(format!(
                        "messages[{msg}]: a {} block cannot be inside a tool result",
                        other.kind()
                    ))),
                })
                .collect::<Result<Vec<_>>>()?;
            let content = match blocks.as_slice() {
                [] => None,
                [
                    ContentBlock::Text {
                        text,
                        cache_control: None,
                        ..
                    },
                ] => Some(Content::Text(text.clone())),
                _ => Some(Content::Parts(blocks)),
            };
            ContentBlock::ToolResult {
                tool_use_id: tool_use_id.clone(),
                content,
                is_error: is_error.then_some(true),
                cache_control: cc_to(cache_control),
            }
        }
        Block::Thinking {
            thinking,
            signature,
        } => {
            if role != Role::Assistant {
                return Err(misplaced());
            }
            ContentBlock::Thinking {
                thinking: thinking.clone(),
                signature: Some(signature.clone().unwrap_or_default()),
            }
        }
        Block::RedactedThinking { data } => {
            if role != Role::Assistant {
                return Err(misplaced());
            }
            ContentBlock::RedactedThinking { data: data.clone() }
        }
    })
}

fn image_to_wire(s: &ImageSource) -> ImageSourceParam {
    match s {
        ImageSource::Base64 { media_type, data } => ImageSourceParam::Base64 {
            media_type: media_type.clone(),
            data: data.clone(),
        },
        ImageSource::Url { url } => ImageSourceParam::Url { url: url.clone() },
    }
}

// ================================================================ responses

pub fn stop_reason_from_wire(reason: &str, sequence: Option<String>) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence(sequence.unwrap_or_default()),
        "tool_use" => StopReason::ToolUse,
        "pause_turn" => StopReason::PauseTurn,
        "refusal" => StopReason::Refusal,
        "model_context_window_exceeded" => StopReason::ContextWindowExceeded,
        other => StopReason::Other(other.to_owned()),
    }
}

/// `(stop_reason, stop_sequence)` as Anthropic writes them.
pub fn stop_reason_to_wire(r: &StopReason) -> (String, Option<String>) {
    let s = match r {
        StopReason::EndTurn => "end_turn",
        StopReason::MaxTokens => "max_tokens",
        StopReason::StopSequence(seq) => return ("stop_sequence".into(), Some(seq.clone())),
        StopReason::ToolUse => "tool_use",
        StopReason::PauseTurn => "pause_turn",
        StopReason::Refusal => "refusal",
        StopReason::ContextWindowExceeded => "model_context_window_exceeded",
        StopReason::Other(s) => return (s.clone(), None),
    };
    (s.to_owned(), None)
}

/// Anthropic usage → canonical (whose `input_tokens` includes cached tokens).
pub(crate) fn usage_from_wire(u: &UsageWire) -> Usage {
    let any_input = u.input_tokens.is_some()
        || u.cache_read_input_tokens.is_some()
        || u.cache_creation_input_tokens.is_some();
    Usage {
        input_tokens: any_input.then(|| {
            u.input_tokens.unwrap_or(0)
                + u.cache_read_input_tokens.unwrap_or(0)
                + u.cache_creation_input_tokens.unwrap_or(0)
        }),
        output_tokens: u.output_tokens,
        cache_read_tokens: u.cache_read_input_tokens,
        cache_write_tokens: u.cache_creation_input_tokens,
        reasoning_tokens: None,
    }
}

/// Canonical usage → Anthropic (uncached input only in `input_tokens`).
pub(crate) fn usage_to_wire(u: &Usage) -> UsageWire {
    UsageWire {
        input_tokens: u.input_tokens.map(|t| {
            t.saturating_sub(u.cache_read_tokens.unwrap_or(0) + u.cache_write_tokens.unwrap_or(0))
        }),
        cache_creation_input_tokens: u.cache_write_tokens,
        cache_read_input_tokens: u.cache_read_tokens,
        output_tokens: u.output_tokens,
    }
}

fn bad_response(msg: impl Into<String>) -> Error {
    Error::new(Code::ProviderBadResponse, msg)
}

/// A response block from upstream → canonical (only what a model generates).
pub(crate) fn response_block_from_wire(b: ContentBlock) -> Result<Block> {
    Ok(match b {
        ContentBlock::Text { text, .. } => Block::text(text),
        ContentBlock::ToolUse {
            id, name, input, ..
        } => Block::ToolUse {
            id,
            name,
            input,
            cache_control: None,
        },
        ContentBlock::Thinking {
            thinking,
            signature,
        } => Block::Thinking {
            thinking,
            signature,
        },
        ContentBlock::RedactedThinking { data } => Block::RedactedThinking { data },
        other => {
            return Err(bad_response(format!(
                "upstream returned a `{}` block, which Switchyard does not request or carry",
                other.type_name()
            )));
        }
    })
}

/// Decode an upstream's non-streaming message.
pub fn decode_response(body: &[u8]) -> Result<super::canonical::Response> {
    let w: MessageResponse = serde_json::from_slice(body)
        .map_err(|e| bad_response(format!("upstream message is not valid: {e}")))?;
    Ok(super::canonical::Response {
        id: w.id,
        model: w.model,
        content: w
            .content
            .into_iter()
            .map(response_block_from_wire)
            .collect::<Result<_>>()?,
        stop_reason: w
            .stop_reason
            .map(|r| stop_reason_from_wire(&r, w.stop_sequence)),
        usage: usage_from_wire(&w.usage),
        logprobs: None,
    })
}

/// A response block → Anthropic. `None` for blocks a response never carries.
pub(crate) fn response_block_to_wire(b: &Block) -> Option<ContentBlock> {
    Some(match b {
        Block::Text { text, .. } => ContentBlock::Text {
            text: text.clone(),
            cache_control: None,
            citations: None,
        },
        Block::ToolUse {
            id, name, input, ..
        } => ContentBlock::ToolUse {
            id: id.clone(),
            name: name.clone(),
            input: input.clone(),
            cache_control: None,
        },
        Block::Thinking {
            thinking,
            signature,
        } => ContentBlock::Thinking {
            thinking: thinking.clone(),
            signature: Some(signature.clone().unwrap_or_default()),
        },
        Block::RedactedThinking { data } => ContentBlock::RedactedThinking { data: data.clone() },
        Block::Image { .. } | Block::ToolResult { .. } => return None,
    })
}

/// Full usage for a client body: Anthropic clients expect both counts to be numbers.
pub(crate) fn client_usage(u: &Usage) -> UsageWire {
    let mut w = usage_to_wire(u);
    w.input_tokens.get_or_insert(0);
    w.output_tokens.get_or_insert(0);
    w
}

/// Encode a canonical response as the client's `message` JSON.
pub fn encode_response(resp: &super::canonical::Response) -> MessageResponse {
    let (stop_reason, stop_sequence) = match &resp.stop_reason {
        Some(r) => {
            let (r, s) = stop_reason_to_wire(r);
            (Some(r), s)
        }
        None => (None, None),
    };
    MessageResponse {
        id: resp.id.clone(),
        kind: "message".into(),
        role: "assistant".into(),
        model: resp.model.clone(),
        content: resp
            .content
            .iter()
            .filter_map(response_block_to_wire)
            .collect(),
        stop_reason,
        stop_sequence,
        usage: client_usage(&resp.usage),
    }
}

#[cfg(test)]
mod tests;
