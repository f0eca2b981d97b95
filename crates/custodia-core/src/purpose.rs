//! Purposes, lawful bases, roles and the operations a role may perform.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::IdError;

/// A purpose of processing from `policies/` (`marketing_email`, `order_fulfillment`, ...):
/// 1 to 64 characters of `[a-z0-9_]`, starting with a letter.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PurposeId(String);

impl PurposeId {
    /// The id as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_snake_id(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len())
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl FromStr for PurposeId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        if is_snake_id(s, 64) {
            Ok(PurposeId(s.to_owned()))
        } else {
            Err(IdError { kind: "purpose id" })
        }
    }
}

impl<'de> Deserialize<'de> for PurposeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PurposeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PurposeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PurposeId({})", self.0)
    }
}

/// A role from `policies/` (`app`, `compliance`, `admin`, ...), same syntax as a purpose id.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoleName(String);

impl RoleName {
    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for RoleName {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, IdError> {
        if is_snake_id(s, 64) {
            Ok(RoleName(s.to_owned()))
        } else {
            Err(IdError { kind: "role name" })
        }
    }
}

impl<'de> Deserialize<'de> for RoleName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RoleName({})", self.0)
    }
}

/// The lawful basis of a purpose (GDPR Art. 6(1)).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LawfulBasis {
    /// Art. 6(1)(a): the subject's consent; processing needs a current grant.
    Consent,
    /// Art. 6(1)(b): performance of a contract with the subject.
    Contract,
    /// Art. 6(1)(c): a legal obligation of the controller.
    LegalObligation,
    /// Art. 6(1)(d): vital interests of the subject or another person.
    VitalInterests,
    /// Art. 6(1)(e): a task in the public interest.
    PublicTask,
    /// Art. 6(1)(f): legitimate interests; the subject may object (Art. 21).
    LegitimateInterest,
}

impl LawfulBasis {
    /// The snake_case name used in policies and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            LawfulBasis::Consent => "consent",
            LawfulBasis::Contract => "contract",
            LawfulBasis::LegalObligation => "legal_obligation",
            LawfulBasis::VitalInterests => "vital_interests",
            LawfulBasis::PublicTask => "public_task",
            LawfulBasis::LegitimateInterest => "legitimate_interest",
        }
    }
}

/// What a caller does; roles in `policies/roles.toml` list the operations they may perform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// `POST /v1/identify`, `/v1/track`, `/v1/batch`.
    Ingest,
    /// Reading profiles, look-ups and events (always with a purpose).
    ReadProfile,
    /// `PATCH /v1/subjects/{id}`.
    WriteProfile,
    /// `GET /v1/search`.
    Search,
    /// `POST /v1/consents`.
    ConsentWrite,
    /// Current consent state and consent history.
    ConsentRead,
    /// Aggregate, pseudonymized analytics.
    Analytics,
    /// The consent ledger: entries, checkpoints, proofs.
    Ledger,
    /// The access log.
    Audit,
    /// The data-subject request queue.
    DsrQueue,
    /// Creating and revoking API keys.
    ManageKeys,
}

impl Operation {
    /// Every operation, in declaration order.
    pub const ALL: [Operation; 11] = [
        Operation::Ingest,
        Operation::ReadProfile,
        Operation::WriteProfile,
        Operation::Search,
        Operation::ConsentWrite,
        Operation::ConsentRead,
        Operation::Analytics,
        Operation::Ledger,
        Operation::Audit,
        Operation::DsrQueue,
        Operation::ManageKeys,
    ];

    /// The snake_case name used in policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Ingest => "ingest",
            Operation::ReadProfile => "read_profile",
            Operation::WriteProfile => "write_profile",
            Operation::Search => "search",
            Operation::ConsentWrite => "consent_write",
            Operation::ConsentRead => "consent_read",
            Operation::Analytics => "analytics",
            Operation::Ledger => "ledger",
            Operation::Audit => "audit",
            Operation::DsrQueue => "dsr_queue",
            Operation::ManageKeys => "manage_keys",
        }
    }
}
