//! Erasure (GDPR Art. 17) and the subject-level flags: restriction (Art. 18), objection (Art. 21)
//! and legal holds.
//!
//! Erasing a subject, in this order, each step durable before the next:
//! 1. decide per event whether a legal obligation keeps it: its category names a `legal_hold`
//!    purpose and the category's retention has not ended;
//! 2. if records are kept, create the subject's hold key (a fresh key in the key store); put the
//!    subject on the tombstone list beside the key store (so a restored data backup is cleaned of
//!    it on the next start);
//! 3. in one batch: delete the profile, every look-up and blind-index entry and every event not
//!    kept; re-seal the kept events, and an empty profile, under the hold key; with `suppress`,
//!    add the keyed hash of its `userId` to the suppression list;
//! 4. destroy the subject's data key (overwritten in place in the key store). Every copy of the
//!    subject's records made before the erasure, in the store's old segments or in a backup, was
//!    sealed under it, so none opens any more. Kept records stay readable, under the hold key, only
//!    for the hold's purpose: the subject is flagged `erased_with_hold`, which restricts
//!    processing to legal obligations;
//! 5. append `erasure.completed` to the consent ledger, with counts and no personal data.
//!
//! A crash after step 2 is finished on the next start by [`Engine::replay_tombstones`]. Ledger
//! entries are never deleted: the subject's entries stay, tied to nobody once the key is gone
//! (their evidence was sealed under it).

use std::collections::BTreeMap;

use custodia_core::{Operation, PurposeId, SubjectId, TenantId, Timestamp};
use custodia_store::{EventRecord, LookupKind, SubjectFlagsRecord, SubjectRecord, WriteBatch};
use custodia_vault::{DataKey, TenantVault};
use serde::Serialize;

use crate::decision::SubjectFlags;
use crate::ledger::{kind, new_entry};
use crate::profile::{PROFILE_KIND, ProfileData, open_event, open_json, seal_json};
use crate::{Caller, Engine, EngineError};

/// Why a subject is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErasureCause {
    /// The person asked (a data-subject request, or an operator acting on one).
    Request,
    /// The retention sweep found the profile dormant past the policy's limit.
    Retention,
}

impl ErasureCause {
    fn as_str(self) -> &'static str {
        match self {
            ErasureCause::Request => "request",
            ErasureCause::Retention => "retention",
        }
    }
}

/// How to erase.
#[derive(Debug, Clone, Default)]
pub struct ErasureOptions {
    /// Refuse later identify / track calls for the subject's `userId` (`409 subject_suppressed`).
    pub suppress: bool,
    /// The data-subject request this erasure answers, recorded in the receipt.
    pub request_id: Option<String>,
}

/// Records of one data category that an erasure removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasedData {
    /// The category id.
    pub category: String,
    /// What was removed: `"profile"` or `"events"`.
    pub what: &'static str,
    /// How many records (1 for the profile).
    pub records: u64,
}

/// Records an erasure kept, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeptData {
    /// The category id.
    pub category: String,
    /// How many events.
    pub records: u64,
    /// The purpose with a legal obligation that keeps them.
    pub purpose: String,
    /// The policy's reason, quotable to the person.
    pub reason: String,
    /// When the last of them reaches the end of its retention and goes.
    pub until: Timestamp,
}

/// What an erasure would do now: `GET /v1/subjects/{subject_id}/erasure`.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasurePreview {
    /// The subject.
    pub subject_id: SubjectId,
    /// The subject is under a legal hold: the erasure would be refused until it is lifted.
    pub legal_hold: bool,
    /// What it would remove.
    pub erased: Vec<ErasedData>,
    /// What it would keep under a legal obligation, and why (empty: nothing).
    pub kept: Vec<KeptData>,
}

/// How an erasure sorts a subject's events.
#[derive(Default)]
struct ErasurePlan {
    erased: BTreeMap<String, u64>,
    kept: BTreeMap<String, (u64, Timestamp)>,
    kept_events: Vec<EventRecord>,
    deleted: Vec<custodia_core::EventId>,
}

