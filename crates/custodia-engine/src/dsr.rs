//! Data-subject requests (GDPR Art. 12, 15–21): received from the public, proven by a one-time
//! code sent through the outbox, carried out, and answered — each transition a ledger entry.
//!
//! - **Received** (`POST /v1/dsr`): always the same answer, whether the person is known or not.
//!   The request's private part (the address it came from, its details, the subject it resolved
//!   to) is sealed under a **per-request key** kept in the key store like a subject's key, so
//!   destroying it ends the request's personal data even when the person was unknown. A random
//!   8-digit code, stored only as a keyed hash, goes to the outbox; it expires after 24 hours.
//! - **Verified**: the right code gives an access token scoped to this one request (stored as a
//!   keyed hash). Five wrong codes lock the request (rejected).
//! - **Carried out** at once after verification: access and portability make the export
//!   available; rectification applies the requested trait changes (old values are not kept);
//!   erasure erases (honouring legal holds, optionally suppressing the `userId`); restriction and
//!   objection set the subject's flags. A request for an unknown person completes as "no data
//!   held" — said only after verification.
//! - **Awaiting compliance**: a rectification with a free-text note (`details` as a string or
//!   `{"note": ...}`, with or without `traits`) is not carried out by a machine: after
//!   verification it waits in the compliance queue for a person, and nothing of it (not even its
//!   `traits`) is applied until then. The note is sealed with the rest of the private part.
//! - The deadline is received + one month (Art. 12(3)); the compliance queue shows overdue ones.
//! - **Manage my consent** (`consent`) is not a GDPR right with a deadline but the same proof of
//!   identity: it completes on verification and its token then reads and records the person's
//!   consent decisions for [`CONSENT_SESSION_MINUTES`] (see `dsr/manage_consent.rs`).

use std::collections::BTreeSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use custodia_core::{
    ApiKeyId, Operation, Personal, PurposeId, RoleName, SubjectId, TenantId, Timestamp,
};
use custodia_policy::Role;
use custodia_store::{LookupKind, WriteBatch};
use custodia_vault::{Aad, BlindField, constant_time_eq, random_array};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::erasure::{ErasureCause, ErasureOptions, FlagChange};
use crate::ledger::new_entry;
use crate::profile::open_event;
use crate::{Caller, Engine, EngineError, ReadGrant};

/// The longest free-text note of a rectification, in characters.
pub const MAX_NOTE_CHARS: usize = 2000;
/// Wrong codes before a request locks.
pub const MAX_CODE_TRIES: u8 = 5;
/// The record version from which a request lists all its ledger entries (`DsrRecord::ledger`).
const RECORD_LISTS_ITS_ENTRIES: u8 = 2;
/// How long a code is valid.
const CODE_TTL_DAYS: i64 = 1;
/// How long a closed request's private part (who asked, the details) is kept, for accountability
/// (Art. 5(2)): then its key is destroyed by the retention sweep. Its state, times and outcome
/// stay, with no personal data.
pub const REQUEST_RETENTION_DAYS: i64 = 1095;

/// What the person asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DsrType {
    /// Art. 15.
    Access,
    /// Art. 20.
    Portability,
    /// Art. 16.
    Rectification,
    /// Art. 17.
    Erasure,
    /// Art. 18.
    Restriction,
    /// Art. 21.
    Objection,
    /// "Manage my consent": not a right with a deadline; the proven person's consent decisions,
    /// recorded from the privacy center while the session lasts.
    Consent,
}

