//! The crate's one error type. No variant carries key material or personal data.

use std::path::PathBuf;

use custodia_core::ErrorCode;

use crate::RootKeyId;

/// Why a vault operation failed.
///
/// Messages name files and non-secret key ids only. Every failure of an AEAD open (wrong key, bad
/// tag, wrong associated data, truncated or unknown-format input) is the single opaque
/// [`VaultError::Crypto`], so an error is never an oracle about *why* a ciphertext was refused.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// A cryptographic operation failed: a ciphertext did not open (wrong key, tampered bytes,
    /// wrong associated data, truncated or unknown format) or a key derivation failed.
    #[error("cryptographic operation failed")]
    Crypto,
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    RandomUnavailable,
    /// A root key is not standard base64 of exactly 32 bytes.
    #[error("root key must be base64 of 32 bytes")]
    InvalidRootKey,
    /// A root key file is readable or writable by group or others (`mode & 0o077 != 0`).
    #[error("root key file {} is accessible by group or others; restrict it to mode 0600", path.display())]
    RootKeyFilePermissions {
        /// The refused file.
        path: PathBuf,
    },
    /// The subject has no data key: it was never created, or it was destroyed.
    #[error("no data key for this subject")]
    KeyNotFound,
    /// `create_data_key` was called for a subject that already has a data key.
    #[error("the subject already has a data key")]
    DataKeyExists,
    /// A wrapped data key names a root key that the keyring does not hold.
    #[error("a wrapped key names root key {id}, which the keyring does not hold")]
    UnknownRootKey {
        /// The id recorded next to the wrapped key.
        id: RootKeyId,
    },
    /// The key store's tenant secret is wrapped under a root key that the keyring does not hold:
    /// the configured root key does not open this key store.
    #[error(
        "the configured root key does not open the key store {}: it is wrapped under root key {id}",
        path.display()
    )]
    WrongRootKey {
        /// The key store file.
        path: PathBuf,
        /// The root key the store's tenant secret is wrapped under.
        id: RootKeyId,
    },
    /// A key store file does not have the expected format.
    #[error("key store {} is corrupt: {detail}", path.display())]
    KeyStoreCorrupt {
        /// The key store file.
        path: PathBuf,
        /// What is wrong, as a fixed phrase.
        detail: &'static str,
    },
    /// Another process (or another `Vault` in this process) holds the key store's lock.
    #[error("key store {} is in use by another process", path.display())]
    KeyStoreLocked {
        /// The key store file.
        path: PathBuf,
    },
    /// Reading, writing or syncing a file failed.
    #[error("i/o error on {}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The tenant's wrapping key has done 2^31 encryptions, the budget this crate allows a shared
    /// AES-GCM key with random nonces (NIST SP 800-38D); rotate the root key.
    #[error("the tenant's wrapping key has reached its encryption limit; rotate the root key")]
    WrapLimit,
}

impl VaultError {
    /// The transport-neutral code: a missing data key means the subject does not exist (any
    /// more); a full file system is `InsufficientStorage`; everything else is an internal failure whose detail stays in the server log.
    pub fn code(&self) -> ErrorCode {
        match self {
            VaultError::KeyNotFound => ErrorCode::SubjectNotFound,
            VaultError::Io { source, .. } if custodia_core::is_storage_full(source) => {
                ErrorCode::InsufficientStorage
            }
            VaultError::Crypto
            | VaultError::RandomUnavailable
            | VaultError::InvalidRootKey
            | VaultError::RootKeyFilePermissions { .. }
            | VaultError::DataKeyExists
            | VaultError::UnknownRootKey { .. }
            | VaultError::WrongRootKey { .. }
            | VaultError::KeyStoreCorrupt { .. }
            | VaultError::KeyStoreLocked { .. }
            | VaultError::Io { .. }
            | VaultError::WrapLimit => ErrorCode::Internal,
        }
    }

    /// An [`VaultError::Io`] for `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> VaultError {
        VaultError::Io {
            path: path.to_owned(),
            source,
        }
    }
}
