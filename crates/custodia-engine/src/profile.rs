//! Reading profiles and events: each read takes a [`ReadGrant`], so none can skip the purpose
//! check. Also the sealed form of a profile and the index entries derived from it.

use custodia_core::{EventId, Operation, Personal, SubjectId, TenantId, Timestamp};
use custodia_store::{EventRecord, LookupKind, SubjectRecord, WriteBatch};
use custodia_vault::{Aad, BlindField, DataKey, TenantVault};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::input::TraitChanges;
use crate::{Caller, Engine, EngineError, ReadGrant};

/// The record kind bound into a profile's AAD.
pub(crate) const PROFILE_KIND: &str = "profile";

/// The record kind bound into an event's AAD: the event id is part of it, so ciphertexts cannot
/// be swapped between events of one subject either.
pub(crate) fn event_kind(id: EventId) -> String {
    format!("event/{id}")
}

/// The plaintext of a profile, as sealed in the store. Versioned JSON inside the ciphertext.
#[derive(Clone, Default, Serialize, Deserialize)]
pub(crate) struct ProfileData {
    pub(crate) v: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) anonymous_ids: Vec<String>,
    #[serde(default)]
    pub(crate) traits: Map<String, Value>,
    /// When each trait was last set (µs), for the retention of its category. A trait without an
    /// entry (written before these times were kept) counts from the profile's `updated_at`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) trait_times: std::collections::BTreeMap<String, i64>,
}

/// The plaintext of an event, as sealed in the store.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct EventData {
    pub(crate) v: u8,
    pub(crate) event: String,
    #[serde(default)]
    pub(crate) properties: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timestamp: Option<Timestamp>,
    /// The call's `context` (`ip`, `userAgent`, `page`, ...), unless the server drops it.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub(crate) context: Map<String, Value>,
}

impl ProfileData {
    /// Applies trait changes: a `null` removes the trait, anything else sets it.
    pub(crate) fn apply(&mut self, changes: &Map<String, Value>, now: Timestamp) {
        for (name, value) in changes {
            if value.is_null() {
                self.traits.remove(name);
                self.trait_times.remove(name);
            } else {
                self.traits.insert(name.clone(), value.clone());
                self.trait_times.insert(name.clone(), now.unix_micros());
            }
        }
    }
}

/// A profile as returned to a caller whose purpose was checked, narrowed to the purpose's data
/// categories (data minimisation, GDPR Art. 5(1)(c)).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Profile {
    /// The subject.
    pub subject_id: SubjectId,
    /// The app's id for the person (an identifier, not a data category: always returned).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub user_id: Option<Personal<String>>,
    /// The anonymous ids linked to the person (identifiers, as `user_id`).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub anonymous_ids: Personal<Vec<String>>,
    /// The traits of the purpose's categories; traits of other categories are left out.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub traits: Personal<Map<String, Value>>,
    /// The data categories this answer may contain: those the purpose's policy names.
    pub categories: Vec<String>,
    /// When the subject was created.
    pub created_at: Timestamp,
    /// When the profile last changed.
    pub updated_at: Timestamp,
}

/// An event as returned to a caller whose purpose was checked.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventView {
    /// The event id (a UUID v7; also the pagination cursor).
    pub event_id: EventId,
    /// The event name.
    pub event: String,
    /// The properties.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub properties: Personal<Map<String, Value>>,
    /// The client's time, if it sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Timestamp>,
    /// When Custodia received it.
    pub received_at: Timestamp,
    /// The call's context (`ip`, `userAgent`, ...), if it was kept; absent when empty.
    #[serde(skip_serializing_if = "context_is_empty")]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Personal<Map<String, Value>>,
}

fn context_is_empty(context: &Personal<Map<String, Value>>) -> bool {
    context.expose().is_empty()
}

/// One page of a subject's events, narrowed to the purpose's data categories.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventPage {
    /// The events of the purpose's categories, oldest first.
    pub events: Vec<EventView>,
    /// The data categories this answer may contain: those the purpose's policy names.
    pub categories: Vec<String>,
    /// The cursor for the next page, if there may be one.
    pub next_cursor: Option<String>,
}

/// An exact look-up key. The value is personal data.
#[derive(Debug, Clone)]
pub enum Lookup {
    /// By e-mail address (normalized before hashing).
    Email(Personal<String>),
    /// By phone number (normalized to E.164 before hashing).
    Phone(Personal<String>),
    /// By the app's user id.
    UserId(Personal<String>),
}

