//! Consent decisions: recording them in the ledger (`POST /v1/consents`), the current state per
//! purpose, the history with inclusion proofs, and the ledger's read API for compliance.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use custodia_core::{
    LawfulBasis, Operation, Personal, Pseudonym, PurposeId, SubjectId, TenantId, Timestamp,
};
use custodia_ledger::{LedgerEntry, Source, merkle};
use custodia_store::{ConsentState, LookupKind};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::decision::ConsentStatus;
use crate::profile::seal_json;
use std::sync::Arc;

use crate::ledger::TenantLedger;
use crate::{Caller, Engine, EngineError};

/// Longest accepted source label (channel, app, form id).
const MAX_LABEL_LEN: usize = 64;
/// Longest accepted piece of evidence (IP address, user agent).
const MAX_EVIDENCE_LEN: usize = 1_024;
/// Most entries in one page of `GET /v1/ledger/entries`.
pub const MAX_ENTRY_PAGE: usize = 1_000;

/// Who a consent decision is about.
#[derive(Debug, Clone)]
pub enum SubjectRef {
    /// By subject id.
    Id(SubjectId),
    /// By the app's user id.
    UserId(Personal<String>),
}

/// A consent decision as a client sends it.
#[derive(Debug, Clone)]
pub struct ConsentInput {
    /// Who decided.
    pub subject: SubjectRef,
    /// For which purpose (raw, checked against the policies).
    pub purpose: String,
    /// Granted (`true`) or withdrawn.
    pub granted: bool,
    /// Where the decision was made (non-personal labels).
    pub channel: Option<String>,
    /// Which app recorded it.
    pub app: Option<String>,
    /// The policy version the person saw (label or hash); must be the one in force.
    pub policy_version: Option<String>,
    /// The person's IP address, if the app sends it: personal, sealed under the subject's key.
    pub ip: Option<Personal<String>>,
    /// The person's user agent: personal, sealed.
    pub user_agent: Option<Personal<String>>,
    /// The id of the form wording shown (non-personal).
    pub form_id: Option<String>,
    /// The Global Privacy Control signal, if the app saw one.
    pub gpc: Option<bool>,
    /// A client-chosen id of this decision: a retry with the same id records nothing twice.
    /// Kept only as a keyed hash.
    pub decision_id: Option<Personal<String>>,
}

fn label(
    obj: &Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<Option<String>, EngineError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if (1..=MAX_LABEL_LEN).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(EngineError::invalid(
            format!("{prefix}/{name}"),
            format!(
                "must be a label of 1 to {MAX_LABEL_LEN} letters, digits, '_', '.', ':' or '-'"
            ),
        )),
    }
}

fn evidence_text(
    obj: &Map<String, Value>,
    name: &str,
) -> Result<Option<Personal<String>>, EngineError> {
    match obj.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if s.len() <= MAX_EVIDENCE_LEN && !s.chars().any(char::is_control) =>
        {
            Ok(Some(Personal(s.clone())))
        }
        Some(_) => Err(EngineError::invalid(
            format!("/evidence/{name}"),
            format!("must be a string of at most {MAX_EVIDENCE_LEN} bytes"),
        )),
    }
}

fn unknown(obj: &Map<String, Value>, prefix: &str, allowed: &[&str]) -> Result<(), EngineError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(EngineError::invalid(
            format!("{prefix}/{}", crate::input::pointer_escape(k)),
            "unknown field",
        )),
        None => Ok(()),
    }
}

