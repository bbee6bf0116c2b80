//! `models pull ORG/NAME`: download a model from the Hugging Face Hub into the Hugging
//! Face cache layout (`models--ORG--NAME/blobs/…`, `snapshots/COMMIT/…` as relative
//! symlinks, `refs/REVISION`), where Python tools find it too and where
//! [`super::discover`] lists it. Nothing is copied into the data dir.
//!
//! The Hub (`HF_ENDPOINT`, default `https://huggingface.co`; `HF_TOKEN` sent as a bearer
//! token, never across a redirect to another host) is asked once for the revision's file
//! list with sizes and hashes (`/api/models/ORG/NAME/revision/REV?blobs=true`); each
//! chosen file is then fetched from `/ORG/NAME/resolve/COMMIT/FILE` (redirects to a CDN
//! followed, at most 5, never from https down to http).
//!
//! Everything the Hub says is checked before it touches the disk: repo ids, revisions,
//! file names (no `..`, no absolute paths, no backslashes), blob names (hex hashes only),
//! and the cache folders themselves must not be links that lead out of the cache. A file
//! is written to `blobs/HASH.incomplete`, hashed as it arrives (SHA-256 for LFS files,
//! the git blob SHA-1 for the others), and renamed into place only when size and hash
//! match; a dropped connection resumes with a `Range` request (5 tries per file, and
//! the partial file stays for the next `pull` after a failure or a cancel).

use super::ModelEntry;
use crate::engine::CancelToken;
use crate::error::{Code, Error, Result};
use crate::store::audit::{self, Actor};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// The answer of the revision endpoint is bounded (a repo with 10,000 files is ~2 MB).
const MAX_LISTING_BYTES: usize = 16 << 20;
const MAX_SIBLINGS: usize = 20_000;
const MAX_FILES: usize = 2_000;
const MAX_FILE_NAME: usize = 1024;
const TRIES_PER_FILE: u32 = 5;
/// Progress is reported at most this often (and at the end of every file).
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// What to pull.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PullSpec {
    /// `ORG/NAME`.
    pub repo: String,
    /// A branch, tag or commit; `main` when absent.
    pub revision: Option<String>,
    /// Glob patterns (`*`, `?`) over the repo's file names; when empty, the files a
    /// model needs (safetensors, JSON, tokenizer files), or the only GGUF file.
    #[serde(default)]
    pub include: Vec<String>,
}

/// Progress of a running pull (the CLI prints it, the UI gets it as events).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PullProgress {
    pub repo: String,
    /// The file being downloaded.
    pub file: String,
    /// 1-based index of that file among `files`.
    pub file_index: u32,
    pub files: u32,
    /// Bytes of all chosen files that are on disk now.
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Download rate over this pull (bytes per second).
    pub rate_bps: u64,
    /// Seconds left at that rate, when there is a rate.
    pub eta_secs: Option<u64>,
}

/// What a finished pull did.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct PullOutcome {
    pub repo: String,
    /// The commit the revision named.
    pub commit: String,
    /// The snapshot folder in the cache.
    pub path: String,
    pub files: u32,
    pub bytes_total: u64,
    /// Bytes fetched over the network by this pull.
    pub bytes_downloaded: u64,
    /// Bytes of files that were already complete in the cache.
    pub bytes_reused: u64,
    /// Bytes of partial downloads (an earlier pull's, or this one's before a dropped
    /// connection) that were kept and continued rather than fetched again.
    pub bytes_resumed: u64,
    /// Connections that failed and were resumed.
    pub retries: u32,
    /// The registry entries of the models in the snapshot.
    pub models: Vec<ModelEntry>,
}

