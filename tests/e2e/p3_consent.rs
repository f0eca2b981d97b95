//! P3: consent is provable. Decisions go in over HTTP; their history comes back with inclusion
//! proofs that the CLI verifies offline against the signed checkpoint; consistency between two
//! checkpoints verifies; a flipped byte in the ledger files or a truncated ledger makes
//! `custodia ledger verify` exit 1 naming what is wrong; acknowledged decisions survive kill -9.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::harness::{Server, Site};

fn grant(server: &Server, key: &str, user: &str, purpose: &str, decision: &str) -> Value {
    let answer = server.post(key, "/v1/consents", &json!({
        "user_id": user,
        "purpose": purpose,
        "decision": decision,
        "source": {"channel": "web", "app": "checkout"},
        "evidence": {"ip": "198.51.100.23", "user_agent": "ConsentTestAgent/1.0", "form_id": "newsletter-v3"},
    }));
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    answer.body
}

fn ledger_dir(site: &Site) -> PathBuf {
    site.data_dir().join("ledger").join("default")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn consent_gates_reads_and_its_history_verifies_offline() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let created = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "c1", "traits": {"email": "c1@example.com"}}),
    );
    let subject = created.body["subject_id"].as_str().unwrap().to_owned();
    let read = format!("/v1/subjects/{subject}?purpose=marketing_email");

    assert_eq!(server.get(&app, &read).body["code"], "consent_required");
    let first_checkpoint = server.get(&compliance, "/v1/ledger/checkpoint");
    assert_eq!(first_checkpoint.status, 200);

    let granted = grant(&server, &app, "c1", "marketing_email", "granted");
    assert_eq!(granted["entry"]["kind"], "consent.granted");
    assert_eq!(granted["entry"]["evidence"], true);
    assert_eq!(
        server.get(&app, &read).status,
        200,
        "granted: the read is allowed"
    );
    let state = server.get(&app, &format!("/v1/subjects/{subject}/consents"));
    let marketing = state.body["purposes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["purpose"] == "marketing_email")
        .unwrap()
        .clone();
    assert_eq!(marketing["state"], "granted");

    grant(&server, &app, "c1", "marketing_email", "withdrawn");
    assert_eq!(
        server.get(&app, &read).body["code"],
        "consent_required",
        "withdrawn: refused again"
    );

    // The history, verified offline by the CLI.
    let history = server.get(&app, &format!("/v1/subjects/{subject}/consents/history"));
    assert_eq!(history.status, 200, "{:?}", history.body);
    let entries = history.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    let key = server.get(&compliance, "/v1/ledger/public-key").body["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let work = tempfile::tempdir().unwrap();
    let checkpoint = write(
        work.path(),
        "checkpoint",
        history.body["checkpoint"].as_str().unwrap(),
    );
    for (i, entry) in entries.iter().enumerate() {
        let proof = write(work.path(), &format!("entry-{i}.json"), &entry.to_string());
        let out = site
            .command(&[
                "ledger",
                "verify-proof",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--verifier-key",
                &key,
                "--proof",
                proof.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "entry {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The same proof for a changed entry fails.
        let mut forged = entry.clone();
        forged["seq"] = json!(entry["seq"].as_u64().unwrap() + 1);
        let forged = write(
            work.path(),
            &format!("forged-{i}.json"),
            &forged.to_string(),
        );
        let out = site
            .command(&[
                "ledger",
                "verify-proof",
                "--checkpoint",
                checkpoint.to_str().unwrap(),
                "--verifier-key",
                &key,
                "--proof",
                forged.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(1),
            "a proof for another position must fail"
        );
        // The proof covers the bytes: a field of the saved JSON that they do not say fails too.
        for (field, value) in [
            ("purpose", json!("analytics")),
            ("kind", json!("consent.granted.forged")),
            ("time", json!("2001-01-01T00:00:00Z")),
            ("subject", json!("00000000000000000000000000000000")),
            ("state", json!("granted")),
        ] {
            let mut forged = entry.clone();
            forged[field] = value;
            let forged = write(
                work.path(),
                &format!("forged-{field}-{i}.json"),
                &forged.to_string(),
            );
            let out = site
                .command(&[
                    "ledger",
                    "verify-proof",
                    "--checkpoint",
                    checkpoint.to_str().unwrap(),
                    "--verifier-key",
                    &key,
                    "--proof",
                    forged.to_str().unwrap(),
                ])
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "a changed {field} must fail");
            assert!(
                stderr.contains(&format!("`{field}`")),
                "names {field}: {stderr}"
            );
            assert!(out.stdout.is_empty(), "no `ok` for a changed {field}");
        }
    }

    // Consistency between the first checkpoint and the latest one.
    let old = write(work.path(), "old", first_checkpoint.body.as_str().unwrap());
    let new_text = server
        .get(&compliance, "/v1/ledger/checkpoint")
        .body
        .as_str()
        .unwrap()
        .to_owned();
    let new = write(work.path(), "new", &new_text);
    let size = |text: &str| text.lines().nth(1).unwrap().parse::<u64>().unwrap();
    let (from, to) = (
        size(first_checkpoint.body.as_str().unwrap()),
        size(&new_text),
    );
    assert!(from < to);
    let proof = server.get(
        &compliance,
        &format!("/v1/ledger/proof/consistency?from={from}&to={to}"),
    );
    let proof = write(work.path(), "consistency.json", &proof.body.to_string());
    site.cli_ok(&[
        "ledger",
        "verify-consistency",
        "--old",
        old.to_str().unwrap(),
        "--new",
        new.to_str().unwrap(),
        "--verifier-key",
        &key,
        "--proof",
        proof.to_str().unwrap(),
    ]);

    // Roles: an app key cannot read the ledger; a compliance key cannot record consent.
    assert_eq!(server.get(&app, "/v1/ledger/checkpoint").status, 403);
    let refused = server.post(
        &compliance,
        "/v1/consents",
        &json!({"user_id": "c1", "purpose": "marketing_email", "decision": "granted"}),
    );
    assert_eq!(refused.status, 403);
    let unknown = server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "c1", "purpose": "spying", "decision": "granted"}),
    );
    assert_eq!(unknown.status, 422);
    assert_eq!(unknown.body["code"], "unknown_purpose");

    assert!(server.stop().success());
    let out = site.verify_ledger(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Pinning the published key works too.
    let out = site.verify_ledger(&["--verifier-key", &key]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a few decisions and stops the server, leaving a ledger with checkpoints.
fn site_with_ledger() -> Site {
    let site = Site::new();
    let app = site.create_key("app");
    let server = site.serve(&["--checkpoint-every", "2"]);
    server.post(&app, "/v1/identify", &json!({"userId": "t1"}));
    for decision in ["granted", "withdrawn", "granted", "withdrawn", "granted"] {
        grant(&server, &app, "t1", "personalization", decision);
    }
    assert!(server.stop().success());
    let out = site.verify_ledger(&[]);
    assert!(
        out.status.success(),
        "the untouched ledger verifies: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    site
}

fn verify_fails_with(site: &Site, expected: &str) {
    let out = site.verify_ledger(&[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "verify must fail: {stderr}");
    assert!(
        stderr.contains(expected),
        "expected {expected:?} in: {stderr}"
    );
}

/// Flips one byte at `offset` (negative: from the end) of a file of the ledger.
fn flip(site: &Site, file: &str, offset: i64) {
    let path = ledger_dir(site).join(file);
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let at = if offset < 0 {
        bytes.len() as i64 + offset
    } else {
        offset
    } as usize;
    bytes[at] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_flipped_entry_byte_is_named() {
    let site = site_with_ledger();
    flip(&site, ENTRIES_FILE, -3);
    verify_fails_with(&site, "entry");
}

#[test]
fn a_flipped_checkpoint_byte_is_named() {
    let site = site_with_ledger();
    flip(&site, CHECKPOINTS_FILE, -5);
    verify_fails_with(&site, "checkpoint");
}

#[test]
fn truncation_is_caught_against_the_last_checkpoint() {
    let site = site_with_ledger();
    truncate_last_entry(&ledger_dir(&site));
    verify_fails_with(&site, "log truncated");
}

#[test]
fn acknowledged_decisions_survive_kill_9() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    for i in 0..10 {
        server.post(&app, "/v1/identify", &json!({"userId": format!("k{i}")}));
    }
    // Five clients decide at once (each for its own two customers, three rounds in order) and
    // read between decisions, so decisions share ledger batches and reads share access-log
    // batches; the kill comes right after the last acknowledgement.
    let acked = std::sync::Mutex::new(Vec::new());
    let reads = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for t in 0..5 {
            let (server, app, acked, reads) = (&server, &app, &acked, &reads);
            scope.spawn(move || {
                for round in 0..3 {
                    for i in [t, t + 5] {
                        let decision = if round % 2 == 0 {
                            "granted"
                        } else {
                            "withdrawn"
                        };
                        let body = grant(server, app, &format!("k{i}"), "analytics", decision);
                        acked
                            .lock()
                            .unwrap()
                            .push(body["entry"]["seq"].as_u64().unwrap());
                        let read = server.get(
                            app,
                            &format!("/v1/subjects?user_id=k{i}&purpose=customer_support"),
                        );
                        assert_eq!(read.status, 200, "{:?}", read.body);
                        reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                }
            });
        }
    });
    let acked = acked.into_inner().unwrap();
    assert_eq!(acked.len(), 30);
    server.kill9();
    let server = site.serve(&[]);
    let entries = server.get(&compliance, "/v1/ledger/entries?from=0&limit=1000");
    let seqs: Vec<u64> = entries.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    for seq in &acked {
        assert!(seqs.contains(seq), "acknowledged entry {seq} lost");
    }
    // The view agrees with the ledger: the last round granted, for every customer.
    for i in 0..10 {
        let found = server.get(
            &app,
            &format!("/v1/subjects?user_id=k{i}&purpose=analytics"),
        );
        assert_eq!(found.status, 200, "k{i}: {:?}", found.body);
    }
    // Every acknowledged read is in the access log.
    let logged = server.get(&compliance, "/v1/audit/access/entries?from=0&limit=1000");
    assert_eq!(logged.status, 200, "{:?}", logged.body);
    let n_logged = logged.body["entries"].as_array().unwrap().len();
    let n_reads = reads.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        n_logged >= n_reads,
        "{n_logged} access-log entries for {n_reads} acknowledged reads"
    );
    assert!(server.stop().success());
    let out = site.verify_ledger(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let audit = site.verify_audit();
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stderr)
    );
}

/// The ledger's files (crates/custodia-ledger/src/log.rs documents the format).
const ENTRIES_FILE: &str = "entries";
const CHECKPOINTS_FILE: &str = "checkpoints";

/// Removes the last entry the way someone rewriting history would: every file cut back
/// consistently to one entry less (`hashes` holds 2n − popcount(n) complete-subtree hashes).
fn truncate_last_entry(dir: &Path) {
    let offsets = std::fs::read(dir.join("offsets")).unwrap();
    let n = offsets.len() as u64 / 8;
    assert!(n >= 2);
    let last = u64::from_be_bytes(offsets[offsets.len() - 8..].try_into().unwrap());
    let cut = |name: &str, len: u64| {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join(name))
            .unwrap();
        file.set_len(len).unwrap();
    };
    cut("entries", last);
    cut("offsets", (n - 1) * 8);
    let stored = |size: u64| 2 * size - u64::from(size.count_ones());
    cut("hashes", stored(n - 1) * 32);
}

#[test]
fn the_timer_writes_checkpoints_to_the_witness_directory() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let witness = site.dir.path().join("witness");
    let witness_arg = format!("dir:{}", witness.display());
    // Appends alone would not checkpoint (every 1000 entries): the 1-second timer must.
    let server = site.serve(&[
        "--checkpoint-witness",
        &witness_arg,
        "--checkpoint-interval",
        "1",
        "--checkpoint-every",
        "1000",
    ]);
    server.post(&app, "/v1/identify", &json!({"userId": "w1"}));
    grant(&server, &app, "w1", "analytics", "granted");
    let started = std::time::Instant::now();
    let found = loop {
        let notes: Vec<String> = std::fs::read_dir(&witness)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
        // The policy entry and the decision: a checkpoint of size 2.
        if let Some(note) = notes.into_iter().find(|n| n.lines().nth(1) == Some("2")) {
            break note;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "no checkpoint of size 2 reached the witness"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(
        found.starts_with("custodia.local/default/ledger\n"),
        "{found}"
    );
    assert!(
        found.contains("\n\n\u{2014} custodia.local/default/ledger "),
        "a signature line: {found}"
    );
    // The ledger screen's list of witnesses says what the directory holds.
    let listed = server.get(&compliance, "/v1/ledger/witnesses");
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert_eq!(listed.body["origin"], "custodia.local/default/ledger");
    assert_eq!(listed.body["checkpoint_interval_seconds"], 1);
    assert!(
        listed.body["checkpoint_signed_at"].is_string(),
        "{:?}",
        listed.body
    );
    let dir = &listed.body["witnesses"][0];
    assert_eq!(dir["kind"], "dir");
    assert!(dir["last_tree_size"].as_u64().unwrap() >= 2, "{dir}");
    assert!(dir["last_at"].is_string(), "{dir}");
    assert!(server.stop().success());
}

/// A stand-in outside witness: accepts HTTP POSTs on loopback and keeps their bodies.
fn witness_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/witness", listener.local_addr().unwrap());
    let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            if reader.read_exact(&mut body).is_ok() {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(&body).into_owned());
            }
            let mut stream = reader.into_inner();
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, bodies)
}

