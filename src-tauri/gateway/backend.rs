//! Where a request goes and how it gets there: the routing plan (rule → target, model
//! name, fallback), one attempt per target, and the fallback rule — retry once on the
//! rule's fallback target when the primary fails *before any byte reached the client*
//! with a connect error, a timeout, a 5xx or a 429.
//!
//! An attempt is one of two kinds. A client routed to a provider of its own protocol is
//! *relayed*: its bytes go up with only `model` changed and the upstream's bytes come
//! back ([`Started::Raw`]). Anything else is *translated*: the body is decoded once into
//! the canonical request (only when an attempt needs it) and the backend's answer comes
//! back as canonical events ([`Started::Events`]) for the client's encoder.

use super::GatewayState;
use crate::error::{Code, Error, Result};
use crate::protocol::canonical::{self, Event, Request};
use crate::protocol::passthrough::{self, Peek};
use crate::protocol::{Protocol, anthropic, openai, responses};
use crate::routing::Target;
use crate::settings::providers::ProviderKind;
use crate::upstream::breaker::Admit;
use crate::upstream::{self, Failure, ProviderEntry};
use crate::vault::SecretString;
use axum::http::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::sync::Arc;
use std::time::Instant;

/// Which endpoint a request came in on: decides decoding, encoding and what passes
/// through to which provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Completions,
    Responses,
    Embeddings,
    Messages,
    CountTokens,
}

impl Endpoint {
    pub fn protocol(self) -> Protocol {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => Protocol::Anthropic,
            _ => Protocol::OpenAi,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Embeddings => "/v1/embeddings",
            Endpoint::Messages => "/v1/messages",
            Endpoint::CountTokens => "/v1/messages/count_tokens",
        }
    }

    /// Whether a request here goes to a provider of this kind as it is. The Responses
    /// API is OpenAI's own: chat-only compatible servers get it translated to chat.
    pub fn passes_through_to(self, kind: ProviderKind) -> bool {
        use ProviderKind::*;
        match self {
            Endpoint::Messages | Endpoint::CountTokens => kind == Anthropic,
            Endpoint::Chat | Endpoint::Completions | Endpoint::Embeddings => {
                matches!(kind, OpenAi | OpenAiCompatible)
            }
            Endpoint::Responses => kind == OpenAi,
        }
    }

    fn api(self) -> passthrough::Api {
        match self {
            Endpoint::Messages | Endpoint::CountTokens => passthrough::Api::AnthropicMessages,
            Endpoint::Chat => passthrough::Api::OpenAiChat,
            Endpoint::Completions => passthrough::Api::OpenAiCompletions,
            Endpoint::Responses => passthrough::Api::OpenAiResponses,
            Endpoint::Embeddings => passthrough::Api::OpenAiEmbeddings,
        }
    }
}

/// The routing decision for one request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The matching rule, or `None` when the name went to a local model of that name.
    pub rule_id: Option<i64>,
    pub target: Target,
    /// The model name to ask the target for (the rule's rename, or the requested name);
    /// the fallback is asked for the same name.
    pub model: String,
    pub fallback: Option<Target>,
}

pub async fn plan(state: &GatewayState, requested: &str) -> Result<Plan> {
    if let Some(r) = state.app.router.route(requested) {
        return Ok(Plan {
            rule_id: Some(r.rule_id),
            target: r.target,
            model: r.model,
            fallback: r.fallback,
        });
    }
    if state.local.has(requested).await? {
        return Ok(Plan {
            rule_id: None,
            target: Target::Local,
            model: requested.to_string(),
            fallback: None,
        });
    }
    Err(Error::new(
        Code::ModelNotFound,
        format!(
            "no routing rule matches the model {requested:?} and no local model has that name; \
             `switchyard rule test {requested}` shows how it would be routed"
        ),
    ))
}

