//! Routing rules: the user's ordered list of "model name pattern → target".
//!
//! Positions are always a dense permutation 0..n-1 — the order the user sees, the
//! first enabled match wins. Every operation keeps that true inside its transaction
//! (inserting shifts the tail down, removing closes the gap, moving rotates the
//! span between the old and new places, reordering rewrites all positions at once).
//!
//! Each write also compiles the resulting rule set before committing: a set that the
//! matcher cannot build is refused, so the router never lags behind the store.

use super::Warning;
use crate::app::App;
use crate::error::{Code, Error, Result};
use crate::routing::{self, MatchType, Matcher, RuleSpec, Target, pattern};
use crate::store::audit::{self, Actor};
use crate::store::entities::{model, provider, routing_rule};
use sea_orm::sea_query::ExprTrait;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, Set, Statement,
};
use serde::Serialize;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Longest upstream model name accepted.
pub const MAX_MODEL_CHARS: usize = 512;

/// A rule target as the user names it: `local` or a provider's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetName {
    Local,
    Provider(String),
}

impl TargetName {
    /// `local` means the local engine; anything else names a provider.
    pub fn parse(s: &str) -> Result<TargetName> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::invalid(
                "a target must be `local` or a provider name",
            ));
        }
        Ok(if s == "local" {
            TargetName::Local
        } else {
            TargetName::Provider(s.to_string())
        })
    }
}

/// A rule as the CLI, the UI and `--json` show it (interfaces.md: `id`, `position`,
/// `pattern`, `match`, `target`, `model`, `fallback`, `enabled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Rule {
    pub id: i64,
    pub position: i64,
    pub pattern: String,
    #[serde(rename = "match")]
    pub match_type: MatchType,
    /// `local` or the provider's name.
    pub target: String,
    /// Upstream model name (a rename); `null` = the requested name.
    pub model: Option<String>,
    /// `local`, a provider's name, or `null`.
    pub fallback: Option<String>,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

/// Input of [`add`].
#[derive(Debug, Clone)]
pub struct NewRule {
    pub pattern: String,
    pub match_type: MatchType,
    pub target: TargetName,
    pub model: Option<String>,
    pub fallback: Option<TargetName>,
    pub enabled: bool,
    /// Where to insert (0 = first); `None` = at the end.
    pub position: Option<i64>,
}

/// Input of [`update`]: `None` leaves a field as it is; `Some(None)` clears an
/// optional one.
#[derive(Debug, Clone, Default)]
pub struct RulePatch {
    pub pattern: Option<String>,
    pub match_type: Option<MatchType>,
    pub target: Option<TargetName>,
    pub model: Option<Option<String>>,
    pub fallback: Option<Option<TargetName>>,
    pub enabled: Option<bool>,
}

impl RulePatch {
    pub fn is_empty(&self) -> bool {
        self.pattern.is_none()
            && self.match_type.is_none()
            && self.target.is_none()
            && self.model.is_none()
            && self.fallback.is_none()
            && self.enabled.is_none()
    }
}

/// A written rule and what the user should know about it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Saved {
    #[serde(flatten)]
    pub rule: Rule,
    pub warnings: Vec<Warning>,
}

/// A rule that would have matched but is disabled (shown by `rule test`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct Skipped {
    pub id: i64,
    pub position: i64,
}

/// The answer of `rule test MODEL_NAME` (interfaces.md: `matched`, `rule`, `target`,
/// `model`, `reason`).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(test, derive(ts_rs::TS))]
pub struct RuleTest {
    /// The name asked about.
    pub requested: String,
    pub matched: bool,
    /// The winning rule.
    pub rule: Option<Rule>,
    /// Where the request goes: `local` or a provider name; `null` when it would fail.
    pub target: Option<String>,
    /// The model name the target would be asked for.
    pub model: Option<String>,
    pub fallback: Option<String>,
    /// Why, in words.
    pub reason: String,
    /// The error code the request would get (`model_not_found`), if it would fail.
    pub code: Option<Code>,
    /// Disabled rules before the winner (or anywhere, with no winner) that match.
    pub disabled_matches: Vec<Skipped>,
    pub warnings: Vec<Warning>,
}

