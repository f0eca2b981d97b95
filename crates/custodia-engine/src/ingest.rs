//! Ingestion: `identify`, `track` and `batch`, with identity resolution.
//!
//! Resolution rules, in the order they are tried:
//! - the `userId` names a subject and the `anonymousId` names a different, anonymous one: the
//!   anonymous subject is merged into the known one (its traits fill gaps, its events are
//!   re-encrypted under the survivor's key, a merge record is kept and its data key destroyed);
//! - the `userId` names a subject: that subject (the `anonymousId` is linked to it);
//! - the `anonymousId` names an anonymous subject: that subject (the `userId` is linked to it);
//! - the `anonymousId` names a subject known under another `userId` (a shared device): the
//!   anonymous id moves to the subject of the new `userId`, never merging two known people;
//! - nothing matches: a new subject with a random id and a fresh data key.

use custodia_core::{EventId, Operation, Personal, SubjectId, TenantId, Timestamp};
use custodia_store::{EventRecord, LookupKind, MergeRecord, SubjectRecord, WriteBatch};
use custodia_vault::TenantVault;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::input::{AliasInput, GroupInput, IdentifyInput, TrackInput};
use crate::profile::{
    EventData, IndexEntries, PROFILE_KIND, ProfileData, event_kind, index_entries, open_json,
    put_subject, seal_json,
};
use crate::{Caller, Engine, EngineError};

#[cfg(test)]
mod tests;

/// Anonymous ids kept per subject; the oldest drop out beyond this (devices come and go).
const MAX_ANONYMOUS_IDS: usize = 64;
/// Events moved per store batch while merging.
const MERGE_PAGE: usize = 1_000;
/// How long a `messageId` is remembered by default: a retry within this window is acknowledged
/// with the original answer and not stored again.
pub const DEFAULT_IDEMPOTENCY_DAYS: u32 = 7;
/// Expired idempotency entries removed per write call, so the table stays bounded by the
/// window without a sweep that could take long.
const IDEMPOTENCY_PRUNE: usize = 256;
/// The look-up-hash domain of message ids (keyed by the tenant's look-up key, never stored plain).
const MESSAGE_ID_KIND: &str = "message_id";

/// The answer to an identify, group or alias call.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IdentifyOutcome {
    /// The subject the call resolved to.
    pub subject_id: SubjectId,
    /// Whether the subject was created by this call.
    pub created: bool,
}

/// The answer to a track, page or screen call.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TrackOutcome {
    /// The subject the call resolved to.
    pub subject_id: SubjectId,
    /// The stored event.
    pub event_id: EventId,
}

/// One item of a batch.
#[derive(Debug, Clone)]
pub enum BatchItem {
    /// An identify call.
    Identify(IdentifyInput),
    /// A track, page or screen call.
    Track(TrackInput),
    /// A group call.
    Group(GroupInput),
    /// An alias call.
    Alias(AliasInput),
}

impl BatchItem {
    fn user_id(&self) -> Option<&Personal<String>> {
        match self {
            BatchItem::Identify(input) => input.user_id.as_ref(),
            BatchItem::Track(input) => input.user_id.as_ref(),
            BatchItem::Group(input) => input.user_id.as_ref(),
            BatchItem::Alias(input) => Some(&input.user_id),
        }
    }

    /// The item's external ids, as identity resolution reads them.
    fn ids(&self) -> Ids<'_> {
        match self {
            BatchItem::Identify(input) => Ids::of(&input.user_id, &input.anonymous_id),
            BatchItem::Track(input) => Ids::of(&input.user_id, &input.anonymous_id),
            BatchItem::Group(input) => Ids::of(&input.user_id, &input.anonymous_id),
            BatchItem::Alias(input) => Ids {
                user_id: Some(&input.user_id),
                anonymous_id: Some(&input.previous_id),
            },
        }
    }

    fn message_id(&self) -> Option<&Personal<String>> {
        match self {
            BatchItem::Identify(input) => input.message_id.as_ref(),
            BatchItem::Track(input) => input.message_id.as_ref(),
            BatchItem::Group(input) => input.message_id.as_ref(),
            BatchItem::Alias(input) => input.message_id.as_ref(),
        }
    }
}

/// The answer for one item of a batch.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum BatchOutcome {
    /// The item was an identify, group or alias call.
    Identify(IdentifyOutcome),
    /// The item was a track, page or screen call.
    Track(TrackOutcome),
    /// The item's `messageId` was applied before: the original answer, nothing stored again.
    Repeated(Value),
}

