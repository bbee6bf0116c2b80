//! The endpoints. Each is decode → plan → start (with fallback) → encode, in the
//! client's protocol, plus one request-log row; the work itself lives elsewhere.

use super::backend::{self, ClientHints, Plan, Started};
use super::guards::body_too_large;
use super::log::Entry;
use super::{GatewayState, error_response};
use crate::error::{Code, Error, Result};
use crate::protocol::canonical::{Aggregator, Event, Request, Usage};
use crate::protocol::sse::Frame;
use crate::protocol::{Protocol, anthropic, openai};
use crate::routing::Target;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use std::time::Instant;

/// Which endpoint a request came in on: decides decoding and encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Chat,
    Completions,
    Messages,
}

impl Endpoint {
    fn protocol(self) -> Protocol {
        match self {
            Endpoint::Messages => Protocol::Anthropic,
            _ => Protocol::OpenAi,
        }
    }
    fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/v1/chat/completions",
            Endpoint::Completions => "/v1/completions",
            Endpoint::Messages => "/v1/messages",
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::OpenAi => "openai",
        Protocol::Anthropic => "anthropic",
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok"})).into_response()
}

pub async fn not_found(uri: axum::http::Uri) -> Response {
    let p = super::guards::protocol_of(uri.path());
    error_response(
        p,
        &Error::new(
            Code::EndpointNotFound,
            format!("no such endpoint: {}", uri.path()),
        ),
    )
}

/// Read the whole body within the limit (chunked bodies have no Content-Length to check early).
async fn read_body(state: &GatewayState, body: Body) -> Result<Bytes> {
    axum::body::to_bytes(body, state.options.body_limit)
        .await
        .map_err(|_| body_too_large(state.options.body_limit))
}

pub async fn chat_completions(
    State(s): State<GatewayState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(s, Endpoint::Chat, headers, body).await
}

pub async fn completions(
    State(s): State<GatewayState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    generate(s, Endpoint::Completions, headers, body).await
}

pub async fn messages(State(s): State<GatewayState>, headers: HeaderMap, body: Body) -> Response {
    generate(s, Endpoint::Messages, headers, body).await
}

/// What the request log needs to know, filled in as the request goes. Exactly one row
/// is written per request: by [`Trace::finish`], or — when the client hung up and the
/// handler (or the stream body) was dropped half-way — by `Drop`, as `cancelled`.
struct Trace {
    started: Instant,
    entry: Entry,
    log: Option<super::log::RequestLog>,
}

impl Trace {
    fn new(state: &GatewayState, endpoint: Endpoint) -> Self {
        Trace {
            started: Instant::now(),
            entry: Entry {
                ts: crate::store::now_ms(),
                protocol: protocol_name(endpoint.protocol()),
                endpoint: endpoint.path(),
                ..Default::default()
            },
            log: Some(state.log.clone()),
        }
    }
    fn elapsed_ms(&self) -> f64 {
        self.started.elapsed().as_secs_f64() * 1000.0
    }
    fn finish(&mut self, status: u16, error: Option<&'static str>) {
        if let Some(log) = self.log.take() {
            self.entry.status = status;
            self.entry.error_code = error;
            self.entry.latency_ms = self.elapsed_ms();
            log.record(std::mem::take(&mut self.entry));
        }
    }
    fn fail(mut self, protocol: Protocol, err: &Error) -> Response {
        let resp = error_response(protocol, err);
        self.finish(resp.status().as_u16(), Some(err.code.as_str()));
        resp
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        // 499: nginx's "client closed request"; the row says the client left, not us.
        self.finish(499, Some(Code::Cancelled.as_str()));
    }
}

async fn generate(
    state: GatewayState,
    endpoint: Endpoint,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let protocol = endpoint.protocol();
    let mut trace = Trace::new(&state, endpoint);
    let bytes = match read_body(&state, body).await {
        Ok(b) => b,
        Err(e) => return trace.fail(protocol, &e),
    };
    let decoded = match endpoint {
        Endpoint::Chat => openai::decode_chat_request(&bytes),
        Endpoint::Completions => openai::decode_completion_request(&bytes),
        Endpoint::Messages => anthropic::decode_request(&bytes),
    };
    let req = match decoded {
        Ok(r) => r,
        Err(e) => return trace.fail(protocol, &e),
    };
    trace.entry.requested_model = Some(req.model.clone());
    trace.entry.stream = req.stream;
    let plan = match backend::plan(&state, &req.model).await {
        Ok(p) => p,
        Err(e) => return trace.fail(protocol, &e),
    };
    trace.entry.rule_id = plan.rule_id;
    trace.entry.upstream_model = Some(plan.model.clone());
    if endpoint == Endpoint::Completions && !plan.target.is_local() {
        let e = Error::new(
            Code::UnsupportedFeature,
            "legacy /v1/completions is served by local models only; use /v1/chat/completions for cloud models",
        );
        return trace.fail(protocol, &e);
    }
    let hints = ClientHints {
        anthropic_beta: headers
            .get("anthropic-beta")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
    };
    let (started, fell_back) = match backend::start_with_fallback(&state, &plan, &req, &hints).await
    {
        Ok(s) => s,
        Err(e) => {
            trace.entry.backend = Some(plan.target.label().to_string());
            return trace.fail(protocol, &e);
        }
    };
    trace.entry.backend = Some(started.backend.clone());
    trace.entry.fallback = fell_back;
    let route_headers = route_headers(&plan, &started, fell_back);
    if req.stream {
        stream_response(endpoint, &req, started, trace, route_headers)
    } else {
        json_response(endpoint, started, trace, route_headers).await
    }
}

