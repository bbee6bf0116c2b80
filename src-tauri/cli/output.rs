//! Printing results and errors the way interfaces.md promises: human text, or with
//! `--json` exactly one JSON document on stdout; errors as `error[code]: message` on
//! stderr (or `{"error":{"code","message"}}` on stdout with `--json`).

use crate::error::Error;
use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Print `value` as JSON with `--json`, else the human rendering.
    pub fn print<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error[internal]: cannot serialize output: {e}"),
            }
        } else {
            let text = human(value);
            if !text.is_empty() {
                println!("{}", text.trim_end());
            }
        }
    }

    /// Report an error and return its exit code.
    pub fn error(&self, e: &Error) -> i32 {
        tracing::debug!(error = ?e, "command failed");
        if self.json {
            println!("{}", serde_json::json!({ "error": e.to_json() }));
        } else {
            eprintln!("error[{}]: {}", e.code, e.message);
        }
        e.code.exit_code()
    }
}

/// `t` (unix ms) relative to `now`: "never", "just now", "5 min ago", "3 h ago", "2 d ago".
pub fn ago(t: Option<i64>, now: i64) -> String {
    let Some(t) = t else {
        return "never".into();
    };
    match (now - t).max(0) / 60_000 {
        0 => "just now".into(),
        m if m < 120 => format!("{m} min ago"),
        m if m < 2880 => format!("{} h ago", m / 60),
        m => format!("{} d ago", m / 1440),
    }
}
