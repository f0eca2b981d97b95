//! The analytics projection, packed: the facts of one subject live in a few chunk records
//! instead of one record per fact, so that a scan reads few, large values and the store keeps
//! one key and one value header per chunk instead of per fact.
//!
//! **Layout.** A subject's facts are split into chunks of at most [`CHUNK_FACTS`] facts, in
//! event order. A chunk's key is `'N' ‖ lp(tenant) ‖ pseudonym(16) ‖ chunk(16)`, where `chunk`
//! is an event id no greater than the ids of the next chunk's facts:
//!
//! - every fact of a chunk sorts before the next chunk's key, and at or after its own key,
//!   except in the subject's first chunk, which also holds facts below its key (an older event
//!   moved in by a merge, say);
//! - so the chunk that holds, or would take, event `e` is the one with the greatest key at or
//!   before `e`, or the first chunk when there is none; and reading the chunks in key order
//!   reads the facts in event order.
//!
//! **Value.** `version (1, = 1) ‖ count (u16 BE) ‖ count × (event(16) ‖ len(u8) ‖ fact(len))`,
//! facts in event order; the fact bytes are the engine's own encoding, opaque here.
//!
//! **Writes.** [`crate::WriteBatch::put_fact`] and `delete_fact` record what to change; `Store::write`
//! resolves them here into chunk puts and deletes, reading the chunks it changes, under the lock
//! that orders every write with fact changes, so two writes never rewrite one chunk from the same
//! old value. Events mostly arrive in time order (v7 ids), so a new fact lands at the end of the
//! subject's last chunk; a full chunk that takes a fact at its end leaves the new fact to a new
//! chunk, and one that takes it in its middle splits in two halves. A chunk that loses its last
//! fact is deleted.

use std::collections::{BTreeMap, BTreeSet};

use custodia_core::{EventId, Pseudonym};

use crate::StoreError;
use crate::backend::{KvBackend, KvOp};
use crate::codec::Reader;

/// The most facts one chunk holds (a chunk of 32 order facts is about 1.2 KB); 4 in unit
/// tests, so that their few facts fill, split and empty many chunks.
pub(crate) const CHUNK_FACTS: usize = if cfg!(test) { 4 } else { 32 };

/// The key id of a subject's last chunk, its "open" chunk, which appends go to: it sorts after
/// every event id (a v7 UUID has `7` in its version nibble, never `0xF`), so an append finds it
/// with one point read, without a seek past its older versions. (An LSM engine keeps every
/// version of a key rewritten since its last flush, and a range seek steps over them all; a
/// point read does not.)
pub(crate) const OPEN: [u8; 16] = [0xFF; 16];

/// The chunk value's format version.
const CHUNK_VERSION: u8 = 1;

/// What a chunk value says it is, for corruption errors.
const WHAT: &str = "analytics fact chunk";

/// One fact of a chunk: the event it comes from and its bytes.
pub(crate) type PackedFact = ([u8; 16], Vec<u8>);

/// A change to the projection, as a batch records it: `fact: None` deletes.
pub(crate) struct FactOp {
    /// `'N' ‖ lp(tenant) ‖ pseudonym(16)`.
    pub(crate) subject_prefix: Vec<u8>,
    /// The event id's bytes.
    pub(crate) event: [u8; 16],
    /// The fact's bytes, or `None` to delete it.
    pub(crate) fact: Option<Vec<u8>>,
}

/// Encodes a chunk's facts (at most [`CHUNK_FACTS`], each at most 255 bytes).
pub(crate) fn encode_chunk(facts: &[PackedFact]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(3 + facts.iter().map(|(_, f)| 17 + f.len()).sum::<usize>());
    bytes.push(CHUNK_VERSION);
    // Both bounds are kept by `resolve` (at most CHUNK_FACTS) and `WriteBatch::put_fact` (at
    // most 255 bytes a fact).
    bytes.extend_from_slice(&(facts.len() as u16).to_be_bytes());
    for (event, fact) in facts {
        bytes.extend_from_slice(event);
        bytes.push(fact.len() as u8);
        bytes.extend_from_slice(fact);
    }
    bytes
}

/// Decodes a chunk value.
pub(crate) fn decode_chunk(value: &[u8]) -> Result<Vec<PackedFact>, StoreError> {
    let mut reader = Reader::new(value, WHAT);
    reader.version(CHUNK_VERSION)?;
    let count = u16::from_be_bytes(reader.array::<2>()?) as usize;
    let mut facts = Vec::with_capacity(count);
    for _ in 0..count {
        let event = reader.array::<16>()?;
        let len = reader.u8()? as usize;
        facts.push((event, reader.take(len)?.to_vec()));
    }
    if facts.is_empty() || facts.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err(reader.corrupt());
    }
    reader.finish()?;
    Ok(facts)
}

