//! A full disk (issue 12, item 3): the data directory on a small tmpfs that the test fills up.
//! Writes and the first read of a tenant answer 507 `insufficient_storage` (not 500) and leave
//! nothing half-created; once space is freed the same requests succeed without a restart, and the
//! logs verify offline.
//!
//! Needs root (to mount the tmpfs); otherwise the test prints why and passes without checking.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::json;

use crate::harness::{Server, Site};

/// A tmpfs mounted for the test; unmounted on drop, also when the test panics.
struct Mounted(PathBuf);

impl Mounted {
    /// Mounts a tmpfs of `size` (as `mount -o size=`) at `dir`, or says why not.
    fn tmpfs(dir: &Path, size: &str) -> Result<Mounted, String> {
        let uid = Command::new("id")
            .arg("-u")
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("not running as root".to_owned());
        }
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Mounted(dir.to_owned()))
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(&self.0).status();
        if !unmounted.is_ok_and(|s| s.success()) {
            // Still busy (a server that did not exit yet): detach it now, freed when unused.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes `path` until the file system refuses: ENOSPC, nothing else.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for chunk in [1 << 20, 4096, 1] {
        let bytes = vec![0x5a_u8; chunk];
        loop {
            match file.write_all(&bytes) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
    }
    file.sync_all().ok();
}

/// `custodia_insufficient_storage_total` from `/metrics`.
fn refused_for_space(server: &Server, key: &str) -> u64 {
    let metrics = server.get(key, "/metrics");
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix("custodia_insufficient_storage_total "))
        .unwrap_or_else(|| panic!("no counter in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

fn assert_insufficient_storage(answer: &crate::harness::Answer, what: &str) {
    assert_eq!(answer.status, 507, "{what}: {:?}", answer.body);
    assert_eq!(answer.content_type, "application/problem+json", "{what}");
    assert_eq!(answer.body["code"], "insufficient_storage", "{what}");
}

/// Names under `dir` (recursively) that are temporary leftovers of a log creation.
fn creation_leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy().contains(".creating-") {
            found.push(path.clone());
        }
        if path.is_dir() {
            found.extend(creation_leftovers(&path));
        }
    }
    found
}

