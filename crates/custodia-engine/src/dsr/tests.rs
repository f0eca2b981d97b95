//! Data-subject requests in the engine: codes, locking, tokens, each request type, deadlines.

use std::sync::{Arc, Mutex};

use custodia_core::{ErrorCode, Operation, Personal, TenantId};
use serde_json::{Value, json};

use crate::tests::{Fixture, fixture};
use crate::*;

#[derive(Default)]
struct MemOutbox(Mutex<Vec<(String, String, String)>>);

impl Outbox for MemOutbox {
    fn deliver(&self, m: &OutboxMessage) -> Result<(), String> {
        self.0.lock().unwrap().push((
            m.to.expose().clone(),
            m.request_id.clone(),
            m.code.expose().clone(),
        ));
        Ok(())
    }
}

fn setup() -> (Fixture, Arc<MemOutbox>, Caller) {
    let f = fixture();
    let outbox = Arc::new(MemOutbox::default());
    f.engine.set_outbox(outbox.clone());
    let app = f.caller("app");
    f.identify(
        &app,
        json!({"userId": "u1", "traits": {"email": "jane@example.com", "name": "Jane"}}),
    );
    (f, outbox, app)
}

fn submit(f: &Fixture, body: Value) -> String {
    f.engine
        .dsr_submit(
            &TenantId::default_tenant(),
            &DsrInput::from_json(&body).unwrap(),
        )
        .unwrap()
}

fn code_of(outbox: &MemOutbox, id: &str) -> String {
    outbox
        .0
        .lock()
        .unwrap()
        .iter()
        .find(|m| m.1 == id)
        .unwrap()
        .2
        .clone()
}

#[test]
fn known_and_unknown_people_get_the_same_answer_until_verified() {
    let (f, outbox, _) = setup();
    let known = submit(&f, json!({"type": "access", "email": "Jane@Example.com"}));
    let unknown = submit(&f, json!({"type": "access", "email": "nobody@example.com"}));
    assert_eq!(known.len(), unknown.len());
    assert_eq!(
        outbox.0.lock().unwrap().len(),
        2,
        "a code goes out either way"
    );
    let tenant = TenantId::default_tenant();
    let (view, _) = f
        .engine
        .dsr_verify(&tenant, &unknown, &code_of(&outbox, &unknown))
        .unwrap();
    assert_eq!(view.status, DsrStatus::Completed);
    assert_eq!(view.outcome.unwrap()["result"], "no_data_held");
    let (view, token) = f
        .engine
        .dsr_verify(&tenant, &known, &code_of(&outbox, &known))
        .unwrap();
    assert_eq!(view.outcome.unwrap()["result"], "export_ready");
    let export = f.engine.dsr_export(&tenant, &known, &token).unwrap();
    assert_eq!(export["data"]["traits"]["name"], "Jane");
    // The token reads only its own request.
    assert_eq!(
        f.engine
            .dsr_status(&tenant, &unknown, &token)
            .unwrap_err()
            .code(),
        ErrorCode::Unauthenticated
    );
}

#[test]
fn five_wrong_codes_lock_the_request() {
    let (f, outbox, _) = setup();
    let tenant = TenantId::default_tenant();
    let id = submit(&f, json!({"type": "erasure", "user_id": "u1"}));
    let right = code_of(&outbox, &id);
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    for _ in 0..4 {
        let e = f.engine.dsr_verify(&tenant, &id, wrong).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidField);
    }
    let e = f.engine.dsr_verify(&tenant, &id, wrong).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Conflict);
    // Locked: the right code no longer works, and nothing was erased.
    assert!(f.engine.dsr_verify(&tenant, &id, &right).is_err());
    let app = f.caller("app");
    let found = f
        .engine
        .lookup(&f.support(&app), &Lookup::UserId(Personal("u1".to_owned())))
        .unwrap();
    assert_eq!(found.len(), 1);
}

#[test]
fn rectification_restriction_and_erasure_are_carried_out() {
    let (f, outbox, app) = setup();
    let tenant = TenantId::default_tenant();
    let verify = |id: &str| {
        f.engine
            .dsr_verify(&tenant, id, &code_of(&outbox, id))
            .unwrap()
            .0
    };
    let id = submit(
        &f,
        json!({"type": "rectification", "user_id": "u1", "details": {"traits": {"name": "Jane Doe"}}}),
    );
    assert_eq!(
        verify(&id).outcome.unwrap()["changed_traits"],
        json!(["name"])
    );
    let profile = &f
        .engine
        .lookup(&f.support(&app), &Lookup::UserId(Personal("u1".to_owned())))
        .unwrap()[0];
    assert_eq!(profile.traits.expose()["name"], "Jane Doe");
    let subject = profile.subject_id;

    let id = submit(&f, json!({"type": "restriction", "user_id": "u1"}));
    verify(&id);
    let grant = f
        .engine
        .grant(&app, Operation::ReadProfile, Some("customer_support"))
        .unwrap();
    assert_eq!(
        f.engine.profile(&grant, subject).unwrap_err().code(),
        ErrorCode::ProcessingRestricted
    );

    let id = submit(
        &f,
        json!({"type": "erasure", "user_id": "u1", "details": {"suppress": true}}),
    );
    let outcome = verify(&id).outcome.unwrap();
    assert_eq!(outcome["result"], "erased");
    assert_eq!(outcome["erasure"]["suppressed"], true);
    assert_eq!(
        f.engine.profile(&grant, subject).unwrap_err().code(),
        ErrorCode::SubjectNotFound
    );
}

