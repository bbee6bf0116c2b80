//! The checks every request passes before anything else runs (architecture invariant 5):
//! the Host allowlist (DNS-rebinding defence), the Origin check (no browser page of a
//! foreign site may call us; no CORS), an early body-size check, and the client token
//! (everywhere but `/health`; see [`crate::tokens`]). A refused request
//! gets an error in the caller's own protocol shape and costs us nothing more.

use super::{GatewayState, Protocol, error_response};
use crate::error::{Code, Error};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::Response;

/// Which protocol's error shape a path answers in: Anthropic's for `/v1/messages*`,
/// OpenAI's for everything else.
pub fn protocol_of(path: &str) -> Protocol {
    if path.starts_with("/v1/messages") {
        Protocol::Anthropic
    } else {
        Protocol::OpenAi
    }
}

/// Hosts allowed in the `Host` header: the loopback names, plus names the user added.
#[derive(Debug, Clone)]
pub struct HostAllowlist {
    names: Vec<String>,
}

impl HostAllowlist {
    pub fn new(extra: &[String]) -> Self {
        let mut names: Vec<String> = ["localhost", "127.0.0.1", "[::1]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.extend(extra.iter().map(|s| s.to_ascii_lowercase()));
        HostAllowlist { names }
    }

    /// `host` is the Host header value (`name` or `name:port`); `port` is the port we
    /// are bound to (0 when not yet known, e.g. in-process tests: then any port matches).
    pub fn allows(&self, host: &str, port: u16) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, host_port) = split_host_port(&host);
        let port_ok = match host_port {
            None => true, // HTTP/1.1 clients omit the default port
            Some(p) => port == 0 || p == port,
        };
        port_ok && self.names.iter().any(|n| n == name)
    }
}

