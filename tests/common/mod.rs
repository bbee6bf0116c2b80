//! Helpers shared by the integration tests: run the real `switchyard` binary against
//! a throw-away data dir and decode what it prints.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// A temporary data dir with the file vault, removed on drop.
pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Self {
        Env {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A `switchyard` command with this data dir and the file vault (tests never touch
    /// the user's keychain); no other inherited SWITCHYARD_* settings.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env_remove("SWITCHYARD_DATA_DIR")
            .env("SWITCHYARD_VAULT", "file")
            .env_remove("SWITCHYARD_LOG")
            .env_remove("RUST_LOG")
            .arg("--data-dir")
            .arg(self.dir.path());
        c
    }

    /// Run with `args`, optional stdin, and return the finished output.
    pub fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.cmd();
        c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        c.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = c.spawn().expect("spawn switchyard");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().expect("wait switchyard")
    }

    /// Run with `--json` and parse stdout; panics with stderr on a non-zero exit.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.run(&a, None);
        assert!(
            out.status.success(),
            "switchyard {args:?} failed ({:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON document")
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The error line of stderr: the last one (the file vault's weakness warning, printed
/// at every start, comes before it).
pub fn error_line(o: &Output) -> String {
    stderr(o).lines().last().unwrap_or("").to_string()
}

/// Every file under `dir` (recursively), for "nothing was written" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p.clone());
                }
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The repository root (for fixtures and scripts).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The core of a data dir, in this process, with the file vault (what every in-process
/// test uses).
pub async fn open_app(dir: &Path) -> switchyard::app::SharedApp {
    switchyard::app::App::open(switchyard::app::AppOptions {
        data_dir: Some(dir.to_path_buf()),
        vault: switchyard::vault::BackendKind::File,
    })
    .await
    .expect("open the app")
}

/// An SSE body as (event name, data) pairs, in order.
pub fn parse_sse(body: &str) -> Vec<(Option<String>, String)> {
    body.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let name = b
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .map(str::to_string);
            let data = b
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect::<Vec<_>>()
                .join("\n");
            (name, data)
        })
        .collect()
}
