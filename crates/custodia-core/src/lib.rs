//! Domain types shared by every Custodia crate: ids, purposes, roles, times, the redacting
//! `Personal` wrapper, length-prefixed encoding and the transport-neutral error codes.
//!
//! Architecture invariant: this crate does no I/O and names no crypto, storage or HTTP library,
//! so nothing in it can fail for an outside reason.

mod code;
mod ids;
mod lp;
mod personal;
mod purpose;
#[cfg(feature = "openapi")]
mod schema;
mod timestamp;

pub use code::{ErrorCode, is_storage_full, storage_full_in_chain};
pub use ids::{ApiKeyId, EventId, IdError, Pseudonym, SubjectId, TenantId};
pub use lp::LengthPrefixed;
pub use personal::Personal;
pub use purpose::{LawfulBasis, Operation, PurposeId, RoleName};
pub use timestamp::Timestamp;

/// Trait names that the field treats as identity and contact data (api.md "Ingestion").
///
/// Every trait is personal data and stored encrypted; these are the ones that also get special
/// handling (blind indexes for `email` and `phone`, the identity category in exports).
pub const IDENTITY_TRAITS: &[&str] = &[
    "email",
    "phone",
    "name",
    "firstName",
    "lastName",
    "address",
    "birthday",
];

#[cfg(test)]
mod tests;
