//! P1: no plaintext personal data on disk. Distinctive canaries go in through every ingestion
//! path, the server stops, and every byte under the site (data directory, key store, log) is
//! scanned for each canary raw, lower-cased, upper-cased, hex and base64 (at every alignment).
//!
//! Once over each storage engine: fjall (the default) compresses its deeper tables and large
//! journal entries with LZ4, which could hide a leak from a byte scan; sled compresses nothing,
//! and the store writes the same values through either, so the sled run sees them as written.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::harness::{self, Site, files_under, find, needles, plaintext_hits_in, postgres_sql};

#[test]
fn canaries_never_reach_the_disk_or_the_log() {
    for engine in ["fjall", "sled"] {
        canaries_never_reach_the_disk_over(StoreAt::Embedded(engine));
    }
}

/// P1 with the store in PostgreSQL: the scan also covers the whole cluster, its tables and its
/// WAL (after a checkpoint, so that the tables' pages are on disk too) and its server log.
#[test]
fn canaries_never_reach_the_disk_with_the_store_in_postgres() {
    let cluster = harness::postgres();
    canaries_never_reach_the_disk_over(StoreAt::Postgres(&cluster));
}

/// Where the store of a P1 run is.
#[derive(Clone, Copy)]
enum StoreAt<'a> {
    /// In the data directory, with this engine.
    Embedded(&'a str),
    Postgres(&'a custodia_pgcluster::Cluster),
}

fn canaries_never_reach_the_disk_over(store: StoreAt<'_>) {
    let site = Site::new();
    // The first command to open the data directory makes the store.
    let (store_args, engine) = match store {
        StoreAt::Embedded(engine) => (vec!["--store-engine".to_owned(), engine.to_owned()], engine),
        StoreAt::Postgres(cluster) => (
            vec!["--store".to_owned(), cluster.url("postgres")],
            "postgres",
        ),
    };
    let store_args: Vec<&str> = store_args.iter().map(String::as_str).collect();
    let key = site.create_key_with("app", &store_args);
    let server = site.serve(if matches!(store, StoreAt::Postgres(_)) {
        &store_args
    } else {
        &[]
    });

    let canaries = [
        "CanaryEmailLocalPart7731",
        "Zyxwvutsrq-Surname-5521",
        "Quixotic-FirstName-0042",
        "+4915799887766",
        "Canary-Street-Lane 99",
        "canary-user-id-81726354",
        "canary-anon-id-55443322",
        "CANARY-ORDER-ID-998877",
        "This review canary text mentions marmalade 1234",
        "nps-comment-canary-rhubarb",
        "patched-trait-canary-kumquat",
        "Müller-Canary-Ünïcode",
        "198.51.100.213",
        "CanaryAgent-Okapi/7.3 (X11; Quokka)",
    ];
    let email = format!("{}@canary-domain-ex.com", canaries[0]);

    let id = server.post(
        &key,
        "/v1/identify",
        &json!({
            "userId": canaries[5],
            "anonymousId": canaries[6],
            "traits": {
                "email": email,
                "lastName": canaries[1],
                "firstName": canaries[2],
                "phone": canaries[3],
                "address": {"street": canaries[4], "city": canaries[11]},
            },
        }),
    );
    assert_eq!(id.status, 200, "{:?}", id.body);
    let subject = id.body["subject_id"].as_str().unwrap().to_owned();
    let batch = server.post(
        &key,
        "/v1/batch",
        &json!({"batch": [
            {"type": "track", "userId": canaries[5], "event": "Order Completed",
             "properties": {"order_id": canaries[7], "total": 12.5, "currency": "EUR"}},
            {"type": "track", "userId": canaries[5], "event": "Product Reviewed",
             "properties": {"rating": 4, "review_body": canaries[8]}},
            {"type": "track", "anonymousId": canaries[6], "event": "NPS Answered",
             "properties": {"score": 9, "comment": canaries[9]}},
        ]}),
    );
    assert_eq!(batch.status, 200, "{:?}", batch.body);
    let patch = server.send(
        &key,
        "PATCH",
        &format!("/v1/subjects/{subject}"),
        "application/json",
        json!({"traits": {"note": canaries[10]}})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(patch.status, 200, "{:?}", patch.body);

    // Consent evidence (IP address, user agent) goes into the ledger, sealed.
    let consent = server.post(
        &key,
        "/v1/consents",
        &json!({
            "user_id": canaries[5],
            "purpose": "marketing_email",
            "decision": "granted",
            "evidence": {"ip": canaries[12], "user_agent": canaries[13], "form_id": "signup-v2"},
        }),
    );
    assert_eq!(consent.status, 201, "{:?}", consent.body);

    // Reads and look-ups with personal data in the query string must not leave it in the log.
    let found = server.get(
        &key,
        &format!("/v1/subjects?email={email}&purpose=customer_support"),
    );
    assert_eq!(found.status, 200);
    assert_eq!(
        found.body["subjects"][0]["traits"]["lastName"], canaries[1],
        "the canary is really stored"
    );
    let by_phone = server.get(
        &key,
        "/v1/subjects?phone=%2B4915799887766&purpose=customer_support",
    );
    assert_eq!(by_phone.body["subjects"].as_array().map(Vec::len), Some(1));
    let events = server.get(
        &key,
        &format!("/v1/subjects/{subject}/events?purpose=customer_support"),
    );
    assert_eq!(events.body["events"].as_array().map(Vec::len), Some(3));
    // A refused request that carries personal data.
    let refused = server.post(
        &key,
        "/v1/identify",
        &json!({"userId": canaries[5], "traits": {"email": canaries[2]}}),
    );
    assert_eq!(refused.status, 422);
    assert!(
        !refused.body.to_string().contains(canaries[2]),
        "errors do not echo values"
    );

    assert!(server.stop().success());

    let files = site.all_files();
    assert!(
        files.iter().any(|f| f.starts_with(site.data_dir())),
        "the data directory was written"
    );
    assert!(
        files.iter().any(|f| f.starts_with(site.keys_dir())),
        "the key store was written"
    );
    assert!(files.contains(&site.log_path()), "the log was written");
    let mut all = canaries.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    all.push(email.clone());
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let mut files = site.all_files();
    if let StoreAt::Postgres(cluster) = store {
        postgres_sql(cluster, "CHECKPOINT");
        let stored = postgres_sql(cluster, "SELECT count(*) FROM custodia_kv");
        assert!(
            stored[0].parse::<u64>().unwrap() > 10,
            "the store is in PostgreSQL: {stored:?}"
        );
        let in_cluster = files_under(cluster.socket_dir());
        assert!(
            in_cluster
                .iter()
                .any(|f| f.components().any(|c| c.as_os_str() == "pg_wal")),
            "the scan covers the WAL"
        );
        files.extend(in_cluster);
    }
    let (hits, n_bytes) = plaintext_hits_in(&files, &all);
    assert!(n_bytes > 10_000, "scanned {n_bytes} bytes only");
    assert!(
        hits.is_empty(),
        "plaintext personal data on disk ({engine}):\n{}",
        hits.join("\n")
    );
}

#[test]
fn the_scan_would_find_plaintext() {
    // The scanner itself: a canary hidden in each encoding is found.
    let canary = "Scanner-Self-Test-Canary";
    for (encoding, needle) in needles(canary) {
        let mut blob = b"some prefix bytes ".to_vec();
        blob.extend_from_slice(&needle);
        blob.extend_from_slice(b" suffix");
        assert!(find(&blob, &needle), "{encoding}");
    }
    let embedded = STANDARD.encode(format!("xx{canary}yy"));
    assert!(
        needles(canary)
            .iter()
            .any(|(_, n)| find(embedded.as_bytes(), n)),
        "base64 at an offset"
    );
}
