//! The gateway inside the desktop app: started with it on 127.0.0.1 (port from
//! `SWITCHYARD_GATEWAY_PORT`, default 8399, 0 = any free port), its status kept in
//! managed state for the `gateway_status` command, pushed to the UI as the
//! `gateway-status` event, and shown in the tray's status line. A gateway that cannot
//! start (port in use, bad port setting) is a status, not a failure of the app.

use crate::app::SharedApp;
use crate::gateway::Server;
use crate::ipc::{self, GATEWAY_PORT_ENV, GatewayStatus};
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

/// Managed state: the gateway's status and the running server (dropping the
/// server would stop it, so it lives here until the app exits).
pub struct GatewayHandle {
    status: RwLock<GatewayStatus>,
    server: Mutex<Option<Server>>,
    /// The `default` token issued by this start, until the user dismissed it in the
    /// Dashboard (kept in this process's memory only; never written anywhere).
    first_token: Mutex<Option<crate::tokens::Issued>>,
}

impl GatewayHandle {
    pub fn starting() -> Self {
        let port = std::env::var(GATEWAY_PORT_ENV)
            .ok()
            .and_then(|v| ipc::gateway_port(Some(&v)).ok())
            .unwrap_or(crate::DEFAULT_PORT);
        GatewayHandle {
            status: RwLock::new(GatewayStatus::Starting {
                host: "127.0.0.1".into(),
                port,
            }),
            server: Mutex::new(None),
            first_token: Mutex::new(None),
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
}

/// Start the gateway in the background; the status follows when it is known.
pub fn start<R: Runtime>(handle: AppHandle<R>, app: SharedApp) {
    let port_env = std::env::var(GATEWAY_PORT_ENV).ok();
    tauri::async_runtime::spawn(async move {
        let (status, server, first) = ipc::start_gateway(app.clone(), port_env.as_deref()).await;
        if first.is_some() {
            *handle
                .state::<GatewayHandle>()
                .first_token
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = first;
        }
        if let Some(pool) = app.pool() {
            forward_pool_events(handle.clone(), &pool);
        }
        if let Some(server) = &server {
            forward_requests(handle.clone(), server.requests.subscribe());
        }
        let tokens_off = !crate::tokens::loopback_auth(&app.db).await.unwrap_or(true);
        let line = ipc::tray_line(&status, tokens_off);
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
        handle.state::<GatewayHandle>().set(status.clone(), server);
        super::tray::set_status(&handle, &line);
        if let Err(e) = handle.emit(STATUS_EVENT, &status) {
            tracing::warn!("could not send the gateway status to the window: {e}");
        }
        watch_token_setting(handle, app, status, tokens_off);
    });
}

/// Keep the tray's status line true to the client-token setting, which the window or
/// the CLI of another process may change at any time (read every 2 s).
fn watch_token_setting<R: Runtime>(
    handle: AppHandle<R>,
    app: SharedApp,
    status: GatewayStatus,
    mut tokens_off: bool,
) {
    if !matches!(status, GatewayStatus::Running { .. }) {
        return;
    }
    tauri::async_runtime::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let Ok(on) = crate::tokens::loopback_auth(&app.db).await else {
                continue;
            };
            if on == tokens_off {
                tokens_off = !on;
                super::tray::set_status(&handle, &ipc::tray_line(&status, tokens_off));
            }
        }
    });
}

/// Every load, unload and eviction of the app's pool goes to the window as a
/// [`POOL_EVENT`] (the Pool and Models pages refresh on it) and updates the tray's
/// loaded-models line, until the pool is gone (the task holds it weakly).
fn forward_pool_events<R: Runtime>(handle: AppHandle<R>, pool: &std::sync::Arc<crate::pool::Pool>) {
    use tokio::sync::broadcast::error::RecvError;
    let mut events = pool.subscribe();
    let weak = std::sync::Arc::downgrade(pool);
    tauri::async_runtime::spawn(async move {
        loop {
            match events.recv().await {
                Ok(ev) => {
                    let _ = handle.emit(POOL_EVENT, &ev);
                    if let Some(p) = weak.upgrade() {
                        super::tray::set_models(&handle, &super::tray::models_line(&p.loaded()));
                    }
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
        }
    });
}

/// Every finished gateway request goes to the window as a [`REQUEST_EVENT`] (the
/// Dashboard's live list and chart), until the gateway stops.
fn forward_requests<R: Runtime>(
    handle: AppHandle<R>,
    mut requests: tokio::sync::broadcast::Receiver<crate::gateway::log::Entry>,
) {
    use tokio::sync::broadcast::error::RecvError;
    tauri::async_runtime::spawn(async move {
        loop {
            match requests.recv().await {
                Ok(e) => {
                    let _ = handle.emit(REQUEST_EVENT, ipc::RequestRow::from(&e));
                }
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => break,
            }
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
