//! Unit tests of the vault, one module per capability, with the helpers they share.

mod derived;
mod hygiene;
mod normalize;
mod root_key_file;
mod rotation;
mod seal;
mod store;

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use custodia_core::{SubjectId, TenantId};

use crate::{Keyring, RootKey, Vault, VaultError, random_array};

/// The root key `00 01 02 … 1f`, whose derived values the known-answer tests pin.
fn fixed_root_key() -> RootKey {
    let bytes: Vec<u8> = (0u8..32).collect();
    RootKey::from_base64(&STANDARD.encode(bytes)).unwrap()
}

fn tenant(name: &str) -> TenantId {
    name.parse().unwrap()
}

fn new_subject() -> SubjectId {
    SubjectId::from_random(random_array().unwrap())
}

fn open_vault(dir: &Path, root: RootKey) -> Vault {
    Vault::open(dir, Keyring::new(root)).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Whether `needle` occurs anywhere in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Asserts that `text` shows none of `secret`'s bytes, in hex or base64.
fn assert_hides(text: &str, secret: &[u8]) {
    assert!(!text.contains(&hex(secret)), "hex of a secret in {text:?}");
    assert!(
        !text.to_uppercase().contains(&hex(secret).to_uppercase()),
        "hex of a secret in {text:?}"
    );
    assert!(
        !text.contains(&base64(secret)),
        "base64 of a secret in {text:?}"
    );
}

/// The one opaque AEAD failure.
fn assert_opaque(result: Result<impl std::fmt::Debug, VaultError>) {
    match result {
        Err(err @ VaultError::Crypto) => {
            assert_eq!(err.to_string(), "cryptographic operation failed");
        }
        other => panic!("expected the opaque crypto error, got {other:?}"),
    }
}

#[test]
fn sha256_stream_matches_the_one_shot_hash_whatever_the_pieces() {
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for piece in [1, 63, 64, 65, 4096, 10_000] {
        let mut stream = crate::Sha256Stream::default();
        for chunk in data.chunks(piece) {
            stream.update(chunk);
        }
        assert_eq!(stream.finish(), crate::sha256(&data), "pieces of {piece}");
    }
    // The SHA-256 of the empty string (FIPS 180-2 test vector).
    let empty: String = crate::Sha256Stream::default()
        .finish()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        empty,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}
