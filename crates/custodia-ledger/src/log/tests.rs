//! The log against the reference Merkle functions, persistence across reopen, crash recovery of
//! each torn state, the lock, group commit and checkpoints.

use std::fs::OpenOptions;
use std::sync::Arc;

use custodia_vault::SigningKey;
use proptest::prelude::*;

use super::*;
use crate::merkle::{
    consistency_proof_from_leaves, inclusion_proof_from_leaves, root_from_leaves,
    verify_consistency, verify_inclusion,
};

fn entry_bytes(i: u64) -> Vec<u8> {
    // Varying lengths, including the empty entry.
    (0..(i % 7) * 3)
        .map(|j| (i as u8).wrapping_add(j as u8))
        .collect()
}

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| merkle::leaf_hash(&entry_bytes(i))).collect()
}

/// A log of `n` entries appended in batches of `batch`.
fn log_with(dir: &Path, n: u64, batch: usize) -> Log {
    let log = Log::open(dir).unwrap();
    let all: Vec<Vec<u8>> = (0..n).map(entry_bytes).collect();
    for chunk in all.chunks(batch.max(1)) {
        let first = log.tree_size();
        assert_eq!(log.append(chunk).unwrap(), first);
    }
    log
}

fn signer(seed: u8) -> NoteSigner {
    NoteSigner::new(
        "custodia.test/t/ledger",
        SigningKey::from_seed(&[seed; 32]).unwrap(),
    )
    .unwrap()
}

fn file_len_of(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

fn set_len(path: &Path, len: u64) {
    OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

fn append_raw(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn log_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Log>();
}

#[test]
fn appends_are_numbered_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.tree_size(), 0);
    assert_eq!(log.root(0).unwrap(), merkle::empty_root());
    assert_eq!(log.append(&[]).unwrap(), 0);
    assert_eq!(log.append(&[b"a".to_vec()]).unwrap(), 0);
    assert_eq!(
        log.append(&[b"b".to_vec(), vec![], b"d".to_vec()]).unwrap(),
        1
    );
    assert_eq!(log.tree_size(), 4);
    assert_eq!(log.entry(0).unwrap(), b"a");
    assert_eq!(log.entry(2).unwrap(), b"");
    assert_eq!(log.entry(3).unwrap(), b"d");
    assert_eq!(
        log.entries(1, 2).unwrap(),
        vec![(1, b"b".to_vec()), (2, vec![])]
    );
    assert_eq!(log.entries(3, 100).unwrap(), vec![(3, b"d".to_vec())]);
    assert!(log.entries(4, 10).unwrap().is_empty());
    assert!(log.entries(0, 0).unwrap().is_empty());
    assert_eq!(log.leaf_hash(1).unwrap(), merkle::leaf_hash(b"b"));
    let all: Vec<Hash> = [&b"a"[..], b"b", b"", b"d"]
        .iter()
        .map(|e| merkle::leaf_hash(e))
        .collect();
    assert_eq!(log.root(4).unwrap(), root_from_leaves(&all));
    assert_eq!(log.root(3).unwrap(), root_from_leaves(&all[..3]));

    assert!(matches!(
        log.entry(4),
        Err(LedgerError::NotFound {
            what: "entry",
            value: 4,
            tree_size: 4
        })
    ));
    assert!(matches!(
        log.leaf_hash(9),
        Err(LedgerError::NotFound { .. })
    ));
    assert!(matches!(
        log.root(5),
        Err(LedgerError::NotFound {
            what: "tree size",
            ..
        })
    ));
    assert!(matches!(
        log.inclusion_proof(0, 5),
        Err(LedgerError::NotFound { .. })
    ));
    assert!(matches!(
        log.inclusion_proof(3, 3),
        Err(LedgerError::InvalidRange { .. })
    ));
    assert!(matches!(
        log.consistency_proof(3, 2),
        Err(LedgerError::InvalidRange { .. })
    ));
    assert!(matches!(
        log.consistency_proof(1, 5),
        Err(LedgerError::NotFound { .. })
    ));
    assert!(log.consistency_proof(0, 4).unwrap().is_empty());
    assert!(log.consistency_proof(4, 4).unwrap().is_empty());

    let too_large = vec![0u8; MAX_ENTRY_LEN + 1];
    assert!(matches!(
        log.append(&[b"ok".to_vec(), too_large]),
        Err(LedgerError::EntryTooLarge { .. })
    ));
    assert_eq!(log.tree_size(), 4, "a refused batch writes nothing");
    assert_eq!(log.append(&[vec![7u8; MAX_ENTRY_LEN]]).unwrap(), 4);
    assert_eq!(log.entry(4).unwrap().len(), MAX_ENTRY_LEN);
}

