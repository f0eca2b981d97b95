//! Offline verification of a log directory: every entry, stored hash and checkpoint, read-only
//! and without the log's lock, naming the first thing that does not hold.
//!
//! Order of checks (the first failure is returned):
//! 1. the `format` file;
//! 2. every complete checkpoint record, oldest first: it parses, carries a valid signature by the
//!    given key, and its tree size is larger than the previous one's;
//! 3. the log is not shorter than its latest checkpoint (truncation or rollback);
//! 4. one sequential pass over `offsets`, `entries` and `hashes`: each offset is where the
//!    previous record ends, each record is complete, each stored leaf hash equals
//!    `SHA-256(0x00 ‖ entry)`, each stored interior node equals the hash of its recomputed
//!    children, and at each checkpoint's size the recomputed root equals the signed root;
//! 5. between consecutive checkpoints, a consistency proof built from the (now verified) stored
//!    hashes verifies.
//!
//! The log's size is what `offsets` and `hashes` both cover. A tail past it (an append or
//! checkpoint in flight in a running server, or a crash's torn tail that `Log::open` would cut)
//! is not part of the log and is not checked; a log cut short is caught by step 3.
//!
//! When a stored leaf hash and its entry disagree, the stored parent node decides which one
//! changed: if the parent matches the entry's recomputed hash, the stored leaf hash is named
//! (node at level 0); otherwise — or when the leaf has no parent yet — the entry is named.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use custodia_core::ErrorCode;

use crate::log::{
    CHECKPOINTS, ENTRIES, HASHES, HashFile, MAX_CHECKPOINT_LEN, OFFSETS, entries_covered,
};
use crate::merkle::{self, Frontier, NodeSource};
use crate::{Checkpoint, Hash, MAX_ENTRY_LEN, VerifierKey};

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries verified (the log's tree size).
    pub n_entries: u64,
    /// Checkpoints verified.
    pub n_checkpoints: usize,
    /// The root of the whole log, recomputed from the entries.
    pub root: Hash,
}

/// The first check that failed, naming the entry, node or checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyFailure {
    /// A file could not be read.
    #[error("cannot read {}: {detail}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's message.
        detail: String,
    },
    /// The directory is not a log of this format (no or another `format` file).
    #[error("{} is not a custodia-merkle-log 1 directory", path.display())]
    Format {
        /// The directory.
        path: PathBuf,
    },
    /// An offset in `offsets` is not where the previous record ends.
    #[error(
        "entry {seq}: the offsets file places it at byte {found}, but the previous record ends at byte {expected}"
    )]
    EntryOffset {
        /// The entry.
        seq: u64,
        /// Where the previous record ends.
        expected: u64,
        /// What `offsets` says.
        found: u64,
    },
    /// An entry's record runs past the end of `entries`.
    #[error("entry {seq}: record runs past the end of the entries file")]
    EntryTruncated {
        /// The entry.
        seq: u64,
    },
    /// An entry's length prefix exceeds the limit.
    #[error("entry {seq}: length prefix {len} exceeds the limit of {MAX_ENTRY_LEN} bytes")]
    EntryTooLarge {
        /// The entry.
        seq: u64,
        /// The length it claims.
        len: u64,
    },
    /// The entry's bytes do not hash to its stored leaf hash (and the tree above agrees with the
    /// stored leaf hash, or cannot tell).
    #[error("entry {seq}: stored leaf hash does not match the entry bytes")]
    EntryHash {
        /// The entry.
        seq: u64,
    },
    /// A stored node differs from the hash recomputed from the entries below it.
    #[error(
        "node (level {level}, index {index}): stored hash does not match the entries it covers"
    )]
    NodeHash {
        /// Its level (0 = leaf hashes).
        level: u32,
        /// Its index within the level.
        index: u64,
    },
    /// A checkpoint record is not a well-formed checkpoint.
    #[error("checkpoint record {position}: {detail}")]
    CheckpointMalformed {
        /// 1-based position in the `checkpoints` file.
        position: usize,
        /// What is wrong.
        detail: String,
    },
    /// A checkpoint carries no valid signature by the given key.
    #[error("checkpoint at tree size {tree_size}: no valid signature by {key}")]
    CheckpointSignature {
        /// The checkpoint's tree size.
        tree_size: u64,
        /// The key's name.
        key: String,
    },
    /// A checkpoint's tree size is not larger than the previous checkpoint's.
    #[error(
        "checkpoint at tree size {tree_size} follows one at tree size {previous}: sizes must grow"
    )]
    CheckpointOrder {
        /// The checkpoint's tree size.
        tree_size: u64,
        /// The previous checkpoint's.
        previous: u64,
    },
    /// The log holds fewer entries than its latest checkpoint: truncated or rolled back.
    #[error(
        "log truncated: checkpoint at tree size {checkpoint_size} but the log holds only {n_entries} entries"
    )]
    Truncated {
        /// The latest checkpoint's tree size.
        checkpoint_size: u64,
        /// Entries in the log.
        n_entries: u64,
    },
    /// A checkpoint's signed root differs from the root recomputed from the entries.
    #[error(
        "checkpoint at tree size {tree_size}: signed root does not match the root of the log's first {tree_size} entries"
    )]
    CheckpointRoot {
        /// The checkpoint's tree size.
        tree_size: u64,
    },
    /// The consistency proof between two consecutive checkpoints does not verify.
    #[error("checkpoints at tree sizes {from} and {to}: consistency proof does not verify")]
    Inconsistent {
        /// The older checkpoint's tree size.
        from: u64,
        /// The newer checkpoint's tree size.
        to: u64,
    },
}

