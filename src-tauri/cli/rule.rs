//! `switchyard rule …`: the routing rules, in the user's order.

use super::Output;
use crate::app::{App, AppOptions};
use crate::error::{Code, Error, Result};
use crate::routing::MatchType;
use crate::settings::Warning;
use crate::settings::rules::{self, NewRule, Rule, RulePatch, RuleTest, TargetName};
use crate::store::audit::Actor;
use clap::Subcommand;

#[derive(Debug, clap::Args)]
pub struct RuleArgs {
    #[command(subcommand)]
    cmd: RuleCmd,
}

#[derive(Debug, Subcommand)]
enum RuleCmd {
    /// Add a rule (at the end, or at --position)
    Add(AddArgs),
    /// List the rules in order (the first enabled match wins)
    List,
    /// Change fields of a rule (its position stays; see `move`)
    Update(UpdateArgs),
    /// Remove a rule; the rules after it move up
    Remove { id: i64 },
    /// Move a rule to a position (0 = first)
    Move {
        id: i64,
        /// The new position
        #[arg(long = "to", value_name = "POSITION")]
        to: i64,
    },
    /// Set the whole order at once: every rule id exactly once, e.g. `3,1,2`
    Reorder {
        /// The ids in their new order (comma-separated)
        #[arg(value_name = "ID,ID,...", num_args = 1.., required = true, allow_hyphen_values = true)]
        ids: Vec<String>,
    },
    /// Enable a rule
    Enable { id: i64 },
    /// Disable a rule (kept in place, never matches)
    Disable { id: i64 },
    /// Show which rule a model name matches, at what position and why
    Test {
        /// The model name a client would request
        #[arg(allow_hyphen_values = true)]
        model: String,
    },
}

fn parse_match(s: &str) -> std::result::Result<MatchType, String> {
    MatchType::parse(s).ok_or_else(|| format!("{s:?} is not one of exact, prefix, regex"))
}

#[derive(Debug, clap::Args)]
struct AddArgs {
    /// The pattern compared with the requested model name
    #[arg(long, allow_hyphen_values = true)]
    pattern: String,
    /// exact | prefix | regex (a regex must match the whole name)
    #[arg(long = "match", value_name = "exact|prefix|regex", value_parser = parse_match)]
    match_type: MatchType,
    /// `local` or a provider name
    #[arg(long, value_name = "local|PROVIDER")]
    to: String,
    /// The model name to request from the target instead of the requested one
    #[arg(long, value_name = "M")]
    model: Option<String>,
    /// Where to send the request when the target fails: `local` or a provider name
    #[arg(long, value_name = "local|PROVIDER")]
    fallback: Option<String>,
    /// Add the rule disabled
    #[arg(long)]
    disabled: bool,
    /// Insert at this position (0 = first) instead of at the end
    #[arg(long, value_name = "N")]
    position: Option<i64>,
}

#[derive(Debug, clap::Args)]
struct UpdateArgs {
    id: i64,
    #[arg(long, allow_hyphen_values = true)]
    pattern: Option<String>,
    #[arg(long = "match", value_name = "exact|prefix|regex", value_parser = parse_match)]
    match_type: Option<MatchType>,
    #[arg(long, value_name = "local|PROVIDER")]
    to: Option<String>,
    #[arg(long, value_name = "M", conflicts_with = "no_model")]
    model: Option<String>,
    /// Forward the requested model name unchanged
    #[arg(long)]
    no_model: bool,
    #[arg(long, value_name = "local|PROVIDER", conflicts_with = "no_fallback")]
    fallback: Option<String>,
    /// Remove the fallback
    #[arg(long)]
    no_fallback: bool,
    #[arg(long, conflicts_with = "disable")]
    enable: bool,
    #[arg(long)]
    disable: bool,
}

