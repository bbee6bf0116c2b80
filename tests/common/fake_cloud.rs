//! Stand-ins for the third-party clouds: a local HTTP server on a loopback port that
//! speaks the OpenAI Chat Completions API and the Anthropic Messages API as the real
//! services do — JSON shapes, SSE framing and event order, error bodies, auth headers —
//! and can fail on demand. It records what it received (headers, bodies) so tests can
//! check what Switchyard forwarded, and notices when a client hangs up mid-stream.
//!
//! Use from a test binary with `#[path = "common/fake_cloud.rs"] mod fake_cloud;`.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which API the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    OpenAi,
    Anthropic,
}

/// A failure to inject into the next matching request(s).
#[derive(Debug, Clone)]
pub enum Failure {
    /// The API's own 500 error body.
    Status500,
    /// 429 with the API's rate-limit body (and `retry-after`).
    RateLimited,
    /// 401 with the API's authentication error body.
    Unauthorized,
    /// Anthropic's 529 overloaded / OpenAI 503.
    Overloaded,
    /// Wait this long before answering at all (for client timeouts).
    Delay(Duration),
    /// A 302 to another URL (must not be followed).
    Redirect(String),
    /// 200 with a body that is not the API's JSON.
    Garbage,
    /// Stream the first content event, then drop the connection.
    DieMidStream,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

/// What the fake answers with.
#[derive(Debug, Clone)]
pub struct Script {
    /// Text of the assistant's answer, streamed in `chunks` pieces.
    pub text: String,
    /// When set and the request offered tools: call this tool with these arguments.
    pub tool_call: Option<(String, Value)>,
    /// Delay between streamed events (a slow stream is how tests see a disconnect).
    pub event_gap: Duration,
    /// Stream the text in this many events.
    pub chunks: usize,
    /// Reasoning text streamed before the answer (OpenAI-compatible `reasoning_content`,
    /// Anthropic `thinking` with a signature).
    pub thinking: Option<String>,
}

impl Default for Script {
    fn default() -> Self {
        Script {
            text: "The capital of France is Paris.".into(),
            tool_call: None,
            event_gap: Duration::ZERO,
            chunks: 3,
            thinking: None,
        }
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    failures: VecDeque<Failure>,
    script: Script,
    /// Set when a streaming response was dropped before it finished (client hung up).
    stream_dropped_at: Option<Instant>,
    streams_completed: usize,
}

#[derive(Clone)]
pub struct Fake {
    pub api: Api,
    pub base_url: String,
    /// The API key the fake accepts (`Authorization: Bearer` or `x-api-key`).
    pub key: String,
    inner: Arc<Mutex<Inner>>,
}

impl Fake {
    /// Start a fake on 127.0.0.1 with a random port, on the current Tokio runtime.
    pub async fn start(api: Api, key: &str) -> Fake {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Fake {
            api,
            base_url,
            key: key.to_string(),
            inner,
        };
        let app = Router::new()
            .route("/v1/models", get(models))
            // Behaviours picked by the base URL a provider is given (`Fake::base`).
            .route("/ok/v1/models", get(models))
            .route("/slow/v1/models", get(slow_models))
            .route("/redirect/v1/models", get(redirect_models))
            .route("/garbage/v1/models", get(garbage_models))
            .route("/v1/chat/completions", post(chat))
            .route("/v1/messages", post(messages))
            .route("/v1/messages/count_tokens", post(count_tokens))
            .fallback(not_found)
            .with_state(fake.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        fake
    }

    /// A base URL whose `/v1/models` behaves as named: `ok` (the API's list, auth
    /// checked), `slow` (answers after 3 s), `redirect` (302 to `ok`), `garbage` (HTML),
    /// anything else 404.
    pub fn base(&self, behaviour: &str) -> String {
        format!("{}/{behaviour}", self.base_url)
    }

    /// Requests that reached `{base("ok")}/v1/models`.
    pub fn ok_hits(&self) -> usize {
        self.received()
            .iter()
            .filter(|r| r.path == "/ok/v1/models")
            .count()
    }

    /// The credential header of every request, in order (`Bearer …` or the x-api-key).
    pub fn seen_keys(&self) -> Vec<String> {
        let name = match self.api {
            Api::OpenAi => "authorization",
            Api::Anthropic => "x-api-key",
        };
        self.received()
            .iter()
            .map(|r| r.header(name).unwrap_or_default())
            .collect()
    }

    pub fn fail_next(&self, f: Failure) {
        self.inner.lock().unwrap().failures.push_back(f);
    }

    pub fn set_script(&self, s: Script) {
        self.inner.lock().unwrap().script = s;
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    pub fn last(&self) -> Received {
        self.received().pop().expect("the fake received no request")
    }

    pub fn stream_dropped_at(&self) -> Option<Instant> {
        self.inner.lock().unwrap().stream_dropped_at
    }

    pub fn streams_completed(&self) -> usize {
        self.inner.lock().unwrap().streams_completed
    }

    fn record(&self, path: &str, headers: &HeaderMap, body: Value) -> (Option<Failure>, Script) {
        let mut g = self.inner.lock().unwrap();
        g.received.push(Received {
            path: path.into(),
            headers: headers.clone(),
            body,
        });
        (g.failures.pop_front(), g.script.clone())
    }

    fn authorized(&self, headers: &HeaderMap) -> bool {
        let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
        match self.api {
            Api::OpenAi => h("authorization") == format!("Bearer {}", self.key),
            Api::Anthropic => h("x-api-key") == self.key && !h("anthropic-version").is_empty(),
        }
    }
}

/// Start a fake on its own runtime thread, for tests that drive the CLI synchronously.
pub fn start_in_background(api: Api, key: &str) -> (Fake, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let fake = rt.block_on(Fake::start(api, key));
    (fake, rt)
}

// ---------------------------------------------------------------- errors in each API's shape

fn openai_error(status: StatusCode, kind: &str, code: Option<&str>, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, [("x-request-id", "req_fake")], Json(body)).into_response()
}

fn anthropic_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake"});
    (status, [("request-id", "req_fake")], Json(body)).into_response()
}

fn unauthorized(api: Api) -> Response {
    match api {
        Api::OpenAi => openai_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
        ),
        Api::Anthropic => anthropic_error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        ),
    }
}

