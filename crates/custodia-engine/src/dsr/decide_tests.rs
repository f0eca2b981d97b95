//! A person's decisions on requests (carry out, reject, extend) and the case file: who may,
//! when, what the requester reads, and that reasons are sealed wherever they are stored.

use base64::Engine as _;
use custodia_core::{ErrorCode, Personal, TenantId};
use serde_json::{Value, json};

use super::tests::{MemOutbox, code_of, setup, submit};
use crate::tests::Fixture;
use crate::*;

const REASON: &str = "Checked against order 4471: the new spelling is on the delivery note";

fn decision(action: DsrAction, body: Value) -> DsrDecision {
    DsrDecision::from_json(action, &body).unwrap()
}

/// A verified request of `body`: its id and token.
fn verified(f: &Fixture, outbox: &MemOutbox, body: Value) -> (String, String) {
    let id = submit(f, body);
    let (_, token) = f
        .engine
        .dsr_verify(&TenantId::default_tenant(), &id, &code_of(outbox, &id))
        .unwrap();
    (id, token)
}

/// Every byte the engine stored about requests and wrote to the consent ledger.
fn stored_bytes(f: &Fixture, compliance: &Caller) -> Vec<u8> {
    let tenant = TenantId::default_tenant();
    let mut all = Vec::new();
    for (_, bytes) in f.engine.store.dsrs(&tenant).unwrap() {
        all.extend(bytes);
    }
    for entry in f
        .engine
        .ledger_entries(compliance, LogKind::Consent, 0, 500)
        .unwrap()
    {
        all.extend(
            base64::engine::general_purpose::STANDARD
                .decode(entry.bytes_b64)
                .unwrap(),
        );
    }
    all
}

fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn a_person_carries_out_a_free_text_rectification_with_the_corrected_traits() {
    let (f, outbox, app) = setup();
    let tenant = TenantId::default_tenant();
    let compliance = f.caller("compliance");
    let (id, token) = verified(
        &f,
        &outbox,
        json!({"type": "rectification", "user_id": "u1",
               "details": {"note": "My surname is Doe-Martin now", "traits": {"name": "Jane Doe Martin"}}}),
    );
    // The corrected traits are required, and checked like any trait.
    let without = f.engine.dsr_decide(
        &compliance,
        &id,
        &decision(DsrAction::CarryOut, json!({"reason": REASON})),
    );
    assert_eq!(without.unwrap_err().field(), Some("/traits"));
    let view = f
        .engine
        .dsr_decide(
            &compliance,
            &id,
            &decision(
                DsrAction::CarryOut,
                json!({"reason": REASON, "traits": {"name": "Jane Doe-Martin"}}),
            ),
        )
        .unwrap();
    assert_eq!(view.status, DsrStatus::Completed);
    let outcome = view.outcome.as_ref().unwrap();
    assert_eq!(outcome["result"], "rectified");
    assert_eq!(outcome["handled_by"], "person");
    assert_eq!(outcome["changed_traits"], json!(["name"]));
    // The officer's spelling, not the requester's proposal, is what the profile now holds.
    let profile = &f
        .engine
        .lookup(&f.support(&app), &Lookup::UserId(Personal("u1".to_owned())))
        .unwrap()[0];
    assert_eq!(profile.traits.expose()["name"], "Jane Doe-Martin");
    // The requester reads what was done and why.
    let status = f.engine.dsr_status(&tenant, &id, &token).unwrap();
    assert_eq!(status.notices.len(), 1);
    assert_eq!(status.notices[0].kind, NoticeKind::CarriedOut);
    assert_eq!(status.notices[0].reason, REASON);
    // The reason is in the ledger, sealed: never in the clear in the ledger or the record.
    assert!(!holds(&stored_bytes(&f, &compliance), "order 4471"));
    let completed = f
        .engine
        .ledger_entries(&compliance, LogKind::Consent, 0, 500)
        .unwrap()
        .into_iter()
        .find(|e| e.kind == "dsr.completed")
        .unwrap();
    assert!(completed.evidence);
    assert_eq!(
        completed.attributes["decided_by"],
        compliance.key_id.to_string()
    );
    // Done is done.
    let again = f.engine.dsr_decide(
        &compliance,
        &id,
        &decision(DsrAction::Reject, json!({"reason": "late"})),
    );
    assert_eq!(again.unwrap_err().code(), ErrorCode::Conflict);
}

