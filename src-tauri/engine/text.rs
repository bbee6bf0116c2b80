//! Streaming text: incremental detokenization that never emits half a UTF-8
//! character, and stop strings that are never emitted even when they span tokens.
//!
//! Both are plain state machines over strings so they are tested without a model.

/// Turns a growing list of token ids into text deltas.
///
/// Decoding token by token is wrong twice over: a byte-level token can hold half of a
/// multi-byte character (an emoji is often 2–4 tokens), and some decoders depend on
/// neighbours (SentencePiece strips the leading space of the first piece). So each step
/// decodes a short window `[prefix..]` and emits only what the window added past
/// `[prefix..read]`, and only when it does not end in U+FFFD (an incomplete character,
/// which the next token will complete). Cost per token: two decodes of a few tokens.
#[derive(Debug, Default, Clone)]
pub struct IncrementalDecoder {
    tokens: Vec<u32>,
    prefix: usize,
    read: usize,
}

impl IncrementalDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add one token; returns the text it completes (possibly empty).
    pub fn push<E>(
        &mut self,
        token: u32,
        decode: impl Fn(&[u32]) -> Result<String, E>,
    ) -> Result<String, E> {
        self.tokens.push(token);
        let before = decode(&self.tokens[self.prefix..self.read])?;
        let after = decode(&self.tokens[self.prefix..])?;
        if after.len() > before.len()
            && !after.ends_with('\u{FFFD}')
            && after.is_char_boundary(before.len())
        {
            let delta = after[before.len()..].to_string();
            self.prefix = self.read;
            self.read = self.tokens.len();
            Ok(delta)
        } else {
            Ok(String::new())
        }
    }

    /// Whatever is still held back (an incomplete character at the very end), decoded
    /// lossily: called once when generation ends.
    pub fn flush<E>(&mut self, decode: impl Fn(&[u32]) -> Result<String, E>) -> Result<String, E> {
        let before = decode(&self.tokens[self.prefix..self.read])?;
        let after = decode(&self.tokens[self.prefix..])?;
        self.prefix = self.tokens.len();
        self.read = self.tokens.len();
        Ok(
            if after.len() > before.len() && after.is_char_boundary(before.len()) {
                after[before.len()..].to_string()
            } else {
                String::new()
            },
        )
    }
}

/// Holds back text that could be the start of a stop string and cuts the output at
/// the first stop string. Stop strings are matched on the text, not on tokens, so
/// they are found across token boundaries.
#[derive(Debug, Clone)]
pub struct StopMatcher {
    stops: Vec<String>,
    pending: String,
}

/// What to do with a delta.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopStep {
    /// Text safe to emit now.
    pub emit: String,
    /// A stop string matched: generation ends, nothing after it is emitted.
    pub stopped: bool,
    /// Which stop string matched (clients are told, e.g. Anthropic's `stop_sequence`).
    pub matched: Option<String>,
}

impl StopMatcher {
    pub fn new(stops: impl IntoIterator<Item = String>) -> Self {
        StopMatcher {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            pending: String::new(),
        }
    }

    pub fn push(&mut self, delta: &str) -> StopStep {
        if self.stops.is_empty() {
            return StopStep {
                emit: delta.to_string(),
                stopped: false,
                matched: None,
            };
        }
        self.pending.push_str(delta);
        // Earliest match wins; among matches at the same place, any (they cut the same).
        if let Some((pos, stop)) = self
            .stops
            .iter()
            .filter_map(|s| self.pending.find(s.as_str()).map(|p| (p, s)))
            .min_by_key(|(p, _)| *p)
        {
            let emit = self.pending[..pos].to_string();
            let matched = Some(stop.clone());
            self.pending.clear();
            return StopStep {
                emit,
                stopped: true,
                matched,
            };
        }
        let hold = self.held_suffix_len();
        let cut = self.pending.len() - hold;
        let emit = self.pending[..cut].to_string();
        self.pending.drain(..cut);
        StopStep {
            emit,
            stopped: false,
            matched: None,
        }
    }

