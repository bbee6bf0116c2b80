//! The one error type of Switchyard.
//!
//! Every failure a user can see carries a [`Code`]: a stable snake_case string that
//! the CLI prints (`error[code]: message`), the HTTP gateway puts in its error bodies
//! and the UI shows. Codes are a contract (scripts match on them); add new ones
//! freely, never rename one. The exit code and HTTP status of each code are decided
//! here, in one place.

use serde::Serialize;
use std::fmt;

/// Stable error codes. `as_str()` is the wire form; the enum is exhaustive on purpose
/// so that adding a code forces a decision about its exit code and HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Code {
    // ---- usage and validation (exit 2 / 4)
    /// The command line could not be parsed.
    Usage,
    /// An argument or field has an invalid value.
    InvalidArgument,
    /// A confirmation is needed and there is no TTY and no `--yes`.
    ConfirmationRequired,
    // ---- environment (exit 1)
    /// The data directory cannot be created or written.
    DataDirUnavailable,
    /// The database could not be opened, migrated, read or written.
    Database,
    /// The database was written by a newer Switchyard.
    DatabaseTooNew,
    /// Reading or writing a file failed.
    Io,
    /// Anything unexpected; a bug if a user ever sees it.
    Internal,
    // ---- vault (issue: Vault and cloud providers)
    VaultUnavailable,
    VaultRootMissing,
    VaultDecryptFailed,
    VaultCorrupt,
    /// Another Switchyard process holds the vault lock (a rotation is running).
    VaultBusy,
    // ---- providers
    ProviderNotFound,
    ProviderExists,
    ProviderInUse,
    ProviderInvalidUrl,
    ProviderAuthFailed,
    ProviderUnreachable,
    ProviderTimeout,
    ProviderBadResponse,
    /// The base URL's origin changed and the stored key (bound to the old origin) was not re-entered.
    ProviderKeyRequired,
    /// The provider failed repeatedly; its circuit breaker skips it for a cool-down.
    ProviderCircuitOpen,
    // ---- routing rules and pool
    RuleNotFound,
    RuleRegexInvalid,
    RuleOrderConflict,
    /// A rule names a target or fallback provider that does not exist (a validation
    /// error of the rule, hence exit 4, unlike looking a provider up by name).
    RuleTargetUnknown,
    PoolConfigInvalid,
    // ---- models and engine
    ModelNotFound,
    ModelInvalid,
    /// The model's chat template failed or exceeded the template sandbox's limits.
    ModelTemplateInvalid,
    ModelUnsupportedArch,
    ModelUnsupportedQuant,
    ModelExists,
    ContextLengthExceeded,
    /// A local model has as many requests running and waiting as it accepts.
    ModelBusy,
    /// A local model does not fit the pool's memory budget, even after unloading every
    /// idle, unpinned model.
    InsufficientMemory,
    /// A model that is loaded or in the preload list cannot be removed.
    ModelInUse,
    /// A command that needs the running gateway (`models load`) found none.
    GatewayNotRunning,
    Engine,
    Cancelled,
    // ---- backups
    /// The passphrase does not open the backup.
    BackupBadPassphrase,
    /// The backup was written by a newer Switchyard (another schema version).
    BackupSchemaUnsupported,
    /// The backup is truncated, altered or not a Switchyard backup.
    BackupCorrupt,
    /// The file is larger than a backup can be (16 MiB).
    BackupTooLarge,
    // ---- model downloads
    /// The Hugging Face Hub could not be reached, or the connection failed (after retries).
    HubUnreachable,
    /// The Hub refused: a private or gated repository, or a rejected HF_TOKEN.
    HubAuthRequired,
    /// The Hub answered with something it does not send (bad listing, unsafe names).
    HubBadResponse,
    /// A downloaded file's size or hash is not what the Hub listed; it was discarded.
    DownloadChecksumMismatch,
    // ---- gateway
    EndpointNotFound,
    /// `previous_response_id` names a response this gateway did not store (or no longer has).
    ResponseNotFound,
    HostNotAllowed,
    OriginNotAllowed,
    Unauthorized,
    // ---- client tokens
    /// A request without a client token where one is required.
    AuthRequired,
    /// A credential that is not one of our tokens, is damaged, or fails its signature.
    TokenInvalid,
    TokenExpired,
    TokenRevoked,
    /// A token signed by another install's key.
    TokenWrongInstall,
    /// The token's scopes do not include the requested model.
    ModelNotAllowed,
    ClientNotFound,
    BodyTooLarge,
    /// The client did not send its request in time.
    RequestTimeout,
    /// A request body that is not `application/json` (a form post from a web page).
    UnsupportedMediaType,
    InvalidRequest,
    UnsupportedFeature,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
    RateLimited,
    PortInUse,
}

