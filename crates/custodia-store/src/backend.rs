//! The key-value seam between Custodia and a storage engine: ordered byte keys, prefix scans,
//! atomic batches and an explicit flush. sled implements it for the embedded default; a
//! distributed engine (a PostgreSQL-protocol SQL database, a distributed KV) can implement it
//! later without any other crate changing.

use std::fmt;
use std::ops::Bound;

use crate::StoreError;

mod mem;
mod sled_engine;

pub use mem::MemBackend;
pub use sled_engine::{DEFAULT_CACHE_BYTES, SledBackend};

/// One key and its value, as a scan returns them.
pub type KvEntry = (Vec<u8>, Vec<u8>);

/// An ordered key-value engine.
///
/// Keys compare as byte strings (lexicographic, unsigned). A reader sees every `apply` that
/// returned before the read started. Durability is separate: an applied batch survives a crash
/// only once a later `flush` has returned.
pub trait KvBackend: Send + Sync + 'static {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Entries whose key starts with `prefix`, in key order, strictly after `after` if given, at most `limit`.
    fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvEntry>, StoreError>;

    /// The entry with the greatest key that starts with `prefix` and sorts strictly before
    /// `before`, if any (a backwards seek: the packed analytics projection finds the chunk that
    /// holds an event with it).
    ///
    /// The default pages forward through `scan_prefix`; an engine with a reverse range
    /// overrides it.
    fn last_before(&self, prefix: &[u8], before: &[u8]) -> Result<Option<KvEntry>, StoreError> {
        const PAGE: usize = 1024;
        let mut last = None;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.scan_prefix(prefix, after.as_deref(), PAGE)?;
            let full = page.len() == PAGE;
            for entry in page {
                if entry.0.as_slice() >= before {
                    return Ok(last);
                }
                after = Some(entry.0.clone());
                last = Some(entry);
            }
            if !full {
                return Ok(last);
            }
        }
    }

    /// Applies all ops atomically (all or nothing, also across a crash). Not yet durable.
    ///
    /// Ops apply in order, so when two ops name the same key the later one wins.
    fn apply(&self, ops: Vec<KvOp>) -> Result<(), StoreError>;

    /// Returns once everything applied before the call is durable on disk. Concurrent callers may share one flush (group commit).
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes on disk (for metrics), 0 if unknown.
    fn size_on_disk(&self) -> u64;

    /// How many keys start with `prefix`.
    ///
    /// The default pages through `scan_prefix`; an engine with a cheaper count overrides it.
    fn count_prefix(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        const PAGE: usize = 1024;
        let mut n_keys = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.scan_prefix(prefix, after.as_deref(), PAGE)?;
            n_keys += page.len() as u64;
            if page.len() < PAGE {
                return Ok(n_keys);
            }
            after = page.into_iter().next_back().map(|(key, _)| key);
        }
    }
}

/// One change in an atomic batch.
#[derive(Clone, PartialEq, Eq)]
pub enum KvOp {
    /// Sets `key` to `value`, replacing any value it had.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        value: Vec<u8>,
    },
    /// Removes `key`; removing a missing key is not an error.
    Delete {
        /// The key.
        key: Vec<u8>,
    },
}

impl KvOp {
    /// The key the op changes.
    pub fn key(&self) -> &[u8] {
        match self {
            KvOp::Put { key, .. } | KvOp::Delete { key } => key,
        }
    }
}

impl fmt::Debug for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys hold keyed hashes and values hold ciphertext: lengths only.
        match self {
            KvOp::Put { key, value } => f
                .debug_struct("Put")
                .field("key_len", &key.len())
                .field("value_len", &value.len())
                .finish(),
            KvOp::Delete { key } => f
                .debug_struct("Delete")
                .field("key_len", &key.len())
                .finish(),
        }
    }
}

/// Where a scan of `prefix` strictly after `after` starts: at the prefix itself, or just past
/// `after` when `after` sorts at or beyond the prefix.
fn scan_start<'a>(prefix: &'a [u8], after: Option<&'a [u8]>) -> Bound<&'a [u8]> {
    match after {
        Some(after) if after >= prefix => Bound::Excluded(after),
        _ => Bound::Included(prefix),
    }
}

/// The exclusive upper end of a backwards seek for [`KvBackend::last_before`]: `before` itself
/// when it starts with `prefix`, else the end of the prefix's range (just past its last possible
/// key), so that a key outside the prefix never hides the prefix's last entry. `None` when the
/// seek can find nothing (`before` sorts at or before the prefix).
fn seek_end(prefix: &[u8], before: &[u8]) -> Option<Bound<Vec<u8>>> {
    if before <= prefix {
        return None;
    }
    if before.starts_with(prefix) {
        return Some(Bound::Excluded(before.to_vec()));
    }
    // `before` lies past the whole prefix range: the range ends at the prefix's successor.
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(Bound::Excluded(end));
        }
    }
    Some(Bound::Unbounded)
}

#[cfg(test)]
mod tests;
