//! The packed projection against a model (a map of (subject, event) → fact): random puts and
//! deletes, in and out of time order, in batches of random sizes, over several subjects and two
//! tenants; every read and every chunk checked after each batch. And the repacking of the first,
//! unpacked layout.

use std::collections::BTreeMap;

use custodia_core::{EventId, Pseudonym, TenantId};
use proptest::prelude::*;

use super::*;
use crate::backend::{KvBackend, MemBackend};
use crate::{Store, WriteBatch, keys};

type Model = BTreeMap<(TenantId, Pseudonym, EventId), Vec<u8>>;

fn tenant(n: u8) -> TenantId {
    ["shop", "shop2"][usize::from(n % 2)].parse().unwrap()
}

fn event(n: u16) -> EventId {
    // Ids in the order of `n`, as v7 ids of successive milliseconds are.
    EventId::from_parts(1_700_000_000_000 + u64::from(n), [7; 10])
}

#[derive(Clone, Debug)]
enum Op {
    Put {
        tenant: u8,
        subject: u8,
        event: u16,
        len: u8,
    },
    Delete {
        tenant: u8,
        subject: u8,
        event: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    // Few subjects and a narrow id range, so that chunks fill, split and empty; events mostly
    // ascending with some old ones, as ingest and merges write them.
    prop_oneof![
        5 => (0..2u8, 0..3u8, 0..120u16, 1..40u8).prop_map(|(tenant, subject, event, len)| {
            Op::Put { tenant, subject, event, len }
        }),
        4 => (0..2u8, 0..3u8, 0..120u16).prop_map(|(tenant, subject, event)| {
            Op::Delete { tenant, subject, event }
        }),
    ]
}

fn apply(store: &Store, model: &mut Model, batch_ops: &[Op], serial: &mut u8) {
    let mut batch = WriteBatch::new();
    for op in batch_ops {
        match *op {
            Op::Put {
                tenant: t,
                subject,
                event: e,
                len,
            } => {
                *serial = serial.wrapping_add(1);
                let fact = vec![*serial; usize::from(len)];
                batch.put_fact(
                    &tenant(t),
                    &Pseudonym([subject; 16]),
                    event(e),
                    fact.clone(),
                );
                model.insert((tenant(t), Pseudonym([subject; 16]), event(e)), fact);
            }
            Op::Delete {
                tenant: t,
                subject,
                event: e,
            } => {
                batch.delete_fact(&tenant(t), &Pseudonym([subject; 16]), event(e));
                model.remove(&(tenant(t), Pseudonym([subject; 16]), event(e)));
            }
        }
    }
    store.write(batch).unwrap();
}

/// Every chunk of `tenant` is non-empty, at most `CHUNK_FACTS`, in order, and its facts lie
/// between its key (the first chunk of a subject excepted) and the next chunk's key; each
/// subject's last chunk, and only that one, is stored under the open key, with its first fact
/// as its logical key.
fn check_chunks(backend: &dyn KvBackend, tenant: &TenantId) {
    let prefix = keys::fact_chunk_prefix(tenant).unwrap();
    let chunks = backend.scan_prefix(&prefix, None, usize::MAX).unwrap();
    let mut previous: Option<([u8; 16], [u8; 16], [u8; 16])> = None; // subject, key, last fact
    for (idx, (key, value)) in chunks.iter().enumerate() {
        let subject: [u8; 16] = key[prefix.len()..prefix.len() + 16].try_into().unwrap();
        let facts = decode_chunk(value).unwrap();
        assert!(
            !facts.is_empty() && facts.len() <= CHUNK_FACTS,
            "{} facts",
            facts.len()
        );
        let first = facts[0].0;
        let subject_ends = chunks
            .get(idx + 1)
            .is_none_or(|(next, _)| next[prefix.len()..prefix.len() + 16] != subject);
        let stored_id = chunk_id(key, prefix.len() + 16).unwrap();
        assert_eq!(
            stored_id == OPEN,
            subject_ends,
            "a subject's last chunk, and only it, is stored under the open key"
        );
        let id = if stored_id == OPEN { first } else { stored_id };
        match previous {
            Some((s, _, last)) if s == subject => {
                assert!(first >= id, "a later chunk holds a fact below its key");
                assert!(
                    last < id,
                    "a fact of the chunk before reaches this chunk's key"
                );
            }
            _ => {}
        }
        previous = Some((subject, id, facts[facts.len() - 1].0));
    }
}

fn check_reads(store: &Store, backend: &dyn KvBackend, model: &Model, page: usize) {
    for t in 0..2 {
        let tenant = tenant(t);
        let expected: Vec<(Pseudonym, EventId, Vec<u8>)> = model
            .iter()
            .filter(|((mt, _, _), _)| *mt == tenant)
            .map(|((_, p, e), f)| (*p, *e, f.clone()))
            .collect();
        // Paged reads, resuming after each page's last fact.
        let mut read = Vec::new();
        let mut after = None;
        loop {
            let got = store.facts(&tenant, after, page).unwrap();
            assert!(got.len() <= page);
            let done = got.len() < page;
            after = got.last().map(|(p, e, _)| (*p, *e));
            read.extend(got);
            if done {
                break;
            }
        }
        assert_eq!(read, expected);
        // Resuming after a fact that is not stored.
        if let Some((p, e, _)) = expected.get(expected.len() / 2) {
            let missing = EventId::from_bytes({
                let mut b = e.to_bytes();
                b[15] ^= 1;
                b
            });
            let rest = store
                .facts(&tenant, Some((*p, missing)), usize::MAX)
                .unwrap();
            let want: Vec<_> = expected
                .iter()
                .filter(|(q, f, _)| (*q, *f) > (*p, missing))
                .cloned()
                .collect();
            assert_eq!(rest, want);
        }
        for subject in 0..3u8 {
            let p = Pseudonym([subject; 16]);
            let ids: Vec<EventId> = expected
                .iter()
                .filter(|(q, _, _)| *q == p)
                .map(|(_, e, _)| *e)
                .collect();
            assert_eq!(store.subject_fact_ids(&tenant, &p).unwrap(), ids);
        }
        check_chunks(backend, &tenant);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn packed_facts_read_back_as_the_model_after_every_batch(
        batches in proptest::collection::vec(proptest::collection::vec(op(), 1..60), 1..16),
        page in 1..50usize,
    ) {
        let backend = std::sync::Arc::new(MemBackend::new());
        let store = Store::with_backend(backend.clone());
        let mut model = Model::new();
        let mut serial = 0u8;
        for ops in &batches {
            apply(&store, &mut model, ops, &mut serial);
            check_reads(&store, &*backend, &model, page);
        }
    }
}

#[test]
fn appends_in_time_order_fill_every_chunk_but_the_last() {
    let backend = std::sync::Arc::new(MemBackend::new());
    let store = Store::with_backend(backend.clone());
    let (t, p) = (tenant(0), Pseudonym([1; 16]));
    for n in 0..(CHUNK_FACTS * 3 + CHUNK_FACTS / 2) as u16 {
        let mut batch = WriteBatch::new();
        batch.put_fact(&t, &p, event(n), vec![1; 20]);
        store.write(batch).unwrap();
    }
    let chunks = backend
        .scan_prefix(&keys::fact_chunk_prefix(&t).unwrap(), None, usize::MAX)
        .unwrap();
    let sizes: Vec<usize> = chunks
        .iter()
        .map(|(_, v)| decode_chunk(v).unwrap().len())
        .collect();
    assert_eq!(
        sizes,
        [CHUNK_FACTS, CHUNK_FACTS, CHUNK_FACTS, CHUNK_FACTS / 2]
    );
}

/// Writes chunks straight to the backend: (chunk key, events) for subject 1 of tenant 0, each
/// fact one byte of its event number.
fn stored_chunks(backend: &MemBackend, chunks: &[(u16, &[u16])]) -> Model {
    let (t, p) = (tenant(0), Pseudonym([1; 16]));
    let prefix = keys::subject_fact_chunk_prefix(&t, &p).unwrap();
    let mut model = Model::new();
    let ops = chunks
        .iter()
        .map(|(key, events)| {
            let facts: Vec<PackedFact> = events
                .iter()
                .map(|e| {
                    model.insert((t.clone(), p, event(*e)), vec![*e as u8]);
                    (event(*e).to_bytes(), vec![*e as u8])
                })
                .collect();
            let mut chunk_key = prefix.clone();
            chunk_key.extend_from_slice(&event(*key).to_bytes());
            crate::KvOp::Put {
                key: chunk_key,
                value: encode_chunk(&facts),
            }
        })
        .collect();
    backend.apply(ops).unwrap();
    model
}

#[test]
fn a_chunk_emptied_in_a_batch_leaves_its_range_to_the_chunk_before_it() {
    let backend = std::sync::Arc::new(MemBackend::new());
    let store = Store::with_backend(backend.clone());
    let (t, p) = (tenant(0), Pseudonym([1; 16]));
    let mut model = stored_chunks(&backend, &[(0, &[0, 2]), (8, &[8, 10]), (16, &[16, 18])]);
    let mut batch = WriteBatch::new();
    for e in [16, 18] {
        batch.delete_fact(&t, &p, event(e));
        model.remove(&(t.clone(), p, event(e)));
    }
    // 17 now belongs to the chunk at 8, which this batch has not read yet.
    batch.put_fact(&t, &p, event(17), vec![17]);
    model.insert((t.clone(), p, event(17)), vec![17]);
    store.write(batch).unwrap();
    check_reads(&store, &*backend, &model, 3);
    let prefix = keys::fact_chunk_prefix(&t).unwrap();
    let keys: Vec<[u8; 16]> = backend
        .scan_prefix(&prefix, None, usize::MAX)
        .unwrap()
        .iter()
        .map(|(key, _)| chunk_id(key, prefix.len() + 16).unwrap())
        .collect();
    // The chunk at 8 is now the subject's last: it moved to the open key.
    assert_eq!(keys, [event(0).to_bytes(), OPEN]);
}

#[test]
fn a_first_chunk_emptied_in_a_batch_leaves_older_facts_to_the_next_one() {
    let backend = std::sync::Arc::new(MemBackend::new());
    let store = Store::with_backend(backend.clone());
    let (t, p) = (tenant(0), Pseudonym([1; 16]));
    let mut model = stored_chunks(&backend, &[(4, &[4, 6]), (8, &[8]), (12, &[12])]);
    let mut batch = WriteBatch::new();
    for e in [4, 6] {
        batch.delete_fact(&t, &p, event(e));
        model.remove(&(t.clone(), p, event(e)));
    }
    batch.put_fact(&t, &p, event(1), vec![1]);
    model.insert((t.clone(), p, event(1)), vec![1]);
    store.write(batch).unwrap();
    check_reads(&store, &*backend, &model, 2);
    assert_eq!(
        backend
            .scan_prefix(&keys::fact_chunk_prefix(&t).unwrap(), None, usize::MAX)
            .unwrap()
            .len(),
        2,
        "the fact joined the chunk at 8 instead of a new chunk"
    );
}

#[test]
fn a_fact_over_255_bytes_is_refused_with_its_whole_batch() {
    let store = Store::in_memory();
    let (t, p) = (tenant(0), Pseudonym([1; 16]));
    let mut batch = WriteBatch::new();
    batch.put_fact(&t, &p, event(1), vec![1; 10]);
    batch.put_fact(&t, &p, event(2), vec![1; 256]);
    assert!(matches!(
        store.write(batch),
        Err(StoreError::TooLarge {
            what: "analytics fact"
        })
    ));
    assert!(store.facts(&t, None, 10).unwrap().is_empty());
}

#[test]
fn corrupt_chunks_are_refused_by_name() {
    let good = encode_chunk(&[([1; 16], vec![5]), ([2; 16], vec![])]);
    assert_eq!(decode_chunk(&good).unwrap().len(), 2);
    let corrupt = |bytes: &[u8]| {
        matches!(
            decode_chunk(bytes),
            Err(StoreError::Corrupt {
                what: "analytics fact chunk"
            })
        )
    };
    for len in 0..good.len() {
        assert!(corrupt(&good[..len]), "cut at {len}");
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(corrupt(&longer));
    let mut version = good.clone();
    version[0] = 2;
    assert!(corrupt(&version));
    // Out of order, and empty.
    assert!(corrupt(&encode_chunk(&[
        ([2; 16], vec![]),
        ([1; 16], vec![])
    ])));
    assert!(corrupt(&encode_chunk(&[])));
}

/// Writes facts in the first layout ('A' ‖ lp(tenant) ‖ pseudonym ‖ event → fact, one record
/// per fact): three subjects in each tenant, `per_subject` facts each in tenant 0 and 30 more
/// in tenant 1. Returns them as the model.
fn first_layout(backend: &dyn KvBackend, per_subject: u16) -> Model {
    let mut model = Model::new();
    let mut ops = Vec::new();
    for (n, t) in [0u8, 1].iter().enumerate() {
        let tenant_name = tenant(*t);
        for subject in 0..3u8 {
            for e in 0..(per_subject + 30 * n as u16) {
                let mut key = vec![b'A'];
                key.extend_from_slice(&(tenant_name.as_str().len() as u32).to_be_bytes());
                key.extend_from_slice(tenant_name.as_str().as_bytes());
                key.extend_from_slice(&[subject; 16]);
                key.extend_from_slice(&event(e * 3).to_bytes());
                let fact = vec![subject, e as u8];
                model.insert(
                    (tenant_name.clone(), Pseudonym([subject; 16]), event(e * 3)),
                    fact.clone(),
                );
                ops.push(crate::KvOp::Put { key, value: fact });
            }
        }
    }
    backend.apply(ops).unwrap();
    model
}

#[test]
fn the_first_layout_is_repacked_once_and_reads_the_same() {
    let backend = std::sync::Arc::new(MemBackend::new());
    let store = Store::with_backend(backend.clone());
    let model = first_layout(&*backend, 40);
    assert_eq!(store.repack_facts().unwrap(), model.len() as u64);
    assert!(backend.scan_prefix(b"A", None, 1).unwrap().is_empty());
    check_reads(&store, &*backend, &model, 7);
    assert_eq!(store.repack_facts().unwrap(), 0);
    check_reads(&store, &*backend, &model, 1000);
}

/// A repack cut short (the disk fills, or the process dies, between two pages) leaves every
/// fact in exactly one layout, and the next repack finishes the job.
#[test]
fn a_repack_cut_short_leaves_each_fact_in_one_layout_and_finishes_next_time() {
    let backend = std::sync::Arc::new(Instrumented::default());
    let store = Store::with_backend(backend.clone());
    // More than two pages of 1,024.
    let model = first_layout(&*backend, 400);
    assert!(model.len() > 2 * 1024);
    backend
        .applies_left
        .store(1, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        store.repack_facts(),
        Err(StoreError::StorageFull(_))
    ));
    let old = backend.scan_prefix(b"A", None, usize::MAX).unwrap().len();
    let mut packed = 0;
    for t in 0..2 {
        packed += store.facts(&tenant(t), None, usize::MAX).unwrap().len();
    }
    assert_eq!(
        (old, packed),
        (model.len() - 1024, 1024),
        "one page moved, whole"
    );

    backend
        .applies_left
        .store(usize::MAX, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(store.repack_facts().unwrap(), (model.len() - 1024) as u64);
    assert!(backend.scan_prefix(b"A", None, 1).unwrap().is_empty());
    check_reads(&store, &backend.inner, &model, 100);
}

/// A backend that counts its range reads (scans and backwards seeks) and, once
/// `applies_left` runs out, fails every write as a full disk would.
struct Instrumented {
    inner: MemBackend,
    seeks: std::sync::atomic::AtomicUsize,
    applies_left: std::sync::atomic::AtomicUsize,
}

impl Default for Instrumented {
    fn default() -> Instrumented {
        Instrumented {
            inner: MemBackend::new(),
            seeks: std::sync::atomic::AtomicUsize::new(0),
            applies_left: std::sync::atomic::AtomicUsize::new(usize::MAX),
        }
    }
}

impl KvBackend for Instrumented {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }
    fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<crate::KvEntry>, StoreError> {
        self.seeks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.scan_prefix(prefix, after, limit)
    }
    fn last_before(
        &self,
        prefix: &[u8],
        before: &[u8],
    ) -> Result<Option<crate::KvEntry>, StoreError> {
        self.seeks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.last_before(prefix, before)
    }
    fn apply(&self, ops: Vec<crate::KvOp>) -> Result<(), StoreError> {
        let left = &self.applies_left;
        if left
            .fetch_update(
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
                |n| n.checked_sub(1),
            )
            .is_err()
        {
            return Err(StoreError::StorageFull("no space left (test)".to_owned()));
        }
        self.inner.apply(ops)
    }
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    fn size_on_disk(&self) -> u64 {
        0
    }
}

#[test]
fn an_append_reads_the_open_chunk_with_a_point_read_and_no_seek() {
    let backend = std::sync::Arc::new(Instrumented::default());
    let store = Store::with_backend(backend.clone());
    let (t, p) = (tenant(0), Pseudonym([1; 16]));
    let mut model = Model::new();
    for n in 0..(CHUNK_FACTS * 3) as u16 {
        let before = backend.seeks.load(std::sync::atomic::Ordering::SeqCst);
        let mut batch = WriteBatch::new();
        batch.put_fact(&t, &p, event(n), vec![n as u8]);
        model.insert((t.clone(), p, event(n)), vec![n as u8]);
        store.write(batch).unwrap();
        let seeks = backend.seeks.load(std::sync::atomic::Ordering::SeqCst) - before;
        // The subject's first fact looks for chunks (a backwards seek, then a forward one);
        // every later append, also one that seals a full chunk, needs none.
        assert_eq!(seeks, if n == 0 { 2 } else { 0 }, "fact {n}");
    }
    check_reads(&store, &backend.inner, &model, 5);
}