impl ConsentInput {
    /// Parses a `POST /v1/consents` body.
    pub fn from_json(value: &Value) -> Result<ConsentInput, EngineError> {
        let obj = value
            .as_object()
            .ok_or_else(|| EngineError::invalid("/", "must be a JSON object"))?;
        let obj = &crate::with_user_id(obj, "")?;
        unknown(
            obj,
            "",
            &[
                "subject_id",
                "user_id",
                "purpose",
                "decision",
                "source",
                "policy_version",
                "evidence",
                "gpc",
                "decision_id",
            ],
        )?;
        let subject = match (obj.get("subject_id"), obj.get("user_id")) {
            (Some(Value::String(id)), None) => SubjectRef::Id(
                id.parse()
                    .map_err(|_| EngineError::invalid("/subject_id", "must be a subject id"))?,
            ),
            (None, Some(Value::String(u)))
                if !u.is_empty() && u.len() <= crate::input::MAX_ID_LEN =>
            {
                SubjectRef::UserId(Personal(u.clone()))
            }
            (Some(_), Some(_)) => {
                return Err(EngineError::invalid(
                    "/subject_id",
                    "give subject_id or user_id, not both",
                ));
            }
            (None, None) => {
                return Err(EngineError::invalid(
                    "/subject_id",
                    "subject_id or user_id is required",
                ));
            }
            (Some(_), None) => {
                return Err(EngineError::invalid("/subject_id", "must be a subject id"));
            }
            (None, Some(_)) => {
                return Err(EngineError::invalid(
                    "/user_id",
                    "must be a non-empty string",
                ));
            }
        };
        let purpose = match obj.get("purpose") {
            Some(Value::String(p)) => p.clone(),
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
        let (channel, app) = match obj.get("source") {
            None | Some(Value::Null) => (None, None),
            Some(Value::Object(source)) => {
                unknown(source, "/source", &["channel", "app"])?;
                (
                    label(source, "channel", "/source")?,
                    label(source, "app", "/source")?,
                )
            }
            Some(_) => return Err(EngineError::invalid("/source", "must be a JSON object")),
        };
        let policy_version = match obj.get("policy_version") {
            None | Some(Value::Null) => None,
            Some(Value::String(v)) if v.len() <= 128 => Some(v.clone()),
            Some(_) => return Err(EngineError::invalid("/policy_version", "must be a string")),
        };
        let (ip, user_agent, form_id) = match obj.get("evidence") {
            None | Some(Value::Null) => (None, None, None),
            Some(Value::Object(evidence)) => {
                unknown(evidence, "/evidence", &["ip", "user_agent", "form_id"])?;
                (
                    evidence_text(evidence, "ip")?,
                    evidence_text(evidence, "user_agent")?,
                    label(evidence, "form_id", "/evidence")?,
                )
            }
            Some(_) => return Err(EngineError::invalid("/evidence", "must be a JSON object")),
        };
        let gpc = match obj.get("gpc") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(_) => return Err(EngineError::invalid("/gpc", "must be true or false")),
        };
        Ok(ConsentInput {
            subject,
            purpose,
            granted,
            channel,
            app,
            policy_version,
            ip,
            user_agent,
            form_id,
            gpc,
            decision_id: decision_id(obj)?,
        })
    }
}

/// Longest accepted `decision_id`, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

fn decision_id(obj: &Map<String, Value>) -> Result<Option<Personal<String>>, EngineError> {
    match obj.get("decision_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= MAX_IDEMPOTENCY_KEY_LEN
                && !s.chars().any(char::is_control) =>
        {
            Ok(Some(Personal(s.clone())))
        }
        Some(_) => Err(EngineError::invalid(
            "/decision_id",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} bytes without control characters"),
        )),
    }
}

/// A ledger entry as shown by the API: its position, its hash and its decoded, non-personal
/// fields (evidence stays sealed; only whether there is some is shown).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntryView {
    /// Leaf index in the Merkle tree.
    pub seq: u64,
    /// RFC 9162 leaf hash, hex.
    pub leaf_hash: String,
    /// When it was recorded.
    pub time: Timestamp,
    /// `consent.granted`, `consent.withdrawn`, `policy.published`, ...
    pub kind: String,
    /// The subject's pseudonym, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<Pseudonym>,
    /// The purpose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<PurposeId>,
    /// The purpose's lawful basis.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lawful_basis: Option<LawfulBasis>,
    /// SHA-256 of the policy text in force, hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_hash: Option<String>,
    /// Channel, app and GPC signal.
    pub source: Value,
    /// Kind-specific attributes (form id, policy version label, ...).
    pub attributes: Value,
    /// Whether sealed evidence (IP, user agent) is attached.
    pub evidence: bool,
    /// The canonical entry bytes, base64: what the leaf hash covers.
    pub bytes_b64: String,
}

