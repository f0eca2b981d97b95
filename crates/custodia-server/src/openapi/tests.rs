//! The document's schemas come from types: every JSON answer and every body has one, every
//! reference resolves, and every documented example is a value of its body type.

use serde_json::Value;

use super::{all_ops, openapi_document, request_schema, success_media, success_schema};

#[test]
fn every_json_answer_and_every_body_has_a_schema_from_a_type() {
    for op in all_ops() {
        let json = success_media(op).contains(&"application/json");
        for (status, _) in op.responses.iter().filter(|(s, _)| s.starts_with('2')) {
            assert_eq!(
                success_schema(op, status).is_some(),
                json,
                "{} {} {status}",
                op.method,
                op.path
            );
        }
        assert_eq!(
            op.body.is_some(),
            request_schema(op).is_some(),
            "{} {}: a body needs a schema, a schema a body",
            op.method,
            op.path
        );
    }
}

#[test]
fn every_documented_example_is_a_value_of_its_body_type() {
    for op in all_ops() {
        let (Some(example), Some(body)) = (op.body, request_schema(op)) else {
            continue;
        };
        let read = body
            .read
            .expect("request bodies are read with `body::<T>()`");
        if let Err(e) = read(&example()) {
            panic!(
                "{} {}: the example is not a {}: {e}",
                op.method,
                op.path,
                (body.name)()
            );
        }
    }
}

#[test]
fn a_body_type_refuses_what_its_parser_refuses() {
    let consent = request_schema(all_ops().find(|op| op.path == "/v1/consents").unwrap())
        .unwrap()
        .read
        .unwrap();
    let mut body =
        serde_json::json!({"user_id": "u-1", "purpose": "analytics", "decision": "granted"});
    assert!(consent(&body).is_ok());
    body["decision"] = "maybe".into();
    assert!(consent(&body).is_err());
    body["decision"] = "granted".into();
    body["colour"] = "blue".into();
    assert!(consent(&body).is_err(), "unknown fields are refused");
}

fn references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                out.push(target.clone());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

#[test]
fn every_schema_reference_resolves() {
    let doc = openapi_document();
    let mut targets = Vec::new();
    references(&doc, &mut targets);
    assert!(targets.len() > 50, "{} references", targets.len());
    for target in targets {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{target}"));
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "{target} is not in components"
        );
    }
}
