//! Secrets stay out of `Debug` output and error messages; the shared types are thread-safe; the
//! small helpers do what they promise.

use custodia_core::ErrorCode;
use tempfile::tempdir;

use super::{assert_hides, fixed_root_key, new_subject, open_vault, tenant};
use crate::{
    DataKey, Keyring, RootKey, RootKeyId, TenantVault, Vault, VaultError, constant_time_eq, sha256,
};

#[test]
fn root_key_prints_only_its_id() {
    let key = RootKey::generate().unwrap();
    let printed = format!("{key:?}");
    assert_eq!(printed, format!("RootKey({})", key.id()));
    assert_hides(&printed, key.as_bytes());

    let keyring = Keyring::new(key).with_previous(fixed_root_key());
    let printed = format!("{keyring:?}");
    for root in keyring.keys() {
        assert_hides(&printed, root.as_bytes());
        assert!(printed.contains(&root.id().to_string()));
    }
}

#[test]
fn data_key_prints_redacted() {
    let key = DataKey::generate().unwrap();
    assert_eq!(format!("{key:?}"), "[redacted]");
    assert_eq!(format!("{:?}", key.clone()), "[redacted]");
}

#[test]
fn vaults_print_no_key_material() {
    let dir = tempdir().unwrap();
    let root = RootKey::generate().unwrap();
    let root_bytes = *root.as_bytes();
    let vault = open_vault(dir.path(), root);
    let tenant_vault = vault.tenant(&tenant("acme")).unwrap();
    let data_key = tenant_vault.create_data_key(new_subject()).unwrap();

    let printed = format!("{vault:?} {tenant_vault:?}");
    assert_hides(&printed, &root_bytes);
    assert_hides(&printed, data_key.as_bytes());
    let secrets = tenant_vault.secrets_for_tests();
    assert_eq!(
        secrets.len(),
        6,
        "three look-up keys, the log-signing key, the search key, the wrapping key"
    );
    for secret in &secrets {
        assert_hides(&printed, secret);
    }
}

#[test]
fn errors_do_not_echo_key_text() {
    let text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg=="; // 31 bytes
    let err = RootKey::from_base64(text).unwrap_err();
    assert!(matches!(err, VaultError::InvalidRootKey));
    assert!(!err.to_string().contains(text));
    assert!(!format!("{err:?}").contains(text));
}

#[test]
fn error_codes() {
    assert_eq!(VaultError::KeyNotFound.code(), ErrorCode::SubjectNotFound);
    for err in [
        VaultError::Crypto,
        VaultError::InvalidRootKey,
        VaultError::WrapLimit,
        VaultError::DataKeyExists,
        VaultError::UnknownRootKey {
            id: RootKeyId([0; 8]),
        },
        VaultError::KeyStoreLocked { path: "k".into() },
    ] {
        assert_eq!(err.code(), ErrorCode::Internal, "{err}");
    }
}

#[test]
fn shared_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Vault>();
    check::<TenantVault>();
    check::<DataKey>();
    check::<Keyring>();
}

#[test]
fn constant_time_eq_compares_contents_and_lengths() {
    assert!(constant_time_eq(b"", b""));
    assert!(constant_time_eq(b"same bytes", b"same bytes"));
    assert!(!constant_time_eq(b"same bytes", b"same byteS"));
    assert!(!constant_time_eq(b"prefix", b"prefix and more"));
    assert!(!constant_time_eq(b"", b"\0"));
}

#[test]
fn sha256_known_answer() {
    assert_eq!(
        super::hex(&sha256(b"abc")),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
