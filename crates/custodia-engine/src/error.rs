//! The engine's error type: every refusal carries a stable code and, where one input field is at
//! fault, a JSON pointer to it. No variant carries personal data or a secret.

use custodia_core::{ErrorCode, SubjectId};
use custodia_ledger::LedgerError;
use custodia_store::StoreError;
use custodia_vault::VaultError;

/// Why an engine call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// An input field is missing or has a value outside its domain. `field` is a JSON pointer
    /// (`/traits/email`); `message` describes the rule, never the value.
    #[error("{field}: {message}")]
    Invalid {
        /// JSON pointer to the field at fault.
        field: String,
        /// The rule the value broke.
        message: String,
    },
    /// No valid API key.
    #[error("missing or invalid api key")]
    Unauthenticated,
    /// The caller's role may not perform the operation. The message names the roles that may,
    /// not the internal name of the operation.
    #[error("{}", needs_role(needed, role))]
    RoleNotPermitted {
        /// The caller's role.
        role: String,
        /// The operation refused (for logs and tests; not in the message).
        operation: &'static str,
        /// The roles of the policies in force that may perform it, in policy order.
        needed: Vec<String>,
    },
    /// A personal-data read named no purpose.
    #[error("a purpose is required to read personal data")]
    PurposeMissing,
    /// The purpose is not in the policies.
    #[error("unknown purpose")]
    UnknownPurpose,
    /// The role may not use the purpose.
    #[error("role `{role}` may not use purpose `{purpose}`")]
    PurposeNotPermitted {
        /// The caller's role.
        role: String,
        /// The purpose refused.
        purpose: String,
    },
    /// The purpose's lawful basis is consent and there is no current grant.
    #[error("purpose `{purpose}` requires the subject's consent")]
    ConsentRequired {
        /// The purpose refused.
        purpose: String,
    },
    /// The request contradicts the current state (`field` as for `Invalid`).
    #[error("{field}: {message}")]
    Conflict {
        /// JSON pointer to the field at fault.
        field: String,
        /// Why.
        message: String,
    },
    /// The subject restricted processing (GDPR Art. 18).
    #[error(
        "processing of this subject's data is restricted (GDPR Art. 18); purpose `{purpose}` may not be used"
    )]
    ProcessingRestricted {
        /// The purpose refused.
        purpose: String,
    },
    /// The subject objected to processing on legitimate interests (GDPR Art. 21).
    #[error("the subject objected to purpose `{purpose}`")]
    ObjectionRecorded {
        /// The purpose refused.
        purpose: String,
    },
    /// The person was erased and asked never to be stored again: nothing was stored.
    #[error("the subject asked to be erased and not stored again")]
    SubjectSuppressed,
    /// An item of a batch names a suppressed person: the whole batch is refused.
    #[error("{field}: the subject asked to be erased and not stored again")]
    SuppressedItem {
        /// JSON pointer to the item (`/batch/3`).
        field: String,
    },
    /// A legal hold keeps the subject's data.
    #[error("the subject's data is under a legal hold")]
    LegalHold,
    /// No such subject (never existed, or erased).
    #[error("subject not found")]
    SubjectNotFound,
    /// No such thing other than a subject (an API key of the caller's tenant, ...).
    #[error("{field}: {message}")]
    NotFound {
        /// The parameter that names it.
        field: String,
        /// What was not found.
        message: &'static str,
    },
    /// The subject was merged into another.
    #[error("subject was merged into {into}")]
    SubjectMerged {
        /// The surviving subject.
        into: SubjectId,
    },
    /// The key store failed.
    #[error("key store: {0}")]
    Vault(#[from] VaultError),
    /// The data store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The consent ledger failed.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// A file outside the store could not be written.
    #[error("cannot write the {what}: {source}")]
    Io {
        /// Which file.
        what: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The search index failed.
    #[error("search index: {0}")]
    Search(#[from] custodia_search::SearchError),
    /// A stored record did not decode after decryption.
    #[error("corrupt {0} record")]
    Corrupt(&'static str),
    /// The data directory's store is elsewhere than where it was asked for (embedded versus
    /// PostgreSQL); the message says where and what to give.
    #[error("{0}")]
    StoreElsewhere(String),
}

impl EngineError {
    /// The stable code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::Invalid { .. } => ErrorCode::InvalidField,
            EngineError::Unauthenticated => ErrorCode::Unauthenticated,
            EngineError::RoleNotPermitted { .. } => ErrorCode::RoleNotPermitted,
            EngineError::PurposeMissing => ErrorCode::PurposeMissing,
            EngineError::UnknownPurpose => ErrorCode::UnknownPurpose,
            EngineError::PurposeNotPermitted { .. } => ErrorCode::PurposeNotPermitted,
            EngineError::ConsentRequired { .. } => ErrorCode::ConsentRequired,
            EngineError::Conflict { .. } => ErrorCode::Conflict,
            EngineError::SubjectSuppressed | EngineError::SuppressedItem { .. } => {
                ErrorCode::SubjectSuppressed
            }
            EngineError::LegalHold => ErrorCode::LegalHold,
            EngineError::ProcessingRestricted { .. } => ErrorCode::ProcessingRestricted,
            EngineError::ObjectionRecorded { .. } => ErrorCode::ObjectionRecorded,
            EngineError::SubjectNotFound => ErrorCode::SubjectNotFound,
            EngineError::NotFound { .. } => ErrorCode::NotFound,
            EngineError::SubjectMerged { .. } => ErrorCode::SubjectMerged,
            EngineError::Vault(e) => e.code(),
            EngineError::Store(e) => e.code(),
            EngineError::Ledger(e) => e.code(),
            EngineError::Io { source, .. } if custodia_core::is_storage_full(source) => {
                ErrorCode::InsufficientStorage
            }
            EngineError::Search(e) if custodia_core::storage_full_in_chain(e) => {
                ErrorCode::InsufficientStorage
            }
            EngineError::Io { .. }
            | EngineError::Corrupt(_)
            | EngineError::Search(_)
            | EngineError::StoreElsewhere(_) => ErrorCode::Internal,
        }
    }

    /// The input field at fault, as a JSON pointer, if one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            EngineError::Invalid { field, .. }
            | EngineError::Conflict { field, .. }
            | EngineError::SuppressedItem { field }
            | EngineError::NotFound { field, .. } => Some(field),
            EngineError::PurposeMissing | EngineError::UnknownPurpose => Some("purpose"),
            _ => None,
        }
    }

    /// An `Invalid` error for `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> EngineError {
        EngineError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The same error with its field pointer placed under `prefix` (`/batch/3` + `/traits`).
    pub fn under(self, prefix: &str) -> EngineError {
        match self {
            EngineError::Invalid { field, message } => EngineError::Invalid {
                field: format!("{prefix}{field}"),
                message,
            },
            other => other,
        }
    }
}

/// The message of [`EngineError::RoleNotPermitted`]: the role the request needs, and the one the
/// key has.
fn needs_role(needed: &[String], role: &str) -> String {
    let quoted: Vec<String> = needed.iter().map(|r| format!("`{r}`")).collect();
    match quoted.as_slice() {
        [] => {
            format!("no role of the policies in force may do this (this key has the `{role}` role)")
        }
        [one] => format!("this request needs the {one} role; this key has the `{role}` role"),
        [first @ .., last] => format!(
            "this request needs the {} or {last} role; this key has the `{role}` role",
            first.join(", ")
        ),
    }
}