pub async fn run(opts: AppOptions, args: RuleArgs, out: &Output) -> Result<i32> {
    let app = App::open(opts).await?;
    let actor = Actor::Cli;
    match args.cmd {
        RuleCmd::Add(a) => {
            let new = NewRule {
                pattern: a.pattern,
                match_type: a.match_type,
                target: TargetName::parse(&a.to)?,
                model: a.model,
                fallback: a.fallback.as_deref().map(TargetName::parse).transpose()?,
                enabled: !a.disabled,
                position: a.position,
            };
            let saved = rules::add(&app, actor, new).await?;
            warn(out, &saved.warnings);
            out.print(&saved, |s| format!("added {}", describe(&s.rule)));
        }
        RuleCmd::List => {
            let list = rules::list(&app).await?;
            out.print(&list, |l| table(l));
        }
        RuleCmd::Update(a) => {
            let patch = RulePatch {
                pattern: a.pattern,
                match_type: a.match_type,
                target: a.to.as_deref().map(TargetName::parse).transpose()?,
                model: if a.no_model {
                    Some(None)
                } else {
                    a.model.map(Some)
                },
                fallback: if a.no_fallback {
                    Some(None)
                } else {
                    a.fallback
                        .as_deref()
                        .map(TargetName::parse)
                        .transpose()?
                        .map(Some)
                },
                enabled: match (a.enable, a.disable) {
                    (true, _) => Some(true),
                    (_, true) => Some(false),
                    _ => None,
                },
            };
            let saved = rules::update(&app, actor, a.id, patch).await?;
            warn(out, &saved.warnings);
            out.print(&saved, |s| format!("updated {}", describe(&s.rule)));
        }
        RuleCmd::Remove { id } => {
            let removed = rules::remove(&app, actor, id).await?;
            out.print(&removed, |r| format!("removed {}", describe(r)));
        }
        RuleCmd::Move { id, to } => {
            let list = rules::move_to(&app, actor, id, to).await?;
            out.print(&list, |l| table(l));
        }
        RuleCmd::Reorder { ids } => {
            let ids = parse_ids(&ids)?;
            let list = rules::reorder(&app, actor, &ids).await?;
            out.print(&list, |l| table(l));
        }
        RuleCmd::Enable { id } => {
            let r = rules::set_enabled(&app, actor, id, true).await?;
            out.print(&r, |r| format!("enabled {}", describe(r)));
        }
        RuleCmd::Disable { id } => {
            let r = rules::set_enabled(&app, actor, id, false).await?;
            out.print(&r, |r| format!("disabled {}", describe(r)));
        }
        RuleCmd::Test { model } => {
            let t = rules::test(&app, &model).await?;
            warn(out, &t.warnings);
            out.print(&t, render_test);
        }
    }
    Ok(0)
}

/// `3,1,2` (or `3 1 2`, or a mix) → ids. An empty string is the empty order.
fn parse_ids(args: &[String]) -> Result<Vec<i64>> {
    args.iter()
        .flat_map(|a| a.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>().map_err(|_| {
                Error::new(
                    Code::Usage,
                    format!("{s:?} is not a rule id; give the ids in their new order, like 3,1,2"),
                )
            })
        })
        .collect()
}

fn warn(out: &Output, warnings: &[Warning]) {
    if !out.json {
        for w in warnings {
            eprintln!("warning[{}]: {}", w.code, w.message);
        }
    }
}

fn describe(r: &Rule) -> String {
    let mut s = format!(
        "rule {} at position {}: {} {:?} → {}",
        r.id, r.position, r.match_type, r.pattern, r.target
    );
    if let Some(m) = &r.model {
        s.push_str(&format!(" (model {m})"));
    }
    if let Some(f) = &r.fallback {
        s.push_str(&format!(", fallback {f}"));
    }
    if !r.enabled {
        s.push_str(" [disabled]");
    }
    s
}

fn table(rules: &[Rule]) -> String {
    if rules.is_empty() {
        return "no rules: every model name goes to the local model of that name\n(add one with `switchyard rule add --pattern P --match exact|prefix|regex --to local|PROVIDER`)".into();
    }
    let header = [
        "POS", "ID", "MATCH", "PATTERN", "TARGET", "MODEL", "FALLBACK", "ENABLED",
    ];
    let rows: Vec<[String; 8]> = rules
        .iter()
        .map(|r| {
            [
                r.position.to_string(),
                r.id.to_string(),
                r.match_type.to_string(),
                r.pattern.clone(),
                r.target.clone(),
                r.model.clone().unwrap_or_else(|| "-".into()),
                r.fallback.clone().unwrap_or_else(|| "-".into()),
                if r.enabled { "yes" } else { "no" }.into(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut s = line(&header);
    for row in &rows {
        s.push_str(&line(&row.each_ref().map(String::as_str)));
    }
    s
}

fn render_test(t: &RuleTest) -> String {
    let dest = match (&t.target, &t.model) {
        (Some(target), Some(model)) => format!("{:?} → {target} (model {model})", t.requested),
        _ => format!(
            "{:?} → error[{}]",
            t.requested,
            t.code.map(|c| c.as_str()).unwrap_or("none")
        ),
    };
    let mut s = dest;
    if let Some(f) = &t.fallback {
        s.push_str(&format!(", fallback {f}"));
    }
    s.push('\n');
    if let Some(r) = &t.rule {
        s.push_str(&format!("matched: {}\n", describe(r)));
    } else {
        s.push_str("matched: no rule\n");
    }
    s.push_str(&format!("why: {}\n", t.reason));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reorder_ids_accept_commas_spaces_and_the_empty_order() {
        let v = |a: &[&str]| parse_ids(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(v(&["3,1,2"]).unwrap(), vec![3, 1, 2]);
        assert_eq!(v(&["3", "1,2"]).unwrap(), vec![3, 1, 2]);
        assert_eq!(v(&[" 3 , 1 "]).unwrap(), vec![3, 1]);
        assert_eq!(v(&[""]).unwrap(), Vec::<i64>::new());
        assert_eq!(v(&["3,x"]).unwrap_err().code, Code::Usage);
    }
}
