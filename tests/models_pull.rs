//! `models pull` through the real binary against a fake Hub in the Hub's URL layout:
//! the download lands in the Hugging Face cache layout and generates in place; a CDN
//! redirect is followed without the token; a dropped connection resumes (only the rest
//! is fetched again), also across runs and after a cancel; a wrong checksum, unsafe
//! names and cache folders that link elsewhere are refused with nothing written.

mod common;
#[path = "common/fake_hub.rs"]
mod fake_hub;

use common::*;
use fake_hub::{FakeHub, Fault, HubFile};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// The fixture's MLX folder as a Hub repo, plus a README that a pull leaves alone.
fn mlx_repo() -> Vec<HubFile> {
    let dir = fixture(".fixtures/smollm2/mlx");
    let mut files: Vec<HubFile> = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    .iter()
    .map(|f| HubFile::new(f, std::fs::read(dir.join(f)).unwrap()))
    .collect();
    files.push(HubFile::new("README.md", b"# smol\n".to_vec()));
    files
}

struct Setup {
    env: Env,
    hub: FakeHub,
    hf_home: PathBuf,
    _rt: tokio::runtime::Runtime,
}

impl Setup {
    fn new() -> Setup {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let hub = rt.block_on(FakeHub::start());
        let env = Env::new();
        let hf_home = env.data_dir().join("hf-home");
        Setup {
            env,
            hub,
            hf_home,
            _rt: rt,
        }
    }

    fn cmd(&self) -> Command {
        let mut c = self.env.cmd();
        c.env("HF_HOME", &self.hf_home)
            .env("HF_ENDPOINT", &self.hub.url)
            .env_remove("HF_TOKEN");
        c
    }

