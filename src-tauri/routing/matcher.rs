//! The compiled rule set: model name → the first enabled rule (in the user's order)
//! whose pattern matches.
//!
//! A linear scan costs one comparison or regex run per rule; with thousands of rules
//! that is tens of microseconds per request. Instead each match type gets an index
//! that answers "the lowest-ranked rule of this type that matches" in time that does
//! not grow with the number of rules of that type:
//!
//! - exact patterns: a hash map name → lowest rank;
//! - prefixes: a byte trie, walked once along the name, each node knowing the lowest
//!   rank ending there and the lowest rank anywhere below it (so the walk stops as soon
//!   as nothing below can beat the best match so far);
//! - regexes: one multi-pattern leftmost-first automaton with patterns in rank order,
//!   whose single match is the lowest-ranked matching regex.
//!
//! The winner is the minimum over the three. "Rank" is the index among enabled rules
//! sorted by position, so the lowest rank is the lowest position. A `Matcher` is
//! immutable: a change builds a new one and swaps it in (see [`super::Router`]).

use super::pattern::{self, MatchType};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Where a routed request goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// The local engine (a model in the `models` table).
    Local,
    /// A cloud provider (row id and name in `providers`).
    Provider { id: i64, name: Arc<str> },
}

impl Target {
    /// `local` or the provider's name: how the CLI, the UI and `--json` name a target.
    pub fn label(&self) -> &str {
        match self {
            Target::Local => "local",
            Target::Provider { name, .. } => name,
        }
    }

    pub fn is_local(&self) -> bool {
        matches!(self, Target::Local)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.label())
    }
}

/// One rule as the matcher sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    pub id: i64,
    pub position: i64,
    pub pattern: String,
    pub match_type: MatchType,
    pub target: Target,
    /// The model name sent upstream; `None` = the requested name.
    pub upstream_model: Option<Arc<str>>,
    pub fallback: Option<Target>,
    pub enabled: bool,
}

/// The routing decision for one model name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub rule_id: i64,
    pub position: i64,
    #[serde(rename = "match")]
    pub match_type: MatchType,
    pub target: Target,
    /// The model name to ask the target for (the rule's rename, or the requested name).
    pub model: String,
    pub fallback: Option<Target>,
}

impl Route {
    fn new(rule: &RuleSpec, requested: &str) -> Route {
        Route {
            rule_id: rule.id,
            position: rule.position,
            match_type: rule.match_type,
            target: rule.target.clone(),
            model: rule
                .upstream_model
                .as_deref()
                .unwrap_or(requested)
                .to_string(),
            fallback: rule.fallback.clone(),
        }
    }
}

/// Why a rule set could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// The rule at fault, when one can be named.
    pub rule_id: Option<i64>,
    pub message: String,
}

const NONE: u32 = u32::MAX;

/// A byte trie over prefix patterns. Children are sorted by byte and searched by
/// binary search; nodes live in one vector (index 0 = root).
#[derive(Debug, Clone, Default)]
struct PrefixTrie {
    nodes: Vec<TrieNode>,
}

#[derive(Debug, Clone)]
struct TrieNode {
    /// Lowest rank of a prefix ending exactly here.
    rank: u32,
    /// Lowest rank of a prefix ending here or anywhere below.
    below: u32,
    children: Vec<(u8, u32)>,
}

impl TrieNode {
    fn new() -> Self {
        TrieNode {
            rank: NONE,
            below: NONE,
            children: Vec::new(),
        }
    }
}

impl PrefixTrie {
    fn insert(&mut self, key: &[u8], rank: u32) {
        if self.nodes.is_empty() {
            self.nodes.push(TrieNode::new());
        }
        let mut n = 0usize;
        for &b in key {
            self.nodes[n].below = self.nodes[n].below.min(rank);
            n = match self.nodes[n].children.binary_search_by_key(&b, |c| c.0) {
                Ok(i) => self.nodes[n].children[i].1 as usize,
                Err(i) => {
                    let next = self.nodes.len();
                    self.nodes.push(TrieNode::new());
                    self.nodes[n].children.insert(i, (b, next as u32));
                    next
                }
            };
        }
        let node = &mut self.nodes[n];
        node.rank = node.rank.min(rank);
        node.below = node.below.min(rank);
    }

