//! The key store: persistence across reopening, erasure in place, slot reuse, locking, wrong
//! root keys, the wrap counter, and what happens to damaged files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use custodia_core::{LengthPrefixed, SubjectId, TenantId};
use tempfile::tempdir;

use super::{assert_opaque, contains, fixed_root_key, new_subject, open_vault, tenant};
use crate::key_store::{
    H_COUNTER, H_COUNTER_ROOT_ID, HEADER_LEN, S_WRAPPED, SLOT_LEN, WRAP_LIMIT, slot_offset,
};
use crate::{Aad, DataKey, Keyring, RootKey, RootKeyId, TenantVault, Vault, VaultError};

fn store_path(dir: &Path, tenant: &str) -> PathBuf {
    dir.join(format!("{tenant}.keys"))
}

fn read_slot(path: &Path, slot_idx: u64) -> Vec<u8> {
    let bytes = fs::read(path).unwrap();
    let start = slot_offset(slot_idx) as usize;
    bytes[start..start + SLOT_LEN].to_vec()
}

fn patch(path: &Path, offset: usize, new_bytes: &[u8]) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset..offset + new_bytes.len()].copy_from_slice(new_bytes);
    fs::write(path, bytes).unwrap();
}

fn header_counter(path: &Path) -> (RootKeyId, u64) {
    let bytes = fs::read(path).unwrap();
    let root_id = RootKeyId(
        bytes[H_COUNTER_ROOT_ID..H_COUNTER_ROOT_ID + 8]
            .try_into()
            .unwrap(),
    );
    let counter = u64::from_be_bytes(bytes[H_COUNTER..H_COUNTER + 8].try_into().unwrap());
    (root_id, counter)
}

fn seal_for(
    tenant_vault: &TenantVault,
    key: &DataKey,
    subject: SubjectId,
    plaintext: &[u8],
) -> Vec<u8> {
    key.seal(
        &Aad {
            tenant: tenant_vault.tenant(),
            subject,
            kind: "trait:email",
        },
        plaintext,
    )
    .unwrap()
}

fn open_for(
    tenant_vault: &TenantVault,
    subject: SubjectId,
    sealed: &[u8],
) -> Result<Vec<u8>, VaultError> {
    let key = tenant_vault.data_key(subject)?;
    let aad = Aad {
        tenant: tenant_vault.tenant(),
        subject,
        kind: "trait:email",
    };
    key.open(&aad, sealed).map(|plaintext| plaintext.to_vec())
}

/// A root key that can be handed to several vaults in turn.
struct Root(zeroize::Zeroizing<String>);

impl Root {
    fn new() -> Root {
        Root(RootKey::generate().unwrap().to_base64())
    }
    fn key(&self) -> RootKey {
        RootKey::from_base64(&self.0).unwrap()
    }
}

#[test]
fn keys_survive_reopening() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let subjects: Vec<SubjectId> = (0..20).map(|_| new_subject()).collect();
    let mut sealed = Vec::new();
    {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        for (i, &subject) in subjects.iter().enumerate() {
            let key = tenant_vault.create_data_key(subject).unwrap();
            sealed.push(seal_for(
                &tenant_vault,
                &key,
                subject,
                format!("value {i}").as_bytes(),
            ));
        }
        assert_eq!(tenant_vault.n_data_keys(), 20);
    }
    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert_eq!(tenant_vault.n_data_keys(), 20);
    for (i, (&subject, sealed)) in subjects.iter().zip(&sealed).enumerate() {
        assert_eq!(
            open_for(&tenant_vault, subject, sealed).unwrap(),
            format!("value {i}").as_bytes()
        );
    }
    let len = fs::metadata(store_path(dir.path(), "acme")).unwrap().len();
    assert_eq!(len, (HEADER_LEN + 20 * SLOT_LEN) as u64);
}

