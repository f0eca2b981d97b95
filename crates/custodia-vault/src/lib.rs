//! custodia-vault: Custodia's keys and crypto — root keys, the key store of per-subject data keys,
//! envelope encryption, pseudonyms, blind indexes and look-up hashes.
//!
//! Architecture invariant: this is the only crate that names a crypto library (ring for HMAC,
//! HKDF, SHA-256 and randomness; aes-gcm for AES-256-GCM), and its only I/O is the root key file
//! and the key store directory.
//!
//! # Key hierarchy
//!
//! ```text
//! root key (operator, 256 bits, id = SHA-256(lp("custodia root key id v1") ‖ lp(key))[..8])
//! └─ tenant wrapping key = HKDF-SHA256(root key, salt "custodia/v1", info lp("wrap") ‖ lp(tenant))
//!    │                     AES-256-GCM; wraps only the two kinds of keys below
//!    ├─ tenant secret (random 256 bits, created once, wrapped in the key store header)
//!    │  ├─ pseudonym key   = HKDF-SHA256(tenant secret, "custodia/v1", lp("pseudonym")   ‖ lp(tenant))
//!    │  ├─ blind-index key = HKDF-SHA256(tenant secret, "custodia/v1", lp("blind-index") ‖ lp(tenant))
//!    │  ├─ look-up key     = HKDF-SHA256(tenant secret, "custodia/v1", lp("lookup")      ‖ lp(tenant))
//!    │  └─ log signing     = HKDF-SHA256(tenant secret, "custodia/v1", lp("log-signing") ‖ lp(tenant))
//!    │     └─ Ed25519 seed of log L = HKDF-SHA256(log signing, "custodia/v1", lp(L))
//!    └─ subject data keys (random 256 bits each, wrapped in the key store's slots)
//!       └─ every personal field and event payload: AES-256-GCM, random 96-bit nonce
//! ```
//!
//! - The root key never encrypts data itself; it only derives each tenant's wrapping key.
//! - The tenant secret sits between the root key and the long-lived sub-keys so that a root-key
//!   rotation re-wraps only the tenant secret and the data keys, while pseudonyms, blind indexes
//!   and look-up hashes — which other stores persist — stay the same.
//! - Every key has one job; a new job gets a new HKDF label, never an existing key.
//! - Associated data binds every wrap to where it belongs:
//!   data keys `lp("custodia-dek") ‖ lp(tenant) ‖ lp(subject id) ‖ lp(root key id) ‖ lp(version)`,
//!   the tenant secret `lp("custodia-tenant-secret") ‖ lp(tenant) ‖ lp(root key id) ‖ lp(version)`,
//!   sealed data `lp("custodia-data") ‖ lp(tenant) ‖ lp(subject id) ‖ lp(kind) ‖ lp(version)`
//!   (see [`Aad`]).
//! - `lp(·)` is [`custodia_core::LengthPrefixed`]: every multi-part input to an HMAC, an HKDF
//!   `info` or an AAD is length-prefixed, so no two tuples of parts encode alike.
//! - Nonce budget (NIST SP 800-38D): a tenant's wrapping key is shared by all of its wraps, so the
//!   key store header persists a count of its encryptions and [`VaultError::WrapLimit`] refuses
//!   new wraps past 2^31; a root-key rotation starts a fresh wrapping key. A data key encrypts
//!   only one subject's data, far below that budget.
//!
//! Erasing a subject destroys its data key in place in the key store (see the `key_store`
//! module for the file format), which makes every ciphertext of the subject — in the data
//! directory or any backup of it — unreadable.
//!
//! Key types zeroize on drop and print as `[redacted]` or by their public id; errors carry no key
//! material and no personal data, and every failure to open a ciphertext is the same opaque
//! [`VaultError::Crypto`].

#[cfg(not(unix))]
compile_error!(
    "custodia-vault needs a unix platform: the key store uses positioned I/O and file modes"
);

mod data_key;
mod durable;
mod error;
mod key_store;
mod normalize;
mod primitives;
mod root_key;
mod signing;
mod tenant;
mod tombstones;
mod vault;

pub use data_key::{Aad, DataKey, SEAL_FORMAT_VERSION, SEAL_OVERHEAD};
pub use error::VaultError;
pub use normalize::{normalize_email, normalize_phone};
pub use primitives::{Sha256Stream, constant_time_eq, random_array, sha256, sha256_parts};
pub use root_key::{Keyring, RootKey, RootKeyId};
pub use signing::{ED25519_PUBLIC_KEY_LEN, ED25519_SIGNATURE_LEN, SigningKey, verify_ed25519};
pub use tenant::{
    BLIND_INDEX_BYTES, BlindField, BlindIndex, LookupHash, SEARCH_TOKEN_BYTES, SearchToken,
    TenantVault,
};
pub use vault::Vault;

#[cfg(test)]
mod tests;