/// A merge, as shown to auditors: ids, time and counts, no personal data.
#[derive(Debug, Clone, Copy, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MergeView {
    /// The anonymous subject that was merged away.
    pub merged: SubjectId,
    /// The subject that holds its data now.
    pub into: SubjectId,
    /// When.
    pub at: Timestamp,
    /// How many events moved.
    pub n_events_moved: u64,
}

/// One ingest call (a single message or a batch) waiting for the ingest committer.
pub(crate) struct IngestRequest {
    tenant: TenantId,
    items: Vec<BatchItem>,
}

/// The committer's answer to one [`IngestRequest`]: one outcome per item.
pub(crate) type IngestResult = Result<Vec<BatchOutcome>, EngineError>;

/// A request applied by the committer: its answer, and what is left to do once it is durable.
pub(crate) type Applied = (IngestResult, AfterCommit);

/// What one resolved write leaves to do once its batch is durable.
#[derive(Default)]
pub(crate) struct AfterCommit {
    /// Data keys of subjects merged away, destroyed only after the merge is on disk.
    destroy: Vec<SubjectId>,
    /// Merges to record in the consent ledger: (merged, survivor).
    merges: Vec<(SubjectId, SubjectId)>,
}

impl Engine {
    /// Records an identify call; durable when it returns.
    pub fn identify(
        &self,
        caller: &Caller,
        input: &IdentifyInput,
    ) -> Result<IdentifyOutcome, EngineError> {
        match self.apply(caller, BatchItem::Identify(input.clone()))? {
            BatchOutcome::Identify(outcome) => Ok(outcome),
            other => repeated(other),
        }
    }

    /// Records a group call: the group's id and traits go under the person's `groups` trait.
    pub fn group(
        &self,
        caller: &Caller,
        input: &GroupInput,
    ) -> Result<IdentifyOutcome, EngineError> {
        match self.apply(caller, BatchItem::Group(input.clone()))? {
            BatchOutcome::Identify(outcome) => Ok(outcome),
            other => repeated(other),
        }
    }

    /// Records an alias call: `previousId` is linked to `userId` by the rules of identify (an
    /// anonymous subject known by `previousId` is merged into the `userId`'s).
    pub fn alias(
        &self,
        caller: &Caller,
        input: &AliasInput,
    ) -> Result<IdentifyOutcome, EngineError> {
        match self.apply(caller, BatchItem::Alias(input.clone()))? {
            BatchOutcome::Identify(outcome) => Ok(outcome),
            other => repeated(other),
        }
    }

    /// One call outside a batch; durable when it returns.
    fn apply(&self, caller: &Caller, item: BatchItem) -> Result<BatchOutcome, EngineError> {
        caller.require(Operation::Ingest)?;
        self.commit_items(&caller.tenant, vec![item])?
            .pop()
            .ok_or(EngineError::Corrupt("ingest answer"))
    }

    /// Queues a call's items for the ingest committer and returns once they are durable: the
    /// caller that leads applies every call waiting, in arrival order, as one group (see
    /// [`Engine::apply_ingest`]); then each caller waits for a store flush that covers its
    /// writes. Flushes are shared (the store's group commit), and the next group is applied
    /// while this one's flush runs, as a database's WAL insert and WAL flush overlap.
    fn commit_items(&self, tenant: &TenantId, items: Vec<BatchItem>) -> IngestResult {
        // Every caller holds its own pass while it waits, so a backup's pause never finds a
        // leader waiting for a pass behind a caller that holds one.
        let _pass = self.write_pass();
        let weight = items.len();
        let request = IngestRequest {
            tenant: tenant.clone(),
            items,
        };
        let (result, after) = self
            .ingest_commits
            .submit(request, weight, |batch| self.apply_ingest(batch))?;
        // Nothing is acknowledged before it is durable. A failed flush answers every caller
        // whose writes it was to cover with the error (each retries the flush first: a caller
        // whose retry succeeds is durable and answered so).
        self.store.flush()?;
        // Merges are recorded, and merged-away keys destroyed, only once the merge is on disk.
        self.after_commit(tenant, after)?;
        result
    }

