//! Data-subject requests end to end through the outbox: identical answers for known and unknown
//! people, five wrong codes lock, the token reads only its own request, the export holds every
//! Art. 15 item and its consent proofs verify offline with the CLI, and an erasure request leaves
//! no trace a look-up could find.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, Site};

/// The message the outbox directory holds for a request.
fn outbox_code(site: &Site, request_id: &str) -> String {
    let path = site
        .dir
        .path()
        .join("outbox")
        .join(format!("{request_id}-dsr_verification.json"));
    let text = std::fs::read_to_string(&path).expect("the code is in the outbox");
    let message: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(message["kind"], "dsr_verification");
    assert_eq!(message["request_id"], request_id);
    message["code"].as_str().unwrap().to_owned()
}

fn submit(server: &Server, body: Value) -> (u16, Value) {
    let answer = server.post("none", "/v1/dsr", &body);
    (answer.status, answer.body)
}

fn verify(server: &Server, id: &str, code: &str) -> crate::harness::Answer {
    server.post(
        "none",
        &format!("/v1/dsr/{id}/verify"),
        &json!({"code": code}),
    )
}

#[test]
fn requests_are_verified_by_code_and_answered_completely() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let created = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "d1", "traits": {"email": "dana@example.com", "name": "Dana"}}),
    );
    assert_eq!(created.status, 200);
    let consent = server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "d1", "purpose": "marketing_email", "decision": "granted", "source": {"channel": "web"}}),
    );
    assert_eq!(consent.status, 201);

    // Known and unknown: the same status and body shape.
    let (s1, known) = submit(
        &server,
        json!({"type": "access", "email": "dana@example.com"}),
    );
    let (s2, unknown) = submit(
        &server,
        json!({"type": "access", "email": "ghost@example.com"}),
    );
    assert_eq!((s1, s2), (202, 202));
    let shape = |v: &Value| {
        let mut keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        (
            keys,
            v["status"].clone(),
            v["request_id"].as_str().unwrap().len(),
        )
    };
    assert_eq!(shape(&known), shape(&unknown));
    let known_id = known["request_id"].as_str().unwrap().to_owned();
    let unknown_id = unknown["request_id"].as_str().unwrap().to_owned();

    // The code never reaches the log.
    let code = outbox_code(&site, &known_id);
    let verified = verify(&server, &known_id, &code);
    assert_eq!(verified.status, 200, "{:?}", verified.body);
    let token = verified.body["access_token"].as_str().unwrap().to_owned();
    let unknown_done = verify(&server, &unknown_id, &outbox_code(&site, &unknown_id));
    assert_eq!(unknown_done.body["outcome"]["result"], "no_data_held");
    let other_token = unknown_done.body["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The token reads its own request only.
    let status = server.get(&token, &format!("/v1/dsr/{known_id}"));
    assert_eq!(status.status, 200);
    assert_eq!(status.body["status"], "completed");
    assert!(status.body["deadline"].is_string());
    assert_eq!(
        server
            .get(&other_token, &format!("/v1/dsr/{known_id}"))
            .status,
        401
    );

    // The export walks Art. 15(1)(a)-(h) and carries the consent history with proofs.
    let export = server.get(&token, &format!("/v1/dsr/{known_id}/export"));
    assert_eq!(export.status, 200, "{:?}", export.body);
    let bundle = &export.body;
    assert_eq!(bundle["data"]["traits"]["name"], "Dana");
    for item in [
        "purposes",                  // (a)
        "categories",                // (b)
        "recipients",                // (c)
        "retention",                 // (d)
        "rights",                    // (e), (f)
        "supervisory_authority",     // (f)
        "source",                    // (g)
        "automated_decision_making", // (h)
    ] {
        assert!(!bundle[item].is_null(), "export lacks {item}");
    }
    assert!(bundle["categories"][0]["retention_days"].is_number());
    let history = &bundle["consent_history"];
    let entries = history["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    let work = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let checkpoint = write("checkpoint", history["checkpoint"].as_str().unwrap());
    let key = history["public_key"].as_str().unwrap().to_owned();
    for (i, entry) in entries.iter().enumerate() {
        let proof = write(&format!("entry-{i}.json"), &entry.to_string());
        site.cli_ok(&[
            "ledger",
            "verify-proof",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--verifier-key",
            &key,
            "--proof",
            proof.to_str().unwrap(),
        ]);
    }
    // The export is in the access log.
    let audit = server.get(&compliance, "/v1/audit/access?limit=1000");
    assert!(
        audit.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["attributes"]["what"] == "dsr_export"),
        "{:?}",
        audit.body
    );

    // Five wrong codes lock a request; the right one then fails too.
    let (_, locked) = submit(&server, json!({"type": "erasure", "user_id": "d1"}));
    let locked_id = locked["request_id"].as_str().unwrap().to_owned();
    let right = outbox_code(&site, &locked_id);
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let statuses: Vec<u16> = (0..5)
        .map(|_| verify(&server, &locked_id, wrong).status)
        .collect();
    assert_eq!(statuses, vec![422, 422, 422, 422, 409]);
    assert_eq!(verify(&server, &locked_id, &right).status, 409);

    // An erasure request, verified: nothing of Dana is found afterwards.
    let (_, erase) = submit(
        &server,
        json!({"type": "erasure", "email": "dana@example.com", "details": {"suppress": true}}),
    );
    let erase_id = erase["request_id"].as_str().unwrap().to_owned();
    let done = verify(&server, &erase_id, &outbox_code(&site, &erase_id));
    assert_eq!(done.body["outcome"]["result"], "erased", "{:?}", done.body);
    let look = server.get(
        &app,
        "/v1/subjects?email=dana@example.com&purpose=customer_support",
    );
    assert_eq!(look.body["subjects"], json!([]));
    std::thread::sleep(Duration::from_millis(600));
    let found = server.get(&app, "/v1/search?q=dana&purpose=customer_support");
    assert_eq!(found.body["hits"], json!([]));

    // A requester may ask a few times, not endlessly.
    let repeated: Vec<u16> = (0..3)
        .map(|_| {
            submit(
                &server,
                json!({"type": "access", "email": "ghost@example.com"}),
            )
            .0
        })
        .collect();
    assert_eq!(repeated, vec![202, 202, 429]);

    // The compliance queue lists every request with its deadline.
    let queue = server.get(&compliance, "/v1/dsr");
    assert_eq!(queue.status, 200);
    assert_eq!(queue.body["requests"].as_array().unwrap().len(), 6);
    assert_eq!(server.stop().code(), Some(0));
    // Codes never reach the server log.
    let log = std::fs::read_to_string(site.log_path()).unwrap();
    assert!(!log.contains(&code) && !log.contains("dana@example.com"));
    assert!(Path::new(&site.data_dir()).exists());
    assert!(site.verify_ledger(&[]).status.success());
}