// ---------------------------------------------------------------- validation

pub(crate) fn check_pattern(pattern: &str, match_type: MatchType) -> Result<()> {
    if pattern.is_empty() {
        return Err(Error::invalid("the pattern must not be empty"));
    }
    let chars = pattern.chars().count();
    if chars > pattern::MAX_PATTERN_CHARS {
        return Err(Error::invalid(format!(
            "the pattern is {chars} characters long; the limit is {}",
            pattern::MAX_PATTERN_CHARS
        )));
    }
    if match_type == MatchType::Regex {
        pattern::compile_regex(pattern).map_err(|e| {
            Error::new(
                Code::RuleRegexInvalid,
                format!("invalid regex {pattern:?}: {e}"),
            )
        })?;
    }
    Ok(())
}

pub(crate) fn check_model(model: &Option<String>) -> Result<()> {
    if let Some(m) = model {
        if m.trim().is_empty() {
            return Err(Error::invalid(
                "the upstream model name must not be empty (use --no-model to clear it)",
            ));
        }
        if m.chars().count() > MAX_MODEL_CHARS {
            return Err(Error::invalid(format!(
                "the upstream model name is longer than {MAX_MODEL_CHARS} characters"
            )));
        }
    }
    Ok(())
}

/// Resolve a provider name to its id, or `rule_target_unknown`.
async fn provider_id<C: ConnectionTrait>(db: &C, name: &str) -> Result<i64> {
    provider::Entity::find()
        .filter(provider::Column::Name.eq(name))
        .one(db)
        .await?
        .map(|p| p.id)
        .ok_or_else(|| {
            Error::new(
                Code::RuleTargetUnknown,
                format!("no provider named {name:?}; add it with `switchyard provider add {name} --kind …` or use `local`"),
            )
        })
}

/// Columns (target_provider_id) for a target.
async fn target_column<C: ConnectionTrait>(db: &C, t: &TargetName) -> Result<Option<i64>> {
    match t {
        TargetName::Local => Ok(None),
        TargetName::Provider(name) => Ok(Some(provider_id(db, name).await?)),
    }
}

/// Columns (fallback_kind, fallback_provider_id) for a fallback.
async fn fallback_columns<C: ConnectionTrait>(
    db: &C,
    f: &Option<TargetName>,
) -> Result<(Option<String>, Option<i64>)> {
    match f {
        None => Ok((None, None)),
        Some(TargetName::Local) => Ok((Some("local".into()), None)),
        Some(TargetName::Provider(name)) => {
            Ok((Some("provider".into()), Some(provider_id(db, name).await?)))
        }
    }
}

// ---------------------------------------------------------------- reading

fn view(r: routing_rule::Model, names: &HashMap<i64, Arc<str>>) -> Rule {
    let name = |id: i64| {
        names
            .get(&id)
            .map(|n| n.to_string())
            .unwrap_or_else(|| format!("#{id}"))
    };
    Rule {
        id: r.id,
        position: r.position,
        match_type: MatchType::parse(&r.match_type).unwrap_or(MatchType::Exact),
        pattern: r.pattern,
        target: r.target_provider_id.map_or_else(|| "local".into(), name),
        model: r.upstream_model,
        fallback: match (r.fallback_kind.as_deref(), r.fallback_provider_id) {
            (Some("local"), _) => Some("local".into()),
            (Some(_), Some(id)) => Some(name(id)),
            _ => None,
        },
        enabled: r.enabled,
        created_at: r.created_at,
        updated_at: r.updated_at,
    }
}

async fn rows<C: ConnectionTrait>(db: &C) -> Result<Vec<routing_rule::Model>> {
    Ok(routing_rule::Entity::find()
        .order_by_asc(routing_rule::Column::Position)
        .order_by_asc(routing_rule::Column::Id)
        .all(db)
        .await?)
}

