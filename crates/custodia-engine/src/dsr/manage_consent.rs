//! "Manage my consent" from the privacy center: a `consent` request, proven with the one-time
//! code like every request, opens a short session in which its access token lists the
//! consent-based purposes with the person's current decision and records new ones — through the
//! engine's normal consent path, as ledger entries with `source.channel = "privacy_center"`.
//!
//! - The token records decisions for [`CONSENT_SESSION_MINUTES`] after verification; then a new
//!   request (and code) is needed. Reading the state ends with the session too.
//! - A browser that sends the Global Privacy Control signal (`Sec-GPC: 1`) when it verifies gets
//!   every sale/share purpose (`gpc_opt_out` in the policies) withdrawn at once, recorded with
//!   `source.gpc = true`; each later decision it sends is recorded with the signal too, and the
//!   engine refuses to grant a sale/share purpose with it.
//! - A person the shop does not know proved only that they hold the address: they are told, as
//!   for every request type, that no data is held (`no_data_held`), see no purposes, and nothing
//!   is ever written for them.

use custodia_core::{LawfulBasis, Personal, PurposeId, SubjectId, TenantId, Timestamp};
use custodia_ledger::LedgerEntry;
use custodia_store::ConsentState;
use serde::Serialize;
use serde_json::{Value, json};

use super::{DsrStatus, DsrType};
use crate::consent::{ConsentInput, ConsentOutcome, EntryView, SubjectRef};
use crate::{Engine, EngineError};

/// How long after verification a consent request's token may read and record decisions.
pub const CONSENT_SESSION_MINUTES: i64 = 60;
/// The channel the privacy center's decisions are recorded under.
const CHANNEL: &str = "privacy_center";
/// The app label of those decisions.
const APP: &str = "custodia";
/// The form wording id: the privacy center's consent switches.
const FORM_ID: &str = "privacy_center_consent";

/// What the privacy center's HTTP request says about the browser behind a decision: its Global
/// Privacy Control signal and the evidence sealed with the ledger entry.
#[derive(Debug, Clone, Default)]
pub struct BrowserContext {
    /// The request carried `Sec-GPC: 1`.
    pub gpc: bool,
    /// The client's address: personal, sealed under the subject's key.
    pub ip: Option<Personal<String>>,
    /// The browser's user agent: personal, sealed.
    pub user_agent: Option<Personal<String>>,
}

/// One decision from the privacy center: `{"purpose", "decision": "granted"|"withdrawn"}`.
#[derive(Debug, Clone)]
pub struct ConsentChoice {
    /// The purpose (raw, checked against the policies when recorded).
    pub purpose: String,
    /// Granted (`true`) or withdrawn.
    pub granted: bool,
}

impl ConsentChoice {
    /// Parses the body; errors name the field.
    pub fn from_json(value: &Value) -> Result<ConsentChoice, EngineError> {
        let obj = value
            .as_object()
            .ok_or_else(|| EngineError::invalid("/", "must be a JSON object"))?;
        if let Some(unknown) = obj
            .keys()
            .find(|k| !["purpose", "decision"].contains(&k.as_str()))
        {
            return Err(EngineError::invalid(
                format!("/{}", crate::input::pointer_escape(unknown)),
                "unknown field",
            ));
        }
        let purpose = match obj.get("purpose") {
            Some(Value::String(p)) if !p.is_empty() => p.clone(),
            _ => return Err(EngineError::invalid("/purpose", "is required")),
        };
        let granted = match obj.get("decision").and_then(Value::as_str) {
            Some("granted") => true,
            Some("withdrawn") => false,
            _ => {
                return Err(EngineError::invalid(
                    "/decision",
                    "must be \"granted\" or \"withdrawn\"",
                ));
            }
        };
        Ok(ConsentChoice { purpose, granted })
    }
}

/// A consent-based purpose as the person sees it, with their current decision.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivacyCenterPurpose {
    /// The purpose.
    pub purpose: PurposeId,
    /// Its name, as the policies word it.
    pub name: String,
    /// What it does, as the policies word it.
    pub description: String,
    /// Always `consent` here: only consent-based purposes are listed.
    pub lawful_basis: LawfulBasis,
    /// Whether it is a sale or sharing of data, which a Global Privacy Control signal withdraws.
    pub sale_or_share: bool,
    /// `granted`, `withdrawn`, `not_set` or `expired`.
    pub state: &'static str,
    /// When the current decision was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Its ledger entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The current decision is a withdrawal caused by a Global Privacy Control signal.
    pub by_gpc: bool,
    /// The name and description in other languages, as the policies word them: by language code
    /// (`fr`), each `{"name", "description", "recipients"?}`.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub translations: std::collections::BTreeMap<String, custodia_policy::Translation>,
}