fn route_headers(
    plan: &Plan,
    started: &Started,
    fell_back: bool,
) -> Vec<(&'static str, HeaderValue)> {
    let mut h = vec![
        (
            "x-switchyard-backend",
            HeaderValue::from_str(&started.backend).unwrap_or(HeaderValue::from_static("unknown")),
        ),
        (
            "x-switchyard-rule",
            match plan.rule_id {
                Some(id) => HeaderValue::from(id),
                None => HeaderValue::from_static("none"),
            },
        ),
    ];
    if fell_back {
        h.push(("x-switchyard-fallback", HeaderValue::from_static("true")));
    }
    h
}

async fn json_response(
    endpoint: Endpoint,
    started: Started,
    mut trace: Trace,
    route_headers: Vec<(&'static str, HeaderValue)>,
) -> Response {
    let protocol = endpoint.protocol();
    let mut agg = Aggregator::new();
    let mut events = futures_util::stream::iter([started.first]).chain(started.rest);
    while let Some(ev) = events.next().await {
        if let Event::Error(e) = &ev {
            return trace.fail(protocol, &Error::from(e.clone()));
        }
        if let Err(e) = agg.push(&ev) {
            return trace.fail(protocol, &e);
        }
    }
    let resp = match agg.finish() {
        Ok(r) => r,
        Err(e) => return trace.fail(protocol, &e),
    };
    let body = match endpoint {
        Endpoint::Chat => serde_json::to_vec(&openai::encode_chat_response(&resp, unix_secs())),
        Endpoint::Completions => {
            serde_json::to_vec(&openai::encode_completion_response(&resp, unix_secs()))
        }
        Endpoint::Messages => serde_json::to_vec(&anthropic::encode_response(&resp)),
    };
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            return trace.fail(
                protocol,
                &Error::internal(format!("cannot encode the answer: {e}")),
            );
        }
    };
    trace.entry.tokens_in = resp.usage.input_tokens;
    trace.entry.tokens_out = resp.usage.output_tokens;
    trace.entry.ttfb_ms = Some(trace.elapsed_ms());
    trace.finish(200, None);
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    for (k, v) in route_headers {
        r.headers_mut().insert(k, v);
    }
    r
}

/// The client protocol's stream encoder.
enum Encoder {
    Chat(openai::stream::ChatStreamEncoder),
    Completion(openai::stream::CompletionStreamEncoder),
    Messages(anthropic::stream::StreamEncoder),
}

impl Encoder {
    fn new(endpoint: Endpoint, req: &Request) -> Self {
        match endpoint {
            Endpoint::Chat => Encoder::Chat(openai::stream::ChatStreamEncoder::new(
                req.include_usage,
                unix_secs(),
            )),
            Endpoint::Completions => Encoder::Completion(
                openai::stream::CompletionStreamEncoder::new(req.include_usage, unix_secs()),
            ),
            Endpoint::Messages => Encoder::Messages(anthropic::stream::StreamEncoder::new()),
        }
    }
    fn encode(&mut self, ev: &Event) -> Vec<Frame> {
        match self {
            Encoder::Chat(e) => e.encode(ev),
            Encoder::Completion(e) => e.encode(ev),
            Encoder::Messages(e) => e.encode_all(std::slice::from_ref(ev)),
        }
    }
}

/// The SSE body: canonical events encoded for the client as they come. It owns the
/// backend's stream, so when the client hangs up and hyper drops the body, the
/// upstream connection or the local generation is dropped with it. The request-log
/// row is written when the body ends or is dropped.
struct StreamBody {
    events: BoxStream<'static, Event>,
    encoder: Encoder,
    trace: Option<Trace>,
    usage: Usage,
    sent_first: bool,
    finished: bool,
    error: Option<&'static str>,
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if let Some(mut t) = self.trace.take() {
            t.entry.tokens_in = self.usage.input_tokens;
            t.entry.tokens_out = self.usage.output_tokens;
            // The status line went out as 200 before the first event.
            let error = match (self.finished, self.error) {
                (_, Some(code)) => Some(code),
                (false, None) => Some(Code::Cancelled.as_str()),
                (true, None) => None,
            };
            t.finish(200, error);
        }
    }
}

