//! The typed store over both engines: scoping by tenant and subject, ordering, pagination,
//! index entries, atomic batches, corrupt values and durability.

use std::sync::Arc;

use custodia_core::{ApiKeyId, EventId, SubjectId, TenantId, Timestamp};

use super::*;
use crate::backend::{KvBackend, KvOp, MemBackend};

fn tenant(name: &str) -> TenantId {
    name.parse().unwrap()
}

fn subject_id(n: u8) -> SubjectId {
    SubjectId::from_bytes([n; 16])
}

fn event_id(millis: u64, n: u8) -> EventId {
    EventId::from_parts(millis, [n; 10])
}

fn subject(tenant: &TenantId, id: SubjectId) -> SubjectRecord {
    SubjectRecord {
        tenant: tenant.clone(),
        id,
        created_at: Timestamp::from_unix_micros(10),
        updated_at: Timestamp::from_unix_micros(20),
        sealed_profile: vec![id.to_bytes()[0]; 40],
        lookups: vec![(LookupKind::UserId, [id.to_bytes()[0]; 32])],
        blind: vec![("email".to_owned(), vec![1, 2])],
    }
}

fn event(tenant: &TenantId, subject: SubjectId, id: EventId) -> EventRecord {
    EventRecord {
        tenant: tenant.clone(),
        subject,
        id,
        received_at: Timestamp::from_unix_micros(30),
        sealed: id.to_bytes().to_vec(),
    }
}

fn ids(events: &[EventRecord]) -> Vec<EventId> {
    events.iter().map(|event| event.id).collect()
}

/// Runs `check` against a store in memory and a sled store in a fresh directory.
fn on_both_engines(check: impl Fn(&Store)) {
    check(&Store::in_memory());
    let dir = tempfile::tempdir().unwrap();
    check(&Store::open_sled(dir.path()).unwrap());
}

#[test]
fn events_come_in_time_order_per_subject_and_paginate() {
    on_both_engines(|store| {
        let (a, ab) = (tenant("a"), tenant("ab"));
        let (alice, bob) = (subject_id(1), subject_id(2));
        // Written out of order; several in the same millisecond.
        let alice_events = [
            event_id(5, 9),
            event_id(1, 0),
            event_id(3, 5),
            event_id(3, 1),
        ];
        let mut batch = WriteBatch::new();
        for id in alice_events {
            batch.put_event(&event(&a, alice, id));
        }
        batch.put_event(&event(&a, bob, event_id(2, 0)));
        batch.put_event(&event(&ab, alice, event_id(4, 0)));
        store.write(batch).unwrap();

        let mut sorted = alice_events.to_vec();
        sorted.sort();
        let all = store.events(&a, alice, None, 100).unwrap();
        assert_eq!(ids(&all), sorted);
        assert_eq!(all[0], event(&a, alice, sorted[0]));

        let first = store.events(&a, alice, None, 3).unwrap();
        assert_eq!(ids(&first), sorted[..3]);
        let rest = store.events(&a, alice, Some(first[2].id), 3).unwrap();
        assert_eq!(ids(&rest), sorted[3..]);
        assert!(
            store
                .events(&a, alice, Some(sorted[3]), 3)
                .unwrap()
                .is_empty()
        );
        // A cursor that is not a stored id still works.
        let after_gap = store.events(&a, alice, Some(event_id(2, 0)), 10).unwrap();
        assert_eq!(ids(&after_gap), sorted[1..]);

        // Other subjects and tenants stay apart, tenant "a" versus "ab" included.
        assert_eq!(
            ids(&store.events(&a, bob, None, 100).unwrap()),
            [event_id(2, 0)]
        );
        assert_eq!(
            ids(&store.events(&ab, alice, None, 100).unwrap()),
            [event_id(4, 0)]
        );
        assert!(
            store
                .events(&tenant("b"), alice, None, 100)
                .unwrap()
                .is_empty()
        );

        let mut batch = WriteBatch::new();
        batch.delete_event(&a, alice, sorted[0]);
        store.write(batch).unwrap();
        assert_eq!(
            ids(&store.events(&a, alice, None, 100).unwrap()),
            sorted[1..]
        );
    });
}

