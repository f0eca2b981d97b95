//! The domain service of Custodia: ingestion with identity resolution, encrypted profiles and
//! events, look-ups through blind indexes, API keys and purpose checks.
//!
//! Architecture invariant: the engine knows nothing of HTTP and names no crypto or storage
//! library. It seals and opens through `custodia-vault` and persists ciphertext through
//! `custodia-store`; the server and the CLI are thin layers over it. Every method blocks (sled
//! and the key store do file I/O), so async callers run it on a blocking thread.

mod access;
mod access_log;
mod analytics;
mod apikeys;
mod clock;
mod consent;
mod decision;
mod demo;
mod dsr;
mod erasure;
mod error;
mod group;
mod idempotency;
mod ingest;
mod input;
mod ledger;
mod online_backup;
mod profile;
mod retention;
mod search;
mod spelling;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use custodia_core::{EventId, TenantId, Timestamp};
use custodia_policy::Policies;
use custodia_store::{GatePass, Store};
use custodia_vault::{Keyring, TenantVault, Vault};

pub use access::{Caller, ReadGrant};
pub use analytics::AnalyticsConfig;
pub use apikeys::{ApiKeySecret, ApiKeyView, NewApiKey};
pub use clock::{Clock, DemoClock, FixedClock, SystemClock};
pub use consent::{
    ConsentHistory, ConsentInput, ConsentOutcome, ConsistencyProof, EntryView, InclusionProof,
    LogKind, LogPublicKey, LogWitnessing, MAX_IDEMPOTENCY_KEY_LEN, ProofPath, PurposeConsent,
    SubjectRef,
};
pub use custodia_store::StoreEngine;
pub use decision::{ConsentStatus, Refusal, SubjectFlags, decide, decide_caller};
pub use demo::{DemoSummary, load_demo, load_demo_requests};
pub use dsr::{
    BrowserContext, CONSENT_SESSION_MINUTES, ConsentChoice, DirOutbox, DsrAction, DsrCase,
    DsrDecision, DsrExport, DsrInput, DsrNotice, DsrRequester, DsrStatus, DsrType, DsrView,
    EXPORT_AUTOMATED_DECISIONS, EXPORT_SOURCE, ExportBundle, MAX_CODE_TRIES, MAX_EXTENSION_MONTHS,
    MAX_REASON_CHARS, NoDataHeld, NoticeKind, Outbox, OutboxMessage, PrivacyCenterConsents,
    PrivacyCenterDecision, PrivacyCenterPurpose, TimelineEntry,
};
pub use erasure::{
    ErasedData, ErasureCause, ErasureOptions, ErasureOutcome, ErasurePreview, FlagChange,
    FlagsView, KeptData,
};
pub use error::EngineError;
pub use idempotency::{IdempotencySlot, KeptAnswer, PriorUse};
pub use ingest::{
    BatchItem, BatchOutcome, DEFAULT_IDEMPOTENCY_DAYS, IdentifyOutcome, MergeView, TrackOutcome,
};
pub use input::{
    AliasInput, Context, EventCall, GroupInput, IdentifyInput, TrackInput, TraitChanges,
};
pub use ledger::CheckpointPolicy;
pub use online_backup::WritesPaused;
pub use profile::{EventPage, EventView, Lookup, Profile};
pub use retention::RetentionReport;
pub use search::{SearchHitView, SearchPage};
pub use spelling::{USER_ID, USER_ID_SEGMENT, with_user_id};

