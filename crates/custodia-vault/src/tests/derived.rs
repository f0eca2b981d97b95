//! Pseudonyms, blind indexes and look-up hashes: pinned derivations, determinism, separation
//! between tenants, fields and kinds, and stability across a root-key change.

use custodia_core::SubjectId;
use tempfile::tempdir;

use super::{hex, new_subject, open_vault, tenant};
use crate::primitives::SecretKey;
use crate::tenant::TenantKeys;
use crate::{BLIND_INDEX_BYTES, BlindField, Keyring, RootKey, Vault};

/// The sub-keys of tenant "acme" for the tenant secret 42×32.
fn fixed_keys() -> TenantKeys {
    let mut secret = SecretKey::zeroed();
    secret.as_bytes_mut().fill(0x42);
    TenantKeys::derive(&secret, &tenant("acme")).unwrap()
}

#[test]
fn derivations_match_known_answers() {
    // Computed with Python's hmac/hashlib from the formulas in the crate documentation.
    let keys = fixed_keys();
    let acme = tenant("acme");
    let subject = SubjectId::from_bytes(std::array::from_fn(|i| i as u8));
    assert_eq!(
        keys.pseudonym(&acme, subject).to_string(),
        "3acbbd96ac1e99127fe885cc9a417921"
    );
    let index = keys.blind_index(&acme, BlindField::Email, "jane@example.com");
    assert_eq!(index.0.len(), BLIND_INDEX_BYTES);
    assert_eq!(hex(&index.0), "7ac0");
    assert_eq!(
        hex(&keys.lookup_hash(&acme, "userId", "u-1").0),
        "bc8cfa828760b89d3a3958e199076dd5fb8223ebc55f13b4a1f05b21641d6e64"
    );
}

#[test]
fn blind_indexes_separate_fields() {
    let keys = fixed_keys();
    let acme = tenant("acme");
    // 16-bit buckets collide by chance one time in 65,536; over these fixed values, with a fixed
    // key, none does, and all would if the field were left out of the input.
    for value in ["+493012345678", "jane@example.com", "x", ""] {
        assert_ne!(
            keys.blind_index(&acme, BlindField::Email, value),
            keys.blind_index(&acme, BlindField::Phone, value),
            "{value}"
        );
    }
}

#[test]
fn lookup_hashes_separate_kinds_and_values() {
    let keys = fixed_keys();
    let acme = tenant("acme");
    let user = keys.lookup_hash(&acme, "userId", "u-1");
    assert_ne!(user, keys.lookup_hash(&acme, "anonymousId", "u-1"));
    assert_ne!(user, keys.lookup_hash(&acme, "userId", "u-2"));
    // Length prefixing: the boundary between kind and value matters.
    assert_ne!(
        keys.lookup_hash(&acme, "ab", "c"),
        keys.lookup_hash(&acme, "a", "bc")
    );
    assert_eq!(format!("{user:?}"), format!("LookupHash({})", hex(&user.0)));
}

#[test]
fn derived_values_are_deterministic_and_survive_reopening() {
    let dir = tempdir().unwrap();
    let root = RootKey::generate().unwrap();
    let root_text = root.to_base64();
    let subject = new_subject();
    let acme = tenant("acme");

    let vault = open_vault(dir.path(), root);
    let tenant_vault = vault.tenant(&acme).unwrap();
    let pseudonym = tenant_vault.pseudonym(subject);
    let index = tenant_vault.blind_index(BlindField::Email, "jane@example.com");
    let lookup = tenant_vault.lookup_hash("userId", "u-1");
    assert_eq!(tenant_vault.pseudonym(subject), pseudonym);
    assert_eq!(
        tenant_vault.blind_index(BlindField::Email, "jane@example.com"),
        index
    );
    assert_eq!(tenant_vault.lookup_hash("userId", "u-1"), lookup);
    drop((tenant_vault, vault));

    let vault = open_vault(dir.path(), RootKey::from_base64(&root_text).unwrap());
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert_eq!(tenant_vault.pseudonym(subject), pseudonym);
    assert_eq!(
        tenant_vault.blind_index(BlindField::Email, "jane@example.com"),
        index
    );
    assert_eq!(tenant_vault.lookup_hash("userId", "u-1"), lookup);
}

