//! The clients people use, pinned and unmodified (`scripts/ensure-clients.sh` installs
//! them into `.tools/`), against `switchyard serve` — the real binary on a loopback port,
//! with the real store and file vault, set up through the CLI — and the project's fake
//! clouds upstream (tests/common/fake_cloud.rs, as strict as the real APIs):
//!
//! - Claude Code (`claude -p`) and Codex CLI (`codex exec`), each to an Anthropic
//!   upstream and to a chat-only OpenAI-compatible upstream: a turn in which the model
//!   calls the client's shell tool (`echo hello`), the client runs it and sends the result
//!   back, and the model's answer quotes it. Four combinations.
//! - The official openai SDK's Responses API (plain, streaming, reasoning, a function-tool
//!   round trip both stateless and with `previous_response_id`) to an OpenAI upstream
//!   (relayed), a chat-only compatible one and an Anthropic one (translated), and the
//!   local model; the official anthropic SDK to every kind.
//!
//! No network beyond loopback: the clients' telemetry, update checks and other traffic
//! are switched off by their own settings (see the README's "Use it with" section).

mod common;
#[path = "common/fake_cloud.rs"]
mod fake_cloud;

use fake_cloud::{Api, Fake, Script};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const ANT_KEY: &str = "sk-ant-upstream-clients-0123";
const COMPAT_KEY: &str = "sk-compat-upstream-clients-0123";
const OAI_KEY: &str = "sk-oai-upstream-clients-0123";
/// What clients send as their own key (the gateway never forwards it).
const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

fn tool(rel: &str) -> PathBuf {
    let p = common::repo_root().join(".tools").join(rel);
    assert!(
        p.exists(),
        "{} is missing: run scripts/ensure-clients.sh (make test does)",
        p.display()
    );
    p
}

