//! Engine tests: identity resolution, look-ups, events, purpose checks, keys, input rules.

use std::sync::Arc;

use custodia_core::{ErrorCode, Operation, Personal, RoleName, SubjectId, TenantId, Timestamp};
use custodia_policy::Policies;
use serde_json::{Value, json};

use crate::*;

pub(crate) struct Fixture {
    pub(crate) engine: Engine,
    pub(crate) clock: Arc<FixedClock>,
    _keys_dir: tempfile::TempDir,
}

pub(crate) fn fixture() -> Fixture {
    let keys_dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(
        Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap(),
    ));
    let engine = Engine::in_memory(keys_dir.path(), Policies::builtin(), clock.clone()).unwrap();
    Fixture {
        engine,
        clock,
        _keys_dir: keys_dir,
    }
}

/// A fixture over an engine of the caller's, with the clock it was opened with.
pub(crate) fn fixture_with(engine: Engine, clock: Arc<FixedClock>) -> Fixture {
    Fixture {
        engine,
        clock,
        _keys_dir: tempfile::tempdir().unwrap(),
    }
}

impl Fixture {
    pub(crate) fn caller(&self, role: &str) -> Caller {
        let key = self
            .engine
            .create_api_key(
                &TenantId::default_tenant(),
                &role.parse::<RoleName>().unwrap(),
            )
            .unwrap();
        self.engine.authenticate(key.secret.expose()).unwrap()
    }

    pub(crate) fn identify(&self, caller: &Caller, body: Value) -> IdentifyOutcome {
        self.engine
            .identify(caller, &IdentifyInput::from_json(&body, "").unwrap())
            .unwrap()
    }

    pub(crate) fn track(&self, caller: &Caller, body: Value) -> TrackOutcome {
        self.engine
            .track(caller, &TrackInput::from_json(&body, "").unwrap())
            .unwrap()
    }

    pub(crate) fn support(&self, caller: &Caller) -> ReadGrant {
        self.engine
            .grant(caller, Operation::ReadProfile, Some("customer_support"))
            .unwrap()
    }
}

fn traits(profile: &Profile) -> &serde_json::Map<String, Value> {
    profile.traits.expose()
}

#[test]
fn identify_creates_then_updates() {
    let f = fixture();
    let app = f.caller("app");
    let first = f.identify(
        &app,
        json!({"userId": "u1", "traits": {"email": "Jane@Example.com", "title": "gold"}}),
    );
    assert!(first.created);
    let again = f.identify(
        &app,
        json!({"userId": "u1", "traits": {"title": null, "username": "Berlin"}}),
    );
    assert!(!again.created);
    assert_eq!(again.subject_id, first.subject_id);
    let profile = f
        .engine
        .profile(&f.support(&app), first.subject_id)
        .unwrap();
    assert_eq!(
        traits(&profile).get("email"),
        Some(&json!("Jane@Example.com"))
    );
    assert_eq!(traits(&profile).get("username"), Some(&json!("Berlin")));
    assert!(
        traits(&profile).get("title").is_none(),
        "null removes a trait"
    );
    assert_eq!(
        profile
            .user_id
            .as_ref()
            .map(Personal::expose)
            .map(String::as_str),
        Some("u1")
    );
}

#[test]
fn look_ups_find_exactly_the_subject() {
    let f = fixture();
    let app = f.caller("app");
    let jane = f.identify(&app, json!({"userId": "u1", "traits": {"email": "jane@example.com", "phone": "+49 30 1234 5678"}}));
    let _john = f.identify(
        &app,
        json!({"userId": "u2", "traits": {"email": "john@example.com"}}),
    );
    let grant = f.support(&app);
    let by = |l: Lookup| -> Vec<SubjectId> {
        f.engine
            .lookup(&grant, &l)
            .unwrap()
            .into_iter()
            .map(|p| p.subject_id)
            .collect()
    };
    assert_eq!(
        by(Lookup::Email(Personal("  JANE@example.COM ".into()))),
        vec![jane.subject_id]
    );
    assert_eq!(
        by(Lookup::Phone(Personal("0049 (30) 1234-5678".into()))),
        vec![jane.subject_id]
    );
    assert_eq!(
        by(Lookup::UserId(Personal("u1".into()))),
        vec![jane.subject_id]
    );
    assert!(by(Lookup::Email(Personal("nobody@example.com".into()))).is_empty());
    assert!(by(Lookup::UserId(Personal("u9".into()))).is_empty());

    // Changing the e-mail moves the blind-index entry.
    let patch = TraitChanges::from_json(&json!({"traits": {"email": "jane@new.example"}})).unwrap();
    f.engine
        .patch_profile(&app, jane.subject_id, &patch)
        .unwrap();
    assert!(by(Lookup::Email(Personal("jane@example.com".into()))).is_empty());
    assert_eq!(
        by(Lookup::Email(Personal("jane@new.example".into()))),
        vec![jane.subject_id]
    );

    let err = f
        .engine
        .lookup(&grant, &Lookup::Email(Personal("not-an-email".into())))
        .unwrap_err();
    assert_eq!(err.field(), Some("email"));
}

