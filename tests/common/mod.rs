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
            // Model caches of the machine's user stay out of the tests' registries.
            .env("HF_HOME", self.dir.path().join("no-hf-home"))
            .env_remove("HF_HUB_CACHE")
            .env(
                "SWITCHYARD_LMSTUDIO_MODELS",
                self.dir.path().join("no-lmstudio"),
            )
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

/// The JSON document a starting `switchyard --json serve` prints once it listens (one
/// pretty-printed document on stdout: `url`, `auth`, and on the first start
/// `default_token`); panics if it exits first.
pub fn ready_doc(child: &mut std::process::Child) -> serde_json::Value {
    use std::io::BufRead;
    let mut doc = String::new();
    let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    while serde_json::from_str::<serde_json::Value>(&doc).is_err() {
        let mut line = String::new();
        if lines.read_line(&mut line).expect("read serve's stdout") == 0 {
            panic!("serve exited before it listened: {doc:?}");
        }
        doc.push_str(&line);
    }
    serde_json::from_str(&doc).unwrap()
}

/// The URL of [`ready_doc`].
pub fn ready_url(child: &mut std::process::Child) -> String {
    ready_doc(child)["url"].as_str().expect("url").to_string()
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

/// A file of the test fixtures (`rel` from the repository root), which must exist.
pub fn fixture(rel: &str) -> PathBuf {
    let p = repo_root().join(rel);
    assert!(
        p.exists(),
        "fixture {} is missing: run scripts/fetch-fixtures.sh",
        p.display()
    );
    p
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

/// The JSON chunks of an OpenAI SSE stream (every data frame but the final `[DONE]`).
pub fn openai_chunks(events: &[(Option<String>, String)]) -> Vec<serde_json::Value> {
    events
        .iter()
        .filter(|e| e.1 != "[DONE]")
        .map(|e| serde_json::from_str(&e.1).expect("an OpenAI chunk is JSON"))
        .collect()
}

/// The streamed answer text of OpenAI chunks (`choices[0].delta.content`, joined).
pub fn openai_text(chunks: &[serde_json::Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// One field of an Anthropic SSE stream's `content_block_delta`s, joined: `text` for the
/// answer, `partial_json` for a tool call's input.
pub fn anthropic_deltas(events: &[(Option<String>, String)], field: &str) -> String {
    events
        .iter()
        .filter(|e| e.0.as_deref() == Some("content_block_delta"))
        .map(|e| {
            let v: serde_json::Value = serde_json::from_str(&e.1).expect("an event is JSON");
            v["delta"][field].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// A client token for `app` (what a user's tool would be given).
pub async fn issue_token(app: &switchyard::app::App, name: &str) -> String {
    switchyard::tokens::issue(app, name, &[], None, switchyard::store::audit::Actor::Cli)
        .await
        .expect("issue a client token")
        .token
}

/// An HTTP client that sends `token` as `Authorization: Bearer` on every request (a
/// request's own `authorization` header takes its place).
pub fn http_with_token(token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("token header"),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("http client")
}

/// Wait (up to a minute) until `model` runs no generation: cancelled ones end at their
/// next token. Panics with `what` when they do not.
pub async fn wait_generations_end(model: &switchyard::engine::ModelHandle, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while model.in_flight() > 0 {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
