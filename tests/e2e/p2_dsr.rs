//! Data-subject requests end to end through the outbox: identical answers for known and unknown
//! people, five wrong codes lock, the token reads only its own request, the export holds every
//! Art. 15 item and its consent proofs verify offline with the CLI, and an erasure request leaves
//! no trace a look-up could find.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, Site};

/// The message the outbox directory holds for a request.
pub(crate) fn outbox_code(site: &Site, request_id: &str) -> String {
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

/// An erasure request for a customer with an order: the invoice is kept for accounting, and
/// otherwise the person is gone. Every other purpose answers 404 as after a plain erasure (never
/// "the subject restricted processing"), the accounting read holds only the kept order, and no
/// consent still says granted: each was ended by a ledger entry naming the erasure.
#[test]
fn an_erasure_that_keeps_an_invoice_leaves_nothing_else_visible() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let admin = site.create_key("admin");
    let server = site.serve(&[]);
    let created = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "k1", "traits": {"email": "kim@example.com", "name": "Kim", "shoe_size": 41}}),
    );
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.body["subject_id"].as_str().unwrap().to_owned();
    for event in [
        json!({"userId": "k1", "event": "Order Completed", "properties": {"order_id": "O-9", "total": 30, "currency": "EUR"}}),
        json!({"userId": "k1", "event": "Product Viewed", "properties": {"sku": "s-1"}}),
    ] {
        assert_eq!(server.post(&app, "/v1/track", &event).status, 200);
    }
    for purpose in ["marketing_email", "personalization"] {
        let consent = server.post(
            &app,
            "/v1/consents",
            &json!({"user_id": "k1", "purpose": purpose, "decision": "granted"}),
        );
        assert_eq!(consent.status, 201, "{:?}", consent.body);
    }

    let (status, submitted) = submit(
        &server,
        json!({"type": "erasure", "email": "kim@example.com"}),
    );
    assert_eq!(status, 202);
    let request_id = submitted["request_id"].as_str().unwrap().to_owned();
    let done = verify(&server, &request_id, &outbox_code(&site, &request_id));
    let erasure = &done.body["outcome"]["erasure"];
    assert_eq!(done.body["outcome"]["result"], "erased", "{:?}", done.body);
    assert_eq!(erasure["kept"][0]["category"], "purchases");
    assert_eq!(erasure["kept"][0]["purpose"], "accounting");

    // Every purpose but the keeping one: gone, exactly as after a plain erasure.
    let purposes = server.get(&admin, "/v1/purposes");
    let purposes = purposes.body["purposes"].as_array().unwrap().clone();
    assert_eq!(purposes.len(), 8);
    for purpose in &purposes {
        let purpose = purpose["id"].as_str().unwrap();
        let profile = server.get(&admin, &format!("/v1/subjects/{id}?purpose={purpose}"));
        let events = server.get(
            &admin,
            &format!("/v1/subjects/{id}/events?purpose={purpose}"),
        );
        if purpose == "accounting" {
            assert_eq!(profile.status, 200, "{:?}", profile.body);
            assert_eq!(profile.body["traits"], json!({}));
            assert_eq!(profile.body["categories"], json!(["purchases"]));
            assert_eq!(events.status, 200);
            let names: Vec<&str> = events.body["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["event"].as_str().unwrap())
                .collect();
            assert_eq!(names, vec!["Order Completed"]);
        } else {
            for answer in [&profile, &events] {
                assert_eq!(answer.status, 404, "{purpose}: {:?}", answer.body);
                assert_eq!(answer.body["code"], "subject_not_found");
                let detail = answer.body["detail"].as_str().unwrap();
                assert!(!detail.contains("restrict"), "{detail}");
            }
        }
    }

    // No consent state says granted, and each withdrawal names the erasure as its cause.
    let consents = server.get(&compliance, &format!("/v1/subjects/{id}/consents"));
    assert_eq!(consents.status, 200, "{:?}", consents.body);
    for row in consents.body["purposes"].as_array().unwrap() {
        assert_ne!(row["state"], "granted", "{row}");
    }
    let entries = server.get(&compliance, "/v1/ledger/entries?from=0&limit=100");
    assert_eq!(entries.status, 200, "{:?}", entries.body);
    let withdrawals: Vec<&Value> = entries.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "consent.withdrawn")
        .collect();
    assert_eq!(withdrawals.len(), 2);
    for w in withdrawals {
        assert_eq!(w["attributes"]["cause"], "erasure");
        assert_eq!(w["attributes"]["request_id"], request_id.as_str());
    }
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn a_person_extends_and_carries_out_a_free_text_rectification_with_reasons_sealed_on_disk() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let created = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "r1", "traits": {"email": "remi@example.com", "lastName": "Dupont"}}),
    );
    assert_eq!(created.status, 200);
    let (status, received) = submit(
        &server,
        json!({"type": "rectification", "email": "remi@example.com",
               "details": "My surname is Dupond with a d, not Dupont"}),
    );
    assert_eq!(status, 202);
    let id = received["request_id"].as_str().unwrap().to_owned();
    let verified = verify(&server, &id, &outbox_code(&site, &id));
    assert_eq!(verified.body["status"], "awaiting_compliance");
    let token = verified.body["access_token"].as_str().unwrap().to_owned();

    // The case file: a read for a purpose, by the compliance role only.
    let case_path = format!("/v1/dsr/{id}/case");
    let no_purpose = server.get(&compliance, &case_path);
    assert_eq!(
        (no_purpose.status, no_purpose.body["field"].as_str()),
        (400, Some("purpose"))
    );
    assert_eq!(
        server
            .get(&app, &format!("{case_path}?purpose=customer_support"))
            .status,
        403
    );
    let unknown = server.get(
        &compliance,
        "/v1/dsr/00000000000000000000000000000000/case?purpose=customer_support",
    );
    assert_eq!(
        (unknown.status, unknown.body["code"].as_str()),
        (404, Some("not_found"))
    );
    let case = server.get(
        &compliance,
        &format!("{case_path}?purpose=customer_support"),
    );
    assert_eq!(case.status, 200, "{:?}", case.body);
    assert_eq!(
        case.body["note"],
        "My surname is Dupond with a d, not Dupont"
    );
    assert_eq!(case.body["requester"]["email"], "remi@example.com");
    assert_eq!(case.body["timeline"].as_array().unwrap().len(), 3);

    // Bad decisions name the field and change nothing.
    let extend = format!("/v1/dsr/{id}/extend");
    let too_long = server.post(&compliance, &extend, &json!({"months": 3, "reason": "x"}));
    assert_eq!(
        (too_long.status, too_long.body["field"].as_str()),
        (422, Some("/months"))
    );
    let no_reason = server.post(&compliance, &format!("/v1/dsr/{id}/reject"), &json!({}));
    assert_eq!(
        (no_reason.status, no_reason.body["field"].as_str()),
        (422, Some("/reason"))
    );
    let by_app = server.post(&app, &extend, &json!({"months": 1, "reason": "x"}));
    assert_eq!(by_app.status, 403);

    let extended = server.post(
        &compliance,
        &extend,
        &json!({"months": 1, "reason": "Waiting for the civil registry copy Canary-Reason-7731"}),
    );
    assert_eq!(extended.status, 200, "{:?}", extended.body);
    assert_ne!(extended.body["deadline"], verified.body["deadline"]);
    let done = server.post(
        &compliance,
        &format!("/v1/dsr/{id}/carry-out"),
        &json!({"reason": "Civil registry copy received Canary-Reason-8842",
                "traits": {"lastName": "Dupond"}}),
    );
    assert_eq!(done.status, 200, "{:?}", done.body);
    assert_eq!(done.body["status"], "completed");
    let again = server.post(
        &compliance,
        &format!("/v1/dsr/{id}/reject"),
        &json!({"reason": "x"}),
    );
    assert_eq!(again.status, 409);

    // The requester reads both decisions and their reasons.
    let seen = server.get(&token, &format!("/v1/dsr/{id}"));
    let notices = seen.body["notices"].as_array().unwrap().clone();
    let kinds: Vec<&str> = notices
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["extended", "carried_out"]);
    assert!(
        notices[1]["reason"]
            .as_str()
            .unwrap()
            .contains("Canary-Reason-8842")
    );
    let profile = server.get(&app, "/v1/subjects?user_id=r1&purpose=customer_support");
    assert_eq!(profile.body["subjects"][0]["traits"]["lastName"], "Dupond");
    let case = server.get(
        &compliance,
        &format!("{case_path}?purpose=customer_support"),
    );
    let kinds: Vec<&str> = case.body["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "dsr.received",
            "dsr.verified",
            "dsr.awaiting_compliance",
            "dsr.extended",
            "dsr.completed"
        ]
    );

    // Nowhere on disk in the clear: not the reasons, not the note.
    server.stop();
    let (hits, scanned) = site.plaintext_hits(&[
        "Canary-Reason-7731",
        "Canary-Reason-8842",
        "Dupond with a d",
    ]);
    assert!(scanned > 0);
    assert!(hits.is_empty(), "{hits:?}");
}