/// The injected failure as a response, or None for "answer normally" (and DieMidStream).
async fn inject(api: Api, f: &Option<Failure>) -> Option<Response> {
    match f.as_ref()? {
        Failure::Status500 => Some(match api {
            Api::OpenAi => openai_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                None,
                "The server had an error while processing your request. Sorry about that!",
            ),
            Api::Anthropic => anthropic_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "api_error",
                "Internal server error",
            ),
        }),
        Failure::RateLimited => Some({
            let mut r = match api {
                Api::OpenAi => openai_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "requests",
                    Some("rate_limit_exceeded"),
                    "Rate limit reached for requests. Please try again in 1s.",
                ),
                Api::Anthropic => anthropic_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limit_error",
                    "Number of request tokens has exceeded your per-minute rate limit",
                ),
            };
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        }),
        Failure::Unauthorized => Some(unauthorized(api)),
        Failure::Overloaded => Some(match api {
            Api::OpenAi => openai_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                None,
                "The engine is currently overloaded.",
            ),
            Api::Anthropic => anthropic_error(
                StatusCode::from_u16(529).unwrap(),
                "overloaded_error",
                "Overloaded",
            ),
        }),
        Failure::Delay(d) => {
            tokio::time::sleep(*d).await;
            None
        }
        Failure::Redirect(to) => {
            Some((StatusCode::FOUND, [("location", to.as_str())]).into_response())
        }
        Failure::Garbage => Some(
            (
                StatusCode::OK,
                [("content-type", "application/json")],
                "<html>not json",
            )
                .into_response(),
        ),
        Failure::DieMidStream => None,
    }
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"error": {"message": "Not found", "type": "invalid_request_error", "param": null, "code": null}})))
        .into_response()
}

// ---------------------------------------------------------------- models