/// The traits with a blind index, each with the normalization applied before hashing (and before
/// the exact comparison of candidates).
const BLIND_TRAITS: [BlindField; 2] = [BlindField::Email, BlindField::Phone];

/// The normalization of a blind-indexed trait.
fn normalize(field: BlindField, raw: &str) -> Option<String> {
    match field {
        BlindField::Email => custodia_vault::normalize_email(raw),
        BlindField::Phone => custodia_vault::normalize_phone(raw),
    }
}

/// Largest page of events.
pub const MAX_EVENT_PAGE: usize = 500;

pub(crate) fn seal_json<T: Serialize>(
    key: &DataKey,
    tenant: &TenantId,
    subject: SubjectId,
    kind: &str,
    value: &T,
) -> Result<Vec<u8>, EngineError> {
    // The serialized plaintext is wiped when dropped.
    let plain =
        Zeroizing::new(serde_json::to_vec(value).map_err(|_| EngineError::Corrupt("json"))?);
    Ok(key.seal(
        &Aad {
            tenant,
            subject,
            kind,
        },
        &plain,
    )?)
}

pub(crate) fn open_json<T: for<'de> Deserialize<'de>>(
    key: &DataKey,
    tenant: &TenantId,
    subject: SubjectId,
    kind: &str,
    sealed: &[u8],
    what: &'static str,
) -> Result<T, EngineError> {
    let plain = key.open(
        &Aad {
            tenant,
            subject,
            kind,
        },
        sealed,
    )?;
    serde_json::from_slice(&plain).map_err(|_| EngineError::Corrupt(what))
}

/// The index entries that point at a subject: keyed look-up hashes and blind-index buckets.
pub(crate) struct IndexEntries {
    pub(crate) lookups: Vec<(LookupKind, [u8; 32])>,
    pub(crate) blind: Vec<(String, Vec<u8>)>,
}

/// The look-up hashes and blind-index buckets that should point at a subject with this profile.
pub(crate) fn index_entries(keys: &TenantVault, data: &ProfileData) -> IndexEntries {
    let mut lookups = Vec::new();
    if let Some(user_id) = &data.user_id {
        lookups.push((
            LookupKind::UserId,
            keys.lookup_hash(LookupKind::UserId.as_str(), user_id).0,
        ));
    }
    for anon in &data.anonymous_ids {
        let kind = LookupKind::AnonymousId;
        lookups.push((kind, keys.lookup_hash(kind.as_str(), anon).0));
    }
    let blind = BLIND_TRAITS
        .iter()
        .filter_map(|&field| {
            let raw = data.traits.get(field.as_str()).and_then(Value::as_str)?;
            let norm = normalize(field, raw)?;
            Some((
                field.as_str().to_owned(),
                keys.blind_index(field, &norm).0.to_vec(),
            ))
        })
        .collect();
    IndexEntries { lookups, blind }
}

/// Puts `new` into the batch and removes the index entries of `old` that `new` no longer has.
pub(crate) fn put_subject(
    batch: &mut WriteBatch,
    old: Option<&SubjectRecord>,
    new: &SubjectRecord,
) {
    if let Some(old) = old {
        for (kind, hash) in &old.lookups {
            if !new.lookups.contains(&(*kind, *hash)) {
                batch.delete_lookup(&old.tenant, *kind, hash);
            }
        }
        for (field, bucket) in &old.blind {
            if !new.blind.iter().any(|(f, b)| f == field && b == bucket) {
                batch.delete_blind(&old.tenant, field, bucket, old.id);
            }
        }
    }
    for (kind, hash) in &new.lookups {
        batch.put_lookup(&new.tenant, *kind, hash, new.id);
    }
    for (field, bucket) in &new.blind {
        batch.put_blind(&new.tenant, field, bucket, new.id);
    }
    batch.put_subject(new);
}

impl Engine {
    /// Loads a subject's record, or says why there is none.
    pub(crate) fn subject_record(
        &self,
        tenant: &TenantId,
        id: SubjectId,
    ) -> Result<SubjectRecord, EngineError> {
        if let Some(record) = self.store.subject(tenant, id)? {
            return Ok(record);
        }
        match self.store.merge_record(tenant, id)? {
            Some(merge) => Err(EngineError::SubjectMerged { into: merge.into }),
            None => Err(EngineError::SubjectNotFound),
        }
    }

    pub(crate) fn open_profile(
        &self,
        keys: &TenantVault,
        record: &SubjectRecord,
    ) -> Result<(DataKey, ProfileData), EngineError> {
        let key = keys.data_key(record.id)?;
        let data = open_json(
            &key,
            &record.tenant,
            record.id,
            PROFILE_KIND,
            &record.sealed_profile,
            "profile",
        )?;
        Ok((key, data))
    }