    /// The ingest committer's group: under the write lock, the keys of every subject the group
    /// may create are written with one sync of each tenant's key store, then each call's items
    /// are resolved and applied in order exactly as one call at a time would be. An `Err` (the
    /// expired message ids could not be removed: a full disk) means no item was applied.
    fn apply_ingest(&self, batch: &[IngestRequest]) -> Result<Vec<Applied>, EngineError> {
        let mut applied = Vec::with_capacity(batch.len());
        {
            let _guard = self.lock_writes();
            let mut tenants: Vec<&TenantId> = Vec::new();
            for request in batch {
                if !tenants.contains(&&request.tenant) {
                    tenants.push(&request.tenant);
                }
            }
            for tenant in tenants {
                self.prune_idempotency(tenant)?;
                let items = batch
                    .iter()
                    .filter(|r| &r.tenant == tenant)
                    .flat_map(|r| &r.items);
                // The reservation only saves syncs: if it fails, each new subject makes its
                // own key as before and its call alone gets the error.
                if let Err(e) = self.reserve_data_keys(tenant, items) {
                    tracing::warn!(tenant = %tenant, error = %e, "fresh data keys for an ingest group could not be written; new subjects make their own");
                }
            }
            for request in batch {
                let mut after = AfterCommit::default();
                let outcomes = request
                    .items
                    .iter()
                    .map(|item| {
                        #[cfg(test)]
                        self.ingest_trace
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(item.clone());
                        self.item_locked(&request.tenant, item, &mut after)
                    })
                    .collect::<Result<Vec<_>, _>>();
                // A call whose items failed half-way is flushed too, so that the state on
                // disk matches what later reads see.
                applied.push((outcomes, after));
            }
        }
        Ok(applied)
    }

