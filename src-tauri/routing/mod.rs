//! Routing: model name → [`Route`] (target, upstream model, fallback), decided by the
//! user's ordered rules.
//!
//! The request path calls [`Router::route`], which reads the current compiled
//! [`Matcher`] through an `ArcSwap`: no lock, no allocation beyond the returned
//! route. Every settings write builds a new matcher from the store inside its
//! transaction (so a rule set that does not compile is never committed) and installs
//! it after the commit. Snapshots carry the store revision they were built from (the
//! highest `audit_log` id, which every settings change bumps), and an older snapshot
//! never replaces a newer one, whatever order concurrent writers finish in.

pub mod matcher;
pub mod pattern;

pub use matcher::{BuildError, LinearScan, Matcher, Route, RuleSpec, Target};
pub use pattern::MatchType;

use crate::error::{Code, Error, Result};
use crate::store::entities::{provider, routing_rule};
use arc_swap::ArcSwap;
use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder, Statement};
use std::collections::HashMap;
use std::sync::Arc;

/// The live routing table: a lock-free handle on the current [`Matcher`].
pub struct Router {
    current: ArcSwap<Matcher>,
}

impl Default for Router {
    fn default() -> Self {
        Router::new(Matcher::empty())
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Router")
            .field(&*self.current.load())
            .finish()
    }
}

impl Router {
    pub fn new(matcher: Matcher) -> Router {
        Router {
            current: ArcSwap::from_pointee(matcher),
        }
    }

    /// Where a request for `model` goes; `None` when no enabled rule matches (the
    /// caller then tries a local model of that name, else `model_not_found`).
    pub fn route(&self, model: &str) -> Option<Route> {
        self.current.load().route(model)
    }

    /// The current snapshot, for callers that ask several questions of one version.
    pub fn snapshot(&self) -> Arc<Matcher> {
        self.current.load_full()
    }

    /// Install `next` unless the current snapshot is from a newer store revision.
    /// Returns whether it was installed.
    pub fn install(&self, next: Matcher) -> bool {
        let next = Arc::new(next);
        let mut installed = false;
        self.current.rcu(|cur| {
            installed = next.revision() >= cur.revision();
            if installed { next.clone() } else { cur.clone() }
        });
        installed
    }

    /// Rebuild from the store (used at start-up and when another process changed
    /// the settings). Stored rules whose regex no longer compiles are left out and
    /// logged rather than stopping the app.
    pub async fn reload<C: ConnectionTrait>(&self, db: &C) -> Result<()> {
        let revision = store_revision(db).await?;
        let specs = load_specs(db).await?;
        let previous = self.snapshot();
        let (m, errors) = Matcher::build_lenient(specs, revision, Some(&previous));
        for e in errors {
            tracing::error!(
                rule = ?e.rule_id,
                "routing rule left out of the routing table: {}",
                e.message
            );
        }
        self.install(m);
        Ok(())
    }
}

/// The store's settings revision: the newest audit row id (0 when none). Every
/// settings write adds an audit row in its transaction, so this grows with every
/// committed change, in every process sharing the database.
pub async fn store_revision<C: ConnectionTrait>(db: &C) -> Result<i64> {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COALESCE(MAX(id), 0) FROM audit_log",
        ))
        .await?
        .ok_or_else(|| Error::internal("MAX(id) returned no row"))?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// All stored rules (enabled or not) in position order, with provider names resolved.
pub async fn load_specs<C: ConnectionTrait>(db: &C) -> Result<Vec<RuleSpec>> {
    let providers = provider_names(db).await?;
    let rows = routing_rule::Entity::find()
        .order_by_asc(routing_rule::Column::Position)
        .order_by_asc(routing_rule::Column::Id)
        .all(db)
        .await?;
    rows.into_iter().map(|r| spec_of(r, &providers)).collect()
}

/// Provider id → name, as rule targets name them.
pub async fn provider_names<C: ConnectionTrait>(db: &C) -> Result<HashMap<i64, Arc<str>>> {
    Ok(provider::Entity::find()
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id, Arc::from(p.name)))
        .collect())
}

/// One stored rule as the matcher sees it, given the provider names.
pub fn spec_of(r: routing_rule::Model, providers: &HashMap<i64, Arc<str>>) -> Result<RuleSpec> {
    let provider = |id: i64| -> Result<Target> {
        let name = providers.get(&id).cloned().ok_or_else(|| {
            Error::new(
                Code::Internal,
                format!("rule {} names provider id {id}, which does not exist", r.id),
            )
        })?;
        Ok(Target::Provider { id, name })
    };
    let match_type = MatchType::parse(&r.match_type).ok_or_else(|| {
        Error::internal(format!(
            "rule {} has unknown match type {:?}",
            r.id, r.match_type
        ))
    })?;
    let target = match r.target_provider_id {
        None => Target::Local,
        Some(id) => provider(id)?,
    };
    let fallback = match (r.fallback_kind.as_deref(), r.fallback_provider_id) {
        (None, _) => None,
        (Some("local"), _) => Some(Target::Local),
        (Some("provider"), Some(id)) => Some(provider(id)?),
        (Some(other), _) => {
            return Err(Error::internal(format!(
                "rule {} has unknown fallback kind {other:?}",
                r.id
            )));
        }
    };
    Ok(RuleSpec {
        id: r.id,
        position: r.position,
        pattern: r.pattern,
        match_type,
        target,
        upstream_model: r.upstream_model.map(Arc::from),
        fallback,
        enabled: r.enabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(id: i64, pattern: &str, revision: i64) -> Matcher {
        let spec = RuleSpec {
            id,
            position: 0,
            pattern: pattern.into(),
            match_type: MatchType::Exact,
            target: Target::Local,
            upstream_model: None,
            fallback: None,
            enabled: true,
        };
        Matcher::build(vec![spec], revision, None).unwrap()
    }

    #[test]
    fn an_older_snapshot_never_replaces_a_newer_one() {
        let router = Router::default();
        assert!(router.route("a").is_none());
        assert!(router.install(exact(1, "a", 5)));
        assert_eq!(router.route("a").unwrap().rule_id, 1);
        assert!(
            !router.install(exact(2, "a", 4)),
            "stale snapshot installed"
        );
        assert_eq!(router.route("a").unwrap().rule_id, 1);
        assert!(router.install(exact(3, "a", 6)));
        assert_eq!(router.route("a").unwrap().rule_id, 3);
    }

    #[test]
    fn lookups_run_while_snapshots_are_swapped_from_another_thread() {
        let router = Arc::new(Router::default());
        let writer = {
            let router = router.clone();
            std::thread::spawn(move || {
                for rev in 1..=2000 {
                    router.install(exact(rev, "m", rev));
                }
            })
        };
        let mut last = 0;
        while !writer.is_finished() || last < 2000 {
            if let Some(r) = router.route("m") {
                assert!(r.rule_id >= last, "went back from {last} to {}", r.rule_id);
                last = r.rule_id;
            }
        }
        writer.join().unwrap();
        assert_eq!(last, 2000);
    }
}
