//! Errors on the wire: our coded errors in each client protocol's shape, and upstream
//! error bodies of either API turned back into coded errors.
//!
//! Both APIs' SDKs decide what to raise from the HTTP status, so the status comes from
//! the code ([`Code::http_status`]); the body carries the human message and — as an
//! extra field both SDKs ignore but scripts can match on — our stable code string.
//!
//! | HTTP status (from the code) | OpenAI `error.type` | Anthropic `error.type` |
//! |---|---|---|
//! | 400, 404, 409, 413, 422 | `invalid_request_error` | `invalid_request_error`; 404 `not_found_error`; 413 `request_too_large` |
//! | 401 | `authentication_error` | `authentication_error` |
//! | 403 | `permission_error` | `permission_error` |
//! | 429 | `rate_limit_error` | `rate_limit_error` |
//! | 5xx | `server_error` | `api_error`; 504 `timeout_error` |
//!
//! Upstream → code: 401/403 `provider_auth_failed`, 404 `model_not_found`, 408/504
//! `upstream_timeout`, 413 `body_too_large`, 429 `rate_limited`, other 4xx
//! `invalid_request` (`context_length_exceeded` when the upstream says so), 5xx and 529
//! `upstream_error`, anything else `provider_bad_response`. The gateway's fallback rule
//! (5xx or 429) therefore reads off the code: `upstream_error`, `upstream_timeout`,
//! `rate_limited`.

use super::Protocol;
use super::sse::Frame;
use crate::error::{Code, Error};
use serde_json::{Value, json};

/// OpenAI's `error.type` for an HTTP status.
fn openai_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        429 => "rate_limit_error",
        500..=599 => "server_error",
        _ => "invalid_request_error",
    }
}

/// Anthropic's `error.type` for an HTTP status (their documented list).
fn anthropic_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        400..=499 => "invalid_request_error",
        _ => "api_error",
    }
}

fn openai_body(err: &Error) -> Value {
    json!({"error": {
        "message": err.message,
        "type": openai_type(err.code.http_status()),
        "param": null,
        "code": err.code.as_str(),
    }})
}

fn anthropic_body(err: &Error) -> Value {
    json!({"type": "error", "error": {
        "type": anthropic_type(err.code.http_status()),
        "message": err.message,
        "code": err.code.as_str(),
    }})
}

/// The HTTP status and JSON body answering a failed request in the client's protocol.
pub fn encode_error(protocol: Protocol, err: &Error) -> (u16, Value) {
    let body = match protocol {
        Protocol::OpenAi => openai_body(err),
        Protocol::Anthropic => anthropic_body(err),
    };
    (err.code.http_status(), body)
}

/// The SSE frame that ends a stream which already began (the status line is sent, so the
/// error travels in-band). OpenAI SDKs raise on a data chunk holding `error`; Anthropic
/// names the event `error`. No `[DONE]` follows an OpenAI error: the stream failed.
pub fn stream_error_frame(protocol: Protocol, err: &Error) -> Frame {
    match protocol {
        Protocol::OpenAi => Frame::data(openai_body(err).to_string()),
        Protocol::Anthropic => Frame::named("error", anthropic_body(err).to_string()),
    }
}

/// Map an Anthropic `error.type` (also sent inside streams) to our code.
pub(crate) fn code_for_anthropic_type(t: &str) -> Code {
    match t {
        "invalid_request_error" => Code::InvalidRequest,
        "authentication_error" | "permission_error" | "billing_error" => Code::ProviderAuthFailed,
        "not_found_error" => Code::ModelNotFound,
        "request_too_large" => Code::BodyTooLarge,
        "rate_limit_error" => Code::RateLimited,
        "timeout_error" => Code::UpstreamTimeout,
        _ => Code::UpstreamError, // api_error, overloaded_error, anything new
    }
}

/// Map an OpenAI error `code`/`type` seen inside a stream (no status available).
pub(crate) fn code_for_openai_error(code: Option<&str>, typ: Option<&str>) -> Code {
    match (code, typ) {
        (Some("context_length_exceeded"), _) => Code::ContextLengthExceeded,
        (Some("rate_limit_exceeded"), _)
        | (_, Some("rate_limit_error" | "tokens" | "requests")) => Code::RateLimited,
        (Some("invalid_api_key"), _) | (_, Some("authentication_error")) => {
            Code::ProviderAuthFailed
        }
        (_, Some("invalid_request_error")) => Code::InvalidRequest,
        _ => Code::UpstreamError,
    }
}

fn label(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::OpenAi => "OpenAI-compatible upstream",
        Protocol::Anthropic => "Anthropic upstream",
    }
}

