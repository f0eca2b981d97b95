//! Erasure, flags, suppression, tombstones and the retention sweep, against the engine in memory
//! with a clock the tests move.

use custodia_core::{ErrorCode, Operation, SubjectId, Timestamp};
use serde_json::json;

use crate::tests::{Fixture, fixture};
use crate::*;

fn days_later(f: &Fixture, days: i64) {
    let now = f.clock.now();
    f.clock.set(now.plus_days(days));
}

fn event_names(f: &Fixture, caller: &Caller, id: SubjectId, purpose: &str) -> Vec<String> {
    let grant = f
        .engine
        .grant(caller, Operation::ReadProfile, Some(purpose))
        .unwrap();
    f.engine
        .events(&grant, id, None, 100)
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.event)
        .collect()
}

fn ledger_kinds(f: &Fixture, caller: &Caller) -> Vec<String> {
    f.engine
        .ledger_entries(caller, LogKind::Consent, 0, 100)
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

#[test]
fn erasure_removes_everything_and_destroys_the_key() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let jane = f
        .identify(
            &app,
            json!({"userId": "u1", "traits": {"email": "jane@example.com", "name": "Jane"}}),
        )
        .subject_id;
    let john = f
        .identify(
            &app,
            json!({"userId": "u2", "traits": {"email": "john@example.com"}}),
        )
        .subject_id;
    f.track(
        &app,
        json!({"userId": "u1", "event": "Product Viewed", "properties": {"sku": "a"}}),
    );
    let keys_before = f.engine.n_data_keys(&admin.tenant).unwrap();

    let outcome = f
        .engine
        .erase(&admin, jane, &ErasureOptions::default())
        .unwrap();
    assert!(outcome.key_destroyed);
    assert!(outcome.kept.is_empty());
    assert_eq!(
        f.engine.n_data_keys(&admin.tenant).unwrap(),
        keys_before - 1
    );

    let grant = f.support(&app);
    assert_eq!(
        f.engine.profile(&grant, jane).unwrap_err().code(),
        ErrorCode::SubjectNotFound
    );
    let by_email = Lookup::Email(custodia_core::Personal("jane@example.com".to_owned()));
    assert!(f.engine.lookup(&grant, &by_email).unwrap().is_empty());
    let by_user = Lookup::UserId(custodia_core::Personal("u1".to_owned()));
    assert!(f.engine.lookup(&grant, &by_user).unwrap().is_empty());
    // Not vacuous: the other subject is untouched.
    assert!(f.engine.profile(&grant, john).is_ok());
    // The receipt is in the ledger; the subject's key is on the tombstone list.
    assert!(ledger_kinds(&f, &admin).contains(&"erasure.completed".to_owned()));
    assert_eq!(f.engine.replay_tombstones(&admin.tenant).unwrap(), 0);
    // Without suppression the same userId may come back, as a new person.
    let again = f.identify(&app, json!({"userId": "u1", "traits": {}}));
    assert!(again.created);
    assert_ne!(again.subject_id, jane);
}

#[test]
fn suppression_refuses_the_user_id_and_an_admin_can_lift_it() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let jane = f
        .identify(&app, json!({"userId": "u1", "traits": {}}))
        .subject_id;
    let outcome = f
        .engine
        .erase(
            &admin,
            jane,
            &ErasureOptions {
                suppress: true,
                request_id: None,
            },
        )
        .unwrap();
    assert!(outcome.suppressed);
    let n = f.engine.count_subjects(&admin.tenant).unwrap();
    let body = json!({"userId": "u1", "traits": {"email": "x@example.com"}});
    let refused = f
        .engine
        .identify(&app, &IdentifyInput::from_json(&body, "").unwrap())
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::SubjectSuppressed);
    let track = json!({"userId": "u1", "event": "Order Completed"});
    let refused = f
        .engine
        .track(&app, &TrackInput::from_json(&track, "").unwrap())
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::SubjectSuppressed);
    // A batch with the suppressed id anywhere stores nothing, and names the item.
    let ok_item = json!({"userId": "u9", "traits": {}});
    let items = vec![
        BatchItem::Identify(IdentifyInput::from_json(&ok_item, "").unwrap()),
        BatchItem::Track(TrackInput::from_json(&track, "").unwrap()),
    ];
    let refused = f.engine.batch(&app, &items).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::SubjectSuppressed);
    assert_eq!(refused.field(), Some("/batch/1/userId"));
    assert_eq!(f.engine.count_subjects(&admin.tenant).unwrap(), n);

    assert!(
        f.engine
            .lift_suppression(&admin, &custodia_core::Personal("u1".to_owned()))
            .unwrap()
    );
    assert!(
        f.engine
            .identify(&app, &IdentifyInput::from_json(&body, "").unwrap())
            .is_ok()
    );
}

