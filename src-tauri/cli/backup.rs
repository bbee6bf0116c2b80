//! `switchyard backup export FILE | import FILE [--apply]`: every setting and provider
//! key in one passphrase-sealed file, and its restore with a preview first.

use super::{Output, prompt};
use crate::app::AppOptions;
use crate::backup::{self, Diff, ImportReport};
use crate::error::{Code, Error, Result};
use crate::store::audit::Actor;
use crate::vault::SecretString;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, clap::Subcommand)]
enum BackupCommand {
    /// Write providers (with their keys), rules, pool settings, clients and the model registry to FILE, sealed under a passphrase
    Export {
        file: PathBuf,
        /// Read the passphrase from stdin instead of asking on the terminal (twice)
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// Show what restoring FILE would change; with --apply, restore it
    Import {
        file: PathBuf,
        /// Read the passphrase from stdin instead of asking on the terminal
        #[arg(long)]
        passphrase_stdin: bool,
        /// Make this install's settings the backup's (one transaction; keys re-sealed under this install's root)
        #[arg(long)]
        apply: bool,
        /// Do not ask before applying
        #[arg(long)]
        yes: bool,
    },
}

fn passphrase(from_stdin: bool, twice: bool) -> Result<SecretString> {
    if from_stdin {
        return prompt::secret_from_stdin("passphrase");
    }
    if !prompt::stdin_is_tty() {
        return Err(Error::new(
            Code::Usage,
            "give the passphrase on a terminal, or pipe it in with --passphrase-stdin",
        ));
    }
    let first = prompt::secret_from_tty(&format!(
        "Backup passphrase (at least {} characters)",
        backup::MIN_PASSPHRASE_CHARS
    ))?
    .ok_or_else(|| Error::invalid("no passphrase given"))?;
    if twice {
        let again = prompt::secret_from_tty("The same passphrase again")?
            .ok_or_else(|| Error::invalid("no passphrase given"))?;
        if again.expose() != first.expose() {
            return Err(Error::invalid(
                "the two passphrases differ; nothing was written",
            ));
        }
    }
    Ok(first)
}

pub async fn run(opts: AppOptions, args: BackupArgs, out: &Output) -> Result<i32> {
    match args.command {
        BackupCommand::Export {
            file,
            passphrase_stdin,
        } => {
            let pass = passphrase(passphrase_stdin, true)?;
            let app = super::open_app(opts).await?;
            let done = backup::export(&app, &file, &pass, Actor::Cli).await?;
            out.print(&done, |d| {
                format!(
                    "wrote {} ({} providers, {} keys, {} rules, {} models, {} clients). Keep it and its passphrase apart: together they open every key.",
                    d.path, d.providers, d.keys, d.rules, d.models, d.clients
                )
            });
        }
        BackupCommand::Import {
            file,
            passphrase_stdin,
            apply,
            yes,
        } => {
            let pass = passphrase(passphrase_stdin, false)?;
            let app = super::open_app(opts).await?;
            let preview = backup::preview(&app, &file, &pass).await?;
            if !apply {
                out.print(&preview, |r| {
                    format!(
                        "{}\nnothing was written; run again with --apply to restore it",
                        render(r)
                    )
                });
                return Ok(0);
            }
            if !yes {
                eprintln!("{}", render(&preview));
            }
            prompt::require_confirmation(
                yes,
                "Replace this install's providers, rules, pool settings and clients with the backup's?",
                "restoring a backup",
            )?;
            let done = backup::apply(&app, &file, &pass, Actor::Cli).await?;
            out.print(&done, |r| format!("{}\nrestored", render(r)));
        }
    }
    Ok(0)
}

fn diff_line(what: &str, d: &Diff) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            String::new()
        } else {
            format!(" ({})", v.join(", "))
        }
    };
    format!(
        "  {what}: {} added{}, {} changed{}, {} removed{}, {} unchanged",
        d.added.len(),
        list(&d.added),
        d.changed.len(),
        list(&d.changed),
        d.removed.len(),
        list(&d.removed),
        d.unchanged
    )
}

fn render(r: &ImportReport) -> String {
    let mut s = format!(
        "backup {} made {} UTC by Switchyard {}{}\n",
        r.path,
        crate::store::format_ts(r.created_at),
        r.app_version,
        if r.same_install {
            " on this install"
        } else {
            " on another install"
        }
    );
    s.push_str(&diff_line("providers", &r.providers));
    s.push('\n');
    s.push_str(&format!(
        "  rules: {} now, {} after{}\n",
        r.rules_before,
        r.rules_after,
        if r.rules_changed {
            " (replaced, in the backup's order)"
        } else {
            " (the same)"
        }
    ));
    s.push_str(&format!(
        "  pool: {}\n",
        if r.pool_changed.is_empty() {
            "the same".to_string()
        } else {
            format!("{} change", r.pool_changed.join(", "))
        }
    ));
    s.push_str(&diff_line("models", &r.models));
    s.push_str(" (entries not in the backup are kept)\n");
    s.push_str(&diff_line("clients", &r.clients));
    for w in &r.warnings {
        s.push_str(&format!("\n  warning: {w}"));
    }
    s
}
