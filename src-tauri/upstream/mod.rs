//! Cloud backends: requests to OpenAI, Anthropic and OpenAI-compatible servers.
//!
//! One pooled reqwest client per provider (rustls, HTTP/1.1 keep-alive, no redirects,
//! connect / first-byte / idle-read timeouts). The provider's API key is decrypted just
//! in time for each request and sent only to that provider's own origin; the client's
//! credentials never leave the gateway.
//!
//! Providers are read from an in-memory snapshot ([`Providers`]) rebuilt when the
//! settings change, so the request path does no database read.

pub mod breaker;

use crate::error::{Code, Error, Result};
use crate::protocol::{self, Protocol, canonical};
use crate::settings::providers::{self as provider_settings, ProviderKind};
use crate::store::entities::provider;
use crate::vault::{SecretContext, SecretString};
use arc_swap::ArcSwap;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use sea_orm::{DatabaseConnection, EntityTrait};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Anthropic API version header value our encoder targets.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// TCP + TLS connect.
    pub connect: Duration,
    /// From sending the request to the response headers (the model's "thinking" time
    /// before it streams, for streaming requests; the whole answer otherwise).
    pub first_byte: Duration,
    /// Longest silence between two chunks of a streaming body.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(300),
            idle: Duration::from_secs(300),
        }
    }
}

/// A provider as the request path needs it.
pub struct ProviderEntry {
    pub id: i64,
    pub name: Arc<str>,
    pub kind: ProviderKind,
    /// Normalized, without a trailing slash (e.g. `https://api.openai.com`).
    pub base_url: String,
    /// The sealed key and the context it was sealed for (row id + origin).
    pub sealed_key: Option<Vec<u8>>,
    pub key_context: Option<SecretContext>,
    /// The endpoints the gateway calls, parsed once (URL parsing is measurable per request).
    endpoints: Vec<(&'static str, reqwest::Url)>,
}

/// Paths the gateway calls, relative to a provider's base URL.
pub const ENDPOINTS: [&str; 7] = [
    "/v1/chat/completions",
    "/v1/messages",
    "/v1/messages/count_tokens",
    "/v1/responses",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
];

impl ProviderEntry {
    /// `{base}{path}`, plus the client's query string for passthrough (`?beta=true`).
    fn url(&self, path: &str, query: Option<&str>) -> Result<reqwest::Url> {
        let mut url = match self.endpoints.iter().find(|(p, _)| *p == path) {
            Some((_, u)) => u.clone(),
            None => parse_url(&self.base_url, path)?,
        };
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.set_query(Some(q));
        }
        Ok(url)
    }

    pub fn protocol(&self) -> Protocol {
        match self.kind {
            ProviderKind::Anthropic => Protocol::Anthropic,
            ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => Protocol::OpenAi,
        }
    }
}

/// The providers snapshot: swapped whole on every settings change.
#[derive(Default)]
pub struct Providers {
    current: ArcSwap<HashMap<i64, Arc<ProviderEntry>>>,
}

impl Providers {
    pub fn get(&self, id: i64) -> Option<Arc<ProviderEntry>> {
        self.current.load().get(&id).cloned()
    }

    pub async fn reload(&self, db: &DatabaseConnection) -> Result<()> {
        let rows = provider::Entity::find().all(db).await?;
        let mut map = HashMap::with_capacity(rows.len());
        for p in rows {
            let Some(kind) = ProviderKind::parse(&p.kind) else {
                tracing::error!(provider = %p.name, kind = %p.kind, "provider of unknown kind left out");
                continue;
            };
            let key_context = match &p.api_key {
                Some(_) => Some(provider_settings::key_context(p.id, &p.base_url)?),
                None => None,
            };
            let base_url = p.base_url.trim_end_matches('/').to_string();
            let endpoints = ENDPOINTS
                .iter()
                .filter_map(|path| parse_url(&base_url, path).ok().map(|u| (*path, u)))
                .collect();
            map.insert(
                p.id,
                Arc::new(ProviderEntry {
                    id: p.id,
                    name: Arc::from(p.name.as_str()),
                    kind,
                    base_url,
                    sealed_key: p.api_key,
                    key_context,
                    endpoints,
                }),
            );
        }
        self.current.store(Arc::new(map));
        Ok(())
    }
}

/// A failed upstream attempt, and whether the rule's fallback may take over.
#[derive(Debug)]
pub struct Failure {
    pub error: Error,
    /// Connect error, timeout, 5xx or 429: the fallback may serve the request.
    pub retryable: bool,
    /// The upstream's own error answer, when it sent one: a client of the same protocol
    /// gets it as it is (a passthrough route), others get `error` in their shape plus
    /// its `retry-after`.
    pub raw: Option<RawError>,
    /// The attempt relayed the client's own request: `raw` is in the client's protocol.
    pub relayed: bool,
}