/// Jane (`u1`) with an order (kept under the `purchases` legal hold) and a product view (not).
fn jane_with_an_order(f: &Fixture, app: &Caller) -> SubjectId {
    let jane = f
        .identify(app, json!({"userId": "u1", "traits": {"name": "Jane"}}))
        .subject_id;
    f.track(app, json!({"userId": "u1", "event": "Order Completed", "properties": {"order_id": "o-1", "total": 10}}));
    f.track(
        app,
        json!({"userId": "u1", "event": "Product Viewed", "properties": {"sku": "a"}}),
    );
    jane
}

#[test]
fn erasure_keeps_invoices_under_the_legal_hold_and_restricts_them_to_accounting() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let jane = jane_with_an_order(&f, &app);

    // The preview says beforehand what the erasure then does, and changes nothing.
    let preview = f.engine.erasure_preview(&admin, jane).unwrap();
    assert!(!preview.legal_hold);
    assert_eq!(
        event_names(&f, &admin, jane, "accounting").len(),
        1,
        "nothing erased by the preview"
    );
    assert_eq!(
        f.engine.erasure_preview(&app, jane).unwrap_err().code(),
        ErrorCode::RoleNotPermitted
    );

    let outcome = f
        .engine
        .erase(&admin, jane, &ErasureOptions::default())
        .unwrap();
    assert_eq!(preview.erased, outcome.erased);
    assert_eq!(preview.kept, outcome.kept);
    // The data key is destroyed all the same: the kept order was re-sealed under a hold key.
    assert!(outcome.key_destroyed);
    let keys = f.engine.keys(&admin.tenant).unwrap();
    assert!(matches!(
        keys.primary_data_key(jane),
        Err(custodia_vault::VaultError::KeyNotFound)
    ));
    assert!(keys.has_hold_key(jane).unwrap());
    assert_eq!(outcome.kept.len(), 1);
    assert_eq!(outcome.kept[0].category, "purchases");
    assert_eq!(outcome.kept[0].purpose, "accounting");
    assert_eq!(outcome.kept[0].records, 1);
    assert!(
        outcome
            .erased
            .iter()
            .any(|e| e.category == "behaviour" && e.records == 1)
    );

    // Accounting (a legal obligation) still reads the order; nothing else does.
    assert_eq!(
        event_names(&f, &admin, jane, "accounting"),
        vec!["Order Completed"]
    );
    let grant = f.support(&app);
    assert_eq!(
        f.engine.events(&grant, jane, None, 10).unwrap_err().code(),
        ErrorCode::SubjectNotFound
    );
    let flags = f.engine.flags(&admin, jane).unwrap();
    assert!(flags.erased_with_hold && flags.restricted);

    // Ten years on, the sweep removes the order and then the subject with its key.
    days_later(&f, 3651);
    let report = f.engine.retention_sweep(&admin).unwrap();
    assert_eq!(report.events_removed.get("purchases"), Some(&1));
    assert_eq!(report.profiles_erased, 1);
    assert_eq!(
        f.engine
            .flags(&admin, jane)
            .map(|_| ())
            .and_then(|()| f.engine.profile(
                &f.engine
                    .grant(&admin, Operation::ReadProfile, Some("accounting"))
                    .unwrap(),
                jane
            ))
            .unwrap_err()
            .code(),
        ErrorCode::SubjectNotFound
    );
    // Both of the subject's keys are gone now.
    assert!(!keys.has_hold_key(jane).unwrap());
    assert!(keys.data_key(jane).is_err());
}

#[test]
fn replay_finishes_an_erasure_with_a_hold_that_stopped_before_its_batch() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let jane = jane_with_an_order(&f, &app);
    // The erasure's first durable steps only: the hold key and the tombstone, then a crash.
    let keys = f.engine.keys(&admin.tenant).unwrap();
    keys.hold_key(jane).unwrap();
    keys.add_tombstone(jane, f.clock.now()).unwrap();

    assert_eq!(f.engine.replay_tombstones(&admin.tenant).unwrap(), 1);
    assert!(matches!(
        keys.primary_data_key(jane),
        Err(custodia_vault::VaultError::KeyNotFound)
    ));
    // The order is kept, re-sealed, for accounting only; the view, the profile and the look-ups
    // are gone.
    assert_eq!(
        event_names(&f, &admin, jane, "accounting"),
        vec!["Order Completed"]
    );
    let flags = f.engine.flags(&admin, jane).unwrap();
    assert!(flags.erased_with_hold && flags.restricted);
    let grant = f
        .engine
        .grant(&admin, Operation::ReadProfile, Some("accounting"))
        .unwrap();
    let profile = f.engine.profile(&grant, jane).unwrap();
    assert!(profile.traits.expose().is_empty());
    assert_ne!(
        f.identify(&app, json!({"userId": "u1", "traits": {}}))
            .subject_id,
        jane,
        "the userId no longer leads to the shell"
    );
    // A second replay finds the shell as it should be and does nothing.
    assert_eq!(f.engine.replay_tombstones(&admin.tenant).unwrap(), 0);
}