impl VerifyFailure {
    /// Every verification failure is a fault of the stored data: `Internal`.
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Internal
    }
}

fn io_failure(path: &Path, e: &io::Error) -> VerifyFailure {
    VerifyFailure::Io {
        path: path.to_owned(),
        detail: e.to_string(),
    }
}

fn open(path: &Path) -> Result<File, VerifyFailure> {
    File::open(path).map_err(|e| io_failure(path, &e))
}

fn len_of(file: &File, path: &Path) -> Result<u64, VerifyFailure> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| io_failure(path, &e))
}

fn read_array<const N: usize>(
    reader: &mut impl Read,
    path: &Path,
) -> Result<[u8; N], VerifyFailure> {
    let mut buf = [0u8; N];
    reader
        .read_exact(&mut buf)
        .map_err(|e| io_failure(path, &e))?;
    Ok(buf)
}

/// Verifies the log in `dir` against the checkpoint verifier key `key` (see the module
/// documentation for what is checked, and in which order). Read-only; safe to run beside a
/// server that is appending.
pub fn verify_dir(dir: &Path, key: &VerifierKey) -> Result<VerifyReport, VerifyFailure> {
    let format_path = dir.join(crate::log::FORMAT);
    match std::fs::read(&format_path) {
        Ok(bytes) if bytes == crate::log::FORMAT_LINE => {}
        Ok(_) => {
            return Err(VerifyFailure::Format {
                path: dir.to_owned(),
            });
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(VerifyFailure::Format {
                path: dir.to_owned(),
            });
        }
        Err(e) => return Err(io_failure(&format_path, &e)),
    }

    // Checkpoints first: everything they cover was durable before they were written.
    let checkpoints = read_checkpoints(&dir.join(CHECKPOINTS))?;
    let mut previous: Option<u64> = None;
    for checkpoint in &checkpoints {
        if !checkpoint.verify(key) {
            return Err(VerifyFailure::CheckpointSignature {
                tree_size: checkpoint.tree_size,
                key: key.name.clone(),
            });
        }
        if let Some(previous) = previous
            && checkpoint.tree_size <= previous
        {
            return Err(VerifyFailure::CheckpointOrder {
                tree_size: checkpoint.tree_size,
                previous,
            });
        }
        previous = Some(checkpoint.tree_size);
    }

    let paths = Paths {
        entries: dir.join(ENTRIES),
        offsets: dir.join(OFFSETS),
        hashes: dir.join(HASHES),
    };
    let offsets_file = open(&paths.offsets)?;
    let hashes_file = open(&paths.hashes)?;
    let entries_file = open(&paths.entries)?;
    // A concurrent append writes entries, then offsets, then hashes. Reading the lengths of
    // offsets and hashes before that of entries makes every entry counted in both have its
    // record inside the entries length read afterwards.
    let by_offsets = len_of(&offsets_file, &paths.offsets)? / 8;
    let by_hashes = entries_covered(len_of(&hashes_file, &paths.hashes)? / 32);
    let entries_len = len_of(&entries_file, &paths.entries)?;
    let n_entries = by_offsets.min(by_hashes);

    if let Some(latest) = checkpoints.last()
        && latest.tree_size > n_entries
    {
        return Err(VerifyFailure::Truncated {
            checkpoint_size: latest.tree_size,
            n_entries,
        });
    }

    let files = Files {
        paths,
        entries: entries_file,
        offsets: offsets_file,
        hashes: hashes_file,
        entries_len,
        n_entries,
    };
    let root = files.walk(&checkpoints)?;

    let node_source = HashFile {
        file: &files.hashes,
        path: files.paths.hashes.clone(),
    };
    for pair in checkpoints.windows(2) {
        let (old, new) = (&pair[0], &pair[1]);
        let proof = merkle::consistency_from_nodes(&node_source, old.tree_size, new.tree_size)
            .map_err(|e| VerifyFailure::Io {
                path: files.paths.hashes.clone(),
                detail: e.to_string(),
            })?;
        if !merkle::verify_consistency(old.tree_size, new.tree_size, &old.root, &new.root, &proof) {
            return Err(VerifyFailure::Inconsistent {
                from: old.tree_size,
                to: new.tree_size,
            });
        }
    }

    Ok(VerifyReport {
        n_entries,
        n_checkpoints: checkpoints.len(),
        root,
    })
}