impl DsrType {
    fn parse(raw: &str) -> Option<DsrType> {
        Some(match raw {
            "access" => DsrType::Access,
            "portability" => DsrType::Portability,
            "rectification" => DsrType::Rectification,
            "erasure" => DsrType::Erasure,
            "restriction" => DsrType::Restriction,
            "objection" => DsrType::Objection,
            "consent" => DsrType::Consent,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            DsrType::Access => "access",
            DsrType::Portability => "portability",
            DsrType::Rectification => "rectification",
            DsrType::Erasure => "erasure",
            DsrType::Restriction => "restriction",
            DsrType::Objection => "objection",
            DsrType::Consent => "consent",
        }
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DsrStatus {
    /// Waiting for the one-time code.
    PendingVerification,
    /// Identity proven.
    Verified,
    /// Being carried out.
    InProgress,
    /// Verified, waiting for a person in the compliance queue (a free-text rectification).
    AwaitingCompliance,
    /// Done; see the outcome.
    Completed,
    /// Locked after wrong codes, or the code expired.
    Rejected,
}

impl DsrStatus {
    fn parse(raw: &str) -> Option<DsrStatus> {
        Some(match raw {
            "pending_verification" => DsrStatus::PendingVerification,
            "verified" => DsrStatus::Verified,
            "in_progress" => DsrStatus::InProgress,
            "awaiting_compliance" => DsrStatus::AwaitingCompliance,
            "completed" => DsrStatus::Completed,
            "rejected" => DsrStatus::Rejected,
            _ => return None,
        })
    }
}

/// A request as received, already checked.
#[derive(Debug, Clone)]
pub struct DsrInput {
    /// What is asked.
    pub kind: DsrType,
    /// The e-mail address the person gives.
    pub email: Option<Personal<String>>,
    /// Or the shop's user id.
    pub user_id: Option<Personal<String>>,
    /// Details: for rectification `{"traits": {...}, "note": "..."}` (either or both; a bare
    /// string is read as the note), for erasure `{"suppress": true}`.
    pub details: Personal<Value>,
}

impl DsrInput {
    /// Parses `{"type", "email"|"user_id", "details"?}` (`userId` is accepted for `user_id`);
    /// errors name the field.
    pub fn from_json(value: &Value) -> Result<DsrInput, EngineError> {
        let obj = value
            .as_object()
            .ok_or_else(|| EngineError::invalid("/", "must be a JSON object"))?;
        let obj = &crate::with_user_id(obj, "")?;
        if let Some(unknown) = obj
            .keys()
            .find(|k| !["type", "email", "user_id", "details"].contains(&k.as_str()))
        {
            return Err(EngineError::invalid(format!("/{unknown}"), "unknown field"));
        }
        let kind = obj
            .get("type")
            .and_then(Value::as_str)
            .and_then(DsrType::parse)
            .ok_or_else(|| {
                EngineError::invalid(
                    "/type",
                    "must be access, portability, rectification, erasure, restriction, objection or consent",
                )
            })?;
        let text = |name: &str| -> Result<Option<Personal<String>>, EngineError> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 256 => {
                    Ok(Some(Personal(s.trim().to_owned())))
                }
                Some(_) => Err(EngineError::invalid(
                    format!("/{name}"),
                    "must be a string of 1 to 256 characters",
                )),
            }
        };
        let email = text("email")?;
        let user_id = text("user_id")?;
        if email.is_some() == user_id.is_some() {
            return Err(EngineError::invalid(
                "/email",
                "give either email or user_id",
            ));
        }
        if let Some(email) = &email
            && custodia_vault::normalize_email(email.expose()).is_none()
        {
            return Err(EngineError::invalid("/email", "must be an e-mail address"));
        }
        let mut details = obj.get("details").cloned().unwrap_or(Value::Null);
        if kind == DsrType::Rectification
            && let Value::String(note) = &details
        {
            details = json!({ "note": note });
        }
        if !(details.is_null() || details.is_object()) {
            return Err(EngineError::invalid("/details", "must be an object"));
        }
        if details.to_string().len() > 16 * 1024 {
            return Err(EngineError::invalid("/details", "must be at most 16 KiB"));
        }
        if kind == DsrType::Rectification {
            check_rectification(&mut details)?;
        }
        if kind == DsrType::Consent && !details.is_null() {
            return Err(EngineError::invalid(
                "/details",
                "a consent request takes no details: the decisions are made after verification",
            ));
        }
        Ok(DsrInput {
            kind,
            email,
            user_id,
            details: Personal(details),
        })
    }

    /// A key for rate limiting per person that reveals nothing of the address or id.
    pub fn who(&self) -> String {
        let raw = match (&self.email, &self.user_id) {
            (Some(e), _) => format!(
                "email:{}",
                custodia_vault::normalize_email(e.expose()).unwrap_or_default()
            ),
            (_, Some(u)) => format!("user:{}", u.expose()),
            _ => String::new(),
        };
        hex::encode(custodia_vault::sha256(raw.as_bytes()))
    }
}

/// Checks a rectification's details: `traits` (an object) and/or `note` (a string of 1 to
/// [`MAX_NOTE_CHARS`] characters, trimmed in place). Errors name the field, never its value.
fn check_rectification(details: &mut Value) -> Result<(), EngineError> {
    let Some(obj) = details.as_object_mut() else {
        return Err(EngineError::invalid(
            "/details",
            "a rectification names the traits to change or says what is wrong: {\"traits\": {...}, \"note\": \"...\"}",
        ));
    };
    if let Some(unknown) = obj
        .keys()
        .find(|k| !["traits", "note"].contains(&k.as_str()))
    {
        return Err(EngineError::invalid(
            format!("/details/{unknown}"),
            "unknown field",
        ));
    }
    if obj.get("traits").is_some_and(|t| !t.is_object()) {
        return Err(EngineError::invalid("/details/traits", "must be an object"));
    }
    match obj.get_mut("note") {
        None => {}
        Some(Value::String(note))
            if !note.trim().is_empty() && note.trim().chars().count() <= MAX_NOTE_CHARS =>
        {
            *note = note.trim().to_owned();
        }
        Some(_) => {
            return Err(EngineError::invalid(
                "/details/note",
                format!("must be a string of 1 to {MAX_NOTE_CHARS} characters"),
            ));
        }
    }
    if !obj.contains_key("traits") && !obj.contains_key("note") {
        return Err(EngineError::invalid(
            "/details",
            "a rectification names the traits to change or says what is wrong: {\"traits\": {...}, \"note\": \"...\"}",
        ));
    }
    Ok(())
}

/// A rectification with a free-text note goes to a person: a machine cannot read what it asks.
fn needs_a_person(kind: DsrType, details: &Value) -> bool {
    kind == DsrType::Rectification && details.get("note").is_some()
}

/// A message for the outbox: where the one-time code goes.
#[derive(Debug, Clone, Serialize)]
pub struct OutboxMessage {
    /// The address (or user id) the request gave.
    pub to: Personal<String>,
    /// The request.
    pub request_id: String,
    /// The one-time code.
    pub code: Personal<String>,
    /// `dsr_verification`.
    pub kind: &'static str,
}

/// Delivers outbox messages (a directory in the embedded default, or a webhook).
pub trait Outbox: Send + Sync {
    /// Delivers one message; an error refuses the request (it changes nothing visible).
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String>;
}

/// The embedded outbox: one JSON file per message in a directory (outside the data directory),
/// standing in for an e-mail gateway.
pub struct DirOutbox(pub std::path::PathBuf);

impl Outbox for DirOutbox {
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String> {
        std::fs::create_dir_all(&self.0).map_err(|e| format!("outbox directory: {e}"))?;
        let body = json!({
            "to": message.to.expose(),
            "request_id": message.request_id,
            "code": message.code.expose(),
            "kind": message.kind,
        });
        let name = format!("{}-{}.json", message.request_id, message.kind);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, body.to_string())
            .and_then(|()| std::fs::rename(&tmp, self.0.join(&name)))
            .map_err(|e| format!("outbox file: {e}"))
    }
}