#[test]
fn restriction_and_objection_flags_drive_the_access_decision() {
    let f = fixture();
    let app = f.caller("app");
    let compliance = f.caller("compliance");
    let jane = f
        .identify(&app, json!({"userId": "u1", "traits": {}}))
        .subject_id;
    let read = |purpose: &str| {
        let grant = f
            .engine
            .grant(&app, Operation::ReadProfile, Some(purpose))
            .unwrap();
        f.engine
            .profile(&grant, jane)
            .map(|_| ())
            .map_err(|e| e.code())
    };
    assert_eq!(read("fraud_prevention"), Ok(()));
    f.engine
        .change_flags(&compliance, jane, FlagChange::Object, Some("r-1"))
        .unwrap();
    assert_eq!(read("fraud_prevention"), Err(ErrorCode::ObjectionRecorded));
    assert_eq!(read("customer_support"), Ok(()), "contract purposes go on");
    f.engine
        .change_flags(&compliance, jane, FlagChange::Restrict, None)
        .unwrap();
    assert_eq!(
        read("customer_support"),
        Err(ErrorCode::ProcessingRestricted)
    );
    f.engine
        .change_flags(&compliance, jane, FlagChange::LiftRestriction, None)
        .unwrap();
    f.engine
        .change_flags(&compliance, jane, FlagChange::WithdrawObjection, None)
        .unwrap();
    assert_eq!(read("fraud_prevention"), Ok(()));
    // The app role may not change flags.
    assert_eq!(
        f.engine
            .change_flags(&app, jane, FlagChange::Restrict, None)
            .unwrap_err()
            .code(),
        ErrorCode::RoleNotPermitted
    );
    let kinds = ledger_kinds(&f, &compliance);
    for kind in [
        "objection.recorded",
        "processing.restricted",
        "processing.restriction_lifted",
        "objection.withdrawn",
    ] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in the ledger");
    }
}

#[test]
fn retention_sweep_removes_expired_events_and_traits_but_not_under_a_legal_hold() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let start = f.clock.now();
    let jane = f
        .identify(
            &app,
            json!({"userId": "u1", "traits": {"favoriteColor": "red"}}),
        )
        .subject_id;
    let held = f
        .identify(&app, json!({"userId": "u2", "traits": {}}))
        .subject_id;
    for user in ["u1", "u2"] {
        f.track(
            &app,
            json!({"userId": user, "event": "Product Viewed", "properties": {"sku": "a"}}),
        );
        f.track(
            &app,
            json!({"userId": user, "event": "Order Completed", "properties": {"total": 5}}),
        );
    }
    f.engine
        .change_flags(&admin, held, FlagChange::PlaceLegalHold, None)
        .unwrap();
    assert_eq!(
        f.engine
            .erase(&admin, held, &ErasureOptions::default())
            .unwrap_err()
            .code(),
        ErrorCode::LegalHold
    );

    // Within every retention: nothing changes.
    days_later(&f, 300);
    let report = f.engine.retention_sweep(&admin).unwrap();
    assert!(report.events_removed.is_empty() && report.traits_removed.is_empty());

    // Behaviour is kept 395 days: the view goes, the order stays.
    days_later(&f, 100);
    // A fresh trait, set now, outlives the old one.
    f.identify(&app, json!({"userId": "u1", "traits": {"shoeSize": 42}}));
    let report = f.engine.retention_sweep(&admin).unwrap();
    assert_eq!(report.events_removed.get("behaviour"), Some(&1));
    assert_eq!(report.subjects_on_hold, 1);
    assert_eq!(
        event_names(&f, &app, jane, "fraud_prevention"),
        vec!["Order Completed"]
    );
    assert_eq!(
        event_names(&f, &app, held, "fraud_prevention"),
        vec!["Product Viewed", "Order Completed"],
        "held data untouched"
    );
    assert!(ledger_kinds(&f, &admin).contains(&"retention.applied".to_owned()));

    // Preferences are kept 1095 days from their last update.
    f.clock.set(start.plus_days(1096));
    let report = f.engine.retention_sweep(&admin).unwrap();
    assert_eq!(report.traits_removed.get("preferences"), Some(&1));
    // Preferences are read for a purpose that names them (a consent, given now).
    grant_consent(&f, &app, "u1", "personalization");
    let grant = f
        .engine
        .grant(&app, Operation::ReadProfile, Some("personalization"))
        .unwrap();
    let profile = f.engine.profile(&grant, jane).unwrap();
    assert!(profile.traits.expose().get("favoriteColor").is_none());
    assert_eq!(profile.traits.expose().get("shoeSize"), Some(&json!(42)));

    // Lifting the hold lets the sweep reach the held subject's old data.
    f.engine
        .change_flags(&admin, held, FlagChange::LiftLegalHold, None)
        .unwrap();
    let report = f.engine.retention_sweep(&admin).unwrap();
    assert_eq!(report.events_removed.get("behaviour"), Some(&1));
    let _ = Timestamp::from_unix_micros(0);
}

