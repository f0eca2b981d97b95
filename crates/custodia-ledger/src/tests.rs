//! Cross-checks against independent implementations: ed25519-dalek for the signatures,
//! `signed_note` (a port of Go's `sumdb/note`) for the note format and key ids, and `tlog_tiles`
//! (a port of Go's `sumdb/tlog`) for checkpoint bodies, hashes, stored-hash positions, roots and
//! proofs. None of them shares code with this crate or with ring.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use custodia_vault::SigningKey;
use proptest::prelude::*;

use crate::log::{HASHES, stored_hash_index};
use crate::merkle::{self, NodeSource};
use crate::{Checkpoint, Hash, LedgerError, Log, NoteSigner};

fn signer(origin: &str, seed: [u8; 32]) -> NoteSigner {
    NoteSigner::new(origin, SigningKey::from_seed(&seed).unwrap()).unwrap()
}

/// The same key in `signed_note`'s private-key text form.
fn signed_note_signer(origin: &str, seed: [u8; 32]) -> signed_note::StandardSigner {
    let key = signer(origin, seed).verifier_key();
    let mut data = vec![0x01];
    data.extend_from_slice(&seed);
    let text = format!(
        "PRIVATE+KEY+{origin}+{:08x}+{}",
        u32::from_be_bytes(key.key_id),
        STANDARD.encode(&data)
    );
    signed_note::StandardSigner::new(&text).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// ed25519-dalek accepts our checkpoint signatures (strict verification) over the body.
    #[test]
    fn ed25519_dalek_verifies_our_signatures(seed in any::<[u8; 32]>(), tree_size in any::<u64>(), root in any::<[u8; 32]>()) {
        let ours = signer("custodia.test/x/ledger", seed);
        let checkpoint = ours.sign(tree_size, &root);
        let line = &checkpoint.signatures[0];
        let dalek_key = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
        prop_assert_eq!(dalek_key.to_bytes(), ours.verifier_key().public_key);
        let signature = ed25519_dalek::Signature::from_slice(&line.signature).unwrap();
        prop_assert!(dalek_key.verify_strict(checkpoint.body().as_bytes(), &signature).is_ok());
        let mut other = checkpoint.body().into_bytes();
        other[0] ^= 1;
        prop_assert!(dalek_key.verify_strict(&other, &signature).is_err());
    }

    /// signed_note parses and verifies our checkpoints with our verifier key text, and computes
    /// the same key id; its signatures over the same text are byte-identical to ours (Ed25519 is
    /// deterministic), and we parse and verify its notes.
    #[test]
    fn signed_note_agrees_on_notes_and_keys(seed in any::<[u8; 32]>(), tree_size in any::<u64>(), root in any::<[u8; 32]>(), origin in "[a-z0-9.]{1,20}(/[a-z0-9_]{1,10}){0,3}") {
        let ours = signer(&origin, seed);
        let key = ours.verifier_key();
        let checkpoint = ours.sign(tree_size, &root);
        let text = checkpoint.to_text();

        let verifier = signed_note::StandardVerifier::new(&key.to_string()).unwrap();
        let verifiers = signed_note::VerifierList::new(vec![Box::new(verifier)]);
        let note = signed_note::Note::from_bytes(text.as_bytes()).unwrap();
        let (verified, unverified) = note.verify(&verifiers).unwrap();
        prop_assert_eq!(verified.len(), 1);
        prop_assert!(unverified.is_empty());
        let body = checkpoint.body();
        prop_assert_eq!(note.text(), body.as_bytes());
        let mut key_data = vec![0x01];
        key_data.extend_from_slice(&key.public_key);
        prop_assert_eq!(signed_note::key_id(&origin, &key_data), u32::from_be_bytes(key.key_id));

        let theirs = signed_note_signer(&origin, seed);
        let mut their_note = signed_note::Note::new(checkpoint.body().as_bytes(), &[]).unwrap();
        their_note.add_sigs(&[&theirs]).unwrap();
        let their_text = String::from_utf8(their_note.to_bytes()).unwrap();
        prop_assert_eq!(&their_text, &text);
        let parsed = Checkpoint::parse(&their_text).unwrap();
        prop_assert!(parsed.verify(&key));
        prop_assert_eq!(parsed, checkpoint);
    }

    /// tlog_tiles reads our checkpoint bodies and computes the same leaf and node hashes.
    #[test]
    fn tlog_tiles_agrees_on_bodies_and_hashes(tree_size in any::<u64>(), root in any::<[u8; 32]>(), data in prop::collection::vec(any::<u8>(), 0..100)) {
        let checkpoint = signer("custodia.test/x/ledger", [5; 32]).sign(tree_size, &root);
        let theirs = tlog_tiles::Checkpoint::from_bytes(checkpoint.body().as_bytes()).unwrap();
        prop_assert_eq!(theirs.origin(), "custodia.test/x/ledger");
        prop_assert_eq!(theirs.size(), tree_size);
        prop_assert_eq!(theirs.hash().0, root);
        prop_assert_eq!(theirs.extension(), "");

        let leaf = merkle::leaf_hash(&data);
        prop_assert_eq!(tlog_tiles::record_hash(&data).0, leaf);
        prop_assert_eq!(
            tlog_tiles::node_hash(tlog_tiles::Hash(leaf), tlog_tiles::Hash(root)).0,
            merkle::node_hash(&leaf, &root)
        );
    }

    #[test]
    fn tlog_tiles_agrees_on_stored_hash_positions(level in 0u8..30, index in 0u64..(1 << 30)) {
        prop_assert_eq!(stored_hash_index(u32::from(level), index), tlog_tiles::stored_hash_index(level, index));
    }
}