/// What the store holds of a request: times, state and keyed hashes in the clear; the private
/// part sealed under the request's own key.
#[derive(Serialize, Deserialize)]
struct DsrRecord {
    v: u8,
    kind: DsrType,
    status: DsrStatus,
    received_at: Timestamp,
    deadline: Timestamp,
    #[serde(default)]
    completed_at: Option<Timestamp>,
    code_hash: String,
    code_expires: Timestamp,
    tries: u8,
    #[serde(default)]
    token_hash: Option<String>,
    /// Base64 of the sealed [`DsrPrivate`].
    sealed: String,
    /// What was done: no personal data (categories, counts, trait names, ledger positions).
    #[serde(default)]
    outcome: Option<Value>,
    /// The positions of the request's own ledger entries, in order: its timeline. A request
    /// received before this field existed (`v` 1) lists only those appended since; its timeline
    /// is found by a scan of the ledger.
    #[serde(default)]
    ledger: Vec<u64>,
    /// Months the deadline was extended by a person (Art. 12(3): two at most).
    #[serde(default)]
    extended_months: u8,
}

/// The request's personal data, sealed.
#[derive(Serialize, Deserialize)]
struct DsrPrivate {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    details: Value,
    #[serde(default)]
    subject: Option<SubjectId>,
}

/// A request as its requester and the compliance queue see it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DsrView {
    /// The request.
    pub request_id: String,
    /// What was asked.
    #[serde(rename = "type")]
    pub kind: DsrType,
    /// Where it stands.
    pub status: DsrStatus,
    /// When it came in.
    pub received_at: Timestamp,
    /// By when it must be answered (Art. 12(3)).
    pub deadline: Timestamp,
    /// Whether the deadline passed before completion.
    pub overdue: bool,
    /// When it was completed or rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// What was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Value>,
    /// A person's decisions with their reasons (a rejection, an extension, a carrying out): for
    /// the requester and the case file; not listed in the queue.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<DsrNotice>,
}

fn parse_request_id(raw: &str) -> Result<[u8; 16], EngineError> {
    let bytes = hex::decode(raw).map_err(|_| EngineError::SubjectNotFound)?;
    bytes.try_into().map_err(|_| EngineError::SubjectNotFound)
}

/// The request's key lives in the key store under this id.
fn request_key_id(id: &[u8; 16]) -> SubjectId {
    SubjectId::from_bytes(*id)
}

const DSR_KIND: &str = "dsr";

impl Engine {
    /// Sets where one-time codes go.
    pub fn set_outbox(&self, outbox: std::sync::Arc<dyn Outbox>) {
        *self.outbox.write().unwrap_or_else(|p| p.into_inner()) = Some(outbox);
    }

    fn load_dsr(&self, tenant: &TenantId, id: &[u8; 16]) -> Result<DsrRecord, EngineError> {
        let bytes = self
            .store
            .dsr(tenant, id)?
            .ok_or(EngineError::SubjectNotFound)?;
        serde_json::from_slice(&bytes).map_err(|_| EngineError::Corrupt("data-subject request"))
    }

    fn save_dsr(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        record: &DsrRecord,
    ) -> Result<(), EngineError> {
        let bytes =
            serde_json::to_vec(record).map_err(|_| EngineError::Corrupt("data-subject request"))?;
        let mut batch = WriteBatch::new();
        batch.put_dsr(tenant, id, bytes);
        self.store.write(batch)?;
        self.store.flush()?;
        Ok(())
    }