    /// The lowest rank among prefixes of `key`, if lower than `best`; else `best`.
    fn best(&self, key: &[u8], mut best: u32) -> u32 {
        let Some(mut node) = self.nodes.first() else {
            return best;
        };
        let mut i = 0;
        loop {
            if node.below >= best {
                return best;
            }
            best = best.min(node.rank);
            let Some(b) = key.get(i) else { return best };
            match node.children.binary_search_by_key(b, |c| c.0) {
                Ok(j) => node = &self.nodes[node.children[j].1 as usize],
                Err(_) => return best,
            }
            i += 1;
        }
    }
}

/// All enabled regex rules as one automaton, patterns in rank order.
#[derive(Clone)]
struct RegexGroup {
    re: Arc<regex_automata::meta::Regex>,
    /// The patterns, in automaton order: lets a rebuild reuse the automaton when
    /// only non-regex rules changed.
    patterns: Arc<[String]>,
    /// Automaton pattern index → rank.
    ranks: Vec<u32>,
}

/// An immutable compiled rule set.
#[derive(Clone)]
pub struct Matcher {
    revision: i64,
    /// Enabled rules in position order; the index is the rank.
    rules: Vec<RuleSpec>,
    exact: HashMap<Box<str>, u32>,
    prefixes: PrefixTrie,
    regexes: Option<RegexGroup>,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Matcher")
            .field("revision", &self.revision)
            .field("rules", &self.rules.len())
            .field("exact", &self.exact.len())
            .field("prefix_nodes", &self.prefixes.nodes.len())
            .field(
                "regexes",
                &self.regexes.as_ref().map_or(0, |g| g.ranks.len()),
            )
            .finish()
    }
}

impl Matcher {
    /// No rules: every lookup misses.
    pub fn empty() -> Matcher {
        Matcher {
            revision: 0,
            rules: Vec::new(),
            exact: HashMap::new(),
            prefixes: PrefixTrie::default(),
            regexes: None,
        }
    }

    /// Compile `rules` (disabled ones are dropped). `revision` orders snapshots (the
    /// store's change counter); `previous` lets an unchanged regex automaton be reused,
    /// which keeps reorders of non-regex rules cheap.
    pub fn build(
        rules: impl IntoIterator<Item = RuleSpec>,
        revision: i64,
        previous: Option<&Matcher>,
    ) -> Result<Matcher, BuildError> {
        let mut rules: Vec<RuleSpec> = rules.into_iter().filter(|r| r.enabled).collect();
        rules.sort_by_key(|r| (r.position, r.id));
        let mut exact = HashMap::new();
        let mut prefixes = PrefixTrie::default();
        let mut regex_patterns = Vec::new();
        let mut regex_ranks = Vec::new();
        for (rank, r) in rules.iter().enumerate() {
            let rank = rank as u32;
            match r.match_type {
                MatchType::Exact => {
                    exact
                        .entry(r.pattern.clone().into_boxed_str())
                        .or_insert(rank);
                }
                MatchType::Prefix => prefixes.insert(r.pattern.as_bytes(), rank),
                MatchType::Regex => {
                    regex_patterns.push(r.pattern.clone());
                    regex_ranks.push(rank);
                }
            }
        }
        let regexes = if regex_patterns.is_empty() {
            None
        } else {
            let reusable = previous
                .and_then(|p| p.regexes.as_ref())
                .filter(|g| *g.patterns == *regex_patterns);
            let (re, patterns) = match reusable {
                Some(g) => (g.re.clone(), g.patterns.clone()),
                None => {
                    let re = pattern::compile_set(regex_patterns.iter().map(String::as_str))
                        .map_err(|message| blame(&rules, message))?;
                    (Arc::new(re), Arc::from(regex_patterns))
                }
            };
            Some(RegexGroup {
                re,
                patterns,
                ranks: regex_ranks,
            })
        };
        Ok(Matcher {
            revision,
            rules,
            exact,
            prefixes,
            regexes,
        })
    }

