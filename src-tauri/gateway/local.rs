//! The local route, behind one small trait so that handlers do not care whether a
//! model is loaded on demand by the engine (today) or handed out by the model pool
//! (later): both implement [`LocalModels`].

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

// ---------------------------------------------------------------- the engine, on demand

use crate::engine::{self, ChatMessage, GenerateRequest, ModelHandle};
use crate::error::{Code, Error};
use crate::protocol::canonical::{Block, EventBuilder, Role, StopReason, Usage};
use sea_orm::DatabaseConnection;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::OnceCell;

/// Local models loaded through the engine the first time they are asked for, and kept.
/// Loading is single-flight: concurrent first requests for one model share one load,
/// and no lock is held while a model loads, so other models are not held up.
pub struct EngineModels {
    db: DatabaseConnection,
    loaded: Mutex<HashMap<i64, Arc<OnceCell<ModelHandle>>>>,
}

/// The `LocalModels` of the app: the model registry plus the engine.
pub fn engine_models(app: &crate::app::App) -> Arc<dyn LocalModels> {
    Arc::new(EngineModels {
        db: app.db.clone(),
        loaded: Mutex::new(HashMap::new()),
    })
}

impl EngineModels {
    async fn handle(&self, name: &str) -> Result<ModelHandle> {
        let entry = crate::models::find(&self.db, name).await?.ok_or_else(|| {
            Error::new(
                Code::ModelNotFound,
                format!("no local model is named {name:?}"),
            )
        })?;
        let cell = {
            let mut map = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(entry.id).or_default().clone()
        };
        let path = std::path::PathBuf::from(&entry.path);
        let handle = cell
            .get_or_try_init(|| async move {
                tracing::info!(model = %entry.name, "loading local model");
                engine::load(&path, engine::LoadOptions::default()).await
            })
            .await?;
        let _ = crate::models::touch(&self.db, entry.id).await;
        Ok(handle.clone())
    }
}

impl LocalModels for EngineModels {
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
            let handle = self.handle(&model).await?;
            let prompt = prompt_tokens(&handle, &model, &req)?;
            let ctx = handle.info().context_length as usize;
            let room = ctx.saturating_sub(prompt.len()).max(1);
            let mut g = GenerateRequest::new(prompt);
            g.max_tokens = req.max_tokens.map(|m| m as usize).unwrap_or(room).min(room);
            g.sampling = sampling(&req)?;
            g.stop = req.stop.clone();
            if req.logprobs {
                g.logprobs = Some(req.top_logprobs.unwrap_or(0) as usize);
            }
            let generation = handle.generate(g)?;
            Ok(events(
                generation,
                format!("msg_local_{}", crate::store::now_ms()),
                model,
            ))
        })
    }

    fn count_tokens(&self, model: &str, req: &Request) -> BoxFuture<'_, Result<u64>> {
        let model = model.to_string();
        let req = req.clone();
        Box::pin(async move {
            let handle = self.handle(&model).await?;
            Ok(prompt_tokens(&handle, &model, &req)?.len() as u64)
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
    Ok(p)
}

/// The prompt as the model sees it: the chat template over the conversation (and tools),
/// or the raw text of a legacy completion.
fn prompt_tokens(handle: &ModelHandle, model: &str, req: &Request) -> Result<Vec<u32>> {
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
        return handle.tokenize(&text, true);
    }
    let (messages, tools) = chat_messages(model, req)?;
    handle.chat_prompt(&messages, tools.as_ref())
}

fn unsupported(model: &str, what: &str) -> Error {
    Error::new(
        Code::UnsupportedFeature,
        format!("the local model {model} does not take {what} content"),
    )
}

/// Canonical conversation → the messages HF chat templates expect (`role`, `content`,
/// `tool_calls`, `tool_call_id`, `reasoning_content`).
fn chat_messages(
    model: &str,
    req: &Request,
) -> Result<(Vec<ChatMessage>, Option<serde_json::Value>)> {
    let mut out = Vec::new();
    let system: Vec<&str> = req.system.iter().map(|b| b.text.as_str()).collect();
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
    let tools = (!req.tools.is_empty()).then(|| {
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

/// Engine events → canonical events. Dropping the stream cancels the generation.
fn events(g: engine::Generation, id: String, model: String) -> BoxStream<'static, Event> {
    use futures_util::StreamExt;
    struct St {
        g: engine::Generation,
        b: EventBuilder,
        queue: std::collections::VecDeque<Event>,
        done: bool,
    }
    impl Drop for St {
        fn drop(&mut self) {
            self.g.cancel.cancel();
        }
    }
    let mut b = EventBuilder::new();
    let start = b.start(id, model);
    let st = St {
        g,
        b,
        queue: [start].into(),
        done: false,
    };
    futures_util::stream::unfold(st, |mut st| async move {
        loop {
            if let Some(ev) = st.queue.pop_front() {
                return Some((ev, st));
            }
            if st.done {
                return None;
            }
            let mut out = Vec::new();
            match st.g.events.recv().await {
                Some(engine::Event::Token(t)) => st.b.text(&t.text, &mut out),
                Some(engine::Event::Done(d)) => {
                    st.b.usage(&Usage {
                        input_tokens: Some(d.usage.prompt_tokens as u64),
                        output_tokens: Some(d.usage.completion_tokens as u64),
                        cache_read_tokens: Some(d.usage.cached_prompt_tokens as u64),
                        ..Default::default()
                    });
                    let reason = match d.finish_reason {
                        engine::FinishReason::Length => StopReason::MaxTokens,
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
