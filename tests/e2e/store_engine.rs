//! The storage engine: a new store is made with `--store-engine` (fjall unless told), and a
//! store keeps the engine that wrote it whatever a later command asks for.

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
