//! Chat templates: the model's Jinja template rendered with `minijinja`, configured
//! the way Hugging Face `apply_chat_template` runs it (trim_blocks, lstrip_blocks, loop
//! controls, Python string/dict methods via minijinja-contrib's pycompat,
//! `raise_exception`, `strftime_now`, and a `tojson` that prints exactly what Python's
//! `json.dumps` does — templates that embed tool schemas depend on it byte for byte).

use super::tool_calls::ToolCallFormat;
use crate::error::{Code, Error, Result};
use minijinja::value::{Kwargs, Serde, Value, ValueKind};
use minijinja::{Environment, ErrorKind};
use serde::{Deserialize, Serialize};

/// One chat message. `content` is text; anything else a template may read
/// (`tool_calls`, `name`, `tool_call_id`, `reasoning_content`…) rides in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: String,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
            extra: Default::default(),
        }
    }
}

/// A compiled chat template.
/// Variables a request sets for templates that read them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PromptSwitches {
    /// Qwen3 / GLM-4.5's thinking switch.
    pub enable_thinking: Option<bool>,
    /// gpt-oss's `reasoning_effort` (`low`, `medium`, `high`), written into its system
    /// message.
    pub reasoning_effort: Option<&'static str>,
}

pub struct ChatTemplate {
    env: Environment<'static>,
    /// Whether the template reads `tools` at all (else offered tools would be dropped).
    takes_tools: bool,
    tool_format: Option<ToolCallFormat>,
    /// Whether the model reasons inside `<think>…</think>` (its template mentions it).
    thinks: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatTemplate")
    }
}

const NAME: &str = "chat";

/// The sandbox a model's chat template runs in. A template is code from whoever made
/// the model; these bound what one render can cost, so a hostile or broken one is a
/// coded error for its request, never an abort of the process (see [`Code::ModelTemplateInvalid`]).
pub mod limits {
    /// minijinja fuel per render: one unit per instruction, and one per 64 bytes the
    /// template produces or processes (output, string building, `tojson`). Real templates
    /// use well under 1 % of it on a long agent conversation.
    pub const FUEL: u64 = 8_000_000;
    /// Nesting of macro calls, includes and recursive loops.
    pub const RECURSION: usize = 64;
    /// The rendered prompt (about 4 M tokens: far beyond any model's context).
    pub const OUTPUT_BYTES: usize = 16 * 1024 * 1024;
    /// `tojson(indent=…)`: Python templates use 2 or 4.
    pub const TOJSON_INDENT: usize = 16;
    /// Width and precision in a `"…".format()` field.
    pub const FORMAT_WIDTH: u64 = 4096;
}

/// A sandbox limit was hit: the template, not the request, is at fault.
fn sandbox_error(what: impl std::fmt::Display) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, format!("{SANDBOX}{what}"))
}

const SANDBOX: &str = "sandbox limit: ";

impl ChatTemplate {
    /// Compile `source`; a syntax error is `model_invalid` (the template ships with the model).
    pub fn new(source: String) -> Result<Self> {
        let mut env = Environment::new();
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .map_err(|e| Error::internal(format!("template syntax: {e}")))?;
        env.set_syntax(syntax);
        env.set_fuel(Some(limits::FUEL));
        env.set_recursion_limit(limits::RECURSION);
        env.set_unknown_method_callback(|state, value, method, args| {
            if method == "format"
                && let Some(fmt) = value.as_str()
            {
                check_format_string(fmt)?;
            }
            minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
        });
        env.add_filter("tojson", tojson);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", |fmt: String| strftime_now(&fmt));
        let tool_format = ToolCallFormat::detect(&source);
        let thinks = source.contains("<think>");
        env.add_template_owned(NAME, source).map_err(|e| {
            Error::new(
                Code::ModelInvalid,
                format!("the model's chat template does not compile: {e}"),
            )
        })?;
        let takes_tools = env
            .get_template(NAME)
            .map(|t| t.undeclared_variables(false).contains("tools"))
            .unwrap_or(false);
        Ok(ChatTemplate {
            env,
            takes_tools,
            tool_format,
            thinks,
        })
    }

    /// Whether the template puts offered tools in front of the model.
    pub fn takes_tools(&self) -> bool {
        self.takes_tools
    }