/// What an erasure did: the answer to the person and the content of the receipt.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErasureOutcome {
    /// The subject.
    pub subject_id: SubjectId,
    /// Why.
    pub cause: ErasureCause,
    /// What was removed.
    pub erased: Vec<ErasedData>,
    /// What was kept under a legal obligation (empty: nothing is left).
    pub kept: Vec<KeptData>,
    /// Whether the subject's data key was destroyed: always, once the erasure is done. Kept
    /// records are re-sealed under a hold key of their own first.
    pub key_destroyed: bool,
    /// Whether the `userId` was put on the suppression list.
    pub suppressed: bool,
    /// The ledger sequence number of the `erasure.completed` receipt.
    pub receipt_seq: u64,
    /// When.
    pub erased_at: Timestamp,
}

/// A change to a subject's flags, each recorded in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    /// Restrict processing (Art. 18).
    Restrict,
    /// Lift a restriction.
    LiftRestriction,
    /// Record an objection to legitimate-interest processing (Art. 21).
    Object,
    /// Withdraw an objection.
    WithdrawObjection,
    /// Place a legal hold: no retention sweep or erasure touches the subject's data.
    PlaceLegalHold,
    /// Lift a legal hold.
    LiftLegalHold,
}

impl FlagChange {
    fn kind(self) -> &'static str {
        match self {
            FlagChange::Restrict => kind::RESTRICTED,
            FlagChange::LiftRestriction => kind::RESTRICTION_LIFTED,
            FlagChange::Object => kind::OBJECTED,
            FlagChange::WithdrawObjection => kind::OBJECTION_WITHDRAWN,
            FlagChange::PlaceLegalHold => kind::LEGAL_HOLD_PLACED,
            FlagChange::LiftLegalHold => kind::LEGAL_HOLD_LIFTED,
        }
    }
}

/// A subject's flags as the API shows them.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagsView {
    /// Processing restricted.
    pub restricted: bool,
    /// Objection to legitimate interests recorded.
    pub objected: bool,
    /// Under a legal hold.
    pub legal_hold: bool,
    /// Erased, with records kept for a legal obligation.
    pub erased_with_hold: bool,
    /// The ledger entry of the latest change, if any.
    pub seq: Option<u64>,
}

impl Engine {
    /// The subject's restriction and objection flags, for the access decision.
    pub(crate) fn subject_flags(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
    ) -> Result<SubjectFlags, EngineError> {
        let pseudonym = self.keys(tenant)?.pseudonym(subject);
        // Opening the ledger first replays anything the view missed.
        self.ledger(tenant)?;
        let record = self.store.subject_flags(tenant, &pseudonym)?;
        Ok(SubjectFlags {
            restricted: record.restricted,
            objected: record.objected,
        })
    }

    /// Whether the subject was erased with records kept under a legal obligation: it then exists
    /// only for the purposes that keep them ([`Engine::keeps_records_for`]).
    pub(crate) fn erased_with_hold(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
    ) -> Result<bool, EngineError> {
        let pseudonym = self.keys(tenant)?.pseudonym(subject);
        self.ledger(tenant)?;
        Ok(self
            .store
            .subject_flags(tenant, &pseudonym)?
            .erased_with_hold)
    }

    /// Whether a category's legal hold names the purpose: what an erasure keeps, it keeps for it.
    pub(crate) fn keeps_records_for(&self, purpose: &PurposeId) -> bool {
        self.policies
            .categories()
            .iter()
            .filter_map(|c| c.legal_hold.as_ref())
            .any(|hold| &hold.purpose == purpose)
    }

    /// A subject's flags (`dsr_queue` operation). The subject must exist in the caller's tenant
    /// (possibly as the shell an erasure with records kept leaves): an unknown id, an erased one
    /// or another tenant's is `subject_not_found`, as on every other subject route.
    pub fn flags(&self, caller: &Caller, subject: SubjectId) -> Result<FlagsView, EngineError> {
        caller.require(Operation::DsrQueue)?;
        self.ledger(&caller.tenant)?;
        self.subject_record(&caller.tenant, subject)?;
        let pseudonym = self.keys(&caller.tenant)?.pseudonym(subject);
        let record = self.store.subject_flags(&caller.tenant, &pseudonym)?;
        Ok(FlagsView {
            restricted: record.restricted,
            objected: record.objected,
            legal_hold: record.legal_hold,
            erased_with_hold: record.erased_with_hold,
            seq: (!record.is_clear()).then_some(record.seq),
        })
    }