#[test]
fn a_rejection_gives_the_requester_the_reason_and_closes_the_request() {
    let (f, outbox, _) = setup();
    let tenant = TenantId::default_tenant();
    let compliance = f.caller("compliance");
    let (id, token) = verified(
        &f,
        &outbox,
        json!({"type": "rectification", "user_id": "u1", "details": "my birthday is wrong"}),
    );
    let view = f
        .engine
        .dsr_decide(
            &compliance,
            &id,
            &decision(
                DsrAction::Reject,
                json!({"reason": "  The date we hold is the one on your passport.  "}),
            ),
        )
        .unwrap();
    assert_eq!(view.status, DsrStatus::Rejected);
    assert_eq!(view.outcome.as_ref().unwrap()["result"], "rejected");
    let status = f.engine.dsr_status(&tenant, &id, &token).unwrap();
    assert_eq!(status.notices[0].kind, NoticeKind::Rejected);
    assert_eq!(
        status.notices[0].reason,
        "The date we hold is the one on your passport."
    );
    assert!(!holds(&stored_bytes(&f, &compliance), "passport"));
    // The queue lists the request without opening its reasons.
    let queue = f.engine.dsr_queue(&compliance, None, false).unwrap();
    assert!(queue.iter().all(|v| v.notices.is_empty()));
}

#[test]
fn a_deadline_is_extended_by_two_months_at_most_and_only_in_the_first_month() {
    let (f, outbox, _) = setup();
    let tenant = TenantId::default_tenant();
    let compliance = f.caller("compliance");
    let extend = |id: &str, months: u8| {
        f.engine.dsr_decide(
            &compliance,
            id,
            &decision(
                DsrAction::Extend,
                json!({"months": months, "reason": "eight years of orders to gather"}),
            ),
        )
    };
    // An unverified request cannot be extended: nobody could be told.
    let pending = submit(&f, json!({"type": "access", "user_id": "u1"}));
    assert_eq!(extend(&pending, 1).unwrap_err().code(), ErrorCode::Conflict);

    let (id, token) = verified(
        &f,
        &outbox,
        json!({"type": "rectification", "user_id": "u1", "details": "wrong address"}),
    );
    let before = f.engine.dsr_status(&tenant, &id, &token).unwrap();
    let once = extend(&id, 1).unwrap();
    assert_eq!(once.deadline, before.deadline.plus_one_month());
    let too_far = extend(&id, 2).unwrap_err();
    assert_eq!(too_far.code(), ErrorCode::Conflict);
    assert_eq!(too_far.field(), Some("/months"));
    let twice = extend(&id, 1).unwrap();
    assert_eq!(twice.deadline, once.deadline.plus_one_month());
    assert_eq!(extend(&id, 1).unwrap_err().field(), Some("/months"));
    let status = f.engine.dsr_status(&tenant, &id, &token).unwrap();
    assert_eq!(status.notices.len(), 2);
    assert!(
        status
            .notices
            .iter()
            .all(|n| n.kind == NoticeKind::Extended && n.deadline.is_some())
    );
    assert_eq!(status.notices[1].deadline, Some(twice.deadline));
    // Once the first month is over, it is too late to extend.
    let (late, _) = verified(
        &f,
        &outbox,
        json!({"type": "rectification", "user_id": "u1", "details": "wrong phone"}),
    );
    f.clock.set(f.clock.now().plus_days(32));
    let refused = extend(&late, 1).unwrap_err();
    assert_eq!(refused.code(), ErrorCode::Conflict);
    assert_eq!(refused.field(), Some("/status"));
}

