//! The retention sweep: removes what is past the retention of its data category
//! (`policies/categories.toml`), and whole profiles dormant past `dormant_profile_days`
//! (`policies/policy.toml`).
//!
//! For each subject of a tenant, unless it is under a legal hold:
//! - each event whose `received_at` + its category's retention has passed is deleted (the
//!   category of an event nobody classified is the default one);
//! - each trait whose last update + its category's retention has passed is removed from the
//!   profile (a trait written before per-trait times were kept counts from the profile's
//!   `updated_at`);
//! - a subject that was erased with records kept for a legal obligation, and has none left, is
//!   erased for good (its key destroyed);
//! - with `dormant_profile_days`, a subject with no profile change and no event for that long is
//!   erased (an erasure with cause `retention`, which keeps data under a legal obligation).
//!
//! Each subject the sweep changed gets one `retention.applied` ledger entry with the counts per
//! category (or an `erasure.completed` entry); nothing personal is written there.

use std::collections::BTreeMap;

use custodia_core::{Operation, SubjectId, TenantId, Timestamp};
use custodia_store::WriteBatch;
use serde::Serialize;

use crate::erasure::{ErasureCause, ErasureOptions};
use crate::ledger::{kind, new_entry};
use crate::profile::open_event;
use crate::{Caller, Engine, EngineError};

/// Subjects and events read per page.
const PAGE: usize = 500;

/// What one sweep of a tenant did.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RetentionReport {
    /// The tenant swept.
    pub tenant: String,
    /// Subjects looked at.
    pub subjects_scanned: u64,
    /// Subjects skipped because of a legal hold.
    pub subjects_on_hold: u64,
    /// Events deleted, per category.
    pub events_removed: BTreeMap<String, u64>,
    /// Traits removed, per category.
    pub traits_removed: BTreeMap<String, u64>,
    /// Whole profiles erased (dormant, or erased-with-hold with nothing left to keep).
    pub profiles_erased: u64,
    /// Ledger entries written.
    pub ledger_entries: u64,
    /// Data-subject requests whose retention ended: their key destroyed, their private part gone.
    pub requests_expired: u64,
    /// When the sweep ran (the cut-off instant).
    pub swept_at: Option<Timestamp>,
}

impl Engine {
    /// Sweeps the caller's tenant (`dsr_queue` operation).
    pub fn retention_sweep(&self, caller: &Caller) -> Result<RetentionReport, EngineError> {
        caller.require(Operation::DsrQueue)?;
        self.retention_sweep_as_system(&caller.tenant)
    }

    /// Sweeps one tenant: see the module documentation.
    pub fn retention_sweep_as_system(
        &self,
        tenant: &TenantId,
    ) -> Result<RetentionReport, EngineError> {
        let now = self.clock.now();
        let mut report = RetentionReport {
            tenant: tenant.to_string(),
            swept_at: Some(now),
            ..RetentionReport::default()
        };
        let mut after: Option<SubjectId> = None;
        loop {
            let page = self.store.subjects(tenant, after, PAGE)?;
            for record in &page {
                report.subjects_scanned += 1;
                self.sweep_subject(tenant, record.id, now, &mut report)?;
            }
            after = page.last().map(|r| r.id);
            if page.len() < PAGE {
                break;
            }
        }
        report.requests_expired = self.expire_requests(tenant, now)?;
        tracing::info!(
            tenant = %tenant,
            scanned = report.subjects_scanned,
            erased = report.profiles_erased,
            entries = report.ledger_entries,
            "retention sweep done"
        );
        Ok(report)
    }