/// The chunk id that ends a chunk key.
pub(crate) fn chunk_id(key: &[u8], prefix_len: usize) -> Result<[u8; 16], StoreError> {
    crate::keys::trailing_id(key, prefix_len, WHAT)
}

/// Turns a batch's fact changes, in order, into the chunk writes that make them, reading the
/// chunks they touch from `backend`. The caller holds the lock that orders writes with fact
/// changes, and applies the result in the same backend batch as the rest of the write.
pub(crate) fn resolve(backend: &dyn KvBackend, ops: Vec<FactOp>) -> Result<Vec<KvOp>, StoreError> {
    let mut subjects: BTreeMap<Vec<u8>, SubjectChunks> = BTreeMap::new();
    for op in ops {
        let chunks = subjects
            .entry(op.subject_prefix)
            .or_insert_with_key(|prefix| SubjectChunks::new(prefix.clone()));
        match op.fact {
            Some(fact) => chunks.put(backend, op.event, fact)?,
            None => chunks.delete(backend, op.event)?,
        }
    }
    let mut writes = Vec::new();
    for chunks in subjects.into_values() {
        chunks.into_writes(backend, &mut writes)?;
    }
    Ok(writes)
}

/// One subject's chunks as the batch sees them: those read from the store or written by the
/// batch (`None`: emptied), by logical id, and which of them the batch changed. Chunks the
/// batch has not read are as the store has them.
struct SubjectChunks {
    prefix: Vec<u8>,
    chunks: BTreeMap<[u8; 16], Option<Vec<PackedFact>>>,
    changed: BTreeSet<[u8; 16]>,
    /// Whether the subject's open chunk has been read (a point read, once per batch).
    open_read: bool,
    /// The logical id of the chunk stored under [`OPEN`], if one is.
    stored_open: Option<[u8; 16]>,
    /// The chunks read from keys of their own (not [`OPEN`]).
    stored_sealed: BTreeSet<[u8; 16]>,
    /// The view holds every stored chunk whose logical id is at or above this one: the open
    /// chunk's, or the lowest id when the subject has no chunk stored at all.
    complete_from: Option<[u8; 16]>,
}

impl SubjectChunks {
    fn new(prefix: Vec<u8>) -> SubjectChunks {
        SubjectChunks {
            prefix,
            chunks: BTreeMap::new(),
            changed: BTreeSet::new(),
            open_read: false,
            stored_open: None,
            stored_sealed: BTreeSet::new(),
            complete_from: None,
        }
    }

    /// Reads a stored chunk into the view unless the view already has it. Whether the view now
    /// holds it live.
    fn load(&mut self, key: &[u8], value: &[u8]) -> Result<bool, StoreError> {
        let id = chunk_id(key, self.prefix.len())?;
        if id == OPEN {
            // Read first of all (`read_open`): the view has it under its logical id.
            return Ok(self
                .stored_open
                .is_some_and(|open| matches!(self.chunks.get(&open), Some(Some(_)))));
        }
        match self.chunks.get(&id) {
            Some(chunk) => Ok(chunk.is_some()),
            None => {
                self.chunks.insert(id, Some(decode_chunk(value)?));
                self.stored_sealed.insert(id);
                Ok(true)
            }
        }
    }

    /// Reads the subject's open chunk (its last) into the view, once: a point read, which is
    /// all an append needs.
    fn read_open(&mut self, backend: &dyn KvBackend) -> Result<(), StoreError> {
        if self.open_read {
            return Ok(());
        }
        self.open_read = true;
        let mut key = self.prefix.clone();
        key.extend_from_slice(&OPEN);
        if let Some(value) = backend.get(&key)? {
            let facts = decode_chunk(&value)?;
            let id = facts[0].0;
            self.chunks.insert(id, Some(facts));
            self.stored_open = Some(id);
            self.complete_from = Some(id);
        }
        Ok(())
    }

