//! Service-level tests of the rules: real SQLite in a temp dir, the real router.

use super::*;
use crate::app::{AppOptions, SharedApp};
use crate::routing::LinearScan;
use crate::store::entities::audit_log;
use proptest::prelude::*;

async fn open() -> (tempfile::TempDir, SharedApp) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(AppOptions {
        data_dir: Some(dir.path().to_path_buf()),
        vault: crate::vault::BackendKind::File,
    })
    .await
    .unwrap();
    (dir, app)
}

/// A provider row written straight to the table (the providers service is another
/// part's; rules only need the row to exist).
async fn provider(app: &App, name: &str) -> i64 {
    let now = crate::store::now_ms();
    provider::ActiveModel {
        name: Set(name.into()),
        kind: Set("openai".into()),
        base_url: Set("https://api.example.test".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .unwrap()
    .id
}

async fn local_model(app: &App, name: &str) {
    model::ActiveModel {
        name: Set(name.into()),
        path: Set("/models/x".into()),
        format: Set("mlx".into()),
        architecture: Set("llama".into()),
        size_bytes: Set(1),
        pinned: Set(false),
        created_at: Set(0),
        ..Default::default()
    }
    .insert(&app.db)
    .await
    .unwrap();
}

fn new_rule(pattern: &str, m: MatchType, to: &str) -> NewRule {
    NewRule {
        pattern: pattern.into(),
        match_type: m,
        target: TargetName::parse(to).unwrap(),
        model: None,
        fallback: None,
        enabled: true,
        position: None,
    }
}

async fn add(app: &App, pattern: &str, m: MatchType, to: &str) -> Rule {
    super::add(app, Actor::Cli, new_rule(pattern, m, to))
        .await
        .unwrap()
        .rule
}

/// Every row of the tables a rule or pool write touches, for "nothing changed".
async fn dump(app: &App) -> String {
    let rules = routing_rule::Entity::find().all(&app.db).await.unwrap();
    let audit = audit_log::Entity::find().all(&app.db).await.unwrap();
    let pool = crate::store::entities::pool_config::Entity::find()
        .all(&app.db)
        .await
        .unwrap();
    format!("{rules:?}\n{audit:?}\n{pool:?}")
}

async fn ids(app: &App) -> Vec<i64> {
    list(app).await.unwrap().iter().map(|r| r.id).collect()
}

async fn assert_dense(app: &App) {
    let positions: Vec<i64> = list(app)
        .await
        .unwrap()
        .iter()
        .map(|r| r.position)
        .collect();
    assert_eq!(positions, (0..positions.len() as i64).collect::<Vec<_>>());
}

/// The live router must answer like an in-order scan of what is stored.
async fn assert_router_matches_store(app: &App, names: &[&str]) {
    let specs = crate::settings::rules::load_specs(&app.db).await.unwrap();
    let naive = LinearScan::new(specs).unwrap();
    for name in names {
        assert_eq!(app.router.route(name), naive.route(name), "name {name:?}");
    }
}

#[tokio::test]
async fn add_appends_or_inserts_and_keeps_positions_dense() {
    let (_d, app) = open().await;
    let a = add(&app, "a", MatchType::Exact, "local").await;
    let b = add(&app, "b", MatchType::Exact, "local").await;
    let mut n = new_rule("c", MatchType::Prefix, "local");
    n.position = Some(0);
    let c = super::add(&app, Actor::Cli, n).await.unwrap().rule;
    assert_eq!(c.position, 0);
    assert_eq!(ids(&app).await, vec![c.id, a.id, b.id]);
    assert_dense(&app).await;
    let mut n = new_rule("d", MatchType::Prefix, "local");
    n.position = Some(4);
    let e = super::add(&app, Actor::Cli, n).await.unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
    assert_eq!(ids(&app).await, vec![c.id, a.id, b.id]);
}

#[tokio::test]
async fn remove_and_move_close_and_rotate_positions() {
    let (_d, app) = open().await;
    let mut r = Vec::new();
    for p in ["a", "b", "c", "d"] {
        r.push(add(&app, p, MatchType::Exact, "local").await.id);
    }
    let list = move_to(&app, Actor::Cli, r[0], 2).await.unwrap();
    assert_eq!(
        list.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![r[1], r[2], r[0], r[3]]
    );
    move_to(&app, Actor::Cli, r[3], 0).await.unwrap();
    assert_eq!(ids(&app).await, vec![r[3], r[1], r[2], r[0]]);
    let removed = remove(&app, Actor::Cli, r[1]).await.unwrap();
    assert_eq!(removed.pattern, "b");
    assert_eq!(ids(&app).await, vec![r[3], r[2], r[0]]);
    assert_dense(&app).await;
    assert_eq!(
        move_to(&app, Actor::Cli, r[3], 3).await.unwrap_err().code,
        Code::InvalidArgument
    );
    assert_eq!(
        remove(&app, Actor::Cli, 999).await.unwrap_err().code,
        Code::RuleNotFound
    );
}

#[tokio::test]
async fn reorder_applies_a_full_permutation_in_one_write() {
    let (_d, app) = open().await;
    let mut r = Vec::new();
    for p in ["a", "b", "c"] {
        r.push(add(&app, p, MatchType::Prefix, "local").await.id);
    }
    let order = vec![r[2], r[0], r[1]];
    let list = reorder(&app, Actor::Ui, &order).await.unwrap();
    assert_eq!(list.iter().map(|x| x.id).collect::<Vec<_>>(), order);
    assert_dense(&app).await;
    let last = audit_log::Entity::find()
        .order_by_desc(audit_log::Column::Id)
        .one(&app.db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (last.action.as_str(), last.actor.as_str()),
        ("rule.reorder", "ui")
    );
}

#[tokio::test]
async fn a_stale_reorder_is_refused_and_changes_nothing() {
    let (_d, app) = open().await;
    let a = add(&app, "a", MatchType::Exact, "local").await.id;
    let b = add(&app, "b", MatchType::Exact, "local").await.id;
    let seen = vec![b, a]; // the UI's view
    let c = add(&app, "c", MatchType::Exact, "local").await.id; // added meanwhile
    let before = dump(&app).await;
    let e = reorder(&app, Actor::Ui, &seen).await.unwrap_err();
    assert_eq!(e.code, Code::RuleOrderConflict);
    assert!(
        e.message.contains(&format!("missing [{c}]")),
        "{}",
        e.message
    );
    assert_eq!(dump(&app).await, before);

    remove(&app, Actor::Cli, a).await.unwrap(); // removed meanwhile
    let before = dump(&app).await;
    for stale in [vec![c, b, a], vec![b, c, c], vec![b], vec![]] {
        let e = reorder(&app, Actor::Ui, &stale).await.unwrap_err();
        assert_eq!(e.code, Code::RuleOrderConflict, "{stale:?}");
    }
    assert_eq!(dump(&app).await, before);
}

#[test]
fn permutation_check_names_what_differs() {
    assert!(check_permutation(&[1, 2, 3], &[3, 1, 2]).is_ok());
    assert!(check_permutation(&[], &[]).is_ok());
    let m = check_permutation(&[1, 2, 3], &[3, 3, 4])
        .unwrap_err()
        .message;
    assert!(
        m.contains("missing [1, 2]") && m.contains("unknown [4]") && m.contains("repeated [3]"),
        "{m}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code_and_nothing_is_written() {
    let (_d, app) = open().await;
    add(&app, "keep", MatchType::Exact, "local").await;
    let before = dump(&app).await;
    let cases: Vec<(NewRule, Code)> = vec![
        (
            new_rule("gpt-(4", MatchType::Regex, "local"),
            Code::RuleRegexInvalid,
        ),
        (
            new_rule(r"\w{1000}\w{1000}\w{1000}", MatchType::Regex, "local"),
            Code::RuleRegexInvalid,
        ),
        (
            new_rule(&"x".repeat(10 * 1024), MatchType::Exact, "local"),
            Code::InvalidArgument,
        ),
        (
            new_rule(&"é".repeat(513), MatchType::Prefix, "local"),
            Code::InvalidArgument,
        ),
        (
            new_rule("", MatchType::Prefix, "local"),
            Code::InvalidArgument,
        ),
        (
            new_rule("gpt", MatchType::Prefix, "nope"),
            Code::RuleTargetUnknown,
        ),
        (
            NewRule {
                fallback: Some(TargetName::Provider("nope".into())),
                ..new_rule("gpt", MatchType::Prefix, "local")
            },
            Code::RuleTargetUnknown,
        ),
        (
            NewRule {
                model: Some("  ".into()),
                ..new_rule("gpt", MatchType::Prefix, "local")
            },
            Code::InvalidArgument,
        ),
    ];
    for (input, code) in cases {
        let shown = format!("{:.40?}", input.pattern);
        let e = super::add(&app, Actor::Cli, input).await.unwrap_err();
        assert_eq!(e.code, code, "{shown}: {}", e.message);
        assert_eq!(
            e.code.exit_code(),
            4,
            "{shown}: a rejected rule is a validation error"
        );
    }
    assert_eq!(dump(&app).await, before);
    assert_eq!(app.router.snapshot().len(), 1);
}

#[tokio::test]
async fn an_update_that_turns_a_pattern_into_a_bad_regex_is_refused() {
    let (_d, app) = open().await;
    let r = add(&app, "gpt-(4", MatchType::Exact, "local").await;
    let before = dump(&app).await;
    let e = update(
        &app,
        Actor::Cli,
        r.id,
        RulePatch {
            match_type: Some(MatchType::Regex),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code, Code::RuleRegexInvalid);
    assert!(e.message.contains("gpt-(4"), "{}", e.message);
    assert_eq!(dump(&app).await, before);
    let e = update(&app, Actor::Cli, r.id, RulePatch::default())
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument);
}

#[tokio::test]
async fn update_changes_and_clears_fields_and_the_router_follows() {
    let (_d, app) = open().await;
    let openai = provider(&app, "openai").await;
    let r = add(&app, "fast", MatchType::Exact, "local").await;
    let saved = update(
        &app,
        Actor::Cli,
        r.id,
        RulePatch {
            target: Some(TargetName::Provider("openai".into())),
            model: Some(Some("gpt-4o-mini".into())),
            fallback: Some(Some(TargetName::Local)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(saved.rule.target, "openai");
    assert_eq!(saved.rule.model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(saved.rule.fallback.as_deref(), Some("local"));
    let route = app.router.route("fast").unwrap();
    assert_eq!(
        route.target,
        crate::routing::Target::Provider {
            id: openai,
            name: "openai".into()
        }
    );
    assert_eq!(route.model, "gpt-4o-mini");
    let saved = update(
        &app,
        Actor::Cli,
        r.id,
        RulePatch {
            model: Some(None),
            fallback: Some(None),
            pattern: Some("fa".into()),
            match_type: Some(MatchType::Prefix),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((saved.rule.model, saved.rule.fallback), (None, None));
    assert_eq!(app.router.route("faster").unwrap().model, "faster");
    assert_router_matches_store(&app, &["fast", "faster", "f"]).await;
}

#[tokio::test]
async fn duplicate_exact_patterns_are_warned_about_but_saved() {
    let (_d, app) = open().await;
    let first = add(&app, "gpt-4o", MatchType::Exact, "local").await;
    let saved = super::add(
        &app,
        Actor::Cli,
        new_rule("gpt-4o", MatchType::Exact, "local"),
    )
    .await
    .unwrap();
    assert_eq!(saved.warnings.len(), 1);
    assert_eq!(saved.warnings[0].code, "duplicate_pattern");
    assert!(
        saved.warnings[0]
            .message
            .contains(&format!("rule {} never matches", saved.rule.id))
    );
    assert_eq!(app.router.route("gpt-4o").unwrap().rule_id, first.id);
    let other = super::add(
        &app,
        Actor::Cli,
        new_rule("gpt-4o", MatchType::Prefix, "local"),
    )
    .await
    .unwrap();
    assert!(
        other.warnings.is_empty(),
        "a prefix is not a duplicate of an exact rule"
    );
}

#[tokio::test]
async fn enable_and_disable_take_effect_and_write_one_audit_row_each() {
    let (_d, app) = open().await;
    let r = add(&app, "m", MatchType::Exact, "local").await;
    let audits = || async { audit_log::Entity::find().count(&app.db).await.unwrap() };
    let n0 = audits().await;
    assert!(
        !set_enabled(&app, Actor::Cli, r.id, false)
            .await
            .unwrap()
            .enabled
    );
    assert!(app.router.route("m").is_none());
    assert_eq!(audits().await, n0 + 1);
    set_enabled(&app, Actor::Cli, r.id, false).await.unwrap();
    assert_eq!(audits().await, n0 + 1, "a no-op wrote an audit row");
    set_enabled(&app, Actor::Cli, r.id, true).await.unwrap();
    assert_eq!(app.router.route("m").unwrap().rule_id, r.id);
    let actions: Vec<String> = audit_log::Entity::find()
        .order_by_asc(audit_log::Column::Id)
        .all(&app.db)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.action)
        .collect();
    assert_eq!(actions, vec!["rule.add", "rule.disable", "rule.enable"]);
}

#[tokio::test]
async fn a_provider_in_use_is_named_with_its_rules() {
    let (_d, app) = open().await;
    let p = provider(&app, "groq").await;
    let q = provider(&app, "spare").await;
    ensure_provider_unused(&app.db, p, "groq").await.unwrap();
    let r1 = add(&app, "llama", MatchType::Prefix, "groq").await;
    let r2 = super::add(
        &app,
        Actor::Cli,
        NewRule {
            fallback: Some(TargetName::Provider("groq".into())),
            ..new_rule("x", MatchType::Exact, "local")
        },
    )
    .await
    .unwrap()
    .rule;
    let e = ensure_provider_unused(&app.db, p, "groq")
        .await
        .unwrap_err();
    assert_eq!(e.code, Code::ProviderInUse);
    assert!(
        e.message.contains(&format!("rule {} (target", r1.id)),
        "{}",
        e.message
    );
    assert!(
        e.message.contains(&format!("rule {} (fallback", r2.id)),
        "{}",
        e.message
    );
    ensure_provider_unused(&app.db, q, "spare").await.unwrap();
    // The schema backs this up: the row cannot go while referenced.
    assert!(
        provider::Entity::delete_by_id(p)
            .exec(&app.db)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn rule_test_explains_the_match_the_local_fallthrough_and_not_found() {
    let (_d, app) = open().await;
    provider(&app, "openai").await;
    local_model(&app, "llama-3.2-1b").await;
    let off = add(&app, "gpt-4o", MatchType::Exact, "local").await;
    set_enabled(&app, Actor::Cli, off.id, false).await.unwrap();
    let mut n = new_rule("gpt-.*", MatchType::Regex, "openai");
    n.fallback = Some(TargetName::Local);
    let on = super::add(&app, Actor::Cli, n).await.unwrap().rule;

    let t = test(&app, "gpt-4o").await.unwrap();
    assert!(t.matched);
    assert_eq!(t.rule.as_ref().unwrap().id, on.id);
    assert_eq!(t.rule.as_ref().unwrap().position, 1);
    assert_eq!(
        (t.target.as_deref(), t.model.as_deref()),
        (Some("openai"), Some("gpt-4o"))
    );
    assert_eq!(t.fallback.as_deref(), Some("local"));
    assert!(t.reason.contains("regex"), "{}", t.reason);
    assert_eq!(
        t.disabled_matches,
        vec![Skipped {
            id: off.id,
            position: 0
        }]
    );

    let t = test(&app, "llama-3.2-1b").await.unwrap();
    assert!(!t.matched && t.code.is_none());
    assert_eq!(t.target.as_deref(), Some("local"));

    let t = test(&app, "nothing").await.unwrap();
    assert!(!t.matched);
    assert_eq!(t.code, Some(Code::ModelNotFound));
    assert_eq!(t.target, None);
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["code"], "model_not_found");
    assert_eq!(json["rule"], serde_json::Value::Null);
}

#[tokio::test]
async fn another_process_write_reaches_the_router_through_refresh() {
    let (dir, app) = open().await;
    let other = App::open(AppOptions {
        data_dir: Some(dir.path().to_path_buf()),
        vault: crate::vault::BackendKind::File,
    })
    .await
    .unwrap();
    add(&other, "shared", MatchType::Exact, "local").await;
    assert!(app.router.route("shared").is_none(), "no refresh yet");
    let watcher = crate::settings::watch_store(&app, std::time::Duration::from_millis(20));
    let started = std::time::Instant::now();
    while app.router.route("shared").is_none() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "never refreshed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    watcher.abort();
    assert!(
        !crate::settings::refresh(&app).await.unwrap(),
        "nothing new to load"
    );
}

// ---- property: random operation sequences keep a dense permutation, the order the
// operations imply, and a router that agrees with the store.

#[derive(Debug, Clone)]
enum Op {
    Add {
        pattern: String,
        m: MatchType,
        at: Option<prop::sample::Index>,
    },
    Remove(prop::sample::Index),
    Move(prop::sample::Index, prop::sample::Index),
    Reorder(Vec<prop::sample::Index>),
    StaleReorder,
    Toggle(prop::sample::Index),
}

fn arb_op() -> impl Strategy<Value = Op> {
    let m = prop_oneof![
        Just(MatchType::Exact),
        Just(MatchType::Prefix),
        Just(MatchType::Regex)
    ];
    prop_oneof![
        4 => ("[ab]{1,3}", m, proptest::option::of(any::<prop::sample::Index>()))
            .prop_map(|(pattern, m, at)| Op::Add { pattern, m, at }),
        2 => any::<prop::sample::Index>().prop_map(Op::Remove),
        2 => (any::<prop::sample::Index>(), any::<prop::sample::Index>()).prop_map(|(a, b)| Op::Move(a, b)),
        1 => prop::collection::vec(any::<prop::sample::Index>(), 8).prop_map(Op::Reorder),
        1 => Just(Op::StaleReorder),
        1 => any::<prop::sample::Index>().prop_map(Op::Toggle),
    ]
}

async fn apply(app: &App, order: &mut Vec<i64>, op: Op) {
    let n = order.len();
    match op {
        Op::Add { pattern, m, at } => {
            let mut new = new_rule(&pattern, m, "local");
            let at = at.map(|i| i.index(n + 1));
            new.position = at.map(|p| p as i64);
            let id = super::add(app, Actor::Cli, new).await.unwrap().rule.id;
            order.insert(at.unwrap_or(n), id);
        }
        Op::Remove(i) if n > 0 => {
            let id = order.remove(i.index(n));
            remove(app, Actor::Cli, id).await.unwrap();
        }
        Op::Move(i, j) if n > 0 => {
            let id = order.remove(i.index(n));
            let to = j.index(n);
            order.insert(to, id);
            move_to(app, Actor::Cli, id, to as i64).await.unwrap();
        }
        Op::Reorder(picks) => {
            // A shuffle driven by the picks (Fisher–Yates).
            let mut new = order.clone();
            for k in (1..n).rev() {
                let j = picks[k % picks.len()].index(k + 1);
                new.swap(k, j);
            }
            reorder(app, Actor::Ui, &new).await.unwrap();
            *order = new;
        }
        Op::StaleReorder => {
            let mut stale = order.clone();
            if stale.pop().is_none() {
                stale.push(1_000_000);
            }
            let e = reorder(app, Actor::Ui, &stale).await.unwrap_err();
            assert_eq!(e.code, Code::RuleOrderConflict);
        }
        Op::Toggle(i) if n > 0 => {
            let id = order[i.index(n)];
            let on = get(app, id).await.unwrap().enabled;
            set_enabled(app, Actor::Cli, id, !on).await.unwrap();
        }
        _ => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_operation_sequences_keep_positions_a_dense_permutation(
        ops in prop::collection::vec(arb_op(), 1..30),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (_d, app) = open().await;
            let mut order = Vec::new();
            for op in ops {
                apply(&app, &mut order, op.clone()).await;
                assert_eq!(ids(&app).await, order, "after {op:?}");
                assert_dense(&app).await;
            }
            assert_router_matches_store(&app, &["a", "ab", "aba", "b", "ba", "bb", "c"]).await;
        });
    }
}
