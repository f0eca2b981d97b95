//! Root-key rotation and the tombstone list: after a rotation the old root key opens nothing in
//! the live key store, a key-store copy made before an erasure opens nothing with the new root
//! key, every live subject still opens, and tombstones survive reopening.

use std::fs;

use custodia_core::Timestamp;
use tempfile::tempdir;

use super::{new_subject, open_vault, tenant};
use crate::{Keyring, RootKey, Vault, VaultError};

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn dup(key: &RootKey) -> RootKey {
    RootKey::from_base64(&key.to_base64()).unwrap()
}

#[test]
fn rotation_rewraps_every_live_key_and_retires_the_old_root_key() {
    let dir = tempdir().unwrap();
    let keys = dir.path().join("keys");
    let backup = dir.path().join("keys-backup");
    let old_root = RootKey::generate().unwrap();
    let new_root = RootKey::generate().unwrap();
    let acme = tenant("acme");
    let (kept, erased) = (new_subject(), new_subject());

    let (kept_key, erased_key) = {
        let vault = open_vault(&keys, dup(&old_root));
        let tv = vault.tenant(&acme).unwrap();
        (
            tv.create_data_key(kept).unwrap(),
            tv.create_data_key(erased).unwrap(),
        )
    };
    // A key-store backup taken before the erasure still holds the erased subject's key.
    copy_dir(&keys, &backup);

    {
        let vault = open_vault(&keys, dup(&old_root));
        let tv = vault.tenant(&acme).unwrap();
        assert!(tv.destroy_data_key(erased).unwrap());
    }
    // Rotate: the keyring holds the new key as current and the old one to unwrap with.
    {
        let vault = Vault::open(
            &keys,
            Keyring::new(dup(&new_root)).with_previous(dup(&old_root)),
        )
        .unwrap();
        let tv = vault.tenant(&acme).unwrap();
        assert_eq!(
            tv.rotate_wrapping().unwrap(),
            2,
            "tenant secret and one live key"
        );
        assert_eq!(tv.rotate_wrapping().unwrap(), 0, "idempotent");
    }

    // The live store opens with the new key alone, and the surviving subject's key is the same.
    {
        let vault = open_vault(&keys, dup(&new_root));
        let tv = vault.tenant(&acme).unwrap();
        assert_eq!(tv.data_key(kept).unwrap().as_bytes(), kept_key.as_bytes());
        assert!(matches!(tv.data_key(erased), Err(VaultError::KeyNotFound)));
    }
    // The old root key, retired, opens nothing current.
    assert!(matches!(
        Vault::open(&keys, Keyring::new(dup(&old_root)))
            .unwrap()
            .tenant(&acme),
        Err(VaultError::WrongRootKey { .. })
    ));
    // The pre-erasure backup with the new root key: nothing opens, not even its header.
    assert!(matches!(
        Vault::open(&backup, Keyring::new(new_root))
            .unwrap()
            .tenant(&acme),
        Err(VaultError::WrongRootKey { .. })
    ));
    // Not vacuous: with the old root key the backup does still hold the erased key.
    let vault = open_vault(&backup, old_root);
    let tv = vault.tenant(&acme).unwrap();
    assert_eq!(
        tv.data_key(erased).unwrap().as_bytes(),
        erased_key.as_bytes()
    );
}

#[test]
fn tombstones_are_appended_durably_and_listed_in_order() {
    let dir = tempdir().unwrap();
    let root = RootKey::generate().unwrap();
    let acme = tenant("acme");
    let (a, b) = (new_subject(), new_subject());
    {
        let vault = open_vault(dir.path(), dup(&root));
        let tv = vault.tenant(&acme).unwrap();
        assert!(tv.tombstones().unwrap().is_empty());
        tv.add_tombstone(a, Timestamp::from_unix_micros(1)).unwrap();
        tv.add_tombstone(b, Timestamp::from_unix_micros(2)).unwrap();
    }
    // A torn append (crash mid-write) is ignored, then overwritten by the next append.
    let path = dir.path().join("acme.tombstones");
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[9; 5]);
    fs::write(&path, bytes).unwrap();
    let vault = open_vault(dir.path(), root);
    let tv = vault.tenant(&acme).unwrap();
    assert_eq!(
        tv.tombstones().unwrap(),
        vec![
            (a, Timestamp::from_unix_micros(1)),
            (b, Timestamp::from_unix_micros(2))
        ]
    );
    let c = new_subject();
    tv.add_tombstone(c, Timestamp::from_unix_micros(3)).unwrap();
    assert_eq!(tv.tombstones().unwrap().len(), 3);
    assert_eq!(fs::metadata(&path).unwrap().len(), 72);
}