/// Where the engine keeps its state and which policies it enforces.
pub struct EngineConfig {
    /// The data directory: only ciphertext, keyed hashes and non-personal metadata.
    pub data_dir: PathBuf,
    /// The key store directory, apart from the data (design.md "Keys live apart from data").
    pub keys_dir: PathBuf,
    /// The store's page cache, in bytes ([`custodia_store::DEFAULT_STORE_CACHE_BYTES`] unless
    /// configured).
    pub store_cache_bytes: u64,
    /// The engine a new store is created with; a store already in `data_dir` keeps the engine
    /// that wrote it.
    pub store_engine: custodia_store::StoreEngine,
    /// A PostgreSQL database (`postgres://…`) to hold the store instead of `data_dir/store`
    /// (docs/scale.md); the ledgers, the search index and the key store stay files. May hold
    /// a password: never logged or repeated in an error.
    pub store_url: Option<String>,
    /// The root key(s).
    pub keyring: Keyring,
    /// The validated policies.
    pub policies: Policies,
    /// The clock; tests inject a fixed one.
    pub clock: Arc<dyn Clock>,
    /// How the consent ledgers are named, witnessed and checkpointed.
    pub ledger: LedgerConfig,
    /// Store writes are refused (`insufficient_storage`) while less than this is free on the data
    /// directory's file system ([`DEFAULT_MIN_FREE_BYTES`] unless configured; 0 turns it off).
    pub min_free_bytes: u64,
}

/// The default free-space reserve of the store: 32 MiB, a few of the storage engine's segments.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 32 * 1024 * 1024;

/// Settings of the consent ledgers.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Checkpoint origins are `<prefix>/<tenant>/ledger`; give each deployment its own prefix.
    pub origin_prefix: String,
    /// A directory outside the operator's reach where every checkpoint is also written.
    pub witness_dir: Option<PathBuf>,
    /// When appends also write a checkpoint.
    pub checkpoints: CheckpointPolicy,
    /// Whether reads go into the access log. Always true in `custodia serve` (it has no flag
    /// for this); `custodia bench` turns it off once to measure what the access log costs.
    pub record_reads: bool,
}

impl Default for LedgerConfig {
    fn default() -> LedgerConfig {
        LedgerConfig {
            origin_prefix: "custodia.local".to_owned(),
            witness_dir: None,
            checkpoints: CheckpointPolicy::default(),
            record_reads: true,
        }
    }
}

/// `write_lock` held, and a pass through the write gate; the lock is released first.
struct WriteGuard<'a> {
    _lock: MutexGuard<'a, ()>,
    _pass: GatePass<'a>,
}

/// The domain service. One per process; share it behind an `Arc`.
pub struct Engine {
    store: Store,
    vault: Vault,
    policies: Arc<Policies>,
    policy_hash: String,
    policy_hash_bytes: [u8; 32],
    ledgers: ledger::Ledgers,
    /// The tenants' access logs (issue 4, P4): every read of personal data.
    access_logs: ledger::Ledgers,
    /// See [`LedgerConfig::record_reads`].
    record_reads: bool,
    clock: Arc<dyn Clock>,
    /// Serializes read-modify-write of profiles and identity resolution, so two concurrent
    /// identify calls cannot create the same person twice or lose a trait update. Flushes run
    /// outside it, so concurrent requests still share a flush.
    write_lock: Mutex<()>,
    /// Identify, track and batch calls wait here and are written together (`ingest`, `group`).
    ingest_commits: group::GroupCommit<ingest::IngestRequest, ingest::Applied>,
    /// Per tenant, subject ids whose data keys were written and synced by an ingest batch and
    /// that no subject has taken yet (`Engine::reserve_data_keys`). Only touched under
    /// `write_lock`.
    fresh_keys: Mutex<std::collections::HashMap<TenantId, Vec<custodia_core::SubjectId>>>,
    /// Every ingest item in the order the committer applied it (tests replay it one by one).
    #[cfg(test)]
    ingest_trace: Mutex<Vec<ingest::BatchItem>>,
    /// The last event id handed out, so ids within one millisecond keep ingestion order. Only
    /// touched under `write_lock`.
    last_event_id: Mutex<Option<EventId>>,
    /// Serializes the check-and-record of consent decisions that carry an idempotency key.
    consent_once: Mutex<()>,
    /// How many days a `messageId` is remembered (see `ingest`).
    idempotency_days: std::sync::atomic::AtomicU32,
    /// Analytics settings (currency default, k, rates).
    analytics: std::sync::RwLock<AnalyticsConfig>,
    /// The in-memory columnar copies of the analytics projection (off unless started).
    analytics_copies: analytics::CopiesOwner,
    /// The search indexes and their queue numbering.
    search: search::SearchIndexes,
    /// Where one-time codes of data-subject requests go.
    outbox: std::sync::RwLock<Option<Arc<dyn dsr::Outbox>>>,
    /// Serializes a person's decisions on data-subject requests (check, then act).
    dsr_decisions: Mutex<()>,
    /// When each API key was last used (see `apikeys`).
    key_use: apikeys::KeyUse,
    data_dir: PathBuf,
}

