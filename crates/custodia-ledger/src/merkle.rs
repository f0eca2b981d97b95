//! The Merkle tree of RFC 6962 / RFC 9162 §2.1 as pure functions: hashes, roots, inclusion and
//! consistency proofs, and their verification.
//!
//! The `*_from_leaves` functions are the RFC's reference definitions written out literally
//! (MTH, PATH, PROOF); they take the whole leaf list and are meant for tests and small trees. The
//! log computes the same roots and proofs from stored complete-subtree hashes in O(log n) reads
//! (`root_from_nodes`, `inclusion_from_nodes`, `consistency_from_nodes` here, over a
//! [`NodeSource`]), and the tests check the two against each other.
//!
//! Terms: the node at *level* `L`, *index* `i` is the root of the complete subtree over leaves
//! `[i·2^L, (i+1)·2^L)`; level 0 holds the leaf hashes.

use custodia_vault::sha256_parts;

use crate::{Hash, LedgerError};

/// The leaf hash of an entry: `SHA-256(0x00 ‖ entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    sha256_parts(&[&[0x00], entry])
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256_parts(&[&[0x01], left, right])
}

/// The root of the empty tree: `SHA-256("")`.
pub fn empty_root() -> Hash {
    sha256_parts(&[])
}

/// The largest power of two strictly smaller than `n` (`n ≥ 2`): the size of the left subtree
/// in RFC 9162's split `D[0:k]`, `D[k:n]`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH(D[0:n]) of RFC 9162 §2.1.1 over leaf hashes (already `leaf_hash`ed).
pub fn root_from_leaves(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split_point(n as u64) as usize;
            node_hash(
                &root_from_leaves(&leaves[..k]),
                &root_from_leaves(&leaves[k..]),
            )
        }
    }
}

/// PATH(m, D[0:n]) of RFC 9162 §2.1.3.1: the inclusion proof of leaf `index`, deepest sibling
/// first. `None` if `index` is not a leaf of the tree.
pub fn inclusion_proof_from_leaves(leaves: &[Hash], index: u64) -> Option<Vec<Hash>> {
    let index = usize::try_from(index).ok()?;
    if index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    reference_path(index, leaves, &mut proof);
    Some(proof)
}

fn reference_path(m: usize, leaves: &[Hash], out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split_point(n as u64) as usize;
    if m < k {
        reference_path(m, &leaves[..k], out);
        out.push(root_from_leaves(&leaves[k..]));
    } else {
        reference_path(m - k, &leaves[k..], out);
        out.push(root_from_leaves(&leaves[..k]));
    }
}

/// PROOF(m, D[0:n]) of RFC 9162 §2.1.4.1: the consistency proof from the tree of the first
/// `size1` leaves to the tree of all of them. Empty for `size1 == 0` and `size1 == n` (nothing
/// to prove); `None` if `size1` exceeds the number of leaves.
pub fn consistency_proof_from_leaves(leaves: &[Hash], size1: u64) -> Option<Vec<Hash>> {
    let m = usize::try_from(size1).ok()?;
    if m > leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    if m > 0 {
        reference_subproof(m, leaves, true, &mut proof);
    }
    Some(proof)
}

fn reference_subproof(m: usize, leaves: &[Hash], complete: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !complete {
            out.push(root_from_leaves(leaves));
        }
        return;
    }
    let k = split_point(n as u64) as usize;
    if m <= k {
        reference_subproof(m, &leaves[..k], complete, out);
        out.push(root_from_leaves(&leaves[k..]));
    } else {
        reference_subproof(m - k, &leaves[k..], false, out);
        out.push(root_from_leaves(&leaves[..k]));
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2): that `leaf` is leaf number `index` of the
/// tree of `tree_size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let mut fn_ = index;
    let mut sn = tree_size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *root
}

