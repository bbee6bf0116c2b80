//! The running pool's control socket: how `switchyard models load|unload` and `pool
//! show` in one process reach the pool that lives in another (`serve` or the app).
//!
//! A Unix socket `pool.sock` in the data dir (mode 0600 inside the 0700 data dir: only
//! its owner connects). One JSON request line, one JSON answer line:
//! `{"op":"show"}` → `{"ok":[LoadedModel…]}`, `{"op":"load"|"unload","model":M}` →
//! `{"ok":LoadedModel}`, errors as `{"error":{"code","message"}}`.

use super::{LoadedModel, Pool};
use crate::error::{Code, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("pool.sock")
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Show,
    Load { model: String },
    Unload { model: String },
}

/// A request line longer than this is refused (names are at most 200 bytes).
const MAX_LINE: usize = 4096;

/// Serving the socket; dropping it stops and removes the socket.
pub struct Control {
    path: PathBuf,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Control {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serve `pool` on the data dir's socket. `None` when another live process serves it
/// already (two gateways on one data dir: the first keeps it) or sockets are not
/// available here.
#[cfg(unix)]
pub fn serve(pool: &Arc<Pool>, data_dir: &Path) -> Option<Control> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        tracing::warn!(
            "another Switchyard process serves {}; `models load` reaches that one",
            path.display()
        );
        return None;
    }
    // A stale socket of a process that died, or anything else planted there.
    let _ = std::fs::remove_file(&path);
    let listener = match tokio::net::UnixListener::bind(&path) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("cannot serve the pool socket {}: {e}", path.display());
            return None;
        }
    };
    let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    let weak = Arc::downgrade(pool);
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let Some(pool) = weak.upgrade() else { return };
            tokio::spawn(async move {
                let _ = answer(pool, stream).await;
            });
        }
    });
    Some(Control { path, task })
}

#[cfg(not(unix))]
pub fn serve(_pool: &Arc<Pool>, _data_dir: &Path) -> Option<Control> {
    None
}

#[cfg(unix)]
async fn answer(pool: Arc<Pool>, stream: tokio::net::UnixStream) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (r, mut w) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(r).take(MAX_LINE as u64);
    let read = reader.read_line(&mut line);
    let reply = match tokio::time::timeout(std::time::Duration::from_secs(10), read).await {
        Ok(Ok(_)) => match serde_json::from_str::<Request>(line.trim()) {
            Ok(req) => run(&pool, req).await,
            Err(e) => Err(Error::invalid(format!("bad pool request: {e}"))),
        },
        _ => Err(Error::invalid("no pool request")),
    };
    let doc = match reply {
        Ok(v) => serde_json::json!({ "ok": v }),
        Err(e) => serde_json::json!({ "error": e.to_json() }),
    };
    w.write_all(format!("{doc}\n").as_bytes()).await?;
    w.shutdown().await
}

async fn run(pool: &Arc<Pool>, req: Request) -> Result<serde_json::Value> {
    Ok(match req {
        Request::Show => serde_json::to_value(pool.loaded())?,
        Request::Load { model } => serde_json::to_value(pool.load(&model).await?)?,
        Request::Unload { model } => serde_json::to_value(pool.unload(&model).await?)?,
    })
}

/// Ask the pool of the process serving `data_dir`; `Ok(None)` when none runs.
#[cfg(unix)]
pub async fn call(data_dir: &Path, req: &Request) -> Result<Option<serde_json::Value>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let path = socket_path(data_dir);
    let mut stream = match tokio::net::UnixStream::connect(&path).await {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    let io = |e: std::io::Error| Error::new(Code::Io, format!("pool socket: {e}"));
    let line = serde_json::to_string(req)?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .map_err(io)?;
    let mut buf = Vec::new();
    stream
        .take(64 << 20)
        .read_to_end(&mut buf)
        .await
        .map_err(io)?;
    let doc: serde_json::Value = serde_json::from_slice(&buf)
        .map_err(|e| Error::internal(format!("bad answer on the pool socket: {e}")))?;
    if let Some(err) = doc.get("error") {
        let code = err["code"].as_str().unwrap_or("internal");
        let message = err["message"].as_str().unwrap_or("").to_string();
        return Err(Error::new(
            Code::parse(code).unwrap_or(Code::Internal),
            message,
        ));
    }
    Ok(Some(doc["ok"].clone()))
}

#[cfg(not(unix))]
pub async fn call(_data_dir: &Path, _req: &Request) -> Result<Option<serde_json::Value>> {
    Ok(None)
}

/// The loaded models of the running process, `None` when none runs.
pub async fn loaded(data_dir: &Path) -> Result<Option<Vec<LoadedModel>>> {
    match call(data_dir, &Request::Show).await? {
        Some(v) => Ok(Some(serde_json::from_value(v).map_err(|e| {
            Error::internal(format!("bad answer on the pool socket: {e}"))
        })?)),
        None => Ok(None),
    }
}

/// The error for a command that needs the running pool.
pub fn not_running(data_dir: &Path) -> Error {
    Error::new(
        Code::GatewayNotRunning,
        format!(
            "no Switchyard gateway is running with the data dir {}: models are loaded by the process that serves them; start `switchyard serve` (or the app) first",
            data_dir.display()
        ),
    )
}