    /// Whether the model writes its reasoning in `<think>` tags.
    pub fn thinks(&self) -> bool {
        self.thinks
    }

    /// How the model writes tool calls, when the template shows a format we parse.
    pub fn tool_format(&self) -> Option<ToolCallFormat> {
        self.tool_format
    }

    /// Render the conversation. `tools` is the OpenAI-style list of tool definitions
    /// (passed as `tools` to templates that support them). A template that raises
    /// (e.g. "roles must alternate") is the caller's fault: `invalid_request`.
    /// `switches` are passed to templates that read them; `None` leaves a variable
    /// undefined, the template's own default.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        bos_token: Option<&str>,
        eos_token: Option<&str>,
        switches: PromptSwitches,
    ) -> Result<String> {
        let tmpl = self
            .env
            .get_template(NAME)
            .map_err(|e| Error::new(Code::Internal, format!("chat template missing: {e}")))?;
        let mut ctx = minijinja::context! {
            messages => Value::from(Serde(messages)),
            tools => tools.map(|t| Value::from(Serde(t))),
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token.unwrap_or(""),
            eos_token => eos_token.unwrap_or(""),
        };
        if let Some(on) = switches.enable_thinking {
            ctx = minijinja::context! { enable_thinking => on, ..ctx };
        }
        if let Some(effort) = switches.reasoning_effort {
            ctx = minijinja::context! { reasoning_effort => effort, ..ctx };
        }
        // A panic inside the template engine (a bug it has, reached by a hostile
        // template) is this request's error, not the end of the serving thread.
        let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tmpl.render(ctx)))
            .map_err(|_| {
                Error::new(
                    Code::ModelTemplateInvalid,
                    "the model's chat template crashed the template engine",
                )
            })?;
        let out = out.map_err(|e| {
            let mut msg = e.to_string();
            if let Some(d) = e.detail()
                && !msg.contains(d)
            {
                msg = format!("{msg}: {d}");
            }
            let sandbox = e.kind() == ErrorKind::OutOfFuel
                || msg.contains(SANDBOX)
                || msg.contains("recursion limit exceeded");
            if sandbox {
                Error::new(
                    Code::ModelTemplateInvalid,
                    format!("the model's chat template exceeded the sandbox's limits: {msg}"),
                )
            } else {
                Error::new(
                    Code::InvalidRequest,
                    format!("the chat template rejected the messages: {msg}"),
                )
            }
        })?;
        if out.len() > limits::OUTPUT_BYTES {
            return Err(Error::new(
                Code::ModelTemplateInvalid,
                format!(
                    "the model's chat template produced {} MiB of prompt (the limit is {} MiB)",
                    out.len() >> 20,
                    limits::OUTPUT_BYTES >> 20
                ),
            ));
        }
        Ok(out)
    }
}

