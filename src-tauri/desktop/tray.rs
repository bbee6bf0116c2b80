//! The menu-bar (tray) icon and its menu: Open Switchyard, a status line, Quit.

use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Runtime};

const TRAY_ICON: &[u8] = include_bytes!("../../icons/tray.png");

pub fn build<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let open = MenuItem::with_id(app, "open", "Open Switchyard", true, None::<&str>)?;
    let status = MenuItem::with_id(app, "status", status_line(), false, None::<&str>)?;
    let quit = MenuItem::with_id(app, "quit", "Quit Switchyard", true, Some("CmdOrCtrl+Q"))?;
    let menu = Menu::with_items(
        app,
        &[&open, &status, &PredefinedMenuItem::separator(app)?, &quit],
    )?;
    TrayIconBuilder::with_id("main")
        .icon(Image::from_bytes(TRAY_ICON)?)
        // A template image: macOS tints it for light/dark menu bars.
        .icon_as_template(true)
        .tooltip("Switchyard")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| match event.id().as_ref() {
            "open" => super::show_main_window(app),
            "quit" => app.exit(0),
            _ => {}
        })
        .build(app)?;
    Ok(())
}

fn status_line() -> String {
    format!(
        "Switchyard {} — gateway not running",
        env!("CARGO_PKG_VERSION")
    )
}