impl Code {
    /// The stable wire string.
    pub const fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            Usage => "usage",
            InvalidArgument => "invalid_argument",
            ConfirmationRequired => "confirmation_required",
            DataDirUnavailable => "data_dir_unavailable",
            Database => "database_error",
            DatabaseTooNew => "database_too_new",
            Io => "io_error",
            Internal => "internal",
            VaultUnavailable => "vault_unavailable",
            VaultRootMissing => "vault_root_missing",
            VaultDecryptFailed => "vault_decrypt_failed",
            VaultCorrupt => "vault_corrupt",
            VaultBusy => "vault_busy",
            ProviderNotFound => "provider_not_found",
            ProviderExists => "provider_exists",
            ProviderInUse => "provider_in_use",
            ProviderInvalidUrl => "provider_invalid_url",
            ProviderAuthFailed => "provider_auth_failed",
            ProviderUnreachable => "provider_unreachable",
            ProviderTimeout => "provider_timeout",
            ProviderBadResponse => "provider_bad_response",
            ProviderKeyRequired => "provider_key_required",
            ProviderCircuitOpen => "provider_circuit_open",
            RuleNotFound => "rule_not_found",
            RuleRegexInvalid => "rule_regex_invalid",
            RuleOrderConflict => "rule_order_conflict",
            RuleTargetUnknown => "rule_target_unknown",
            PoolConfigInvalid => "pool_config_invalid",
            ModelNotFound => "model_not_found",
            ModelInvalid => "model_invalid",
            ModelTemplateInvalid => "model_template_invalid",
            ModelUnsupportedArch => "model_unsupported_arch",
            ModelUnsupportedQuant => "model_unsupported_quant",
            ModelExists => "model_exists",
            ContextLengthExceeded => "context_length_exceeded",
            ModelBusy => "model_busy",
            InsufficientMemory => "insufficient_memory",
            ModelInUse => "model_in_use",
            GatewayNotRunning => "gateway_not_running",
            Engine => "engine_error",
            Cancelled => "cancelled",
            BackupBadPassphrase => "backup_bad_passphrase",
            BackupSchemaUnsupported => "backup_schema_unsupported",
            BackupCorrupt => "backup_corrupt",
            BackupTooLarge => "backup_too_large",
            HubUnreachable => "hub_unreachable",
            HubAuthRequired => "hub_auth_required",
            HubBadResponse => "hub_bad_response",
            DownloadChecksumMismatch => "download_checksum_mismatch",
            EndpointNotFound => "endpoint_not_found",
            ResponseNotFound => "response_not_found",
            HostNotAllowed => "host_not_allowed",
            OriginNotAllowed => "origin_not_allowed",
            Unauthorized => "unauthorized",
            AuthRequired => "auth_required",
            TokenInvalid => "token_invalid",
            TokenExpired => "token_expired",
            TokenRevoked => "token_revoked",
            TokenWrongInstall => "token_wrong_install",
            ModelNotAllowed => "model_not_allowed",
            ClientNotFound => "client_not_found",
            BodyTooLarge => "body_too_large",
            RequestTimeout => "request_timeout",
            UnsupportedMediaType => "unsupported_media_type",
            InvalidRequest => "invalid_request",
            UnsupportedFeature => "unsupported_feature",
            UpstreamError => "upstream_error",
            UpstreamTimeout => "upstream_timeout",
            UpstreamUnreachable => "upstream_unreachable",
            RateLimited => "rate_limited",
            PortInUse => "port_in_use",
        }
    }

    /// Process exit code (interfaces.md): 1 runtime, 2 usage, 3 not found, 4 conflict/validation.
    pub const fn exit_code(self) -> i32 {
        use Code::*;
        match self {
            Usage => 2,
            ProviderNotFound | RuleNotFound | ModelNotFound | EndpointNotFound
            | ResponseNotFound | ClientNotFound => 3,
            InvalidArgument
            | ConfirmationRequired
            | ProviderExists
            | ProviderInUse
            | ProviderInvalidUrl
            | ProviderKeyRequired
            | RuleRegexInvalid
            | RuleOrderConflict
            | RuleTargetUnknown
            | PoolConfigInvalid
            | ModelExists
            | ModelInUse
            | BackupBadPassphrase
            | BackupSchemaUnsupported
            | BackupCorrupt
            | BackupTooLarge
            | ContextLengthExceeded
            | InvalidRequest
            | UnsupportedFeature => 4,
            _ => 1,
        }
    }

    /// HTTP status when the error answers a gateway request.
    pub const fn http_status(self) -> u16 {
        use Code::*;
        match self {
            Usage
            | InvalidArgument
            | InvalidRequest
            | UnsupportedFeature
            | ContextLengthExceeded
            | ConfirmationRequired => 400,
            Unauthorized | AuthRequired | TokenInvalid | TokenExpired | TokenRevoked
            | TokenWrongInstall => 401,
            HostNotAllowed | OriginNotAllowed | ModelNotAllowed => 403,
            ProviderNotFound | RuleNotFound | ModelNotFound | EndpointNotFound
            | ResponseNotFound | ClientNotFound => 404,
            ProviderExists | ProviderInUse | RuleOrderConflict | ModelExists | ModelInUse => 409,
            RequestTimeout => 408,
            BodyTooLarge | BackupTooLarge => 413,
            UnsupportedMediaType => 415,
            ProviderInvalidUrl
            | ProviderKeyRequired
            | RuleRegexInvalid
            | RuleTargetUnknown
            | PoolConfigInvalid
            | ModelInvalid
            | ModelTemplateInvalid
            | ModelUnsupportedArch
            | ModelUnsupportedQuant
            | BackupBadPassphrase
            | BackupSchemaUnsupported
            | BackupCorrupt => 422,
            RateLimited | ModelBusy => 429,
            Cancelled => 499,
            ProviderAuthFailed
            | ProviderBadResponse
            | UpstreamError
            | ProviderUnreachable
            | UpstreamUnreachable
            | HubUnreachable
            | HubAuthRequired
            | HubBadResponse
            | DownloadChecksumMismatch => 502,
            VaultUnavailable | VaultRootMissing | VaultBusy | PortInUse | ProviderCircuitOpen
            | InsufficientMemory | GatewayNotRunning => 503,
            ProviderTimeout | UpstreamTimeout => 504,
            _ => 500,
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// A coded error with a message meant for the user: say what failed and, where
/// there is one, what to do about it. Messages never contain secrets.
#[derive(thiserror::Error)]
#[error("{message}")]
#[cfg_attr(test, derive(ts_rs::TS), ts(rename = "CoreError"))]
pub struct Error {
    pub code: Code,
    pub message: String,
    #[source]
    #[cfg_attr(test, ts(skip))]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code,
            message: message.into(),
            source: None,
        }
    }

    /// Keep the underlying error as the source (shown with `RUST_LOG=debug`, never to clients).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(Code::Internal, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(Code::InvalidArgument, message)
    }

    /// The `{"code","message"}` object used by `--json`, the UI and inside HTTP error bodies.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "code": self.code.as_str(), "message": self.message })
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.code, self.message)?;
        if let Some(s) = &self.source {
            write!(f, " (caused by: {s})")?;
        }
        Ok(())
    }
}

