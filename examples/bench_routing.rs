//! Routing benchmarks (benchmarks.md, "Core"): not a test, run by
//! `scripts/bench-routing.sh`.
//!
//! 1. Route lookup with 10,000 mixed rules (exact / prefix / regex, positions
//!    shuffled): p50/p99 per lookup through `Router::route` (the gateway's call),
//!    against a naive in-order scan of the same rules on the same names.
//! 2. Reorder of 1,000 rules: `settings::rules::reorder` on a real SQLite database
//!    (one transaction: permutation check, one UPDATE, audit row, rule-set compile,
//!    commit, snapshot swap), next to its peer, the cheapest durable write on the
//!    same database (the fsync floor), since disk latency here is shared and noisy.
//!
//! One line per measurement, then a JSON summary as the last line.

use std::hint::black_box;
use std::time::{Duration, Instant};
use switchyard::routing::{LinearScan, MatchType, Matcher, Router, RuleSpec, Target};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

const VENDORS: [&str; 8] = [
    "openai",
    "anthropic",
    "meta",
    "mistral",
    "qwen",
    "google",
    "deepseek",
    "local",
];

/// `n` rules: 40% exact, 30% prefix, 30% regex, looking like real model names, at
/// shuffled positions.
fn mixed_rules(n: usize, rng: &mut Rng) -> Vec<RuleSpec> {
    let mut positions: Vec<i64> = (0..n as i64).collect();
    rng.shuffle(&mut positions);
    (0..n)
        .map(|i| {
            let v = VENDORS[i % VENDORS.len()];
            let (match_type, pattern) = match i % 10 {
                0..=3 => (MatchType::Exact, format!("{v}/model-{i}-{}b", 1 + i % 70)),
                4..=6 => (MatchType::Prefix, format!("{v}/family-{i}-")),
                _ => (
                    MatchType::Regex,
                    format!("{v}/(alpha|beta|gamma)-{i}-[0-9]+b(-instruct)?"),
                ),
            };
            RuleSpec {
                id: i as i64 + 1,
                position: positions[i],
                pattern,
                match_type,
                target: if i % 3 == 0 {
                    Target::Local
                } else {
                    Target::Provider {
                        id: 1 + (i % 4) as i64,
                        name: VENDORS[i % 4].into(),
                    }
                },
                upstream_model: None,
                fallback: None,
                enabled: true,
            }
        })
        .collect()
}

