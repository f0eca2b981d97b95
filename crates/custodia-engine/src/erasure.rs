//! Erasure (GDPR Art. 17) and the subject-level flags: restriction (Art. 18), objection (Art. 21)
//! and legal holds.
//!
//! Erasing a subject, in this order, each step durable before the next:
//! 1. decide per event whether a legal obligation keeps it: its category names a `legal_hold`
//!    purpose and the category's retention has not ended;
//! 2. put the subject on the tombstone list beside the key store (so a restored data backup is
//!    cleaned of it on the next start);
//! 3. delete from the store, in one batch: the profile, every look-up and blind-index entry and
//!    every event not kept; with `suppress`, add the keyed hash of its `userId` to the
//!    suppression list;
//! 4. destroy the subject's data key (overwritten in place in the key store) unless records are
//!    kept, which then stay readable only for the hold's purpose: the subject is flagged
//!    `erased_with_hold`, which restricts processing to legal obligations;
//! 5. append `erasure.completed` to the consent ledger, with counts and no personal data.
//!
//! A crash after step 2 is finished on the next start by [`Engine::replay_tombstones`]. Ledger
//! entries are never deleted: the subject's entries stay, tied to nobody once the key is gone
//! (their evidence was sealed under it).

use std::collections::BTreeMap;

use custodia_core::{Operation, SubjectId, TenantId, Timestamp};
use custodia_store::{LookupKind, SubjectRecord, WriteBatch};
use serde::Serialize;

use crate::decision::SubjectFlags;
use crate::ledger::{kind, new_entry};
use crate::profile::{PROFILE_KIND, ProfileData, open_event, seal_json};
use crate::{Caller, Engine, EngineError};

/// Why a subject is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// What an erasure did: the answer to the person and the content of the receipt.
#[derive(Debug, Clone, Serialize)]
pub struct ErasureOutcome {
    /// The subject.
    pub subject_id: SubjectId,
    /// Why.
    pub cause: ErasureCause,
    /// What was removed.
    pub erased: Vec<ErasedData>,
    /// What was kept under a legal obligation (empty: nothing is left).
    pub kept: Vec<KeptData>,
    /// Whether the subject's key was destroyed (false only when records are kept).
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

    /// A subject's flags (`dsr_queue` operation).
    pub fn flags(&self, caller: &Caller, subject: SubjectId) -> Result<FlagsView, EngineError> {
        caller.require(Operation::DsrQueue)?;
        self.ledger(&caller.tenant)?;
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
        let (outcome, destroy) = {
            let _guard = self.lock_writes();
            let record = self.subject_record(tenant, subject)?;
            let key = keys.data_key(subject)?;

            // 1. Which events a legal obligation keeps.
            let mut batch = WriteBatch::new();
            let mut erased: BTreeMap<String, u64> = BTreeMap::new();
            let mut kept: BTreeMap<String, (u64, Timestamp)> = BTreeMap::new();
            self.for_each_event(tenant, subject, |event| {
                let view = open_event(&key, event)?;
                let category = self.policies.retention_category_of_event(&view.event);
                let until = event
                    .received_at
                    .plus_days(i64::from(category.retention_days));
                if category.legal_hold.is_some() && until > now {
                    let slot = kept.entry(category.id.clone()).or_insert((0, until));
                    slot.0 += 1;
                    slot.1 = slot.1.max(until);
                } else {
                    *erased.entry(category.id.clone()).or_default() += 1;
                    batch.delete_event(tenant, subject, event.id);
                }
                Ok(())
            })?;
            let n_kept: u64 = kept.values().map(|(n, _)| n).sum();

            // 2. The tombstone goes first, so a crash from here on is finished at the next start.
            if n_kept == 0 {
                keys.add_tombstone(subject, now)?;
            }

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
            if n_kept == 0 {
                batch.delete_subject(tenant, subject);
            } else {
                // The subject stays as an empty shell that the kept events hang from.
                let empty = ProfileData {
                    v: 1,
                    ..ProfileData::default()
                };
                batch.put_subject(&SubjectRecord {
                    sealed_profile: seal_json(&key, tenant, subject, PROFILE_KIND, &empty)?,
                    updated_at: now,
                    lookups: Vec::new(),
                    blind: Vec::new(),
                    ..record.clone()
                });
            }
            self.store.write(batch)?;
            self.store.flush()?;

            let mut erased: Vec<ErasedData> = erased
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
            let kept: Vec<KeptData> = kept
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
            let suppressed =
                options.suppress && record.lookups.iter().any(|(k, _)| *k == LookupKind::UserId);
            let outcome = ErasureOutcome {
                subject_id: subject,
                cause,
                erased,
                kept,
                key_destroyed: n_kept == 0,
                suppressed,
                receipt_seq: 0,
                erased_at: now,
            };
            (outcome, n_kept == 0)
        };

        // The search document, with the segments that held it merged away.
        self.purge_from_search(tenant, subject)?;

        // 4. The key, overwritten in place.
        if destroy {
            keys.destroy_data_key(subject)?;
        }

        // 5. The receipt.
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
        let receipt_seq = self.append_entries(tenant, &ledger, std::slice::from_ref(&entry))?;
        tracing::info!(tenant = %tenant, seq = receipt_seq, kept = n_kept, "subject erased");
        Ok(ErasureOutcome {
            receipt_seq,
            ..outcome
        })
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

    /// Finishes erasures that a restored data backup (or a crash) left undone: every subject on
    /// a tenant's tombstone list that the store still holds loses its records, look-ups, blind
    /// indexes and events. Its key is already gone, so nothing of it can be decrypted meanwhile.
    /// Returns how many subjects were cleaned.
    pub fn replay_tombstones(&self, tenant: &TenantId) -> Result<u64, EngineError> {
        let keys = self.keys(tenant)?;
        let mut cleaned = 0;
        for (subject, _) in keys.tombstones()? {
            let _guard = self.lock_writes();
            let Some(record) = self.store.subject(tenant, subject)? else {
                // Make sure the key is gone too (a crash between the store and the key store).
                keys.destroy_data_key(subject)?;
                continue;
            };
            let mut batch = WriteBatch::new();
            for (kind, hash) in &record.lookups {
                // Only entries that still point at this subject: the id may have been reused by a
                // later, different subject (not suppressed).
                if self.store.lookup(tenant, *kind, hash)? == Some(subject) {
                    batch.delete_lookup(tenant, *kind, hash);
                }
            }
            for (field, bucket) in &record.blind {
                batch.delete_blind(tenant, field, bucket, subject);
            }
            self.for_each_event(tenant, subject, |event| {
                batch.delete_event(tenant, subject, event.id);
                Ok(())
            })?;
            batch.delete_subject(tenant, subject);
            self.delete_facts(&mut batch, tenant, subject)?;
            self.store.write(batch)?;
            self.store.flush()?;
            keys.destroy_data_key(subject)?;
            self.purge_from_search(tenant, subject)?;
            cleaned += 1;
        }
        if cleaned > 0 {
            tracing::warn!(tenant = %tenant, cleaned, "erased subjects found in the store (a restored backup?) were removed again");
        }
        Ok(cleaned)
    }
}

#[cfg(test)]
mod tests;
