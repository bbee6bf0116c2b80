//! The local route, behind one small trait so that handlers do not care how a local
//! model is found and loaded: the model pool (`crate::pool`) implements [`LocalModels`].

use crate::error::Result;
use crate::protocol::canonical::{Event, Request};
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;

/// A local model as `/v1/models` lists it.
#[derive(Debug, Clone)]
pub struct LocalModelInfo {
    pub name: String,
    pub created_ms: i64,
}

pub trait LocalModels: Send + Sync + 'static {
    /// The registered local models.
    fn list(&self) -> BoxFuture<'_, Result<Vec<LocalModelInfo>>>;

    /// Whether a local model of this name exists (unmatched names go there).
    fn has(&self, name: &str) -> BoxFuture<'_, Result<bool>>;

    /// Generate a reply: a canonical event stream (see `protocol::canonical::Event`).
    /// Dropping the stream cancels the generation between two tokens. Fails with
    /// `model_not_found` for an unknown name, `context_length_exceeded`,
    /// `unsupported_feature` (e.g. images for a text-only model), `engine_error`.
    fn generate(
        &self,
        model: &str,
        req: &Request,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Event>>>;

    /// The exact prompt token count of `req` for `model` (its chat template applied).
    fn count_tokens(&self, model: &str, req: &Request) -> BoxFuture<'_, Result<u64>>;
}

// ---------------------------------------------------------------- the model pool

use crate::engine::{
    self, ChatMessage, GenerateRequest, HarmonyParser, ModelHandle, Part, Piece, ThinkParser,
    ToolCallParser, harmony,
};
use crate::error::{Code, Error};
use crate::pool::Pool;
use crate::protocol::canonical::{
    Block, EventBuilder, ResponseFormat, Role, StopReason, ThinkingConfig, TokenLogprob,
    ToolChoice, TopLogprob, Usage,
};

impl LocalModels for Pool {
    fn list(&self) -> BoxFuture<'_, Result<Vec<LocalModelInfo>>> {
        Box::pin(async move {
            Ok(crate::models::list(&self.db)
                .await?
                .into_iter()
                .map(|m| LocalModelInfo {
                    name: m.name,
                    created_ms: m.created_at,
                })
                .collect())
        })
    }

    fn has(&self, name: &str) -> BoxFuture<'_, Result<bool>> {
        let name = name.to_string();
        Box::pin(async move { Ok(crate::models::find(&self.db, &name).await?.is_some()) })
    }

    fn generate(
        &self,
        model: &str,
        req: &Request,
    ) -> BoxFuture<'_, Result<BoxStream<'static, Event>>> {
        let model = model.to_string();
        let req = req.clone();
        Box::pin(async move {
            let lease = self.acquire(&model).await?;
            let (handle, req, (prompt, in_think)) =
                prompt_off_executor(lease.handle.clone(), model.clone(), req).await?;
            let ctx = lease.context as usize;
            if prompt.len() >= ctx {
                return Err(Error::new(
                    Code::ContextLengthExceeded,
                    format!(
                        "the prompt is {} tokens; {model} has a context of {ctx} tokens",
                        prompt.len()
                    ),
                ));
            }
            let room = ctx - prompt.len();
            let mut g = GenerateRequest::new(prompt);
            g.max_tokens = req.max_tokens.map(|m| m as usize).unwrap_or(room).min(room);
            g.sampling = sampling(&req)?;
            g.stop = req.stop.clone();
            if req.logprobs {
                g.logprobs = Some(req.top_logprobs.unwrap_or(0) as usize);
            }
            let offered = offered_tools(&req)?;
            let readers = if handle.harmony() && !req.raw_prompt {
                // Harmony carries reasoning, answer and calls in one structure.
                Readers {
                    harmony: Some(HarmonyParser::new(offered.unwrap_or_default())),
                    ..Readers::default()
                }
            } else {
                Readers {
                    think: (handle.thinks() && !req.raw_prompt).then(|| ThinkParser::new(in_think)),
                    tools: offered
                        .zip(handle.tool_call_format())
                        .map(|(names, format)| ToolCallParser::new(format, names)),
                    harmony: None,
                }
            };
            let prompt_len = g.prompt.len();
            let generation = handle.generate(g)?;
            let token_text = move |id: u32| handle.detokenize(&[id]).unwrap_or_default();
            // The lease rides with the stream: the model is busy (never unloaded) until
            // the client has its last event or leaves.
            use futures_util::StreamExt;
            Ok(events(
                generation,
                Box::new(token_text),
                readers,
                format!("msg_local_{}", crate::store::now_ms()),
                model,
                prompt_len,
            )
            .map(move |e| {
                let _busy = &lease;
                e
            })
            .boxed())
        })
    }

    fn count_tokens(&self, model: &str, req: &Request) -> BoxFuture<'_, Result<u64>> {
        let model = model.to_string();
        let req = req.clone();
        Box::pin(async move {
            let lease = self.acquire(&model).await?;
            Ok(prompt_off_executor(lease.handle.clone(), model, req)
                .await?
                .2
                .0
                .len() as u64)
        })
    }
}