/// `tojson` as transformers defines it: `json.dumps(x, ensure_ascii=False, indent=indent,
/// separators=separators, sort_keys=sort_keys)`.
fn tojson(v: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<u64> = kwargs.get("indent")?;
    let indent = match indent {
        Some(n) if n > limits::TOJSON_INDENT as u64 => {
            return Err(sandbox_error(format!(
                "tojson indent {n} is larger than {}",
                limits::TOJSON_INDENT
            )));
        }
        n => n.map(|n| n as usize),
    };
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let separators: Option<Vec<String>> = kwargs.get("separators")?;
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = match separators {
        Some(s) if s.len() == 2 => (s[0].clone(), s[1].clone()),
        Some(_) => {
            return Err(minijinja::Error::new(
                ErrorKind::InvalidOperation,
                "tojson separators must be a pair",
            ));
        }
        // Python: (', ', ': ') without indent, (',', ': ') with it.
        None if indent.is_some() => (",".into(), ": ".into()),
        None => (", ".into(), ": ".into()),
    };
    let opts = JsonOpts {
        indent,
        sort_keys: sort_keys.unwrap_or(false),
        item_sep,
        key_sep,
    };
    let mut out = String::new();
    py_json(&v, &opts, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

/// Refuse `"{:>999999999999}".format(x)`-style fields before pycompat's `format` pads
/// to that width (it has no fuel check): widths and precisions are bounded, nested
/// (argument-supplied) widths refused.
fn check_format_string(fmt: &str) -> std::result::Result<(), minijinja::Error> {
    let mut rest = fmt;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        if let Some(literal) = after.strip_prefix('{') {
            rest = literal; // `{{` is a literal brace
            continue;
        }
        let close = after.find('}').unwrap_or(after.len());
        let field = &after[..close];
        if field.contains('{') {
            return Err(sandbox_error("nested format fields"));
        }
        if let Some((_, spec)) = field.split_once(':') {
            for run in spec.split(|c: char| !c.is_ascii_digit()) {
                if !run.is_empty() && run.parse::<u64>().is_ok_and(|n| n <= limits::FORMAT_WIDTH) {
                    continue;
                }
                if !run.is_empty() {
                    return Err(sandbox_error(format!(
                        "format width {run} is larger than {}",
                        limits::FORMAT_WIDTH
                    )));
                }
            }
        }
        rest = after.get(close + 1..).unwrap_or("");
    }
    Ok(())
}

struct JsonOpts {
    indent: Option<usize>,
    sort_keys: bool,
    item_sep: String,
    key_sep: String,
}

fn py_json(
    v: &Value,
    o: &JsonOpts,
    level: usize,
    out: &mut String,
) -> std::result::Result<(), minijinja::Error> {
    if out.len() > limits::OUTPUT_BYTES {
        return Err(sandbox_error(format!(
            "tojson output is larger than {} MiB",
            limits::OUTPUT_BYTES >> 20
        )));
    }
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = o.indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if v.is_integer() {
                out.push_str(&v.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                out.push_str(&py_float(f));
            }
        }
        ValueKind::String | ValueKind::Bytes => {
            let s = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            out.push_str(&serde_json::to_string(&s).unwrap_or_default());
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline(out, level + 1);
                py_json(item, o, level + 1, out)?;
            }
            newline(out, level);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if o.sort_keys {
                keys.sort_by_key(|k| k.to_string());
            }
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(&o.item_sep);
                }
                newline(out, level + 1);
                let ks = k
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| k.to_string());
                out.push_str(&serde_json::to_string(&ks).unwrap_or_default());
                out.push_str(&o.key_sep);
                py_json(&v.get_item(k)?, o, level + 1, out)?;
            }
            newline(out, level);
            out.push('}');
        }
        _ => {
            let s = v.to_string();
            out.push_str(&serde_json::to_string(&s).unwrap_or_default());
        }
    }
    Ok(())
}

/// Python's float repr for the values JSON can hold (`1.0`, `0.5`, `1e-05`).
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == f.trunc() && f.abs() < 1e16 {
        return format!("{f:.1}");
    }
    let s = format!("{f}");
    if f.abs() < 1e-4 || f.abs() >= 1e16 {
        // Python switches to exponent form; match its `1e-05` shape.
        let e = format!("{f:e}");
        if let Some((m, exp)) = e.split_once('e') {
            let exp: i32 = exp.parse().unwrap_or(0);
            let sign = if exp < 0 { '-' } else { '+' };
            return format!("{m}e{sign}{:02}", exp.abs());
        }
    }
    s
}

/// `strftime_now(format)`: today's date in UTC, for templates that print it (Llama 3.x).
fn strftime_now(fmt: &str) -> std::result::Result<String, minijinja::Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(strftime(secs, fmt))
}

