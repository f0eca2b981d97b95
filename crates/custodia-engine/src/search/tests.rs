//! Search through the engine: the queue keeps the index in step, hits go through the access
//! decision and the access log, erasure takes a subject out at once.

use custodia_core::{ErrorCode, Operation, SubjectId};
use serde_json::json;

use crate::tests::{Fixture, fixture};
use crate::*;

fn search(f: &Fixture, caller: &Caller, purpose: &str, q: &str) -> Vec<SubjectId> {
    let grant = f
        .engine
        .grant(caller, Operation::Search, Some(purpose))
        .unwrap();
    f.engine
        .search(&grant, q, None, 10)
        .unwrap()
        .hits
        .into_iter()
        .map(|h| h.subject_id)
        .collect()
}

#[test]
fn the_index_follows_the_store_and_finds_by_name_city_prefix_and_order_id() {
    let f = fixture();
    let app = f.caller("app");
    let tenant = app.tenant.clone();
    let mueller = f
        .identify(&app, json!({"userId": "u1", "traits": {"name": "Jürgen Müller", "address": {"city": "München", "street": "Hauptstraße 1"}}}))
        .subject_id;
    let miller = f
        .identify(
            &app,
            json!({"userId": "u2", "traits": {"name": "Anna Miller", "city": "Berlin"}}),
        )
        .subject_id;
    f.track(&app, json!({"userId": "u2", "event": "Order Completed", "properties": {"order_id": "ORD-7781", "total": 3}}));
    // Nothing is searchable before the indexer ran: requests never wait for index commits.
    assert!(search(&f, &app, "customer_support", "muller").is_empty());
    assert!(f.engine.index_pending(&tenant).unwrap() >= 3);
    assert_eq!(f.engine.index_pending(&tenant).unwrap(), 0, "queue drained");

    assert_eq!(
        search(&f, &app, "customer_support", "MULLER"),
        vec![mueller]
    );
    assert_eq!(
        search(&f, &app, "customer_support", "jurgen mül"),
        vec![mueller]
    );
    assert_eq!(
        search(&f, &app, "customer_support", "munchen muller"),
        vec![mueller]
    );
    assert_eq!(
        search(&f, &app, "customer_support", "ord-7781"),
        vec![miller]
    );
    assert_eq!(
        search(&f, &app, "customer_support", "anna berlin"),
        vec![miller]
    );
    assert!(
        search(&f, &app, "customer_support", "anna münchen").is_empty(),
        "AND"
    );

    // A change moves the document.
    let patch = TraitChanges::from_json(&json!({"traits": {"name": "Anna Schmidt"}})).unwrap();
    f.engine.patch_profile(&app, miller, &patch).unwrap();
    f.engine.index_all_pending().unwrap();
    assert!(search(&f, &app, "customer_support", "miller").is_empty());
    assert_eq!(
        search(&f, &app, "customer_support", "schmidt"),
        vec![miller]
    );

    // A rebuild from scratch finds the same.
    let mut calls = 0;
    let n = f
        .engine
        .rebuild_index(&tenant, &mut |_, _| calls += 1)
        .unwrap();
    assert_eq!(n, 2);
    assert!(calls >= 1);
    assert_eq!(
        search(&f, &app, "customer_support", "schmidt"),
        vec![miller]
    );
}