    /// The names exact rules make reachable (for `GET /v1/models`), each with the target
    /// it actually routes to (an earlier prefix or regex rule may take it), in order.
    pub fn exact_names(&self) -> Vec<(String, Target)> {
        let mut seen = std::collections::HashSet::new();
        self.rules
            .iter()
            .filter(|r| r.match_type == MatchType::Exact && seen.insert(r.pattern.as_str()))
            .filter_map(|r| {
                self.route(&r.pattern)
                    .map(|route| (r.pattern.clone(), route.target))
            })
            .collect()
    }

    /// Providers that a prefix or regex rule sends requested names to unchanged (no fixed
    /// upstream model): their own model lists tell which names a client can pick
    /// (`GET /v1/models`). In rule order, each once.
    pub fn open_providers(&self) -> Vec<(i64, Arc<str>)> {
        let mut out: Vec<(i64, Arc<str>)> = Vec::new();
        for r in &self.rules {
            if r.match_type == MatchType::Exact || r.upstream_model.is_some() {
                continue;
            }
            if let Target::Provider { id, name } = &r.target
                && !out.iter().any(|(i, _)| i == id)
            {
                out.push((*id, name.clone()));
            }
        }
        out
    }

    /// Like [`Matcher::build`], but a rule whose regex does not compile is left out
    /// (and reported) instead of failing the whole set. Used when loading what is
    /// already stored: a database edited by hand must not stop the app from starting.
    pub fn build_lenient(
        rules: Vec<RuleSpec>,
        revision: i64,
        previous: Option<&Matcher>,
    ) -> (Matcher, Vec<BuildError>) {
        match Matcher::build(rules.iter().cloned(), revision, previous) {
            Ok(m) => (m, Vec::new()),
            Err(first) => {
                let mut errors = Vec::new();
                let kept: Vec<RuleSpec> = rules
                    .into_iter()
                    .filter(|r| {
                        if r.enabled
                            && r.match_type == MatchType::Regex
                            && let Err(message) = pattern::compile_regex(&r.pattern)
                        {
                            errors.push(BuildError {
                                rule_id: Some(r.id),
                                message,
                            });
                            return false;
                        }
                        true
                    })
                    .collect();
                match Matcher::build(kept.iter().cloned(), revision, None) {
                    Ok(m) => (m, errors),
                    Err(e) => {
                        // Only the set as a whole is too big: route without regex rules.
                        errors.push(if errors.is_empty() { first } else { e });
                        let no_regex = kept
                            .into_iter()
                            .filter(|r| r.match_type != MatchType::Regex);
                        let m = Matcher::build(no_regex, revision, None)
                            .expect("a rule set without regexes always compiles");
                        (m, errors)
                    }
                }
            }
        }
    }

    /// The store revision this snapshot was built from.
    pub fn revision(&self) -> i64 {
        self.revision
    }

    /// Number of enabled rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The winning rule for `name`: the enabled rule with the lowest position whose
    /// pattern matches.
    pub fn lookup(&self, name: &str) -> Option<&RuleSpec> {
        let mut best = NONE;
        if let Some(&r) = self.exact.get(name) {
            best = r;
        }
        if best == 0 {
            return self.rules.first();
        }
        best = self.prefixes.best(name.as_bytes(), best);
        if let Some(g) = &self.regexes {
            // Ranks are increasing in automaton order: skip the search when even the
            // first regex rule cannot beat what we have.
            if g.ranks[0] < best {
                let input =
                    regex_automata::Input::new(name).anchored(regex_automata::Anchored::Yes);
                if let Some(m) = g.re.search(&input) {
                    best = best.min(g.ranks[m.pattern().as_usize()]);
                }
            }
        }
        self.rules.get(best as usize)
    }

    /// The route for `name`, or `None` when no enabled rule matches.
    pub fn route(&self, name: &str) -> Option<Route> {
        self.lookup(name).map(|r| Route::new(r, name))
    }
}

/// Name the rule at fault for a set that failed to compile (a rule stored before a
/// limit changed, or a set that is only too big as a whole).
fn blame(rules: &[RuleSpec], message: String) -> BuildError {
    let culprit = rules
        .iter()
        .filter(|r| r.match_type == MatchType::Regex)
        .find_map(|r| pattern::compile_regex(&r.pattern).err().map(|m| (r.id, m)));
    match culprit {
        Some((id, message)) => BuildError {
            rule_id: Some(id),
            message,
        },
        None => BuildError {
            rule_id: None,
            message,
        },
    }
}