/// Names a gateway would see: a quarter each hitting an exact, a prefix and a regex
/// rule, and a quarter matching nothing.
fn names(n_rules: usize, count: usize, rng: &mut Rng) -> Vec<String> {
    (0..count)
        .map(|k| {
            let i = rng.below(n_rules);
            let v = VENDORS[i % VENDORS.len()];
            match k % 4 {
                0 => {
                    let i = i - i % 10; // an exact rule
                    format!("{}/model-{i}-{}b", VENDORS[i % VENDORS.len()], 1 + i % 70)
                }
                1 => {
                    let i = i - i % 10 + 4; // a prefix rule
                    format!("{}/family-{i}-chat-v2", VENDORS[i % VENDORS.len()])
                }
                2 => {
                    let i = i - i % 10 + 7; // a regex rule
                    format!("{}/beta-{i}-13b-instruct", VENDORS[i % VENDORS.len()])
                }
                _ => format!("{v}/unknown-{i}-model"),
            }
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// Per-call latencies in ns, each call timed alone (the timer's own ~20–40 ns are
/// included, so the figures are upper bounds).
fn time_each(names: &[String], rounds: usize, mut f: impl FnMut(&str)) -> Vec<f64> {
    let mut out = Vec::with_capacity(names.len() * rounds);
    for _ in 0..rounds {
        for n in names {
            let t = Instant::now();
            f(n);
            out.push(t.elapsed().as_nanos() as f64);
        }
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut summary = serde_json::Map::new();

    // ---- 1. lookup with 10,000 mixed rules
    let n_rules = 10_000;
    let rules = mixed_rules(n_rules, &mut rng);
    let t = Instant::now();
    let matcher = Matcher::build(rules.clone(), 1, None).expect("rules compile");
    let build_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("build_10k_rules_ms {build_ms:.1}");
    let router = Router::new(matcher);
    let naive = LinearScan::new(rules).expect("rules compile");
    let queries = names(n_rules, if quick { 400 } else { 2_000 }, &mut rng);

    // Same answers, or the comparison is meaningless.
    let mut hits = 0;
    for q in &queries {
        let (a, b) = (router.route(q), naive.route(q));
        assert_eq!(a, b, "matcher and scan disagree on {q:?}");
        hits += a.is_some() as usize;
    }
    println!("lookup_queries {} hits {hits}", queries.len());

    // Warm the regex automaton's lazy DFA the way a running gateway would be.
    for q in &queries {
        black_box(router.route(q));
    }
    let fast = time_each(&queries, if quick { 5 } else { 25 }, |q| {
        black_box(router.route(black_box(q)));
    });
    let naive_rounds = 1;
    let slow = time_each(&queries, naive_rounds, |q| {
        black_box(naive.route(black_box(q)));
    });
    let (p50, p99) = (percentile(&fast, 0.5), percentile(&fast, 0.99));
    let (n50, n99) = (percentile(&slow, 0.5), percentile(&slow, 0.99));
    println!("lookup_p50_ns {p50:.0}");
    println!("lookup_p99_ns {p99:.0}");
    println!("naive_scan_p50_ns {n50:.0}");
    println!("naive_scan_p99_ns {n99:.0}");
    let ratio = n50 / p50;
    println!("naive_over_compiled_p50_ratio {ratio:.0}");

    // Per kind, so a slow index is visible.
    for (k, kind) in ["exact", "prefix", "regex", "miss"].iter().enumerate() {
        let subset: Vec<String> = queries.iter().skip(k).step_by(4).cloned().collect();
        let lat = time_each(&subset, if quick { 5 } else { 25 }, |q| {
            black_box(router.route(black_box(q)));
        });
        let p = percentile(&lat, 0.5);
        println!("lookup_{kind}_p50_ns {p:.0}");
        summary.insert(format!("lookup_{kind}_p50_ns"), p.round().into());
    }
    summary.insert("rules".into(), n_rules.into());
    summary.insert("build_10k_rules_ms".into(), round1(build_ms));
    summary.insert("lookup_p50_ns".into(), p50.round().into());
    summary.insert("lookup_p99_ns".into(), p99.round().into());
    summary.insert("naive_scan_p50_ns".into(), n50.round().into());
    summary.insert("naive_scan_p99_ns".into(), n99.round().into());
    summary.insert("naive_over_compiled_p50_ratio".into(), ratio.round().into());
    summary.insert("lookup_target_p50_ns".into(), 2000.into());

    // ---- 1b. a catastrophic-looking regex on long adversarial names: time per byte
    // stays flat as the name grows 100x (linear), where a backtracking engine's
    // would explode.
    let evil = Matcher::build(
        vec![RuleSpec {
            id: 1,
            position: 0,
            pattern: "(a+)+$".into(),
            match_type: MatchType::Regex,
            target: Target::Local,
            upstream_model: None,
            fallback: None,
            enabled: true,
        }],
        1,
        None,
    )
    .unwrap();
    for len in [1_000usize, 10_000, 100_000] {
        let name = format!("{}!", "a".repeat(len));
        let best = (0..7)
            .map(|_| {
                let t = Instant::now();
                assert!(black_box(evil.route(black_box(&name))).is_none());
                t.elapsed().as_nanos() as f64
            })
            .fold(f64::INFINITY, f64::min);
        let per_byte = best / len as f64;
        println!("adversarial_regex_{len}_bytes_ns_per_byte {per_byte:.2}");
        summary.insert(
            format!("adversarial_regex_{len}_bytes_ns_per_byte"),
            round2(per_byte),
        );
    }

    // ---- 2. reorder 1,000 rules on a real database
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let r = rt.block_on(reorder_bench(&mut rng, if quick { 5 } else { 21 }));
    let r50 = percentile(&r.reorder, 0.5);
    let f50 = percentile(&r.floor, 0.5);
    let b50 = percentile(&r.build, 0.5);
    println!("reorder_1000_p50_ms {r50:.2}");
    println!("reorder_1000_min_ms {:.2}", r.reorder[0]);
    println!("reorder_1000_max_ms {:.2}", r.reorder.last().unwrap());
    println!("commit_floor_p50_ms {f50:.2}");
    println!("reorder_1000_over_floor_p50_ms {:.2}", r50 - f50);
    println!("rule_set_compile_1000_p50_ms {b50:.2}");
    summary.insert("reorder_1000_p50_ms".into(), round2(r50));
    summary.insert("reorder_1000_min_ms".into(), round2(r.reorder[0]));
    summary.insert(
        "reorder_1000_max_ms".into(),
        round2(*r.reorder.last().unwrap()),
    );
    summary.insert("commit_floor_p50_ms".into(), round2(f50));
    summary.insert("reorder_1000_over_floor_p50_ms".into(), round2(r50 - f50));
    summary.insert("rule_set_compile_1000_p50_ms".into(), round2(b50));
    summary.insert("reorder_target_ms".into(), 50.into());

    println!("{}", serde_json::Value::Object(summary));
}

fn round1(v: f64) -> serde_json::Value {
    ((v * 10.0).round() / 10.0).into()
}
fn round2(v: f64) -> serde_json::Value {
    ((v * 100.0).round() / 100.0).into()
}

/// Sorted timings in ms.
struct ReorderTimes {
    /// `settings::rules::reorder` of all 1,000 rules (the whole write).
    reorder: Vec<f64>,
    /// The peer: the smallest durable write on the same database (begin immediate,
    /// one audit row, commit) — the fsync floor every settings write pays, measured
    /// interleaved so disk noise hits both alike.
    floor: Vec<f64>,
    /// Compiling the 1,000-rule set alone (part of `reorder`).
    build: Vec<f64>,
}

async fn reorder_bench(rng: &mut Rng, iterations: usize) -> ReorderTimes {
    use sea_orm::{
        ConnectionTrait, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
    };
    use switchyard::app::{App, AppOptions};
    use switchyard::settings::rules;
    use switchyard::store::audit::Actor;

    let dir = tempfile::tempdir().unwrap();
    let opts = AppOptions {
        data_dir: Some(dir.path().to_path_buf()),
        vault: switchyard::vault::BackendKind::File,
    };
    // Seed 1,000 mixed rules in one statement (adding them one by one is not what is
    // measured), then open the app as a user would.
    {
        let app = App::open(opts.clone()).await.unwrap();
        let rules = mixed_rules(1_000, rng);
        let values: Vec<String> = rules
            .iter()
            .map(|r| {
                format!(
                    "({}, {}, '{}', '{}', NULL, 1, 0, 0)",
                    r.id,
                    r.position,
                    r.pattern.replace('\'', "''"),
                    r.match_type.as_str()
                )
            })
            .collect();
        app.db
            .execute_raw(Statement::from_string(
                app.db.get_database_backend(),
                format!(
                    "INSERT INTO routing_rules (id, position, pattern, match_type, target_provider_id, enabled, created_at, updated_at) VALUES {}",
                    values.join(",")
                ),
            ))
            .await
            .unwrap();
    }
    let app = App::open(opts).await.unwrap();
    let mut totals = Vec::new();
    let mut floors = Vec::new();
    let mut builds = Vec::new();
    for _ in 0..iterations {
        let mut ids: Vec<i64> = rules::list(&app)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        rng.shuffle(&mut ids);
        let t = Instant::now();
        let after = rules::reorder(&app, Actor::Cli, &ids).await.unwrap();
        totals.push(ms(t.elapsed()));
        assert_eq!(after.iter().map(|r| r.id).collect::<Vec<_>>(), ids);

        let t = Instant::now();
        let txn = app
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await
            .unwrap();
        switchyard::store::audit::record(
            &txn,
            Actor::System,
            "bench.floor",
            None,
            serde_json::json!({}),
        )
        .await
        .unwrap();
        txn.commit().await.unwrap();
        floors.push(ms(t.elapsed()));

        let specs = switchyard::settings::rules::load_specs(&app.db)
            .await
            .unwrap();
        let t = Instant::now();
        black_box(Matcher::build(specs, 0, None).unwrap());
        builds.push(ms(t.elapsed()));
    }
    for v in [&mut totals, &mut floors, &mut builds] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    }
    ReorderTimes {
        reorder: totals,
        floor: floors,
        build: builds,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