    /// Changes a subject's flags through the ledger (`dsr_queue` operation). Returns the entry's
    /// sequence number. The subject must exist (possibly erased with records kept).
    pub fn change_flags(
        &self,
        caller: &Caller,
        subject: SubjectId,
        change: FlagChange,
        request_id: Option<&str>,
    ) -> Result<u64, EngineError> {
        caller.require(Operation::DsrQueue)?;
        self.change_flags_as_system(&caller.tenant, subject, change, request_id)
    }

    pub(crate) fn change_flags_as_system(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        change: FlagChange,
        request_id: Option<&str>,
    ) -> Result<u64, EngineError> {
        self.subject_record(tenant, subject)?;
        let ledger = self.ledger(tenant)?;
        let pseudonym = self.keys(tenant)?.pseudonym(subject);
        if change == FlagChange::LiftRestriction
            && self
                .store
                .subject_flags(tenant, &pseudonym)?
                .erased_with_hold
        {
            // What an erasure kept for a legal obligation stays restricted to it.
            return Err(EngineError::Conflict {
                field: "/restricted".to_owned(),
                message:
                    "the subject was erased; what is kept is restricted to its legal obligation"
                        .to_owned(),
            });
        }
        let mut entry = new_entry(self.clock.now(), tenant, change.kind());
        entry.subject = Some(pseudonym);
        if let Some(id) = request_id {
            entry
                .attributes
                .insert("request_id".to_owned(), id.to_owned());
        }
        self.append_entries(tenant, &ledger, std::slice::from_ref(&entry))
    }

    /// Erases a subject (`dsr_queue` operation): see the module documentation.
    pub fn erase(
        &self,
        caller: &Caller,
        subject: SubjectId,
        options: &ErasureOptions,
    ) -> Result<ErasureOutcome, EngineError> {
        caller.require(Operation::DsrQueue)?;
        self.erase_as_system(&caller.tenant, subject, ErasureCause::Request, options)
    }

