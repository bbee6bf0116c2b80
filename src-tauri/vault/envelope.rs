//! The sealed-secret format, as plain functions over bytes (no I/O, no state).
//!
//! ```text
//! version(1) | alg(1) | key_id(4, big-endian) | nonce(12) | ciphertext | tag(16)
//! ```
//!
//! AAD = the 18 header bytes ‖ the context bytes (table, column, row id and, for
//! provider keys, the provider's origin; see [`SecretContext`]). The header is in the
//! AAD so a changed version/alg/key id cannot reinterpret a ciphertext; the context is
//! in it so a ciphertext moved to another row, column or origin no longer opens.
//!
//! Frozen test vectors at the bottom pin the exact bytes: if they fail, the on-disk
//! format changed, which needs a new `version`, never an edit of the vectors.

use super::secret::SecretBytes;
use crate::error::{Code, Error, Result};
use ring::aead::{self, Aad, LessSafeKey, Nonce};

/// The only format version so far.
pub const VERSION: u8 = 1;
/// Algorithm byte: AES-256-GCM with a random 96-bit nonce.
pub const ALG_AES_256_GCM: u8 = 1;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
pub const HEADER_LEN: usize = 1 + 1 + 4 + NONCE_LEN;
/// The shortest valid envelope: a header and a tag around an empty plaintext.
pub const MIN_LEN: usize = HEADER_LEN + TAG_LEN;

/// Where a sealed value lives. Its bytes go into the AAD, so a ciphertext opens only
/// in the place it was sealed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretContext {
    pub table: &'static str,
    pub column: &'static str,
    pub row: String,
    /// For provider keys: the normalized origin (`https://api.openai.com`) the key may
    /// be sent to. Empty for values not bound to an origin.
    pub origin: String,
}

impl SecretContext {
    /// `switchyard/v1 \0 table \0 column \0 row \0 origin`. NUL cannot occur in any part
    /// (identifiers, decimal ids, URL origins), so the encoding is unambiguous.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64 + self.origin.len());
        for (i, part) in [
            "switchyard/v1",
            self.table,
            self.column,
            &self.row,
            &self.origin,
        ]
        .iter()
        .enumerate()
        {
            if i > 0 {
                v.push(0);
            }
            v.extend_from_slice(part.as_bytes());
        }
        v
    }
}

/// The parsed fixed-size header of an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub alg: u8,
    pub key_id: u32,
    pub nonce: [u8; NONCE_LEN],
}

impl Header {
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0] = self.version;
        h[1] = self.alg;
        h[2..6].copy_from_slice(&self.key_id.to_be_bytes());
        h[6..].copy_from_slice(&self.nonce);
        h
    }
}

/// Read the header; refuses unknown versions/algorithms and truncated input with
/// `vault_corrupt` (these are format problems, not wrong keys).
pub fn parse_header(envelope: &[u8]) -> Result<Header> {
    if envelope.len() < MIN_LEN {
        return Err(Error::new(
            Code::VaultCorrupt,
            format!(
                "sealed value is {} bytes, shorter than the {MIN_LEN}-byte minimum",
                envelope.len()
            ),
        ));
    }
    let version = envelope[0];
    let alg = envelope[1];
    if version != VERSION {
        return Err(Error::new(
            Code::VaultCorrupt,
            format!("sealed value has unknown format version {version}"),
        ));
    }
    if alg != ALG_AES_256_GCM {
        return Err(Error::new(
            Code::VaultCorrupt,
            format!("sealed value has unknown algorithm {alg}"),
        ));
    }
    let key_id = u32::from_be_bytes(envelope[2..6].try_into().expect("4 bytes"));
    let nonce: [u8; NONCE_LEN] = envelope[6..HEADER_LEN].try_into().expect("12 bytes");
    Ok(Header {
        version,
        alg,
        key_id,
        nonce,
    })
}

fn aad(header: &[u8; HEADER_LEN], context: &[u8]) -> Vec<u8> {
    let mut a = Vec::with_capacity(HEADER_LEN + context.len());
    a.extend_from_slice(header);
    a.extend_from_slice(context);
    a
}

/// Seal `plaintext` under `key` (identified by `key_id`) with the given nonce. The
/// caller supplies a fresh random nonce (tests supply a fixed one for the vectors).
pub fn seal(
    key: &LessSafeKey,
    key_id: u32,
    nonce: [u8; NONCE_LEN],
    context: &[u8],
    plaintext: &[u8],
) -> Vec<u8> {
    let header = Header {
        version: VERSION,
        alg: ALG_AES_256_GCM,
        key_id,
        nonce,
    }
    .to_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(plaintext);
    let tag = key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(&header, context)),
            &mut out[HEADER_LEN..],
        )
        // ring fails only for inputs over ~64 GiB.
        .expect("AES-GCM seal of a small value cannot fail");
    out.extend_from_slice(tag.as_ref());
    out
}

