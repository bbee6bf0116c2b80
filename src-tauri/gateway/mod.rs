//! The gateway: one HTTP endpoint on loopback that speaks the OpenAI and the Anthropic
//! APIs and sends each request, by model name, to a local model or a cloud provider.
//!
//! ```text
//! request ─▶ guards (Host, Origin, body size) ─▶ peek (model, stream) ─▶ route (rules)
//!   same protocol as the provider: relay the bytes (model swapped), answer as it came
//!   otherwise: decode (client protocol → canonical) ─▶ backend (local engine | upstream)
//!         ─▶ encode (canonical events → client protocol, JSON or SSE)
//!   either way: fallback once before the first byte, one request-log row
//! ```
//!
//! `router(app)` builds the axum `Router` once; `serve` binds it. Handlers are thin:
//! the protocol work is in `protocol/`, routing in `routing/`, cloud calls in
//! `upstream/`, local generation behind [`local::LocalModels`].
//!
//! Invariants: every request passes the guards (Host, Origin, client token) before
//! anything else runs; on a non-loopback address client tokens are always required;
//! no management endpoint is served here; a client that hangs up cancels the upstream
//! request or the local generation (dropping the response body drops the work).

mod backend;
mod guards;
mod handlers;
pub mod health;
pub mod limits;
pub mod local;
pub mod log;
pub mod models;
mod stored;

use crate::app::SharedApp;
use crate::error::{Code, Error, Result};
use crate::protocol::{self, Protocol};
use crate::upstream::{Providers, Timeouts, Upstreams};
use axum::Router;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

pub use guards::HostAllowlist;

/// The default request body limit: images make chat bodies big.
pub const DEFAULT_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// How long a streaming answer may stay silent before the gateway sends a keep-alive
/// (an Anthropic `ping` event, an SSE comment for OpenAI clients).
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    /// Extra names accepted in the `Host` header (loopback names are always accepted).
    pub allowed_hosts: Vec<String>,
    pub body_limit: usize,
    pub timeouts: Timeouts,
    pub keepalive: Duration,
    /// When a failing provider is skipped, and for how long.
    pub breaker: crate::upstream::breaker::BreakerConfig,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// Requests one client may have in flight (see [`limits`]).
    pub max_in_flight_per_client: usize,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            allowed_hosts: Vec::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            timeouts: Timeouts::default(),
            keepalive: DEFAULT_KEEPALIVE,
            breaker: Default::default(),
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            max_in_flight_per_client: limits::DEFAULT_PER_CLIENT,
        }
    }
}

/// Everything a handler needs; cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct GatewayState(Arc<Inner>);

pub struct Inner {
    pub app: SharedApp,
    pub options: GatewayOptions,
    pub hosts: HostAllowlist,
    /// The bound port, once known (0 = any: in-process tests with `oneshot`).
    port: AtomicU16,
    pub log: log::RequestLog,
    pub upstreams: Upstreams,
    /// Providers as the request path sees them (no DB read per request).
    pub providers: Providers,
    /// The settings revision the snapshots were built from (see `reload_settings`).
    revision: std::sync::atomic::AtomicI64,
    pub local: Arc<dyn local::LocalModels>,
    /// Providers' own model lists, for `GET /v1/models`.
    catalog: models::Catalog,
    /// One circuit breaker per provider (in memory; transitions go to `provider_health`).
    pub breakers: crate::upstream::breaker::Breakers,
    pub client_limits: limits::ClientLimits,
    /// Client tokens: who may call, and which models they may use.
    pub auth: crate::tokens::verify::Verifier,
}

