//! The UI-preferences store, `ui-prefs.json` in the data dir: the window size (kept
//! here, from Rust) and the webview's last page (through `prefs_get` / `prefs_set`,
//! which reach only the keys in [`UI_KEYS`] of this one file — the webview has no
//! permission on the store plugin itself, so it can name no other file). View state
//! only: settings live in the database, never here.

use crate::app::SharedApp;
use crate::error::{Code, Error, Result};
use std::path::PathBuf;
use tauri::{LogicalSize, Manager, PhysicalSize, Runtime, WebviewWindow, Window};
use tauri_plugin_store::StoreExt;

pub const STORE_FILE: &str = "ui-prefs.json";

fn store_path<R: Runtime, M: Manager<R>>(m: &M) -> Option<PathBuf> {
    Some(m.try_state::<SharedApp>()?.data_dir().join(STORE_FILE))
}
const KEY: &str = "window";
/// Anything smaller than the window's minimum is a stale or hand-edited value.
const MIN: (f64, f64) = (720.0, 480.0);

pub fn restore_window_size<R: Runtime>(app: &tauri::AppHandle<R>, window: &WebviewWindow<R>) {
    let Some(path) = store_path(app) else { return };
    let Ok(store) = app.store(path) else { return };
    let Some(v) = store.get(KEY) else { return };
    let (Some(w), Some(h)) = (v["width"].as_f64(), v["height"].as_f64()) else {
        return;
    };
    if w >= MIN.0 && h >= MIN.1 && w <= 10_000.0 && h <= 10_000.0 {
        let _ = window.set_size(LogicalSize::new(w, h));
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
pub const UI_KEYS: &[&str] = &["lastPage"];
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