/// A log's name, when its latest checkpoint was signed, and its witness directory's newest copy.
#[derive(Debug, Clone)]
pub struct LogWitnessing {
    /// The log's name, as its checkpoints carry it.
    pub origin: String,
    /// When its latest checkpoint was signed (`None`: none yet).
    pub checkpoint_at: Option<Timestamp>,
    /// `None`: no witness directory; `Some(None)`: none copied yet; else tree size and time.
    pub dir_copy: Option<Option<(u64, Timestamp)>>,
}

fn timestamp_of(at: std::time::SystemTime) -> Timestamp {
    let micros = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_unix_micros(micros)
}

impl EntryView {
    /// The view of an entry's canonical bytes, as the API shows it: what an offline verifier
    /// compares a saved entry against (`custodia ledger verify-proof`).
    pub fn from_bytes(seq: u64, bytes: &[u8]) -> Result<EntryView, custodia_ledger::LedgerError> {
        Ok(EntryView::new(seq, bytes, &LedgerEntry::decode(bytes)?))
    }

    pub(crate) fn new(seq: u64, bytes: &[u8], entry: &LedgerEntry) -> EntryView {
        EntryView {
            seq,
            leaf_hash: hex::encode(merkle::leaf_hash(bytes)),
            time: entry.time,
            kind: entry.kind.clone(),
            subject: entry.subject,
            purpose: entry.purpose.clone(),
            lawful_basis: entry.lawful_basis,
            policy_hash: entry.policy_hash.map(hex::encode),
            source: json!({"channel": entry.source.channel, "app": entry.source.app, "gpc": entry.source.gpc}),
            attributes: json!(entry.attributes),
            evidence: entry.evidence.is_some(),
            bytes_b64: STANDARD.encode(bytes),
        }
    }
}

/// The answer to a recorded decision.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentOutcome {
    /// The decision's entry.
    pub entry: EntryView,
    /// Withdrawals the Global Privacy Control signal caused for sale/share purposes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gpc_withdrawals: Vec<EntryView>,
}

/// Which of a tenant's tamper-evident logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    /// The consent ledger (`DATA/ledger/`), read with the `ledger` operation.
    Consent,
    /// The access log (`DATA/audit/`), read with the `audit` operation.
    Access,
}

/// One purpose's current consent for a subject.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PurposeConsent {
    /// The purpose.
    pub purpose: PurposeId,
    /// `granted`, `withdrawn`, `not_set` or `expired`.
    pub state: &'static str,
    /// Whether the purpose rests on consent at all.
    pub requires_consent: bool,
    /// The purpose's lawful basis.
    pub lawful_basis: LawfulBasis,
    /// When the current decision was made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// Its ledger entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
}

/// An entry with its inclusion proof in the checkpoint's tree.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: EntryView,
    /// The RFC 9162 inclusion proof against the checkpoint.
    pub inclusion_proof: ProofPath,
}

/// An RFC 9162 inclusion proof of an entry in the tree of `tree_size` entries.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProofPath {
    /// The size of the tree the proof leads to.
    pub tree_size: u64,
    /// The proof's hashes, hex, leaf to root.
    pub hashes: Vec<String>,
}

/// A log's verifier key, as `GET /v1/ledger/public-key` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LogPublicKey {
    /// The key in the note verifier-key format (`name+key_id+base64`).
    pub verifier_key: String,
    /// The key's name (the log's origin).
    pub name: String,
    /// The key id, hex.
    pub key_id: String,
    /// The raw Ed25519 public key, hex.
    pub public_key_hex: String,
    /// Always `ed25519`.
    pub algorithm: &'static str,
}

/// An RFC 9162 inclusion proof as `GET /v1/ledger/proof/inclusion` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    /// The entry.
    pub seq: u64,
    /// The size of the tree the proof leads to.
    pub tree_size: u64,
    /// The entry's leaf hash, hex.
    pub leaf_hash: String,
    /// The proof's hashes, hex, leaf to root.
    pub hashes: Vec<String>,
}

/// An RFC 9162 consistency proof as `GET /v1/ledger/proof/consistency` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    /// The older tree size.
    pub from: u64,
    /// The newer tree size.
    pub to: u64,
    /// The older tree's root hash, hex.
    pub from_root: String,
    /// The newer tree's root hash, hex.
    pub to_root: String,
    /// The proof's hashes, hex.
    pub hashes: Vec<String>,
}

