//! The store's error type. No variant carries a stored value: keys and values are ciphertext,
//! keyed hashes or ids, and an error message is no place for any of them.

use custodia_core::ErrorCode;

/// Why a store operation failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage engine reported a failure (I/O, engine-detected corruption, engine bug).
    ///
    /// The message is the engine's own; sled's and fjall's messages name files and offsets,
    /// never data; PostgreSQL's keep its message and SQLSTATE, never its detail (which can
    /// quote a key).
    #[error("storage engine error: {0}")]
    Backend(String),
    /// The file system of the store is full (or below the configured free-space reserve, checked
    /// before each write so that the storage engine itself never runs out): nothing was written.
    #[error("no space left for the store: {0}")]
    StorageFull(String),
    /// The store (its directory, or its PostgreSQL schema) is already open, by another process
    /// or another handle in this one.
    #[error("the store is locked: it is already open in another process or handle")]
    Locked,
    /// A stored record or key failed to decode (unknown format version, truncated, trailing
    /// bytes, a field out of its domain). `what` names the kind of record.
    #[error("corrupt {what} in store")]
    Corrupt {
        /// The kind of record or key that failed to decode (`"subject record"`, ...).
        what: &'static str,
    },
    /// A field was too large for its length prefix (4 GiB or more); nothing was written.
    #[error("{what} too large to store")]
    TooLarge {
        /// The kind of field that was too large (`"sealed event"`, ...).
        what: &'static str,
    },
}

impl StoreError {
    /// The transport-neutral code: a full disk is `InsufficientStorage`; every other store failure
    /// is an internal error for the caller's client, with the details kept for the server log.
    pub fn code(&self) -> ErrorCode {
        match self {
            StoreError::StorageFull(_) => ErrorCode::InsufficientStorage,
            _ => ErrorCode::Internal,
        }
    }
}