#[test]
fn dormant_profiles_are_erased_by_the_sweep() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let start = f.clock.now();
    let dormant = f
        .identify(&app, json!({"userId": "u1", "traits": {"name": "Old"}}))
        .subject_id;
    let active = f
        .identify(&app, json!({"userId": "u2", "traits": {"name": "New"}}))
        .subject_id;
    f.clock.set(start.plus_days(1000));
    f.track(&app, json!({"userId": "u2", "event": "Product Viewed"}));
    f.clock.set(start.plus_days(1100));
    let report = f.engine.retention_sweep(&admin).unwrap();
    assert_eq!(report.profiles_erased, 1);
    let grant = f.support(&app);
    assert_eq!(
        f.engine.profile(&grant, dormant).unwrap_err().code(),
        ErrorCode::SubjectNotFound
    );
    assert!(f.engine.profile(&grant, active).is_ok());
}

fn grant_consent(f: &Fixture, app: &Caller, user_id: &str, purpose: &str) {
    let body = json!({"user_id": user_id, "purpose": purpose, "decision": "granted"});
    f.engine
        .record_consent(app, &ConsentInput::from_json(&body).unwrap())
        .unwrap();
}

#[test]
fn erasure_with_kept_records_is_gone_for_every_other_purpose_and_ends_every_consent() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let jane = jane_with_an_order(&f, &app);
    grant_consent(&f, &app, "u1", "marketing_email");
    grant_consent(&f, &app, "u1", "personalization");
    let outcome = f
        .engine
        .erase(
            &admin,
            jane,
            &ErasureOptions {
                request_id: Some("dsr-7".to_owned()),
                ..ErasureOptions::default()
            },
        )
        .unwrap();
    assert_eq!(outcome.kept.len(), 1);

    let mut n_checked = 0;
    for purpose in f.engine.policies().purposes() {
        let grant = f
            .engine
            .grant(&admin, Operation::ReadProfile, Some(purpose.id.as_str()))
            .unwrap();
        let profile = f.engine.profile(&grant, jane);
        let events = f.engine.events(&grant, jane, None, 100);
        if f.engine.keeps_records_for(&purpose.id) {
            // The keeping purpose reads exactly what was kept.
            assert!(profile.unwrap().traits.expose().is_empty());
            let names: Vec<String> = events
                .unwrap()
                .events
                .into_iter()
                .map(|e| e.event)
                .collect();
            assert_eq!(names, vec!["Order Completed"], "{}", purpose.id);
        } else {
            // Every other purpose: gone, as after a plain erasure, and nothing says the person
            // restricted processing.
            for error in [profile.unwrap_err(), events.unwrap_err()] {
                assert_eq!(error.code(), ErrorCode::SubjectNotFound, "{}", purpose.id);
                assert!(!error.to_string().contains("restrict"), "{error}");
            }
            n_checked += 1;
        }
    }
    assert_eq!(n_checked, f.engine.policies().purposes().len() - 1);
    // Neither can its profile be changed nor a consent be given for it.
    let changes = TraitChanges::from_json(&json!({"traits": {"name": "J"}})).unwrap();
    assert_eq!(
        f.engine
            .patch_profile(&app, jane, &changes)
            .unwrap_err()
            .code(),
        ErrorCode::SubjectNotFound
    );
    let body = json!({"subject_id": jane, "purpose": "marketing_email", "decision": "granted"});
    assert_eq!(
        f.engine
            .record_consent(&app, &ConsentInput::from_json(&body).unwrap())
            .unwrap_err()
            .code(),
        ErrorCode::SubjectNotFound
    );

    // Every consent ended, by ledger entries that name the erasure as their cause.
    let states = f.engine.consent_state(&admin, jane).unwrap();
    assert!(states.iter().all(|p| p.state != "granted"), "{states:?}");
    for purpose in ["marketing_email", "personalization"] {
        let row = states
            .iter()
            .find(|p| p.purpose.as_str() == purpose)
            .unwrap();
        assert_eq!(row.state, "withdrawn");
    }
    let entries = f
        .engine
        .ledger_entries(&admin, LogKind::Consent, 0, 100)
        .unwrap();
    let withdrawals: Vec<_> = entries
        .iter()
        .filter(|e| e.kind == "consent.withdrawn")
        .collect();
    assert_eq!(withdrawals.len(), 2);
    for w in &withdrawals {
        assert_eq!(w.attributes["cause"], "erasure");
        assert_eq!(w.attributes["erasure_cause"], "request");
        assert_eq!(w.attributes["request_id"], "dsr-7");
        assert!(w.seq < outcome.receipt_seq);
    }
    let receipt = entries
        .iter()
        .find(|e| e.seq == outcome.receipt_seq)
        .unwrap();
    assert_eq!(receipt.kind, "erasure.completed");
    assert_eq!(receipt.attributes["consents_withdrawn"], "2");
}

