//! `Idempotency-Key` on every write: a retry is applied once and answered the same; another
//! request under the same key, a key in flight and a malformed key are refused and change nothing.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use custodia_core::{TenantId, Timestamp};
use custodia_engine::{Clock, Engine, FixedClock};
use custodia_policy::Policies;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Answer, Harness, assert_problem};
use crate::{AppState, ServerConfig, router};

/// A harness whose clock the test moves.
fn harness_with_clock() -> (Harness, Arc<FixedClock>) {
    let keys = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(
        Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap(),
    ));
    let engine = Engine::in_memory(keys.path(), Policies::builtin(), clock.clone()).unwrap();
    let tenant = TenantId::default_tenant();
    let key = |role: &str| {
        engine
            .create_api_key(&tenant, &role.parse().unwrap())
            .unwrap()
            .secret
            .expose()
            .to_owned()
    };
    let (app_key, compliance_key) = (key("app"), key("admin"));
    let config = ServerConfig {
        max_body_bytes: 4096,
        max_batch_items: 10,
        ..ServerConfig::default()
    };
    let h = Harness {
        state: AppState::new(Arc::new(engine), config),
        app_key,
        compliance_key,
        _keys: keys,
    };
    (h, clock)
}

/// One call with `keys` as its `Idempotency-Key` headers; answers the replay mark too.
async fn send(
    h: &Harness,
    method: &str,
    uri: &str,
    api_key: &str,
    keys: &[&str],
    body: &Value,
) -> (Answer, bool) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::AUTHORIZATION, format!("Bearer {api_key}"));
    for key in keys {
        req = req.header("idempotency-key", *key);
    }
    let response = router(h.state.clone())
        .oneshot(req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    let answer = Answer {
        status,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    (answer, replayed)
}

async fn n_events(h: &Harness, subject: &str) -> usize {
    let events = h
        .get(&format!(
            "/v1/subjects/{subject}/events?purpose=customer_support&limit=100"
        ))
        .await;
    assert_eq!(events.status, StatusCode::OK, "{:?}", events.body);
    events.body["events"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_retried_write_is_applied_once_and_answered_the_same() {
    let (h, _clock) = harness_with_clock();
    let app = h.app_key.clone();
    let identify = json!({"userId": "u1", "traits": {"email": "a@example.com"}});
    let (first, replayed) = send(&h, "POST", "/v1/identify", &app, &["id-1"], &identify).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert!(!replayed);
    let (again, replayed) = send(&h, "POST", "/v1/identify", &app, &["id-1"], &identify).await;
    assert_eq!((again.status, &again.body), (first.status, &first.body));
    assert!(replayed, "marked as a replay");
    assert_eq!(again.body["created"], true, "the original answer");
    assert_eq!(h.n_subjects(), 1);
    let subject = first.body["subject_id"].as_str().unwrap().to_owned();

    // The key as a structured-field string is the same key.
    let track = json!({"userId": "u1", "event": "Order Completed", "properties": {"total": 5}});
    let (first, _) = send(&h, "POST", "/v1/track", &app, &["tr-1"], &track).await;
    let (again, replayed) = send(&h, "POST", "/v1/track", &app, &["\"tr-1\""], &track).await;
    assert!(replayed);
    assert_eq!(again.body["event_id"], first.body["event_id"]);
    assert_eq!(n_events(&h, &subject).await, 1);

    // A batch retried under one key stores each of its events once (the items carry no
    // messageId: the key alone de-duplicates). Purchases, which customer support reads.
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"total": 1}},
        {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"total": 2}},
    ]});
    let (first, _) = send(&h, "POST", "/v1/batch", &app, &["b-1"], &batch).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    for _ in 0..2 {
        let (again, replayed) = send(&h, "POST", "/v1/batch", &app, &["b-1"], &batch).await;
        assert!(replayed);
        assert_eq!(again.body, first.body);
    }
    assert_eq!(n_events(&h, &subject).await, 3);

    // Without a key, the same batch is applied again.
    let (_, replayed) = send(&h, "POST", "/v1/batch", &app, &[], &batch).await;
    assert!(!replayed);
    assert_eq!(n_events(&h, &subject).await, 5);

    // Other write routes: a profile patch and a consent decision.
    let patch = json!({"traits": {"plan": "pro"}});
    let uri = format!("/v1/subjects/{subject}");
    let (first, _) = send(&h, "PATCH", &uri, &app, &["p-1"], &patch).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let (again, replayed) = send(&h, "PATCH", &uri, &app, &["p-1"], &patch).await;
    assert!(replayed);
    assert_eq!(again.body, first.body);
    let decision = json!({"user_id": "u1", "purpose": "marketing_email",
                          "decision": "granted", "source": {"channel": "web"}});
    let (first, _) = send(&h, "POST", "/v1/consents", &app, &["c-1"], &decision).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let (again, replayed) = send(&h, "POST", "/v1/consents", &app, &["c-1"], &decision).await;
    assert!(replayed);
    assert_eq!((again.status, &again.body), (first.status, &first.body));
}

