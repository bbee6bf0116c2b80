//! A circuit breaker per provider. A provider that keeps failing (connection refused,
//! timeouts, 5xx, 429) costs every request routed to it a full timeout before its
//! fallback serves; after [`BreakerConfig::threshold`] retryable failures in a row the
//! breaker *opens*: requests skip the provider straight to their rule's fallback (or get
//! `provider_circuit_open` with `retry-after` when there is none) for a cool-down. Then
//! one request is let through as a probe: its success closes the breaker, its failure
//! opens it again for twice as long (up to [`BreakerConfig::max_cool_down`]).
//!
//! A non-retryable failure (a 400 for a bad request, a 401) is an answer: the provider
//! is up, and it counts as a success here.
//!
//! Pure state over an injected clock (`Instant`s passed in), so the policy is tested
//! without sleeping; the gateway records transitions in the `provider_health` table so
//! `provider list` and the UI show them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Retryable failures in a row that open the breaker.
    pub threshold: u32,
    /// The first cool-down; each failed probe doubles it.
    pub cool_down: Duration,
    pub max_cool_down: Duration,
    /// A probe that has not reported by then (its client left) no longer blocks the next.
    pub probe_timeout: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            threshold: 5,
            cool_down: Duration::from_secs(30),
            max_cool_down: Duration::from_secs(300),
            probe_timeout: Duration::from_secs(120),
        }
    }
}

/// May a request go to the provider now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Healthy (or not failing often enough yet).
    Closed,
    /// The cool-down is over: this request is the probe.
    Probe,
    /// Skip the provider; it may be tried again in this long.
    Open { retry_in: Duration },
}

/// A change of state worth recording (and logging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Opened { failures: u32, cool_down: Duration },
    Closed,
}

#[derive(Debug, Default, Clone)]
struct Health {
    failures: u32,
    open_until: Option<Instant>,
    probe_since: Option<Instant>,
    /// Consecutive openings without a success (the cool-down doubles with each).
    trips: u32,
}

/// A provider's state as `provider list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub failures: u32,
    pub open_for: Option<Duration>,
}

#[derive(Debug, Default)]
pub struct Breakers {
    config: BreakerConfig,
    map: Mutex<HashMap<i64, Health>>,
}