    fn sweep_subject(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        now: Timestamp,
        report: &mut RetentionReport,
    ) -> Result<(), EngineError> {
        let keys = self.keys(tenant)?;
        let ledger = self.ledger(tenant)?;
        let pseudonym = keys.pseudonym(subject);
        let flags = self.store.subject_flags(tenant, &pseudonym)?;
        if flags.legal_hold {
            report.subjects_on_hold += 1;
            return Ok(());
        }

        let mut events_removed: BTreeMap<String, u64> = BTreeMap::new();
        let mut traits_removed: BTreeMap<String, u64> = BTreeMap::new();
        let (events_left, last_activity) = {
            let _guard = self.lock_writes();
            // The subject may have gone since the page was read (merged, erased).
            let Some(record) = self.store.subject(tenant, subject)? else {
                return Ok(());
            };
            let (key, mut data) = self.open_profile(&keys, &record)?;
            let mut batch = WriteBatch::new();
            let mut events_left = 0u64;
            let mut last_activity = record.updated_at;
            self.for_each_event(tenant, subject, |event| {
                let view = open_event(&key, event)?;
                let category = self.policies.retention_category_of_event(&view.event);
                let ends = event
                    .received_at
                    .plus_days(i64::from(category.retention_days));
                if ends <= now {
                    *events_removed.entry(category.id.clone()).or_default() += 1;
                    batch.delete_event(tenant, subject, event.id);
                    batch.delete_fact(tenant, &pseudonym, event.id);
                } else {
                    events_left += 1;
                    last_activity = last_activity.max(event.received_at);
                }
                Ok(())
            })?;

            let expired: Vec<String> = data
                .traits
                .keys()
                .filter(|name| {
                    let category = self.policies.category_of_trait(name);
                    let set_at = data
                        .trait_times
                        .get(*name)
                        .map(|t| Timestamp::from_unix_micros(*t))
                        .unwrap_or(record.updated_at);
                    set_at.plus_days(i64::from(category.retention_days)) <= now
                })
                .cloned()
                .collect();
            for name in &expired {
                let category = self.policies.category_of_trait(name);
                *traits_removed.entry(category.id.clone()).or_default() += 1;
                data.traits.remove(name);
                data.trait_times.remove(name);
            }
            if !expired.is_empty() {
                // Resealed without the expired traits; `updated_at` stays, since no one changed
                // the profile (otherwise a sweep would keep every profile from going dormant).
                let mut new = self.resealed(&keys, &key, &record, &data, now)?;
                new.updated_at = record.updated_at;
                crate::profile::put_subject(&mut batch, Some(&record), &new);
                self.queue_search(&mut batch, tenant, subject);
            }
            if !batch.is_empty() {
                self.store.write(batch)?;
                self.store.flush()?;
            }
            (events_left, last_activity)
        };

        if !events_removed.is_empty() || !traits_removed.is_empty() {
            let mut entry = new_entry(now, tenant, kind::RETENTION_APPLIED);
            entry.subject = Some(pseudonym);
            for (what, counts) in [("events", &events_removed), ("traits", &traits_removed)] {
                for (category, n) in counts {
                    entry
                        .attributes
                        .insert(format!("{what}_{category}"), n.to_string());
                }
            }
            self.append_entries(tenant, &ledger, std::slice::from_ref(&entry))?;
            report.ledger_entries += 1;
            for (category, n) in events_removed {
                *report.events_removed.entry(category).or_default() += n;
            }
            for (category, n) in traits_removed {
                *report.traits_removed.entry(category).or_default() += n;
            }
        }

        let kept_nothing_more = flags.erased_with_hold && events_left == 0;
        let dormant = self
            .policies
            .dormant_profile_days()
            .is_some_and(|days| last_activity.plus_days(i64::from(days)) <= now);
        if (kept_nothing_more || dormant) && !(flags.erased_with_hold && events_left > 0) {
            let outcome = self.erase_as_system(
                tenant,
                subject,
                ErasureCause::Retention,
                &ErasureOptions::default(),
            )?;
            report.ledger_entries += 1;
            if outcome.key_destroyed {
                report.profiles_erased += 1;
            }
        }
        Ok(())
    }
}
