//! A stand-in for the Hugging Face Hub on a loopback port, in the Hub's URL layout:
//! `GET /api/models/ORG/NAME/revision/REV?blobs=true` (the file list with `blobId`,
//! `size` and `lfs.sha256`), `GET /ORG/NAME/resolve/REV/FILE` (small files directly, LFS
//! files as a 302 to a CDN-style URL on another origin, with a signed query), and the
//! CDN itself, which honours `Range` as the real one does. It refuses what the Hub
//! refuses (unknown repos and revisions: 404; a gated repo without the token: 401) and
//! can fail on demand: drop a connection mid-file, stall, or serve a corrupted file.
//!
//! Use from a test binary with `#[path = "common/fake_hub.rs"] mod fake_hub;`.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One file of a repo.
#[derive(Clone)]
pub struct HubFile {
    pub name: String,
    pub bytes: Arc<Vec<u8>>,
    /// Stored with Git LFS (served through the CDN redirect, hashed with SHA-256).
    pub lfs: bool,
}

impl HubFile {
    pub fn new(name: &str, bytes: Vec<u8>) -> Self {
        let lfs = name.ends_with(".safetensors") || name.ends_with(".gguf");
        HubFile {
            name: name.into(),
            bytes: Arc::new(bytes),
            lfs,
        }
    }

    pub fn sha256(&self) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, &self.bytes).as_ref())
    }

    /// Git's blob id of the content.
    pub fn git_blob_id(&self) -> String {
        let mut c = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
        c.update(format!("blob {}\0", self.bytes.len()).as_bytes());
        c.update(&self.bytes);
        hex(c.finish().as_ref())
    }

    pub fn blob_name(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.git_blob_id()
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A failure to inject into CDN downloads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// Send this many bytes of the next download, then drop the connection (once).
    DropOnceAfter(usize),
    /// Drop every download after this many bytes of the response.
    DropAlwaysAfter(usize),
    /// Send this many bytes, then hang without closing.
    StallAfter(usize),
    /// Serve the file with one byte changed.
    Corrupt,
}

#[derive(Default)]
struct Inner {
    repos: HashMap<String, (String, Vec<HubFile>)>,
    /// Repos that need `Authorization: Bearer TOKEN`.
    gated: HashMap<String, String>,
    fault: Option<Fault>,
    /// Per CDN request: (file sha256, range start, authorization header present).
    cdn_requests: Vec<(String, u64, bool)>,
    /// Paths asked of the API and resolve endpoints, with their authorization.
    requests: Vec<(String, Option<String>)>,
    bytes_served: u64,
    /// A sibling name to add to every listing (for path-safety tests).
    extra_sibling: Option<String>,
}

#[derive(Clone)]
pub struct FakeHub {
    pub url: String,
    /// The same server under another origin (`localhost` instead of `127.0.0.1`),
    /// where LFS downloads are redirected, as the Hub redirects to its CDN.
    pub cdn: String,
    inner: Arc<Mutex<Inner>>,
}

impl FakeHub {
    pub async fn start() -> FakeHub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hub = FakeHub {
            url: format!("http://127.0.0.1:{port}"),
            cdn: format!("http://localhost:{port}"),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route("/api/models/{org}/{name}/revision/{rev}", get(listing))
            .route("/{org}/{name}/resolve/{rev}/{*file}", get(resolve))
            .route("/cdn/{sha}", get(cdn))
            .with_state(hub.clone());
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        hub
    }

    /// Publish `files` as `repo` at `commit` (40 hex), reachable as `main` and `commit`.
    pub fn publish(&self, repo: &str, commit: &str, files: Vec<HubFile>) {
        self.inner
            .lock()
            .unwrap()
            .repos
            .insert(repo.into(), (commit.into(), files));
    }

    pub fn gate(&self, repo: &str, token: &str) {
        self.inner
            .lock()
            .unwrap()
            .gated
            .insert(repo.into(), token.into());
    }

    pub fn set_fault(&self, f: Option<Fault>) {
        self.inner.lock().unwrap().fault = f;
    }