#[test]
fn events_page_with_a_cursor() {
    let f = fixture();
    let app = f.caller("app");
    let mut ids = Vec::new();
    for i in 0..7 {
        f.clock.set(Timestamp::from_unix_micros(
            1_800_000_000_000_000 + i * 1_000_000,
        ));
        ids.push(
            f.track(
                &app,
                json!({"userId": "u1", "event": "Product Reviewed", "properties": {"product_id": i}}),
            )
            .event_id,
        );
    }
    let grant = f.support(&app);
    let subject = f
        .track(
            &app,
            json!({"userId": "u1", "event": "NPS Answered", "properties": {"score": 9}}),
        )
        .subject_id;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = f
            .engine
            .events(&grant, subject, cursor.as_deref(), 3)
            .unwrap();
        seen.extend(page.events.iter().map(|e| e.event_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), 8);
    assert_eq!(&seen[..7], &ids[..]);
    let err = f
        .engine
        .events(&grant, subject, Some("bogus"), 3)
        .unwrap_err();
    assert_eq!(err.field(), Some("cursor"));
}

#[test]
fn anonymous_visitor_is_merged_into_known_customer() {
    let f = fixture();
    let app = f.caller("app");
    let tenant = TenantId::default_tenant();
    let known = f.identify(
        &app,
        json!({"userId": "u1", "traits": {"name": "Jane", "title": "gold"}}),
    );
    let anon = f.identify(
        &app,
        json!({"anonymousId": "a1", "traits": {"title": "free", "username": "green"}}),
    );
    assert_ne!(known.subject_id, anon.subject_id);
    let viewed = f.track(
        &app,
        json!({"anonymousId": "a1", "event": "Product Reviewed"}),
    );
    assert_eq!(viewed.subject_id, anon.subject_id);
    let keys_before = f.engine.n_data_keys(&tenant).unwrap();

    let linked = f.identify(&app, json!({"userId": "u1", "anonymousId": "a1"}));
    assert_eq!(linked.subject_id, known.subject_id);

    let grant = f.support(&app);
    let profile = f.engine.profile(&grant, known.subject_id).unwrap();
    assert_eq!(
        traits(&profile).get("title"),
        Some(&json!("gold")),
        "the known profile wins"
    );
    assert_eq!(
        traits(&profile).get("username"),
        Some(&json!("green")),
        "anonymous traits fill gaps"
    );
    let events = f.engine.events(&grant, known.subject_id, None, 10).unwrap();
    assert_eq!(
        events.events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
        vec![viewed.event_id]
    );
    match f.engine.profile(&grant, anon.subject_id) {
        Err(EngineError::SubjectMerged { into }) => assert_eq!(into, known.subject_id),
        other => panic!("expected a merge, got {other:?}"),
    }
    assert_eq!(
        f.engine.n_data_keys(&tenant).unwrap(),
        keys_before - 1,
        "merged key destroyed"
    );
    // Later calls with the anonymous id reach the survivor.
    let later = f.track(&app, json!({"anonymousId": "a1", "event": "Product Added"}));
    assert_eq!(later.subject_id, known.subject_id);
}

#[test]
fn the_merges_of_one_subject_are_those_that_made_it_and_the_one_that_ended_it() {
    let f = fixture();
    let app = f.caller("app");
    let compliance = f.caller("compliance");
    // a1 and a2 browse; u1 and u2 are known; a2 signs in as u2, then a1 as u1.
    let a1 = f.identify(&app, json!({"anonymousId": "a1"}));
    let a2 = f.identify(&app, json!({"anonymousId": "a2"}));
    let u1 = f.identify(&app, json!({"userId": "u1"}));
    let u2 = f.identify(&app, json!({"userId": "u2"}));
    f.identify(&app, json!({"userId": "u2", "anonymousId": "a2"}));
    f.identify(&app, json!({"userId": "u1", "anonymousId": "a1"}));
    let all = f.engine.merges(&compliance).unwrap();
    assert_eq!(all.len(), 2);
    let of_u1 = f
        .engine
        .merges_of(&compliance, Some(u1.subject_id))
        .unwrap();
    assert_eq!(
        of_u1.iter().map(|m| (m.merged, m.into)).collect::<Vec<_>>(),
        [(a1.subject_id, u1.subject_id)]
    );
    let of_a2 = f
        .engine
        .merges_of(&compliance, Some(a2.subject_id))
        .unwrap();
    assert_eq!(
        of_a2.iter().map(|m| (m.merged, m.into)).collect::<Vec<_>>(),
        [(a2.subject_id, u2.subject_id)],
        "the merge that ended a2"
    );
    assert_eq!(
        f.engine
            .merges_of(&app, Some(u1.subject_id))
            .unwrap_err()
            .code(),
        ErrorCode::RoleNotPermitted
    );
}

#[test]
fn shared_device_never_merges_two_known_people() {
    let f = fixture();
    let app = f.caller("app");
    let x = f.identify(&app, json!({"userId": "x", "anonymousId": "device"}));
    let y = f.identify(&app, json!({"userId": "y", "anonymousId": "device"}));
    assert!(y.created);
    assert_ne!(x.subject_id, y.subject_id);
    let grant = f.support(&app);
    assert!(f.engine.profile(&grant, x.subject_id).is_ok());
    let anon = f.track(
        &app,
        json!({"anonymousId": "device", "event": "Product Viewed"}),
    );
    assert_eq!(
        anon.subject_id, y.subject_id,
        "the device now belongs to the last user"
    );
}