/// The store of [`Engine::in_memory`]: in memory, or, when `CUSTODIA_TEST_STORE_URL` names a
/// PostgreSQL database, in a new schema there. CI sets it for a second run of the engine's and
/// the server's suites, so that they run over both kinds of store (tests/run.sh).
fn test_store() -> Result<Store, EngineError> {
    match std::env::var("CUSTODIA_TEST_STORE_URL") {
        Ok(url) if !url.is_empty() => Ok(Store::with_backend(Arc::new(
            custodia_store::PostgresBackend::connect_in_new_schema(&url)?,
        ))),
        _ => Ok(Store::in_memory()),
    }
}

/// Where a data directory's store is: in it (`store/`, an embedded engine), or in PostgreSQL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StoreLocation {
    DataDir,
    Postgres,
}

/// The file that says a data directory's store is in PostgreSQL. It holds no URL (a URL may
/// carry a password); the operator gives it again at each start. An online backup leaves it
/// out: the backup's store is an embedded copy.
pub const POSTGRES_MARKER: &str = "store.postgres";

/// Refuses to open a data directory's store from the other place than the one it is in: a
/// forgotten `--store` would otherwise start an empty embedded store beside the ledgers and
/// keys of the data in PostgreSQL, and a new `--store` would hide the embedded one.
fn check_store_location(data_dir: &Path, wanted: StoreLocation) -> Result<(), EngineError> {
    let in_postgres = data_dir.join(POSTGRES_MARKER).is_file();
    let embedded = custodia_store::StoreEngine::found_in(&data_dir.join("store")).is_some();
    match wanted {
        StoreLocation::DataDir if in_postgres => Err(EngineError::StoreElsewhere(format!(
            "the store of {} is in PostgreSQL ({POSTGRES_MARKER} says so): give its URL \
                 with --store or CUSTODIA_STORE_URL",
            data_dir.display()
        ))),
        StoreLocation::Postgres if embedded => Err(EngineError::StoreElsewhere(format!(
            "the store of {} is embedded in its store/ directory: it cannot be opened \
                 from PostgreSQL (moving a store is not supported yet; docs/scale.md)",
            data_dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Records that the data directory's store is in PostgreSQL ([`check_store_location`]).
fn mark_store_location(data_dir: &Path) -> Result<(), EngineError> {
    let marker = data_dir.join(POSTGRES_MARKER);
    if marker.is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(data_dir)
        .and_then(|()| {
            std::fs::write(
                &marker,
                "The store of this data directory is in PostgreSQL: start Custodia with \
                 --store URL (or CUSTODIA_STORE_URL). docs/scale.md\n",
            )
        })
        .map_err(|source| EngineError::Io {
            what: "store location marker",
            source,
        })
}

impl Engine {
    /// Opens (creating if needed) the data directory and the key store.
    pub fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        let store = match &config.store_url {
            Some(url) => {
                check_store_location(&config.data_dir, StoreLocation::Postgres)?;
                let store = Store::open_postgres(url, config.store_cache_bytes)?;
                mark_store_location(&config.data_dir)?;
                tracing::info!(engine = "postgres", "store opened");
                store
            }
            None => {
                check_store_location(&config.data_dir, StoreLocation::DataDir)?;
                let store_dir = config.data_dir.join("store");
                let (store, store_engine) =
                    Store::open(&store_dir, config.store_engine, config.store_cache_bytes)?;
                tracing::info!(engine = %store_engine, "store opened");
                store.reserve_free_space(&store_dir, config.min_free_bytes);
                store
            }
        };
        let vault = Vault::open(&config.keys_dir, config.keyring)?;
        let engine = Engine::from_parts(
            store,
            vault,
            config.policies,
            config.clock,
            config.data_dir,
            config.ledger,
        );
        // A store written before the analytics projection was packed keeps one record per
        // fact: move them into chunks before anything reads or changes the projection.
        let repacked = engine.store.repack_facts()?;
        if repacked > 0 {
            engine.store.flush()?;
            tracing::info!(
                facts = repacked,
                "analytics projection repacked per subject"
            );
        }
        // A data directory restored from a backup may still hold subjects erased since: the
        // tombstone list beside the key store removes them again before anyone can ask.
        for tenant in engine.tenants()? {
            engine.replay_tombstones(&tenant)?;
        }
        Ok(engine)
    }

    /// Since when the current root key is in use (its last rotation).
    pub fn root_key_since(&self) -> Result<Timestamp, EngineError> {
        Ok(self.vault.root_key_since()?)
    }

    /// Every tenant that has a key store.
    pub fn tenants(&self) -> Result<Vec<TenantId>, EngineError> {
        Ok(self.vault.tenants()?)
    }

    /// Builds an engine over an existing store and vault; the ledgers live under
    /// `data_dir/ledger/<tenant>/`.
    pub fn from_parts(
        store: Store,
        vault: Vault,
        policies: Policies,
        clock: Arc<dyn Clock>,
        data_dir: PathBuf,
        ledger: LedgerConfig,
    ) -> Engine {
        let policy_hash_bytes = custodia_vault::sha256(&policies.canonical_bytes());
        let ledgers = ledger::Ledgers::new(
            ledger::LEDGER_LOG,
            &data_dir,
            ledger.origin_prefix.clone(),
            ledger.witness_dir.clone(),
            ledger.checkpoints,
        );
        let record_reads = ledger.record_reads;
        let search_seq_start = u64::try_from(clock.now().unix_micros()).unwrap_or(0);
        let access_logs = ledger::Ledgers::new(
            ledger::ACCESS_LOG,
            &data_dir,
            ledger.origin_prefix,
            ledger.witness_dir,
            ledger.checkpoints,
        );
        Engine {
            store,
            vault,
            policies: Arc::new(policies),
            policy_hash: hex::encode(policy_hash_bytes),
            policy_hash_bytes,
            ledgers,
            access_logs,
            record_reads,
            clock,
            write_lock: Mutex::new(()),
            ingest_commits: group::GroupCommit::default(),
            #[cfg(test)]
            ingest_trace: Mutex::new(Vec::new()),
            fresh_keys: Mutex::new(std::collections::HashMap::new()),
            last_event_id: Mutex::new(None),
            consent_once: Mutex::new(()),
            idempotency_days: std::sync::atomic::AtomicU32::new(ingest::DEFAULT_IDEMPOTENCY_DAYS),
            analytics: std::sync::RwLock::new(AnalyticsConfig::default()),
            analytics_copies: analytics::CopiesOwner::new(),
            search: search::SearchIndexes::new(data_dir.join("search"), search_seq_start),
            outbox: std::sync::RwLock::new(None),
            dsr_decisions: Mutex::new(()),
            key_use: apikeys::KeyUse::default(),
            data_dir,
        }
    }

    /// An engine over an in-memory store and a fresh random root key, with its key store in
    /// `dir/keys` and its ledgers in `dir/ledger`: for tests and experiments. With
    /// `CUSTODIA_TEST_STORE_URL` set, the store is in a new schema of that PostgreSQL database
    /// instead (see `test_store`).
    pub fn in_memory(
        dir: &Path,
        policies: Policies,
        clock: Arc<dyn Clock>,
    ) -> Result<Engine, EngineError> {
        Engine::in_memory_with(dir, policies, clock, LedgerConfig::default())
    }

    /// [`Engine::in_memory`] with ledger settings of its own.
    pub fn in_memory_with(
        dir: &Path,
        policies: Policies,
        clock: Arc<dyn Clock>,
        ledger: LedgerConfig,
    ) -> Result<Engine, EngineError> {
        let root = custodia_vault::RootKey::generate()?;
        let vault = Vault::open(&dir.join("keys"), Keyring::new(root))?;
        Ok(Engine::from_parts(
            test_store()?,
            vault,
            policies,
            clock,
            dir.to_path_buf(),
            ledger,
        ))
    }

    /// The policies in force.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// Lower-case hex SHA-256 of the canonical policy bytes: the exact text version in force.
    pub fn policy_hash(&self) -> &str {
        &self.policy_hash
    }

    /// The policy hash as bytes.
    pub(crate) fn policy_hash_bytes(&self) -> [u8; 32] {
        self.policy_hash_bytes
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Bytes the store occupies on disk.
    pub fn store_size_on_disk(&self) -> u64 {
        self.store.size_on_disk()
    }

    /// Number of live subject data keys of a tenant.
    pub fn n_data_keys(&self, tenant: &TenantId) -> Result<usize, EngineError> {
        // Fresh keys of the ingest committer belong to no subject yet.
        let live = self.vault.tenant(tenant)?.n_data_keys();
        Ok(live.saturating_sub(self.n_fresh_keys(tenant)))
    }

    /// The pseudonym of a subject of the default tenant, for tests that compare log entries.
    #[cfg(test)]
    pub(crate) fn pseudonym_for_tests(
        &self,
        subject: custodia_core::SubjectId,
    ) -> custodia_core::Pseudonym {
        self.keys(&TenantId::default_tenant())
            .map(|k| k.pseudonym(subject))
            .unwrap_or(custodia_core::Pseudonym([0; 16]))
    }

    /// Number of subjects of a tenant.
    pub fn count_subjects(&self, tenant: &TenantId) -> Result<u64, EngineError> {
        Ok(self.store.count_subjects(tenant)?)
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<(), EngineError> {
        Ok(self.store.flush()?)
    }

    fn keys(&self, tenant: &TenantId) -> Result<Arc<TenantVault>, EngineError> {
        Ok(self.vault.tenant(tenant)?)
    }

    /// A new event id (UUID v7) that sorts after every id this process handed out before.
    fn next_event_id(&self, now: Timestamp) -> Result<EventId, EngineError> {
        let fresh = EventId::from_parts(now.unix_millis(), custodia_vault::random_array()?);
        let mut last = self.last_event_id.lock().unwrap_or_else(|p| p.into_inner());
        let id = match *last {
            Some(prev) if fresh <= prev => match prev.successor() {
                Some(next) => next,
                None => fresh,
            },
            _ => fresh,
        };
        *last = Some(id);
        Ok(id)
    }

    fn lock_writes(&self) -> WriteGuard<'_> {
        // The pass first: a writer never waits for an online backup while holding the lock.
        let pass = self.write_pass();
        // A panic while holding the lock leaves no half-applied state behind (store batches are
        // atomic), so a poisoned lock is safe to reuse.
        let lock = self
            .write_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        WriteGuard {
            _lock: lock,
            _pass: pass,
        }
    }

    /// A pass through the write gate (see [`custodia_store::WriteGate`]): held by every writer
    /// of the store, the ledgers, the access logs and the key store, so an online backup sees
    /// them all at one instant between writes.
    pub(crate) fn write_pass(&self) -> GatePass<'_> {
        self.store.write_gate().enter()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.release_fresh_keys();
    }
}

#[cfg(test)]
mod tests;