fn sampling(req: &Request) -> Result<engine::SamplingParams> {
    let s = &req.sampling;
    let mut p = engine::SamplingParams {
        // An absent temperature means the OpenAI/Anthropic default of 1.0; an explicit 0 is greedy.
        temperature: s.temperature.unwrap_or(1.0) as f32,
        ..Default::default()
    };
    if let Some(t) = s.top_p {
        p.top_p = t as f32;
    }
    if let Some(k) = s.top_k {
        p.top_k = k as usize;
    }
    if let Some(seed) = s.seed {
        p.seed = Some(seed as u64);
    }
    if s.presence_penalty.is_some_and(|v| v != 0.0) || s.frequency_penalty.is_some_and(|v| v != 0.0)
    {
        return Err(Error::new(
            Code::UnsupportedFeature,
            "presence_penalty / frequency_penalty are not supported by local models",
        ));
    }
    // Local generation is not constrained by a schema; promising JSON and not keeping
    // the promise would be worse than saying so.
    if matches!(
        req.response_format,
        Some(ResponseFormat::JsonObject | ResponseFormat::JsonSchema { .. })
    ) {
        return Err(Error::new(
            Code::UnsupportedFeature,
            "response_format json_object / json_schema is not supported by local models",
        ));
    }
    Ok(p)
}

/// [`prompt_tokens`] on the blocking pool: rendering a model's chat template and
/// tokenizing a long conversation take milliseconds to seconds of CPU (a hostile
/// template up to its sandbox's fuel), which must never stall the executor threads that
/// serve every other request.
async fn prompt_off_executor(
    handle: ModelHandle,
    model: String,
    req: Request,
) -> Result<(ModelHandle, Request, (Vec<u32>, bool))> {
    tokio::task::spawn_blocking(move || {
        let out = prompt_tokens(&handle, &model, &req);
        out.map(|p| (handle, req, p))
    })
    .await
    .map_err(|e| Error::internal(format!("prompt rendering stopped: {e}")))?
}

/// The prompt as the model sees it: the chat template over the conversation (and tools),
/// or the raw text of a legacy completion; and whether it leaves the model inside a
/// `<think>` block. An Anthropic `thinking` setting becomes the template's
/// `enable_thinking`; a model that does not reason simply answers (a thinking budget is
/// an upper bound, so an answer without reasoning keeps the contract). The request's
/// effort (`reasoning_effort`, `reasoning.effort`, `output_config.effort`) becomes the
/// template's `reasoning_effort` (gpt-oss: low, medium or high).
fn prompt_tokens(handle: &ModelHandle, model: &str, req: &Request) -> Result<(Vec<u32>, bool)> {
    if req.raw_prompt {
        let text = req
            .messages
            .iter()
            .flat_map(|m| m.content.iter())
            .map(|b| match b {
                Block::Text { text, .. } => Ok(text.as_str()),
                other => Err(unsupported(model, other.kind())),
            })
            .collect::<Result<Vec<_>>>()?
            .concat();
        return Ok((handle.tokenize(&text, true)?, false));
    }
    let (mut messages, tools) = chat_messages(model, req)?;
    // A final assistant message is a prefill: the model continues its text (Anthropic's
    // semantics), rather than answering in a new turn after it.
    let prefill = match req.messages.last() {
        Some(m) if m.role == Role::Assistant => {
            let mut text = String::new();
            for b in &m.content {
                match b {
                    Block::Text { text: t, .. } => text.push_str(t),
                    Block::Thinking { .. } | Block::RedactedThinking { .. } => {}
                    other => {
                        return Err(Error::new(
                            Code::UnsupportedFeature,
                            format!(
                                "the local model {model} cannot continue a final assistant message that holds {} content",
                                other.kind()
                            ),
                        ));
                    }
                }
            }
            messages.pop();
            Some(text)
        }
        _ => None,
    };
    let enable_thinking = match req.thinking {
        Some(ThinkingConfig::Enabled { .. }) => Some(true),
        Some(ThinkingConfig::Disabled) => Some(false),
        // The model decides: its template's own default.
        Some(ThinkingConfig::Adaptive) => None,
        None => None,
    };
    // gpt-oss's template takes low / medium / high.
    let reasoning_effort = req.reasoning_effort.as_deref().map(|e| match e {
        "none" | "minimal" | "low" => "low",
        "high" | "xhigh" | "max" => "high",
        _ => "medium",
    });
    let switches = engine::PromptSwitches {
        enable_thinking,
        reasoning_effort,
    };
    let (mut ids, in_think) = handle.chat_prompt_with(&messages, tools.as_ref(), switches)?;
    if let Some(text) = prefill.filter(|t| !t.is_empty()) {
        ids.extend(handle.tokenize(&text, false)?);
    }
    Ok((ids, in_think))
}

