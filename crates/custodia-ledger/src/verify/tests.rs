//! Tamper tests: flip one byte in an entry, a stored node or a checkpoint, cut the log, and
//! check that verification names exactly what was changed.

use std::fs::{self, OpenOptions};
use std::io::Write;

use custodia_vault::SigningKey;

use super::*;
use crate::log::{FORMAT, stored_hash_index};
use crate::{Log, NoteSigner};

fn signer(seed: u8) -> NoteSigner {
    NoteSigner::new(
        "custodia.test/t/ledger",
        SigningKey::from_seed(&[seed; 32]).unwrap(),
    )
    .unwrap()
}

fn entry(i: u64) -> Vec<u8> {
    format!("entry number {i}").into_bytes()
}

/// A closed log of `n` entries with checkpoints at each size in `checkpoint_at`.
fn build(n: u64, checkpoint_at: &[u64]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let signer = signer(1);
    for i in 0..n {
        log.append(&[entry(i)]).unwrap();
        if checkpoint_at.contains(&(i + 1)) {
            log.checkpoint(&signer).unwrap();
        }
    }
    dir
}

fn key() -> VerifierKey {
    signer(1).verifier_key()
}

fn flip(path: &Path, offset: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn offset_of(dir: &Path, seq: u64) -> u64 {
    let bytes = fs::read(dir.join(OFFSETS)).unwrap();
    let at = 8 * seq as usize;
    u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn an_untouched_log_verifies() {
    let dir = build(40, &[1, 16, 17, 40]);
    let report = verify_dir(dir.path(), &key()).unwrap();
    assert_eq!(report.n_entries, 40);
    assert_eq!(report.n_checkpoints, 4);
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(report.root, log.root(40).unwrap());

    let empty = tempfile::tempdir().unwrap();
    drop(Log::open(empty.path()).unwrap());
    let report = verify_dir(empty.path(), &key()).unwrap();
    assert_eq!((report.n_entries, report.n_checkpoints), (0, 0));
    assert_eq!(report.root, merkle::empty_root());
}

#[test]
fn a_flipped_entry_byte_names_the_entry() {
    let dir = build(40, &[20, 40]);
    flip(&dir.path().join(ENTRIES), offset_of(dir.path(), 17) + 4 + 3);
    assert_eq!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::EntryHash { seq: 17 })
    );
    assert_eq!(
        VerifyFailure::EntryHash { seq: 17 }.to_string(),
        "entry 17: stored leaf hash does not match the entry bytes"
    );
}

#[test]
fn the_last_entry_without_a_sibling_is_named_too() {
    let dir = build(41, &[]);
    flip(&dir.path().join(ENTRIES), offset_of(dir.path(), 40) + 4);
    assert_eq!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::EntryHash { seq: 40 })
    );
}

#[test]
fn a_flipped_node_byte_names_the_node() {
    for (level, index) in [(0u32, 17u64), (0, 18), (1, 5), (3, 2), (5, 0)] {
        let dir = build(40, &[40]);
        flip(
            &dir.path().join(HASHES),
            32 * stored_hash_index(level, index) + 9,
        );
        assert_eq!(
            verify_dir(dir.path(), &key()),
            Err(VerifyFailure::NodeHash { level, index }),
            "node ({level}, {index})"
        );
    }
}

#[test]
fn a_flipped_checkpoint_byte_names_the_checkpoint() {
    let dir = build(30, &[10, 20, 30]);
    let path = dir.path().join(CHECKPOINTS);
    let bytes = fs::read(&path).unwrap();
    // In the second record's signature, a base64 character turned into another one.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let second = text.match_indices("\u{2014} ").nth(1).unwrap().0;
    let at = second + "\u{2014} custodia.test/t/ledger ".len() + 20;
    let mut tampered = bytes.clone();
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    fs::write(&path, &tampered).unwrap();
    assert_eq!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::CheckpointSignature {
            tree_size: 20,
            key: "custodia.test/t/ledger".to_owned()
        })
    );

    // A flipped root character that leaves the record unparseable is named by position.
    let mut tampered = bytes.clone();
    let root_line = text.find("\n30\n").unwrap() + 4;
    tampered[root_line + 43] = b'x';
    fs::write(&path, &tampered).unwrap();
    assert!(matches!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::CheckpointMalformed { position: 3, .. })
    ));
}