async fn models(State(f): State<Fake>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let (fail, _) = f.record(uri.path(), &headers, Value::Null);
    if let Some(r) = inject(f.api, &fail).await {
        return r;
    }
    if f.api == Api::Anthropic && headers.get("anthropic-version").is_none() {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "anthropic-version: header is required",
        );
    }
    if !f.authorized(&headers) {
        return unauthorized(f.api);
    }
    match f.api {
        Api::OpenAi => Json(json!({"object": "list", "data": [
            {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
            {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
            {"id": "text-embedding-3-small", "object": "model", "created": 1705948997, "owned_by": "system"}
        ]}))
        .into_response(),
        Api::Anthropic => Json(json!({"data": [
            {"type": "model", "id": "claude-sonnet-4-5", "display_name": "Claude Sonnet 4.5", "created_at": "2025-09-29T00:00:00Z"},
            {"type": "model", "id": "claude-haiku-4-5", "display_name": "Claude Haiku 4.5", "created_at": "2025-10-15T00:00:00Z"}
        ], "has_more": false, "first_id": "claude-sonnet-4-5", "last_id": "claude-haiku-4-5"}))
        .into_response(),
    }
}

async fn slow_models(State(f): State<Fake>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    f.record(uri.path(), &headers, Value::Null);
    tokio::time::sleep(Duration::from_secs(3)).await;
    Json(json!({"object": "list", "data": []})).into_response()
}

async fn redirect_models(
    State(f): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    f.record(uri.path(), &headers, Value::Null);
    (
        StatusCode::FOUND,
        [("location", f.base("ok") + "/v1/models")],
    )
        .into_response()
}

async fn garbage_models(
    State(f): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Response {
    f.record(uri.path(), &headers, Value::Null);
    (
        StatusCode::OK,
        [("content-type", "text/html")],
        "<html><body>Welcome to nginx!</body></html>",
    )
        .into_response()
}

// ---------------------------------------------------------------- streaming plumbing

/// Sends pre-rendered SSE frames with `gap` between them; notes when the receiver hangs up.
fn sse_response(f: Fake, frames: Vec<String>, gap: Duration, die_after_first: bool) -> Response {
    struct DropGuard {
        fake: Fake,
        finished: bool,
    }
    impl Drop for DropGuard {
        fn drop(&mut self) {
            let mut g = self.fake.inner.lock().unwrap();
            if self.finished {
                g.streams_completed += 1;
            } else {
                g.stream_dropped_at = Some(Instant::now());
            }
        }
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(1);
    tokio::spawn(async move {
        let mut guard = DropGuard {
            fake: f,
            finished: false,
        };
        for (i, frame) in frames.into_iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                tokio::time::sleep(gap).await;
            }
            if tx.send(Ok(frame)).await.is_err() {
                return; // the client went away: guard records the drop
            }
            if die_after_first && i >= 1 {
                let _ = tx
                    .send(Err(std::io::Error::other("connection reset by fake")))
                    .await;
                guard.finished = true; // a deliberate break, not a client hang-up
                return;
            }
        }
        // Every frame was handed to the HTTP body; dropping `tx` ends it.
        guard.finished = true;
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    Response::builder()
        .status(200)
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn split_text(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let n = n.max(1).min(chars.len().max(1));
    let per = chars.len().div_ceil(n).max(1);
    chars.chunks(per).map(|c| c.iter().collect()).collect()
}

fn offers_tools(body: &Value) -> bool {
    body["tools"].as_array().is_some_and(|t| !t.is_empty())
}

/// A rough but deterministic token count: whitespace-separated words of every text.
fn count_words(v: &Value) -> u64 {
    match v {
        Value::String(s) => s.split_whitespace().count() as u64,
        Value::Array(a) => a.iter().map(count_words).sum(),
        Value::Object(o) => o
            .iter()
            .filter(|(k, _)| *k != "type" && *k != "role")
            .map(|(_, v)| count_words(v))
            .sum(),
        _ => 0,
    }
}

// ---------------------------------------------------------------- OpenAI chat completions

/// What both generation endpoints do before answering: parse the body (recorded either
/// way), 404 on the other API's path, a planned failure, the key check. The request, its
/// script and whether to die mid-stream; or the response to send instead.
async fn admit(
    f: &Fake,
    path: &str,
    api: Api,
    headers: &HeaderMap,
    body: String,
    bad_json: fn() -> Response,
) -> Result<(Value, Script, bool), Response> {
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        f.record(path, headers, Value::String(body));
        return Err(bad_json());
    };
    let (fail, script) = f.record(path, headers, req.clone());
    if f.api != api {
        return Err(not_found().await);
    }
    let die = matches!(fail, Some(Failure::DieMidStream));
    if let Some(r) = inject(f.api, &fail).await {
        return Err(r);
    }
    if !f.authorized(headers) {
        return Err(unauthorized(f.api));
    }
    Ok((req, script, die))
}

async fn chat(State(f): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let bad_json = || {
        openai_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "We could not parse the JSON body of your request.",
        )
    };
    let path = "/v1/chat/completions";
    let (req, script, die) = match admit(&f, path, Api::OpenAi, &headers, body, bad_json).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let model = req["model"].as_str().unwrap_or("gpt-4o-mini").to_string();
    let prompt_tokens = count_words(&req["messages"]);
    let completion_tokens = script.text.split_whitespace().count() as u64;
    let tool = script.tool_call.clone().filter(|_| offers_tools(&req));
    let id = "chatcmpl-fake123";
    let created = 1_731_000_000;
    let usage = json!({
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}
    });

    if req["stream"] != json!(true) {
        let (message, finish) = match &tool {
            Some((name, args)) => (
                json!({"role": "assistant", "content": null, "refusal": null, "annotations": [],
                       "tool_calls": [{"id": "call_fake1", "type": "function", "function": {"name": name, "arguments": args.to_string()}}]}),
                "tool_calls",
            ),
            None => {
                let mut m = json!({"role": "assistant", "content": script.text, "refusal": null, "annotations": []});
                if let Some(t) = &script.thinking {
                    m["reasoning_content"] = json!(t);
                }
                (m, "stop")
            }
        };
        return Json(json!({
            "id": id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage, "service_tier": "default", "system_fingerprint": "fp_fake"
        }))
        .into_response();
    }

    let chunk = |delta: Value, finish: Value| {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
        format!("data: {c}\n\n")
    };
    let mut frames = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        Value::Null,
    )];
    if let Some(t) = &script.thinking {
        for piece in split_text(t, 2) {
            frames.push(chunk(json!({"reasoning_content": piece}), Value::Null));
        }
    }
    let finish = match &tool {
        Some((name, args)) => {
            frames[0] = chunk(
                json!({"role": "assistant", "content": null,
                "tool_calls": [{"index": 0, "id": "call_fake1", "type": "function", "function": {"name": name, "arguments": ""}}]}),
                Value::Null,
            );
            for piece in split_text(&args.to_string(), 3) {
                frames.push(chunk(
                    json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
                    Value::Null,
                ));
            }
            "tool_calls"
        }
        None => {
            for piece in split_text(&script.text, script.chunks) {
                frames.push(chunk(json!({"content": piece}), Value::Null));
            }
            "stop"
        }
    };
    frames.push(chunk(json!({}), json!(finish)));
    if req["stream_options"]["include_usage"] == json!(true) {
        let c = json!({"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
            "service_tier": "default", "system_fingerprint": "fp_fake", "choices": [], "usage": usage});
        frames.push(format!("data: {c}\n\n"));
    }
    frames.push("data: [DONE]\n\n".into());
    sse_response(f, frames, script.event_gap, die)
}

