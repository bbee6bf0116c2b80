//! Tauri commands: thin adapters from the UI to the core. Each parses its input,
//! calls the same service the CLI calls (as [`Actor::Ui`]), and returns the result or
//! the core's coded [`Error`] (serialized as `{code, message}`). Names mirror the
//! CLI (`provider_list` ↔ `switchyard provider list`).
//!
//! No command returns a stored secret: providers come back with `has_key` and at most a
//! 4-character `key_hint`; an API key only ever travels UI → core (`provider_upsert`).
//! The one exception is a client token at its birth (`token_issue`, and the first
//! run's `default` until dismissed), which the user must see once to use it.
//!
//! Every command here is listed in `src-tauri/build.rs` (`COMMANDS`) and granted in
//! `tauri.conf.json`'s capability; a test in `ipc` checks the three lists agree.

use super::Pulls;
use super::gateway::GatewayHandle;
use crate::app::{AppInfo, SharedApp};
use crate::engine::CancelToken;
use crate::error::Error;
use crate::ipc::{self, GatewayStatus, PoolSet, ProviderUpsert, RuleInput, RuleUpdate};
use crate::models::pull::{self, PullOutcome, PullProgress, PullSpec};
use crate::models::{self, ModelEntry};
use crate::settings::pool::{self, PoolView};
use crate::settings::providers::{self, Provider, TestOutcome, UpsertOutcome};
use crate::settings::rules::{self, Rule, RuleTest, Saved};
use crate::store::audit::Actor;
use crate::vault::{DataRotation, RootRotation, VaultStatus};
use std::path::PathBuf;
use tauri::State;

type App<'a> = State<'a, SharedApp>;
type Res<T> = Result<T, Error>;

/// Version, data dir and schema version: what the Dashboard shows.
#[tauri::command]
pub async fn app_info(app: App<'_>) -> Res<AppInfo> {
    app.info().await
}

// ------------------------------------------------------------------ providers

#[tauri::command]
pub async fn provider_list(app: App<'_>) -> Res<Vec<Provider>> {
    providers::list(&app).await
}

#[tauri::command]
pub async fn provider_upsert(app: App<'_>, input: ProviderUpsert) -> Res<UpsertOutcome> {
    providers::upsert(&app, Actor::Ui, input.into_input()?).await
}

#[tauri::command]
pub async fn provider_remove(app: App<'_>, name: String) -> Res<Provider> {
    providers::remove(&app, Actor::Ui, &name).await
}

/// A failed connection test is a result to show (with its code), not an error.
#[tauri::command]
pub async fn provider_test(app: App<'_>, name: String) -> Res<TestOutcome> {
    providers::test(&app, Actor::Ui, &name).await
}

// ------------------------------------------------------------------ rules

#[tauri::command]
pub async fn rule_list(app: App<'_>) -> Res<Vec<Rule>> {
    rules::list(&app).await
}

#[tauri::command]
pub async fn rule_add(app: App<'_>, rule: RuleInput) -> Res<Saved> {
    rules::add(&app, Actor::Ui, rule.into_new_rule()?).await
}

#[tauri::command]
pub async fn rule_update(app: App<'_>, id: i64, patch: RuleUpdate) -> Res<Saved> {
    rules::update(&app, Actor::Ui, id, patch.into_patch()?).await
}

#[tauri::command]
pub async fn rule_remove(app: App<'_>, id: i64) -> Res<Rule> {
    rules::remove(&app, Actor::Ui, id).await
}

#[tauri::command]
pub async fn rule_move(app: App<'_>, id: i64, to: i64) -> Res<Vec<Rule>> {
    rules::move_to(&app, Actor::Ui, id, to).await
}

/// The drag and drop sends the whole new order; an order made from a stale list is
/// refused with `rule_order_conflict` (the UI reloads and says so).
#[tauri::command]
pub async fn rule_reorder(app: App<'_>, ids: Vec<i64>) -> Res<Vec<Rule>> {
    rules::reorder(&app, Actor::Ui, &ids).await
}

