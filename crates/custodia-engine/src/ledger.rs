//! The tenants' consent ledgers: one append-only Merkle log per tenant under `DATA/ledger/<tenant>/`,
//! its checkpoint signer, and the consent view in the store that is derived from it.
//!
//! Order of writes, and why it is safe: an entry is appended to the ledger (durable) before the
//! view is updated; the view records the last ledger sequence it reflects (a watermark), and
//! opening a tenant's ledger replays every entry past the watermark. So a crash between the two
//! loses nothing, and the view can always be rebuilt from the ledger alone. A view update that
//! fails after the append (a full disk) does not make the append fail: the entries are recorded
//! and acknowledged, and the view replays them before its next use (`view_behind`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use custodia_core::{Pseudonym, PurposeId, TenantId, Timestamp};
use custodia_ledger::{Checkpoint, LedgerEntry, LedgerError, Log, NoteSigner};
use custodia_store::{ConsentRecord, ConsentState, SubjectFlagsRecord, WriteBatch};

use crate::group::GroupCommit;
use crate::{Engine, EngineError};

/// Entry kinds this module writes or reads.
pub mod kind {
    /// A subject granted a purpose.
    pub const GRANTED: &str = "consent.granted";
    /// A subject withdrew a purpose.
    pub const WITHDRAWN: &str = "consent.withdrawn";
    /// A version of the policies took effect.
    pub const POLICY_PUBLISHED: &str = "policy.published";
    /// Identity resolution merged an anonymous subject into a known one.
    pub const SUBJECT_MERGED: &str = "subject.merged";
    /// The subject restricted processing (GDPR Art. 18).
    pub const RESTRICTED: &str = "processing.restricted";
    /// A restriction was lifted.
    pub const RESTRICTION_LIFTED: &str = "processing.restriction_lifted";
    /// The subject objected to processing on legitimate interests (Art. 21).
    pub const OBJECTED: &str = "objection.recorded";
    /// An objection was withdrawn.
    pub const OBJECTION_WITHDRAWN: &str = "objection.withdrawn";
    /// A legal hold keeps the subject's data from retention sweeps and erasure.
    pub const LEGAL_HOLD_PLACED: &str = "legal_hold.placed";
    /// A legal hold was lifted.
    pub const LEGAL_HOLD_LIFTED: &str = "legal_hold.lifted";
    /// A subject was erased; attribute `kept` = number of records kept under a legal obligation.
    pub const ERASURE_COMPLETED: &str = "erasure.completed";
    /// A retention sweep removed data of the subject past its category's retention.
    pub const RETENTION_APPLIED: &str = "retention.applied";
}

/// The name of the consent ledger among a tenant's logs (and its signing-key label).
pub(crate) const LEDGER_LOG: &str = "ledger";
/// The name of the access log (directory `DATA/audit/`, signing-key label `audit`).
pub(crate) const ACCESS_LOG: &str = "audit";

/// Checkpoint cadence: a new checkpoint once this many entries are past the latest one (the server
/// also checkpoints on a timer and on demand).
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// Entries after which an append also writes a checkpoint.
    pub every_entries: u64,
}

impl Default for CheckpointPolicy {
    fn default() -> CheckpointPolicy {
        CheckpointPolicy { every_entries: 64 }
    }
}

/// One tenant's ledger.
pub(crate) struct TenantLedger {
    pub(crate) log: Log,
    pub(crate) signer: NoteSigner,
    /// Serializes append-then-update-view, so the view applies entries in ledger order.
    pub(crate) append_lock: Mutex<()>,
    /// Concurrent appends wait here and are written together (`group`).
    pub(crate) commits: GroupCommit<Vec<LedgerEntry>, Result<u64, LedgerError>>,
    /// Set when entries reached the ledger but the view update after them failed (a full disk):
    /// the next use of the ledger replays them into the view before anything reads it.
    pub(crate) view_behind: AtomicBool,
}

/// The open ledgers, by tenant.
pub(crate) struct Ledgers {
    /// The log's name: its directory under `DATA/`, its origin suffix, its signing-key label.
    name: &'static str,
    root: PathBuf,
    origin_prefix: String,
    witness_dir: Option<PathBuf>,
    policy: CheckpointPolicy,
    open: Mutex<HashMap<TenantId, Arc<TenantLedger>>>,
}

