//! The upstream `chat.completion.chunk`, as the stream decoder reads it.
//!
//! Every chunk of every translated stream is read here (Anthropic and Responses clients
//! routed to a chat-only upstream), and most carry a few words of text. serde_json's
//! generic reader spends ~0.5 µs on such a chunk; [`read`] first tries a scanner made
//! for the shapes servers send — an object of strings, integers and `null`s, with
//! `choices`, `delta`, `tool_calls` and `usage` where they belong — and hands anything
//! else (nested objects it does not know, a key with escapes, a duplicate field, a
//! mid-stream `error`, logprobs, anything malformed) to serde, which decides, with its
//! own error message. The scanner only ever answers what serde would: the tests hold
//! the two equal over servers' real chunks and many thousands of mutations of them.

use super::wire::{ChatUsage, ChoiceLogprobs, CompletionTokensDetails, FunctionDelta};
use super::wire::{PromptTokensDetails, ToolCallDelta};
use serde::Deserialize;
use serde_json::Value;
use std::borrow::Cow;

/// What the decoder reads of a chunk. Strings borrow from the event's text where they
/// can (no escapes).
#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
#[serde(default)]
pub(super) struct ChunkIn<'a> {
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    #[serde(borrow)]
    pub model: Cow<'a, str>,
    #[serde(borrow)]
    pub choices: Vec<ChoiceIn<'a>>,
    /// Absent unless the client asked for usage; then `null` on every chunk but the last.
    pub usage: Option<ChatUsage>,
    /// A mid-stream error object some servers send instead of a chunk.
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
#[serde(default)]
pub(super) struct ChoiceIn<'a> {
    pub index: u32,
    #[serde(borrow)]
    pub delta: DeltaIn<'a>,
    pub logprobs: Option<ChoiceLogprobs>,
    #[serde(borrow)]
    pub finish_reason: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[cfg_attr(test, derive(PartialEq))]
#[serde(default)]
pub(super) struct DeltaIn<'a> {
    #[serde(borrow)]
    pub content: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub reasoning_content: Option<Cow<'a, str>>,
    /// What some servers (OpenRouter, vLLM) call `reasoning_content`.
    #[serde(borrow)]
    pub reasoning: Option<Cow<'a, str>>,
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(borrow)]
    pub refusal: Option<Cow<'a, str>>,
}

/// Read one chunk's JSON.
pub(super) fn read(data: &str) -> serde_json::Result<ChunkIn<'_>> {
    match scan(data) {
        Some(chunk) => Ok(chunk),
        None => serde_json::from_str(data),
    }
}

/// The scanner: `None` for anything it does not take (serde then reads it).
fn scan(data: &str) -> Option<ChunkIn<'_>> {
    let mut c = Cursor { s: data, i: 0 };
    let mut chunk = ChunkIn::default();
    let mut seen = Seen::default();
    c.members(|c, key| {
        match key {
            "id" => {
                seen.once(0)?;
                chunk.id = c.string()?;
            }
            "model" => {
                seen.once(1)?;
                chunk.model = c.string()?;
            }
            "choices" => {
                seen.once(2)?;
                c.elements(|c| {
                    chunk.choices.push(choice(c)?);
                    Some(())
                })?;
            }
            "usage" => {
                seen.once(3)?;
                chunk.usage = if c.null() { None } else { Some(usage(c)?) };
            }
            "error" => {
                seen.once(4)?;
                c.null().then_some(())?;
            }
            _ => c.scalar()?,
        }
        Some(())
    })?;
    c.ws();
    (c.i == data.len()).then_some(chunk)
}