/// The complete checkpoint records, parsed; a torn last record (in flight, or a crash's) is left
/// out.
fn read_checkpoints(path: &Path) -> Result<Vec<Checkpoint>, VerifyFailure> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_failure(path, &e)),
    };
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let position = out.len() + 1;
        let len = u32::from_be_bytes(*len);
        if len > MAX_CHECKPOINT_LEN {
            return Err(VerifyFailure::CheckpointMalformed {
                position,
                detail: format!("record length {len} exceeds {MAX_CHECKPOINT_LEN}"),
            });
        }
        let Some((text, tail)) = tail.split_at_checked(len as usize) else {
            break;
        };
        let text = std::str::from_utf8(text).map_err(|_| VerifyFailure::CheckpointMalformed {
            position,
            detail: "not UTF-8".to_owned(),
        })?;
        let checkpoint =
            Checkpoint::parse(text).map_err(|e| VerifyFailure::CheckpointMalformed {
                position,
                detail: e.to_string(),
            })?;
        out.push(checkpoint);
        rest = tail;
    }
    Ok(out)
}

struct Paths {
    entries: PathBuf,
    offsets: PathBuf,
    hashes: PathBuf,
}

struct Files {
    paths: Paths,
    entries: File,
    offsets: File,
    hashes: File,
    entries_len: u64,
    n_entries: u64,
}

