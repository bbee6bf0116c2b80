//! The gateway inside the desktop app: started with it on 127.0.0.1 (port from
//! `SWITCHYARD_GATEWAY_PORT`, default 8399, 0 = any free port), stopped and started
//! again from the tray or the window, its status kept in managed state for the
//! `gateway_status` command, pushed to the UI as the `gateway-status` event, and shown
//! in the tray's status line and icon. A gateway that cannot start (port in use, bad
//! port setting) is a status, not a failure of the app.
//!
//! Stopping closes the port and drops the server with its model pool, so the memory of
//! the loaded models comes back; starting again builds both anew (preloads included).

use crate::app::SharedApp;
use crate::gateway::Server;
use crate::ipc::tray::{TrayState, tray_state};
use crate::ipc::{self, GATEWAY_PORT_ENV, GatewayStatus};
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;
use tauri::{AppHandle, Emitter, Manager, Runtime};

/// The event the Dashboard listens to; its payload is a [`GatewayStatus`].
pub const STATUS_EVENT: &str = "gateway-status";

/// The event the Pool and Models pages listen to; its payload is a [`crate::pool::PoolEvent`].
pub const POOL_EVENT: &str = "pool-event";

/// The event the Dashboard listens to: a request finished; its payload is an
/// [`ipc::RequestRow`].
pub const REQUEST_EVENT: &str = "request-event";

/// A request finished this recently still shows the tray icon as serving, so a burst of
/// short requests reads as activity rather than a flicker.
const SERVING_LINGER_MS: i64 = 2_000;

/// How often the tray icon's state is worked out.
const ICON_TICK: Duration = Duration::from_millis(500);

/// Managed state: the gateway's status and the running server (dropping the
/// server would stop it, so it lives here until it is stopped or the app exits).
pub struct GatewayHandle {
    status: RwLock<GatewayStatus>,
    server: Mutex<Option<Server>>,
    /// The `default` token issued by this start, until the user dismissed it in the
    /// Dashboard (kept in this process's memory only; never written anywhere).
    first_token: Mutex<Option<crate::tokens::Issued>>,
    /// Bumped by every start and stop: the watchers of an earlier start end.
    generation: AtomicU64,
    /// One start or stop at a time (the tray and the window may ask together).
    switching: tokio::sync::Mutex<()>,
    /// Models the pool is loading now.
    loading: AtomicUsize,
    /// When the last request finished (ms since the epoch).
    last_request_ms: AtomicI64,
}

impl GatewayHandle {
    pub fn starting() -> Self {
        GatewayHandle {
            status: RwLock::new(GatewayStatus::Starting {
                host: "127.0.0.1".into(),
                port: configured_port(),
            }),
            server: Mutex::new(None),
            first_token: Mutex::new(None),
            generation: AtomicU64::new(0),
            switching: tokio::sync::Mutex::new(()),
            loading: AtomicUsize::new(0),
            last_request_ms: AtomicI64::new(0),
        }
    }

