//! The typed store: records in, records out, over any [`KvBackend`]. Every key is built by
//! `keys.rs` and every value by `records.rs`; nothing here knows the engine.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use custodia_core::{ApiKeyId, EventId, Pseudonym, PurposeId, SubjectId, TenantId, Timestamp};

use crate::backend::{
    self, KvBackend, KvEntry, KvOp, MemBackend, PostgresBackend, SledBackend, StoreEngine,
};
use crate::gate::WriteGate;
use crate::packed::{self, FactOp};
use crate::records::{
    self, ApiKeyRecord, ConsentRecord, EventRecord, LookupKind, MergeRecord, SubjectFlagsRecord,
    SubjectRecord,
};
use crate::{ProjectionChange, StoreError, WriteObserver, keys};

/// A data-subject request record: its id and the engine's bytes.
pub type DsrEntry = ([u8; 16], Vec<u8>);

/// How many entries an unbounded read asks the backend for at a time.
const SCAN_PAGE: usize = 1024;

/// The persistent store of subjects, index entries, events, merges, API keys and metadata.
///
/// Cheap to clone (one `Arc`); every clone sees the same backend.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn KvBackend>,
    /// The embedded engine behind `backend`, when the store was opened from a directory.
    engine: Option<StoreEngine>,
    /// Free space that writes leave on the store's file system (see [`Store::reserve_free_space`]);
    /// shared by every clone.
    reserve: Arc<RwLock<Option<FreeSpaceReserve>>>,
    /// Held by every write, and paused by an online backup; shared by every clone and, through
    /// [`Store::write_gate`], by the engine's other writers (ledgers, access logs, key store).
    gate: Arc<WriteGate>,
    /// Told of the projection changes of every write ([`Store::observe`]); shared by every clone.
    observer: Arc<RwLock<Option<Arc<dyn WriteObserver>>>>,
    /// Held across applying a batch with projection changes and telling the observer, so the
    /// observer sees writes in the order they applied; and across resolving a batch's fact
    /// changes into chunk writes and applying them (`packed.rs`).
    observed_order: Arc<std::sync::Mutex<()>>,
}

/// Waits (at most ten seconds) until an engine's background threads have let go of a closed
/// store's lock file: sled's end a moment after the handle is dropped, and the files are only
/// complete, and safe to hash, once they have.
fn wait_until_closed(db_file: &Path) {
    let started = std::time::Instant::now();
    while started.elapsed() < std::time::Duration::from_secs(10) {
        match std::fs::File::open(db_file).map(|f| f.try_lock()) {
            Ok(Err(std::fs::TryLockError::WouldBlock)) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            _ => return,
        }
    }
}

/// The file system a store lives on and the free space its writes must leave.
#[derive(Debug)]
struct FreeSpaceReserve {
    dir: PathBuf,
    min_free_bytes: u64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens the store in `dir` with the engine that wrote it, or creates one with `for_new`
    /// when `dir` holds none; returns the engine it opened with. [`StoreError::Locked`] if
    /// `dir` is already open.
    pub fn open(
        dir: &Path,
        for_new: StoreEngine,
        cache_bytes: u64,
    ) -> Result<(Store, StoreEngine), StoreError> {
        let engine = StoreEngine::found_in(dir).unwrap_or(for_new);
        let mut store = Store::with_backend(engine.open(dir, cache_bytes)?);
        store.engine = Some(engine);
        Ok((store, engine))
    }

    /// Opens (or creates) the embedded sled store in `dir`; [`StoreError::Locked`] if `dir` is
    /// already open.
    pub fn open_sled(dir: &Path) -> Result<Store, StoreError> {
        Store::open_sled_with_cache(dir, backend::DEFAULT_CACHE_BYTES)
    }

    /// [`Store::open_sled`] with a page cache of `cache_bytes`.
    pub fn open_sled_with_cache(dir: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        let mut store =
            Store::with_backend(Arc::new(SledBackend::open_with_cache(dir, cache_bytes)?));
        store.engine = Some(StoreEngine::Sled);
        Ok(store)
    }

    /// Opens (or creates) the store in the PostgreSQL database `url` names
    /// ([`PostgresBackend::connect`]), with a read cache of `cache_bytes`;
    /// [`StoreError::Locked`] if another process has it open.
    pub fn open_postgres(url: &str, cache_bytes: u64) -> Result<Store, StoreError> {
        let backend = PostgresBackend::connect(url, cache_bytes)?;
        Ok(Store::with_backend(Arc::new(backend)))
    }

    /// An empty store in memory, for tests.
    pub fn in_memory() -> Store {
        Store::with_backend(Arc::new(MemBackend::new()))
    }