/// Advisory fields a local model cannot carry, for `x-switchyard-dropped`: hints for a
/// cloud's cache, account or capacity, and how hard to think (a local model reasons as
/// its template says).
pub fn dropped(req: &Request) -> Vec<&'static str> {
    let mut out = req.dropped.clone();
    if req.has_cache_control() {
        out.push("cache_control");
    }
    if req.user.is_some() {
        out.push("user");
    }
    if req.reasoning_effort.is_some() {
        out.push("effort");
    }
    if req.verbosity.is_some() {
        out.push("verbosity");
    }
    if req.parallel_tool_calls == Some(false) {
        out.push("parallel_tool_calls");
    }
    out
}

/// The names of the tools the model is offered: none for `tool_choice: none`. A local
/// model cannot be forced to call a tool, so `required` / a named tool is refused rather
/// than quietly treated as `auto`.
fn offered_tools(req: &Request) -> Result<Option<Vec<String>>> {
    if req.tools.is_empty() {
        return Ok(None);
    }
    match &req.tool_choice {
        Some(ToolChoice::None) => Ok(None),
        None | Some(ToolChoice::Auto) => {
            Ok(Some(req.tools.iter().map(|t| t.name.clone()).collect()))
        }
        Some(ToolChoice::Required | ToolChoice::Tool(_)) => Err(Error::new(
            Code::UnsupportedFeature,
            "local models cannot be forced to call a tool: use tool_choice auto (or none)",
        )),
    }
}

fn unsupported(model: &str, what: &str) -> Error {
    Error::new(
        Code::UnsupportedFeature,
        format!("the local model {model} does not take {what} content"),
    )
}

/// A system block that changes with every request and means nothing to a local model:
/// Claude Code's attribution header (`x-anthropic-billing-header: cc_version=…;
/// cch=…; cc_prompt_id=…; …`, its first system block, with per-request ids). Left in, it
/// would be the first thing the prompt says and differ each time, so no prompt would
/// ever share a prefix with the last one and the prefix cache would never help; it is
/// dropped for local models (cloud routes relay it untouched).
pub(crate) fn is_volatile_system_block(text: &str) -> bool {
    text.trim_start().starts_with("x-anthropic-billing-header:")
}