    /// The first-run token, while the user has not dismissed it.
    pub fn first_token(&self) -> Option<crate::tokens::Issued> {
        self.first_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Forget the first-run token (the user stored it).
    pub fn dismiss_first_token(&self) {
        self.first_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    pub fn status(&self) -> GatewayStatus {
        self.status
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, status: GatewayStatus, server: Option<Server>) {
        *self.status.write().unwrap_or_else(PoisonError::into_inner) = status;
        *self.server.lock().unwrap_or_else(PoisonError::into_inner) = server;
    }

    fn take_server(&self) -> Option<Server> {
        self.server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    fn current(&self, generation: u64) -> bool {
        self.generation.load(Ordering::Acquire) == generation
    }

    /// What the tray icon should show now.
    fn tray_state(&self) -> TrayState {
        let in_flight = self
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .map_or(0, Server::in_flight);
        let recent = crate::store::now_ms() - self.last_request_ms.load(Ordering::Relaxed)
            < SERVING_LINGER_MS;
        tray_state(
            &self.status(),
            self.loading.load(Ordering::Relaxed) > 0,
            in_flight > 0 || recent,
        )
    }
}

/// The port the app's gateway is asked to listen on (a bad setting shows when it starts).
fn configured_port() -> u16 {
    std::env::var(GATEWAY_PORT_ENV)
        .ok()
        .and_then(|v| ipc::gateway_port(Some(&v)).ok())
        .unwrap_or(crate::DEFAULT_PORT)
}

/// Tell the window and the tray what the gateway's status is now.
fn publish<R: Runtime>(handle: &AppHandle<R>, status: &GatewayStatus, tokens_off: bool) {
    super::tray::set_status(handle, status, tokens_off);
    if let Err(e) = handle.emit(STATUS_EVENT, status) {
        tracing::warn!("could not send the gateway status to the window: {e}");
    }
}

/// Start the gateway in the background (at app start); the status follows when known.
pub fn start<R: Runtime>(handle: AppHandle<R>, app: SharedApp) {
    watch_tray_icon(handle.clone());
    tauri::async_runtime::spawn(async move {
        launch(&handle, app).await;
    });
}

/// Start the gateway unless it runs; returns its status once known.
pub async fn launch<R: Runtime>(handle: &AppHandle<R>, app: SharedApp) -> GatewayStatus {
    let gw = handle.state::<GatewayHandle>();
    let _one = gw.switching.lock().await;
    if let status @ GatewayStatus::Running { .. } = gw.status() {
        return status;
    }
    let generation = gw.generation.fetch_add(1, Ordering::AcqRel) + 1;
    let port_env = std::env::var(GATEWAY_PORT_ENV).ok();
    let starting = GatewayStatus::Starting {
        host: "127.0.0.1".into(),
        port: configured_port(),
    };
    gw.set(starting.clone(), None);
    publish(handle, &starting, false);

    let (status, server, first) = ipc::start_gateway(app.clone(), port_env.as_deref()).await;
    if first.is_some() {
        *gw.first_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = first;
    }
    if let Some(pool) = app.pool() {
        forward_pool_events(handle.clone(), &pool, generation);
    }
    if let Some(server) = &server {
        forward_requests(handle.clone(), server.requests.subscribe(), generation);
    }
    let tokens_off = !crate::tokens::loopback_auth(&app.db).await.unwrap_or(true);
    match &status {
        GatewayStatus::Failed { error, .. } => {
            tracing::warn!(
                "the gateway is not running: error[{}]: {}",
                error.code,
                error.message
            )
        }
        _ => tracing::info!("gateway started"),
    }
    gw.set(status.clone(), server);
    publish(handle, &status, tokens_off);
    watch_token_setting(handle.clone(), app, status.clone(), tokens_off, generation);
    status
}

/// Stop the gateway: the port closes (in-flight requests get two seconds to finish) and
/// the pool's models are unloaded. Returns the new status.
pub async fn halt<R: Runtime>(handle: &AppHandle<R>) -> GatewayStatus {
    let gw = handle.state::<GatewayHandle>();
    let _one = gw.switching.lock().await;
    gw.generation.fetch_add(1, Ordering::AcqRel);
    if let Some(server) = gw.take_server() {
        let _ = tokio::time::timeout(Duration::from_secs(2), server.shutdown()).await;
        tracing::info!("gateway stopped by the user");
    }
    // Where a start will listen: the configured port, as `launch` uses it.
    let stopped = GatewayStatus::Stopped {
        host: "127.0.0.1".into(),
        port: configured_port(),
    };
    gw.loading.store(0, Ordering::Relaxed);
    gw.set(stopped.clone(), None);
    publish(handle, &stopped, false);
    super::tray::set_models(handle, Vec::new());
    stopped
}

/// Keep the tray's status line true to the client-token setting, which the window or
/// the CLI of another process may change at any time (read every 2 s), while this
/// start of the gateway lasts.
fn watch_token_setting<R: Runtime>(
    handle: AppHandle<R>,
    app: SharedApp,
    status: GatewayStatus,
    mut tokens_off: bool,
    generation: u64,
) {
    if !matches!(status, GatewayStatus::Running { .. }) {
        return;
    }
    tauri::async_runtime::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if !handle.state::<GatewayHandle>().current(generation) {
                return;
            }
            let Ok(on) = crate::tokens::loopback_auth(&app.db).await else {
                continue;
            };
            if on == tokens_off {
                tokens_off = !on;
                super::tray::set_status(&handle, &status, tokens_off);
            }
        }
    });
}