/// The reference matcher: every enabled rule in position order, the first match
/// wins. The property tests hold [`Matcher`] to it and the benchmark measures
/// against it; nothing on the request path uses it.
pub struct LinearScan {
    rules: Vec<(RuleSpec, Option<regex::Regex>)>,
}

impl LinearScan {
    pub fn new(rules: impl IntoIterator<Item = RuleSpec>) -> Result<LinearScan, BuildError> {
        let mut rules: Vec<RuleSpec> = rules.into_iter().filter(|r| r.enabled).collect();
        rules.sort_by_key(|r| (r.position, r.id));
        let rules = rules
            .into_iter()
            .map(|r| {
                let re = match r.match_type {
                    MatchType::Regex => Some(pattern::compile_regex(&r.pattern).map_err(
                        |message| BuildError {
                            rule_id: Some(r.id),
                            message,
                        },
                    )?),
                    _ => None,
                };
                Ok((r, re))
            })
            .collect::<Result<_, BuildError>>()?;
        Ok(LinearScan { rules })
    }

    pub fn lookup(&self, name: &str) -> Option<&RuleSpec> {
        self.rules
            .iter()
            .find(|(r, re)| pattern::matches_one(r.match_type, &r.pattern, re.as_ref(), name))
            .map(|(r, _)| r)
    }