/// A clone keeps the code and message; the source (debug detail) stays with the original.
impl Clone for Error {
    fn clone(&self) -> Self {
        Error::new(self.code, self.message.clone())
    }
}

impl Serialize for Error {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Error", 2)?;
        st.serialize_field("code", &self.code)?;
        st.serialize_field("message", &self.message)?;
        st.end()
    }
}

impl From<sea_orm::DbErr> for Error {
    fn from(e: sea_orm::DbErr) -> Self {
        Error::new(Code::Database, format!("database error: {e}")).with_source(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::new(Code::Io, format!("i/o error: {e}")).with_source(e)
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::new(Code::InvalidArgument, format!("invalid JSON: {e}")).with_source(e)
    }
}

/// Attach a code and a message to any foreign error, keeping it as the source.
pub trait Context<T> {
    fn context(self, code: Code, message: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, code: Code, message: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| {
            let msg = message();
            Error::new(code, format!("{msg}: {e}")).with_source(e)
        })
    }
}

/// Every code (the UI's bindings and the tests enumerate them).
pub const ALL: &[Code] = &[
    Code::Usage,
    Code::InvalidArgument,
    Code::ConfirmationRequired,
    Code::DataDirUnavailable,
    Code::Database,
    Code::DatabaseTooNew,
    Code::Io,
    Code::Internal,
    Code::VaultUnavailable,
    Code::VaultRootMissing,
    Code::VaultDecryptFailed,
    Code::VaultCorrupt,
    Code::VaultBusy,
    Code::ProviderNotFound,
    Code::ProviderExists,
    Code::ProviderInUse,
    Code::ProviderInvalidUrl,
    Code::ProviderAuthFailed,
    Code::ProviderUnreachable,
    Code::ProviderTimeout,
    Code::ProviderBadResponse,
    Code::ProviderKeyRequired,
    Code::ProviderCircuitOpen,
    Code::RuleNotFound,
    Code::RuleRegexInvalid,
    Code::RuleOrderConflict,
    Code::RuleTargetUnknown,
    Code::PoolConfigInvalid,
    Code::ModelNotFound,
    Code::ModelInvalid,
    Code::ModelTemplateInvalid,
    Code::ModelUnsupportedArch,
    Code::ModelUnsupportedQuant,
    Code::ModelExists,
    Code::ContextLengthExceeded,
    Code::ModelBusy,
    Code::InsufficientMemory,
    Code::ModelInUse,
    Code::GatewayNotRunning,
    Code::Engine,
    Code::Cancelled,
    Code::BackupBadPassphrase,
    Code::BackupSchemaUnsupported,
    Code::BackupCorrupt,
    Code::BackupTooLarge,
    Code::HubUnreachable,
    Code::HubAuthRequired,
    Code::HubBadResponse,
    Code::DownloadChecksumMismatch,
    Code::EndpointNotFound,
    Code::ResponseNotFound,
    Code::HostNotAllowed,
    Code::OriginNotAllowed,
    Code::Unauthorized,
    Code::AuthRequired,
    Code::TokenInvalid,
    Code::TokenExpired,
    Code::TokenRevoked,
    Code::TokenWrongInstall,
    Code::ModelNotAllowed,
    Code::ClientNotFound,
    Code::BodyTooLarge,
    Code::RequestTimeout,
    Code::UnsupportedMediaType,
    Code::InvalidRequest,
    Code::UnsupportedFeature,
    Code::UpstreamError,
    Code::UpstreamTimeout,
    Code::UpstreamUnreachable,
    Code::RateLimited,
    Code::PortInUse,
];