async fn list_in<C: ConnectionTrait>(db: &C) -> Result<Vec<Rule>> {
    let names = provider_names(db).await?;
    Ok(rows(db)
        .await?
        .into_iter()
        .map(|r| view(r, &names))
        .collect())
}

async fn row<C: ConnectionTrait>(db: &C, id: i64) -> Result<routing_rule::Model> {
    routing_rule::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| {
            Error::new(
                Code::RuleNotFound,
                format!("no rule with id {id}; `switchyard rule list` shows the ids"),
            )
        })
}

async fn get_in<C: ConnectionTrait>(db: &C, id: i64) -> Result<Rule> {
    let r = row(db, id).await?;
    Ok(view(r, &provider_names(db).await?))
}

/// All rules in position order.
pub async fn list(app: &App) -> Result<Vec<Rule>> {
    list_in(&app.db).await
}

/// One rule, or `rule_not_found`.
pub async fn get(app: &App, id: i64) -> Result<Rule> {
    get_in(&app.db, id).await
}

// ---------------------------------------------------------------- writing

/// Compile the rule set as it stands inside `txn`, commit, and install the new
/// snapshot. A set that does not compile aborts the write (the transaction is
/// dropped, i.e. rolled back).
pub(crate) async fn commit(app: &App, txn: DatabaseTransaction) -> Result<()> {
    let specs = load_specs(&txn).await?;
    commit_specs(app, txn, specs).await
}

/// [`commit`] with the rule set already read inside `txn`.
async fn commit_specs(
    app: &App,
    txn: DatabaseTransaction,
    specs: Vec<routing::RuleSpec>,
) -> Result<()> {
    let revision = crate::store::revision(&txn).await?;
    let previous = app.router.snapshot();
    let matcher = Matcher::build(specs, revision, Some(&previous)).map_err(|e| {
        let which = e
            .rule_id
            .map(|id| format!(" (rule {id})"))
            .unwrap_or_default();
        Error::new(
            Code::RuleRegexInvalid,
            format!("the rule set does not compile{which}: {}", e.message),
        )
    })?;
    txn.commit().await?;
    app.router.install(matcher);
    Ok(())
}

async fn count<C: ConnectionTrait>(db: &C) -> Result<i64> {
    Ok(routing_rule::Entity::find().count(db).await? as i64)
}

async fn exec<C: ConnectionTrait>(
    db: &C,
    sql: &str,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Result<u64> {
    Ok(db
        .execute_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            sql,
            values,
        ))
        .await?
        .rows_affected())
}

/// Other exact rules with the same pattern: only the one with the lowest position
/// can ever match, so the user is told.
async fn duplicate_warnings<C: ConnectionTrait>(
    db: &C,
    rule: &routing_rule::Model,
) -> Result<Vec<Warning>> {
    if rule.match_type != MatchType::Exact.as_str() {
        return Ok(Vec::new());
    }
    let others = routing_rule::Entity::find()
        .filter(routing_rule::Column::MatchType.eq(MatchType::Exact.as_str()))
        .filter(routing_rule::Column::Pattern.eq(rule.pattern.as_str()))
        .filter(routing_rule::Column::Id.ne(rule.id))
        .order_by_asc(routing_rule::Column::Position)
        .all(db)
        .await?;
    Ok(others
        .iter()
        .map(|o| {
            let (winner, loser) = if o.position < rule.position {
                (o, rule)
            } else {
                (rule, o)
            };
            Warning::new(
                "duplicate_pattern",
                format!(
                    "rule {} (position {}) has the same exact pattern {:?}; rule {} never matches while rule {} (position {}) is enabled",
                    o.id, o.position, rule.pattern, loser.id, winner.id, winner.position
                ),
            )
        })
        .collect())
}

fn audit_details(r: &Rule) -> serde_json::Value {
    json!({
        "position": r.position,
        "pattern": r.pattern,
        "match": r.match_type,
        "target": r.target,
        "model": r.model,
        "fallback": r.fallback,
        "enabled": r.enabled,
    })
}

