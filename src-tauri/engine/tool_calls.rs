//! Tool calls in a local model's output.
//!
//! A chat template that takes `tools` teaches the model one way to write a call; we
//! recognise the two families our architectures use and turn them back into structured
//! calls, so a client sees `tool_calls` / `tool_use` blocks exactly as from a cloud model:
//!
//! - **tagged** (Qwen2/2.5/3, Hermes-style fine-tunes, SmolLM3):
//!   `<tool_call>{"name": "get_weather", "arguments": {"city": "Bern"}}</tool_call>`,
//!   anywhere in the answer, any number of times;
//! - **bare JSON** (Llama 3.1/3.2): the whole answer is one object
//!   `{"name": "get_weather", "parameters": {...}}` (optionally after `<|python_tag|>`),
//!   or several separated by `;`;
//! - **JSON array** (Mistral): the whole answer is `[{"name": …, "arguments": {…}}, …]`
//!   (after the `[TOOL_CALLS]` control token, which the detokenizer leaves out).
//!
//! The parser is fed text as the detokenizer produces it and yields text and calls in
//! order. It holds back only what may still turn into a call (a possible opening tag, or
//! an answer that so far looks like JSON) and never loses text: anything that does not
//! parse as a call to one of the offered tools comes out verbatim as text.

use serde_json::Value;

/// How a model writes tool calls (decided from its chat template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolCallFormat {
    Tagged,
    /// GLM-4.5: `<tool_call>NAME` then `<arg_key>K</arg_key><arg_value>V</arg_value>`
    /// pairs, `</tool_call>`; a value is JSON when it parses as JSON, else a string.
    TaggedArgs,
    BareJson,
    JsonArray,
}

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";
const TOOL_CALLS: &str = "[TOOL_CALLS]";
const ARG_KEY: &str = "<arg_key>";
const ARG_KEY_END: &str = "</arg_key>";
const ARG_VALUE: &str = "<arg_value>";
const ARG_VALUE_END: &str = "</arg_value>";

impl ToolCallFormat {
    /// The format a chat template asks for, if any we know.
    pub fn detect(template_source: &str) -> Option<Self> {
        if template_source.contains(OPEN) && template_source.contains(ARG_KEY) {
            Some(ToolCallFormat::TaggedArgs)
        } else if template_source.contains(OPEN) {
            Some(ToolCallFormat::Tagged)
        } else if template_source.contains("\"parameters\"")
            && (template_source.contains("<|python_tag|>")
                || template_source.contains("ipython")
                || template_source.contains("<|eom_id|>"))
        {
            Some(ToolCallFormat::BareJson)
        } else if template_source.contains(TOOL_CALLS) {
            Some(ToolCallFormat::JsonArray)
        } else {
            None
        }
    }

    /// The marker that may precede a whole-answer call (when the detokenizer keeps it).
    fn marker(self) -> &'static str {
        match self {
            ToolCallFormat::JsonArray => TOOL_CALLS,
            _ => PYTHON_TAG,
        }
    }
}

/// One piece of the answer, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Text(String),
    /// A call: the tool's name and its arguments as a JSON object text.
    Call {
        name: String,
        arguments: String,
    },
}

#[derive(Debug)]
enum State {
    /// Plain text; `buf` holds a tail that may be the start of an opening tag.
    Text,
    /// Inside `<tool_call>…`; `buf` holds the body so far.
    InTag,
    /// The answer so far (leading whitespace and all) may be a bare-JSON call.
    MaybeJson,
}

#[derive(Debug)]
pub struct ToolCallParser {
    format: ToolCallFormat,
    tools: Vec<String>,
    state: State,
    buf: String,
}

impl ToolCallParser {
    /// `tools`: the names of the offered tools; a "call" to anything else is text.
    pub fn new(format: ToolCallFormat, tools: Vec<String>) -> Self {
        let state = match format {
            ToolCallFormat::Tagged | ToolCallFormat::TaggedArgs => State::Text,
            ToolCallFormat::BareJson | ToolCallFormat::JsonArray => State::MaybeJson,
        };
        ToolCallParser {
            format,
            tools,
            state,
            buf: String::new(),
        }
    }