#[test]
fn a_hold_key_outlives_the_retired_data_key_and_survives_reopening() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let subject = new_subject();
    let (old, kept) = {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        let key = tenant_vault.create_data_key(subject).unwrap();
        let old = seal_for(&tenant_vault, &key, subject, b"before the erasure");
        assert!(!tenant_vault.has_hold_key(subject).unwrap());
        let hold = tenant_vault.hold_key(subject).unwrap();
        // Asking again gives the same key, not a second one.
        let again = tenant_vault.hold_key(subject).unwrap();
        let kept = seal_for(&tenant_vault, &hold, subject, b"kept invoice");
        assert_eq!(
            open_for_key(&tenant_vault, &again, subject, &kept),
            b"kept invoice"
        );
        assert_eq!(tenant_vault.n_data_keys(), 2);
        // While the data key lives, it is the subject's key.
        assert_eq!(
            open_for(&tenant_vault, subject, &old).unwrap(),
            b"before the erasure"
        );
        assert!(tenant_vault.retire_data_key(subject).unwrap());
        (old, kept)
    };
    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert!(matches!(
        tenant_vault.primary_data_key(subject),
        Err(VaultError::KeyNotFound)
    ));
    // data_key now falls back to the hold key: the kept record opens, the old one does not.
    assert_eq!(
        open_for(&tenant_vault, subject, &kept).unwrap(),
        b"kept invoice"
    );
    assert!(open_for(&tenant_vault, subject, &old).is_err());
    // Destroying the subject's keys takes the hold key too.
    assert!(tenant_vault.destroy_data_key(subject).unwrap());
    assert!(!tenant_vault.has_hold_key(subject).unwrap());
    assert!(matches!(
        tenant_vault.data_key(subject),
        Err(VaultError::KeyNotFound)
    ));
    assert_eq!(tenant_vault.n_data_keys(), 0);
}

fn open_for_key(
    tenant_vault: &TenantVault,
    key: &DataKey,
    subject: SubjectId,
    sealed: &[u8],
) -> Vec<u8> {
    let aad = Aad {
        tenant: tenant_vault.tenant(),
        subject,
        kind: "trait:email",
    };
    key.open(&aad, sealed).unwrap().to_vec()
}

#[test]
fn files_are_private() {
    let dir = tempdir().unwrap();
    let keys_dir = dir.path().join("nested").join("keys");
    let vault = open_vault(&keys_dir, RootKey::generate().unwrap());
    vault.tenant(&tenant("acme")).unwrap();
    assert_eq!(
        fs::metadata(&keys_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let path = store_path(&keys_dir, "acme");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Only the store file is left behind, no temporary file.
    let names: Vec<_> = fs::read_dir(&keys_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["acme.keys"]);
}

#[test]
fn destroying_a_key_erases_its_slot_in_place() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let path = store_path(dir.path(), "acme");
    let subjects: Vec<SubjectId> = (0..5).map(|_| new_subject()).collect();
    let victim = subjects[2];
    let mut sealed = Vec::new();
    {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        for &subject in &subjects {
            let key = tenant_vault.create_data_key(subject).unwrap();
            sealed.push(seal_for(&tenant_vault, &key, subject, b"jane@example.com"));
        }
        let slot_idx = tenant_vault.key_store().slot_of(victim).unwrap();
        let slot = read_slot(&path, slot_idx);
        let wrapped = &slot[S_WRAPPED..S_WRAPPED + 48];
        assert!(contains(&fs::read(&path).unwrap(), wrapped));
        let len_before = fs::metadata(&path).unwrap().len();

        assert!(tenant_vault.destroy_data_key(victim).unwrap());
        let file = fs::read(&path).unwrap();
        assert!(
            !contains(&file, wrapped),
            "the wrapped key is still in the file"
        );
        assert!(
            !contains(&file, &victim.to_bytes()),
            "the subject id is still in the file"
        );
        assert_eq!(read_slot(&path, slot_idx), vec![0u8; SLOT_LEN]);
        assert!(matches!(
            tenant_vault.data_key(victim),
            Err(VaultError::KeyNotFound)
        ));
        assert!(!tenant_vault.destroy_data_key(victim).unwrap());
        assert_eq!(tenant_vault.n_data_keys(), 4);
        for (&subject, sealed) in subjects.iter().zip(&sealed) {
            if subject != victim {
                assert_eq!(
                    open_for(&tenant_vault, subject, sealed).unwrap(),
                    b"jane@example.com"
                );
            }
        }

        // The next key takes the freed slot; the file does not grow.
        let newcomer = new_subject();
        tenant_vault.create_data_key(newcomer).unwrap();
        assert_eq!(tenant_vault.key_store().slot_of(newcomer), Some(slot_idx));
        assert_eq!(fs::metadata(&path).unwrap().len(), len_before);
        assert!(tenant_vault.destroy_data_key(newcomer).unwrap());
    }
    // The erasure holds after reopening.
    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert!(matches!(
        tenant_vault.data_key(victim),
        Err(VaultError::KeyNotFound)
    ));
    assert!(matches!(
        open_for(&tenant_vault, victim, &sealed[2]),
        Err(VaultError::KeyNotFound)
    ));
    assert_eq!(tenant_vault.n_data_keys(), 4);
    for (&subject, sealed) in subjects.iter().zip(&sealed) {
        if subject != victim {
            assert_eq!(
                open_for(&tenant_vault, subject, sealed).unwrap(),
                b"jane@example.com"
            );
        }
    }
    // A subject whose key was destroyed may get a new one, which does not open the old data.
    let key = tenant_vault.create_data_key(victim).unwrap();
    assert_opaque(key.open(
        &Aad {
            tenant: &acme,
            subject: victim,
            kind: "trait:email",
        },
        &sealed[2],
    ));
}

#[test]
fn a_subject_gets_one_key() {
    let dir = tempdir().unwrap();
    let vault = open_vault(dir.path(), RootKey::generate().unwrap());
    let tenant_vault = vault.tenant(&tenant("acme")).unwrap();
    let subject = new_subject();
    assert!(matches!(
        tenant_vault.data_key(subject),
        Err(VaultError::KeyNotFound)
    ));
    tenant_vault.create_data_key(subject).unwrap();
    assert!(matches!(
        tenant_vault.create_data_key(subject),
        Err(VaultError::DataKeyExists)
    ));
    assert_eq!(tenant_vault.n_data_keys(), 1);
}

#[test]
fn a_second_vault_on_the_same_store_is_locked_out() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let first = open_vault(dir.path(), root.key());
    let first_tenant = first.tenant(&acme).unwrap();

    let second = open_vault(dir.path(), root.key());
    match second.tenant(&acme) {
        Err(err @ VaultError::KeyStoreLocked { .. }) => {
            assert!(err.to_string().contains("acme.keys"), "{err}");
        }
        other => panic!("expected KeyStoreLocked, got {other:?}"),
    }
    // Other tenants' stores are separate.
    second.tenant(&tenant("other")).unwrap();

    // The lock goes with the last handle on the first store.
    drop(first);
    assert!(matches!(
        second.tenant(&acme),
        Err(VaultError::KeyStoreLocked { .. })
    ));
    drop(first_tenant);
    second.tenant(&acme).unwrap();
}