/// A subject's consent history, provable offline against the checkpoint.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentHistory {
    /// Every ledger entry about the subject, oldest first.
    pub entries: Vec<ProvenEntry>,
    /// The signed checkpoint (C2SP tlog-checkpoint note) the proofs lead to.
    pub checkpoint: String,
}

impl Engine {
    /// The subject a consent names (it must exist), with its tenant's pseudonym for it.
    fn consent_subject(
        &self,
        tenant: &TenantId,
        subject: &SubjectRef,
    ) -> Result<(SubjectId, Pseudonym), EngineError> {
        let keys = self.keys(tenant)?;
        let id = match subject {
            SubjectRef::Id(id) => *id,
            SubjectRef::UserId(user_id) => {
                let hash = keys.lookup_hash(LookupKind::UserId.as_str(), user_id.expose());
                self.store
                    .lookup(tenant, LookupKind::UserId, &hash.0)?
                    .ok_or(EngineError::SubjectNotFound)?
            }
        };
        self.subject_record(tenant, id)?;
        Ok((id, keys.pseudonym(id)))
    }

    /// Records a consent decision (and, with a Global Privacy Control signal, the withdrawal of
    /// every sale/share purpose) in the ledger; durable when it returns.
    pub fn record_consent(
        &self,
        caller: &Caller,
        input: &ConsentInput,
    ) -> Result<ConsentOutcome, EngineError> {
        caller.require(Operation::ConsentWrite)?;
        self.record_consent_in(&caller.tenant, input)
    }