#[test]
fn subjects_paginate_count_and_stay_in_their_tenant() {
    on_both_engines(|store| {
        let (a, ab) = (tenant("a"), tenant("ab"));
        let mut batch = WriteBatch::new();
        for n in [3, 1, 2] {
            batch.put_subject(&subject(&a, subject_id(n)));
        }
        batch.put_subject(&subject(&ab, subject_id(9)));
        assert!(!batch.is_empty());
        store.write(batch).unwrap();

        assert_eq!(
            store.subject(&a, subject_id(2)).unwrap(),
            Some(subject(&a, subject_id(2)))
        );
        assert_eq!(store.subject(&a, subject_id(9)).unwrap(), None);
        assert_eq!(store.subject(&ab, subject_id(2)).unwrap(), None);
        assert_eq!(store.count_subjects(&a).unwrap(), 3);
        assert_eq!(store.count_subjects(&ab).unwrap(), 1);
        assert_eq!(store.count_subjects(&tenant("b")).unwrap(), 0);

        let page = store.subjects(&a, None, 2).unwrap();
        let page_ids: Vec<SubjectId> = page.iter().map(|record| record.id).collect();
        assert_eq!(page_ids, [subject_id(1), subject_id(2)]);
        let rest = store.subjects(&a, Some(subject_id(2)), 2).unwrap();
        assert_eq!(rest, [subject(&a, subject_id(3))]);

        let mut batch = WriteBatch::new();
        batch.delete_subject(&a, subject_id(1));
        store.write(batch).unwrap();
        assert_eq!(store.subject(&a, subject_id(1)).unwrap(), None);
        assert_eq!(store.count_subjects(&a).unwrap(), 2);
    });
}

#[test]
fn lookups_and_blind_buckets() {
    on_both_engines(|store| {
        let (a, ab) = (tenant("a"), tenant("ab"));
        let hash = [7u8; 32];
        let mut batch = WriteBatch::new();
        batch.put_lookup(&a, LookupKind::UserId, &hash, subject_id(1));
        batch.put_lookup(&a, LookupKind::AnonymousId, &hash, subject_id(2));
        // Two subjects share a bucket; neighbouring buckets and fields stay apart.
        batch.put_blind(&a, "email", b"ab", subject_id(2));
        batch.put_blind(&a, "email", b"ab", subject_id(1));
        batch.put_blind(&a, "email", b"a", subject_id(3));
        batch.put_blind(&a, "email", b"abc", subject_id(4));
        batch.put_blind(&a, "phone", b"ab", subject_id(5));
        batch.put_blind(&ab, "email", b"ab", subject_id(6));
        store.write(batch).unwrap();

        assert_eq!(
            store.lookup(&a, LookupKind::UserId, &hash).unwrap(),
            Some(subject_id(1))
        );
        assert_eq!(
            store.lookup(&a, LookupKind::AnonymousId, &hash).unwrap(),
            Some(subject_id(2))
        );
        assert_eq!(store.lookup(&ab, LookupKind::UserId, &hash).unwrap(), None);
        assert_eq!(
            store.lookup(&a, LookupKind::UserId, &[8; 32]).unwrap(),
            None
        );

        let bucket = store.blind_candidates(&a, "email", b"ab").unwrap();
        assert_eq!(bucket, [subject_id(1), subject_id(2)]);
        assert_eq!(
            store.blind_candidates(&a, "email", b"a").unwrap(),
            [subject_id(3)]
        );
        assert_eq!(
            store.blind_candidates(&a, "phone", b"ab").unwrap(),
            [subject_id(5)]
        );
        assert_eq!(
            store.blind_candidates(&ab, "email", b"ab").unwrap(),
            [subject_id(6)]
        );
        assert!(store.blind_candidates(&a, "email", b"").unwrap().is_empty());

        let mut batch = WriteBatch::new();
        batch.delete_lookup(&a, LookupKind::UserId, &hash);
        batch.delete_blind(&a, "email", b"ab", subject_id(2));
        store.write(batch).unwrap();
        assert_eq!(store.lookup(&a, LookupKind::UserId, &hash).unwrap(), None);
        assert_eq!(
            store.blind_candidates(&a, "email", b"ab").unwrap(),
            [subject_id(1)]
        );
    });
}

