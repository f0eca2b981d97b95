//! The access decision: one pure function that says whether a caller may process a subject's
//! personal data for a purpose, or which refusal applies. No I/O: every input is passed in, so
//! the whole rule set is tested as a table (`decision/tests.rs`).
//!
//! Rules, in the order they are applied (the first that refuses decides):
//! 1. the caller's role may perform the operation → else `role_not_permitted`;
//! 2. the role may use the purpose → else `purpose_not_permitted`;
//! 3. a subject who restricted processing (GDPR Art. 18) is processed only for a legal
//!    obligation (keeping records, establishing legal claims) → else `processing_restricted`;
//! 4. a subject who objected (Art. 21) is not processed for a purpose resting on legitimate
//!    interests → else `objection_recorded`;
//! 5. a purpose resting on consent needs a current, unexpired grant → else `consent_required`.
//!
//! Contract, legal-obligation, vital-interest and public-task purposes need no consent.

use custodia_core::{ErrorCode, LawfulBasis, Operation};
use custodia_policy::{Purpose, Role};

/// A subject's consent for one purpose, as of now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentStatus {
    /// Never decided.
    NotSet,
    /// Granted and not expired.
    Granted,
    /// Withdrawn.
    Withdrawn,
    /// Granted longer ago than the purpose's consent expiry.
    Expired,
}

/// What a subject asked for about processing in general (data-subject requests set these).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubjectFlags {
    /// Processing restricted (Art. 18).
    pub restricted: bool,
    /// Objected to processing on legitimate interests (Art. 21).
    pub objected: bool,
}

/// Why access is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Rule 1.
    RoleNotPermitted,
    /// Rule 2.
    PurposeNotPermitted,
    /// Rule 3.
    ProcessingRestricted,
    /// Rule 4.
    ObjectionRecorded,
    /// Rule 5.
    ConsentRequired,
}

impl Refusal {
    /// The API's code for the refusal.
    pub fn code(self) -> ErrorCode {
        match self {
            Refusal::RoleNotPermitted => ErrorCode::RoleNotPermitted,
            Refusal::PurposeNotPermitted => ErrorCode::PurposeNotPermitted,
            Refusal::ProcessingRestricted => ErrorCode::ProcessingRestricted,
            Refusal::ObjectionRecorded => ErrorCode::ObjectionRecorded,
            Refusal::ConsentRequired => ErrorCode::ConsentRequired,
        }
    }
}

/// Whether the purpose rests on consent (its basis, or the policy says it needs consent).
pub fn needs_consent(purpose: &Purpose) -> bool {
    purpose.requires_consent || purpose.lawful_basis == LawfulBasis::Consent
}

/// Rules 1 and 2: what depends only on the caller and the purpose, checked before any subject is
/// looked at.
pub fn decide_caller(role: &Role, operation: Operation, purpose: &Purpose) -> Result<(), Refusal> {
    if !role.may(operation) {
        return Err(Refusal::RoleNotPermitted);
    }
    if !role.may_use(&purpose.id) {
        return Err(Refusal::PurposeNotPermitted);
    }
    Ok(())
}

/// All five rules for one subject.
pub fn decide(
    role: &Role,
    operation: Operation,
    purpose: &Purpose,
    consent: ConsentStatus,
    flags: SubjectFlags,
) -> Result<(), Refusal> {
    decide_caller(role, operation, purpose)?;
    if flags.restricted && purpose.lawful_basis != LawfulBasis::LegalObligation {
        return Err(Refusal::ProcessingRestricted);
    }
    if flags.objected && purpose.lawful_basis == LawfulBasis::LegitimateInterest {
        return Err(Refusal::ObjectionRecorded);
    }
    if needs_consent(purpose) && consent != ConsentStatus::Granted {
        return Err(Refusal::ConsentRequired);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
