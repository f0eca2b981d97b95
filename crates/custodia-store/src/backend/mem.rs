//! An in-memory backend for tests: a `BTreeMap` behind a `RwLock`. Nothing is durable.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::{KvBackend, KvEntry, KvOp, scan_start, seek_end};
use crate::StoreError;

/// The map behind the lock.
type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

/// A backend that keeps everything in memory; `flush` does nothing.
#[derive(Default)]
pub struct MemBackend {
    entries: RwLock<Entries>,
}

impl MemBackend {
    /// An empty backend.
    pub fn new() -> MemBackend {
        MemBackend::default()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, Entries>, StoreError> {
        self.entries.read().map_err(|_| poisoned())
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, Entries>, StoreError> {
        self.entries.write().map_err(|_| poisoned())
    }
}

/// A thread panicked while holding the lock; refuse rather than guess at the map's state.
fn poisoned() -> StoreError {
    StoreError::Backend("memory backend lock poisoned by a panic".to_owned())
}

impl KvBackend for MemBackend {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.read()?.get(key).cloned())
    }

    fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<KvEntry>, StoreError> {
        let entries = self.read()?;
        let range = (scan_start(prefix, after), Bound::Unbounded);
        Ok(entries
            .range::<[u8], _>(range)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect())
    }

    fn last_before(&self, prefix: &[u8], before: &[u8]) -> Result<Option<KvEntry>, StoreError> {
        let Some(end) = seek_end(prefix, before) else {
            return Ok(None);
        };
        let entries = self.read()?;
        let range = (Bound::Included(prefix.to_vec()), end);
        Ok(entries
            .range::<Vec<u8>, _>(range)
            .next_back()
            .filter(|(key, _)| key.starts_with(prefix))
            .map(|(key, value)| (key.clone(), value.clone())))
    }

    fn apply(&self, ops: Vec<KvOp>) -> Result<(), StoreError> {
        // Atomic: the write lock hides the batch until every op is in, and no op can fail.
        let mut entries = self.write()?;
        for op in ops {
            match op {
                KvOp::Put { key, value } => {
                    entries.insert(key, value);
                }
                KvOp::Delete { key } => {
                    entries.remove(&key);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn size_on_disk(&self) -> u64 {
        0
    }
}