/// `GET /v1/dsr/{request_id}/consents`: the person's consent-based purposes.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivacyCenterConsents {
    /// The request.
    pub request_id: String,
    /// `consent_ready`, or `no_data_held` for a person the shop does not know (no purposes).
    pub result: &'static str,
    /// Until when this token may record decisions.
    pub manage_until: Timestamp,
    /// Whether this request carried `Sec-GPC: 1`.
    pub gpc_signal: bool,
    /// Every consent-based purpose of the policies, in policy order.
    pub purposes: Vec<PrivacyCenterPurpose>,
}

/// `POST /v1/dsr/{request_id}/consents`: what was recorded.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PrivacyCenterDecision {
    /// The decision's entry, then the sale/share withdrawals a GPC signal caused.
    #[serde(flatten)]
    pub outcome: ConsentOutcome,
    /// Every purpose this decision left withdrawn because of the GPC signal.
    pub turned_off_by_gpc: Vec<PurposeId>,
}

fn minutes(at: Timestamp, minutes: i64) -> Timestamp {
    Timestamp::from_unix_micros(at.unix_micros().saturating_add(minutes * 60_000_000))
}

impl Engine {
    /// Opens the session of a verified consent request for a known subject: the outcome says
    /// until when, and a browser's GPC signal withdraws the sale/share purposes now.
    pub(super) fn open_consent_session(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        browser: &BrowserContext,
    ) -> Result<Value, EngineError> {
        let manage_until = minutes(self.clock.now(), CONSENT_SESSION_MINUTES);
        let mut turned_off = Vec::new();
        if browser.gpc {
            let pseudonym = self.keys(tenant)?.pseudonym(subject);
            let recorded = self.store.consents(tenant, &pseudonym)?;
            // The first sale/share purpose not yet withdrawn carries the decision; the engine
            // withdraws the others in the same append.
            let first_open = self.policies.purposes().iter().find(|p| {
                p.gpc_opt_out
                    && p.requires_consent
                    && !recorded
                        .iter()
                        .any(|c| c.purpose == p.id && c.state == ConsentState::Withdrawn)
            });
            if let Some(purpose) = first_open {
                let choice = ConsentChoice {
                    purpose: purpose.id.to_string(),
                    granted: false,
                };
                let decision = self.privacy_center_decision(tenant, subject, &choice, browser)?;
                turned_off = decision.turned_off_by_gpc;
            }
        }
        Ok(json!({
            "result": "consent_ready",
            "what": "consent_management",
            "manage_until": manage_until,
            "gpc_withdrawn": turned_off,
        }))
    }

    /// The subject of a consent request whose session is open, or `None` for a person the shop
    /// does not know; refuses other request types and ended sessions.
    fn consent_session(
        &self,
        tenant: &TenantId,
        request_id: &str,
        token: &str,
    ) -> Result<(Option<SubjectId>, Timestamp), EngineError> {
        let (id, record) = self.dsr_authorized(tenant, request_id, token)?;
        if record.kind != DsrType::Consent || record.status != DsrStatus::Completed {
            return Err(EngineError::Conflict {
                field: "/type".to_owned(),
                message: "only a verified consent request manages consent".to_owned(),
            });
        }
        let manage_until = record
            .outcome
            .as_ref()
            .and_then(|o| o.get("manage_until"))
            .and_then(Value::as_str)
            .and_then(Timestamp::parse_rfc3339)
            // A person the shop does not know has no session end recorded: the same window.
            .or_else(|| {
                record
                    .completed_at
                    .map(|t| minutes(t, CONSENT_SESSION_MINUTES))
            })
            .ok_or(EngineError::Corrupt("data-subject request"))?;
        if self.clock.now() >= manage_until {
            return Err(EngineError::Conflict {
                field: "/request_id".to_owned(),
                message: "this consent session has ended; send a new request for a new code"
                    .to_owned(),
            });
        }
        let private = self.open_private(tenant, &id, &record)?;
        Ok((private.subject, manage_until))
    }

