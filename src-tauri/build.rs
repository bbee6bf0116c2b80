//! Build script: Tauri's code generation (desktop feature) and, on Linux, the link
//! path + rpath of the prebuilt libmlx.so that `scripts/fetch-mlx.sh` unpacks.

fn main() {
    println!("cargo:rerun-if-env-changed=MLX_PREFIX");
    println!("cargo:rerun-if-changed=src-tauri/build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        let prefix = std::env::var("MLX_PREFIX").expect(
            "MLX_PREFIX is unset: build through cargo from the repository (see .cargo/config.toml)",
        );
        let lib = std::path::Path::new(&prefix).join("lib");
        if !lib.join("libmlx.so").exists() {
            panic!(
                "{} has no libmlx.so: run scripts/fetch-mlx.sh (make deps does it)",
                lib.display()
            );
        }
        println!("cargo:rustc-link-search=native={}", lib.display());
        // The installed package's copy first (the .deb puts libmlx.so in
        // /usr/lib/switchyard/mlx/lib, see tauri.conf.json), then the build tree's.
        // libmlx.so finds its bundled BLAS through its own RPATH ($ORIGIN/../../mlx_cpu.libs).
        println!("cargo:rustc-link-arg=-Wl,-rpath,$ORIGIN/../lib/switchyard/mlx/lib");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    }
    #[cfg(feature = "desktop")]
    desktop();
}

/// Every Tauri command the UI may call is listed here; tauri-build generates an
/// `allow-<command>` permission for each, and tauri.conf.json's capability grants
/// exactly those. A command missing from this list cannot be invoked.
#[cfg(feature = "desktop")]
fn desktop() {
    const COMMANDS: &[&str] = &[
        "app_info",
        "provider_list",
        "provider_upsert",
        "provider_remove",
        "provider_test",
        "rule_list",
        "rule_add",
        "rule_update",
        "rule_remove",
        "rule_move",
        "rule_reorder",
        "rule_set_enabled",
        "rule_test",
        "pool_show",
        "pool_set",
        "keys_status",
        "keys_rotate_data",
        "keys_rotate_root",
        "backup_export",
        "backup_preview",
        "backup_import",
        "models_list",
        "models_import",
        "models_remove",
        "models_load",
        "models_unload",
        "models_pull",
        "models_pull_cancel",
        "models_pin",
        "token_list",
        "token_issue",
        "token_revoke",
        "token_auth",
        "token_first_run",
        "token_first_run_dismiss",
        "logs_tail",
        "logs_minutes",
        "gateway_status",
        "gateway_start",
        "gateway_stop",
        "autostart_get",
        "autostart_set",
        "ui_locale",
        "prefs_get",
        "prefs_set",
    ];
    tauri_build::try_build(
        tauri_build::Attributes::new()
            .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS)),
    )
    .expect("tauri-build failed");
}