fn choice<'a>(c: &mut Cursor<'a>) -> Option<ChoiceIn<'a>> {
    let mut out = ChoiceIn::default();
    let mut seen = Seen::default();
    c.members(|c, key| {
        match key {
            "index" => {
                seen.once(0)?;
                out.index = u32::try_from(c.u64()?).ok()?;
            }
            "delta" => {
                seen.once(1)?;
                out.delta = delta(c)?;
            }
            "logprobs" => {
                seen.once(2)?;
                c.null().then_some(())?;
            }
            "finish_reason" => {
                seen.once(3)?;
                out.finish_reason = c.opt_string()?;
            }
            _ => c.scalar()?,
        }
        Some(())
    })?;
    Some(out)
}

fn delta<'a>(c: &mut Cursor<'a>) -> Option<DeltaIn<'a>> {
    let mut out = DeltaIn::default();
    let mut seen = Seen::default();
    c.members(|c, key| {
        match key {
            "content" => {
                seen.once(0)?;
                out.content = c.opt_string()?;
            }
            "reasoning_content" => {
                seen.once(1)?;
                out.reasoning_content = c.opt_string()?;
            }
            "reasoning" => {
                seen.once(2)?;
                out.reasoning = c.opt_string()?;
            }
            "refusal" => {
                seen.once(3)?;
                out.refusal = c.opt_string()?;
            }
            "tool_calls" => {
                seen.once(4)?;
                out.tool_calls = if c.null() {
                    None
                } else {
                    let mut calls = Vec::new();
                    c.elements(|c| {
                        calls.push(tool_call(c)?);
                        Some(())
                    })?;
                    Some(calls)
                };
            }
            _ => c.scalar()?,
        }
        Some(())
    })?;
    Some(out)
}

fn tool_call(c: &mut Cursor<'_>) -> Option<ToolCallDelta> {
    let mut out = ToolCallDelta::default();
    let mut seen = Seen::default();
    c.members(|c, key| {
        match key {
            "index" => {
                seen.once(0)?;
                out.index = match c.opt_u64()? {
                    Some(i) => Some(u32::try_from(i).ok()?),
                    None => None,
                };
            }
            "id" => {
                seen.once(1)?;
                out.id = c.opt_string()?.map(Cow::into_owned);
            }
            "type" => {
                seen.once(2)?;
                out.kind = c.opt_string()?.map(Cow::into_owned);
            }
            "function" => {
                seen.once(3)?;
                out.function = if c.null() { None } else { Some(function(c)?) };
            }
            _ => c.scalar()?,
        }
        Some(())
    })?;
    Some(out)
}

fn function(c: &mut Cursor<'_>) -> Option<FunctionDelta> {
    let mut out = FunctionDelta::default();
    let mut seen = Seen::default();
    c.members(|c, key| {
        match key {
            "name" => {
                seen.once(0)?;
                out.name = c.opt_string()?.map(Cow::into_owned);
            }
            "arguments" => {
                seen.once(1)?;
                out.arguments = c.opt_string()?.map(Cow::into_owned);
            }
            _ => c.scalar()?,
        }
        Some(())
    })?;
    Some(out)
}

fn usage(c: &mut Cursor<'_>) -> Option<ChatUsage> {
    let mut out = ChatUsage::default();
    let mut seen = Seen::default();
    c.members(|c, key| {
        match key {
            "prompt_tokens" => {
                seen.once(0)?;
                out.prompt_tokens = c.u64()?;
            }
            "completion_tokens" => {
                seen.once(1)?;
                out.completion_tokens = c.u64()?;
            }
            "total_tokens" => {
                seen.once(2)?;
                out.total_tokens = c.u64()?;
            }
            "prompt_tokens_details" => {
                seen.once(3)?;
                out.prompt_tokens_details = if c.null() {
                    None
                } else {
                    Some(PromptTokensDetails {
                        cached_tokens: c.one_count("cached_tokens")?,
                    })
                };
            }
            "completion_tokens_details" => {
                seen.once(4)?;
                out.completion_tokens_details = if c.null() {
                    None
                } else {
                    Some(CompletionTokensDetails {
                        reasoning_tokens: c.one_count("reasoning_tokens")?,
                    })
                };
            }
            _ => c.scalar()?,
        }
        Some(())
    })?;
    Some(out)
}

