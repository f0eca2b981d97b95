//! The official Python and Node SDKs of Segment and RudderStack, as shipped, against the real
//! binary: Basic auth, batching, gzip, every call type, a retried message; everything read back
//! through the API exactly once. The SDKs live in a venv and in `tests/sdk/node/node_modules`,
//! both made by `tests/sdk/setup.sh`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Server, Site, output_within, repo_root, target_dir};

/// The venv's Python, or a failure that says how to make it.
fn venv_python() -> PathBuf {
    let python = target_dir().join("sdk-venv").join("bin").join("python");
    assert!(
        python.exists(),
        "the SDK venv is missing at {}: run `bash tests/sdk/setup.sh` (with the same \
         CARGO_TARGET_DIR) to install segment-analytics-python and rudder-sdk-python",
        python.display()
    );
    python
}

fn send(python: &PathBuf, sdk: &str, server: &Server, key: &str, prefix: &str) {
    let mut command = Command::new(python);
    command.arg(repo_root().join("tests/sdk/send.py"));
    run_sdk(command, sdk, server, key, prefix);
}

/// Runs an SDK script with its arguments: SDK, host, write key, id prefix.
fn run_sdk(mut command: Command, sdk: &str, server: &Server, key: &str, prefix: &str) {
    command.args([sdk, &server.base, key, prefix]);
    let out = output_within(
        &mut command,
        Duration::from_secs(180),
        &format!("the {sdk} SDK script"),
    );
    assert!(
        out.status.success(),
        "{sdk} SDK script failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `node` with the Node SDKs installed, or a failure that says how to install them.
fn node() -> Command {
    let modules = repo_root().join("tests/sdk/node/node_modules");
    assert!(
        modules.join("@segment/analytics-node").exists()
            && modules.join("@rudderstack/rudder-sdk-node").exists(),
        "the Node SDKs are missing in {}: run `bash tests/sdk/setup.sh`",
        modules.display()
    );
    let mut command = Command::new("node");
    command.arg(repo_root().join("tests/sdk/send.cjs"));
    command
}

/// Reads back what one SDK sent and checks it arrived whole and once.
fn check(server: &Server, key: &str, prefix: &str) {
    let user = format!("{prefix}-user");
    // Reads are narrowed to their purpose's categories: the person's consent to e-mail marketing
    // (identity, contact, preferences) shows every trait sent, and to personalisation
    // (preferences, behaviour, purchases) every event.
    for purpose in ["marketing_email", "personalization"] {
        let granted = server.post(
            key,
            "/v1/consents",
            &serde_json::json!({"user_id": user, "purpose": purpose, "decision": "granted", "source": {"channel": "web"}}),
        );
        assert_eq!(granted.status, 201, "{prefix}: {:?}", granted.body);
    }
    let found = server.get(
        key,
        &format!("/v1/subjects?user_id={user}&purpose=marketing_email"),
    );
    assert_eq!(found.status, 200, "{prefix}: {:?}", found.body);
    let subjects = found.body["subjects"].as_array().expect("subjects");
    assert_eq!(subjects.len(), 1, "{prefix}: one person, {subjects:?}");
    let profile = &subjects[0];
    let traits = &profile["traits"];
    assert_eq!(traits["email"], format!("{prefix}@example.com"), "{prefix}");
    assert_eq!(traits["plan"], "pro", "{prefix}");
    if prefix.ends_with("seg") {
        // Segment sends `traits` and the caller's `context.traits` side by side. RudderStack's
        // SDK overwrites `context.traits` with the call's traits and sends no `traits` at all,
        // so for it the two checks above already prove that `context.traits` counts.
        assert_eq!(traits["firstName"], "Ada", "{prefix}: context.traits");
    }
    assert_eq!(traits["groups"]["acme"]["name"], "Acme", "{prefix}: group");
    assert_eq!(traits["groups"]["acme"]["employees"], 12, "{prefix}: group");
    let anonymous_ids = profile["anonymous_ids"].as_array().expect("anonymous ids");
    assert!(
        anonymous_ids.contains(&Value::String(format!("{prefix}-anon"))),
        "{prefix}: alias linked the visitor: {anonymous_ids:?}"
    );

    let subject = profile["subject_id"].as_str().unwrap();
    let events = server.get(
        key,
        &format!("/v1/subjects/{subject}/events?purpose=personalization"),
    );
    assert_eq!(events.status, 200, "{prefix}: {:?}", events.body);
    let events = events.body["events"].as_array().expect("events").clone();
    let mut names: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "Order Completed",
            "Page Viewed",
            "Product Viewed",
            "Screen Viewed"
        ],
        "{prefix}: each call once (the retried order once), the visitor's view merged in"
    );
    let page = events.iter().find(|e| e["event"] == "Page Viewed").unwrap();
    assert_eq!(page["properties"]["name"], "Pricing", "{prefix}");
    assert_eq!(page["properties"]["category"], "Docs", "{prefix}");
    assert_eq!(
        page["properties"]["url"], "https://shop.example/pricing",
        "{prefix}"
    );
    let order = events
        .iter()
        .find(|e| e["event"] == "Order Completed")
        .unwrap();
    assert_eq!(order["properties"]["total"], 12.5, "{prefix}");
    assert!(
        order["context"]["library"]["name"].is_string(),
        "{prefix}: the SDK's context is kept with the event: {order:?}"
    );
}

#[test]
fn segment_and_rudderstack_python_sdks_arrive_once() {
    let python = venv_python();
    let site = Site::new();
    let key = site.create_key("app");
    let admin = site.create_key("admin");
    let server = site.serve(&[]);
    send(&python, "segment", &server, &key, "seg");
    send(&python, "rudder", &server, &key, "rud");
    check(&server, &key, "seg");
    check(&server, &key, "rud");

    // The alias merged each SDK's visitor into its user.
    let merges = server.get(&admin, "/v1/audit/merges");
    assert_eq!(merges.status, 200, "{:?}", merges.body);
    let n_merges = merges.body["merges"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    assert_eq!(n_merges, 2, "{:?}", merges.body);

    // Message ids are kept as keyed hashes only: no plaintext id on disk.
    assert!(server.stop().success());
    assert_no_plaintext_message_id(&site);
}

fn assert_no_plaintext_message_id(site: &Site) {
    for path in site.all_files() {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(8).any(|w| w == b"-retried"),
            "a plaintext message id in {}",
            path.display()
        );
    }
}

#[test]
fn segment_and_rudderstack_node_sdks_arrive_once() {
    let site = Site::new();
    let key = site.create_key("app");
    let admin = site.create_key("admin");
    let server = site.serve(&[]);
    run_sdk(node(), "segment", &server, &key, "nseg");
    run_sdk(node(), "rudder", &server, &key, "nrud");
    check(&server, &key, "nseg");
    check(&server, &key, "nrud");
    let merges = server.get(&admin, "/v1/audit/merges");
    assert_eq!(merges.status, 200, "{:?}", merges.body);
    let n_merges = merges.body["merges"]
        .as_array()
        .map(Vec::len)
        .unwrap_or_default();
    assert_eq!(n_merges, 2, "{:?}", merges.body);
    assert!(server.stop().success());
    assert_no_plaintext_message_id(&site);
}
