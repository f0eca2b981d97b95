//! In-process tests of the HTTP layer: problem+json for every refusal, purpose on every
//! personal-data route, the OpenAPI table in step with the router, response shapes.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use custodia_core::{TenantId, Timestamp};
use custodia_engine::{Engine, FixedClock};
use custodia_policy::Policies;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::routes::{ROUTES, RouteKind};
use crate::{AppState, ServerConfig, documented_routes, router};

mod idempotency;
mod manage_consent;
mod sdk;

struct Harness {
    state: AppState,
    app_key: String,
    compliance_key: String,
    _keys: tempfile::TempDir,
}

fn harness() -> Harness {
    let keys = tempfile::tempdir().unwrap();
    let clock = Arc::new(FixedClock::new(
        Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap(),
    ));
    let engine = Engine::in_memory(keys.path(), Policies::builtin(), clock).unwrap();
    let tenant = TenantId::default_tenant();
    let app_key = engine
        .create_api_key(&tenant, &"app".parse().unwrap())
        .unwrap();
    let compliance_key = engine
        .create_api_key(&tenant, &"compliance".parse().unwrap())
        .unwrap();
    let config = ServerConfig {
        max_body_bytes: 4096,
        max_batch_items: 10,
        ..ServerConfig::default()
    };
    Harness {
        state: AppState::new(Arc::new(engine), config),
        app_key: app_key.secret.expose().to_owned(),
        compliance_key: compliance_key.secret.expose().to_owned(),
        _keys: keys,
    }
}

struct Answer {
    status: StatusCode,
    content_type: String,
    body: Value,
}

impl Harness {
    async fn call(
        &self,
        method: Method,
        uri: &str,
        key: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let req = match body {
            Some((content_type, bytes)) => req
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(bytes)),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let response = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Answer {
            status,
            content_type,
            body,
        }
    }

    async fn post(&self, uri: &str, body: Value) -> Answer {
        self.call(
            Method::POST,
            uri,
            Some(&self.app_key),
            Some(("application/json", body.to_string().into_bytes())),
        )
        .await
    }

    async fn get(&self, uri: &str) -> Answer {
        self.call(Method::GET, uri, Some(&self.app_key), None).await
    }

    fn n_subjects(&self) -> u64 {
        self.state
            .engine()
            .count_subjects(&TenantId::default_tenant())
            .unwrap()
    }
}

fn assert_problem(answer: &Answer, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(answer.status.as_u16(), status, "{:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json");
    assert_eq!(answer.body["status"], status);
    assert_eq!(answer.body["code"], code, "{:?}", answer.body);
    assert_eq!(answer.body["type"], format!("urn:custodia:problem:{code}"));
    assert!(answer.body["title"].is_string() && answer.body["detail"].is_string());
    // The SDKs log `message`: the same text as `detail`.
    assert_eq!(answer.body["message"], answer.body["detail"]);
    assert_eq!(answer.body["field"].as_str(), field, "{:?}", answer.body);
}

#[test]
fn openapi_documents_exactly_the_routes() {
    let mut routed: Vec<_> = ROUTES.iter().map(|(m, p, _)| (*m, *p)).collect();
    let mut documented = documented_routes();
    routed.sort();
    documented.sort();
    assert_eq!(routed, documented);
    let doc = crate::openapi_document();
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.")),
        Some(true)
    );
    assert!(doc["paths"]["/v1/subjects/{subject_id}"]["patch"].is_object());
}

/// Every operation of the document, as (path, method, operation).
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            out.push((path.clone(), method.clone(), op.clone()));
        }
    }
    out
}

#[test]
fn openapi_parameters_have_schemas_and_refusals_are_problems() {
    let doc = crate::openapi_document();
    let codes: Vec<&str> = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let expected: Vec<&str> = custodia_core::ErrorCode::ALL
        .iter()
        .map(|c| c.as_str())
        .collect();
    assert_eq!(codes, expected);
    for (path, method, op) in operations(&doc) {
        for param in op["parameters"].as_array().into_iter().flatten() {
            assert!(
                param["schema"]["type"].is_string(),
                "{method} {path} {}: no schema",
                param["name"]
            );
        }
        let responses = op["responses"].as_object().unwrap();
        assert!(
            responses.keys().any(|s| s.starts_with('2')),
            "{method} {path}"
        );
        for (status, response) in responses {
            let content = response["content"].as_object().unwrap();
            assert!(
                !content.is_empty(),
                "{method} {path} {status}: no media type"
            );
            if status.starts_with('4') {
                assert_eq!(
                    response["content"]["application/problem+json"]["schema"]["$ref"],
                    "#/components/schemas/Problem",
                    "{method} {path} {status}"
                );
            }
        }
        if op["security"].is_array() {
            assert!(responses.contains_key("401") && responses.contains_key("403"));
        }
    }
    let health = &doc["paths"]["/healthz"]["get"]["responses"];
    for status in ["200", "503"] {
        assert_eq!(
            health[status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Health"
        );
    }
    let health = &doc["components"]["schemas"]["Health"];
    assert_eq!(
        health["properties"]["status"]["enum"],
        json!(["ok", "unavailable"])
    );
    assert_eq!(health["required"], json!(["status"]));
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["basic"]["scheme"], "basic");
}

