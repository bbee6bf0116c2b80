//! The desktop shell: tray (menu-bar) icon, main window, Tauri commands, and the
//! gateway running inside the app.
//!
//! This is the ONLY module that uses tauri (architecture invariant 2): everything
//! it does is call the core through [`commands`] and show the result. Closing the
//! window keeps the app running in the tray; Quit in the tray menu ends it. On macOS
//! the app has no Dock icon (Accessory activation policy + `LSUIElement`); opening the
//! app again while it runs (a double click in Finder: the `Reopen` event; elsewhere a
//! second launch, handed over by the single-instance plugin) shows the window.

mod commands;
mod gateway;
mod prefs;
mod tray;

use crate::app::{App, AppOptions};
use crate::engine::CancelToken;
use crate::error::{Code, Error, Result};
use tauri::Manager;

pub const MAIN_WINDOW: &str = "main";

/// Start the desktop app; returns when the user quits. `background`: only the menu-bar
/// icon, the window stays closed until asked for (launch at login).
pub fn run(opts: AppOptions, background: bool) -> Result<()> {
    let app = tauri::async_runtime::block_on(App::open(opts))?;
    tracing::info!(data_dir = %app.data_dir().display(), "starting the desktop app");

    tauri::Builder::default()
        // First plugin on purpose: a second launch must hand over before anything else starts.
        .plugin(tauri_plugin_single_instance::init(|handle, argv, _cwd| {
            tracing::info!(
                args = argv.len(),
                "second instance launched: focusing the main window"
            );
            show_main_window(handle);
        }))
        .plugin(tauri_plugin_store::Builder::new().build())
        .plugin(tauri_plugin_clipboard_manager::init())
        .plugin(
            tauri_plugin_autostart::Builder::new()
                .app_name("Switchyard")
                .arg("--background")
                .build(),
        )
        .manage(app.clone())
        .manage(gateway::GatewayHandle::starting())
        .manage(Pulls::default())
        // Keep in sync with COMMANDS in src-tauri/build.rs and the capability in
        // tauri.conf.json (the ipc tests check all three).
        .invoke_handler(tauri::generate_handler![
            commands::app_info,
            commands::provider_list,
            commands::provider_upsert,
            commands::provider_remove,
            commands::provider_test,
            commands::rule_list,
            commands::rule_add,
            commands::rule_update,
            commands::rule_remove,
            commands::rule_move,
            commands::rule_reorder,
            commands::rule_set_enabled,
            commands::rule_test,
            commands::pool_show,
            commands::pool_set,
            commands::keys_status,
            commands::keys_rotate_data,
            commands::keys_rotate_root,
            commands::backup_export,
            commands::backup_preview,
            commands::backup_import,
            commands::models_list,
            commands::models_import,
            commands::models_remove,
            commands::models_load,
            commands::models_unload,
            commands::models_pull,
            commands::models_pull_cancel,
            commands::models_pin,
            commands::token_list,
            commands::token_issue,
            commands::token_revoke,
            commands::token_auth,
            commands::token_first_run,
            commands::token_first_run_dismiss,
            commands::logs_tail,
            commands::logs_minutes,
            commands::gateway_status,
            commands::gateway_start,
            commands::gateway_stop,
            commands::autostart_get,
            commands::autostart_set,
            commands::ui_locale,
            commands::prefs_get,
            commands::prefs_set,
        ])
        .setup(move |tauri_app| {
            #[cfg(target_os = "macos")]
            tauri_app.set_activation_policy(tauri::ActivationPolicy::Accessory);
            tray::build(
                tauri_app.handle(),
                tauri_app.state::<gateway::GatewayHandle>().status(),
            )?;
            if let Some(window) = tauri_app.get_webview_window(MAIN_WINDOW) {
                prefs::restore_window(tauri_app.handle(), &window);
                if !background {
                    let _ = window.show();
                }
            }
            gateway::start(tauri_app.handle().clone(), app.clone());
            Ok(())
        })
        .on_window_event(|window, event| match event {
            tauri::WindowEvent::CloseRequested { api, .. } if window.label() == MAIN_WINDOW => {
                // The app lives in the menu bar: closing the window only hides it.
                api.prevent_close();
                let _ = window.hide();
            }
            tauri::WindowEvent::Resized(size) if window.label() == MAIN_WINDOW => {
                prefs::remember_window_size(window, *size);
            }
            tauri::WindowEvent::Moved(at) if window.label() == MAIN_WINDOW => {
                prefs::remember_window_position(window, *at);
            }
            _ => {}
        })
        .build(tauri::generate_context!())
        .map_err(|e| Error::new(Code::Internal, format!("the desktop app failed: {e}")))?
        .run(|handle, event| match event {
            tauri::RunEvent::Exit => gateway::stop(handle),
            // The app opened again from Finder or the Dock while it runs.
            #[cfg(target_os = "macos")]
            tauri::RunEvent::Reopen { .. } => show_main_window(handle),
            _ => {}
        });
    Ok(())
}

/// The pulls running in this app, by repo, so the UI can cancel them.
#[derive(Default)]
pub struct Pulls(std::sync::Mutex<std::collections::HashMap<String, CancelToken>>);

impl Pulls {
    pub(crate) fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, CancelToken>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Show, un-minimize and focus the main window (tray "Open", second launch).
pub fn show_main_window<R: tauri::Runtime>(handle: &tauri::AppHandle<R>) {
    if let Some(w) = handle.get_webview_window(MAIN_WINDOW) {
        let _ = w.show();
        let _ = w.unminimize();
        let _ = w.set_focus();
    }
}
