//! Tauri commands: thin adapters from the UI to the core. Each parses its input,
//! calls the same service the CLI calls, and returns the result or the core's
//! coded [`Error`] (serialized as `{code, message}`). No command returns a secret.

use crate::app::{AppInfo, SharedApp};
use crate::error::Error;
use tauri::State;

/// Version, data dir and schema version: what the Dashboard shows.
#[tauri::command]
pub async fn app_info(app: State<'_, SharedApp>) -> Result<AppInfo, Error> {
    app.info().await
}