/// Every load, unload and eviction of the app's pool goes to the window as a
/// [`POOL_EVENT`] (the Pool and Models pages refresh on it), updates the tray's
/// loaded-models line and counts the loads under way for the tray icon, until the pool
/// is gone (the task holds it weakly) or the gateway is stopped.
fn forward_pool_events<R: Runtime>(
    handle: AppHandle<R>,
    pool: &std::sync::Arc<crate::pool::Pool>,
    generation: u64,
) {
    use crate::pool::PoolEventKind;
    use tokio::sync::broadcast::error::RecvError;
    let mut events = pool.subscribe();
    let weak = std::sync::Arc::downgrade(pool);
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ev) => {
                    let gw = handle.state::<GatewayHandle>();
                    if !gw.current(generation) {
                        break;
                    }
                    match ev.kind {
                        PoolEventKind::Loading => {
                            gw.loading.fetch_add(1, Ordering::Relaxed);
                        }
                        PoolEventKind::Loaded | PoolEventKind::LoadFailed => {
                            let _ = gw.loading.fetch_update(
                                Ordering::Relaxed,
                                Ordering::Relaxed,
                                |n| n.checked_sub(1),
                            );
                        }
                        PoolEventKind::Unloaded => {}
                    }
                    let _ = handle.emit(POOL_EVENT, &ev);
                    if let Some(p) = weak.upgrade() {
                        super::tray::set_models(&handle, p.loaded());
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Every finished gateway request goes to the window as a [`REQUEST_EVENT`] (the
/// Dashboard's live list and chart) and is noted for the tray icon, until the gateway
/// stops.
fn forward_requests<R: Runtime>(
    handle: AppHandle<R>,
    mut requests: tokio::sync::broadcast::Receiver<crate::gateway::log::Entry>,
    generation: u64,
) {
    use tokio::sync::broadcast::error::RecvError;
    tauri::async_runtime::spawn(async move {
        loop {
            match requests.recv().await {
                Ok(e) => {
                    let gw = handle.state::<GatewayHandle>();
                    if !gw.current(generation) {
                        break;
                    }
                    gw.last_request_ms
                        .store(crate::store::now_ms(), Ordering::Relaxed);
                    let _ = handle.emit(REQUEST_EVENT, ipc::RequestRow::from(&e));
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Work out the tray icon's state twice a second and redraw it when it changes, for
/// as long as the app runs.
fn watch_tray_icon<R: Runtime>(handle: AppHandle<R>) {
    tauri::async_runtime::spawn(async move {
        let mut shown = None;
        loop {
            let state = handle.state::<GatewayHandle>().tray_state();
            if shown != Some(state) {
                super::tray::set_icon(&handle, state);
                shown = Some(state);
            }
            tokio::time::sleep(ICON_TICK).await;
        }
    });
}

/// Stop accepting and give in-flight requests a moment to finish (on app exit).
pub fn stop<R: Runtime>(handle: &AppHandle<R>) {
    let Some(gw) = handle.try_state::<GatewayHandle>() else {
        return;
    };
    if let Some(server) = gw.take_server() {
        tauri::async_runtime::block_on(async {
            let _ = tokio::time::timeout(Duration::from_secs(2), server.shutdown()).await;
        });
    }
}
