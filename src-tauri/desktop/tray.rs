//! The menu-bar (tray) icon and its menu: Open Switchyard, a status line (where the
//! gateway listens — a click copies the URL — or why it does not), the models the pool
//! has loaded (with their memory, following the pool's events), Start / Stop Gateway,
//! Quit. The icon's badge shows the state, and the menu speaks the window's language
//! (see [`crate::ipc::tray`]).

use crate::ipc::GatewayStatus;
use crate::ipc::tray::{self, TrayState, Words, tray_icon};
use crate::pool::LoadedModel;
use std::sync::Mutex;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};
use tauri_plugin_clipboard_manager::ClipboardExt;

const TRAY_ICON: &[u8] = include_bytes!("../../icons/tray.png");
const TRAY_ID: &str = "main";

/// The menu's items whose text or state follows the gateway or the language, what they
/// show, and the idle icon's pixels.
struct TrayItems<R: Runtime> {
    open: MenuItem<R>,
    status: MenuItem<R>,
    models: MenuItem<R>,
    toggle: MenuItem<R>,
    quit: MenuItem<R>,
    shown: Mutex<Shown>,
    base: Image<'static>,
}

/// What the menu shows, kept to say it again in another language.
struct Shown {
    words: &'static Words,
    status: GatewayStatus,
    tokens_off: bool,
    loaded: Vec<LoadedModel>,
}

pub fn build<R: Runtime>(app: &AppHandle<R>, status: GatewayStatus) -> tauri::Result<()> {
    let w = &tray::EN;
    let line = w.status_line(&status, false);
    let open = MenuItem::with_id(app, "open", w.open, true, None::<&str>)?;
    let status_item = MenuItem::with_id(app, "status", line, false, None::<&str>)?;
    let models = MenuItem::with_id(app, "models", w.models_line(&[]), false, None::<&str>)?;
    let toggle = MenuItem::with_id(app, "toggle", w.stop, false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", w.quit, true, Some("CmdOrCtrl+Q"))?;
    let menu = Menu::with_items(
        app,
        &[
            &open,
            &PredefinedMenuItem::separator(app)?,
            &status_item,
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
        open,
        status: status_item,
        models,
        toggle,
        quit,
        shown: Mutex::new(Shown {
            words: w,
            status,
            tokens_off: false,
            loaded: Vec::new(),
        }),
        base,
    });
    Ok(())
}

fn shown<R: Runtime>(items: &TrayItems<R>) -> std::sync::MutexGuard<'_, Shown> {
    items.shown.lock().unwrap_or_else(|p| p.into_inner())
}

fn copy_url<R: Runtime>(app: &AppHandle<R>) {
    let Some(items) = app.try_state::<TrayItems<R>>() else {
        return;
    };
    let GatewayStatus::Running { url, .. } = shown(&items).status.clone() else {
        return;
    };
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

/// Show the loaded models in the menu.
pub fn set_models<R: Runtime>(app: &AppHandle<R>, loaded: Vec<LoadedModel>) {
    let Some(items) = app.try_state::<TrayItems<R>>() else {
        return;
    };
    let line = {
        let mut shown = shown(&items);
        shown.loaded = loaded;
        shown.words.models_line(&shown.loaded)
    };
    if let Err(e) = items.models.set_text(&line) {
        tracing::warn!("could not update the tray's model line: {e}");
    }
    tracing::info!("tray models: {line}");
}

/// Show the gateway's status: the menu's status line (which copies the URL while the
/// gateway runs), the icon's tooltip, and the Start / Stop item. `tokens_off`: loopback
/// clients need no client token.
pub fn set_status<R: Runtime>(app: &AppHandle<R>, status: &GatewayStatus, tokens_off: bool) {
    let Some(items) = app.try_state::<TrayItems<R>>() else {
        return;
    };
    let words = {
        let mut shown = shown(&items);
        shown.status = status.clone();
        shown.tokens_off = tokens_off;
        shown.words
    };
    show_status(app, &items, words, status, tokens_off);
}

fn show_status<R: Runtime>(
    app: &AppHandle<R>,
    items: &TrayItems<R>,
    words: &Words,
    status: &GatewayStatus,
    tokens_off: bool,
) {
    let line = words.status_line(status, tokens_off);
    let (toggle, enabled) = match status {
        GatewayStatus::Running { .. } => (words.stop, true),
        GatewayStatus::Starting { .. } => (words.stop, false),
        GatewayStatus::Failed { .. } | GatewayStatus::Stopped { .. } => (words.start, true),
    };
    let running = matches!(status, GatewayStatus::Running { .. });
    let updated = items
        .status
        .set_text(&line)
        .and_then(|()| items.status.set_enabled(running))
        .and_then(|()| items.toggle.set_text(toggle))
        .and_then(|()| items.toggle.set_enabled(enabled));
    if let Err(e) = updated {
        tracing::warn!("could not update the tray status line: {e}");
    }
    if let Some(tray) = app.tray_by_id(TRAY_ID) {
        let _ = tray.set_tooltip(Some(format!(
            "Switchyard {} — {line}",
            env!("CARGO_PKG_VERSION")
        )));
    }
    tracing::info!("tray status: {line}");
}

/// Say the menu in the window's language (`en`, `ja`; another is English).
pub fn set_locale<R: Runtime>(app: &AppHandle<R>, locale: &str) {
    let Some(items) = app.try_state::<TrayItems<R>>() else {
        return;
    };
    let words = Words::for_locale(locale);
    let (status, tokens_off, models) = {
        let mut shown = shown(&items);
        if std::ptr::eq(shown.words, words) {
            return;
        }
        shown.words = words;
        (
            shown.status.clone(),
            shown.tokens_off,
            words.models_line(&shown.loaded),
        )
    };
    let updated = items
        .open
        .set_text(words.open)
        .and_then(|()| items.quit.set_text(words.quit))
        .and_then(|()| items.models.set_text(&models));
    if let Err(e) = updated {
        tracing::warn!("could not change the tray menu's language: {e}");
    }
    show_status(app, &items, words, &status, tokens_off);
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