    fn pull(&self, args: &[&str], token: Option<&str>) -> Output {
        let mut c = self.cmd();
        if let Some(t) = token {
            c.env("HF_TOKEN", t);
        }
        c.args(["--json", "models", "pull"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn repo_dir(&self, repo: &str) -> PathBuf {
        self.hf_home
            .join("hub")
            .join(format!("models--{}", repo.replace('/', "--")))
    }
}

fn ok_json(o: &Output) -> Value {
    assert!(
        o.status.success(),
        "pull failed ({:?}): {}{}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn err_code(o: &Output) -> String {
    assert!(!o.status.success(), "expected a failure: {}", stdout(o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!("not one JSON document: {}{}", stdout(o), stderr(o));
    });
    v["error"]["code"].as_str().unwrap().to_string()
}

#[test]
fn a_pulled_model_lands_in_the_cache_layout_and_generates_in_place() {
    let s = Setup::new();
    let files = mlx_repo();
    let total: u64 = files[..4].iter().map(|f| f.bytes.len() as u64).sum();
    s.hub.publish("acme/smol-mlx", COMMIT, files.clone());

    let v = ok_json(&s.pull(&["acme/smol-mlx"], Some("hf_secret_token")));
    assert_eq!(v["commit"], COMMIT);
    assert_eq!(v["files"], 4, "README.md is not a model file: {v}");
    assert_eq!(v["bytes_total"].as_u64(), Some(total));
    assert_eq!(v["bytes_downloaded"].as_u64(), Some(total));
    assert_eq!(v["retries"], 0);
    let model = &v["models"][0];
    assert_eq!(model["name"], "acme/smol-mlx");
    assert_eq!(model["source"], "hf-cache");
    assert_eq!(model["revision"], COMMIT);
    assert_eq!(
        model["size_bytes"].as_u64(),
        Some(total),
        "the size is the files' (through the snapshot's links)"
    );

    // The layout huggingface_hub writes: refs/main, blobs by hash, relative symlinks.
    let dir = s.repo_dir("acme/smol-mlx");
    assert_eq!(
        std::fs::read_to_string(dir.join("refs/main")).unwrap(),
        COMMIT
    );
    let snap = dir.join("snapshots").join(COMMIT);
    for f in &files[..4] {
        let link = snap.join(&f.name);
        let target = std::fs::read_link(&link).unwrap();
        assert_eq!(
            target,
            Path::new("../../blobs").join(f.blob_name()),
            "{}",
            f.name
        );
        assert_eq!(std::fs::read(&link).unwrap(), *f.bytes, "{}", f.name);
    }
    assert!(!snap.join("README.md").exists());
    assert!(
        !std::fs::read_dir(dir.join("blobs"))
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
    );

    // The token went to the Hub, never to the CDN the weights were redirected to.
    let reqs = s.hub.requests();
    assert!(
        reqs.iter()
            .all(|(_, a)| a.as_deref() == Some("Bearer hf_secret_token")),
        "{reqs:?}"
    );
    let cdn = s.hub.cdn_requests();
    assert_eq!(cdn.len(), 1, "{cdn:?}");
    assert!(!cdn[0].2, "the CDN got the Authorization header");

    // It runs where it is, by its name.
    let out = s
        .cmd()
        .args([
            "--json",
            "generate",
            "--model",
            "acme/smol-mlx",
            "--prompt",
            "Hi",
            "--max-tokens",
            "3",
        ])
        .output()
        .unwrap();
    let g: Value = ok_json(&out);
    assert!(!g["token_ids"].as_array().unwrap().is_empty(), "{g}");

    // A second pull finds everything in place and fetches nothing.
    let served = s.hub.bytes_served();
    let v = ok_json(&s.pull(&["acme/smol-mlx"], None));
    assert_eq!(v["bytes_downloaded"], 0);
    assert_eq!(v["bytes_reused"].as_u64(), Some(total));
    assert_eq!(s.hub.bytes_served(), served);
    assert_eq!(v["models"][0]["id"], model["id"], "registered once");

    // Removing it keeps the files (they are the cache's) and it stays out of the list
    // until it is pulled again.
    let out = s
        .cmd()
        .args(["models", "remove", "acme/smol-mlx", "--yes"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(snap.join("model.safetensors").exists());
    let list = s.cmd().args(["--json", "models", "list"]).output().unwrap();
    let list: Value = ok_json(&list);
    assert_eq!(list.as_array().unwrap().len(), 0, "{list}");
    let v = ok_json(&s.pull(&["acme/smol-mlx"], None));
    assert_eq!(v["models"][0]["name"], "acme/smol-mlx");
}

#[test]
fn a_dropped_connection_resumes_and_a_wrong_checksum_is_refused() {
    let s = Setup::new();
    let files = mlx_repo();
    let weights = files[1].clone();
    let size = weights.bytes.len() as u64;
    let total: u64 = files[..4].iter().map(|f| f.bytes.len() as u64).sum();
    s.hub.publish("acme/smol-mlx", COMMIT, files);

    // Within one pull: the connection drops at 10 MB and the rest is fetched with a Range.
    let cut = 10 << 20;
    s.hub.set_fault(Some(Fault::DropOnceAfter(cut)));
    let v = ok_json(&s.pull(&["acme/smol-mlx"], None));
    assert_eq!(v["retries"], 1, "{v}");
    let resumed = v["bytes_resumed"].as_u64().unwrap();
    assert!(resumed > 0 && resumed <= cut as u64, "{v}");
    assert_eq!(
        v["bytes_downloaded"].as_u64(),
        Some(total),
        "only the rest was fetched again: {v}"
    );
    let cdn = s.hub.cdn_requests();
    assert_eq!(
        cdn.iter().map(|c| c.1).collect::<Vec<_>>(),
        [0, resumed],
        "the second request asked for the rest: {cdn:?}"
    );
    let blob = s
        .repo_dir("acme/smol-mlx")
        .join("blobs")
        .join(weights.sha256());
    assert_eq!(std::fs::metadata(&blob).unwrap().len(), size);

    // Across runs: every try fails at 5 MB, so the pull gives up, keeping the part.
    let s = Setup::new();
    s.hub.publish("acme/smol-mlx", COMMIT, mlx_repo());
    s.hub.set_fault(Some(Fault::DropAlwaysAfter(5 << 20)));
    let out = s.pull(&["acme/smol-mlx"], None);
    assert_eq!(err_code(&out), "hub_unreachable");
    assert_eq!(out.status.code(), Some(1));
    let partial = s
        .repo_dir("acme/smol-mlx")
        .join("blobs")
        .join(format!("{}.incomplete", weights.sha256()));
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept >= 5 << 20, "{kept}");
    assert!(!s.repo_dir("acme/smol-mlx").join("refs/main").exists());
    let list: Value = ok_json(&s.cmd().args(["--json", "models", "list"]).output().unwrap());
    assert_eq!(
        list.as_array().unwrap().len(),
        0,
        "a failed pull registers nothing"
    );
    s.hub.set_fault(None);
    let v = ok_json(&s.pull(&["acme/smol-mlx"], None));
    assert_eq!(v["bytes_resumed"].as_u64(), Some(kept), "{v}");
    // config.json came before the weights and was complete already.
    let config = mlx_repo()[0].bytes.len() as u64;
    assert_eq!(v["bytes_reused"].as_u64(), Some(config), "{v}");
    assert_eq!(
        v["bytes_downloaded"].as_u64(),
        Some(total - kept - config),
        "{v}"
    );
    assert!(!partial.exists());

    // A cancel (Ctrl-C) keeps the part too, and the next pull continues it.
    let s = Setup::new();
    s.hub.publish("acme/smol-mlx", COMMIT, mlx_repo());
    s.hub.set_fault(Some(Fault::StallAfter(3 << 20)));
    let child = s
        .cmd()
        .args(["--json", "models", "pull", "acme/smol-mlx"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let partial = s
        .repo_dir("acme/smol-mlx")
        .join("blobs")
        .join(format!("{}.incomplete", weights.sha256()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0) < 3 << 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the download never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(err_code(&out), "cancelled");
    assert_eq!(std::fs::metadata(&partial).unwrap().len(), 3 << 20);
    s.hub.set_fault(None);
    let v = ok_json(&s.pull(&["acme/smol-mlx"], None));
    assert_eq!(v["bytes_resumed"].as_u64(), Some(3 << 20), "{v}");

    // A file whose bytes do not hash to what the Hub listed is discarded.
    let s = Setup::new();
    s.hub.publish("acme/smol-mlx", COMMIT, mlx_repo());
    s.hub.set_fault(Some(Fault::Corrupt));
    let out = s.pull(&["acme/smol-mlx"], None);
    assert_eq!(err_code(&out), "download_checksum_mismatch");
    let blobs = s.repo_dir("acme/smol-mlx").join("blobs");
    let partial = blobs.join(format!("{}.incomplete", weights.sha256()));
    assert!(!blobs.join(weights.sha256()).exists());
    assert!(!partial.exists());
    let snap = s.repo_dir("acme/smol-mlx").join("snapshots").join(COMMIT);
    assert!(!snap.join("model.safetensors").exists());
    let list: Value = ok_json(&s.cmd().args(["--json", "models", "list"]).output().unwrap());
    assert_eq!(list.as_array().unwrap().len(), 0);
}

#[test]
fn names_and_links_that_would_leave_the_cache_are_refused() {
    let s = Setup::new();
    s.hub.publish("acme/smol-mlx", COMMIT, mlx_repo());

    // Bad ids and revisions are usage errors, before any request.
    for args in [
        &["../etc"][..],
        &["acme/../x"],
        &["/abs/x"],
        &["acme/smol-mlx", "--revision", "../../x"],
        &["acme/smol-mlx", "--revision", "refs/pr/1"],
    ] {
        let out = s.pull(args, None);
        assert_eq!(err_code(&out), "invalid_argument", "{args:?}");
        assert_eq!(out.status.code(), Some(4));
    }
    assert!(s.hub.requests().is_empty());

    // A file name in the Hub's listing that climbs out of the snapshot.
    s.hub.add_sibling("../../../escaped.json");
    let out = s.pull(&["acme/smol-mlx"], None);
    assert_eq!(err_code(&out), "hub_bad_response");
    assert!(!s.hf_home.join("escaped.json").exists());
    assert!(!s.hf_home.join("hub/escaped.json").exists());

    // A cache folder that is a link to somewhere else is not written through.
    let s = Setup::new();
    s.hub.publish("acme/smol-mlx", COMMIT, mlx_repo());
    let outside = s.env.data_dir().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let repo = s.repo_dir("acme/smol-mlx");
    std::fs::create_dir_all(&repo).unwrap();
    std::os::unix::fs::symlink(&outside, repo.join("blobs")).unwrap();
    let out = s.pull(&["acme/smol-mlx"], None);
    assert_eq!(err_code(&out), "io_error", "{}", stdout(&out));
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());

    // A snapshot entry that is a link to a file outside is replaced, not followed.
    let s = Setup::new();
    s.hub.publish("acme/smol-mlx", COMMIT, mlx_repo());
    let victim = s.env.data_dir().join("victim.json");
    std::fs::write(&victim, "precious").unwrap();
    let snap = s.repo_dir("acme/smol-mlx").join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink(&victim, snap.join("config.json")).unwrap();
    ok_json(&s.pull(&["acme/smol-mlx"], None));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(
        std::fs::read_link(snap.join("config.json")).unwrap(),
        Path::new("../../blobs").join(mlx_repo()[0].blob_name())
    );
}

#[test]
fn the_hub_refusing_or_not_knowing_a_repo_is_a_coded_error() {
    let s = Setup::new();
    let gguf = std::fs::read(fixture(".fixtures/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")).unwrap();
    s.hub.publish(
        "acme/smol-gguf",
        COMMIT,
        vec![
            HubFile::new("smol.Q4_1.gguf", gguf.clone()),
            HubFile::new("smol.Q8_0.gguf", b"GGUF not really".to_vec()),
        ],
    );
    s.hub.gate("acme/smol-gguf", "hf_right");

    let out = s.pull(&["acme/nothing"], None);
    assert_eq!(err_code(&out), "model_not_found");
    assert_eq!(out.status.code(), Some(3));
    let out = s.pull(&["acme/smol-gguf", "--revision", "v9"], Some("hf_right"));
    assert_eq!(err_code(&out), "model_not_found");

    let out = s.pull(&["acme/smol-gguf"], None);
    assert_eq!(err_code(&out), "hub_auth_required");
    assert!(stdout(&out).contains("HF_TOKEN"), "{}", stdout(&out));
    let out = s.pull(&["acme/smol-gguf"], Some("hf_wrong"));
    assert_eq!(err_code(&out), "hub_auth_required");
    assert!(
        !stdout(&out).contains("hf_wrong"),
        "the token is never echoed"
    );

    // Two GGUF files and no --include: the user chooses.
    let out = s.pull(&["acme/smol-gguf"], Some("hf_right"));
    assert_eq!(err_code(&out), "invalid_argument");
    assert!(stdout(&out).contains("--include"), "{}", stdout(&out));
    assert!(s.hub.cdn_requests().is_empty());

    let v = ok_json(&s.pull(
        &["acme/smol-gguf", "--include", "*Q4_1.gguf"],
        Some("hf_right"),
    ));
    assert_eq!(v["files"], 1);
    assert_eq!(v["models"][0]["name"], "acme/smol-gguf/smol.Q4_1");
    assert_eq!(v["models"][0]["format"], "gguf");
}
