//! The access and portability export (GDPR Art. 15 and 20): what the person's data is, why it is
//! processed, by whom, for how long, their rights, and their consent history with proofs. Typed,
//! so that the API document describes exactly what the privacy center and the zip are built from.

use std::collections::{BTreeMap, BTreeSet};

use custodia_core::{LawfulBasis, PurposeId, SubjectId, Timestamp};
use serde::Serialize;
use serde_json::{Map, Value};

use super::DsrType;
use crate::consent::ProvenEntry;

/// `GET /v1/dsr/{request_id}/export`: the bundle, or that the shop holds nothing about the person.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum DsrExport {
    /// The person is not known to the shop.
    NoDataHeld(NoDataHeld),
    /// Everything the shop holds about the person.
    Bundle(Box<ExportBundle>),
}

/// The export of a person the shop does not know.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NoDataHeld {
    /// The request.
    pub request_id: String,
    /// Always `no_data_held`.
    pub result: &'static str,
}

/// Everything the shop holds about the person, and what the law says they must be told.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportBundle {
    /// The request.
    pub request_id: String,
    /// `access` or `portability`.
    #[serde(rename = "type")]
    pub kind: DsrType,
    /// When the export was made.
    pub generated_at: Timestamp,
    /// Who is responsible.
    pub controller: ExportController,
    /// The person's data.
    pub data: ExportData,
    /// Every purpose of the policies in force.
    pub purposes: Vec<ExportPurpose>,
    /// Every data category, with its retention.
    pub categories: Vec<ExportCategory>,
    /// Everyone outside the controller who receives data, for any purpose.
    pub recipients: BTreeSet<String>,
    /// Where the retention figures are.
    pub retention: &'static str,
    /// Where the data comes from (Art. 15(1)(g)).
    pub source: &'static str,
    /// Automated decisions (Art. 15(1)(h)).
    pub automated_decision_making: &'static str,
    /// The person's rights, as the policies word them.
    pub rights: Vec<String>,
    /// The rights in other languages, by language code, sentence by sentence.
    pub rights_translations: BTreeMap<String, Vec<String>>,
    /// Where to complain.
    pub supervisory_authority: ExportAuthority,
    /// Every consent decision about the person, each with its inclusion proof.
    pub consent_history: ExportConsentHistory,
}

/// The controller.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportController {
    /// Its legal name.
    pub name: String,
    /// How to reach its data protection officer.
    pub contact: String,
}

/// The supervisory authority.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportAuthority {
    /// Its name.
    pub name: String,
    /// Where to reach it.
    pub url: String,
}

/// The person's data, in the clear.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportData {
    /// Custodia's id of the person.
    pub subject_id: SubjectId,
    /// The shop's id of the person.
    pub user_id: Option<String>,
    /// The anonymous ids merged into the person.
    pub anonymous_ids: Vec<String>,
    /// The profile, as the shop sent it.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub traits: Map<String, Value>,
    /// When the profile was made.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Every event (`event`, `properties`, `timestamp`, ...), oldest first.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub events: Vec<Value>,
}

/// A purpose of processing, as the export states it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportPurpose {
    /// The purpose.
    pub id: PurposeId,
    /// Its name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Its lawful basis.
    pub lawful_basis: LawfulBasis,
    /// The data categories it uses.
    pub categories: Vec<String>,
    /// Who else receives data for it.
    pub recipients: Vec<String>,
    /// How long data is used for it.
    pub retention_days: u32,
    /// The name, description and recipients in other languages, by language code: each
    /// `{"name", "description", "recipients"?}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub translations: BTreeMap<String, custodia_policy::Translation>,
}

/// A data category, as the export states it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportCategory {
    /// The category.
    pub id: String,
    /// Its name.
    pub name: String,
    /// What it holds.
    pub description: String,
    /// How long its data is kept.
    pub retention_days: u32,
    /// The legal obligation that keeps its data past an erasure, if any: `{"purpose", "reason"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub legal_hold: Option<custodia_policy::LegalHold>,
    /// The name and description in other languages, by language code.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub translations: BTreeMap<String, custodia_policy::Translation>,
}

/// The consent history, provable offline.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportConsentHistory {
    /// Each entry with its inclusion proof.
    pub entries: Vec<ProvenEntry>,
    /// The signed checkpoint the proofs lead to (C2SP signed note).
    pub checkpoint: String,
    /// The ledger's verifier key (note format).
    pub public_key: String,
}