#[test]
fn merges_api_keys_and_metadata() {
    on_both_engines(|store| {
        let (a, ab) = (tenant("a"), tenant("ab"));
        let merge = |tenant: &TenantId, merged: u8| MergeRecord {
            tenant: tenant.clone(),
            merged: subject_id(merged),
            into: subject_id(100),
            at: Timestamp::from_unix_micros(5),
            n_events_moved: 12,
        };
        let api_key = |id: &str, tenant: &TenantId| ApiKeyRecord {
            id: id.parse().unwrap(),
            tenant: tenant.clone(),
            role: "ingest".parse().unwrap(),
            secret_hash: [9; 32],
            created_at: Timestamp::from_unix_micros(6),
            revoked: false,
        };
        let mut batch = WriteBatch::new();
        batch.put_merge(&merge(&a, 2));
        batch.put_merge(&merge(&a, 1));
        batch.put_merge(&merge(&ab, 3));
        batch.put_api_key(&api_key("00000000000000bb", &ab));
        batch.put_api_key(&api_key("00000000000000aa", &a));
        batch.put_meta("schema", b"\x01");
        store.write(batch).unwrap();

        assert_eq!(
            store.merge_record(&a, subject_id(1)).unwrap(),
            Some(merge(&a, 1))
        );
        assert_eq!(store.merge_record(&ab, subject_id(1)).unwrap(), None);
        assert_eq!(store.merges(&a).unwrap(), [merge(&a, 1), merge(&a, 2)]);
        assert_eq!(store.merges(&ab).unwrap(), [merge(&ab, 3)]);

        let id: ApiKeyId = "00000000000000aa".parse().unwrap();
        assert_eq!(
            store.api_key(&id).unwrap(),
            Some(api_key("00000000000000aa", &a))
        );
        assert_eq!(
            store.api_key(&"00000000000000cc".parse().unwrap()).unwrap(),
            None
        );
        let all = store.api_keys().unwrap();
        assert_eq!(
            all,
            [
                api_key("00000000000000aa", &a),
                api_key("00000000000000bb", &ab)
            ]
        );

        assert_eq!(store.meta("schema").unwrap().as_deref(), Some(&b"\x01"[..]));
        assert_eq!(store.meta("other").unwrap(), None);

        let mut batch = WriteBatch::new();
        batch.put_api_key(&ApiKeyRecord {
            revoked: true,
            ..api_key("00000000000000aa", &a)
        });
        batch.delete_api_key(&"00000000000000bb".parse().unwrap());
        batch.delete_merge(&a, subject_id(2));
        batch.delete_meta("schema");
        store.write(batch).unwrap();
        assert!(store.api_key(&id).unwrap().unwrap().revoked);
        assert_eq!(store.api_keys().unwrap().len(), 1);
        assert_eq!(store.merges(&a).unwrap(), [merge(&a, 1)]);
        assert_eq!(store.meta("schema").unwrap(), None);
    });
}

#[test]
fn unbounded_reads_page_through_large_sets() {
    on_both_engines(|store| {
        let a = tenant("a");
        let mut batch = WriteBatch::new();
        for n in 0..2500u32 {
            let mut id = [0u8; 16];
            id[12..].copy_from_slice(&n.to_be_bytes());
            batch.put_blind(&a, "email", b"b", SubjectId::from_bytes(id));
        }
        assert_eq!(batch.len(), 2500);
        store.write(batch).unwrap();
        let candidates = store.blind_candidates(&a, "email", b"b").unwrap();
        assert_eq!(candidates.len(), 2500);
        assert!(candidates.windows(2).all(|pair| pair[0] < pair[1]));
    });
}

