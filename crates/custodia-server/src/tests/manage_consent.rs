//! "Manage my consent" over HTTP: a `consent` request's token lists and records decisions,
//! `Sec-GPC: 1` becomes a GPC decision, bad input names its field and changes nothing.

use std::sync::{Arc, Mutex};

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use custodia_engine::{Outbox, OutboxMessage};
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Answer, Harness, assert_problem, harness};
use crate::router;

/// The codes sent, by request id.
#[derive(Default)]
struct MemOutbox(Mutex<Vec<(String, String)>>);

impl Outbox for MemOutbox {
    fn deliver(&self, message: &OutboxMessage) -> Result<(), String> {
        self.0
            .lock()
            .unwrap()
            .push((message.request_id.clone(), message.code.expose().clone()));
        Ok(())
    }
}

/// A public DSR route call with the request's token and, if `gpc`, the browser's signal.
async fn send(
    h: &Harness,
    method: Method,
    uri: &str,
    token: Option<&str>,
    gpc: bool,
    body: Option<Value>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if gpc {
        req = req.header("Sec-GPC", "1");
    }
    req = req.header(header::USER_AGENT, "TestBrowser/1.0");
    let req = match body {
        Some(body) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let response = router(h.state.clone()).oneshot(req).await.unwrap();
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

async fn n_ledger_entries(h: &Harness) -> usize {
    let answer = h
        .call(
            Method::GET,
            "/v1/ledger/entries?from=0&limit=1000",
            Some(&h.compliance_key),
            None,
        )
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    answer.body["entries"].as_array().unwrap().len()
}

#[tokio::test]
async fn a_consent_session_records_decisions_and_gpc_and_refuses_bad_ones_unchanged() {
    let h = harness();
    let outbox = Arc::new(MemOutbox::default());
    h.state.engine().set_outbox(outbox.clone());
    let created = h.post("/v1/identify", json!({"userId": "u1"})).await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);

    let submitted = send(
        &h,
        Method::POST,
        "/v1/dsr",
        None,
        false,
        Some(json!({"type": "consent", "user_id": "u1"})),
    )
    .await;
    assert_eq!(
        submitted.status,
        StatusCode::ACCEPTED,
        "{:?}",
        submitted.body
    );
    let id = submitted.body["request_id"].as_str().unwrap().to_owned();
    let code = outbox.0.lock().unwrap()[0].1.clone();
    let verified = send(
        &h,
        Method::POST,
        &format!("/v1/dsr/{id}/verify"),
        None,
        true,
        Some(json!({"code": code})),
    )
    .await;
    assert_eq!(verified.status, StatusCode::OK, "{:?}", verified.body);
    assert_eq!(verified.body["outcome"]["result"], "consent_ready");
    assert_eq!(
        verified.body["outcome"]["gpc_withdrawn"],
        json!(["third_party_sharing"])
    );
    let token = verified.body["access_token"].as_str().unwrap().to_owned();
    let path = format!("/v1/dsr/{id}/consents");

    let listed = send(&h, Method::GET, &path, Some(&token), true, None).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    assert_eq!(listed.body["gpc_signal"], true);
    let sharing = listed.body["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "third_party_sharing")
        .unwrap()
        .clone();
    assert_eq!(sharing["state"], "withdrawn");
    assert_eq!(sharing["by_gpc"], true);
    assert_problem(
        &send(&h, Method::GET, &path, None, false, None).await,
        401,
        "unauthenticated",
        None,
    );

    let before = n_ledger_entries(&h).await;
    for (body, status, code, field) in [
        (
            json!({"purpose": "marketing_email"}),
            422,
            "invalid_field",
            "/decision",
        ),
        (
            json!({"purpose": "accounting", "decision": "withdrawn"}),
            422,
            "invalid_field",
            "/purpose",
        ),
        (
            json!({"purpose": "telepathy", "decision": "granted"}),
            422,
            "unknown_purpose",
            "purpose",
        ),
        (
            json!({"purpose": "marketing_email", "decision": "granted", "channel": "web"}),
            422,
            "invalid_field",
            "/channel",
        ),
    ] {
        let refused = send(&h, Method::POST, &path, Some(&token), false, Some(body)).await;
        assert_problem(&refused, status, code, Some(field));
    }
    let granted_with_gpc = send(
        &h,
        Method::POST,
        &path,
        Some(&token),
        true,
        Some(json!({"purpose": "third_party_sharing", "decision": "granted"})),
    )
    .await;
    assert_problem(&granted_with_gpc, 409, "conflict", Some("/decision"));
    assert_eq!(n_ledger_entries(&h).await, before, "refusals wrote nothing");

    let recorded = send(
        &h,
        Method::POST,
        &path,
        Some(&token),
        false,
        Some(json!({"purpose": "marketing_email", "decision": "withdrawn"})),
    )
    .await;
    assert_eq!(recorded.status, StatusCode::CREATED, "{:?}", recorded.body);
    assert_eq!(recorded.body["entry"]["kind"], "consent.withdrawn");
    assert_eq!(
        recorded.body["entry"]["source"]["channel"],
        "privacy_center"
    );
    assert_eq!(recorded.body["entry"]["source"]["gpc"], Value::Null);
    assert_eq!(recorded.body["entry"]["evidence"], true);
    assert_eq!(recorded.body["turned_off_by_gpc"], json!([]));
    assert_eq!(n_ledger_entries(&h).await, before + 1);
}