impl Code {
    /// The code of a wire string.
    pub fn parse(s: &str) -> Option<Code> {
        ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The UI's `ErrorCode`: the union of every wire string, so a `switch` on an error
    /// code in TypeScript is checked against the codes that exist (written by hand
    /// because the wire strings come from `as_str`, not from the variant names).
    impl ts_rs::TS for Code {
        type WithoutGenerics = Code;
        type OptionInnerType = Code;

        fn name(_: &ts_rs::Config) -> String {
            "ErrorCode".into()
        }

        fn inline(_: &ts_rs::Config) -> String {
            ALL.iter()
                .map(|c| format!("\"{}\"", c.as_str()))
                .collect::<Vec<_>>()
                .join(" | ")
        }

        fn decl(cfg: &ts_rs::Config) -> String {
            format!("type ErrorCode = {};", Self::inline(cfg))
        }

        fn decl_concrete(cfg: &ts_rs::Config) -> String {
            Self::decl(cfg)
        }

        fn docs() -> Option<String> {
            Some("/**\n * A stable error code (src-tauri/error.rs): the same strings the CLI and the gateway show.\n */\n".into())
        }

        fn output_path() -> Option<std::path::PathBuf> {
            Some("ErrorCode.ts".into())
        }
    }

    #[test]
    fn codes_are_unique_snake_case_strings() {
        let mut seen = std::collections::HashSet::new();
        for c in ALL {
            let s = c.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(
                s.chars().all(|ch| ch.is_ascii_lowercase() || ch == '_'),
                "code {s} is not snake_case"
            );
        }
    }

    #[test]
    fn exit_codes_follow_the_interface_contract() {
        assert_eq!(Code::Usage.exit_code(), 2);
        assert_eq!(Code::ProviderNotFound.exit_code(), 3);
        assert_eq!(Code::RuleRegexInvalid.exit_code(), 4);
        assert_eq!(Code::RuleOrderConflict.exit_code(), 4);
        assert_eq!(Code::DataDirUnavailable.exit_code(), 1);
        for c in ALL {
            assert!(
                (1..=4).contains(&c.exit_code()),
                "{c} has exit code {}",
                c.exit_code()
            );
            assert!((400..=599).contains(&c.http_status()), "{c}");
        }
    }

    #[test]
    fn serializes_as_code_and_message_only() {
        let e = Error::new(Code::RuleNotFound, "no rule 7")
            .with_source(std::io::Error::other("inner detail"));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "rule_not_found", "message": "no rule 7"})
        );
        assert_eq!(e.to_json(), v);
    }
}