    pub fn push(&mut self, text: &str, out: &mut Vec<Piece>) {
        self.buf.push_str(text);
        loop {
            match self.state {
                State::Text
                    if matches!(
                        self.format,
                        ToolCallFormat::Tagged | ToolCallFormat::TaggedArgs
                    ) =>
                {
                    if let Some(at) = self.buf.find(OPEN) {
                        let before: String = self.buf.drain(..at).collect();
                        self.text(before, out);
                        self.buf.drain(..OPEN.len());
                        self.state = State::InTag;
                        continue;
                    }
                    // Keep back the longest tail that could still become `<tool_call>`.
                    let keep = partial_suffix(&self.buf, OPEN);
                    let emit: String = self.buf.drain(..self.buf.len() - keep).collect();
                    self.text(emit, out);
                    return;
                }
                State::Text => {
                    let all = std::mem::take(&mut self.buf);
                    self.text(all, out);
                    return;
                }
                State::InTag => {
                    let Some(at) = self.buf.find(CLOSE) else {
                        return;
                    };
                    let body: String = self.buf.drain(..at).collect();
                    self.buf.drain(..CLOSE.len());
                    match self.call(&body) {
                        Some(call) => out.push(call),
                        None => self.text(format!("{OPEN}{body}{CLOSE}"), out),
                    }
                    self.state = State::Text;
                }
                State::MaybeJson => {
                    let marker = self.format.marker();
                    let open = if self.format == ToolCallFormat::JsonArray {
                        '['
                    } else {
                        '{'
                    };
                    let t = self.buf.trim_start();
                    let t = t.strip_prefix(marker).unwrap_or(t).trim_start();
                    let could_be = t.is_empty()
                        || t.starts_with(open)
                        || (marker.starts_with(self.buf.trim_start())
                            && !self.buf.trim_start().is_empty());
                    if could_be {
                        return;
                    }
                    self.state = State::Text;
                }
            }
        }
    }

    /// The end of the answer: settle what is held back.
    pub fn finish(&mut self, out: &mut Vec<Piece>) {
        let rest = std::mem::take(&mut self.buf);
        match self.state {
            State::Text => self.text(rest, out),
            // An unclosed call (the model stopped at its end-of-turn token instead of
            // writing the closing tag) still counts when its body is a whole call.
            State::InTag => match self.call(&rest) {
                Some(call) => out.push(call),
                None => self.text(format!("{OPEN}{rest}"), out),
            },
            State::MaybeJson => {
                let t = rest.trim();
                let t = t.strip_prefix(self.format.marker()).unwrap_or(t).trim();
                let calls = if self.format == ToolCallFormat::JsonArray {
                    self.calls_in_array(t)
                } else {
                    self.calls_in(t)
                };
                match calls {
                    Some(calls) if !calls.is_empty() => out.extend(calls),
                    _ => self.text(rest, out),
                }
            }
        }
        self.state = State::Text;
    }

    fn text(&self, text: String, out: &mut Vec<Piece>) {
        if text.is_empty() {
            return;
        }
        match out.last_mut() {
            Some(Piece::Text(t)) => t.push_str(&text),
            _ => out.push(Piece::Text(text)),
        }
    }

    /// GLM's `NAME <arg_key>K</arg_key> <arg_value>V</arg_value> …`, naming an offered tool.
    fn args_call(&self, body: &str) -> Option<Piece> {
        let (name, mut rest) = match body.find(ARG_KEY) {
            Some(i) => (body[..i].trim(), &body[i..]),
            None => (body.trim(), ""),
        };
        if !self.tools.iter().any(|t| t == name) {
            return None;
        }
        let mut args = serde_json::Map::new();
        loop {
            rest = rest.trim_start();
            if rest.is_empty() {
                break;
            }
            let key_start = rest.strip_prefix(ARG_KEY)?;
            let (key, after) = key_start.split_once(ARG_KEY_END)?;
            let value_start = after.trim_start().strip_prefix(ARG_VALUE)?;
            let (value, after) = value_start.split_once(ARG_VALUE_END)?;
            let v = serde_json::from_str::<Value>(value.trim())
                .unwrap_or_else(|_| Value::String(value.to_string()));
            args.insert(key.trim().to_string(), v);
            rest = after;
        }
        Some(Piece::Call {
            name: name.to_string(),
            arguments: Value::Object(args).to_string(),
        })
    }

    /// `{"name": …, "arguments"|"parameters": {…} | "…json…"}` naming an offered tool.
    fn call(&self, body: &str) -> Option<Piece> {
        if self.format == ToolCallFormat::TaggedArgs {
            return self.args_call(body);
        }
        let v: Value = serde_json::from_str(body.trim()).ok()?;
        let obj = v.as_object()?;
        let name = obj.get("name")?.as_str()?;
        if !self.tools.iter().any(|t| t == name) {
            return None;
        }
        let args = match obj.get("arguments").or_else(|| obj.get("parameters")) {
            None | Some(Value::Null) => Value::Object(Default::default()),
            // Some models write the arguments as a JSON string, as the OpenAI wire does.
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok()?,
            Some(v) => v.clone(),
        };
        if !args.is_object() {
            return None;
        }
        Some(Piece::Call {
            name: name.to_string(),
            arguments: args.to_string(),
        })
    }

