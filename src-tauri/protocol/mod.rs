//! Protocol translation: OpenAI Chat Completions and Anthropic Messages, both directions,
//! through one canonical model. Pure code — no I/O, no clock, no randomness — so every
//! mapping is a plain function with table tests and property tests.
//!
//! (The mapping table is filled in below.)

pub mod anthropic;
pub mod canonical;
mod errors;
pub mod openai;
pub mod sse;
pub mod wire;

pub use errors::{decode_upstream_error, encode_error, stream_error_frame};

use crate::error::{Code, Error};

/// The two wire protocols, on either side of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    OpenAi,
    Anthropic,
}

/// A malformed request (client side): `invalid_request`, HTTP 400.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::new(Code::InvalidRequest, msg)
}

/// Something the target cannot express: `unsupported_feature`, HTTP 400, naming both.
pub(crate) fn unsupported(what: impl std::fmt::Display, target: &str) -> Error {
    Error::new(
        Code::UnsupportedFeature,
        format!("{what} is not supported by {target}"),
    )
}

#[cfg(test)]
mod tests;
