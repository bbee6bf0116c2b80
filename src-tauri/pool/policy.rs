//! Which loaded models to unload: pure functions of the loaded set, the clock and the
//! budget, so that every policy is tested on a fake clock with fake sizes.
//!
//! - `lru`: the least recently used first.
//! - `lfu`: the least used first, by a use count that halves every [`LFU_HALF_LIFE_MS`]
//!   of idleness (aging: a model used a lot yesterday does not outrank one used a few
//!   times this morning for ever); ties go to the least recently used.
//! - `ttl`: models idle longer than their TTL first (the longest idle first), then the
//!   longest idle.
//!
//! Under every policy a busy (serving) or pinned model is never chosen, and models idle
//! longer than their TTL are unloaded by [`expired`] whether or not room is needed.

use crate::settings::pool::Eviction;

/// How fast LFU popularity fades: halved after this long without a use.
pub const LFU_HALF_LIFE_MS: i64 = 30 * 60 * 1000;

/// A loaded model as the policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub id: i64,
    /// What it is charged against the budget.
    pub bytes: u64,
    pub pinned: bool,
    /// Serving (or queued for) a request right now.
    pub busy: bool,
    pub last_used_ms: i64,
    /// The decayed use count as of `last_used_ms` (see [`Popularity`]).
    pub popularity: Popularity,
    /// Idle TTL that applies to it (its own, else the pool's); `None` = never idles out.
    pub ttl_ms: Option<i64>,
}

/// An LFU count that decays with idleness.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Popularity {
    pub score: f64,
    pub at_ms: i64,
}

impl Popularity {
    /// The score as of `now_ms`.
    pub fn at(self, now_ms: i64) -> f64 {
        let idle = (now_ms - self.at_ms).max(0) as f64;
        self.score * 0.5f64.powf(idle / LFU_HALF_LIFE_MS as f64)
    }

    /// One more use at `now_ms`.
    pub fn used(self, now_ms: i64) -> Popularity {
        Popularity {
            score: self.at(now_ms) + 1.0,
            at_ms: now_ms.max(self.at_ms),
        }
    }
}

fn idle_ms(c: &Candidate, now_ms: i64) -> i64 {
    (now_ms - c.last_used_ms).max(0)
}

fn is_expired(c: &Candidate, now_ms: i64) -> bool {
    c.ttl_ms.is_some_and(|ttl| idle_ms(c, now_ms) >= ttl)
}

/// Models to unload now because they idled past their TTL (never busy or pinned ones).
pub fn expired(now_ms: i64, loaded: &[Candidate]) -> Vec<i64> {
    let mut v: Vec<&Candidate> = loaded
        .iter()
        .filter(|c| !c.busy && !c.pinned && is_expired(c, now_ms))
        .collect();
    v.sort_by_key(|c| std::cmp::Reverse(idle_ms(c, now_ms)));
    v.into_iter().map(|c| c.id).collect()
}

/// The order in which `policy` gives up evictable models (first = first to go).
pub fn eviction_order(policy: Eviction, now_ms: i64, loaded: &[Candidate]) -> Vec<i64> {
    let mut v: Vec<&Candidate> = loaded.iter().filter(|c| !c.busy && !c.pinned).collect();
    match policy {
        Eviction::Lru => v.sort_by_key(|c| (c.last_used_ms, c.id)),
        Eviction::Lfu => v.sort_by(|a, b| {
            a.popularity
                .at(now_ms)
                .total_cmp(&b.popularity.at(now_ms))
                .then(a.last_used_ms.cmp(&b.last_used_ms))
                .then(a.id.cmp(&b.id))
        }),
        Eviction::Ttl => v.sort_by_key(|c| {
            (
                !is_expired(c, now_ms),
                std::cmp::Reverse(idle_ms(c, now_ms)),
                c.id,
            )
        }),
    }
    v.into_iter().map(|c| c.id).collect()
}