    /// The profile as the grant's purpose may see it: only traits of its categories.
    fn view(&self, grant: &ReadGrant, record: &SubjectRecord, data: ProfileData) -> Profile {
        let traits = data
            .traits
            .into_iter()
            .filter(|(name, _)| grant.covers(&self.policies.category_of_trait(name).id))
            .collect();
        Profile {
            subject_id: record.id,
            user_id: data.user_id.map(Personal),
            anonymous_ids: Personal(data.anonymous_ids),
            traits: Personal(traits),
            categories: grant.categories().to_vec(),
            created_at: record.created_at,
            updated_at: record.updated_at,
        }
    }

    /// Whether an event belongs to one of the grant's categories (an event no category lists
    /// belongs to the default one, as for retention).
    fn event_in_purpose(&self, grant: &ReadGrant, event: &str) -> bool {
        grant.covers(&self.policies.retention_category_of_event(event).id)
    }

    /// `record` with `data` sealed afresh under the subject's key and its index entries
    /// recomputed from `data`.
    pub(crate) fn resealed(
        &self,
        keys: &TenantVault,
        key: &DataKey,
        record: &SubjectRecord,
        data: &ProfileData,
        now: Timestamp,
    ) -> Result<SubjectRecord, EngineError> {
        let IndexEntries { lookups, blind } = index_entries(keys, data);
        Ok(SubjectRecord {
            sealed_profile: seal_json(key, &record.tenant, record.id, PROFILE_KIND, data)?,
            updated_at: now,
            lookups,
            blind,
            ..record.clone()
        })
    }

    /// Replaces the subject's profile with `data` (atomically, with its index entries).
    pub(crate) fn write_profile(
        &self,
        keys: &TenantVault,
        key: &DataKey,
        record: &SubjectRecord,
        data: &ProfileData,
        now: Timestamp,
    ) -> Result<(), EngineError> {
        let new = self.resealed(keys, key, record, data, now)?;
        let mut batch = WriteBatch::new();
        put_subject(&mut batch, Some(record), &new);
        self.queue_search(&mut batch, &record.tenant, record.id);
        Ok(self.store.write(batch)?)
    }

    /// A subject's profile.
    pub fn profile(&self, grant: &ReadGrant, id: SubjectId) -> Result<Profile, EngineError> {
        let keys = self.keys(grant.tenant())?;
        let record = self.subject_record(grant.tenant(), id)?;
        self.check_subject(grant, id)?;
        let (_, data) = self.open_profile(&keys, &record)?;
        // In the access log before the data leaves.
        self.record_access(grant, "profile", &[id], None)?;
        Ok(self.view(grant, &record, data))
    }

    /// Exact look-up: keyed hash or blind-index bucket, then decrypt the candidates and compare
    /// the normalized values exactly. No scan of decrypted data.
    pub fn lookup(&self, grant: &ReadGrant, by: &Lookup) -> Result<Vec<Profile>, EngineError> {
        let tenant = grant.tenant();
        let keys = self.keys(tenant)?;
        let (field, raw, rule) = match by {
            Lookup::UserId(user_id) => {
                let hash = keys.lookup_hash(LookupKind::UserId.as_str(), user_id.expose());
                let Some(id) = self.store.lookup(tenant, LookupKind::UserId, &hash.0)? else {
                    return Ok(Vec::new());
                };
                return Ok(vec![self.profile(grant, id)?]);
            }
            Lookup::Email(raw) => (BlindField::Email, raw, "must be an e-mail address"),
            Lookup::Phone(raw) => (
                BlindField::Phone,
                raw,
                "must be an international number (+ and digits)",
            ),
        };
        let norm = normalize(field, raw.expose())
            .ok_or_else(|| EngineError::invalid(field.as_str(), rule))?;
        let bucket = keys.blind_index(field, &norm);
        let mut found = Vec::new();
        let mut refused = None;
        for id in self
            .store
            .blind_candidates(tenant, field.as_str(), &bucket.0)?
        {
            let Some(record) = self.store.subject(tenant, id)? else {
                continue;
            };
            let (_, data) = self.open_profile(&keys, &record)?;
            let value = data.traits.get(field.as_str()).and_then(Value::as_str);
            if value
                .and_then(|v| normalize(field, v))
                .is_some_and(|v| v == norm)
            {
                // A match whose consent does not allow the purpose is left out; if every match
                // is, the caller learns why rather than "nobody".
                match self.check_subject(grant, id) {
                    Ok(()) => found.push(self.view(grant, &record, data)),
                    Err(e) => refused = Some(e),
                }
            }
        }
        match refused {
            Some(e) if found.is_empty() => Err(e),
            _ => {
                let ids: Vec<SubjectId> = found.iter().map(|p| p.subject_id).collect();
                self.record_access(grant, "lookup", &ids, None)?;
                Ok(found)
            }
        }
    }