/// Which of an object's fields were read (serde refuses a field given twice).
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn once(&mut self, field: u32) -> Option<()> {
        let bit = 1 << field;
        if self.0 & bit != 0 {
            return None;
        }
        self.0 |= bit;
        Some(())
    }
}

/// A position in the chunk's text. Every method answers `None` for what it does not
/// take, leaving the chunk to serde.
struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.s.as_bytes()
    }

    /// Skip JSON whitespace.
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.bytes().get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> Option<()> {
        (self.peek()? == b).then(|| self.i += 1)
    }

    /// Consume `word` if it is next.
    fn word(&mut self, word: &[u8]) -> bool {
        let found = self.bytes()[self.i..].starts_with(word);
        if found {
            self.i += word.len();
        }
        found
    }

    /// Consume a `null` if one is next.
    fn null(&mut self) -> bool {
        self.peek() == Some(b'n') && self.word(b"null")
    }

    /// An object: `each` reads the value of every member, given its key.
    fn members(&mut self, mut each: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            // A key with escapes is left to serde.
            let Cow::Borrowed(key) = self.string()? else {
                return None;
            };
            self.eat(b':')?;
            each(self, key)?;
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An array: `each` reads every element.
    fn elements(&mut self, mut each: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        loop {
            each(self)?;
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An object of counts of which only `name` is kept (`null` = absent).
    fn one_count(&mut self, name: &str) -> Option<Option<u64>> {
        let mut out = None;
        let mut seen = Seen::default();
        self.members(|c, key| {
            if key == name {
                seen.once(0)?;
                out = c.opt_u64()?;
                Some(())
            } else {
                c.scalar()
            }
        })?;
        Some(out)
    }

    /// A string, borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let b = self.bytes();
        let start = self.i;
        let mut i = start;
        loop {
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(Cow::Borrowed(&self.s[start..i]));
                }
                b'\\' => break,
                0..=0x1f => return None,
                _ => i += 1,
            }
        }
        // `i` is at a backslash: ASCII, so a char boundary, like every `i` below.
        let mut out = String::with_capacity(i - start + 16);
        out.push_str(&self.s[start..i]);
        loop {
            match *b.get(i)? {
                b'"' => {
                    self.i = i + 1;
                    return Some(Cow::Owned(out));
                }
                b'\\' => {
                    let (ch, next) = escape(b, i + 1)?;
                    out.push(ch);
                    i = next;
                }
                0..=0x1f => return None,
                _ => {
                    let run = i;
                    while b
                        .get(i)
                        .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
                    {
                        i += 1;
                    }
                    out.push_str(&self.s[run..i]);
                }
            }
        }
    }

    fn opt_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.null() {
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A non-negative integer (serde refuses a fraction, an exponent or a sign for
    /// these fields; so does this, by leaving them to it).
    fn u64(&mut self) -> Option<u64> {
        self.ws();
        let b = self.bytes();
        let start = self.i;
        let mut i = start;
        let mut n: u64 = 0;
        while let Some(d @ b'0'..=b'9') = b.get(i).copied() {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            i += 1;
        }
        let digits = i - start;
        if digits == 0
            || (digits > 1 && b[start] == b'0')
            || matches!(b.get(i), Some(b'.' | b'e' | b'E'))
        {
            return None;
        }
        self.i = i;
        Some(n)
    }

    fn opt_u64(&mut self) -> Option<Option<u64>> {
        if self.null() {
            return Some(None);
        }
        self.u64().map(Some)
    }

    /// Skip a string, number, `true`, `false` or `null` (the value of a field the
    /// decoder does not read). Objects and arrays there are left to serde.
    fn scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'n' => self.word(b"null").then_some(()),
            b't' => self.word(b"true").then_some(()),
            b'f' => self.word(b"false").then_some(()),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    /// Skip a number, by JSON's grammar.
    fn number(&mut self) -> Option<()> {
        let b = self.bytes();
        let mut i = self.i;
        let digits = |i: &mut usize| {
            let start = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > start
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i).then_some(())?;
        }
        if matches!(b.get(i), Some(b'e' | b'E')) {
            i += 1;
            if matches!(b.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            digits(&mut i).then_some(())?;
        }
        self.i = i;
        Some(())
    }
}

/// The character of the escape whose letter is at `b[at]`, and where the string goes on.
fn escape(b: &[u8], at: usize) -> Option<(char, usize)> {
    let ch = match *b.get(at)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hi = hex4(b, at + 1)?;
            return match hi {
                0xD800..=0xDBFF => {
                    // A surrogate pair: the low half must follow (serde refuses a lone one).
                    if b.get(at + 5..at + 7)? != b"\\u" {
                        return None;
                    }
                    let lo = hex4(b, at + 7)?;
                    if !(0xDC00..=0xDFFF).contains(&lo) {
                        return None;
                    }
                    let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                    Some((char::from_u32(cp)?, at + 11))
                }
                0xDC00..=0xDFFF => None,
                _ => Some((char::from_u32(hi)?, at + 5)),
            };
        }
        _ => return None,
    };
    Some((ch, at + 1))
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let digits = b.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |n, &d| {
        let v = (d as char).to_digit(16)?;
        Some(n * 16 + v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks as servers send them (OpenAI, vLLM, llama.cpp, Ollama, OpenRouter, LM
    /// Studio shapes), each of which the scanner must take itself.
    const TAKEN: &[&str] = &[
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"up-model","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"up-model","choices":[{"index":0,"delta":{"content":"The capital"},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"up-model","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf","choices":[{"index":0,"delta":{"content":" Paris"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"q1U"}"#,
        r#"{"id":"chatcmpl-B9","object":"chat.completion.chunk","created":1741570283,"model":"gpt-4o","system_fingerprint":"fp_1","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":4,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_abc","type":"function","function":{"name":"get_weather","arguments":""}}]},"logprobs":null,"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": \"Par"}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_1","function":{"name":"f","arguments":null}}]},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"reasoning_content":"Let me think\u2026"},"finish_reason":null}]}"#,
        r#"{"id":"gen-1","provider":"OpenAI","model":"openai/gpt-4o","object":"chat.completion.chunk","created":1,"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Hmm","reasoning_details":null},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"refusal":"I can\u0027t help with that."},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"llama","choices":[{"index":0,"delta":{"content":"line one\nline \"two\"\t\\ \/ caf\u00e9 \ud83d\ude00 é 😀\b\f\r\u001F"},"finish_reason":"length","stop_reason":null}]}"#,
        " { \"id\" : \"x\" ,\n\"choices\" : [ { \"index\" : 0 , \"delta\" : { \"content\" : \"a\" } } ] , \"created\" : -1.5e-3 }\r\n",
        r#"{"id":"x","choices":[{"index":0,"delta":{"content":"b"},"finish_reason":null}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3,"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null},"cost":0.0001,"is_byok":false}}"#,
        r#"{"error":null,"choices":[{"delta":{"content":"z"}}]}"#,
        "{}",
    ];

    /// Chunks the scanner leaves to serde (which reads or refuses them).
    const LEFT: &[&str] = &[
        r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"},"logprobs":{"content":[]}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a","annotations":[]}}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"a"}}],"extra":{"k":1}}"#,
        r#"{"\u0069d":"c"}"#,
        r#"{"id":"a","id":"b"}"#,
        r#"{"id":null}"#,
        r#"{"id":"c","choices":[{"index":4294967296}]}"#,
        r#"{"id":"c","choices":[{"index":1.0}]}"#,
        r#"{"id":"c","choices":[{"index":01}]}"#,
        r#"{"id":"c","choices":[{"index":-1}]}"#,
        r#"{"id":"c","choices":null}"#,
        r#"{"id":"c","choices":[{"delta":null}]}"#,
        r#"{"id":"lone \ud800 surrogate"}"#,
        r#"{"id":"lone \udc00 low"}"#,
        r#"{"id":"bad \x escape"}"#,
        "{\"id\":\"raw \u{1} control\"}",
        r#"{"id":"c"} trailing"#,
        r#"{"id":"c",}"#,
        r#"{"id":"c""model":"m"}"#,
        r#"{"id":"c","usage":{"prompt_tokens":null}}"#,
        r#"{"id":"c","created":1.}"#,
        r#"{"id":"c","created":.5}"#,
        r#"{"id":"c","created":nul}"#,
        r#"{"id":"c""#,
        "",
        "[DONE]",
    ];

    fn agree(data: &str) -> Option<bool> {
        let fast = scan(data);
        let slow: serde_json::Result<ChunkIn<'_>> = serde_json::from_str(data);
        match (&fast, &slow) {
            (Some(f), Ok(s)) => assert_eq!(f, s, "the scanner and serde differ on {data:?}"),
            (Some(f), Err(e)) => {
                panic!("the scanner took {data:?} as {f:?}; serde refuses it: {e}")
            }
            (None, _) => {}
        }
        Some(fast.is_some())
    }

    #[test]
    fn the_scanner_reads_servers_chunks_as_serde_does() {
        for data in TAKEN {
            assert_eq!(agree(data), Some(true), "not taken by the scanner: {data}");
        }
        // What the scanner takes is what `read` answers.
        let chunk = read(TAKEN[11]).unwrap();
        assert_eq!(
            chunk.choices[0].delta.content.as_deref(),
            Some("line one\nline \"two\"\t\\ / café 😀 é 😀\u{8}\u{c}\r\u{1f}")
        );
        assert_eq!(chunk.choices[0].finish_reason.as_deref(), Some("length"));
        let usage = read(TAKEN[4]).unwrap().usage.unwrap();
        assert_eq!(
            usage.completion_tokens_details.unwrap().reasoning_tokens,
            Some(4)
        );
        assert!(matches!(
            read(TAKEN[1]).unwrap().id,
            Cow::Borrowed("chatcmpl-bench")
        ));
    }

    #[test]
    fn what_the_scanner_leaves_serde_reads_or_refuses() {
        for data in LEFT {
            assert_eq!(agree(data), Some(false), "taken by the scanner: {data}");
        }
        // serde still gives its own answer: the error object, and its refusals.
        assert!(read(LEFT[0]).unwrap().error.is_some());
        assert!(
            read(LEFT[5])
                .unwrap_err()
                .to_string()
                .contains("duplicate field")
        );
        assert!(read(LEFT[17]).is_err());
    }

    /// Every mutation of the chunks above — a byte replaced, dropped or doubled, a cut —
    /// is either left to serde or read exactly as serde reads it.
    #[test]
    fn mutated_chunks_are_read_as_serde_reads_them() {
        const SWAPS: &[u8] = b"\"\\{}[],:0159.-eEnultrfu \t\nxA\x01";
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let mut taken = 0;
        let mut total = 0;
        for base in TAKEN.iter().chain(LEFT) {
            for _ in 0..3000 {
                let mut b = base.as_bytes().to_vec();
                for _ in 0..=next(3) {
                    if b.is_empty() {
                        break;
                    }
                    let at = next(b.len());
                    match next(4) {
                        0 => b[at] = SWAPS[next(SWAPS.len())],
                        1 => {
                            b.remove(at);
                        }
                        2 => b.insert(at, b[at]),
                        _ => b.truncate(at),
                    }
                }
                let Ok(data) = String::from_utf8(b) else {
                    continue;
                };
                total += 1;
                if agree(&data) == Some(true) {
                    taken += 1;
                }
            }
        }
        // Most mutations break the JSON; a good share must still be read by the scanner,
        // or this would prove nothing about it.
        assert!(taken > total / 20, "{taken} of {total} mutations taken");
    }
}
