//! P5: bad input gets a clear 4xx problem+json naming the field, and changes nothing.

use serde_json::{Value, json};

use crate::harness::Site;

/// One refused request: method, path, content type, body, and the expected status, code and field.
struct Case {
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

fn case(
    method: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: &[u8],
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
) -> Case {
    Case {
        method,
        path,
        content_type,
        body: body.to_vec(),
        status,
        code,
        field,
    }
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&["--max-body-bytes", "2048"]);
    let big = json!({"userId": "big", "traits": {"blob": "x".repeat(4096)}}).to_string();
    let cases = vec![
        case("POST", "/v1/identify", "application/json", b"{\"userId\": \"bad-1\",", 400, "malformed_json", None),
        case("POST", "/v1/identify", "text/plain", br#"{"userId": "bad-2"}"#, 415, "unsupported_media_type", None),
        case("POST", "/v1/identify", "application/json", big.as_bytes(), 413, "payload_too_large", None),
        case("POST", "/v1/identify", "application/json", br#"{"userId": "bad-3", "traits": {"email": "not an email"}}"#, 422, "invalid_field", Some("/traits/email")),
        case("POST", "/v1/identify", "application/json", br#"{"userId": "bad-4", "trait": {}}"#, 422, "invalid_field", Some("/trait")),
        case("POST", "/v1/track", "application/json", br#"{"userId": "bad-5", "event": "NPS Answered", "properties": {"score": 11}}"#, 422, "invalid_field", Some("/properties/score")),
        case("POST", "/v1/batch", "application/json", br#"{"batch": [{"type": "identify", "userId": "bad-6"}, {"type": "track", "userId": "bad-6"}]}"#, 422, "invalid_field", Some("/batch/1/event")),
        case("PATCH", "/v1/subjects/not-an-id", "application/json", br#"{"traits": {}}"#, 400, "invalid_id", Some("subject_id")),
    ];
    for Case {
        method,
        path,
        content_type,
        body,
        status,
        code,
        field,
    } in cases
    {
        let answer = server.send(&key, method, path, content_type, &body);
        assert_eq!(answer.status, status, "{method} {path}: {:?}", answer.body);
        assert_eq!(
            answer.content_type, "application/problem+json",
            "{method} {path}"
        );
        assert_eq!(answer.body["code"], code, "{method} {path}");
        assert_eq!(answer.body["field"].as_str(), field, "{method} {path}");
    }
    for user in ["bad-1", "bad-2", "big", "bad-3", "bad-4", "bad-5", "bad-6"] {
        let found = server.get(
            &key,
            &format!("/v1/subjects?user_id={user}&purpose=order_fulfillment"),
        );
        assert_eq!(
            found.body["subjects"],
            Value::Array(vec![]),
            "{user} was written by a refused request"
        );
    }
    let no_key = server.get("nope", "/v1/purposes");
    assert_eq!(no_key.status, 401);
    assert_eq!(no_key.body["code"], "unauthenticated");
}
