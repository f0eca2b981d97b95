//! Message-id de-duplication: a retry is answered with the original result within the window,
//! and expired entries are removed.

use custodia_core::TenantId;
use serde_json::json;

use crate::tests::fixture;
use crate::{BatchItem, BatchOutcome, Clock, TrackInput};

#[test]
fn a_message_id_is_remembered_for_the_window_then_forgotten() {
    let f = fixture();
    let app = f.caller("app");
    let tenant = TenantId::default_tenant();
    let message = json!({"userId": "u1", "event": "Order Completed", "messageId": "m-1"});
    let first = f.track(&app, message.clone());
    let again = f.track(&app, message.clone());
    assert_eq!(again.event_id, first.event_id, "the original answer");

    // Inside a batch too, and twice in one batch.
    let item = || BatchItem::Track(TrackInput::from_json(&message, "").unwrap());
    let outcomes = f.engine.batch(&app, &[item(), item()]).unwrap();
    for outcome in outcomes {
        assert!(matches!(outcome, BatchOutcome::Repeated(_)), "{outcome:?}");
    }
    let grant = f.support(&app);
    let n_events = |f: &crate::tests::Fixture| {
        f.engine
            .events(&grant, first.subject_id, None, 100)
            .unwrap()
            .events
            .len()
    };
    assert_eq!(n_events(&f), 1);
    let far_future = f.clock.now().plus_days(10_000);
    assert_eq!(
        f.engine
            .store
            .idempotency_expired(&tenant, far_future, 100)
            .unwrap()
            .len(),
        1,
        "one entry, under a keyed hash"
    );

    // Past the window, the next write removes the entry; the same id is then a new message.
    f.clock.set(f.clock.now().plus_days(8));
    f.track(
        &app,
        json!({"userId": "u1", "event": "Order Completed", "messageId": "m-2"}),
    );
    let remaining = f
        .engine
        .store
        .idempotency_expired(&tenant, far_future, 100)
        .unwrap();
    assert_eq!(remaining.len(), 1, "only m-2's entry is left");
    let later = f.track(&app, message);
    assert_ne!(later.event_id, first.event_id);
    assert_eq!(n_events(&f), 3);
}
