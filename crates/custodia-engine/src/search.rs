//! Search over profiles without plaintext on disk, kept in step with the store.
//!
//! Every write that changes what a subject's search document would hold (a new or changed
//! profile, a merge, an order with an order id, a retention change) adds the subject to the
//! tenant's **search queue** in the store, in the same batch as the write, so the queue is as
//! durable as the data. An indexer (a background thread in `custodia serve`, or
//! [`Engine::index_pending`] called directly) takes queue entries in order, rebuilds each
//! subject's document from the store — profile traits and the order ids of its events, decrypted
//! in memory only — upserts it into the tenant's `custodia-search` index (keyed-hash terms only)
//! and commits, and only then removes the entries it handled. A crash at any point leaves the
//! entries in place, so after a restart the index catches up by itself; no request waits for an
//! index commit. Erasure deletes the subject's document at once (no search finds it from the
//! erasure's answer on) and notes its pseudonym as a pending **search purge** in the store; the
//! indexer then merges away the segments that held the document, so its terms leave the disk
//! (a purge of many erasures shares one merge), and clears the note. A crash leaves the note, so
//! the compaction happens after the restart.
//!
//! A search runs through the access decision: the purpose must allow search (`search = true` in
//! purposes.toml) and the role the `search` operation; each hit is checked against the subject's
//! consent and flags, and the hits returned are written to the access log before they leave.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use custodia_core::{Pseudonym, SubjectId, TenantId};
use custodia_search::{Facet, SearchDoc, SearchIndex, SearchQuery, TextField};
use custodia_store::{SubjectRecord, WriteBatch};
use serde::Serialize;
use serde_json::Value;

use crate::profile::{ProfileData, open_event};
use crate::{Engine, EngineError, ReadGrant};

/// Queue entries handled per indexing round.
const ROUND: usize = 512;
/// Order ids indexed per subject (the most recent).
const MAX_ORDER_IDS: usize = 200;

/// The tenants' search indexes under `DATA/search/<tenant>/`.
pub(crate) struct SearchIndexes {
    root: PathBuf,
    open: Mutex<HashMap<TenantId, Arc<SearchIndex>>>,
    /// The next search-queue sequence number; starts at the clock's microseconds so that numbers
    /// keep growing across restarts.
    next_seq: AtomicU64,
    /// Serializes indexing rounds (the queue is processed in order, by one worker at a time).
    /// Holds, per tenant, the greatest seq the last round took: the next round reads the queue
    /// after it, and from the start only once nothing follows (an entry whose seq was handed out
    /// before that one but whose write landed after the round read the queue is found then).
    round: Mutex<HashMap<TenantId, u64>>,
}

impl SearchIndexes {
    pub(crate) fn new(root: PathBuf, start_seq: u64) -> SearchIndexes {
        SearchIndexes {
            root,
            open: Mutex::new(HashMap::new()),
            next_seq: AtomicU64::new(start_seq),
            round: Mutex::new(HashMap::new()),
        }
    }
}

/// One search hit as returned.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchHitView {
    /// The subject.
    pub subject_id: SubjectId,
    /// Relevance (BM25); higher is better.
    pub score: f32,
}

/// A page of search results.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchPage {
    /// The hits the caller may see, best first.
    pub hits: Vec<SearchHitView>,
    /// How many documents matched before the per-subject access decision.
    pub total: usize,
}

/// Traits that go into the name field.
const NAME_TRAITS: [&str; 5] = ["name", "firstName", "lastName", "username", "title"];

/// Adds a trait value's text to the document under `field` (strings, numbers, and the string
/// parts of objects and arrays).
fn add_text(doc: &mut SearchDoc, field: TextField, value: &Value) {
    match value {
        Value::String(s) => doc.text.push((field, s.clone())),
        Value::Number(n) => doc.text.push((field, n.to_string())),
        Value::Array(items) => items.iter().for_each(|v| add_text(doc, field, v)),
        Value::Object(map) => map.values().for_each(|v| add_text(doc, field, v)),
        _ => {}
    }
}