/// Where the Hub is and how to talk to it.
pub struct Hub {
    endpoint: url::Url,
    token: Option<String>,
    client: reqwest::Client,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("endpoint", &self.endpoint.as_str())
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Hub {
    /// `HF_ENDPOINT` (default `https://huggingface.co`) and `HF_TOKEN`.
    pub fn from_env() -> Result<Hub> {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "https://huggingface.co".into());
        let token = std::env::var("HF_TOKEN")
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        Hub::new(&endpoint, token)
    }

    pub fn new(endpoint: &str, token: Option<String>) -> Result<Hub> {
        let endpoint = url::Url::parse(endpoint.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                Error::new(
                    Code::InvalidArgument,
                    format!("HF_ENDPOINT {endpoint:?} is not an http(s) URL"),
                )
            })?;
        let redirects = reqwest::redirect::Policy::custom(|attempt| {
            let downgrade = attempt
                .previous()
                .first()
                .is_some_and(|u| u.scheme() == "https")
                && attempt.url().scheme() != "https";
            if attempt.previous().len() > 5 {
                attempt.error("more than 5 redirects")
            } else if downgrade || !matches!(attempt.url().scheme(), "http" | "https") {
                attempt.error("a redirect away from https")
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(redirects)
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("cannot build the HTTP client: {e}")))?;
        Ok(Hub {
            endpoint,
            token,
            client,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint.as_str().trim_end_matches('/'))
    }

    fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let r = self.client.get(url);
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }
}

// ------------------------------------------------------------------ names

/// `ORG/NAME` as the Hub allows them: letters, digits, `-`, `_`, `.`; no `..`, no
/// leading or trailing `-`/`.`, at most 96 characters each.
pub fn validate_repo(repo: &str) -> Result<(&str, &str)> {
    let part_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 96
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !s.contains("..")
            && !s.contains("--")
            && !s.starts_with(['-', '.'])
            && !s.ends_with(['-', '.'])
    };
    match repo.split_once('/') {
        Some((org, name)) if part_ok(org) && part_ok(name) => Ok((org, name)),
        _ => Err(Error::new(
            Code::InvalidArgument,
            format!(
                "{repo:?} is not a Hugging Face model id: give ORG/NAME (letters, digits, '-', '_', '.')"
            ),
        )),
    }
}

/// A branch, tag or commit name that is also a safe file name under `refs/`.
pub fn validate_revision(rev: &str) -> Result<()> {
    let ok = !rev.is_empty()
        && rev.len() <= 128
        && rev != "."
        && rev != ".."
        && rev
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::new(
            Code::InvalidArgument,
            format!(
                "revision {rev:?} is not usable: give a branch, tag or commit of letters, digits, '-', '_', '.'"
            ),
        ))
    }
}

/// A repo file name from the Hub: relative, `/`-separated, no `.`/`..` segments, no
/// backslashes or control characters.
fn safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FILE_NAME
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.chars().any(char::is_control)
        && name
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != ".." && seg.len() <= 255)
        && Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `*` any run of characters (including `/`), `?` one character, as fnmatch does.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

// ------------------------------------------------------------------ the listing

#[derive(Debug, Deserialize)]
struct Listing {
    sha: String,
    #[serde(default)]
    siblings: Vec<Sibling>,
}

#[derive(Debug, Clone, Deserialize)]
struct Sibling {
    rfilename: String,
    #[serde(rename = "blobId")]
    blob_id: Option<String>,
    size: Option<u64>,
    lfs: Option<Lfs>,
}

#[derive(Debug, Clone, Deserialize)]
struct Lfs {
    sha256: String,
    size: u64,
}

/// A file to fetch, checked.
#[derive(Debug, Clone)]
struct Wanted {
    name: String,
    size: u64,
    /// The blob's file name in `blobs/`: the SHA-256 (LFS) or the git blob SHA-1.
    blob: String,
    lfs: bool,
}