/// Verifies a consistency proof (RFC 9162 §2.1.4.2): that the tree of `size2` leaves with root
/// `root2` extends the tree of `size1` leaves with root `root1`.
///
/// The trivial cases are decided without a proof, which must then be empty: `size1 == size2`
/// holds when the roots are equal, and `size1 == 0` holds when `root1` is the empty root (stricter
/// than some implementations, which accept any `root1` there).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> bool {
    if size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    if size1 == 0 {
        return proof.is_empty() && *root1 == empty_root();
    }
    if proof.is_empty() {
        return false;
    }
    // Step 2: when size1 is a power of two, the old root is itself a node of the new tree and
    // the proof leaves it out.
    let (first, rest) = if size1.is_power_of_two() {
        (root1, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    let mut fn_ = size1 - 1;
    let mut sn = size2 - 1;
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let mut fr = *first;
    let mut sr = *first;
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *root1 && sr == *root2 && sn == 0
}

/// Where stored complete-subtree hashes come from (the log's `hashes` file, or memory in tests).
pub(crate) trait NodeSource {
    /// The hash of node (`level`, `index`), which the caller guarantees is a complete subtree of
    /// the stored tree.
    fn node(&self, level: u32, index: u64) -> Result<Hash, LedgerError>;
}

/// MTH(D[lo:hi]) from stored nodes: the range is split into complete subtrees (largest first)
/// and folded from the right. Needs `lo` aligned to the smallest power of two ≥ `hi - lo`, which
/// holds for every range the RFC recursions visit. At most 64 reads.
fn range_hash<S: NodeSource + ?Sized>(src: &S, lo: u64, hi: u64) -> Result<Hash, LedgerError> {
    if lo == hi {
        return Ok(empty_root());
    }
    let mut pieces: Vec<Hash> = Vec::new();
    let mut cursor = lo;
    let width = hi - lo;
    for level in (0..64u32).rev() {
        let size = 1u64 << level;
        if width & size != 0 {
            debug_assert_eq!(cursor % size, 0, "range not aligned");
            pieces.push(src.node(level, cursor >> level)?);
            cursor += size;
        }
    }
    let mut acc = pieces.pop().unwrap_or_else(empty_root);
    while let Some(left) = pieces.pop() {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// The root of the tree of the first `tree_size` leaves, from stored nodes (O(log n) reads).
pub(crate) fn root_from_nodes<S: NodeSource + ?Sized>(
    src: &S,
    tree_size: u64,
) -> Result<Hash, LedgerError> {
    range_hash(src, 0, tree_size)
}

/// PATH(index, D[0:tree_size]) from stored nodes. Walks down from the root: each step adds one
/// sibling, and at most one of them is an incomplete (right-edge) subtree, so O(log n) reads.
/// The caller checks `index < tree_size`.
pub(crate) fn inclusion_from_nodes<S: NodeSource + ?Sized>(
    src: &S,
    index: u64,
    tree_size: u64,
) -> Result<Vec<Hash>, LedgerError> {
    debug_assert!(index < tree_size);
    let (mut lo, mut hi) = (0u64, tree_size);
    let mut top_down = Vec::new();
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            top_down.push(range_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            top_down.push(range_hash(src, lo, lo + k)?);
            lo += k;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// PROOF(size1, D[0:size2]) from stored nodes, O(log n) reads like [`inclusion_from_nodes`].
/// Empty when `size1` is 0 or `size2`; the caller checks `size1 ≤ size2`.
pub(crate) fn consistency_from_nodes<S: NodeSource + ?Sized>(
    src: &S,
    size1: u64,
    size2: u64,
) -> Result<Vec<Hash>, LedgerError> {
    debug_assert!(size1 <= size2);
    let mut top_down = Vec::new();
    if size1 == 0 || size1 == size2 {
        return Ok(top_down);
    }
    let (mut lo, mut hi) = (0u64, size2);
    let mut complete = true;
    loop {
        let width = hi - lo;
        let m = size1 - lo;
        if m == width {
            if !complete {
                top_down.push(range_hash(src, lo, hi)?);
            }
            break;
        }
        let k = split_point(width);
        if m <= k {
            top_down.push(range_hash(src, lo + k, hi)?);
            hi = lo + k;
        } else {
            top_down.push(range_hash(src, lo, lo + k)?);
            lo += k;
            complete = false;
        }
    }
    top_down.reverse();
    Ok(top_down)
}

/// The right edge of a tree — one complete-subtree hash per set bit of its size, largest
/// first — which is all an append needs: O(log n) memory, O(log n) hashing per leaf.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub(crate) struct Frontier {
    size: u64,
    /// Invariant: `hashes.len() == size.count_ones()`; `hashes[j]` is the node for the j-th set
    /// bit of `size` counted from the top.
    hashes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of a stored tree of `size` leaves, read from `src` (one read per set bit).
    pub(crate) fn load<S: NodeSource + ?Sized>(
        src: &S,
        size: u64,
    ) -> Result<Frontier, LedgerError> {
        let mut hashes = Vec::with_capacity(size.count_ones() as usize);
        for level in (0..64u32).rev() {
            if size & (1 << level) != 0 {
                hashes.push(src.node(level, (size >> level) - 1)?);
            }
        }
        Ok(Frontier { size, hashes })
    }

    /// Number of leaves.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf. Calls `stored(level, index, hash)` for the leaf and then for every
    /// interior node it completes, bottom-up — exactly the hashes the log stores for this leaf.
    pub(crate) fn push(&mut self, leaf: Hash, mut stored: impl FnMut(u32, u64, &Hash)) {
        let n = self.size;
        let mut hash = leaf;
        stored(0, n, &hash);
        let mut level = 0u32;
        while (n >> level) & 1 == 1 {
            // A set bit of `n` has a hash in the frontier (the invariant above), so this pop
            // cannot fail.
            let left = self
                .hashes
                .pop()
                .expect("frontier holds one hash per set bit");
            hash = node_hash(&left, &hash);
            level += 1;
            stored(level, n >> level, &hash);
        }
        self.hashes.push(hash);
        self.size = n + 1;
    }

    /// The root of the tree (MTH of all its leaves).
    pub(crate) fn root(&self) -> Hash {
        let mut iter = self.hashes.iter().rev();
        let Some(last) = iter.next() else {
            return empty_root();
        };
        iter.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
pub(crate) mod tests;