    /// The id of the chunk that holds, or would take, `event`; `None` when the subject has no
    /// chunk. Reads from the store what the answer needs.
    fn find(
        &mut self,
        backend: &dyn KvBackend,
        event: [u8; 16],
    ) -> Result<Option<[u8; 16]>, StoreError> {
        self.read_open(backend)?;
        // Where the view holds every stored chunk from some id on, and a live one between that
        // id and `event`, the answer is in the view: an append to the open chunk reads nothing
        // more.
        let in_view = self.complete_from.is_some_and(|from| {
            from <= event
                && self
                    .chunks
                    .range(from..=event)
                    .any(|(_, chunk)| chunk.is_some())
        });
        if !in_view {
            // The stored chunk with the greatest key at or before `event`; if this batch
            // emptied it, the one before that, and so on. Once it is in the view, no chunk the
            // view lacks can beat the view's own greatest key at or before `event`. (The open
            // chunk's key sorts after every event: it is in the view already.)
            let mut before = self.prefix.clone();
            before.extend_from_slice(&event);
            before.push(0);
            while let Some((key, value)) = backend.last_before(&self.prefix, &before)? {
                if self.load(&key, &value)? {
                    break;
                }
                before = key;
            }
        }
        if let Some((id, _)) = self
            .chunks
            .range(..=event)
            .rev()
            .find(|(_, chunk)| chunk.is_some())
        {
            return Ok(Some(*id));
        }
        // Nothing at or before `event`: the subject's first chunk takes it. Stored chunks this
        // batch emptied are passed over until a live one is in the view.
        let mut after: Option<Vec<u8>> = None;
        let mut stored_any = self.stored_open.is_some();
        while let Some((key, value)) = backend
            .scan_prefix(&self.prefix, after.as_deref(), 1)?
            .into_iter()
            .next()
        {
            stored_any = true;
            if self.load(&key, &value)? {
                break;
            }
            after = Some(key);
        }
        if !stored_any {
            // Nothing stored: the view is the whole subject.
            self.complete_from = Some([0; 16]);
        }
        Ok(self
            .chunks
            .iter()
            .find(|(_, chunk)| chunk.is_some())
            .map(|(id, _)| *id))
    }

    fn put(
        &mut self,
        backend: &dyn KvBackend,
        event: [u8; 16],
        fact: Vec<u8>,
    ) -> Result<(), StoreError> {
        let Some(id) = self.find(backend, event)? else {
            self.chunks.insert(event, Some(vec![(event, fact)]));
            self.changed.insert(event);
            return Ok(());
        };
        self.changed.insert(id);
        let Some(Some(facts)) = self.chunks.get_mut(&id) else {
            unreachable!("find answers a live chunk of the view");
        };
        let at = match facts.binary_search_by_key(&event, |(e, _)| *e) {
            Ok(at) => {
                facts[at].1 = fact;
                return Ok(());
            }
            Err(at) => at,
        };
        facts.insert(at, (event, fact));
        if facts.len() <= CHUNK_FACTS {
            return Ok(());
        }
        // Full: a fact taken at the end starts the next chunk alone (appends keep chunks full);
        // one taken inside splits the chunk in halves.
        let upper = if at == facts.len() - 1 {
            facts.split_off(at)
        } else {
            facts.split_off(facts.len() / 2)
        };
        let upper_id = upper[0].0;
        if upper_id <= id {
            // Only the first chunk holds facts below its key: rekey its lower half at its own
            // first fact, which sorts below the upper half.
            let lower = self.chunks.insert(id, None).flatten().unwrap_or_default();
            let lower_id = lower[0].0;
            self.chunks.insert(lower_id, Some(lower));
            self.changed.insert(lower_id);
        }
        self.chunks.insert(upper_id, Some(upper));
        self.changed.insert(upper_id);
        Ok(())
    }

    fn delete(&mut self, backend: &dyn KvBackend, event: [u8; 16]) -> Result<(), StoreError> {
        let Some(id) = self.find(backend, event)? else {
            return Ok(());
        };
        let Some(Some(facts)) = self.chunks.get_mut(&id) else {
            unreachable!("find answers a live chunk of the view");
        };
        let Ok(at) = facts.binary_search_by_key(&event, |(e, _)| *e) else {
            return Ok(());
        };
        facts.remove(at);
        if facts.is_empty() {
            self.chunks.insert(id, None);
        }
        self.changed.insert(id);
        Ok(())
    }