/// Canonical conversation → the messages HF chat templates expect (`role`, `content`,
/// `tool_calls`, `tool_call_id`, `reasoning_content`).
fn chat_messages(
    model: &str,
    req: &Request,
) -> Result<(Vec<ChatMessage>, Option<serde_json::Value>)> {
    let mut out = Vec::new();
    let system: Vec<&str> = req
        .system
        .iter()
        .map(|b| b.text.as_str())
        .filter(|t| !is_volatile_system_block(t))
        .collect();
    if !system.is_empty() {
        out.push(ChatMessage::new("system", system.join("\n\n")));
    }
    for m in &req.messages {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        let mut reasoning = String::new();
        for b in &m.content {
            match b {
                Block::Text { text: t, .. } => text.push_str(t),
                Block::ToolUse {
                    id, name, input, ..
                } => tool_calls.push(serde_json::json!({
                    "id": id, "type": "function", "function": {"name": name, "arguments": input}
                })),
                Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error,
                    ..
                } => {
                    let mut body = String::new();
                    for c in content {
                        match c {
                            Block::Text { text, .. } => body.push_str(text),
                            other => return Err(unsupported(model, other.kind())),
                        }
                    }
                    if *is_error {
                        body = format!("Error: {body}");
                    }
                    let mut tm = ChatMessage::new("tool", body);
                    tm.extra
                        .insert("tool_call_id".into(), serde_json::json!(tool_use_id));
                    out.push(tm);
                }
                Block::Thinking { thinking, .. } => reasoning.push_str(thinking),
                // Encrypted reasoning of a cloud model means nothing to a local one.
                Block::RedactedThinking { .. } => {}
                Block::Image { .. } => return Err(unsupported(model, "image")),
            }
        }
        if role == "tool" {
            continue; // emitted above, one message per result
        }
        let mut cm = ChatMessage::new(role, text);
        if !tool_calls.is_empty() {
            cm.extra
                .insert("tool_calls".into(), serde_json::Value::Array(tool_calls));
        }
        if !reasoning.is_empty() {
            cm.extra
                .insert("reasoning_content".into(), serde_json::json!(reasoning));
        }
        out.push(cm);
    }
    let tools = offered_tools(req)?.is_some().then(|| {
        serde_json::Value::Array(
            req.tools
                .iter()
                .map(|t| {
                    serde_json::json!({"type": "function", "function": {
                        "name": t.name,
                        "description": t.description.clone().unwrap_or_default(),
                        "parameters": t.input_schema.clone().unwrap_or_else(|| serde_json::json!({"type": "object", "properties": {}})),
                    }})
                })
                .collect(),
        )
    });
    Ok((out, tools))
}

/// How a local model's text is read: reasoning split off first, then tool calls; or,
/// for a model answering in harmony (gpt-oss), all of it by its parser.
#[derive(Debug, Default)]
struct Readers {
    think: Option<ThinkParser>,
    tools: Option<ToolCallParser>,
    harmony: Option<HarmonyParser>,
}

/// A token id's text, for logprobs.
type TokenText = Box<dyn Fn(u32) -> String + Send>;