    fn open_private(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        record: &DsrRecord,
    ) -> Result<DsrPrivate, EngineError> {
        let keys = self.keys(tenant)?;
        let key = keys.data_key(request_key_id(id))?;
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(&record.sealed)
            .map_err(|_| EngineError::Corrupt("data-subject request"))?;
        let aad = Aad {
            tenant,
            subject: request_key_id(id),
            kind: DSR_KIND,
        };
        let plain = key.open(&aad, &sealed)?;
        serde_json::from_slice(&plain).map_err(|_| EngineError::Corrupt("data-subject request"))
    }

    /// Appends one of the request's ledger entries (`evidence`: a person's reason, sealed under
    /// the request's key), then records its position in the request's timeline.
    #[allow(clippy::too_many_arguments)]
    fn dsr_entry(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        record: &mut DsrRecord,
        kind: &str,
        subject: Option<SubjectId>,
        attrs: &[(&str, String)],
        evidence: Option<Vec<u8>>,
    ) -> Result<u64, EngineError> {
        let ledger = self.ledger(tenant)?;
        let mut entry = new_entry(self.clock.now(), tenant, kind);
        if let Some(subject) = subject {
            entry.subject = Some(self.keys(tenant)?.pseudonym(subject));
        }
        entry
            .attributes
            .insert("request_id".to_owned(), hex::encode(id));
        for (k, v) in attrs {
            entry.attributes.insert((*k).to_owned(), v.clone());
        }
        entry.evidence = evidence;
        let seq = self.append_entries(tenant, &ledger, std::slice::from_ref(&entry))?;
        record.ledger.push(seq);
        self.save_dsr(tenant, id, record)?;
        Ok(seq)
    }

    /// The subject a request names, if there is exactly one (e-mail through the blind index and
    /// an exact comparison; user id through its keyed hash). The same work is done either way.
    fn resolve_requester(
        &self,
        tenant: &TenantId,
        input: &DsrInput,
    ) -> Result<Option<SubjectId>, EngineError> {
        let keys = self.keys(tenant)?;
        if let Some(user_id) = &input.user_id {
            let hash = keys.lookup_hash(LookupKind::UserId.as_str(), user_id.expose());
            return Ok(self.store.lookup(tenant, LookupKind::UserId, &hash.0)?);
        }
        let Some(norm) = input
            .email
            .as_ref()
            .and_then(|e| custodia_vault::normalize_email(e.expose()))
        else {
            return Ok(None);
        };
        let bucket = keys.blind_index(BlindField::Email, &norm);
        let mut found = Vec::new();
        for id in self.store.blind_candidates(tenant, "email", &bucket.0)? {
            let Some(record) = self.store.subject(tenant, id)? else {
                continue;
            };
            let (_, data) = self.open_profile(&keys, &record)?;
            let matches = data
                .traits
                .get("email")
                .and_then(Value::as_str)
                .and_then(custodia_vault::normalize_email)
                .is_some_and(|v| v == norm);
            if matches {
                found.push(id);
            }
        }
        Ok(if found.len() == 1 { found.pop() } else { None })
    }

    /// Receives a request (public): stores it sealed, sends the code to the outbox, records
    /// `dsr.received`. Returns the request id. The answer is the same for known and unknown
    /// people.
    pub fn dsr_submit(&self, tenant: &TenantId, input: &DsrInput) -> Result<String, EngineError> {
        let outbox = self
            .outbox
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(EngineError::Corrupt("outbox not configured"))?;
        let keys = self.keys(tenant)?;
        let subject = self.resolve_requester(tenant, input)?;
        let id: [u8; 16] = random_array()?;
        let id_hex = hex::encode(id);
        let digits: [u8; 8] = random_array()?;
        let code: String = digits.iter().map(|d| char::from(b'0' + d % 10)).collect();
        let now = self.clock.now();
        let private = DsrPrivate {
            email: input.email.as_ref().map(|e| e.expose().clone()),
            user_id: input.user_id.as_ref().map(|u| u.expose().clone()),
            details: input.details.expose().clone(),
            subject,
        };
        let _pass = self.write_pass();
        let key = keys.create_data_key(request_key_id(&id))?;
        let plain = zeroize::Zeroizing::new(
            serde_json::to_vec(&private)
                .map_err(|_| EngineError::Corrupt("data-subject request"))?,
        );
        let aad = Aad {
            tenant,
            subject: request_key_id(&id),
            kind: DSR_KIND,
        };
        let sealed = key.seal(&aad, &plain)?;
        let mut record = DsrRecord {
            v: RECORD_LISTS_ITS_ENTRIES,
            kind: input.kind,
            status: DsrStatus::PendingVerification,
            received_at: now,
            // Not a right with a one-month answer time: it is done when the code is entered.
            deadline: if input.kind == DsrType::Consent {
                now.plus_days(CODE_TTL_DAYS)
            } else {
                now.plus_one_month()
            },
            completed_at: None,
            code_hash: hex::encode(keys.lookup_hash("dsr-code", &format!("{id_hex}/{code}")).0),
            code_expires: now.plus_days(CODE_TTL_DAYS),
            tries: 0,
            token_hash: None,
            sealed: base64::engine::general_purpose::STANDARD.encode(sealed),
            outcome: None,
            ledger: Vec::new(),
            extended_months: 0,
        };
        self.save_dsr(tenant, &id, &record)?;
        let to = input
            .email
            .clone()
            .or_else(|| input.user_id.clone())
            .unwrap_or(Personal(String::new()));
        outbox
            .deliver(&OutboxMessage {
                to,
                request_id: id_hex.clone(),
                code: Personal(code),
                kind: "dsr_verification",
            })
            .map_err(|e| {
                tracing::error!(error = %e, "outbox delivery failed");
                EngineError::Corrupt("outbox delivery")
            })?;
        // The subject is not named in the ledger before the requester proved who they are.
        let deadline = record.deadline.to_string();
        self.dsr_entry(
            tenant,
            &id,
            &mut record,
            "dsr.received",
            None,
            &[
                ("type", input.kind.as_str().to_owned()),
                ("deadline", deadline),
            ],
            None,
        )?;
        Ok(id_hex)
    }