#[test]
fn stored_hash_positions_follow_the_documented_order() {
    // count(n) = 2n − popcount(n); node (L, i) right after leaf (i+1)·2^L − 1.
    assert_eq!(
        (0..9).map(stored_hash_count).collect::<Vec<_>>(),
        [0, 1, 3, 4, 7, 8, 10, 11, 15]
    );
    assert_eq!(stored_hash_index(0, 0), 0);
    assert_eq!(stored_hash_index(0, 1), 1);
    assert_eq!(stored_hash_index(1, 0), 2);
    assert_eq!(stored_hash_index(0, 2), 3);
    assert_eq!(stored_hash_index(0, 3), 4);
    assert_eq!(stored_hash_index(1, 1), 5);
    assert_eq!(stored_hash_index(2, 0), 6);
    for n in 0..2000 {
        assert_eq!(entries_covered(stored_hash_count(n)), n);
        if n > 0 {
            assert_eq!(entries_covered(stored_hash_count(n) - 1), n - 1);
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 13, 5);
    assert_eq!(
        file_len_of(&dir.path().join(HASHES)),
        32 * stored_hash_count(13)
    );
    let nodes = log.hash_file();
    let reference = crate::merkle::tests::MemNodes::new(&leaves(13));
    use crate::merkle::NodeSource;
    for level in 0..4u32 {
        for index in 0..(13u64 >> level) {
            assert_eq!(
                nodes.node(level, index).unwrap(),
                reference.node(level, index).unwrap(),
                "node ({level}, {index})"
            );
        }
    }
}

#[test]
fn reopen_keeps_entries_hashes_and_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer(1);
    let (root, checkpoint) = {
        let log = log_with(dir.path(), 37, 8);
        let checkpoint = log.checkpoint(&signer).unwrap();
        (log.root(37).unwrap(), checkpoint)
    };
    let log = Log::open(dir.path()).unwrap();
    assert!(log.recovery().is_clean());
    assert_eq!(log.tree_size(), 37);
    assert_eq!(log.root(37).unwrap(), root);
    assert_eq!(root, root_from_leaves(&leaves(37)));
    for seq in 0..37 {
        assert_eq!(log.entry(seq).unwrap(), entry_bytes(seq));
    }
    assert_eq!(log.latest_checkpoint().unwrap(), Some(checkpoint.clone()));
    assert_eq!(log.checkpoints().unwrap(), vec![checkpoint.clone()]);
    // Appending after a reopen continues the same tree (the frontier was reloaded).
    log.append(&(37..50).map(entry_bytes).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(log.root(50).unwrap(), root_from_leaves(&leaves(50)));
    let proof = log.consistency_proof(37, 50).unwrap();
    assert!(verify_consistency(
        37,
        50,
        &checkpoint.root,
        &log.root(50).unwrap(),
        &proof
    ));
}

#[test]
fn second_open_is_locked_until_the_first_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let first = Log::open(dir.path()).unwrap();
    assert!(matches!(
        Log::open(dir.path()),
        Err(LedgerError::Locked { .. })
    ));
    drop(first);
    assert!(Log::open(dir.path()).is_ok());
}

#[test]
fn torn_entry_record_is_cut_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    drop(log_with(dir.path(), 10, 1));
    // The last record loses its final bytes, as if the crash hit while writing it.
    let entries = dir.path().join(ENTRIES);
    let full = file_len_of(&entries);
    let last_len = entry_bytes(9).len() as u64;
    assert!(last_len > 1);
    set_len(&entries, full - 1);

    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.tree_size(), 9);
    assert_eq!(log.recovery().dropped_entries, 1);
    assert_eq!(log.recovery().entries_bytes, 4 + last_len - 1);
    assert_eq!(log.recovery().offsets_bytes, 8);
    assert_eq!(
        log.recovery().hashes_bytes,
        32 * (stored_hash_count(10) - stored_hash_count(9))
    );
    for seq in 0..9 {
        assert_eq!(log.entry(seq).unwrap(), entry_bytes(seq));
    }
    assert!(matches!(log.entry(9), Err(LedgerError::NotFound { .. })));
    assert_eq!(log.root(9).unwrap(), root_from_leaves(&leaves(9)));
    // The log goes on from there, and verifies.
    log.append(&[entry_bytes(9)]).unwrap();
    assert_eq!(log.root(10).unwrap(), root_from_leaves(&leaves(10)));
    drop(log);
    let key = signer(1).verifier_key();
    assert_eq!(crate::verify_dir(dir.path(), &key).unwrap().n_entries, 10);
}

