//! P5: an acknowledged write survives `kill -9`, and SIGTERM stops the server cleanly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

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

/// What the clients of one cycle were told was stored.
#[derive(Default)]
struct Acknowledged {
    /// `userId` and the `age` trait of acknowledged identify calls.
    people: Vec<(String, u64)>,
    /// `userId`s whose `Order Completed` was acknowledged.
    orders: Vec<String>,
    /// Ledger positions of acknowledged consent decisions.
    decisions: Vec<u64>,
    /// `userId`s whose analytics consent was acknowledged (each after an acknowledged order).
    consented: Vec<String>,
}

/// Issue 16: ten times over one data directory, 64 clients identify and track through the
/// ingest committer (and, every other cycle, decide consent through the ledger's group commit),
/// and the server is killed
/// (SIGKILL) in the middle of that load, with requests in flight. After each kill every
/// acknowledged customer, order and decision is read back, and `ledger verify` and `audit
/// verify` pass. (The server's search indexer flushes the store too, so a committer that
/// skipped its own flush can go unnoticed here; the engine test
/// `a_failing_flush_answers_every_caller_of_the_group_with_an_error` catches that.)
#[test]
fn kill_9_under_64_clients_in_a_loop_loses_no_acknowledged_write() {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicBool;

    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    // Acknowledged over every cycle so far: customers, and those of them with analytics consent.
    let (mut people_total, mut consented_total) = (0u64, 0u64);
    for cycle in 0..10u64 {
        let server = site.serve(&[]);
        let acked = Mutex::new(Acknowledged::default());
        let killed = AtomicBool::new(false);
        std::thread::scope(|scope| {
            for t in 0..64u64 {
                let (server, app, acked, killed) = (&server, &app, &acked, &killed);
                scope.spawn(move || {
                    let mut i = 0u64;
                    while !killed.load(Ordering::SeqCst) {
                        let user = format!("c{cycle}-t{t}-{i}");
                        let body = json!({"userId": user, "traits": {"age": i}});
                        let Some(answer) = server.try_post(app, "/v1/identify", &body) else {
                            break;
                        };
                        assert_eq!(answer.status, 200, "{:?}", answer.body);
                        acked.lock().unwrap().people.push((user.clone(), i));
                        let body = json!({"userId": user, "event": "Order Completed",
                            "properties": {"order_id": format!("o-{user}"), "revenue": 10}});
                        let Some(answer) = server.try_post(app, "/v1/track", &body) else {
                            break;
                        };
                        assert_eq!(answer.status, 200, "{:?}", answer.body);
                        acked.lock().unwrap().orders.push(user.clone());
                        if cycle % 2 == 0 {
                            // Ingest alone in even cycles.
                            i += 1;
                            continue;
                        }
                        let body = json!({"user_id": user, "purpose": "analytics",
                            "decision": "granted", "evidence": {"ip": "198.51.100.7"}});
                        let Some(answer) = server.try_post(app, "/v1/consents", &body) else {
                            break;
                        };
                        assert_eq!(answer.status, 201, "{:?}", answer.body);
                        let seq = answer.body["entry"]["seq"].as_u64().unwrap();
                        let mut acked = acked.lock().unwrap();
                        acked.decisions.push(seq);
                        acked.consented.push(user);
                        i += 1;
                    }
                });
            }
            // The kill lands at a different point of the load in each cycle.
            std::thread::sleep(Duration::from_millis(700 + 150 * cycle));
            server.kill9_under_load();
            killed.store(true, Ordering::SeqCst);
        });
        server.kill9();
        let acked = acked.into_inner().unwrap();
        assert!(
            acked.people.len() >= 64,
            "cycle {cycle}: only {} acknowledged calls before the kill",
            acked.people.len()
        );

        eprintln!(
            "cycle {cycle}: {} customers, {} orders, {} decisions acknowledged before the kill",
            acked.people.len(),
            acked.orders.len(),
            acked.decisions.len()
        );
        let server = site.serve(&[]);
        for (user, age) in &acked.people {
            let found = server.get(
                &app,
                &format!("/v1/subjects?user_id={user}&purpose=fraud_prevention"),
            );
            assert_eq!(found.status, 200, "{:?}", found.body);
            let subjects = found.body["subjects"].as_array().unwrap();
            assert_eq!(subjects.len(), 1, "cycle {cycle}: acknowledged {user} lost");
            assert_eq!(subjects[0]["traits"]["age"], *age);
            if acked.orders.contains(user) {
                let id = subjects[0]["subject_id"].as_str().unwrap();
                let events = server.get(
                    &app,
                    &format!("/v1/subjects/{id}/events?purpose=fraud_prevention"),
                );
                assert_eq!(
                    events.body["events"].as_array().map(Vec::len),
                    Some(1),
                    "cycle {cycle}: acknowledged order of {user} lost"
                );
            }
        }
        if let Some(&first) = acked.decisions.iter().min() {
            let mut seqs = std::collections::HashSet::new();
            let mut from = first;
            loop {
                let page = server.get(
                    &compliance,
                    &format!("/v1/ledger/entries?from={from}&limit=1000"),
                );
                assert_eq!(page.status, 200, "{:?}", page.body);
                let entries = page.body["entries"].as_array().unwrap();
                seqs.extend(entries.iter().map(|e| e["seq"].as_u64().unwrap()));
                if entries.len() < 1000 {
                    break;
                }
                from += 1000;
            }
            for seq in &acked.decisions {
                assert!(
                    seqs.contains(seq),
                    "cycle {cycle}: acknowledged entry {seq} lost"
                );
            }
        }
        // The analytics projection kept the acknowledged writes too: every acknowledged
        // customer has a fact (one at creation), so is counted or left out for consent; every
        // one who consented has an acknowledged order, so is a customer of the period.
        people_total += acked.people.len() as u64;
        consented_total += acked.consented.len() as u64;
        let kpis = server.get(&app, "/v1/analytics/kpis");
        assert_eq!(kpis.status, 200, "{:?}", kpis.body);
        // Under k = 5 customers the figure is suppressed (null).
        let customers = kpis.body["customers"].as_u64().unwrap_or(0);
        let excluded = kpis.body["excluded_for_consent"].as_u64().unwrap();
        assert!(
            consented_total < 5 || customers >= consented_total,
            "cycle {cycle}: {customers} customers, {consented_total} acknowledged consents"
        );
        assert!(
            customers + excluded >= people_total,
            "cycle {cycle}: {customers} customers and {excluded} left out for consent, \
             {people_total} acknowledged customers"
        );
        assert!(server.stop().success());
        let ledger = site.verify_ledger(&[]);
        let audit = site.verify_audit();
        for (log, out) in [("ledger", ledger), ("audit", audit)] {
            assert!(
                out.status.success(),
                "cycle {cycle}: {log} verify: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
