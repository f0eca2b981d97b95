//! Persistence for Custodia: a typed store of subjects, index entries, events, merges, API keys
//! and metadata over a key-value trait, with fjall or sled embedded, or a PostgreSQL database.
//!
//! Architecture invariants:
//! - This is the only crate that names sled, fjall or PostgreSQL. Everything else talks to [`Store`], and [`Store`]
//!   talks to a [`KvBackend`], so a distributed engine can replace sled by implementing one
//!   trait.
//! - The store never sees plaintext personal data. It holds ciphertext that the vault sealed,
//!   keyed hashes, random ids and times; its errors and `Debug` output carry none of the blobs
//!   or hashes.
//! - Every key is scoped by its tenant (`tag ‖ lp(tenant) ‖ ...`, see `keys.rs`), except API
//!   keys and metadata, which are global. Every value has a leading format-version byte (see
//!   `records.rs`).
//! - A write is durable only after [`Store::flush`] returns; acknowledge nothing before.

mod backend;
mod codec;
mod error;
mod gate;
mod keys;
mod observe;
mod packed;
mod records;
mod store;

/// The sled page cache a store gets unless configured otherwise.
pub use backend::DEFAULT_CACHE_BYTES as DEFAULT_STORE_CACHE_BYTES;
pub use backend::{
    FjallBackend, KvBackend, KvEntry, KvOp, MemBackend, POSTGRES_SCHEMA_VERSION, PostgresBackend,
    SledBackend, StoreEngine,
};
pub use error::StoreError;
pub use gate::{GatePass, GatePause, PauseRefused, WriteGate};
pub use observe::{ProjectionChange, WriteObserver};
pub use records::{
    ApiKeyRecord, ConsentRecord, ConsentState, EventRecord, LookupKind, MergeRecord,
    SubjectFlagsRecord, SubjectRecord,
};
pub use store::{DsrEntry, Store, WriteBatch};