    /// Checks a one-time code. Right: the request is verified and carried out, and the access
    /// token returned. Wrong: counted; the fifth wrong code locks the request.
    pub fn dsr_verify(
        &self,
        tenant: &TenantId,
        request_id: &str,
        code: &str,
    ) -> Result<(DsrView, String), EngineError> {
        self.dsr_verify_from(tenant, request_id, code, &BrowserContext::default())
    }

    /// [`Engine::dsr_verify`] from a browser: a consent request verified by a browser that sends
    /// the Global Privacy Control signal withdraws every sale/share purpose at once, recorded as
    /// a GPC decision from the privacy center with the browser's evidence.
    pub fn dsr_verify_from(
        &self,
        tenant: &TenantId,
        request_id: &str,
        code: &str,
        browser: &BrowserContext,
    ) -> Result<(DsrView, String), EngineError> {
        let id = parse_request_id(request_id)?;
        let keys = self.keys(tenant)?;
        let mut record = self.load_dsr(tenant, &id)?;
        if record.status != DsrStatus::PendingVerification {
            return Err(EngineError::Conflict {
                field: "/code".to_owned(),
                message: "this request is no longer waiting for a code".to_owned(),
            });
        }
        let now = self.clock.now();
        if now >= record.code_expires {
            record.status = DsrStatus::Rejected;
            record.completed_at = Some(now);
            record.outcome = Some(json!({"result": "code_expired"}));
            self.save_dsr(tenant, &id, &record)?;
            self.dsr_entry(
                tenant,
                &id,
                &mut record,
                "dsr.rejected",
                None,
                &[("reason", "code_expired".to_owned())],
                None,
            )?;
            return Err(EngineError::Conflict {
                field: "/code".to_owned(),
                message: "the code expired; send the request again".to_owned(),
            });
        }
        let expected = hex::decode(&record.code_hash)
            .map_err(|_| EngineError::Corrupt("data-subject request"))?;
        let given = keys.lookup_hash("dsr-code", &format!("{request_id}/{}", code.trim()));
        if !constant_time_eq(&expected, &given.0) {
            record.tries += 1;
            let locked = record.tries >= MAX_CODE_TRIES;
            if locked {
                record.status = DsrStatus::Rejected;
                record.completed_at = Some(now);
                record.outcome = Some(json!({"result": "locked"}));
            }
            self.save_dsr(tenant, &id, &record)?;
            if locked {
                self.dsr_entry(
                    tenant,
                    &id,
                    &mut record,
                    "dsr.rejected",
                    None,
                    &[("reason", "too_many_wrong_codes".to_owned())],
                    None,
                )?;
                return Err(EngineError::Conflict {
                    field: "/code".to_owned(),
                    message: "too many wrong codes: the request is locked".to_owned(),
                });
            }
            return Err(EngineError::invalid(
                "/code",
                format!("wrong code; {} tries left", MAX_CODE_TRIES - record.tries),
            ));
        }
        let token_bytes: [u8; 32] = random_array()?;
        let token = URL_SAFE_NO_PAD.encode(token_bytes);
        record.token_hash = Some(hex::encode(
            keys.lookup_hash("dsr-token", &format!("{request_id}/{token}"))
                .0,
        ));
        record.status = DsrStatus::Verified;
        self.save_dsr(tenant, &id, &record)?;
        let private = self.open_private(tenant, &id, &record)?;
        self.dsr_entry(
            tenant,
            &id,
            &mut record,
            "dsr.verified",
            private.subject,
            &[],
            None,
        )?;
        if needs_a_person(record.kind, &private.details) {
            self.queue_for_compliance(tenant, &id, &mut record, &private)?;
        } else {
            self.carry_out(tenant, &id, &mut record, &private, browser, None)?;
        }
        Ok((self.dsr_view(&id, &record), token))
    }

