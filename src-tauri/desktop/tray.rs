//! The menu-bar (tray) icon and its menu: Open Switchyard, a status line (where the
//! gateway listens, or why it does not), the models the pool has loaded (with their
//! memory, following the pool's events), Quit.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

const TRAY_ICON: &[u8] = include_bytes!("../../icons/tray.png");
const TRAY_ID: &str = "main";

/// The status line's menu item, kept to update its text.
struct StatusItem<R: Runtime>(MenuItem<R>);

/// The loaded-models line.
struct ModelsItem<R: Runtime>(MenuItem<R>);

pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Switchyard", true, None::<&str>)?;
    let status = MenuItem::with_id(app, "status", "Gateway: starting…", false, None::<&str>)?;
    let models = MenuItem::with_id(app, "models", "No model loaded", false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Switchyard", true, Some("CmdOrCtrl+Q"))?;
    let menu = Menu::with_items(
        app,
        &[
            &open,
            &status,
            &models,
            &PredefinedMenuItem::separator(app)?,
            &quit,
        ],
    )?;
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(TRAY_ICON)?)
        // A template image: macOS tints it for light/dark menu bars.
        .icon_as_template(true)
        .tooltip(format!("Switchyard {}", env!("CARGO_PKG_VERSION")))
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "open" => super::show_main_window(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;
    app.manage(StatusItem(status));
    app.manage(ModelsItem(models));
    Ok(())
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
    if let Some(item) = app.try_state::<ModelsItem<R>>()
        && let Err(e) = item.0.set_text(line)
    {
        tracing::warn!("could not update the tray's model line: {e}");
    }
    tracing::info!("tray models: {line}");
}

/// Show `line` as the menu's status line and in the icon's tooltip.
pub fn set_status<R: Runtime>(app: &AppHandle<R>, line: &str) {
    if let Some(item) = app.try_state::<StatusItem<R>>()
        && let Err(e) = item.0.set_text(line)
    {
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