#[test]
fn purpose_checks_refuse_with_the_right_code() {
    let f = fixture();
    let app = f.caller("app");
    let compliance = f.caller("compliance");
    let code = |caller: &Caller, op, purpose: Option<&str>| {
        f.engine.grant(caller, op, purpose).err().map(|e| e.code())
    };
    assert_eq!(
        code(&app, Operation::ReadProfile, None),
        Some(ErrorCode::PurposeMissing)
    );
    assert_eq!(
        code(&app, Operation::ReadProfile, Some("")),
        Some(ErrorCode::PurposeMissing)
    );
    assert_eq!(
        code(&app, Operation::ReadProfile, Some("spying")),
        Some(ErrorCode::UnknownPurpose)
    );
    assert_eq!(
        code(&app, Operation::ReadProfile, Some("Bad Id")),
        Some(ErrorCode::UnknownPurpose)
    );
    // A consent purpose passes the role check; each subject's own consent is checked at the read.
    assert_eq!(
        code(&app, Operation::ReadProfile, Some("marketing_email")),
        None
    );
    assert_eq!(
        code(&app, Operation::ReadProfile, Some("order_fulfillment")),
        None
    );
    assert_eq!(
        code(&compliance, Operation::Ingest, Some("order_fulfillment")),
        Some(ErrorCode::RoleNotPermitted)
    );
    let support = f.caller("support");
    assert_eq!(
        code(&support, Operation::ReadProfile, Some("fraud_prevention")),
        Some(ErrorCode::PurposeNotPermitted)
    );
    let input = IdentifyInput::from_json(&json!({"userId": "u"}), "").unwrap();
    assert_eq!(
        f.engine.identify(&compliance, &input).unwrap_err().code(),
        ErrorCode::RoleNotPermitted
    );
}

#[test]
fn api_keys_authenticate_only_with_the_exact_secret() {
    let f = fixture();
    let key = f
        .engine
        .create_api_key(&TenantId::default_tenant(), &"app".parse().unwrap())
        .unwrap();
    let text = key.secret.expose().to_owned();
    assert!(f.engine.authenticate(&text).is_ok());
    assert!(
        !format!("{key:?}").contains(&text[20..]),
        "Debug hides the secret"
    );
    let mut tampered = text.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        tampered.as_str(),
        "",
        "cus_",
        "cus_0011223344556677_x",
        "Bearer x",
        &text[..text.len() - 1],
    ] {
        assert_eq!(
            f.engine.authenticate(bad).unwrap_err().code(),
            ErrorCode::Unauthenticated,
            "{bad}"
        );
    }
    let err = f
        .engine
        .create_api_key(&TenantId::default_tenant(), &"nobody".parse().unwrap());
    assert_eq!(err.unwrap_err().code(), ErrorCode::InvalidField);
}

#[test]
fn bad_inputs_name_their_field() {
    let cases: &[(&str, Value, &str)] = &[
        ("identify", json!({"traits": {}}), "/userId"),
        (
            "identify",
            json!({"userId": "u", "traits": {"email": "nope"}}),
            "/traits/email",
        ),
        ("identify", json!({"userId": "u", "traits": []}), "/traits"),
        ("identify", json!({"userId": "u", "trait": {}}), "/trait"),
        ("identify", json!({"userId": ["u"]}), "/userId"),
        ("identify", json!({"userId": "", "traits": {}}), "/userId"),
        (
            "identify",
            json!({"userId": "u", "timestamp": "yesterday"}),
            "/timestamp",
        ),
        ("identify", json!([1, 2]), "/"),
        ("track", json!({"userId": "u"}), "/event"),
        (
            "track",
            json!({"userId": "u", "event": "NPS Answered", "properties": {"score": 11}}),
            "/properties/score",
        ),
        (
            "track",
            json!({"userId": "u", "event": "NPS Answered"}),
            "/properties/score",
        ),
        (
            "track",
            json!({"userId": "u", "event": "Order Completed", "properties": {"currency": "euro"}}),
            "/properties/currency",
        ),
        (
            "track",
            json!({"userId": "u", "event": "Order Completed", "properties": {"total": -1}}),
            "/properties/total",
        ),
        (
            "track",
            json!({"userId": "u", "event": "Product Reviewed", "properties": {"rating": 7}}),
            "/properties/rating",
        ),
    ];
    for (kind, body, field) in cases {
        let err = match *kind {
            "identify" => IdentifyInput::from_json(body, "").err(),
            _ => TrackInput::from_json(body, "").err(),
        };
        let err = err.unwrap_or_else(|| panic!("{kind} {body} should be refused"));
        assert_eq!(err.field(), Some(*field), "{kind} {body}");
        assert_eq!(err.code(), ErrorCode::InvalidField);
        let text = err.to_string();
        assert!(
            !text.contains("nope") && !text.contains("euro"),
            "errors do not echo values: {text}"
        );
    }
    let nested = IdentifyInput::from_json(&json!({"traits": {}}), "/batch/3").unwrap_err();
    assert_eq!(nested.field(), Some("/batch/3/userId"));
}

#[test]
fn segment_common_fields_are_accepted() {
    let body = json!({"type": "identify", "messageId": "m1", "userId": 42, "context": {"ip": "1.2.3.4"}, "traits": {}});
    let input = IdentifyInput::from_json(&body, "").unwrap();
    assert_eq!(input.user_id.unwrap().expose(), "42");
}