fn stream_response(
    endpoint: Endpoint,
    req: &Request,
    started: Started,
    trace: Trace,
    route_headers: Vec<(&'static str, HeaderValue)>,
) -> Response {
    let events = futures_util::stream::iter([started.first])
        .chain(started.rest)
        .boxed();
    let body = StreamBody {
        events,
        encoder: Encoder::new(endpoint, req),
        trace: Some(trace),
        usage: Usage::default(),
        sent_first: false,
        finished: false,
        error: None,
    };
    let stream = futures_util::stream::unfold(body, |mut b| async move {
        let mut out = Vec::with_capacity(512);
        // Wait for one event, then take every event that is already there, so that what
        // arrived together leaves in one write.
        while !b.finished {
            let next = if out.is_empty() {
                b.events.next().await
            } else {
                match b.events.next().now_or_never() {
                    Some(ev) => ev,
                    None => break,
                }
            };
            let Some(ev) = next else {
                b.finished = true; // the backend's stream ended: read by Drop
                break;
            };
            match &ev {
                Event::Usage(u) => b.usage.merge(u),
                Event::Error(e) => {
                    b.error = Some(e.code.as_str());
                    b.finished = true;
                }
                _ => {}
            }
            for f in b.encoder.encode(&ev) {
                f.write_to(&mut out);
            }
        }
        if out.is_empty() {
            return None;
        }
        if !b.sent_first {
            b.sent_first = true;
            if let Some(t) = b.trace.as_mut() {
                t.entry.ttfb_ms = Some(t.elapsed_ms());
            }
        }
        Some((Ok::<_, std::io::Error>(Bytes::from(out)), b))
    });
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    for (k, v) in route_headers {
        h.insert(k, v);
    }
    r
}

pub async fn models(State(state): State<GatewayState>) -> Response {
    let mut entries = Vec::new();
    match state.local.list().await {
        Ok(list) => {
            for m in list {
                entries.push(openai::ModelEntry {
                    id: m.name,
                    owned_by: "local".into(),
                    created: (m.created_ms / 1000) as u64,
                });
            }
        }
        Err(e) => return error_response(Protocol::OpenAi, &e),
    }
    for (name, target) in state.app.router.snapshot().exact_names() {
        if !entries.iter().any(|e| e.id == name) {
            entries.push(openai::ModelEntry {
                id: name,
                owned_by: target.label().to_string(),
                created: 0,
            });
        }
    }
    axum::Json(openai::models_list(&entries)).into_response()
}

pub async fn count_tokens(
    State(state): State<GatewayState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let protocol = Protocol::Anthropic;
    let bytes = match read_body(&state, body).await {
        Ok(b) => b,
        Err(e) => return error_response(protocol, &e),
    };
    let req = match anthropic::decode_count_tokens_request(&bytes) {
        Ok(r) => r,
        Err(e) => return error_response(protocol, &e),
    };
    let plan = match backend::plan(&state, &req.model).await {
        Ok(p) => p,
        Err(e) => return error_response(protocol, &e),
    };
    let counted: Result<u64> = match &plan.target {
        Target::Local => state.local.count_tokens(&plan.model, &req).await,
        Target::Provider { id, name } => {
            count_upstream(&state, *id, name, &plan.model, &req, &headers).await
        }
    };
    match counted {
        Ok(n) => axum::Json(anthropic::count_tokens_response(n)).into_response(),
        Err(e) => error_response(protocol, &e),
    }
}

async fn count_upstream(
    state: &GatewayState,
    id: i64,
    name: &str,
    model: &str,
    req: &Request,
    headers: &HeaderMap,
) -> Result<u64> {
    let p = state.providers.get(id).ok_or_else(|| {
        Error::new(
            Code::ProviderNotFound,
            format!("provider {name} no longer exists"),
        )
    })?;
    if p.kind != crate::settings::providers::ProviderKind::Anthropic {
        return Err(Error::new(
            Code::UnsupportedFeature,
            format!(
                "token counting is not offered by provider {name} (only local models and Anthropic count tokens)"
            ),
        ));
    }
    let mut up = req.clone();
    up.model = model.to_string();
    let wire = anthropic::encode_count_tokens_request(&up)?;
    let body = serde_json::to_vec(&wire)?;
    let mut extra = Vec::new();
    if let Some(b) = headers.get("anthropic-beta").and_then(|v| v.to_str().ok()) {
        extra.push(("anthropic-beta", b.to_string()));
    }
    let key = backend::provider_key(state, &p).await?;
    let resp = state
        .upstreams
        .post(&p, key.as_ref(), "/v1/messages/count_tokens", body, &extra)
        .await;
    drop(key);
    let resp = resp.map_err(|f| f.error)?;
    let bytes = crate::upstream::read_body(resp, state.upstreams.timeouts().idle, &p.name).await?;
    anthropic::decode_count_tokens_response(&bytes)
}
