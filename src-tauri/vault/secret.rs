//! Types that hold secrets in memory: API keys, decrypted bytes.
//!
//! They wipe their memory on drop (zeroize), print as `<redacted>` with `{:?}`, and do
//! not implement `Serialize` or `Display`, so a secret cannot end up in a log line, a
//! `--json` document or an IPC payload by accident: reading one takes an explicit
//! `expose()`.

use std::fmt;
use zeroize::Zeroizing;

/// A secret text such as a provider's API key.
#[derive(Clone)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }

    /// The secret itself. Call this only where the value is consumed (a request header,
    /// the cipher), never to log or print it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decode decrypted bytes as UTF-8 without leaving a copy behind on failure.
    pub(crate) fn from_utf8(bytes: SecretBytes) -> Option<Self> {
        let mut v = bytes.into_vec();
        match std::str::from_utf8(&v) {
            Ok(_) => {
                // The bytes move into the String: no copy to wipe.
                let taken = std::mem::take(&mut *v);
                Some(SecretString::new(
                    String::from_utf8(taken).expect("checked above"),
                ))
            }
            Err(_) => None, // `v` is zeroized on drop
        }
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

impl PartialEq for SecretString {
    /// Constant-time comparison: equality of secrets should not leak through timing.
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

/// Secret bytes (a decrypted envelope).
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(v: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(v))
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn into_vec(self) -> Zeroizing<Vec<u8>> {
        self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<{} bytes redacted>)", self.0.len())
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_contains_the_secret() {
        let s = SecretString::new("sk-test-visible-1234".into());
        assert_eq!(format!("{s:?}"), "SecretString(<redacted>)");
        assert!(!format!("{:?}", Some(&s)).contains("visible"));
        let b = SecretBytes::new(b"abc".to_vec());
        assert_eq!(format!("{b:?}"), "SecretBytes(<3 bytes redacted>)");
    }

    #[test]
    fn utf8_decoding_keeps_valid_text_and_rejects_invalid_bytes() {
        let ok = SecretString::from_utf8(SecretBytes::new(b"key-1".to_vec())).unwrap();
        assert_eq!(ok.expose(), "key-1");
        assert!(SecretString::from_utf8(SecretBytes::new(vec![0xff, 0xfe])).is_none());
    }

    #[test]
    fn equality_compares_content() {
        assert_eq!(SecretString::new("a".into()), SecretString::new("a".into()));
        assert_ne!(SecretString::new("a".into()), SecretString::new("b".into()));
        assert_ne!(
            SecretString::new("a".into()),
            SecretString::new("ab".into())
        );
    }
}