    pub fn add_sibling(&self, name: &str) {
        self.inner.lock().unwrap().extra_sibling = Some(name.into());
    }

    pub fn cdn_requests(&self) -> Vec<(String, u64, bool)> {
        self.inner.lock().unwrap().cdn_requests.clone()
    }

    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.inner.lock().unwrap().requests.clone()
    }

    pub fn bytes_served(&self) -> u64 {
        self.inner.lock().unwrap().bytes_served
    }

    fn find(&self, org: &str, name: &str, rev: &str) -> Option<(String, Vec<HubFile>)> {
        let inner = self.inner.lock().unwrap();
        let (commit, files) = inner.repos.get(&format!("{org}/{name}"))?;
        (rev == "main" || rev == commit).then(|| (commit.clone(), files.clone()))
    }

    /// 401 unless the request carries the gated repo's token.
    fn refused(&self, repo: &str, headers: &HeaderMap) -> bool {
        let inner = self.inner.lock().unwrap();
        match inner.gated.get(repo) {
            None => false,
            Some(t) => {
                headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    != Some(format!("Bearer {t}"))
            }
        }
    }

    fn record(&self, path: String, headers: &HeaderMap) {
        let auth = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.inner.lock().unwrap().requests.push((path, auth));
    }
}

fn hub_error(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({ "error": msg }))).into_response()
}

async fn listing(
    State(hub): State<FakeHub>,
    Path((org, name, rev)): Path<(String, String, String)>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Response {
    hub.record(format!("/api/models/{org}/{name}/revision/{rev}"), &headers);
    if hub.refused(&format!("{org}/{name}"), &headers) {
        return hub_error(
            StatusCode::UNAUTHORIZED,
            "Access to this model is restricted.",
        );
    }
    let Some((commit, files)) = hub.find(&org, &name, &rev) else {
        return hub_error(StatusCode::NOT_FOUND, "Repository not found");
    };
    let blobs = q.is_some_and(|q| q.split('&').any(|kv| kv == "blobs=true"));
    let mut siblings: Vec<serde_json::Value> = files
        .iter()
        .map(|f| {
            if !blobs {
                return json!({ "rfilename": f.name });
            }
            let mut s = json!({
                "rfilename": f.name,
                "blobId": f.git_blob_id(),
                "size": f.bytes.len(),
            });
            if f.lfs {
                s["lfs"] =
                    json!({ "sha256": f.sha256(), "size": f.bytes.len(), "pointerSize": 134 });
            }
            s
        })
        .collect();
    if let Some(extra) = hub.inner.lock().unwrap().extra_sibling.clone() {
        siblings.push(json!({
            "rfilename": extra, "blobId": "0".repeat(40), "size": 2,
        }));
    }
    Json(json!({
        "_id": "0123", "id": format!("{org}/{name}"), "modelId": format!("{org}/{name}"),
        "sha": commit, "private": false, "gated": false, "siblings": siblings,
    }))
    .into_response()
}

async fn resolve(
    State(hub): State<FakeHub>,
    Path((org, name, rev, file)): Path<(String, String, String, String)>,
    headers: HeaderMap,
) -> Response {
    hub.record(format!("/{org}/{name}/resolve/{rev}/{file}"), &headers);
    if hub.refused(&format!("{org}/{name}"), &headers) {
        return hub_error(
            StatusCode::UNAUTHORIZED,
            "Access to this model is restricted.",
        );
    }
    let Some((commit, files)) = hub.find(&org, &name, &rev) else {
        return hub_error(StatusCode::NOT_FOUND, "Repository not found");
    };
    let Some(f) = files.iter().find(|f| f.name == file) else {
        return hub_error(StatusCode::NOT_FOUND, "Entry not found");
    };
    if f.lfs {
        let loc = format!(
            "{}/cdn/{}?X-Amz-Signature=deadbeef&response-content-disposition=attachment",
            hub.cdn,
            f.sha256()
        );
        return Response::builder()
            .status(StatusCode::FOUND)
            .header("location", loc)
            .header("x-repo-commit", commit)
            .header("x-linked-etag", format!("\"{}\"", f.sha256()))
            .header("x-linked-size", f.bytes.len())
            .body(Body::empty())
            .unwrap();
    }
    serve_bytes(&hub, f.bytes.clone(), 0, None, false)
}

async fn cdn(State(hub): State<FakeHub>, Path(sha): Path<String>, headers: HeaderMap) -> Response {
    let file = {
        let inner = hub.inner.lock().unwrap();
        inner
            .repos
            .values()
            .flat_map(|(_, fs)| fs.iter())
            .find(|f| f.lfs && f.sha256() == sha)
            .cloned()
    };
    let Some(f) = file else {
        return hub_error(StatusCode::NOT_FOUND, "NoSuchKey");
    };
    let start = headers
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|s| s.parse::<u64>().ok());
    hub.inner.lock().unwrap().cdn_requests.push((
        sha,
        start.unwrap_or(0),
        headers.contains_key("authorization"),
    ));
    serve_bytes(&hub, f.bytes.clone(), start.unwrap_or(0), start, true)
}