#[test]
fn the_case_file_holds_the_timeline_with_proofs_and_its_reading_is_logged() {
    let (f, outbox, app) = setup();
    let compliance = f.caller("compliance");
    let (id, _) = verified(
        &f,
        &outbox,
        json!({"type": "rectification", "email": "jane@example.com",
               "details": {"note": "Wrong town", "traits": {"city": "Lyon"}}}),
    );
    f.engine
        .dsr_decide(
            &compliance,
            &id,
            &decision(
                DsrAction::Extend,
                json!({"months": 1, "reason": "waiting for the carrier"}),
            ),
        )
        .unwrap();
    // A purpose is named, like for any read of personal data; the app role may not.
    assert_eq!(
        f.engine
            .dsr_case(&compliance, &id, None)
            .unwrap_err()
            .code(),
        ErrorCode::PurposeMissing
    );
    assert_eq!(
        f.engine
            .dsr_case(&app, &id, Some("customer_support"))
            .unwrap_err()
            .code(),
        ErrorCode::RoleNotPermitted
    );
    let case = f
        .engine
        .dsr_case(&compliance, &id, Some("customer_support"))
        .unwrap();
    assert_eq!(case.note.as_deref(), Some("Wrong town"));
    assert_eq!(case.requested_traits, Some(json!({"city": "Lyon"})));
    let requester = case.requester.as_ref().unwrap();
    assert_eq!(requester.email.as_deref(), Some("jane@example.com"));
    assert!(requester.subject_id.is_some());
    let kinds: Vec<&str> = case
        .timeline
        .iter()
        .map(|t| t.proven.entry.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "dsr.received",
            "dsr.verified",
            "dsr.awaiting_compliance",
            "dsr.extended"
        ]
    );
    assert_eq!(
        case.timeline[3].reason.as_deref(),
        Some("waiting for the carrier")
    );
    assert_eq!(case.request.notices.len(), 1);
    // Every entry's proof leads to the signed checkpoint.
    let checkpoint = custodia_ledger::Checkpoint::parse(&case.checkpoint).unwrap();
    let key: custodia_ledger::VerifierKey = case.public_key.parse().unwrap();
    assert!(checkpoint.verify(&key));
    for item in &case.timeline {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&item.proven.entry.bytes_b64)
            .unwrap();
        let hashes: Vec<[u8; 32]> = item
            .proven
            .inclusion_proof
            .hashes
            .iter()
            .map(|h| hex::decode(h).unwrap().try_into().unwrap())
            .collect();
        assert!(custodia_ledger::merkle::verify_inclusion(
            &custodia_ledger::merkle::leaf_hash(&bytes),
            item.proven.entry.seq,
            checkpoint.tree_size,
            &hashes,
            &checkpoint.root
        ));
    }
    // The reading is in the access log, under the purpose named.
    let logged = f
        .engine
        .access_entries(&compliance, requester.subject_id, None, None, 100)
        .unwrap();
    assert!(logged.iter().any(|e| e.attributes["what"] == "dsr_case"
        && e.purpose.as_ref().map(|p| p.as_str()) == Some("customer_support")));
}

#[test]
fn after_the_retention_period_the_reasons_go_with_the_request_key() {
    let (f, outbox, _) = setup();
    let compliance = f.caller("compliance");
    let admin = f.caller("admin");
    let (id, _) = verified(
        &f,
        &outbox,
        json!({"type": "rectification", "user_id": "u1", "details": "wrong name"}),
    );
    f.engine
        .dsr_decide(
            &compliance,
            &id,
            &decision(DsrAction::Reject, json!({"reason": "the name is right"})),
        )
        .unwrap();
    f.clock.set(
        f.clock
            .now()
            .plus_days(crate::dsr::REQUEST_RETENTION_DAYS + 1),
    );
    assert!(f.engine.retention_sweep(&admin).unwrap().requests_expired >= 1);
    let case = f
        .engine
        .dsr_case(&compliance, &id, Some("customer_support"))
        .unwrap();
    assert!(case.private_part_destroyed);
    assert!(case.requester.is_none() && case.note.is_none());
    // The timeline stays, proven; the reason no longer opens.
    assert_eq!(case.timeline.len(), 4);
    assert!(case.timeline.iter().all(|t| t.reason.is_none()));
    assert_eq!(case.timeline[3].proven.entry.kind, "dsr.rejected");
    assert!(case.timeline[3].proven.entry.evidence);
}