#[test]
fn a_batch_is_all_or_nothing_and_ordered() {
    on_both_engines(|store| {
        let a = tenant("a");
        let empty = WriteBatch::new();
        assert!(empty.is_empty());
        store.write(empty).unwrap();

        // Within one batch the later change to a record wins.
        let mut batch = WriteBatch::new();
        batch.put_subject(&subject(&a, subject_id(1)));
        batch.delete_subject(&a, subject_id(1));
        batch.put_subject(&subject(&a, subject_id(2)));
        store.write(batch).unwrap();
        assert_eq!(store.subject(&a, subject_id(1)).unwrap(), None);
        assert!(store.subject(&a, subject_id(2)).unwrap().is_some());
        store.flush().unwrap();
    });
}

#[test]
fn corrupt_values_are_reported_not_panicked_on() {
    let backend = Arc::new(MemBackend::new());
    let store = Store::with_backend(backend.clone());
    let a = tenant("a");
    let bad = |key: Vec<u8>| KvOp::Put {
        key,
        value: vec![0xEE, 1, 2],
    };
    backend
        .apply(vec![
            bad(crate::keys::subject_key(&a, subject_id(1)).unwrap()),
            bad(crate::keys::event_key(&a, subject_id(1), event_id(1, 1)).unwrap()),
            bad(crate::keys::lookup_key(&a, LookupKind::UserId, &[0; 32]).unwrap()),
            bad(crate::keys::blind_key(&a, "email", b"x", subject_id(1)).unwrap()),
            bad(crate::keys::merge_key(&a, subject_id(1)).unwrap()),
            bad(crate::keys::api_key_key(&"00000000000000aa".parse().unwrap()).unwrap()),
            // A key under the subject prefix without a whole id after it.
            KvOp::Put {
                key: [
                    &crate::keys::subject_prefix(&tenant("z")).unwrap()[..],
                    &[1],
                ]
                .concat(),
                value: vec![],
            },
        ])
        .unwrap();
    let corrupt = |error: StoreError| {
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
        // The message names the record kind and none of the stored bytes.
        assert!(error.to_string().starts_with("corrupt "), "{error}");
        assert_eq!(error.code(), custodia_core::ErrorCode::Internal);
    };
    corrupt(store.subject(&a, subject_id(1)).unwrap_err());
    corrupt(store.subjects(&a, None, 10).unwrap_err());
    corrupt(store.subjects(&tenant("z"), None, 10).unwrap_err());
    corrupt(store.events(&a, subject_id(1), None, 10).unwrap_err());
    corrupt(store.lookup(&a, LookupKind::UserId, &[0; 32]).unwrap_err());
    corrupt(store.blind_candidates(&a, "email", b"x").unwrap_err());
    corrupt(store.merge_record(&a, subject_id(1)).unwrap_err());
    corrupt(store.merges(&a).unwrap_err());
    corrupt(
        store
            .api_key(&"00000000000000aa".parse().unwrap())
            .unwrap_err(),
    );
    corrupt(store.api_keys().unwrap_err());
}

#[test]
fn flushed_records_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = tenant("a");
    {
        let store = Store::open_sled(dir.path()).unwrap();
        let mut batch = WriteBatch::new();
        batch.put_subject(&subject(&a, subject_id(1)));
        batch.put_event(&event(&a, subject_id(1), event_id(1, 1)));
        store.write(batch).unwrap();
        store.flush().unwrap();
        assert!(matches!(
            Store::open_sled(dir.path()),
            Err(StoreError::Locked)
        ));
        assert!(store.size_on_disk() > 0);
    }
    let store = Store::open_sled(dir.path()).unwrap();
    assert_eq!(
        store.subject(&a, subject_id(1)).unwrap(),
        Some(subject(&a, subject_id(1)))
    );
    assert_eq!(
        ids(&store.events(&a, subject_id(1), None, 10).unwrap()),
        [event_id(1, 1)]
    );
}