/// A Responses request decoded: what the encoder and the response store need besides
/// the canonical request.
#[derive(Debug, Clone)]
pub struct ResponsesInput {
    pub opts: responses::EncodeOptions,
    pub previous: Option<String>,
    /// This request's input items, when they are stored with the answer (`store`).
    pub items: Vec<serde_json::Value>,
    pub store: bool,
}

/// The canonical form of a client's request.
#[derive(Debug)]
pub struct Decoded {
    pub req: Request,
    pub responses: Option<ResponsesInput>,
}

/// A client's request as the backends need it: its bytes (for relaying) and, decoded
/// once on first need, its canonical form (for translating).
pub struct ClientRequest {
    pub endpoint: Endpoint,
    pub body: Bytes,
    pub peek: Peek,
    pub query: Option<String>,
    /// The client's protocol headers that may reach a same-protocol upstream: feature
    /// flags and versions, never credentials.
    pub protocol_headers: Vec<(&'static str, String)>,
    decoded: tokio::sync::OnceCell<Arc<Decoded>>,
}

/// Client headers relayed to a provider of the client's protocol.
const PROTOCOL_HEADERS: [&str; 3] = ["anthropic-version", "anthropic-beta", "openai-beta"];

impl ClientRequest {
    pub fn new(
        endpoint: Endpoint,
        body: Bytes,
        peek: Peek,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Self {
        let protocol_headers = PROTOCOL_HEADERS
            .iter()
            .filter_map(|&name| {
                let v = headers.get(name)?.to_str().ok()?;
                Some((name, v.to_string()))
            })
            .collect();
        ClientRequest {
            endpoint,
            body,
            peek,
            query: query.map(str::to_string),
            protocol_headers,
            decoded: tokio::sync::OnceCell::new(),
        }
    }

    /// The canonical request, decoded on first use (a decoding error is the client's:
    /// 400, no fallback).
    pub async fn decoded(&self, state: &GatewayState) -> Result<Arc<Decoded>> {
        self.decoded
            .get_or_try_init(|| async {
                decode(state, self.endpoint, &self.body).await.map(Arc::new)
            })
            .await
            .cloned()
    }

    /// The decoded request if some attempt decoded it.
    pub fn decoded_now(&self) -> Option<Arc<Decoded>> {
        self.decoded.get().cloned()
    }
}

async fn decode(state: &GatewayState, endpoint: Endpoint, body: &[u8]) -> Result<Decoded> {
    let req = match endpoint {
        Endpoint::Chat => openai::decode_chat_request(body)?,
        Endpoint::Completions => openai::decode_completion_request(body)?,
        Endpoint::Messages => anthropic::decode_request(body)?,
        Endpoint::CountTokens => anthropic::decode_count_tokens_request(body)?,
        Endpoint::Embeddings => {
            return Err(Error::new(
                Code::UnsupportedFeature,
                "embeddings are served by OpenAI and OpenAI-compatible providers only (no local embedding models yet)",
            ));
        }
        Endpoint::Responses => {
            let mut w = responses::parse_request(body)?;
            let items = responses::input_items(&mut w)?;
            let history = match &w.previous_response_id {
                Some(id) => super::stored::history(&state.app.db, id).await?,
                None => Vec::new(),
            };
            let (req, opts) = responses::to_canonical(&w, &history, &items)?;
            let store = w.store.unwrap_or(true);
            req.check_bounds()?;
            return Ok(Decoded {
                req,
                responses: Some(ResponsesInput {
                    opts,
                    previous: w.previous_response_id.clone(),
                    // Kept only to be stored with the answer.
                    items: if store { items } else { Vec::new() },
                    store,
                }),
            });
        }
    };
    req.check_bounds()?;
    Ok(Decoded {
        req,
        responses: None,
    })
}

/// A backend that accepted the request, with its first bytes or event already in hand
/// (so that a backend failing before it produced anything can still fall back).
pub enum Started {
    /// Canonical events for the client's encoder (a translated or local route), and the
    /// advisory fields the translation could not carry.
    Events {
        first: Event,
        rest: BoxStream<'static, Event>,
        dropped: Vec<&'static str>,
    },
    /// The upstream's own answer, for a client of the same protocol.
    Raw(Raw),
}

/// An upstream answer relayed as it is.
pub struct Raw {
    pub status: u16,
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    pub body: RawBody,
    pub api: passthrough::Api,
}

pub enum RawBody {
    Full(Bytes),
    /// An event stream: its first chunk, the rest, and the provider (named in the error
    /// the client hears if the rest breaks off).
    Stream {
        first: Bytes,
        rest: BoxStream<'static, reqwest::Result<Bytes>>,
        provider: Arc<str>,
    },
}

/// What served, and how.
pub struct Attempt {
    pub started: Started,
    pub backend: String,
}

/// Try the plan's target, then (once) its fallback. Returns what served, and — when the
/// fallback served — why the target did not: the code of its failure, or
/// `circuit_open` when its breaker skipped it without trying.
pub async fn start_with_fallback(
    state: &GatewayState,
    plan: &Plan,
    creq: &ClientRequest,
) -> Result<(Attempt, Option<&'static str>), Failure> {
    let primary = match guarded(state, &plan.target, &plan.model, creq).await {
        Ok(a) => return Ok((a, None)),
        Err(f) => f,
    };
    match (&plan.fallback, primary.retryable) {
        (Some(fb), true) => {
            let reason = primary.error.code.as_str();
            let reason = if primary.error.code == Code::ProviderCircuitOpen {
                "circuit_open"
            } else {
                reason
            };
            tracing::info!(target = %plan.target, fallback = %fb, reason, "primary failed; trying the fallback");
            guarded(state, fb, &plan.model, creq)
                .await
                .map(|a| (a, Some(reason)))
        }
        _ => Err(primary),
    }
}

/// [`start`] behind the target provider's circuit breaker: skipped while the breaker
/// is open, and its outcome recorded.
async fn guarded(
    state: &GatewayState,
    target: &Target,
    model: &str,
    creq: &ClientRequest,
) -> Result<Attempt, Failure> {
    let Target::Provider { id, name } = target else {
        return start(state, target, model, creq).await;
    };
    if let Admit::Open { retry_in } = state.breakers.admit(*id, Instant::now()) {
        let secs = retry_in.as_secs().max(1);
        let mut f = Failure::new(
            Error::new(
                Code::ProviderCircuitOpen,
                format!(
                    "provider {name} failed repeatedly; it is skipped for another {secs} s (see `switchyard provider list`)"
                ),
            ),
            true,
        );
        f.raw = Some(upstream::RawError {
            status: 503,
            headers: vec![(
                reqwest::header::RETRY_AFTER,
                reqwest::header::HeaderValue::from(secs),
            )],
            body: Bytes::new(),
        });
        return Err(f);
    }
    let out = start(state, target, model, creq).await;
    let ok = match &out {
        Ok(_) => true,
        // The provider answered (a client error is still an answer), or the failure was
        // ours (no key, a decoding error): not the provider's health.
        Err(f) => !f.retryable,
    };
    if let Some(t) = state.breakers.record(*id, ok, Instant::now()) {
        super::health::transition(state, *id, name, &t);
    }
    out
}

/// One attempt on one target.
pub async fn start(
    state: &GatewayState,
    target: &Target,
    model: &str,
    creq: &ClientRequest,
) -> Result<Attempt, Failure> {
    let (backend, events, dropped) = match target {
        Target::Local => {
            let d = creq.decoded(state).await?;
            let dropped = super::local::dropped(&d.req);
            let events = state.local.generate(model, &d.req).await.map_err(|e| {
                // A local model that fails to load or run is the local equivalent of a 5xx.
                // A busy model may be served by the fallback, like a 429 upstream.
                let retryable =
                    matches!(e.code, Code::Engine | Code::ModelInvalid | Code::ModelBusy);
                Failure::new(e, retryable)
            })?;
            ("local".to_string(), events, dropped)
        }
        Target::Provider { id, name } => {
            let p = state.providers.get(*id).ok_or_else(|| {
                Failure::from(Error::new(
                    Code::ProviderNotFound,
                    format!("provider {name} no longer exists"),
                ))
            })?;
            if creq.endpoint.passes_through_to(p.kind) {
                let raw = relay(state, &p, model, creq).await?;
                return Ok(Attempt {
                    started: Started::Raw(raw),
                    backend: name.to_string(),
                });
            }
            let d = creq.decoded(state).await?;
            let (events, dropped) = cloud(state, &p, model, &d.req).await?;
            (name.to_string(), events, dropped)
        }
    };
    let mut events = events;
    let first = match events.next().await {
        Some(Event::Error(e)) => {
            let e: Error = e.into();
            let retryable = matches!(
                e.code,
                Code::UpstreamError
                    | Code::UpstreamTimeout
                    | Code::UpstreamUnreachable
                    | Code::RateLimited
                    | Code::Engine
            );
            return Err(Failure::new(e, retryable));
        }
        Some(ev) => ev,
        None => {
            return Err(Failure::new(
                Error::new(
                    Code::UpstreamError,
                    format!("{backend} ended the answer before it began"),
                ),
                true,
            ));
        }
    };
    Ok(Attempt {
        started: Started::Events {
            first,
            rest: events,
            dropped,
        },
        backend,
    })
}

/// The provider's key, decrypted just in time (it zeroizes when the request is sent).
pub(super) async fn provider_key(
    state: &GatewayState,
    p: &ProviderEntry,
) -> Result<Option<SecretString>> {
    let (Some(sealed), Some(ctx)) = (&p.sealed_key, &p.key_context) else {
        return Ok(None);
    };
    let plain = state
        .app
        .vault
        .open(&state.app.db, ctx, sealed)
        .await
        .map_err(|e| {
            Error::new(
                e.code,
                format!("provider {}'s API key: {}", p.name, e.message),
            )
        })?;
    SecretString::from_utf8(plain).map(Some).ok_or_else(|| {
        Error::new(
            Code::VaultCorrupt,
            format!("provider {}'s API key is not text", p.name),
        )
    })
}

/// Relay the client's request to a provider of its own protocol: the same bytes with
/// `model` replaced (and, for an OpenAI chat stream, the usage report the request log
/// needs), the client's protocol headers and query string; the provider's key, never the
/// client's credentials.
pub async fn relay(
    state: &GatewayState,
    p: &Arc<ProviderEntry>,
    model: &str,
    creq: &ClientRequest,
) -> Result<Raw, Failure> {
    let force_usage = creq.endpoint == Endpoint::Chat;
    let body = creq.peek.rewrite(&creq.body, model, force_usage);
    let key = provider_key(state, p).await?;
    let resp = state
        .upstreams
        .send(
            p,
            key.as_ref(),
            reqwest::Method::POST,
            creq.endpoint.path(),
            creq.query.as_deref(),
            Some(body),
            &creq.protocol_headers,
        )
        .await;
    drop(key);
    let resp = resp.map_err(|mut f| {
        f.relayed = true;
        f
    })?;
    let status = resp.status().as_u16();
    let headers = upstream::relayed_headers(resp.headers());
    let idle = state.upstreams.timeouts().idle;
    let is_stream = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let api = creq.endpoint.api();
    if !is_stream {
        let body = upstream::read_body(resp, idle, &p.name)
            .await
            .map_err(|e| Failure::new(e, true))?;
        // Relayed as it came — but an answer that is not even JSON (a proxy's HTML
        // page, a truncated body) is the upstream failing, before the first byte: the
        // fallback may serve, and the client gets a coded error rather than garbage.
        if serde_json::from_slice::<serde::de::IgnoredAny>(&body).is_err() {
            return Err(Failure::new(
                Error::new(
                    Code::ProviderBadResponse,
                    format!(
                        "provider {} answered {status} with a body that is not JSON",
                        p.name
                    ),
                ),
                true,
            ));
        }
        return Ok(Raw {
            status,
            headers,
            body: RawBody::Full(Bytes::from(body)),
            api,
        });
    }
    let mut rest = resp.bytes_stream().boxed();
    // The first chunk before anything is committed to the client: an upstream that
    // breaks off here can still be replaced by the fallback.
    let first = loop {
        match tokio::time::timeout(idle, rest.next()).await {
            Err(_) => {
                return Err(Failure::new(
                    Error::new(
                        Code::UpstreamTimeout,
                        format!("provider {} stopped streaming before it began", p.name),
                    ),
                    true,
                ));
            }
            Ok(None) => {
                return Err(Failure::new(
                    Error::new(
                        Code::UpstreamError,
                        format!("provider {} ended the answer before it began", p.name),
                    ),
                    true,
                ));
            }
            Ok(Some(Err(e))) => return Err(upstream::transport_failure(&p.name, e)),
            Ok(Some(Ok(b))) if b.is_empty() => continue,
            Ok(Some(Ok(b))) => break b,
        }
    };
    Ok(Raw {
        status,
        headers,
        body: RawBody::Stream {
            first,
            rest,
            provider: p.name.clone(),
        },
        api,
    })
}

/// Translate a canonical request for a provider of the other protocol (or a chat-only
/// OpenAI-compatible server for a Responses client).
async fn cloud(
    state: &GatewayState,
    p: &Arc<ProviderEntry>,
    model: &str,
    req: &Request,
) -> Result<(BoxStream<'static, Event>, Vec<&'static str>), Failure> {
    // Encoded from the client's request as it is (an agent's can be megabytes: no copy),
    // with the route's model put in the upstream's body.
    let (path, body, dropped) = match p.kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            let dialect = if p.kind == ProviderKind::OpenAi {
                openai::Dialect::OpenAi
            } else {
                openai::Dialect::Compatible
            };
            let mut wire = openai::encode_chat_request(req, dialect)?;
            wire.model = model.to_string();
            // Always ask a streaming OpenAI upstream for its usage chunk: the request log
            // (and an Anthropic client's message_delta) needs the counts. The client's own
            // choice is applied by its encoder, from its request.
            if req.stream {
                wire.stream_options = Some(openai::wire::StreamOptions {
                    include_usage: Some(true),
                });
            }
            (
                "/v1/chat/completions",
                serde_json::to_vec(&wire).map_err(|e| Failure::from(Error::from(e)))?,
                openai::dropped(req),
            )
        }
        ProviderKind::Anthropic => {
            let mut wire = anthropic::encode_request(req, &anthropic::UpstreamOptions::default())?;
            wire.model = model.to_string();
            (
                "/v1/messages",
                serde_json::to_vec(&wire).map_err(|e| Failure::from(Error::from(e)))?,
                anthropic::dropped(req),
            )
        }
    };
    let key = provider_key(state, p).await?;
    let resp = state.upstreams.post(p, key.as_ref(), path, body, &[]).await;
    drop(key);
    let resp = resp?;
    let idle = state.upstreams.timeouts().idle;
    if req.stream {
        let events = upstream::sse_events(resp, p.protocol(), p.name.clone());
        return Ok((events, dropped));
    }
    let bytes = upstream::read_body(resp, idle, &p.name)
        .await
        .map_err(|e| Failure::new(e, true))?;
    let decoded = match p.kind {
        ProviderKind::Anthropic => anthropic::decode_response(&bytes),
        _ => openai::decode_chat_response(&bytes),
    };
    let resp = decoded.map_err(|e| {
        Failure::new(
            Error::new(
                Code::UpstreamError,
                format!(
                    "provider {} sent an answer we cannot read: {}",
                    p.name,
                    crate::protocol::redact::redact(&e.message, None)
                ),
            ),
            true,
        )
    })?;
    Ok((
        futures_util::stream::iter(canonical::response_to_events(&resp)).boxed(),
        dropped,
    ))
}
