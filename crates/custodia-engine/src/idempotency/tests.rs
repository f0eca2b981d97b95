//! Kept answers: the same request is answered, another refused, an expired key reused.

use crate::tests::fixture;
use crate::{Clock, KeptAnswer, PriorUse};

#[test]
fn a_key_answers_its_request_refuses_another_and_expires() {
    let f = fixture();
    let app = f.caller("app");
    let slot = |body: &[u8]| {
        f.engine
            .idempotency_slot(&app, "k-1", "POST", "/v1/track", body)
            .unwrap()
    };
    let first = slot(br#"{"userId":"u1"}"#);
    assert_eq!(
        f.engine.idempotency_prior(&app, &first).unwrap(),
        PriorUse::Unused
    );
    let answer = KeptAnswer {
        status: 200,
        body: br#"{"subject_id":"x"}"#.to_vec(),
    };
    f.engine
        .keep_idempotent_answer(&app, &first, &answer)
        .unwrap();
    assert_eq!(
        f.engine.idempotency_prior(&app, &first).unwrap(),
        PriorUse::SameRequest(answer.clone())
    );

    // Another body, another path or another method under the same key: another request.
    for other in [
        slot(br#"{"userId":"u2"}"#),
        f.engine
            .idempotency_slot(&app, "k-1", "POST", "/v1/identify", br#"{"userId":"u1"}"#)
            .unwrap(),
        f.engine
            .idempotency_slot(&app, "k-1", "PUT", "/v1/track", br#"{"userId":"u1"}"#)
            .unwrap(),
    ] {
        assert_eq!(other.key_hash, first.key_hash);
        assert_eq!(
            f.engine.idempotency_prior(&app, &other).unwrap(),
            PriorUse::OtherRequest
        );
    }
    // Another key is unused.
    let other_key = f
        .engine
        .idempotency_slot(&app, "k-2", "POST", "/v1/track", br#"{"userId":"u1"}"#)
        .unwrap();
    assert_eq!(
        f.engine.idempotency_prior(&app, &other_key).unwrap(),
        PriorUse::Unused
    );

    // Past the window the key is unused again, and can keep a new answer.
    f.clock.set(f.clock.now().plus_days(8));
    let later = slot(br#"{"userId":"u2"}"#);
    assert_eq!(
        f.engine.idempotency_prior(&app, &later).unwrap(),
        PriorUse::Unused
    );
    let newer = KeptAnswer {
        status: 201,
        body: b"{}".to_vec(),
    };
    f.engine
        .keep_idempotent_answer(&app, &later, &newer)
        .unwrap();
    assert_eq!(
        f.engine.idempotency_prior(&app, &later).unwrap(),
        PriorUse::SameRequest(newer)
    );
}

#[test]
fn a_kept_answer_holds_no_plaintext_key() {
    let f = fixture();
    let app = f.caller("app");
    let slot = f
        .engine
        .idempotency_slot(&app, "distinctive-key-7", "POST", "/v1/track", b"{}")
        .unwrap();
    let answer = KeptAnswer {
        status: 200,
        body: b"{}".to_vec(),
    };
    f.engine
        .keep_idempotent_answer(&app, &slot, &answer)
        .unwrap();
    let tenant = custodia_core::TenantId::default_tenant();
    let far_future = f.clock.now().plus_days(10_000);
    let entries = f
        .engine
        .store
        .idempotency_expired(&tenant, far_future, 10)
        .unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].1, slot.key_hash, "stored under the keyed hash");
    let (_, kept) = f
        .engine
        .store
        .idempotency(&tenant, &slot.key_hash)
        .unwrap()
        .unwrap();
    assert!(!kept.windows(17).any(|w| w == b"distinctive-key-7"));
}
