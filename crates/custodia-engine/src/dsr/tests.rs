//! Data-subject requests in the engine: codes, locking, tokens, each request type, deadlines.

use std::sync::{Arc, Mutex};

use custodia_core::{ErrorCode, Operation, Personal, TenantId};
use serde_json::{Value, json};

use crate::tests::{Fixture, fixture};
use crate::*;

#[derive(Default)]
pub(super) struct MemOutbox(Mutex<Vec<(String, String, String)>>);

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

pub(super) fn setup() -> (Fixture, Arc<MemOutbox>, Caller) {
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

pub(super) fn submit(f: &Fixture, body: Value) -> String {
    f.engine
        .dsr_submit(
            &TenantId::default_tenant(),
            &DsrInput::from_json(&body).unwrap(),
        )
        .unwrap()
}

pub(super) fn code_of(outbox: &MemOutbox, id: &str) -> String {
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
    let export =
        serde_json::to_value(f.engine.dsr_export(&tenant, &known, &token).unwrap()).unwrap();
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

/// A verified `consent` request for `who`: its id and token.
fn consent_session(
    f: &Fixture,
    outbox: &MemOutbox,
    who: Value,
    browser: &BrowserContext,
) -> (String, String, DsrView) {
    let mut body = json!({"type": "consent"});
    body.as_object_mut()
        .unwrap()
        .extend(who.as_object().unwrap().clone());
    let id = submit(f, body);
    let (view, token) = f
        .engine
        .dsr_verify_from(
            &TenantId::default_tenant(),
            &id,
            &code_of(outbox, &id),
            browser,
        )
        .unwrap();
    (id, token, view)
}

fn choice(body: Value) -> ConsentChoice {
    ConsentChoice::from_json(&body).unwrap()
}

fn ledger_size(f: &Fixture) -> usize {
    let compliance = f.caller("compliance");
    f.engine
        .ledger_entries(&compliance, LogKind::Consent, 0, 1000)
        .unwrap()
        .len()
}

#[test]
fn a_consent_request_lists_the_consent_purposes_and_records_decisions_from_the_privacy_center() {
    let (f, outbox, app) = setup();
    let tenant = TenantId::default_tenant();
    let (id, token, view) = consent_session(
        &f,
        &outbox,
        json!({"email": "jane@example.com"}),
        &BrowserContext::default(),
    );
    assert_eq!(view.kind, DsrType::Consent);
    assert_eq!(view.status, DsrStatus::Completed);
    let outcome = view.outcome.unwrap();
    assert_eq!(outcome["result"], "consent_ready");
    assert_eq!(outcome["what"], "consent_management");
    // Not a right with a one-month deadline: it is done when verified.
    assert!(view.deadline <= view.received_at.plus_days(1));

    let listed = f
        .engine
        .dsr_consents(&tenant, &id, &token, &BrowserContext::default())
        .unwrap();
    assert_eq!(listed.result, "consent_ready");
    let ids: Vec<String> = listed
        .purposes
        .iter()
        .map(|p| p.purpose.to_string())
        .collect();
    assert_eq!(
        ids,
        [
            "marketing_email",
            "personalization",
            "analytics",
            "third_party_sharing"
        ],
        "only the consent-based purposes"
    );
    assert!(listed.purposes.iter().all(|p| p.state == "not_set"));
    let sharing = &listed.purposes[3];
    assert!(sharing.sale_or_share && !sharing.description.is_empty());

    let browser = BrowserContext {
        gpc: false,
        ip: Some(Personal("203.0.113.9".to_owned())),
        user_agent: Some(Personal("Firefox".to_owned())),
    };
    f.engine
        .dsr_record_consent(
            &tenant,
            &id,
            &token,
            &choice(json!({"purpose": "marketing_email", "decision": "granted"})),
            &browser,
        )
        .unwrap();
    let decision = f
        .engine
        .dsr_record_consent(
            &tenant,
            &id,
            &token,
            &choice(json!({"purpose": "marketing_email", "decision": "withdrawn"})),
            &browser,
        )
        .unwrap();
    let entry = &decision.outcome.entry;
    assert_eq!(entry.kind, "consent.withdrawn");
    assert_eq!(entry.source["channel"], "privacy_center");
    assert_eq!(entry.source["gpc"], Value::Null);
    assert!(
        entry.evidence,
        "the browser's address and agent are sealed with it"
    );
    assert!(decision.turned_off_by_gpc.is_empty());

    // The app's view of the subject's consent agrees.
    let subject = f
        .engine
        .lookup(&f.support(&app), &Lookup::UserId(Personal("u1".to_owned())))
        .unwrap()[0]
        .subject_id;
    let state = f
        .engine
        .consent_state(&f.caller("compliance"), subject)
        .unwrap();
    let marketing = state
        .iter()
        .find(|c| c.purpose.to_string() == "marketing_email")
        .unwrap();
    assert_eq!(marketing.state, "withdrawn");
    assert_eq!(marketing.seq, Some(entry.seq));
    let listed = f
        .engine
        .dsr_consents(&tenant, &id, &token, &BrowserContext::default())
        .unwrap();
    assert_eq!(listed.purposes[0].state, "withdrawn");
    assert_eq!(listed.purposes[0].seq, Some(entry.seq));
}

#[test]
fn bad_consent_decisions_name_the_field_and_change_nothing() {
    let (f, outbox, _) = setup();
    let tenant = TenantId::default_tenant();
    let (id, token, _) = consent_session(
        &f,
        &outbox,
        json!({"user_id": "u1"}),
        &BrowserContext::default(),
    );
    for (body, field) in [
        (json!({"purpose": "marketing_email"}), "/decision"),
        (
            json!({"purpose": "marketing_email", "decision": "maybe"}),
            "/decision",
        ),
        (json!({"decision": "granted"}), "/purpose"),
        (
            json!({"purpose": "marketing_email", "decision": "granted", "gpc": true}),
            "/gpc",
        ),
        (json!(["marketing_email"]), "/"),
    ] {
        let error = ConsentChoice::from_json(&body).unwrap_err();
        assert_eq!(error.field(), Some(field), "{body}");
    }
    let before = ledger_size(&f);
    let refuse = |body: Value| {
        f.engine
            .dsr_record_consent(
                &tenant,
                &id,
                &token,
                &choice(body),
                &BrowserContext::default(),
            )
            .unwrap_err()
    };
    let unknown = refuse(json!({"purpose": "telepathy", "decision": "granted"}));
    assert_eq!(unknown.code(), ErrorCode::UnknownPurpose);
    assert_eq!(unknown.field(), Some("purpose"));
    let contract = refuse(json!({"purpose": "order_fulfillment", "decision": "withdrawn"}));
    assert_eq!(contract.code(), ErrorCode::InvalidField);
    assert_eq!(contract.field(), Some("/purpose"));
    // A token of another request type, or a wrong token, manages nothing.
    let access = submit(&f, json!({"type": "access", "user_id": "u1"}));
    let (_, access_token) = f
        .engine
        .dsr_verify(&tenant, &access, &code_of(&outbox, &access))
        .unwrap();
    let wrong_type = f
        .engine
        .dsr_consents(&tenant, &access, &access_token, &BrowserContext::default())
        .unwrap_err();
    assert_eq!(wrong_type.code(), ErrorCode::Conflict);
    let wrong_token = f
        .engine
        .dsr_consents(&tenant, &id, &access_token, &BrowserContext::default())
        .unwrap_err();
    assert_eq!(wrong_token.code(), ErrorCode::Unauthenticated);
    assert_eq!(
        ledger_size(&f),
        before + 3,
        "only the access request's verification and completion were recorded"
    );
    // The session ends after an hour.
    f.clock.set(custodia_core::Timestamp::from_unix_micros(
        f.clock.now().unix_micros() + CONSENT_SESSION_MINUTES * 60_000_000,
    ));
    let ended = f
        .engine
        .dsr_record_consent(
            &tenant,
            &id,
            &token,
            &choice(json!({"purpose": "analytics", "decision": "granted"})),
            &BrowserContext::default(),
        )
        .unwrap_err();
    assert_eq!(ended.code(), ErrorCode::Conflict);
    // A consent request left unverified is never overdue in the compliance queue; an
    // unverified access request is, a month on.
    let abandoned = submit(&f, json!({"type": "consent", "user_id": "u1"}));
    let unanswered = submit(&f, json!({"type": "access", "user_id": "u1"}));
    f.clock.set(f.clock.now().plus_days(40));
    let overdue: Vec<String> = f
        .engine
        .dsr_queue(&f.caller("compliance"), None, true)
        .unwrap()
        .into_iter()
        .map(|v| v.request_id)
        .collect();
    assert!(!overdue.contains(&abandoned) && !overdue.contains(&id));
    assert!(overdue.contains(&unanswered));
}

#[test]
fn an_unknown_person_learns_only_that_no_data_is_held_and_nothing_is_written() {
    let (f, outbox, _) = setup();
    let tenant = TenantId::default_tenant();
    let gpc = BrowserContext {
        gpc: true,
        ..BrowserContext::default()
    };
    let (id, token, view) =
        consent_session(&f, &outbox, json!({"email": "nobody@example.com"}), &gpc);
    assert_eq!(view.outcome.unwrap()["result"], "no_data_held");
    let before = ledger_size(&f);
    let listed = f.engine.dsr_consents(&tenant, &id, &token, &gpc).unwrap();
    assert_eq!(listed.result, "no_data_held");
    assert!(listed.purposes.is_empty());
    let refused = f
        .engine
        .dsr_record_consent(
            &tenant,
            &id,
            &token,
            &choice(json!({"purpose": "marketing_email", "decision": "granted"})),
            &gpc,
        )
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Conflict);
    assert_eq!(
        ledger_size(&f),
        before,
        "nothing written for an unknown person"
    );
}

#[test]
fn a_browser_sending_gpc_gets_sale_and_sharing_withdrawn_as_a_gpc_decision() {
    let (f, outbox, app) = setup();
    let tenant = TenantId::default_tenant();
    // The shop recorded a grant at checkout.
    f.engine
        .record_consent(
            &app,
            &ConsentInput::from_json(&json!({"user_id": "u1", "purpose": "third_party_sharing", "decision": "granted", "source": {"channel": "checkout"}}))
                .unwrap(),
        )
        .unwrap();
    let gpc = BrowserContext {
        gpc: true,
        ..BrowserContext::default()
    };
    let (id, token, view) = consent_session(&f, &outbox, json!({"user_id": "u1"}), &gpc);
    assert_eq!(
        view.outcome.unwrap()["gpc_withdrawn"],
        json!(["third_party_sharing"])
    );
    let listed = f.engine.dsr_consents(&tenant, &id, &token, &gpc).unwrap();
    assert!(listed.gpc_signal);
    let sharing = listed
        .purposes
        .iter()
        .find(|p| p.purpose.to_string() == "third_party_sharing")
        .unwrap();
    assert_eq!(sharing.state, "withdrawn");
    assert!(sharing.by_gpc);
    let compliance = f.caller("compliance");
    let entry = f
        .engine
        .ledger_entries(&compliance, LogKind::Consent, sharing.seq.unwrap(), 1)
        .unwrap()
        .remove(0);
    assert_eq!(entry.kind, "consent.withdrawn");
    assert_eq!(entry.source["channel"], "privacy_center");
    assert_eq!(entry.source["gpc"], true);
    // Other purposes are untouched by the signal; granting one is recorded with it.
    assert!(
        listed
            .purposes
            .iter()
            .filter(|p| !p.sale_or_share)
            .all(|p| p.state == "not_set" && !p.by_gpc)
    );
    let decision = f
        .engine
        .dsr_record_consent(
            &tenant,
            &id,
            &token,
            &choice(json!({"purpose": "analytics", "decision": "granted"})),
            &gpc,
        )
        .unwrap();
    assert_eq!(decision.outcome.entry.source["gpc"], true);
    assert!(decision.turned_off_by_gpc.is_empty(), "already off");
    // With the signal on, sharing cannot be granted; without it the person may.
    let refused = f
        .engine
        .dsr_record_consent(
            &tenant,
            &id,
            &token,
            &choice(json!({"purpose": "third_party_sharing", "decision": "granted"})),
            &gpc,
        )
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Conflict);
    let no_signal = f
        .engine
        .dsr_consents(&tenant, &id, &token, &BrowserContext::default())
        .unwrap();
    assert!(!no_signal.gpc_signal);
}
