//! A person's decisions on a request — the compliance console's actions — and the request's case
//! file with its timeline.
//!
//! - **Carry out** a request that waits for a person (a rectification with a free-text note: the
//!   person enters the corrected traits, which replace the ones the requester proposed), or one
//!   left verified or in progress by a crash.
//! - **Reject** an open request (Art. 12(4)); the requester reads the reason with the request's
//!   token, next to their right to complain to the supervisory authority.
//! - **Extend** the deadline (Art. 12(3)) by one or two months — two in all — and only while the
//!   first month runs; the requester reads the reason too.
//!
//! Every decision carries a reason of 1 to [`MAX_REASON_CHARS`] characters. What a person writes
//! about a request is personal data like the request itself, so the reason is sealed under the
//! request's own key and stored as the *evidence* of the ledger entry that records the decision
//! (`dsr.completed`, `dsr.rejected` or `dsr.extended`, with `decided_by` = the API key id). It is
//! in the ledger — inside its proofs — yet neither the request record nor the ledger holds it in
//! the clear, and it becomes unreadable when the request's key is destroyed
//! ([`REQUEST_RETENTION_DAYS`](super::REQUEST_RETENTION_DAYS) after it closed).
//!
//! The **case file** (`GET /v1/dsr/{id}/case`) is the request with what the requester sent (who,
//! the note, the proposed traits) and its timeline: each of its ledger entries with its
//! inclusion proof against a fresh signed checkpoint, and the opened reasons. Opening it is a
//! read of personal data for a stated purpose (the console names `customer_support`: answering
//! the person), recorded in the access log when the request names a known customer.

use std::sync::PoisonError;

use custodia_core::{Operation, Personal, SubjectId, TenantId, Timestamp};
use custodia_ledger::LedgerEntry;
use custodia_vault::Aad;
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{
    DsrPrivate, DsrRecord, DsrStatus, DsrType, DsrView, RECORD_LISTS_ITS_ENTRIES, parse_request_id,
    request_key_id,
};
use crate::consent::{EntryView, ProofPath, ProvenEntry};
use crate::dsr::BrowserContext;
use crate::{Caller, Engine, EngineError};

/// The longest reason a person may give for a decision, in characters.
pub const MAX_REASON_CHARS: usize = 2000;
/// Art. 12(3): the deadline may be extended by two further months at most.
pub const MAX_EXTENSION_MONTHS: u8 = 2;
/// The sealing context of a reason.
const REASON_KIND: &str = "dsr-reason";

/// What a person decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsrAction {
    /// Carry the request out.
    CarryOut,
    /// Refuse it.
    Reject,
    /// Extend its deadline.
    Extend,
}

impl DsrAction {
    fn as_str(self) -> &'static str {
        match self {
            DsrAction::CarryOut => "carry_out",
            DsrAction::Reject => "reject",
            DsrAction::Extend => "extend",
        }
    }
}

/// A decision as received, already checked.
pub struct DsrDecision {
    action: DsrAction,
    reason: Personal<String>,
    traits: Option<Personal<Map<String, Value>>>,
    months: u8,
}

impl std::fmt::Debug for DsrDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DsrDecision")
            .field("action", &self.action)
            .field("months", &self.months)
            .finish_non_exhaustive()
    }
}

impl DsrDecision {
    /// Parses a decision's body: `{"reason"}` for every action, plus `"traits"` (an object) for
    /// carrying out a rectification and `"months"` (1 or 2) for an extension. Errors name the
    /// field, never its value.
    pub fn from_json(action: DsrAction, value: &Value) -> Result<DsrDecision, EngineError> {
        let obj = value
            .as_object()
            .ok_or_else(|| EngineError::invalid("/", "must be a JSON object"))?;
        let allowed: &[&str] = match action {
            DsrAction::CarryOut => &["reason", "traits"],
            DsrAction::Reject => &["reason"],
            DsrAction::Extend => &["reason", "months"],
        };
        if let Some(unknown) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(EngineError::invalid(
                format!("/{unknown}"),
                format!("unknown field for {}", action.as_str()),
            ));
        }
        let reason = match obj.get("reason") {
            Some(Value::String(text))
                if !text.trim().is_empty() && text.trim().chars().count() <= MAX_REASON_CHARS =>
            {
                Personal(text.trim().to_owned())
            }
            _ => {
                return Err(EngineError::invalid(
                    "/reason",
                    format!("must be a string of 1 to {MAX_REASON_CHARS} characters: why"),
                ));
            }
        };
        let traits = match obj.get("traits") {
            None => None,
            Some(Value::Object(traits)) if !traits.is_empty() => {
                crate::input::check_traits(traits, "/traits")?;
                Some(Personal(traits.clone()))
            }
            Some(_) => {
                return Err(EngineError::invalid(
                    "/traits",
                    "must be an object naming at least one trait (null removes one)",
                ));
            }
        };
        let months = match (action, obj.get("months")) {
            (DsrAction::Extend, Some(Value::Number(n)))
                if n.as_u64().is_some_and(|m| (1..=2).contains(&m)) =>
            {
                n.as_u64().map_or(0, |m| m as u8)
            }
            (DsrAction::Extend, _) => {
                return Err(EngineError::invalid("/months", "must be 1 or 2"));
            }
            _ => 0,
        };
        Ok(DsrDecision {
            action,
            reason,
            traits,
            months,
        })
    }
}

