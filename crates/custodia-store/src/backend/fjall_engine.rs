//! fjall 3, an LSM-tree engine: one keyspace, so that every batch is one journal write (atomic
//! across a crash), and one explicit journal sync with group commit.
//!
//! Why it sits beside sled: a store grown by ingest rewrites each subject's last analytics chunk
//! with every new fact, and sled 0.34 keeps the old copies in its log until it cleans a segment,
//! at a threshold it does not let us set. An LSM tree drops old versions when it compacts, and
//! compresses its blocks. docs/performance.md has the figures for both engines.

use std::ops::Bound;
use std::path::Path;

use fjall::Readable;

use super::group_commit::GroupCommit;
use super::{KvBackend, KvEntry, KvOp, scan_start, seek_end};
use crate::StoreError;

/// The one keyspace every key lives in.
const KEYSPACE: &str = "custodia";

/// fjall 3 in one directory, which it locks for as long as the backend lives.
///
/// Every read goes through a snapshot: a keyspace's own iterators read past the published
/// sequence number and can see half of a batch that is being applied.
pub struct FjallBackend {
    db: fjall::Database,
    keys: fjall::Keyspace,
    commit: GroupCommit,
    /// The first failed journal write or sync, once there has been one: fjall then refuses
    /// every write until it is reopened ("poisoned"), and `flush` says so, so that `/healthz`
    /// asks for a restart.
    failed: std::sync::OnceLock<StoreError>,
}

impl FjallBackend {
    /// Opens (or creates) the store in `dir` with a block cache of `cache_bytes`.
    ///
    /// Fails with [`StoreError::Locked`] at once if another process or another handle in this
    /// one has the directory open.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<FjallBackend, StoreError> {
        let db = fjall::Database::builder(dir)
            .cache_size(cache_bytes)
            .open()
            .map_err(engine_error)?;
        let keys = db
            .keyspace(KEYSPACE, fjall::KeyspaceCreateOptions::default)
            .map_err(engine_error)?;
        Ok(FjallBackend {
            db,
            keys,
            commit: GroupCommit::default(),
            failed: std::sync::OnceLock::new(),
        })
    }

    /// [`FjallBackend::open_with_cache`] with the default cache.
    pub fn open(dir: &Path) -> Result<FjallBackend, StoreError> {
        FjallBackend::open_with_cache(dir, super::DEFAULT_CACHE_BYTES)
    }

    /// Whether `dir` holds a fjall store (its version marker), as opposed to a sled one or
    /// nothing.
    pub fn is_store(dir: &Path) -> bool {
        dir.join("version").is_file()
    }
}

/// fjall's messages name files and its own state, never keys or values. A full file system is
/// told apart: the caller answers "insufficient storage", not "internal".
fn engine_error(error: fjall::Error) -> StoreError {
    let io = match &error {
        fjall::Error::Locked => return StoreError::Locked,
        fjall::Error::Io(io) => Some(io),
        fjall::Error::Storage(fjall::LsmError::Io(io)) => Some(io),
        _ => None,
    };
    match io {
        Some(io) if custodia_core::is_storage_full(io) => {
            StoreError::StorageFull(error.to_string())
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

impl FjallBackend {
    /// Maps a failed journal write or sync, and remembers the first: after it fjall refuses
    /// every write until reopened.
    fn failure(&self, error: fjall::Error) -> StoreError {
        let error = engine_error(error);
        let _ = self.failed.set(error.clone());
        error
    }
}

fn entry(guard: fjall::Guard) -> Result<KvEntry, StoreError> {
    let (key, value) = guard.into_inner().map_err(engine_error)?;
    Ok((key.to_vec(), value.to_vec()))
}

impl KvBackend for FjallBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .snapshot()
            .get(&self.keys, key)
            .map_err(engine_error)?
            .map(|value| value.to_vec()))
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvEntry>, StoreError> {
        let range = (scan_start(prefix, after), Bound::Unbounded);
        let mut entries = Vec::new();
        for guard in self.db.snapshot().range::<&[u8], _>(&self.keys, range) {
            if entries.len() >= limit {
                break;
            }
            let (key, value) = entry(guard)?;
            if !key.starts_with(prefix) {
                break;
            }
            entries.push((key, value));
        }
        Ok(entries)
    }

    fn last_before(&self, prefix: &[u8], before: &[u8]) -> Result<Option<KvEntry>, StoreError> {
        let Some(end) = seek_end(prefix, before) else {
            return Ok(None);
        };
        let range = (Bound::Included(prefix.to_vec()), end);
        match self
            .db
            .snapshot()
            .range::<Vec<u8>, _>(&self.keys, range)
            .next_back()
        {
            Some(guard) => {
                let (key, value) = entry(guard)?;
                Ok(key.starts_with(prefix).then_some((key, value)))
            }
            None => Ok(None),
        }
    }

    fn apply(&self, ops: Vec<KvOp>) -> Result<(), StoreError> {
        if let Some(failed) = self.failed.get() {
            return Err(failed.clone());
        }
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = self.db.batch();
        for op in ops {
            match op {
                KvOp::Put { key, value } => batch.insert(&self.keys, key, value),
                KvOp::Delete { key } => batch.remove(&self.keys, key),
            }
        }
        batch.commit().map_err(|error| self.failure(error))?;
        self.commit.applied();
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        if let Some(failed) = self.failed.get() {
            return Err(failed.clone());
        }
        self.commit.flush(|| {
            self.db
                .persist(fjall::PersistMode::SyncAll)
                .map_err(|error| self.failure(error))
        })
    }

    fn size_on_disk(&self) -> u64 {
        self.db.disk_space().unwrap_or(0)
    }

    fn settle(&self) -> Result<(), StoreError> {
        self.keys.rotate_memtable_and_wait().map_err(engine_error)?;
        while self.db.outstanding_flushes() > 0 || self.db.active_compactions() > 0 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    fn count_prefix(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut n_keys = 0u64;
        for guard in self.db.snapshot().prefix(&self.keys, prefix) {
            guard.key().map_err(engine_error)?;
            n_keys += 1;
        }
        Ok(n_keys)
    }
}