/// Add a rule at the end, or at `position` (0..=n; later rules move down one).
pub async fn add(app: &App, actor: Actor, new: NewRule) -> Result<Saved> {
    check_pattern(&new.pattern, new.match_type)?;
    check_model(&new.model)?;
    let txn = crate::store::begin_immediate(&app.db).await?;
    let target = target_column(&txn, &new.target).await?;
    let (fallback_kind, fallback_provider_id) = fallback_columns(&txn, &new.fallback).await?;
    let n = count(&txn).await?;
    let position = new.position.unwrap_or(n);
    if !(0..=n).contains(&position) {
        return Err(Error::invalid(format!(
            "position {position} is out of range: there {} {n} rule{}, so a new rule goes at 0..={n}",
            if n == 1 { "is" } else { "are" },
            if n == 1 { "" } else { "s" }
        )));
    }
    let now = crate::store::now_ms();
    exec(
        &txn,
        "UPDATE routing_rules SET position = position + 1, updated_at = ? WHERE position >= ?",
        [now.into(), position.into()],
    )
    .await?;
    let inserted = routing_rule::ActiveModel {
        position: Set(position),
        pattern: Set(new.pattern),
        match_type: Set(new.match_type.as_str().to_string()),
        target_provider_id: Set(target),
        upstream_model: Set(new.model),
        fallback_kind: Set(fallback_kind),
        fallback_provider_id: Set(fallback_provider_id),
        enabled: Set(new.enabled),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    let warnings = duplicate_warnings(&txn, &inserted).await?;
    let rule = view(inserted, &provider_names(&txn).await?);
    audit::record(
        &txn,
        actor,
        "rule.add",
        Some(&format!("rule {}", rule.id)),
        audit_details(&rule),
    )
    .await?;
    commit(app, txn).await?;
    Ok(Saved { rule, warnings })
}

/// Change some fields of a rule (its position stays; see [`move_to`]).
pub async fn update(app: &App, actor: Actor, id: i64, patch: RulePatch) -> Result<Saved> {
    if patch.is_empty() {
        return Err(Error::invalid(
            "nothing to change: give at least one of --pattern, --match, --to, --model/--no-model, --fallback/--no-fallback, --enable/--disable",
        ));
    }
    if let Some(m) = &patch.model {
        check_model(m)?;
    }
    let txn = crate::store::begin_immediate(&app.db).await?;
    let current = row(&txn, id).await?;
    let before = view(current.clone(), &provider_names(&txn).await?);
    let current_match = MatchType::parse(&current.match_type).unwrap_or(MatchType::Exact);
    let pattern = patch.pattern.clone().unwrap_or(current.pattern.clone());
    let match_type = patch.match_type.unwrap_or(current_match);
    check_pattern(&pattern, match_type)?;
    let mut am: routing_rule::ActiveModel = current.into();
    am.pattern = Set(pattern);
    am.match_type = Set(match_type.as_str().to_string());
    if let Some(t) = &patch.target {
        am.target_provider_id = Set(target_column(&txn, t).await?);
    }
    if let Some(m) = &patch.model {
        am.upstream_model = Set(m.clone());
    }
    if let Some(f) = &patch.fallback {
        let (kind, pid) = fallback_columns(&txn, f).await?;
        am.fallback_kind = Set(kind);
        am.fallback_provider_id = Set(pid);
    }
    if let Some(e) = patch.enabled {
        am.enabled = Set(e);
    }
    am.updated_at = Set(crate::store::now_ms());
    let updated = am.update(&txn).await?;
    let warnings = duplicate_warnings(&txn, &updated).await?;
    let rule = view(updated, &provider_names(&txn).await?);
    audit::record(
        &txn,
        actor,
        "rule.update",
        Some(&format!("rule {id}")),
        json!({ "before": audit_details(&before), "after": audit_details(&rule) }),
    )
    .await?;
    commit(app, txn).await?;
    Ok(Saved { rule, warnings })
}

/// Enable or disable a rule. Setting the state it already has changes nothing and
/// writes no audit row.
pub async fn set_enabled(app: &App, actor: Actor, id: i64, enabled: bool) -> Result<Rule> {
    let txn = crate::store::begin_immediate(&app.db).await?;
    let current = row(&txn, id).await?;
    if current.enabled == enabled {
        return view_and_drop(txn, current).await;
    }
    let mut am: routing_rule::ActiveModel = current.into();
    am.enabled = Set(enabled);
    am.updated_at = Set(crate::store::now_ms());
    let updated = am.update(&txn).await?;
    let rule = view(updated, &provider_names(&txn).await?);
    audit::record(
        &txn,
        actor,
        if enabled {
            "rule.enable"
        } else {
            "rule.disable"
        },
        Some(&format!("rule {id}")),
        json!({ "position": rule.position, "pattern": rule.pattern }),
    )
    .await?;
    commit(app, txn).await?;
    Ok(rule)
}

async fn view_and_drop(txn: DatabaseTransaction, r: routing_rule::Model) -> Result<Rule> {
    let names = provider_names(&txn).await?;
    txn.rollback().await?;
    Ok(view(r, &names))
}

/// Remove a rule; the rules after it move up one. Returns the removed rule.
pub async fn remove(app: &App, actor: Actor, id: i64) -> Result<Rule> {
    let txn = crate::store::begin_immediate(&app.db).await?;
    let current = row(&txn, id).await?;
    let removed = view(current.clone(), &provider_names(&txn).await?);
    routing_rule::Entity::delete_by_id(id).exec(&txn).await?;
    exec(
        &txn,
        "UPDATE routing_rules SET position = position - 1, updated_at = ? WHERE position > ?",
        [crate::store::now_ms().into(), current.position.into()],
    )
    .await?;
    audit::record(
        &txn,
        actor,
        "rule.remove",
        Some(&format!("rule {id}")),
        audit_details(&removed),
    )
    .await?;
    commit(app, txn).await?;
    Ok(removed)
}

/// Move a rule to `to` (0..n-1); the rules in between shift by one. Returns the
/// whole list in its new order.
pub async fn move_to(app: &App, actor: Actor, id: i64, to: i64) -> Result<Vec<Rule>> {
    let txn = crate::store::begin_immediate(&app.db).await?;
    let current = row(&txn, id).await?;
    let n = count(&txn).await?;
    if !(0..n).contains(&to) {
        return Err(Error::invalid(format!(
            "position {to} is out of range: positions are 0..={}",
            n - 1
        )));
    }
    let from = current.position;
    let now = crate::store::now_ms();
    if to < from {
        exec(
            &txn,
            "UPDATE routing_rules SET position = position + 1, updated_at = ? WHERE position >= ? AND position < ?",
            [now.into(), to.into(), from.into()],
        )
        .await?;
    } else if to > from {
        exec(
            &txn,
            "UPDATE routing_rules SET position = position - 1, updated_at = ? WHERE position > ? AND position <= ?",
            [now.into(), from.into(), to.into()],
        )
        .await?;
    }
    if to != from {
        exec(
            &txn,
            "UPDATE routing_rules SET position = ?, updated_at = ? WHERE id = ?",
            [to.into(), now.into(), id.into()],
        )
        .await?;
    }
    audit::record(
        &txn,
        actor,
        "rule.move",
        Some(&format!("rule {id}")),
        json!({ "from": from, "to": to }),
    )
    .await?;
    let all = list_in(&txn).await?;
    commit(app, txn).await?;
    Ok(all)
}

/// Put the rules in the order of `ids`, which must name every current rule exactly
/// once. A list made from a stale view (a rule added or removed since) is refused
/// with `rule_order_conflict` and nothing changes — the UI's drag and drop sends
/// this, and must not silently drop or resurrect a rule.
pub async fn reorder(app: &App, actor: Actor, ids: &[i64]) -> Result<Vec<Rule>> {
    let txn = crate::store::begin_immediate(&app.db).await?;
    let current = ordered_ids(&txn).await?;
    check_permutation(&current, ids)?;
    let order = serde_json::to_string(ids)?;
    // One statement: json_each yields (key = new position, value = id).
    exec(
        &txn,
        "UPDATE routing_rules SET position = o.key, updated_at = ? \
         FROM json_each(?) AS o WHERE routing_rules.id = o.value AND routing_rules.position <> o.key",
        [crate::store::now_ms().into(), order.into()],
    )
    .await?;
    audit::record(
        &txn,
        actor,
        "rule.reorder",
        None,
        json!({ "before": current, "after": ids }),
    )
    .await?;
    // Read the rows once for both the answer and the new snapshot: at 1,000 rules
    // each full read is a noticeable part of the write.
    let names = provider_names(&txn).await?;
    let rows = rows(&txn).await?;
    let all = rows.iter().map(|r| view(r.clone(), &names)).collect();
    let specs = rows
        .into_iter()
        .map(|r| spec_of(r, &names))
        .collect::<Result<_>>()?;
    commit_specs(app, txn, specs).await?;
    Ok(all)
}

/// Rule ids in position order (without decoding whole rows).
async fn ordered_ids<C: ConnectionTrait>(db: &C) -> Result<Vec<i64>> {
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT id FROM routing_rules ORDER BY position, id",
        ))
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get_by_index::<i64>(0)?))
        .collect()
}