#[test]
fn a_different_root_key_does_not_open_the_store() {
    let dir = tempdir().unwrap();
    let old = Root::new();
    let acme = tenant("acme");
    let subject = new_subject();
    let sealed = {
        let vault = open_vault(dir.path(), old.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        let key = tenant_vault.create_data_key(subject).unwrap();
        seal_for(&tenant_vault, &key, subject, b"secret")
    };

    let new = Root::new();
    let vault = open_vault(dir.path(), new.key());
    match vault.tenant(&acme) {
        Err(err @ VaultError::WrongRootKey { .. }) => {
            let VaultError::WrongRootKey { id, .. } = &err else {
                unreachable!()
            };
            assert_eq!(*id, old.key().id());
            assert!(
                err.to_string().contains("does not open the key store"),
                "{err}"
            );
        }
        other => panic!("expected WrongRootKey, got {other:?}"),
    }
    drop(vault);

    // With the old key as a previous key, the store opens; new keys are wrapped under the new one.
    let keyring = Keyring::new(new.key()).with_previous(old.key());
    let newcomer = new_subject();
    {
        let vault = Vault::open(dir.path(), keyring).unwrap();
        let tenant_vault = vault.tenant(&acme).unwrap();
        assert_eq!(
            open_for(&tenant_vault, subject, &sealed).unwrap(),
            b"secret"
        );
        tenant_vault.create_data_key(newcomer).unwrap();
        let slot = read_slot(
            &store_path(dir.path(), "acme"),
            tenant_vault.key_store().slot_of(newcomer).unwrap(),
        );
        assert_eq!(slot[18..26], new.key().id().0);
    }
    // Without the new key, that one slot names a root key the keyring lacks; the rest still opens.
    let vault = open_vault(dir.path(), old.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    match tenant_vault.data_key(newcomer) {
        Err(VaultError::UnknownRootKey { id }) => assert_eq!(id, new.key().id()),
        other => panic!("expected UnknownRootKey, got {other:?}"),
    }
    assert_eq!(
        open_for(&tenant_vault, subject, &sealed).unwrap(),
        b"secret"
    );
}

#[test]
fn the_file_format_matches_its_documentation() {
    // Unwraps a slot independently, with the wrapping key and associated data computed from the
    // documented formulas (the key from Python's hmac), and compares with `data_key`.
    let wrapping_key = "c13b1b9a08a6f02609f676843a3b49fd258f29be57ce89b43a1465334650257a";
    let wrapping_key: Vec<u8> = (0..64)
        .step_by(2)
        .map(|i| u8::from_str_radix(&wrapping_key[i..i + 2], 16).unwrap())
        .collect();
    let dir = tempdir().unwrap();
    let root = fixed_root_key();
    let root_id = root.id();
    let vault = open_vault(dir.path(), root);
    let acme: TenantId = tenant("acme");
    let tenant_vault = vault.tenant(&acme).unwrap();
    let subject = new_subject();
    let key = tenant_vault.create_data_key(subject).unwrap();
    let path = store_path(dir.path(), "acme");
    let file = fs::read(&path).unwrap();

    assert_eq!(&file[0..8], b"CSTDKEYS");
    assert_eq!(file[8..10], [0, 1]);
    assert_eq!(file[10..12], [0, 128]);
    assert_eq!(file[12], 1);
    assert_eq!(file[16..24], root_id.0);
    assert_eq!(header_counter(&path), (root_id, 2));
    assert!(file[100..128].iter().all(|&b| b == 0));

    let slot = &file[HEADER_LEN..HEADER_LEN + SLOT_LEN];
    assert_eq!(slot[0..2], [1, 1]);
    assert_eq!(slot[2..18], subject.to_bytes());
    assert_eq!(slot[18..26], root_id.0);
    assert!(slot[86..].iter().all(|&b| b == 0));
    let aad = LengthPrefixed::new()
        .part("custodia-dek")
        .part("acme")
        .part(subject.to_bytes())
        .part(root_id.0)
        .part([1u8])
        .into_bytes();
    let mut unwrapped = slot[38..70].to_vec();
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&wrapping_key))
        .decrypt_in_place_detached(
            Nonce::from_slice(&slot[26..38]),
            &aad,
            &mut unwrapped,
            Tag::from_slice(&slot[70..86]),
        )
        .unwrap();
    assert_eq!(unwrapped, key.as_bytes());

    // The tenant secret in the header opens under the same wrapping key and its own label.
    let aad = LengthPrefixed::new()
        .part("custodia-tenant-secret")
        .part("acme")
        .part(root_id.0)
        .part([1u8])
        .into_bytes();
    let mut secret = file[36..68].to_vec();
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&wrapping_key))
        .decrypt_in_place_detached(
            Nonce::from_slice(&file[24..36]),
            &aad,
            &mut secret,
            Tag::from_slice(&file[68..84]),
        )
        .unwrap();
}

