//! Stable, transport-neutral error codes. Only the HTTP layer maps them to statuses.

use std::fmt;

/// A machine-readable reason for a refusal or failure, stable across releases.
///
/// Every crate's error type answers `fn code(&self) -> ErrorCode`; `custodia-server` turns the code
/// into an HTTP status in one `match`, so adding a code forces a decision there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request body is not valid JSON or does not have the expected shape.
    MalformedJson,
    /// A required field is missing or a field has a value outside its domain.
    InvalidField,
    /// An id in the path or query is not a valid id.
    InvalidId,
    /// The body is larger than the configured limit.
    PayloadTooLarge,
    /// The content type is not `application/json`.
    UnsupportedMediaType,
    /// No API key, or one that does not exist.
    Unauthenticated,
    /// The caller's role may not call this operation.
    RoleNotPermitted,
    /// A personal-data read named no purpose.
    PurposeMissing,
    /// The purpose is not defined by the policies.
    UnknownPurpose,
    /// The caller's role may not use the named purpose.
    PurposeNotPermitted,
    /// The purpose needs the subject's consent and there is no current grant.
    ConsentRequired,
    /// The subject restricted processing (GDPR Art. 18).
    ProcessingRestricted,
    /// The subject objected to a legitimate-interest purpose (GDPR Art. 21).
    ObjectionRecorded,
    /// The subject does not exist (or no longer exists).
    SubjectNotFound,
    /// The subject was merged into another one; the answer names the survivor.
    SubjectMerged,
    /// The path does not name a known resource.
    NotFound,
    /// The request conflicts with the current state.
    Conflict,
    /// A request header is malformed, or not accepted on this route.
    InvalidHeader,
    /// The `Idempotency-Key` was used before for another request (method, path or body).
    IdempotencyKeyReused,
    /// A request with the same `Idempotency-Key` is being processed; retry once it answered.
    IdempotencyKeyInFlight,
    /// The person asked to be erased and never stored again; the call stored nothing.
    SubjectSuppressed,
    /// A legal hold keeps the subject's data; it cannot be erased until the hold is lifted.
    LegalHold,
    /// The caller sent too many requests.
    RateLimited,
    /// The client did not send its request body within the server's deadline.
    RequestTimeout,
    /// The disk (or the quota) of the data directory is full: nothing was written; the same
    /// request succeeds once space is freed.
    InsufficientStorage,
    /// Something failed inside the server; details are in the server log, never in the answer.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order: the OpenAPI document's `code` enum is built from it. A
    /// test checks that it lists each variant once (`as_str` is exhaustive, so a new variant must
    /// be named there, and the test fails until it is named here too).
    pub const ALL: &[ErrorCode] = &[
        ErrorCode::MalformedJson,
        ErrorCode::InvalidField,
        ErrorCode::InvalidId,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::Unauthenticated,
        ErrorCode::RoleNotPermitted,
        ErrorCode::PurposeMissing,
        ErrorCode::UnknownPurpose,
        ErrorCode::PurposeNotPermitted,
        ErrorCode::ConsentRequired,
        ErrorCode::ProcessingRestricted,
        ErrorCode::ObjectionRecorded,
        ErrorCode::SubjectNotFound,
        ErrorCode::SubjectMerged,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::InvalidHeader,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::IdempotencyKeyInFlight,
        ErrorCode::SubjectSuppressed,
        ErrorCode::LegalHold,
        ErrorCode::RateLimited,
        ErrorCode::RequestTimeout,
        ErrorCode::InsufficientStorage,
        ErrorCode::Internal,
    ];

    /// The snake_case string used on the wire (`"consent_required"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedJson => "malformed_json",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::RoleNotPermitted => "role_not_permitted",
            ErrorCode::PurposeMissing => "purpose_missing",
            ErrorCode::UnknownPurpose => "unknown_purpose",
            ErrorCode::PurposeNotPermitted => "purpose_not_permitted",
            ErrorCode::ConsentRequired => "consent_required",
            ErrorCode::ProcessingRestricted => "processing_restricted",
            ErrorCode::ObjectionRecorded => "objection_recorded",
            ErrorCode::SubjectNotFound => "subject_not_found",
            ErrorCode::SubjectMerged => "subject_merged",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InvalidHeader => "invalid_header",
            ErrorCode::IdempotencyKeyReused => "idempotency_key_reused",
            ErrorCode::IdempotencyKeyInFlight => "idempotency_key_in_flight",
            ErrorCode::SubjectSuppressed => "subject_suppressed",
            ErrorCode::LegalHold => "legal_hold",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::InsufficientStorage => "insufficient_storage",
            ErrorCode::Internal => "internal",
        }
    }
}

/// Whether `error` is the operating system saying that the file system (or the user's quota) is
/// full: `ENOSPC`, `EDQUOT`.
pub fn is_storage_full(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

/// Whether `error` or any error in its `source()` chain is an I/O error of a full file system
/// ([`is_storage_full`]); for errors that wrap a storage engine's own (`Arc<io::Error>` included).
pub fn storage_full_in_chain(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(io) = error.downcast_ref::<std::io::Error>()
            && is_storage_full(io)
        {
            return true;
        }
        if let Some(io) = error.downcast_ref::<std::sync::Arc<std::io::Error>>()
            && is_storage_full(io)
        {
            return true;
        }
        next = error.source();
    }
    false
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
