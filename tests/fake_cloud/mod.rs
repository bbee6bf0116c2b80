//! Local stand-ins for the OpenAI and Anthropic model-list endpoints, on a loopback
//! port, speaking their protocols: the same paths, auth headers, JSON shapes and error
//! bodies as the real APIs. Each mounts one behaviour per path prefix, so a provider's
//! base URL picks the behaviour:
//!
//! | base URL            | `GET {base}/v1/models`                                      |
//! |---------------------|-------------------------------------------------------------|
//! | `{root}/ok`         | the model list if the key is right, else the API's 401 body |
//! | `{root}/slow`       | answers after 3 s                                           |
//! | `{root}/redirect`   | 302 to `{root}/ok/v1/models` (which counts hits)            |
//! | `{root}/garbage`    | 200 with an HTML body                                       |
//! | `{root}/missing`    | 404 (no such route)                                         |
#![allow(dead_code)] // each test binary uses a different subset

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Anthropic,
}

pub struct FakeCloud {
    pub addr: SocketAddr,
    /// Requests that reached `/ok/v1/models` (authenticated or not).
    pub ok_hits: Arc<AtomicUsize>,
    /// The auth header values seen, for "the key was sent as …" assertions.
    pub seen_keys: Arc<std::sync::Mutex<Vec<String>>>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeCloud {
    pub fn base(&self, behaviour: &str) -> String {
        format!("http://{}/{behaviour}", self.addr)
    }

    pub fn ok_hits(&self) -> usize {
        self.ok_hits.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
struct State {
    flavor: Flavor,
    key: String,
    ok_hits: Arc<AtomicUsize>,
    seen_keys: Arc<std::sync::Mutex<Vec<String>>>,
    addr: SocketAddr,
}

fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn models(state: axum::extract::State<State>, headers: HeaderMap) -> Response {
    let st = state.0;
    st.ok_hits.fetch_add(1, Ordering::SeqCst);
    match st.flavor {
        Flavor::OpenAi => {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            st.seen_keys.lock().unwrap().push(auth.to_string());
            if auth != format!("Bearer {}", st.key) {
                return json(
                    StatusCode::UNAUTHORIZED,
                    r#"{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#.into(),
                );
            }
            json(
                StatusCode::OK,
                r#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1715367049,"owned_by":"system"},{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"},{"id":"text-embedding-3-small","object":"model","created":1705948997,"owned_by":"system"}]}"#.into(),
            )
        }
        Flavor::Anthropic => {
            let key = headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            st.seen_keys.lock().unwrap().push(key.to_string());
            if headers.get("anthropic-version").is_none() {
                return json(
                    StatusCode::BAD_REQUEST,
                    r#"{"type":"error","error":{"type":"invalid_request_error","message":"anthropic-version: header is required"}}"#.into(),
                );
            }
            if key != st.key {
                return json(
                    StatusCode::UNAUTHORIZED,
                    r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#.into(),
                );
            }
            json(
                StatusCode::OK,
                r#"{"data":[{"type":"model","id":"claude-sonnet-4-20250514","display_name":"Claude Sonnet 4","created_at":"2025-05-22T00:00:00Z"},{"type":"model","id":"claude-3-5-haiku-20241022","display_name":"Claude Haiku 3.5","created_at":"2024-10-22T00:00:00Z"}],"has_more":false,"first_id":"claude-sonnet-4-20250514","last_id":"claude-3-5-haiku-20241022"}"#.into(),
            )
        }
    }
}

async fn slow() -> Response {
    tokio::time::sleep(Duration::from_secs(3)).await;
    json(StatusCode::OK, r#"{"object":"list","data":[]}"#.into())
}

async fn redirect(state: axum::extract::State<State>) -> Response {
    (
        StatusCode::FOUND,
        [(
            header::LOCATION,
            format!("http://{}/ok/v1/models", state.0.addr),
        )],
    )
        .into_response()
}

async fn garbage() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html")],
        "<html><body>Welcome to nginx!</body></html>",
    )
        .into_response()
}

/// Start a fake cloud that accepts exactly `key`.
pub async fn start(flavor: Flavor, key: &str) -> FakeCloud {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ok_hits = Arc::new(AtomicUsize::new(0));
    let seen_keys = Arc::new(std::sync::Mutex::new(Vec::new()));
    let state = State {
        flavor,
        key: key.to_string(),
        ok_hits: ok_hits.clone(),
        seen_keys: seen_keys.clone(),
        addr,
    };
    let app = Router::new()
        .route("/ok/v1/models", get(models))
        .route("/slow/v1/models", get(slow))
        .route("/redirect/v1/models", get(redirect))
        .route("/garbage/v1/models", get(garbage))
        .with_state(state);
    let server = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    FakeCloud {
        addr,
        ok_hits,
        seen_keys,
        _server: server,
    }
}

/// The same, on its own runtime thread, for tests that drive the CLI synchronously.
pub fn start_in_background(flavor: Flavor, key: &str) -> (FakeCloud, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cloud = rt.block_on(start(flavor, key));
    (cloud, rt)
}