#[test]
fn demo_loads_once() {
    let f = fixture();
    let tenant = TenantId::default_tenant();
    let summary = load_demo(&f.engine, &tenant, 40).unwrap().unwrap();
    assert_eq!(summary.n_customers, 40);
    assert!(
        summary.n_consents > 10,
        "the demo records consent decisions"
    );
    assert_eq!(
        f.engine.count_subjects(&tenant).unwrap(),
        40,
        "anonymous visitors were merged"
    );
    assert!(load_demo(&f.engine, &tenant, 40).unwrap().is_none());
    let app = f.caller("app");
    let found = f
        .engine
        .lookup(
            &f.support(&app),
            &Lookup::UserId(Personal("demo-0003".into())),
        )
        .unwrap();
    assert_eq!(found.len(), 1);
    assert!(
        !found[0].anonymous_ids.expose().is_empty(),
        "demo-0003 browsed anonymously first"
    );
}

fn consent(f: &Fixture, caller: &Caller, body: Value) -> Result<ConsentOutcome, EngineError> {
    f.engine
        .record_consent(caller, &ConsentInput::from_json(&body)?)
}

fn state_of(f: &Fixture, caller: &Caller, subject: SubjectId, purpose: &str) -> &'static str {
    f.engine
        .consent_state(caller, subject)
        .unwrap()
        .into_iter()
        .find(|p| p.purpose.as_str() == purpose)
        .unwrap()
        .state
}

#[test]
fn consent_gates_consent_based_reads() {
    let f = fixture();
    let app = f.caller("app");
    let jane = f.identify(
        &app,
        json!({"userId": "u1", "traits": {"email": "jane@example.com"}}),
    );
    let marketing = f
        .engine
        .grant(&app, Operation::ReadProfile, Some("marketing_email"))
        .unwrap();
    let code = |r: Result<Profile, EngineError>| r.err().map(|e| e.code());
    assert_eq!(
        code(f.engine.profile(&marketing, jane.subject_id)),
        Some(ErrorCode::ConsentRequired)
    );
    assert_eq!(
        state_of(&f, &app, jane.subject_id, "marketing_email"),
        "not_set"
    );

    let granted = consent(
        &f,
        &app,
        json!({"user_id": "u1", "purpose": "marketing_email", "decision": "granted",
        "source": {"channel": "web"}, "evidence": {"ip": "203.0.113.9", "form_id": "nl-3"}}),
    )
    .unwrap();
    assert_eq!(granted.entry.kind, "consent.granted");
    assert!(granted.entry.evidence);
    assert_eq!(granted.entry.attributes["form_id"], "nl-3");
    assert!(f.engine.profile(&marketing, jane.subject_id).is_ok());
    let by_email = f
        .engine
        .lookup(
            &marketing,
            &Lookup::Email(Personal("jane@example.com".into())),
        )
        .unwrap();
    assert_eq!(by_email.len(), 1);
    assert_eq!(
        state_of(&f, &app, jane.subject_id, "marketing_email"),
        "granted"
    );

    consent(&f, &app, json!({"subject_id": jane.subject_id, "purpose": "marketing_email", "decision": "withdrawn"})).unwrap();
    assert_eq!(
        code(f.engine.profile(&marketing, jane.subject_id)),
        Some(ErrorCode::ConsentRequired)
    );
    let refused = f.engine.lookup(
        &marketing,
        &Lookup::Email(Personal("jane@example.com".into())),
    );
    assert_eq!(refused.unwrap_err().code(), ErrorCode::ConsentRequired);
    assert_eq!(
        state_of(&f, &app, jane.subject_id, "marketing_email"),
        "withdrawn"
    );
    // A purpose on another basis is unaffected.
    let support = f.support(&app);
    assert!(f.engine.profile(&support, jane.subject_id).is_ok());
}

#[test]
fn consent_expires_after_the_policy_period() {
    let f = fixture();
    let app = f.caller("app");
    let jane = f.identify(&app, json!({"userId": "u1"}));
    consent(
        &f,
        &app,
        json!({"user_id": "u1", "purpose": "marketing_email", "decision": "granted"}),
    )
    .unwrap();
    let days = f
        .engine
        .policies()
        .purpose(&"marketing_email".parse().unwrap())
        .unwrap()
        .consent_expiry_days
        .unwrap();
    let start = f.clock.now();
    f.clock.set(start.plus_days(i64::from(days) - 1));
    assert_eq!(
        state_of(&f, &app, jane.subject_id, "marketing_email"),
        "granted"
    );
    f.clock.set(start.plus_days(i64::from(days)));
    assert_eq!(
        state_of(&f, &app, jane.subject_id, "marketing_email"),
        "expired"
    );
    let marketing = f
        .engine
        .grant(&app, Operation::ReadProfile, Some("marketing_email"))
        .unwrap();
    assert_eq!(
        f.engine
            .profile(&marketing, jane.subject_id)
            .unwrap_err()
            .code(),
        ErrorCode::ConsentRequired
    );
}