#[test]
fn the_wrap_counter_is_persisted_and_enforced() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let path = store_path(dir.path(), "acme");
    let existing = new_subject();
    {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        assert_eq!(header_counter(&path), (root.key().id(), 1));
        tenant_vault.create_data_key(existing).unwrap();
        for _ in 0..3 {
            tenant_vault.create_data_key(new_subject()).unwrap();
        }
        // Destroying does not encrypt.
        tenant_vault.destroy_data_key(existing).unwrap();
        assert_eq!(header_counter(&path), (root.key().id(), 5));
    }
    let kept = new_subject();
    {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        tenant_vault.create_data_key(kept).unwrap();
        assert_eq!(header_counter(&path), (root.key().id(), 6));
    }

    // At the limit, no new wraps; existing keys still open.
    let mut at_limit = root.key().id().0.to_vec();
    at_limit.extend_from_slice(&WRAP_LIMIT.to_be_bytes());
    patch(&path, H_COUNTER_ROOT_ID, &at_limit);
    {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        let err = tenant_vault.create_data_key(new_subject()).unwrap_err();
        assert!(matches!(err, VaultError::WrapLimit), "{err:?}");
        assert!(err.to_string().contains("rotate the root key"));
        tenant_vault.data_key(kept).unwrap();
        assert_eq!(header_counter(&path).1, WRAP_LIMIT);
    }
    // Just below it, one more wrap is allowed.
    let mut below = root.key().id().0.to_vec();
    below.extend_from_slice(&(WRAP_LIMIT - 1).to_be_bytes());
    patch(&path, H_COUNTER_ROOT_ID, &below);
    {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        tenant_vault.create_data_key(new_subject()).unwrap();
        assert!(matches!(
            tenant_vault.create_data_key(new_subject()),
            Err(VaultError::WrapLimit)
        ));
    }

    // A count that belongs to another root key's wrapping key does not bind the current one.
    let mut other = [9u8; 8].to_vec();
    other.extend_from_slice(&WRAP_LIMIT.to_be_bytes());
    patch(&path, H_COUNTER_ROOT_ID, &other);
    let vault = open_vault(dir.path(), root.key());
    vault
        .tenant(&acme)
        .unwrap()
        .create_data_key(new_subject())
        .unwrap();
    assert_eq!(header_counter(&path), (root.key().id(), 1));
}