fn wanted(s: &Sibling) -> Result<Wanted> {
    let bad = |why: &str| {
        Error::new(
            Code::HubBadResponse,
            format!("the Hub listed {:?} {why}", s.rfilename),
        )
    };
    if !safe_file_name(&s.rfilename) {
        return Err(bad("as a file name that would leave the snapshot folder"));
    }
    if let Some(l) = &s.lfs {
        let sha = l.sha256.to_ascii_lowercase();
        if !is_hex(&sha, 64) {
            return Err(bad("with an LFS hash that is not a SHA-256"));
        }
        return Ok(Wanted {
            name: s.rfilename.clone(),
            size: l.size,
            blob: sha,
            lfs: true,
        });
    }
    match (&s.blob_id, s.size) {
        (Some(id), Some(size)) if is_hex(id, 40) => Ok(Wanted {
            name: s.rfilename.clone(),
            size,
            blob: id.to_ascii_lowercase(),
            lfs: false,
        }),
        _ => Err(bad("without a blob id and size")),
    }
}

/// The files a model needs when no `--include` was given.
fn default_selection(names: &[&str]) -> Result<Vec<String>> {
    let has = |ext: &str| names.iter().any(|n| n.ends_with(ext));
    if has(".safetensors") {
        let wanted_ext = [".safetensors", ".json", ".jinja", ".txt", ".tiktoken"];
        return Ok(names
            .iter()
            .filter(|n| {
                wanted_ext.iter().any(|e| n.ends_with(e))
                    || n.rsplit('/').next() == Some("tokenizer.model")
            })
            .map(|n| n.to_string())
            .collect());
    }
    let ggufs: Vec<&&str> = names.iter().filter(|n| n.ends_with(".gguf")).collect();
    match ggufs.len() {
        0 => Err(Error::new(
            Code::ModelInvalid,
            "this repository has neither safetensors nor GGUF files: nothing Switchyard can run",
        )),
        1 => Ok(vec![ggufs[0].to_string()]),
        n => {
            let shown: Vec<&str> = ggufs.iter().take(12).map(|s| **s).collect();
            Err(Error::new(
                Code::InvalidArgument,
                format!(
                    "this repository has {n} GGUF files; choose one with an include pattern (--include, or Files on the Models page), e.g. '*{}' ({}{})",
                    shown[0].rsplit('/').next().unwrap_or(shown[0]),
                    shown.join(", "),
                    if n > shown.len() { ", …" } else { "" }
                ),
            ))
        }
    }
}

fn hub_error(status: reqwest::StatusCode, what: &str, hub: &Hub) -> Error {
    match status.as_u16() {
        401 | 403 => Error::new(
            Code::HubAuthRequired,
            format!(
                "the Hub refused {what} ({status}): the repository is private or gated; accept its terms on the Hub and set HF_TOKEN{}",
                if hub.token.is_some() {
                    " (the HF_TOKEN given was not accepted)"
                } else {
                    ""
                }
            ),
        ),
        404 => Error::new(
            Code::ModelNotFound,
            format!("the Hub at {} has no {what}", hub.endpoint),
        ),
        _ => Error::new(
            Code::HubUnreachable,
            format!("the Hub answered {status} for {what}"),
        ),
    }
}

fn net_error(e: &reqwest::Error, what: &str) -> Error {
    // reqwest's Display names the URL, which may carry a CDN's signed query: keep the
    // kind of failure only.
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "was redirected away from https or too often"
    } else {
        "failed"
    };
    Error::new(
        Code::HubUnreachable,
        format!("{what}: the connection {kind}"),
    )
}