    /// The writes that store the view: the subject's last live chunk under [`OPEN`], every
    /// other live chunk the batch changed or moved under its own id, and the keys of emptied or
    /// moved chunks deleted.
    fn into_writes(
        mut self,
        backend: &dyn KvBackend,
        writes: &mut Vec<KvOp>,
    ) -> Result<(), StoreError> {
        // The last live chunk must be in the view: unless the view holds every stored chunk
        // from a live one on, read back from the end past chunks this batch emptied.
        let last_in_view = self
            .complete_from
            .is_some_and(|from| self.chunks.range(from..).any(|(_, chunk)| chunk.is_some()));
        if !last_in_view {
            let mut before = self.prefix.clone();
            before.extend_from_slice(&OPEN);
            while let Some((key, value)) = backend.last_before(&self.prefix, &before)? {
                if self.load(&key, &value)? {
                    break;
                }
                before = key;
            }
        }
        let last = self
            .chunks
            .iter()
            .rev()
            .find(|(_, chunk)| chunk.is_some())
            .map(|(id, _)| *id);
        let prefix = std::mem::take(&mut self.prefix);
        let key_of = |id: &[u8; 16]| {
            let mut key = prefix.clone();
            key.extend_from_slice(id);
            key
        };
        for (id, chunk) in &self.chunks {
            let sealed_here = self.stored_sealed.contains(id);
            match chunk {
                Some(facts) if Some(*id) != last => {
                    if self.changed.contains(id) || !sealed_here {
                        writes.push(KvOp::Put {
                            key: key_of(id),
                            value: encode_chunk(facts),
                        });
                    }
                }
                _ => {
                    if sealed_here {
                        writes.push(KvOp::Delete { key: key_of(id) });
                    }
                }
            }
        }
        match last {
            Some(id) if self.changed.contains(&id) || self.stored_open != Some(id) => {
                let facts = self.chunks.remove(&id).flatten().unwrap_or_default();
                writes.push(KvOp::Put {
                    key: key_of(&OPEN),
                    value: encode_chunk(&facts),
                });
            }
            Some(_) => {}
            None => {
                if self.stored_open.is_some() {
                    writes.push(KvOp::Delete { key: key_of(&OPEN) });
                }
            }
        }
        Ok(())
    }
}

/// Reads a page of a tenant's facts in (pseudonym, event) order from the chunks under
/// `tenant_prefix`, strictly after `after` if given, at most `limit`.
pub(crate) fn read_facts(
    backend: &dyn KvBackend,
    tenant_prefix: &[u8],
    after: Option<(Pseudonym, EventId)>,
    limit: usize,
) -> Result<Vec<(Pseudonym, EventId, Vec<u8>)>, StoreError> {
    /// Chunks read at a time.
    const CHUNK_PAGE: usize = 64;
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    let after_bytes = after.map(|(p, e)| (p.0, e.to_bytes()));
    let take = |key: &[u8], value: &[u8], out: &mut Vec<_>| -> Result<bool, StoreError> {
        let subject: [u8; 16] = key
            .get(tenant_prefix.len()..tenant_prefix.len() + 16)
            .and_then(|s| s.try_into().ok())
            .ok_or(StoreError::Corrupt { what: WHAT })?;
        for (event, fact) in decode_chunk(value)? {
            if after_bytes.is_some_and(|a| (subject, event) <= a) {
                continue;
            }
            out.push((Pseudonym(subject), EventId::from_bytes(event), fact));
            if out.len() == limit {
                return Ok(false);
            }
        }
        Ok(true)
    };
    // Where to start: the chunk that holds `after` (its later facts come first), then every
    // chunk after it.
    let mut scan_after: Option<Vec<u8>> = None;
    if let Some((subject, event)) = after_bytes {
        let mut subject_prefix = tenant_prefix.to_vec();
        subject_prefix.extend_from_slice(&subject);
        let mut before = subject_prefix.clone();
        before.extend_from_slice(&event);
        before.push(0);
        match backend.last_before(&subject_prefix, &before)? {
            Some((key, value)) => {
                if !take(&key, &value, &mut out)? {
                    return Ok(out);
                }
                scan_after = Some(key);
            }
            // Every chunk of the subject has a greater key: start at its first.
            None => scan_after = Some(before[..before.len() - 1].to_vec()),
        }
    }
    loop {
        let page = backend.scan_prefix(tenant_prefix, scan_after.as_deref(), CHUNK_PAGE)?;
        let full = page.len() == CHUNK_PAGE;
        for (key, value) in &page {
            if !take(key, value, &mut out)? {
                return Ok(out);
            }
        }
        match page.into_iter().next_back() {
            Some((key, _)) if full => scan_after = Some(key),
            _ => return Ok(out),
        }
    }
}

/// The event ids of one subject's facts, in order, from its chunks under `subject_prefix`.
pub(crate) fn subject_fact_ids(
    backend: &dyn KvBackend,
    subject_prefix: &[u8],
) -> Result<Vec<EventId>, StoreError> {
    const CHUNK_PAGE: usize = 64;
    let mut ids = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = backend.scan_prefix(subject_prefix, after.as_deref(), CHUNK_PAGE)?;
        let full = page.len() == CHUNK_PAGE;
        for (_, value) in &page {
            ids.extend(
                decode_chunk(value)?
                    .into_iter()
                    .map(|(event, _)| EventId::from_bytes(event)),
            );
        }
        match page.into_iter().next_back() {
            Some((key, _)) if full => after = Some(key),
            _ => return Ok(ids),
        }
    }
}

#[cfg(test)]
mod tests;
