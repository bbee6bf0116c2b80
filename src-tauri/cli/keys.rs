//! `switchyard keys status | rotate [--data|--root] [--yes]`.

use super::{Output, prompt};
use crate::app::AppOptions;
use crate::error::Result;
use crate::store::audit::Actor;
use crate::vault::VaultStatus;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    cmd: KeysCmd,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCmd {
    /// Which backend holds the root, its fingerprint, the data keys and how many secrets they seal
    Status,
    /// Rotate the data key (default: re-encrypt every secret) or the root secret (--root)
    Rotate {
        /// New data key; every secret re-encrypted in one transaction (the default)
        #[arg(long, conflicts_with = "root")]
        data: bool,
        /// New root secret in the keychain; data keys re-wrapped; the old root deleted
        #[arg(long)]
        root: bool,
        /// Do not ask for confirmation (needed for --root without a terminal)
        #[arg(long)]
        yes: bool,
    },
}

pub async fn run(opts: AppOptions, args: KeysArgs, out: &Output) -> Result<i32> {
    let app = super::open_app(opts).await?;
    match args.cmd {
        KeysCmd::Status => {
            let st = app.vault.status(&app.db).await?;
            out.print(&st, render_status);
            // The status is printed either way; a broken vault still exits non-zero.
            return Ok(st.problem.as_ref().map_or(0, |e| e.code.exit_code()));
        }
        KeysCmd::Rotate {
            root: true, yes, ..
        } => {
            let fp = app.vault.fingerprint(&app.db).await?;
            prompt::require_confirmation(
                yes,
                &format!(
                    "Replace the root secret{} with a new one? The old keychain item is deleted once the database has switched.",
                    fp.map(|f| format!(" (fingerprint {f})"))
                        .unwrap_or_default()
                ),
                "keys rotate --root",
            )?;
            let r = app.vault.rotate_root(&app.db, Actor::Cli).await?;
            out.print(&r, |r| {
                format!(
                    "root rotated: {} (fingerprint {}) → {} (fingerprint {}); {} data key{} re-wrapped; {}",
                    r.old_root_id,
                    r.old_fingerprint,
                    r.new_root_id,
                    r.new_fingerprint,
                    r.data_keys,
                    if r.data_keys == 1 { "" } else { "s" },
                    if r.old_root_deleted {
                        "old keychain item deleted"
                    } else {
                        "the old keychain item could not be deleted yet (retried at the next start)"
                    }
                )
            });
        }
        KeysCmd::Rotate { .. } => {
            let r = app.vault.rotate_data(&app.db, Actor::Cli).await?;
            out.print(&r, |r| {
                format!(
                    "data key rotated: {} → {}; {} secret{} re-encrypted in {:.1} ms",
                    if r.old_key_ids.is_empty() {
                        "none".to_string()
                    } else {
                        r.old_key_ids.join(", ")
                    },
                    r.new_key_id,
                    r.secrets,
                    if r.secrets == 1 { "" } else { "s" },
                    r.elapsed_ms
                )
            });
        }
    }
    Ok(0)
}

fn render_status(s: &VaultStatus) -> String {
    let mut t = format!("backend:     {} ({})\n", s.backend.as_str(), s.store);
    match (&s.root_id, &s.fingerprint) {
        (Some(id), Some(fp)) => t.push_str(&format!("root:        {id}, fingerprint {fp}\n")),
        (Some(id), None) => t.push_str(&format!("root:        {id} ({})\n", s.root_state)),
        (None, _) => t.push_str("root:        none yet (created when the first key is stored)\n"),
    }
    t.push_str(&format!("secrets:     {}\n", s.secrets));
    if s.data_keys.is_empty() {
        t.push_str("data keys:   none\n");
    } else {
        t.push_str("data keys:\n");
        for k in &s.data_keys {
            t.push_str(&format!(
                "  {}  {:<8} {} secret{}\n",
                k.key_id,
                k.state,
                k.secrets,
                if k.secrets == 1 { "" } else { "s" }
            ));
        }
    }
    if s.rotation_pending {
        t.push_str("a root rotation was interrupted and is not yet recovered\n");
    }
    if let Some(w) = s.warning {
        t.push_str(&format!("warning:     {w}\n"));
    }
    if let Some(p) = &s.problem {
        t.push_str(&format!("error[{}]: {}\n", p.code, p.message));
    }
    t
}
