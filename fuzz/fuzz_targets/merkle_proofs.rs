//! RFC 9162 proofs, round trip and tampering: inclusion and consistency proofs built by the
//! reference functions of `custodia_ledger::merkle` verify, and changed claims are judged exactly.
//!
//! Leaf `i` is `leaf_hash(i ‖ bytes_i)` with the bytes from the fuzzer, so no two leaves are
//! equal and every node of a tree is a distinct hash. A proof then verifies a claim only if it is
//! the claim's own proof (anything else would take a SHA-256 collision), which gives exact
//! expectations for every change:
//! - a changed proof hash, leaf or root fails (except the new root of a consistency proof from
//!   the empty tree, which every larger tree extends);
//! - against the original root, an inclusion proof verifies at another index or tree size exactly
//!   when the RFC path there has the same shape (sibling sides, deepest first): at another index
//!   of the same tree never, at another size sometimes (e.g. leaf 0 of 3 and of 4; it is the
//!   signed checkpoint that binds a size to its root);
//! - against the genuine root of another size (the tree extended with filler leaves), it fails;
//! - a consistency proof verifies other sizes, with their genuine roots, exactly when it equals
//!   their reference proof;
//! - a proof chosen by the fuzzer verifies a true claim exactly when it equals the reference one.
//!
//! Finally, arbitrary claims and proofs go to `verify_*` directly, which must not panic.

#![no_main]

use custodia_ledger::Hash;
use custodia_ledger::merkle::{
    consistency_proof_from_leaves, empty_root, inclusion_proof_from_leaves, leaf_hash,
    root_from_leaves, verify_consistency, verify_inclusion,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Leaves taken from the fuzzer's list (more are ignored).
const MAX_LEAVES: usize = 64;
/// Leaves of the extended tree whose prefixes give the "other size" roots.
const MAX_EXTENDED: usize = 128;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Leaf data (at most `MAX_LEAVES` used).
    leaves: Vec<Vec<u8>>,
    /// The leaf to prove (modulo the tree size).
    index: u64,
    /// The older tree size of the consistency proof (modulo the tree size + 1).
    size1: u64,
    /// Which proof hash, and which bit of it, to flip.
    pick: u16,
    /// The changed claim: another index, another size, another older size.
    other_index: u64,
    other_size: u64,
    other_size1: u64,
    /// A claim and proof made up by the fuzzer.
    raw: RawClaim,
}

#[derive(Arbitrary, Debug)]
struct RawClaim {
    leaf: Hash,
    index: u64,
    size1: u64,
    size2: u64,
    root1: Hash,
    root2: Hash,
    proof: Vec<Hash>,
}

fuzz_target!(|input: Input| {
    let n_leaves = input.leaves.len().min(MAX_LEAVES);
    let all: Vec<Hash> = (0..MAX_EXTENDED)
        .map(|i| match input.leaves.get(i).filter(|_| i < n_leaves) {
            Some(data) => leaf_hash(&[&[i as u8][..], data].concat()),
            // Filler: a first byte no fuzzer leaf has.
            None => leaf_hash(&[0xff, i as u8]),
        })
        .collect();
    let tree = &all[..n_leaves];
    let size = n_leaves as u64;
    let root = root_from_leaves(tree);
    if tree.is_empty() {
        assert_eq!(root, empty_root());
    }

    check_inclusion(&input, &all, tree, &root);
    check_consistency(&input, &all, tree, &root);

    let raw = &input.raw;
    verify_inclusion(&raw.leaf, raw.index, raw.size2, &raw.proof, &raw.root2);
    verify_consistency(raw.size1, raw.size2, &raw.root1, &raw.root2, &raw.proof);
    verify_inclusion(&raw.leaf, raw.index, size, &raw.proof, &root);
    verify_consistency(raw.size1, size, &raw.root1, &root, &raw.proof);
});

