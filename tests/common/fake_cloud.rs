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
    /// 401 quoting the credential the request carried, as some OpenAI-compatible
    /// servers and proxies do ("Incorrect API key provided: sk-…").
    EchoKey,
    /// 200 and a stream whose first event is an error quoting the credential.
    EchoKeyInStream,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub query: Option<String>,
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
    /// When set and the request offered tools: call this tool with these arguments —
    /// unless the conversation ends with tool results, which the answer then quotes
    /// ("Tool result: …"): one tool round trip, as an agent's turn goes.
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
    /// Random failures for requests with none queued (`Fake::chaos`).
    chaos: Option<Chaos>,
}

struct Chaos {
    percent: u64,
    kinds: Vec<Failure>,
    state: u64,
}

impl Chaos {
    /// xorshift64*: deterministic for a seed, no dependency.
    fn next(&mut self) -> u64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        self.state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick(&mut self) -> Option<Failure> {
        if self.next() % 100 >= self.percent {
            return None;
        }
        let i = (self.next() % self.kinds.len() as u64) as usize;
        Some(self.kinds[i].clone())
    }
}

#[derive(Clone)]
pub struct Fake {
    pub api: Api,
    pub base_url: String,
    /// The API key the fake accepts (`Authorization: Bearer` or `x-api-key`).
    pub key: String,
    /// An OpenAI-compatible server (vLLM, llama.cpp…) rather than OpenAI itself: chat
    /// only (no `/v1/responses`), and it takes the common sampling extensions (`top_k`…).
    pub compat: bool,
    inner: Arc<Mutex<Inner>>,
}

impl Fake {
    /// Start a fake on 127.0.0.1 with a random port, on the current Tokio runtime.
    pub async fn start(api: Api, key: &str) -> Fake {
        Fake::start_flavour(api, key, false).await
    }

    /// A chat-only OpenAI-compatible server.
    pub async fn start_compatible(key: &str) -> Fake {
        Fake::start_flavour(Api::OpenAi, key, true).await
    }

