//! P4: every read of personal data is in a tamper-evident access log — who (key id, role), whose
//! data (pseudonym), for which purpose, what, when, with what result — readable by compliance,
//! verifiable offline, and a flipped byte in it is caught.

use serde_json::json;

use crate::harness::Site;

#[test]
fn reads_are_logged_and_the_log_verifies() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let created = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "r1", "traits": {"email": "r1@example.com"}}),
    );
    let subject = created.body["subject_id"].as_str().unwrap().to_owned();

    assert_eq!(
        server
            .get(
                &app,
                &format!("/v1/subjects/{subject}?purpose=customer_support")
            )
            .status,
        200
    );
    assert_eq!(
        server
            .get(
                &app,
                "/v1/subjects?email=r1@example.com&purpose=order_fulfillment"
            )
            .status,
        200
    );
    assert_eq!(
        server
            .get(
                &app,
                &format!("/v1/subjects/{subject}?purpose=marketing_email")
            )
            .status,
        403
    );

    let log = server.get(
        &compliance,
        &format!("/v1/audit/access?subject_id={subject}"),
    );
    assert_eq!(log.status, 200, "{:?}", log.body);
    let entries = log.body["entries"].as_array().unwrap();
    let summary: Vec<(String, String, String)> = entries
        .iter()
        .map(|e| {
            (
                e["purpose"].as_str().unwrap().to_owned(),
                e["attributes"]["what"].as_str().unwrap().to_owned(),
                e["attributes"]["result"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "customer_support".to_owned(),
                "profile".to_owned(),
                "allowed".to_owned()
            ),
            (
                "order_fulfillment".to_owned(),
                "lookup".to_owned(),
                "allowed".to_owned()
            ),
            (
                "marketing_email".to_owned(),
                "refused".to_owned(),
                "refused:consent_required".to_owned()
            ),
        ]
    );
    let key_id = app.split('_').nth(1).unwrap();
    assert!(
        entries
            .iter()
            .all(|e| e["attributes"]["key_id"] == key_id && e["attributes"]["role"] == "app")
    );
    assert!(
        !log.body.to_string().contains("r1@example.com"),
        "the log holds no personal data"
    );
    assert_eq!(
        server.get(&app, "/v1/audit/access").status,
        403,
        "the app role cannot read the access log"
    );
    let note = server.get(&compliance, "/v1/audit/access/checkpoint");
    assert!(
        note.body
            .as_str()
            .unwrap()
            .starts_with("custodia.local/default/audit\n")
    );
    assert!(server.stop().success());

    let out = site.verify_audit();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries_file = site
        .data_dir()
        .join("audit")
        .join("default")
        .join("entries");
    let mut bytes = std::fs::read(&entries_file).unwrap();
    let at = bytes.len() - 3;
    bytes[at] ^= 1;
    std::fs::write(&entries_file, bytes).unwrap();
    let out = site.verify_audit();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("entry"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