/// The models to unload so that `need` more bytes fit in `budget`, in order; `None` when
/// even unloading every evictable model would not make room (then nothing is unloaded).
pub fn make_room(
    policy: Eviction,
    now_ms: i64,
    loaded: &[Candidate],
    need: u64,
    budget: u64,
) -> Option<Vec<i64>> {
    let mut used: u64 = loaded.iter().map(|c| c.bytes).sum();
    let mut out = Vec::new();
    for id in eviction_order(policy, now_ms, loaded) {
        if used.saturating_add(need) <= budget {
            break;
        }
        let c = loaded.iter().find(|c| c.id == id)?;
        used -= c.bytes;
        out.push(id);
    }
    (used.saturating_add(need) <= budget).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIN: i64 = 60_000;

    fn c(id: i64, bytes: u64, last_used_ms: i64) -> Candidate {
        Candidate {
            id,
            bytes,
            pinned: false,
            busy: false,
            last_used_ms,
            popularity: Popularity {
                score: 1.0,
                at_ms: last_used_ms,
            },
            ttl_ms: None,
        }
    }

    #[test]
    fn lru_unloads_the_least_recently_used_until_the_new_model_fits() {
        let loaded = [c(1, 4, 30 * MIN), c(2, 4, 10 * MIN), c(3, 4, 20 * MIN)];
        // (need, budget) -> victims
        let table: &[(u64, u64, Option<&[i64]>)] = &[
            (4, 16, Some(&[])),
            (4, 12, Some(&[2])),
            (8, 12, Some(&[2, 3])),
            (12, 12, Some(&[2, 3, 1])),
            (13, 12, None),
        ];
        for (need, budget, want) in table {
            let got = make_room(Eviction::Lru, 40 * MIN, &loaded, *need, *budget);
            assert_eq!(got.as_deref(), *want, "need {need} budget {budget}");
        }
    }

    #[test]
    fn lfu_keeps_the_more_used_model_and_old_popularity_fades() {
        let now = 100 * MIN;
        let mut busy_yesterday = c(1, 4, now - 5 * 60 * MIN);
        busy_yesterday.popularity = Popularity {
            score: 50.0,
            at_ms: busy_yesterday.last_used_ms,
        };
        let mut used_twice = c(2, 4, now - 20 * MIN);
        used_twice.popularity = Popularity::default()
            .used(now - 30 * MIN)
            .used(now - 20 * MIN);
        let used_once = c(3, 4, now - MIN);
        let loaded = [busy_yesterday, used_twice, used_once];
        // 50 uses five hours (ten half-lives) ago are worth ~0.05 now: it goes first,
        // although it was used most; then the one used once, though it is the newest.
        assert_eq!(eviction_order(Eviction::Lfu, now, &loaded), vec![1, 3, 2]);
        // Without the aging (the same moment as its last use) it would be kept.
        assert_eq!(
            eviction_order(Eviction::Lfu, now - 5 * 60 * MIN, &loaded[..1]).len(),
            1
        );
        assert!(loaded[0].popularity.at(loaded[0].last_used_ms) > loaded[1].popularity.at(now));
        assert_eq!(make_room(Eviction::Lfu, now, &loaded, 4, 12), Some(vec![1]));
    }

    #[test]
    fn ttl_unloads_expired_models_first_then_the_longest_idle() {
        let now = 100 * MIN;
        let mut short = c(1, 4, now - 10 * MIN);
        short.ttl_ms = Some(5 * MIN); // expired
        let long_idle = c(2, 4, now - 50 * MIN); // no TTL: never expires
        let mut fresh = c(3, 4, now - MIN);
        fresh.ttl_ms = Some(5 * MIN);
        let loaded = [short.clone(), long_idle.clone(), fresh.clone()];
        assert_eq!(expired(now, &loaded), vec![1]);
        assert_eq!(eviction_order(Eviction::Ttl, now, &loaded), vec![1, 2, 3]);
        // LRU would have picked the longest idle first.
        assert_eq!(eviction_order(Eviction::Lru, now, &loaded), vec![2, 1, 3]);
        // Exactly at the TTL it expires; a millisecond before, not.
        assert_eq!(
            expired(short.last_used_ms + 5 * MIN, &[short.clone()]),
            vec![1]
        );
        assert!(expired(short.last_used_ms + 5 * MIN - 1, &[short]).is_empty());
    }

    #[test]
    fn busy_and_pinned_models_are_never_chosen() {
        let now = 100 * MIN;
        let mut busy = c(1, 8, 0);
        busy.busy = true;
        busy.ttl_ms = Some(1);
        let mut pinned = c(2, 8, 0);
        pinned.pinned = true;
        pinned.ttl_ms = Some(1);
        let idle = c(3, 8, now);
        let loaded = [busy, pinned, idle];
        for policy in [Eviction::Lru, Eviction::Lfu, Eviction::Ttl] {
            assert_eq!(eviction_order(policy, now, &loaded), vec![3]);
            assert_eq!(make_room(policy, now, &loaded, 8, 24), Some(vec![3]));
            // Room would need the busy or the pinned one: nothing is unloaded.
            assert_eq!(make_room(policy, now, &loaded, 9, 24), None);
        }
        assert!(expired(now, &loaded).is_empty());
    }

    fn candidate() -> impl Strategy<Value = Candidate> {
        (
            1u64..100,
            any::<bool>(),
            any::<bool>(),
            0i64..1_000_000,
            0.0f64..100.0,
            proptest::option::of(1i64..500_000),
        )
            .prop_map(|(bytes, pinned, busy, last, score, ttl)| Candidate {
                id: 0,
                bytes,
                pinned,
                busy,
                last_used_ms: last,
                popularity: Popularity { score, at_ms: last },
                ttl_ms: ttl,
            })
    }

    proptest! {
        /// Whatever the policy, sizes and clock: after the chosen unloads the new model
        /// fits the budget (or nothing is chosen and the answer is no), and no busy or
        /// pinned model is among them.
        #[test]
        fn the_budget_holds_and_busy_models_stay(
            mut loaded in proptest::collection::vec(candidate(), 0..8),
            need in 1u64..200,
            budget in 1u64..600,
            now in 1_000_000i64..2_000_000,
            policy in prop_oneof![Just(Eviction::Lru), Just(Eviction::Lfu), Just(Eviction::Ttl)],
        ) {
            for (i, c) in loaded.iter_mut().enumerate() {
                c.id = i as i64 + 1;
            }
            let used: u64 = loaded.iter().map(|c| c.bytes).sum();
            let keep: u64 = loaded.iter().filter(|c| c.busy || c.pinned).map(|c| c.bytes).sum();
            match make_room(policy, now, &loaded, need, budget) {
                Some(victims) => {
                    let freed: u64 = loaded.iter().filter(|c| victims.contains(&c.id)).map(|c| c.bytes).sum();
                    prop_assert!(used - freed + need <= budget);
                    for id in &victims {
                        let c = loaded.iter().find(|c| c.id == *id).unwrap();
                        prop_assert!(!c.busy && !c.pinned);
                    }
                    // No more than needed: without the last victim it would not fit.
                    if let Some(last) = victims.last() {
                        let b = loaded.iter().find(|c| c.id == *last).unwrap().bytes;
                        prop_assert!(used - freed + b + need > budget);
                    }
                }
                None => prop_assert!(keep + need > budget),
            }
            for id in expired(now, &loaded) {
                let c = loaded.iter().find(|c| c.id == id).unwrap();
                prop_assert!(!c.busy && !c.pinned);
            }
        }
    }
}
