//! P5: an acknowledged write survives `kill -9`, and SIGTERM stops the server cleanly.

use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use crate::harness::Site;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&[]);
    let n = 60;
    let acked = AtomicUsize::new(0);
    // Four clients write concurrently so acknowledgements share flushes; the kill comes right
    // after the last acknowledgement, with no quiet period for background flushing.
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (server, key, acked) = (&server, &key, &acked);
            scope.spawn(move || {
                for i in (t..n).step_by(4) {
                    let answer = server.post(
                        key,
                        "/v1/identify",
                        &json!({"userId": format!("durable-{i}"), "traits": {"age": i}}),
                    );
                    assert_eq!(answer.status, 200, "{:?}", answer.body);
                    let track = server.post(
                        key,
                        "/v1/track",
                        &json!({"userId": format!("durable-{i}"), "event": "Product Viewed"}),
                    );
                    assert_eq!(track.status, 200, "{:?}", track.body);
                    acked.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
    server.kill9();
    assert_eq!(acked.load(Ordering::SeqCst), n);

    let server = site.serve(&[]);
    for i in 0..n {
        let found = server.get(
            &key,
            &format!("/v1/subjects?user_id=durable-{i}&purpose=fraud_prevention"),
        );
        assert_eq!(found.status, 200);
        let subjects = found.body["subjects"].as_array().unwrap();
        assert_eq!(subjects.len(), 1, "acknowledged subject durable-{i} lost");
        assert_eq!(subjects[0]["traits"]["age"], i);
        let id = subjects[0]["subject_id"].as_str().unwrap();
        let events = server.get(
            &key,
            &format!("/v1/subjects/{id}/events?purpose=fraud_prevention"),
        );
        assert_eq!(
            events.body["events"].as_array().map(Vec::len),
            Some(1),
            "event of durable-{i} lost"
        );
    }
}

#[test]
fn sigterm_exits_zero_and_keeps_data() {
    let site = Site::new();
    let key = site.create_key("app");
    let server = site.serve(&[]);
    let answer = server.post(
        &key,
        "/v1/identify",
        &json!({"userId": "term-1", "traits": {"title": "gold"}}),
    );
    assert_eq!(answer.status, 200);
    let status = server.stop();
    assert!(status.success(), "exit status {status:?}");
    let server = site.serve(&[]);
    let found = server.get(
        &key,
        "/v1/subjects?user_id=term-1&purpose=order_fulfillment",
    );
    assert_eq!(found.body["subjects"][0]["traits"]["title"], "gold");
}