#[test]
fn torn_offsets_and_hashes_are_cut() {
    // A crash after `entries` was synced but while `offsets` was written: a partial u64.
    let dir = tempfile::tempdir().unwrap();
    drop(log_with(dir.path(), 6, 2));
    append_raw(&dir.path().join(ENTRIES), &[0, 0, 0, 2, 9, 9]);
    append_raw(&dir.path().join(OFFSETS), &[0, 0, 0]);
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.tree_size(), 6);
    assert_eq!(log.recovery().entries_bytes, 6);
    assert_eq!(log.recovery().offsets_bytes, 3);
    assert_eq!(log.root(6).unwrap(), root_from_leaves(&leaves(6)));
    drop(log);

    // A crash after `entries` and `offsets` were synced, while `hashes` was written: the entry
    // whose hash group is incomplete was never acknowledged, and goes.
    let entries_len = file_len_of(&dir.path().join(ENTRIES));
    append_raw(&dir.path().join(ENTRIES), &[0, 0, 0, 1, 42]);
    append_raw(&dir.path().join(OFFSETS), &entries_len.to_be_bytes());
    // Entry 6 needs one hash; a crash left only part of it.
    append_raw(&dir.path().join(HASHES), &[7u8; 20]);
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.tree_size(), 6);
    assert_eq!(log.recovery().dropped_entries, 1);
    assert_eq!(log.recovery().hashes_bytes, 20);
    assert_eq!(log.recovery().entries_bytes, 5);
    assert_eq!(log.recovery().offsets_bytes, 8);
    assert_eq!(log.root(6).unwrap(), root_from_leaves(&leaves(6)));
    assert_eq!(log.append(&[entry_bytes(6)]).unwrap(), 6);
    assert_eq!(log.root(7).unwrap(), root_from_leaves(&leaves(7)));
}

#[test]
fn torn_checkpoint_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = {
        let log = log_with(dir.path(), 3, 3);
        log.checkpoint(&signer(1)).unwrap()
    };
    append_raw(&dir.path().join(CHECKPOINTS), &[0, 0, 1, 0, b'x']);
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.recovery().checkpoints_bytes, 5);
    assert_eq!(log.checkpoints().unwrap(), vec![checkpoint]);
}

#[test]
fn a_log_shorter_than_its_checkpoint_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = log_with(dir.path(), 8, 8);
        log.checkpoint(&signer(1)).unwrap();
    }
    let entries = dir.path().join(ENTRIES);
    let before = file_len_of(&entries);
    set_len(&entries, before - 1);
    assert!(matches!(
        Log::open(dir.path()),
        Err(LedgerError::BehindCheckpoint {
            tree_size: 7,
            checkpoint_size: 8
        })
    ));
    assert_eq!(file_len_of(&entries), before - 1, "nothing was cut");
}

#[test]
fn foreign_directories_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(ENTRIES), b"data").unwrap();
    assert!(matches!(
        Log::open(dir.path()),
        Err(LedgerError::Corrupt { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(FORMAT), b"something else 2\n").unwrap();
    assert!(matches!(
        Log::open(dir.path()),
        Err(LedgerError::Corrupt { .. })
    ));
}

#[test]
fn concurrent_appends_are_all_committed_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..20u8 {
                    let batch: Vec<Vec<u8>> = (0..=(i % 3)).map(|k| vec![t, i, k]).collect();
                    let first = log.append(&batch).unwrap();
                    mine.push((first, batch));
                }
                mine
            })
        })
        .collect();
    let mut seen = 0;
    for thread in threads {
        for (first, batch) in thread.join().unwrap() {
            for (k, entry) in batch.iter().enumerate() {
                assert_eq!(&log.entry(first + k as u64).unwrap(), entry);
                seen += 1;
            }
        }
    }
    assert_eq!(log.tree_size(), seen);
    let all: Vec<Hash> = log
        .entries(0, seen as usize)
        .unwrap()
        .iter()
        .map(|(_, e)| merkle::leaf_hash(e))
        .collect();
    assert_eq!(log.root(seen).unwrap(), root_from_leaves(&all));
}