// ---------------------------------------------------------------- Anthropic messages

async fn messages(State(f): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let bad_json = || {
        anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "There was an issue with the format of your request: invalid JSON",
        )
    };
    let path = "/v1/messages";
    let (req, script, die) = match admit(&f, path, Api::Anthropic, &headers, body, bad_json).await {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    if req["max_tokens"].as_u64().is_none() {
        return anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "max_tokens: Field required",
        );
    }
    let model = req["model"]
        .as_str()
        .unwrap_or("claude-sonnet-4-5")
        .to_string();
    let input_tokens = count_words(&req["messages"]) + count_words(&req["system"]);
    let output_tokens = script.text.split_whitespace().count() as u64;
    let tool = script.tool_call.clone().filter(|_| offers_tools(&req));
    let id = "msg_01FakeXyz";

    if req["stream"] != json!(true) {
        let mut content = vec![];
        if let Some(t) = &script.thinking {
            content.push(
                json!({"type": "thinking", "thinking": t, "signature": "sig_fake_EqQBCkgIARAB"}),
            );
        }
        let stop = match &tool {
            Some((name, args)) => {
                content.push(
                    json!({"type": "tool_use", "id": "toolu_01Fake", "name": name, "input": args}),
                );
                "tool_use"
            }
            None => {
                content.push(json!({"type": "text", "text": script.text}));
                "end_turn"
            }
        };
        return Json(json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                      "output_tokens": output_tokens, "service_tier": "standard"}
        }))
        .into_response();
    }

    let ev = |name: &str, data: Value| format!("event: {name}\ndata: {data}\n\n");
    let mut frames = vec![ev(
        "message_start",
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "output_tokens": 1, "service_tier": "standard"}}}),
    )];
    let mut index = 0;
    if let Some(t) = &script.thinking {
        frames.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": "", "signature": ""}})));
        for piece in split_text(t, 2) {
            frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": piece}})));
        }
        frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": "sig_fake_EqQBCkgIARAB"}})));
        frames.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    let stop = match &tool {
        Some((name, args)) => {
            frames.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": "toolu_01Fake", "name": name, "input": {}}})));
            frames.push(ev("ping", json!({"type": "ping"})));
            frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": ""}})));
            for piece in split_text(&args.to_string(), 3) {
                frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}})));
            }
            frames.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            "tool_use"
        }
        None => {
            frames.push(ev("content_block_start", json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}})));
            frames.push(ev("ping", json!({"type": "ping"})));
            for piece in split_text(&script.text, script.chunks) {
                frames.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}})));
            }
            frames.push(ev(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": index}),
            ));
            "end_turn"
        }
    };
    frames.push(ev("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null}, "usage": {"output_tokens": output_tokens}})));
    frames.push(ev("message_stop", json!({"type": "message_stop"})));
    sse_response(f, frames, script.event_gap, die)
}

async fn count_tokens(
    State(f): State<Fake>,
    headers: HeaderMap,
    Json(req): Json<Value>,
) -> Response {
    let (fail, _) = f.record("/v1/messages/count_tokens", &headers, req.clone());
    if let Some(r) = inject(f.api, &fail).await {
        return r;
    }
    if !f.authorized(&headers) {
        return unauthorized(f.api);
    }
    Json(json!({"input_tokens": count_words(&req["messages"]) + count_words(&req["system"])}))
        .into_response()
}