    pub(crate) fn erase_as_system(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        cause: ErasureCause,
        options: &ErasureOptions,
    ) -> Result<ErasureOutcome, EngineError> {
        let keys = self.keys(tenant)?;
        let ledger = self.ledger(tenant)?;
        let pseudonym = keys.pseudonym(subject);
        if self.store.subject_flags(tenant, &pseudonym)?.legal_hold {
            return Err(EngineError::LegalHold);
        }
        let now = self.clock.now();
        let (outcome, destroy_all) = {
            let _guard = self.lock_writes();
            let record = self.subject_record(tenant, subject)?;
            let key = keys.data_key(subject)?;

            // 1. Which events a legal obligation keeps.
            let mut batch = WriteBatch::new();
            let plan = self.erasure_plan(tenant, subject, &key, now)?;
            for id in &plan.deleted {
                batch.delete_event(tenant, subject, *id);
            }
            let kept_events = &plan.kept_events;
            let n_kept = kept_events.len() as u64;

            // 2. The hold key, then the tombstone: from here on a crash is finished at the next
            // start (the replay sees the hold key and keeps what it holds).
            let hold = if n_kept > 0 {
                Some(keys.hold_key(subject)?)
            } else {
                None
            };
            keys.add_tombstone(subject, now)?;

            // 3. The profile, its index entries and its analytics projection.
            self.delete_facts(&mut batch, tenant, subject)?;
            for (kind, hash) in &record.lookups {
                batch.delete_lookup(tenant, *kind, hash);
                if options.suppress && *kind == LookupKind::UserId {
                    batch.put_suppression(tenant, hash, now);
                }
            }
            for (field, bucket) in &record.blind {
                batch.delete_blind(tenant, field, bucket, subject);
            }
            match &hold {
                None => batch.delete_subject(tenant, subject),
                Some(hold) => {
                    // The subject stays as an empty shell that the kept events hang from, all
                    // of it sealed under the hold key.
                    for event in kept_events {
                        batch.put_event(&reseal_event(&key, hold, event)?);
                    }
                    batch.put_subject(&shell(tenant, &record, hold, now)?);
                }
            }
            self.store.write(batch)?;
            self.store.flush()?;

            let (erased, kept) = self.erasure_lists(plan);
            let suppressed =
                options.suppress && record.lookups.iter().any(|(k, _)| *k == LookupKind::UserId);
            let outcome = ErasureOutcome {
                subject_id: subject,
                cause,
                erased,
                kept,
                key_destroyed: true,
                suppressed,
                receipt_seq: 0,
                erased_at: now,
            };
            (outcome, n_kept == 0)
        };

        // The search document, with the segments that held it merged away.
        self.purge_from_search(tenant, subject)?;

        // 4. The key, overwritten in place (with nothing kept, the hold key too, if an earlier
        // erasure made one).
        if destroy_all {
            keys.destroy_data_key(subject)?;
        } else {
            keys.retire_data_key(subject)?;
        }

        // 5. Every consent ends with the erasure (no state may still say granted), then the
        // receipt: one append, so both are in the ledger or neither.
        let mut entries = self.erasure_withdrawals(tenant, pseudonym, Some(cause), options, now)?;
        let n_withdrawn = entries.len() as u64;
        let mut entry = new_entry(now, tenant, kind::ERASURE_COMPLETED);
        entry.subject = Some(pseudonym);
        let n_erased: u64 = outcome.erased.iter().map(|e| e.records).sum();
        let n_kept: u64 = outcome.kept.iter().map(|k| k.records).sum();
        entry
            .attributes
            .insert("cause".to_owned(), cause.as_str().to_owned());
        entry
            .attributes
            .insert("erased".to_owned(), n_erased.to_string());
        entry
            .attributes
            .insert("kept".to_owned(), n_kept.to_string());
        if !outcome.kept.is_empty() {
            let categories: Vec<&str> = outcome.kept.iter().map(|k| k.category.as_str()).collect();
            entry
                .attributes
                .insert("kept_categories".to_owned(), categories.join(","));
        }
        entry.attributes.insert(
            "key_destroyed".to_owned(),
            outcome.key_destroyed.to_string(),
        );
        entry
            .attributes
            .insert("suppressed".to_owned(), outcome.suppressed.to_string());
        if let Some(id) = &options.request_id {
            entry.attributes.insert("request_id".to_owned(), id.clone());
        }
        entry
            .attributes
            .insert("consents_withdrawn".to_owned(), n_withdrawn.to_string());
        entries.push(entry);
        let receipt_seq = self.append_entries(tenant, &ledger, &entries)? + n_withdrawn;
        tracing::info!(tenant = %tenant, seq = receipt_seq, kept = n_kept, n_withdrawn, "subject erased");
        Ok(ErasureOutcome {
            receipt_seq,
            ..outcome
        })
    }

    /// A `consent.withdrawn` entry, with the erasure as its cause, for every purpose the
    /// subject's consent view does not already show withdrawn. `cause` is `None` when a replay
    /// at start-up finishes an erasure and no longer knows why it was asked.
    fn erasure_withdrawals(
        &self,
        tenant: &TenantId,
        pseudonym: custodia_core::Pseudonym,
        cause: Option<ErasureCause>,
        options: &ErasureOptions,
        now: Timestamp,
    ) -> Result<Vec<custodia_ledger::LedgerEntry>, EngineError> {
        let mut withdrawals = Vec::new();
        for purpose in self.policies.purposes() {
            let current = self.store.consent(tenant, &pseudonym, &purpose.id)?;
            if current.is_none_or(|c| c.state == custodia_store::ConsentState::Withdrawn) {
                continue;
            }
            let mut entry = self.decision_entry(now, tenant, pseudonym, purpose, false);
            entry
                .attributes
                .insert("cause".to_owned(), "erasure".to_owned());
            if let Some(cause) = cause {
                entry
                    .attributes
                    .insert("erasure_cause".to_owned(), cause.as_str().to_owned());
            }
            if let Some(id) = &options.request_id {
                entry.attributes.insert("request_id".to_owned(), id.clone());
            }
            withdrawals.push(entry);
        }
        Ok(withdrawals)
    }

