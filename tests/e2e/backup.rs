//! `custodia backup create | verify | restore`, the restore procedure of docs/operations.md end to
//! end: back up with the server stopped (refused while it runs), erase a person, restore the
//! backup into a fresh directory, start on it with the live key store: the erased person stays
//! erased, everyone else is back, and the restored ledger verifies. And `verify` catches a changed
//! byte, a missing and an extra file, after which `restore` restores nothing.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{Value, json};

use crate::harness::{Server, Site};

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

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

/// `custodia backup ARGS` in the site's directory (no root key needed, none given).
fn backup(site: &Site, args: &[&str]) -> Output {
    let mut full = vec!["backup"];
    full.extend(args);
    site.command(&full)
        .env_remove("CUSTODIA_MASTER_KEY")
        .output()
        .expect("custodia runs")
}

fn text(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn manifest(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap()
}

/// `custodia serve` over another data directory, with the site's live key store.
fn serve_on(site: &Site, data: &Path) -> Command {
    site.serve_command_on(data)
}

#[test]
fn backup_erase_restore_keeps_the_erased_person_erased() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let jane = identify(&server, &app, "jane-1", "jane.erased@example.com");
    let john = identify(&server, &app, "john-1", "john.kept@example.com");
    // A consent decision: the ledger has an entry before the backup.
    let consent = server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "john-1", "purpose": "analytics", "decision": "granted", "source": {"channel": "web"}}),
    );
    assert_eq!(consent.status, 201, "{:?}", consent.body);

    let data_backup = site.dir.path().join("backup-data");
    let keys_backup = site.dir.path().join("backup-keys");
    let data = site.data_dir();
    let keys = site.keys_dir();

    // While the server runs, both are refused with exit 2, and nothing is written.
    for (option, dir, out) in [
        ("--data-dir", &data, &data_backup),
        ("--keys-dir", &keys, &keys_backup),
    ] {
        let refused = backup(&site, &["create", option, path(dir), "--out", path(out)]);
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("stop the server"), "{stderr}");
        assert!(!out.exists(), "nothing written while the server runs");
    }
    assert_eq!(server.stop().code(), Some(0));

    // A backup inside the data directory or the key store is refused.
    for inside in [data.join("backup"), keys.join("backup")] {
        let refused = backup(
            &site,
            &["create", "--data-dir", path(&data), "--out", path(&inside)],
        );
        assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
        assert!(!inside.exists());
    }

    // The data directory and, apart, the key store.
    let created = backup(
        &site,
        &[
            "create",
            "--data-dir",
            path(&data),
            "--out",
            path(&data_backup),
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let created = backup(
        &site,
        &[
            "create",
            "--keys-dir",
            path(&keys),
            "--out",
            path(&keys_backup),
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    for dir in [&data_backup, &keys_backup] {
        let verified = backup(&site, &["verify", path(dir)]);
        assert!(verified.status.success(), "{}", text(&verified));
        assert!(String::from_utf8_lossy(&verified.stdout).contains(": ok: "));
    }
    let data_manifest = manifest(&data_backup);
    assert_eq!(data_manifest["format"], "custodia-backup/1");
    assert_eq!(data_manifest["kind"], "data");
    let files: Vec<&str> = data_manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.iter().any(|f| f.starts_with("store/")), "{files:?}");
    assert!(
        files.iter().any(|f| f.starts_with("ledger/default/")),
        "{files:?}"
    );
    assert!(
        files.iter().all(|f| !f.ends_with(".keys")),
        "no key in a data backup"
    );
    assert!(
        data_manifest["ledgers"]["default"]["tree_size"].as_u64() > Some(0),
        "{data_manifest}"
    );
    assert_eq!(
        data_manifest["ledgers"]["default"]["root"]
            .as_str()
            .map(str::len),
        Some(64)
    );
    assert!(
        data_manifest["not_included"]
            .to_string()
            .contains("root key")
    );
    let keys_manifest = manifest(&keys_backup);
    assert_eq!(keys_manifest["kind"], "keys");
    assert!(
        keys_manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "default.keys"),
        "{keys_manifest}"
    );

    // Erase Jane after the backup.
    let server = site.serve(&[]);
    let erased = server.post(
        &compliance,
        &format!("/v1/subjects/{jane}/erasure"),
        &json!({"request_id": "dsr-backup-1"}),
    );
    assert_eq!(erased.status, 200, "{:?}", erased.body);
    assert_eq!(profile_status(&server, &app, &jane), 404);
    assert_eq!(server.stop().code(), Some(0));

    // Restore into a fresh path; a second restore there is refused (not empty).
    let restored = site.dir.path().join("restored-data");
    let out = backup(
        &site,
        &["restore", path(&data_backup), "--data-dir", path(&restored)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let again = backup(
        &site,
        &["restore", path(&data_backup), "--data-dir", path(&restored)],
    );
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    // A data backup is not restored as a key store.
    let wrong = backup(
        &site,
        &[
            "restore",
            path(&data_backup),
            "--keys-dir",
            path(&site.dir.path().join("other-keys")),
        ],
    );
    assert_eq!(wrong.status.code(), Some(2), "{}", text(&wrong));

    // The key-store backup restores as a key store, into a new path, identical to the live one
    // at backup time.
    let restored_keys = site.dir.path().join("restored-keys");
    let out = backup(
        &site,
        &[
            "restore",
            path(&keys_backup),
            "--keys-dir",
            path(&restored_keys),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read(restored_keys.join("default.keys")).unwrap(),
        std::fs::read(keys_backup.join("keys/default.keys")).unwrap()
    );

    // The restored data with the LIVE key store: Jane stays erased, John is back.
    let server = site.spawn_server(serve_on(&site, &restored));
    assert_eq!(profile_status(&server, &app, &jane), 404);
    assert_eq!(find_by_email(&server, &app, "jane.erased@example.com"), 0);
    assert_eq!(profile_status(&server, &app, &john), 200, "not vacuous");
    assert_eq!(find_by_email(&server, &app, "john.kept@example.com"), 1);
    assert_eq!(server.stop().code(), Some(0));

    let verified = site
        .command(&["ledger", "verify", "--data-dir", path(&restored)])
        .env_remove("CUSTODIA_MASTER_KEY")
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", text(&verified));
}

#[test]
fn verify_detects_changed_missing_and_extra_files_and_restore_then_refuses() {
    let site = Site::new();
    let app = site.create_key("app");
    let server = site.serve(&[]);
    identify(&server, &app, "ann-1", "ann@example.com");
    assert_eq!(server.stop().code(), Some(0));
    let dir = site.dir.path().join("backup");
    let created = backup(
        &site,
        &[
            "create",
            "--data-dir",
            path(&site.data_dir()),
            "--out",
            path(&dir),
        ],
    );
    assert!(created.status.success(), "{}", text(&created));
    let ok = backup(&site, &["verify", path(&dir)]);
    assert!(ok.status.success(), "{}", text(&ok));

    // One changed byte, same size, in the store's largest file (whichever engine wrote it).
    let target = largest_file(&dir.join("data/store"));
    let rel = target
        .strip_prefix(dir.join("data"))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let mut bytes = std::fs::read(&target).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&target, &bytes).unwrap();
    let bad = backup(&site, &["verify", path(&dir)]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(stdout.contains(&format!("changed: {rel}")), "{stdout}");
    bytes[middle] ^= 0x01;
    std::fs::write(&target, &bytes).unwrap();
    let ok = backup(&site, &["verify", path(&dir)]);
    assert!(ok.status.success(), "restored byte: {}", text(&ok));

    // A missing and an extra file: the same one, renamed.
    let moved = dir.join("data").join(format!("{rel}.moved"));
    std::fs::rename(&target, &moved).unwrap();
    let bad = backup(&site, &["verify", path(&dir)]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert!(stdout.contains(&format!("missing: {rel}")), "{stdout}");
    assert!(stdout.contains(&format!("extra: {rel}.moved")), "{stdout}");

    // Restore verifies first and restores nothing from a damaged backup.
    let restored = site.dir.path().join("restored");
    let refused = backup(
        &site,
        &["restore", path(&dir), "--data-dir", path(&restored)],
    );
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(!restored.exists(), "nothing restored");
}

/// `POST /v1/admin/backups` with `key`.
fn ask_backup(server: &Server, key: &str, body: &Value) -> crate::harness::Answer {
    server.post(key, "/v1/admin/backups", body)
}

#[test]
fn online_backup_under_writes_restores_consistent_and_the_erased_stay_erased() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let admin = site.create_key("admin");
    let server = site.serve(&[]);
    let jane = identify(&server, &app, "jane-1", "jane.erased@example.com");
    let john = identify(&server, &app, "john-1", "john.kept@example.com");
    // A read of personal data: the access log has an entry before the backup.
    assert_eq!(profile_status(&server, &app, &john), 200);
    let data = site.data_dir();
    let keys = site.keys_dir();

    // Bad requests: 4xx naming the field, and nothing written.
    let occupied = site.dir.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("something"), b"x").unwrap();
    let inside_data = data.join("backup");
    let inside_keys = keys.join("backup");
    for (body, field) in [
        (json!({"out": "relative/backup"}), "/out"),
        (json!({"out": path(&occupied)}), "/out"),
        (json!({"out": path(&inside_data)}), "/out"),
        (json!({"out": path(&inside_keys), "what": "keys"}), "/out"),
        (
            json!({"out": path(&site.dir.path().join("x")), "what": "all"}),
            "/what",
        ),
        (
            json!({"out": path(&site.dir.path().join("x")), "extra": 1}),
            "/extra",
        ),
    ] {
        let refused = ask_backup(&server, &admin, &body);
        assert_eq!(refused.status, 422, "{body}: {:?}", refused.body);
        assert_eq!(refused.body["field"], field, "{body}: {:?}", refused.body);
    }
    assert!(!inside_data.exists() && !inside_keys.exists());
    assert!(!site.dir.path().join("x").exists());
    assert_eq!(std::fs::read_dir(&occupied).unwrap().count(), 1);
    let not_admin = ask_backup(
        &server,
        &app,
        &json!({"out": path(&site.dir.path().join("by-app"))}),
    );
    assert_eq!(not_admin.status, 403, "{:?}", not_admin.body);
    assert!(!site.dir.path().join("by-app").exists());

    // Writers (identify and consent, each acknowledged) while the backups are taken.
    let stop = Arc::new(AtomicBool::new(false));
    let n_written = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let (stop, n_written) = (stop.clone(), n_written.clone());
            let (base, app) = (server.base.clone(), app.clone());
            std::thread::spawn(move || -> Result<(), String> {
                let server = Server::attach(&base);
                let mut i = 0;
                while !stop.load(Ordering::SeqCst) {
                    let user = format!("writer-{w}-{i}");
                    let identified = server.post(
                        &app,
                        "/v1/identify",
                        &json!({"userId": user, "traits": {"email": format!("{user}@example.com")}}),
                    );
                    let consent = server.post(
                        &app,
                        "/v1/consents",
                        &json!({"user_id": user, "purpose": "analytics", "decision": "granted", "source": {"channel": "web"}}),
                    );
                    if identified.status != 200 || consent.status != 201 {
                        stop.store(true, Ordering::SeqCst);
                        return Err(format!("{:?} {:?}", identified.body, consent.body));
                    }
                    n_written.fetch_add(1, Ordering::SeqCst);
                    i += 1;
                }
                Ok(())
            })
        })
        .collect();
    let wait_for = |n: usize| {
        let started = std::time::Instant::now();
        while n_written.load(Ordering::SeqCst) < n
            && !stop.load(Ordering::SeqCst)
            && started.elapsed() < std::time::Duration::from_secs(120)
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for(5);

    let data_backup = site.dir.path().join("online-data");
    let keys_backup = site.dir.path().join("online-keys");
    for (out, extra) in [(&data_backup, None), (&keys_backup, Some("--keys"))] {
        let mut args = vec!["create", "--server", &server.base, "--out", path(out)];
        args.extend(extra);
        let created = site
            .command(&[&["backup"][..], &args].concat())
            .env("CUSTODIA_API_KEY", &admin)
            .output()
            .unwrap();
        assert!(created.status.success(), "{}", text(&created));
        assert!(
            String::from_utf8_lossy(&created.stdout).contains(": ok: "),
            "verified: {}",
            text(&created)
        );
    }
    // Writes go on after the backups.
    wait_for(n_written.load(Ordering::SeqCst) + 3);
    stop.store(true, Ordering::SeqCst);
    for writer in writers {
        writer.join().unwrap().unwrap();
    }
    assert!(n_written.load(Ordering::SeqCst) >= 8, "the writers wrote");

    let data_manifest = manifest(&data_backup);
    assert_eq!(data_manifest["online"], true);
    assert!(
        data_manifest["writes_paused_ms"].is_u64(),
        "{data_manifest}"
    );
    assert!(
        data_manifest["ledgers"]["default"]["tree_size"].as_u64() > Some(0),
        "{data_manifest}"
    );
    assert!(
        data_manifest["access_logs"]["default"]["root"].is_string(),
        "{data_manifest}"
    );
    let files = data_manifest["files"].to_string();
    assert!(files.contains("\"store/"), "{files}");
    assert!(
        !files.contains("search/"),
        "the index is rebuilt, not copied"
    );
    assert!(
        manifest(&keys_backup)["files"]
            .to_string()
            .contains("\"default.keys\"")
    );

    // Erase Jane after the backup.
    let erased = server.post(
        &compliance,
        &format!("/v1/subjects/{jane}/erasure"),
        &json!({"request_id": "dsr-online-1"}),
    );
    assert_eq!(erased.status, 200, "{:?}", erased.body);
    assert_eq!(server.stop().code(), Some(0));

    // Restore into a fresh directory, rebuild the index, serve with the live key store.
    let restored = site.dir.path().join("restored-online");
    let out = backup(
        &site,
        &["restore", path(&data_backup), "--data-dir", path(&restored)],
    );
    assert!(out.status.success(), "{}", text(&out));
    let policies = crate::harness::repo_root().join("policies");
    let rebuilt = site
        .command(&[
            "index",
            "rebuild",
            "--data-dir",
            path(&restored),
            "--keys-dir",
            path(&keys),
            "--policies",
            path(&policies),
        ])
        .output()
        .unwrap();
    assert!(rebuilt.status.success(), "{}", text(&rebuilt));
    let server = site.spawn_server(serve_on(&site, &restored));
    assert_eq!(profile_status(&server, &app, &jane), 404);
    assert_eq!(find_by_email(&server, &app, "jane.erased@example.com"), 0);
    assert_eq!(profile_status(&server, &app, &john), 200, "not vacuous");
    assert_eq!(find_by_email(&server, &app, "john.kept@example.com"), 1);
    assert_eq!(find_by_email(&server, &app, "writer-0-0@example.com"), 1);
    assert_eq!(server.stop().code(), Some(0));

    for log in ["ledger", "audit"] {
        let verified = site
            .command(&[log, "verify", "--data-dir", path(&restored)])
            .env_remove("CUSTODIA_MASTER_KEY")
            .output()
            .unwrap();
        assert!(verified.status.success(), "{log}: {}", text(&verified));
    }
}

/// The largest file under `dir`, at any depth.
fn largest_file(dir: &std::path::Path) -> std::path::PathBuf {
    crate::harness::files_under(dir)
        .into_iter()
        .max_by_key(|path| std::fs::metadata(path).unwrap().len())
        .expect("a file in the store")
}