#[test]
fn global_privacy_control_withdraws_sale_and_share_purposes() {
    let f = fixture();
    let app = f.caller("app");
    let jane = f.identify(&app, json!({"userId": "u1"}));
    consent(
        &f,
        &app,
        json!({"user_id": "u1", "purpose": "third_party_sharing", "decision": "granted"}),
    )
    .unwrap();
    let outcome = consent(
        &f,
        &app,
        json!({"user_id": "u1", "purpose": "analytics", "decision": "granted", "gpc": true}),
    )
    .unwrap();
    assert_eq!(outcome.gpc_withdrawals.len(), 1);
    assert_eq!(
        outcome.gpc_withdrawals[0]
            .purpose
            .as_ref()
            .map(|p| p.as_str()),
        Some("third_party_sharing")
    );
    assert_eq!(
        state_of(&f, &app, jane.subject_id, "third_party_sharing"),
        "withdrawn"
    );
    assert_eq!(state_of(&f, &app, jane.subject_id, "analytics"), "granted");
    let conflict = consent(
        &f,
        &app,
        json!({"user_id": "u1", "purpose": "third_party_sharing", "decision": "granted", "gpc": true}),
    );
    assert_eq!(conflict.unwrap_err().code(), ErrorCode::Conflict);
}

#[test]
fn consent_refusals_name_their_field() {
    let f = fixture();
    let app = f.caller("app");
    f.identify(&app, json!({"userId": "u1"}));
    let cases: &[(Value, ErrorCode, &str)] = &[
        (
            json!({"user_id": "u1", "purpose": "order_fulfillment", "decision": "granted"}),
            ErrorCode::InvalidField,
            "/purpose",
        ),
        (
            json!({"user_id": "u1", "purpose": "nope", "decision": "granted"}),
            ErrorCode::UnknownPurpose,
            "purpose",
        ),
        (
            json!({"user_id": "u1", "purpose": "analytics", "decision": "maybe"}),
            ErrorCode::InvalidField,
            "/decision",
        ),
        (
            json!({"purpose": "analytics", "decision": "granted"}),
            ErrorCode::InvalidField,
            "/subject_id",
        ),
        (
            json!({"user_id": "u1", "purpose": "analytics", "decision": "granted", "policy_version": "1999-01-01"}),
            ErrorCode::Conflict,
            "/policy_version",
        ),
        (
            json!({"user_id": "u1", "purpose": "analytics", "decision": "granted", "source": {"channel": "a b"}}),
            ErrorCode::InvalidField,
            "/source/channel",
        ),
        (
            json!({"user_id": "u1", "purpose": "analytics", "decision": "granted", "extra": 1}),
            ErrorCode::InvalidField,
            "/extra",
        ),
    ];
    for (body, code, field) in cases {
        let err = consent(&f, &app, body.clone()).unwrap_err();
        assert_eq!((err.code(), err.field()), (*code, Some(*field)), "{body}");
    }
    let unknown = consent(
        &f,
        &app,
        json!({"user_id": "nobody", "purpose": "analytics", "decision": "granted"}),
    );
    assert_eq!(unknown.unwrap_err().code(), ErrorCode::SubjectNotFound);
    let ok = consent(
        &f,
        &app,
        json!({"user_id": "u1", "purpose": "analytics", "decision": "granted", "policy_version": f.engine.policies().version()}),
    );
    assert!(ok.is_ok());
}

#[test]
fn history_proofs_verify_against_the_checkpoint() {
    let f = fixture();
    let app = f.caller("app");
    let compliance = f.caller("compliance");
    let jane = f.identify(&app, json!({"userId": "u1"}));
    f.identify(&app, json!({"userId": "u2"}));
    for (user, decision) in [
        ("u1", "granted"),
        ("u2", "granted"),
        ("u1", "withdrawn"),
        ("u2", "withdrawn"),
        ("u1", "granted"),
    ] {
        consent(
            &f,
            &app,
            json!({"user_id": user, "purpose": "personalization", "decision": decision}),
        )
        .unwrap();
    }
    let history = f.engine.consent_history(&app, jane.subject_id).unwrap();
    assert_eq!(history.entries.len(), 3);
    let checkpoint = custodia_ledger::Checkpoint::parse(&history.checkpoint).unwrap();
    let key: custodia_ledger::VerifierKey = f
        .engine
        .ledger_public_key(&compliance, LogKind::Consent)
        .unwrap()
        .verifier_key
        .parse()
        .unwrap();
    assert!(checkpoint.verify(&key));
    for proven in &history.entries {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&proven.entry.bytes_b64)
            .unwrap();
        let hashes: Vec<[u8; 32]> = proven
            .inclusion_proof
            .hashes
            .iter()
            .map(|h| hex::decode(h).unwrap().try_into().unwrap())
            .collect();
        let leaf = custodia_ledger::merkle::leaf_hash(&bytes);
        assert!(custodia_ledger::merkle::verify_inclusion(
            &leaf,
            proven.entry.seq,
            checkpoint.tree_size,
            &hashes,
            &checkpoint.root
        ));
    }
    // The first entry of every tenant ledger publishes the policy version in force.
    let entries = f
        .engine
        .ledger_entries(&compliance, LogKind::Consent, 0, 10)
        .unwrap();
    assert_eq!(entries[0].kind, "policy.published");
    assert_eq!(
        entries[0].policy_hash.as_deref(),
        Some(f.engine.policy_hash())
    );
    assert_eq!(
        f.engine
            .ledger_entries(&app, LogKind::Consent, 0, 10)
            .unwrap_err()
            .code(),
        ErrorCode::RoleNotPermitted
    );
}

