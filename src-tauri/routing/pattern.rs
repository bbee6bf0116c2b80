//! Rule patterns: the match types and how a regex pattern is checked and compiled.
//!
//! A regex rule matches the *whole* model name. Users write `gpt-4o.*`, not
//! `^gpt-4o.*$`, so we wrap every pattern as `\A(?:…)\z`. The wrap is only sound for a
//! pattern that parses on its own — `a)|(b` would otherwise become a valid regex that
//! matches a prefix or a suffix — so a pattern is parsed alone first.
//!
//! Rust's regex engines run in time linear in the input, so a "catastrophic" pattern
//! such as `(a+)+$` is harmless to match; what a hostile or careless pattern *can* do
//! is blow up at compile time, which the size limits below bound.

use serde::{Deserialize, Serialize};

/// Longest pattern accepted, in characters.
pub const MAX_PATTERN_CHARS: usize = 512;
/// Compiled program size allowed for one rule's regex.
pub const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Lazy-DFA cache allowed for one rule's regex.
pub const REGEX_DFA_SIZE_LIMIT: usize = 1 << 20;
/// Compiled size allowed for the set of all enabled regex rules together.
pub const SET_SIZE_LIMIT: usize = 256 << 20;
/// Lazy-DFA cache of that set; larger than one regex's because every lookup runs
/// all regex rules at once and a thrashing cache falls back to a slower engine.
pub const SET_DFA_SIZE_LIMIT: usize = 32 << 20;
/// Nesting depth of groups/repetitions, bounding parser recursion.
pub const NEST_LIMIT: u32 = 64;

/// How a rule's pattern is compared with the requested model name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum MatchType {
    /// The name equals the pattern.
    Exact,
    /// The name starts with the pattern.
    Prefix,
    /// The whole name matches the regular expression.
    Regex,
}

impl MatchType {
    pub const fn as_str(self) -> &'static str {
        match self {
            MatchType::Exact => "exact",
            MatchType::Prefix => "prefix",
            MatchType::Regex => "regex",
        }
    }

    pub fn parse(s: &str) -> Option<MatchType> {
        match s {
            "exact" => Some(MatchType::Exact),
            "prefix" => Some(MatchType::Prefix),
            "regex" => Some(MatchType::Regex),
            _ => None,
        }
    }
}

impl std::fmt::Display for MatchType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The pattern as it goes into the regex engine: anchored at both ends of the name.
pub fn anchored(pattern: &str) -> String {
    format!(r"\A(?:{pattern})\z")
}

/// Check and compile one regex pattern (as the user wrote it, unanchored) with the
/// per-rule size limits. The error text is the regex crate's, positions relative to
/// the user's pattern.
pub fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex_syntax::ParserBuilder::new()
        .nest_limit(NEST_LIMIT)
        .build()
        .parse(pattern)
        .map_err(|e| e.to_string())?;
    regex::RegexBuilder::new(&anchored(pattern))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_DFA_SIZE_LIMIT)
        .nest_limit(NEST_LIMIT + 1)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(limit) => format!(
                "the compiled regex exceeds the size limit of {limit} bytes; simplify it (fewer repetitions or classes)"
            ),
            other => other.to_string(),
        })
}

/// Compile the regexes of several rules into one multi-pattern regex, in the order
/// given (unanchored patterns). It searches leftmost-first: as every pattern is
/// anchored at both ends, every match spans the whole name, and leftmost-first then
/// reports the *earliest pattern in the list* that matches — so with patterns in
/// position order, one search answers "which regex rule wins".
pub fn compile_set<'a>(
    patterns: impl IntoIterator<Item = &'a str>,
) -> Result<regex_automata::meta::Regex, String> {
    use regex_automata::{MatchKind, meta, util::syntax};
    let anchored: Vec<String> = patterns.into_iter().map(anchored).collect();
    meta::Regex::builder()
        .syntax(syntax::Config::new().nest_limit(NEST_LIMIT + 1))
        .configure(
            meta::Config::new()
                .match_kind(MatchKind::LeftmostFirst)
                .nfa_size_limit(Some(SET_SIZE_LIMIT))
                .onepass_size_limit(Some(REGEX_SIZE_LIMIT))
                .dfa_size_limit(Some(REGEX_SIZE_LIMIT))
                .hybrid_cache_capacity(SET_DFA_SIZE_LIMIT),
        )
        .build_many(&anchored)
        .map_err(|e| match e.size_limit() {
            Some(limit) => format!(
                "the regex rules together exceed the compiled size limit of {limit} bytes; remove or simplify some regex rules"
            ),
            None => e.to_string(),
        })
}

/// Does `pattern` (of type `match_type`) match `name`? The one-rule reference used by
/// `rule test`'s explanations and by the naive matcher; `regex` must be the compiled
/// pattern for regex rules.
pub fn matches_one(
    match_type: MatchType,
    pattern: &str,
    regex: Option<&regex::Regex>,
    name: &str,
) -> bool {
    match match_type {
        MatchType::Exact => name == pattern,
        MatchType::Prefix => name.starts_with(pattern),
        MatchType::Regex => regex.is_some_and(|r| r.is_match(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regex_matches_only_the_whole_name() {
        let r = compile_regex("gpt-4o").unwrap();
        assert!(r.is_match("gpt-4o"));
        assert!(!r.is_match("gpt-4o-mini"));
        assert!(!r.is_match("xgpt-4o"));
        let r = compile_regex("a|b").unwrap();
        assert!(r.is_match("a") && r.is_match("b"));
        assert!(!r.is_match("ab"), "alternation must not escape the anchors");
        let r = compile_regex("(?m)a$").unwrap();
        assert!(
            !r.is_match("a\nb"),
            "a multi-line flag must not weaken the end anchor"
        );
    }

    #[test]
    fn a_pattern_that_only_parses_inside_the_wrapper_is_refused() {
        // `\A(?:a)|(?:b)\z` would be a valid regex matching any name starting with `a`.
        let err = compile_regex("a)|(?:b").unwrap_err();
        assert!(
            err.contains("unopened group") || err.contains("parse"),
            "{err}"
        );
        assert!(compile_regex("(a").is_err());
        assert!(compile_regex("[z-a]").is_err());
        assert!(compile_regex(r"\p{NoSuchClass}").is_err());
    }

    #[test]
    fn a_huge_compiled_regex_is_refused_by_the_size_limit() {
        let err = compile_regex(r"\w{1000}\w{1000}\w{1000}").unwrap_err();
        assert!(err.contains("size limit"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let deep = format!("{}a{}", "(".repeat(200), ")".repeat(200));
        assert!(compile_regex(&deep).unwrap_err().contains("nest"));
    }

    #[test]
    fn match_types_round_trip_through_their_names() {
        for m in [MatchType::Exact, MatchType::Prefix, MatchType::Regex] {
            assert_eq!(MatchType::parse(m.as_str()), Some(m));
        }
        assert_eq!(MatchType::parse("glob"), None);
    }
}
