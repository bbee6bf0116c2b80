//! Redaction of credentials in upstream error texts. A provider's error message may
//! quote the key it was sent ("Incorrect API key provided: sk-proj-…"), a proxy may echo
//! the `Authorization` header, a misconfigured compatible server may print its own
//! environment. Before any of that reaches a client (relayed or translated, streamed or
//! not) or the log, the provider's own key and anything shaped like an API key or a
//! bearer token is replaced by `[redacted]`.
//!
//! Only error texts are redacted: a model's generated text that happens to contain
//! `sk-…` is the user's content and passes unchanged.

use regex::Regex;
use std::borrow::Cow;
use std::sync::LazyLock;

pub const MARK: &str = "[redacted]";

/// Key shapes of the providers people use (OpenAI `sk-`/`sk-proj-`, Anthropic
/// `sk-ant-`, Groq `gsk_`, xAI `xai-`, Perplexity `pplx-`, Google `AIza`, Hugging Face
/// `hf_`, GitHub `ghp_`/`github_pat_`, GitLab `glpat-`, Replicate `r8_`), bearer and
/// basic credentials, and `key=`/`api_key: …` pairs.
static SHAPES: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?x)
        \b(?:sk-|gsk_|xai-|pplx-|AIza|hf_|ghp_|gho_|github_pat_|glpat-|r8_)[A-Za-z0-9_\-]{8,}
        | (?i:\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/\-]{8,}=*
        | (?i:\b(?:api[_-]?key|x-api-key|access[_-]?token|secret)\b["']?\s*[:=]\s*["']?)[A-Za-z0-9._~+/\-]{8,}
        "#,
    )
    .expect("redaction patterns compile")
});

/// `text` with credentials replaced; borrowed when there was nothing to replace.
pub fn redact<'a>(text: &'a str, key: Option<&str>) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    if let Some(k) = key.filter(|k| k.len() >= 8)
        && out.contains(k)
    {
        out = Cow::Owned(out.replace(k, MARK));
    }
    if SHAPES.is_match(&out) {
        let replaced = SHAPES
            .replace_all(&out, |c: &regex::Captures| {
                let m = &c[0];
                // Keep the label of a `name: value` or `Bearer value` pair readable.
                match m.find(|ch: char| ch.is_whitespace() || ch == ':' || ch == '=') {
                    Some(i) if !m.starts_with("sk-") => {
                        let (label, rest) = m.split_at(i);
                        let sep: String = rest
                            .chars()
                            .take_while(|ch| {
                                ch.is_whitespace() || matches!(ch, ':' | '=' | '"' | '\'')
                            })
                            .collect();
                        format!("{label}{sep}{MARK}")
                    }
                    _ => MARK.to_string(),
                }
            })
            .into_owned();
        out = Cow::Owned(replaced);
    }
    out
}

/// [`redact`] over bytes (an error body that may not be UTF-8): `None` when nothing
/// needed replacing, so the caller keeps the original bytes exactly.
pub fn redact_bytes(bytes: &[u8], key: Option<&str>) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(bytes);
    match redact(&text, key) {
        Cow::Borrowed(_) => None,
        Cow::Owned(s) => Some(s.into_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_shapes_and_the_providers_own_key_are_replaced() {
        let cases = [
            (
                "Incorrect API key provided: sk-proj-abcDEF1234567890xyz. You can find your API key at https://platform.openai.com/account/api-keys.",
                "Incorrect API key provided: [redacted]. You can find your API key at https://platform.openai.com/account/api-keys.",
            ),
            (
                "invalid x-api-key sk-ant-api03-AbCdEf012345-_xyz",
                "invalid x-api-key [redacted]",
            ),
            ("bad key gsk_0123456789abcdef", "bad key [redacted]"),
            ("xai-ABCDEFGH12345678 rejected", "[redacted] rejected"),
            (
                "header was Authorization: Bearer abc.def-ghi_jkl012",
                "header was Authorization: Bearer [redacted]",
            ),
            (
                "{\"api_key\": \"0123456789abcdef0123\"}",
                "{\"api_key\": \"[redacted]\"}",
            ),
            ("key=AIzaSyA-1234567890abcdefgh", "key=[redacted]"),
        ];
        for (input, want) in cases {
            assert_eq!(redact(input, None), want, "{input}");
        }
        // The provider's own key, whatever its shape.
        assert_eq!(
            redact(
                "upstream said: my-own-key-000111 is not valid",
                Some("my-own-key-000111")
            ),
            "upstream said: [redacted] is not valid"
        );
    }

    #[test]
    fn ordinary_error_texts_are_left_alone() {
        for text in [
            "The model `gpt-9` does not exist or you do not have access to it.",
            "max_tokens: Field required",
            "Rate limit reached for requests",
            "sk- is a prefix",
            "task-1234567890 failed",
            "prompt is too long: 210000 tokens > 200000 maximum",
        ] {
            assert!(
                matches!(redact(text, Some("short")), Cow::Borrowed(_)),
                "{text}"
            );
        }
        assert_eq!(redact_bytes(b"{\"error\":\"plain\"}", None), None);
        assert_eq!(
            redact_bytes(b"{\"error\":\"key sk-abcdefgh12345678\"}", None).unwrap(),
            b"{\"error\":\"key [redacted]\"}"
        );
    }
}