    /// Leaves a verified request to a person: status `awaiting_compliance`, an outcome that says
    /// so (no personal data: whether traits were named, not which values), and a
    /// `dsr.awaiting_compliance` ledger entry.
    fn queue_for_compliance(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        record: &mut DsrRecord,
        private: &DsrPrivate,
    ) -> Result<(), EngineError> {
        record.status = DsrStatus::AwaitingCompliance;
        record.outcome = Some(json!({
            "result": "awaiting_compliance",
            "handled_by": "person",
            "has_note": true,
            "has_traits": private.details.get("traits").is_some(),
        }));
        self.save_dsr(tenant, id, record)?;
        let kind = record.kind.as_str().to_owned();
        self.dsr_entry(
            tenant,
            id,
            record,
            "dsr.awaiting_compliance",
            private.subject,
            &[("type", kind)],
            None,
        )?;
        Ok(())
    }

    /// Carries out a verified request and records `dsr.completed` (with who decided and their
    /// sealed reason when a person did).
    fn carry_out(
        &self,
        tenant: &TenantId,
        id: &[u8; 16],
        record: &mut DsrRecord,
        private: &DsrPrivate,
        browser: &BrowserContext,
        by: Option<decide::ByPerson>,
    ) -> Result<(), EngineError> {
        record.status = DsrStatus::InProgress;
        self.save_dsr(tenant, id, record)?;
        let request_id = hex::encode(id);
        let outcome = match private.subject {
            // Said only now, after verification: nothing is held about this person.
            None => json!({"result": "no_data_held"}),
            Some(subject) => match record.kind {
                DsrType::Access | DsrType::Portability => json!({"result": "export_ready"}),
                DsrType::Rectification => {
                    let changes = private
                        .details
                        .get("traits")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    let changed = self.rectify(tenant, subject, &changes)?;
                    json!({"result": "rectified", "changed_traits": changed})
                }
                DsrType::Erasure => {
                    let suppress = private
                        .details
                        .get("suppress")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    let options = ErasureOptions {
                        suppress,
                        request_id: Some(request_id.clone()),
                    };
                    match self.erase_as_system(tenant, subject, ErasureCause::Request, &options) {
                        Ok(outcome) => json!({"result": "erased", "erasure": outcome}),
                        Err(EngineError::LegalHold) => {
                            json!({"result": "refused", "reason": "legal_hold"})
                        }
                        Err(e) => return Err(e),
                    }
                }
                DsrType::Restriction => {
                    self.change_flags_as_system(
                        tenant,
                        subject,
                        FlagChange::Restrict,
                        Some(&request_id),
                    )?;
                    json!({"result": "restricted"})
                }
                DsrType::Objection => {
                    self.change_flags_as_system(
                        tenant,
                        subject,
                        FlagChange::Object,
                        Some(&request_id),
                    )?;
                    json!({"result": "objection_recorded"})
                }
                DsrType::Consent => self.open_consent_session(tenant, subject, browser)?,
            },
        };
        let mut outcome = outcome;
        if by.is_some() {
            outcome["handled_by"] = json!("person");
        }
        let now = self.clock.now();
        record.status = DsrStatus::Completed;
        record.completed_at = Some(now);
        let result = outcome["result"].as_str().unwrap_or_default().to_owned();
        record.outcome = Some(outcome);
        self.save_dsr(tenant, id, record)?;
        let subject = private.subject.filter(|_| record.kind != DsrType::Erasure);
        let mut attrs = vec![
            ("type", record.kind.as_str().to_owned()),
            ("result", result),
        ];
        let evidence = by.map(|by| {
            attrs.push(("decided_by", by.key_id));
            by.evidence
        });
        self.dsr_entry(
            tenant,
            id,
            record,
            "dsr.completed",
            subject,
            &attrs,
            evidence,
        )?;
        Ok(())
    }

    /// Applies rectified traits (a `null` removes one); returns the names changed.
    fn rectify(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        changes: &Map<String, Value>,
    ) -> Result<Vec<String>, EngineError> {
        let keys = self.keys(tenant)?;
        {
            let _guard = self.lock_writes();
            let record = self.subject_record(tenant, subject)?;
            let (key, mut data) = self.open_profile(&keys, &record)?;
            let now = self.clock.now();
            data.apply(changes, now);
            self.write_profile(&keys, &key, &record, &data, now)?;
        }
        self.store.flush()?;
        Ok(changes
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect())
    }

    fn dsr_view(&self, id: &[u8; 16], record: &DsrRecord) -> DsrView {
        let now = self.clock.now();
        let done = record.completed_at.unwrap_or(now);
        DsrView {
            request_id: hex::encode(id),
            kind: record.kind,
            status: record.status,
            received_at: record.received_at,
            deadline: record.deadline,
            // A consent request has no answer time to miss: an abandoned one is not overdue.
            overdue: record.kind != DsrType::Consent && done > record.deadline,
            completed_at: record.completed_at,
            outcome: record.outcome.clone(),
            notices: Vec::new(),
        }
    }