impl Failure {
    pub fn new(error: Error, retryable: bool) -> Self {
        Failure {
            error,
            retryable,
            raw: None,
            relayed: false,
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::new(error, false)
    }
}

/// An upstream's non-2xx answer: status, the headers a client may see, and the body
/// (capped; error bodies are small).
#[derive(Debug, Clone)]
pub struct RawError {
    pub status: u16,
    pub headers: Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)>,
    pub body: bytes::Bytes,
}

impl RawError {
    pub fn header(&self, name: &str) -> Option<&reqwest::header::HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }
}

/// Upstream response headers a client may see: the content type, retry advice, request
/// ids and rate-limit reports. Nothing else (cookies, the upstream's own auth
/// challenges, connection management) crosses the gateway.
pub fn relayed_headers(
    h: &reqwest::header::HeaderMap,
) -> Vec<(reqwest::header::HeaderName, reqwest::header::HeaderValue)> {
    h.iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            matches!(
                n,
                "content-type"
                    | "retry-after"
                    | "retry-after-ms"
                    | "x-should-retry"
                    | "request-id"
                    | "x-request-id"
                    | "openai-processing-ms"
            ) || n.starts_with("anthropic-ratelimit-")
                || n.starts_with("x-ratelimit-")
        })
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect()
}

/// One client per provider, built on first use.
pub struct Upstreams {
    timeouts: Timeouts,
    clients: ArcSwap<HashMap<i64, reqwest::Client>>,
    build_lock: std::sync::Mutex<()>,
}