/// Run a command with a deadline; its stdout and stderr.
fn run_with_deadline(mut cmd: Command, deadline: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the client");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// `switchyard serve` on a free loopback port, with three fake clouds as providers and
/// the rules the tests use.
struct Setup {
    _env: common::Env,
    /// The `default` client token the first start issued.
    token: String,
    serve: Child,
    url: String,
    ant: Fake,
    compat: Fake,
    oai: Fake,
    _rt: tokio::runtime::Runtime,
}

impl Setup {
    fn start(local_model: bool) -> Setup {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let (ant, compat, oai) = rt.block_on(async {
            (
                Fake::start(Api::Anthropic, ANT_KEY).await,
                Fake::start_compatible(COMPAT_KEY).await,
                Fake::start(Api::OpenAi, OAI_KEY).await,
            )
        });
        let env = common::Env::new();
        let ok = |args: &[&str], stdin: Option<&str>| {
            let out = env.run(args, stdin);
            assert!(
                out.status.success(),
                "switchyard {args:?}: {}",
                common::stderr(&out)
            );
        };
        for (name, kind, fake, key) in [
            ("ant", "anthropic", &ant, ANT_KEY),
            ("compat", "openai-compatible", &compat, COMPAT_KEY),
            ("oai", "openai", &oai, OAI_KEY),
        ] {
            ok(
                &[
                    "provider",
                    "add",
                    name,
                    "--kind",
                    kind,
                    "--base-url",
                    &fake.base_url,
                    "--api-key-stdin",
                ],
                Some(key),
            );
        }
        for (pattern, to, model) in [
            ("claude-code-ant", "ant", Some("claude-opus-5-5")),
            ("claude-code-compat", "compat", Some("llama-3.3-70b")),
            ("codex-ant", "ant", Some("claude-sonnet-4-5")),
            ("codex-compat", "compat", Some("qwen3-coder")),
            ("sdk-ant", "ant", Some("claude-sonnet-4-5")),
            ("sdk-compat", "compat", Some("llama-3.3-70b")),
            ("gpt-", "oai", None),
        ] {
            let mut args = vec![
                "rule",
                "add",
                "--pattern",
                pattern,
                "--match",
                if model.is_some() { "exact" } else { "prefix" },
                "--to",
                to,
            ];
            if let Some(m) = model {
                args.extend(["--model", m]);
            }
            ok(&args, None);
        }
        if local_model {
            let gguf =
                common::repo_root().join(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");
            assert!(
                gguf.exists(),
                "fixture missing: run scripts/fetch-fixtures.sh"
            );
            ok(
                &[
                    "models",
                    "import",
                    gguf.to_str().unwrap(),
                    "--name",
                    "smollm2",
                ],
                None,
            );
        }
        let mut serve = env
            .cmd()
            .args(["--json", "serve", "--port", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start switchyard serve");
        // The first start issues the `default` token: the clients use it as their API key.
        let ready = common::ready_doc(&mut serve);
        let url = ready["url"].as_str().expect("url").to_string();
        let token = ready["default_token"]["token"]
            .as_str()
            .expect("the first start issues a default token")
            .to_string();
        Setup {
            token,
            _env: env,
            serve,
            url,
            ant,
            compat,
            oai,
            _rt: rt,
        }
    }

    fn fake(&self, name: &str) -> &Fake {
        match name {
            "ant" => &self.ant,
            "compat" => &self.compat,
            _ => &self.oai,
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}

/// The user turns and tool results an upstream saw, as text (for "the result came back").
fn bodies(fake: &Fake) -> String {
    fake.received()
        .iter()
        .map(|r| r.body.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_claude(s: &Setup, model: &str, scratch: &Path) -> Output {
    let home = scratch.join("home");
    let work = scratch.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut cmd = Command::new(tool("clients/node_modules/.bin/claude"));
    cmd.current_dir(&work)
        .env_clear()
        .env("PATH", PATH)
        .env("TERM", "dumb")
        .env("HOME", &home)
        .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
        .env("ANTHROPIC_BASE_URL", &s.url)
        .env("ANTHROPIC_API_KEY", &s.token)
        // Loopback only: no feature flags, telemetry, bootstrap or update calls.
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        // A failure shows at once instead of after minutes of retries.
        .env("CLAUDE_CODE_MAX_RETRIES", "0")
        .args([
            "-p",
            "Run `echo hello` with Bash, then tell me what it printed.",
            "--output-format",
            "json",
            "--model",
            model,
            "--allowedTools",
            "Bash",
        ]);
    run_with_deadline(cmd, Duration::from_secs(180))
}

fn run_codex(s: &Setup, model: &str, scratch: &Path) -> Output {
    let home = scratch.join("home");
    let codex_home = scratch.join("codex");
    let work = scratch.join("work");
    for d in [&home, &codex_home, &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    let config = format!(
        r#"model = "{model}"
model_provider = "switchyard"
approval_policy = "never"
sandbox_mode = "danger-full-access"
check_for_update_on_startup = false

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"
trace_exporter = "none"
metrics_exporter = "none"

[features]
plugins = false

[model_providers.switchyard]
name = "Switchyard"
base_url = "{}/v1"
env_key = "SWITCHYARD_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
        s.url
    );
    std::fs::write(codex_home.join("config.toml"), config).unwrap();
    let mut cmd = Command::new(tool("clients/node_modules/.bin/codex"));
    cmd.current_dir(&work)
        .env_clear()
        .env("PATH", PATH)
        .env("TERM", "dumb")
        .env("HOME", &home)
        .env("CODEX_HOME", &codex_home)
        .env("SWITCHYARD_API_KEY", &s.token)
        .args([
            "exec",
            "--skip-git-repo-check",
            "--json",
            "Run `echo hello` in the shell, then tell me what it printed.",
        ]);
    run_with_deadline(cmd, Duration::from_secs(180))
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn claude_code_completes_a_tool_turn_through_anthropic_and_chat_only_upstreams() {
    let s = Setup::start(false);
    for (model, upstream) in [("claude-code-ant", "ant"), ("claude-code-compat", "compat")] {
        let fake = s.fake(upstream);
        fake.set_script(Script {
            tool_call: Some((
                "Bash".into(),
                json!({"command": "echo hello", "description": "Print hello"}),
            )),
            ..Default::default()
        });
        let before = fake.received().len();
        let scratch = tempfile::tempdir().unwrap();
        let out = run_claude(&s, model, scratch.path());
        assert!(out.status.success(), "{model}: {}", show(&out));
        let result: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{model}: {e}\n{}", show(&out)));
        assert_eq!(result["is_error"], false, "{model}: {result}");
        let answer = result["result"].as_str().unwrap_or("");
        assert!(
            answer.contains("Tool result:") && answer.contains("hello"),
            "{model}: the model's answer quotes the tool's output: {answer}"
        );
        // Two model calls: the one that asked for the tool, the one that got its result.
        let calls: Vec<_> = fake.received()[before..]
            .iter()
            .filter(|r| r.path.ends_with("/messages") || r.path.ends_with("/completions"))
            .cloned()
            .collect();
        assert_eq!(calls.len(), 2, "{model}: {calls:?}");
        let second = calls[1].body.to_string();
        assert!(second.contains("hello"), "{model}: the tool result went up");
        for r in &calls {
            for (_, v) in r.headers.iter() {
                assert!(!v.to_str().unwrap_or("").contains(&s.token));
            }
        }
        if upstream == "ant" {
            // Relayed: Claude Code's own body, thinking mode and betas included.
            assert_eq!(calls[0].query.as_deref(), Some("beta=true"));
            assert!(calls[0].header("anthropic-beta").is_some());
            assert_eq!(calls[0].body["model"], "claude-opus-5-5");
            assert!(calls[0].body.get("thinking").is_some());
        } else {
            assert_eq!(calls[0].path, "/v1/chat/completions");
            assert_eq!(calls[0].body["model"], "llama-3.3-70b");
        }
    }
}

#[test]
fn codex_completes_a_tool_turn_through_anthropic_and_chat_only_upstreams() {
    let s = Setup::start(false);
    for (model, upstream) in [("codex-ant", "ant"), ("codex-compat", "compat")] {
        let fake = s.fake(upstream);
        fake.set_script(Script {
            tool_call: Some(("exec_command".into(), json!({"cmd": "echo hello"}))),
            ..Default::default()
        });
        let before = fake.received().len();
        let scratch = tempfile::tempdir().unwrap();
        let out = run_codex(&s, model, scratch.path());
        assert!(out.status.success(), "{model}: {}", show(&out));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let events: Vec<Value> = stdout
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        assert!(
            !events.iter().any(|e| e["type"] == "turn.failed"),
            "{model}: {}",
            show(&out)
        );
        let said: String = events
            .iter()
            .filter(|e| e["type"] == "item.completed" && e["item"]["type"] == "agent_message")
            .filter_map(|e| e["item"]["text"].as_str())
            .collect();
        assert!(
            said.contains("Tool result:") && said.contains("hello"),
            "{model}: the answer quotes the command's output: {}",
            show(&out)
        );
        let ran = events.iter().any(|e| {
            e["type"] == "item.completed"
                && e["item"]["type"] == "command_execution"
                && e["item"]["command"]
                    .as_str()
                    .unwrap_or("")
                    .contains("echo hello")
        });
        assert!(ran, "{model}: codex ran the command: {}", show(&out));
        let calls = fake.received()[before..].to_vec();
        assert_eq!(calls.len(), 2, "{model}");
        assert!(bodies(fake).contains("hello"));
        let path = if upstream == "ant" {
            "/v1/messages"
        } else {
            "/v1/chat/completions"
        };
        assert!(calls.iter().all(|c| c.path == path), "{model}");
    }
}

fn sdk(script: &str, s: &Setup, model: &str, extra: &[&str]) {
    let mut cmd = Command::new(tool("sdk-venv/bin/python"));
    cmd.arg(common::repo_root().join("tests/sdk").join(script))
        .arg(&s.url)
        .arg(model)
        .args(extra)
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("OPENAI_BASE_URL")
        .env_remove("ANTHROPIC_BASE_URL")
        .env("SWITCHYARD_TOKEN", &s.token);
    let out = run_with_deadline(cmd, Duration::from_secs(600));
    assert!(out.status.success(), "{script} {model}: {}", show(&out));
}

#[test]
fn the_openai_sdk_responses_api_works_to_every_backend_kind() {
    let s = Setup::start(true);
    for fake in [&s.ant, &s.compat, &s.oai] {
        fake.set_script(Script {
            tool_call: Some(("get_weather".into(), json!({"city": "Paris"}))),
            ..Default::default()
        });
    }
    sdk("openai_sdk.py", &s, "gpt-5.1", &[]);
    assert!(s.oai.received().iter().all(|r| r.path == "/v1/responses"));
    sdk("openai_sdk.py", &s, "sdk-compat", &[]);
    assert!(
        s.compat
            .received()
            .iter()
            .all(|r| r.path == "/v1/chat/completions")
    );
    sdk("openai_sdk.py", &s, "sdk-ant", &[]);
    // The fixture model's template has no tools: plain, streaming and reasoning only. The
    // reasoning call samples (no temperature), so it is bounded: unbounded, the small model
    // may write its whole context, minutes on a loaded CI machine.
    sdk(
        "openai_sdk.py",
        &s,
        "smollm2",
        &["--no-tools", "--max-output-tokens", "64"],
    );
    // And the stored conversation really held the first turn.
    assert!(bodies(&s.ant).contains("What is the weather in Paris?"));
}

#[test]
fn the_anthropic_sdk_works_to_every_backend_kind() {
    let s = Setup::start(true);
    for model in ["sdk-ant", "sdk-compat", "gpt-5.1", "smollm2"] {
        sdk("anthropic_sdk.py", &s, model, &[]);
    }
}