fn check_inclusion(input: &Input, all: &[Hash], tree: &[Hash], root: &Hash) {
    let size = tree.len() as u64;
    assert_eq!(inclusion_proof_from_leaves(tree, size), None);
    if tree.is_empty() {
        assert!(!verify_inclusion(&all[0], 0, 0, &[], root));
        return;
    }
    let index = input.index % size;
    let leaf = tree[index as usize];
    let proof = inclusion_proof_from_leaves(tree, index).expect("index is inside the tree");
    assert_eq!(proof.len(), path_sides(index, size).len());
    assert!(
        verify_inclusion(&leaf, index, size, &proof, root),
        "a genuine proof fails"
    );

    if !proof.is_empty() {
        let mut changed = proof.clone();
        flip_bit(
            &mut changed[usize::from(input.pick) % proof.len()],
            input.pick,
        );
        assert!(!verify_inclusion(&leaf, index, size, &changed, root));
        assert!(!verify_inclusion(&leaf, index, size, &proof[1..], root));
    }
    let mut longer = proof.clone();
    longer.push(*root);
    assert!(!verify_inclusion(&leaf, index, size, &longer, root));
    let mut changed_leaf = leaf;
    flip_bit(&mut changed_leaf, input.pick);
    assert!(!verify_inclusion(&changed_leaf, index, size, &proof, root));
    let mut changed_root = *root;
    flip_bit(&mut changed_root, input.pick);
    assert!(!verify_inclusion(&leaf, index, size, &proof, &changed_root));

    // Another index or size against the original root: accepted exactly when the path has the
    // same shape there.
    for (other_index, other_size) in [
        (input.other_index, size),
        (index, input.other_size),
        (input.other_index, input.other_size),
    ] {
        let same_shape = other_index < other_size
            && path_sides(other_index, other_size) == path_sides(index, size);
        assert_eq!(
            verify_inclusion(&leaf, other_index, other_size, &proof, root),
            same_shape,
            "index {index} of {size} claimed as {other_index} of {other_size}"
        );
    }
    // Another size against that size's genuine root: always refused.
    let other_size = input.other_size % (MAX_EXTENDED as u64 + 1);
    if other_size != size && index < other_size {
        let other_root = root_from_leaves(&all[..other_size as usize]);
        assert!(!verify_inclusion(
            &leaf,
            index,
            other_size,
            &proof,
            &other_root
        ));
    }

    // A made-up proof of a true claim verifies only if it is the proof.
    let raw = &input.raw.proof;
    assert_eq!(
        verify_inclusion(&leaf, index, size, raw, root),
        *raw == proof
    );
}

fn check_consistency(input: &Input, all: &[Hash], tree: &[Hash], root: &Hash) {
    let size = tree.len() as u64;
    assert_eq!(consistency_proof_from_leaves(tree, size + 1), None);
    let size1 = input.size1 % (size + 1);
    let root1 = root_from_leaves(&tree[..size1 as usize]);
    let proof = consistency_proof_from_leaves(tree, size1).expect("size1 is at most the size");
    assert!(
        verify_consistency(size1, size, &root1, root, &proof),
        "a genuine proof fails"
    );

    if !proof.is_empty() {
        let mut changed = proof.clone();
        flip_bit(
            &mut changed[usize::from(input.pick) % proof.len()],
            input.pick,
        );
        assert!(!verify_consistency(size1, size, &root1, root, &changed));
        assert!(!verify_consistency(size1, size, &root1, root, &proof[1..]));
        assert!(!verify_consistency(size1, size, &root1, root, &[]));
    }
    let mut longer = proof.clone();
    longer.push(*root);
    assert!(!verify_consistency(size1, size, &root1, root, &longer));
    let mut changed_root1 = root1;
    flip_bit(&mut changed_root1, input.pick);
    assert!(!verify_consistency(
        size1,
        size,
        &changed_root1,
        root,
        &proof
    ));
    let mut changed_root2 = *root;
    flip_bit(&mut changed_root2, input.pick);
    // The empty tree is a prefix of every larger tree, whatever its root.
    assert_eq!(
        verify_consistency(size1, size, &root1, &changed_root2, &proof),
        size1 == 0 && size > 0
    );

    // Other sizes with their genuine roots: accepted exactly when the proof is theirs.
    let bound = MAX_EXTENDED as u64 + 1;
    for (other1, other2) in [
        (input.other_size1 % bound, size),
        (size1, input.other_size % bound),
        (input.other_size1 % bound, input.other_size % bound),
    ] {
        let other_root1 = root_from_leaves(&all[..other1 as usize]);
        let other_root2 = root_from_leaves(&all[..other2 as usize]);
        let expected = other1 <= other2
            && consistency_proof_from_leaves(&all[..other2 as usize], other1).as_ref()
                == Some(&proof);
        assert_eq!(
            verify_consistency(other1, other2, &other_root1, &other_root2, &proof),
            expected,
            "{size1} to {size} claimed as {other1} to {other2}"
        );
    }

    // A made-up proof of a true claim verifies only if it is the proof.
    let raw = &input.raw.proof;
    assert_eq!(
        verify_consistency(size1, size, &root1, root, raw),
        *raw == proof
    );
}

/// The sides of the siblings on the path to leaf `index` of a tree of `size` leaves, deepest
/// first (`true`: the sibling is on the left), from the recursion of RFC 9162 §2.1.3.1 — not
/// from the bit arithmetic the verifier uses.
fn path_sides(mut index: u64, mut size: u64) -> Vec<bool> {
    let mut top_down = Vec::new();
    while size > 1 {
        let k = 1u64 << (63 - (size - 1).leading_zeros());
        if index < k {
            top_down.push(false);
            size = k;
        } else {
            top_down.push(true);
            index -= k;
            size -= k;
        }
    }
    top_down.reverse();
    top_down
}

fn flip_bit(hash: &mut Hash, pick: u16) {
    hash[usize::from(pick >> 3) % 32] ^= 1 << (pick & 7);
}
