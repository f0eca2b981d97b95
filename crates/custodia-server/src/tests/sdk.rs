//! What the Segment and RudderStack SDKs send: Basic auth or `writeKey` in the body, gzip
//! bodies, every call type, unknown types refused alone, retried `messageId`s stored once.

use std::io::Write;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Answer, Harness, assert_problem, harness};
use crate::router;

/// A POST with the given extra headers (no Authorization unless given).
async fn post_with(h: &Harness, uri: &str, headers: &[(&str, String)], body: Vec<u8>) -> Answer {
    let mut req = Request::builder()
        .method("POST")
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let response = router(h.state.clone())
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    Answer {
        status,
        content_type,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

fn basic(user_and_password: &str) -> (&'static str, String) {
    (
        "authorization",
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_and_password)
        ),
    )
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn identify(user: &str) -> Vec<u8> {
    json!({"userId": user, "traits": {"plan": "pro"}})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn the_key_is_taken_as_basic_user_body_write_key_or_bearer() {
    let h = harness();
    let key = h.app_key.clone();
    let accepted = [
        vec![basic(&format!("{key}:"))],
        vec![basic(&format!("{key}:ignored-password"))],
        vec![basic(&format!(":{key}"))],
        vec![("authorization", format!("bearer {key}"))],
        vec![(
            "authorization",
            format!(
                "BASIC {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
            ),
        )],
    ];
    for (i, headers) in accepted.iter().enumerate() {
        let answer = post_with(&h, "/v1/identify", headers, identify(&format!("ok-{i}"))).await;
        assert_eq!(answer.status, StatusCode::OK, "{i}: {:?}", answer.body);
    }
    // Segment's server takes the key from the batch body when no header is sent.
    let body = json!({"writeKey": key, "batch": [{"type": "identify", "userId": "ok-body"}]});
    let answer = post_with(&h, "/v1/batch", &[], body.to_string().into_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(h.n_subjects(), accepted.len() as u64 + 1);

    let refused = [
        vec![basic("wrong-key:")],
        vec![basic(":")],
        vec![("authorization", "Basic not base64!".to_owned())],
        vec![("authorization", format!("Token {key}"))],
        vec![],
    ];
    for (i, headers) in refused.iter().enumerate() {
        let answer = post_with(&h, "/v1/identify", headers, identify(&format!("no-{i}"))).await;
        assert_problem(&answer, 401, "unauthenticated", None);
    }
    let mut req = Request::builder().method("POST").uri("/v1/identify");
    req = req.header(header::CONTENT_TYPE, "application/json");
    let response = router(h.state.clone())
        .oneshot(req.body(Body::from(identify("no-challenge"))).unwrap())
        .await
        .unwrap();
    let challenge = response.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap();
    assert!(
        challenge.contains("Bearer") && challenge.contains("Basic"),
        "{challenge}"
    );
    let wrong_in_body =
        json!({"writeKey": "wrong", "batch": [{"type": "identify", "userId": "no-body"}]});
    let answer = post_with(&h, "/v1/batch", &[], wrong_in_body.to_string().into_bytes()).await;
    assert_problem(&answer, 401, "unauthenticated", None);
    let two = vec![
        ("authorization", format!("Bearer {key}")),
        ("authorization", format!("Bearer {key}")),
    ];
    let answer = post_with(&h, "/v1/identify", &two, identify("no-two")).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);
    assert_eq!(answer.body["field"], "Authorization");
    assert_eq!(
        h.n_subjects(),
        accepted.len() as u64 + 1,
        "refusals wrote nothing"
    );
}

#[tokio::test]
async fn gzip_bodies_are_read_and_bombs_refused() {
    let h = harness();
    let auth = [
        ("authorization", format!("Bearer {}", h.app_key)),
        ("content-encoding", "gzip".to_owned()),
    ];
    let answer = post_with(&h, "/v1/identify", &auth, gzip(&identify("zipped"))).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(h.n_subjects(), 1);

    // Small on the wire, far over the 4096-byte limit once inflated.
    let bomb = json!({"userId": "bomb", "traits": {"blob": "a".repeat(1 << 20)}}).to_string();
    let compressed = gzip(bomb.as_bytes());
    assert!(compressed.len() < 4096);
    let answer = post_with(&h, "/v1/identify", &auth, compressed).await;
    assert_problem(&answer, 413, "payload_too_large", None);

    let answer = post_with(&h, "/v1/identify", &auth, b"not gzip at all".to_vec()).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{:?}", answer.body);

    let br = [
        ("authorization", format!("Bearer {}", h.app_key)),
        ("content-encoding", "br".to_owned()),
    ];
    let answer = post_with(&h, "/v1/identify", &br, identify("brotli")).await;
    assert_problem(
        &answer,
        415,
        "unsupported_media_type",
        Some("Content-Encoding"),
    );
    assert!(answer.body["detail"].as_str().unwrap().contains("br"));
    assert_eq!(h.n_subjects(), 1, "refusals wrote nothing");
}

#[tokio::test]
async fn every_segment_call_is_stored_and_unknown_types_are_refused_alone() {
    let h = harness();
    let batch = json!({"batch": [
        {"type": "identify", "user_id": "u1", "traits": {"plan": "pro"},
         "context": {"traits": {"firstName": "Ada", "plan": "free"}, "ip": "203.0.113.7"}},
        {"type": "track", "anonymousId": "a1", "event": "Product Viewed", "properties": {"sku": "s"}},
        {"type": "alias", "previousId": "a1", "userId": "u1"},
        {"type": "page", "userId": "u1", "name": "Pricing", "category": "Docs", "properties": {"url": "https://x.example/p"},
         "context": {"userAgent": "test-agent"}},
        {"type": "screen", "userId": "u1", "name": "Home"},
        {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"name": "Acme"}},
        {"type": "hologram", "userId": "u1"},
    ]});
    let answer = h.post("/v1/batch", batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 7);
    assert_eq!(results[6]["code"], "invalid_field");
    assert_eq!(results[6]["field"], "/batch/6/type");
    assert_eq!(results[6]["message"], results[6]["detail"]);
    for result in &results[..6] {
        assert!(result["subject_id"].is_string(), "{result:?}");
    }
    // The visitor was merged into the user by the alias: one person.
    assert_eq!(h.n_subjects(), 1);
    // Reads are narrowed to their purpose: consent to e-mail marketing shows every trait sent
    // (identity, contact, preferences), consent to personalisation every event.
    for purpose in ["marketing_email", "personalization"] {
        let granted = h
            .post(
                "/v1/consents",
                json!({"user_id": "u1", "purpose": purpose, "decision": "granted"}),
            )
            .await;
        assert_eq!(granted.status, StatusCode::CREATED, "{:?}", granted.body);
    }
    let found = h
        .get("/v1/subjects?user_id=u1&purpose=marketing_email")
        .await;
    let profile = &found.body["subjects"][0];
    let traits = &profile["traits"];
    assert_eq!(
        traits["plan"], "pro",
        "the call's own trait wins over context.traits"
    );
    assert_eq!(traits["firstName"], "Ada");
    assert_eq!(traits["groups"]["acme"]["name"], "Acme");
    let id = profile["subject_id"].as_str().unwrap();
    let events = h
        .get(&format!("/v1/subjects/{id}/events?purpose=personalization"))
        .await;
    let events = events.body["events"].as_array().unwrap().clone();
    let names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Product Viewed", "Page Viewed", "Screen Viewed"]);
    assert_eq!(events[1]["properties"]["name"], "Pricing");
    assert_eq!(events[1]["properties"]["category"], "Docs");
    assert_eq!(events[1]["context"]["userAgent"], "test-agent");

    // The single endpoints take the same calls.
    for (uri, body) in [
        ("/v1/page", json!({"userId": "u2", "name": "Home"})),
        ("/v1/screen", json!({"userId": "u2", "name": "Home"})),
        ("/v1/group", json!({"userId": "u2", "groupId": "g"})),
        ("/v1/alias", json!({"userId": "u2", "previousId": "a2"})),
    ] {
        let answer = h.post(uri, body).await;
        assert_eq!(answer.status, StatusCode::OK, "{uri}: {:?}", answer.body);
    }
    // A bad item of a known type still refuses the whole batch.
    let bad = json!({"batch": [
        {"type": "identify", "userId": "u3"},
        {"type": "group", "userId": "u3"},
    ]});
    assert_problem(
        &h.post("/v1/batch", bad).await,
        422,
        "invalid_field",
        Some("/batch/1/groupId"),
    );
    let found = h
        .get("/v1/subjects?user_id=u3&purpose=order_fulfillment")
        .await;
    assert_eq!(found.body["subjects"], json!([]));
}

#[tokio::test]
async fn event_context_is_dropped_when_configured() {
    let mut h = harness();
    let config = crate::ServerConfig {
        keep_event_context: false,
        ..h.state.0.config.clone()
    };
    h.state = crate::AppState::new(h.state.engine().clone(), config);
    let answer = h
        .post(
            "/v1/track",
            json!({"userId": "u1", "event": "Product Viewed", "context": {"ip": "203.0.113.7", "traits": {"firstName": "Ada"}}}),
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let id = answer.body["subject_id"].as_str().unwrap();
    let events = h
        .get(&format!(
            "/v1/subjects/{id}/events?purpose=order_fulfillment"
        ))
        .await;
    assert!(
        events.body["events"][0].get("context").is_none(),
        "{:?}",
        events.body
    );
    let profile = h
        .get(&format!("/v1/subjects/{id}?purpose=order_fulfillment"))
        .await;
    assert_eq!(
        profile.body["traits"]["firstName"], "Ada",
        "context.traits still count"
    );
}

#[tokio::test]
async fn a_retried_message_is_stored_once() {
    let h = harness();
    let batch = json!({"batch": [
        {"type": "track", "userId": "u1", "event": "Product Viewed", "messageId": "m-1"},
        {"type": "track", "userId": "u1", "event": "Product Viewed", "messageId": "m-2"},
    ]});
    let first = h.post("/v1/batch", batch.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let again = h.post("/v1/batch", batch).await;
    assert_eq!(again.status, StatusCode::OK, "{:?}", again.body);
    assert_eq!(first.body, again.body, "the original answers");
    let single = h
        .post(
            "/v1/track",
            json!({"userId": "u1", "event": "Product Viewed", "messageId": "m-1"}),
        )
        .await;
    assert_eq!(single.body, first.body["results"][0]);
    let id = first.body["results"][0]["subject_id"].as_str().unwrap();
    let granted = h
        .post(
            "/v1/consents",
            json!({"user_id": "u1", "purpose": "personalization", "decision": "granted"}),
        )
        .await;
    assert_eq!(granted.status, StatusCode::CREATED, "{:?}", granted.body);
    let events = h
        .get(&format!("/v1/subjects/{id}/events?purpose=personalization"))
        .await;
    assert_eq!(events.body["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_retried_consent_decision_is_one_ledger_entry() {
    let h = harness();
    h.post("/v1/identify", json!({"userId": "u1"})).await;
    let decision = json!({"user_id": "u1", "purpose": "marketing_email", "decision": "granted",
                          "source": {"channel": "web"}, "decision_id": "d-1"});
    let first = h.post("/v1/consents", decision.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let again = h.post("/v1/consents", decision).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
    assert_eq!(again.body, first.body, "the original entry");

    // The same with an Idempotency-Key header instead of a decision_id.
    let withdrawal = json!({"user_id": "u1", "purpose": "marketing_email", "decision": "withdrawn",
                            "source": {"channel": "web"}});
    let auth = ("authorization", format!("Bearer {}", h.app_key));
    let keyed = [auth.clone(), ("idempotency-key", "k-1".to_owned())];
    let body = withdrawal.to_string().into_bytes();
    let first = post_with(&h, "/v1/consents", &keyed, body.clone()).await;
    assert_eq!(first.status, StatusCode::CREATED, "{:?}", first.body);
    let again = post_with(&h, "/v1/consents", &keyed, body.clone()).await;
    assert_eq!(again.body, first.body);
    let bad = [auth, ("idempotency-key", "x".repeat(300))];
    let answer = post_with(&h, "/v1/consents", &bad, body).await;
    assert_problem(&answer, 400, "invalid_header", Some("Idempotency-Key"));

    let id = first.body["entry"]["subject"].as_str().map(str::to_owned);
    assert!(id.is_some(), "{:?}", first.body);
    let found = h
        .get("/v1/subjects?user_id=u1&purpose=order_fulfillment")
        .await;
    let subject = found.body["subjects"][0]["subject_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let history = h
        .call(
            axum::http::Method::GET,
            &format!("/v1/subjects/{subject}/consents/history"),
            Some(&h.compliance_key),
            None,
        )
        .await;
    assert_eq!(history.status, StatusCode::OK, "{:?}", history.body);
    let n_entries = history.body["entries"].as_array().map(Vec::len);
    assert_eq!(
        n_entries,
        Some(2),
        "one grant, one withdrawal: {:?}",
        history.body
    );
}

/// What RudderStack's and Segment's Node SDKs add: a gzip batch labelled as a form (RudderStack),
/// a batch `timestamp` (RudderStack) and each message's `_metadata` (both).
#[tokio::test]
async fn the_node_sdks_batches_are_read() {
    let h = harness();
    let batch = json!({"batch": [
        {"type": "identify", "userId": "n1", "traits": {"plan": "pro"}, "channel": "server",
         "_metadata": {"nodeVersion": "v20.20.2"}},
    ], "timestamp": "2026-11-24T12:00:00Z", "sentAt": "2026-11-24T12:00:00Z"});
    let send = |encoding: Option<&'static str>, body: Vec<u8>| {
        let mut req = Request::builder()
            .method("POST")
            .uri("/v1/batch")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, format!("Bearer {}", h.app_key));
        if let Some(encoding) = encoding {
            req = req.header(header::CONTENT_ENCODING, encoding);
        }
        router(h.state.clone()).oneshot(req.body(Body::from(body)).unwrap())
    };
    let plain = send(None, batch.to_string().into_bytes()).await.unwrap();
    assert_eq!(
        plain.status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "a form is no JSON"
    );
    assert_eq!(h.n_subjects(), 0);
    let zipped = send(Some("gzip"), gzip(batch.to_string().as_bytes()))
        .await
        .unwrap();
    assert_eq!(zipped.status(), StatusCode::OK);
    assert_eq!(h.n_subjects(), 1);
}