#[test]
fn a_free_text_rectification_waits_for_a_person_and_changes_nothing() {
    let (f, outbox, app) = setup();
    let tenant = TenantId::default_tenant();
    let compliance = f.caller("compliance");
    let note = "My surname is spelt Doe-Martin since my marriage";
    for details in [
        json!(note),
        json!({"note": note, "traits": {"name": "Jane Doe-Martin"}}),
    ] {
        let id = submit(
            &f,
            json!({"type": "rectification", "user_id": "u1", "details": details}),
        );
        let (view, token) = f
            .engine
            .dsr_verify(&tenant, &id, &code_of(&outbox, &id))
            .unwrap();
        assert_eq!(view.status, DsrStatus::AwaitingCompliance);
        assert_eq!(
            view.outcome.as_ref().unwrap()["result"],
            "awaiting_compliance"
        );
        assert_eq!(
            f.engine.dsr_status(&tenant, &id, &token).unwrap().status,
            DsrStatus::AwaitingCompliance
        );
        let queued = f
            .engine
            .dsr_queue(&compliance, Some("awaiting_compliance"), false)
            .unwrap();
        let shown = queued.iter().find(|v| v.request_id == id).unwrap();
        // The queue says what kind of request waits, never what the note says.
        assert!(!serde_json::to_string(shown).unwrap().contains("Doe-Martin"));
    }
    // Not even the traits named beside the note were applied.
    let profile = &f
        .engine
        .lookup(&f.support(&app), &Lookup::UserId(Personal("u1".to_owned())))
        .unwrap()[0];
    assert_ne!(profile.traits.expose()["name"], "Jane Doe-Martin");
    assert_eq!(
        f.engine
            .dsr_queue(&compliance, Some("awaiting_compliance"), false)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn the_queue_shows_overdue_requests() {
    let (f, _, _) = setup();
    let compliance = f.caller("compliance");
    submit(&f, json!({"type": "access", "user_id": "u1"}));
    assert!(
        f.engine
            .dsr_queue(&compliance, None, true)
            .unwrap()
            .is_empty()
    );
    f.clock.set(f.clock.now().plus_days(32));
    let overdue = f.engine.dsr_queue(&compliance, None, true).unwrap();
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].status, DsrStatus::PendingVerification);
    assert_eq!(
        f.engine
            .dsr_queue(&compliance, Some("completed"), false)
            .unwrap()
            .len(),
        0
    );
    let app = f.caller("app");
    assert_eq!(
        f.engine.dsr_queue(&app, None, false).unwrap_err().code(),
        ErrorCode::RoleNotPermitted
    );
}

#[test]
fn bad_requests_name_the_field() {
    for (body, field) in [
        (json!({"type": "sell", "email": "a@b.c"}), "/type"),
        (json!({"type": "access"}), "/email"),
        (
            json!({"type": "access", "email": "a@b.c", "user_id": "u"}),
            "/email",
        ),
        (
            json!({"type": "access", "email": "not an address"}),
            "/email",
        ),
        (json!({"type": "rectification", "user_id": "u"}), "/details"),
        (
            json!({"type": "rectification", "user_id": "u", "details": {"traits": "Jane"}}),
            "/details/traits",
        ),
        (
            json!({"type": "rectification", "user_id": "u", "details": {"note": "  "}}),
            "/details/note",
        ),
        (
            json!({"type": "rectification", "user_id": "u", "details": {"note": 7}}),
            "/details/note",
        ),
        (
            json!({"type": "rectification", "user_id": "u", "details": "x".repeat(crate::dsr::MAX_NOTE_CHARS + 1)}),
            "/details/note",
        ),
        (
            json!({"type": "rectification", "user_id": "u", "details": {"notes": "typo"}}),
            "/details/notes",
        ),
        (
            json!({"type": "access", "user_id": "u", "extra": 1}),
            "/extra",
        ),
    ] {
        let e = DsrInput::from_json(&body).unwrap_err();
        assert_eq!(e.field(), Some(field), "{body}");
    }
}

#[test]
fn the_retention_sweep_destroys_old_request_keys() {
    let (f, outbox, _) = setup();
    let tenant = TenantId::default_tenant();
    let admin = f.caller("admin");
    let id = submit(&f, json!({"type": "access", "email": "jane@example.com"}));
    let (_, token) = f
        .engine
        .dsr_verify(&tenant, &id, &code_of(&outbox, &id))
        .unwrap();
    let keys_before = f.engine.n_data_keys(&tenant).unwrap();
    assert_eq!(
        f.engine.retention_sweep(&admin).unwrap().requests_expired,
        0
    );
    f.clock.set(
        f.clock
            .now()
            .plus_days(crate::dsr::REQUEST_RETENTION_DAYS + 1),
    );
    // The sweep may also erase the dormant profile; the request key goes either way.
    let report = f.engine.retention_sweep(&admin).unwrap();
    assert_eq!(report.requests_expired, 1);
    assert!(f.engine.n_data_keys(&tenant).unwrap() < keys_before);
    // The token no longer opens anything, but the queue still shows the request.
    assert!(f.engine.dsr_export(&tenant, &id, &token).is_err());
    let compliance = f.caller("compliance");
    assert_eq!(
        f.engine
            .dsr_queue(&compliance, Some("completed"), false)
            .unwrap()
            .len(),
        1
    );
}