#[tokio::test]
async fn a_key_reused_for_another_request_is_refused_and_changes_nothing() {
    let (h, _clock) = harness_with_clock();
    let app = h.app_key.clone();
    let first = json!({"userId": "u1", "traits": {"plan": "basic"}});
    send(&h, "POST", "/v1/identify", &app, &["k"], &first).await;
    let other_body = json!({"userId": "u2", "traits": {"plan": "basic"}});
    let (refused, _) = send(&h, "POST", "/v1/identify", &app, &["k"], &other_body).await;
    assert_problem(
        &refused,
        422,
        "idempotency_key_reused",
        Some("Idempotency-Key"),
    );
    assert_eq!(h.n_subjects(), 1, "u2 was not created");
    // Another route under the same key is another request too.
    let track = json!({"userId": "u3", "event": "Product Viewed"});
    let (refused, _) = send(&h, "POST", "/v1/track", &app, &["k"], &track).await;
    assert_problem(
        &refused,
        422,
        "idempotency_key_reused",
        Some("Idempotency-Key"),
    );
    assert_eq!(h.n_subjects(), 1);

    // A refused first request keeps nothing: its retry runs again, and a corrected body under
    // the same key is applied.
    let bad = json!({"traits": {}});
    let (answer, _) = send(&h, "POST", "/v1/identify", &app, &["k2"], &bad).await;
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        answer.body
    );
    let (answer, replayed) = send(&h, "POST", "/v1/identify", &app, &["k2"], &bad).await;
    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!replayed);
    let fixed = json!({"userId": "u4"});
    let (answer, _) = send(&h, "POST", "/v1/identify", &app, &["k2"], &fixed).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(h.n_subjects(), 2);
}

#[tokio::test]
async fn malformed_keys_and_routes_that_keep_no_answer_are_refused() {
    let (h, _clock) = harness_with_clock();
    let app = h.app_key.clone();
    let body = json!({"userId": "u1"});
    let too_long = "k".repeat(256);
    let longest = "k".repeat(255);
    for keys in [
        vec![""],
        vec!["\"\""],
        vec![too_long.as_str()],
        vec!["has space"],
        vec!["a", "b"],
    ] {
        let (refused, _) = send(&h, "POST", "/v1/identify", &app, &keys, &body).await;
        assert_problem(&refused, 400, "invalid_header", Some("Idempotency-Key"));
    }
    // The body limit holds for a keyed request too.
    let huge = json!({"userId": "u1", "traits": {"bio": "x".repeat(5000)}});
    let (refused, _) = send(&h, "POST", "/v1/identify", &app, &["big"], &huge).await;
    assert_problem(&refused, 413, "payload_too_large", None);
    assert_eq!(h.n_subjects(), 0);
    let (ok, _) = send(&h, "POST", "/v1/identify", &app, &[&longest], &body).await;
    assert_eq!(ok.status, StatusCode::OK);

    // Key creation answers a secret, never kept: the header is refused and no key is made.
    let admin = h.compliance_key.clone();
    let (refused, _) = send(
        &h,
        "POST",
        "/v1/admin/keys",
        &admin,
        &["a-1"],
        &json!({"role": "app"}),
    )
    .await;
    assert_problem(&refused, 400, "invalid_header", Some("Idempotency-Key"));
    let (made, _) = send(
        &h,
        "POST",
        "/v1/admin/keys",
        &admin,
        &[],
        &json!({"role": "app"}),
    )
    .await;
    assert!(made.status.is_success(), "{:?}", made.body);
    // Routes without an API key: the key would have no owner.
    let dsr = json!({"type": "access", "email": "a@example.com"});
    let (refused, _) = send(&h, "POST", "/v1/dsr", &app, &["d-1"], &dsr).await;
    assert_problem(&refused, 400, "invalid_header", Some("Idempotency-Key"));
    // Reads ignore the header.
    let read = h
        .call(axum::http::Method::GET, "/v1/purposes", Some(&app), None)
        .await;
    assert_eq!(read.status, StatusCode::OK);

    // The OpenAPI document names the header exactly where it is kept.
    let doc = crate::openapi_document();
    let takes_key = |path: &str, method: &str| {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .is_some_and(|ps| ps.iter().any(|p| p["name"] == "Idempotency-Key"))
    };
    assert!(takes_key("/v1/batch", "post"));
    assert!(takes_key("/v1/subjects/{subject_id}", "patch"));
    assert!(!takes_key("/v1/admin/keys", "post"));
    assert!(!takes_key("/v1/dsr", "post"));
    assert!(!takes_key("/v1/subjects/{subject_id}", "get"));
}

#[tokio::test]
async fn a_key_in_flight_is_refused_and_a_key_expires_with_the_window() {
    let (h, clock) = harness_with_clock();
    let app = h.app_key.clone();
    let body = json!({"userId": "u1"});
    let caller = h.state.engine().authenticate(&app).unwrap();
    let slot = h
        .state
        .engine()
        .idempotency_slot(
            &caller,
            "f-1",
            "POST",
            "/v1/identify",
            body.to_string().as_bytes(),
        )
        .unwrap();
    {
        // The first request with this key is being handled.
        let _first = h.state.0.in_flight.enter(slot.key_hash).unwrap();
        let (refused, _) = send(&h, "POST", "/v1/identify", &app, &["f-1"], &body).await;
        assert_problem(
            &refused,
            409,
            "idempotency_key_in_flight",
            Some("Idempotency-Key"),
        );
        assert_eq!(h.n_subjects(), 0);
    }
    let (first, _) = send(&h, "POST", "/v1/identify", &app, &["f-1"], &body).await;
    assert_eq!(first.status, StatusCode::OK);

    // Seven days (the default window) on, the key is forgotten: another body is applied.
    clock.set(clock.now().plus_days(6));
    let other = json!({"userId": "u2"});
    let (refused, _) = send(&h, "POST", "/v1/identify", &app, &["f-1"], &other).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    clock.set(clock.now().plus_days(2));
    let (applied, replayed) = send(&h, "POST", "/v1/identify", &app, &["f-1"], &other).await;
    assert_eq!(applied.status, StatusCode::OK, "{:?}", applied.body);
    assert!(!replayed);
    assert_eq!(h.n_subjects(), 2);
}