impl Ledgers {
    pub(crate) fn new(
        name: &'static str,
        data_dir: &Path,
        origin_prefix: String,
        witness_dir: Option<PathBuf>,
        policy: CheckpointPolicy,
    ) -> Ledgers {
        Ledgers {
            name,
            root: data_dir.join(if name == LEDGER_LOG { "ledger" } else { name }),
            origin_prefix,
            witness_dir,
            policy,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The directory every new checkpoint is copied to, if any.
    pub(crate) fn witness_dir(&self) -> Option<&Path> {
        self.witness_dir.as_deref()
    }

    /// The directory of a tenant's ledger.
    pub fn dir(root: &Path, tenant: &TenantId) -> PathBuf {
        root.join(tenant.as_str())
    }
}

/// An entry of `kind` with no subject, purpose, source, evidence or attributes yet.
pub(crate) fn new_entry(time: Timestamp, tenant: &TenantId, kind: &str) -> LedgerEntry {
    LedgerEntry {
        time,
        tenant: tenant.clone(),
        subject: None,
        kind: kind.to_owned(),
        purpose: None,
        lawful_basis: None,
        policy_hash: None,
        source: custodia_ledger::Source::default(),
        evidence: None,
        attributes: Default::default(),
    }
}

impl Engine {
    /// A `consent.granted` / `consent.withdrawn` entry for `subject` and `purpose`, pointing at the
    /// policy version in force; source, evidence and attributes are the caller's to add.
    pub(crate) fn decision_entry(
        &self,
        time: Timestamp,
        tenant: &TenantId,
        subject: Pseudonym,
        purpose: &custodia_policy::Purpose,
        granted: bool,
    ) -> LedgerEntry {
        let mut entry = new_entry(
            time,
            tenant,
            if granted {
                kind::GRANTED
            } else {
                kind::WITHDRAWN
            },
        );
        entry.subject = Some(subject);
        entry.purpose = Some(purpose.id.clone());
        entry.lawful_basis = Some(purpose.lawful_basis);
        entry.policy_hash = Some(self.policy_hash_bytes());
        entry
    }
}

/// How an entry changes a subject's flags, if it is one of the kinds that do.
fn flag_change(entry: &LedgerEntry) -> Option<fn(SubjectFlagsRecord) -> SubjectFlagsRecord> {
    Some(match entry.kind.as_str() {
        kind::RESTRICTED => |f| SubjectFlagsRecord {
            restricted: true,
            ..f
        },
        kind::RESTRICTION_LIFTED => |f| SubjectFlagsRecord {
            restricted: false,
            ..f
        },
        kind::OBJECTED => |f| SubjectFlagsRecord {
            objected: true,
            ..f
        },
        kind::OBJECTION_WITHDRAWN => |f| SubjectFlagsRecord {
            objected: false,
            ..f
        },
        kind::LEGAL_HOLD_PLACED => |f| SubjectFlagsRecord {
            legal_hold: true,
            ..f
        },
        kind::LEGAL_HOLD_LIFTED => |f| SubjectFlagsRecord {
            legal_hold: false,
            ..f
        },
        // Erased with records kept under a legal obligation: those are restricted to it.
        kind::ERASURE_COMPLETED if entry.attributes.get("kept").is_some_and(|k| k != "0") => {
            |f| SubjectFlagsRecord {
                erased_with_hold: true,
                restricted: true,
                ..f
            }
        }
        _ => return None,
    })
}

/// The watermark of a tenant's consent view: the number of ledger entries it reflects.
fn watermark_name(tenant: &TenantId) -> String {
    format!("consent-view/{tenant}")
}

/// Each request's first sequence number, for a batch appended from `first` on.
fn firsts(first: u64, batch: &[Vec<LedgerEntry>]) -> Vec<Result<u64, LedgerError>> {
    let mut next = first;
    batch
        .iter()
        .map(|request| {
            let this = next;
            next += request.len() as u64;
            Ok(this)
        })
        .collect()
}

/// The policy hash last published in a tenant's ledger.
fn published_name(tenant: &TenantId) -> String {
    format!("policy-published/{tenant}")
}

impl Engine {
    /// A tenant's ledger, opened (and its view caught up, the policy version published) on
    /// first use.
    pub(crate) fn ledger(&self, tenant: &TenantId) -> Result<Arc<TenantLedger>, EngineError> {
        let ledger = self.open_log(&self.ledgers, tenant, |ledger| {
            self.catch_up_view(tenant, ledger)?;
            self.publish_policy(tenant, ledger)
        })?;
        if ledger.view_behind.load(Ordering::Acquire) {
            let _guard = ledger.append_lock.lock().unwrap_or_else(|p| p.into_inner());
            self.catch_up_if_behind(tenant, &ledger)?;
        }
        Ok(ledger)
    }

    /// Replays into the view what an earlier failed view update left out; call with the ledger's
    /// `append_lock` held.
    fn catch_up_if_behind(
        &self,
        tenant: &TenantId,
        ledger: &TenantLedger,
    ) -> Result<(), EngineError> {
        if ledger.view_behind.load(Ordering::Acquire) {
            self.catch_up_view(tenant, ledger)?;
            ledger.view_behind.store(false, Ordering::Release);
            tracing::info!(tenant = %tenant, "consent view caught up with the ledger");
        }
        Ok(())
    }

    /// A tenant's access log (`DATA/audit/<tenant>/`), opened on first use.
    pub(crate) fn access_log(&self, tenant: &TenantId) -> Result<Arc<TenantLedger>, EngineError> {
        self.open_log(&self.access_logs, tenant, |_| Ok(()))
    }

    /// Opens one of a tenant's logs with its signer and published verifier key, running
    /// `on_open` once before anyone else can use it.
    fn open_log(
        &self,
        logs: &Ledgers,
        tenant: &TenantId,
        on_open: impl FnOnce(&TenantLedger) -> Result<(), EngineError>,
    ) -> Result<Arc<TenantLedger>, EngineError> {
        let mut open = logs.open.lock().unwrap_or_else(|p| p.into_inner());
        match open.get(tenant) {
            // After a failed write (a full disk) a log refuses writes until it is reopened:
            // reopen it here, so the server recovers by itself once space is back. Reopening
            // cuts the unacknowledged tail of the failed write.
            Some(ledger) if ledger.log.is_poisoned() => {
                tracing::warn!(tenant = %tenant, log = logs.name, "reopening a log after a failed write");
                open.remove(tenant);
            }
            Some(ledger) => return Ok(ledger.clone()),
            None => {}
        }
        // Opening a log may create it and publish its verifier key: a write.
        let _pass = self.write_pass();
        let dir = Ledgers::dir(&logs.root, tenant);
        let key = self.keys(tenant)?.log_signing_key(logs.name)?;
        let origin = format!("{}/{tenant}/{}", logs.origin_prefix, logs.name);
        let signer = NoteSigner::new(&origin, key)?;
        // Created atomically with its verifier key, so a full disk or a crash during the first
        // use of a tenant leaves either no log or a complete one.
        let log = Log::open_with_verifier_key(&dir, &signer.verifier_key())?;
        log.set_witness_dir(logs.witness_dir.clone());
        let ledger = Arc::new(TenantLedger {
            log,
            signer,
            append_lock: Mutex::new(()),
            commits: GroupCommit::default(),
            view_behind: AtomicBool::new(false),
        });
        on_open(&ledger)?;
        open.insert(tenant.clone(), ledger.clone());
        Ok(ledger)
    }

    /// Appends entries to a tenant's ledger, durable when it returns, then brings the consent view
    /// up to date and writes a checkpoint if one is due. Returns the first entry's sequence number.
    /// Concurrent appends are written together: one append with its syncs, one view update with
    /// one store flush, one checkpoint check per batch (`group`).
    pub(crate) fn append_entries(
        &self,
        tenant: &TenantId,
        ledger: &TenantLedger,
        entries: &[LedgerEntry],
    ) -> Result<u64, EngineError> {
        for entry in entries {
            // The log takes opaque bytes; an entry that breaks the field rules would encode to
            // bytes that `decode` refuses, so it never gets that far.
            entry.validate()?;
        }
        self.append_batched(tenant, ledger, entries.to_vec(), true)
    }

    /// Appends entries to a log without a view (the access log), durable when it returns, and
    /// writes a checkpoint if one is due; concurrent appends are written together as above.
    pub(crate) fn append_to_log(
        &self,
        tenant: &TenantId,
        log: &TenantLedger,
        entries: Vec<LedgerEntry>,
    ) -> Result<u64, EngineError> {
        self.append_batched(tenant, log, entries, false)
    }

    /// One request of a log's group commit: the leader of a batch appends every request's
    /// entries with one `Log::append`, updates the consent view once when `view` (in ledger
    /// order, after catching it up), checks once for a due checkpoint, and answers each caller
    /// its own first position.
    fn append_batched(
        &self,
        tenant: &TenantId,
        ledger: &TenantLedger,
        entries: Vec<LedgerEntry>,
        view: bool,
    ) -> Result<u64, EngineError> {
        // Every caller holds its own pass while it waits, so a backup's pause never finds a
        // leader waiting for a pass behind a caller that holds one.
        let _pass = self.write_pass();
        let weight = entries.len();
        let first = ledger.commits.submit(entries, weight, |batch| {
            let _guard = ledger.append_lock.lock().unwrap_or_else(|p| p.into_inner());
            if view {
                // The flags of a new entry build on the view: bring it up to date first (an
                // error here appends nothing).
                self.catch_up_if_behind(tenant, ledger)?;
            }
            let bytes: Vec<Vec<u8>> = batch.iter().flatten().map(LedgerEntry::encode).collect();
            let first = match ledger.log.append(&bytes) {
                Ok(first) => first,
                Err(e) => return Ok(vec![Err(e); batch.len()]),
            };
            // From here on the entries are durable, and the answers must say so. A failed view
            // update (the store's disk is full) is caught up from the ledger at the next use; a
            // failed checkpoint is written by the next append or the server's timer.
            if view && let Err(e) = self.apply_to_view(tenant, first, batch.iter().flatten()) {
                ledger.view_behind.store(true, Ordering::Release);
                tracing::warn!(tenant = %tenant, error = %e, "consent view update failed after the ledger append; it catches up at the next use");
            }
            if let Err(e) = self.checkpoint_if_due(ledger) {
                tracing::warn!(tenant = %tenant, error = %e, "checkpoint after an append failed; the next one covers these entries");
            }
            Ok::<_, EngineError>(firsts(first, batch))
        })?;
        Ok(first?)
    }

    /// Signs a checkpoint once enough entries were appended since the last one.
    pub(crate) fn checkpoint_if_due(&self, ledger: &TenantLedger) -> Result<(), EngineError> {
        let latest = ledger.log.latest_checkpoint()?.map_or(0, |c| c.tree_size);
        if ledger.log.tree_size() - latest >= self.ledgers.policy.every_entries {
            ledger.log.checkpoint(&ledger.signer)?;
        }
        Ok(())
    }

    /// Updates the consent view with entries `first..` and moves the watermark past them.
    fn apply_to_view<'a>(
        &self,
        tenant: &TenantId,
        first: u64,
        entries: impl IntoIterator<Item = &'a LedgerEntry>,
    ) -> Result<(), EngineError> {
        let mut batch = WriteBatch::new();
        let mut flags: Vec<(Pseudonym, SubjectFlagsRecord)> = Vec::new();
        let mut end = first;
        for (offset, entry) in entries.into_iter().enumerate() {
            let seq = first + offset as u64;
            end = seq + 1;
            let Some(subject) = entry.subject else {
                continue;
            };
            batch.put_consent_history(tenant, &subject, seq);
            if let Some(change) = flag_change(entry) {
                // Several entries of one batch may concern the same subject: read what this
                // batch already set before the store.
                let current = match flags.iter().position(|(s, _)| *s == subject) {
                    Some(i) => flags.swap_remove(i).1,
                    None => self.store.subject_flags(tenant, &subject)?,
                };
                let mut next = change(current);
                next.since = entry.time;
                next.seq = seq;
                flags.push((subject, next));
                continue;
            }
            let state = match entry.kind.as_str() {
                kind::GRANTED => ConsentState::Granted,
                kind::WITHDRAWN => ConsentState::Withdrawn,
                _ => continue,
            };
            if let Some(purpose) = &entry.purpose {
                batch.put_consent(&ConsentRecord {
                    tenant: tenant.clone(),
                    subject,
                    purpose: purpose.clone(),
                    state,
                    since: entry.time,
                    seq,
                });
            }
        }
        for (subject, record) in &flags {
            batch.put_subject_flags(tenant, subject, record);
        }
        batch.put_meta(&watermark_name(tenant), &end.to_be_bytes());
        self.store.write(batch)?;
        self.store.flush()?;
        Ok(())
    }

    /// Replays ledger entries the view has not seen (after a crash between append and view
    /// update, or when the view was deleted to be rebuilt).
    fn catch_up_view(&self, tenant: &TenantId, ledger: &TenantLedger) -> Result<(), EngineError> {
        const PAGE: usize = 1_000;
        let mut next = match self.store.meta(&watermark_name(tenant))? {
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| EngineError::Corrupt("consent view watermark"))?,
            ),
            None => 0,
        };
        let size = ledger.log.tree_size();
        if next > size {
            // The view claims more than the ledger holds: the ledger lost entries. Refuse to run
            // on a view that no longer matches its source.
            return Err(EngineError::Corrupt("consent view ahead of the ledger"));
        }
        while next < size {
            let page = ledger.log.entries(next, PAGE)?;
            let entries = page
                .iter()
                .map(|(_, bytes)| LedgerEntry::decode(bytes))
                .collect::<Result<Vec<_>, _>>()?;
            self.apply_to_view(tenant, next, &entries)?;
            next += entries.len() as u64;
            if entries.is_empty() {
                break;
            }
        }
        Ok(())
    }

    /// Appends a `policy.published` entry when the policies in force differ from the last ones
    /// published in this tenant's ledger, so every consent points at a published version.
    fn publish_policy(&self, tenant: &TenantId, ledger: &TenantLedger) -> Result<(), EngineError> {
        let hash = self.policy_hash_bytes();
        if self.store.meta(&published_name(tenant))?.as_deref() == Some(&hash[..]) {
            return Ok(());
        }
        let mut entry = new_entry(self.clock.now(), tenant, kind::POLICY_PUBLISHED);
        entry.policy_hash = Some(hash);
        entry
            .attributes
            .insert("version".to_owned(), self.policies.version().to_owned());
        self.append_entries(tenant, ledger, std::slice::from_ref(&entry))?;
        let mut batch = WriteBatch::new();
        batch.put_meta(&published_name(tenant), &hash);
        self.store.write(batch)?;
        self.store.flush()?;
        tracing::info!(tenant = %tenant, version = self.policies.version(), "policy version published in the ledger");
        Ok(())
    }

    /// Records in the ledger that `merged` was merged into `into`, and carries the merged
    /// subject's consent decisions over where they are newer than the survivor's own (the same
    /// person decided them before signing in). Each carried decision is a new entry for the
    /// survivor that names the entry it carries (`carried_from_seq`); evidence stays with the
    /// original entry.
    pub(crate) fn record_merge(
        &self,
        tenant: &TenantId,
        merged: custodia_core::SubjectId,
        into: custodia_core::SubjectId,
    ) -> Result<(), EngineError> {
        let ledger = self.ledger(tenant)?;
        let keys = self.keys(tenant)?;
        let (from, to) = (keys.pseudonym(merged), keys.pseudonym(into));
        let now = self.clock.now();
        let mut note = new_entry(now, tenant, kind::SUBJECT_MERGED);
        note.subject = Some(to);
        note.attributes
            .insert("merged_from".to_owned(), from.to_string());
        let mut entries = vec![note];
        let survivor = self.store.consents(tenant, &to)?;
        for decision in self.store.consents(tenant, &from)? {
            let current = survivor.iter().find(|c| c.purpose == decision.purpose);
            if current.is_some_and(|c| c.since >= decision.since) {
                continue;
            }
            let Some(purpose) = self.policies.purpose(&decision.purpose) else {
                continue;
            };
            let granted = decision.state == ConsentState::Granted;
            let mut carried = self.decision_entry(now, tenant, to, purpose, granted);
            carried
                .attributes
                .insert("carried_from_seq".to_owned(), decision.seq.to_string());
            entries.push(carried);
        }
        self.append_entries(tenant, &ledger, &entries)?;
        Ok(())
    }

    /// Signs a checkpoint for every open ledger that grew since its last one (the server calls
    /// this on a timer) and returns every open ledger's latest checkpoint, for outside witnesses.
    pub fn checkpoint_open_ledgers(&self) -> Result<Vec<(TenantId, Checkpoint)>, EngineError> {
        let mut open: Vec<(TenantId, Arc<TenantLedger>)> = Vec::new();
        for logs in [&self.ledgers, &self.access_logs] {
            let map = logs.open.lock().unwrap_or_else(|p| p.into_inner());
            open.extend(map.iter().map(|(t, l)| (t.clone(), l.clone())));
        }
        let _pass = self.write_pass();
        open.into_iter()
            .map(|(tenant, ledger)| Ok((tenant, ledger.log.checkpoint(&ledger.signer)?)))
            .collect()
    }

    /// The current consent of a subject for a purpose: `None` if never decided.
    pub(crate) fn consent_of(
        &self,
        tenant: &TenantId,
        subject: &Pseudonym,
        purpose: &PurposeId,
    ) -> Result<Option<ConsentRecord>, EngineError> {
        // Opening the ledger first replays anything the view missed.
        self.ledger(tenant)?;
        Ok(self.store.consent(tenant, subject, purpose)?)
    }

    /// Whether a granted consent given at `since` has expired by `now` under the purpose's rule.
    pub(crate) fn is_expired(&self, purpose: &PurposeId, since: Timestamp, now: Timestamp) -> bool {
        let days = self
            .policies
            .purpose(purpose)
            .and_then(|p| p.consent_expiry_days);
        days.is_some_and(|d| since.plus_days(i64::from(d)) <= now)
    }
}