#[tauri::command]
pub async fn rule_set_enabled(app: App<'_>, id: i64, enabled: bool) -> Res<Rule> {
    rules::set_enabled(&app, Actor::Ui, id, enabled).await
}

#[tauri::command]
pub async fn rule_test(app: App<'_>, model: String) -> Res<RuleTest> {
    rules::test(&app, &model).await
}

// ------------------------------------------------------------------ pool

#[tauri::command]
pub async fn pool_show(app: App<'_>) -> Res<PoolView> {
    pool::show(&app).await
}

#[tauri::command]
pub async fn pool_set(app: App<'_>, change: PoolSet) -> Res<PoolView> {
    pool::set(&app, Actor::Ui, change.into_change()?).await
}

/// `switchyard models load ID`: load a model into this app's pool (making room by the
/// eviction policy).
#[tauri::command]
pub async fn models_load(app: App<'_>, id: String) -> Res<PoolView> {
    let p = app
        .pool()
        .ok_or_else(|| crate::pool::control::not_running(app.data_dir()))?;
    p.load(&id).await?;
    pool::show(&app).await
}

/// `switchyard models unload ID`: unload an idle model from this app's pool.
#[tauri::command]
pub async fn models_unload(app: App<'_>, id: String) -> Res<PoolView> {
    let p = app
        .pool()
        .ok_or_else(|| crate::pool::control::not_running(app.data_dir()))?;
    p.unload(&id).await?;
    pool::show(&app).await
}

/// `switchyard models pin|unpin ID`.
#[tauri::command]
pub async fn models_pin(app: App<'_>, id: String, pinned: bool) -> Res<PoolView> {
    let change = crate::pool::model_settings::ModelChange {
        pinned: Some(pinned),
        ..Default::default()
    };
    crate::pool::model_settings::change(&app.db, &id, change, Actor::Ui).await?;
    pool::show(&app).await
}

// ------------------------------------------------------------------ keys

#[tauri::command]
pub async fn keys_status(app: App<'_>) -> Res<VaultStatus> {
    app.vault.status(&app.db).await
}

#[tauri::command]
pub async fn keys_rotate_data(app: App<'_>) -> Res<DataRotation> {
    app.vault.rotate_data(&app.db, Actor::Ui).await
}

/// `confirmed_fingerprint`: the fingerprint the user saw when confirming (`null`
/// when there was no root yet); a different current root refuses the rotation.
#[tauri::command(rename_all = "snake_case")]
pub async fn keys_rotate_root(
    app: App<'_>,
    confirmed_fingerprint: Option<String>,
) -> Res<RootRotation> {
    ipc::rotate_root_confirmed(&app, Actor::Ui, confirmed_fingerprint.as_deref()).await
}

// ------------------------------------------------------------------ backup

/// `switchyard backup export FILE`: the passphrase only travels UI → core.
#[tauri::command]
pub async fn backup_export(
    app: App<'_>,
    path: String,
    passphrase: String,
) -> Res<crate::backup::Exported> {
    let p = crate::vault::SecretString::new(passphrase);
    crate::backup::export(&app, &PathBuf::from(path), &p, Actor::Ui).await
}

/// `switchyard backup import FILE`: the preview, nothing written.
#[tauri::command]
pub async fn backup_preview(
    app: App<'_>,
    path: String,
    passphrase: String,
) -> Res<crate::backup::ImportReport> {
    let p = crate::vault::SecretString::new(passphrase);
    crate::backup::preview(&app, &PathBuf::from(path), &p).await
}

/// `switchyard backup import FILE --apply` (the UI shows the preview and asks first).
#[tauri::command]
pub async fn backup_import(
    app: App<'_>,
    path: String,
    passphrase: String,
) -> Res<crate::backup::ImportReport> {
    let p = crate::vault::SecretString::new(passphrase);
    crate::backup::apply(&app, &PathBuf::from(path), &p, Actor::Ui).await
}

