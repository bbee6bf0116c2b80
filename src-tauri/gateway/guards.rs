//! The checks every request passes before anything else runs (architecture invariant 5):
//! the Host allowlist (DNS-rebinding defence), the Origin check (no browser page of a
//! foreign site may call us; no CORS), and an early body-size check. A refused request
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

/// An `Origin` is acceptable only if it is one of our own loopback origins. Browsers
/// send `Origin` on cross-site requests; CLI tools and SDKs do not send it at all.
pub fn origin_allowed(origin: &str, hosts: &HostAllowlist, port: u16) -> bool {
    if origin == "null" {
        return false;
    }
    let Some(rest) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        return false;
    };
    !rest.contains('/') && hosts.allows(rest, port)
}

pub async fn guard(State(state): State<GatewayState>, req: Request, next: Next) -> Response {
    let protocol = protocol_of(req.uri().path());
    if let Err(e) = check(&state, req.headers()) {
        return error_response(protocol, &e);
    }
    next.run(req).await
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
        for bad in [
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