impl Upstreams {
    pub fn new(timeouts: Timeouts) -> Self {
        Upstreams {
            timeouts,
            clients: ArcSwap::default(),
            build_lock: std::sync::Mutex::new(()),
        }
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn client(&self, provider_id: i64) -> Result<reqwest::Client> {
        if let Some(c) = self.clients.load().get(&provider_id) {
            return Ok(c.clone());
        }
        // Rare (first request to a provider): serialize builders so each client is built once.
        let _g = self.build_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = self.clients.load().get(&provider_id) {
            return Ok(c.clone());
        }
        let client = build_client(self.timeouts)?;
        let mut next = HashMap::clone(&self.clients.load());
        next.insert(provider_id, client.clone());
        self.clients.store(Arc::new(next));
        Ok(client)
    }

    /// POST `body` to `{base}{path}` with the provider's auth headers.
    pub async fn post(
        &self,
        p: &ProviderEntry,
        key: Option<&SecretString>,
        path: &str,
        body: Vec<u8>,
        extra_headers: &[(&'static str, String)],
    ) -> Result<reqwest::Response, Failure> {
        self.send(
            p,
            key,
            reqwest::Method::POST,
            path,
            None,
            Some(body),
            extra_headers,
        )
        .await
    }

    /// Send a request to `{base}{path}?{query}` with the provider's auth headers (and
    /// `extra_headers`, which may override `anthropic-version` but never carry
    /// credentials). Returns the response once its headers arrived with a 2xx status;
    /// anything else is a coded [`Failure`] that keeps the upstream's own answer.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        p: &ProviderEntry,
        key: Option<&SecretString>,
        method: reqwest::Method,
        path: &str,
        query: Option<&str>,
        body: Option<Vec<u8>>,
        extra_headers: &[(&'static str, String)],
    ) -> Result<reqwest::Response, Failure> {
        let client = self.client(p.id)?;
        let mut headers = reqwest::header::HeaderMap::with_capacity(4 + extra_headers.len());
        auth(&mut headers, p.kind, key);
        for (k, v) in extra_headers {
            if let Ok(v) = reqwest::header::HeaderValue::from_str(v) {
                headers.insert(*k, v);
            }
        }
        let mut rb = client.request(method, p.url(path, query)?).headers(headers);
        if let Some(body) = body {
            rb = rb.header("content-type", "application/json").body(body);
        }
        let resp = match tokio::time::timeout(self.timeouts.first_byte, rb.send()).await {
            Err(_) => {
                return Err(Failure::new(
                    Error::new(
                        Code::UpstreamTimeout,
                        format!(
                            "provider {} did not answer within {} s",
                            p.name,
                            self.timeouts.first_byte.as_secs_f32()
                        ),
                    ),
                    true,
                ));
            }
            Ok(Err(e)) => return Err(transport_failure(&p.name, e)),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retryable =
            status.is_server_error() || status.as_u16() == 429 || status.is_redirection();
        let relayed = relayed_headers(resp.headers());
        // Error bodies are small; cap what we read so a hostile upstream cannot stall us.
        let mut body: Vec<u8> =
            tokio::time::timeout(self.timeouts.idle, read_capped(resp, MAX_ERROR_BODY))
                .await
                .unwrap_or_default();
        // Nothing of a credential an upstream quotes back reaches the client or the log.
        let key_text = key.map(|k| k.expose());
        if let Some(clean) = protocol::redact::redact_bytes(&body, key_text) {
            body = clean;
        }
        let mut error = if status.is_redirection() {
            Error::new(
                Code::UpstreamError,
                format!(
                    "provider {} answered with a redirect ({status}); redirects are not followed",
                    p.name
                ),
            )
        } else {
            protocol::decode_upstream_error(p.protocol(), status.as_u16(), &body)
        };
        error.message = format!(
            "provider {}: {}",
            p.name,
            protocol::redact::redact(&error.message, key_text)
        );
        // A redirect is not an answer a client could use.
        let raw = (!status.is_redirection()).then(|| RawError {
            status: status.as_u16(),
            headers: relayed,
            body: bytes::Bytes::from(body),
        });
        Err(Failure {
            error,
            retryable,
            raw,
            relayed: false,
        })
    }
}

/// Longest upstream error body read (and relayed).
pub const MAX_ERROR_BODY: usize = 64 * 1024;

fn parse_url(base: &str, path: &str) -> Result<reqwest::Url> {
    reqwest::Url::parse(&format!("{base}{path}")).map_err(|e| {
        Error::new(
            Code::ProviderInvalidUrl,
            format!("bad provider URL {base}{path}: {e}"),
        )
    })
}

fn build_client(t: Timeouts) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(t.connect)
        .read_timeout(t.idle)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))
}

/// The provider's own auth header (and Anthropic's version header). Nothing of the
/// client's credentials is forwarded.
fn auth(h: &mut reqwest::header::HeaderMap, kind: ProviderKind, key: Option<&SecretString>) {
    match kind {
        ProviderKind::Anthropic => {
            h.insert(
                "anthropic-version",
                reqwest::header::HeaderValue::from_static(ANTHROPIC_VERSION),
            );
            if let Some(k) = key {
                h.insert("x-api-key", sensitive(k.expose()));
            }
        }
        _ => {
            if let Some(k) = key {
                h.insert(
                    "authorization",
                    sensitive(&format!("Bearer {}", k.expose())),
                );
            }
        }
    }
}

/// A header value marked sensitive (hyper never logs it).
fn sensitive(v: &str) -> reqwest::header::HeaderValue {
    let mut h = reqwest::header::HeaderValue::from_str(v)
        .unwrap_or_else(|_| reqwest::header::HeaderValue::from_static(""));
    h.set_sensitive(true);
    h
}

pub(crate) fn transport_failure(name: &str, e: reqwest::Error) -> Failure {
    let (code, what) = if e.is_timeout() {
        (Code::UpstreamTimeout, "timed out")
    } else if e.is_connect() {
        (Code::UpstreamUnreachable, "could not be reached")
    } else {
        (Code::UpstreamUnreachable, "failed")
    };
    // reqwest's Display names the URL, never headers: no key can leak through it.
    Failure::new(
        Error::new(code, format!("provider {name} {what}: {}", error_chain(&e))),
        true,
    )
}

/// A streamed body that failed after it began: silent past the idle timeout (reqwest's
/// read timeout), or cut off. The provider was reached, so neither is `upstream_unreachable`.
pub(crate) fn mid_stream_failure(name: &str, e: &reqwest::Error) -> Error {
    if e.is_timeout() {
        Error::new(
            Code::UpstreamTimeout,
            format!("provider {name} stopped streaming"),
        )
    } else {
        Error::new(
            Code::UpstreamError,
            format!("provider {name}'s stream broke off: {}", error_chain(e)),
        )
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

async fn read_capped(resp: reqwest::Response, cap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(Ok(chunk)) = s.next().await {
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if out.len() >= cap {
            break;
        }
    }
    out
}

/// Largest non-streaming answer read from an upstream (a hostile one could otherwise
/// grow our memory without end; real answers are far smaller).
pub const MAX_ANSWER_BODY: usize = 64 * 1024 * 1024;

/// Read a whole (non-streaming) body, each chunk within the idle timeout, at most
/// [`MAX_ANSWER_BODY`] bytes.
pub async fn read_body(resp: reqwest::Response, idle: Duration, provider: &str) -> Result<Vec<u8>> {
    read_body_within(resp, idle, provider, MAX_ANSWER_BODY).await
}

async fn read_body_within(
    resp: reqwest::Response,
    idle: Duration,
    provider: &str,
    cap: usize,
) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    loop {
        match tokio::time::timeout(idle, s.next()).await {
            Err(_) => {
                return Err(Error::new(
                    Code::UpstreamTimeout,
                    format!("provider {provider} stopped sending its answer"),
                ));
            }
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) => return Err(transport_failure(provider, e).error),
            Ok(Some(Ok(chunk))) => {
                if out.len() + chunk.len() > cap {
                    return Err(Error::new(
                        Code::ProviderBadResponse,
                        format!(
                            "provider {provider} sent an answer larger than {} MiB",
                            cap >> 20
                        ),
                    ));
                }
                out.extend_from_slice(&chunk)
            }
        }
    }
}

/// The canonical events of an upstream SSE body, decoded incrementally. An upstream
/// that breaks off, stalls past the idle timeout (the client's read timeout, as for a
/// relayed stream) or sends garbage ends the stream with an `Event::Error`, its message
/// redacted of anything shaped like a credential. Dropping the stream drops the
/// connection (cancellation).
pub fn sse_events(
    resp: reqwest::Response,
    protocol: Protocol,
    provider: Arc<str>,
) -> BoxStream<'static, canonical::Event> {
    enum Decoder {
        OpenAi(protocol::openai::stream::ChatStreamDecoder),
        Anthropic(protocol::anthropic::stream::StreamDecoder),
    }
    impl Decoder {
        /// Append one SSE event's canonical events to `out`; on an error, none of them.
        fn push_to(
            &mut self,
            ev: &protocol::sse::Event,
            out: &mut Vec<canonical::Event>,
        ) -> Result<()> {
            match self {
                Decoder::OpenAi(d) => d.push_data_to(&ev.data, out),
                Decoder::Anthropic(d) => {
                    out.extend(d.push(ev)?);
                    Ok(())
                }
            }
        }
        fn finish_to(&mut self, out: &mut Vec<canonical::Event>) -> Result<()> {
            match self {
                Decoder::OpenAi(d) => d.finish_to(out),
                Decoder::Anthropic(d) => {
                    out.extend(d.finish());
                    Ok(())
                }
            }
        }
    }
    struct St {
        body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
        parser: protocol::sse::Parser,
        decoder: Decoder,
        /// The events of the last chunk read, last first: handed out by `pop`, and
        /// refilled (in the same allocation) only when empty.
        queue: Vec<canonical::Event>,
        done: bool,
        provider: Arc<str>,
    }
    let st = St {
        body: resp.bytes_stream().boxed(),
        parser: protocol::sse::Parser::new(),
        decoder: match protocol {
            Protocol::OpenAi => Decoder::OpenAi(Default::default()),
            Protocol::Anthropic => Decoder::Anthropic(Default::default()),
        },
        queue: Vec::new(),
        done: false,
        provider,
    };
    // Boxed: `unfold` moves its state into a new future and back out for every event.
    futures_util::stream::unfold(Box::new(st), |mut st| async move {
        loop {
            if let Some(mut ev) = st.queue.pop() {
                // An error event in the upstream's stream may quote a credential.
                if let canonical::Event::Error(e) = &mut ev {
                    e.message = protocol::redact::redact(&e.message, None).into_owned();
                }
                return Some((ev, st));
            }
            if st.done {
                return None;
            }
            let fail = |st: &mut St, e: Error| {
                st.done = true;
                st.queue.push(canonical::Event::Error((&e).into()));
            };
            match st.body.next().await {
                Some(Ok(chunk)) => {
                    let St {
                        parser,
                        decoder,
                        queue,
                        ..
                    } = &mut *st;
                    // Each SSE event is decoded as the parser completes it, from the
                    // parser's own buffer.
                    if let Err(e) = parser.push_each(&chunk, |ev| decoder.push_to(ev, queue)) {
                        fail(&mut st, e);
                    }
                }
                Some(Err(e)) => {
                    let e = mid_stream_failure(&st.provider, &e);
                    fail(&mut st, e);
                }
                None => {
                    st.done = true;
                    let St { decoder, queue, .. } = &mut *st;
                    if let Err(e) = decoder.finish_to(queue) {
                        queue.push(canonical::Event::Error((&e).into()));
                    }
                }
            }
            st.queue.reverse();
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A one-shot HTTP server on loopback answering with a body of `len` bytes.
    async fn serve_body(len: usize) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut c, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf).await;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
            );
            let _ = c.write_all(head.as_bytes()).await;
            let _ = c.write_all(&vec![b' '; len]).await;
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_non_streaming_answer_over_the_cap_is_a_coded_error() {
        let http = reqwest::Client::new();
        let idle = Duration::from_secs(10);
        let resp = http.get(serve_body(3 << 20).await).send().await.unwrap();
        let e = read_body_within(resp, idle, "p", 2 << 20)
            .await
            .unwrap_err();
        assert_eq!(e.code, Code::ProviderBadResponse);
        assert!(e.message.contains("larger than 2 MiB"), "{}", e.message);
        let resp = http.get(serve_body(1 << 20).await).send().await.unwrap();
        assert_eq!(
            read_body_within(resp, idle, "p", 2 << 20)
                .await
                .unwrap()
                .len(),
            1 << 20
        );
    }
}
