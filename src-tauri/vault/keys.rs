//! Key material: the root secret, its id and fingerprint, HKDF purpose keys, data keys.
//!
//! The hierarchy (security.md): root (32 random bytes, in the keychain) →
//! `HKDF-SHA256(root, salt = install id, info = "switchyard/v1/<purpose>")` → a wrapping
//! key that seals random 256-bit data keys (`vault_keys`) → data keys seal the secret
//! columns. Rotating the data key re-encrypts rows; rotating the root only re-wraps the
//! few data keys.

use super::envelope::{self, SecretContext};
use super::secret::SecretBytes;
use crate::error::{Code, Error, Result};
use ring::aead::LessSafeKey;
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use zeroize::Zeroizing;

/// The HKDF purpose under which data keys are wrapped.
pub const PURPOSE_WRAP: &str = "wrap-data-keys";
/// The `vault_keys.purpose` of the keys that seal secret columns.
pub const DATA_KEY_PURPOSE: &str = "secrets";

/// Fill `buf` from the OS CSPRNG.
pub fn random_bytes(buf: &mut [u8]) -> Result<()> {
    SystemRandom::new()
        .fill(buf)
        .map_err(|_| Error::internal("the system random number generator failed"))
}

/// A random 96-bit nonce for one seal.
pub fn random_nonce() -> Result<[u8; envelope::NONCE_LEN]> {
    let mut n = [0u8; envelope::NONCE_LEN];
    random_bytes(&mut n)?;
    Ok(n)
}

/// A random non-zero 32-bit id (root ids and data key ids).
pub fn random_id() -> Result<u32> {
    loop {
        let mut b = [0u8; 4];
        random_bytes(&mut b)?;
        let id = u32::from_be_bytes(b);
        if id != 0 {
            return Ok(id);
        }
    }
}

/// The id of a root secret, part of its keychain account name `root-v1-<id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RootId(pub u32);

impl RootId {
    pub fn account(self) -> String {
        format!("root-v1-{self}")
    }

    pub fn parse(s: &str) -> Result<RootId> {
        if s.len() != 8 {
            return Err(Error::new(
                Code::VaultCorrupt,
                format!("bad root id {s:?} in the vault metadata"),
            ));
        }
        u32::from_str_radix(s, 16).map(RootId).map_err(|_| {
            Error::new(
                Code::VaultCorrupt,
                format!("bad root id {s:?} in the vault metadata"),
            )
        })
    }

    /// The id from a keychain account name, if it is one of ours.
    pub fn from_account(account: &str) -> Option<RootId> {
        account
            .strip_prefix("root-v1-")
            .and_then(|s| RootId::parse(s).ok())
    }
}

impl fmt::Display for RootId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

/// The 32-byte root secret. Zeroized on drop; never printed, serialized or logged.
pub struct RootSecret(Zeroizing<[u8; 32]>);

impl RootSecret {
    pub fn generate() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; 32]);
        random_bytes(&mut *k)?;
        Ok(RootSecret(k))
    }

    pub fn from_bytes(b: [u8; 32]) -> Self {
        RootSecret(Zeroizing::new(b))
    }

    /// The keychain stores the root as 64 lowercase hex characters: printable text is
    /// what every keychain backend handles the same way.
    pub fn to_hex(&self) -> Zeroizing<String> {
        Zeroizing::new(hex(&*self.0))
    }

    pub fn from_hex(s: &str) -> Result<Self> {
        let s = s.trim();
        let bad = || {
            Error::new(
                Code::VaultCorrupt,
                "the root secret in the keychain is not 64 hex characters",
            )
        };
        if s.len() != 64 {
            return Err(bad());
        }
        let mut k = Zeroizing::new([0u8; 32]);
        for (i, out) in k.iter_mut().enumerate() {
            *out = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(RootSecret(k))
    }

    /// First 8 bytes of SHA-256("switchyard/fp" ‖ root), hex: shows which root is in use
    /// without revealing it.
    pub fn fingerprint(&self) -> String {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(b"switchyard/fp");
        ctx.update(&*self.0);
        hex(&ctx.finish().as_ref()[..8])
    }

    /// The purpose key `HKDF-SHA256(root, salt, "switchyard/v1/<purpose>")` as an AES-256-GCM key.
    pub fn purpose_key(&self, salt: &[u8], purpose: &str) -> LessSafeKey {
        let info = format!("switchyard/v1/{purpose}");
        let prk = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, salt).extract(&*self.0);
        let info_parts = [info.as_bytes()];
        let okm = prk
            .expand(&info_parts, &ring::aead::AES_256_GCM)
            .expect("32 bytes is within HKDF-SHA256's output limit");
        LessSafeKey::new(ring::aead::UnboundKey::from(okm))
    }
}

impl fmt::Debug for RootSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootSecret(<redacted>)")
    }
}

