//! The embedded default engine: sled 0.34, one tree (the default one) so that every batch is a
//! single `apply_batch`, atomic across a crash, and one explicit flush with group commit.

use std::ops::Bound;
use std::path::Path;

use super::group_commit::GroupCommit;
use super::{KvBackend, KvEntry, KvOp, scan_start, seek_end};
use crate::StoreError;

/// Default page cache size: enough for the hot part of a million-profile store. A store whose
/// full scans should stay fast (analytics over millions of events) wants more: see
/// docs/performance.md.
pub const DEFAULT_CACHE_BYTES: u64 = 256 * 1024 * 1024;

/// sled's own background flush, a safety net only: acknowledged writes call `flush`.
const BACKGROUND_FLUSH_EVERY_MS: u64 = 500;

/// sled 0.34 in one directory, which it locks for as long as the backend lives.
pub struct SledBackend {
    db: sled::Db,
    commit: GroupCommit,
}

impl SledBackend {
    /// Opens (or creates) the store in `dir`.
    ///
    /// Fails with [`StoreError::Locked`] at once if another process or another handle in this
    /// one has the directory open: sled takes a non-blocking exclusive lock on its data file.
    pub fn open(dir: &Path) -> Result<SledBackend, StoreError> {
        SledBackend::open_with_cache(dir, DEFAULT_CACHE_BYTES)
    }

    /// [`SledBackend::open`] of a directory whose previous handle was just dropped, trying again
    /// for up to `within` while it is still [`StoreError::Locked`]: sled releases its file lock
    /// when its background flusher lets go of the last reference, a moment after the handle is
    /// dropped, and on a loaded machine that moment can come after the next open.
    pub fn open_when_released(
        dir: &Path,
        within: std::time::Duration,
    ) -> Result<SledBackend, StoreError> {
        let started = std::time::Instant::now();
        loop {
            match SledBackend::open(dir) {
                Err(StoreError::Locked) if started.elapsed() < within => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => return other,
            }
        }
    }

    /// [`SledBackend::open`] with a page cache of `cache_bytes`.
    pub fn open_with_cache(dir: &Path, cache_bytes: u64) -> Result<SledBackend, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .flush_every_ms(Some(BACKGROUND_FLUSH_EVERY_MS))
            // The default, spelled out: smaller files over peak write speed.
            .mode(sled::Mode::LowSpace)
            .open()
            .map_err(open_error)?;
        Ok(SledBackend {
            db,
            commit: GroupCommit::default(),
        })
    }
}

impl Drop for SledBackend {
    fn drop(&mut self) {
        // Best effort on a clean shutdown; callers that acknowledge writes have flushed already,
        // and a failure here has nobody left to report to.
        let _ = self.db.flush();
    }
}

/// sled reports a held lock as an `Other` I/O error whose message starts with "could not
/// acquire lock" (sled 0.34.7, `Config::try_lock`); there is no dedicated variant to match.
fn open_error(error: sled::Error) -> StoreError {
    match &error {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::Locked
        }
        _ => engine_error(error),
    }
}

/// sled's messages name files, offsets and sled's own state, never keys or values.
/// A full file system is told apart: the caller answers "insufficient storage", not "internal".
fn engine_error(error: sled::Error) -> StoreError {
    match &error {
        sled::Error::Io(io) if custodia_core::is_storage_full(io) => {
            StoreError::StorageFull(error.to_string())
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

impl KvBackend for SledBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get(key)
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
        for entry in self.db.range::<&[u8], _>(range) {
            if entries.len() >= limit {
                break;
            }
            let (key, value) = entry.map_err(engine_error)?;
            if !key.starts_with(prefix) {
                break;
            }
            entries.push((key.to_vec(), value.to_vec()));
        }
        Ok(entries)
    }

    fn last_before(&self, prefix: &[u8], before: &[u8]) -> Result<Option<KvEntry>, StoreError> {
        let Some(end) = seek_end(prefix, before) else {
            return Ok(None);
        };
        let range = (Bound::Included(prefix.to_vec()), end);
        match self.db.range::<Vec<u8>, _>(range).next_back() {
            Some(entry) => {
                let (key, value) = entry.map_err(engine_error)?;
                Ok(key
                    .starts_with(prefix)
                    .then(|| (key.to_vec(), value.to_vec())))
            }
            None => Ok(None),
        }
    }

    fn apply(&self, ops: Vec<KvOp>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                KvOp::Put { key, value } => batch.insert(key, value),
                KvOp::Delete { key } => batch.remove(key),
            }
        }
        self.db.apply_batch(batch).map_err(engine_error)?;
        self.commit.applied();
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.commit
            .flush(|| self.db.flush().map(drop).map_err(engine_error))
    }

    fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }

    fn count_prefix(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut n_keys = 0u64;
        for key in self.db.scan_prefix(prefix).keys() {
            key.map_err(engine_error)?;
            n_keys += 1;
        }
        Ok(n_keys)
    }
}