#[test]
fn a_merge_is_in_the_ledger_and_carries_consent_over() {
    let f = fixture();
    let app = f.caller("app");
    let compliance = f.caller("compliance");
    let known = f.identify(&app, json!({"userId": "u1"}));
    let anon = f.identify(&app, json!({"anonymousId": "a1"}));
    // The visitor accepts personalization on the cookie banner before signing in.
    consent(
        &f,
        &app,
        json!({"subject_id": anon.subject_id, "purpose": "personalization", "decision": "granted"}),
    )
    .unwrap();
    // The known customer had withdrawn analytics; the visitor's older grant must not override it.
    consent(
        &f,
        &app,
        json!({"subject_id": anon.subject_id, "purpose": "analytics", "decision": "granted"}),
    )
    .unwrap();
    f.clock.set(f.clock.now().plus_days(1));
    consent(
        &f,
        &app,
        json!({"user_id": "u1", "purpose": "analytics", "decision": "withdrawn"}),
    )
    .unwrap();
    f.clock.set(f.clock.now().plus_days(1));

    f.identify(&app, json!({"userId": "u1", "anonymousId": "a1"}));

    assert_eq!(
        state_of(&f, &app, known.subject_id, "personalization"),
        "granted",
        "carried over"
    );
    assert_eq!(
        state_of(&f, &app, known.subject_id, "analytics"),
        "withdrawn",
        "the newer decision stands"
    );
    let entries = f
        .engine
        .ledger_entries(&compliance, LogKind::Consent, 0, 100)
        .unwrap();
    let merged = entries
        .iter()
        .find(|e| e.kind == "subject.merged")
        .expect("merge in the ledger");
    assert_eq!(
        merged.attributes["merged_from"].as_str().map(str::len),
        Some(32),
        "a pseudonym, not an id"
    );
    let carried: Vec<_> = entries
        .iter()
        .filter(|e| e.attributes.get("carried_from_seq").is_some())
        .collect();
    assert_eq!(carried.len(), 1);
    assert_eq!(
        carried[0].purpose.as_ref().map(|p| p.as_str()),
        Some("personalization")
    );
    let history = f.engine.consent_history(&app, known.subject_id).unwrap();
    assert!(
        history
            .entries
            .iter()
            .any(|e| e.entry.kind == "subject.merged")
    );
}

