//! The command line: `switchyard [GLOBAL FLAGS] [COMMAND]`.
//!
//! Every subcommand is a thin adapter: parse → call the same service the UI calls →
//! print (human text, or one JSON document with `--json`) → exit code from the
//! error's [`Code`]. No subcommand starts the desktop app.

mod doctor;
mod generate;
mod models;
mod output;

use crate::app::{App, AppOptions, SharedApp};
use crate::error::{Code, Error, Result};
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

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the platform, data dir, database, vault backend, MLX and the gateway port
    Doctor(doctor::DoctorArgs),
    /// Manage the local model registry
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Generate text with a local model (streams to stdout)
    Generate(generate::GenerateArgs),
}

impl Cli {
    pub fn app_options(&self) -> AppOptions {
        AppOptions {
            data_dir: self.data_dir.clone(),
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
    init_logging(cli.command.is_none());
    let out = Output::new(cli.json);
    match cli.command {
        None => run_desktop(&cli, &out),
        Some(_) => {
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
        Command::Models { command } => models::run(opts, command, out).await,
        Command::Generate(args) => generate::run(opts, args, out).await,
    }
}

/// Open the core for commands that need it.
pub async fn open_app(opts: AppOptions) -> Result<SharedApp> {
    App::open(opts).await
}

#[cfg(feature = "desktop")]
fn run_desktop(cli: &Cli, out: &Output) -> i32 {
    match crate::desktop::run(cli.app_options()) {
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

fn init_logging(desktop: bool) {
    use tracing_subscriber::EnvFilter;
    let default = if desktop { "info" } else { "warn" };
    let filter = EnvFilter::try_from_env("SWITCHYARD_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