async fn listing(hub: &Hub, repo: &str, rev: &str) -> Result<Listing> {
    let what = format!("model {repo} at revision {rev}");
    let url = hub.url(&format!("/api/models/{repo}/revision/{rev}?blobs=true"));
    let mut resp = hub
        .get(&url)
        .send()
        .await
        .map_err(|e| net_error(&e, &format!("asking the Hub for {what}")))?;
    if !resp.status().is_success() {
        return Err(hub_error(resp.status(), &what, hub));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| net_error(&e, &format!("reading the Hub's listing of {what}")))?
    {
        if body.len() + chunk.len() > MAX_LISTING_BYTES {
            return Err(Error::new(
                Code::HubBadResponse,
                format!("the Hub's listing of {what} is larger than 16 MiB"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    let l: Listing = serde_json::from_slice(&body).map_err(|e| {
        Error::new(
            Code::HubBadResponse,
            format!("the Hub's listing of {what} is not what the Hub sends: {e}"),
        )
    })?;
    if !is_hex(&l.sha, 40) {
        return Err(Error::new(
            Code::HubBadResponse,
            format!("the Hub's listing of {what} names no commit"),
        ));
    }
    if l.siblings.len() > MAX_SIBLINGS {
        return Err(Error::new(
            Code::HubBadResponse,
            format!(
                "the repository lists {} files (at most {MAX_SIBLINGS} are read)",
                l.siblings.len()
            ),
        ));
    }
    Ok(l)
}

// ------------------------------------------------------------------ the cache

/// Create `dir` (and its parents) and check that it resolves inside `root`: a folder of
/// the cache that is a link to elsewhere is refused, not written through.
fn ensure_inside(dir: &Path, root: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let real = std::fs::canonicalize(dir)?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(Error::new(
            Code::Io,
            format!(
                "{} leads outside the Hugging Face cache ({}); refusing to write there",
                dir.display(),
                root.display()
            ),
        ))
    }
}

/// Point `link` at `target` (relative), replacing what is there atomically: a link that
/// pointed elsewhere is replaced, never followed.
fn place_link(link: &Path, target: &Path) -> Result<()> {
    let tmp = link.with_file_name(format!(
        ".{}.{}.tmp",
        link.file_name().and_then(|n| n.to_str()).unwrap_or("link"),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })?;
    Ok(())
}

fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Free bytes on the file system holding `dir`.
fn free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

/// The hash a file is checked against, fed as bytes arrive.
enum Hasher {
    Sha256(ring::digest::Context),
    /// Git's blob id: SHA-1 over `blob LEN\0` and the content.
    GitSha1(ring::digest::Context),
}

impl Hasher {
    fn new(w: &Wanted) -> Hasher {
        if w.lfs {
            Hasher::Sha256(ring::digest::Context::new(&ring::digest::SHA256))
        } else {
            let mut c = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
            c.update(format!("blob {}\0", w.size).as_bytes());
            Hasher::GitSha1(c)
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(c) | Hasher::GitSha1(c) => c.update(b),
        }
    }
    fn hex(self) -> String {
        let d = match self {
            Hasher::Sha256(c) | Hasher::GitSha1(c) => c.finish(),
        };
        d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Counters over the whole pull.
struct Tally {
    started: Instant,
    total: u64,
    done: u64,
    downloaded: u64,
    reused: u64,
    resumed: u64,
    retries: u32,
    last_report: Option<Instant>,
}

struct Reporter<'a> {
    repo: &'a str,
    files: u32,
    sink: &'a (dyn Fn(&PullProgress) + Send + Sync),
}

impl Reporter<'_> {
    fn report(&self, t: &mut Tally, file: &str, index: u32, force: bool) {
        let now = Instant::now();
        if !force && t.last_report.is_some_and(|l| now - l < PROGRESS_EVERY) {
            return;
        }
        t.last_report = Some(now);
        let secs = t.started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 {
            (t.downloaded as f64 / secs) as u64
        } else {
            0
        };
        (self.sink)(&PullProgress {
            repo: self.repo.to_string(),
            file: file.to_string(),
            file_index: index,
            files: self.files,
            bytes_done: t.done,
            bytes_total: t.total,
            rate_bps: rate,
            eta_secs: (rate > 0).then(|| t.total.saturating_sub(t.done) / rate),
        });
    }
}

/// Why one attempt at a file stopped.
enum Attempt {
    Done,
    /// The connection failed; what is on disk is kept and continued.
    Retry(Error),
}

/// One file's download: where from, where to, and whom to tell.
struct Fetch<'a> {
    hub: &'a Hub,
    url: String,
    w: &'a Wanted,
    partial: PathBuf,
    index: u32,
    rep: &'a Reporter<'a>,
    cancel: &'a CancelToken,
}

async fn fetch_once(f: &Fetch<'_>, t: &mut Tally) -> Result<Attempt> {
    let Fetch {
        hub,
        url,
        w,
        partial,
        index,
        rep,
        cancel,
    } = f;
    let (hub, w, index, rep, cancel) = (*hub, *w, *index, *rep, *cancel);
    let (url, partial) = (url.as_str(), partial.as_path());
    let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let mut req = hub.get(url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let what = format!("downloading {}", w.name);
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => return Ok(Attempt::Retry(net_error(&e, &what))),
    };
    let status = resp.status();
    if status.is_server_error() || status.as_u16() == 429 {
        return Ok(Attempt::Retry(Error::new(
            Code::HubUnreachable,
            format!("{what}: the Hub answered {status}"),
        )));
    }
    if !status.is_success() {
        return Err(hub_error(status, &format!("file {}", w.name), hub));
    }
    // 206 continues the partial file; a 200 is the whole file again.
    let resume = have > 0 && status.as_u16() == 206 && {
        let cr = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        cr.strip_prefix("bytes ")
            .and_then(|r| r.split_once('-'))
            .and_then(|(start, _)| start.parse::<u64>().ok())
            == Some(have)
    };
    let mut hasher = Hasher::new(w);
    let mut file = if resume {
        // Seed the hash with what is already there (gigabytes, maybe: off the async
        // threads).
        let path = partial.to_path_buf();
        hasher = tokio::task::spawn_blocking(move || -> Result<Hasher> {
            let mut f = std::fs::File::open(&path)?;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    return Ok(hasher);
                }
                hasher.update(&buf[..n]);
            }
        })
        .await
        .map_err(|e| Error::internal(format!("hashing the partial download crashed: {e}")))??;
        t.resumed += have;
        std::fs::OpenOptions::new().append(true).open(partial)?
    } else {
        t.done -= have.min(t.done);
        std::fs::File::create(partial)?
    };
    let mut written = if resume { have } else { 0 };
    loop {
        if cancel.is_cancelled() {
            file.sync_all()?;
            return Err(Error::new(
                Code::Cancelled,
                format!(
                    "pull cancelled; the {written} bytes of {} that arrived are kept and the next pull continues from there",
                    w.name
                ),
            ));
        }
        let next = tokio::select! {
            c = resp.chunk() => c,
            _ = cancelled(cancel) => continue,
        };
        let chunk = match next {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                file.sync_all()?;
                return Ok(Attempt::Retry(net_error(&e, &what)));
            }
        };
        if written + chunk.len() as u64 > w.size {
            drop(file);
            let _ = std::fs::remove_file(partial);
            return Err(Error::new(
                Code::HubBadResponse,
                format!(
                    "{} is longer than the {} bytes the Hub listed",
                    w.name, w.size
                ),
            ));
        }
        file.write_all(&chunk)?;
        hasher.update(&chunk);
        written += chunk.len() as u64;
        t.done += chunk.len() as u64;
        t.downloaded += chunk.len() as u64;
        rep.report(t, &w.name, index, false);
    }
    file.sync_all()?;
    if written < w.size {
        return Ok(Attempt::Retry(Error::new(
            Code::HubUnreachable,
            format!(
                "{what}: the connection ended after {written} of {} bytes",
                w.size
            ),
        )));
    }
    let got = hasher.hex();
    if got != w.blob {
        drop(file);
        let _ = std::fs::remove_file(partial);
        return Err(Error::new(
            Code::DownloadChecksumMismatch,
            format!(
                "{} does not match its {} ({} expected, {got} received); the download was discarded",
                w.name,
                if w.lfs { "SHA-256" } else { "git blob id" },
                w.blob
            ),
        ));
    }
    Ok(Attempt::Done)
}