/// Appends that share a group commit whose write fails (a full disk) all fail, none of them
/// is acknowledged, and the log refuses writes until it is reopened, which keeps what was
/// acknowledged before and nothing of the failed group.
#[test]
fn a_failed_group_commit_fails_every_caller_of_it_and_acknowledges_none() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path()).unwrap());
    log.append(&[b"before".to_vec()]).unwrap();
    // One more batch is written (its three files); the next one meets a full disk.
    log.append_writes_left.store(3, Ordering::SeqCst);
    let n_callers = 16u8;
    let results: Vec<Result<u64, LedgerError>> = std::thread::scope(|scope| {
        // Hold the writer: the first caller leads a batch of its own and waits here, the others
        // queue up behind it and are written together next.
        let held = lock(&log.writer);
        let callers: Vec<_> = (0..n_callers)
            .map(|i| {
                let log = &log;
                scope.spawn(move || log.append(&[vec![i]]))
            })
            .collect();
        let started = std::time::Instant::now();
        while lock(&log.queue).pending.len() < usize::from(n_callers) - 1
            && started.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(
            lock(&log.queue).pending.len(),
            usize::from(n_callers) - 1,
            "the callers wait for one group"
        );
        drop(held);
        callers.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let acknowledged: Vec<u64> = results
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .copied()
        .collect();
    assert_eq!(
        acknowledged,
        [1],
        "only the first caller's own batch was written"
    );
    for result in results.iter().filter(|r| r.is_err()) {
        match result {
            Err(LedgerError::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::StorageFull)
            }
            other => panic!("a caller of the failed group was answered {other:?}"),
        }
    }
    assert_eq!(
        log.tree_size(),
        2,
        "nothing of the failed group acknowledged"
    );
    assert!(log.is_poisoned());
    log.append_writes_left.store(u64::MAX, Ordering::SeqCst);
    assert!(matches!(
        log.append(&[b"refused".to_vec()]),
        Err(LedgerError::Poisoned)
    ));
    drop(log);
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(
        log.tree_size(),
        2,
        "the reopened log holds what was acknowledged"
    );
    assert_eq!(log.entry(0).unwrap(), b"before");
    assert_eq!(log.append(&[b"after".to_vec()]).unwrap(), 2);
}

#[test]
fn checkpoints_are_kept_signed_and_copied_to_the_witness() {
    let dir = tempfile::tempdir().unwrap();
    let witness = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 5, 5);
    log.set_witness_dir(Some(witness.path().join("w")));
    let signer = signer(3);
    let key = signer.verifier_key();

    let first = log.checkpoint(&signer).unwrap();
    assert_eq!(first.tree_size, 5);
    assert_eq!(first.root, log.root(5).unwrap());
    assert!(first.verify(&key));
    assert_eq!(
        fs::read_to_string(dir.path().join("verifier-key")).unwrap(),
        format!("{key}\n")
    );
    // Same size: the same checkpoint, not a new record.
    assert_eq!(log.checkpoint(&signer).unwrap(), first);
    assert_eq!(log.checkpoints().unwrap().len(), 1);
    let witness_file = witness.path().join("w/custodia.test_t_ledger-5.checkpoint");
    assert_eq!(fs::read_to_string(&witness_file).unwrap(), first.to_text());

    log.append(&[b"six".to_vec()]).unwrap();
    let second = log.checkpoint(&signer).unwrap();
    assert_eq!(second.tree_size, 6);
    assert_eq!(log.latest_checkpoint().unwrap(), Some(second.clone()));
    assert_eq!(
        log.checkpoints().unwrap(),
        vec![first.clone(), second.clone()]
    );
    let proof = log.consistency_proof(5, 6).unwrap();
    assert!(verify_consistency(5, 6, &first.root, &second.root, &proof));

    // Another key is refused: the log's checkpoints all verify with one key.
    log.append(&[b"seven".to_vec()]).unwrap();
    assert!(matches!(
        log.checkpoint(&self::signer(4)),
        Err(LedgerError::WrongSigner { .. })
    ));
    // A witness that already holds a different checkpoint for this size is a conflict.
    let clash = witness.path().join("w/custodia.test_t_ledger-7.checkpoint");
    fs::write(&clash, "something else").unwrap();
    assert!(matches!(
        log.checkpoint(&signer),
        Err(LedgerError::WitnessConflict { .. })
    ));
    // The checkpoint itself was stored; once the clash is gone the witness gets its copy.
    fs::remove_file(&clash).unwrap();
    let third = log.checkpoint(&signer).unwrap();
    assert_eq!(third.tree_size, 7);
    assert_eq!(fs::read_to_string(&clash).unwrap(), third.to_text());
    assert_eq!(log.checkpoints().unwrap().len(), 3);
}