    /// Text held back at the end of generation (no stop string completed it).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.pending)
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of a stop string
    /// (on character boundaries).
    fn held_suffix_len(&self) -> usize {
        let p = &self.pending;
        let mut best = 0;
        for (start, _) in p.char_indices() {
            let suffix = &p[start..];
            if self
                .stops
                .iter()
                .any(|s| s.len() > suffix.len() && s.starts_with(suffix))
            {
                best = best.max(suffix.len());
                break; // char_indices goes from the longest suffix down
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level "tokenizer": each id stands for a byte string, decoded lossily like
    /// a real byte-level BPE decoder does.
    fn byte_decoder(vocab: &'static [&'static [u8]]) -> impl Fn(&[u32]) -> Result<String, ()> {
        move |ids: &[u32]| {
            let bytes: Vec<u8> = ids
                .iter()
                .flat_map(|&i| vocab[i as usize].iter().copied())
                .collect();
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
    }

    fn stream(ids: &[u32], vocab: &'static [&'static [u8]]) -> Vec<String> {
        let decode = byte_decoder(vocab);
        let mut d = IncrementalDecoder::new();
        let mut out: Vec<String> = ids.iter().map(|&i| d.push(i, &decode).unwrap()).collect();
        out.push(d.flush(&decode).unwrap());
        out
    }

    #[test]
    fn an_emoji_split_over_tokens_comes_out_whole_once_complete() {
        // "Hi 👋!" with the 4-byte emoji F0 9F 91 8B split 1+2+1.
        static V: &[&[u8]] = &[b"Hi", b" ", b"\xF0", b"\x9F\x91", b"\x8B", b"!"];
        let out = stream(&[0, 1, 2, 3, 4, 5], V);
        assert_eq!(out, vec!["Hi", " ", "", "", "👋", "!", ""]);
        assert_eq!(out.concat(), "Hi 👋!");
    }

    #[test]
    fn multibyte_characters_of_two_and_three_bytes_are_never_split() {
        // "é" = C3 A9, "中" = E4 B8 AD, each split byte by byte.
        static V: &[&[u8]] = &[b"\xC3", b"\xA9", b"\xE4", b"\xB8", b"\xAD", b"a"];
        let out = stream(&[0, 1, 2, 3, 4, 5], V);
        for piece in &out {
            assert!(!piece.contains('\u{FFFD}'), "{out:?}");
        }
        assert_eq!(out.concat(), "é中a");
        assert_eq!(out, vec!["", "é", "", "", "中", "a", ""]);
    }

    #[test]
    fn an_incomplete_character_at_the_end_is_flushed_lossily() {
        static V: &[&[u8]] = &[b"ok", b"\xF0\x9F"];
        let out = stream(&[0, 1], V);
        assert_eq!(out, vec!["ok", "", "\u{FFFD}"]);
    }

    #[test]
    fn context_dependent_decoders_stay_consistent() {
        // A SentencePiece-like decoder that strips the first leading space of its input.
        static V: &[&str] = &["▁Hello", "▁world", "!"];
        let decode = |ids: &[u32]| -> Result<String, ()> {
            let s: String = ids
                .iter()
                .map(|&i| V[i as usize])
                .collect::<String>()
                .replace('▁', " ");
            Ok(s.strip_prefix(' ').map(str::to_string).unwrap_or(s))
        };
        let mut d = IncrementalDecoder::new();
        let out: Vec<String> = [0, 1, 2]
            .iter()
            .map(|&i| d.push(i, decode).unwrap())
            .collect();
        assert_eq!(out.concat(), "Hello world!");
        assert_eq!(out, vec!["Hello", " world", "!"]);
    }

    fn run_stops(stops: &[&str], deltas: &[&str]) -> (String, bool, Vec<String>) {
        let mut m = StopMatcher::new(stops.iter().map(|s| s.to_string()));
        let mut emitted = Vec::new();
        for d in deltas {
            let step = m.push(d);
            emitted.push(step.emit.clone());
            if step.stopped {
                return (emitted.concat(), true, emitted);
            }
        }
        emitted.push(m.finish());
        (emitted.concat(), false, emitted)
    }

    #[test]
    fn a_stop_string_across_token_boundaries_is_cut_and_never_emitted() {
        let (text, stopped, steps) =
            run_stops(&["</end>"], &["Hello", " wor", "ld</", "en", "d> tail"]);
        assert!(stopped);
        assert_eq!(text, "Hello world");
        // "</" and "en" were held back, not emitted then retracted.
        assert_eq!(steps, vec!["Hello", " wor", "ld", "", ""]);
    }

    #[test]
    fn held_text_is_released_when_it_stops_matching() {
        let (text, stopped, steps) = run_stops(&["STOP"], &["a ST", "ORM", " b"]);
        assert!(!stopped);
        assert_eq!(text, "a STORM b");
        assert_eq!(steps, vec!["a ", "STORM", " b", ""]);
    }

    #[test]
    fn the_earliest_of_several_stop_strings_wins() {
        let (text, stopped, _) = run_stops(&["xyz", "b"], &["a", "bcxyz"]);
        assert!(stopped);
        assert_eq!(text, "a");
        let (text, _, _) = run_stops(&["\n\n"], &["line one\n", "\nline two"]);
        assert_eq!(text, "line one");
    }

    #[test]
    fn text_held_at_the_end_is_flushed_and_multibyte_stops_work() {
        let (text, stopped, _) = run_stops(&["<|im"], &["done <|i"]);
        assert!(!stopped);
        assert_eq!(text, "done <|i");
        let (text, stopped, _) = run_stops(&["🛑"], &["go é", "🛑 no"]);
        assert!(stopped);
        assert_eq!(text, "go é");
        let (text, stopped, _) = run_stops(&[], &["no stops at all"]);
        assert!(!stopped);
        assert_eq!(text, "no stops at all");
    }
}
