//! The menu-bar (tray) icon and its menu: Open Switchyard, a status line (where the
//! gateway listens, or why it does not), Quit.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};

const TRAY_ICON: &[u8] = include_bytes!("../../icons/tray.png");
const TRAY_ID: &str = "main";

/// The status line's menu item, kept to update its text.
struct StatusItem<R: Runtime>(MenuItem<R>);

pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Switchyard", true, None::<&str>)?;
    let status = MenuItem::with_id(app, "status", "Gateway: starting…", false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Switchyard", true, Some("CmdOrCtrl+Q"))?;
    let menu = Menu::with_items(
        app,
        &[&open, &status, &PredefinedMenuItem::separator(app)?, &quit],
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
    Ok(())
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
