//! gpt-oss's output format ("harmony"): the answer is a sequence of messages, each a
//! header then a body —
//!
//! ```text
//! <|channel|>analysis<|message|>…reasoning…<|end|>
//! <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"city":"Paris"}<|call|>
//! <|start|>assistant<|channel|>final<|message|>…the answer…<|return|>
//! ```
//!
//! The header names the channel (`analysis` = reasoning, `final` = the answer,
//! `commentary` = text for the user or, with a recipient `to=functions.NAME`, a tool
//! call whose body is its JSON arguments). The recipient may also stand before the
//! channel (`<|start|>assistant to=functions.x<|channel|>commentary …`). The markers are
//! special tokens, so a model whose template speaks harmony is detokenized with them
//! kept (`TextTokenizer::keep_special`) and read here: reasoning becomes thinking, the
//! final and commentary channels text, calls tool calls. Markers split across tokens
//! are held back until they complete or cannot; a body whose header never came is text.

use super::tool_calls::partial_suffix;
use serde_json::Value;

const START: &str = "<|start|>";
const CHANNEL: &str = "<|channel|>";
const MESSAGE: &str = "<|message|>";
const END: &str = "<|end|>";
const CALL: &str = "<|call|>";
const RETURN: &str = "<|return|>";

/// Whether a chat template writes harmony.
pub fn is_harmony_template(source: &str) -> bool {
    source.contains(CHANNEL) && source.contains(MESSAGE)
}

/// The control tokens that end a harmony answer (a tool call waits for its result).
pub const STOP_TOKENS: [&str; 2] = [RETURN, CALL];

#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Thinking(String),
    Text(String),
    Call { name: String, arguments: String },
}

#[derive(Debug, Clone, PartialEq)]
enum Body {
    Thinking,
    Text,
    /// A call to this function; its arguments are collected until the body ends.
    Call(String),
}

#[derive(Debug)]
enum State {
    /// Reading a header (up to `<|message|>`).
    Header,
    Body(Body),
}

#[derive(Debug)]
pub struct HarmonyParser {
    /// The names of the offered tools; a call to anything else is text.
    tools: Vec<String>,
    state: State,
    buf: String,
    /// A call's arguments so far.
    args: String,
}

/// The first of `markers` in `s`: its position and length.
fn find_any(s: &str, markers: &[&str]) -> Option<(usize, usize)> {
    markers
        .iter()
        .filter_map(|m| s.find(m).map(|i| (i, m.len())))
        .min_by_key(|&(i, _)| i)
}

impl HarmonyParser {
    /// Ready for the first header: the prompt ends with `<|start|>assistant`. `tools`:
    /// the names of the offered tools, as for [`super::ToolCallParser`].
    pub fn new(tools: Vec<String>) -> Self {
        HarmonyParser {
            tools,
            state: State::Header,
            buf: String::new(),
            args: String::new(),
        }
    }