/// Who decided, and their reason sealed under the request's key: what a decision adds to the
/// ledger entry that records it.
pub(super) struct ByPerson {
    pub(super) key_id: String,
    pub(super) evidence: Vec<u8>,
}

/// What a person decided, as the requester reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// The request was carried out by a person.
    CarriedOut,
    /// The request was refused.
    Rejected,
    /// The deadline was extended.
    Extended,
}

/// A person's decision with its reason (Art. 12(3)–(4)).
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DsrNotice {
    /// What was decided.
    pub kind: NoticeKind,
    /// When.
    pub at: Timestamp,
    /// Why, in the words of the person who decided.
    pub reason: String,
    /// The new deadline, for an extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
}

impl std::fmt::Debug for DsrNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DsrNotice")
            .field("kind", &self.kind)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// One entry of a request's timeline, with its proof and, for a person's decision, the opened
/// reason.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TimelineEntry {
    /// The entry and its inclusion proof.
    #[serde(flatten)]
    pub proven: ProvenEntry,
    /// The reason sealed in the entry's evidence, opened with the request's key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Who sent a request, as they gave it.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DsrRequester {
    /// The e-mail address given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Or the shop's user id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The customer it resolved to, if exactly one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_id: Option<SubjectId>,
}

/// A request's case file, for the compliance queue.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DsrCase {
    /// The request, with the decisions' reasons.
    pub request: DsrView,
    /// Who asked; absent once the request's private part was destroyed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requester: Option<DsrRequester>,
    /// A rectification's free-text note.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The traits a rectification proposes.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub requested_traits: Option<Value>,
    /// Whether the private part (who asked, the details, the reasons) was destroyed after the
    /// retention period.
    pub private_part_destroyed: bool,
    /// The request's ledger entries, oldest first, each with its inclusion proof.
    pub timeline: Vec<TimelineEntry>,
    /// The signed checkpoint (C2SP tlog-checkpoint note) the proofs lead to.
    pub checkpoint: String,
    /// The ledger's verifier key (note format).
    pub public_key: String,
}

impl std::fmt::Debug for DsrCase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DsrCase")
            .field("request", &self.request)
            .field("entries", &self.timeline.len())
            .finish_non_exhaustive()
    }
}

/// The entry kinds whose evidence is a person's sealed reason, and what the requester is told.
fn notice_kind(entry: &LedgerEntry) -> Option<NoticeKind> {
    entry.attributes.get("decided_by")?;
    match entry.kind.as_str() {
        "dsr.completed" => Some(NoticeKind::CarriedOut),
        "dsr.rejected" => Some(NoticeKind::Rejected),
        "dsr.extended" => Some(NoticeKind::Extended),
        _ => None,
    }
}

fn reason_aad<'a>(tenant: &'a TenantId, id: &[u8; 16]) -> Aad<'a> {
    Aad {
        tenant,
        subject: request_key_id(id),
        kind: REASON_KIND,
    }
}

