//! `switchyard doctor`: one line per check, each ok / warn / fail, so a user (or a
//! bug report) shows in one screen what works on this machine and what does not.

use super::Output;
use crate::app::{self, AppOptions};
use crate::error::{Code, Error, Result};
use serde::Serialize;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The gateway port to check
    #[arg(long, default_value_t = crate::DEFAULT_PORT)]
    port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub message: String,
    /// The error code when the check failed or warned because of a coded error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    #[serde(skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

impl Check {
    fn ok(name: &'static str, message: String, data: serde_json::Value) -> Self {
        Check {
            name,
            status: Status::Ok,
            message,
            code: None,
            data,
        }
    }
    fn from_error(name: &'static str, status: Status, e: &Error) -> Self {
        Check {
            name,
            status,
            message: e.message.clone(),
            code: Some(e.code.as_str()),
            data: serde_json::Value::Null,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub ok: bool,
    pub version: &'static str,
    pub checks: Vec<Check>,
}

pub async fn run(opts: AppOptions, args: DoctorArgs, out: &Output) -> Result<i32> {
    let report = collect(opts, args.port).await;
    out.print(&report, render);
    Ok(if report.ok { 0 } else { 1 })
}

pub async fn collect(opts: AppOptions, port: u16) -> Report {
    let mut checks = vec![Check::ok(
        "platform",
        format!(
            "{} {} ({})",
            std::env::consts::OS,
            std::env::consts::ARCH,
            std::env::consts::FAMILY
        ),
        serde_json::json!({ "os": std::env::consts::OS, "arch": std::env::consts::ARCH }),
    )];

    // Seen before opening: opening tightens a data dir others can reach.
    let loose = opts
        .resolve_data_dir()
        .ok()
        .and_then(|d| app::loose_mode(&d));
    match app::App::open(opts).await {
        Ok(app) => {
            let mut check = Check::ok(
                "data_dir",
                app.data_dir().display().to_string(),
                serde_json::json!({ "path": app.data_dir(), "was_mode": loose.map(|m| format!("{m:o}")) }),
            );
            if let Some(mode) = loose {
                check.status = Status::Warn;
                check.message = format!(
                    "{} was open to other users (mode {mode:o}); it is now 700",
                    app.data_dir().display()
                );
            }
            checks.push(check);
            checks.push(database_check(&app).await);
            checks.push(vault_check(&app).await);
            checks.push(pool_check(&app).await);
            checks.push(backup_check(&app).await);
            checks.push(tokens_check(&app, port).await);
        }
        Err(e) => {
            let name = match e.code {
                Code::DataDirUnavailable => "data_dir",
                c if c.as_str().starts_with("vault_") => "vault",
                _ => "database",
            };
            checks.push(Check::from_error(name, Status::Fail, &e));
        }
    }

    checks.push(mlx_check().await);
    checks.push(port_check(port).await);

    Report {
        ok: checks.iter().all(|c| c.status != Status::Fail),
        version: env!("CARGO_PKG_VERSION"),
        checks,
    }
}

async fn database_check(app: &app::App) -> Check {
    let res: Result<Check> = async {
        let v = crate::store::schema_version(&app.db).await?;
        let journal = crate::store::pragma(&app.db, "journal_mode").await?;
        let fk = crate::store::pragma(&app.db, "foreign_keys").await?;
        Ok(Check::ok(
            "database",
            format!(
                "schema version {} ({}), journal {journal}, foreign keys {}",
                v.version,
                v.latest,
                if fk == "1" { "on" } else { "off" }
            ),
            serde_json::json!({
                "path": crate::store::db_path(app.data_dir()),
                "schema_version": v.version,
                "schema_latest": v.latest,
                "journal_mode": journal,
                "foreign_keys": fk == "1",
            }),
        ))
    }
    .await;
    res.unwrap_or_else(|e| Check::from_error("database", Status::Fail, &e))
}

/// The vault line: which backend, whether it works here, and the root's fingerprint.
/// An unusable keychain is a warning while no secret depends on it (local models still
/// work) and a failure once secrets are sealed; the message says how to use --vault file.
/// The pool's budget and, when a gateway serves this data dir, what it has loaded
/// (what `pool show` prints).
async fn pool_check(app: &app::App) -> Check {
    match crate::settings::pool::show(app).await {
        Ok(v) => {
            let loaded: Vec<String> = v
                .loaded
                .iter()
                .map(|m| {
                    format!(
                        "{} ({} MB)",
                        m.name,
                        m.bytes_estimated.max(m.bytes_measured) / 1_000_000
                    )
                })
                .collect();
            let now = if !v.serving {
                "no gateway running".to_string()
            } else if loaded.is_empty() {
                "nothing loaded".to_string()
            } else {
                format!("loaded: {}", loaded.join(", "))
            };
            let message = format!(
                "budget {} MB ({}), eviction {}; {now}",
                v.budget_bytes / 1_000_000,
                v.limit,
                v.eviction.as_str()
            );
            Check::ok(
                "pool",
                message,
                serde_json::to_value(&v).unwrap_or(serde_json::Value::Null),
            )
        }
        Err(e) => Check::from_error("pool", Status::Warn, &e),
    }
}

/// The backup reminder: until a backup was exported, the only copy of the provider
/// keys is sealed under this machine's root secret.
async fn backup_check(app: &app::App) -> Check {
    match crate::backup::last_export(&app.db).await {
        Ok(Some(t)) => Check::ok(
            "backup",
            format!("last exported {} UTC", crate::store::format_ts(t)),
            serde_json::json!({ "last_export_at": t }),
        ),
        Ok(None) => Check {
            name: "backup",
            status: Status::Warn,
            message: "no backup made yet: without one, the provider keys live only under this machine's root secret; make one with `switchyard backup export FILE` (or on the Security page)".into(),
            code: None,
            data: serde_json::json!({ "last_export_at": null }),
        },
        Err(e) => Check::from_error("backup", Status::Warn, &e),
    }
}

/// Client tokens: whether the gateway asks for them, how many can be used, and how a
/// tool is given one.
async fn tokens_check(app: &app::App, port: u16) -> Check {
    let (on, list) = match (
        crate::tokens::loopback_auth(&app.db).await,
        crate::tokens::list(&app.db).await,
    ) {
        (Ok(on), Ok(list)) => (on, list),
        (Err(e), _) | (_, Err(e)) => return Check::from_error("tokens", Status::Warn, &e),
    };
    let active: Vec<&str> = list
        .iter()
        .filter(|c| c.state == "active")
        .map(|c| c.name.as_str())
        .collect();
    let url = format!("http://127.0.0.1:{port}");
    let usage = format!(
        "give tools a token as their API key: OPENAI_BASE_URL={url}/v1 OPENAI_API_KEY=<token>; \
         ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=<token>; Codex: a provider with base_url = \"{url}/v1\" \
         and env_key naming the variable that holds the token"
    );
    let data = serde_json::json!({
        "loopback_auth": on,
        "active": active.len(),
        "names": active,
    });
    if !on {
        return Check {
            name: "tokens",
            status: Status::Warn,
            message: format!(
                "{}; `switchyard token auth on` asks for tokens again",
                crate::tokens::AUTH_OFF_WARNING
            ),
            code: None,
            data,
        };
    }
    if active.is_empty() {
        return Check {
            name: "tokens",
            status: Status::Warn,
            message: format!(
                "the gateway asks for a client token and none is active (the first start of the gateway issues `default`); \
                 `switchyard token issue NAME` makes one; then {usage}"
            ),
            code: None,
            data,
        };
    }
    Check::ok(
        "tokens",
        format!(
            "required; {} active ({}); {usage}; lost one? `switchyard token issue NAME` makes another",
            active.len(),
            active.join(", ")
        ),
        data,
    )
}

async fn vault_check(app: &app::App) -> Check {
    let st = match app.vault.status(&app.db).await {
        Ok(s) => s,
        Err(e) => return Check::from_error("vault", Status::Fail, &e),
    };
    let mut data = serde_json::json!({
        "backend": st.backend,
        "store": st.store,
        "root_state": st.root_state,
        "root_id": st.root_id,
        "fingerprint": st.fingerprint,
        "secrets": st.secrets,
    });
    let backend = format!("{} ({})", st.backend.as_str(), st.store);
    let mut check = match (&st.problem, st.root_state) {
        (Some(e), _) => {
            let status = if e.code == Code::VaultUnavailable && st.secrets == 0 {
                Status::Warn
            } else {
                Status::Fail
            };
            Check::from_error("vault", status, e)
        }
        (None, "ok") => Check::ok(
            "vault",
            format!(
                "{backend}: root {} fingerprint {}, {} secret{}",
                st.root_id.as_deref().unwrap_or("?"),
                st.fingerprint.as_deref().unwrap_or("?"),
                st.secrets,
                if st.secrets == 1 { "" } else { "s" }
            ),
            serde_json::Value::Null,
        ),
        (None, _) => match app.vault.probe().await {
            Ok(()) => Check::ok(
                "vault",
                format!("{backend} works; no root yet (created when the first key is stored)"),
                serde_json::Value::Null,
            ),
            Err(e) => Check::from_error("vault", Status::Warn, &e),
        },
    };
    if st.rotation_pending && check.code.is_none() {
        check.status = Status::Warn;
        check.message = format!(
            "{}; an interrupted root change still has a keychain item to clean up (retried at every start)",
            check.message
        );
    }
    if let Some(w) = st.warning
        && check.code.is_none()
    {
        check.status = Status::Warn;
        check.message = format!("{}; {w}", check.message);
    }
    if let Some(obj) = data.as_object_mut() {
        obj.insert(
            "available".into(),
            serde_json::json!(check.status != Status::Fail && check.code.is_none()),
        );
    }
    check.data = data;
    check
}

async fn mlx_check() -> Check {
    // MLX work never runs on the async executor's threads.
    let probe = tokio::task::spawn_blocking(crate::mlx_support::probe).await;
    match probe {
        Ok(Ok(p)) if p.ok => Check::ok(
            "mlx",
            format!(
                "MLX {} on {}; matmul [[1,2],[3,4]]·[5,6] = {:?}",
                p.version, p.device, p.matmul
            ),
            serde_json::to_value(&p).unwrap_or_default(),
        ),
        Ok(Ok(p)) => Check::from_error(
            "mlx",
            Status::Fail,
            &Error::new(
                Code::Engine,
                format!(
                    "MLX {} on {} computed {:?}, expected [17.0, 39.0]",
                    p.version, p.device, p.matmul
                ),
            ),
        ),
        Ok(Err(msg)) => Check::from_error(
            "mlx",
            Status::Fail,
            &Error::new(Code::Engine, format!("MLX failed: {msg}")),
        ),
        Err(e) => Check::from_error(
            "mlx",
            Status::Fail,
            &Error::new(Code::Engine, format!("MLX probe crashed: {e}")),
        ),
    }
}

async fn port_check(port: u16) -> Check {
    match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(_) => Check::ok(
            "gateway_port",
            format!("127.0.0.1:{port} is free"),
            serde_json::json!({ "port": port, "free": true }),
        ),
        Err(e) => {
            let mut c = Check::from_error(
                "gateway_port",
                Status::Warn,
                &Error::new(
                    Code::PortInUse,
                    format!(
                        "127.0.0.1:{port} is in use ({e}); is Switchyard already running? `serve --port` picks another"
                    ),
                ),
            );
            c.data = serde_json::json!({ "port": port, "free": false });
            c
        }
    }
}

fn render(r: &Report) -> String {
    let mut s = String::new();
    for c in &r.checks {
        let tag = match c.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        let code = c.code.map(|c| format!(" [{c}]")).unwrap_or_default();
        s.push_str(&format!("{tag}  {:<13} {}{code}\n", c.name, c.message));
    }
    s.push_str(if r.ok {
        "\nall checks passed (warnings aside)\n"
    } else {
        "\nsome checks failed\n"
    });
    s
}