    /// Lifts the suppression of a `userId` (`manage_keys` operation: operators only). Returns
    /// whether it was suppressed.
    pub fn lift_suppression(
        &self,
        caller: &Caller,
        user_id: &custodia_core::Personal<String>,
    ) -> Result<bool, EngineError> {
        caller.require(Operation::ManageKeys)?;
        let keys = self.keys(&caller.tenant)?;
        let hash = keys.lookup_hash(LookupKind::UserId.as_str(), user_id.expose());
        if self.store.suppressed(&caller.tenant, &hash.0)?.is_none() {
            return Ok(false);
        }
        let mut batch = WriteBatch::new();
        batch.delete_suppression(&caller.tenant, &hash.0);
        self.store.write(batch)?;
        self.store.flush()?;
        tracing::info!(tenant = %caller.tenant, by = %caller.key_id, "suppression lifted");
        Ok(true)
    }

    /// How many `userId`s of the caller's tenant are suppressed (`manage_keys` operation).
    pub fn count_suppressions(&self, caller: &Caller) -> Result<usize, EngineError> {
        caller.require(Operation::ManageKeys)?;
        Ok(self.store.suppressions(&caller.tenant)?.len())
    }

    /// What an erasure of `subject` would erase and keep now, and why (`dsr_queue`): the same
    /// classification the erasure makes, changing nothing. `legal_hold` says the erasure would
    /// be refused as long as the subject's hold lasts.
    pub fn erasure_preview(
        &self,
        caller: &Caller,
        subject: SubjectId,
    ) -> Result<ErasurePreview, EngineError> {
        caller.require(Operation::DsrQueue)?;
        let tenant = &caller.tenant;
        let keys = self.keys(tenant)?;
        let legal_hold = self
            .store
            .subject_flags(tenant, &keys.pseudonym(subject))?
            .legal_hold;
        self.subject_record(tenant, subject)?;
        let key = keys.data_key(subject)?;
        let plan = self.erasure_plan(tenant, subject, &key, self.clock.now())?;
        let (erased, kept) = self.erasure_lists(plan);
        Ok(ErasurePreview {
            subject_id: subject,
            legal_hold,
            erased,
            kept,
        })
    }

    /// Sorts a subject's events into those an erasure deletes and those a legal obligation keeps.
    fn erasure_plan(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        key: &custodia_vault::DataKey,
        now: Timestamp,
    ) -> Result<ErasurePlan, EngineError> {
        let mut plan = ErasurePlan::default();
        self.for_each_event(tenant, subject, |event| {
            let view = open_event(key, event)?;
            let category = self.policies.retention_category_of_event(&view.event);
            match self.held_until(&view.event, event.received_at, now) {
                Some(until) => {
                    let slot = plan.kept.entry(category.id.clone()).or_insert((0, until));
                    slot.0 += 1;
                    slot.1 = slot.1.max(until);
                    plan.kept_events.push(event.clone());
                }
                None => {
                    *plan.erased.entry(category.id.clone()).or_default() += 1;
                    plan.deleted.push(event.id);
                }
            }
            Ok(())
        })?;
        Ok(plan)
    }

    /// The erased and kept lists of an outcome or a preview: the profile first, then events per
    /// category; what is kept with its legal obligation's purpose and reason.
    fn erasure_lists(&self, plan: ErasurePlan) -> (Vec<ErasedData>, Vec<KeptData>) {
        let mut erased: Vec<ErasedData> = plan
            .erased
            .into_iter()
            .map(|(category, records)| ErasedData {
                category,
                what: "events",
                records,
            })
            .collect();
        erased.insert(
            0,
            ErasedData {
                category: "profile".to_owned(),
                what: "profile",
                records: 1,
            },
        );
        let kept = plan
            .kept
            .into_iter()
            .filter_map(|(category, (records, until))| {
                let hold = self.policies.category(&category)?.legal_hold.as_ref()?;
                Some(KeptData {
                    category,
                    records,
                    purpose: hold.purpose.to_string(),
                    reason: hold.reason.clone(),
                    until,
                })
            })
            .collect();
        (erased, kept)
    }

