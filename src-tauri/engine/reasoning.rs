//! Reasoning in a local model's output: models whose chat template speaks of `<think>`
//! (Qwen3, DeepSeek-R1 distills) write their reasoning first, inside
//! `<think>…</think>`, then the answer. We split it off so clients get it as reasoning
//! (Anthropic thinking blocks, OpenAI `reasoning_content`) and the answer stays clean.
//!
//! Only a block at the very start counts (after whitespace), or one the prompt itself
//! opened (templates that end the generation prompt with `<think>`). Partial tags are
//! held back until they complete or cannot; nothing is lost: an unclosed block at the
//! end is reasoning, a stray tag later on is text.

use super::tool_calls::partial_suffix;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

/// Whether a rendered prompt leaves the model inside a `<think>` block.
pub fn opens_thinking(prompt: &str) -> bool {
    let t = prompt.trim_end();
    t.ends_with(OPEN)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Thinking(String),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// Nothing but whitespace so far: a `<think>` may still open.
    Start,
    Thinking,
    /// Just after `</think>`: the whitespace before the answer is dropped.
    AfterThinking,
    Text,
}

#[derive(Debug)]
pub struct ThinkParser {
    state: State,
    buf: String,
}

impl ThinkParser {
    /// `in_thinking`: the prompt already opened the block.
    pub fn new(in_thinking: bool) -> Self {
        ThinkParser {
            state: if in_thinking {
                State::Thinking
            } else {
                State::Start
            },
            buf: String::new(),
        }
    }

    pub fn push(&mut self, text: &str, out: &mut Vec<Part>) {
        self.buf.push_str(text);
        loop {
            match self.state {
                State::Start => {
                    let t = self.buf.trim_start();
                    if let Some(rest) = t.strip_prefix(OPEN) {
                        self.buf = rest.to_string();
                        self.state = State::Thinking;
                    } else if t.is_empty() || OPEN.starts_with(t) {
                        return;
                    } else {
                        self.state = State::Text;
                    }
                }
                State::Thinking => {
                    if let Some(at) = self.buf.find(CLOSE) {
                        let thought: String = self.buf.drain(..at).collect();
                        self.buf.drain(..CLOSE.len());
                        push(out, Part::Thinking(thought));
                        self.state = State::AfterThinking;
                        continue;
                    }
                    let keep = partial_suffix(&self.buf, CLOSE);
                    let thought: String = self.buf.drain(..self.buf.len() - keep).collect();
                    push(out, Part::Thinking(thought));
                    return;
                }
                State::AfterThinking => {
                    let t = self.buf.trim_start();
                    if t.is_empty() {
                        self.buf.clear();
                        return;
                    }
                    self.buf = t.to_string();
                    self.state = State::Text;
                }
                State::Text => {
                    let all = std::mem::take(&mut self.buf);
                    push(out, Part::Text(all));
                    return;
                }
            }
        }
    }

    pub fn finish(&mut self, out: &mut Vec<Part>) {
        let rest = std::mem::take(&mut self.buf);
        match self.state {
            State::Thinking => push(out, Part::Thinking(rest)),
            State::AfterThinking => {}
            State::Start | State::Text => push(out, Part::Text(rest)),
        }
    }
}

/// Append, merging with a previous part of the same kind; empty parts are skipped.
fn push(out: &mut Vec<Part>, part: Part) {
    match (out.last_mut(), part) {
        (_, Part::Thinking(s) | Part::Text(s)) if s.is_empty() => {}
        (Some(Part::Thinking(a)), Part::Thinking(b)) | (Some(Part::Text(a)), Part::Text(b)) => {
            a.push_str(&b)
        }
        (_, part) => out.push(part),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(in_thinking: bool, chunks: &[&str]) -> Vec<Part> {
        let mut p = ThinkParser::new(in_thinking);
        let mut out = Vec::new();
        for c in chunks {
            p.push(c, &mut out);
        }
        p.finish(&mut out);
        out
    }

    fn all_splits(in_thinking: bool, s: &str, want: &[Part]) {
        let cuts: Vec<usize> = (0..=s.len()).filter(|&i| s.is_char_boundary(i)).collect();
        for &i in &cuts {
            for &j in cuts.iter().filter(|&&j| j >= i) {
                assert_eq!(
                    run(in_thinking, &[&s[..i], &s[i..j], &s[j..]]),
                    want,
                    "split at {i}/{j} of {s:?}"
                );
            }
        }
    }

    fn thinking(s: &str) -> Part {
        Part::Thinking(s.into())
    }

    fn text(s: &str) -> Part {
        Part::Text(s.into())
    }

    #[test]
    fn a_leading_think_block_is_split_off_in_any_chunking() {
        all_splits(
            false,
            "<think>\nThe user greets me. Grüße 👋\n</think>\n\nHello! <think> is a tag.",
            &[
                thinking("\nThe user greets me. Grüße 👋\n"),
                text("Hello! <think> is a tag."),
            ],
        );
        // Opened by the prompt.
        all_splits(
            true,
            "2+2 is 4.</think>\n\n4",
            &[thinking("2+2 is 4."), text("4")],
        );
        // An empty block (thinking disabled in Qwen3's way) leaves just the answer.
        all_splits(
            false,
            "<think>\n\n</think>\n\nHi",
            &[thinking("\n\n"), text("Hi")],
        );
    }

    #[test]
    fn no_block_unclosed_block_and_near_misses() {
        all_splits(false, "  Hello <think>", &[text("  Hello <think>")]);
        all_splits(false, "<thin>k", &[text("<thin>k")]);
        all_splits(
            false,
            "<think>cut off by max_tokens </thi",
            &[thinking("cut off by max_tokens </thi")],
        );
        assert_eq!(run(false, &[]), vec![]);
        assert_eq!(run(false, &["  "]), vec![text("  ")]);
    }

    #[test]
    fn reasoning_streams_as_it_comes() {
        let mut p = ThinkParser::new(false);
        let mut out = Vec::new();
        p.push("<think>Let me see", &mut out);
        assert_eq!(out, vec![thinking("Let me see")]);
        p.push(" more</th", &mut out);
        assert_eq!(out, vec![thinking("Let me see more")]);
        p.push("ink>Answer", &mut out);
        assert_eq!(out, vec![thinking("Let me see more"), text("Answer")]);
    }

    #[test]
    fn prompts_that_open_the_block() {
        assert!(opens_thinking("<|im_start|>assistant\n<think>\n"));
        assert!(!opens_thinking(
            "<|im_start|>assistant\n<think>\n\n</think>\n\n"
        ));
        assert!(!opens_thinking("<|im_start|>assistant\n"));
    }
}