    /// A JSON array of calls, and nothing else.
    fn calls_in_array(&self, s: &str) -> Option<Vec<Piece>> {
        let items: Vec<Value> = serde_json::from_str(s).ok()?;
        let calls: Option<Vec<Piece>> = items.iter().map(|v| self.call(&v.to_string())).collect();
        calls.filter(|c| !c.is_empty())
    }

    /// One or more calls, separated by `;` or whitespace, and nothing else.
    fn calls_in(&self, mut s: &str) -> Option<Vec<Piece>> {
        let mut calls = Vec::new();
        loop {
            s = s.trim_start().trim_start_matches(';').trim_start();
            if s.is_empty() {
                return (!calls.is_empty()).then_some(calls);
            }
            let mut values = serde_json::Deserializer::from_str(s).into_iter::<Value>();
            values.next()?.ok()?;
            let end = values.byte_offset();
            calls.push(self.call(&s[..end])?);
            s = &s[end..];
        }
    }
}

/// The length of the longest suffix of `s` that is a proper prefix of `tag`.
pub(crate) fn partial_suffix(s: &str, tag: &str) -> usize {
    (1..tag.len().min(s.len() + 1))
        .rev()
        .find(|&n| s.is_char_boundary(s.len() - n) && tag.starts_with(&s[s.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(format: ToolCallFormat, chunks: &[&str]) -> Vec<Piece> {
        let mut p = ToolCallParser::new(format, vec!["get_weather".into(), "add".into()]);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        p.finish(&mut out);
        // Adjacent text pieces from different pushes are one piece for comparison.
        let mut merged: Vec<Piece> = Vec::new();
        for piece in out {
            match (merged.last_mut(), piece) {
                (Some(Piece::Text(a)), Piece::Text(b)) => a.push_str(&b),
                (_, piece) => merged.push(piece),
            }
        }
        merged
    }

    fn text(s: &str) -> Piece {
        Piece::Text(s.into())
    }

    fn call(name: &str, args: &str) -> Piece {
        Piece::Call {
            name: name.into(),
            arguments: args.into(),
        }
    }

    /// Every way of cutting `s` into two or three chunks gives the same pieces.
    fn all_splits(format: ToolCallFormat, s: &str, want: &[Piece]) {
        let cuts: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
        for &i in &cuts {
            for &j in cuts.iter().filter(|&&j| j >= i) {
                let got = run(format, &[&s[..i], &s[i..j], &s[j..]]);
                assert_eq!(got, want, "split at {i}/{j} of {s:?}");
            }
        }
    }

    #[test]
    fn tagged_calls_between_text_in_any_chunking() {
        all_splits(
            ToolCallFormat::Tagged,
            "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Zürich\"}}\n</tool_call>",
            &[
                text("Let me check.\n"),
                call("get_weather", r#"{"city":"Zürich"}"#),
            ],
        );
        all_splits(
            ToolCallFormat::Tagged,
            "<tool_call>{\"name\":\"add\",\"arguments\":{\"a\":1}}</tool_call>\n<tool_call>{\"name\":\"add\",\"arguments\":\"{\\\"a\\\":2}\"}</tool_call> done",
            &[
                call("add", r#"{"a":1}"#),
                text("\n"),
                call("add", r#"{"a":2}"#),
                text(" done"),
            ],
        );
    }

    #[test]
    fn tagged_text_that_only_looks_like_a_tag_is_kept() {
        all_splits(
            ToolCallFormat::Tagged,
            "a <tool_ca b <tool <x>",
            &[text("a <tool_ca b <tool <x>")],
        );
        // Unknown tool, broken JSON, arguments not an object: verbatim text.
        for body in [
            r#"{"name": "rm_rf", "arguments": {}}"#,
            r#"{"name": "add", "arguments": {"#,
            r#"{"name": "add", "arguments": [1]}"#,
            "not json",
        ] {
            let s = format!("x<tool_call>{body}</tool_call>y");
            assert_eq!(run(ToolCallFormat::Tagged, &[&s]), vec![text(&s)]);
        }
    }

    #[test]
    fn tagged_unclosed_call_at_the_end() {
        assert_eq!(
            run(
                ToolCallFormat::Tagged,
                &["<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n"]
            ),
            vec![call("add", r#"{"a":1}"#)]
        );
        assert_eq!(
            run(
                ToolCallFormat::Tagged,
                &["ok <tool_call>{\"name\": \"add\""]
            ),
            vec![text("ok <tool_call>{\"name\": \"add\"")]
        );
    }

    #[test]
    fn text_goes_out_as_soon_as_it_cannot_be_a_tag() {
        let mut p = ToolCallParser::new(ToolCallFormat::Tagged, vec!["add".into()]);
        let mut out = Vec::new();
        p.push("Hello <to", &mut out);
        assert_eq!(out, vec![text("Hello ")]);
        p.push("day", &mut out);
        assert_eq!(out, vec![text("Hello <today")]);
    }

    #[test]
    fn bare_json_calls() {
        all_splits(
            ToolCallFormat::BareJson,
            " {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Bern\"}}",
            &[call("get_weather", r#"{"city":"Bern"}"#)],
        );
        all_splits(
            ToolCallFormat::BareJson,
            "<|python_tag|>{\"name\": \"add\", \"parameters\": {\"a\": \"x;y\"}}; {\"name\": \"add\", \"parameters\": {\"a\": 2}}",
            &[call("add", r#"{"a":"x;y"}"#), call("add", r#"{"a":2}"#)],
        );
        // JSON that is not a call, and prose, stay text.
        all_splits(
            ToolCallFormat::BareJson,
            "{\"answer\": 42}",
            &[text("{\"answer\": 42}")],
        );
        all_splits(
            ToolCallFormat::BareJson,
            "The weather is fine.",
            &[text("The weather is fine.")],
        );
    }

    #[test]
    fn json_array_calls() {
        all_splits(
            ToolCallFormat::JsonArray,
            "[{\"name\": \"add\", \"arguments\": {\"a\": 1}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Bern\"}}]",
            &[
                call("add", r#"{"a":1}"#),
                call("get_weather", r#"{"city":"Bern"}"#),
            ],
        );
        all_splits(
            ToolCallFormat::JsonArray,
            "[TOOL_CALLS] [{\"name\": \"add\", \"arguments\": {}}]",
            &[call("add", "{}")],
        );
        // Not calls: an empty array, a list of numbers, an unknown tool, prose.
        for s in [
            "[]",
            "[1, 2]",
            "[{\"name\": \"rm\", \"arguments\": {}}]",
            "Sure: [1]",
        ] {
            all_splits(ToolCallFormat::JsonArray, s, &[text(s)]);
        }
        assert_eq!(
            ToolCallFormat::detect(
                "{%- if message.tool_calls %}[TOOL_CALLS][{{ calls }}]{% endif %}"
            ),
            Some(ToolCallFormat::JsonArray)
        );
    }

    #[test]
    fn bare_json_prose_is_not_held_back() {
        let mut p = ToolCallParser::new(ToolCallFormat::BareJson, vec!["add".into()]);
        let mut out = Vec::new();
        p.push("  ", &mut out);
        assert!(out.is_empty(), "whitespace may still precede a call");
        p.push("Sure", &mut out);
        assert_eq!(out, vec![text("  Sure")]);
    }

    #[test]
    fn formats_are_detected_from_templates() {
        assert_eq!(
            ToolCallFormat::detect("{%- if tools %}<tools>{{ t }}</tools> <tool_call>"),
            Some(ToolCallFormat::Tagged)
        );
        assert_eq!(
            ToolCallFormat::detect(
                "{{- '<|start_header_id|>ipython<|end_header_id|>' }} \"parameters\": dictionary"
            ),
            Some(ToolCallFormat::BareJson)
        );
        assert_eq!(
            ToolCallFormat::detect("{% for m in messages %}{{ m.content }}{% endfor %}"),
            None
        );
    }

    #[test]
    fn glm_calls_carry_their_arguments_as_key_value_tags() {
        let glm = "{% if tools %}<tool_call>{{ name }}<arg_key>k</arg_key><arg_value>v</arg_value></tool_call>{% endif %}";
        assert_eq!(
            ToolCallFormat::detect(glm),
            Some(ToolCallFormat::TaggedArgs)
        );
        let got = run(
            ToolCallFormat::TaggedArgs,
            &[
                "Checking.<tool_",
                "call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>",
                "\n<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n</tool_call>",
                "<tool_call>add</tool_call>",
            ],
        );
        assert_eq!(
            got,
            vec![
                Piece::Text("Checking.".into()),
                call("get_weather", r#"{"city":"Paris","days":3}"#),
                call("add", "{}"),
            ]
        );
        // Not an offered tool, or a broken pair: the text as written.
        let got = run(
            ToolCallFormat::TaggedArgs,
            &["<tool_call>rm<arg_key>path</arg_key></tool_call>"],
        );
        assert_eq!(
            got,
            vec![Piece::Text(
                "<tool_call>rm<arg_key>path</arg_key></tool_call>".into()
            )]
        );
    }
}
