//! Thin wrappers over ring and aes-gcm: the only module that calls the crypto libraries.
//!
//! ring provides HMAC-SHA256, HKDF-SHA256, SHA-256 and randomness; aes-gcm provides AES-256-GCM.
//! Nothing here is a home-made primitive: these functions only fix algorithms, sizes and the
//! domain-separating HKDF salt, and keep secrets in buffers that are zeroized on drop.

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hkdf, hmac};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::VaultError;

/// Length of every symmetric key in the crate (AES-256, HMAC-SHA256 keys).
pub(crate) const KEY_LEN: usize = 32;
/// Length of an AES-GCM nonce (96 bits, the size SP 800-38D recommends for random nonces).
pub(crate) const NONCE_LEN: usize = 12;
/// Length of an AES-GCM tag.
pub(crate) const TAG_LEN: usize = 16;

/// The HKDF salt of every derivation in the crate; the `info` says what the key is for.
const HKDF_SALT: &[u8] = b"custodia/v1";

/// The fixed key of [`constant_time_eq`]; see there why a public key is enough.
const COMPARE_KEY: &[u8] = b"custodia constant-time comparison";

/// A 256-bit secret (a derived sub-key, a wrapping key or a tenant secret) that is zeroized on
/// drop and never printed.
#[derive(Zeroize, ZeroizeOnDrop)]
pub(crate) struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    /// An all-zero key, to be filled in place (so the secret is never copied around by value).
    pub(crate) fn zeroed() -> SecretKey {
        SecretKey([0; KEY_LEN])
    }

    /// A fresh random key.
    pub(crate) fn random() -> Result<SecretKey, VaultError> {
        let mut key = SecretKey::zeroed();
        fill_random(&mut key.0)?;
        Ok(key)
    }

    pub(crate) fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8; KEY_LEN] {
        &mut self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// SHA-256 of the concatenation of `parts`, without copying them together. Callers that hash
/// variable-length parts must make the split unambiguous themselves (fixed sizes, or
/// length prefixes): the Merkle tree's `0x00 ‖ entry` and `0x01 ‖ left ‖ right` do.
pub fn sha256_parts(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    for part in parts {
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// SHA-256 fed piece by piece, for files too large to hold in memory (backups).
pub struct Sha256Stream(digest::Context);

impl Default for Sha256Stream {
    fn default() -> Self {
        Sha256Stream(digest::Context::new(&digest::SHA256))
    }
}

impl Sha256Stream {
    /// Appends `data` to what is hashed.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The hash of everything given.
    pub fn finish(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(self.0.finish().as_ref());
        out
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let digest = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// `N` bytes from the operating system's cryptographically secure random number generator.
pub fn random_array<const N: usize>() -> Result<[u8; N], VaultError> {
    let mut out = [0u8; N];
    fill_random(&mut out)?;
    Ok(out)
}

/// Fills `out` from the operating system's random number generator.
pub(crate) fn fill_random(out: &mut [u8]) -> Result<(), VaultError> {
    SystemRandom::new()
        .fill(out)
        .map_err(|_| VaultError::RandomUnavailable)
}

/// Compares two byte strings in time that depends only on their lengths, never on their contents.
///
/// Both sides go through HMAC-SHA256 under a fixed key and ring's `hmac::verify` compares the tags
/// in constant time. The key need not be secret: it only maps inputs of any length to equal-length
/// tags, and the comparison of those tags is the constant-time step. Unequal lengths give unequal
/// tags (up to a SHA-256 collision), so they compare unequal.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let key = hmac::Key::new(hmac::HMAC_SHA256, COMPARE_KEY);
    let tag_a = hmac::sign(&key, a);
    hmac::verify(&key, b, tag_a.as_ref()).is_ok()
}

/// HKDF-SHA256 with the crate's salt: `ikm` is a root key or a tenant secret, `info` a
/// length-prefixed label and scope.
pub(crate) fn hkdf_sha256(ikm: &[u8], info: &[u8]) -> Result<SecretKey, VaultError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, HKDF_SALT).extract(ikm);
    let info = [info];
    // `expand` fails only for outputs over 255 hash lengths and `fill` only for a length other
    // than the one asked for; neither happens here, but both stay errors rather than panics.
    let okm = prk
        .expand(&info, hkdf::HKDF_SHA256)
        .map_err(|_| VaultError::Crypto)?;
    let mut key = SecretKey::zeroed();
    okm.fill(key.as_bytes_mut())
        .map_err(|_| VaultError::Crypto)?;
    Ok(key)
}

/// HMAC-SHA256 of `data` under `key`.
///
/// ring's `hmac::Key` holds the padded key state and does not zeroize itself, so it is built per
/// call on the stack and the long-lived copy of the key stays in a [`SecretKey`].
pub(crate) fn hmac_sha256(key: &SecretKey, data: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes());
    let tag = hmac::sign(&key, data);
    let mut out = [0u8; 32];
    out.copy_from_slice(tag.as_ref());
    out
}

/// AES-256-GCM encryption of `buffer` in place; returns the tag.
pub(crate) fn aes_gcm_seal_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
) -> Result<[u8; TAG_LEN], VaultError> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    let tag = cipher
        .encrypt_in_place_detached(Nonce::from_slice(nonce), aad, buffer)
        .map_err(|_| VaultError::Crypto)?;
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&tag);
    Ok(out)
}

/// AES-256-GCM decryption of `buffer` in place. aes-gcm checks the tag before it decrypts, so on
/// failure `buffer` still holds ciphertext.
pub(crate) fn aes_gcm_open_in_place(
    key: &[u8; KEY_LEN],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    buffer: &mut [u8],
    tag: &[u8; TAG_LEN],
) -> Result<(), VaultError> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key));
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(nonce), aad, buffer, Tag::from_slice(tag))
        .map_err(|_| VaultError::Crypto)
}
