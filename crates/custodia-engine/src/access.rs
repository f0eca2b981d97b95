//! Who is calling, and whether they may read personal data for the purpose they name.
//!
//! A grant is checked in two steps: `grant` decides what does not depend on the subject (role,
//! operation, purpose), and every reading function then checks the subject's own consent when
//! the purpose rests on consent (`check_subject`), so no read can skip either step.

use custodia_core::{ApiKeyId, LawfulBasis, Operation, PurposeId, RoleName, SubjectId, TenantId};
use std::sync::Arc;

use custodia_policy::{Policies, Purpose, Role};

use crate::decision::{self, ConsentStatus, Refusal};

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
    /// The roles of the policies in force, to name the ones a refused request needs.
    pub(crate) roles: RoleDirectory,
}

/// The roles of the policies in force. Its `Debug` does not print them.
#[derive(Clone)]
pub(crate) struct RoleDirectory(pub(crate) Arc<Policies>);

impl std::fmt::Debug for RoleDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoleDirectory")
    }
}

impl RoleDirectory {
    /// The roles that may perform `op`, in policy order.
    pub(crate) fn roles_that_may(&self, op: Operation) -> Vec<String> {
        roles_that_may(&self.0, op)
    }
}

/// The roles of `policies` that may perform `op`, in policy order.
fn roles_that_may(policies: &Policies, op: Operation) -> Vec<String> {
    policies
        .roles()
        .iter()
        .filter(|r| r.may(op))
        .map(|r| r.name.to_string())
        .collect()
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
                needed: self.roles.roles_that_may(op),
            })
        }
    }
}

/// Permission to read personal data of a tenant for one purpose, checked against the caller's
/// role and the purpose's lawful basis. Reading functions take one, so no read can skip the check.
#[derive(Debug, Clone)]
pub struct ReadGrant {
    tenant: TenantId,
    key_id: ApiKeyId,
    role: Role,
    operation: Operation,
    purpose: Purpose,
}

impl ReadGrant {
    pub(crate) fn new(
        tenant: TenantId,
        key_id: ApiKeyId,
        role: Role,
        operation: Operation,
        purpose: Purpose,
    ) -> ReadGrant {
        ReadGrant {
            tenant,
            key_id,
            role,
            operation,
            purpose,
        }
    }

    /// The tenant whose data may be read.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The purpose the read serves.
    pub fn purpose(&self) -> &PurposeId {
        &self.purpose.id
    }

    /// The data categories the purpose's policy names: a read for it returns only traits and
    /// events of these.
    pub fn categories(&self) -> &[String] {
        &self.purpose.categories
    }

    /// Whether the purpose's policy names the category.
    pub fn covers(&self, category: &str) -> bool {
        self.purpose.categories.iter().any(|c| c == category)
    }

    /// Whether the policies allow text search for the purpose.
    pub fn allows_search(&self) -> bool {
        self.purpose.search
    }

    /// The purpose's lawful basis.
    pub fn basis(&self) -> LawfulBasis {
        self.purpose.lawful_basis
    }

    /// The API key the read is made with.
    pub fn key_id(&self) -> &ApiKeyId {
        &self.key_id
    }

    /// The caller's role.
    pub fn role_name(&self) -> &RoleName {
        &self.role.name
    }

    /// The operation granted.
    pub fn operation(&self) -> Operation {
        self.operation
    }
}

impl Engine {
    /// Checks that `caller` may perform `op` on personal data for `purpose` (the raw query
    /// parameter): the caller-only rules of [`decision::decide_caller`]. Returns the grant that
    /// reading functions require; they apply the subject's rules with [`Engine::check_subject`].
    pub fn grant(
        &self,
        caller: &Caller,
        op: Operation,
        purpose: Option<&str>,
    ) -> Result<ReadGrant, EngineError> {
        caller.require(op)?;
        let purpose = self.purpose(purpose)?;
        decision::decide_caller(&caller.role, op, purpose)
            .map_err(|refusal| refused(&self.policies, refusal, &caller.role, op, purpose))?;
        Ok(ReadGrant {
            tenant: caller.tenant.clone(),
            key_id: caller.key_id.clone(),
            role: caller.role.clone(),
            operation: op,
            purpose: purpose.clone(),
        })
    }

    /// The subject-dependent rules of [`decision::decide`]: the subject's consent for the purpose
    /// (looked up only when the purpose rests on consent) and its restriction and objection
    /// flags.
    pub(crate) fn check_subject(
        &self,
        grant: &ReadGrant,
        subject: SubjectId,
    ) -> Result<(), EngineError> {
        // A subject erased with records kept under a legal obligation exists only for the
        // purposes that keep them; for every other purpose it is gone, as after a plain erasure
        // (and, as then, the refused read is not about anybody the access log could name).
        if self.erased_with_hold(&grant.tenant, subject)?
            && !self.keeps_records_for(&grant.purpose.id)
        {
            return Err(EngineError::SubjectNotFound);
        }
        let consent = if decision::needs_consent(&grant.purpose) {
            self.consent_status(&grant.tenant, subject, &grant.purpose.id)?
        } else {
            ConsentStatus::NotSet
        };
        let flags = self.subject_flags(&grant.tenant, subject)?;
        match decision::decide(&grant.role, grant.operation, &grant.purpose, consent, flags) {
            Ok(()) => Ok(()),
            Err(refusal) => {
                // A refusal about this subject is part of its access history too.
                self.record_access(grant, "refused", &[subject], Some(refusal.code()))?;
                Err(refused(
                    &self.policies,
                    refusal,
                    &grant.role,
                    grant.operation,
                    &grant.purpose,
                ))
            }
        }
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

/// The engine error for a refusal of the access decision.
fn refused(
    policies: &Policies,
    refusal: Refusal,
    role: &Role,
    operation: Operation,
    purpose: &Purpose,
) -> EngineError {
    let purpose = purpose.id.to_string();
    match refusal {
        Refusal::RoleNotPermitted => EngineError::RoleNotPermitted {
            role: role.name.to_string(),
            operation: operation.as_str(),
            needed: roles_that_may(policies, operation),
        },
        Refusal::PurposeNotPermitted => EngineError::PurposeNotPermitted {
            role: role.name.to_string(),
            purpose,
        },
        Refusal::ProcessingRestricted => EngineError::ProcessingRestricted { purpose },
        Refusal::ObjectionRecorded => EngineError::ObjectionRecorded { purpose },
        Refusal::ConsentRequired => EngineError::ConsentRequired { purpose },
    }
}