/// Resolves once `cancel` is set (a stalled connection does not delay a cancel).
async fn cancelled(cancel: &CancelToken) {
    while !cancel.is_cancelled() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Download `spec` into the cache at `cache_root`, register its models, and return what
/// was done. `progress` is called as bytes arrive (at most every 250 ms per file).
pub async fn pull(
    db: &sea_orm::DatabaseConnection,
    actor: Actor,
    hub: &Hub,
    cache_root: &Path,
    spec: &PullSpec,
    progress: &(dyn Fn(&PullProgress) + Send + Sync),
    cancel: &CancelToken,
) -> Result<PullOutcome> {
    let (org, name) = validate_repo(&spec.repo)?;
    let rev = spec.revision.as_deref().unwrap_or("main");
    validate_revision(rev)?;
    for p in &spec.include {
        if p.is_empty() || p.len() > 256 || p.chars().any(char::is_control) {
            return Err(Error::new(
                Code::InvalidArgument,
                format!("include pattern {p:?} is not usable"),
            ));
        }
    }
    let repo = format!("{org}/{name}");
    let l = listing(hub, &repo, rev).await?;
    let names: Vec<&str> = l.siblings.iter().map(|s| s.rfilename.as_str()).collect();
    let chosen: Vec<String> = if spec.include.is_empty() {
        default_selection(&names)?
    } else {
        names
            .iter()
            .filter(|n| spec.include.iter().any(|p| glob_match(p, n)))
            .map(|n| n.to_string())
            .collect()
    };
    if chosen.is_empty() {
        return Err(Error::new(
            Code::InvalidArgument,
            format!(
                "no file of {repo} matches the include pattern {}",
                spec.include.join(",")
            ),
        ));
    }
    if chosen.len() > MAX_FILES {
        return Err(Error::new(
            Code::InvalidArgument,
            format!(
                "{} files chosen; at most {MAX_FILES} per pull",
                chosen.len()
            ),
        ));
    }
    let files: Vec<Wanted> = l
        .siblings
        .iter()
        .filter(|s| chosen.contains(&s.rfilename))
        .map(wanted)
        .collect::<Result<_>>()?;

    std::fs::create_dir_all(cache_root)?;
    let root = std::fs::canonicalize(cache_root)?;
    let repo_dir = ensure_inside(&root.join(format!("models--{org}--{name}")), &root)?;
    let blobs = ensure_inside(&repo_dir.join("blobs"), &root)?;
    let snapshot = ensure_inside(&repo_dir.join("snapshots").join(&l.sha), &root)?;
    let refs = ensure_inside(&repo_dir.join("refs"), &root)?;

    let total: u64 = files.iter().map(|w| w.size).sum();
    let mut t = Tally {
        started: Instant::now(),
        total,
        done: 0,
        downloaded: 0,
        reused: 0,
        resumed: 0,
        retries: 0,
        last_report: None,
    };
    // What still has to come, against the room on the disk.
    let mut missing = 0u64;
    for w in &files {
        let blob = blobs.join(&w.blob);
        match std::fs::metadata(&blob) {
            Ok(m) if m.len() == w.size => {}
            _ => {
                let partial = std::fs::metadata(blobs.join(format!("{}.incomplete", w.blob)))
                    .map(|m| m.len().min(w.size))
                    .unwrap_or(0);
                missing += w.size - partial;
            }
        }
    }
    if let Some(free) = free_bytes(&blobs)
        && free < missing
    {
        return Err(Error::new(
            Code::Io,
            format!(
                "{repo} needs {} MB more on disk and {} has {} MB free",
                missing / 1_000_000,
                root.display(),
                free / 1_000_000
            ),
        ));
    }

    let rep = Reporter {
        repo: &repo,
        files: files.len() as u32,
        sink: progress,
    };
    for (i, w) in files.iter().enumerate() {
        let index = i as u32 + 1;
        let blob = blobs.join(&w.blob);
        let already = std::fs::symlink_metadata(&blob)
            .ok()
            .filter(|m| m.is_file() && m.len() == w.size);
        if already.is_none() {
            let partial = blobs.join(format!("{}.incomplete", w.blob));
            match std::fs::metadata(&partial) {
                // Longer than the file can be: not a part of it.
                Ok(m) if m.len() > w.size => std::fs::remove_file(&partial)?,
                Ok(m) => t.done += m.len(),
                Err(_) => {}
            }
            let url = hub.url(&format!(
                "/{repo}/resolve/{}/{}",
                l.sha,
                w.name
                    .split('/')
                    .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes())
                        .collect::<String>()
                        .replace('+', "%20"))
                    .collect::<Vec<_>>()
                    .join("/")
            ));
            let fetch = Fetch {
                hub,
                url,
                w,
                partial: partial.clone(),
                index,
                rep: &rep,
                cancel,
            };
            let mut tries = 0;
            loop {
                tries += 1;
                match fetch_once(&fetch, &mut t).await? {
                    Attempt::Done => break,
                    Attempt::Retry(e) if tries >= TRIES_PER_FILE => {
                        return Err(Error::new(
                            e.code,
                            format!(
                                "{} (after {TRIES_PER_FILE} tries; what arrived is kept: pull the same model again to continue)",
                                e.message
                            ),
                        ));
                    }
                    Attempt::Retry(e) => {
                        t.retries += 1;
                        tracing::info!("pull {repo}: {}; resuming", e.message);
                        tokio::time::sleep(Duration::from_millis(250 << tries.min(4))).await;
                    }
                }
            }
            std::fs::rename(&partial, &blob)?;
        } else {
            t.done += w.size;
            t.reused += w.size;
        }
        // snapshots/COMMIT/a/b.json → ../../../blobs/HASH (one more `..` per folder).
        let link = snapshot.join(&w.name);
        let parent = link.parent().unwrap_or(&snapshot).to_path_buf();
        ensure_inside(&parent, &root)?;
        let depth = w.name.matches('/').count();
        let mut target = PathBuf::new();
        for _ in 0..depth + 2 {
            target.push("..");
        }
        target.push("blobs");
        target.push(&w.blob);
        place_link(&link, &target)?;
        rep.report(&mut t, &w.name, index, true);
    }
    if rev != l.sha {
        write_atomic(&refs.join(rev), &l.sha)?;
    }
    tracing::info!(
        "pulled {repo}@{} ({} files, {} bytes downloaded, {} reused, {} resumed)",
        l.sha,
        files.len(),
        t.downloaded,
        t.reused,
        t.resumed
    );

    let found = super::discover::models_in(&snapshot, &root, &repo, "hf-cache", Some(&l.sha));
    let models = super::discover::register(db, found).await?;
    audit::record(
        db,
        actor,
        "model.pull",
        Some(&repo),
        serde_json::json!({
            "commit": l.sha, "files": files.len(), "bytes_total": total,
            "bytes_downloaded": t.downloaded, "models": models.iter().map(|m| &m.name).collect::<Vec<_>>(),
        }),
    )
    .await?;
    Ok(PullOutcome {
        repo,
        commit: l.sha.clone(),
        path: snapshot.display().to_string(),
        files: files.len() as u32,
        bytes_total: total,
        bytes_downloaded: t.downloaded,
        bytes_reused: t.reused,
        bytes_resumed: t.resumed,
        retries: t.retries,
        models,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_users_and_the_hub_cannot_leave_the_cache() {
        for bad in [
            "", "a", "/a", "a/", "a/b/c", "../a", "a/..", "a/.b", "-a/b", "a/b-", "a/b..c",
            "a b/c", "a/b\\c", "a--b/c",
        ] {
            assert!(validate_repo(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            validate_repo("mlx-community/SmolLM2-135M-Instruct-4bit").unwrap(),
            ("mlx-community", "SmolLM2-135M-Instruct-4bit")
        );
        for bad in ["", ".", "..", "refs/pr/1", "a b", "main\n"] {
            assert!(validate_revision(bad).is_err(), "{bad:?}");
        }
        validate_revision("main").unwrap();
        validate_revision("v1.0").unwrap();
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a/./b",
            "a\\..\\b",
            "x\0",
            "a/",
        ] {
            assert!(!safe_file_name(bad), "{bad:?}");
        }
        assert!(safe_file_name("config.json"));
        assert!(safe_file_name("sub/dir/model-00001-of-00002.safetensors"));
    }

    #[test]
    fn globs_match_as_fnmatch_does() {
        assert!(glob_match("*.gguf", "a/b.Q4_K_M.gguf"));
        assert!(glob_match("*Q4_K_M.gguf", "m.Q4_K_M.gguf"));
        assert!(!glob_match("*Q4_K_M.gguf", "m.Q8_0.gguf"));
        assert!(glob_match("config.json", "config.json"));
        assert!(!glob_match("config.json", "xconfig.json"));
        assert!(glob_match(
            "model-?????-of-*.safetensors",
            "model-00001-of-00002.safetensors"
        ));
        assert!(glob_match("*", ""));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn without_include_the_model_files_are_chosen() {
        let names = [
            "README.md",
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer.model",
            "chat_template.jinja",
            "pytorch_model.bin",
            "images/x.png",
        ];
        let got = default_selection(&names).unwrap();
        assert_eq!(
            got,
            [
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer.model",
                "chat_template.jinja"
            ]
        );
        assert_eq!(
            default_selection(&["a.Q4.gguf", "README.md"]).unwrap(),
            ["a.Q4.gguf"]
        );
        let e = default_selection(&["a.Q4.gguf", "a.Q8.gguf"]).unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(e.message.contains("--include"), "{}", e.message);
        assert_eq!(
            default_selection(&["README.md"]).unwrap_err().code,
            Code::ModelInvalid
        );
    }

    #[test]
    fn hub_listings_with_unsafe_names_or_hashes_are_refused() {
        let s = |name: &str, blob: Option<&str>, lfs: Option<&str>| Sibling {
            rfilename: name.into(),
            blob_id: blob.map(str::to_string),
            size: Some(3),
            lfs: lfs.map(|h| Lfs {
                sha256: h.into(),
                size: 3,
            }),
        };
        let sha1 = "a".repeat(40);
        let sha256 = "b".repeat(64);
        assert!(wanted(&s("../../x", Some(&sha1), None)).is_err());
        assert!(wanted(&s("x", Some("../../etc"), None)).is_err());
        assert!(wanted(&s("x", None, Some("../x"))).is_err());
        assert!(wanted(&s("x", None, None)).is_err());
        let w = wanted(&s("m.safetensors", None, Some(&sha256))).unwrap();
        assert!(w.lfs && w.blob == sha256);
        let w = wanted(&s("config.json", Some(&sha1), None)).unwrap();
        assert!(!w.lfs && w.blob == sha1);
    }

    #[test]
    fn the_git_blob_id_is_what_git_computes() {
        // `printf 'hello\n' | git hash-object --stdin`
        let w = Wanted {
            name: "x".into(),
            size: 6,
            blob: String::new(),
            lfs: false,
        };
        let mut h = Hasher::new(&w);
        h.update(b"hello\n");
        assert_eq!(h.hex(), "ce013625030ba8dba906f756967f9e9ca394464a");
    }
}