#[test]
fn a_verifier_key_file_written_by_the_caller_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_with(dir.path(), 2, 2);
    fs::write(
        dir.path().join("verifier-key"),
        format!("{}\n", signer(9).verifier_key()),
    )
    .unwrap();
    assert!(matches!(
        log.checkpoint(&signer(1)),
        Err(LedgerError::WrongSigner { .. })
    ));
    assert!(log.checkpoint(&signer(9)).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The log's roots and proofs, read from stored nodes, equal the RFC reference functions
    /// over the same leaves, and verify; changed inputs do not.
    #[test]
    fn log_proofs_equal_reference(size in 1u64..300, batch in 1usize..120, picks in prop::collection::vec(any::<u64>(), 8)) {
        let dir = tempfile::tempdir().unwrap();
        let log = log_with(dir.path(), size, batch);
        let all = leaves(size);
        for pick in picks.chunks(2) {
            let tree_size = 1 + pick[0] % size;
            let tree = &all[..tree_size as usize];
            let root = log.root(tree_size).unwrap();
            prop_assert_eq!(root, root_from_leaves(tree));

            let index = pick[1] % tree_size;
            let proof = log.inclusion_proof(index, tree_size).unwrap();
            prop_assert_eq!(&proof, &inclusion_proof_from_leaves(tree, index).unwrap());
            prop_assert!(verify_inclusion(&log.leaf_hash(index).unwrap(), index, tree_size, &proof, &root));
            prop_assert!(!verify_inclusion(&merkle::leaf_hash(b"other"), index, tree_size, &proof, &root));
            if tree_size > 1 {
                prop_assert!(!verify_inclusion(&all[index as usize], (index + 1) % tree_size, tree_size, &proof, &root));
            }

            let size1 = pick[1] % (tree_size + 1);
            let proof = log.consistency_proof(size1, tree_size).unwrap();
            prop_assert_eq!(&proof, &consistency_proof_from_leaves(tree, size1).unwrap());
            let root1 = log.root(size1).unwrap();
            prop_assert!(verify_consistency(size1, tree_size, &root1, &root, &proof));
            if 0 < size1 && size1 < tree_size {
                let mut changed = root1;
                changed[0] ^= 1;
                prop_assert!(!verify_consistency(size1, tree_size, &changed, &root, &proof));
            }
        }
    }
}

/// The names in `parent` that start with a dot: temporary directories of a log creation.
fn hidden_names(parent: &Path) -> Vec<String> {
    fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// A log that takes appends and a checkpoint, and that `verify_dir` accepts with `signer`'s key.
fn assert_usable(dir: &Path, signer: &NoteSigner) {
    let log = Log::open(dir).unwrap();
    log.append(&[b"after".to_vec()]).unwrap();
    log.checkpoint(signer).unwrap();
    drop(log);
    let report = crate::verify_dir(dir, &signer.verifier_key()).unwrap();
    assert_eq!(report.n_entries, 1);
}

#[test]
fn a_new_log_is_complete_with_its_verifier_key_and_leaves_no_temporary() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("tenant").join("log");
    let key = signer(3).verifier_key();
    drop(Log::open_with_verifier_key(&dir, &key).unwrap());
    assert_eq!(fs::read(dir.join(FORMAT)).unwrap(), FORMAT_LINE);
    assert_eq!(
        fs::read_to_string(dir.join(VERIFIER_KEY)).unwrap(),
        format!("{key}\n")
    );
    assert!(hidden_names(&parent.path().join("tenant")).is_empty());
    assert_usable(&dir, &signer(3));
}

#[test]
fn a_creation_that_fails_on_a_full_disk_leaves_nothing_and_the_next_open_succeeds() {
    for failing in [ENTRIES, HASHES, VERIFIER_KEY, FORMAT] {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("log");
        create::FAIL_WRITING.set(Some(failing));
        let failed = Log::open_with_verifier_key(&dir, &signer(4).verifier_key());
        create::FAIL_WRITING.set(None);
        match failed {
            Err(LedgerError::Io { source, .. }) => {
                assert_eq!(source.kind(), io::ErrorKind::StorageFull, "{failing}")
            }
            other => panic!("{failing}: expected an i/o error, got {:?}", other.err()),
        }
        assert!(!dir.exists(), "{failing}: no half-created log");
        assert!(hidden_names(parent.path()).is_empty(), "{failing}");
        drop(Log::open_with_verifier_key(&dir, &signer(4).verifier_key()).unwrap());
        assert_usable(&dir, &signer(4));
    }
}