/// `ids` must be a permutation of `current`; else `rule_order_conflict` saying how
/// they differ.
pub fn check_permutation(current: &[i64], ids: &[i64]) -> Result<()> {
    let have: HashSet<i64> = current.iter().copied().collect();
    let mut seen = HashSet::new();
    let dups: Vec<i64> = ids.iter().copied().filter(|i| !seen.insert(*i)).collect();
    let unknown: Vec<i64> = ids.iter().copied().filter(|i| !have.contains(i)).collect();
    let missing: Vec<i64> = current
        .iter()
        .copied()
        .filter(|i| !seen.contains(i))
        .collect();
    if dups.is_empty() && unknown.is_empty() && missing.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {missing:?}"));
    }
    if !unknown.is_empty() {
        parts.push(format!("unknown {unknown:?}"));
    }
    if !dups.is_empty() {
        parts.push(format!("repeated {dups:?}"));
    }
    Err(Error::new(
        Code::RuleOrderConflict,
        format!(
            "the new order must list every current rule exactly once ({}); the rules changed since this order was made — reload and try again",
            parts.join(", ")
        ),
    ))
}

// ---------------------------------------------------------------- providers

/// Refuse to remove a provider that rules point at (as target or fallback), naming
/// them. The providers service calls this inside its transaction.
pub async fn ensure_provider_unused<C: ConnectionTrait>(
    db: &C,
    provider_id: i64,
    provider_name: &str,
) -> Result<()> {
    let users = routing_rule::Entity::find()
        .filter(
            routing_rule::Column::TargetProviderId
                .eq(provider_id)
                .or(routing_rule::Column::FallbackProviderId.eq(provider_id)),
        )
        .order_by_asc(routing_rule::Column::Position)
        .all(db)
        .await?;
    if users.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = users
        .iter()
        .map(|r| {
            let how = if r.target_provider_id == Some(provider_id) {
                "target"
            } else {
                "fallback"
            };
            format!(
                "rule {} ({how}, position {}, {} {:?})",
                r.id, r.position, r.match_type, r.pattern
            )
        })
        .collect();
    Err(Error::new(
        Code::ProviderInUse,
        format!(
            "provider {provider_name:?} is used by {}; change or remove {} first",
            list.join(", "),
            if users.len() == 1 { "it" } else { "them" }
        ),
    ))
}