// ------------------------------------------------------------------ client tokens

/// `switchyard token list`.
#[tauri::command]
pub async fn token_list(app: App<'_>) -> Res<Vec<crate::tokens::ClientInfo>> {
    crate::tokens::list(&app.db).await
}

/// `switchyard token issue`: the one answer that carries a token (shown once).
#[tauri::command]
pub async fn token_issue(app: App<'_>, input: ipc::TokenIssue) -> Res<crate::tokens::Issued> {
    ipc::issue_token(&app, &input).await
}

/// `switchyard token revoke ID`.
#[tauri::command]
pub async fn token_revoke(app: App<'_>, id: i64) -> Res<crate::tokens::Revoked> {
    crate::tokens::revoke(&app, id, Actor::Ui).await
}

/// `switchyard token auth [on|off]`: `on` absent = just read it.
#[tauri::command]
pub async fn token_auth(app: App<'_>, on: Option<bool>) -> Res<crate::tokens::AuthSetting> {
    match on {
        Some(on) => crate::tokens::set_loopback_auth(&app, on, Actor::Ui).await,
        None => Ok(crate::tokens::AuthSetting {
            loopback_auth: crate::tokens::loopback_auth(&app.db).await?,
        }),
    }
}

/// The `default` token this start issued, until dismissed (the Dashboard shows it once).
#[tauri::command]
pub fn token_first_run(gw: State<'_, GatewayHandle>) -> Option<crate::tokens::Issued> {
    gw.first_token()
}

#[tauri::command]
pub fn token_first_run_dismiss(gw: State<'_, GatewayHandle>) {
    gw.dismiss_first_token();
}

// ------------------------------------------------------------------ requests

/// `switchyard logs --tail N`, newest first (the Dashboard's recent requests).
#[tauri::command]
pub async fn logs_tail(app: App<'_>, limit: u32) -> Res<Vec<ipc::RequestRow>> {
    ipc::recent_requests(&app, limit).await
}

/// Requests, errors and tokens per minute over the last hour.
#[tauri::command]
pub async fn logs_minutes(app: App<'_>) -> Res<Vec<crate::gateway::log::Minute>> {
    crate::gateway::log::per_minute(&app.db, crate::store::now_ms(), 60).await
}

// ------------------------------------------------------------------ models

#[tauri::command]
pub async fn models_list(app: App<'_>) -> Res<Vec<ModelEntry>> {
    models::discover::sync(&app.db).await?;
    let mut list = models::list(&app.db).await?;
    if let Some(pool) = app.pool() {
        let loaded = pool.loaded();
        for m in &mut list {
            m.loaded = loaded.iter().any(|l| l.id == m.id);
        }
    }
    Ok(list)
}

#[tauri::command]
pub async fn models_import(app: App<'_>, path: String, name: Option<String>) -> Res<ModelEntry> {
    let name = name.filter(|n| !n.trim().is_empty());
    models::import(&app.db, &PathBuf::from(path), name, Actor::Ui).await
}

/// The UI asks for confirmation before calling this.
#[tauri::command]
pub async fn models_remove(app: App<'_>, id: String) -> Res<ModelEntry> {
    if let Some(row) = models::find(&app.db, &id).await? {
        crate::pool::check_removable(&app, &row).await?;
    }
    let root = models::models_dir(app.data_dir());
    models::remove(&app.db, &root, &id, Actor::Ui).await
}

