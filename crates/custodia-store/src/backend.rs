//! The key-value seam between Custodia and a storage engine: ordered byte keys, prefix scans,
//! atomic batches and an explicit flush. sled and fjall implement it for the embedded store; a
//! distributed engine (a PostgreSQL-protocol SQL database, a distributed KV) can implement it
//! later without any other crate changing.

use std::fmt;
use std::ops::Bound;

use crate::StoreError;

mod fjall_engine;
mod group_commit;
mod mem;
mod postgres_engine;
mod read_cache;
mod sled_engine;

pub use fjall_engine::FjallBackend;
pub use mem::MemBackend;
pub use postgres_engine::{PostgresBackend, SCHEMA_VERSION as POSTGRES_SCHEMA_VERSION};
pub use sled_engine::{DEFAULT_CACHE_BYTES, SledBackend};

/// The cache of a store only written once, front to back (an online backup's copy).
pub(crate) const COPY_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The embedded engines a store on disk can be held in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreEngine {
    /// sled 0.34 (a log-structured B-tree), the first engine.
    Sled,
    /// fjall 3 (an LSM tree), the engine of a new store unless told otherwise.
    #[default]
    Fjall,
}

impl StoreEngine {
    /// Every engine, in the order `--store-engine` lists them.
    pub const ALL: [StoreEngine; 2] = [StoreEngine::Sled, StoreEngine::Fjall];

    /// The engine's name, as `--store-engine` takes it.
    pub fn name(self) -> &'static str {
        match self {
            StoreEngine::Sled => "sled",
            StoreEngine::Fjall => "fjall",
        }
    }

    /// The engine that wrote the store in `dir`, or `None` when `dir` holds no store (absent
    /// or empty). Told by each engine's own files: fjall's `version` marker, sled's `conf` and
    /// `db`.
    pub fn found_in(dir: &std::path::Path) -> Option<StoreEngine> {
        if FjallBackend::is_store(dir) {
            Some(StoreEngine::Fjall)
        } else if dir.join("conf").is_file() || dir.join("db").is_file() {
            Some(StoreEngine::Sled)
        } else {
            None
        }
    }

    /// The file the engine locks while the store in `dir` is open (a running server holds it;
    /// an offline backup takes it).
    pub fn lock_file(self, dir: &std::path::Path) -> std::path::PathBuf {
        match self {
            StoreEngine::Sled => dir.join("db"),
            StoreEngine::Fjall => dir.join("lock"),
        }
    }

    /// Opens (or creates) a store of this engine in `dir` with a cache of `cache_bytes`.
    pub fn open(
        self,
        dir: &std::path::Path,
        cache_bytes: u64,
    ) -> Result<std::sync::Arc<dyn KvBackend>, StoreError> {
        Ok(match self {
            StoreEngine::Sled => {
                std::sync::Arc::new(SledBackend::open_with_cache(dir, cache_bytes)?)
            }
            StoreEngine::Fjall => {
                std::sync::Arc::new(FjallBackend::open_with_cache(dir, cache_bytes)?)
            }
        })
    }
}

impl fmt::Display for StoreEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for StoreEngine {
    type Err = String;

    fn from_str(name: &str) -> Result<StoreEngine, String> {
        StoreEngine::ALL
            .into_iter()
            .find(|engine| engine.name() == name)
            .ok_or_else(|| format!("unknown store engine {name:?}: give sled or fjall"))
    }
}

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

    /// Returns once the engine's pending background work is done (an LSM tree's memtable
    /// written out, its compactions finished), so that the size on disk is that of what is
    /// stored rather than of a write in progress: for benchmarks. Nothing to do by default.
    fn settle(&self) -> Result<(), StoreError> {
        Ok(())
    }

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
mod postgres_tests;
#[cfg(test)]
mod tests;
