//! P2: erasure reaches backups. Over HTTP, then against copies of the data directory and the key
//! store taken before the erasure: a restored data backup served with the live key store cannot
//! give the erased subject back while everyone else restores fine; after a root-key rotation, a
//! key-store copy from before the erasure opens nothing with the new root key; and the live system
//! still serves every subject that was not erased.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::{Server, Site};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn identify(server: &Server, key: &str, user: &str, email: &str) -> String {
    let answer = server.post(
        key,
        "/v1/identify",
        &json!({"userId": user, "traits": {"email": email, "name": format!("Name of {user}")}}),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["subject_id"].as_str().unwrap().to_owned()
}

fn profile_status(server: &Server, key: &str, id: &str) -> u16 {
    server
        .get(key, &format!("/v1/subjects/{id}?purpose=customer_support"))
        .status
}

fn find_by_email(server: &Server, key: &str, email: &str) -> usize {
    let found = server.get(
        key,
        &format!("/v1/subjects?email={email}&purpose=customer_support"),
    );
    assert_eq!(found.status, 200, "{:?}", found.body);
    found.body["subjects"].as_array().unwrap().len()
}

/// Waits (up to 30 s) until `/metrics` reports no pending search purge.
fn assert_purges_drain(server: &Server, key: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let metrics = server.get(key, "/metrics");
        let text = metrics.body.as_str().unwrap_or_default().to_owned();
        let pending = text
            .lines()
            .find_map(|line| line.strip_prefix("custodia_search_purges_pending "))
            .map(str::to_owned);
        assert!(
            pending.is_some(),
            "no custodia_search_purges_pending in {text}"
        );
        if pending.as_deref() == Some("0") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "search purges still pending: {pending:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `custodia serve` over another data directory and key store, with a given root key.
fn serve_with(site: &Site, data: &Path, keys: &Path, master_key: &str) -> Command {
    let mut cmd = site.command(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().unwrap(),
        "--keys-dir",
        keys.to_str().unwrap(),
    ]);
    cmd.env("CUSTODIA_MASTER_KEY", master_key);
    cmd
}

#[test]
fn erasure_reaches_data_backups_and_rotation_reaches_key_store_backups() {
    let site = Site::new();
    let app = site.create_key("app");
    let admin = site.create_key("admin");
    let server = site.serve(&[]);
    let jane = identify(&server, &app, "jane-1", "jane.erased@example.com");
    let john = identify(&server, &app, "john-1", "john.kept@example.com");
    let track = server.post(
        &app,
        "/v1/track",
        &json!({"userId": "jane-1", "event": "Product Viewed", "properties": {"sku": "canary-sku"}}),
    );
    assert_eq!(track.status, 200);
    assert_eq!(server.stop().code(), Some(0));

    // Backups taken before the erasure.
    let data_backup = site.dir.path().join("backup-data");
    let keys_backup = site.dir.path().join("backup-keys");
    copy_dir(&site.data_dir(), &data_backup);
    copy_dir(&site.keys_dir(), &keys_backup);

    // Erase Jane, asking to be suppressed.
    let server = site.serve(&[]);
    let erased = server.post(
        &admin,
        &format!("/v1/subjects/{jane}/erasure"),
        &json!({"suppress": true, "request_id": "dsr-1"}),
    );
    assert_eq!(erased.status, 200, "{:?}", erased.body);
    assert_eq!(erased.body["key_destroyed"], true);
    assert_eq!(erased.body["suppressed"], true);
    assert!(erased.body["kept"].as_array().unwrap().is_empty());
    assert_eq!(profile_status(&server, &app, &jane), 404);
    assert_eq!(find_by_email(&server, &app, "jane.erased@example.com"), 0);
    assert_eq!(profile_status(&server, &app, &john), 200);
    // The indexer compacts her search document's segments away in the background.
    assert_purges_drain(&server, &admin);
    // Suppressed: her userId is refused and nothing is stored.
    let again = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "jane-1", "traits": {}}),
    );
    assert_eq!(again.status, 409);
    assert_eq!(again.body["code"], "subject_suppressed");
    // The receipt is in the ledger.
    let entries = server.get(&admin, "/v1/ledger/entries?from=0&limit=1000");
    let receipt = entries.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "erasure.completed")
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(receipt["attributes"]["request_id"], "dsr-1");
    assert_eq!(server.stop().code(), Some(0));
    let verified = site.verify_ledger(&[]);
    assert!(verified.status.success(), "the ledger still verifies");

    // (1) The old data copy with the live key store: Jane is gone, John restores.
    let restored = site.spawn_server(serve_with(
        &site,
        &data_backup,
        &site.keys_dir(),
        &site.master_key,
    ));
    assert_eq!(profile_status(&restored, &app, &jane), 404);
    assert_eq!(find_by_email(&restored, &app, "jane.erased@example.com"), 0);
    assert_eq!(profile_status(&restored, &app, &john), 200, "not vacuous");
    assert_eq!(restored.stop().code(), Some(0));

    // Rotate the root key (no server running).
    let rotated = site.run(&["keys", "rotate"]);
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let new_key = String::from_utf8(rotated.stdout).unwrap().trim().to_owned();
    assert_eq!(new_key.len(), 44, "a base64 key alone on stdout");
    assert_ne!(new_key, site.master_key);

    // (2) The old data copy with the old key-store copy and the new root key: nothing opens.
    let out = serve_with(&site, &data_backup, &keys_backup, &new_key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("root key"), "{stderr}");

    // (3) The live system with the new root key serves everyone who was not erased; the old root
    // key, retired, opens nothing.
    let live = site.spawn_server(serve_with(
        &site,
        &site.data_dir(),
        &site.keys_dir(),
        &new_key,
    ));
    assert_eq!(profile_status(&live, &app, &john), 200);
    assert_eq!(profile_status(&live, &app, &jane), 404);
    assert_eq!(live.stop().code(), Some(0));
    let old = serve_with(&site, &site.data_dir(), &site.keys_dir(), &site.master_key)
        .output()
        .unwrap();
    assert!(
        !old.status.success(),
        "the old root key opens nothing current"
    );
}