#[test]
fn a_damaged_slot_fails_only_its_subject() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let path = store_path(dir.path(), "acme");
    let (damaged, healthy) = (new_subject(), new_subject());
    let damaged_idx = {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        tenant_vault.create_data_key(damaged).unwrap();
        tenant_vault.create_data_key(healthy).unwrap();
        tenant_vault.key_store().slot_of(damaged).unwrap()
    };
    let offset = slot_offset(damaged_idx) as usize + S_WRAPPED + 5;
    let byte = fs::read(&path).unwrap()[offset];
    patch(&path, offset, &[byte ^ 0x10]);

    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert_opaque(tenant_vault.data_key(damaged));
    tenant_vault.data_key(healthy).unwrap();
}

#[test]
fn a_wrapped_key_moved_to_another_subject_does_not_unwrap() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let path = store_path(dir.path(), "acme");
    let (owner, thief) = (new_subject(), new_subject());
    let owner_idx = {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        tenant_vault.create_data_key(owner).unwrap();
        tenant_vault.key_store().slot_of(owner).unwrap()
    };
    patch(
        &path,
        slot_offset(owner_idx) as usize + 2,
        &thief.to_bytes(),
    );
    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert_opaque(tenant_vault.data_key(thief));
    assert!(matches!(
        tenant_vault.data_key(owner),
        Err(VaultError::KeyNotFound)
    ));
}

#[test]
fn a_store_copied_to_another_tenant_does_not_open() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    {
        let vault = open_vault(dir.path(), root.key());
        vault
            .tenant(&tenant("acme"))
            .unwrap()
            .create_data_key(new_subject())
            .unwrap();
    }
    fs::copy(
        store_path(dir.path(), "acme"),
        store_path(dir.path(), "other"),
    )
    .unwrap();
    let vault = open_vault(dir.path(), root.key());
    let err = vault.tenant(&tenant("other")).unwrap_err();
    assert!(matches!(err, VaultError::KeyStoreCorrupt { .. }), "{err:?}");
}

#[test]
fn damaged_headers_are_reported_not_repaired() {
    let root = Root::new();
    type Damage = fn(&Path);
    let cases: [(&str, Damage); 5] = [
        ("bad magic", |path| patch(path, 0, b"XXXX")),
        ("future version", |path| patch(path, 8, &[0, 2])),
        ("other slot length", |path| patch(path, 10, &[1, 0])),
        ("short file", |path| {
            let bytes = fs::read(path).unwrap();
            fs::write(path, &bytes[..HEADER_LEN - 1]).unwrap();
        }),
        ("unknown slot state", |path| patch(path, HEADER_LEN, &[7])),
    ];
    for (name, damage) in cases {
        let dir = tempdir().unwrap();
        let path = store_path(dir.path(), "acme");
        {
            let vault = open_vault(dir.path(), root.key());
            vault
                .tenant(&tenant("acme"))
                .unwrap()
                .create_data_key(new_subject())
                .unwrap();
        }
        damage(&path);
        let before = fs::read(&path).unwrap();
        let vault = open_vault(dir.path(), root.key());
        match vault.tenant(&tenant("acme")) {
            Err(err @ VaultError::KeyStoreCorrupt { .. }) => {
                assert!(err.to_string().contains("acme.keys"), "{name}: {err}");
            }
            other => panic!("{name}: expected KeyStoreCorrupt, got {other:?}"),
        }
        assert_eq!(
            fs::read(&path).unwrap(),
            before,
            "{name}: the file was changed"
        );
    }
}

