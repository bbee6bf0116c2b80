//! Window-size persistence in the UI-preferences store: `ui-prefs.json` in the data
//! dir, shared with the webview's last-page preference (ui/src/lib/prefs.ts). View
//! state only: settings live in the database, never here.

use crate::app::SharedApp;
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