#[test]
fn search_honours_the_purpose_the_subjects_flags_and_erasure() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let a = f
        .identify(
            &app,
            json!({"userId": "u1", "traits": {"name": "Zora Quill"}}),
        )
        .subject_id;
    let b = f
        .identify(
            &app,
            json!({"userId": "u2", "traits": {"name": "Zora Quince"}}),
        )
        .subject_id;
    f.engine.index_all_pending().unwrap();
    assert_eq!(search(&f, &app, "fraud_prevention", "zora").len(), 2);

    // A purpose without `search = true` is refused outright.
    let grant = f
        .engine
        .grant(&app, Operation::Search, Some("marketing_email"))
        .unwrap();
    assert_eq!(
        f.engine
            .search(&grant, "zora", None, 10)
            .unwrap_err()
            .code(),
        ErrorCode::PurposeNotPermitted
    );
    // An objection takes the subject out of legitimate-interest searches only.
    f.engine
        .change_flags(&admin, a, FlagChange::Object, None)
        .unwrap();
    assert_eq!(search(&f, &app, "fraud_prevention", "zora"), vec![b]);
    assert_eq!(search(&f, &app, "customer_support", "zora").len(), 2);

    // Erasure removes the document at once, without waiting for the indexer; the indexer then
    // compacts the segments that held it.
    f.engine
        .erase(&admin, b, &ErasureOptions::default())
        .unwrap();
    assert_eq!(search(&f, &app, "customer_support", "zora"), vec![a]);
    let tenant = admin.tenant.clone();
    assert_eq!(f.engine.pending_search_purges(&tenant, 10).unwrap(), 1);
    f.engine.index_all_pending().unwrap();
    assert_eq!(f.engine.pending_search_purges(&tenant, 10).unwrap(), 0);
    assert_eq!(
        search(&f, &app, "customer_support", "quince"),
        Vec::<SubjectId>::new()
    );
    // Searches are in the access log.
    let audit = f
        .engine
        .access_entries(&admin, Some(a), None, None, 100)
        .unwrap();
    assert!(
        audit.iter().any(|e| e.attributes["what"] == "search"),
        "{audit:?}"
    );
}

#[test]
fn a_purge_noted_before_a_crash_still_takes_the_document_out() {
    let f = fixture();
    let app = f.caller("app");
    let a = f
        .identify(
            &app,
            json!({"userId": "u1", "traits": {"name": "Ilka Vossberg"}}),
        )
        .subject_id;
    f.engine.index_all_pending().unwrap();
    assert_eq!(search(&f, &app, "customer_support", "vossberg"), vec![a]);
    // An erasure's first durable step, the note, then a crash before the index deletion.
    let tenant = app.tenant.clone();
    let pseudonym = f.engine.keys(&tenant).unwrap().pseudonym(a);
    let mut batch = custodia_store::WriteBatch::new();
    batch.put_search_purge(&tenant, &pseudonym);
    f.engine.store.write(batch).unwrap();

    f.engine.index_all_pending().unwrap();
    assert_eq!(f.engine.pending_search_purges(&tenant, 10).unwrap(), 0);
    assert_eq!(
        search(&f, &app, "customer_support", "vossberg"),
        Vec::<SubjectId>::new()
    );
}

/// The indexer reads the queue after the last entry it took; an entry whose seq was handed
/// out earlier but whose write landed later is still taken, once nothing follows.
#[test]
fn an_entry_written_after_the_indexer_passed_its_seq_is_still_indexed() {
    let f = fixture();
    let app = f.caller("app");
    let tenant = app.tenant.clone();
    let first = f
        .identify(
            &app,
            json!({"userId": "u1", "traits": {"name": "Jürgen Müller"}}),
        )
        .subject_id;
    f.identify(
        &app,
        json!({"userId": "u2", "traits": {"name": "Anna Miller"}}),
    );
    assert_eq!(f.engine.index_pending(&tenant).unwrap(), 2);
    // Queued again under a seq below those the indexer took, as a write that drew its seq
    // first and landed last would be.
    let mut batch = custodia_store::WriteBatch::new();
    batch.queue_for_search(&tenant, 1, first);
    f.engine.store.write(batch).unwrap();
    assert_eq!(f.engine.pending_search_updates(&tenant, 10).unwrap(), 1);
    assert_eq!(
        f.engine.index_pending(&tenant).unwrap(),
        1,
        "the late entry taken"
    );
    assert_eq!(f.engine.index_pending(&tenant).unwrap(), 0);
    assert_eq!(f.engine.pending_search_updates(&tenant, 10).unwrap(), 0);
    assert_eq!(search(&f, &app, "customer_support", "muller"), vec![first]);
}
