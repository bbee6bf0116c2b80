//! The menu-bar (tray) icon and its menu: Open Switchyard, a status line (where the
//! gateway listens — a click copies the URL — or why it does not), the models the pool
//! has loaded (with their memory, following the pool's events), Start / Stop Gateway,
//! Quit. The icon's badge shows the state (see [`crate::ipc::tray`]).

use crate::ipc::GatewayStatus;
use crate::ipc::tray::{TrayState, tray_icon};
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt;

const TRAY_ICON: &[u8] = include_bytes!("../../icons/tray.png");
const TRAY_ID: &str = "main";

/// The menu's items whose text or state follows the gateway, and the idle icon's pixels.
struct TrayItems<R: Runtime> {
    status: MenuItem<R>,
    models: MenuItem<R>,
    toggle: MenuItem<R>,
    /// The URL the status line copies (empty while the gateway does not run).
    url: std::sync::Mutex<String>,
    base: Image<'static>,
}

pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Switchyard", true, None::<&str>)?;
    let status = MenuItem::with_id(app, "status", "Gateway: starting…", false, None::<&str>)?;
    let models = MenuItem::with_id(app, "models", "No model loaded", false, None::<&str>)?;
    let toggle = MenuItem::with_id(app, "toggle", "Stop Gateway", false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Switchyard", true, Some("CmdOrCtrl+Q"))?;
    let menu = Menu::with_items(
        app,
        &[
            &open,
            &PredefinedMenuItem::separator(app)?,
            &status,
            &models,
            &toggle,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    let base = Image::from_bytes(TRAY_ICON)?.to_owned();
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(base.clone())
        // A template image: macOS tints it for light/dark menu bars.
        .icon_as_template(true)
        .tooltip(format!("Switchyard {}", env!("CARGO_PKG_VERSION")))
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "open" => super::show_main_window(app),
            "status" => copy_url(app),
            "toggle" => toggle_gateway(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;
    app.manage(TrayItems {
        status,
        models,
        toggle,
        url: Default::default(),
        base,
    });
    Ok(())
}

fn copy_url<R: Runtime>(app: &AppHandle<R>) {
    let Some(items) = app.try_state::<TrayItems<R>>() else {
        return;
    };
    let url = items.url.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if url.is_empty() {
        return;
    }
    match app.clipboard().write_text(url) {
        Ok(()) => tracing::info!("tray: copied the gateway URL"),
        Err(e) => tracing::warn!("could not copy the gateway URL: {e}"),
    }
}

/// Stop a running gateway, start a stopped (or failed) one.
fn toggle_gateway<R: Runtime>(app: &AppHandle<R>) {
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        let status = app.state::<super::gateway::GatewayHandle>().status();
        if matches!(status, GatewayStatus::Running { .. }) {
            super::gateway::halt(&app).await;
        } else {
            let core = app.state::<crate::app::SharedApp>().inner().clone();
            super::gateway::launch(&app, core).await;
        }
    });
}

/// The loaded-models line for `loaded`: `No model loaded`, or `Loaded: a (94 MB), b (1.2 GB)`.
pub fn models_line(loaded: &[crate::pool::LoadedModel]) -> String {
    if loaded.is_empty() {
        return "No model loaded".into();
    }
    let size = |b: u64| {
        if b >= 1 << 30 {
            format!("{:.1} GB", b as f64 / (1u64 << 30) as f64)
        } else {
            format!("{} MB", b >> 20)
        }
    };
    let names: Vec<String> = loaded
        .iter()
        .map(|m| {
            format!(
                "{}{} ({})",
                m.name,
                if m.pinned { " [pinned]" } else { "" },
                size(m.bytes_estimated.max(m.bytes_measured))
            )
        })
        .collect();
    format!("Loaded: {}", names.join(", "))
}

/// Show the loaded models in the menu.
pub fn set_models<R: Runtime>(app: &AppHandle<R>, line: &str) {
    if let Some(items) = app.try_state::<TrayItems<R>>()
        && let Err(e) = items.models.set_text(line)
    {
        tracing::warn!("could not update the tray's model line: {e}");
    }
    tracing::info!("tray models: {line}");
}

/// Show `line` as the menu's status line and in the icon's tooltip; the status line
/// copies the URL while the gateway runs, and the Start / Stop item follows `status`.
pub fn set_status<R: Runtime>(app: &AppHandle<R>, line: &str, status: &GatewayStatus) {
    if let Some(items) = app.try_state::<TrayItems<R>>() {
        let url = match status {
            GatewayStatus::Running { url, .. } => url.clone(),
            _ => String::new(),
        };
        let (toggle, enabled) = match status {
            GatewayStatus::Running { .. } => ("Stop Gateway", true),
            GatewayStatus::Starting { .. } => ("Stop Gateway", false),
            GatewayStatus::Failed { .. } | GatewayStatus::Stopped { .. } => ("Start Gateway", true),
        };
        let updated = items
            .status
            .set_text(line)
            .and_then(|()| items.status.set_enabled(!url.is_empty()))
            .and_then(|()| items.toggle.set_text(toggle))
            .and_then(|()| items.toggle.set_enabled(enabled));
        if let Err(e) = updated {
            tracing::warn!("could not update the tray status line: {e}");
        }
        *items.url.lock().unwrap_or_else(|p| p.into_inner()) = url;
    }
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(format!(
            "Switchyard {} — {line}",
            env!("CARGO_PKG_VERSION")
        )));
    }
    tracing::info!("tray status: {line}");
}

/// Draw the icon for `state`.
pub fn set_icon<R: Runtime>(app: &AppHandle<R>, state: TrayState) {
    let (Some(items), Some(tray)) = (app.try_state::<TrayItems<R>>(), app.tray_by_id(TRAY_ID))
    else {
        return;
    };
    let base = &items.base;
    let px = tray_icon(base.rgba(), base.width(), state);
    let set = tray
        .set_icon(Some(Image::new_owned(px, base.width(), base.height())))
        // Setting an icon resets the template flag on macOS.
        .and_then(|()| tray.set_icon_as_template(true));
    if let Err(e) = set {
        tracing::warn!("could not update the tray icon: {e}");
    }
    tracing::info!("tray icon: {}", state.label());
}