#[test]
fn crash_leftovers_are_cleaned_up_on_open() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let path = store_path(dir.path(), "acme");
    let (kept, erased) = (new_subject(), new_subject());
    let erased_idx = {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        tenant_vault.create_data_key(kept).unwrap();
        tenant_vault.create_data_key(erased).unwrap();
        tenant_vault.key_store().slot_of(erased).unwrap()
    };
    // An erasure interrupted after the state byte, and an append interrupted half-way.
    patch(&path, slot_offset(erased_idx) as usize, &[0]);
    let mut bytes = fs::read(&path).unwrap();
    bytes.extend_from_slice(&[0xaa; 50]);
    fs::write(&path, bytes).unwrap();

    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert_eq!(tenant_vault.n_data_keys(), 1);
    tenant_vault.data_key(kept).unwrap();
    assert!(matches!(
        tenant_vault.data_key(erased),
        Err(VaultError::KeyNotFound)
    ));
    assert_eq!(read_slot(&path, erased_idx), vec![0u8; SLOT_LEN]);
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        (HEADER_LEN + 2 * SLOT_LEN) as u64
    );
}

#[test]
fn concurrent_creations_get_distinct_slots() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let tenant_vault = Arc::clone(&tenant_vault);
            std::thread::spawn(move || {
                (0..25)
                    .map(|_| {
                        let subject = new_subject();
                        let key = tenant_vault.create_data_key(subject).unwrap();
                        (subject, key)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let created: Vec<(SubjectId, DataKey)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().unwrap())
        .collect();
    assert_eq!(tenant_vault.n_data_keys(), 200);
    let mut slots: Vec<u64> = created
        .iter()
        .map(|(s, _)| tenant_vault.key_store().slot_of(*s).unwrap())
        .collect();
    slots.sort_unstable();
    assert_eq!(slots, (0..200).collect::<Vec<u64>>());
    drop((tenant_vault, vault));

    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    for (subject, key) in &created {
        assert_eq!(
            tenant_vault.data_key(*subject).unwrap().as_bytes(),
            key.as_bytes()
        );
    }
    assert_eq!(header_counter(&store_path(dir.path(), "acme")).1, 201);
}

/// Issue 16: a group committer writes the keys of all its new subjects with one sync; they are
/// usable at once, survive reopening, count against the wrapping budget, and a batch that
/// names a subject with a key already creates none of its keys.
#[test]
fn keys_created_together_are_all_durable_or_none_is() {
    let dir = tempdir().unwrap();
    let root = Root::new();
    let acme = tenant("acme");
    let subjects: Vec<SubjectId> = (0..5).map(|_| new_subject()).collect();
    let sealed;
    {
        let vault = open_vault(dir.path(), root.key());
        let tenant_vault = vault.tenant(&acme).unwrap();
        let (_, counter_before) = header_counter(&store_path(dir.path(), "acme"));
        tenant_vault.create_data_keys(&subjects).unwrap();
        assert_eq!(tenant_vault.n_data_keys(), 5);
        let (_, counter_after) = header_counter(&store_path(dir.path(), "acme"));
        assert_eq!(counter_after, counter_before + 5, "each wrap is counted");
        let key = tenant_vault.data_key(subjects[3]).unwrap();
        sealed = seal_for(&tenant_vault, &key, subjects[3], b"order 42");

        // One subject that already has a key: the whole call is refused, nothing is added.
        let more = [new_subject(), subjects[0], new_subject()];
        assert!(matches!(
            tenant_vault.create_data_keys(&more),
            Err(VaultError::DataKeyExists)
        ));
        assert!(matches!(
            tenant_vault.create_data_keys(&[more[0], more[0]]),
            Err(VaultError::DataKeyExists)
        ));
        assert_eq!(tenant_vault.n_data_keys(), 5);
        assert!(tenant_vault.data_key(more[0]).is_err());
    }
    let vault = open_vault(dir.path(), root.key());
    let tenant_vault = vault.tenant(&acme).unwrap();
    assert_eq!(tenant_vault.n_data_keys(), 5);
    assert_eq!(
        open_for(&tenant_vault, subjects[3], &sealed).unwrap(),
        b"order 42"
    );
}