/// Split `name:port` / `[v6]:port` / `name` / `[v6]`.
fn split_host_port(host: &str) -> (&str, Option<u16>) {
    if host.starts_with('[') {
        if let Some(end) = host.find(']') {
            let (name, rest) = host.split_at(end + 1);
            return (name, rest.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
        return (host, None);
    }
    match host.rsplit_once(':') {
        Some((name, port)) => match port.parse() {
            Ok(p) => (name, Some(p)),
            Err(_) => (host, Some(0)), // garbage port: never matches a bound port
        },
        None => (host, None),
    }
}

/// An `Origin` is acceptable only if it is exactly our own origin: `http`, a loopback
/// (or user-allowed) name, and the port we are bound to, spelled out. Browsers send
/// `Origin` on cross-site requests; CLI tools and SDKs do not send it at all. Any other
/// port on the same host is another web site (`http://localhost` is whatever serves port
/// 80), and we serve no TLS, so `https://` origins are never ours.
pub fn origin_allowed(origin: &str, hosts: &HostAllowlist, port: u16) -> bool {
    let Some(rest) = origin.strip_prefix("http://") else {
        return false;
    };
    if rest.contains('/') {
        return false;
    }
    match split_host_port(&rest.to_ascii_lowercase()) {
        // Browsers omit the scheme's default port.
        (_, None) => port == 80 && hosts.allows(rest, port),
        (_, Some(p)) => p != 0 && (p == port || port == 0) && hosts.allows(rest, port),
    }
}

/// Request bodies must be JSON. The form-encodable types (`text/plain`,
/// `application/x-www-form-urlencoded`, `multipart/form-data`) are what a web page can
/// post without a CORS preflight, so refusing everything but JSON leaves a page no way
/// to reach a model at all.
pub fn content_type_allowed(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(ct) = ct.to_str() else {
        return false;
    };
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
}

pub async fn guard(State(state): State<GatewayState>, mut req: Request, next: Next) -> Response {
    let mut protocol = protocol_of(req.uri().path());
    if req.uri().path().starts_with("/v1/models") && super::handlers::wants_anthropic(req.headers())
    {
        protocol = Protocol::Anthropic;
    }
    if let Err(e) = check(&state, req.headers()) {
        return error_response(protocol, &e);
    }
    if req.method() == axum::http::Method::POST && !content_type_allowed(req.headers()) {
        let got = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let e = Error::new(
            Code::UnsupportedMediaType,
            format!(
                "request bodies must be JSON: send Content-Type: application/json (got {})",
                got.map_or("none".into(), |g| format!(
                    "{:?}",
                    crate::gateway::log::printable(&g, 80)
                ))
            ),
        );
        return error_response(protocol, &e);
    }
    if req.uri().path() == "/health" {
        return next.run(req).await;
    }
    match state.auth.authenticate(req.headers()).await {
        Ok(Some(client)) => {
            req.extensions_mut().insert(client);
        }
        Ok(None) => {}
        Err(e) => return error_response(protocol, &e),
    }
    let Some(permit) = state.client_limits.try_acquire(req.headers()) else {
        let e = Error::new(
            Code::RateLimited,
            format!(
                "this client already has {} requests in flight (the per-client limit); retry when one finishes",
                state.client_limits.max()
            ),
        );
        let mut r = error_response(protocol, &e);
        r.headers_mut().insert(
            header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
        return r;
    };
    super::limits::hold(next.run(req).await, permit)
}

fn check(state: &GatewayState, headers: &HeaderMap) -> Result<(), Error> {
    let port = state.bound_port();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !state.hosts.allows(host, port) {
        return Err(Error::new(
            Code::HostNotAllowed,
            format!(
                "Host {host:?} is not allowed; use http://127.0.0.1:{port}/ (or add the name to the gateway's allowed hosts)"
            ),
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        if !origin_allowed(origin, &state.hosts, port) {
            return Err(Error::new(
                Code::OriginNotAllowed,
                format!("requests from web pages of {origin:?} are not allowed"),
            ));
        }
    }
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        && len > state.options.body_limit
    {
        return Err(body_too_large(state.options.body_limit));
    }
    Ok(())
}

pub fn body_too_large(limit: usize) -> Error {
    Error::new(
        Code::BodyTooLarge,
        format!(
            "request body is larger than the gateway's limit of {} MiB",
            limit / (1024 * 1024)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_allowlist_accepts_loopback_names_on_the_bound_port_only() {
        let h = HostAllowlist::new(&["my-mac.local".into()]);
        for ok in [
            "localhost",
            "localhost:8399",
            "127.0.0.1:8399",
            "[::1]:8399",
            "[::1]",
            "LOCALHOST:8399",
            "my-mac.local:8399",
        ] {
            assert!(h.allows(ok, 8399), "{ok} should be allowed");
        }
        for bad in [
            "evil.example",
            "evil.example:8399",
            "127.0.0.1:9999",
            "localhost.evil.example",
            "127.0.0.1.nip.io:8399",
            "",
            "localhost:abc",
            "[::1]:1",
            "0.0.0.0:8399",
            "127.0.0.2:8399",
        ] {
            assert!(!h.allows(bad, 8399), "{bad} should be refused");
        }
        assert!(
            h.allows("127.0.0.1:1234", 0),
            "unknown bound port accepts any port"
        );
    }

    #[test]
    fn only_our_own_loopback_origins_pass() {
        let h = HostAllowlist::new(&[]);
        assert!(origin_allowed("http://127.0.0.1:8399", &h, 8399));
        assert!(origin_allowed("http://localhost:8399", &h, 8399));
        assert!(origin_allowed("http://[::1]:8399", &h, 8399));
        // On port 80 the browser leaves the port out.
        assert!(origin_allowed("http://localhost", &h, 80));
        for bad in [
            // Another site on the same machine: no port (port 80), another port, TLS.
            "http://localhost",
            "http://127.0.0.1",
            "http://[::1]",
            "https://127.0.0.1",
            "https://127.0.0.1:8399",
            "https://localhost:8399",
            "http://localhost:8398",
            "http://localhost:0",
            "http://localhost:",
            "http://localhost:8399@evil.example",
            "https://evil.example",
            "null",
            "http://127.0.0.1:8399/x",
            "file://",
            "http://evil.example:8399",
            "chrome-extension://abc",
        ] {
            assert!(!origin_allowed(bad, &h, 8399), "{bad}");
        }
    }

    #[test]
    fn only_json_bodies_are_accepted() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            content_type_allowed(&h)
        };
        assert!(with("application/json"));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("Application/JSON"));
        for bad in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "application/json-seq",
            "",
        ] {
            assert!(!with(bad), "{bad}");
        }
        assert!(!content_type_allowed(&HeaderMap::new()));
    }

    #[test]
    fn anthropic_paths_answer_in_anthropic_shape() {
        assert_eq!(protocol_of("/v1/messages"), Protocol::Anthropic);
        assert_eq!(
            protocol_of("/v1/messages/count_tokens"),
            Protocol::Anthropic
        );
        assert_eq!(protocol_of("/v1/chat/completions"), Protocol::OpenAi);
        assert_eq!(protocol_of("/health"), Protocol::OpenAi);
    }
}