    /// A store over any engine.
    pub fn with_backend(backend: Arc<dyn KvBackend>) -> Store {
        Store {
            backend,
            engine: None,
            reserve: Arc::default(),
            gate: Arc::default(),
            observer: Arc::default(),
            observed_order: Arc::default(),
        }
    }

    /// The write gate every write of this store (and of the engine over it) passes.
    pub fn write_gate(&self) -> &WriteGate {
        &self.gate
    }

    /// Copies every entry into a new store in `dir` (which must not hold one), of the same
    /// engine as this one (the default embedded engine for a store not opened from a directory:
    /// in PostgreSQL or in memory), flushes it and
    /// closes it; returns the number of entries. Reads go through the backend, so this works
    /// over any engine; call it with the write gate paused for a copy of one instant.
    ///
    /// Why not copy the engine's files: both engines keep writing their files from background
    /// threads (sled's periodic flusher and segment reuse, fjall's memtable flushes and
    /// compactions) while the database is open, so a file copy of an open store is not a
    /// snapshot even when nobody writes through it.
    pub fn copy_to_new(&self, dir: &Path) -> Result<u64, StoreError> {
        let engine = self.engine.unwrap_or_default();
        let target = engine.open(dir, backend::COPY_CACHE_BYTES)?;
        let mut n_entries = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.backend.scan_prefix(&[], after.as_deref(), SCAN_PAGE)?;
            n_entries += page.len() as u64;
            let full = page.len() == SCAN_PAGE;
            after = page.last().map(|(key, _)| key.clone());
            target.apply(
                page.into_iter()
                    .map(|(key, value)| KvOp::Put { key, value })
                    .collect(),
            )?;
            if !full {
                break;
            }
        }
        target.flush()?;
        drop(target);
        wait_until_closed(&engine.lock_file(dir));
        Ok(n_entries)
    }

    /// Waits until the engine's background work is done ([`KvBackend::settle`]): for a
    /// benchmark's size on disk.
    pub fn settle(&self) -> Result<(), StoreError> {
        self.backend.settle()
    }

    /// The subject `id` of `tenant`, if stored.
    pub fn subject(
        &self,
        tenant: &TenantId,
        id: SubjectId,
    ) -> Result<Option<SubjectRecord>, StoreError> {
        let Some(value) = self.backend.get(&keys::subject_key(tenant, id)?)? else {
            return Ok(None);
        };
        SubjectRecord::decode_value(tenant.clone(), id, &value).map(Some)
    }

    /// Subjects of a tenant in id order after `after`, at most `limit` (for demo checks, index rebuild, retention later).
    pub fn subjects(
        &self,
        tenant: &TenantId,
        after: Option<SubjectId>,
        limit: usize,
    ) -> Result<Vec<SubjectRecord>, StoreError> {
        let prefix = keys::subject_prefix(tenant)?;
        let after = after.map(|id| keys::subject_key(tenant, id)).transpose()?;
        self.backend
            .scan_prefix(&prefix, after.as_deref(), limit)?
            .into_iter()
            .map(|(key, value)| {
                let id = keys::trailing_id(&key, prefix.len(), "subject key")?;
                SubjectRecord::decode_value(tenant.clone(), SubjectId::from_bytes(id), &value)
            })
            .collect()
    }

    /// How many subjects `tenant` has (a scan of the tenant's subject keys).
    pub fn count_subjects(&self, tenant: &TenantId) -> Result<u64, StoreError> {
        self.backend.count_prefix(&keys::subject_prefix(tenant)?)
    }

    /// Exact look-up of an external id (userId / anonymousId) by its keyed hash.
    pub fn lookup(
        &self,
        tenant: &TenantId,
        kind: LookupKind,
        hash: &[u8; 32],
    ) -> Result<Option<SubjectId>, StoreError> {
        match self.backend.get(&keys::lookup_key(tenant, kind, hash)?)? {
            Some(value) => records::decode_lookup_value(&value).map(Some),
            None => Ok(None),
        }
    }

    /// All subjects in a blind-index bucket (several subjects may share one by design).
    pub fn blind_candidates(
        &self,
        tenant: &TenantId,
        field: &str,
        bucket: &[u8],
    ) -> Result<Vec<SubjectId>, StoreError> {
        let prefix = keys::blind_bucket_prefix(tenant, field, bucket)?;
        self.scan_all(&prefix)?
            .into_iter()
            .map(|(key, value)| {
                records::check_blind_value(&value)?;
                let id = keys::trailing_id(&key, prefix.len(), "blind-index key")?;
                Ok(SubjectId::from_bytes(id))
            })
            .collect()
    }

    /// Events of `subject` in id (time) order, strictly after `after` if given, at most `limit`.
    pub fn events(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        after: Option<EventId>,
        limit: usize,
    ) -> Result<Vec<EventRecord>, StoreError> {
        let prefix = keys::event_prefix(tenant, subject)?;
        let after = after
            .map(|id| keys::event_key(tenant, subject, id))
            .transpose()?;
        self.backend
            .scan_prefix(&prefix, after.as_deref(), limit)?
            .into_iter()
            .map(|(key, value)| {
                let id = EventId::from_bytes(keys::trailing_id(&key, prefix.len(), "event key")?);
                EventRecord::decode_value(tenant.clone(), subject, id, &value)
            })
            .collect()
    }

    /// The merge record of a subject that was merged into another, if any.
    pub fn merge_record(
        &self,
        tenant: &TenantId,
        merged: SubjectId,
    ) -> Result<Option<MergeRecord>, StoreError> {
        match self.backend.get(&keys::merge_key(tenant, merged)?)? {
            Some(value) => MergeRecord::decode_value(tenant.clone(), merged, &value).map(Some),
            None => Ok(None),
        }
    }

    /// Every merge record of `tenant`, in merged-subject id order.
    pub fn merges(&self, tenant: &TenantId) -> Result<Vec<MergeRecord>, StoreError> {
        let prefix = keys::merge_prefix(tenant)?;
        self.scan_all(&prefix)?
            .into_iter()
            .map(|(key, value)| {
                let merged = keys::trailing_id(&key, prefix.len(), "merge key")?;
                MergeRecord::decode_value(tenant.clone(), SubjectId::from_bytes(merged), &value)
            })
            .collect()
    }

    /// The current consent of a subject (by pseudonym) for every purpose it ever decided on.
    pub fn consents(
        &self,
        tenant: &TenantId,
        subject: &Pseudonym,
    ) -> Result<Vec<ConsentRecord>, StoreError> {
        let prefix = keys::consent_prefix(tenant, subject)?;
        self.scan_all(&prefix)?
            .into_iter()
            .map(|(key, value)| {
                let purpose = keys::parse_consent_key(&key, prefix.len())?;
                ConsentRecord::decode_value(tenant.clone(), *subject, purpose, &value)
            })
            .collect()
    }

    /// The current consent of a subject for one purpose, if it ever decided on it.
    pub fn consent(
        &self,
        tenant: &TenantId,
        subject: &Pseudonym,
        purpose: &PurposeId,
    ) -> Result<Option<ConsentRecord>, StoreError> {
        match self
            .backend
            .get(&keys::consent_key(tenant, subject, purpose)?)?
        {
            Some(value) => {
                ConsentRecord::decode_value(tenant.clone(), *subject, purpose.clone(), &value)
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    /// The ledger sequence numbers of a subject's consent entries, in order.
    pub fn consent_history(
        &self,
        tenant: &TenantId,
        subject: &Pseudonym,
    ) -> Result<Vec<u64>, StoreError> {
        let prefix = keys::history_prefix(tenant, subject)?;
        self.scan_all(&prefix)?
            .into_iter()
            .map(|(key, _)| keys::parse_history_key(&key, prefix.len()))
            .collect()
    }

    /// The flags of a subject (by pseudonym); all clear if none were ever recorded.
    pub fn subject_flags(
        &self,
        tenant: &TenantId,
        subject: &Pseudonym,
    ) -> Result<SubjectFlagsRecord, StoreError> {
        match self.backend.get(&keys::flags_key(tenant, subject)?)? {
            Some(value) => SubjectFlagsRecord::decode_value(&value),
            None => Ok(SubjectFlagsRecord::default()),
        }
    }

    /// When the external id with this keyed look-up hash was suppressed, if it is.
    pub fn suppressed(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
    ) -> Result<Option<Timestamp>, StoreError> {
        match self.backend.get(&keys::suppression_key(tenant, hash)?)? {
            Some(value) => records::decode_suppression_value(&value).map(Some),
            None => Ok(None),
        }
    }

    /// The idempotency entry with this keyed hash: when it was first seen and the answer given.
    pub fn idempotency(
        &self,
        tenant: &TenantId,
        hash: &[u8; 32],
    ) -> Result<Option<(Timestamp, Vec<u8>)>, StoreError> {
        match self.backend.get(&keys::idempotency_key(tenant, hash)?)? {
            Some(value) => records::decode_idempotency_value(&value).map(Some),
            None => Ok(None),
        }
    }

    /// At most `limit` idempotency entries first seen before `before`, oldest first.
    pub fn idempotency_expired(
        &self,
        tenant: &TenantId,
        before: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Timestamp, [u8; 32])>, StoreError> {
        let prefix = keys::idempotency_time_prefix(tenant)?;
        let mut expired = Vec::new();
        for (key, _) in self.backend.scan_prefix(&prefix, None, limit)? {
            let rest = key.get(prefix.len()..).unwrap_or_default();
            let (Some(micros), Some(hash)) = (rest.get(..8), rest.get(8..)) else {
                return Err(StoreError::Corrupt {
                    what: "idempotency time key",
                });
            };
            let micros = u64::from_be_bytes(micros.try_into().unwrap_or_default());
            let hash: [u8; 32] = hash.try_into().map_err(|_| StoreError::Corrupt {
                what: "idempotency time key",
            })?;
            let at = Timestamp::from_unix_micros(i64::try_from(micros).unwrap_or(i64::MAX));
            if at >= before {
                break;
            }
            expired.push((at, hash));
        }
        Ok(expired)
    }

    /// Every suppression entry of a tenant: (keyed hash, since), in hash order.
    pub fn suppressions(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<([u8; 32], Timestamp)>, StoreError> {
        let prefix = keys::suppression_prefix(tenant)?;
        self.scan_all(&prefix)?
            .into_iter()
            .map(|(key, value)| {
                let hash: [u8; 32] = key
                    .get(prefix.len()..)
                    .and_then(|rest| rest.try_into().ok())
                    .ok_or(StoreError::Corrupt {
                        what: "suppression key",
                    })?;
                Ok((hash, records::decode_suppression_value(&value)?))
            })
            .collect()
    }

    /// A page of a tenant's analytics projection, in (pseudonym, event) order, strictly after
    /// `after` if given: (pseudonym, event id, the fact's bytes as the engine stored them).
    pub fn facts(
        &self,
        tenant: &TenantId,
        after: Option<(Pseudonym, EventId)>,
        limit: usize,
    ) -> Result<Vec<(Pseudonym, EventId, Vec<u8>)>, StoreError> {
        packed::read_facts(
            &*self.backend,
            &keys::fact_chunk_prefix(tenant)?,
            after,
            limit,
        )
    }

    /// The event ids of one subject's facts, in order.
    pub fn subject_fact_ids(
        &self,
        tenant: &TenantId,
        subject: &Pseudonym,
    ) -> Result<Vec<EventId>, StoreError> {
        packed::subject_fact_ids(
            &*self.backend,
            &keys::subject_fact_chunk_prefix(tenant, subject)?,
        )
    }

    /// Moves the facts of the first, unpacked projection (one record per fact, written before
    /// the projection was packed) into packed chunks, a page at a time, each page in one atomic
    /// write; returns how many facts moved. Nothing to do, and one empty read, on a store that
    /// has none. Run before anything reads the projection (the engine does on open); a crash
    /// midway leaves every fact in exactly one of the two layouts, and the next run finishes.
    pub fn repack_facts(&self) -> Result<u64, StoreError> {
        let mut moved = 0u64;
        loop {
            let page = self
                .backend
                .scan_prefix(keys::OLD_FACT_PREFIX, None, SCAN_PAGE)?;
            if page.is_empty() {
                return Ok(moved);
            }
            let mut batch = WriteBatch::new();
            for (key, value) in page {
                // 'A' ‖ lp(tenant) ‖ pseudonym(16) ‖ event(16): the chunk key's subject prefix
                // is the same bytes under the chunk tag.
                let split =
                    key.len()
                        .checked_sub(16)
                        .filter(|&at| at > 16)
                        .ok_or(StoreError::Corrupt {
                            what: "analytics fact key",
                        })?;
                let mut subject_prefix = key[..split].to_vec();
                subject_prefix[0] = keys::FACT_CHUNK_TAG;
                let event = keys::trailing_id(&key, split, "analytics fact key")?;
                batch.fact(subject_prefix, event, Some(value));
                batch.ops.push(KvOp::Delete { key });
                moved += 1;
            }
            self.write(batch)?;
        }
    }

    /// Pseudonyms whose search documents were deleted and whose index segments still wait to be
    /// compacted, at most `limit`, in pseudonym order.
    pub fn search_purges(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<Pseudonym>, StoreError> {
        let prefix = keys::search_purge_prefix(tenant)?;
        self.backend
            .scan_prefix(&prefix, None, limit)?
            .into_iter()
            .map(|(key, _)| {
                let rest = key.get(prefix.len()..).filter(|r| r.len() == 16).ok_or(
                    StoreError::Corrupt {
                        what: "search purge key",
                    },
                )?;
                let mut pseudonym = [0u8; 16];
                pseudonym.copy_from_slice(rest);
                Ok(Pseudonym(pseudonym))
            })
            .collect()
    }

    /// The oldest entries of a tenant's search queue: (seq, subject), at most `limit`.
    pub fn search_queue(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<Vec<(u64, SubjectId)>, StoreError> {
        self.search_queue_after(tenant, None, limit)
    }

    /// [`Store::search_queue`] from the first entry whose seq is above `after`, if given. (In an
    /// LSM engine a scan from the queue's start steps over the deletions of every entry taken
    /// since the last memtable flush; the indexer resumes after what it took.)
    pub fn search_queue_after(
        &self,
        tenant: &TenantId,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<(u64, SubjectId)>, StoreError> {
        let prefix = keys::queue_prefix(tenant)?;
        // Every key of a seq at most `after` sorts below this one (seq, then the greatest
        // subject id).
        let after_key = after
            .map(|seq| keys::queue_key(tenant, seq, SubjectId::from_bytes([0xFF; 16])))
            .transpose()?;
        self.backend
            .scan_prefix(&prefix, after_key.as_deref(), limit)?
            .into_iter()
            .map(|(key, _)| {
                let rest = key.get(prefix.len()..).filter(|r| r.len() == 24).ok_or(
                    StoreError::Corrupt {
                        what: "search queue key",
                    },
                )?;
                let mut seq = [0u8; 8];
                seq.copy_from_slice(&rest[..8]);
                let mut subject = [0u8; 16];
                subject.copy_from_slice(&rest[8..]);
                Ok((u64::from_be_bytes(seq), SubjectId::from_bytes(subject)))
            })
            .collect()
    }

    /// The subject behind a pseudonym, if the search index's map knows it.
    pub fn subject_of_pseudonym(
        &self,
        tenant: &TenantId,
        pseudonym: &Pseudonym,
    ) -> Result<Option<SubjectId>, StoreError> {
        match self.backend.get(&keys::pseudonym_key(tenant, pseudonym)?)? {
            Some(value) => records::decode_lookup_value(&value).map(Some),
            None => Ok(None),
        }
    }

    /// A data-subject request record, as the engine stored it.
    pub fn dsr(&self, tenant: &TenantId, id: &[u8; 16]) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.get(&keys::dsr_key(tenant, id)?)
    }

    /// Every data-subject request record of a tenant: (request id, bytes), in id order.
    pub fn dsrs(&self, tenant: &TenantId) -> Result<Vec<DsrEntry>, StoreError> {
        let prefix = keys::dsr_prefix(tenant)?;
        self.scan_all(&prefix)?
            .into_iter()
            .map(|(key, value)| Ok((keys::trailing_id(&key, prefix.len(), "dsr key")?, value)))
            .collect()
    }

    /// The API key `id`, revoked or not. API keys are global: each names its tenant.
    pub fn api_key(&self, id: &ApiKeyId) -> Result<Option<ApiKeyRecord>, StoreError> {
        match self.backend.get(&keys::api_key_key(id)?)? {
            Some(value) => ApiKeyRecord::decode_value(id.clone(), &value).map(Some),
            None => Ok(None),
        }
    }

    /// Every API key of every tenant, in id order.
    pub fn api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        self.scan_all(keys::API_KEY_PREFIX)?
            .into_iter()
            .map(|(key, value)| ApiKeyRecord::decode_value(keys::parse_api_key_key(&key)?, &value))
            .collect()
    }

    /// The metadata value `name`, as the caller stored it.
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.backend.get(&keys::meta_key(name)?)
    }

    /// Atomically applies the batch (all or nothing). Not yet durable: call flush() before acknowledging.
    ///
    /// A batch that could not be encoded (a field of 4 GiB or more) writes nothing and fails
    /// with [`StoreError::TooLarge`].
    ///
    /// With a free-space reserve set ([`Store::reserve_free_space`]), a write while less than the
    /// reserve is free writes nothing and fails with [`StoreError::StorageFull`].
    pub fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        if let Some(what) = batch.too_large {
            return Err(StoreError::TooLarge { what });
        }
        if batch.ops.is_empty() && batch.facts.is_empty() {
            return Ok(());
        }
        self.check_free_space()?;
        let _pass = self.gate.enter();
        let observer = self
            .observer
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .filter(|_| !batch.changes.is_empty());
        if observer.is_none() && batch.facts.is_empty() {
            return self.backend.apply(batch.ops);
        }
        // Fact chunks are read, changed and written back under this lock, so that no two
        // writes change one chunk from the same old value; and the observer hears of writes in
        // the order they applied.
        let _order = self
            .observed_order
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut ops = batch.ops;
        if !batch.facts.is_empty() {
            ops.extend(packed::resolve(&*self.backend, batch.facts)?);
        }
        self.backend.apply(ops)?;
        if let Some(observer) = observer {
            observer.applied(&batch.changes);
        }
        Ok(())
    }

    /// Tells `observer` of the [`ProjectionChange`]s of every later write, once it applied
    /// (replacing any earlier observer).
    pub fn observe(&self, observer: Arc<dyn WriteObserver>) {
        let _order = self
            .observed_order
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = Some(observer);
    }

    /// Stops telling the observer of writes.
    pub fn stop_observing(&self) {
        let _order = self
            .observed_order
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *self.observer.write().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Makes every later write first check that at least `min_free_bytes` are available on the
    /// file system of `dir`, and refuse ([`StoreError::StorageFull`]) otherwise.
    ///
    /// Why: sled 0.34 turns a failed write of its own log (`ENOSPC` included) into an error it
    /// keeps returning until the store is reopened. Refusing writes while the disk is nearly full
    /// keeps the storage engine from ever meeting a full disk, so writes succeed again as soon as
    /// space is freed, without a restart.
    pub fn reserve_free_space(&self, dir: &Path, min_free_bytes: u64) {
        let reserve = (min_free_bytes > 0).then(|| FreeSpaceReserve {
            dir: dir.to_owned(),
            min_free_bytes,
        });
        *self.reserve.write().unwrap_or_else(|p| p.into_inner()) = reserve;
    }

    /// [`StoreError::StorageFull`] if less than the reserve is free.
    fn check_free_space(&self) -> Result<(), StoreError> {
        let guard = self.reserve.read().unwrap_or_else(|p| p.into_inner());
        let Some(reserve) = &*guard else {
            return Ok(());
        };
        let available = fs4::available_space(&reserve.dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot tell the free space of {}: {e}",
                reserve.dir.display()
            ))
        })?;
        if available < reserve.min_free_bytes {
            return Err(StoreError::StorageFull(format!(
                "{available} bytes available on the file system of {}, below the reserve of {} bytes",
                reserve.dir.display(),
                reserve.min_free_bytes
            )));
        }
        Ok(())
    }

    /// Returns once every write that returned before the call is durable on disk. Concurrent
    /// callers share flushes.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.backend.flush()
    }

    /// Bytes on disk, for metrics; 0 if the engine cannot tell.
    pub fn size_on_disk(&self) -> u64 {
        self.backend.size_on_disk()
    }

    /// Every entry under `prefix`, read a page at a time.
    fn scan_all(&self, prefix: &[u8]) -> Result<Vec<KvEntry>, StoreError> {
        let mut entries = Vec::new();
        loop {
            let after = entries.last().map(|(key, _): &KvEntry| key.as_slice());
            let page = self.backend.scan_prefix(prefix, after, SCAN_PAGE)?;
            let n_page = page.len();
            entries.extend(page);
            if n_page < SCAN_PAGE {
                return Ok(entries);
            }
        }
    }
}

