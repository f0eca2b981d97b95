//! Where things are in a log directory: file names, the position of every stored hash, and
//! positioned reads that turn a short file into an error instead of a panic.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::merkle::NodeSource;
use crate::{Hash, LedgerError};

/// The format marker file and its only accepted content.
pub(crate) const FORMAT: &str = "format";
pub(crate) const FORMAT_LINE: &[u8] = b"custodia-merkle-log 1\n";
/// Entry records: `u32 len ‖ bytes`, repeated.
pub(crate) const ENTRIES: &str = "entries";
/// One `u64` per entry: where its record starts in `entries`.
pub(crate) const OFFSETS: &str = "offsets";
/// Every complete-subtree hash, 32 bytes each, in append order (see [`stored_hash_index`]).
pub(crate) const HASHES: &str = "hashes";
/// Checkpoint records: `u32 len ‖ note text`, repeated.
pub(crate) const CHECKPOINTS: &str = "checkpoints";
/// The verifier key of the log's checkpoints, one line.
pub(crate) const VERIFIER_KEY: &str = "verifier-key";

/// A checkpoint record longer than this is corruption (100 signature lines fit in 16 KiB).
pub(crate) const MAX_CHECKPOINT_LEN: u32 = 65_536;

/// The number of hashes stored for a tree of `n` leaves: leaf `j` adds itself and one node for
/// every subtree it completes, `1 + trailing_ones(j)`, and the sum over `j < n` is
/// `2n − popcount(n)`.
pub(crate) fn stored_hash_count(n: u64) -> u64 {
    2 * n - u64::from(n.count_ones())
}

/// The position (in hashes, not bytes) of node (`level`, `index`) in the `hashes` file. The node
/// is written right after the last leaf of its subtree, `(index + 1)·2^level − 1`, as the
/// `level`-th hash of that leaf's group. (The same dense order as Crosby & Wallach §3.3 and Go's
/// `sumdb/tlog.StoredHashIndex`, which the tests check.)
pub(crate) fn stored_hash_index(level: u32, index: u64) -> u64 {
    let last_leaf = ((index + 1) << level) - 1;
    stored_hash_count(last_leaf) + u64::from(level)
}

/// The largest tree size whose hashes all fit in `n_hashes` stored hashes.
pub(crate) fn entries_covered(n_hashes: u64) -> u64 {
    // stored_hash_count is increasing and ≥ its argument, so the answer is in [0, n_hashes].
    let (mut lo, mut hi) = (0u64, n_hashes);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if stored_hash_count(mid) <= n_hashes {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// Reads exactly `buf.len()` bytes at `offset`; a file too short is `Corrupt`, not a panic.
pub(crate) fn read_exact_at(
    file: &File,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), LedgerError> {
    file.read_exact_at(buf, offset).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            LedgerError::Corrupt {
                path: path.to_owned(),
                detail: format!("file ends before byte {}", offset + buf.len() as u64),
            }
        } else {
            LedgerError::io(path, e)
        }
    })
}

/// A big-endian `u64` at `offset`.
pub(crate) fn read_u64_at(file: &File, path: &Path, offset: u64) -> Result<u64, LedgerError> {
    let mut buf = [0u8; 8];
    read_exact_at(file, path, &mut buf, offset)?;
    Ok(u64::from_be_bytes(buf))
}

/// A big-endian `u32` at `offset`.
pub(crate) fn read_u32_at(file: &File, path: &Path, offset: u64) -> Result<u32, LedgerError> {
    let mut buf = [0u8; 4];
    read_exact_at(file, path, &mut buf, offset)?;
    Ok(u32::from_be_bytes(buf))
}

/// The `hashes` file as a source of stored nodes.
pub(crate) struct HashFile<'a> {
    pub(crate) file: &'a File,
    pub(crate) path: PathBuf,
}

impl NodeSource for HashFile<'_> {
    fn node(&self, level: u32, index: u64) -> Result<Hash, LedgerError> {
        let mut hash = [0u8; 32];
        read_exact_at(
            self.file,
            &self.path,
            &mut hash,
            32 * stored_hash_index(level, index),
        )?;
        Ok(hash)
    }
}

/// The newest checkpoint of the log named `origin` in a witness directory: its tree size and
/// when its file was written; `None` when there is none yet (or the directory is missing).
pub fn latest_witness_copy(
    dir: &std::path::Path,
    origin: &str,
) -> std::io::Result<Option<(u64, std::time::SystemTime)>> {
    let prefix = witness_file_name(origin, 0);
    let prefix = prefix.trim_end_matches("0.checkpoint");
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut latest: Option<(u64, std::time::SystemTime)> = None;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(size) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.strip_suffix(".checkpoint"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        if latest.is_none_or(|(best, _)| size > best) {
            latest = Some((size, entry.metadata()?.modified()?));
        }
    }
    Ok(latest)
}

/// A file name for a checkpoint in a witness directory: the origin with every character outside
/// `[A-Za-z0-9._-]` replaced by `_`, then `-<tree size>.checkpoint`.
pub(crate) fn witness_file_name(origin: &str, tree_size: u64) -> String {
    let safe: String = origin
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{safe}-{tree_size}.checkpoint")
}