#[test]
fn a_full_disk_answers_507_leaves_nothing_half_made_and_recovers_without_restart() {
    let site = Site::new();
    let data = site.data_dir();
    let _mounted = match Mounted::tmpfs(&data, "48m") {
        Ok(m) => m,
        Err(why) => {
            println!("disk_full: skipped ({why}); run as root to mount a tmpfs");
            return;
        }
    };
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&["--min-free-mb", "1"]);
    let jane = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "full-1", "traits": {"email": "jane@example.com"}}),
    );
    assert_eq!(jane.status, 200, "{:?}", jane.body);
    let id = jane.body["subject_id"].as_str().unwrap().to_owned();
    let profile = format!("/v1/subjects/{id}?purpose=customer_support");
    let consent = json!({"subject_id": id, "purpose": "marketing_email", "decision": "granted"});
    let identify = json!({"userId": "full-2", "traits": {"plan": "gold"}});
    assert_eq!(refused_for_space(&server, &compliance), 0);

    let filler = data.join("filler");
    fill(&filler);

    // The first read of the tenant creates its access log: refused, nothing half-created.
    assert_insufficient_storage(&server.get(&app, &profile), "first read");
    let audit = data.join("audit").join("default");
    assert!(
        !audit.exists()
            || std::fs::read(audit.join("format")).unwrap() == b"custodia-merkle-log 1\n",
        "no half-created access log"
    );
    assert!(
        creation_leftovers(&data).is_empty(),
        "{:?}",
        creation_leftovers(&data)
    );
    // Writes: the store refuses below its reserve, the ledger meets ENOSPC itself.
    assert_insufficient_storage(&server.post(&app, "/v1/identify", &identify), "identify");
    assert_insufficient_storage(&server.post(&app, "/v1/consents", &consent), "consent");
    assert_insufficient_storage(&server.get(&app, &profile), "second read");
    assert!(refused_for_space(&server, &compliance) >= 4);
    assert!(
        creation_leftovers(&data).is_empty(),
        "{:?}",
        creation_leftovers(&data)
    );
    // The store itself never met the full disk, so it is healthy.
    let health = server.get(&app, "/healthz");
    assert_eq!(health.status, 200, "{:?}", health.body);

    // Space returns: the same requests succeed, no restart.
    std::fs::remove_file(&filler).unwrap();
    let read = server.get(&app, &profile);
    assert_eq!(read.status, 200, "{:?}", read.body);
    let written = server.post(&app, "/v1/identify", &identify);
    assert_eq!(written.status, 200, "{:?}", written.body);
    let granted = server.post(&app, "/v1/consents", &consent);
    assert_eq!(granted.status, 201, "{:?}", granted.body);
    // The refused decision was not recorded: the ledger holds the policy publication, then this.
    assert_eq!(granted.body["entry"]["seq"], 1, "{:?}", granted.body);
    let consents = server.get(&app, &format!("/v1/subjects/{id}/consents"));
    assert_eq!(consents.status, 200, "{:?}", consents.body);
    assert!(
        consents.body.to_string().contains("granted"),
        "{:?}",
        consents.body
    );
    assert_eq!(server.get(&app, "/healthz").status, 200);
    assert_eq!(server.stop().code(), Some(0));

    for log in ["audit", "ledger"] {
        let out = site
            .command(&[log, "verify", "--data-dir", data.to_str().unwrap()])
            .env_remove("CUSTODIA_MASTER_KEY")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{log} verify: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn once_space_is_back_healthz_says_whether_the_store_needs_a_restart() {
    let site = Site::new();
    let data = site.data_dir();
    let _mounted = match Mounted::tmpfs(&data, "48m") {
        Ok(m) => m,
        Err(why) => {
            println!("disk_full: skipped ({why}); run as root to mount a tmpfs");
            return;
        }
    };
    let app = site.create_key("app");
    // No reserve: sled itself meets ENOSPC.
    let server = site.serve(&["--min-free-mb", "0"]);
    let filler = data.join("filler");
    fill(&filler);
    let mut refused = None;
    for i in 0..200 {
        let answer = server.post(
            &app,
            "/v1/identify",
            &json!({"userId": format!("full-{i}"), "traits": {"note": "x".repeat(2000)}}),
        );
        if answer.status != 200 {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.expect("a write fails on the full disk");
    assert_insufficient_storage(&refused, "identify without a reserve");
    std::fs::remove_file(&filler).unwrap();
    // Once space is back, /healthz tells the truth either way. When sled's own write met the
    // full disk, sled 0.34 keeps refusing, also once space is back: /healthz says so and why,
    // and a restart fixes it. When the write that met it was another file's (the search index,
    // a ledger; which one comes first depends on timing, and a loaded CI machine once got there
    // first), the store is whole: /healthz says ok and a write succeeds without a restart.
    let health = server.get(&app, "/healthz");
    if health.status == 200 {
        let again = server.post(&app, "/v1/identify", &json!({"userId": "space-back"}));
        assert_eq!(
            again.status, 200,
            "/healthz said ok, so a write must succeed: {:?}",
            again.body
        );
        return;
    }
    assert_eq!(health.status, 503, "{:?}", health.body);
    assert_eq!(health.body["status"], "unavailable", "{:?}", health.body);
    assert!(
        health.body["reason"].as_str().unwrap().contains("space"),
        "{:?}",
        health.body
    );
    drop(server);
    let server = site.serve(&["--min-free-mb", "0"]);
    assert_eq!(
        server.get(&app, "/healthz").status,
        200,
        "a restart fixes it"
    );
    let again = server.post(&app, "/v1/identify", &json!({"userId": "after"}));
    assert_eq!(again.status, 200, "{:?}", again.body);
}