    /// The consent-based purposes with the person's current decision, for the holder of a
    /// consent request's token.
    pub fn dsr_consents(
        &self,
        tenant: &TenantId,
        request_id: &str,
        token: &str,
        browser: &BrowserContext,
    ) -> Result<PrivacyCenterConsents, EngineError> {
        let (subject, manage_until) = self.consent_session(tenant, request_id, token)?;
        let Some(subject) = subject else {
            return Ok(PrivacyCenterConsents {
                request_id: request_id.to_owned(),
                result: "no_data_held",
                manage_until,
                gpc_signal: browser.gpc,
                purposes: Vec::new(),
            });
        };
        let pseudonym = self.keys(tenant)?.pseudonym(subject);
        let ledger = self.ledger(tenant)?;
        let recorded = self.store.consents(tenant, &pseudonym)?;
        let now = self.clock.now();
        let mut purposes = Vec::new();
        for p in self
            .policies
            .purposes()
            .iter()
            .filter(|p| p.requires_consent)
        {
            let current = recorded.iter().find(|c| c.purpose == p.id);
            let state = match current {
                None => "not_set",
                Some(c) if c.state == ConsentState::Withdrawn => "withdrawn",
                Some(c) if self.is_expired(&p.id, c.since, now) => "expired",
                Some(_) => "granted",
            };
            let by_gpc = match current {
                Some(c) if c.state == ConsentState::Withdrawn => {
                    LedgerEntry::decode(&ledger.log.entry(c.seq)?)?.source.gpc == Some(true)
                }
                _ => false,
            };
            purposes.push(PrivacyCenterPurpose {
                purpose: p.id.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                lawful_basis: p.lawful_basis,
                sale_or_share: p.gpc_opt_out,
                state,
                since: current.map(|c| c.since),
                seq: current.map(|c| c.seq),
                by_gpc,
                translations: p.translations.clone(),
            });
        }
        Ok(PrivacyCenterConsents {
            request_id: request_id.to_owned(),
            result: "consent_ready",
            manage_until,
            gpc_signal: browser.gpc,
            purposes,
        })
    }

    /// Records one decision for the holder of a consent request's token: a ledger entry from
    /// the privacy center (with the GPC signal, which also withdraws every sale/share purpose).
    /// A person the shop does not know gets a conflict and nothing is written.
    pub fn dsr_record_consent(
        &self,
        tenant: &TenantId,
        request_id: &str,
        token: &str,
        choice: &ConsentChoice,
        browser: &BrowserContext,
    ) -> Result<PrivacyCenterDecision, EngineError> {
        let (subject, _) = self.consent_session(tenant, request_id, token)?;
        let Some(subject) = subject else {
            return Err(EngineError::Conflict {
                field: "/purpose".to_owned(),
                message: "the shop holds no data about you: there is no consent to record"
                    .to_owned(),
            });
        };
        self.privacy_center_decision(tenant, subject, choice, browser)
    }

    fn privacy_center_decision(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        choice: &ConsentChoice,
        browser: &BrowserContext,
    ) -> Result<PrivacyCenterDecision, EngineError> {
        let input = ConsentInput {
            subject: SubjectRef::Id(subject),
            purpose: choice.purpose.clone(),
            granted: choice.granted,
            channel: Some(CHANNEL.to_owned()),
            app: Some(APP.to_owned()),
            policy_version: None,
            ip: browser.ip.clone(),
            user_agent: browser.user_agent.clone(),
            form_id: Some(FORM_ID.to_owned()),
            // Without the header the browser said nothing either way.
            gpc: browser.gpc.then_some(true),
            decision_id: None,
        };
        let outcome = self.record_consent_in(tenant, &input)?;
        let turned_off_by_gpc = if browser.gpc {
            std::iter::once(&outcome.entry)
                .chain(&outcome.gpc_withdrawals)
                .filter(|e| e.kind == "consent.withdrawn" && is_sale_or_share(self, e))
                .filter_map(|e| e.purpose.clone())
                .collect()
        } else {
            Vec::new()
        };
        Ok(PrivacyCenterDecision {
            outcome,
            turned_off_by_gpc,
        })
    }
}

fn is_sale_or_share(engine: &Engine, entry: &EntryView) -> bool {
    entry
        .purpose
        .as_ref()
        .and_then(|id| engine.policies.purpose(id))
        .is_some_and(|p| p.gpc_opt_out)
}
