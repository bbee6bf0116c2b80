//! The endpoints. Each is read → plan → start (with fallback) → answer, in the client's
//! protocol, plus one request-log row; the work itself lives elsewhere.
//!
//! An answer is either relayed (a same-protocol route: the upstream's status, headers
//! that may cross, and bytes, with usage read on the side) or encoded from canonical
//! events (a translated or local route: JSON, or SSE with keep-alives while the backend
//! is silent).

use super::backend::{self, Attempt, ClientRequest, Endpoint, Plan, Raw, RawBody, Started};
use super::guards::body_too_large;
use super::log::Entry;
use super::{GatewayState, error_response};
use crate::error::{Code, Error, Result};
use crate::protocol::canonical::{Aggregator, Event, OmitThinking, Usage};
use crate::protocol::passthrough::{self, StreamTap};
use crate::protocol::responses::stream::ResponsesEncoder;
use crate::protocol::{Protocol, anthropic, openai};
use crate::routing::Target;
use crate::tokens::verify::Client;
use crate::upstream::Failure;
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use std::time::Instant;

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

pub async fn not_found(uri: Uri) -> Response {
    let p = super::guards::protocol_of(uri.path());
    error_response(
        p,
        &Error::new(
            Code::EndpointNotFound,
            format!("no such endpoint: {}", uri.path()),
        ),
    )
}