/// Longest upstream message we relay; error pages can be whole HTML documents.
const MAX_MESSAGE_CHARS: usize = 1000;

/// Turn an upstream's error response into a coded error that keeps its message.
///
/// Both APIs' shapes are understood whichever upstream sent them (OpenAI-compatible
/// servers imitate either, or send `{"error":"text"}`, `{"detail":…}` or plain text).
/// The status decides the code: 401/403 → `provider_auth_failed`, 404 →
/// `model_not_found`, 408/504 → `upstream_timeout`, 413 → `body_too_large`, 429 →
/// `rate_limited`, other 4xx → `invalid_request` (or `context_length_exceeded` when the
/// upstream says so), 5xx (incl. Anthropic's 529) → `upstream_error`.
pub fn decode_upstream_error(protocol: Protocol, status: u16, body: &[u8]) -> Error {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let mut message = None;
    let mut typ = None;
    let mut code = None;
    if let Some(v) = &parsed {
        let err = v.get("error");
        match err {
            Some(Value::Object(o)) => {
                message = o.get("message").and_then(Value::as_str).map(str::to_owned);
                typ = o.get("type").and_then(Value::as_str).map(str::to_owned);
                code = o.get("code").and_then(Value::as_str).map(str::to_owned);
            }
            Some(Value::String(s)) => message = Some(s.clone()),
            _ => {}
        }
        if message.is_none() {
            message = ["message", "detail"]
                .iter()
                .find_map(|k| v.get(*k))
                .map(|d| match d {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                });
        }
    }
    let message = message.unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
    let message = redact_keys(&truncate(&message, MAX_MESSAGE_CHARS));
    let code_ = match status {
        401 | 403 => Code::ProviderAuthFailed,
        404 => Code::ModelNotFound,
        408 | 504 => Code::UpstreamTimeout,
        413 => Code::BodyTooLarge,
        429 => Code::RateLimited,
        400..=499 => {
            let too_long = code.as_deref() == Some("context_length_exceeded")
                || message.contains("prompt is too long")
                || message.contains("maximum context length");
            if too_long {
                Code::ContextLengthExceeded
            } else {
                Code::InvalidRequest
            }
        }
        500..=599 => Code::UpstreamError,
        _ => Code::ProviderBadResponse,
    };
    let detail = match typ.as_deref() {
        Some(t) => format!("{t}: {message}"),
        None => message,
    };
    Error::new(
        code_,
        format!("{} returned HTTP {status}: {detail}", label(protocol)),
    )
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Upstreams sometimes echo (part of) the key they were sent ("Incorrect API key
/// provided: sk-proj-…"). Any `sk-…` token is cut to its prefix before the message can
/// reach a client or a log.
fn redact_keys(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("sk-") {
        let boundary = i == 0
            || !rest[..i]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric());
        out.push_str(&rest[..i]);
        let after = &rest[i + 3..];
        let tok_len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*'))
            .unwrap_or(after.len());
        if boundary && tok_len >= 6 {
            out.push_str("sk-[redacted]");
            rest = &after[tok_len..];
        } else {
            out.push_str("sk-");
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_error_bodies_have_each_protocols_shape_and_our_code() {
        let e = Error::new(
            Code::ModelNotFound,
            "no model `x`; try `switchyard rule test x`",
        );
        let (status, body) = encode_error(Protocol::OpenAi, &e);
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"error": {"message": "no model `x`; try `switchyard rule test x`",
                "type": "invalid_request_error", "param": null, "code": "model_not_found"}})
        );
        let (status, body) = encode_error(Protocol::Anthropic, &e);
        assert_eq!(status, 404);
        assert_eq!(
            body,
            json!({"type": "error", "error": {"type": "not_found_error",
                "message": "no model `x`; try `switchyard rule test x`", "code": "model_not_found"}})
        );
    }

    #[test]
    fn error_types_follow_status_for_both_protocols() {
        let cases = [
            (
                Code::InvalidRequest,
                "invalid_request_error",
                "invalid_request_error",
            ),
            (
                Code::UnsupportedFeature,
                "invalid_request_error",
                "invalid_request_error",
            ),
            (
                Code::Unauthorized,
                "authentication_error",
                "authentication_error",
            ),
            (Code::HostNotAllowed, "permission_error", "permission_error"),
            (
                Code::BodyTooLarge,
                "invalid_request_error",
                "request_too_large",
            ),
            (Code::RateLimited, "rate_limit_error", "rate_limit_error"),
            (Code::UpstreamError, "server_error", "api_error"),
            (Code::UpstreamTimeout, "server_error", "timeout_error"),
            (Code::Internal, "server_error", "api_error"),
        ];
        for (code, oa, an) in cases {
            let e = Error::new(code, "m");
            assert_eq!(
                encode_error(Protocol::OpenAi, &e).1["error"]["type"],
                oa,
                "{code}"
            );
            assert_eq!(
                encode_error(Protocol::Anthropic, &e).1["error"]["type"],
                an,
                "{code}"
            );
        }
    }

    #[test]
    fn stream_error_frames_are_what_each_sdk_detects() {
        let e = Error::new(Code::UpstreamError, "boom");
        let f = stream_error_frame(Protocol::OpenAi, &e);
        assert_eq!(f.event, None);
        let v: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(v["error"]["message"], "boom");
        assert_eq!(v["error"]["code"], "upstream_error");
        let f = stream_error_frame(Protocol::Anthropic, &e);
        assert_eq!(f.event, Some("error"));
        let v: Value = serde_json::from_str(&f.data).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "api_error");
    }

    #[test]
    fn upstream_error_statuses_map_to_codes_and_keep_the_message() {
        let oa = br#"{"error":{"message":"The model `gpt-9` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        let an = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}"#;
        let cases: &[(Protocol, u16, &[u8], Code, &str)] = &[
            (Protocol::OpenAi, 404, oa, Code::ModelNotFound, "does not exist"),
            (Protocol::Anthropic, 529, an, Code::UpstreamError, "overloaded_error: Overloaded"),
            (Protocol::Anthropic, 401, br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#, Code::ProviderAuthFailed, "invalid x-api-key"),
            (Protocol::OpenAi, 403, br#"{"error":"forbidden"}"#, Code::ProviderAuthFailed, "forbidden"),
            (Protocol::OpenAi, 429, br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#, Code::RateLimited, "Rate limit reached"),
            (Protocol::OpenAi, 400, br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","code":"context_length_exceeded"}}"#, Code::ContextLengthExceeded, "128000"),
            (Protocol::Anthropic, 400, br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#, Code::ContextLengthExceeded, "prompt is too long"),
            (Protocol::Anthropic, 400, br#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#, Code::InvalidRequest, "max_tokens"),
            (Protocol::OpenAi, 422, br#"{"detail":[{"loc":["body","messages"],"msg":"field required"}]}"#, Code::InvalidRequest, "field required"),
            (Protocol::OpenAi, 500, b"<html>Internal Server Error</html>", Code::UpstreamError, "Internal Server Error"),
            (Protocol::OpenAi, 502, b"", Code::UpstreamError, "HTTP 502"),
            (Protocol::OpenAi, 504, b"gateway timeout", Code::UpstreamTimeout, "gateway timeout"),
            (Protocol::Anthropic, 413, br#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#, Code::BodyTooLarge, "maximum allowed"),
        ];
        for (p, status, body, code, needle) in cases {
            let e = decode_upstream_error(*p, *status, body);
            assert_eq!(e.code, *code, "{status} {}", String::from_utf8_lossy(body));
            assert!(e.message.contains(needle), "{} lacks {needle}", e.message);
            assert!(e.message.contains(&status.to_string()));
        }
    }

    #[test]
    fn upstream_messages_never_carry_a_key() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-proj-abc123DEF456ghi. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let e = decode_upstream_error(Protocol::OpenAi, 401, body);
        assert!(!e.message.contains("abc123"), "{}", e.message);
        assert!(e.message.contains("sk-[redacted]"));
        assert!(e.message.contains("api-keys"), "{}", e.message);
        // a word merely containing "sk-" is left alone
        assert_eq!(redact_keys("task-list risk-free"), "task-list risk-free");
    }

    #[test]
    fn long_upstream_messages_are_truncated() {
        let body = "x".repeat(5000);
        let e = decode_upstream_error(Protocol::OpenAi, 500, body.as_bytes());
        assert!(e.message.chars().count() < 1100);
        assert!(e.message.ends_with('…'));
    }

    #[test]
    fn in_stream_error_types_map_to_codes() {
        assert_eq!(
            code_for_anthropic_type("overloaded_error"),
            Code::UpstreamError
        );
        assert_eq!(
            code_for_anthropic_type("rate_limit_error"),
            Code::RateLimited
        );
        assert_eq!(
            code_for_anthropic_type("invalid_request_error"),
            Code::InvalidRequest
        );
        assert_eq!(
            code_for_openai_error(Some("context_length_exceeded"), None),
            Code::ContextLengthExceeded
        );
        assert_eq!(
            code_for_openai_error(None, Some("server_error")),
            Code::UpstreamError
        );
    }
}
