//! Routing: model name → [`Route`] (target, upstream model, fallback), decided by the
//! user's ordered rules.
//!
//! The request path calls [`Router::route`], which reads the current compiled
//! [`Matcher`] through an `ArcSwap`: no lock, no allocation beyond the returned
//! route. Every settings write builds a new matcher from the store inside its
//! transaction (so a rule set that does not compile is never committed) and installs
//! it after the commit. This module never reads the store: the settings service
//! (`settings::rules::load_specs`) hands it plain [`RuleSpec`]s. Snapshots carry the store revision they were built from (the
//! highest `audit_log` id, which every settings change bumps), and an older snapshot
//! never replaces a newer one, whatever order concurrent writers finish in.

pub mod matcher;
pub mod pattern;

pub use matcher::{BuildError, LinearScan, Matcher, Route, RuleSpec, Target};
pub use pattern::MatchType;

use arc_swap::ArcSwap;
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

    /// Rebuild from rule specs the settings service read at `revision` (at start-up,
    /// and when another process changed the settings). Rules whose regex no longer
    /// compiles are left out and logged rather than stopping the app. Routing never
    /// reads the store itself: the settings layer hands it plain specs.
    pub fn rebuild(&self, specs: Vec<RuleSpec>, revision: i64) {
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
    }
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
