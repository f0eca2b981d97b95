//! Root keys: base64 parsing, ids, and key files with strict permissions.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use tempfile::tempdir;

use super::{base64, fixed_root_key, hex};
use crate::{RootKey, VaultError};

#[test]
fn root_key_id_known_answer() {
    // First 8 bytes of SHA-256(lp("custodia root key id v1") ‖ lp(00 01 … 1f)), from Python.
    let key = fixed_root_key();
    assert_eq!(key.id().to_string(), "281653044f9d1b88");
    assert_eq!(format!("{:?}", key.id()), "RootKeyId(281653044f9d1b88)");
}

#[test]
fn base64_round_trips_and_trims() {
    let key = RootKey::generate().unwrap();
    let text = key.to_base64();
    assert_eq!(text.len(), 44);
    let again = RootKey::from_base64(&format!("\n  {}\t\n", text.as_str())).unwrap();
    assert_eq!(again.id(), key.id());
    assert_eq!(again.as_bytes(), key.as_bytes());
}

#[test]
fn base64_must_be_32_bytes() {
    for bad in [
        String::new(),
        "not base64!".to_owned(),
        base64(&[1; 31]),
        base64(&[1; 33]),
        base64(&[1; 64]),
        base64(&[1; 100]),
        base64(&[1; 32]).trim_end_matches('=').to_owned() + "#",
    ] {
        assert!(
            matches!(RootKey::from_base64(&bad), Err(VaultError::InvalidRootKey)),
            "{bad:?}"
        );
    }
}

#[test]
fn key_file_round_trips_with_mode_0600() {
    let dir = tempdir().unwrap();
    let path = dir.path().join("root.key");
    let created = RootKey::create_file(&path).unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(text, format!("{}\n", created.to_base64().as_str()));
    let read = RootKey::read_file(&path).unwrap();
    assert_eq!(read.id(), created.id());
    assert_eq!(read.as_bytes(), created.as_bytes());
}

#[test]
fn key_file_readable_by_others_is_refused() {
    let dir = tempdir().unwrap();
    let path = dir.path().join("root.key");
    let created = RootKey::create_file(&path).unwrap();
    for mode in [0o644, 0o640, 0o604, 0o620] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        match RootKey::read_file(&path) {
            Err(VaultError::RootKeyFilePermissions { path: refused }) => assert_eq!(refused, path),
            other => panic!("mode {mode:o}: expected a permission refusal, got {other:?}"),
        }
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
    assert_eq!(RootKey::read_file(&path).unwrap().id(), created.id());
}

#[test]
fn create_file_never_overwrites() {
    let dir = tempdir().unwrap();
    let path = dir.path().join("root.key");
    let first = RootKey::create_file(&path).unwrap();
    let before = fs::read(&path).unwrap();
    match RootKey::create_file(&path) {
        Err(VaultError::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(fs::read(&path).unwrap(), before);
    assert_eq!(RootKey::read_file(&path).unwrap().id(), first.id());
}

#[test]
fn key_file_with_garbage_is_invalid() {
    let dir = tempdir().unwrap();
    let path = dir.path().join("root.key");
    let garbage = [0xffu8, 0xfe, 0x00, 0x41];
    fs::write(&path, garbage).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let err = RootKey::read_file(&path).unwrap_err();
    assert!(matches!(err, VaultError::InvalidRootKey), "{err:?}");
    assert!(!err.to_string().contains(&hex(&garbage)));
}

#[test]
fn missing_key_file_is_an_io_error_naming_the_path() {
    let dir = tempdir().unwrap();
    let path = dir.path().join("absent.key");
    let err = RootKey::read_file(&path).unwrap_err();
    assert!(
        matches!(&err, VaultError::Io { path: p, .. } if *p == path),
        "{err:?}"
    );
    assert!(err.to_string().contains("absent.key"));
}