impl Breakers {
    pub fn new(config: BreakerConfig) -> Self {
        Breakers {
            config,
            map: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Health>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn admit(&self, provider: i64, now: Instant) -> Admit {
        let mut map = self.lock();
        let Some(h) = map.get_mut(&provider) else {
            return Admit::Closed;
        };
        let Some(until) = h.open_until else {
            return Admit::Closed;
        };
        if now < until {
            return Admit::Open {
                retry_in: until - now,
            };
        }
        match h.probe_since {
            Some(t) if now.duration_since(t) < self.config.probe_timeout => Admit::Open {
                retry_in: Duration::from_secs(1),
            },
            _ => {
                h.probe_since = Some(now);
                Admit::Probe
            }
        }
    }

    /// Report an attempt's outcome: `ok` = the provider answered (even with a client
    /// error); false = a retryable failure.
    pub fn record(&self, provider: i64, ok: bool, now: Instant) -> Option<Transition> {
        let mut map = self.lock();
        let h = map.entry(provider).or_default();
        if ok {
            let was_open = h.open_until.is_some();
            *h = Health::default();
            return was_open.then_some(Transition::Closed);
        }
        h.failures = h.failures.saturating_add(1);
        let probing = h.probe_since.take().is_some();
        if probing || (h.open_until.is_none() && h.failures >= self.config.threshold) {
            let factor = 1u32.checked_shl(h.trips).unwrap_or(u32::MAX);
            let cool_down = self
                .config
                .cool_down
                .saturating_mul(factor)
                .min(self.config.max_cool_down);
            h.trips = h.trips.saturating_add(1);
            h.open_until = Some(now + cool_down);
            return Some(Transition::Opened {
                failures: h.failures,
                cool_down,
            });
        }
        None
    }

    pub fn snapshot(&self, provider: i64, now: Instant) -> Snapshot {
        let map = self.lock();
        let h = map.get(&provider).cloned().unwrap_or_default();
        Snapshot {
            failures: h.failures,
            open_for: h.open_until.map(|u| u.saturating_duration_since(now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> BreakerConfig {
        BreakerConfig {
            threshold: 3,
            cool_down: Duration::from_secs(10),
            max_cool_down: Duration::from_secs(25),
            probe_timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn opens_after_the_threshold_probes_after_the_cool_down_and_closes_on_success() {
        let b = Breakers::new(cfg());
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        assert_eq!(b.record(1, false, s(0)), None);
        assert_eq!(b.record(1, false, s(1)), None);
        assert_eq!(b.admit(1, s(1)), Admit::Closed);
        assert_eq!(
            b.record(1, false, s(2)),
            Some(Transition::Opened {
                failures: 3,
                cool_down: Duration::from_secs(10)
            })
        );
        assert_eq!(
            b.admit(1, s(5)),
            Admit::Open {
                retry_in: Duration::from_secs(7)
            }
        );
        assert_eq!(
            b.admit(2, s(5)),
            Admit::Closed,
            "other providers unaffected"
        );
        // After the cool-down exactly one request probes.
        assert_eq!(b.admit(1, s(12)), Admit::Probe);
        assert!(matches!(b.admit(1, s(12)), Admit::Open { .. }));
        // The probe fails: open again, twice as long.
        assert_eq!(
            b.record(1, false, s(13)),
            Some(Transition::Opened {
                failures: 4,
                cool_down: Duration::from_secs(20)
            })
        );
        assert!(matches!(b.admit(1, s(30)), Admit::Open { .. }));
        assert_eq!(b.admit(1, s(33)), Admit::Probe);
        // ... and again: capped at the maximum.
        assert_eq!(
            b.record(1, false, s(34)),
            Some(Transition::Opened {
                failures: 5,
                cool_down: Duration::from_secs(25)
            })
        );
        assert_eq!(b.admit(1, s(59)), Admit::Probe);
        assert_eq!(b.record(1, true, s(60)), Some(Transition::Closed));
        assert_eq!(b.admit(1, s(60)), Admit::Closed);
        assert_eq!(
            b.snapshot(1, s(60)),
            Snapshot {
                failures: 0,
                open_for: None
            }
        );
    }

    #[test]
    fn a_success_resets_the_count_and_an_abandoned_probe_expires() {
        let b = Breakers::new(cfg());
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        b.record(1, false, s(0));
        b.record(1, false, s(0));
        assert_eq!(b.record(1, true, s(0)), None);
        b.record(1, false, s(0));
        b.record(1, false, s(0));
        assert_eq!(b.admit(1, s(0)), Admit::Closed, "the count restarted");
        b.record(1, false, s(0));
        assert_eq!(b.admit(1, s(10)), Admit::Probe);
        // The probe's client left and nothing was recorded: after the probe timeout
        // another request may probe.
        assert!(matches!(b.admit(1, s(30)), Admit::Open { .. }));
        assert_eq!(b.admit(1, s(71)), Admit::Probe);
    }

    proptest::proptest! {
        /// Whatever the sequence: while a probe is out (and not yet timed out) no second
        /// one is let through, an open breaker never asks for more than the maximum
        /// cool-down, and a success closes it at once.
        #[test]
        fn one_probe_at_a_time_and_success_closes(events in proptest::collection::vec((0u8..3, 0u64..40), 1..200)) {
            let b = Breakers::new(cfg());
            let mut now = Instant::now();
            let mut probe_at: Option<Instant> = None;
            for (kind, step) in events {
                now += Duration::from_secs(step);
                match kind {
                    0 => match b.admit(1, now) {
                        Admit::Probe => {
                            if let Some(t) = probe_at {
                                proptest::prop_assert!(now.duration_since(t) >= cfg().probe_timeout);
                            }
                            probe_at = Some(now);
                        }
                        Admit::Closed => proptest::prop_assert!(probe_at.is_none()),
                        Admit::Open { retry_in } => {
                            proptest::prop_assert!(retry_in <= cfg().max_cool_down)
                        }
                    },
                    1 => {
                        b.record(1, true, now);
                        probe_at = None;
                        proptest::prop_assert_eq!(b.admit(1, now), Admit::Closed);
                    }
                    _ => {
                        b.record(1, false, now);
                        probe_at = None;
                    }
                }
            }
        }
    }
}