impl Engine {
    /// A person's decision on a request (compliance): carry out, reject or extend, with a
    /// sealed reason in the ledger. Returns the request as it now stands.
    pub fn dsr_decide(
        &self,
        caller: &Caller,
        request_id: &str,
        decision: &DsrDecision,
    ) -> Result<DsrView, EngineError> {
        caller.require(Operation::DsrQueue)?;
        let tenant = &caller.tenant;
        let id = parse_request_id(request_id)?;
        // One decision at a time: two people acting on one request must not both carry it out,
        // nor extend it past two months between them.
        let _one = self
            .dsr_decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut record = self.load_dsr(tenant, &id)?;
        check_decidable(&record, decision, self.clock.now())?;
        let key = self.keys(tenant)?.data_key(request_key_id(&id))?;
        let evidence = key.seal(
            &reason_aad(tenant, &id),
            decision.reason.expose().as_bytes(),
        )?;
        let by = ByPerson {
            key_id: caller.key_id.to_string(),
            evidence,
        };
        let private = self.open_private(tenant, &id, &record)?;
        match decision.action {
            DsrAction::CarryOut => {
                let private = match (record.kind, &decision.traits) {
                    (DsrType::Rectification, Some(traits)) => DsrPrivate {
                        details: json!({ "traits": traits.expose() }),
                        ..private
                    },
                    (DsrType::Rectification, None) => {
                        return Err(EngineError::invalid(
                            "/traits",
                            "carrying out a rectification needs the corrected traits",
                        ));
                    }
                    (_, Some(_)) => {
                        return Err(EngineError::invalid(
                            "/traits",
                            "only a rectification takes traits",
                        ));
                    }
                    (_, None) => private,
                };
                self.carry_out(
                    tenant,
                    &id,
                    &mut record,
                    &private,
                    &BrowserContext::default(),
                    Some(by),
                )?;
            }
            DsrAction::Reject => {
                record.status = DsrStatus::Rejected;
                record.completed_at = Some(self.clock.now());
                record.outcome = Some(json!({"result": "rejected", "handled_by": "person"}));
                self.save_dsr(tenant, &id, &record)?;
                self.dsr_entry(
                    tenant,
                    &id,
                    &mut record,
                    "dsr.rejected",
                    private.subject,
                    &[
                        ("reason", "decided_by_controller".to_owned()),
                        ("decided_by", by.key_id),
                    ],
                    Some(by.evidence),
                )?;
            }
            DsrAction::Extend => {
                for _ in 0..decision.months {
                    record.deadline = record.deadline.plus_one_month();
                }
                record.extended_months += decision.months;
                self.save_dsr(tenant, &id, &record)?;
                let deadline = record.deadline.to_string();
                self.dsr_entry(
                    tenant,
                    &id,
                    &mut record,
                    "dsr.extended",
                    private.subject,
                    &[
                        ("months", decision.months.to_string()),
                        ("deadline", deadline),
                        ("decided_by", by.key_id),
                    ],
                    Some(by.evidence),
                )?;
            }
        }
        self.dsr_view_with_notices(tenant, &id, &record)
    }

    /// The request as its requester sees it: with the reasons of a person's decisions.
    pub(super) fn dsr_view_with_notices(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        record: &DsrRecord,
    ) -> Result<DsrView, EngineError> {
        let mut view = self.dsr_view(id, record);
        view.notices = self.dsr_notices(tenant, id, record)?;
        Ok(view)
    }

    /// A request's case file (compliance), read for `purpose` like any personal data: the
    /// request, what the requester sent, and its timeline with proofs. Recorded in the access
    /// log when it names a customer.
    pub fn dsr_case(
        &self,
        caller: &Caller,
        request_id: &str,
        purpose: Option<&str>,
    ) -> Result<DsrCase, EngineError> {
        let grant = self.grant(caller, Operation::DsrQueue, purpose)?;
        let tenant = &caller.tenant;
        let id = parse_request_id(request_id)?;
        let record = self.load_dsr(tenant, &id)?;
        let private = if record.sealed.is_empty() {
            None
        } else {
            Some(self.open_private(tenant, &id, &record)?)
        };
        let ledger = self.ledger(tenant)?;
        let seqs = self.timeline_seqs(tenant, &id, &record)?;
        // Positions first, checkpoint second: every listed entry is inside the checkpoint.
        let checkpoint = ledger.log.checkpoint(&ledger.signer)?;
        let key = match &private {
            Some(_) => Some(self.keys(tenant)?.data_key(request_key_id(&id))?),
            None => None,
        };
        let mut timeline = Vec::with_capacity(seqs.len());
        let mut notices = Vec::new();
        for seq in seqs.into_iter().filter(|s| *s < checkpoint.tree_size) {
            let bytes = ledger.log.entry(seq)?;
            let entry = LedgerEntry::decode(&bytes)?;
            let hashes = ledger.log.inclusion_proof(seq, checkpoint.tree_size)?;
            let reason = match (&key, &entry.evidence, notice_kind(&entry)) {
                (Some(key), Some(sealed), Some(kind)) => {
                    let text = open_reason(key, tenant, &id, sealed)?;
                    notices.push(notice(kind, &entry, &text));
                    Some(text)
                }
                _ => None,
            };
            timeline.push(TimelineEntry {
                proven: ProvenEntry {
                    entry: EntryView::new(seq, &bytes, &entry),
                    inclusion_proof: ProofPath {
                        tree_size: checkpoint.tree_size,
                        hashes: hashes.iter().map(hex::encode).collect(),
                    },
                },
                reason,
            });
        }
        if let Some(subject) = private.as_ref().and_then(|p| p.subject) {
            self.record_access(&grant, "dsr_case", &[subject], None)?;
        }
        let mut view = self.dsr_view(&id, &record);
        view.notices = notices;
        let details = private.as_ref().map(|p| &p.details);
        Ok(DsrCase {
            request: view,
            requester: private.as_ref().map(|p| DsrRequester {
                email: p.email.clone(),
                user_id: p.user_id.clone(),
                subject_id: p.subject,
            }),
            note: details
                .and_then(|d| d.get("note"))
                .and_then(Value::as_str)
                .map(str::to_owned),
            requested_traits: details.and_then(|d| d.get("traits")).cloned(),
            private_part_destroyed: private.is_none(),
            timeline,
            checkpoint: checkpoint.to_text(),
            public_key: ledger.signer.verifier_key().to_string(),
        })
    }