/// The search document of a profile: names, contact data, address parts and other string traits
/// as text; the loyalty tier as a facet; plus the order ids given.
fn document(pseudonym: Pseudonym, data: &ProfileData, order_ids: &[String]) -> SearchDoc {
    let mut doc = SearchDoc {
        pseudonym,
        text: Vec::new(),
        facets: Vec::new(),
    };
    for (name, value) in &data.traits {
        match name.as_str() {
            n if NAME_TRAITS.contains(&n) => add_text(&mut doc, TextField::Name, value),
            "email" => add_text(&mut doc, TextField::Email, value),
            "phone" => add_text(&mut doc, TextField::Phone, value),
            "city" => add_text(&mut doc, TextField::City, value),
            "address" => match value {
                Value::Object(parts) => {
                    for (part, v) in parts {
                        let field = if part == "city" {
                            TextField::City
                        } else {
                            TextField::Address
                        };
                        add_text(&mut doc, field, v);
                    }
                }
                other => add_text(&mut doc, TextField::Address, other),
            },
            "tier" | "loyaltyTier" => {
                if let Some(tier) = value.as_str() {
                    doc.facets.push((Facet::Tier, tier.to_lowercase()));
                }
            }
            _ => add_text(&mut doc, TextField::Note, value),
        }
    }
    for id in order_ids {
        doc.text.push((TextField::OrderId, id.clone()));
    }
    doc
}

impl Engine {
    /// The tenant's search index, opened on first use.
    pub(crate) fn search_index(&self, tenant: &TenantId) -> Result<Arc<SearchIndex>, EngineError> {
        let mut open = self.search.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = open.get(tenant) {
            return Ok(index.clone());
        }
        let dir = self.search.root.join(tenant.as_str());
        let index = Arc::new(SearchIndex::open(&dir, self.keys(tenant)?)?);
        open.insert(tenant.clone(), index.clone());
        Ok(index)
    }

    /// Adds `subject` to the tenant's search queue in `batch`.
    pub(crate) fn queue_search(
        &self,
        batch: &mut WriteBatch,
        tenant: &TenantId,
        subject: SubjectId,
    ) {
        let seq = self.search.next_seq.fetch_add(1, Ordering::SeqCst);
        batch.queue_for_search(tenant, seq, subject);
    }

    /// The order ids of a subject's `Order Completed` events, newest last, at most
    /// [`MAX_ORDER_IDS`].
    fn order_ids(&self, record: &SubjectRecord) -> Result<Vec<String>, EngineError> {
        let key = self.keys(&record.tenant)?.data_key(record.id)?;
        let mut ids = Vec::new();
        self.for_each_event(&record.tenant, record.id, |event| {
            let view = open_event(&key, event)?;
            if view.event == "Order Completed"
                && let Some(id) = view.properties.expose().get("order_id")
            {
                match id {
                    Value::String(s) => ids.push(s.clone()),
                    Value::Number(n) => ids.push(n.to_string()),
                    _ => {}
                }
            }
            Ok(())
        })?;
        if ids.len() > MAX_ORDER_IDS {
            ids.drain(..ids.len() - MAX_ORDER_IDS);
        }
        Ok(ids)
    }

    /// Rebuilds one subject's document in the index (or removes it if the subject is gone), and
    /// keeps the pseudonym → subject map in `batch`.
    fn reindex_subject(
        &self,
        index: &SearchIndex,
        batch: &mut WriteBatch,
        tenant: &TenantId,
        subject: SubjectId,
    ) -> Result<(), EngineError> {
        let keys = self.keys(tenant)?;
        let pseudonym = keys.pseudonym(subject);
        let record = self.store.subject(tenant, subject)?;
        let erased_with_hold = self
            .store
            .subject_flags(tenant, &pseudonym)?
            .erased_with_hold;
        match record {
            Some(record) if !erased_with_hold => {
                let (_, data) = self.open_profile(&keys, &record)?;
                let order_ids = self.order_ids(&record)?;
                index.upsert(&document(pseudonym, &data, &order_ids))?;
                batch.put_pseudonym(tenant, &pseudonym, subject);
            }
            _ => {
                index.remove(pseudonym)?;
                batch.delete_pseudonym(tenant, &pseudonym);
            }
        }
        Ok(())
    }