#[test]
fn plain_erasure_ends_every_consent_too() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let john = f
        .identify(&app, json!({"userId": "u2", "traits": {"name": "John"}}))
        .subject_id;
    grant_consent(&f, &app, "u2", "analytics");
    let outcome = f
        .engine
        .erase(&admin, john, &ErasureOptions::default())
        .unwrap();
    assert!(outcome.kept.is_empty());
    let kinds = ledger_kinds(&f, &admin);
    let n = kinds.len();
    assert_eq!(
        kinds[n - 2..],
        [
            "consent.withdrawn".to_owned(),
            "erasure.completed".to_owned()
        ]
    );
    let pseudonym = f.engine.keys(&admin.tenant).unwrap().pseudonym(john);
    let analytics: custodia_core::PurposeId = "analytics".parse().unwrap();
    let view = f
        .engine
        .store
        .consent(&admin.tenant, &pseudonym, &analytics)
        .unwrap()
        .unwrap();
    assert_eq!(view.state, custodia_store::ConsentState::Withdrawn);
}

#[test]
fn replay_ends_the_consents_an_interrupted_erasure_left_and_only_once() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let john = f
        .identify(&app, json!({"userId": "u2", "traits": {"name": "John"}}))
        .subject_id;
    grant_consent(&f, &app, "u2", "analytics");
    // The erasure's first durable step only (the tombstone), then a crash: no ledger entry yet.
    let keys = f.engine.keys(&admin.tenant).unwrap();
    keys.add_tombstone(john, f.clock.now()).unwrap();
    let before = ledger_kinds(&f, &admin).len();

    assert_eq!(f.engine.replay_tombstones(&admin.tenant).unwrap(), 1);
    let kinds = ledger_kinds(&f, &admin);
    assert_eq!(kinds[before..], ["consent.withdrawn".to_owned()]);
    let pseudonym = keys.pseudonym(john);
    let analytics: custodia_core::PurposeId = "analytics".parse().unwrap();
    let view = f
        .engine
        .store
        .consent(&admin.tenant, &pseudonym, &analytics)
        .unwrap()
        .unwrap();
    assert_eq!(view.state, custodia_store::ConsentState::Withdrawn);

    // A second start-up (or a crash after the append) writes no second withdrawal.
    assert_eq!(f.engine.replay_tombstones(&admin.tenant).unwrap(), 0);
    assert_eq!(ledger_kinds(&f, &admin).len(), before + 1);
}

#[test]
fn replay_after_a_completed_erasure_appends_nothing() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    let john = f
        .identify(&app, json!({"userId": "u2", "traits": {"name": "John"}}))
        .subject_id;
    grant_consent(&f, &app, "u2", "analytics");
    f.engine
        .erase(&admin, john, &ErasureOptions::default())
        .unwrap();
    let before = ledger_kinds(&f, &admin);
    assert_eq!(f.engine.replay_tombstones(&admin.tenant).unwrap(), 0);
    assert_eq!(ledger_kinds(&f, &admin), before);
}