#[test]
fn every_read_is_in_the_access_log_before_the_data_leaves() {
    let f = fixture();
    let app = f.caller("app");
    let compliance = f.caller("compliance");
    let jane = f.identify(
        &app,
        json!({"userId": "u1", "traits": {"email": "jane@example.com"}}),
    );
    let support = f.support(&app);
    f.engine.profile(&support, jane.subject_id).unwrap();
    f.engine
        .lookup(
            &support,
            &Lookup::Email(Personal("jane@example.com".into())),
        )
        .unwrap();
    f.engine
        .events(&support, jane.subject_id, None, 10)
        .unwrap();
    let marketing = f
        .engine
        .grant(&app, Operation::ReadProfile, Some("marketing_email"))
        .unwrap();
    assert!(f.engine.profile(&marketing, jane.subject_id).is_err());

    let log = f
        .engine
        .access_entries(&compliance, Some(jane.subject_id), None, None, 100)
        .unwrap();
    let seen: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|e| {
            (
                e.kind.as_str(),
                e.attributes["what"].as_str().unwrap(),
                e.attributes["result"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("access.read", "profile", "allowed"),
            ("access.read", "lookup", "allowed"),
            ("access.read", "events", "allowed"),
            ("access.refused", "refused", "refused:consent_required"),
        ]
    );
    assert_eq!(
        log[0].purpose.as_ref().map(|p| p.as_str()),
        Some("customer_support")
    );
    assert_eq!(log[0].attributes["key_id"], app.key_id.as_str());
    assert_eq!(log[0].attributes["role"], "app");
    assert_eq!(
        log[0].subject,
        Some(f.engine.pseudonym_for_tests(jane.subject_id))
    );
    // Nobody else's reads, and a window in the future holds nothing.
    let later = f.clock.now().plus_days(1);
    assert!(
        f.engine
            .access_entries(&compliance, Some(jane.subject_id), Some(later), None, 100)
            .unwrap()
            .is_empty()
    );
    // The app role may not read the access log; it is a separate, verifiable log.
    assert_eq!(
        f.engine
            .access_entries(&app, None, None, None, 10)
            .unwrap_err()
            .code(),
        ErrorCode::RoleNotPermitted
    );
    let note = f
        .engine
        .ledger_checkpoint(&compliance, LogKind::Access)
        .unwrap();
    assert!(note.starts_with("custodia.local/default/audit\n"), "{note}");
}

/// Data minimisation: for every purpose of the default policies, a read returns exactly the
/// traits and events of the categories the purpose names, and says which categories those are.
#[test]
fn reads_are_narrowed_to_the_purposes_categories() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    // One trait of each category that has traits; `shoe_size` is listed nowhere (default).
    let traits = json!({"name": "Jane", "email": "jane@example.com", "shoe_size": 38});
    let jane = f
        .identify(&app, json!({"userId": "u1", "traits": traits}))
        .subject_id;
    // One event of each category that has events; `Wishlist Shared` is listed nowhere.
    let events = [
        "Order Completed",
        "Product Reviewed",
        "Product Viewed",
        "Wishlist Shared",
    ];
    for event in events {
        f.track(&app, json!({"userId": "u1", "event": event}));
    }
    let policies = f.engine.policies();
    for purpose in policies.purposes() {
        if purpose.requires_consent {
            let body = json!({"user_id": "u1", "purpose": purpose.id, "decision": "granted"});
            f.engine
                .record_consent(&app, &ConsentInput::from_json(&body).unwrap())
                .unwrap();
        }
    }
    let mut n_purposes = 0;
    for purpose in policies.purposes() {
        let covers = |category: &str| purpose.categories.iter().any(|c| c == category);
        let grant = f
            .engine
            .grant(&admin, Operation::ReadProfile, Some(purpose.id.as_str()))
            .unwrap();

        let profile = f.engine.profile(&grant, jane).unwrap();
        assert_eq!(profile.categories, purpose.categories, "{}", purpose.id);
        for name in traits.as_object().unwrap().keys() {
            let category = &policies.category_of_trait(name).id;
            assert_eq!(
                profile.traits.expose().contains_key(name),
                covers(category),
                "purpose {} trait {name} ({category})",
                purpose.id
            );
        }

        let page = f.engine.events(&grant, jane, None, 100).unwrap();
        assert_eq!(page.categories, purpose.categories);
        let wanted: Vec<&str> = events
            .iter()
            .copied()
            .filter(|e| covers(&policies.retention_category_of_event(e).id))
            .collect();
        let got: Vec<&str> = page.events.iter().map(|e| e.event.as_str()).collect();
        assert_eq!(got, wanted, "purpose {}", purpose.id);
        assert!(
            !got.is_empty(),
            "every default purpose uses some event category"
        );

        // Paging one event at a time skips the other categories' events and ends.
        let mut paged = Vec::new();
        let mut cursor = None;
        loop {
            let page = f.engine.events(&grant, jane, cursor.as_deref(), 1).unwrap();
            paged.extend(page.events.into_iter().map(|e| e.event));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(paged, wanted, "paged, purpose {}", purpose.id);

        // A look-up is narrowed the same way.
        let found = f
            .engine
            .lookup(&grant, &Lookup::UserId(Personal("u1".into())))
            .unwrap();
        assert_eq!(found[0].traits.expose(), profile.traits.expose());
        assert_eq!(found[0].categories, purpose.categories);
        n_purposes += 1;
    }
    assert_eq!(n_purposes, 8);
}

#[test]
fn a_decision_in_the_ledger_is_acknowledged_when_the_view_update_after_it_fails() {
    let f = fixture();
    let app = f.caller("app");
    let jane = f.identify(
        &app,
        json!({"userId": "u1", "traits": {"email": "jane@example.com"}}),
    );
    let tenant = TenantId::default_tenant();
    // Opens the ledger (and publishes the policy) while there is space.
    assert_eq!(
        state_of(&f, &app, jane.subject_id, "marketing_email"),
        "not_set"
    );
    let before = f.engine.ledger(&tenant).unwrap().log.tree_size();

    // The store's disk fills up: the view update after the ledger append fails.
    let disk = tempfile::tempdir().unwrap();
    f.engine.store.reserve_free_space(disk.path(), u64::MAX);
    let granted = consent(
        &f,
        &app,
        json!({"user_id": "u1", "purpose": "marketing_email", "decision": "granted"}),
    )
    .expect("the decision is durable in the ledger, so the answer is success");
    assert_eq!(granted.entry.seq, before);
    assert_eq!(
        f.engine.ledger(&tenant).err().map(|e| e.code()),
        Some(ErrorCode::InsufficientStorage),
        "the view cannot catch up yet; nothing reads the stale view"
    );
    assert_eq!(
        f.engine
            .consent_state(&app, jane.subject_id)
            .unwrap_err()
            .code(),
        ErrorCode::InsufficientStorage
    );

    // Space returns: the view replays the entry, no reopen needed.
    f.engine.store.reserve_free_space(disk.path(), 0);
    assert_eq!(
        state_of(&f, &app, jane.subject_id, "marketing_email"),
        "granted"
    );
    assert_eq!(
        f.engine.ledger(&tenant).unwrap().log.tree_size(),
        before + 1,
        "recorded once"
    );
    let marketing = f
        .engine
        .grant(&app, Operation::ReadProfile, Some("marketing_email"))
        .unwrap();
    assert!(f.engine.profile(&marketing, jane.subject_id).is_ok());
}

#[test]
fn an_access_log_left_half_created_by_a_full_disk_is_recreated_at_the_first_read() {
    let f = fixture();
    let app = f.caller("app");
    let jane = f.identify(
        &app,
        json!({"userId": "u1", "traits": {"email": "jane@example.com"}}),
    );
    // What an older version left when the first read of the tenant met a full disk: five empty
    // files, no verifier key. Before the fix every read answered 500 ("format is corrupt").
    let dir = f.engine.data_dir.join("audit").join("default");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["format", "entries", "offsets", "hashes", "checkpoints"] {
        std::fs::write(dir.join(name), b"").unwrap();
    }
    let support = f.support(&app);
    f.engine.profile(&support, jane.subject_id).unwrap();
    let key = std::fs::read_to_string(dir.join("verifier-key")).unwrap();
    let report = custodia_ledger::verify_dir(&dir, &key.trim_end().parse().unwrap()).unwrap();
    assert_eq!(report.n_entries, 1);
}

/// One consent decision of the group-commit property: a customer (0..4), a purpose, granted or
/// withdrawn, with or without a Global Privacy Control signal.
#[derive(Debug, Clone)]
struct Decision {
    customer: u8,
    purpose: &'static str,
    granted: bool,
    gpc: bool,
}

fn decision() -> impl proptest::strategy::Strategy<Value = Decision> {
    use proptest::prelude::*;
    (
        0u8..4,
        prop::sample::select(vec!["marketing_email", "analytics", "third_party_sharing"]),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(customer, purpose, granted, gpc)| Decision {
            customer,
            purpose,
            granted: granted && !gpc,
            gpc,
        })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 16, ..Default::default() })]

    /// Decisions made from several threads at once are written in shared batches (issue 16): every
    /// caller gets the position of its own entry, and the consent view ends as applying the
    /// ledger's entries one by one in their order gives.
    #[test]
    fn concurrent_decisions_give_the_view_of_their_ledger_order(
        decisions in proptest::collection::vec(decision(), 3..48),
        n_threads in 3usize..6,
    ) {
        let f = fixture();
        let app = f.caller("app");
        let subjects: Vec<SubjectId> = (0..4)
            .map(|i| f.identify(&app, json!({"userId": format!("c{i}")})).subject_id)
            .collect();
        let engine = &f.engine;
        let tenant = TenantId::default_tenant();
        let ledger = engine.ledger(&tenant).unwrap();
        let outcomes: Vec<(Decision, ConsentOutcome)> = std::thread::scope(|scope| {
            // The append lock held: the first decision leads (alone) and waits for it, the
            // others queue behind it and are appended together, two or more at once.
            let held = ledger.append_lock.lock().unwrap();
            let threads: Vec<_> = (0..n_threads)
                .map(|t| {
                    let mine: Vec<Decision> =
                        decisions.iter().skip(t).step_by(n_threads).cloned().collect();
                    let app = &app;
                    scope.spawn(move || {
                        mine.into_iter()
                            .filter_map(|d| {
                                let mut body = json!({"user_id": format!("c{}", d.customer),
                                    "purpose": d.purpose,
                                    "decision": if d.granted { "granted" } else { "withdrawn" }});
                                if d.gpc {
                                    body["gpc"] = json!(true);
                                }
                                let input = ConsentInput::from_json(&body).unwrap();
                                // A purpose that is not a consent purpose, or a GPC grant, is
                                // refused alike either way; only recorded decisions count.
                                engine.record_consent(app, &input).ok().map(|o| (d, o))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let start = std::time::Instant::now();
            while ledger.commits.n_waiting() < n_threads.min(decisions.len()) - 1
                && start.elapsed() < std::time::Duration::from_secs(10)
            {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(held);
            threads.into_iter().flat_map(|t| t.join().unwrap()).collect()
        });
        proptest::prop_assert!(ledger.commits.largest_batch() > 1, "decisions shared an append");
        let keys = engine.keys(&tenant).unwrap();
        let entries: Vec<custodia_ledger::LedgerEntry> = ledger
            .log
            .entries(0, 10_000)
            .unwrap()
            .iter()
            .map(|(_, bytes)| custodia_ledger::LedgerEntry::decode(bytes).unwrap())
            .collect();
        // Every caller's entry is at the position it was told, and says what it asked.
        let mut seen = std::collections::HashSet::new();
        for (d, outcome) in &outcomes {
            let seq = outcome.entry.seq;
            proptest::prop_assert!(seen.insert(seq), "two callers were given entry {}", seq);
            let entry = &entries[seq as usize];
            proptest::prop_assert_eq!(entry.subject, Some(keys.pseudonym(subjects[d.customer as usize])));
            proptest::prop_assert_eq!(entry.purpose.as_ref().map(|p| p.as_str()), Some(d.purpose));
            let kind = if d.granted { ledger::kind::GRANTED } else { ledger::kind::WITHDRAWN };
            proptest::prop_assert_eq!(entry.kind.as_str(), kind);
            for withdrawal in &outcome.gpc_withdrawals {
                proptest::prop_assert!(seen.insert(withdrawal.seq));
            }
        }
        // The view equals the ledger applied one entry at a time, in order.
        for (i, subject) in subjects.iter().enumerate() {
            let pseudonym = keys.pseudonym(*subject);
            for purpose in ["marketing_email", "analytics", "third_party_sharing"] {
                // The last decision in ledger order is the one that stands.
                let last = entries.iter().rev().find(|e| {
                    e.subject == Some(pseudonym)
                        && e.purpose.as_ref().is_some_and(|p| p.as_str() == purpose)
                        && (e.kind == ledger::kind::GRANTED || e.kind == ledger::kind::WITHDRAWN)
                });
                let expected = match last {
                    None => "not_set",
                    Some(e) if e.kind == ledger::kind::GRANTED => "granted",
                    Some(_) => "withdrawn",
                };
                proptest::prop_assert_eq!(
                    state_of(&f, &app, *subject, purpose),
                    expected,
                    "customer {} purpose {}",
                    i,
                    purpose
                );
            }
        }
    }
}