/// Changes to apply together with [`Store::write`]: all of them or none.
///
/// Ops apply in the order they were added, so a later change to the same record wins. A record
/// that cannot be encoded (a field of 4 GiB or more) is not added; the batch remembers it and
/// `write` refuses the whole batch.
#[derive(Default)]
pub struct WriteBatch {
    ops: Vec<KvOp>,
    /// Changes to the packed analytics projection, resolved into chunk writes by `Store::write`.
    facts: Vec<FactOp>,
    /// What the ops change in the records an observer follows.
    changes: Vec<ProjectionChange>,
    too_large: Option<&'static str>,
}

impl fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBatch")
            .field("n_ops", &self.ops.len())
            .field("n_fact_ops", &self.facts.len())
            .field("too_large", &self.too_large)
            .finish()
    }
}

impl WriteBatch {
    /// An empty batch.
    pub fn new() -> WriteBatch {
        WriteBatch::default()
    }

    /// Whether the batch holds no change. A batch that refused a record (too large) is not
    /// empty: `write` must still run to report the refusal.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.facts.is_empty() && self.too_large.is_none()
    }

    /// How many changes the batch holds (key-value ops and fact changes).
    pub fn len(&self) -> usize {
        self.ops.len() + self.facts.len()
    }

    /// Stores (or replaces) a subject record. Its look-up and blind-index entries are separate:
    /// add them with `put_lookup` / `put_blind`.
    pub fn put_subject(&mut self, record: &SubjectRecord) {
        self.put(
            keys::subject_key(&record.tenant, record.id),
            record.encode_value(),
        );
    }

    /// Deletes a subject record (not its events or index entries).
    pub fn delete_subject(&mut self, tenant: &TenantId, id: SubjectId) {
        self.delete(keys::subject_key(tenant, id));
    }

    /// Points the keyed hash of an external id at `subject`.
    pub fn put_lookup(
        &mut self,
        tenant: &TenantId,
        kind: LookupKind,
        hash: &[u8; 32],
        subject: SubjectId,
    ) {
        self.put(
            keys::lookup_key(tenant, kind, hash),
            Ok(records::encode_lookup_value(subject)),
        );
    }

    /// Removes a look-up entry.
    pub fn delete_lookup(&mut self, tenant: &TenantId, kind: LookupKind, hash: &[u8; 32]) {
        self.delete(keys::lookup_key(tenant, kind, hash));
    }

    /// Adds `subject` to a blind-index bucket.
    pub fn put_blind(&mut self, tenant: &TenantId, field: &str, bucket: &[u8], subject: SubjectId) {
        self.put(
            keys::blind_key(tenant, field, bucket, subject),
            Ok(records::BLIND_VALUE.to_vec()),
        );
    }

    /// Removes `subject` from a blind-index bucket.
    pub fn delete_blind(
        &mut self,
        tenant: &TenantId,
        field: &str,
        bucket: &[u8],
        subject: SubjectId,
    ) {
        self.delete(keys::blind_key(tenant, field, bucket, subject));
    }

    /// Stores (or replaces) an event.
    pub fn put_event(&mut self, record: &EventRecord) {
        self.put(
            keys::event_key(&record.tenant, record.subject, record.id),
            record.encode_value(),
        );
    }

    /// Deletes an event.
    pub fn delete_event(&mut self, tenant: &TenantId, subject: SubjectId, event: EventId) {
        self.delete(keys::event_key(tenant, subject, event));
    }

    /// Stores (or replaces) a merge record.
    pub fn put_merge(&mut self, record: &MergeRecord) {
        self.put(
            keys::merge_key(&record.tenant, record.merged),
            record.encode_value(),
        );
    }

    /// Deletes the merge record of `merged`.
    pub fn delete_merge(&mut self, tenant: &TenantId, merged: SubjectId) {
        self.delete(keys::merge_key(tenant, merged));
    }

    /// Stores (or replaces) the current consent of a subject for a purpose.
    pub fn put_consent(&mut self, record: &ConsentRecord) {
        self.put(
            keys::consent_key(&record.tenant, &record.subject, &record.purpose),
            record.encode_value(),
        );
        self.changes.push(ProjectionChange::Consent {
            tenant: record.tenant.clone(),
            subject: record.subject,
            purpose: record.purpose.clone(),
            state: record.state,
            since: record.since,
        });
    }

    /// Stores the flags of a subject (by pseudonym); all clear deletes the record.
    pub fn put_subject_flags(
        &mut self,
        tenant: &TenantId,
        subject: &Pseudonym,
        flags: &SubjectFlagsRecord,
    ) {
        if flags.is_clear() {
            self.delete(keys::flags_key(tenant, subject));
        } else {
            self.put(keys::flags_key(tenant, subject), flags.encode_value());
        }
        self.changes.push(ProjectionChange::Flags {
            tenant: tenant.clone(),
            subject: *subject,
            flags: flags.clone(),
        });
    }

    /// Stores one fact of the analytics projection (opaque bytes: the engine's encoding, which
    /// holds no personal data, at most 255 bytes), keyed by the subject's pseudonym and the
    /// event it comes from; facts are packed per subject (`packed.rs`).
    pub fn put_fact(
        &mut self,
        tenant: &TenantId,
        subject: &Pseudonym,
        event: EventId,
        fact: Vec<u8>,
    ) {
        if fact.len() > usize::from(u8::MAX) {
            self.too_large.get_or_insert("analytics fact");
            return;
        }
        match keys::subject_fact_chunk_prefix(tenant, subject) {
            Ok(prefix) => self.fact(prefix, event.to_bytes(), Some(fact.clone())),
            Err(error) => return self.remember(error),
        }
        self.changes.push(ProjectionChange::PutFact {
            tenant: tenant.clone(),
            subject: *subject,
            event,
            fact,
        });
    }

    /// Deletes one fact (nothing if there is none).
    pub fn delete_fact(&mut self, tenant: &TenantId, subject: &Pseudonym, event: EventId) {
        match keys::subject_fact_chunk_prefix(tenant, subject) {
            Ok(prefix) => self.fact(prefix, event.to_bytes(), None),
            Err(error) => return self.remember(error),
        }
        self.changes.push(ProjectionChange::DeleteFact {
            tenant: tenant.clone(),
            subject: *subject,
            event,
        });
    }

    fn fact(&mut self, subject_prefix: Vec<u8>, event: [u8; 16], fact: Option<Vec<u8>>) {
        self.facts.push(FactOp {
            subject_prefix,
            event,
            fact,
        });
    }

    /// Queues `subject` for re-indexing (entry `seq` of the tenant's search queue).
    pub fn queue_for_search(&mut self, tenant: &TenantId, seq: u64, subject: SubjectId) {
        self.put(keys::queue_key(tenant, seq, subject), Ok(vec![1]));
    }

    /// Removes a processed entry of the search queue.
    pub fn dequeue_search(&mut self, tenant: &TenantId, seq: u64, subject: SubjectId) {
        self.delete(keys::queue_key(tenant, seq, subject));
    }

    /// Stores (or replaces) a data-subject request record.
    pub fn put_dsr(&mut self, tenant: &TenantId, id: &[u8; 16], record: Vec<u8>) {
        self.put(keys::dsr_key(tenant, id), Ok(record));
    }

    /// Maps a pseudonym to its subject (for search hits).
    pub fn put_pseudonym(&mut self, tenant: &TenantId, pseudonym: &Pseudonym, subject: SubjectId) {
        self.put(
            keys::pseudonym_key(tenant, pseudonym),
            Ok(records::encode_lookup_value(subject)),
        );
    }

    /// Notes that a pseudonym's deleted search document still has to be compacted away.
    pub fn put_search_purge(&mut self, tenant: &TenantId, pseudonym: &Pseudonym) {
        self.put(keys::search_purge_key(tenant, pseudonym), Ok(vec![1]));
    }

    /// Clears a pending search purge once its segments are compacted.
    pub fn delete_search_purge(&mut self, tenant: &TenantId, pseudonym: &Pseudonym) {
        self.delete(keys::search_purge_key(tenant, pseudonym));
    }

    /// Removes a pseudonym's mapping.
    pub fn delete_pseudonym(&mut self, tenant: &TenantId, pseudonym: &Pseudonym) {
        self.delete(keys::pseudonym_key(tenant, pseudonym));
    }

    /// Suppresses the external id with this keyed look-up hash from `since` on.
    pub fn put_suppression(&mut self, tenant: &TenantId, hash: &[u8; 32], since: Timestamp) {
        self.put(
            keys::suppression_key(tenant, hash),
            Ok(records::encode_suppression_value(since)),
        );
    }

    /// Records that the message or request with this keyed hash was applied, with its answer.
    pub fn put_idempotency(
        &mut self,
        tenant: &TenantId,
        hash: &[u8; 32],
        seen_at: Timestamp,
        answer: &[u8],
    ) {
        self.put(
            keys::idempotency_key(tenant, hash),
            Ok(records::encode_idempotency_value(seen_at, answer)),
        );
        self.put(
            keys::idempotency_time_key(tenant, seen_at, hash),
            Ok(vec![1]),
        );
    }

    /// Forgets an idempotency entry (it expired).
    pub fn delete_idempotency(&mut self, tenant: &TenantId, hash: &[u8; 32], seen_at: Timestamp) {
        self.delete(keys::idempotency_key(tenant, hash));
        self.delete(keys::idempotency_time_key(tenant, seen_at, hash));
    }

    /// Lifts a suppression.
    pub fn delete_suppression(&mut self, tenant: &TenantId, hash: &[u8; 32]) {
        self.delete(keys::suppression_key(tenant, hash));
    }

    /// Records that ledger entry `seq` concerns `subject`.
    pub fn put_consent_history(&mut self, tenant: &TenantId, subject: &Pseudonym, seq: u64) {
        // The value is only a version byte: the key says everything.
        self.put(keys::history_key(tenant, subject, seq), Ok(vec![1]));
    }

    /// Stores (or replaces) an API key.
    pub fn put_api_key(&mut self, record: &ApiKeyRecord) {
        self.put(keys::api_key_key(&record.id), record.encode_value());
    }

    /// Deletes an API key (revoking keeps the record; this forgets it).
    pub fn delete_api_key(&mut self, id: &ApiKeyId) {
        self.delete(keys::api_key_key(id));
    }

    /// Stores (or replaces) a metadata value; its format is the caller's.
    pub fn put_meta(&mut self, name: &str, value: &[u8]) {
        self.put(keys::meta_key(name), Ok(value.to_vec()));
    }

    /// Deletes a metadata value.
    pub fn delete_meta(&mut self, name: &str) {
        self.delete(keys::meta_key(name));
    }

    fn put(&mut self, key: Result<Vec<u8>, StoreError>, value: Result<Vec<u8>, StoreError>) {
        match (key, value) {
            (Ok(key), Ok(value)) => self.ops.push(KvOp::Put { key, value }),
            (Err(error), _) | (_, Err(error)) => self.remember(error),
        }
    }

    fn delete(&mut self, key: Result<Vec<u8>, StoreError>) {
        match key {
            Ok(key) => self.ops.push(KvOp::Delete { key }),
            Err(error) => self.remember(error),
        }
    }

    fn remember(&mut self, error: StoreError) {
        // Encoders fail only with `TooLarge`; anything else would be a bug in this crate, and
        // is still reported as a refusal of the whole batch.
        let what = match error {
            StoreError::TooLarge { what } => what,
            _ => "record",
        };
        self.too_large.get_or_insert(what);
    }
}

#[cfg(test)]
mod tests;