/// A data key: 32 random bytes, stored only wrapped (sealed under the root's wrapping key).
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    pub fn generate() -> Result<Self> {
        let mut k = Zeroizing::new([0u8; 32]);
        random_bytes(&mut *k)?;
        Ok(DataKey(k))
    }

    pub fn cipher(&self) -> LessSafeKey {
        envelope::aes_key(&self.0)
    }

    /// Seal this key under `wrap` (the root's wrapping key, id `root`).
    pub fn wrap(
        &self,
        wrap: &LessSafeKey,
        root: RootId,
        key_id: u32,
        nonce: [u8; envelope::NONCE_LEN],
    ) -> Vec<u8> {
        envelope::seal(
            wrap,
            root.0,
            nonce,
            &wrapped_key_context(key_id).to_bytes(),
            &*self.0,
        )
    }

    /// Open a wrapped data key; the envelope must name `root` and be bound to `key_id`.
    pub fn unwrap(wrap: &LessSafeKey, root: RootId, key_id: u32, wrapped: &[u8]) -> Result<Self> {
        let h = envelope::parse_header(wrapped)?;
        if h.key_id != root.0 {
            return Err(Error::new(
                Code::VaultCorrupt,
                format!(
                    "data key {key_id:08x} is wrapped by root {:08x}, not by the root in use ({root})",
                    h.key_id
                ),
            ));
        }
        let plain: SecretBytes = envelope::open(wrap, wrapped, &wrapped_key_context(key_id).to_bytes())
            .map_err(|_| {
                Error::new(
                    Code::VaultDecryptFailed,
                    format!(
                        "data key {key_id:08x} does not open with root {root}: the keychain holds a different root than the one this database was sealed with"
                    ),
                )
            })?;
        let bytes: [u8; 32] = plain.expose().try_into().map_err(|_| {
            Error::new(
                Code::VaultCorrupt,
                format!("data key {key_id:08x} has the wrong length"),
            )
        })?;
        Ok(DataKey(Zeroizing::new(bytes)))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// The AAD context of a wrapped data key: bound to its own `vault_keys` row.
pub fn wrapped_key_context(key_id: u32) -> SecretContext {
    SecretContext {
        table: "vault_keys",
        column: "wrapped",
        row: format!("{key_id:08x}"),
        origin: String::new(),
    }
}

pub fn hex(b: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed_root() -> RootSecret {
        RootSecret::from_bytes([0x11; 32])
    }

    const SALT: [u8; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];

    /// Frozen: SHA-256("switchyard/fp" ‖ 0x11*32)[..8].
    #[test]
    fn frozen_vector_fingerprint() {
        assert_eq!(fixed_root().fingerprint(), "11a4101947ccbf34");
    }

    /// Frozen: data key 0x22*32 wrapped under HKDF(root 0x11*32, salt 00..0f,
    /// "switchyard/v1/wrap-data-keys") with root id 01020304, key id 0a0b0c0d, nonce 0x55*12.
    #[test]
    fn frozen_vector_wrapped_data_key() {
        let wrap = fixed_root().purpose_key(&SALT, PURPOSE_WRAP);
        let dk = DataKey(Zeroizing::new([0x22; 32]));
        let w = dk.wrap(&wrap, RootId(0x0102_0304), 0x0a0b_0c0d, [0x55; 12]);
        assert_eq!(
            hex(&w),
            concat!(
                "010101020304555555555555555555555555",
                "f6e72a186733b545535fe0d0ebc8359af213023848dc461ecb5d895db0106a46",
                "d5b370e366c871d5cbf743967e415fb8"
            )
        );
        let back = DataKey::unwrap(&wrap, RootId(0x0102_0304), 0x0a0b_0c0d, &w).unwrap();
        assert_eq!(*back.0, [0x22; 32]);
    }

    #[test]
    fn a_wrapped_key_opens_only_with_its_root_salt_and_key_id() {
        let wrap = fixed_root().purpose_key(&SALT, PURPOSE_WRAP);
        let dk = DataKey::generate().unwrap();
        let w = dk.wrap(&wrap, RootId(5), 77, random_nonce().unwrap());
        assert!(DataKey::unwrap(&wrap, RootId(5), 77, &w).is_ok());
        // another key id (row), another root id, another root, another salt, another purpose
        assert_eq!(
            DataKey::unwrap(&wrap, RootId(5), 78, &w).unwrap_err().code,
            Code::VaultDecryptFailed
        );
        assert_eq!(
            DataKey::unwrap(&wrap, RootId(6), 77, &w).unwrap_err().code,
            Code::VaultCorrupt
        );
        let other_root = RootSecret::from_bytes([0x12; 32]).purpose_key(&SALT, PURPOSE_WRAP);
        let other_salt = fixed_root().purpose_key(&[1; 16], PURPOSE_WRAP);
        let other_purpose = fixed_root().purpose_key(&SALT, "tokens");
        for k in [other_root, other_salt, other_purpose] {
            assert_eq!(
                DataKey::unwrap(&k, RootId(5), 77, &w).unwrap_err().code,
                Code::VaultDecryptFailed
            );
        }
    }

    #[test]
    fn root_hex_round_trips_and_rejects_garbage() {
        let r = RootSecret::generate().unwrap();
        let back = RootSecret::from_hex(&r.to_hex()).unwrap();
        assert_eq!(r.fingerprint(), back.fingerprint());
        for bad in ["", "abc", &"zz".repeat(32), &"00".repeat(33)] {
            assert_eq!(
                RootSecret::from_hex(bad).unwrap_err().code,
                Code::VaultCorrupt
            );
        }
        assert_eq!(format!("{r:?}"), "RootSecret(<redacted>)");
    }

    #[test]
    fn root_ids_format_as_accounts_and_parse_back() {
        let id = RootId(0x00ab_cdef);
        assert_eq!(id.account(), "root-v1-00abcdef");
        assert_eq!(RootId::from_account(&id.account()), Some(id));
        assert_eq!(RootId::from_account("root-v2-00abcdef"), None);
        assert_eq!(RootId::from_account("root-v1-xyz"), None);
        assert!(RootId::parse("1234567").is_err());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 0xff, 0x10]), "00ff10");
        assert_eq!(unhex("00ff10"), Some(vec![0, 0xff, 0x10]));
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }
}