    /// The reasons of a person's decisions on a request, for its requester and the queue; none
    /// once the request's key is destroyed. Every decision lists its entry in the record (also on
    /// a request older than that list), so this reads those entries and never scans the ledger:
    /// a requester's status read stays a few point reads.
    pub(super) fn dsr_notices(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        record: &DsrRecord,
    ) -> Result<Vec<DsrNotice>, EngineError> {
        if record.sealed.is_empty() {
            return Ok(Vec::new());
        }
        let ledger = self.ledger(tenant)?;
        let mut notices = Vec::new();
        let mut key = None;
        for &seq in &record.ledger {
            let entry = LedgerEntry::decode(&ledger.log.entry(seq)?)?;
            let (Some(kind), Some(sealed)) = (notice_kind(&entry), &entry.evidence) else {
                continue;
            };
            if key.is_none() {
                key = Some(self.keys(tenant)?.data_key(request_key_id(id))?);
            }
            if let Some(key) = &key {
                let text = open_reason(key, tenant, id, sealed)?;
                notices.push(notice(kind, &entry, &text));
            }
        }
        Ok(notices)
    }

    /// The positions of a request's ledger entries: recorded with the request, or — for one
    /// received before they were (`v` 1, even if it lists the entries appended since) — found by
    /// a scan of the ledger.
    fn timeline_seqs(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        record: &DsrRecord,
    ) -> Result<Vec<u64>, EngineError> {
        if record.v >= RECORD_LISTS_ITS_ENTRIES {
            return Ok(record.ledger.clone());
        }
        const PAGE: usize = 1000;
        let wanted = hex::encode(id);
        let ledger = self.ledger(tenant)?;
        let mut found = Vec::new();
        let mut from = 0;
        loop {
            let page = ledger.log.entries(from, PAGE)?;
            let Some((last, _)) = page.last() else {
                break;
            };
            from = last + 1;
            for (seq, bytes) in &page {
                let entry = LedgerEntry::decode(bytes)?;
                if entry.kind.starts_with("dsr.")
                    && entry.attributes.get("request_id") == Some(&wanted)
                {
                    found.push(*seq);
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        Ok(found)
    }
}

/// Whether `decision` may be taken on the request now; the refusal says why.
fn check_decidable(
    record: &DsrRecord,
    decision: &DsrDecision,
    now: Timestamp,
) -> Result<(), EngineError> {
    let conflict = |message: &str| EngineError::Conflict {
        field: "/status".to_owned(),
        message: message.to_owned(),
    };
    if record.kind == DsrType::Consent {
        return Err(conflict(
            "a manage-my-consent request is carried out by the person; there is nothing to decide",
        ));
    }
    match record.status {
        DsrStatus::Verified | DsrStatus::InProgress | DsrStatus::AwaitingCompliance => {}
        DsrStatus::PendingVerification => {
            return Err(conflict(
                "the requester has not proven who they are yet; an unverified request closes itself when its code expires",
            ));
        }
        DsrStatus::Completed | DsrStatus::Rejected => {
            return Err(conflict("the request is closed: nothing is left to decide"));
        }
    }
    if decision.action == DsrAction::Extend {
        if now >= record.received_at.plus_one_month() {
            return Err(conflict(
                "an extension must be decided within a month of receipt (Art. 12(3)); that month is over",
            ));
        }
        if record.extended_months + decision.months > MAX_EXTENSION_MONTHS {
            return Err(EngineError::Conflict {
                field: "/months".to_owned(),
                message: format!(
                    "the deadline may be extended by {MAX_EXTENSION_MONTHS} months in all (Art. 12(3)); {} already given",
                    record.extended_months
                ),
            });
        }
    }
    Ok(())
}

fn open_reason(
    key: &custodia_vault::DataKey,
    tenant: &TenantId,
    id: &[u8; 16],
    sealed: &[u8],
) -> Result<String, EngineError> {
    let plain = key.open(&reason_aad(tenant, id), sealed)?;
    String::from_utf8(plain.to_vec()).map_err(|_| EngineError::Corrupt("data-subject request"))
}

fn notice(kind: NoticeKind, entry: &LedgerEntry, reason: &str) -> DsrNotice {
    DsrNotice {
        kind,
        at: entry.time,
        reason: reason.to_owned(),
        deadline: entry
            .attributes
            .get("deadline")
            .filter(|_| kind == NoticeKind::Extended)
            .and_then(|d| Timestamp::parse_rfc3339(d)),
    }
}