#[test]
fn decisions_are_refused_where_they_do_not_apply() {
    let (f, outbox, app) = setup();
    let compliance = f.caller("compliance");
    // The app role works no queue.
    let (id, _) = verified(
        &f,
        &outbox,
        json!({"type": "rectification", "user_id": "u1", "details": "wrong"}),
    );
    let reject = decision(DsrAction::Reject, json!({"reason": "no"}));
    assert_eq!(
        f.engine.dsr_decide(&app, &id, &reject).unwrap_err().code(),
        ErrorCode::RoleNotPermitted
    );
    // Unknown requests are not found.
    assert_eq!(
        f.engine
            .dsr_decide(&compliance, "00000000000000000000000000000000", &reject)
            .unwrap_err()
            .code(),
        ErrorCode::SubjectNotFound
    );
    // Only a rectification takes traits.
    let (access, _) = verified(&f, &outbox, json!({"type": "access", "user_id": "u1"}));
    let with_traits = decision(
        DsrAction::CarryOut,
        json!({"reason": "done", "traits": {"name": "x"}}),
    );
    assert_eq!(
        f.engine
            .dsr_decide(&compliance, &access, &with_traits)
            .unwrap_err()
            .code(),
        ErrorCode::Conflict,
        "an access request completes on verification: nothing to carry out"
    );
    // A consent session is the person's own.
    let (consent, _) = verified(&f, &outbox, json!({"type": "consent", "user_id": "u1"}));
    assert_eq!(
        f.engine
            .dsr_decide(&compliance, &consent, &reject)
            .unwrap_err()
            .code(),
        ErrorCode::Conflict
    );
}

#[test]
fn decision_bodies_name_the_field_at_fault_and_never_echo_it() {
    for (action, body, field) in [
        (DsrAction::Reject, json!({}), "/reason"),
        (DsrAction::Reject, json!({"reason": "   "}), "/reason"),
        (
            DsrAction::Reject,
            json!({"reason": "x".repeat(2001)}),
            "/reason",
        ),
        (
            DsrAction::Reject,
            json!({"reason": "ok", "months": 1}),
            "/months",
        ),
        (
            DsrAction::Reject,
            json!({"reason": "ok", "traits": {}}),
            "/traits",
        ),
        (DsrAction::Extend, json!({"reason": "ok"}), "/months"),
        (
            DsrAction::Extend,
            json!({"reason": "ok", "months": 3}),
            "/months",
        ),
        (
            DsrAction::Extend,
            json!({"reason": "ok", "months": "1"}),
            "/months",
        ),
        (
            DsrAction::CarryOut,
            json!({"reason": "ok", "traits": []}),
            "/traits",
        ),
        (
            DsrAction::CarryOut,
            json!({"reason": "ok", "traits": {}}),
            "/traits",
        ),
        (
            DsrAction::CarryOut,
            json!({"reason": "ok", "traits": {"email": "secret-not-an-address"}}),
            "/traits/email",
        ),
        (DsrAction::CarryOut, json!([]), "/"),
    ] {
        let err = DsrDecision::from_json(action, &body).unwrap_err();
        assert_eq!(err.field(), Some(field), "{body}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }
    let ok = DsrDecision::from_json(DsrAction::Reject, &json!({"reason": "private words"}));
    assert!(!format!("{:?}", ok.unwrap()).contains("private"));
}

#[test]
fn a_request_from_before_the_timeline_list_still_shows_its_whole_timeline() {
    let (f, outbox, _) = setup();
    let tenant = TenantId::default_tenant();
    let compliance = f.caller("compliance");
    let (id, token) = verified(
        &f,
        &outbox,
        json!({"type": "rectification", "user_id": "u1", "details": "wrong town"}),
    );
    // As a request stored by the version before: record version 1, no list of entries.
    let raw = super::parse_request_id(&id).unwrap();
    let mut record = f.engine.load_dsr(&tenant, &raw).unwrap();
    record.v = 1;
    record.ledger.clear();
    f.engine.save_dsr(&tenant, &raw, &record).unwrap();
    assert!(
        f.engine
            .dsr_status(&tenant, &id, &token)
            .unwrap()
            .notices
            .is_empty()
    );

    f.engine
        .dsr_decide(
            &compliance,
            &id,
            &decision(
                DsrAction::Extend,
                json!({"months": 1, "reason": "old request"}),
            ),
        )
        .unwrap();
    // The decision made since is listed; the timeline still has every entry, found by a scan.
    let case = f
        .engine
        .dsr_case(&compliance, &id, Some("customer_support"))
        .unwrap();
    let kinds: Vec<&str> = case
        .timeline
        .iter()
        .map(|t| t.proven.entry.kind.as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "dsr.received",
            "dsr.verified",
            "dsr.awaiting_compliance",
            "dsr.extended"
        ]
    );
    let status = f.engine.dsr_status(&tenant, &id, &token).unwrap();
    assert_eq!(status.notices.len(), 1);
    assert_eq!(status.notices[0].reason, "old request");
}