#[test]
fn derived_values_stay_when_the_root_key_changes() {
    let dir = tempdir().unwrap();
    let old = RootKey::generate().unwrap();
    let old_text = old.to_base64();
    let subject = new_subject();
    let acme = tenant("acme");
    let vault = open_vault(dir.path(), old);
    let pseudonym = vault.tenant(&acme).unwrap().pseudonym(subject);
    let lookup = vault.tenant(&acme).unwrap().lookup_hash("userId", "u-1");
    drop(vault);

    let keyring = Keyring::new(RootKey::generate().unwrap())
        .with_previous(RootKey::from_base64(&old_text).unwrap());
    let vault = Vault::open(dir.path(), keyring).unwrap();
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert_eq!(tenant_vault.pseudonym(subject), pseudonym);
    assert_eq!(tenant_vault.lookup_hash("userId", "u-1"), lookup);
}

#[test]
fn tenants_do_not_share_derived_values() {
    let dir = tempdir().unwrap();
    let vault = open_vault(dir.path(), RootKey::generate().unwrap());
    let a = vault.tenant(&tenant("a")).unwrap();
    let b = vault.tenant(&tenant("b")).unwrap();
    let subject = new_subject();
    assert_ne!(a.pseudonym(subject), b.pseudonym(subject));
    assert_ne!(
        a.lookup_hash("userId", "u-1"),
        b.lookup_hash("userId", "u-1")
    );
    // Independent 16-bit buckets agree by chance once in 65,536 values; over 32 values they all
    // agree only if the tenants shared a key.
    let values: Vec<String> = (0..32).map(|i| format!("user{i}@example.com")).collect();
    assert!(values.iter().any(|value| {
        a.blind_index(BlindField::Email, value) != b.blind_index(BlindField::Email, value)
    }));
    assert_ne!(a.pseudonym(subject), a.pseudonym(new_subject()));
}

#[test]
fn tenant_vaults_are_cached() {
    let dir = tempdir().unwrap();
    let vault = open_vault(dir.path(), RootKey::generate().unwrap());
    let first = vault.tenant(&tenant("acme")).unwrap();
    let second = vault.tenant(&tenant("acme")).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &second));
    assert_eq!(first.tenant().as_str(), "acme");
    assert_eq!(vault.keys_dir(), dir.path());
}

#[test]
fn log_signing_keys_sign_and_verify_and_differ_per_log() {
    let dir = tempfile::tempdir().unwrap();
    let vault = crate::Vault::open(
        dir.path(),
        crate::Keyring::new(crate::RootKey::generate().unwrap()),
    )
    .unwrap();
    let tenant: custodia_core::TenantId = "default".parse().unwrap();
    let keys = vault.tenant(&tenant).unwrap();
    let ledger = keys.log_signing_key("ledger").unwrap();
    let audit = keys.log_signing_key("audit").unwrap();
    assert_ne!(ledger.public_key(), audit.public_key());
    assert_eq!(
        ledger.public_key(),
        keys.log_signing_key("ledger").unwrap().public_key(),
        "deterministic"
    );
    let sig = ledger.sign(b"checkpoint");
    assert!(crate::verify_ed25519(
        &ledger.public_key(),
        b"checkpoint",
        &sig
    ));
    assert!(!crate::verify_ed25519(
        &ledger.public_key(),
        b"checkpoinT",
        &sig
    ));
    assert!(!crate::verify_ed25519(
        &audit.public_key(),
        b"checkpoint",
        &sig
    ));
    let mut bad = sig;
    bad[0] ^= 1;
    assert!(!crate::verify_ed25519(
        &ledger.public_key(),
        b"checkpoint",
        &bad
    ));
}

#[test]
fn ed25519_matches_rfc8032_test_1() {
    // RFC 8032 section 7.1, TEST 1 (empty message).
    let seed: [u8; 32] = hex32("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
    let key = crate::SigningKey::from_seed(&seed).unwrap();
    assert_eq!(
        key.public_key(),
        hex32("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    );
    let sig = key.sign(b"");
    let expected = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";
    let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, expected);
    assert!(
        !format!("{key:?}").contains("9d61b19d"),
        "Debug shows no seed"
    );
}

#[test]
fn sha256_parts_equals_sha256_of_the_concatenation() {
    assert_eq!(
        crate::sha256_parts(&[b"ab", b"", b"c"]),
        crate::sha256(b"abc")
    );
}

fn hex32(text: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}
