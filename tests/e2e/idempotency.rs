//! `Idempotency-Key` against the real binary: a batch retried under one key stores each event
//! once and gets the same answer, also after a restart; concurrent retries apply it once; the
//! same key with another body is refused and changes nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, Site};

/// `POST path` with an `Idempotency-Key`: status, whether the answer is a replay, body.
fn post_keyed(
    server: &Server,
    api_key: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> (u16, bool, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut response = agent
        .post(&format!("{}{path}", server.base))
        .header("Authorization", &format!("Bearer {api_key}"))
        .header("Content-Type", "application/json")
        .header("Idempotency-Key", key)
        .send(body.to_string().as_bytes())
        .expect("the server answers");
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|v| v == "true");
    let text = response.body_mut().read_to_string().unwrap();
    (
        response.status().as_u16(),
        replayed,
        serde_json::from_str(&text).unwrap_or(Value::Null),
    )
}

fn n_events(server: &Server, key: &str, subject: &str) -> usize {
    let events = server.get(
        key,
        &format!("/v1/subjects/{subject}/events?purpose=customer_support&limit=100"),
    );
    assert_eq!(events.status, 200, "{:?}", events.body);
    events.body["events"].as_array().unwrap().len()
}

#[test]
fn a_batch_retried_under_one_key_stores_each_event_once() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&[]);
    let batch = json!({"batch": [
        {"type": "identify", "userId": "idem-user", "traits": {"plan": "pro"}},
        {"type": "track", "userId": "idem-user", "event": "Order Completed",
         "properties": {"order_id": "o-1", "total": 10}},
        {"type": "track", "userId": "idem-user", "event": "Order Completed",
         "properties": {"order_id": "o-2", "total": 20}},
    ]});
    let (status, replayed, first) = post_keyed(&server, &key, "/v1/batch", "batch-1", &batch);
    assert_eq!(status, 200, "{first:?}");
    assert!(!replayed);
    let (status, replayed, again) = post_keyed(&server, &key, "/v1/batch", "batch-1", &batch);
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again, first, "the original answer");
    let subject = first["results"][0]["subject_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(n_events(&server, &key, &subject), 2);

    // Another body under the same key: refused, nothing stored.
    let other = json!({"batch": [
        {"type": "track", "userId": "idem-user", "event": "Order Completed",
         "properties": {"order_id": "o-9", "total": 90}},
    ]});
    let (status, _, refused) = post_keyed(&server, &key, "/v1/batch", "batch-1", &other);
    assert_eq!(status, 422, "{refused:?}");
    assert_eq!(refused["code"], "idempotency_key_reused");
    assert_eq!(refused["field"], "Idempotency-Key");
    assert_eq!(n_events(&server, &key, &subject), 2);

    // Concurrent retries of a new batch: one applies it, the others get its answer or 409.
    let concurrent = json!({"batch": [
        {"type": "track", "userId": "idem-user", "event": "Order Completed",
         "properties": {"order_id": "o-3", "total": 30}},
    ]});
    let base = server.base.clone();
    let answers: Vec<(u16, bool, Value)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let (base, key, concurrent) = (base.clone(), key.clone(), concurrent.clone());
                scope.spawn(move || {
                    post_keyed(
                        &Server::attach(&base),
                        &key,
                        "/v1/batch",
                        "batch-2",
                        &concurrent,
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let applied: Vec<_> = answers.iter().filter(|(s, r, _)| *s == 200 && !r).collect();
    assert_eq!(applied.len(), 1, "applied once: {answers:?}");
    for (status, replayed, body) in &answers {
        match status {
            200 => assert_eq!(body, &applied[0].2, "{answers:?}"),
            409 => assert_eq!(body["code"], "idempotency_key_in_flight"),
            _ => panic!("unexpected answer {status}: {body:?}"),
        }
        let _ = replayed;
    }
    assert_eq!(n_events(&server, &key, &subject), 3);

    // The kept answer is durable: after a restart the retry is still answered, not applied.
    assert!(server.stop().success());
    let server = site.serve(&[]);
    let (status, replayed, after_restart) =
        post_keyed(&server, &key, "/v1/batch", "batch-1", &batch);
    assert_eq!((status, replayed), (200, true));
    assert_eq!(after_restart, first);
    assert_eq!(n_events(&server, &key, &subject), 3);
    assert!(server.stop().success());

    // Keys are stored as keyed hashes only.
    for path in site.all_files() {
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"batch-1"),
            "a plaintext idempotency key in {}",
            path.display()
        );
    }
}