fn event_names(server: &Server, key: &str, id: &str, purpose: &str) -> Result<Vec<String>, u16> {
    let answer = server.get(key, &format!("/v1/subjects/{id}/events?purpose={purpose}"));
    if answer.status != 200 {
        return Err(answer.status);
    }
    Ok(answer.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_owned())
        .collect())
}

/// An erasure that keeps an invoice under a legal hold still destroys the data key: the kept
/// order is re-sealed under a hold key first. A data backup from before the erasure, restored
/// with the live key store, gives back neither the profile nor anything else of the subject.
#[test]
fn erasure_with_records_kept_reaches_data_backups_too() {
    let site = Site::new();
    let app = site.create_key("app");
    let admin = site.create_key("admin");
    let server = site.serve(&[]);
    let mia = identify(&server, &app, "mia-1", "mia.held@example.com");
    let john = identify(&server, &app, "john-1", "john.kept@example.com");
    for (event, properties) in [
        (
            "Order Completed",
            json!({"order_id": "held-order-1", "total": 25}),
        ),
        ("Product Viewed", json!({"sku": "canary-sku"})),
    ] {
        let track = server.post(
            &app,
            "/v1/track",
            &json!({"userId": "mia-1", "event": event, "properties": properties}),
        );
        assert_eq!(track.status, 200, "{:?}", track.body);
    }
    assert_eq!(server.stop().code(), Some(0));
    let data_backup = site.dir.path().join("backup-data");
    copy_dir(&site.data_dir(), &data_backup);

    let server = site.serve(&[]);
    let erased = server.post(&admin, &format!("/v1/subjects/{mia}/erasure"), &json!({}));
    assert_eq!(erased.status, 200, "{:?}", erased.body);
    assert_eq!(erased.body["key_destroyed"], true);
    assert_eq!(erased.body["kept"][0]["category"], "purchases");
    assert_eq!(erased.body["kept"][0]["records"], 1);
    // Live: the order stays for accounting only.
    assert_eq!(
        event_names(&server, &admin, &mia, "accounting"),
        Ok(vec!["Order Completed".to_owned()])
    );
    assert!(event_names(&server, &admin, &mia, "customer_support").is_err());
    assert_eq!(find_by_email(&server, &app, "mia.held@example.com"), 0);
    assert_eq!(server.stop().code(), Some(0));

    // The old data copy with the live key store: nothing of Mia opens; the replay on start
    // removes the profile, the look-ups and every event sealed under her destroyed data key, and
    // restricts what is left (an empty shell) again.
    let restored = site.spawn_server(serve_with(
        &site,
        &data_backup,
        &site.keys_dir(),
        &site.master_key,
    ));
    assert_eq!(find_by_email(&restored, &app, "mia.held@example.com"), 0);
    assert_eq!(
        event_names(&restored, &admin, &mia, "accounting"),
        Ok(vec![])
    );
    assert!(event_names(&restored, &admin, &mia, "customer_support").is_err());
    let profile = restored.get(&admin, &format!("/v1/subjects/{mia}?purpose=accounting"));
    assert_eq!(profile.status, 200, "{:?}", profile.body);
    assert_eq!(profile.body["traits"], json!({}));
    assert_eq!(profile_status(&restored, &app, &john), 200, "not vacuous");
    assert_eq!(restored.stop().code(), Some(0));
}

#[test]
fn restriction_objection_and_retention_over_http_and_cli() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let jane = identify(&server, &app, "jane-2", "jane2@example.com");

    let put = |body: Value| {
        server.send(
            &compliance,
            "PUT",
            &format!("/v1/subjects/{jane}/flags"),
            "application/json",
            body.to_string().as_bytes(),
        )
    };
    let read = |purpose: &str| {
        server
            .get(&app, &format!("/v1/subjects/{jane}?purpose={purpose}"))
            .body["code"]
            .clone()
    };
    assert_eq!(put(json!({"objected": true})).status, 200);
    assert_eq!(read("fraud_prevention"), "objection_recorded");
    assert_eq!(put(json!({"restricted": true})).status, 200);
    assert_eq!(read("customer_support"), "processing_restricted");
    let flags = put(json!({"restricted": false, "objected": false}));
    assert_eq!(flags.body["restricted"], false);
    assert_eq!(read("customer_support"), Value::Null);
    // Bad input names the field and changes nothing.
    let bad = put(json!({"restricted": "yes"}));
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["field"], "/restricted");
    // The app role may not.
    let refused = server.send(
        &app,
        "PUT",
        &format!("/v1/subjects/{jane}/flags"),
        "application/json",
        b"{\"restricted\": true}",
    );
    assert_eq!(refused.status, 403);
    // A sweep over HTTP touches nothing that is within its retention.
    let swept = server.post(&compliance, "/v1/admin/retention/run", &json!({}));
    assert_eq!(swept.status, 200, "{:?}", swept.body);
    assert_eq!(swept.body["profiles_erased"], 0);
    assert_eq!(server.stop().code(), Some(0));

    // The CLI sweep runs offline and prints one report per tenant.
    let out = site.run(&["retention", "run"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["tenant"], "default");
    assert_eq!(report["subjects_scanned"], 1);
}