    /// Checks the access token of a request.
    fn dsr_authorized(
        &self,
        tenant: &TenantId,
        request_id: &str,
        token: &str,
    ) -> Result<([u8; 16], DsrRecord), EngineError> {
        let id = parse_request_id(request_id).map_err(|_| EngineError::Unauthenticated)?;
        let record = self
            .load_dsr(tenant, &id)
            .map_err(|_| EngineError::Unauthenticated)?;
        let keys = self.keys(tenant)?;
        let given = keys.lookup_hash("dsr-token", &format!("{request_id}/{token}"));
        let ok = record
            .token_hash
            .as_deref()
            .and_then(|h| hex::decode(h).ok())
            .is_some_and(|expected| constant_time_eq(&expected, &given.0));
        if !ok {
            return Err(EngineError::Unauthenticated);
        }
        Ok((id, record))
    }

    /// A request's state, for the holder of its access token.
    pub fn dsr_status(
        &self,
        tenant: &TenantId,
        request_id: &str,
        token: &str,
    ) -> Result<DsrView, EngineError> {
        let (id, record) = self.dsr_authorized(tenant, request_id, token)?;
        self.dsr_view_with_notices(tenant, &id, &record)
    }

    /// The access / portability export (Art. 15(1)(a)–(h), Art. 20): the data, what it is used
    /// for, by whom, how long, where it came from, the rights, and the consent history with
    /// inclusion proofs and a signed checkpoint. An access-log entry like any read.
    pub fn dsr_export(
        &self,
        tenant: &TenantId,
        request_id: &str,
        token: &str,
    ) -> Result<DsrExport, EngineError> {
        let (id, record) = self.dsr_authorized(tenant, request_id, token)?;
        if !matches!(record.kind, DsrType::Access | DsrType::Portability)
            || record.status != DsrStatus::Completed
        {
            return Err(EngineError::Conflict {
                field: "/type".to_owned(),
                message: "only a completed access or portability request has an export".to_owned(),
            });
        }
        let private = self.open_private(tenant, &id, &record)?;
        let Some(subject) = private.subject else {
            return Ok(DsrExport::NoDataHeld(NoDataHeld {
                request_id: request_id.to_owned(),
                result: "no_data_held",
            }));
        };
        let keys = self.keys(tenant)?;
        let subject_record = self.subject_record(tenant, subject)?;
        let (key, data) = self.open_profile(&keys, &subject_record)?;
        let mut events = Vec::new();
        self.for_each_event(tenant, subject, |event| {
            events.push(serde_json::to_value(open_event(&key, event)?).unwrap_or(Value::Null));
            Ok(())
        })?;
        let history = self.consent_history_of(tenant, subject)?;
        let policies = &self.policies;
        let purposes = policies
            .purposes()
            .iter()
            .map(|p| ExportPurpose {
                id: p.id.clone(),
                name: p.name.clone(),
                description: p.description.clone(),
                lawful_basis: p.lawful_basis,
                categories: p.categories.clone(),
                recipients: p.recipients.clone(),
                retention_days: policies.retention_days(p),
                translations: p.translations.clone(),
            })
            .collect();
        let categories = policies
            .categories()
            .iter()
            .map(|c| ExportCategory {
                id: c.id.clone(),
                name: c.name.clone(),
                description: c.description.clone(),
                retention_days: c.retention_days,
                legal_hold: c.legal_hold.clone(),
                translations: c.translations.clone(),
            })
            .collect();
        let recipients: BTreeSet<String> = policies
            .purposes()
            .iter()
            .flat_map(|p| p.recipients.iter().cloned())
            .collect();
        // In the access log before the data leaves, as the subject's own read.
        let grant = ReadGrant::for_data_subject(tenant.clone(), self.export_purpose()?)?;
        self.record_access(&grant, "dsr_export", &[subject], None)?;
        let controller = policies.controller();
        Ok(DsrExport::Bundle(Box::new(ExportBundle {
            request_id: request_id.to_owned(),
            kind: record.kind,
            generated_at: self.clock.now(),
            controller: ExportController {
                name: controller.name.clone(),
                contact: controller.contact.clone(),
            },
            data: ExportData {
                subject_id: subject,
                user_id: data.user_id,
                anonymous_ids: data.anonymous_ids,
                traits: data.traits,
                created_at: subject_record.created_at,
                updated_at: subject_record.updated_at,
                events,
            },
            purposes,
            categories,
            recipients,
            retention: "per category and purpose: see retention_days in categories and purposes",
            source: EXPORT_SOURCE,
            automated_decision_making: EXPORT_AUTOMATED_DECISIONS,
            rights: policies.rights().to_vec(),
            rights_translations: policies.rights_translations().clone(),
            supervisory_authority: ExportAuthority {
                name: controller.supervisory_authority.clone(),
                url: controller.supervisory_authority_url.clone(),
            },
            consent_history: ExportConsentHistory {
                entries: history.entries,
                checkpoint: history.checkpoint,
                public_key: self.ledger(tenant)?.signer.verifier_key().to_string(),
            },
        })))
    }

