//! Who is calling, and whether they may read personal data for the purpose they name.
//!
//! A grant is checked in two steps: `grant` decides what does not depend on the subject (role,
//! operation, purpose), and every reading function then checks the subject's own consent when
//! the purpose rests on consent (`check_subject`), so no read can skip either step.

use custodia_core::{ApiKeyId, LawfulBasis, Operation, PurposeId, RoleName, SubjectId, TenantId};
use custodia_policy::{Purpose, Role};

use crate::{Engine, EngineError};

/// An authenticated caller: an API key of one tenant and one role.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The key's public id (logged and recorded; never the secret).
    pub key_id: ApiKeyId,
    /// The tenant the key belongs to.
    pub tenant: TenantId,
    /// The key's role, resolved from the policies in force.
    pub role: Role,
}

impl Caller {
    /// The role's name.
    pub fn role_name(&self) -> &RoleName {
        &self.role.name
    }

    /// Refuses unless the caller's role may perform `op`.
    pub fn require(&self, op: Operation) -> Result<(), EngineError> {
        if self.role.may(op) {
            Ok(())
        } else {
            Err(EngineError::RoleNotPermitted {
                role: self.role.name.to_string(),
                operation: op.as_str(),
            })
        }
    }
}

/// Permission to read personal data of a tenant for one purpose, checked against the caller's
/// role and the purpose's lawful basis. Reading functions take one, so no read can skip the check.
#[derive(Debug, Clone)]
pub struct ReadGrant {
    tenant: TenantId,
    purpose: PurposeId,
    basis: LawfulBasis,
    requires_consent: bool,
}

impl ReadGrant {
    /// The tenant whose data may be read.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The purpose the read serves.
    pub fn purpose(&self) -> &PurposeId {
        &self.purpose
    }

    /// The purpose's lawful basis.
    pub fn basis(&self) -> LawfulBasis {
        self.basis
    }
}

impl Engine {
    /// Checks that `caller` may perform `op` on personal data for `purpose` (the raw query
    /// parameter), and returns the grant that reading functions require.
    pub fn grant(
        &self,
        caller: &Caller,
        op: Operation,
        purpose: Option<&str>,
    ) -> Result<ReadGrant, EngineError> {
        caller.require(op)?;
        let purpose = self.purpose(purpose)?;
        if !caller.role.may_use(&purpose.id) {
            return Err(EngineError::PurposeNotPermitted {
                role: caller.role.name.to_string(),
                purpose: purpose.id.to_string(),
            });
        }
        Ok(ReadGrant {
            tenant: caller.tenant.clone(),
            purpose: purpose.id.clone(),
            basis: purpose.lawful_basis,
            requires_consent: purpose.requires_consent
                || purpose.lawful_basis == LawfulBasis::Consent,
        })
    }

    /// The subject-dependent half of the check: a purpose that rests on consent needs the
    /// subject's current, unexpired grant in the ledger.
    pub(crate) fn check_subject(
        &self,
        grant: &ReadGrant,
        subject: SubjectId,
    ) -> Result<(), EngineError> {
        if grant.requires_consent
            && !self.has_current_consent(&grant.tenant, subject, &grant.purpose)?
        {
            return Err(EngineError::ConsentRequired {
                purpose: grant.purpose.to_string(),
            });
        }
        Ok(())
    }

    /// Resolves a purpose named in a request.
    pub fn purpose(&self, raw: Option<&str>) -> Result<&Purpose, EngineError> {
        let raw = raw
            .filter(|s| !s.is_empty())
            .ok_or(EngineError::PurposeMissing)?;
        let id: PurposeId = raw.parse().map_err(|_| EngineError::UnknownPurpose)?;
        self.policies
            .purpose(&id)
            .ok_or(EngineError::UnknownPurpose)
    }
}
