//! Where a request goes and how it gets there: the routing plan (rule → target, model
//! name, fallback), one attempt per target, and the fallback rule — retry once on the
//! rule's fallback target when the primary fails *before any byte reached the client*
//! with a connect error, a timeout, a 5xx or a 429.

use super::GatewayState;
use crate::error::{Code, Error, Result};
use crate::protocol::canonical::{self, Event, Request};
use crate::protocol::{anthropic, openai};
use crate::routing::Target;
use crate::settings::providers::ProviderKind;
use crate::upstream::{self, Failure, ProviderEntry};
use crate::vault::SecretString;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::sync::Arc;

/// The routing decision for one request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The matching rule, or `None` when the name went to a local model of that name.
    pub rule_id: Option<i64>,
    pub target: Target,
    /// The model name to ask the target for (the rule's rename, or the requested name);
    /// the fallback is asked for the same name.
    pub model: String,
    pub fallback: Option<Target>,
}

pub async fn plan(state: &GatewayState, requested: &str) -> Result<Plan> {
    if let Some(r) = state.app.router.route(requested) {
        return Ok(Plan {
            rule_id: Some(r.rule_id),
            target: r.target,
            model: r.model,
            fallback: r.fallback,
        });
    }
    if state.local.has(requested).await? {
        return Ok(Plan {
            rule_id: None,
            target: Target::Local,
            model: requested.to_string(),
            fallback: None,
        });
    }
    Err(Error::new(
        Code::ModelNotFound,
        format!(
            "no routing rule matches the model {requested:?} and no local model has that name; \
             `switchyard rule test {requested}` shows how it would be routed"
        ),
    ))
}

/// A backend that accepted the request: its first event is already in hand (so a
/// backend that fails before producing anything can still fall back).
pub struct Started {
    pub first: Event,
    pub rest: BoxStream<'static, Event>,
    pub backend: String,
}

/// Headers from the client that may reach an upstream of the same protocol: only
/// feature flags, never credentials.
#[derive(Debug, Clone, Default)]
pub struct ClientHints {
    pub anthropic_beta: Option<String>,
}

/// Try the plan's target, then (once) its fallback. Returns what served, and whether
/// it was the fallback.
pub async fn start_with_fallback(
    state: &GatewayState,
    plan: &Plan,
    req: &Request,
    hints: &ClientHints,
) -> Result<(Started, bool), Error> {
    match start(state, &plan.target, &plan.model, req, hints).await {
        Ok(s) => Ok((s, false)),
        Err(f) => match (&plan.fallback, f.retryable) {
            (Some(fb), true) => {
                tracing::info!(target = %plan.target, fallback = %fb, code = %f.error.code, "primary failed; trying the fallback");
                start(state, fb, &plan.model, req, hints)
                    .await
                    .map(|s| (s, true))
                    .map_err(|f2| f2.error)
            }
            _ => Err(f.error),
        },
    }
}

/// One attempt on one target.
pub async fn start(
    state: &GatewayState,
    target: &Target,
    model: &str,
    req: &Request,
    hints: &ClientHints,
) -> Result<Started, Failure> {
    let (backend, mut events) = match target {
        Target::Local => {
            let events = state.local.generate(model, req).await.map_err(|e| {
                // A local model that fails to load or run is the local equivalent of a 5xx.
                let retryable = matches!(e.code, Code::Engine | Code::ModelInvalid);
                Failure {
                    error: e,
                    retryable,
                }
            })?;
            ("local".to_string(), events)
        }
        Target::Provider { id, name } => {
            let p = state.providers.get(*id).ok_or_else(|| {
                Failure::from(Error::new(
                    Code::ProviderNotFound,
                    format!("provider {name} no longer exists"),
                ))
            })?;
            (name.to_string(), cloud(state, &p, model, req, hints).await?)
        }
    };
    let first = match events.next().await {
        Some(Event::Error(e)) => {
            let e: Error = e.into();
            let retryable = matches!(
                e.code,
                Code::UpstreamError
                    | Code::UpstreamTimeout
                    | Code::UpstreamUnreachable
                    | Code::RateLimited
                    | Code::Engine
            );
            return Err(Failure {
                error: e,
                retryable,
            });
        }
        Some(ev) => ev,
        None => {
            return Err(Failure {
                error: Error::new(
                    Code::UpstreamError,
                    format!("{backend} ended the answer before it began"),
                ),
                retryable: true,
            });
        }
    };
    Ok(Started {
        first,
        rest: events,
        backend,
    })
}

/// The provider's key, decrypted just in time (it zeroizes when the request is sent).
pub(super) async fn provider_key(
    state: &GatewayState,
    p: &ProviderEntry,
) -> Result<Option<SecretString>> {
    let (Some(sealed), Some(ctx)) = (&p.sealed_key, &p.key_context) else {
        return Ok(None);
    };
    let plain = state
        .app
        .vault
        .open(&state.app.db, ctx, sealed)
        .await
        .map_err(|e| {
            Error::new(
                e.code,
                format!("provider {}'s API key: {}", p.name, e.message),
            )
        })?;
    SecretString::from_utf8(plain).map(Some).ok_or_else(|| {
        Error::new(
            Code::VaultCorrupt,
            format!("provider {}'s API key is not text", p.name),
        )
    })
}

async fn cloud(
    state: &GatewayState,
    p: &Arc<ProviderEntry>,
    model: &str,
    req: &Request,
    hints: &ClientHints,
) -> Result<BoxStream<'static, Event>, Failure> {
    let mut up = req.clone();
    up.model = model.to_string();
    let mut headers: Vec<(&'static str, String)> = Vec::new();
    let (path, body) = match p.kind {
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible => {
            let dialect = if p.kind == ProviderKind::OpenAi {
                openai::Dialect::OpenAi
            } else {
                openai::Dialect::Compatible
            };
            let wire = openai::encode_chat_request(&up, dialect)?;
            (
                "/v1/chat/completions",
                serde_json::to_vec(&wire).map_err(|e| Failure::from(Error::from(e)))?,
            )
        }
        ProviderKind::Anthropic => {
            let wire = anthropic::encode_request(&up, &anthropic::UpstreamOptions::default())?;
            if let Some(beta) = &hints.anthropic_beta {
                headers.push(("anthropic-beta", beta.clone()));
            }
            (
                "/v1/messages",
                serde_json::to_vec(&wire).map_err(|e| Failure::from(Error::from(e)))?,
            )
        }
    };
    let key = provider_key(state, p).await?;
    let resp = state
        .upstreams
        .post(p, key.as_ref(), path, body, &headers)
        .await;
    drop(key);
    let resp = resp?;
    let idle = state.upstreams.timeouts().idle;
    if up.stream {
        return Ok(upstream::sse_events(
            resp,
            p.protocol(),
            idle,
            p.name.clone(),
        ));
    }
    let bytes = upstream::read_body(resp, idle, &p.name)
        .await
        .map_err(|e| Failure {
            error: e,
            retryable: true,
        })?;
    let decoded = match p.kind {
        ProviderKind::Anthropic => anthropic::decode_response(&bytes),
        _ => openai::decode_chat_response(&bytes),
    };
    let resp = decoded.map_err(|e| Failure {
        error: Error::new(
            Code::UpstreamError,
            format!(
                "provider {} sent an answer we cannot read: {}",
                p.name, e.message
            ),
        ),
        retryable: true,
    })?;
    Ok(futures_util::stream::iter(canonical::response_to_events(&resp)).boxed())
}