    /// Handles up to one round of the tenant's search queue: rebuilds the queued subjects'
    /// documents, commits the index, then removes the handled entries. Returns how many entries
    /// it handled (0: the index is up to date).
    pub fn index_pending(&self, tenant: &TenantId) -> Result<usize, EngineError> {
        let mut resume = self.search.round.lock().unwrap_or_else(|p| p.into_inner());
        let after = resume.get(tenant).copied();
        let mut queued = self.store.search_queue_after(tenant, after, ROUND)?;
        if queued.is_empty() && after.is_some() {
            queued = self.store.search_queue(tenant, ROUND)?;
        }
        let Some(&(last, _)) = queued.last() else {
            resume.remove(tenant);
            return Ok(0);
        };
        let index = self.search_index(tenant)?;
        let mut batch = WriteBatch::new();
        let mut done: Vec<SubjectId> = Vec::new();
        for (_, subject) in &queued {
            if !done.contains(subject) {
                self.reindex_subject(&index, &mut batch, tenant, *subject)?;
                done.push(*subject);
            }
        }
        index.commit(last)?;
        for (seq, subject) in &queued {
            batch.dequeue_search(tenant, *seq, *subject);
        }
        self.store.write(batch)?;
        self.store.flush()?;
        resume.insert(tenant.clone(), last);
        Ok(queued.len())
    }

    /// Brings every tenant's index up to date, pending purges included; returns the queue
    /// entries handled.
    pub fn index_all_pending(&self) -> Result<usize, EngineError> {
        let mut total = 0;
        for tenant in self.tenants()? {
            loop {
                let n = self.index_pending(&tenant)?;
                total += n;
                if n == 0 {
                    break;
                }
            }
            while self.compact_search(&tenant)? > 0 {}
        }
        Ok(total)
    }

    /// Compacts the index segments that held the documents of erased subjects (up to
    /// [`ROUND`] of them, in one merge), then clears their pending purges. Returns how many were
    /// purged.
    pub fn compact_search(&self, tenant: &TenantId) -> Result<usize, EngineError> {
        let _round = self.search.round.lock().unwrap_or_else(|p| p.into_inner());
        let pending = self.store.search_purges(tenant, ROUND)?;
        if pending.is_empty() {
            return Ok(0);
        }
        let index = self.search_index(tenant)?;
        // Delete as well: a crash between the note and the erasure's own deletion leaves the
        // document live, and a compaction alone keeps live documents.
        index.purge(&pending)?;
        let mut batch = WriteBatch::new();
        for pseudonym in &pending {
            batch.delete_search_purge(tenant, pseudonym);
        }
        self.store.write(batch)?;
        self.store.flush()?;
        Ok(pending.len())
    }