/// How long a client may take to send its request body (a loopback client sends even
/// a 32 MiB body of images in well under a second).
const BODY_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Read the whole body within the limit (chunked bodies have no Content-Length to check
/// early) and within [`BODY_READ_TIMEOUT`], so a client trickling its body cannot hold
/// a request open for ever.
async fn read_body(state: &GatewayState, body: Body) -> Result<Bytes> {
    match tokio::time::timeout(
        BODY_READ_TIMEOUT,
        axum::body::to_bytes(body, state.options.body_limit),
    )
    .await
    {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(_)) => Err(body_too_large(state.options.body_limit)),
        Err(_) => Err(Error::new(
            Code::RequestTimeout,
            format!(
                "the request body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ),
        )),
    }
}

pub async fn chat_completions(
    State(s): State<GatewayState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    generate(s, Endpoint::Chat, client.map(|c| c.0), headers, uri, body).await
}

pub async fn completions(
    State(s): State<GatewayState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    generate(
        s,
        Endpoint::Completions,
        client.map(|c| c.0),
        headers,
        uri,
        body,
    )
    .await
}

pub async fn responses(
    State(s): State<GatewayState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    generate(
        s,
        Endpoint::Responses,
        client.map(|c| c.0),
        headers,
        uri,
        body,
    )
    .await
}

pub async fn embeddings(
    State(s): State<GatewayState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    generate(
        s,
        Endpoint::Embeddings,
        client.map(|c| c.0),
        headers,
        uri,
        body,
    )
    .await
}

pub async fn messages(
    State(s): State<GatewayState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    generate(
        s,
        Endpoint::Messages,
        client.map(|c| c.0),
        headers,
        uri,
        body,
    )
    .await
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
    fn usage(&mut self, u: &Usage) {
        self.entry.tokens_in = u.input_tokens;
        self.entry.tokens_out = u.output_tokens;
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
    client: Option<Client>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let protocol = endpoint.protocol();
    let mut trace = Trace::new(&state, endpoint);
    trace.entry.client_id = client.as_ref().map(|c| c.id);
    let bytes = match read_body(&state, body).await {
        Ok(b) => b,
        Err(e) => return trace.fail(protocol, &e),
    };
    let peek = match passthrough::peek(&bytes) {
        Ok(p) => p,
        Err(e) => return trace.fail(protocol, &e),
    };
    trace.entry.requested_model = Some(peek.model.clone());
    trace.entry.stream = peek.stream;
    if let Some(Err(e)) = client.as_ref().map(|c| c.allow_model(&peek.model)) {
        return trace.fail(protocol, &e);
    }
    let plan = match backend::plan(&state, &peek.model).await {
        Ok(p) => p,
        Err(e) => return trace.fail(protocol, &e),
    };
    trace.entry.rule_id = plan.rule_id;
    trace.entry.upstream_model = Some(plan.model.clone());
    let creq = ClientRequest::new(endpoint, bytes, peek, uri.query(), &headers);
    let (attempt, fell_back) = match backend::start_with_fallback(&state, &plan, &creq).await {
        Ok(s) => s,
        Err(f) => {
            trace.entry.backend = Some(plan.target.label().to_string());
            return failure_response(trace, protocol, f);
        }
    };
    trace.entry.backend = Some(attempt.backend.clone());
    trace.entry.fallback = fell_back.is_some();
    trace.entry.fallback_reason = fell_back;
    let Attempt { started, backend } = attempt;
    match started {
        Started::Raw(raw) => {
            let headers = route_headers(&plan, &backend, fell_back, &[]);
            let hide_usage = endpoint == Endpoint::Chat && creq.peek.forces_usage();
            relay_response(raw, trace, headers, protocol, hide_usage)
        }
        Started::Events {
            first,
            rest,
            dropped,
        } => {
            // Events come only from a decoded request (translated or local routes).
            let Some(decoded) = creq.decoded_now() else {
                return trace.fail(
                    protocol,
                    &Error::internal("a translated answer without a decoded request"),
                );
            };
            let headers = route_headers(&plan, &backend, fell_back, &dropped);
            let mut events = futures_util::stream::iter([first]).chain(rest).boxed();
            if decoded.req.thinking_display.as_deref() == Some("omitted") {
                let mut f = OmitThinking::default();
                events = events
                    .filter(move |e| std::future::ready(f.keep(e)))
                    .boxed();
            }
            let store = store_ctx(&state, &decoded, &plan.model);
            let encoder = Encoder::new(endpoint, &decoded);
            if decoded.req.stream {
                stream_response(&state, encoder, events, trace, headers, store)
            } else {
                json_response(protocol, encoder, events, trace, headers, store).await
            }
        }
    }
}

/// A failed request: the upstream's own answer for a same-protocol client (relayed
/// verbatim), else our coded error in the client's shape — with the upstream's
/// `retry-after` either way.
fn failure_response(mut trace: Trace, protocol: Protocol, f: Failure) -> Response {
    let code = f.error.code.as_str();
    if let (true, Some(raw)) = (f.relayed, &f.raw) {
        let mut r = Response::new(Body::from(raw.body.clone()));
        *r.status_mut() = StatusCode::from_u16(raw.status).unwrap_or(StatusCode::BAD_GATEWAY);
        for (k, v) in &raw.headers {
            r.headers_mut().insert(k.clone(), v.clone());
        }
        trace.finish(raw.status, Some(code));
        return r;
    }
    let mut r = error_response(protocol, &f.error);
    if let Some(raw) = &f.raw {
        for name in ["retry-after", "retry-after-ms"] {
            if let Some(v) = raw.header(name) {
                r.headers_mut().insert(name, v.clone());
            }
        }
    } else if f.error.code == Code::ModelBusy {
        // A generation takes seconds; a second is a fair first back-off.
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
    }
    trace.finish(r.status().as_u16(), Some(code));
    r
}

fn route_headers(
    plan: &Plan,
    backend: &str,
    fell_back: Option<&'static str>,
    dropped: &[&'static str],
) -> Vec<(&'static str, HeaderValue)> {
    let mut h = vec![
        (
            "x-switchyard-backend",
            HeaderValue::from_str(backend).unwrap_or(HeaderValue::from_static("unknown")),
        ),
        (
            "x-switchyard-rule",
            match plan.rule_id {
                Some(id) => HeaderValue::from(id),
                None => HeaderValue::from_static("none"),
            },
        ),
    ];
    if let Some(reason) = fell_back {
        h.push(("x-switchyard-fallback", HeaderValue::from_static("true")));
        h.push((
            "x-switchyard-fallback-reason",
            HeaderValue::from_static(reason),
        ));
    }
    if !dropped.is_empty() {
        let mut names: Vec<&str> = dropped.to_vec();
        names.dedup();
        if let Ok(v) = HeaderValue::from_str(&names.join(",")) {
            h.push(("x-switchyard-dropped", v));
        }
    }
    h
}

fn with_headers(mut r: Response, headers: Vec<(&'static str, HeaderValue)>) -> Response {
    for (k, v) in headers {
        r.headers_mut().insert(k, v);
    }
    r
}

// ---------------------------------------------------------------- relayed answers

/// The upstream's answer as it came, its usage read on the side for the request log.
fn relay_response(
    raw: Raw,
    mut trace: Trace,
    route: Vec<(&'static str, HeaderValue)>,
    protocol: Protocol,
    hide_usage: bool,
) -> Response {
    let Raw {
        status,
        headers,
        body,
        api,
    } = raw;
    let body = match body {
        RawBody::Full(bytes) => {
            trace.usage(&passthrough::usage_of_json(api, &bytes));
            trace.entry.ttfb_ms = Some(trace.elapsed_ms());
            trace.finish(status, None);
            Body::from(bytes)
        }
        RawBody::Stream {
            first,
            rest,
            provider,
        } => {
            let mut tap = StreamTap::new(api);
            if hide_usage {
                tap = tap.hide_usage_chunk();
            }
            trace.entry.ttfb_ms = Some(trace.elapsed_ms());
            let body = RelayBody {
                first: Some(first),
                rest,
                provider,
                tap,
                trace: Some(trace),
                status,
                protocol,
                done: false,
                failed: None,
            };
            // Boxed, as `unfold` moves its state in and out of a future for every chunk.
            Body::from_stream(futures_util::stream::unfold(Box::new(body), relay_next))
        }
    };
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    for (k, v) in headers {
        r.headers_mut().insert(k, v);
    }
    with_headers(r, route)
}

/// A relayed event stream. It owns the upstream body: a client that hangs up drops the
/// upstream connection with it. Its request-log row is written when it ends or is dropped.
struct RelayBody {
    first: Option<Bytes>,
    rest: BoxStream<'static, reqwest::Result<Bytes>>,
    provider: std::sync::Arc<str>,
    tap: StreamTap,
    trace: Option<Trace>,
    status: u16,
    protocol: Protocol,
    done: bool,
    failed: Option<&'static str>,
}

async fn relay_next(mut b: Box<RelayBody>) -> Option<(std::io::Result<Bytes>, Box<RelayBody>)> {
    if let Some(first) = b.first.take() {
        let out = b.tap.push(first);
        return Some((Ok(out), b));
    }
    if b.done {
        return None;
    }
    loop {
        match b.rest.next().await {
            Some(Ok(chunk)) => {
                let out = b.tap.push(chunk);
                if out.is_empty() {
                    continue;
                }
                return Some((Ok(out), b));
            }
            Some(Err(e)) => {
                // The upstream broke off or went silent mid-stream: the status line is
                // sent, so the client hears it in-band, in its protocol's error shape.
                b.done = true;
                let err = crate::upstream::mid_stream_failure(&b.provider, &e);
                b.failed = Some(err.code.as_str());
                let frame = crate::protocol::stream_error_frame(b.protocol, &err);
                return Some((Ok(Bytes::from(frame.to_bytes())), b));
            }
            None => {
                b.done = true;
                return None;
            }
        }
    }
}

impl Drop for RelayBody {
    fn drop(&mut self) {
        if let Some(mut t) = self.trace.take() {
            t.usage(&self.tap.usage);
            let error = match (self.failed, self.tap.error, self.done) {
                (Some(code), _, _) => Some(code),
                (None, Some(code), _) => Some(code.as_str()),
                (None, None, false) => Some(Code::Cancelled.as_str()),
                (None, None, true) => None,
            };
            t.finish(self.status, error);
        }
    }
}

// ---------------------------------------------------------------- translated answers

/// Where a Responses answer is stored when it completes (`store` not false).
/// The decoded request is shared, not copied: an agent's input can be megabytes.
struct StoreCtx {
    db: sea_orm::DatabaseConnection,
    decoded: std::sync::Arc<backend::Decoded>,
    model: String,
}

fn store_ctx(
    state: &GatewayState,
    d: &std::sync::Arc<backend::Decoded>,
    model: &str,
) -> Option<StoreCtx> {
    d.responses.as_ref().filter(|r| r.store)?;
    Some(StoreCtx {
        db: state.app.db.clone(),
        decoded: d.clone(),
        model: model.to_string(),
    })
}

impl StoreCtx {
    async fn save(&self, enc: &ResponsesEncoder) {
        let Some(r) = &self.decoded.responses else {
            return;
        };
        if let Err(e) = super::stored::save(
            &self.db,
            enc.id(),
            r.previous.as_deref(),
            &self.model,
            &r.items,
            &enc.output_json(),
        )
        .await
        {
            tracing::warn!(error = %e, "could not store the response");
        }
    }
}

/// A new response id: `resp_` and 24 random hex digits. The random bytes come from the
/// system generator in blocks (one `getrandom` per [`ID_BLOCK`] / 12 ids, not one per
/// request: on a busy gateway the syscall showed in profiles).
fn response_id() -> String {
    use std::cell::RefCell;
    thread_local! {
        static POOL: RefCell<(Vec<u8>, usize)> = const { RefCell::new((Vec::new(), 0)) };
    }
    let mut b = [0u8; 12];
    POOL.with_borrow_mut(|(buf, at)| {
        if *at + b.len() > buf.len() {
            use ring::rand::SecureRandom;
            buf.resize(ID_BLOCK, 0);
            // The system generator does not fail on Linux or macOS; if it ever did,
            // fall back to a fresh generator call per id rather than reuse bytes.
            if ring::rand::SystemRandom::new().fill(buf).is_err() {
                buf.clear();
                let _ = ring::rand::SystemRandom::new().fill(&mut b);
                return;
            }
            *at = 0;
        }
        b.copy_from_slice(&buf[*at..*at + 12]);
        // Used bytes are wiped so that nothing left in memory repeats an issued id.
        buf[*at..*at + 12].fill(0);
        *at += 12;
    });
    let mut id = String::with_capacity(5 + 24);
    id.push_str("resp_");
    for x in b {
        id.push(HEX[(x >> 4) as usize] as char);
        id.push(HEX[(x & 15) as usize] as char);
    }
    id
}

const ID_BLOCK: usize = 12 * 32;
const HEX: &[u8; 16] = b"0123456789abcdef";

/// The client protocol's encoder.
enum Encoder {
    Chat(openai::stream::ChatStreamEncoder),
    Completion(openai::stream::CompletionStreamEncoder),
    Messages(anthropic::stream::StreamEncoder),
    Responses(Box<ResponsesEncoder>),
}

impl Encoder {
    fn new(endpoint: Endpoint, d: &backend::Decoded) -> Self {
        let req = &d.req;
        match endpoint {
            Endpoint::Completions => Encoder::Completion(
                openai::stream::CompletionStreamEncoder::new(req.include_usage, unix_secs()),
            ),
            Endpoint::Messages | Endpoint::CountTokens => {
                Encoder::Messages(anthropic::stream::StreamEncoder::new())
            }
            Endpoint::Responses => Encoder::Responses(Box::new(ResponsesEncoder::new(
                response_id(),
                unix_secs(),
                d.responses
                    .as_ref()
                    .map(|r| r.opts.clone())
                    .unwrap_or_default(),
            ))),
            Endpoint::Chat | Endpoint::Embeddings => Encoder::Chat(
                openai::stream::ChatStreamEncoder::new(req.include_usage, unix_secs()),
            ),
        }
    }

    /// Encode the events that arrived together into `out`, in wire form. Anthropic's
    /// `message_start` waits for the end of the batch, so the input usage a backend
    /// reports right after its start lands in it.
    fn encode(&mut self, events: &[Event], out: &mut Vec<u8>) {
        match self {
            Encoder::Chat(e) => events.iter().for_each(|ev| e.encode_to(ev, out)),
            Encoder::Completion(e) => events.iter().for_each(|ev| e.encode_to(ev, out)),
            Encoder::Messages(e) => e.encode_all_to(events, out),
            Encoder::Responses(e) => events.iter().for_each(|ev| e.encode_to(ev, out)),
        }
    }

    /// Room for the first batch's text: a Responses stream opens with two copies of
    /// the response object.
    fn first_capacity(&self) -> usize {
        match self {
            Encoder::Responses(_) => 4096,
            _ => 1024,
        }
    }

    /// What is sent while the backend is silent (a long local prefill, a model thinking)
    /// so that clients with idle timeouts stay: Anthropic's `ping` event, an SSE comment
    /// for OpenAI clients.
    fn keepalive(&self) -> Bytes {
        match self {
            Encoder::Messages(_) => Bytes::from(anthropic::stream::ping_frame().to_bytes()),
            _ => Bytes::from_static(b": keep-alive\n\n"),
        }
    }
}

async fn json_response(
    protocol: Protocol,
    encoder: Encoder,
    mut events: BoxStream<'static, Event>,
    mut trace: Trace,
    route: Vec<(&'static str, HeaderValue)>,
    store: Option<StoreCtx>,
) -> Response {
    let body = if let Encoder::Responses(enc) = encoder {
        // Only the response object is wanted: no event frames are made.
        let mut enc = enc.silent();
        let mut usage = Usage::default();
        while let Some(ev) = events.next().await {
            if let Event::Error(e) = &ev {
                return trace.fail(protocol, &Error::from(e.clone()));
            }
            if let Event::Usage(u) = &ev {
                usage.merge(u);
            }
            enc.encode(&ev);
        }
        if !enc.succeeded() {
            return trace.fail(
                protocol,
                &Error::new(
                    Code::UpstreamError,
                    "the backend ended the answer before it was complete",
                ),
            );
        }
        if let Some(s) = &store {
            s.save(&enc).await;
        }
        trace.usage(&usage);
        Ok(enc.response_text().into_bytes())
    } else {
        let mut agg = Aggregator::new();
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
        trace.usage(&resp.usage);
        match encoder {
            Encoder::Completion(_) => {
                serde_json::to_vec(&openai::encode_completion_response(&resp, unix_secs()))
            }
            Encoder::Messages(_) => serde_json::to_vec(&anthropic::encode_response(&resp)),
            _ => serde_json::to_vec(&openai::encode_chat_response(&resp, unix_secs())),
        }
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
    trace.entry.ttfb_ms = Some(trace.elapsed_ms());
    trace.finish(200, None);
    let r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    with_headers(r, route)
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
    keepalive: std::time::Duration,
    store: Option<StoreCtx>,
    /// Room to make for the next batch's text: what the last one took.
    capacity: usize,
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        if let Some(mut t) = self.trace.take() {
            t.usage(&self.usage);
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

async fn stream_next(mut b: Box<StreamBody>) -> Option<(std::io::Result<Bytes>, Box<StreamBody>)> {
    let mut batch: Vec<Event> = Vec::new();
    // Wait for one event (sending keep-alives while the backend is silent), then take
    // every event that is already there, so that what arrived together leaves in one
    // write.
    while !b.finished {
        let next = if batch.is_empty() {
            match tokio::time::timeout(b.keepalive, b.events.next()).await {
                Ok(ev) => ev,
                Err(_) => return Some((Ok(b.encoder.keepalive()), b)),
            }
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
        batch.push(ev);
    }
    if batch.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(b.capacity);
    b.encoder.encode(&batch, &mut out);
    b.capacity = out.len().max(256);
    // A stored response is saved before its last event leaves: a client may name it
    // in its next request at once.
    if let (Encoder::Responses(enc), Some(store)) = (&b.encoder, &b.store)
        && enc.succeeded()
    {
        store.save(enc).await;
        b.store = None;
    }
    if !b.sent_first && !out.is_empty() {
        b.sent_first = true;
        if let Some(t) = b.trace.as_mut() {
            t.entry.ttfb_ms = Some(t.elapsed_ms());
        }
    }
    Some((Ok(Bytes::from(out)), b))
}

fn stream_response(
    state: &GatewayState,
    encoder: Encoder,
    events: BoxStream<'static, Event>,
    trace: Trace,
    route: Vec<(&'static str, HeaderValue)>,
    store: Option<StoreCtx>,
) -> Response {
    let body = StreamBody {
        capacity: encoder.first_capacity(),
        events,
        encoder,
        trace: Some(trace),
        usage: Usage::default(),
        sent_first: false,
        finished: false,
        error: None,
        keepalive: state.options.keepalive,
        store,
    };
    // Boxed, as `unfold` moves its state in and out of a future for every batch.
    let mut r = Response::new(Body::from_stream(futures_util::stream::unfold(
        Box::new(body),
        stream_next,
    )));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    with_headers(r, route)
}

// ---------------------------------------------------------------- models

/// Whether the client speaks Anthropic (its SDKs send `anthropic-version`).
pub(super) fn wants_anthropic(headers: &HeaderMap) -> bool {
    headers.contains_key("anthropic-version")
}

fn model_json(m: &super::models::Listed, anthropic: bool) -> serde_json::Value {
    if anthropic {
        serde_json::json!({
            "type": "model",
            "id": m.id,
            "display_name": m.display_name.clone().unwrap_or_else(|| m.id.clone()),
            "created_at": super::models::rfc3339(m.created),
        })
    } else {
        serde_json::json!({"id": m.id, "object": "model", "created": m.created, "owned_by": m.owned_by})
    }
}

pub async fn models(
    State(state): State<GatewayState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
) -> Response {
    let anthropic = wants_anthropic(&headers);
    let protocol = if anthropic {
        Protocol::Anthropic
    } else {
        Protocol::OpenAi
    };
    let mut list = match super::models::list(&state).await {
        Ok(l) => l,
        Err(e) => return error_response(protocol, &e),
    };
    if let Some(Extension(c)) = &client {
        list.retain(|m| c.may_use(&m.id));
    }
    let data: Vec<serde_json::Value> = list.iter().map(|m| model_json(m, anthropic)).collect();
    let body = if anthropic {
        serde_json::json!({
            "data": data,
            "has_more": false,
            "first_id": list.first().map(|m| m.id.clone()),
            "last_id": list.last().map(|m| m.id.clone()),
        })
    } else {
        serde_json::json!({"object": "list", "data": data})
    };
    axum::Json(body).into_response()
}

pub async fn model(
    State(state): State<GatewayState>,
    client: Option<Extension<Client>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let anthropic = wants_anthropic(&headers);
    let protocol = if anthropic {
        Protocol::Anthropic
    } else {
        Protocol::OpenAi
    };
    let list = match super::models::list(&state).await {
        Ok(l) => l,
        Err(e) => return error_response(protocol, &e),
    };
    if let Some(Err(e)) = client.as_ref().map(|c| c.allow_model(&id)) {
        return error_response(protocol, &e);
    }
    match list.iter().find(|m| m.id == id) {
        Some(m) => axum::Json(model_json(m, anthropic)).into_response(),
        None => error_response(
            protocol,
            &Error::new(
                Code::ModelNotFound,
                format!(
                    "no model {id:?} is listed here; `switchyard rule test {id}` shows how the name would be routed"
                ),
            ),
        ),
    }
}

// ---------------------------------------------------------------- count_tokens

pub async fn count_tokens(
    State(state): State<GatewayState>,
    client: Option<Extension<Client>>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Response {
    let protocol = Protocol::Anthropic;
    let bytes = match read_body(&state, body).await {
        Ok(b) => b,
        Err(e) => return error_response(protocol, &e),
    };
    let peek = match passthrough::peek(&bytes) {
        Ok(p) => p,
        Err(e) => return error_response(protocol, &e),
    };
    if let Some(Err(e)) = client.as_ref().map(|c| c.allow_model(&peek.model)) {
        return error_response(protocol, &e);
    }
    let plan = match backend::plan(&state, &peek.model).await {
        Ok(p) => p,
        Err(e) => return error_response(protocol, &e),
    };
    let creq = ClientRequest::new(Endpoint::CountTokens, bytes, peek, uri.query(), &headers);
    match &plan.target {
        Target::Local => {
            let counted = async {
                let d = creq.decoded(&state).await?;
                state.local.count_tokens(&plan.model, &d.req).await
            }
            .await;
            match counted {
                Ok(n) => axum::Json(anthropic::count_tokens_response(n)).into_response(),
                Err(e) => error_response(protocol, &e),
            }
        }
        Target::Provider { id, name } => {
            let Some(p) = state.providers.get(*id) else {
                return error_response(
                    protocol,
                    &Error::new(
                        Code::ProviderNotFound,
                        format!("provider {name} no longer exists"),
                    ),
                );
            };
            if !Endpoint::CountTokens.passes_through_to(p.kind) {
                return error_response(
                    protocol,
                    &Error::new(
                        Code::UnsupportedFeature,
                        format!(
                            "token counting is not offered by provider {name} (only local models and Anthropic count tokens)"
                        ),
                    ),
                );
            }
            let trace = Trace {
                started: Instant::now(),
                entry: Entry::default(),
                log: None,
            };
            match backend::relay(&state, &p, &plan.model, &creq).await {
                Ok(raw) => relay_response(raw, trace, vec![], protocol, false),
                Err(f) => failure_response(trace, protocol, f),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn response_ids_are_well_formed_and_do_not_repeat_across_random_blocks() {
        let n = ID_BLOCK / 12 * 3 + 5;
        let ids: std::collections::HashSet<String> = (0..n).map(|_| response_id()).collect();
        assert_eq!(ids.len(), n, "an id repeated");
        for id in &ids {
            let hex = id.strip_prefix("resp_").expect("resp_ prefix");
            assert_eq!(hex.len(), 24, "{id}");
            assert!(hex.bytes().all(|c| HEX.contains(&c)), "{id}");
        }
        // Another thread draws from its own block, not a copy of this one's.
        let other: Vec<String> =
            std::thread::spawn(move || (0..n).map(|_| response_id()).collect())
                .join()
                .unwrap();
        assert!(other.iter().all(|id| !ids.contains(id)));
    }
}
