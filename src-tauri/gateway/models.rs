//! `GET /v1/models`: the names a client can pick, so that model pickers (Open WebUI,
//! Continue, Zed, Cursor…) show what is really reachable.
//!
//! Three sources, in this order, each name once: the local models; the names of exact
//! rules; and the provider's own model ids for providers that a prefix or regex rule
//! sends names to unchanged — listed only if the rules, as ordered, really route that id
//! to that provider. Provider lists are fetched with the provider's key and cached for
//! [`FRESH`]; a provider that fails is skipped (and asked again after [`RETRY`]), so one
//! broken upstream never breaks the list.

use super::GatewayState;
use crate::error::Result;
use crate::routing::Target;
use crate::upstream::ProviderEntry;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a provider's model list is reused.
pub const FRESH: Duration = Duration::from_secs(300);
/// How long a provider whose list could not be read is left alone.
pub const RETRY: Duration = Duration::from_secs(30);
/// The most a provider's list call may take (a model picker is waiting).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// One listed model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub id: String,
    /// `local` or the provider's name.
    pub owned_by: String,
    /// Unix seconds (0 when unknown).
    pub created: u64,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone)]
struct UpstreamModel {
    id: String,
    created: u64,
    display_name: Option<String>,
}

/// A provider's list, when it was read, and for how long it stays good.
type CacheEntry = (Instant, Duration, Arc<Vec<UpstreamModel>>);

/// Provider model lists, cached.
#[derive(Default)]
pub struct Catalog {
    cache: Mutex<HashMap<i64, CacheEntry>>,
}

impl Catalog {
    /// Forget every cached list (the providers changed).
    pub fn clear(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    fn cached(&self, id: i64) -> Option<Arc<Vec<UpstreamModel>>> {
        let g = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        g.get(&id)
            .filter(|(at, ttl, _)| at.elapsed() < *ttl)
            .map(|(_, _, m)| m.clone())
    }

    fn put(&self, id: i64, ttl: Duration, models: Arc<Vec<UpstreamModel>>) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, (Instant::now(), ttl, models));
    }
}

/// Everything a client can pick, in order.
pub async fn list(state: &GatewayState) -> Result<Vec<Listed>> {
    let mut out: Vec<Listed> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for m in state.local.list().await? {
        if seen.insert(m.name.clone()) {
            out.push(Listed {
                id: m.name,
                owned_by: "local".into(),
                created: (m.created_ms / 1000).max(0) as u64,
                display_name: None,
            });
        }
    }
    let snapshot = state.app.router.snapshot();
    for (name, target) in snapshot.exact_names() {
        if seen.insert(name.clone()) {
            out.push(Listed {
                id: name,
                owned_by: target.label().to_string(),
                created: 0,
                display_name: None,
            });
        }
    }
    for (id, name) in snapshot.open_providers() {
        let Some(p) = state.providers.get(id) else {
            continue;
        };
        for m in provider_models(state, &p).await.iter() {
            let routed_here = snapshot.route(&m.id).is_some_and(|r| {
                r.model == m.id && matches!(&r.target, Target::Provider { id: t, .. } if *t == id)
            });
            if routed_here && seen.insert(m.id.clone()) {
                out.push(Listed {
                    id: m.id.clone(),
                    owned_by: name.to_string(),
                    created: m.created,
                    display_name: m.display_name.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// The provider's own model list (cached; empty when it cannot be read).
async fn provider_models(state: &GatewayState, p: &Arc<ProviderEntry>) -> Arc<Vec<UpstreamModel>> {
    if let Some(m) = state.catalog.cached(p.id) {
        return m;
    }
    let fetched = tokio::time::timeout(FETCH_TIMEOUT, fetch(state, p)).await;
    match fetched {
        Ok(Ok(models)) => {
            let models = Arc::new(models);
            state.catalog.put(p.id, FRESH, models.clone());
            models
        }
        Ok(Err(e)) => {
            tracing::warn!(provider = %p.name, code = %e.code, error = %e, "could not list the provider's models");
            state.catalog.put(p.id, RETRY, Arc::default());
            Arc::default()
        }
        Err(_) => {
            tracing::warn!(provider = %p.name, "listing the provider's models timed out");
            state.catalog.put(p.id, RETRY, Arc::default());
            Arc::default()
        }
    }
}

async fn fetch(state: &GatewayState, p: &Arc<ProviderEntry>) -> Result<Vec<UpstreamModel>> {
    #[derive(Deserialize)]
    struct List {
        data: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        id: String,
        // OpenAI
        created: Option<u64>,
        // Anthropic
        display_name: Option<String>,
        created_at: Option<String>,
    }
    let key = super::backend::provider_key(state, p).await?;
    // Anthropic pages its list (20 by default): ask for all of it at once.
    let query =
        (p.kind == crate::settings::providers::ProviderKind::Anthropic).then_some("limit=1000");
    let resp = state
        .upstreams
        .send(
            p,
            key.as_ref(),
            reqwest::Method::GET,
            "/v1/models",
            query,
            None,
            &[],
        )
        .await;
    drop(key);
    let resp = resp.map_err(|f| f.error)?;
    let body = crate::upstream::read_body(resp, state.upstreams.timeouts().idle, &p.name).await?;
    let list: List = serde_json::from_slice(&body).map_err(|e| {
        crate::error::Error::new(
            crate::error::Code::ProviderBadResponse,
            format!("provider {} sent a model list we cannot read: {e}", p.name),
        )
    })?;
    Ok(list
        .data
        .into_iter()
        .map(|e| UpstreamModel {
            created: e
                .created
                .or_else(|| e.created_at.as_deref().and_then(parse_rfc3339))
                .unwrap_or(0),
            id: e.id,
            display_name: e.display_name,
        })
        .collect())
}

/// `2025-09-29T00:00:00Z` → Unix seconds (UTC; fractions and offsets other than `Z`
/// are not needed for model dates and give `None`).
fn parse_rfc3339(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (hh, mm, ss) = (n(11..13)?, n(14..16)?, n(17..19)?);
    let days = days_from_civil(y, m, d);
    u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ` (what Anthropic's model list shows).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian, UTC).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_715_367_049), "2024-05-10T18:50:49Z");
        assert_eq!(parse_rfc3339("2024-05-10T18:50:49Z"), Some(1_715_367_049));
        assert_eq!(parse_rfc3339("2000-02-29T00:00:00Z"), Some(951_782_400));
        for s in [0u64, 951_782_400, 1_715_367_049, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&rfc3339(s)), Some(s));
        }
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