#[tokio::test]
async fn documented_media_types_are_the_ones_served() {
    let h = harness();
    let doc = crate::openapi_document();
    let compliance = h.compliance_key.clone();
    for (path, key) in [
        ("/metrics", None),
        ("/v1/ledger/checkpoint", Some(compliance.as_str())),
        ("/v1/ledger/public-key", Some(compliance.as_str())),
        ("/healthz", None),
        ("/v1/purposes", Some(h.app_key.as_str())),
    ] {
        let answer = h.call(Method::GET, path, key, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {:?}", answer.body);
        let documented = doc["paths"][path]["get"]["responses"]["200"]["content"]
            .as_object()
            .unwrap();
        assert!(
            documented.contains_key(&answer.content_type),
            "{path}: served {}, documented {:?}",
            answer.content_type,
            documented.keys().collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn the_docs_page_is_served_with_its_bundle_and_a_strict_csp() {
    let h = harness();
    for (path, content_type) in [
        ("/docs", "text/html; charset=utf-8"),
        (
            "/docs/redoc.standalone.js",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = router(h.state.clone()).oneshot(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert_eq!(headers[header::CONTENT_TYPE], content_type);
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self';") && csp.contains("default-src 'none'"));
        assert!(!csp.contains("http"), "no other origin: {csp}");
        let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        if path == "/docs" {
            let page = String::from_utf8(bytes.to_vec()).unwrap();
            assert!(page.contains("spec-url=\"/openapi.json\""));
            assert!(page.contains("src=\"/docs/redoc.standalone.js\""));
            assert!(!page.contains("http"), "nothing from elsewhere");
        } else {
            assert!(bytes.starts_with(b"/*! For license information"));
        }
    }
}

#[tokio::test]
async fn every_personal_read_route_demands_a_purpose() {
    let h = harness();
    let created = h
        .post(
            "/v1/identify",
            json!({"userId": "u1", "traits": {"email": "a@example.com"}}),
        )
        .await;
    let id = created.body["subject_id"].as_str().unwrap().to_owned();
    let mut checked = 0;
    for (method, path, kind) in ROUTES {
        // A request's case file is read by the compliance role; its purpose check is tested
        // with the decisions (engine dsr/decide_tests.rs, e2e p2_dsr.rs).
        if *kind != RouteKind::PersonalRead || path.starts_with("/v1/dsr/") {
            continue;
        }
        assert_eq!(*method, "GET");
        let base = path.replace("{subject_id}", &id);
        let uri = match *path {
            "/v1/subjects" => format!("{base}?email=a@example.com"),
            "/v1/search" => format!("{base}?q=example"),
            _ => base.clone(),
        };
        assert_problem(&h.get(&uri).await, 400, "purpose_missing", Some("purpose"));
        let sep = if uri.contains('?') { '&' } else { '?' };
        let consent = h.get(&format!("{uri}{sep}purpose=marketing_email")).await;
        if *path == "/v1/search" {
            // Search is refused for purposes whose policy does not allow it, before any subject;
            // each hit then goes through the subject's consent (tested in the engine).
            assert_problem(&consent, 403, "purpose_not_permitted", None);
        } else {
            assert_problem(&consent, 403, "consent_required", None);
        }
        let ok = h.get(&format!("{uri}{sep}purpose=customer_support")).await;
        assert_eq!(ok.status, StatusCode::OK, "{uri}: {:?}", ok.body);
        checked += 1;
    }
    assert_eq!(checked, 4);
}

#[tokio::test]
async fn malformed_requests_get_problem_details_and_change_nothing() {
    let h = harness();
    let json_body = |v: Value| Some(("application/json", v.to_string().into_bytes()));
    let no_key = h
        .call(
            Method::POST,
            "/v1/identify",
            None,
            json_body(json!({"userId": "u"})),
        )
        .await;
    assert_problem(&no_key, 401, "unauthenticated", None);
    let bad_key = h
        .call(
            Method::POST,
            "/v1/identify",
            Some("cus_0000000000000000_AAAA"),
            json_body(json!({"userId": "u"})),
        )
        .await;
    assert_problem(&bad_key, 401, "unauthenticated", None);
    let text = h
        .call(
            Method::POST,
            "/v1/identify",
            Some(&h.app_key),
            Some(("text/plain", b"{}".to_vec())),
        )
        .await;
    assert_problem(&text, 415, "unsupported_media_type", None);
    let broken = h
        .call(
            Method::POST,
            "/v1/identify",
            Some(&h.app_key),
            Some(("application/json", b"{\"userId\": ".to_vec())),
        )
        .await;
    assert_problem(&broken, 400, "malformed_json", None);
    let huge = json!({"userId": "u", "traits": {"notes": "x".repeat(5000)}});
    assert_problem(
        &h.post("/v1/identify", huge).await,
        413,
        "payload_too_large",
        None,
    );
    assert_problem(
        &h.post(
            "/v1/identify",
            json!({"userId": "u", "traits": {"email": "nope"}}),
        )
        .await,
        422,
        "invalid_field",
        Some("/traits/email"),
    );
    assert_problem(
        &h.get("/v1/subjects/not-a-uuid?purpose=customer_support")
            .await,
        400,
        "invalid_id",
        Some("subject_id"),
    );
    assert_problem(
        &h.get("/v1/subjects/1b4e28ba-2fa1-41d2-883f-0016d3cca427?purpose=customer_support")
            .await,
        404,
        "subject_not_found",
        None,
    );
    assert_problem(&h.get("/v1/nothing").await, 404, "not_found", None);
    let compliance = h
        .call(
            Method::POST,
            "/v1/identify",
            Some(&h.compliance_key),
            json_body(json!({"userId": "u"})),
        )
        .await;
    assert_problem(&compliance, 403, "role_not_permitted", None);
    let batch = json!({"batch": [
        {"type": "identify", "userId": "ok"},
        {"type": "track", "userId": "ok", "event": "NPS Answered", "properties": {"score": 42}},
    ]});
    assert_problem(
        &h.post("/v1/batch", batch).await,
        422,
        "invalid_field",
        Some("/batch/1/properties/score"),
    );
    assert_problem(
        &h.post("/v1/batch", json!({"batch": [{"type": "alias"}]}))
            .await,
        422,
        "invalid_field",
        Some("/batch/0/userId"),
    );
    assert_eq!(h.n_subjects(), 0, "no refused request wrote anything");
}

#[tokio::test]
async fn batch_answers_one_result_per_item() {
    let h = harness();
    let batch = json!({"batch": [
        {"type": "identify", "userId": "u1", "traits": {"name": "Jane"}},
        {"type": "track", "userId": "u1", "event": "Order Completed", "properties": {"total": 10, "currency": "EUR"}},
        {"type": "track", "anonymousId": "a9", "event": "Product Viewed"},
    ]});
    let answer = h.post("/v1/batch", batch).await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    let results = answer.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[0]["created"], true);
    assert_eq!(results[1]["subject_id"], results[0]["subject_id"]);
    assert!(results[1]["event_id"].is_string());
    assert_ne!(results[2]["subject_id"], results[0]["subject_id"]);
    assert_eq!(h.n_subjects(), 2);
}

#[tokio::test]
async fn profile_read_shape() {
    let h = harness();
    h.post("/v1/identify", json!({"userId": "u1", "anonymousId": "a1", "traits": {"email": "jane@example.com", "firstName": "Jane"}})).await;
    let found = h
        .get("/v1/subjects?user_id=u1&purpose=order_fulfillment")
        .await;
    assert_eq!(found.status, StatusCode::OK);
    insta::assert_json_snapshot!(found.body, {
        ".subjects[].subject_id" => "[subject_id]",
    }, @r###"
    {
      "subjects": [
        {
          "anonymous_ids": [
            "a1"
          ],
          "categories": [
            "identity",
            "contact",
            "purchases"
          ],
          "created_at": "2026-11-24T12:00:00Z",
          "subject_id": "[subject_id]",
          "traits": {
            "email": "jane@example.com",
            "firstName": "Jane"
          },
          "updated_at": "2026-11-24T12:00:00Z",
          "user_id": "u1"
        }
      ]
    }
    "###);
}

#[tokio::test]
async fn admin_creates_keys_others_cannot() {
    let h = harness();
    let admin = h
        .state
        .engine()
        .create_api_key(&TenantId::default_tenant(), &"admin".parse().unwrap())
        .unwrap();
    let body = Some((
        "application/json",
        json!({"role": "support"}).to_string().into_bytes(),
    ));
    let created = h
        .call(
            Method::POST,
            "/v1/admin/keys",
            Some(admin.secret.expose()),
            body.clone(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let new_key = created.body["api_key"].as_str().unwrap();
    let purposes = h
        .call(Method::GET, "/v1/purposes", Some(new_key), None)
        .await;
    assert_eq!(purposes.status, StatusCode::OK);
    assert!(purposes.body["purposes"].as_array().unwrap().len() >= 8);
    let refused = h
        .call(Method::POST, "/v1/admin/keys", Some(&h.app_key), body)
        .await;
    assert_problem(&refused, 403, "role_not_permitted", None);
}

#[tokio::test]
async fn compliance_audits_merges_app_cannot() {
    let h = harness();
    let anon = h
        .post(
            "/v1/track",
            json!({"anonymousId": "a1", "event": "Product Viewed"}),
        )
        .await;
    let known = h.post("/v1/identify", json!({"userId": "u1"})).await;
    h.post("/v1/identify", json!({"userId": "u1", "anonymousId": "a1"}))
        .await;
    let audit = h
        .call(
            Method::GET,
            "/v1/audit/merges",
            Some(&h.compliance_key),
            None,
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{:?}", audit.body);
    let merges = audit.body["merges"].as_array().unwrap();
    assert_eq!(merges.len(), 1);
    assert_eq!(merges[0]["merged"], anon.body["subject_id"]);
    assert_eq!(merges[0]["into"], known.body["subject_id"]);
    assert_eq!(merges[0]["n_events_moved"], 1);
    assert_problem(
        &h.get("/v1/audit/merges").await,
        403,
        "role_not_permitted",
        None,
    );
}

#[tokio::test]
async fn each_key_is_rate_limited_with_retry_after() {
    let mut h = harness();
    let config = ServerConfig {
        rate_limit: crate::RateLimit {
            per_second: 0.5,
            burst: 2.0,
        },
        ..ServerConfig::default()
    };
    h.state = AppState::new(h.state.engine().clone(), config);
    assert_eq!(h.get("/v1/purposes").await.status, StatusCode::OK);
    assert_eq!(h.get("/v1/purposes").await.status, StatusCode::OK);
    let mut req = Request::builder().uri("/v1/purposes");
    req = req.header(header::AUTHORIZATION, format!("Bearer {}", h.app_key));
    let response = router(h.state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    let other = h
        .call(Method::GET, "/v1/purposes", Some(&h.compliance_key), None)
        .await;
    assert_eq!(other.status, StatusCode::OK, "another key is not affected");
    let limited = h.get("/v1/purposes").await;
    assert_problem(&limited, 429, "rate_limited", None);
}

#[tokio::test]
async fn flags_of_unknown_erased_or_foreign_subjects_are_not_found() {
    let h = harness();
    let created = h.post("/v1/identify", json!({"userId": "u1"})).await;
    let id = created.body["subject_id"].as_str().unwrap().to_owned();
    let flags = |id: String, key: String| {
        let h = &h;
        async move {
            h.call(
                Method::GET,
                &format!("/v1/subjects/{id}/flags"),
                Some(&key),
                None,
            )
            .await
        }
    };
    let known = flags(id.clone(), h.compliance_key.clone()).await;
    assert_eq!(known.status, StatusCode::OK, "{:?}", known.body);
    assert_eq!(known.body["restricted"], false);

    let unknown = flags(
        "1b4e28ba-2fa1-41d2-883f-0016d3cca427".to_owned(),
        h.compliance_key.clone(),
    )
    .await;
    assert_problem(&unknown, 404, "subject_not_found", None);

    // The same id through another tenant's key.
    let other = h
        .state
        .engine()
        .create_api_key(&"other".parse().unwrap(), &"compliance".parse().unwrap())
        .unwrap();
    let foreign = flags(id.clone(), other.secret.expose().to_owned()).await;
    assert_problem(&foreign, 404, "subject_not_found", None);
    // Setting flags on a foreign id is refused the same way and changes nothing.
    let set = h
        .call(
            Method::PUT,
            &format!("/v1/subjects/{id}/flags"),
            Some(other.secret.expose()),
            Some((
                "application/json",
                json!({"restricted": true}).to_string().into_bytes(),
            )),
        )
        .await;
    assert_problem(&set, 404, "subject_not_found", None);
    let still = flags(id.clone(), h.compliance_key.clone()).await;
    assert_eq!(still.body["restricted"], false);

    // Erased without anything kept: gone.
    let erased = h
        .call(
            Method::POST,
            &format!("/v1/subjects/{id}/erasure"),
            Some(&h.compliance_key),
            Some(("application/json", b"{}".to_vec())),
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{:?}", erased.body);
    let gone = flags(id, h.compliance_key.clone()).await;
    assert_problem(&gone, 404, "subject_not_found", None);
}

#[test]
fn every_route_says_which_operation_it_needs_or_that_it_needs_none() {
    use crate::routes::roles::{NEEDS, OPEN};
    let mut listed: Vec<(&str, &str)> = NEEDS
        .iter()
        .map(|(m, p, _)| (*m, *p))
        .chain(OPEN.iter().copied())
        .collect();
    let mut routed: Vec<(&str, &str)> = ROUTES.iter().map(|(m, p, _)| (*m, *p)).collect();
    listed.sort();
    routed.sort();
    assert_eq!(listed, routed);
}

/// A key whose role may not use a route gets 403 naming the roles that may, before its body,
/// query or path is looked at: malformed everything still answers 403, never 400, 415 or 422.
#[tokio::test]
async fn a_wrong_role_is_refused_before_any_validation_and_told_the_role_needed() {
    use crate::routes::roles::NEEDS;
    let h = harness();
    let engine = h.state.engine();
    let tenant = TenantId::default_tenant();
    let support = engine
        .create_api_key(&tenant, &"support".parse().unwrap())
        .unwrap();
    let keys = [
        ("app", h.app_key.clone()),
        ("compliance", h.compliance_key.clone()),
        ("support", support.secret.expose().to_owned()),
    ];
    let policies = engine.policies();
    let mut n_checked = 0;
    for (method, path, op) in NEEDS {
        let may: Vec<&str> = policies
            .roles()
            .iter()
            .filter(|r| r.may(*op))
            .map(|r| r.name.as_str())
            .collect();
        let uri = format!(
            "{}?purpose=%ZZ&limit=-1&limit=2",
            path.replace("{subject_id}", "not-a-uuid")
        );
        for (role, key) in &keys {
            if may.contains(role) {
                continue;
            }
            let answer = h
                .call(
                    method.parse().unwrap(),
                    &uri,
                    Some(key),
                    Some(("text/plain", b"{\"broken\": ".to_vec())),
                )
                .await;
            assert_problem(&answer, 403, "role_not_permitted", None);
            let detail = answer.body["detail"].as_str().unwrap();
            for needed in &may {
                assert!(detail.contains(&format!("`{needed}`")), "{path}: {detail}");
            }
            assert!(detail.contains(&format!("this key has the `{role}` role")));
            assert!(!detail.contains(op.as_str()), "internal name in {detail:?}");
            n_checked += 1;
        }
    }
    assert!(n_checked >= NEEDS.len(), "{n_checked}");
    assert_eq!(h.n_subjects(), 0);
}

#[tokio::test]
async fn posts_whose_fields_are_all_optional_take_no_body() {
    let h = harness();
    let created = h.post("/v1/identify", json!({"userId": "u1"})).await;
    let id = created.body["subject_id"].as_str().unwrap().to_owned();
    let key = Some(h.compliance_key.as_str());
    // No body and no content type: `{}`, which changes no flag.
    let flags = h
        .call(Method::PUT, &format!("/v1/subjects/{id}/flags"), key, None)
        .await;
    assert_eq!(flags.status, StatusCode::OK, "{:?}", flags.body);
    assert_eq!(flags.body["restricted"], false);
    // A body that is not JSON is still refused.
    let text = h
        .call(
            Method::POST,
            &format!("/v1/subjects/{id}/erasure"),
            key,
            Some(("text/plain", b"suppress".to_vec())),
        )
        .await;
    assert_problem(&text, 415, "unsupported_media_type", None);
    assert_eq!(h.n_subjects(), 1);
    let erased = h
        .call(
            Method::POST,
            &format!("/v1/subjects/{id}/erasure"),
            key,
            None,
        )
        .await;
    assert_eq!(erased.status, StatusCode::OK, "{:?}", erased.body);
    assert_eq!(erased.body["suppressed"], false);
    assert_eq!(h.n_subjects(), 0);
}

#[tokio::test]
async fn user_id_is_accepted_in_both_spellings_outside_ingest() {
    let h = harness();
    h.post("/v1/identify", json!({"userId": "u1"})).await;
    for name in ["user_id", "userId"] {
        let found = h
            .get(&format!("/v1/subjects?{name}=u1&purpose=customer_support"))
            .await;
        assert_eq!(found.status, StatusCode::OK, "{:?}", found.body);
        assert_eq!(found.body["subjects"].as_array().unwrap().len(), 1);
    }
    let both = h
        .get("/v1/subjects?user_id=u1&userId=u1&purpose=customer_support")
        .await;
    assert_problem(&both, 422, "invalid_field", Some("email"));

    for name in ["user_id", "userId"] {
        let body = json!({name: "u1", "purpose": "marketing_email", "decision": "granted"});
        let recorded = h.post("/v1/consents", body).await;
        assert_eq!(recorded.status, StatusCode::CREATED, "{:?}", recorded.body);
    }
    let both = json!({"user_id": "u1", "userId": "u1", "purpose": "marketing_email", "decision": "granted"});
    assert_problem(
        &h.post("/v1/consents", both).await,
        422,
        "invalid_field",
        Some("/userId"),
    );

    // A data-subject request (the public route needs an outbox; its parser is what matters).
    let dsr =
        custodia_engine::DsrInput::from_json(&json!({"type": "access", "userId": "u1"})).unwrap();
    assert_eq!(
        dsr.user_id.map(|u| u.expose().clone()),
        Some("u1".to_owned())
    );

    let admin = h
        .state
        .engine()
        .create_api_key(&TenantId::default_tenant(), &"admin".parse().unwrap())
        .unwrap();
    let lifted = h
        .call(
            Method::POST,
            "/v1/admin/suppressions/lift",
            Some(admin.secret.expose()),
            Some((
                "application/json",
                json!({"userId": "u1"}).to_string().into_bytes(),
            )),
        )
        .await;
    assert_eq!(lifted.status, StatusCode::OK, "{:?}", lifted.body);
    assert_eq!(lifted.body["lifted"], false);
}

#[tokio::test]
async fn a_full_disk_answers_507_insufficient_storage_and_is_counted() {
    use axum::response::IntoResponse;
    let h = harness();
    let refused = h
        .state
        .run(|_| -> Result<(), custodia_engine::EngineError> {
            Err(custodia_engine::EngineError::Io {
                what: "log verifier key",
                source: std::io::Error::from(std::io::ErrorKind::StorageFull),
            })
        })
        .await
        .unwrap_err();
    let response = refused.into_response();
    assert_eq!(response.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/problem+json"
    );
    let body: Value =
        serde_json::from_slice(&to_bytes(response.into_body(), 1 << 16).await.unwrap()).unwrap();
    assert_eq!(body["code"], "insufficient_storage");
    assert_eq!(body["status"], 507);
    assert!(
        !body["detail"].as_str().unwrap().contains("verifier"),
        "the cause stays in the log: {body}"
    );
    let metrics = h.state.0.metrics.render(&[]);
    assert!(
        metrics.contains("\ncustodia_insufficient_storage_total 1\n"),
        "{metrics}"
    );
}

/// Found by schemathesis: `to=0001-01-01T00:00:00Z` echoed a default `from` in the year 0, which
/// date-time parsers refuse. The default now stops at the year 1, and a time before it is refused.
#[tokio::test]
async fn the_kpi_period_stays_within_the_years_rfc_3339_clients_read() {
    let h = harness();
    let answer = h.get("/v1/analytics/kpis?to=0001-03-01T00:00:00Z").await;
    assert_eq!(answer.status, StatusCode::OK, "{:?}", answer.body);
    assert_eq!(answer.body["period"]["from"], "0001-01-01T00:00:00Z");
    // The default period would be empty: refused like any empty period.
    let answer = h.get("/v1/analytics/kpis?to=0001-01-01T00:00:00Z").await;
    assert_problem(&answer, 422, "invalid_field", Some("from"));
    let answer = h.get("/v1/analytics/kpis?from=0000-06-01T00:00:00Z").await;
    assert_problem(&answer, 422, "invalid_field", Some("from"));
}