/// Our `hashes` file, read through tlog_tiles' own index arithmetic.
struct OurHashes<'a>(&'a Log);

impl tlog_tiles::HashReader for OurHashes<'_> {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<tlog_tiles::Hash>, tlog_tiles::Error> {
        let nodes = self.0.hash_file_for_tests();
        indexes
            .iter()
            .map(|&i| {
                let (level, index) = tlog_tiles::split_stored_hash_index(i);
                nodes
                    .node(u32::from(level), index)
                    .map(tlog_tiles::Hash)
                    .map_err(|_| tlog_tiles::Error::IndexesNotInTree)
            })
            .collect()
    }
}

fn hashes_of(proof: &[tlog_tiles::Hash]) -> Vec<Hash> {
    proof.iter().map(|h| h.0).collect()
}

/// tlog_tiles computes roots and proofs from our stored hashes that equal ours, and accepts ours.
#[test]
fn tlog_tiles_agrees_on_roots_and_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let n = 300u64;
    let entries: Vec<Vec<u8>> = (0..n).map(|i| format!("record {i}").into_bytes()).collect();
    for chunk in entries.chunks(37) {
        log.append(chunk).unwrap();
    }
    let reader = OurHashes(&log);
    // The stored hashes are exactly what tlog_tiles would store for the same records.
    let stored = std::fs::read(dir.path().join(HASHES)).unwrap();
    let mut expected = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        for hash in tlog_tiles::stored_hashes(i as u64, entry, &reader).unwrap() {
            expected.extend_from_slice(&hash.0);
        }
    }
    assert_eq!(stored, expected);

    for t in (1..=n).step_by(7).chain([n]) {
        let root = log.root(t).unwrap();
        assert_eq!(
            tlog_tiles::tree_hash(t, &reader).unwrap().0,
            root,
            "root {t}"
        );
        for i in (0..t).step_by(5).chain([t - 1]) {
            let ours = log.inclusion_proof(i, t).unwrap();
            let theirs = tlog_tiles::prove_record(t, i, &reader).unwrap();
            assert_eq!(hashes_of(&theirs), ours, "record proof {i} in {t}");
            let ours_as_theirs: Vec<tlog_tiles::Hash> =
                ours.iter().map(|h| tlog_tiles::Hash(*h)).collect();
            let leaf = tlog_tiles::Hash(log.leaf_hash(i).unwrap());
            assert!(
                tlog_tiles::check_record(&ours_as_theirs, t, tlog_tiles::Hash(root), i, leaf)
                    .is_ok()
            );
        }
        for m in (1..=t).step_by(6).chain([t]) {
            let ours = log.consistency_proof(m, t).unwrap();
            let theirs = tlog_tiles::prove_tree(t, m, &reader).unwrap();
            assert_eq!(hashes_of(&theirs), ours, "tree proof {m} -> {t}");
            let ours_as_theirs: Vec<tlog_tiles::Hash> =
                ours.iter().map(|h| tlog_tiles::Hash(*h)).collect();
            let old_root = tlog_tiles::Hash(log.root(m).unwrap());
            assert!(
                tlog_tiles::check_tree(&ours_as_theirs, t, tlog_tiles::Hash(root), m, old_root)
                    .is_ok()
            );
        }
    }
}

#[test]
fn signed_note_rejects_what_we_reject_for_a_bad_signature() {
    let ours = signer("custodia.test/x/ledger", [9; 32]);
    let mut checkpoint = ours.sign(10, &[1; 32]);
    checkpoint.signatures[0].signature[5] ^= 1;
    assert!(!checkpoint.verify(&ours.verifier_key()));
    let verifier = signed_note::StandardVerifier::new(&ours.verifier_key().to_string()).unwrap();
    let verifiers = signed_note::VerifierList::new(vec![Box::new(verifier)]);
    let note = signed_note::Note::from_bytes(checkpoint.to_text().as_bytes()).unwrap();
    assert!(note.verify(&verifiers).is_err());
}

#[test]
fn error_codes_separate_caller_mistakes_from_faults() {
    use custodia_core::ErrorCode;
    assert_eq!(
        LedgerError::NotFound {
            what: "entry",
            value: 1,
            tree_size: 0
        }
        .code(),
        ErrorCode::NotFound
    );
    assert_eq!(
        LedgerError::MalformedEntry { detail: "x" }.code(),
        ErrorCode::InvalidField
    );
    assert_eq!(
        LedgerError::EntryTooLarge { len: 2, max: 1 }.code(),
        ErrorCode::PayloadTooLarge
    );
    assert_eq!(LedgerError::Poisoned.code(), ErrorCode::Internal);
}