    /// The purpose an export is logged under: `customer_support` (contract) serves the request.
    fn export_purpose(&self) -> Result<custodia_policy::Purpose, EngineError> {
        let id: PurposeId = "customer_support"
            .parse()
            .map_err(|_| EngineError::UnknownPurpose)?;
        self.policies
            .purpose(&id)
            .cloned()
            .ok_or(EngineError::UnknownPurpose)
    }

    /// Destroys the keys of closed requests older than [`REQUEST_RETENTION_DAYS`] (and of
    /// unverified ones whose code expired that long ago) and drops their sealed part; returns how
    /// many. Called by the retention sweep.
    pub(crate) fn expire_requests(
        &self,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<u64, EngineError> {
        let keys = self.keys(tenant)?;
        let mut expired = 0;
        for (id, bytes) in self.store.dsrs(tenant)? {
            let mut record: DsrRecord = serde_json::from_slice(&bytes)
                .map_err(|_| EngineError::Corrupt("data-subject request"))?;
            if record.sealed.is_empty() {
                continue;
            }
            let closed_at = record.completed_at.unwrap_or(record.code_expires);
            let open = matches!(
                record.status,
                DsrStatus::Verified | DsrStatus::InProgress | DsrStatus::AwaitingCompliance
            );
            if open || closed_at.plus_days(REQUEST_RETENTION_DAYS) > now {
                continue;
            }
            let _pass = self.write_pass();
            keys.destroy_data_key(request_key_id(&id))?;
            record.sealed = String::new();
            record.token_hash = None;
            self.save_dsr(tenant, &id, &record)?;
            expired += 1;
        }
        Ok(expired)
    }

    /// The compliance queue: every request, optionally by status or only overdue ones.
    pub fn dsr_queue(
        &self,
        caller: &Caller,
        status: Option<&str>,
        overdue_only: bool,
    ) -> Result<Vec<DsrView>, EngineError> {
        caller.require(Operation::DsrQueue)?;
        let status = match status {
            Some(raw) => Some(DsrStatus::parse(raw).ok_or_else(|| {
                EngineError::invalid(
                    "status",
                    "must be pending_verification, verified, in_progress, awaiting_compliance, completed or rejected",
                )
            })?),
            None => None,
        };
        let mut views = Vec::new();
        for (id, bytes) in self.store.dsrs(&caller.tenant)? {
            let record: DsrRecord = serde_json::from_slice(&bytes)
                .map_err(|_| EngineError::Corrupt("data-subject request"))?;
            let view = self.dsr_view(&id, &record);
            if status.is_some_and(|s| s != view.status) || (overdue_only && !view.overdue) {
                continue;
            }
            views.push(view);
        }
        views.sort_by_key(|v| v.deadline);
        Ok(views)
    }
}

impl ReadGrant {
    /// The grant a data subject's own export is logged under (role `data_subject`).
    pub(crate) fn for_data_subject(
        tenant: TenantId,
        purpose: custodia_policy::Purpose,
    ) -> Result<ReadGrant, EngineError> {
        let name: RoleName = "data_subject"
            .parse()
            .map_err(|_| EngineError::Corrupt("role name"))?;
        let role = Role {
            name,
            description: "the person the data is about".to_owned(),
            operations: [Operation::ReadProfile].into_iter().collect(),
            purposes: [purpose.id.clone()].into_iter().collect(),
        };
        Ok(ReadGrant::new(
            tenant,
            ApiKeyId::from_random([0; 8]),
            role,
            Operation::ReadProfile,
            purpose,
        ))
    }
}

/// Where an export says the data comes from (GDPR Art. 15(1)(g)); the privacy center shows the
/// same sentence from its catalogue, in the reader's language (a test compares the English).
pub const EXPORT_SOURCE: &str = "Collected from you by the shop (its website and apps send your profile and events); consent decisions as recorded with their channel and app.";
/// What an export says about automated decisions (GDPR Art. 15(1)(h)); likewise.
pub const EXPORT_AUTOMATED_DECISIONS: &str = "None: no decision with legal or similarly significant effect is made about you by automated means (GDPR Art. 22).";

mod decide;
pub use decide::{
    DsrAction, DsrCase, DsrDecision, DsrNotice, DsrRequester, MAX_EXTENSION_MONTHS,
    MAX_REASON_CHARS, NoticeKind, TimelineEntry,
};
mod export;
pub use export::{
    DsrExport, ExportAuthority, ExportBundle, ExportCategory, ExportConsentHistory,
    ExportController, ExportData, ExportPurpose, NoDataHeld,
};
mod manage_consent;
pub use manage_consent::{
    BrowserContext, CONSENT_SESSION_MINUTES, ConsentChoice, PrivacyCenterConsents,
    PrivacyCenterDecision, PrivacyCenterPurpose,
};

#[cfg(test)]
mod decide_tests;
#[cfg(test)]
mod tests;
