//! Search over HTTP: found by name fragments once indexed, and still complete after `kill -9`
//! during heavy ingestion (the search queue is durable with the data it indexes).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Server, Site};

fn find(server: &Server, key: &str, q: &str) -> Vec<String> {
    let answer = server.get(
        key,
        &format!("/v1/search?q={q}&purpose=customer_support&limit=100"),
    );
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["subject_id"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `q` finds exactly `expected` (in any order), for at most a few seconds.
fn eventually_finds(server: &Server, key: &str, q: &str, expected: &[String]) {
    let started = Instant::now();
    loop {
        let mut found = find(server, key, q);
        found.sort();
        let mut want = expected.to_vec();
        want.sort();
        if found == want {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{q}: found {found:?}, want {want:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn search_finds_by_fragments_and_survives_kill_9_during_ingest() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&[]);
    let id =
        |answer: crate::harness::Answer| answer.body["subject_id"].as_str().unwrap().to_owned();
    let jose = id(server.post(
        &key,
        "/v1/identify",
        &json!({"userId": "s-1", "traits": {"name": "José Müller-García", "city": "Zaragoza"}}),
    ));
    eventually_finds(&server, &key, "MULLER", std::slice::from_ref(&jose));
    eventually_finds(&server, &key, "jose%20garc", std::slice::from_ref(&jose));
    eventually_finds(
        &server,
        &key,
        "zaragoza%20muller",
        std::slice::from_ref(&jose),
    );
    let missing = server.get(&key, "/v1/search?purpose=customer_support");
    assert_eq!(missing.status, 422);
    assert_eq!(missing.body["field"], "q");

    // Heavy ingest from four clients, then kill -9 right after the last acknowledgement.
    let n = 80;
    let mut acked: Vec<String> = Vec::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (server, key) = (&server, &key);
                scope.spawn(move || {
                    (t..n)
                        .step_by(4)
                        .map(|i| {
                            let answer = server.post(
                                key,
                                "/v1/identify",
                                &json!({"userId": format!("bulk-{i}"), "traits": {"name": format!("Kilroy Bulkwright {i}")}}),
                            );
                            assert_eq!(answer.status, 200);
                            answer.body["subject_id"].as_str().unwrap().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            acked.extend(handle.join().unwrap());
        }
    });
    server.kill9();

    let server = site.serve(&[]);
    eventually_finds(&server, &key, "bulkwright", &acked);
    eventually_finds(&server, &key, "kilroy%20bulkw", &acked);
    // Everything is indexed: `/metrics` says search no longer lags behind.
    let metrics = server.get(&key, "/metrics");
    let text = metrics.body.as_str().unwrap_or_default();
    assert_eq!(
        text.lines()
            .find_map(|line| line.strip_prefix("custodia_search_updates_pending ")),
        Some("0"),
        "{text}"
    );
    assert_eq!(server.stop().code(), Some(0));
}
