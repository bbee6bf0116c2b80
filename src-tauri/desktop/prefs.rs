//! The UI-preferences store, `ui-prefs.json` in the data dir: the window's size and
//! position (kept here, from Rust) and the webview's last page and language (through
//! `prefs_get` / `prefs_set`, which reach only the keys in [`UI_KEYS`] of this one file
//! — the webview has no permission on the store plugin itself, so it can name no other
//! file). View state only: settings live in the database, never here.

use crate::app::SharedApp;
use crate::error::{Code, Error, Result};
use std::path::PathBuf;
use tauri::{LogicalSize, Manager, PhysicalPosition, PhysicalSize, Runtime, WebviewWindow, Window};
use tauri_plugin_store::StoreExt;

pub const STORE_FILE: &str = "ui-prefs.json";

fn store_path<R: Runtime, M: Manager<R>>(m: &M) -> Option<PathBuf> {
    Some(m.try_state::<SharedApp>()?.data_dir().join(STORE_FILE))
}
const KEY: &str = "window";
const POSITION_KEY: &str = "windowPosition";
/// Anything smaller than the window's minimum is a stale or hand-edited value.
const MIN: (f64, f64) = (720.0, 480.0);

/// Give the window its last size and position. A position is used only if the window's
/// top edge would be on a screen there now (a monitor may be gone since).
pub fn restore_window<R: Runtime>(app: &tauri::AppHandle<R>, window: &WebviewWindow<R>) {
    let Some(path) = store_path(app) else { return };
    let Ok(store) = app.store(path) else { return };
    if let Some(v) = store.get(KEY)
        && let (Some(w), Some(h)) = (v["width"].as_f64(), v["height"].as_f64())
        && w >= MIN.0
        && h >= MIN.1
        && w <= 10_000.0
        && h <= 10_000.0
    {
        let _ = window.set_size(LogicalSize::new(w, h));
    }
    let Some(v) = store.get(POSITION_KEY) else {
        return;
    };
    let (Some(x), Some(y)) = (v["x"].as_i64(), v["y"].as_i64()) else {
        return;
    };
    let on_screen = window
        .available_monitors()
        .unwrap_or_default()
        .iter()
        .any(|m| {
            let (p, s) = (m.position(), m.size());
            // A grip of the title bar must be reachable: 40 px in from the left, 10 down.
            let (gx, gy) = (x.saturating_add(40), y.saturating_add(10));
            gx >= i64::from(p.x)
                && gy >= i64::from(p.y)
                && gx < i64::from(p.x) + i64::from(s.width)
                && gy < i64::from(p.y) + i64::from(s.height)
        });
    if on_screen && let (Ok(x), Ok(y)) = (i32::try_from(x), i32::try_from(y)) {
        let _ = window.set_position(PhysicalPosition::new(x, y));
    }
}

pub fn remember_window_position<R: Runtime>(window: &Window<R>, at: PhysicalPosition<i32>) {
    // A minimized or hidden window may report a position far off every screen; only
    // what the user can see is worth restoring.
    if window.is_minimized().unwrap_or(false) || !window.is_visible().unwrap_or(true) {
        return;
    }
    let Some(path) = store_path(window) else {
        return;
    };
    if let Ok(store) = window.app_handle().store(path) {
        store.set(POSITION_KEY, serde_json::json!({ "x": at.x, "y": at.y }));
    }
}

pub fn remember_window_size<R: Runtime>(window: &Window<R>, size: PhysicalSize<u32>) {
    // Minimizing reports 0×0 on some platforms; that is not a size to restore.
    if size.width == 0 || size.height == 0 {
        return;
    }
    let scale = window.scale_factor().unwrap_or(1.0);
    let logical: LogicalSize<f64> = size.to_logical(scale);
    let Some(path) = store_path(window) else {
        return;
    };
    if let Ok(store) = window.app_handle().store(path) {
        store.set(
            KEY,
            serde_json::json!({ "width": logical.width, "height": logical.height }),
        );
    }
}

/// The preferences the webview may read and write, and the longest value it may store.
pub const UI_KEYS: &[&str] = &["lastPage", "locale"];
const UI_VALUE_BYTES: usize = 64;

fn ui_key(key: &str) -> Result<&'static str> {
    UI_KEYS.iter().copied().find(|k| *k == key).ok_or_else(|| {
        Error::new(
            Code::InvalidArgument,
            format!(
                "{:?} is not a UI preference",
                crate::gateway::log::printable(key, 40)
            ),
        )
    })
}

fn open<R: Runtime>(
    app: &tauri::AppHandle<R>,
) -> Result<std::sync::Arc<tauri_plugin_store::Store<R>>> {
    let path = store_path(app).ok_or_else(|| Error::internal("the core is not running"))?;
    app.store(path)
        .map_err(|e| Error::new(Code::Io, format!("cannot open the UI preferences: {e}")))
}

pub fn ui_get<R: Runtime>(app: &tauri::AppHandle<R>, key: &str) -> Result<Option<String>> {
    let key = ui_key(key)?;
    Ok(open(app)?
        .get(key)
        .and_then(|v| v.as_str().map(str::to_string)))
}

pub fn ui_set<R: Runtime>(app: &tauri::AppHandle<R>, key: &str, value: String) -> Result<()> {
    let key = ui_key(key)?;
    if value.len() > UI_VALUE_BYTES {
        return Err(Error::new(
            Code::InvalidArgument,
            format!("a UI preference holds at most {UI_VALUE_BYTES} bytes"),
        ));
    }
    let store = open(app)?;
    store.set(key, serde_json::Value::String(value));
    store
        .save()
        .map_err(|e| Error::new(Code::Io, format!("cannot save the UI preferences: {e}")))
}
