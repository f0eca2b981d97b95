//! The storage engine: a new store is made with `--store-engine` (fjall unless told), and a
//! store keeps the engine that wrote it whatever a later command asks for; a store in PostgreSQL
//! (`--store`) is opened from nowhere else.

use serde_json::json;

use crate::harness::Site;

/// The files each engine leaves in the store directory.
fn engine_files(site: &Site) -> (bool, bool) {
    let store = site.data_dir().join("store");
    (
        store.join("conf").is_file() && store.join("db").is_file(),
        store.join("version").is_file(),
    )
}

#[test]
fn a_store_keeps_the_engine_that_wrote_it() {
    for (made_with, asked_later) in [(Some("sled"), "fjall"), (None, "sled")] {
        let site = Site::new();
        // The first command that opens the data directory makes the store.
        let key = match made_with {
            Some(engine) => site.create_key_with("app", &["--store-engine", engine]),
            None => site.create_key("app"),
        };
        let (sled, fjall) = engine_files(&site);
        assert_eq!(
            (sled, fjall),
            (made_with == Some("sled"), made_with.is_none()),
            "{made_with:?}: the store was made with the asked engine (fjall by default)"
        );

        let server = site.serve(&["--store-engine", asked_later]);
        let answer = server.post(
            &key,
            "/v1/identify",
            &json!({"userId": "kept-1", "traits": {"title": "gold"}}),
        );
        assert_eq!(answer.status, 200, "{:?}", answer.body);
        assert!(server.stop().success());
        assert_eq!(
            engine_files(&site),
            (sled, fjall),
            "{made_with:?}: asking for {asked_later} later changed nothing"
        );

        let server = site.serve(&[]);
        let found = server.get(
            &key,
            "/v1/subjects?user_id=kept-1&purpose=order_fulfillment",
        );
        assert_eq!(
            found.body["subjects"][0]["traits"]["title"], "gold",
            "{made_with:?}: {:?}",
            found.body
        );
        let log = std::fs::read_to_string(site.log_path()).unwrap();
        let engine = made_with.unwrap_or("fjall");
        assert!(
            log.contains(&format!("engine={engine}")) && log.contains("store opened"),
            "the log names the engine: {log}"
        );
    }
}

/// The store in PostgreSQL (`--store` / `CUSTODIA_STORE_URL`): acknowledged writes survive a
/// kill -9 of the server, one server per database schema at a time, the data directory says
/// where its store is so that a forgotten `--store` fails instead of starting an empty store,
/// and the URL's password reaches neither the log nor an error.
#[test]
fn a_store_in_postgres_survives_kill_9_and_is_opened_from_nowhere_else() {
    let cluster = crate::harness::postgres();
    let password = "pw-canary-3141";
    // Trust authentication ignores the password: it is there to be looked for in the output.
    let url = cluster
        .url("postgres")
        .replacen("postgres@", &format!("postgres:{password}@"), 1);
    let site = Site::new();
    let key = site.create_key_with("app", &["--store", &url]);
    let admin = site.create_key_with("admin", &["--store", &url]);
    assert!(site.data_dir().join("store.postgres").is_file());
    assert!(
        !site.data_dir().join("store").exists(),
        "no embedded store beside the one in PostgreSQL"
    );

    let serve_with_env = |site: &Site| {
        let mut command = site.serve_command_on(&site.data_dir());
        command.env("CUSTODIA_STORE_URL", &url);
        command
    };
    let server = site.spawn_server(serve_with_env(&site));
    for i in 0..20 {
        let answer = server.post(
            &key,
            "/v1/identify",
            &json!({"userId": format!("pg-{i}"), "traits": {"title": format!("tier-{i}")}}),
        );
        assert_eq!(answer.status, 200, "{:?}", answer.body);
    }

    // A second server on the same database is refused while the first runs.
    let other = Site::new();
    let refused = crate::harness::output_within(
        &mut serve_with_env(&other),
        std::time::Duration::from_secs(60),
        "a second server on one database",
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("the store is locked"), "{stderr}");
    assert!(!stderr.contains(password), "{stderr}");

    server.kill9();
    let server = site.spawn_server(serve_with_env(&site));
    for i in 0..20 {
        let found = server.get(
            &key,
            &format!("/v1/subjects?user_id=pg-{i}&purpose=order_fulfillment"),
        );
        assert_eq!(
            found.body["subjects"][0]["traits"]["title"],
            format!("tier-{i}"),
            "acknowledged before kill -9: {:?}",
            found.body
        );
    }
    // The online backup copies the store out of PostgreSQL into an embedded one (and leaves
    // out the file that says the store is in PostgreSQL): restored, it runs without the URL.
    let backup_dir = site.dir.path().join("backup");
    let created = site
        .command(&[
            "backup",
            "create",
            "--server",
            &server.base,
            "--out",
            backup_dir.to_str().unwrap(),
        ])
        .env("CUSTODIA_API_KEY", &admin)
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(server.stop().success());
    let restored = site.dir.path().join("restored");
    let out = site
        .command(&[
            "backup",
            "restore",
            backup_dir.to_str().unwrap(),
            "--data-dir",
            restored.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!restored.join("store.postgres").exists());
    assert!(
        restored.join("store").join("version").is_file(),
        "an embedded (fjall) store"
    );
    let server = site.spawn_server(site.serve_command_on(&restored));
    let found = server.get(&key, "/v1/subjects?user_id=pg-7&purpose=order_fulfillment");
    assert_eq!(
        found.body["subjects"][0]["traits"]["title"], "tier-7",
        "{:?}",
        found.body
    );
    assert!(server.stop().success());

    // The offline backup cannot lock or copy a store in PostgreSQL, and says what to do.
    let offline = site
        .command(&[
            "backup",
            "create",
            "--data-dir",
            site.data_dir().to_str().unwrap(),
            "--out",
            site.dir.path().join("offline").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&offline.stderr);
    assert_eq!(offline.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("its store is in PostgreSQL"), "{stderr}");

    // Without the URL, the data directory refuses to start an empty embedded store.
    let forgot = site.run(&["keys", "create", "--role", "app"]);
    let stderr = String::from_utf8_lossy(&forgot.stderr);
    assert!(!forgot.status.success());
    assert!(stderr.contains("is in PostgreSQL"), "{stderr}");
    assert!(!site.data_dir().join("store").exists());
    // And an embedded store is not opened from PostgreSQL.
    let embedded = Site::new();
    embedded.create_key("app");
    let moved = embedded.run(&["keys", "create", "--role", "app", "--store", &url]);
    let stderr = String::from_utf8_lossy(&moved.stderr);
    assert!(!moved.status.success());
    assert!(stderr.contains("is embedded"), "{stderr}");

    let log = std::fs::read_to_string(site.log_path()).unwrap();
    assert!(
        log.contains("engine=\"postgres\"") || log.contains("engine=postgres"),
        "{log}"
    );
    assert!(
        !log.contains(password),
        "the URL's password is never logged"
    );
}