impl Files {
    /// Step 4 of the module documentation; returns the root of the whole log.
    fn walk(&self, checkpoints: &[Checkpoint]) -> Result<Hash, VerifyFailure> {
        const BUFFER: usize = 1 << 16;
        let mut offsets = BufReader::with_capacity(BUFFER, &self.offsets);
        let mut entries = BufReader::with_capacity(BUFFER, &self.entries);
        let mut hashes = BufReader::with_capacity(BUFFER, &self.hashes);
        let mut pending = checkpoints.iter().peekable();
        let mut frontier = Frontier::default();
        let mut position = 0u64;
        let mut entry = Vec::new();
        let mut produced: Vec<(u32, u64, Hash)> = Vec::with_capacity(64);

        for seq in 0..=self.n_entries {
            // Checkpoints at the size reached so far (entry `seq` not yet included).
            while let Some(checkpoint) = pending.next_if(|c| c.tree_size == seq) {
                if frontier.root() != checkpoint.root {
                    return Err(VerifyFailure::CheckpointRoot { tree_size: seq });
                }
            }
            if seq == self.n_entries {
                break;
            }

            let offset = u64::from_be_bytes(read_array(&mut offsets, &self.paths.offsets)?);
            if offset != position {
                return Err(VerifyFailure::EntryOffset {
                    seq,
                    expected: position,
                    found: offset,
                });
            }
            if position + 4 > self.entries_len {
                return Err(VerifyFailure::EntryTruncated { seq });
            }
            let len = u32::from_be_bytes(read_array(&mut entries, &self.paths.entries)?);
            if len as usize > MAX_ENTRY_LEN {
                return Err(VerifyFailure::EntryTooLarge {
                    seq,
                    len: u64::from(len),
                });
            }
            if position + 4 + u64::from(len) > self.entries_len {
                return Err(VerifyFailure::EntryTruncated { seq });
            }
            entry.resize(len as usize, 0);
            entries
                .read_exact(&mut entry)
                .map_err(|e| io_failure(&self.paths.entries, &e))?;
            position += 4 + u64::from(len);

            let leaf = merkle::leaf_hash(&entry);
            produced.clear();
            frontier.push(leaf, |level, index, hash| {
                produced.push((level, index, *hash))
            });
            for &(level, index, expected) in &produced {
                let stored: Hash = read_array(&mut hashes, &self.paths.hashes)?;
                if stored != expected {
                    return Err(if level == 0 {
                        self.blame_leaf(seq, &leaf)
                    } else {
                        VerifyFailure::NodeHash { level, index }
                    });
                }
            }
        }
        Ok(frontier.root())
    }

    /// Entry `seq`'s recomputed leaf hash `leaf` differs from the stored one: decides from the
    /// stored parent which of the two was changed (module documentation).
    fn blame_leaf(&self, seq: u64, leaf: &Hash) -> VerifyFailure {
        let entry_changed = VerifyFailure::EntryHash { seq };
        let sibling = seq ^ 1;
        if sibling >= self.n_entries {
            return entry_changed;
        }
        let nodes = HashFile {
            file: &self.hashes,
            path: self.paths.hashes.clone(),
        };
        let (Ok(sibling_leaf), Ok(parent)) = (self.leaf_of(sibling), nodes.node(1, seq / 2)) else {
            return entry_changed;
        };
        let recomputed_parent = if seq.is_multiple_of(2) {
            merkle::node_hash(leaf, &sibling_leaf)
        } else {
            merkle::node_hash(&sibling_leaf, leaf)
        };
        if recomputed_parent == parent {
            VerifyFailure::NodeHash {
                level: 0,
                index: seq,
            }
        } else {
            entry_changed
        }
    }

    /// The recomputed leaf hash of entry `seq`, by positioned reads.
    fn leaf_of(&self, seq: u64) -> Result<Hash, crate::LedgerError> {
        use crate::log::{read_exact_at, read_u32_at, read_u64_at};
        let offset = read_u64_at(&self.offsets, &self.paths.offsets, 8 * seq)?;
        let len = read_u32_at(&self.entries, &self.paths.entries, offset)? as usize;
        if len > MAX_ENTRY_LEN {
            return Err(crate::LedgerError::Corrupt {
                path: self.paths.entries.clone(),
                detail: "oversized record".to_owned(),
            });
        }
        let mut bytes = vec![0u8; len];
        read_exact_at(&self.entries, &self.paths.entries, &mut bytes, offset + 4)?;
        Ok(merkle::leaf_hash(&bytes))
    }
}

#[cfg(test)]
mod tests;