    /// Until when a legal obligation keeps an event received at `received_at`, if one does: its
    /// category names a `legal_hold` purpose and the category's retention has not ended.
    fn held_until(&self, event: &str, received_at: Timestamp, now: Timestamp) -> Option<Timestamp> {
        let category = self.policies.retention_category_of_event(event);
        let until = received_at.plus_days(i64::from(category.retention_days));
        (category.legal_hold.is_some() && until > now).then_some(until)
    }

    /// Finishes erasures that a restored data backup (or a crash) left undone. Every subject on
    /// a tenant's tombstone list that the store still holds loses its records, look-ups, blind
    /// indexes, analytics facts and events; one with a hold key (erased with records kept) keeps
    /// what is sealed under that key and becomes the empty, restricted shell again. Its data key
    /// is already gone, so nothing else of it can be decrypted meanwhile. Returns how many
    /// subjects were cleaned.
    pub fn replay_tombstones(&self, tenant: &TenantId) -> Result<u64, EngineError> {
        let keys = self.keys(tenant)?;
        let tombstones = keys.tombstones()?;
        let mut cleaned = 0;
        for (subject, _) in &tombstones {
            let subject = *subject;
            let _guard = self.lock_writes();
            let Some(record) = self.store.subject(tenant, subject)? else {
                // Make sure the keys are gone too (a crash between the store and the key store).
                keys.destroy_data_key(subject)?;
                continue;
            };
            let changed = if let Some(hold) = keys.existing_hold_key(subject)? {
                self.replay_hold(&keys, tenant, &record, &hold)?
            } else {
                let mut batch = WriteBatch::new();
                self.delete_index_entries(&mut batch, tenant, &record)?;
                self.for_each_event(tenant, subject, |event| {
                    batch.delete_event(tenant, subject, event.id);
                    Ok(())
                })?;
                batch.delete_subject(tenant, subject);
                self.delete_facts(&mut batch, tenant, subject)?;
                self.store.write(batch)?;
                self.store.flush()?;
                keys.destroy_data_key(subject)?;
                true
            };
            if changed {
                self.purge_from_search(tenant, subject)?;
                cleaned += 1;
            }
        }
        if cleaned > 0 {
            tracing::warn!(tenant = %tenant, cleaned, "erased subjects found in the store (a restored backup?) were removed again");
        }
        self.replay_withdrawals(tenant, &keys, &tombstones)?;
        Ok(cleaned)
    }

    /// Ends every consent of the tombstoned subjects that the consent view still shows
    /// unwithdrawn, as the erasure would have (a crash before its ledger append, or a restored
    /// data directory older than the erasure). Idempotent: a purpose already withdrawn gets no
    /// second entry, so an erasure that reached the ledger before the crash adds nothing.
    fn replay_withdrawals(
        &self,
        tenant: &TenantId,
        keys: &TenantVault,
        tombstones: &[(SubjectId, Timestamp)],
    ) -> Result<(), EngineError> {
        if tombstones.is_empty() {
            return Ok(());
        }
        // Opening the ledger first brings the view up to date with it.
        let ledger = self.ledger(tenant)?;
        let now = self.clock.now();
        let mut entries = Vec::new();
        for (subject, _) in tombstones {
            entries.extend(self.erasure_withdrawals(
                tenant,
                keys.pseudonym(*subject),
                None,
                &ErasureOptions::default(),
                now,
            )?);
        }
        if !entries.is_empty() {
            let n_withdrawn = entries.len();
            self.append_entries(tenant, &ledger, &entries)?;
            tracing::warn!(tenant = %tenant, n_withdrawn, "consents of erased subjects withdrawn at start-up (an erasure cut short, or a restored backup)");
        }
        Ok(())
    }