    /// Pending search purges of a tenant (erased subjects whose index terms still wait for the
    /// compaction), up to `limit`.
    pub fn pending_search_purges(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<usize, EngineError> {
        Ok(self.store.search_purges(tenant, limit)?.len())
    }

    /// Updates waiting in the tenant's search queue (counted up to `limit`): how far search lags
    /// behind the writes.
    pub fn pending_search_updates(
        &self,
        tenant: &TenantId,
        limit: usize,
    ) -> Result<usize, EngineError> {
        Ok(self.store.search_queue(tenant, limit)?.len())
    }

    /// Rebuilds a tenant's index from the store: every subject's document afresh, then the
    /// queue cleared. `progress(done, total)` is called as subjects are indexed.
    pub fn rebuild_index(
        &self,
        tenant: &TenantId,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<u64, EngineError> {
        let _round = self.search.round.lock().unwrap_or_else(|p| p.into_inner());
        {
            let mut open = self.search.open.lock().unwrap_or_else(|p| p.into_inner());
            open.remove(tenant);
        }
        let dir = self.search.root.join(tenant.as_str());
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| EngineError::Io {
                what: "search index",
                source: e,
            })?;
        }
        let index = self.search_index(tenant)?;
        let total = self.store.count_subjects(tenant)?;
        let queued = self.store.search_queue(tenant, usize::MAX)?;
        let mut done = 0u64;
        let mut after = None;
        loop {
            let page = self.store.subjects(tenant, after, ROUND)?;
            let mut batch = WriteBatch::new();
            for record in &page {
                self.reindex_subject(&index, &mut batch, tenant, record.id)?;
                done += 1;
            }
            self.store.write(batch)?;
            progress(done, total);
            after = page.last().map(|r| r.id);
            if page.len() < ROUND {
                break;
            }
        }
        let last = queued.last().map_or(0, |(seq, _)| *seq);
        index.commit(last)?;
        let mut batch = WriteBatch::new();
        for (seq, subject) in &queued {
            batch.dequeue_search(tenant, *seq, *subject);
        }
        // The new index never held an erased subject: nothing is left to compact.
        for pseudonym in self.store.search_purges(tenant, usize::MAX)? {
            batch.delete_search_purge(tenant, &pseudonym);
        }
        self.store.write(batch)?;
        self.store.flush()?;
        Ok(done)
    }

    /// Removes a subject from the search index at once (erasure) and notes it for the
    /// compaction that takes its hashed terms out of the index files ([`Engine::compact_search`],
    /// run by the indexer).
    pub(crate) fn purge_from_search(
        &self,
        tenant: &TenantId,
        subject: SubjectId,
    ) -> Result<(), EngineError> {
        let _round = self.search.round.lock().unwrap_or_else(|p| p.into_inner());
        let pseudonym = self.keys(tenant)?.pseudonym(subject);
        // The note first: a crash after the deletion still leaves the compaction to do.
        let mut batch = WriteBatch::new();
        batch.put_search_purge(tenant, &pseudonym);
        self.store.write(batch)?;
        self.store.flush()?;
        let index = self.search_index(tenant)?;
        index.delete(&[pseudonym])?;
        let mut batch = WriteBatch::new();
        batch.delete_pseudonym(tenant, &pseudonym);
        self.store.write(batch)?;
        self.store.flush()?;
        Ok(())
    }

    /// Full-text search for the grant's purpose: see the module documentation.
    pub fn search(
        &self,
        grant: &ReadGrant,
        text: &str,
        tier: Option<&str>,
        limit: usize,
    ) -> Result<SearchPage, EngineError> {
        if !grant.allows_search() {
            return Err(EngineError::PurposeNotPermitted {
                role: grant.role_name().to_string(),
                purpose: grant.purpose().to_string(),
            });
        }
        if limit == 0 || limit > 100 {
            return Err(EngineError::invalid("limit", "must be from 1 to 100"));
        }
        if text.chars().count() > 256 {
            return Err(EngineError::invalid("q", "must be at most 256 characters"));
        }
        let tenant = grant.tenant();
        let index = self.search_index(tenant)?;
        let mut query = SearchQuery::text(text, limit * 2);
        if let Some(tier) = tier {
            query = query.with_facet(Facet::Tier, tier.to_lowercase());
        }
        let results = index.search(&query)?;
        let mut hits = Vec::new();
        for hit in results.hits {
            let Some(subject) = self.store.subject_of_pseudonym(tenant, &hit.pseudonym)? else {
                continue;
            };
            // A subject whose consent or flags do not allow the purpose is left out (the
            // refusal is in the access log).
            if self.check_subject(grant, subject).is_ok() {
                hits.push(SearchHitView {
                    subject_id: subject,
                    score: hit.score,
                });
            }
            if hits.len() == limit {
                break;
            }
        }
        let ids: Vec<SubjectId> = hits.iter().map(|h| h.subject_id).collect();
        self.record_access(grant, "search", &ids, None)?;
        Ok(SearchPage {
            hits,
            total: results.total,
        })
    }
}

#[cfg(test)]
mod tests;
