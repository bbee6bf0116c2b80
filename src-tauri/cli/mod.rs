//! The command line: `switchyard [GLOBAL FLAGS] [COMMAND]`.
//!
//! Every subcommand is a thin adapter: parse → call the same service the UI calls →
//! print (human text, or one JSON document with `--json`) → exit code from the
//! error's [`Code`]. No subcommand starts the desktop app.

mod backup;
mod doctor;
mod generate;
mod keys;
mod logs;
mod models;
mod output;
mod pool;
mod prompt;
mod provider;
mod rule;
mod serve;
mod token;

use crate::app::{App, AppOptions, SharedApp};
use crate::error::{Code, Error, Result};
use crate::vault::BackendKind;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub use output::Output;

#[derive(Debug, Parser)]
#[command(
    name = "switchyard",
    version,
    about = "Local-first LLM hub: local MLX models and cloud providers behind one endpoint",
    long_about = None,
    propagate_version = true
)]
pub struct Cli {
    /// Where the database, models and logs live [default: the platform app-data dir]
    #[arg(long, global = true, env = "SWITCHYARD_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Print one JSON document on stdout (errors as {"error":{"code","message"}})
    #[arg(long, global = true)]
    pub json: bool,

    /// Where the root secret lives: the OS keychain, the Linux kernel keyring
    /// (keyutils), or a 0600 file in the data dir (weaker; for headless machines)
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_VAULT",
        value_enum,
        default_value_t = BackendKind::Keychain,
        value_name = "BACKEND"
    )]
    pub vault: BackendKind,

    /// Start the desktop app in the menu bar without opening its window (launch at
    /// login uses this)
    #[arg(long)]
    pub background: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the platform, data dir, database, vault backend, MLX and the gateway port
    Doctor(doctor::DoctorArgs),
    /// Cloud providers: add (or update), list, show, remove, test
    Provider(provider::ProviderArgs),
    /// The vault: status, and rotation of the data key or the root secret
    Keys(keys::KeysArgs),
    /// Run the gateway (OpenAI + Anthropic APIs on loopback) without the desktop app
    Serve(serve::ServeArgs),
    /// The request log (no prompt or completion text)
    Logs(logs::LogsArgs),
    /// Routing rules: which model names go to which target, in order
    Rule(rule::RuleArgs),
    /// The loaded-model pool: memory limit, eviction, idle TTL, preload
    Pool(pool::PoolArgs),
    /// Manage the local model registry
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Generate text with a local model (streams to stdout)
    Generate(generate::GenerateArgs),
    /// Export every setting and provider key to a passphrase-sealed file, or restore one
    Backup(backup::BackupArgs),
    /// Client tokens for the gateway: issue, list, revoke, and whether loopback needs them
    Token(token::TokenArgs),
}

impl Cli {
    pub fn app_options(&self) -> AppOptions {
        AppOptions {
            data_dir: self.data_dir.clone(),
            vault: self.vault,
        }
    }
}

/// Entry point of the binary; returns the process exit code.
pub fn main() -> i32 {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let json_requested = argv.iter().any(|a| a == "--json");
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e, json_requested),
    };
    // The keyring backend is decided here, once, from --vault; nothing may fall back to
    // keyring's built-in default store.
    crate::vault::set_process_default(cli.vault);
    let out = Output::new(cli.json);
    match cli.command {
        None => run_desktop(&cli, &out),
        Some(_) => {
            init_logging("warn", None);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return out.error(&Error::internal(format!("cannot start runtime: {e}"))),
            };
            match rt.block_on(dispatch(cli, &out)) {
                Ok(code) => code,
                Err(e) => out.error(&e),
            }
        }
    }
}

async fn dispatch(cli: Cli, out: &Output) -> Result<i32> {
    let opts = cli.app_options();
    match cli
        .command
        .expect("dispatch is only called with a subcommand")
    {
        Command::Doctor(args) => doctor::run(opts, args, out).await,
        Command::Provider(args) => provider::run(opts, args, out).await,
        Command::Keys(args) => keys::run(opts, args, out).await,
        Command::Serve(args) => serve::run(opts, args, out).await,
        Command::Logs(args) => logs::run(opts, args, out).await,
        Command::Rule(args) => rule::run(opts, args, out).await,
        Command::Pool(args) => pool::run(opts, args, out).await,
        Command::Models { command } => models::run(opts, command, out).await,
        Command::Generate(args) => generate::run(opts, args, out).await,
        Command::Backup(args) => backup::run(opts, args, out).await,
        Command::Token(args) => token::run(opts, args, out).await,
    }
}

/// Open the core for commands that need it.
pub async fn open_app(opts: AppOptions) -> Result<SharedApp> {
    App::open(opts).await
}

#[cfg(feature = "desktop")]
fn run_desktop(cli: &Cli, out: &Output) -> i32 {
    // A GUI app has no terminal to read: it also logs to <data dir>/logs/desktop.log.
    let log_file = cli.app_options().resolve_data_dir().and_then(|d| {
        crate::app::ensure_data_dir(&d)?;
        open_log_file(&d.join("logs"), "desktop.log")
    });
    match log_file {
        Ok(f) => init_logging("info", Some(f)),
        Err(e) => return out.error(&e),
    }
    match crate::desktop::run(cli.app_options(), cli.background) {
        Ok(()) => 0,
        Err(e) => out.error(&e),
    }
}

#[cfg(not(feature = "desktop"))]
fn run_desktop(_cli: &Cli, out: &Output) -> i32 {
    out.error(&Error::new(
        Code::Usage,
        "this build has no desktop app (built without the `desktop` feature); run `switchyard --help` for the commands",
    ))
}

/// Clap's help/version go to stdout with exit 0; real usage errors become
/// `error[usage]: …` (or the JSON error document) with exit 2.
fn usage_error(e: clap::Error, json: bool) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{e}");
            0
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            eprint!("{e}");
            2
        }
        _ => {
            let rendered = e.render().to_string();
            let message = rendered
                .trim_start_matches("error: ")
                .trim_end()
                .to_string();
            let err = Error::new(Code::Usage, message);
            Output::new(json).error(&err)
        }
    }
}

/// Logs go to stderr, and for long-running modes also to a file. `SWITCHYARD_LOG`
/// (or `RUST_LOG`) overrides the level. Log lines never carry secrets or prompt text.
pub fn init_logging(default_level: &str, file: Option<std::fs::File>) {
    use tracing_subscriber::EnvFilter;
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let filter = EnvFilter::try_from_env("SWITCHYARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match file {
        Some(f) => builder
            .with_writer(std::io::stderr.and(std::sync::Arc::new(f)))
            .with_ansi(false)
            .try_init(),
        // Colour codes only for a terminal: warnings also land in logs and test output.
        None => builder
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

/// Open `dir/name` for appending (creating `dir`), for [`init_logging`].
pub fn open_log_file(dir: &std::path::Path, name: &str) -> Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    Ok(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))?)
}
