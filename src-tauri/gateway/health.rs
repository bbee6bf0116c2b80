//! Circuit-breaker transitions: logged, and recorded in `provider_health`
//! (`store::health`) for `provider list` and the Providers page.

use super::GatewayState;
use crate::upstream::breaker::Transition;

/// Log a transition and record it (in the background: the request path never waits
/// on the database).
pub fn transition(state: &GatewayState, provider: i64, name: &str, t: &Transition) {
    let (kind, failures, until) = match t {
        Transition::Opened {
            failures,
            cool_down,
        } => {
            tracing::warn!(
                provider = name,
                failures,
                cool_down_s = cool_down.as_secs(),
                "circuit open: skipping the provider"
            );
            (
                "open",
                *failures,
                Some(crate::store::now_ms() + cool_down.as_millis() as i64),
            )
        }
        Transition::Closed => {
            tracing::info!(
                provider = name,
                "circuit closed: the provider answers again"
            );
            ("closed", 0, None)
        }
    };
    let db = state.app.db.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::store::health::record(&db, provider, kind, failures, until).await {
            tracing::warn!(error = %e, "could not record the provider's health");
        }
    });
}