    /// A page of a subject's events, oldest first; `cursor` is the `next_cursor` of the page before.
    pub fn events(
        &self,
        grant: &ReadGrant,
        id: SubjectId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<EventPage, EngineError> {
        let tenant = grant.tenant();
        let after = match cursor.filter(|c| !c.is_empty()) {
            Some(c) => Some(c.parse::<EventId>().map_err(|_| {
                EngineError::invalid("cursor", "must be a cursor from next_cursor")
            })?),
            None => None,
        };
        if limit == 0 || limit > MAX_EVENT_PAGE {
            return Err(EngineError::invalid(
                "limit",
                format!("must be from 1 to {MAX_EVENT_PAGE}"),
            ));
        }
        let keys = self.keys(tenant)?;
        let record = self.subject_record(tenant, id)?;
        self.check_subject(grant, id)?;
        let key = keys.data_key(record.id)?;
        // Events of other categories are skipped, so the store is read page by page until one
        // more than asked for (which tells whether there is a next page) or the end.
        let mut events = Vec::new();
        let mut scan_from = after;
        loop {
            let page = self.store.events(tenant, id, scan_from, limit + 1)?;
            for r in &page {
                let view = open_event(&key, r)?;
                if self.event_in_purpose(grant, &view.event) {
                    events.push(view);
                }
            }
            scan_from = page.last().map(|r| r.id);
            if events.len() > limit || page.len() <= limit {
                break;
            }
        }
        let more = events.len() > limit;
        events.truncate(limit);
        let next_cursor = if more {
            events.last().map(|e| e.event_id.to_string())
        } else {
            None
        };
        self.record_access(grant, "events", &[id], None)?;
        Ok(EventPage {
            events,
            categories: grant.categories().to_vec(),
            next_cursor,
        })
    }

    /// Changes a profile's traits; returns the new `updated_at`.
    pub fn patch_profile(
        &self,
        caller: &Caller,
        id: SubjectId,
        changes: &TraitChanges,
    ) -> Result<Timestamp, EngineError> {
        caller.require(Operation::WriteProfile)?;
        let tenant = &caller.tenant;
        let keys = self.keys(tenant)?;
        // What an erasure kept is no profile to change: the subject is gone, as after a plain
        // erasure.
        if self.erased_with_hold(tenant, id)? {
            return Err(EngineError::SubjectNotFound);
        }
        let updated_at = {
            let _guard = self.lock_writes();
            let record = self.subject_record(tenant, id)?;
            let (key, mut data) = self.open_profile(&keys, &record)?;
            let now = self.clock.now();
            data.apply(changes.0.expose(), now);
            self.write_profile(&keys, &key, &record, &data, now)?;
            now
        };
        self.store.flush()?;
        Ok(updated_at)
    }
}

/// Events read per page by [`Engine::for_each_event`].
const EVENT_SCAN_PAGE: usize = 1_000;

impl Engine {
    /// Calls `f` on every event of a subject, oldest first, reading a page at a time (erasure,
    /// retention, the search indexer and the access export all walk a subject's events so).
    pub(crate) fn for_each_event(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
        mut f: impl FnMut(&EventRecord) -> Result<(), EngineError>,
    ) -> Result<(), EngineError> {
        let mut after = None;
        loop {
            let page = self.store.events(tenant, subject, after, EVENT_SCAN_PAGE)?;
            for event in &page {
                f(event)?;
            }
            after = page.last().map(|e| e.id);
            if page.len() < EVENT_SCAN_PAGE {
                return Ok(());
            }
        }
    }
}

pub(crate) fn open_event(key: &DataKey, record: &EventRecord) -> Result<EventView, EngineError> {
    let data: EventData = open_json(
        key,
        &record.tenant,
        record.subject,
        &event_kind(record.id),
        &record.sealed,
        "event",
    )?;
    Ok(EventView {
        event_id: record.id,
        event: data.event,
        properties: Personal(data.properties),
        timestamp: data.timestamp,
        received_at: record.received_at,
        context: Personal(data.context),
    })
}
