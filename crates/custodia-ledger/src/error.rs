//! The crate's one error type. No variant carries entry bytes: entries hold ciphertext and
//! pseudonyms, and errors end up in logs.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use custodia_core::ErrorCode;

/// Why a ledger operation failed.
///
/// `Clone`, so that one failed group commit can answer every caller whose entries were in it
/// (the I/O error is shared behind an `Arc`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum LedgerError {
    /// Another `Log` — in this process or another — holds the directory's lock.
    #[error("the log in {} is already open elsewhere (locked)", path.display())]
    Locked {
        /// The log directory.
        path: PathBuf,
    },
    /// Reading, writing or syncing a file failed.
    #[error("i/o error on {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A log file does not have the expected format, in a way that crash recovery does not
    /// explain (recovery only ever cuts an unacknowledged tail). `verify_dir` names the bad item.
    #[error("log file {} is corrupt: {detail}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, without any entry bytes.
        detail: String,
    },
    /// The log holds fewer entries than its latest stored checkpoint: it was truncated or rolled
    /// back. The log refuses to open rather than fork its own signed history.
    #[error(
        "the log holds {tree_size} entries but its latest checkpoint is at tree size {checkpoint_size}: truncated"
    )]
    BehindCheckpoint {
        /// Entries present after crash recovery.
        tree_size: u64,
        /// Tree size of the latest stored checkpoint.
        checkpoint_size: u64,
    },
    /// A sequence number or tree size past the end of the log.
    #[error("{what} {value} is past the end of the log (tree size {tree_size})")]
    NotFound {
        /// What was asked for: `"entry"`, `"tree size"`.
        what: &'static str,
        /// The value asked for.
        value: u64,
        /// The log's current tree size.
        tree_size: u64,
    },
    /// Arguments that describe no proof (a leaf outside the tree, sizes in the wrong order).
    #[error("invalid range: {detail}")]
    InvalidRange {
        /// Which relation does not hold.
        detail: String,
    },
    /// An entry longer than [`crate::MAX_ENTRY_LEN`].
    #[error("entry of {len} bytes exceeds the limit of {max} bytes")]
    EntryTooLarge {
        /// The entry's length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier append or checkpoint failed half-way; the files may hold an unacknowledged
    /// tail, so this `Log` accepts no more writes. Reopening recovers.
    #[error("an earlier write to the log failed; reopen the log to recover")]
    Poisoned,
    /// The signer's verifier key is not the one this log's checkpoints are signed with (the
    /// `verifier-key` file).
    #[error("the signer's key {found} is not this log's checkpoint key {expected}")]
    WrongSigner {
        /// The log's verifier key.
        expected: String,
        /// The signer's verifier key.
        found: String,
    },
    /// The witness directory already holds a different checkpoint for this origin and tree size:
    /// two different trees were signed at one size, or the witness copy was altered.
    #[error("witness file {} holds a different checkpoint for the same tree size", path.display())]
    WitnessConflict {
        /// The witness file.
        path: PathBuf,
    },
    /// A checkpoint origin (which is also the key name) that the note format does not allow.
    #[error("invalid checkpoint origin: {detail}")]
    InvalidOrigin {
        /// The rule it breaks.
        detail: &'static str,
    },
    /// A checkpoint's text is not a well-formed signed note with a checkpoint body.
    #[error("malformed checkpoint: {detail}")]
    MalformedCheckpoint {
        /// The rule it breaks.
        detail: &'static str,
    },
    /// A verifier key is not `<name>+<8 hex key id>+<base64 key>` with a matching key id.
    #[error("malformed verifier key: {detail}")]
    MalformedVerifierKey {
        /// The rule it breaks.
        detail: &'static str,
    },
    /// Bytes that are not a canonical ledger entry, or an entry whose fields break its rules.
    #[error("malformed ledger entry: {detail}")]
    MalformedEntry {
        /// The rule it breaks.
        detail: &'static str,
    },
}

impl LedgerError {
    /// The transport-neutral code: caller mistakes map to client codes, a full file system to
    /// `InsufficientStorage`, everything else about the files to `Internal`.
    pub fn code(&self) -> ErrorCode {
        match self {
            LedgerError::NotFound { .. } => ErrorCode::NotFound,
            LedgerError::InvalidRange { .. }
            | LedgerError::InvalidOrigin { .. }
            | LedgerError::MalformedCheckpoint { .. }
            | LedgerError::MalformedVerifierKey { .. }
            | LedgerError::MalformedEntry { .. } => ErrorCode::InvalidField,
            LedgerError::EntryTooLarge { .. } => ErrorCode::PayloadTooLarge,
            LedgerError::Io { source, .. } if custodia_core::is_storage_full(source) => {
                ErrorCode::InsufficientStorage
            }
            LedgerError::Locked { .. }
            | LedgerError::Io { .. }
            | LedgerError::Corrupt { .. }
            | LedgerError::BehindCheckpoint { .. }
            | LedgerError::Poisoned
            | LedgerError::WrongSigner { .. }
            | LedgerError::WitnessConflict { .. } => ErrorCode::Internal,
        }
    }

    /// An `Io` error for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> LedgerError {
        LedgerError::Io {
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