impl std::ops::Deref for GatewayState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl GatewayState {
    /// Build the state on the current Tokio runtime: load the providers snapshot and
    /// start the request-log writer and the settings watcher.
    pub async fn new(
        app: SharedApp,
        options: GatewayOptions,
        local: Arc<dyn local::LocalModels>,
    ) -> Result<Self> {
        let (log, _writer) =
            log::RequestLog::start(crate::store::open_log_writer(app.data_dir()).await?);
        let auth = crate::tokens::verify::Verifier::new(
            app.db.clone(),
            app.data_dir(),
            std::time::SystemTime::now,
        )
        .await?;
        let state = GatewayState(Arc::new(Inner {
            auth,
            hosts: HostAllowlist::new(&options.allowed_hosts),
            upstreams: Upstreams::new(options.timeouts),
            breakers: crate::upstream::breaker::Breakers::new(options.breaker),
            client_limits: limits::ClientLimits::new(options.max_in_flight_per_client),
            providers: Providers::default(),
            revision: std::sync::atomic::AtomicI64::new(-1),
            options,
            port: AtomicU16::new(0),
            log,
            local,
            app,
            catalog: models::Catalog::default(),
        }));
        state.reload_settings().await?;
        // Breakers start closed: what a previous process recorded no longer holds.
        crate::store::health::clear(&state.app.db).await?;
        let weak = Arc::downgrade(&state.0);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SETTINGS_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = GatewayState(inner).reload_settings().await {
                    tracing::warn!(error = %e, "could not reload the settings");
                }
            }
        });
        Ok(state)
    }

    /// Pick up settings changed by this or another process (the CLI, the desktop app):
    /// when the store's settings revision moved, rebuild the routing table and the
    /// providers snapshot.
    pub async fn reload_settings(&self) -> Result<()> {
        let rev = crate::store::revision(&self.app.db).await?;
        if rev == self.revision.load(Ordering::Acquire) {
            return Ok(());
        }
        crate::settings::refresh(&self.app).await?;
        self.providers.reload(&self.app.db).await?;
        // Clients and access change through the marker file too; this catches a marker
        // that could not be written.
        self.auth.reload().await?;
        self.catalog.clear();
        self.revision.store(rev, Ordering::Release);
        Ok(())
    }

    pub fn bound_port(&self) -> u16 {
        self.port.load(Ordering::Relaxed)
    }
}

/// How often the settings watcher looks for changes made by other processes.
const SETTINGS_POLL: Duration = Duration::from_millis(500);

/// The gateway's routes, with the guards in front of all of them.
pub fn router(state: GatewayState) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route("/health", get(handlers::health))
        .route("/v1/models", get(handlers::models))
        .route("/v1/models/{id}", get(handlers::model))
        .route("/v1/chat/completions", post(handlers::chat_completions))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/responses", post(handlers::responses))
        .route("/v1/embeddings", post(handlers::embeddings))
        .route("/v1/messages", post(handlers::messages))
        .route("/v1/messages/count_tokens", post(handlers::count_tokens))
        .fallback(handlers::not_found)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guards::guard,
        ))
        .with_state(state)
}

/// A coded error as an HTTP response in the client protocol's shape.
pub fn error_response(protocol: Protocol, err: &Error) -> Response {
    let (status, body) = protocol::encode_error(protocol, err);
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(body)).into_response()
}

/// How long a client may take to send a request's headers (slow-loris defence). It also
/// bounds how long an idle keep-alive connection stays open, as hyper starts the clock
/// when it waits for the next request (nginx keeps idle connections 75 s, Node 5 s;
/// clients reconnect transparently).
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Accept connections until `stop` fires, then let in-flight requests finish. Each
/// connection is served by hyper with a timer, so a client that opens a connection and
/// trickles (or never sends) its headers is cut off after `header_timeout`.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    app: Router,
    header_timeout: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(false);
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let svc = hyper_util::service::TowerToHyperService::new(app.clone());
                let mut closing = closing_rx.clone();
                conns.spawn(async move {
                    let conn = hyper::server::conn::http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_timeout)
                        .serve_connection(TokioIo::new(stream), svc);
                    let mut conn = std::pin::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = async { drop(closing.wait_for(|c| *c).await) } => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    while conns.join_next().await.is_some() {}
}

/// A running gateway: its address and a way to stop it.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<()>,
    /// The pool's control socket, kept (and removed) with the server.
    control: Option<crate::pool::control::Control>,
    /// The request log, for watching requests as they finish.
    pub requests: log::RequestLog,
    state: GatewayState,
}

impl Server {
    /// Keep the pool's control socket open as long as this server runs.
    pub fn attach_control(&mut self, control: Option<crate::pool::control::Control>) {
        self.control = control;
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests being answered now (a streaming answer counts until its last byte).
    pub fn in_flight(&self) -> usize {
        self.state.client_limits.in_flight()
    }

    /// Stop accepting, let in-flight requests finish, and wait.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

/// Bind `host:port` and serve the gateway until `shutdown()`.
pub async fn serve(state: GatewayState, host: IpAddr, port: u16) -> Result<Server> {
    if !host.is_loopback() {
        // Sharing on the network: whatever the loopback setting, every request needs a token.
        state.auth.force();
    }
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::AddrInUse {
                Code::PortInUse
            } else {
                Code::Io
            };
            Error::new(code, format!("cannot listen on {host}:{port}: {e}")).with_source(e)
        })?;
    let addr = listener.local_addr()?;
    state.port.store(addr.port(), Ordering::Relaxed);
    let header_timeout = state.options.header_read_timeout;
    let requests = state.log.clone();
    let app = router(state.clone());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(accept_loop(listener, app, header_timeout, rx));
    tracing::info!(%addr, "gateway listening");
    Ok(Server {
        addr,
        shutdown: Some(tx),
        task,
        control: None,
        requests,
        state,
    })
}