    /// Records a decision once: a decision with a `decision_id` already recorded within the
    /// idempotency window is answered with the original entry and not appended again (an
    /// `Idempotency-Key` header is the HTTP layer's, as on every write). Answers the outcome and
    /// whether it is a repeat.
    pub fn record_consent_once(
        &self,
        caller: &Caller,
        input: &ConsentInput,
    ) -> Result<(Value, bool), EngineError> {
        caller.require(Operation::ConsentWrite)?;
        let tenant = &caller.tenant;
        let keys = self.keys(tenant)?;
        let hash = input
            .decision_id
            .as_ref()
            .map(|id| keys.lookup_hash("consent_decision_id", id.expose()).0);
        let to_value =
            |o: &ConsentOutcome| serde_json::to_value(o).map_err(|_| EngineError::Corrupt("json"));
        let Some(hash) = hash else {
            return Ok((to_value(&self.record_consent_in(tenant, input)?)?, false));
        };
        // Check and record under one lock, so two concurrent retries append one entry.
        let _once = self
            .consent_once
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, answer)) = self.store.idempotency(tenant, &hash)? {
            let original = serde_json::from_slice(&answer)
                .map_err(|_| EngineError::Corrupt("idempotency entry"))?;
            return Ok((original, true));
        }
        let outcome = to_value(&self.record_consent_in(tenant, input)?)?;
        let answer = serde_json::to_vec(&outcome).map_err(|_| EngineError::Corrupt("json"))?;
        let mut batch = custodia_store::WriteBatch::new();
        batch.put_idempotency(tenant, &hash, self.clock.now(), &answer);
        self.store.write(batch)?;
        self.store.flush()?;
        Ok((outcome, false))
    }

    /// Records a decision in `tenant`'s ledger; the caller's role was checked (or the system
    /// itself records, as the demo loader does).
    pub(crate) fn record_consent_in(
        &self,
        tenant: &TenantId,
        input: &ConsentInput,
    ) -> Result<ConsentOutcome, EngineError> {
        let purpose = self.purpose(Some(&input.purpose))?.clone();
        if !purpose.requires_consent {
            return Err(EngineError::invalid(
                "/purpose",
                format!(
                    "purpose `{}` rests on {}, not on consent",
                    purpose.id,
                    purpose.lawful_basis.as_str()
                ),
            ));
        }
        if let Some(version) = &input.policy_version
            && version != self.policies.version()
            && version != self.policy_hash()
        {
            return Err(EngineError::Conflict {
                field: "/policy_version".to_owned(),
                message: "is not the policy version in force; show the current text again"
                    .to_owned(),
            });
        }
        let gpc = input.gpc == Some(true);
        if gpc && input.granted && purpose.gpc_opt_out {
            return Err(EngineError::Conflict {
                field: "/decision".to_owned(),
                message: "a Global Privacy Control signal opts out of this purpose; it cannot be granted with it".to_owned(),
            });
        }
        let (subject_id, pseudonym) = self.consent_subject(tenant, &input.subject)?;
        // An erased subject gives no consent: gone, as after a plain erasure.
        if self.erased_with_hold(tenant, subject_id)? {
            return Err(EngineError::SubjectNotFound);
        }
        let ledger = self.ledger(tenant)?;
        let now = self.clock.now();
        let source = Source {
            channel: input.channel.clone(),
            app: input.app.clone(),
            gpc: input.gpc,
        };

        let mut entry = self.decision_entry(now, tenant, pseudonym, &purpose, input.granted);
        entry.source = source.clone();
        if let Some(form_id) = &input.form_id {
            entry
                .attributes
                .insert("form_id".to_owned(), form_id.clone());
        }
        if input.ip.is_some() || input.user_agent.is_some() {
            let evidence_id = hex::encode(custodia_vault::random_array::<8>()?);
            let key = self.keys(tenant)?.data_key(subject_id)?;
            let plain = json!({
                "ip": input.ip.as_ref().map(Personal::expose),
                "user_agent": input.user_agent.as_ref().map(Personal::expose),
            });
            entry.evidence = Some(seal_json(
                &key,
                tenant,
                subject_id,
                &format!("consent-evidence/{evidence_id}"),
                &plain,
            )?);
            entry
                .attributes
                .insert("evidence_id".to_owned(), evidence_id);
        }
        let mut entries = vec![entry];
        if gpc {
            for other in self
                .policies
                .purposes()
                .iter()
                .filter(|p| p.gpc_opt_out && p.id != purpose.id)
            {
                let current = self.store.consent(tenant, &pseudonym, &other.id)?;
                if current.is_some_and(|c| c.state == ConsentState::Withdrawn) {
                    continue;
                }
                let mut withdrawal = self.decision_entry(now, tenant, pseudonym, other, false);
                withdrawal.source = source.clone();
                withdrawal
                    .attributes
                    .insert("cause".to_owned(), "global_privacy_control".to_owned());
                entries.push(withdrawal);
            }
        }
        let first = self.append_entries(tenant, &ledger, &entries)?;
        let mut views = entries
            .iter()
            .enumerate()
            .map(|(i, e)| EntryView::new(first + i as u64, &e.encode(), e));
        let entry = views.next().ok_or(EngineError::Corrupt("ledger append"))?;
        Ok(ConsentOutcome {
            entry,
            gpc_withdrawals: views.collect(),
        })
    }

    /// The subject's current consent for every purpose of the policies.
    pub fn consent_state(
        &self,
        caller: &Caller,
        subject: SubjectId,
    ) -> Result<Vec<PurposeConsent>, EngineError> {
        caller.require(Operation::ConsentRead)?;
        let (_, pseudonym) = self.consent_subject(&caller.tenant, &SubjectRef::Id(subject))?;
        self.ledger(&caller.tenant)?;
        let recorded = self.store.consents(&caller.tenant, &pseudonym)?;
        let now = self.clock.now();
        Ok(self
            .policies
            .purposes()
            .iter()
            .map(|p| {
                let current = recorded.iter().find(|c| c.purpose == p.id);
                let state = match current {
                    None => "not_set",
                    Some(c) if c.state == ConsentState::Withdrawn => "withdrawn",
                    Some(c) if self.is_expired(&p.id, c.since, now) => "expired",
                    Some(_) => "granted",
                };
                PurposeConsent {
                    purpose: p.id.clone(),
                    state,
                    requires_consent: p.requires_consent,
                    lawful_basis: p.lawful_basis,
                    since: current.map(|c| c.since),
                    seq: current.map(|c| c.seq),
                }
            })
            .collect())
    }

    /// Every ledger entry about the subject, each with an inclusion proof against a fresh signed
    /// checkpoint, so the subject or an auditor can verify the history offline.
    pub fn consent_history(
        &self,
        caller: &Caller,
        subject: SubjectId,
    ) -> Result<ConsentHistory, EngineError> {
        caller.require(Operation::ConsentRead)?;
        self.consent_history_of(&caller.tenant, subject)
    }

    /// A subject's consent history with inclusion proofs (no caller check: for the subject's own
    /// access export).
    pub(crate) fn consent_history_of(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
    ) -> Result<ConsentHistory, EngineError> {
        let (_, pseudonym) = self.consent_subject(tenant, &SubjectRef::Id(subject))?;
        let ledger = self.ledger(tenant)?;
        // Sequence numbers first, checkpoint second: every listed entry is inside the checkpoint.
        let seqs = self.store.consent_history(tenant, &pseudonym)?;
        let checkpoint = ledger.log.checkpoint(&ledger.signer)?;
        let entries = seqs
            .into_iter()
            .filter(|seq| *seq < checkpoint.tree_size)
            .map(|seq| {
                let bytes = ledger.log.entry(seq)?;
                let entry = LedgerEntry::decode(&bytes)?;
                let hashes = ledger.log.inclusion_proof(seq, checkpoint.tree_size)?;
                Ok(ProvenEntry {
                    entry: EntryView::new(seq, &bytes, &entry),
                    inclusion_proof: ProofPath {
                        tree_size: checkpoint.tree_size,
                        hashes: hashes.iter().map(hex::encode).collect(),
                    },
                })
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        Ok(ConsentHistory {
            entries,
            checkpoint: checkpoint.to_text(),
        })
    }

    /// One of the caller's tenant's logs, if the caller's role may read it.
    fn readable_log(
        &self,
        caller: &Caller,
        kind: LogKind,
    ) -> Result<Arc<TenantLedger>, EngineError> {
        match kind {
            LogKind::Consent => {
                caller.require(Operation::Ledger)?;
                self.ledger(&caller.tenant)
            }
            LogKind::Access => {
                caller.require(Operation::Audit)?;
                self.access_log(&caller.tenant)
            }
        }
    }

    /// The access log's entries about one subject (or all), oldest first, in a time window. A scan
    /// of the log: fine for audits, not for a hot path.
    pub fn access_entries(
        &self,
        caller: &Caller,
        subject: Option<SubjectId>,
        from: Option<Timestamp>,
        to: Option<Timestamp>,
        limit: usize,
    ) -> Result<Vec<EntryView>, EngineError> {
        let ledger = self.readable_log(caller, LogKind::Access)?;
        if limit == 0 || limit > MAX_ENTRY_PAGE {
            return Err(EngineError::invalid(
                "limit",
                format!("must be from 1 to {MAX_ENTRY_PAGE}"),
            ));
        }
        let pseudonym = match subject {
            Some(id) => Some(self.keys(&caller.tenant)?.pseudonym(id)),
            None => None,
        };
        let mut found = Vec::new();
        let mut next = 0;
        let size = ledger.log.tree_size();
        while next < size && found.len() < limit {
            let page = ledger.log.entries(next, MAX_ENTRY_PAGE)?;
            if page.is_empty() {
                break;
            }
            next += page.len() as u64;
            for (seq, bytes) in page {
                let entry = LedgerEntry::decode(&bytes)?;
                let matches = pseudonym.is_none_or(|p| entry.subject == Some(p))
                    && from.is_none_or(|t| entry.time >= t)
                    && to.is_none_or(|t| entry.time <= t);
                if matches && found.len() < limit {
                    found.push(EntryView::new(seq, &bytes, &entry));
                }
            }
        }
        Ok(found)
    }

    /// The signed checkpoint of the caller's tenant's ledger (a new one if it grew).
    pub fn ledger_checkpoint(&self, caller: &Caller, kind: LogKind) -> Result<String, EngineError> {
        let ledger = self.readable_log(caller, kind)?;
        Ok(ledger.log.checkpoint(&ledger.signer)?.to_text())
    }

    /// What the console's ledger card says of the caller's tenant's log of `kind` beyond its
    /// checkpoint: its name (origin), when its latest checkpoint was signed, and the newest
    /// checkpoint copied to the witness directory, if one is set.
    pub fn log_witness_copy(
        &self,
        caller: &Caller,
        kind: LogKind,
    ) -> Result<LogWitnessing, EngineError> {
        let ledger = self.readable_log(caller, kind)?;
        let origin = ledger.signer.origin().to_owned();
        let checkpoint_at = ledger.log.latest_checkpoint_at()?.map(timestamp_of);
        let dir = match kind {
            LogKind::Consent => self.ledgers.witness_dir(),
            LogKind::Access => self.access_logs.witness_dir(),
        };
        let dir_copy = match dir {
            None => None,
            Some(dir) => Some(
                custodia_ledger::latest_witness_copy(dir, &origin)
                    .map_err(|source| EngineError::Io {
                        what: "witness directory",
                        source,
                    })?
                    .map(|(size, at)| (size, timestamp_of(at))),
            ),
        };
        Ok(LogWitnessing {
            origin,
            checkpoint_at,
            dir_copy,
        })
    }

    /// The verifier key of the caller's tenant's ledger: note format and raw hex.
    pub fn ledger_public_key(
        &self,
        caller: &Caller,
        kind: LogKind,
    ) -> Result<LogPublicKey, EngineError> {
        let key = self.readable_log(caller, kind)?.signer.verifier_key();
        Ok(LogPublicKey {
            verifier_key: key.to_string(),
            name: key.name.clone(),
            key_id: hex::encode(key.key_id),
            public_key_hex: hex::encode(key.public_key),
            algorithm: "ed25519",
        })
    }

    /// Entries `from..from+limit` of the caller's tenant's ledger.
    pub fn ledger_entries(
        &self,
        caller: &Caller,
        kind: LogKind,
        from: u64,
        limit: usize,
    ) -> Result<Vec<EntryView>, EngineError> {
        let ledger = self.readable_log(caller, kind)?;
        if limit == 0 || limit > MAX_ENTRY_PAGE {
            return Err(EngineError::invalid(
                "limit",
                format!("must be from 1 to {MAX_ENTRY_PAGE}"),
            ));
        }
        ledger
            .log
            .entries(from, limit)?
            .into_iter()
            .map(|(seq, bytes)| Ok(EntryView::new(seq, &bytes, &LedgerEntry::decode(&bytes)?)))
            .collect()
    }

    /// An inclusion proof of entry `seq` in the tree of size `tree_size` (default: the latest
    /// checkpoint's).
    pub fn ledger_inclusion_proof(
        &self,
        caller: &Caller,
        kind: LogKind,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, EngineError> {
        let ledger = self.readable_log(caller, kind)?;
        let tree_size = match tree_size {
            Some(size) => size,
            None => ledger.log.checkpoint(&ledger.signer)?.tree_size,
        };
        if seq >= tree_size || tree_size > ledger.log.tree_size() {
            return Err(EngineError::invalid(
                "seq",
                "must be an entry inside a tree size the ledger has reached",
            ));
        }
        let hashes = ledger.log.inclusion_proof(seq, tree_size)?;
        Ok(InclusionProof {
            seq,
            tree_size,
            leaf_hash: hex::encode(ledger.log.leaf_hash(seq)?),
            hashes: hashes.iter().map(hex::encode).collect(),
        })
    }

    /// A consistency proof between two tree sizes of the caller's tenant's ledger.
    pub fn ledger_consistency_proof(
        &self,
        caller: &Caller,
        kind: LogKind,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, EngineError> {
        let ledger = self.readable_log(caller, kind)?;
        if from == 0 || from > to || to > ledger.log.tree_size() {
            return Err(EngineError::invalid(
                "from",
                "need 0 < from <= to <= the ledger's size",
            ));
        }
        let hashes = ledger.log.consistency_proof(from, to)?;
        Ok(ConsistencyProof {
            from,
            to,
            from_root: hex::encode(ledger.log.root(from)?),
            to_root: hex::encode(ledger.log.root(to)?),
            hashes: hashes.iter().map(hex::encode).collect(),
        })
    }

    /// The subject's consent for a purpose as of now (an old grant may have expired).
    pub(crate) fn consent_status(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        purpose: &PurposeId,
    ) -> Result<ConsentStatus, EngineError> {
        let pseudonym = self.keys(tenant)?.pseudonym(subject);
        let now = self.clock.now();
        Ok(match self.consent_of(tenant, &pseudonym, purpose)? {
            None => ConsentStatus::NotSet,
            Some(c) if c.state == ConsentState::Withdrawn => ConsentStatus::Withdrawn,
            Some(c) if self.is_expired(purpose, c.since, now) => ConsentStatus::Expired,
            Some(_) => ConsentStatus::Granted,
        })
    }
}