/// The subset of `strftime` chat templates use, for a Unix time in UTC.
pub fn strftime(secs: i64, fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('-') => match chars.next() {
                Some('d') => out.push_str(&d.to_string()),
                Some('m') => out.push_str(&m.to_string()),
                Some(o) => {
                    out.push_str("%-");
                    out.push(o);
                }
                None => out.push_str("%-"),
            },
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('Y') => out.push_str(&y.to_string()),
            Some('y') => out.push_str(&format!("{:02}", y.rem_euclid(100))),
            Some('B') => out.push_str(MONTHS[(m - 1) as usize]),
            Some('b') => out.push_str(&MONTHS[(m - 1) as usize][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('H') => out.push_str(&format!("{:02}", rem / 3600)),
            Some('M') => out.push_str(&format!("{:02}", rem % 3600 / 60)),
            Some('S') => out.push_str(&format!("{:02}", rem % 60)),
            Some('%') => out.push('%'),
            Some(o) => {
                out.push('%');
                out.push(o);
            }
            None => out.push('%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// SmolLM2's template (ChatML with an injected default system prompt).
    pub const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_an_injected_system_prompt_renders_like_transformers() {
        let t = ChatTemplate::new(SMOLLM2.into()).unwrap();
        let out = t
            .render(
                &[ChatMessage::new("user", "Hi")],
                None,
                true,
                None,
                None,
                PromptSwitches::default(),
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t
            .render(
                &[
                    ChatMessage::new("system", "S"),
                    ChatMessage::new("user", "U"),
                ],
                None,
                false,
                None,
                None,
                PromptSwitches::default(),
            )
            .unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
        );
    }

    #[test]
    fn enable_thinking_is_set_only_when_asked() {
        // Qwen3's switch, and a template that would treat an undefined value as "off".
        let src = "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}[{{ enable_thinking is defined }}]<think>";
        let t = ChatTemplate::new(src.into()).unwrap();
        assert!(t.thinks());
        let render = |on| {
            let switches = PromptSwitches {
                enable_thinking: on,
                ..Default::default()
            };
            t.render(&[], None, true, None, None, switches).unwrap()
        };
        assert_eq!(render(None), "[False]<think>");
        assert_eq!(render(Some(true)), "[True]<think>");
        assert_eq!(render(Some(false)), "<think>\n\n</think>\n\n[True]<think>");
        assert!(!ChatTemplate::new("{{ messages }}".into()).unwrap().thinks());
    }

    #[test]
    fn reasoning_effort_reaches_templates_that_read_it() {
        // gpt-oss's system message, with its default when the request says nothing.
        let src = "<|start|>system<|message|>Reasoning: {{ reasoning_effort | default('medium') }}<|end|>";
        let t = ChatTemplate::new(src.into()).unwrap();
        let render = |effort| {
            let switches = PromptSwitches {
                reasoning_effort: effort,
                ..Default::default()
            };
            t.render(&[], None, true, None, None, switches).unwrap()
        };
        assert_eq!(
            render(None),
            "<|start|>system<|message|>Reasoning: medium<|end|>"
        );
        assert_eq!(
            render(Some("high")),
            "<|start|>system<|message|>Reasoning: high<|end|>"
        );
    }

    #[test]
    fn whether_a_template_takes_tools_and_how_its_model_calls_them() {
        // Qwen2.5's shape: tools in the system turn, calls in <tool_call> tags.
        let qwen = "{%- if tools %}<|im_start|>system\n<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools>\nFor each call return <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call><|im_end|>\n{%- endif %}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}";
        let t = ChatTemplate::new(qwen.into()).unwrap();
        assert!(t.takes_tools());
        assert_eq!(t.tool_format(), Some(ToolCallFormat::Tagged));
        // A template that reads `tools` only under another name still counts.
        let t = ChatTemplate::new("{% set ts = tools %}{{ ts | length }}".into()).unwrap();
        assert!(t.takes_tools());
        assert_eq!(t.tool_format(), None);
        // SmolLM2's: no place for tools at all.
        let smol = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}";
        let t = ChatTemplate::new(smol.into()).unwrap();
        assert!(!t.takes_tools());
    }

    #[test]
    fn tools_python_methods_and_trim_blocks_work_as_in_hf_templates() {
        let src = "{%- if tools %}\n{%- for t in tools %}\n{{ t | tojson }}\n{%- endfor %}\n{%- endif %}\n{%- for m in messages %}\n[{{ m.role.upper() }}]{{ m.content.strip() }}{% if m.tool_calls is defined %}{{ m.tool_calls[0].function.name }}{% endif %}\n{%- endfor %}";
        let t = ChatTemplate::new(src.into()).unwrap();
        let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "Zürich <city>"}}, "required": ["city"]}, "ratio": 0.5, "n": 2.0}}]);
        let mut call = ChatMessage::new("assistant", "");
        call.extra.insert(
            "tool_calls".into(),
            json!([{"function": {"name": "get_weather", "arguments": {"city": "Bern"}}}]),
        );
        let out = t
            .render(
                &[ChatMessage::new("user", "  weather?  "), call],
                Some(&tools),
                false,
                None,
                None,
                PromptSwitches::default(),
            )
            .unwrap();
        assert_eq!(
            out,
            "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\", \"description\": \"Zürich <city>\"}}, \"required\": [\"city\"]}, \"ratio\": 0.5, \"n\": 2.0}}[USER]weather?[ASSISTANT]get_weather"
        );
    }

    #[test]
    fn tojson_indent_matches_python() {
        let t = ChatTemplate::new("{{ messages[0].extra | tojson(indent=2) }}".into()).unwrap();
        let mut m = ChatMessage::new("user", "");
        m.extra
            .insert("extra".into(), json!({"a": [1, {}], "b": null, "c": []}));
        let out = t
            .render(&[m], None, false, None, None, PromptSwitches::default())
            .unwrap();
        assert_eq!(
            out,
            "{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": null,\n  \"c\": []\n}"
        );
    }

    #[test]
    fn raise_exception_becomes_invalid_request_and_bad_syntax_model_invalid() {
        let t = ChatTemplate::new(
            "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}ok".into(),
        )
        .unwrap();
        let e = t
            .render(
                &[ChatMessage::new("assistant", "x")],
                None,
                true,
                None,
                None,
                PromptSwitches::default(),
            )
            .unwrap_err();
        assert_eq!(e.code, Code::InvalidRequest);
        assert!(
            e.message.contains("Conversation must start with user"),
            "{}",
            e.message
        );
        let e = ChatTemplate::new("{% for %}".into()).unwrap_err();
        assert_eq!(e.code, Code::ModelInvalid);
    }

    fn render_one(source: &str) -> Result<String> {
        ChatTemplate::new(source.into())?.render(
            &[ChatMessage::new("user", "hi")],
            None,
            true,
            None,
            None,
            PromptSwitches::default(),
        )
    }

    /// Template bombs: each would abort the process (allocation failure), spin for
    /// hours or overflow the stack without the sandbox; each is now this request's
    /// `model_template_invalid`, quickly.
    #[test]
    fn hostile_templates_are_a_coded_error_not_an_abort() {
        for bomb in [
            "{{ messages | tojson(indent=1000000000000000000) }}",
            "{{ messages | tojson(indent=17) }}",
            "{{ '{:>999999999999}'.format('x') }}",
            "{{ '{:{}}'.format('x', 99999999999) }}",
            "{{ '{0:.99999999999f}'.format(1.5) }}",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{% set ns = namespace(s='xxxxxxxxxxxxxxxx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
            "{{ 'x' * 99999999 }}{{ 'x' * 99999999 }}",
            "{{ ('x' * 1000) | indent(9999999999999) }}",
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "{% for m in messages recursive %}{{ loop([m, m]) }}{% endfor %}",
        ] {
            let e = render_one(bomb).unwrap_err();
            assert_eq!(e.code, Code::ModelTemplateInvalid, "{bomb}: {e}");
        }
    }

    #[test]
    fn the_sandbox_leaves_real_templates_and_formats_alone() {
        assert_eq!(
            render_one("{{ '{:>6}|{:.2f}|{{x}}'.format('ab', 1.5) }}").unwrap(),
            "    ab|1.50|{x}"
        );
        assert_eq!(
            render_one("{{ {'a': [1]} | tojson(indent=4) }}").unwrap(),
            "{\n    \"a\": [\n        1\n    ]\n}"
        );
        // A long conversation through a ChatML template stays far inside the fuel.
        let long: Vec<ChatMessage> = (0..2000)
            .map(|i| {
                ChatMessage::new(
                    if i % 2 == 0 { "user" } else { "assistant" },
                    "word ".repeat(200),
                )
            })
            .collect();
        let out = ChatTemplate::new(SMOLLM2.into())
            .unwrap()
            .render(&long, None, true, None, None, PromptSwitches::default())
            .unwrap();
        assert!(out.len() > 2000 * 1000, "{}", out.len());
    }

    #[test]
    fn strftime_formats_dates_like_python() {
        // 2024-07-23 14:05:09 UTC was a Tuesday.
        let t = 1_721_743_509;
        assert_eq!(strftime(t, "%d %b %Y"), "23 Jul 2024");
        assert_eq!(
            strftime(t, "%A, %B %-d, %y %H:%M:%S %%"),
            "Tuesday, July 23, 24 14:05:09 %"
        );
        assert_eq!(strftime(0, "%Y-%m-%d %a"), "1970-01-01 Thu");
        assert_eq!(py_float(1e-5), "1e-05");
        assert_eq!(py_float(2.5), "2.5");
    }
}