#[test]
fn a_webhook_witness_receives_signed_checkpoints() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let (url, received) = witness_server();
    // A token in the query: the listing of witnesses must not show it.
    let witness_arg = format!("webhook:{url}?token=s3cret-witness-token");
    let server = site.serve(&[
        "--checkpoint-witness",
        &witness_arg,
        "--checkpoint-interval",
        "1",
    ]);
    let created = server.post(&app, "/v1/identify", &json!({"userId": "w1"}));
    let subject = created.body["subject_id"].as_str().unwrap().to_owned();
    grant(&server, &app, "w1", "analytics", "granted");
    // One logged read: the access log holds 1 entry while the ledger holds 2 and more. Each log
    // is witnessed by its own size (the push once counted per tenant, and held back the shorter
    // log's checkpoints until it outgrew the other).
    let read = server.get(
        &app,
        &format!("/v1/subjects/{subject}?purpose=customer_support"),
    );
    assert_eq!(read.status, 200, "{:?}", read.body);
    let key: String = server.get(&compliance, "/v1/ledger/public-key").body["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let started = std::time::Instant::now();
    let note = loop {
        let found = received
            .lock()
            .unwrap()
            .iter()
            .find(|n| n.lines().nth(1) == Some("2"))
            .cloned();
        if let Some(note) = found {
            break note;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "the witness got no checkpoint of size 2"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    // The ledger screen's list says what this witness accepted, without its token.
    let listed = server.get(&compliance, "/v1/ledger/witnesses");
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let webhook = &listed.body["witnesses"][0];
    assert_eq!(webhook["kind"], "webhook");
    assert_eq!(webhook["target"], json!(url));
    assert!(!listed.body.to_string().contains("s3cret"));
    assert!(
        webhook["last_tree_size"].as_u64().unwrap() >= 2,
        "{webhook}"
    );
    // The access log's checkpoints are witnessed apart from the ledger's, though its log is
    // the shorter.
    let started = std::time::Instant::now();
    loop {
        let audit_note = received
            .lock()
            .unwrap()
            .iter()
            .any(|n| n.lines().next().is_some_and(|o| o.ends_with("/audit")));
        if audit_note {
            break;
        }
        assert!(
            started.elapsed().as_secs() < 30,
            "the witness got no checkpoint of the access log"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let access = server.get(&compliance, "/v1/audit/access/witnesses");
    assert_eq!(access.status, 200, "{:?}", access.body);
    assert!(access.body["origin"].as_str().unwrap().ends_with("/audit"));
    assert!(
        access.body["witnesses"][0]["last_tree_size"]
            .as_u64()
            .is_some_and(|size| size >= 1),
        "{:?}",
        access.body
    );

    // What the witness holds verifies offline with the published key.
    let work = tempfile::tempdir().unwrap();
    let checkpoint = write(work.path(), "witnessed", &note);
    let entries = server.get(&compliance, "/v1/ledger/entries?from=1&limit=1");
    let proof = server.get(&compliance, "/v1/ledger/proof/inclusion?seq=1&tree_size=2");
    let mut proof = proof.body.clone();
    proof["bytes_b64"] = entries.body["entries"][0]["bytes_b64"].clone();
    let proof = write(work.path(), "proof.json", &proof.to_string());
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
    assert!(server.stop().success());
}

#[test]
fn the_verifier_key_is_taken_as_a_file_or_as_its_text() {
    let site = site_with_ledger();
    let key_file = ledger_dir(&site).join("verifier-key");
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    for given in [key_file.to_str().unwrap(), key_text.trim()] {
        let out = site.verify_ledger(&["--verifier-key", given]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{given}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // "1 checkpoint", "3 checkpoints": the count and the noun agree.
        for noun in ["entr", "checkpoint"] {
            let at = stdout.find(&format!(" {noun}")).unwrap();
            let n: u64 = stdout[..at].rsplit(' ').next().unwrap().parse().unwrap();
            let word = stdout[at + 1..].split([',', ' ']).next().unwrap();
            let singular = if noun == "entr" {
                "entry"
            } else {
                "checkpoint"
            };
            assert_eq!(word == singular, n == 1, "{stdout}");
        }
    }
    let out = site.verify_ledger(&["--verifier-key", "no-such-file"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--verifier-key"));
}