// ---------------------------------------------------------------- testing

async fn local_model_exists<C: ConnectionTrait>(db: &C, name: &str) -> Result<bool> {
    Ok(model::Entity::find()
        .filter(model::Column::Name.eq(name))
        .count(db)
        .await?
        > 0)
}

/// Where a request for `name` would go, and why — answered by the live matcher
/// (refreshed from the store first if another process changed the rules).
pub async fn test(app: &App, name: &str) -> Result<RuleTest> {
    super::refresh(app).await?;
    let snapshot = app.router.snapshot();
    let route = snapshot.route(name);
    let rules = list_in(&app.db).await?;
    let winner_pos = route.as_ref().map_or(i64::MAX, |r| r.position);
    let disabled_matches: Vec<Skipped> = rules
        .iter()
        .filter(|r| !r.enabled && r.position < winner_pos)
        .filter(|r| {
            let re = match r.match_type {
                MatchType::Regex => pattern::compile_regex(&r.pattern).ok(),
                _ => None,
            };
            pattern::matches_one(r.match_type, &r.pattern, re.as_ref(), name)
        })
        .map(|r| Skipped {
            id: r.id,
            position: r.position,
        })
        .collect();
    let mut warnings = Vec::new();
    let mut skipped_note = String::new();
    if !disabled_matches.is_empty() {
        let list: Vec<String> = disabled_matches
            .iter()
            .map(|s| format!("rule {} (position {})", s.id, s.position))
            .collect();
        skipped_note = format!(
            "; {} would match first but {} disabled",
            list.join(", "),
            if list.len() == 1 { "is" } else { "are" }
        );
    }
    let Some(route) = route else {
        let local = local_model_exists(&app.db, name).await?;
        let (target, model, code, reason) = if local {
            (
                Some("local".to_string()),
                Some(name.to_string()),
                None,
                format!(
                    "no enabled rule matches {name:?}; a local model with that name is registered, so the request goes to it{skipped_note}"
                ),
            )
        } else {
            (
                None,
                None,
                Some(Code::ModelNotFound),
                format!(
                    "no enabled rule matches {name:?} and no local model has that name: the request fails with model_not_found{skipped_note}"
                ),
            )
        };
        return Ok(RuleTest {
            requested: name.to_string(),
            matched: false,
            rule: None,
            target,
            model,
            fallback: None,
            reason,
            code,
            disabled_matches,
            warnings,
        });
    };
    let rule = rules
        .into_iter()
        .find(|r| r.id == route.rule_id)
        .ok_or_else(|| Error::internal("the matched rule vanished while testing"))?;
    let why = match rule.match_type {
        MatchType::Exact => format!("the name equals the exact pattern {:?}", rule.pattern),
        MatchType::Prefix => format!("the name starts with the prefix {:?}", rule.pattern),
        MatchType::Regex => format!("the whole name matches the regex {:?}", rule.pattern),
    };
    let rename = if route.model != name {
        format!(", renamed to {:?}", route.model)
    } else {
        String::new()
    };
    let reason = format!(
        "rule {} at position {} matches: {why}; the request goes to {}{rename}{}{skipped_note}",
        rule.id,
        rule.position,
        route.target,
        route
            .fallback
            .as_ref()
            .map(|f| format!(", falling back to {f}"))
            .unwrap_or_default(),
    );
    if route.target.is_local() && !local_model_exists(&app.db, &route.model).await? {
        warnings.push(Warning::new(
            Code::ModelNotFound.as_str(),
            format!(
                "no local model named {:?} is registered; the request will fail with model_not_found{}",
                route.model,
                if route.fallback.is_some() {
                    " unless the fallback serves it"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(RuleTest {
        requested: name.to_string(),
        matched: true,
        target: Some(route.target.label().to_string()),
        model: Some(route.model.clone()),
        fallback: route.fallback.as_ref().map(|f| f.label().to_string()),
        rule: Some(rule),
        reason,
        code: None,
        disabled_matches,
        warnings,
    })
}

/// Rebuild `router` from the stored rules (at start-up, and when another process
/// changed the settings).
pub async fn reload_router<C: ConnectionTrait>(db: &C, router: &routing::Router) -> Result<()> {
    let revision = crate::store::revision(db).await?;
    let specs = load_specs(db).await?;
    router.rebuild(specs, revision);
    Ok(())
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
mod tests;