#[test]
fn stores_are_shared_across_threads() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Store>();
    let store = Store::in_memory();
    let a = tenant("a");
    std::thread::scope(|scope| {
        for n in 0..4u8 {
            let (store, a) = (store.clone(), &a);
            scope.spawn(move || {
                let mut batch = WriteBatch::new();
                batch.put_subject(&subject(a, subject_id(n)));
                store.write(batch).unwrap();
                store.flush().unwrap();
            });
        }
    });
    assert_eq!(store.count_subjects(&a).unwrap(), 4);
    assert_eq!(format!("{store:?}"), "Store");
}

#[test]
fn consent_view_per_subject_and_purpose_with_ordered_history() {
    use custodia_core::{Pseudonym, PurposeId};

    use crate::{ConsentRecord, ConsentState};

    on_both_engines(|store| {
        let t = tenant("shop");
        let other = tenant("shop2");
        let jane = Pseudonym([1; 16]);
        let john = Pseudonym([2; 16]);
        let marketing: PurposeId = "marketing_email".parse().unwrap();
        let analytics: PurposeId = "analytics".parse().unwrap();
        let record = |subject, purpose: &PurposeId, state, seq| ConsentRecord {
            tenant: t.clone(),
            subject,
            purpose: purpose.clone(),
            state,
            since: Timestamp::from_unix_micros(1_000 + seq as i64),
            seq,
        };
        let mut batch = WriteBatch::new();
        batch.put_consent(&record(jane, &marketing, ConsentState::Granted, 0));
        batch.put_consent(&record(jane, &analytics, ConsentState::Granted, 1));
        batch.put_consent(&record(john, &marketing, ConsentState::Granted, 2));
        // A later decision replaces the state.
        batch.put_consent(&record(jane, &marketing, ConsentState::Withdrawn, 300));
        for seq in [300, 0, 1, 256] {
            batch.put_consent_history(&t, &jane, seq);
        }
        batch.put_consent_history(&t, &john, 2);
        store.write(batch).unwrap();

        let mut states = store.consents(&t, &jane).unwrap();
        states.sort_by(|a, b| a.purpose.cmp(&b.purpose));
        assert_eq!(states.len(), 2);
        assert_eq!(states[0].purpose, analytics);
        assert_eq!(states[1].state, ConsentState::Withdrawn);
        assert_eq!(states[1].seq, 300);
        assert_eq!(
            store
                .consent(&t, &jane, &marketing)
                .unwrap()
                .map(|c| c.state),
            Some(ConsentState::Withdrawn)
        );
        assert_eq!(store.consent(&other, &jane, &marketing).unwrap(), None);
        assert_eq!(
            store.consent_history(&t, &jane).unwrap(),
            vec![0, 1, 256, 300],
            "in seq order"
        );
        assert_eq!(store.consent_history(&t, &john).unwrap(), vec![2]);
        assert!(store.consent_history(&other, &jane).unwrap().is_empty());
    });
}

#[test]
fn subject_flags_round_trip_and_clear_flags_leave_no_record() {
    on_both_engines(|store| {
        let (a, b) = (tenant("a"), tenant("b"));
        let who = custodia_core::Pseudonym([7; 16]);
        assert!(store.subject_flags(&a, &who).unwrap().is_clear());
        let flags = SubjectFlagsRecord {
            restricted: true,
            legal_hold: true,
            since: Timestamp::from_unix_micros(5),
            seq: 9,
            ..SubjectFlagsRecord::default()
        };
        let mut batch = WriteBatch::new();
        batch.put_subject_flags(&a, &who, &flags);
        store.write(batch).unwrap();
        assert_eq!(store.subject_flags(&a, &who).unwrap(), flags);
        // Scoped by tenant.
        assert!(store.subject_flags(&b, &who).unwrap().is_clear());

        let mut batch = WriteBatch::new();
        batch.put_subject_flags(&a, &who, &SubjectFlagsRecord::default());
        store.write(batch).unwrap();
        assert_eq!(
            store.subject_flags(&a, &who).unwrap(),
            SubjectFlagsRecord::default()
        );
    });
}