/// Open an envelope sealed by [`seal`] with the same key and context. Any change to
/// header, nonce, ciphertext, tag or context fails with `vault_decrypt_failed`.
pub fn open(key: &LessSafeKey, envelope: &[u8], context: &[u8]) -> Result<SecretBytes> {
    let header = parse_header(envelope)?;
    let header_bytes: [u8; HEADER_LEN] = envelope[..HEADER_LEN].try_into().expect("checked");
    let mut buf = SecretBytes::new(envelope[HEADER_LEN..].to_vec()).into_vec();
    let len = key
        .open_in_place(
            Nonce::assume_unique_for_key(header.nonce),
            Aad::from(aad(&header_bytes, context)),
            &mut buf,
        )
        .map_err(|_| {
            Error::new(
                Code::VaultDecryptFailed,
                "a sealed value failed authentication: it was changed, moved to another row, or its provider's base URL changed",
            )
        })?
        .len();
    buf.truncate(len);
    Ok(SecretBytes::new(std::mem::take(&mut *buf)))
}

/// An AES-256-GCM key from 32 raw bytes.
pub fn aes_key(bytes: &[u8; 32]) -> LessSafeKey {
    LessSafeKey::new(
        aead::UnboundKey::new(&aead::AES_256_GCM, bytes).expect("32 bytes is a valid AES-256 key"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> SecretContext {
        SecretContext {
            table: "providers",
            column: "api_key",
            row: "7".into(),
            origin: "https://api.openai.com".into(),
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn context_bytes_are_nul_separated_and_frozen() {
        assert_eq!(
            ctx().to_bytes(),
            b"switchyard/v1\0providers\0api_key\x007\0https://api.openai.com".to_vec()
        );
    }

    /// Frozen vector: key = 0x22 * 32, key id 0x0a0b0c0d, nonce = 0x33 * 12.
    /// Cross-checked with Python's `cryptography` AESGCM (see the commit message).
    #[test]
    fn frozen_vector_envelope_bytes_are_exact() {
        let key = aes_key(&[0x22; 32]);
        let env = seal(
            &key,
            0x0a0b_0c0d,
            [0x33; 12],
            &ctx().to_bytes(),
            b"sk-test-vector-0001",
        );
        assert_eq!(hex(&env), FROZEN_ENVELOPE);
        let opened = open(&key, &env, &ctx().to_bytes()).unwrap();
        assert_eq!(opened.expose(), b"sk-test-vector-0001");
    }

    pub(crate) const FROZEN_ENVELOPE: &str = "01010a0b0c0d333333333333333333333333\
        05a8eb9e105f02457e88f8047aa320a215915a57\
        16266cd18ce746ac78dbeb8a959831";

    #[test]
    fn every_single_byte_tamper_fails_with_a_coded_error() {
        let key = aes_key(&[0x44; 32]);
        let env = seal(&key, 1, [9; 12], &ctx().to_bytes(), b"secret value");
        for i in 0..env.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut t = env.clone();
                t[i] ^= flip;
                let err = open(&key, &t, &ctx().to_bytes()).unwrap_err();
                assert!(
                    matches!(err.code, Code::VaultDecryptFailed | Code::VaultCorrupt),
                    "byte {i} flip {flip:#x}: {err:?}"
                );
            }
        }
        // Truncation and extension fail too.
        for n in 0..env.len() {
            assert!(open(&key, &env[..n], &ctx().to_bytes()).is_err(), "len {n}");
        }
        let mut longer = env.clone();
        longer.push(0);
        assert!(open(&key, &longer, &ctx().to_bytes()).is_err());
    }

    #[test]
    fn a_different_context_or_key_does_not_open() {
        let key = aes_key(&[0x44; 32]);
        let env = seal(&key, 1, [9; 12], &ctx().to_bytes(), b"v");
        let mut other_row = ctx();
        other_row.row = "8".into();
        let mut other_origin = ctx();
        other_origin.origin = "https://evil.example".into();
        for c in [other_row, other_origin] {
            let e = open(&key, &env, &c.to_bytes()).unwrap_err();
            assert_eq!(e.code, Code::VaultDecryptFailed);
        }
        let e = open(&aes_key(&[0x45; 32]), &env, &ctx().to_bytes()).unwrap_err();
        assert_eq!(e.code, Code::VaultDecryptFailed);
    }

    #[test]
    fn header_round_trips() {
        let h = Header {
            version: VERSION,
            alg: ALG_AES_256_GCM,
            key_id: 0xdead_beef,
            nonce: [7; 12],
        };
        let mut env = h.to_bytes().to_vec();
        env.extend_from_slice(&[0; TAG_LEN]);
        assert_eq!(parse_header(&env).unwrap(), h);
    }
}