    pub fn push(&mut self, text: &str, out: &mut Vec<Out>) {
        self.buf.push_str(text);
        loop {
            match &self.state {
                State::Header => {
                    let Some(i) = self.buf.find(MESSAGE) else {
                        // A header is short; a long run of text with no header is an
                        // answer written without one.
                        if self.buf.len() > 256 && !self.buf.contains(CHANNEL) {
                            self.state = State::Body(Body::Text);
                            continue;
                        }
                        return;
                    };
                    let header = self.buf[..i].to_string();
                    self.buf.drain(..i + MESSAGE.len());
                    self.state = State::Body(read_header(&header));
                }
                State::Body(body) => {
                    let body = body.clone();
                    let ends = [END, CALL, RETURN, START];
                    match find_any(&self.buf, &ends) {
                        Some((i, len)) => {
                            let content: String = self.buf.drain(..i).collect();
                            self.buf.drain(..len);
                            self.emit(&body, content, out);
                            self.close(&body, out);
                            // `<|start|>` opened the next message's header already.
                            self.state = State::Header;
                        }
                        None => {
                            let keep = ends
                                .iter()
                                .map(|m| partial_suffix(&self.buf, m))
                                .max()
                                .unwrap_or(0);
                            let n = self.buf.len() - keep;
                            let content: String = self.buf.drain(..n).collect();
                            self.emit(&body, content, out);
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The end of the generation (a stop token ends it and is not seen as text).
    pub fn finish(&mut self, out: &mut Vec<Out>) {
        let rest = std::mem::take(&mut self.buf);
        match std::mem::replace(&mut self.state, State::Header) {
            State::Body(body) => {
                self.emit(&body, rest, out);
                self.close(&body, out);
            }
            // A header that never reached its body: nothing the user should see, unless
            // it was plain text all along.
            State::Header if !rest.contains(CHANNEL) && !rest.trim().is_empty() => {
                out.push(Out::Text(rest));
            }
            State::Header => {}
        }
    }

    fn emit(&mut self, body: &Body, content: String, out: &mut Vec<Out>) {
        if content.is_empty() {
            return;
        }
        match body {
            Body::Thinking => out.push(Out::Thinking(content)),
            Body::Text => out.push(Out::Text(content)),
            Body::Call(_) => self.args.push_str(&content),
        }
    }

    /// A message ended: a call goes out whole (its arguments must be JSON, or it is
    /// shown as text rather than sent to a tool half-formed); a call to a tool the
    /// request did not offer is not run: its arguments are shown as text.
    fn close(&mut self, body: &Body, out: &mut Vec<Out>) {
        if let Body::Call(name) = body {
            let args = std::mem::take(&mut self.args);
            let trimmed = args.trim();
            let arguments = if trimmed.is_empty() { "{}" } else { trimmed };
            match serde_json::from_str::<Value>(arguments) {
                Ok(v @ Value::Object(_)) if self.tools.contains(name) => out.push(Out::Call {
                    name: name.clone(),
                    arguments: v.to_string(),
                }),
                Ok(v @ Value::Object(_)) => out.push(Out::Text(v.to_string())),
                _ => out.push(Out::Text(args)),
            }
        }
    }
}

/// What a message's body is, from its header (`assistant<|channel|>commentary
/// to=functions.NAME <|constrain|>json`, in either order).
fn read_header(header: &str) -> Body {
    let channel = header
        .split(CHANNEL)
        .nth(1)
        .and_then(|c| c.split_whitespace().next())
        .map(|c| c.split("<|").next().unwrap_or(c))
        .unwrap_or("");
    let recipient = header
        .split_whitespace()
        .chain(header.split(CHANNEL).flat_map(str::split_whitespace))
        .find_map(|w| w.strip_prefix("to="))
        .map(|r| r.split("<|").next().unwrap_or(r));
    match (channel, recipient) {
        (_, Some(r)) => Body::Call(r.strip_prefix("functions.").unwrap_or(r).to_string()),
        ("analysis", None) => Body::Thinking,
        _ => Body::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `text` in pieces of `n` bytes (on char boundaries).
    fn run(text: &str, n: usize) -> Vec<Out> {
        let mut p = HarmonyParser::new(vec!["get_weather".into(), "f".into(), "now".into()]);
        let mut out = Vec::new();
        let chars: Vec<char> = text.chars().collect();
        for chunk in chars.chunks(n) {
            p.push(&chunk.iter().collect::<String>(), &mut out);
        }
        p.finish(&mut out);
        // Merge neighbours of the same kind (streaming splits them).
        let mut merged: Vec<Out> = Vec::new();
        for o in out {
            match (merged.last_mut(), o) {
                (Some(Out::Thinking(a)), Out::Thinking(b)) => a.push_str(&b),
                (Some(Out::Text(a)), Out::Text(b)) => a.push_str(&b),
                (_, o) => merged.push(o),
            }
        }
        merged
    }

    #[test]
    fn reasoning_then_answer_in_any_split() {
        let s = "<|channel|>analysis<|message|>User greets. Reply.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!";
        for n in [1, 2, 3, 7, 1000] {
            assert_eq!(
                run(s, n),
                vec![
                    Out::Thinking("User greets. Reply.".into()),
                    Out::Text("Hello there!".into())
                ],
                "pieces of {n}"
            );
        }
    }

    #[test]
    fn a_tool_call_with_the_recipient_after_or_before_the_channel() {
        let after = "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}";
        let before = "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}<|call|>";
        for s in [after, before] {
            for n in [1, 5, 1000] {
                assert_eq!(
                    run(s, n),
                    vec![
                        Out::Thinking("Need weather.".into()),
                        Out::Call {
                            name: "get_weather".into(),
                            arguments: "{\"city\":\"Paris\"}".into()
                        }
                    ],
                    "{s} in pieces of {n}"
                );
            }
        }
    }

    #[test]
    fn commentary_without_recipient_is_text_and_bad_arguments_are_not_a_call() {
        let s = "<|channel|>commentary<|message|>Let me check.<|end|><|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{not json";
        assert_eq!(run(s, 4), vec![Out::Text("Let me check.{not json".into())]);
        // An empty argument body is an empty object.
        let s = "<|channel|>commentary to=functions.now <|constrain|>json<|message|>";
        assert_eq!(
            run(s, 3),
            vec![Out::Call {
                name: "now".into(),
                arguments: "{}".into()
            }]
        );
    }

    #[test]
    fn text_without_any_header_is_kept_and_an_unfinished_header_is_dropped() {
        assert_eq!(
            run("plain words, no harmony at all", 4),
            vec![Out::Text("plain words, no harmony at all".into())]
        );
        let long = "x".repeat(300);
        assert_eq!(run(&long, 10), vec![Out::Text(long.clone())]);
        assert_eq!(run("<|channel|>analy", 2), vec![]);
        assert!(is_harmony_template("{{ '<|channel|>final<|message|>' }}"));
        assert!(!is_harmony_template("<|im_start|>assistant"));
    }
}