    pub fn route(&self, name: &str) -> Option<Route> {
        self.lookup(name).map(|r| Route::new(r, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(id: i64, position: i64, m: MatchType, pattern: &str) -> RuleSpec {
        RuleSpec {
            id,
            position,
            pattern: pattern.to_string(),
            match_type: m,
            target: Target::Local,
            upstream_model: None,
            fallback: None,
            enabled: true,
        }
    }

    fn winner(m: &Matcher, name: &str) -> Option<i64> {
        m.lookup(name).map(|r| r.id)
    }

    #[test]
    fn the_lowest_position_wins_across_match_types() {
        use MatchType::*;
        let rules = vec![
            rule(1, 3, Exact, "gpt-4o"),
            rule(2, 1, Prefix, "gpt-"),
            rule(3, 0, Regex, "claude-.*"),
            rule(4, 2, Regex, "gpt-4o(-mini)?"),
            rule(5, 4, Prefix, ""),
        ];
        let m = Matcher::build(rules, 1, None).unwrap();
        assert_eq!(
            winner(&m, "gpt-4o"),
            Some(2),
            "prefix at 1 beats exact at 3"
        );
        assert_eq!(winner(&m, "claude-3"), Some(3));
        assert_eq!(
            winner(&m, "llama"),
            Some(5),
            "the empty prefix catches the rest"
        );
        let m = Matcher::build(
            vec![
                rule(1, 0, Exact, "gpt-4o"),
                rule(4, 1, Regex, "gpt-4o(-mini)?"),
            ],
            1,
            None,
        )
        .unwrap();
        assert_eq!(winner(&m, "gpt-4o"), Some(1));
        assert_eq!(winner(&m, "gpt-4o-mini"), Some(4));
        assert_eq!(
            winner(&m, "gpt-4o-min"),
            None,
            "regexes match the whole name"
        );
    }

    #[test]
    fn open_providers_are_prefix_and_regex_targets_without_a_fixed_model() {
        use MatchType::*;
        let p = |id: i64, name: &str| Target::Provider {
            id,
            name: Arc::from(name),
        };
        let mut fixed = rule(1, 0, Prefix, "fast");
        fixed.target = p(10, "groq");
        fixed.upstream_model = Some(Arc::from("llama-3"));
        let mut exact = rule(2, 1, Exact, "gpt-4o");
        exact.target = p(11, "openai");
        let mut open = rule(3, 2, Regex, "claude-.*");
        open.target = p(12, "claude");
        let mut again = rule(4, 3, Prefix, "sonnet");
        again.target = p(12, "claude");
        let mut off = rule(5, 4, Prefix, "o");
        off.target = p(13, "other");
        off.enabled = false;
        let m = Matcher::build(
            vec![fixed, exact, open, again, off, rule(6, 5, Prefix, "")],
            1,
            None,
        )
        .unwrap();
        assert_eq!(m.open_providers(), vec![(12, Arc::from("claude"))]);
    }

    #[test]
    fn disabled_rules_never_match() {
        let mut r = rule(1, 0, MatchType::Prefix, "gpt");
        r.enabled = false;
        let m = Matcher::build(vec![r, rule(2, 1, MatchType::Prefix, "g")], 1, None).unwrap();
        assert_eq!(winner(&m, "gpt-4"), Some(2));
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn the_route_carries_the_rename_and_the_fallback() {
        let mut r = rule(7, 0, MatchType::Exact, "fast");
        r.target = Target::Provider {
            id: 3,
            name: "openai".into(),
        };
        r.upstream_model = Some("gpt-4o-mini".into());
        r.fallback = Some(Target::Local);
        let m = Matcher::build(vec![r, rule(8, 1, MatchType::Prefix, "")], 1, None).unwrap();
        let route = m.route("fast").unwrap();
        assert_eq!(route.rule_id, 7);
        assert_eq!(route.model, "gpt-4o-mini");
        assert_eq!(route.target.label(), "openai");
        assert_eq!(route.fallback, Some(Target::Local));
        assert_eq!(
            m.route("other").unwrap().model,
            "other",
            "no rename keeps the name"
        );
        let json = serde_json::to_value(&route).unwrap();
        assert_eq!(json["target"], "openai");
        assert_eq!(json["fallback"], "local");
        assert_eq!(json["match"], "exact");
    }

    #[test]
    fn an_unchanged_regex_automaton_is_reused_across_a_reorder() {
        use MatchType::*;
        let a = vec![
            rule(1, 0, Regex, "a.*"),
            rule(2, 1, Exact, "abc"),
            rule(3, 2, Regex, "ab.*"),
        ];
        let m1 = Matcher::build(a, 1, None).unwrap();
        let b = vec![
            rule(2, 0, Exact, "abc"),
            rule(1, 1, Regex, "a.*"),
            rule(3, 2, Regex, "ab.*"),
        ];
        let m2 = Matcher::build(b, 2, Some(&m1)).unwrap();
        assert!(Arc::ptr_eq(
            &m1.regexes.as_ref().unwrap().re,
            &m2.regexes.as_ref().unwrap().re
        ));
        assert_eq!(winner(&m2, "abc"), Some(2));
        assert_eq!(winner(&m2, "abd"), Some(1));
        // Swapping the two regex rules changes the automaton order: rebuilt, and right.
        let c = vec![rule(3, 0, Regex, "ab.*"), rule(1, 1, Regex, "a.*")];
        let m3 = Matcher::build(c, 3, Some(&m2)).unwrap();
        assert!(!Arc::ptr_eq(
            &m2.regexes.as_ref().unwrap().re,
            &m3.regexes.as_ref().unwrap().re
        ));
        assert_eq!(winner(&m3, "abd"), Some(3));
    }

    #[test]
    fn a_bad_stored_regex_is_skipped_by_the_lenient_build_and_named_by_the_strict_one() {
        use MatchType::*;
        let rules = vec![rule(1, 0, Regex, "(unclosed"), rule(2, 1, Prefix, "x")];
        let err = Matcher::build(rules.clone(), 1, None).unwrap_err();
        assert_eq!(err.rule_id, Some(1));
        let (m, errors) = Matcher::build_lenient(rules, 1, None);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].rule_id, Some(1));
        assert_eq!(winner(&m, "xyz"), Some(2));
    }

    #[test]
    fn a_catastrophic_looking_regex_is_linear_on_a_long_adversarial_name() {
        let m = Matcher::build(vec![rule(1, 0, MatchType::Regex, "(a+)+$")], 1, None).unwrap();
        let name = format!("{}!", "a".repeat(50_000));
        let started = std::time::Instant::now();
        assert_eq!(winner(&m, &name), None);
        assert_eq!(winner(&m, &"a".repeat(50_000)), Some(1));
        // A backtracking engine would need ~2^50000 steps; this bound is only there
        // to make an exponential engine fail loudly, not to measure speed.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn the_prefix_trie_keeps_the_lowest_rank_for_duplicates() {
        let mut t = PrefixTrie::default();
        t.insert(b"ab", 5);
        t.insert(b"ab", 2);
        t.insert(b"a", 9);
        t.insert(b"abcd", 1);
        assert_eq!(t.best(b"abc", NONE), 2);
        assert_eq!(t.best(b"abcde", NONE), 1);
        assert_eq!(t.best(b"a", NONE), 9);
        assert_eq!(t.best(b"b", NONE), NONE);
        assert_eq!(t.best(b"abcde", 0), 0, "nothing beats rank 0");
        assert_eq!(PrefixTrie::default().best(b"x", 4), 4);
    }

    // ---- property: Matcher == LinearScan on random rule sets and names

    fn arb_regex() -> impl Strategy<Value = String> {
        // Small regexes over the same alphabet as the names, so they actually match.
        let atom = prop_oneof![
            "[ab1-]".prop_map(|s| s),
            Just(".".to_string()),
            Just("[ab]".to_string()),
            Just("[^a]".to_string()),
            Just(r"\d".to_string()),
        ];
        let piece = (atom, prop_oneof![Just(""), Just("*"), Just("+"), Just("?")])
            .prop_map(|(a, q)| format!("{a}{q}"));
        let seq = prop::collection::vec(piece, 0..4).prop_map(|v| v.concat());
        prop_oneof![
            3 => seq.clone(),
            1 => (seq.clone(), seq).prop_map(|(a, b)| format!("{a}|{b}")),
        ]
    }

    fn arb_rules() -> impl Strategy<Value = Vec<RuleSpec>> {
        let one = prop_oneof![
            (Just(MatchType::Exact), "[ab1-]{0,4}"),
            (Just(MatchType::Prefix), "[ab1-]{0,3}"),
            (Just(MatchType::Regex), arb_regex()),
        ];
        prop::collection::vec((one, any::<bool>(), prop::bool::weighted(0.85)), 0..24)
            .prop_flat_map(|specs| {
                let n = specs.len();
                (
                    Just(specs),
                    Just((0..n as i64).collect::<Vec<_>>()).prop_shuffle(),
                )
            })
            .prop_map(|(specs, positions)| {
                specs
                    .into_iter()
                    .zip(positions)
                    .enumerate()
                    .map(|(i, (((m, p), local, enabled), pos))| RuleSpec {
                        id: i as i64 + 1,
                        position: pos,
                        pattern: p,
                        match_type: m,
                        target: if local {
                            Target::Local
                        } else {
                            Target::Provider {
                                id: 1,
                                name: "p".into(),
                            }
                        },
                        upstream_model: None,
                        fallback: None,
                        enabled,
                    })
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn the_compiled_matcher_agrees_with_a_linear_scan(
            rules in arb_rules(),
            names in prop::collection::vec("[ab1-]{0,6}", 1..24),
        ) {
            let naive = LinearScan::new(rules.clone()).unwrap();
            let m = Matcher::build(rules, 1, None).unwrap();
            for name in &names {
                prop_assert_eq!(m.route(name), naive.route(name), "name {:?}", name);
            }
        }

        #[test]
        fn a_rebuild_that_reuses_the_automaton_agrees_with_a_linear_scan(
            rules in arb_rules(),
            moves in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            names in prop::collection::vec("[ab1-]{0,6}", 1..16),
        ) {
            let first = Matcher::build(rules.clone(), 1, None).unwrap();
            // Rotate positions among the non-regex rules only, so the automaton is reused.
            let mut rules = rules;
            let mut slots: Vec<usize> = (0..rules.len())
                .filter(|&i| rules[i].match_type != MatchType::Regex)
                .collect();
            slots.sort_by_key(|&i| rules[i].position);
            for mv in moves {
                if slots.len() > 1 {
                    let a = slots[mv.index(slots.len())];
                    let b = slots[0];
                    let (pa, pb) = (rules[a].position, rules[b].position);
                    rules[a].position = pb;
                    rules[b].position = pa;
                }
            }
            let naive = LinearScan::new(rules.clone()).unwrap();
            let m = Matcher::build(rules, 2, Some(&first)).unwrap();
            for name in &names {
                prop_assert_eq!(m.route(name), naive.route(name), "name {:?}", name);
            }
        }
    }
}
