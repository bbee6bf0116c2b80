//! Protocol translation: the OpenAI Chat Completions, OpenAI Responses ([`responses`])
//! and Anthropic Messages APIs, both directions, through one canonical model
//! ([`canonical`]); and the same-protocol relay ([`passthrough`]). Pure code — no I/O,
//! no clock, no randomness — so every mapping is a plain function with table tests and
//! property tests, and the gateway's handlers stay thin.
//!
//! **Same protocol, no translation.** A client routed to a provider of its own API
//! (Anthropic → Anthropic, OpenAI chat/completions/embeddings → OpenAI or compatible,
//! Responses → OpenAI) is relayed: [`passthrough::peek`] reads `model` and `stream`,
//! [`passthrough::Peek::rewrite`] swaps the model (and drops `api_key`/`api_base`/
//! `base_url`), and the answer comes back as the upstream sent it. Nothing below applies
//! to those routes: new fields, thinking modes, server tools and betas work the day a
//! client sends them. The tables are for translated and local routes.
//!
//! ```text
//! client body ──decode──▶ canonical::Request ──encode──▶ upstream body
//! upstream JSON / SSE ──decode──▶ canonical::Response / Event ──encode──▶ client JSON / SSE
//! ```
//!
//! Invariants: nothing a target cannot express is dropped silently — it is an
//! `unsupported_feature` error (HTTP 400) naming the feature and the target, except the
//! few *advisory* fields listed below, whose omission cannot change the output. The
//! canonical request has no field for endpoints or credentials, so `api_base`,
//! `base_url`, `api_key` or headers a client puts in a body can never reach an upstream.
//! Temperature 0 stays 0; an absent sampling parameter stays absent.
//!
//! # Handler sketches
//!
//! OpenAI client → Anthropic upstream, streaming:
//! ```text
//! let req = openai::decode_chat_request(&body)?;            // Err → encode_error(OpenAi, &e)
//! let route = routing.pick(&req.model)?;                    // set req.model = upstream model
//! let wire = anthropic::encode_request(&req, &anthropic::UpstreamOptions { default_max_tokens })?;
//! // POST serde_json::to_vec(&wire); non-2xx → decode_upstream_error(Anthropic, status, &body)
//! let (mut parser, mut dec) = (sse::Parser::new(), anthropic::stream::StreamDecoder::new());
//! let mut enc = openai::stream::ChatStreamEncoder::new(req.include_usage, now_secs);
//! for chunk in upstream_body {
//!     for ev in parser.push(&chunk)? { for e in dec.push(&ev)? { send(enc.encode(&e)) } }
//! }
//! for e in dec.finish() { send(enc.encode(&e)) }            // cut-off stream → error frame
//! // a Err(e) mid-stream → send(enc.encode(&Event::Error((&e).into())))
//! ```
//! Non-streaming: `anthropic::decode_response(&body)?` then
//! `openai::encode_chat_response(&resp, now_secs)`.
//!
//! Anthropic client → OpenAI(-compatible) upstream:
//! ```text
//! let mut req = anthropic::decode_request(&body)?;          // Err → encode_error(Anthropic, &e)
//! req.include_usage = true;                                 // we want token counts for the log
//! let wire = openai::encode_chat_request(&req, Dialect::OpenAi | Dialect::Compatible)?;
//! // stream: sse::Parser → openai::stream::ChatStreamDecoder → anthropic::stream::StreamEncoder
//! //   (call enc.encode_all(&events) once per decoder batch; finish with dec.finish()?)
//! // non-stream client of a streaming upstream: canonical::Aggregator, then
//! //   anthropic::encode_response(&agg.finish()?)
//! // non-stream upstream, streaming client: response_to_events(&resp) → encoder
//! ```
//!
//! Either client → local engine:
//! ```text
//! let req = openai::decode_chat_request(&body)?   // or decode_completion_request (raw_prompt)
//!         / anthropic::decode_request(&body)?;
//! let mut b = canonical::EventBuilder::new();
//! let mut events = vec![b.start(id, model)];
//! for piece in engine_tokens { b.text(&piece, &mut events); flush(encoder, &mut events) }
//! // (a model's own tool calls, parsed from its text: b.tool_call(id, name, args_json, …))
//! b.usage(&Usage { input_tokens, output_tokens, .. });
//! b.finish(StopReason::EndTurn | MaxTokens | StopSequence(s), &mut events);
//! // encoder: openai::stream::ChatStreamEncoder / CompletionStreamEncoder /
//! //          anthropic::stream::StreamEncoder (encode_all per batch)
//! // non-stream: feed the events to canonical::Aggregator → encode_*_response
//! ```
//!
//! # Requests: what maps to what
//!
//! | feature | OpenAI wire | Anthropic wire | crossing |
//! |---|---|---|---|
//! | system prompt | leading `system`/`developer` messages, one block per text part | `system` string or text blocks (+`cache_control`) | → OpenAI: one `system` message (string if one block, else text parts) |
//! | system message mid-conversation | `system`/`developer` after the first other message → `Role::System` | `role: "system"` in `messages` (Claude Code's environment block) → `Role::System` | → OpenAI: a `system` message in place; → Anthropic (from OpenAI clients): **unsupported_feature** |
//! | message `name` | kept | — | → Anthropic: **unsupported_feature** |
//! | text | string or `text` parts | string or `text` blocks | exact |
//! | image | `image_url`: `data:<type>;base64,…` or http(s) URL; `detail` | `image` source `base64` or `url` | both ways; `detail` is advisory (dropped for Anthropic, which sizes images itself); Anthropic `file` source: **unsupported_feature** |
//! | audio, files | `input_audio`, `file` parts: **unsupported_feature** | — | |
//! | documents, search results, citations, server/MCP tool blocks, `container`, `mcp_servers` | — | **unsupported_feature** | |
//! | tools | `function` {name, description, parameters, strict}; `custom` tools: **unsupported_feature** | {name, description, input_schema, strict, cache_control}; built-in/server tool types: **unsupported_feature**; `defer_loading: true` (tool search) → left out and named `tools.defer_loading`, as the model would not see it yet | no `parameters` → Anthropic gets `{"type":"object","properties":{}}` |
//! | tool_choice | `auto`/`none`/`required`/{function}; `allowed_tools`: **unsupported_feature** | `auto`/`none`/`any`/`tool` | required ↔ any |
//! | parallel tool calls | `parallel_tool_calls` | `disable_parallel_tool_use` (inverted, inside tool_choice) | without a tool_choice (and with tools) → `auto` carries it |
//! | tool calls | assistant `tool_calls`, arguments as JSON text | `tool_use` blocks, input object | text parsed; non-JSON text kept verbatim and refused (`invalid_request`) for Anthropic; OpenAI holds texts before tool calls |
//! | tool results | one `tool` message per call (text only) | `tool_result` blocks first in a user message (text/image, `is_error`) | consecutive results = one `Role::Tool` message; → Anthropic they share a user message with the user text after them; `is_error` → OpenAI: text prefixed `Error: `; image in a result → OpenAI: **unsupported_feature** |
//! | earlier thinking | (not part of the API; `reasoning_content` in client messages is ignored) | `thinking` (+signature), `redacted_thinking` | → OpenAI: omitted (no input field; models reason afresh); → Anthropic: thinking without a non-empty signature omitted (another vendor's reasoning, which Anthropic rejects) |
//! | thinking config | `thinking` object (extension), `reasoning_effort` (Responses: `reasoning.effort`) | `thinking` enabled {budget} / adaptive / disabled, each with `display` (`summarized`/`omitted`); `output_config.effort` (low/medium/high/max) | → OpenAI: the effort as `reasoning_effort` (`max` → `high`), else a budget → < 4096 low, < 16384 medium, else high; adaptive without effort or disabled → nothing. → Anthropic: effort → a thinking budget (none → off, minimal 1024, low 2048, medium 8192, high 16384, xhigh/max 32768), at most half a client's `max_tokens` (≥ 2048 needed) or on top of the default when it gave none; unknown effort: **unsupported_feature**. `display: omitted` → the client gets no thinking blocks. → local: adaptive = the template's default; effort dropped and named |
//! | temperature, top_p | exact | exact | exact, 0 is 0 (Anthropic itself refuses temperature > 1). → Anthropic: `top_p: 1` (the default) is left out; temperature together with another top_p: **unsupported_feature** (Claude 4.5+ refuses both); with thinking, a temperature other than 1 or a `top_k`: **unsupported_feature** |
//! | top_k | extension | `top_k` | → api.openai.com (`Dialect::OpenAi`): **unsupported_feature**; → compatible servers: passed |
//! | seed | `seed` | — | → Anthropic: **unsupported_feature** |
//! | presence/frequency penalty | kept | — | → Anthropic: **unsupported_feature** unless 0 (0 = no penalty, which is Anthropic's behaviour) |
//! | logprobs, top_logprobs | kept | — | → Anthropic: **unsupported_feature** |
//! | response_format | text / json_object / json_schema (Responses: `text.format`) | `output_config.format` {json_schema, schema} | json_schema both ways; json_object → Anthropic: **unsupported_feature** |
//! | verbosity | kept | — | → Anthropic: **unsupported_feature** |
//! | max tokens | `max_completion_tokens`, else `max_tokens` | `max_tokens` (required) | → OpenAI: `max_completion_tokens` (`Dialect::OpenAi`) or `max_tokens` (`Compatible`); → Anthropic without one: `UpstreamOptions::default_max_tokens` |
//! | stop | string or array | `stop_sequences` | exact |
//! | n | 1 only; n > 1: **unsupported_feature** | — | |
//! | stream, usage | `stream`, `stream_options.include_usage` | `stream` (usage always) | include_usage shapes only the OpenAI client's stream |
//! | end user | `user` | `metadata.user_id` | mapped; → OpenAI only up to 64 characters (longer: dropped and named `user`) |
//! | final assistant message (prefill) | — | the model continues it | → local: continued; → OpenAI: **unsupported_feature** (a chat completion answers in a new turn) |
//! | `logit_bias`, `audio`, non-text `modalities`, `prediction`, `web_search_options`, `functions`/`function_call`, role `function` | **unsupported_feature** (defaults such as `{}`, `["text"]`, `null` accepted) | — | |
//! | advisory: dropped **and named** in `x-switchyard-dropped` when the target cannot carry them | `store`, `metadata`, `service_tier`, `prompt_cache_key`, `safety_identifier` | `context_management`, `service_tier`; `cache_control` towards OpenAI and local models (they cache prefixes themselves) | local models also name `user`, `effort`, `verbosity`, `parallel_tool_calls: false`; image `detail` → Anthropic |
//! | endpoints, keys | `api_base`, `base_url`, `api_key`, … | same | no canonical field: never forwarded (and stripped from relayed bodies) |
//! | unknown fields / content types | fields ignored (SDKs add fields before servers learn them); unknown part types: `invalid_request` | same | |
//! | `/v1/completions` | prompt string or one-element array → one user text, `raw_prompt`; `max_tokens` defaults to 16; token prompts, several prompts, `suffix`, `echo`, `best_of` > 1, `logprobs`, n > 1: **unsupported_feature** | — | raw prompt → any chat upstream: **unsupported_feature** (local models only) |
//!
//! # Responses and streams
//!
//! | feature | OpenAI wire | Anthropic wire | crossing |
//! |---|---|---|---|
//! | text | `content` / `delta.content` | `text` blocks / `text_delta` | several text blocks → OpenAI: concatenated (stream and non-stream alike) |
//! | reasoning | `reasoning_content` (also read: `reasoning`) | `thinking` + `signature_delta`, `redacted_thinking` | → OpenAI client: `reasoning_content`; signatures and redacted thinking have no field. → Anthropic client: `thinking` with `signature: ""` |
//! | tool calls | `tool_calls` deltas keyed by `index` (id/name/arguments may be split; without `index`, a new id starts the next call) | `tool_use` + `input_json_delta` | one block per index; arguments for an earlier call after a later block began: `provider_bad_response` |
//! | refusal | `message.refusal` → text + `Refusal` | `refusal` stop reason | |
//! | logprobs | `logprobs.content` | — | Anthropic clients cannot ask for them |
//! | usage | `prompt_tokens` (cached included, `cached_tokens`), `completion_tokens` (`reasoning_tokens`) | `input_tokens` (uncached) + `cache_read_input_tokens` + `cache_creation_input_tokens`, `output_tokens` | canonical input = whole prompt; cache writes have no OpenAI field, reasoning tokens no Anthropic one |
//! | stream framing | `chat.completion.chunk`s, role chunk first, finish chunk, usage chunk (`choices: []`) when asked, `data: [DONE]` | `message_start` (input usage), paired `content_block_start`/`stop` with increasing indexes, `message_delta` (stop reason, usage), `message_stop`; `ping` ignored | |
//! | error after streaming began | `data: {"error":{…}}`, no `[DONE]` | `event: error` | [`stream_error_frame`] |
//!
//! | canonical stop reason | OpenAI `finish_reason` | Anthropic `stop_reason` |
//! |---|---|---|
//! | EndTurn | `stop` | `end_turn` |
//! | StopSequence(s) | `stop` | `stop_sequence` (+ `stop_sequence: s`) |
//! | MaxTokens | `length` | `max_tokens` |
//! | ContextWindowExceeded | `length` | `model_context_window_exceeded` |
//! | ToolUse | `tool_calls` (`function_call` read) | `tool_use` |
//! | Refusal | `content_filter` | `refusal` |
//! | PauseTurn | `stop` | `pause_turn` |
//! | Other(s) | s | s |
//!
//! Errors: [`encode_error`] answers in the client's shape with the status of the code;
//! [`decode_upstream_error`] maps an upstream's status and body to a code (see
//! `errors.rs` for both tables).

pub mod anthropic;
pub mod canonical;
mod errors;
pub mod openai;
pub mod passthrough;
pub mod redact;
pub mod responses;
pub mod sse;
pub mod wire;

pub use errors::{decode_upstream_error, encode_error, stream_error_frame};

use crate::error::{Code, Error};

/// The two wire protocols, on either side of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    OpenAi,
    Anthropic,
}

/// A malformed request (client side): `invalid_request`, HTTP 400.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::InvalidRequest, msg)
}

/// Something the target cannot express: `unsupported_feature`, HTTP 400, naming both.
pub(crate) fn unsupported(what: impl std::fmt::Display, target: &str) -> Error {
    Error::new(
        Code::UnsupportedFeature,
        format!("{what} is not supported by {target}"),
    )
}

#[cfg(test)]
mod tests;