    /// The replay of an erasure that kept records under a hold key. The shell is as the erasure
    /// left it when its data key is gone, its profile opens under the hold key and nothing
    /// points at it: then nothing is done (`Ok(false)`). Otherwise every event sealed under the
    /// hold key stays; one still sealed under the data key (a crash before the erasure finished)
    /// is re-sealed if a legal obligation still keeps it; every other record goes, and the
    /// restriction flags are set again.
    fn replay_hold(
        &self,
        keys: &TenantVault,
        tenant: &TenantId,
        record: &SubjectRecord,
        hold: &DataKey,
    ) -> Result<bool, EngineError> {
        let subject = record.id;
        let primary = match keys.primary_data_key(subject) {
            Ok(key) => Some(key),
            Err(custodia_vault::VaultError::KeyNotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let shell_opens = open_json::<ProfileData>(
            hold,
            tenant,
            subject,
            PROFILE_KIND,
            &record.sealed_profile,
            "profile",
        )
        .is_ok();
        if primary.is_none() && shell_opens && record.lookups.is_empty() && record.blind.is_empty()
        {
            return Ok(false);
        }
        let now = self.clock.now();
        let mut batch = WriteBatch::new();
        self.delete_index_entries(&mut batch, tenant, record)?;
        self.for_each_event(tenant, subject, |event| {
            if open_event(hold, event).is_ok() {
                return Ok(());
            }
            let still_held = primary.as_ref().and_then(|key| {
                let view = open_event(key, event).ok()?;
                self.held_until(&view.event, event.received_at, now)
                    .map(|_| key)
            });
            match still_held {
                Some(key) => batch.put_event(&reseal_event(key, hold, event)?),
                None => batch.delete_event(tenant, subject, event.id),
            }
            Ok(())
        })?;
        self.delete_facts(&mut batch, tenant, subject)?;
        batch.put_subject(&shell(tenant, record, hold, now)?);
        let pseudonym = keys.pseudonym(subject);
        let flags = self.store.subject_flags(tenant, &pseudonym)?;
        batch.put_subject_flags(
            tenant,
            &pseudonym,
            &SubjectFlagsRecord {
                erased_with_hold: true,
                restricted: true,
                ..flags
            },
        );
        self.store.write(batch)?;
        self.store.flush()?;
        keys.retire_data_key(subject)?;
        Ok(true)
    }

    /// Deletes the look-up entries that still point at the subject (an id may have been reused
    /// by a later, different subject if it was not suppressed) and its blind-index entries.
    fn delete_index_entries(
        &self,
        batch: &mut WriteBatch,
        tenant: &TenantId,
        record: &SubjectRecord,
    ) -> Result<(), EngineError> {
        for (kind, hash) in &record.lookups {
            if self.store.lookup(tenant, *kind, hash)? == Some(record.id) {
                batch.delete_lookup(tenant, *kind, hash);
            }
        }
        for (field, bucket) in &record.blind {
            batch.delete_blind(tenant, field, bucket, record.id);
        }
        Ok(())
    }
}

/// An event re-sealed from `from` to `to`, same id, time and associated data.
fn reseal_event(
    from: &DataKey,
    to: &DataKey,
    event: &EventRecord,
) -> Result<EventRecord, EngineError> {
    let kind = crate::profile::event_kind(event.id);
    let aad = custodia_vault::Aad {
        tenant: &event.tenant,
        subject: event.subject,
        kind: &kind,
    };
    let plain = from.open(&aad, &event.sealed)?;
    Ok(EventRecord {
        sealed: to.seal(&aad, &plain)?,
        ..event.clone()
    })
}

/// The empty profile an erasure with records kept leaves, sealed under the hold key, with nothing
/// pointing at it.
fn shell(
    tenant: &TenantId,
    record: &SubjectRecord,
    hold: &DataKey,
    now: Timestamp,
) -> Result<SubjectRecord, EngineError> {
    let empty = ProfileData {
        v: 1,
        ..ProfileData::default()
    };
    Ok(SubjectRecord {
        sealed_profile: seal_json(hold, tenant, record.id, PROFILE_KIND, &empty)?,
        updated_at: now,
        lookups: Vec::new(),
        blind: Vec::new(),
        ..record.clone()
    })
}

#[cfg(test)]
mod tests;