#[test]
fn suppressions_are_per_tenant_and_can_be_lifted() {
    on_both_engines(|store| {
        let (a, b) = (tenant("a"), tenant("b"));
        let since = Timestamp::from_unix_micros(77);
        let mut batch = WriteBatch::new();
        batch.put_suppression(&a, &[1; 32], since);
        batch.put_suppression(&a, &[2; 32], since);
        store.write(batch).unwrap();
        assert_eq!(store.suppressed(&a, &[1; 32]).unwrap(), Some(since));
        assert_eq!(store.suppressed(&b, &[1; 32]).unwrap(), None);
        assert_eq!(
            store.suppressions(&a).unwrap(),
            vec![([1; 32], since), ([2; 32], since)]
        );
        let mut batch = WriteBatch::new();
        batch.delete_suppression(&a, &[1; 32]);
        store.write(batch).unwrap();
        assert_eq!(store.suppressed(&a, &[1; 32]).unwrap(), None);
        assert_eq!(store.suppressions(&a).unwrap().len(), 1);
    });
}

#[test]
fn facts_are_scoped_by_tenant_and_subject_and_page_in_order() {
    on_both_engines(|store| {
        let (a, b) = (tenant("a"), tenant("b"));
        let (p1, p2) = (
            custodia_core::Pseudonym([1; 16]),
            custodia_core::Pseudonym([2; 16]),
        );
        let mut batch = WriteBatch::new();
        batch.put_fact(&a, &p2, event_id(5, 1), vec![25]);
        batch.put_fact(&a, &p1, event_id(9, 1), vec![19]);
        batch.put_fact(&a, &p1, event_id(3, 1), vec![13]);
        batch.put_fact(&b, &p1, event_id(1, 1), vec![99]);
        store.write(batch).unwrap();
        let all = store.facts(&a, None, 10).unwrap();
        let values: Vec<u8> = all.iter().map(|(_, _, v)| v[0]).collect();
        assert_eq!(values, vec![13, 19, 25]);
        let (p, e, _) = all[0];
        let rest = store.facts(&a, Some((p, e)), 10).unwrap();
        assert_eq!(rest.len(), 2);
        assert_eq!(
            store.subject_fact_ids(&a, &p1).unwrap(),
            vec![event_id(3, 1), event_id(9, 1)]
        );
        let mut batch = WriteBatch::new();
        batch.delete_fact(&a, &p1, event_id(3, 1));
        store.write(batch).unwrap();
        assert_eq!(store.facts(&a, None, 10).unwrap().len(), 2);
        assert_eq!(store.facts(&b, None, 10).unwrap().len(), 1);
    });
}

#[test]
fn a_write_below_the_free_space_reserve_writes_nothing_and_says_storage_full() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_memory();
    let write_meta = |store: &Store, value: &[u8]| {
        let mut batch = WriteBatch::new();
        batch.put_meta("reserve-test", value);
        store.write(batch)
    };
    // More than any file system has free: the write is refused before the engine sees it.
    store.reserve_free_space(dir.path(), u64::MAX);
    let refused = write_meta(&store, b"refused").unwrap_err();
    assert!(matches!(refused, StoreError::StorageFull(_)), "{refused}");
    assert_eq!(
        refused.code(),
        custodia_core::ErrorCode::InsufficientStorage
    );
    assert_eq!(store.meta("reserve-test").unwrap(), None, "nothing written");
    // Space "returns": the same write goes through, no reopen needed.
    store.reserve_free_space(dir.path(), 1);
    write_meta(&store, b"written").unwrap();
    assert_eq!(
        store.meta("reserve-test").unwrap().as_deref(),
        Some(&b"written"[..])
    );
}