/// Engine events → canonical events. Dropping the stream cancels the generation.
/// The text runs through the `readers`: `<think>` reasoning becomes thinking blocks and
/// the answer's tool calls tool-use blocks. Logprobs follow the text they belong to;
/// those of reasoning or of a tool call are not reported (OpenAI reports none there).
fn events(
    g: engine::Generation,
    token_text: TokenText,
    readers: Readers,
    id: String,
    model: String,
    prompt_len: usize,
) -> BoxStream<'static, Event> {
    use futures_util::StreamExt;
    struct St {
        g: engine::Generation,
        token_text: TokenText,
        id: String,
        b: EventBuilder,
        readers: Readers,
        calls: usize,
        /// Logprobs of tokens whose text has not gone out yet.
        logprobs: Vec<TokenLogprob>,
        queue: std::collections::VecDeque<Event>,
        done: bool,
    }
    impl Drop for St {
        fn drop(&mut self) {
            self.g.cancel.cancel();
        }
    }
    impl St {
        fn text(&mut self, text: &str, out: &mut Vec<Event>) {
            if let Some(p) = &mut self.readers.harmony {
                let mut outs = Vec::new();
                p.push(text, &mut outs);
                self.harmony(outs, out);
                return;
            }
            let parts = match &mut self.readers.think {
                None => vec![Part::Text(text.to_string())],
                Some(p) => {
                    let mut parts = Vec::new();
                    p.push(text, &mut parts);
                    parts
                }
            };
            self.parts(parts, out);
        }

        /// Harmony's pieces: reasoning as thinking, then text and tool calls.
        fn harmony(&mut self, outs: Vec<harmony::Out>, out: &mut Vec<Event>) {
            for o in outs {
                match o {
                    harmony::Out::Thinking(t) => self.parts(vec![Part::Thinking(t)], out),
                    harmony::Out::Text(t) => self.pieces(vec![Piece::Text(t)], out),
                    harmony::Out::Call { name, arguments } => {
                        self.pieces(vec![Piece::Call { name, arguments }], out)
                    }
                }
            }
        }

        /// The end of the text: what the readers held back.
        fn finish_text(&mut self, out: &mut Vec<Event>) {
            if let Some(p) = &mut self.readers.harmony {
                let mut outs = Vec::new();
                p.finish(&mut outs);
                self.harmony(outs, out);
                return;
            }
            let mut parts = Vec::new();
            if let Some(p) = &mut self.readers.think {
                p.finish(&mut parts);
            }
            self.parts(parts, out);
            let mut pieces = Vec::new();
            if let Some(p) = &mut self.readers.tools {
                p.finish(&mut pieces);
            }
            self.pieces(pieces, out);
        }

        fn parts(&mut self, parts: Vec<Part>, out: &mut Vec<Event>) {
            for part in parts {
                match part {
                    Part::Thinking(t) => {
                        // Logprobs are reported for the answer only.
                        self.logprobs.clear();
                        self.b.thinking(&t, out);
                    }
                    Part::Text(t) => {
                        let pieces = match &mut self.readers.tools {
                            None => vec![Piece::Text(t)],
                            Some(p) => {
                                let mut pieces = Vec::new();
                                p.push(&t, &mut pieces);
                                pieces
                            }
                        };
                        self.pieces(pieces, out);
                    }
                }
            }
        }

        fn pieces(&mut self, pieces: Vec<Piece>, out: &mut Vec<Event>) {
            for piece in pieces {
                match piece {
                    // Nothing to say yet (bytes held back): its logprobs wait for the text.
                    Piece::Text(t) if t.is_empty() => {}
                    Piece::Text(t) => {
                        self.b.text(&t, out);
                        let lp = std::mem::take(&mut self.logprobs);
                        self.b.logprobs(lp, out);
                    }
                    Piece::Call { name, arguments } => {
                        self.calls += 1;
                        self.logprobs.clear();
                        let id = format!("call_{}_{}", self.id, self.calls);
                        self.b.tool_call(&id, &name, &arguments, out);
                    }
                }
            }
        }

        fn logprob(&mut self, t: &engine::TokenEvent) {
            let Some(logprob) = t.logprob else { return };
            let token = &self.token_text;
            self.logprobs.push(TokenLogprob {
                token: token(t.token_id),
                logprob: logprob as f64,
                bytes: None,
                top_logprobs: t
                    .top_logprobs
                    .iter()
                    .map(|&(id, lp)| TopLogprob {
                        token: token(id),
                        logprob: lp as f64,
                        bytes: None,
                    })
                    .collect(),
            });
        }
    }
    let mut b = EventBuilder::new();
    let start = b.start(id.clone(), model);
    // The prompt's size is known before the first token: said at once, so that
    // Anthropic clients find it in message_start (the full usage follows at the end).
    let input = Event::Usage(Usage {
        input_tokens: Some(prompt_len as u64),
        ..Default::default()
    });
    let st = St {
        g,
        token_text,
        b,
        readers,
        calls: 0,
        logprobs: Vec::new(),
        id,
        queue: [start, input].into(),
        done: false,
    };
    // Boxed: `unfold` moves its state into a new future and back out for every event.
    futures_util::stream::unfold(Box::new(st), |mut st| async move {
        loop {
            if let Some(ev) = st.queue.pop_front() {
                return Some((ev, st));
            }
            if st.done {
                return None;
            }
            let mut out = Vec::new();
            match st.g.events.recv().await {
                Some(engine::Event::Token(t)) => {
                    st.logprob(&t);
                    st.text(&t.text, &mut out);
                }
                Some(engine::Event::Done(d)) => {
                    st.finish_text(&mut out);
                    st.b.usage(&Usage {
                        input_tokens: Some(d.usage.prompt_tokens as u64),
                        output_tokens: Some(d.usage.completion_tokens as u64),
                        cache_read_tokens: Some(d.usage.cached_prompt_tokens as u64),
                        ..Default::default()
                    });
                    let reason = match (d.finish_reason, d.stop_sequence) {
                        (engine::FinishReason::Length, _) => StopReason::MaxTokens,
                        _ if st.calls > 0 => StopReason::ToolUse,
                        (_, Some(seq)) => StopReason::StopSequence(seq),
                        _ => StopReason::EndTurn,
                    };
                    st.b.finish(reason, &mut out);
                    st.done = true;
                }
                Some(engine::Event::Error(e)) => {
                    out.push(Event::Error((&e).into()));
                    st.done = true;
                }
                None => {
                    let e = Error::new(
                        Code::Engine,
                        "the engine stopped without finishing the answer",
                    );
                    out.push(Event::Error((&e).into()));
                    st.done = true;
                }
            }
            st.queue.extend(out);
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{CancelToken, Completion, FinishReason, TokenEvent, ToolCallFormat};
    use crate::protocol::canonical::{BlockStart, Tool};
    use futures_util::StreamExt;

    fn token(id: u32, text: &str, logprob: Option<f32>) -> engine::Event {
        engine::Event::Token(TokenEvent {
            text: text.into(),
            token_id: id,
            logprob,
            top_logprobs: logprob
                .map(|l| vec![(id, l), (7, l - 1.0)])
                .unwrap_or_default(),
        })
    }

    fn done(finish_reason: FinishReason, tokens: usize) -> engine::Event {
        engine::Event::Done(Completion {
            finish_reason,
            stop_token: None,
            stop_sequence: None,
            usage: engine::Usage {
                prompt_tokens: 5,
                completion_tokens: tokens,
                ..Default::default()
            },
            timings: Default::default(),
            peak_memory_bytes: 0,
        })
    }

    /// Run engine events through `events` and collect the canonical stream.
    async fn canonical(evs: Vec<engine::Event>, readers: Readers) -> Vec<Event> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        for e in evs {
            tx.send(e).unwrap();
        }
        let g = engine::Generation {
            events: rx,
            cancel: CancelToken::new(),
        };
        let text: TokenText = Box::new(|id| format!("<{id}>"));
        events(g, text, readers, "m1".into(), "local-model".into(), 5)
            .collect()
            .await
    }

    #[test]
    fn claude_codes_per_request_attribution_block_is_not_part_of_a_local_prompt() {
        let body = serde_json::json!({
            "model": "m", "max_tokens": 8,
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.abc; cc_entrypoint=cli; cch=00000; cc_prompt_id=0b0f3a52-3c1e-4a8e-9a39-0c6c1f3b8d11;"},
                {"type": "text", "text": "You are Claude Code."},
                {"type": "text", "text": "Be brief."}
            ],
            "messages": [{"role": "user", "content": "hi"}]
        });
        let req = crate::protocol::anthropic::decode_request(body.to_string().as_bytes()).unwrap();
        let (msgs, _) = chat_messages("m", &req).unwrap();
        let system = serde_json::to_value(&msgs[0]).unwrap();
        assert_eq!(system["role"], "system");
        assert_eq!(system["content"], "You are Claude Code.\n\nBe brief.");
        // Mentioned anywhere but at the start, it is ordinary text.
        assert!(!is_volatile_system_block(
            "see x-anthropic-billing-header: docs"
        ));
        assert!(is_volatile_system_block(
            "  x-anthropic-billing-header: cch=1;"
        ));
    }

    fn tagged() -> Readers {
        Readers {
            tools: Some(ToolCallParser::new(
                ToolCallFormat::Tagged,
                vec!["add".into()],
            )),
            ..Readers::default()
        }
    }

    /// The canonical stream in short, one line per event (message start and usage left out).
    fn kinds(got: &[Event]) -> Vec<String> {
        got.iter()
            .map(|e| match e {
                Event::BlockStart { index, block } => format!("start {index} {block:?}"),
                Event::ThinkingDelta { index, thinking } => format!("thinking {index} {thinking}"),
                Event::TextDelta { index, text } => format!("text {index} {text}"),
                Event::ToolInputDelta {
                    index,
                    partial_json,
                } => format!("input {index} {partial_json}"),
                Event::BlockStop { index } => format!("stop {index}"),
                Event::Logprobs(_) => "logprobs".into(),
                Event::MessageStop { stop_reason } => format!("end {stop_reason:?}"),
                Event::MessageStart { .. } | Event::Usage(_) => String::new(),
                other => format!("{other:?}"),
            })
            .filter(|k| !k.is_empty())
            .collect()
    }

    #[tokio::test]
    async fn harmony_reasoning_answer_and_calls_become_thinking_text_and_tool_use() {
        let harmony = |tools: &[&str]| Readers {
            harmony: Some(HarmonyParser::new(
                tools.iter().map(|t| t.to_string()).collect(),
            )),
            ..Readers::default()
        };
        // As gpt-oss writes them, one control token or word per engine token.
        let call = [
            "<|channel|>",
            "analysis",
            "<|message|>",
            "Need to add.",
            "<|end|>",
            "<|start|>",
            "assistant",
            "<|channel|>",
            "commentary to=functions.add ",
            "<|constrain|>",
            "json",
            "<|message|>",
            "{\"a\": 1,",
            " \"b\": 2}",
        ];
        let evs = |texts: &[&str]| {
            let mut v: Vec<engine::Event> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| token(i as u32, t, None))
                .collect();
            v.push(done(FinishReason::Stop, texts.len()));
            v
        };
        let got = canonical(evs(&call), harmony(&["add"])).await;
        assert_eq!(
            kinds(&got),
            [
                "start 0 Thinking",
                "thinking 0 Need to add.",
                "stop 0",
                "start 1 ToolUse { id: \"call_m1_1\", name: \"add\" }",
                "input 1 {\"a\":1,\"b\":2}",
                "stop 1",
                "end ToolUse",
            ]
        );
        // A call to a tool the request did not offer is not run: its text is shown.
        let got = canonical(evs(&call), harmony(&[])).await;
        assert_eq!(
            kinds(&got)[3..],
            [
                "start 1 Text",
                "text 1 {\"a\":1,\"b\":2}",
                "stop 1",
                "end EndTurn"
            ]
        );
        let answer = [
            "<|channel|>",
            "analysis",
            "<|message|>",
            "Greet.",
            "<|end|>",
            "<|start|>",
            "assistant",
            "<|channel|>",
            "final",
            "<|message|>",
            "Hi",
            "!",
        ];
        let got = canonical(evs(&answer), harmony(&[])).await;
        assert_eq!(
            kinds(&got),
            [
                "start 0 Thinking",
                "thinking 0 Greet.",
                "stop 0",
                "start 1 Text",
                "text 1 Hi",
                "text 1 !",
                "stop 1",
                "end EndTurn",
            ]
        );
    }

    #[tokio::test]
    async fn a_tool_call_in_the_output_becomes_a_tool_use_block() {
        let evs = vec![
            token(1, "Let me add.", None),
            token(2, "<tool", None),
            token(
                3,
                "_call>{\"name\": \"add\", \"arguments\": {\"a\": 1}}",
                None,
            ),
            token(4, "</tool_call>", None),
            done(FinishReason::Stop, 4),
        ];
        let got = canonical(evs, tagged()).await;
        let usage = crate::protocol::canonical::Usage {
            input_tokens: Some(5),
            output_tokens: Some(4),
            cache_read_tokens: Some(0),
            ..Default::default()
        };
        assert_eq!(
            got,
            vec![
                Event::MessageStart {
                    id: "m1".into(),
                    model: "local-model".into()
                },
                // The prompt's size, before the first token.
                Event::Usage(crate::protocol::canonical::Usage {
                    input_tokens: Some(5),
                    ..Default::default()
                }),
                Event::BlockStart {
                    index: 0,
                    block: BlockStart::Text
                },
                Event::TextDelta {
                    index: 0,
                    text: "Let me add.".into()
                },
                Event::BlockStop { index: 0 },
                Event::BlockStart {
                    index: 1,
                    block: BlockStart::ToolUse {
                        id: "call_m1_1".into(),
                        name: "add".into()
                    }
                },
                Event::ToolInputDelta {
                    index: 1,
                    partial_json: r#"{"a":1}"#.into()
                },
                Event::BlockStop { index: 1 },
                Event::Usage(usage),
                Event::MessageStop {
                    stop_reason: StopReason::ToolUse
                },
            ]
        );
    }

    #[tokio::test]
    async fn reasoning_becomes_a_thinking_block_before_the_answer_and_its_calls() {
        let readers = Readers {
            think: Some(ThinkParser::new(false)),
            ..tagged()
        };
        let evs = vec![
            token(1, "<think>", Some(-0.1)),
            token(2, "I should add.", Some(-0.2)),
            token(3, "</think>\n\n", None),
            token(
                4,
                "<tool_call>{\"name\": \"add\", \"arguments\": {}}</tool_call>",
                None,
            ),
            done(FinishReason::Stop, 4),
        ];
        let got = canonical(evs, readers).await;
        assert_eq!(
            kinds(&got),
            [
                "start 0 Thinking",
                "thinking 0 I should add.",
                "stop 0",
                "start 1 ToolUse { id: \"call_m1_1\", name: \"add\" }",
                "input 1 {}",
                "stop 1",
                "end ToolUse",
            ]
        );
    }

    #[tokio::test]
    async fn without_a_parser_tags_are_text_and_a_cut_call_is_not_a_tool_turn() {
        let text_of = |evs: &[Event]| -> String {
            evs.iter()
                .filter_map(|e| match e {
                    Event::TextDelta { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect()
        };
        let evs = vec![
            token(1, "<tool_call>{\"name\": \"add\"}</tool_call>", None),
            done(FinishReason::Stop, 1),
        ];
        let got = canonical(evs, Readers::default()).await;
        assert_eq!(text_of(&got), "<tool_call>{\"name\": \"add\"}</tool_call>");
        assert_eq!(
            got.last(),
            Some(&Event::MessageStop {
                stop_reason: StopReason::EndTurn
            })
        );

        // max_tokens hit inside a call: the text comes out, the turn is cut short.
        let evs = vec![
            token(1, "<tool_call>{\"name\": \"ad", None),
            done(FinishReason::Length, 1),
        ];
        let got = canonical(evs, tagged()).await;
        assert_eq!(text_of(&got), "<tool_call>{\"name\": \"ad");
        assert_eq!(
            got.last(),
            Some(&Event::MessageStop {
                stop_reason: StopReason::MaxTokens
            })
        );
    }

    #[tokio::test]
    async fn a_matched_stop_string_is_reported_as_the_stop_sequence() {
        let mut end = done(FinishReason::Stop, 1);
        if let engine::Event::Done(c) = &mut end {
            c.stop_sequence = Some("END".into());
        }
        let got = canonical(vec![token(1, "Hi", None), end], Readers::default()).await;
        assert_eq!(
            got.last(),
            Some(&Event::MessageStop {
                stop_reason: StopReason::StopSequence("END".into())
            })
        );
    }

    #[tokio::test]
    async fn logprobs_follow_their_text() {
        let evs = vec![
            token(10, "Hi", Some(-0.5)),
            token(11, "", Some(-0.25)), // held back (e.g. half a character)
            token(12, "é", Some(-1.0)),
            done(FinishReason::Stop, 3),
        ];
        let got = canonical(evs, Readers::default()).await;
        let lps: Vec<(&str, Vec<(String, f64)>)> = got
            .iter()
            .filter_map(|e| match e {
                Event::Logprobs(l) => Some(l),
                _ => None,
            })
            .flat_map(|l| l.iter())
            .map(|l| {
                (
                    l.token.as_str(),
                    std::iter::once((l.token.clone(), l.logprob))
                        .chain(l.top_logprobs.iter().map(|t| (t.token.clone(), t.logprob)))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            lps,
            vec![
                (
                    "<10>",
                    vec![
                        ("<10>".into(), -0.5),
                        ("<10>".into(), -0.5),
                        ("<7>".into(), -1.5)
                    ]
                ),
                (
                    "<11>",
                    vec![
                        ("<11>".into(), -0.25),
                        ("<11>".into(), -0.25),
                        ("<7>".into(), -1.25)
                    ]
                ),
                (
                    "<12>",
                    vec![
                        ("<12>".into(), -1.0),
                        ("<12>".into(), -1.0),
                        ("<7>".into(), -2.0)
                    ]
                ),
            ]
        );
        // Each Logprobs event comes right after a text delta.
        for (i, e) in got.iter().enumerate() {
            if matches!(e, Event::Logprobs(_)) {
                assert!(matches!(got[i - 1], Event::TextDelta { .. }), "{got:?}");
            }
        }
    }

    #[test]
    fn tool_choice_decides_what_a_local_model_is_offered() {
        let mut req = Request::default();
        assert_eq!(offered_tools(&req).unwrap(), None);
        req.tools.push(Tool {
            name: "add".into(),
            description: None,
            input_schema: None,
            strict: None,
            cache_control: None,
        });
        assert_eq!(offered_tools(&req).unwrap(), Some(vec!["add".to_string()]));
        req.tool_choice = Some(ToolChoice::Auto);
        assert_eq!(offered_tools(&req).unwrap(), Some(vec!["add".to_string()]));
        req.tool_choice = Some(ToolChoice::None);
        assert_eq!(offered_tools(&req).unwrap(), None);
        for choice in [ToolChoice::Required, ToolChoice::Tool("add".into())] {
            req.tool_choice = Some(choice);
            assert_eq!(
                offered_tools(&req).unwrap_err().code,
                Code::UnsupportedFeature
            );
        }
    }
}