    /// Makes sure the tenant's pool of fresh data keys (written and synced, not yet any
    /// subject's) holds one key for each of `items` that may create a subject: the items none of
    /// whose ids is known yet, counting ids shared by several items once. The missing keys are
    /// written with one sync. A guess too low costs speed only: `create` then makes its key
    /// with a sync of its own.
    fn reserve_data_keys<'a>(
        &self,
        tenant: &TenantId,
        items: impl Iterator<Item = &'a BatchItem>,
    ) -> Result<(), EngineError> {
        let keys = self.keys(tenant)?;
        let mut seen: std::collections::HashSet<[u8; 32]> = std::collections::HashSet::new();
        let mut wanted = 0usize;
        for item in items {
            let ids = item.ids();
            let mut hashes = Vec::with_capacity(2);
            if let Some(u) = ids.user_id {
                hashes.push((LookupKind::UserId, ids.user_hash(&keys, u)));
            }
            if let Some(a) = ids.anonymous_id {
                hashes.push((LookupKind::AnonymousId, ids.anon_hash(&keys, a)));
            }
            let mut known = hashes.iter().any(|(_, h)| seen.contains(h));
            for (kind, hash) in &hashes {
                if !known {
                    known = self.store.lookup(tenant, *kind, hash)?.is_some();
                }
            }
            seen.extend(hashes.into_iter().map(|(_, h)| h));
            if !known {
                wanted += 1;
            }
        }
        let mut pool = self.fresh_keys.lock().unwrap_or_else(|p| p.into_inner());
        let have = pool.get(tenant).map_or(0, Vec::len);
        if wanted > have {
            let ids = (0..wanted - have)
                .map(|_| custodia_vault::random_array().map(SubjectId::from_random))
                .collect::<Result<Vec<_>, _>>()?;
            keys.create_data_keys(&ids)?;
            pool.entry(tenant.clone()).or_default().extend(ids);
        }
        Ok(())
    }

    /// A fresh subject id whose data key is already durable, taken from the tenant's pool.
    fn take_fresh_key(&self, tenant: &TenantId) -> Option<SubjectId> {
        self.fresh_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(tenant)
            .and_then(Vec::pop)
    }

    /// Destroys the fresh keys no subject took (when the engine closes), so that the key store
    /// holds only subjects' keys. A crash skips this: its leftover keys, at most one batch's
    /// guess too many, wrap random keys that nothing was ever sealed under.
    pub(crate) fn release_fresh_keys(&self) {
        let pool = std::mem::take(&mut *self.fresh_keys.lock().unwrap_or_else(|p| p.into_inner()));
        for (tenant, ids) in pool {
            let Ok(keys) = self.keys(&tenant) else {
                continue;
            };
            for id in ids {
                if let Err(e) = keys.destroy_data_key(id) {
                    tracing::warn!(tenant = %tenant, error = %e, "an unused fresh data key could not be destroyed");
                }
            }
        }
    }

    /// How many fresh data keys the tenant's pool holds (they are no subject's yet).
    pub(crate) fn n_fresh_keys(&self, tenant: &TenantId) -> usize {
        self.fresh_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tenant)
            .map_or(0, Vec::len)
    }

    /// How long message ids are remembered.
    pub fn set_idempotency_days(&self, days: u32) {
        self.idempotency_days
            .store(days.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The oldest time an idempotency entry still counts: now less the window.
    pub(crate) fn idempotency_window_start(&self) -> Timestamp {
        let days = self
            .idempotency_days
            .load(std::sync::atomic::Ordering::Relaxed);
        self.clock.now().plus_days(-i64::from(days))
    }

    /// Removes a bounded number of expired idempotency entries.
    pub(crate) fn prune_idempotency(&self, tenant: &TenantId) -> Result<(), EngineError> {
        let before = self.idempotency_window_start();
        let expired = self
            .store
            .idempotency_expired(tenant, before, IDEMPOTENCY_PRUNE)?;
        if expired.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for (seen_at, hash) in &expired {
            batch.delete_idempotency(tenant, hash, *seen_at);
        }
        self.store.write(batch)?;
        Ok(())
    }

    /// Applies one item, or answers a repeated `messageId` with the original answer.
    fn item_locked(
        &self,
        tenant: &TenantId,
        item: &BatchItem,
        after: &mut AfterCommit,
    ) -> Result<BatchOutcome, EngineError> {
        let seen = match item.message_id() {
            Some(id) => {
                let keys = self.keys(tenant)?;
                Some(keys.lookup_hash(MESSAGE_ID_KIND, id.expose()).0)
            }
            None => None,
        };
        if let Some(hash) = &seen
            && let Some((_, answer)) = self.store.idempotency(tenant, hash)?
        {
            let original: Value = serde_json::from_slice(&answer)
                .map_err(|_| EngineError::Corrupt("idempotency entry"))?;
            return Ok(BatchOutcome::Repeated(original));
        }
        let outcome = match item {
            BatchItem::Identify(input) => {
                BatchOutcome::Identify(self.identify_locked(tenant, input, after)?)
            }
            BatchItem::Track(input) => {
                BatchOutcome::Track(self.track_locked(tenant, input, after)?)
            }
            BatchItem::Group(input) => {
                BatchOutcome::Identify(self.group_locked(tenant, input, after)?)
            }
            BatchItem::Alias(input) => {
                BatchOutcome::Identify(self.alias_locked(tenant, input, after)?)
            }
        };
        if let Some(hash) = seen {
            let answer = serde_json::to_vec(&outcome).map_err(|_| EngineError::Corrupt("json"))?;
            let mut batch = WriteBatch::new();
            batch.put_idempotency(tenant, &hash, self.clock.now(), &answer);
            self.store.write(batch)?;
        }
        Ok(outcome)
    }

    /// Records a track call; durable when it returns.
    pub fn track(&self, caller: &Caller, input: &TrackInput) -> Result<TrackOutcome, EngineError> {
        match self.apply(caller, BatchItem::Track(input.clone()))? {
            BatchOutcome::Track(outcome) => Ok(outcome),
            other => repeated(other),
        }
    }

    /// Records a batch whose items were all parsed and validated before this call (a batch with
    /// one bad item never gets here). Items are applied in order and acknowledged together after
    /// one flush.
    pub fn batch(
        &self,
        caller: &Caller,
        items: &[BatchItem],
    ) -> Result<Vec<BatchOutcome>, EngineError> {
        caller.require(Operation::Ingest)?;
        // A suppressed person anywhere in the batch refuses all of it, before anything is written.
        let keys = self.keys(&caller.tenant)?;
        for (i, item) in items.iter().enumerate() {
            if let Some(user_id) = item.user_id() {
                match self.check_not_suppressed(&keys, &caller.tenant, user_id) {
                    Err(EngineError::SubjectSuppressed) => {
                        return Err(EngineError::SuppressedItem {
                            field: format!("/batch/{i}/userId"),
                        });
                    }
                    other => other?,
                }
            }
        }
        self.commit_items(&caller.tenant, items.to_vec())
    }

    /// Every merge of the caller's tenant, oldest first (role needs the `audit` operation).
    pub fn merges(&self, caller: &Caller) -> Result<Vec<MergeView>, EngineError> {
        self.merges_of(caller, None)
    }

    /// The merges that made `subject` what it is (every subject merged into it, and into those,
    /// and so on) and the one that merged it away, if any; all of them without a subject.
    pub fn merges_of(
        &self,
        caller: &Caller,
        subject: Option<SubjectId>,
    ) -> Result<Vec<MergeView>, EngineError> {
        caller.require(Operation::Audit)?;
        let mut merges: Vec<MergeView> = self
            .store
            .merges(&caller.tenant)?
            .into_iter()
            .map(|m| MergeView {
                merged: m.merged,
                into: m.into,
                at: m.at,
                n_events_moved: m.n_events_moved,
            })
            .collect();
        merges.sort_by_key(|m| m.at);
        let Some(subject) = subject else {
            return Ok(merges);
        };
        let mut family: std::collections::BTreeSet<SubjectId> = [subject].into();
        loop {
            let before = family.len();
            for m in &merges {
                if family.contains(&m.into) {
                    family.insert(m.merged);
                }
            }
            if family.len() == before {
                break;
            }
        }
        merges.retain(|m| family.contains(&m.into) || m.merged == subject);
        Ok(merges)
    }

    /// Applies a batch for the system itself (the demo loader), without a caller.
    pub(crate) fn batch_as_system(
        &self,
        tenant: &TenantId,
        items: &[BatchItem],
    ) -> Result<(), EngineError> {
        self.commit_items(tenant, items.to_vec()).map(drop)
    }

    /// What a call leaves to do once its batch is durable.
    fn after_commit(&self, tenant: &TenantId, after: AfterCommit) -> Result<(), EngineError> {
        // The ledger learns of merges once they are on disk; their consent carries over.
        for (merged, into) in &after.merges {
            self.record_merge(tenant, *merged, *into)?;
        }
        if !after.destroy.is_empty() {
            let keys = self.keys(tenant)?;
            for id in after.destroy {
                keys.destroy_data_key(id)?;
            }
        }
        Ok(())
    }

    fn identify_locked(
        &self,
        tenant: &TenantId,
        input: &IdentifyInput,
        after: &mut AfterCommit,
    ) -> Result<IdentifyOutcome, EngineError> {
        let keys = self.keys(tenant)?;
        let ids = Ids::of(&input.user_id, &input.anonymous_id);
        let (subject_id, created) =
            self.resolve(&keys, tenant, ids, Some(input.traits.expose()), after)?;
        Ok(IdentifyOutcome {
            subject_id,
            created,
        })
    }

    fn track_locked(
        &self,
        tenant: &TenantId,
        input: &TrackInput,
        after: &mut AfterCommit,
    ) -> Result<TrackOutcome, EngineError> {
        let keys = self.keys(tenant)?;
        let ids = Ids::of(&input.user_id, &input.anonymous_id);
        // `context.traits` on a track call update the person, as RudderStack intends them.
        let traits = Some(input.traits.expose()).filter(|t| !t.is_empty());
        let (subject_id, _) = self.resolve(&keys, tenant, ids, traits, after)?;
        let now = self.clock.now();
        let event_id = self.next_event_id(now)?;
        let data = EventData {
            v: 1,
            event: input.event.clone(),
            properties: input.properties.expose().clone(),
            timestamp: input.timestamp,
            context: input.context.expose().clone(),
        };
        let key = keys.data_key(subject_id)?;
        let record = EventRecord {
            tenant: tenant.clone(),
            subject: subject_id,
            id: event_id,
            received_at: now,
            sealed: seal_json(&key, tenant, subject_id, &event_kind(event_id), &data)?,
        };
        let mut batch = WriteBatch::new();
        batch.put_event(&record);
        if data.event == "Order Completed" && data.properties.contains_key("order_id") {
            // Order ids are searchable.
            self.queue_search(&mut batch, tenant, subject_id);
        }
        if let Some(kind) = self.fact_kind(&data.event, &data.properties) {
            let time = input.timestamp.unwrap_or(now);
            self.put_fact(
                &mut batch,
                tenant,
                keys.pseudonym(subject_id),
                event_id,
                time,
                kind,
            );
        }
        self.store.write(batch)?;
        Ok(TrackOutcome {
            subject_id,
            event_id,
        })
    }

    fn group_locked(
        &self,
        tenant: &TenantId,
        input: &GroupInput,
        after: &mut AfterCommit,
    ) -> Result<IdentifyOutcome, EngineError> {
        let keys = self.keys(tenant)?;
        let ids = Ids::of(&input.user_id, &input.anonymous_id);
        let traits = Some(input.traits.expose()).filter(|t| !t.is_empty());
        let (subject_id, created) = self.resolve(&keys, tenant, ids, traits, after)?;
        // `groups` maps each group id to its traits; a later call's traits win per name.
        let record = self.subject_record(tenant, subject_id)?;
        let (_, data) = self.open_profile(&keys, &record)?;
        let mut groups = data
            .traits
            .get(GROUPS_TRAIT)
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let group_id = input.group_id.expose().clone();
        let mut group = groups
            .remove(&group_id)
            .and_then(|v| match v {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .unwrap_or_default();
        group.extend(input.group_traits.expose().clone());
        groups.insert(group_id, Value::Object(group));
        let mut changes = Map::new();
        changes.insert(GROUPS_TRAIT.to_owned(), Value::Object(groups));
        let now = self.clock.now();
        self.update(&keys, tenant, subject_id, ids, Some(&changes), now)?;
        Ok(IdentifyOutcome {
            subject_id,
            created,
        })
    }

    fn alias_locked(
        &self,
        tenant: &TenantId,
        input: &AliasInput,
        after: &mut AfterCommit,
    ) -> Result<IdentifyOutcome, EngineError> {
        let keys = self.keys(tenant)?;
        let user_id = Some(input.user_id.clone());
        let previous_id = Some(input.previous_id.clone());
        let ids = Ids::of(&user_id, &previous_id);
        let (subject_id, created) = self.resolve(&keys, tenant, ids, None, after)?;
        Ok(IdentifyOutcome {
            subject_id,
            created,
        })
    }

    /// Refuses a `userId` whose owner was erased and asked never to be stored again.
    fn check_not_suppressed(
        &self,
        keys: &TenantVault,
        tenant: &TenantId,
        user_id: &Personal<String>,
    ) -> Result<(), EngineError> {
        let hash = keys.lookup_hash(LookupKind::UserId.as_str(), user_id.expose());
        match self.store.suppressed(tenant, &hash.0)? {
            Some(_) => Err(EngineError::SubjectSuppressed),
            None => Ok(()),
        }
    }

    /// Finds or creates the subject for the ids, applies trait changes, writes the profile.
    fn resolve(
        &self,
        keys: &TenantVault,
        tenant: &TenantId,
        ids: Ids<'_>,
        traits: Option<&Map<String, Value>>,
        after: &mut AfterCommit,
    ) -> Result<(SubjectId, bool), EngineError> {
        if let Some(user_id) = ids.user_id {
            self.check_not_suppressed(keys, tenant, user_id)?;
        }
        let by_user = match ids.user_id {
            Some(u) => self
                .store
                .lookup(tenant, LookupKind::UserId, &ids.user_hash(keys, u))?,
            None => None,
        };
        let by_anon = match ids.anonymous_id {
            Some(a) => {
                self.store
                    .lookup(tenant, LookupKind::AnonymousId, &ids.anon_hash(keys, a))?
            }
            None => None,
        };
        let now = self.clock.now();
        match (by_user, by_anon) {
            (Some(known), Some(anon)) if known != anon => {
                let anon_record = self.subject_record(tenant, anon)?;
                let (_, anon_data) = self.open_profile(keys, &anon_record)?;
                if anon_data.user_id.is_some() {
                    // Two known people shared a device: move the anonymous id, merge nobody.
                    self.unlink_anonymous(keys, anon_record, anon_data, ids, now)?;
                    self.update(keys, tenant, known, ids, traits, now)?;
                } else {
                    self.merge(keys, anon_record, anon_data, known, ids, traits, now, after)?;
                }
                Ok((known, false))
            }
            (Some(known), _) => {
                // Found by its user id, with no anonymous id to link and no traits to apply:
                // nothing of the profile can change (it holds that user id), so it is not read.
                if ids.anonymous_id.is_some() || traits.is_some_and(|t| !t.is_empty()) {
                    self.update(keys, tenant, known, ids, traits, now)?;
                }
                Ok((known, false))
            }
            (None, Some(anon)) => {
                let anon_record = self.subject_record(tenant, anon)?;
                let (_, anon_data) = self.open_profile(keys, &anon_record)?;
                if ids.user_id.is_some() && anon_data.user_id.is_some() {
                    // The device's earlier user is someone else: the new user is a new person.
                    self.unlink_anonymous(keys, anon_record, anon_data, ids, now)?;
                    let id = self.create(keys, tenant, ids, traits, now)?;
                    Ok((id, true))
                } else {
                    self.update(keys, tenant, anon, ids, traits, now)?;
                    Ok((anon, false))
                }
            }
            (None, None) => {
                let id = self.create(keys, tenant, ids, traits, now)?;
                Ok((id, true))
            }
        }
    }

    fn create(
        &self,
        keys: &TenantVault,
        tenant: &TenantId,
        ids: Ids<'_>,
        traits: Option<&Map<String, Value>>,
        now: Timestamp,
    ) -> Result<SubjectId, EngineError> {
        // The key is on disk (synced) before any data sealed under it is: one of the batch's
        // fresh keys, or one made and synced now.
        let (id, key) = match self.take_fresh_key(tenant) {
            Some(id) => (id, keys.data_key(id)?),
            None => {
                let id = SubjectId::from_random(custodia_vault::random_array()?);
                (id, keys.create_data_key(id)?)
            }
        };
        let mut data = ProfileData {
            v: 1,
            ..ProfileData::default()
        };
        ids.link_into(&mut data);
        if let Some(changes) = traits {
            data.apply(changes, now);
        }
        let IndexEntries { lookups, blind } = index_entries(keys, &data);
        let record = SubjectRecord {
            tenant: tenant.clone(),
            id,
            created_at: now,
            updated_at: now,
            sealed_profile: seal_json(&key, tenant, id, PROFILE_KIND, &data)?,
            lookups,
            blind,
        };
        let mut batch = WriteBatch::new();
        put_subject(&mut batch, None, &record);
        self.queue_search(&mut batch, tenant, id);
        self.put_fact(
            &mut batch,
            tenant,
            keys.pseudonym(id),
            crate::analytics::identified_fact_id(now),
            now,
            custodia_analytics::FactKind::Identified,
        );
        self.store.write(batch)?;
        Ok(id)
    }

    fn update(
        &self,
        keys: &TenantVault,
        tenant: &TenantId,
        id: SubjectId,
        ids: Ids<'_>,
        traits: Option<&Map<String, Value>>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let record = self.subject_record(tenant, id)?;
        let (key, mut data) = self.open_profile(keys, &record)?;
        let linked = ids.link_into(&mut data);
        let changed = traits.is_some_and(|t| !t.is_empty());
        if !linked && !changed {
            return Ok(());
        }
        if let Some(changes) = traits {
            data.apply(changes, now);
        }
        self.write_profile(keys, &key, &record, &data, now)
    }

    /// Removes the call's anonymous id from a subject known under another user id.
    fn unlink_anonymous(
        &self,
        keys: &TenantVault,
        record: SubjectRecord,
        mut data: ProfileData,
        ids: Ids<'_>,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let Some(anon) = ids.anonymous_id else {
            return Ok(());
        };
        data.anonymous_ids.retain(|a| a != anon.expose());
        let key = keys.data_key(record.id)?;
        self.write_profile(keys, &key, &record, &data, now)
    }

    /// Merges the anonymous subject into the known one. The events are re-encrypted under the
    /// survivor's key in pages; the final batch deletes the anonymous subject and rewrites the
    /// survivor atomically, and the anonymous data key is destroyed after the flush.
    #[allow(clippy::too_many_arguments)]
    fn merge(
        &self,
        keys: &TenantVault,
        anon_record: SubjectRecord,
        anon_data: ProfileData,
        known: SubjectId,
        ids: Ids<'_>,
        traits: Option<&Map<String, Value>>,
        now: Timestamp,
        after: &mut AfterCommit,
    ) -> Result<(), EngineError> {
        let tenant = anon_record.tenant.clone();
        let anon = anon_record.id;
        let known_record = self.subject_record(&tenant, known)?;
        let (known_key, known_data) = self.open_profile(keys, &known_record)?;
        let anon_key = keys.data_key(anon)?;
        let (anon_p, known_p) = (keys.pseudonym(anon), keys.pseudonym(known));

        // Move events page by page. Each page is atomic: an event is either still under the
        // anonymous subject or already under the survivor, never lost or doubled.
        let mut n_moved = 0u64;
        loop {
            let page = self.store.events(&tenant, anon, None, MERGE_PAGE)?;
            if page.is_empty() {
                break;
            }
            let mut batch = WriteBatch::new();
            for old in &page {
                let kind = event_kind(old.id);
                let data: EventData =
                    open_json(&anon_key, &tenant, anon, &kind, &old.sealed, "event")?;
                let moved = EventRecord {
                    subject: known,
                    sealed: seal_json(&known_key, &tenant, known, &kind, &data)?,
                    ..old.clone()
                };
                batch.delete_event(&tenant, anon, old.id);
                batch.put_event(&moved);
                // The event's analytics fact moves to the survivor's pseudonym with it.
                batch.delete_fact(&tenant, &anon_p, old.id);
                if let Some(kind) = self.fact_kind(&data.event, &data.properties) {
                    let time = data.timestamp.unwrap_or(old.received_at);
                    self.put_fact(&mut batch, &tenant, known_p, old.id, time, kind);
                }
            }
            n_moved += page.len() as u64;
            self.store.write(batch)?;
        }

        // The survivor's traits win; the anonymous ones fill gaps; the call's own traits last.
        let mut data = ProfileData { v: 1, ..known_data };
        for (name, value) in anon_data.traits {
            if !data.traits.contains_key(&name) {
                if let Some(time) = anon_data.trait_times.get(&name) {
                    data.trait_times.insert(name.clone(), *time);
                }
                data.traits.insert(name, value);
            }
        }
        for anon_id in anon_data.anonymous_ids {
            push_anonymous(&mut data.anonymous_ids, &anon_id);
        }
        ids.link_into(&mut data);
        if let Some(changes) = traits {
            data.apply(changes, now);
        }
        let new = self.resealed(keys, &known_key, &known_record, &data, now)?;
        let mut batch = WriteBatch::new();
        // Remove the anonymous subject and its index entries first; `put_subject` then re-points
        // the look-ups the survivor took over (the last write of a key wins in a batch).
        for (kind, hash) in &anon_record.lookups {
            batch.delete_lookup(&tenant, *kind, hash);
        }
        for (field, bucket) in &anon_record.blind {
            batch.delete_blind(&tenant, field, bucket, anon);
        }
        batch.delete_subject(&tenant, anon);
        // What is left of the anonymous subject's projection (its `Identified` fact) goes.
        for event in self.store.subject_fact_ids(&tenant, &anon_p)? {
            batch.delete_fact(&tenant, &anon_p, event);
        }
        put_subject(&mut batch, Some(&known_record), &new);
        // The survivor's document takes the merged profile; the merged subject's goes.
        self.queue_search(&mut batch, &tenant, known);
        self.queue_search(&mut batch, &tenant, anon);
        batch.put_merge(&MergeRecord {
            tenant: tenant.clone(),
            merged: anon,
            into: known,
            at: now,
            n_events_moved: n_moved,
        });
        self.store.write(batch)?;
        after.destroy.push(anon);
        after.merges.push((anon, known));
        tracing::info!(merged = %anon, into = %known, n_events_moved = n_moved, "subjects merged");
        Ok(())
    }
}

/// The external ids of one call.
#[derive(Clone, Copy)]
struct Ids<'a> {
    user_id: Option<&'a Personal<String>>,
    anonymous_id: Option<&'a Personal<String>>,
}

impl<'a> Ids<'a> {
    fn of(
        user_id: &'a Option<Personal<String>>,
        anonymous_id: &'a Option<Personal<String>>,
    ) -> Ids<'a> {
        Ids {
            user_id: user_id.as_ref(),
            anonymous_id: anonymous_id.as_ref(),
        }
    }

    fn user_hash(&self, keys: &TenantVault, user_id: &Personal<String>) -> [u8; 32] {
        keys.lookup_hash(LookupKind::UserId.as_str(), user_id.expose())
            .0
    }

    fn anon_hash(&self, keys: &TenantVault, anon: &Personal<String>) -> [u8; 32] {
        keys.lookup_hash(LookupKind::AnonymousId.as_str(), anon.expose())
            .0
    }

    /// Links the call's ids into a profile; returns whether anything changed. A profile that has a
    /// user id keeps it (a different user id resolves to a different subject).
    fn link_into(&self, data: &mut ProfileData) -> bool {
        let mut changed = false;
        if let Some(user_id) = self.user_id
            && data.user_id.is_none()
        {
            data.user_id = Some(user_id.expose().clone());
            changed = true;
        }
        if let Some(anon) = self.anonymous_id
            && !data.anonymous_ids.iter().any(|a| a == anon.expose())
        {
            push_anonymous(&mut data.anonymous_ids, anon.expose());
            changed = true;
        }
        changed
    }
}

/// The trait a group call writes: group id → the group's traits.
const GROUPS_TRAIT: &str = "groups";

/// The original answer of a repeated single call, in the call's own shape.
fn repeated<T: serde::de::DeserializeOwned>(outcome: BatchOutcome) -> Result<T, EngineError> {
    let value = match outcome {
        BatchOutcome::Repeated(value) => value,
        other => serde_json::to_value(&other).map_err(|_| EngineError::Corrupt("json"))?,
    };
    serde_json::from_value(value).map_err(|_| EngineError::Corrupt("idempotency entry"))
}

fn push_anonymous(list: &mut Vec<String>, anon: &str) {
    if list.iter().any(|a| a == anon) {
        return;
    }
    list.push(anon.to_owned());
    if list.len() > MAX_ANONYMOUS_IDS {
        list.remove(0);
    }
}