    async fn start_flavour(api: Api, key: &str, compat: bool) -> Fake {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let fake = Fake {
            api,
            base_url,
            key: key.to_string(),
            compat,
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
            .route("/v1/responses", post(responses))
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

    /// From now on, `percent` % of the requests with no queued failure fail with one of
    /// `kinds`, picked at random (deterministically for `seed`).
    pub fn chaos(&self, percent: u64, kinds: Vec<Failure>, seed: u64) {
        assert!(!kinds.is_empty());
        self.inner.lock().unwrap().chaos = Some(Chaos {
            percent,
            kinds,
            state: seed | 1,
        });
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
        self.record_query(path, None, headers, body)
    }

    fn record_query(
        &self,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: Value,
    ) -> (Option<Failure>, Script) {
        let mut g = self.inner.lock().unwrap();
        g.received.push(Received {
            path: path.into(),
            query: query.map(str::to_string),
            headers: headers.clone(),
            body,
        });
        let failure = match g.failures.pop_front() {
            Some(f) => Some(f),
            None => g.chaos.as_mut().and_then(Chaos::pick),
        };
        (failure, g.script.clone())
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
async fn inject(
    api: Api,
    f: &Option<Failure>,
    headers: &HeaderMap,
    stream: bool,
) -> Option<Response> {
    let credential = || {
        headers
            .get("authorization")
            .or_else(|| headers.get("x-api-key"))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim_start_matches("Bearer ")
            .to_string()
    };
    match f.as_ref()? {
        Failure::EchoKey => Some(match api {
            Api::OpenAi => openai_error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
                    credential()
                ),
            ),
            Api::Anthropic => anthropic_error(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                &format!("invalid x-api-key {}", credential()),
            ),
        }),
        // Only a streaming request gets a stream (as DieMidStream).
        Failure::EchoKeyInStream if !stream => None,
        Failure::EchoKeyInStream => {
            let body = match api {
                Api::OpenAi => format!(
                    "data: {}\n\n",
                    json!({"error": {"message": format!("Incorrect API key provided: {}", credential()), "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
                ),
                Api::Anthropic => format!(
                    "event: error\ndata: {}\n\n",
                    json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key {}", credential())}})
                ),
            };
            Some(
                (
                    StatusCode::OK,
                    [("content-type", "text/event-stream")],
                    body,
                )
                    .into_response(),
            )
        }
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
    let (fail, _) = f.record_query(uri.path(), uri.query(), &headers, Value::Null);
    if let Some(r) = inject(f.api, &fail, &headers, false).await {
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
#[allow(clippy::too_many_arguments)]
async fn admit(
    f: &Fake,
    path: &str,
    query: Option<&str>,
    api: Api,
    headers: &HeaderMap,
    body: String,
    bad_json: fn() -> Response,
    validate: fn(&Fake, &Value) -> Result<(), String>,
) -> Result<(Value, Script, bool), Response> {
    let Ok(req) = serde_json::from_str::<Value>(&body) else {
        f.record_query(path, query, headers, Value::String(body));
        return Err(bad_json());
    };
    let (fail, script) = f.record_query(path, query, headers, req.clone());
    if f.api != api {
        return Err(not_found().await);
    }
    let die = matches!(fail, Some(Failure::DieMidStream));
    let stream = req.get("stream") == Some(&Value::Bool(true));
    if let Some(r) = inject(f.api, &fail, headers, stream).await {
        return Err(r);
    }
    if !f.authorized(headers) {
        return Err(unauthorized(f.api));
    }
    if let Err(message) = validate(f, &req) {
        return Err(match api {
            Api::OpenAi => openai_error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                None,
                &message,
            ),
            Api::Anthropic => {
                anthropic_error(StatusCode::BAD_REQUEST, "invalid_request_error", &message)
            }
        });
    }
    Ok((req, script, die))
}

// ---------------------------------------------------------------- what the real APIs refuse
//
// Each check below is one the real service makes (its error message paraphrased), so a
// body these fakes accept is one the real API would accept too.

/// Top-level fields of Anthropic's Messages API; anything else is "Extra inputs are not
/// permitted".
const ANTHROPIC_FIELDS: &[&str] = &[
    "model",
    "messages",
    "max_tokens",
    "system",
    "metadata",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "thinking",
    "service_tier",
    "container",
    "mcp_servers",
    "context_management",
    "output_config",
    "inference_geo",
];

/// Claude models from 4.5 on take temperature or top_p, not both.
fn one_sampler_only(model: &str) -> bool {
    model.starts_with("claude-") && !model.starts_with("claude-3")
}

fn text_of(content: &Value) -> Option<String> {
    match content {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str().or(p["output"].as_str()))
                .collect::<Vec<_>>()
                .join(""),
        ),
        _ => None,
    }
}

fn validate_anthropic(_: &Fake, req: &Value) -> Result<(), String> {
    let Some(obj) = req.as_object() else {
        return Err("the request body must be an object".into());
    };
    for k in obj.keys() {
        if !ANTHROPIC_FIELDS.contains(&k.as_str()) {
            return Err(format!("{k}: Extra inputs are not permitted"));
        }
    }
    let max = req["max_tokens"]
        .as_u64()
        .ok_or("max_tokens: Field required")?;
    let model = req["model"].as_str().ok_or("model: Field required")?;
    if let Some(t) = req["temperature"].as_f64()
        && !(0.0..=1.0).contains(&t)
    {
        return Err("temperature: Input should be less than or equal to 1".into());
    }
    if req.get("temperature").is_some() && req.get("top_p").is_some() && one_sampler_only(model) {
        return Err("`temperature` and `top_p` cannot both be specified for this model. Please use only one.".into());
    }
    let thinks = matches!(
        req["thinking"]["type"].as_str(),
        Some("enabled" | "adaptive")
    );
    if thinks && req["temperature"].as_f64().is_some_and(|t| t != 1.0) {
        return Err(
            "`temperature` may only be set to 1 when thinking is enabled or in adaptive mode."
                .into(),
        );
    }
    if thinks && req.get("top_k").is_some() {
        return Err("`top_k` cannot be set when thinking is enabled.".into());
    }
    match req["thinking"]["type"].as_str() {
        Some("enabled") => {
            let b = req["thinking"]["budget_tokens"].as_u64().unwrap_or(0);
            if b < 1024 {
                return Err(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
                        .into(),
                );
            }
            if b >= max {
                return Err("`max_tokens` must be greater than `thinking.budget_tokens`".into());
            }
        }
        Some("adaptive" | "disabled") | None => {}
        Some(other) => return Err(format!("thinking.type: unknown variant `{other}`")),
    }
    for (i, t) in req["tools"].as_array().into_iter().flatten().enumerate() {
        let name = t["name"].as_str().unwrap_or("");
        let ok = !name.is_empty()
            && name.len() <= 128
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let typed = t
            .get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| t != "custom");
        if !ok {
            return Err(format!(
                "tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            ));
        }
        if !typed && t["input_schema"]["type"] != "object" {
            return Err(format!(
                "tools.{i}.input_schema.type: Input should be 'object'"
            ));
        }
    }
    let msgs = req["messages"]
        .as_array()
        .ok_or("messages: Field required")?;
    let mut pending_tool_uses: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if !matches!(role, "user" | "assistant" | "system") {
            return Err(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            ));
        }
        let blocks: Vec<Value> = match &m["content"] {
            Value::String(s) => vec![json!({"type": "text", "text": s})],
            Value::Array(a) => a.clone(),
            _ => return Err(format!("messages.{i}.content: Field required")),
        };
        let last = i + 1 == msgs.len();
        if blocks.is_empty() && !(last && role == "assistant") {
            return Err(format!(
                "messages.{i}: all messages must have non-empty content except for the optional final assistant message"
            ));
        }
        let results: Vec<String> = blocks
            .iter()
            .filter(|b| b["type"] == "tool_result")
            .map(|b| b["tool_use_id"].as_str().unwrap_or("").to_string())
            .collect();
        if role == "user" {
            for id in &results {
                if !pending_tool_uses.contains(id) {
                    return Err(format!(
                        "messages.{i}.content: unexpected `tool_use_id` found in `tool_result` blocks: {id}. Each `tool_result` block must have a corresponding `tool_use` block in the previous message."
                    ));
                }
            }
            let missing: Vec<&String> = pending_tool_uses
                .iter()
                .filter(|id| !results.contains(id))
                .collect();
            if !missing.is_empty() {
                return Err(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {missing:?}. Each `tool_use` block must have a corresponding `tool_result` block in the next message."
                ));
            }
            pending_tool_uses.clear();
        } else if role == "assistant" {
            if !pending_tool_uses.is_empty() {
                return Err(format!(
                    "messages.{i}: `tool_use` ids were found without `tool_result` blocks immediately after: {pending_tool_uses:?}"
                ));
            }
            pending_tool_uses = blocks
                .iter()
                .filter(|b| b["type"] == "tool_use")
                .map(|b| b["id"].as_str().unwrap_or("").to_string())
                .collect();
        }
        for (j, b) in blocks.iter().enumerate() {
            match b["type"].as_str().unwrap_or("") {
                "text" if b["text"].as_str().unwrap_or("").is_empty() => {
                    return Err(format!(
                        "messages.{i}.content.{j}.text: text content blocks must be non-empty"
                    ));
                }
                "thinking" if b["signature"].as_str().unwrap_or("").is_empty() => {
                    return Err(format!(
                        "messages.{i}.content.{j}.thinking.signature: Field required"
                    ));
                }
                "tool_use" if role != "assistant" => {
                    return Err(format!(
                        "messages.{i}.content.{j}: tool_use blocks are only allowed in assistant messages"
                    ));
                }
                "tool_result" if role != "user" => {
                    return Err(format!(
                        "messages.{i}.content.{j}: tool_result blocks are only allowed in user messages"
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Top-level fields of OpenAI's Chat Completions API; anything else is "Unrecognized
/// request argument supplied".
const CHAT_FIELDS: &[&str] = &[
    "model",
    "messages",
    "audio",
    "frequency_penalty",
    "function_call",
    "functions",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "prompt_cache_key",
    "prompt_cache_retention",
    "reasoning_effort",
    "response_format",
    "safety_identifier",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
    "verbosity",
    "web_search_options",
];

/// What compatible servers take beyond OpenAI's fields.
const COMPAT_EXTRA_FIELDS: &[&str] = &["top_k", "min_p", "repetition_penalty", "thinking"];

fn validate_chat(f: &Fake, req: &Value) -> Result<(), String> {
    let Some(obj) = req.as_object() else {
        return Err("the request body must be an object".into());
    };
    for k in obj.keys() {
        let known = CHAT_FIELDS.contains(&k.as_str())
            || (f.compat && COMPAT_EXTRA_FIELDS.contains(&k.as_str()));
        if !known {
            return Err(format!("Unrecognized request argument supplied: {k}"));
        }
    }
    if req.get("max_tokens").is_some() && req.get("max_completion_tokens").is_some() {
        return Err("max_tokens and max_completion_tokens cannot both be set".into());
    }
    if let Some(t) = req["temperature"].as_f64()
        && !(0.0..=2.0).contains(&t)
    {
        return Err(format!(
            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2, but got {t} instead."
        ));
    }
    if req.get("stream_options").is_some() && req["stream"] != json!(true) {
        return Err(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.".into(),
        );
    }
    if let Some(u) = req["user"].as_str()
        && u.chars().count() > 64
    {
        return Err(format!(
            "Invalid 'user': string too long. Expected a string with maximum length 64, but got a string with length {} instead.",
            u.chars().count()
        ));
    }
    for (i, t) in req["tools"].as_array().into_iter().flatten().enumerate() {
        let name = t["function"]["name"].as_str().unwrap_or("");
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(format!(
                "Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'."
            ));
        }
    }
    let msgs = req["messages"]
        .as_array()
        .ok_or("Missing required parameter: 'messages'.")?;
    if msgs.is_empty() {
        return Err("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.".into());
    }
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if !matches!(
            role,
            "system" | "developer" | "user" | "assistant" | "tool" | "function"
        ) {
            return Err(format!(
                "Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', and 'developer'."
            ));
        }
        if role == "tool" {
            let id = m["tool_call_id"].as_str().unwrap_or("");
            if !pending.iter().any(|p| p == id) {
                return Err(format!(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls' (messages[{i}])."
                ));
            }
            pending.retain(|p| p != id);
            continue;
        }
        if !pending.is_empty() {
            return Err(format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                pending.join(", ")
            ));
        }
        if role == "assistant" {
            pending = m["tool_calls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c["id"].as_str().unwrap_or("").to_string())
                .collect();
            if m["content"].is_null() && pending.is_empty() && m.get("refusal").is_none() {
                return Err(format!(
                    "Invalid value for 'content': expected a string, got null (messages[{i}])."
                ));
            }
        }
    }
    Ok(())
}

/// Top-level fields of OpenAI's Responses API.
const RESPONSES_FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "temperature",
    "top_p",
    "top_logprobs",
    "max_output_tokens",
    "max_tool_calls",
    "reasoning",
    "text",
    "stream",
    "stream_options",
    "store",
    "include",
    "previous_response_id",
    "metadata",
    "user",
    "safety_identifier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "service_tier",
    "truncation",
    "background",
    "conversation",
    "prompt",
    "client_metadata",
];

fn validate_responses(_: &Fake, req: &Value) -> Result<(), String> {
    let Some(obj) = req.as_object() else {
        return Err("the request body must be an object".into());
    };
    for k in obj.keys() {
        if !RESPONSES_FIELDS.contains(&k.as_str()) {
            return Err(format!("Unknown parameter: '{k}'."));
        }
    }
    if req["model"].as_str().is_none() {
        return Err("Missing required parameter: 'model'.".into());
    }
    let items = req["input"].as_array().cloned().unwrap_or_default();
    let calls: Vec<&str> = items
        .iter()
        .filter(|i| i["type"] == "function_call" || i["type"] == "custom_tool_call")
        .filter_map(|i| i["call_id"].as_str())
        .collect();
    for it in &items {
        if it["type"] == "function_call_output"
            && req.get("previous_response_id").is_none()
            && !calls.contains(&it["call_id"].as_str().unwrap_or(""))
        {
            return Err(format!(
                "No tool call found for function call output with call_id {}.",
                it["call_id"].as_str().unwrap_or("")
            ));
        }
    }
    Ok(())
}

/// The text of the tool results that end the conversation, if it ends with some.
fn trailing_tool_results(api: &str, req: &Value) -> Option<String> {
    match api {
        "anthropic" => {
            let last = req["messages"].as_array()?.last()?;
            let results: Vec<String> = last["content"]
                .as_array()?
                .iter()
                .filter(|b| b["type"] == "tool_result")
                .filter_map(|b| text_of(&b["content"]))
                .collect();
            (!results.is_empty()).then(|| results.join("\n"))
        }
        "chat" => {
            let msgs = req["messages"].as_array()?;
            let results: Vec<String> = msgs
                .iter()
                .rev()
                .take_while(|m| m["role"] == "tool")
                .filter_map(|m| text_of(&m["content"]))
                .collect();
            (!results.is_empty()).then(|| results.into_iter().rev().collect::<Vec<_>>().join("\n"))
        }
        _ => {
            let items = req["input"].as_array()?;
            let results: Vec<String> = items
                .iter()
                .rev()
                .take_while(|i| {
                    i["type"] == "function_call_output" || i["type"] == "custom_tool_call_output"
                })
                .filter_map(|i| text_of(&i["output"]))
                .collect();
            (!results.is_empty()).then(|| results.into_iter().rev().collect::<Vec<_>>().join("\n"))
        }
    }
}

/// The scripted answer for this request: a tool call, or text (quoting the tool results
/// the conversation ends with).
fn reply(script: &Script, api: &str, req: &Value) -> (Option<(String, Value)>, String) {
    if let Some(results) = trailing_tool_results(api, req) {
        return (None, format!("Tool result: {}", results.trim()));
    }
    let offered = req["tools"].as_array().is_some_and(|t| !t.is_empty());
    (
        script.tool_call.clone().filter(|_| offered),
        script.text.clone(),
    )
}

async fn chat(
    State(f): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let bad_json = || {
        openai_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "We could not parse the JSON body of your request.",
        )
    };
    let path = "/v1/chat/completions";
    let admitted = admit(
        &f,
        path,
        uri.query(),
        Api::OpenAi,
        &headers,
        body,
        bad_json,
        validate_chat,
    )
    .await;
    let (req, mut script, die) = match admitted {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let model = req["model"].as_str().unwrap_or("gpt-4o-mini").to_string();
    let prompt_tokens = count_words(&req["messages"]);
    let (tool, text) = reply(&script, "chat", &req);
    script.text = text;
    let completion_tokens = script.text.split_whitespace().count() as u64;
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

async fn messages(
    State(f): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let bad_json = || {
        anthropic_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "There was an issue with the format of your request: invalid JSON",
        )
    };
    let path = "/v1/messages";
    let admitted = admit(
        &f,
        path,
        uri.query(),
        Api::Anthropic,
        &headers,
        body,
        bad_json,
        validate_anthropic,
    )
    .await;
    let (req, mut script, die) = match admitted {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let model = req["model"]
        .as_str()
        .unwrap_or("claude-sonnet-4-5")
        .to_string();
    let input_tokens = count_words(&req["messages"]) + count_words(&req["system"]);
    let (tool, text) = reply(&script, "anthropic", &req);
    script.text = text;
    let output_tokens = script.text.split_whitespace().count() as u64;
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
    if let Some(r) = inject(f.api, &fail, &headers, false).await {
        return r;
    }
    if !f.authorized(&headers) {
        return unauthorized(f.api);
    }
    Json(json!({"input_tokens": count_words(&req["messages"]) + count_words(&req["system"])}))
        .into_response()
}

// ---------------------------------------------------------------- OpenAI Responses

async fn responses(
    State(f): State<Fake>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let bad_json = || {
        openai_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            None,
            "We could not parse the JSON body of your request.",
        )
    };
    if f.compat {
        // A chat-only server has no Responses API.
        f.record_query("/v1/responses", uri.query(), &headers, Value::Null);
        return not_found().await;
    }
    let admitted = admit(
        &f,
        "/v1/responses",
        uri.query(),
        Api::OpenAi,
        &headers,
        body,
        bad_json,
        validate_responses,
    )
    .await;
    let (req, script, die) = match admitted {
        Ok(admitted) => admitted,
        Err(r) => return r,
    };
    let model = req["model"].as_str().unwrap_or("gpt-5").to_string();
    let (tool, text) = reply(&script, "responses", &req);
    let input_tokens = count_words(&req["input"]) + count_words(&req["instructions"]);
    let output_tokens = text.split_whitespace().count() as u64;
    let id = "resp_fake0123456789";
    let usage = json!({"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens});
    let item = match &tool {
        Some((name, args)) => {
            json!({"type": "function_call", "id": "fc_fake1", "call_id": "call_fake1",
            "name": name, "arguments": args.to_string(), "status": "completed"})
        }
        None => {
            json!({"type": "message", "id": "msg_fake1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
        }
    };
    let response = |status: &str, output: Value, usage: Value| {
        json!({"id": id, "object": "response", "created_at": 1_731_000_000, "status": status,
               "error": null, "incomplete_details": null, "model": model, "output": output,
               "parallel_tool_calls": true, "store": req["store"].as_bool().unwrap_or(true),
               "tool_choice": "auto", "tools": req["tools"].clone(), "usage": usage})
    };
    if req["stream"] != json!(true) {
        return Json(response("completed", json!([item]), usage)).into_response();
    }
    let mut seq = 0u64;
    let mut ev = |name: &str, mut data: Value| {
        data["type"] = json!(name);
        data["sequence_number"] = json!(seq);
        seq += 1;
        format!("event: {name}\ndata: {data}\n\n")
    };
    let mut frames = vec![
        ev(
            "response.created",
            json!({"response": response("in_progress", json!([]), Value::Null)}),
        ),
        ev(
            "response.in_progress",
            json!({"response": response("in_progress", json!([]), Value::Null)}),
        ),
    ];
    match &tool {
        Some((name, args)) => {
            let args = args.to_string();
            frames.push(ev("response.output_item.added", json!({"output_index": 0, "item":
                {"type": "function_call", "id": "fc_fake1", "call_id": "call_fake1", "name": name, "arguments": "", "status": "in_progress"}})));
            for piece in split_text(&args, 3) {
                frames.push(ev(
                    "response.function_call_arguments.delta",
                    json!({"item_id": "fc_fake1", "output_index": 0, "delta": piece}),
                ));
            }
            frames.push(ev(
                "response.function_call_arguments.done",
                json!({"item_id": "fc_fake1", "output_index": 0, "arguments": args}),
            ));
        }
        None => {
            frames.push(ev("response.output_item.added", json!({"output_index": 0, "item":
                {"type": "message", "id": "msg_fake1", "status": "in_progress", "role": "assistant", "content": []}})));
            frames.push(ev(
                "response.content_part.added",
                json!({"item_id": "msg_fake1", "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": "", "annotations": []}}),
            ));
            for piece in split_text(&text, script.chunks) {
                frames.push(ev("response.output_text.delta", json!({"item_id": "msg_fake1", "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []})));
            }
            frames.push(ev("response.output_text.done", json!({"item_id": "msg_fake1", "output_index": 0, "content_index": 0, "text": text, "logprobs": []})));
            frames.push(ev(
                "response.content_part.done",
                json!({"item_id": "msg_fake1", "output_index": 0, "content_index": 0,
                "part": {"type": "output_text", "text": text, "annotations": []}}),
            ));
        }
    }
    frames.push(ev(
        "response.output_item.done",
        json!({"output_index": 0, "item": item}),
    ));
    frames.push(ev(
        "response.completed",
        json!({"response": response("completed", json!([item]), usage)}),
    ));
    sse_response(f, frames, script.event_gap, die)
}

#[cfg(test)]
mod strictness {
    //! The fakes refuse what the real APIs refuse (each case a rule of the real service).
    use super::*;

    fn fake(compat: bool) -> Fake {
        Fake {
            api: Api::OpenAi,
            base_url: String::new(),
            key: String::new(),
            compat,
            inner: Default::default(),
        }
    }

    #[test]
    fn anthropic_rules() {
        let f = fake(false);
        let ok = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "temperature": 0,
            "messages": [{"role": "user", "content": "hi"}]});
        assert!(validate_anthropic(&f, &ok).is_ok());
        let bad = |patch: Value| {
            let mut v = ok.clone();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            validate_anthropic(&f, &v).unwrap_err()
        };
        assert!(bad(json!({"top_p": 0.9})).contains("cannot both"));
        assert!(bad(json!({"frobnicate": 1})).contains("Extra inputs"));
        assert!(
            bad(json!({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}))
                .contains("non-empty")
        );
        assert!(bad(json!({"messages": [{"role": "wizard", "content": "x"}]})).contains("role"));
        assert!(bad(json!({"messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]}]})).contains("tool_use_id"));
        assert!(bad(json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": "no result"}]})).contains("without `tool_result`"));
        assert!(
            bad(json!({"temperature": 1, "thinking": {"type": "enabled", "budget_tokens": 500}}))
                .contains("1024")
        );
        assert!(bad(json!({"thinking": {"type": "adaptive"}})).contains("temperature"));
    }

    #[test]
    fn openai_chat_rules() {
        let f = fake(false);
        let ok = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]});
        assert!(validate_chat(&f, &ok).is_ok());
        let bad = |f: &Fake, patch: Value| {
            let mut v = ok.clone();
            for (k, x) in patch.as_object().unwrap() {
                v[k] = x.clone();
            }
            validate_chat(f, &v)
        };
        assert!(
            bad(&f, json!({"user": "u".repeat(65)}))
                .unwrap_err()
                .contains("too long")
        );
        assert!(
            bad(&f, json!({"top_k": 5}))
                .unwrap_err()
                .contains("Unrecognized")
        );
        assert!(
            bad(&fake(true), json!({"top_k": 5})).is_ok(),
            "compatible servers take top_k"
        );
        assert!(
            bad(
                &f,
                json!({"messages": [{"role": "tool", "tool_call_id": "x", "content": "r"}]})
            )
            .unwrap_err()
            .contains("preceeding")
        );
        assert!(bad(&f, json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "user", "content": "?"}]})).unwrap_err().contains("c1"));
        assert!(
            bad(&f, json!({"stream_options": {"include_usage": true}}))
                .unwrap_err()
                .contains("stream_options")
        );
    }

    #[test]
    fn responses_rules() {
        let f = fake(false);
        assert!(validate_responses(&f, &json!({"model": "m", "input": "hi"})).is_ok());
        assert!(
            validate_responses(
                &f,
                &json!({"model": "m", "input": [
            {"type": "function_call_output", "call_id": "nope", "output": "x"}]})
            )
            .unwrap_err()
            .contains("No tool call")
        );
        assert!(
            validate_responses(&f, &json!({"model": "m", "messages": []}))
                .unwrap_err()
                .contains("Unknown parameter")
        );
    }
}