#[test]
fn a_checkpoint_under_another_key_fails() {
    let dir = build(5, &[5]);
    assert_eq!(
        verify_dir(dir.path(), &signer(2).verifier_key()),
        Err(VerifyFailure::CheckpointSignature {
            tree_size: 5,
            key: "custodia.test/t/ledger".to_owned()
        })
    );
}

fn append_checkpoint_record(dir: &Path, checkpoint: &Checkpoint) {
    let text = checkpoint.to_text();
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.join(CHECKPOINTS))
        .unwrap();
    file.write_all(&(text.len() as u32).to_be_bytes()).unwrap();
    file.write_all(text.as_bytes()).unwrap();
}

#[test]
fn a_signed_root_that_is_not_the_logs_is_named() {
    // The key signed a root for size 12 that is not the root of the log's first 12 entries
    // (a fork, or entries rewritten together with their hashes).
    let dir = build(15, &[10]);
    let forged = signer(1).sign(12, &[0x42; 32]);
    append_checkpoint_record(dir.path(), &forged);
    assert_eq!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::CheckpointRoot { tree_size: 12 })
    );
}

#[test]
fn checkpoint_sizes_must_grow() {
    let dir = build(15, &[10]);
    let log = Log::open(dir.path()).unwrap();
    let older = signer(1).sign(4, &log.root(4).unwrap());
    drop(log);
    append_checkpoint_record(dir.path(), &older);
    assert_eq!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::CheckpointOrder {
            tree_size: 4,
            previous: 10
        })
    );
}

#[test]
fn truncation_below_the_latest_checkpoint_is_detected() {
    let dir = build(25, &[10, 25]);
    // Roll the log back to 19 entries, consistently in every file.
    let cut_at = offset_of(dir.path(), 19);
    set_len(&dir.path().join(ENTRIES), cut_at);
    set_len(&dir.path().join(OFFSETS), 8 * 19);
    set_len(
        &dir.path().join(HASHES),
        32 * crate::log::stored_hash_count(19),
    );
    let failure = verify_dir(dir.path(), &key()).unwrap_err();
    assert_eq!(
        failure,
        VerifyFailure::Truncated {
            checkpoint_size: 25,
            n_entries: 19
        }
    );
    assert_eq!(
        failure.to_string(),
        "log truncated: checkpoint at tree size 25 but the log holds only 19 entries"
    );
    // Cutting only the hashes (or only the offsets) shortens the log just the same.
    let dir = build(25, &[25]);
    set_len(&dir.path().join(HASHES), 32 * 40);
    assert!(matches!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::Truncated {
            checkpoint_size: 25,
            ..
        })
    ));
}

#[test]
fn broken_record_structure_is_named() {
    let dir = build(10, &[]);
    let entries = dir.path().join(ENTRIES);
    let len = fs::metadata(&entries).unwrap().len();
    set_len(&entries, len - 2);
    assert_eq!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::EntryTruncated { seq: 9 })
    );

    let dir = build(10, &[]);
    flip(&dir.path().join(OFFSETS), 8 * 6 + 7);
    assert!(matches!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::EntryOffset { seq: 6, .. })
    ));

    let dir = build(10, &[]);
    // A length prefix made huge, or just longer than the file.
    flip(&dir.path().join(ENTRIES), offset_of(dir.path(), 3));
    assert!(matches!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::EntryTooLarge { seq: 3, .. })
    ));
    let dir = build(10, &[]);
    flip(&dir.path().join(ENTRIES), offset_of(dir.path(), 3) + 1);
    assert_eq!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::EntryTruncated { seq: 3 })
    );
}

#[test]
fn a_directory_that_is_no_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::Format { .. })
    ));
    let dir = build(2, &[]);
    fs::write(dir.path().join(FORMAT), "other\n").unwrap();
    assert!(matches!(
        verify_dir(dir.path(), &key()),
        Err(VerifyFailure::Format { .. })
    ));
}

#[test]
fn an_unrecovered_torn_tail_is_outside_the_log() {
    // A crash's tail past what offsets and hashes cover: not part of the log (open cuts it).
    let dir = build(12, &[12]);
    let mut file = OpenOptions::new()
        .append(true)
        .open(dir.path().join(ENTRIES))
        .unwrap();
    file.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
    let report = verify_dir(dir.path(), &key()).unwrap();
    assert_eq!(report.n_entries, 12);
}
