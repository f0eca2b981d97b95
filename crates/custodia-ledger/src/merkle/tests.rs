//! Known answers from the RFC 6962 reference tree used by Certificate Transparency
//! implementations, and properties of proofs over random trees.

use proptest::prelude::*;

use super::*;

fn h(hex_text: &str) -> Hash {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut out).expect("test vector is 64 hex digits");
    out
}

/// The eight leaf inputs of the reference tree (transparency-dev/merkle `proof/verify_test.go`,
/// originally certificate-transparency's `merkle_tree_test.cc`).
const LEAF_INPUTS: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

/// MTH of the first 1..=8 leaves.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const EMPTY_ROOT: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// (leaf index, tree size, path). The source lists 1-based leaf numbers; these are 0-based.
const INCLUSION: [(u64, u64, &[&str]); 5] = [
    (0, 1, &[]),
    (
        0,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        &[
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        3,
        &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    ),
    (
        1,
        5,
        &[
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
];

/// (size1, size2, proof).
const CONSISTENCY: [(u64, u64, &[&str]); 5] = [
    (1, 1, &[]),
    (
        1,
        8,
        &[
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (
        2,
        5,
        &[
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
    (
        6,
        7,
        &[
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
];

fn reference_leaves() -> Vec<Hash> {
    LEAF_INPUTS
        .iter()
        .map(|input| leaf_hash(&hex::decode(input).expect("hex leaf input")))
        .collect()
}

fn hashes(list: &[&str]) -> Vec<Hash> {
    list.iter().map(|x| h(x)).collect()
}

/// Stored nodes in memory: `levels[L][i]` is node (L, i).
pub(crate) struct MemNodes {
    levels: Vec<Vec<Hash>>,
}

impl MemNodes {
    pub(crate) fn new(leaves: &[Hash]) -> MemNodes {
        let mut levels = vec![leaves.to_vec()];
        while levels.last().is_some_and(|l| l.len() >= 2) {
            let below = levels.last().expect("at least one level");
            let above = below
                .chunks_exact(2)
                .map(|pair| node_hash(&pair[0], &pair[1]))
                .collect();
            levels.push(above);
        }
        MemNodes { levels }
    }
}

impl NodeSource for MemNodes {
    fn node(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        Ok(self.levels[level as usize][index as usize])
    }
}

#[test]
fn hashes_match_rfc_6962_reference_tree() {
    assert_eq!(empty_root(), h(EMPTY_ROOT));
    assert_eq!(root_from_leaves(&[]), h(EMPTY_ROOT));
    let leaves = reference_leaves();
    let nodes = MemNodes::new(&leaves);
    for (size, root) in ROOTS.iter().enumerate().map(|(i, r)| (i + 1, h(r))) {
        assert_eq!(
            root_from_leaves(&leaves[..size]),
            root,
            "MTH of size {size}"
        );
        assert_eq!(
            root_from_nodes(&nodes, size as u64).unwrap(),
            root,
            "root from nodes, size {size}"
        );
        let mut frontier = Frontier::default();
        for leaf in &leaves[..size] {
            frontier.push(*leaf, |_, _, _| {});
        }
        assert_eq!(frontier.root(), root, "frontier root, size {size}");
    }
}

#[test]
fn inclusion_proofs_match_reference_vectors() {
    let leaves = reference_leaves();
    for (index, size, expected) in INCLUSION {
        let expected = hashes(expected);
        let tree = &leaves[..size as usize];
        assert_eq!(
            inclusion_proof_from_leaves(tree, index).unwrap(),
            expected,
            "PATH({index}, {size})"
        );
        let nodes = MemNodes::new(tree);
        assert_eq!(
            inclusion_from_nodes(&nodes, index, size).unwrap(),
            expected,
            "PATH from nodes ({index}, {size})"
        );
        let root = h(ROOTS[size as usize - 1]);
        assert!(verify_inclusion(
            &leaves[index as usize],
            index,
            size,
            &expected,
            &root
        ));
    }
}

#[test]
fn consistency_proofs_match_reference_vectors() {
    let leaves = reference_leaves();
    for (size1, size2, expected) in CONSISTENCY {
        let expected = hashes(expected);
        let tree = &leaves[..size2 as usize];
        assert_eq!(
            consistency_proof_from_leaves(tree, size1).unwrap(),
            expected,
            "PROOF({size1}, {size2})"
        );
        let nodes = MemNodes::new(tree);
        assert_eq!(
            consistency_from_nodes(&nodes, size1, size2).unwrap(),
            expected,
            "PROOF from nodes ({size1}, {size2})"
        );
        let root1 = h(ROOTS[size1 as usize - 1]);
        let root2 = h(ROOTS[size2 as usize - 1]);
        assert!(verify_consistency(size1, size2, &root1, &root2, &expected));
    }
}

/// The corruptions transparency-dev/merkle tries on every known proof, all of which must fail.
#[test]
fn corrupted_reference_proofs_fail() {
    let leaves = reference_leaves();
    let some_hash = h("abacaba000000000000000000000000000000000000000000060061e00123456");
    for (index, size, proof) in INCLUSION.iter().skip(1) {
        let (index, size, proof) = (*index, *size, hashes(proof));
        let leaf = leaves[index as usize];
        let root = h(ROOTS[size as usize - 1]);
        let fails = |leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash| {
            !verify_inclusion(leaf, index, size, proof, root)
        };
        assert!(fails(&leaf, index.wrapping_sub(1), size, &proof, &root));
        assert!(fails(&leaf, index + 1, size, &proof, &root));
        assert!(fails(&leaf, index ^ 2, size, &proof, &root));
        assert!(fails(&leaf, index, size * 2, &proof, &root));
        assert!(fails(&leaf, index, size / 2, &proof, &root));
        assert!(fails(&some_hash, index, size, &proof, &root));
        assert!(fails(&leaf, index, size, &proof, &h(EMPTY_ROOT)));
        assert!(fails(&leaf, index, size, &proof, &some_hash));
        let mut longer = proof.clone();
        longer.push(root);
        assert!(fails(&leaf, index, size, &longer, &root));
        let mut longer = vec![root];
        longer.extend_from_slice(&proof);
        assert!(fails(&leaf, index, size, &longer, &root));
        assert!(fails(&leaf, index, size, &proof[..proof.len() - 1], &root));
        for i in 0..proof.len() {
            let mut flipped = proof.clone();
            flipped[i][0] ^= 8;
            assert!(fails(&leaf, index, size, &flipped, &root));
        }
    }
    for (size1, size2, proof) in CONSISTENCY.iter().skip(1) {
        let (size1, size2, proof) = (*size1, *size2, hashes(proof));
        let root1 = h(ROOTS[size1 as usize - 1]);
        let root2 = h(ROOTS[size2 as usize - 1]);
        let fails = |s1: u64, s2: u64, r1: &Hash, r2: &Hash, p: &[Hash]| {
            !verify_consistency(s1, s2, r1, r2, p)
        };
        assert!(fails(size1 - 1, size2, &root1, &root2, &proof));
        assert!(fails(size1 + 1, size2, &root1, &root2, &proof));
        assert!(fails(size1 ^ 2, size2, &root1, &root2, &proof));
        assert!(fails(size1, size2 * 2, &root1, &root2, &proof));
        assert!(fails(size1, size2 / 2, &root1, &root2, &proof));
        assert!(fails(size1, size2, &some_hash, &root2, &proof));
        assert!(fails(size1, size2, &root1, &some_hash, &proof));
        assert!(fails(size1, size2, &root2, &root1, &proof));
        assert!(fails(size1, size2, &root1, &root2, &[]));
        for extra in [root1, root2, some_hash] {
            let mut longer = proof.clone();
            longer.push(extra);
            assert!(fails(size1, size2, &root1, &root2, &longer));
            let mut longer = vec![extra];
            longer.extend_from_slice(&proof);
            assert!(fails(size1, size2, &root1, &root2, &longer));
        }
        assert!(fails(
            size1,
            size2,
            &root1,
            &root2,
            &proof[..proof.len() - 1]
        ));
        for i in 0..proof.len() {
            let mut flipped = proof.clone();
            flipped[i][0] ^= 16;
            assert!(fails(size1, size2, &root1, &root2, &flipped));
        }
    }
}

#[test]
fn trivial_cases() {
    let leaves = reference_leaves();
    let root1 = h(ROOTS[0]);
    assert!(inclusion_proof_from_leaves(&leaves, 8).is_none());
    assert!(inclusion_proof_from_leaves(&[], 0).is_none());
    assert!(consistency_proof_from_leaves(&leaves, 9).is_none());
    assert_eq!(consistency_proof_from_leaves(&leaves, 0), Some(vec![]));
    assert_eq!(consistency_proof_from_leaves(&leaves, 8), Some(vec![]));
    // A leaf outside the tree, or an empty tree, proves nothing.
    assert!(!verify_inclusion(&leaves[0], 0, 0, &[], &h(EMPTY_ROOT)));
    assert!(!verify_inclusion(&leaves[0], 1, 1, &[], &root1));
    assert!(verify_inclusion(&leaves[0], 0, 1, &[], &root1));
    // Equal sizes need equal roots and an empty proof.
    assert!(verify_consistency(1, 1, &root1, &root1, &[]));
    assert!(!verify_consistency(1, 1, &root1, &h(ROOTS[1]), &[]));
    assert!(!verify_consistency(1, 1, &root1, &root1, &[root1]));
    // From the empty tree: only from its root, with an empty proof.
    assert!(verify_consistency(0, 5, &h(EMPTY_ROOT), &h(ROOTS[4]), &[]));
    assert!(!verify_consistency(0, 5, &root1, &h(ROOTS[4]), &[]));
    assert!(!verify_consistency(
        0,
        5,
        &h(EMPTY_ROOT),
        &h(ROOTS[4]),
        &[root1]
    ));
    // Backwards never holds.
    assert!(!verify_consistency(2, 1, &h(ROOTS[1]), &root1, &[]));
}

fn leaves_of(n: usize) -> Vec<Hash> {
    (0..n as u32).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Proofs built from stored nodes equal the RFC's reference definitions, and verify.
    #[test]
    fn node_proofs_equal_reference_and_verify(size in 1usize..300, a in any::<u64>(), b in any::<u64>()) {
        let leaves = leaves_of(size);
        let nodes = MemNodes::new(&leaves);
        let size = size as u64;
        let root = root_from_leaves(&leaves);
        prop_assert_eq!(root_from_nodes(&nodes, size).unwrap(), root);

        let index = a % size;
        let proof = inclusion_proof_from_leaves(&leaves, index).unwrap();
        prop_assert_eq!(&inclusion_from_nodes(&nodes, index, size).unwrap(), &proof);
        prop_assert!(verify_inclusion(&leaves[index as usize], index, size, &proof, &root));

        let size1 = b % (size + 1);
        let proof = consistency_proof_from_leaves(&leaves, size1).unwrap();
        prop_assert_eq!(&consistency_from_nodes(&nodes, size1, size).unwrap(), &proof);
        let root1 = root_from_leaves(&leaves[..size1 as usize]);
        prop_assert!(verify_consistency(size1, size, &root1, &root, &proof));
    }

    /// Any change to a hash, the index, the size or the root makes an inclusion proof fail.
    #[test]
    fn changed_inclusion_inputs_fail(size in 1usize..300, a in any::<u64>(), pick in any::<usize>(), bit in 0u8..8, delta in 1u64..4) {
        let leaves = leaves_of(size);
        let size = size as u64;
        let root = root_from_leaves(&leaves);
        let index = a % size;
        let leaf = leaves[index as usize];
        let proof = inclusion_proof_from_leaves(&leaves, index).unwrap();

        if !proof.is_empty() {
            let mut changed = proof.clone();
            changed[pick % proof.len()][pick % 32] ^= 1 << bit;
            prop_assert!(!verify_inclusion(&leaf, index, size, &changed, &root));
        }
        let mut changed_leaf = leaf;
        changed_leaf[pick % 32] ^= 1 << bit;
        prop_assert!(!verify_inclusion(&changed_leaf, index, size, &proof, &root));
        let mut changed_root = root;
        changed_root[pick % 32] ^= 1 << bit;
        prop_assert!(!verify_inclusion(&leaf, index, size, &proof, &changed_root));
        // Another index holds another leaf, so the same leaf hash cannot be proven there.
        let other = (index + delta) % size;
        if other != index {
            prop_assert!(!verify_inclusion(&leaf, other, size, &proof, &root));
        }
        // The proof does not prove the leaf in a tree of another size. (With the original root
        // a nearby size can give the proof the same shape; it is the signed checkpoint that binds
        // a size to its root, so the claim is checked against the other size's root.)
        for other_size in [size + delta, size.saturating_sub(delta)] {
            if other_size != size && index < other_size {
                let other_leaves = leaves_of(other_size as usize);
                let other_root = root_from_leaves(&other_leaves);
                prop_assert!(!verify_inclusion(&leaf, index, other_size, &proof, &other_root));
            }
        }
        // Sizes that change the proof's shape fail even with the original root.
        prop_assert!(!verify_inclusion(&leaf, index, size * 2, &proof, &root));
        if index < size / 2 {
            prop_assert!(!verify_inclusion(&leaf, index, size / 2, &proof, &root));
        }
    }

    /// Any change to a hash, a size or a root makes a non-trivial consistency proof fail.
    #[test]
    fn changed_consistency_inputs_fail(size in 2usize..300, a in any::<u64>(), pick in any::<usize>(), bit in 0u8..8, delta in 1u64..4) {
        let leaves = leaves_of(size);
        let size2 = size as u64;
        let size1 = 1 + a % (size2 - 1);
        let root1 = root_from_leaves(&leaves[..size1 as usize]);
        let root2 = root_from_leaves(&leaves);
        let proof = consistency_proof_from_leaves(&leaves, size1).unwrap();
        prop_assert!(!proof.is_empty());

        let mut changed = proof.clone();
        changed[pick % proof.len()][pick % 32] ^= 1 << bit;
        prop_assert!(!verify_consistency(size1, size2, &root1, &root2, &changed));
        let mut changed_root = root1;
        changed_root[pick % 32] ^= 1 << bit;
        prop_assert!(!verify_consistency(size1, size2, &changed_root, &root2, &proof));
        let mut changed_root = root2;
        changed_root[pick % 32] ^= 1 << bit;
        prop_assert!(!verify_consistency(size1, size2, &root1, &changed_root, &proof));
        // Other sizes, each with its own root (see changed_inclusion_inputs_fail).
        let all = leaves_of(size + 4);
        for other in [size1 + delta, size1.saturating_sub(delta)] {
            if other != size1 && other < size2 {
                let other_root = root_from_leaves(&all[..other as usize]);
                prop_assert!(!verify_consistency(other, size2, &other_root, &root2, &proof));
            }
        }
        for other in [size2 + delta, size2 - 1] {
            if other != size2 && other > size1 {
                let other_root = root_from_leaves(&all[..other as usize]);
                prop_assert!(!verify_consistency(size1, other, &root1, &other_root, &proof));
            }
        }
        // Sizes that change the proof's shape fail even with the original roots.
        prop_assert!(!verify_consistency(size1, size2 * 2, &root1, &root2, &proof));
    }
}