/// `switchyard models pull`: download from the Hugging Face Hub into its cache, with
/// progress on `progress`; `models_pull_cancel` stops it (what arrived is kept, and the
/// next pull of the same repo continues it).
#[tauri::command]
pub async fn models_pull(
    app: App<'_>,
    pulls: State<'_, Pulls>,
    spec: PullSpec,
    progress: tauri::ipc::Channel<PullProgress>,
) -> Res<PullOutcome> {
    let repo = spec.repo.trim().to_string();
    let spec = PullSpec {
        repo: repo.clone(),
        ..spec
    };
    pull::validate_repo(&repo)?;
    let hub = pull::Hub::from_env()?;
    let root = models::discover::hf_cache_root().ok_or_else(|| {
        Error::new(
            crate::error::Code::Io,
            "no Hugging Face cache folder: set HF_HOME or HF_HUB_CACHE (or HOME)",
        )
    })?;
    let cancel = CancelToken::new();
    {
        let mut running = pulls.lock();
        if running.contains_key(&repo) {
            return Err(Error::new(
                crate::error::Code::InvalidArgument,
                format!("{repo} is already being pulled"),
            ));
        }
        running.insert(repo.clone(), cancel.clone());
    }
    let sink = |p: &PullProgress| {
        let _ = progress.send(p.clone());
    };
    let out = pull::pull(&app.db, Actor::Ui, &hub, &root, &spec, &sink, &cancel).await;
    pulls.lock().remove(&repo);
    out
}

/// Cancel a running pull; false when none runs for `repo`.
#[tauri::command]
pub async fn models_pull_cancel(pulls: State<'_, Pulls>, repo: String) -> Res<bool> {
    Ok(match pulls.lock().get(repo.trim()) {
        Some(c) => {
            c.cancel();
            true
        }
        None => false,
    })
}

// ------------------------------------------------------------------ gateway

#[tauri::command]
pub async fn gateway_status(gateway: State<'_, GatewayHandle>) -> Res<GatewayStatus> {
    Ok(gateway.status())
}

/// Start the app's gateway (as the tray's Start Gateway does); its new status.
#[tauri::command]
pub async fn gateway_start(handle: tauri::AppHandle, app: App<'_>) -> Res<GatewayStatus> {
    Ok(super::gateway::launch(&handle, app.inner().clone()).await)
}

/// Stop the app's gateway: the port closes and the pool's models are unloaded.
#[tauri::command]
pub async fn gateway_stop(handle: tauri::AppHandle) -> Res<GatewayStatus> {
    Ok(super::gateway::halt(&handle).await)
}

/// The language the window speaks now (`en`, `ja`), for the tray menu to speak it too.
/// Sent by the window whenever it picks one (from the system or the user's choice).
#[tauri::command]
pub async fn ui_locale(handle: tauri::AppHandle, locale: String) -> Res<()> {
    super::tray::set_locale(&handle, &locale);
    Ok(())
}

// ------------------------------------------------------------------ launch at login

/// Whether the app starts (in the background) when the user logs in.
#[tauri::command]
pub async fn autostart_get(handle: tauri::AppHandle) -> Res<bool> {
    use tauri_plugin_autostart::ManagerExt;
    handle.autolaunch().is_enabled().map_err(autostart_error)
}

/// Turn launch at login on or off; returns the setting as the system now has it.
#[tauri::command]
pub async fn autostart_set(handle: tauri::AppHandle, on: bool) -> Res<bool> {
    use tauri_plugin_autostart::ManagerExt;
    let launcher = handle.autolaunch();
    if on {
        launcher.enable()
    } else {
        launcher.disable()
    }
    .map_err(autostart_error)?;
    tracing::info!(on, "launch at login changed");
    launcher.is_enabled().map_err(autostart_error)
}

fn autostart_error(e: impl std::fmt::Display) -> Error {
    Error::new(
        crate::error::Code::Io,
        format!("cannot change launch at login: {e}"),
    )
}

// ------------------------------------------------------------------ UI preferences

/// One of the UI's own view preferences (`lastPage`, `locale`), from `ui-prefs.json`.
#[tauri::command]
pub async fn prefs_get(handle: tauri::AppHandle, key: String) -> Res<Option<String>> {
    super::prefs::ui_get(&handle, &key)
}

#[tauri::command]
pub async fn prefs_set(handle: tauri::AppHandle, key: String, value: String) -> Res<()> {
    super::prefs::ui_set(&handle, &key, value)
}