fn serve_bytes(
    hub: &FakeHub,
    bytes: Arc<Vec<u8>>,
    start: u64,
    range: Option<u64>,
    cdn: bool,
) -> Response {
    let len = bytes.len() as u64;
    if start > len {
        return (StatusCode::RANGE_NOT_SATISFIABLE, "").into_response();
    }
    // Faults are the CDN's (where the big files come from).
    let fault = if !cdn {
        None
    } else {
        let mut inner = hub.inner.lock().unwrap();
        let f = inner.fault;
        if let Some(Fault::DropOnceAfter(_)) = f {
            inner.fault = None;
        }
        f
    };
    let mut body: Vec<u8> = bytes[start as usize..].to_vec();
    if fault == Some(Fault::Corrupt) && !body.is_empty() {
        let mid = body.len() / 2;
        body[mid] ^= 0x55;
    }
    let cut = match fault {
        Some(Fault::DropOnceAfter(n) | Fault::DropAlwaysAfter(n) | Fault::StallAfter(n)) => {
            Some(n.min(body.len()))
        }
        _ => None,
    };
    let stall = matches!(fault, Some(Fault::StallAfter(_)));
    let total_len = body.len();
    let hub2 = hub.clone();
    let stream = async_stream(body, cut, stall, hub2);
    let mut b = Response::builder()
        .header("content-length", total_len)
        .header("accept-ranges", "bytes")
        .header("etag", "\"x\"");
    b = match range {
        Some(s) => b
            .status(StatusCode::PARTIAL_CONTENT)
            .header("content-range", format!("bytes {s}-{}/{len}", len - 1)),
        None => b.status(StatusCode::OK),
    };
    b.body(Body::from_stream(stream)).unwrap()
}

/// The body in 64 KiB chunks; with `cut`, an error (a dropped connection) or a hang
/// after that many bytes.
fn async_stream(
    body: Vec<u8>,
    cut: Option<usize>,
    stall: bool,
    hub: FakeHub,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send {
    let limit = cut.unwrap_or(body.len());
    let chunks: Vec<Vec<u8>> = body[..limit].chunks(64 << 10).map(<[u8]>::to_vec).collect();
    let tail_fails = cut.is_some_and(|c| c < body.len()) || (cut.is_some() && stall);
    futures_util::stream::unfold(
        (chunks.into_iter(), tail_fails, stall, hub),
        |(mut it, fails, stall, hub)| async move {
            match it.next() {
                Some(c) => {
                    hub.inner.lock().unwrap().bytes_served += c.len() as u64;
                    Some((Ok(c), (it, fails, stall, hub)))
                }
                None if fails && stall => {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    None
                }
                None if fails => Some((
                    Err(std::io::Error::other("connection dropped")),
                    (it, false, stall, hub),
                )),
                None => None,
            }
        },
    )
}