#[test]
fn an_interrupted_creation_of_an_older_version_is_cleaned_up_and_recreated() {
    // What an older version left when the disk was full: the five files, all empty (or a torn
    // `format` line), and no verifier key.
    let torn_formats: [Option<&[u8]>; 3] = [Some(b""), Some(&FORMAT_LINE[..5]), None];
    for format in torn_formats {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("log");
        fs::create_dir(&dir).unwrap();
        for name in [ENTRIES, OFFSETS, HASHES, CHECKPOINTS] {
            fs::write(dir.join(name), b"").unwrap();
        }
        if let Some(format) = format {
            fs::write(dir.join(FORMAT), format).unwrap();
        }
        // Before the fix: `Corrupt` ("format is corrupt") at every open.
        let log = Log::open_with_verifier_key(&dir, &signer(5).verifier_key()).unwrap();
        assert_eq!(log.tree_size(), 0);
        drop(log);
        assert_eq!(fs::read(dir.join(FORMAT)).unwrap(), FORMAT_LINE);
        assert_usable(&dir, &signer(5));
    }
}

#[test]
fn a_directory_with_data_is_never_taken_for_an_interrupted_creation() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(FORMAT), b"").unwrap();
    fs::write(dir.join(ENTRIES), b"data").unwrap();
    assert!(matches!(Log::open(&dir), Err(LedgerError::Corrupt { .. })));
    assert_eq!(fs::read(dir.join(ENTRIES)).unwrap(), b"data", "left alone");
    // A file of someone else's next to empty log files: not ours to remove either.
    let dir = parent.path().join("other");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join(ENTRIES), b"").unwrap();
    fs::write(dir.join("notes.txt"), b"keep").unwrap();
    assert!(matches!(Log::open(&dir), Err(LedgerError::Corrupt { .. })));
    assert!(dir.join("notes.txt").exists());
}

#[test]
fn leftover_temporary_directories_are_removed_unless_a_creation_holds_them() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    let leftover = parent.path().join(".log.creating-999999-0");
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join(ENTRIES), b"").unwrap();
    fs::write(leftover.join(FORMAT), &FORMAT_LINE[..3]).unwrap();
    let empty_leftover = parent.path().join(".log.creating-999999-1");
    fs::create_dir(&empty_leftover).unwrap();
    let in_progress = parent.path().join(".log.creating-999999-2");
    fs::create_dir(&in_progress).unwrap();
    let held = File::create(in_progress.join(ENTRIES)).unwrap();
    held.try_lock().unwrap();
    // Another log's temporary directory is not this log's business.
    let other = parent.path().join(".other.creating-1-0");
    fs::create_dir(&other).unwrap();

    drop(Log::open(&dir).unwrap());
    let mut left = hidden_names(parent.path());
    left.sort();
    assert_eq!(left, [".log.creating-999999-2", ".other.creating-1-0"]);
    drop(held);
    drop(Log::open(&dir).unwrap());
    assert_eq!(hidden_names(parent.path()), [".other.creating-1-0"]);
}

#[test]
fn an_empty_verifier_key_file_is_replaced_not_corrupt() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("log");
    drop(log_with(&dir, 2, 1));
    fs::write(dir.join(VERIFIER_KEY), b"").unwrap();
    // By the checkpoint of a log opened without a key...
    let log = Log::open(&dir).unwrap();
    log.checkpoint(&signer(6)).unwrap();
    drop(log);
    assert_eq!(
        fs::read_to_string(dir.join(VERIFIER_KEY)).unwrap(),
        format!("{}\n", signer(6).verifier_key())
    );
    // ...and by opening with the key.
    fs::write(dir.join(VERIFIER_KEY), b"").unwrap();
    drop(Log::open_with_verifier_key(&dir, &signer(6).verifier_key()).unwrap());
    assert_eq!(
        fs::read_to_string(dir.join(VERIFIER_KEY)).unwrap(),
        format!("{}\n", signer(6).verifier_key())
    );
    assert!(hidden_names(&dir).is_empty(), "no temporary key file left");
}
