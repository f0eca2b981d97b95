//! custodia-ledger: tamper-evident, append-only Merkle logs — the consent ledger (design.md P3)
//! and, with the same machinery, the access log (P4).
//!
//! - [`merkle`]: the RFC 6962 / RFC 9162 §2.1 tree — leaf and node hashes, roots, inclusion and
//!   consistency proofs and their verification — as pure functions.
//! - [`Log`]: a file-backed log in one directory. Appends are durable before they return and cost
//!   O(log n) hashing; roots and proofs are read from stored complete-subtree hashes in O(log n).
//!   The on-disk format and its crash-recovery rules are documented in the `log` module.
//! - [`NoteSigner`], [`Checkpoint`], [`VerifierKey`]: signed checkpoints in the C2SP
//!   `tlog-checkpoint` / `signed-note` text format, so tools that check Go sumdb or
//!   trillian-tessera checkpoints can check ours.
//! - [`verify_dir`]: offline verification of a log directory that names the first bad entry,
//!   node or checkpoint.
//! - [`LedgerEntry`]: the consent ledger's one canonical, versioned entry encoding.
//!
//! Architecture invariants:
//! - All hashing and signing goes through `custodia-vault` (`sha256_parts`, [`SigningKey`],
//!   `verify_ed25519`); this crate names no crypto library, no storage engine and no HTTP stack.
//! - The log never deletes or rewrites an acknowledged entry. Erasure destroys the subject's data
//!   key in the vault, which leaves the sealed evidence in the ledger unreadable while every hash
//!   still verifies.
//! - Entries carry pseudonyms, ids and ciphertext only: no plaintext personal data reaches a file
//!   of this crate.
//!
//! [`SigningKey`]: custodia_vault::SigningKey

#[cfg(not(unix))]
compile_error!("custodia-ledger needs a unix platform: the log uses positioned I/O");

mod entry;
mod error;
mod log;
pub mod merkle;
mod note;
mod verify;

pub use entry::{ENTRY_FORMAT_VERSION, LedgerEntry, Source};
pub use error::LedgerError;
pub use log::{Log, MAX_ENTRY_LEN, Recovery, latest_witness_copy};
pub use note::{Checkpoint, NoteSignature, NoteSigner, VerifierKey};
pub use verify::{VerifyFailure, VerifyReport, verify_dir};

/// A SHA-256 hash: a leaf, an interior node or a tree root.
pub type Hash = [u8; 32];

#[cfg(test)]
mod tests;
