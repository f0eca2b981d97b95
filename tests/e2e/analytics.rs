//! Analytics over HTTP: KPIs count only subjects whose consent allows `analytics`, a withdrawal
//! takes effect on the next query, and small cells come back suppressed.

use serde_json::json;

use crate::harness::Site;

#[test]
fn kpis_follow_consent_and_suppress_small_cells() {
    let site = Site::new();
    let app = site.create_key("app");
    let server = site.serve(&[]);
    for i in 0..6 {
        let user = format!("k{i}");
        let identify = server.post(&app, "/v1/identify", &json!({"userId": user, "traits": {}}));
        assert_eq!(identify.status, 200);
        let consent = server.post(
            &app,
            "/v1/consents",
            &json!({"user_id": user, "purpose": "analytics", "decision": "granted", "source": {"channel": "web"}}),
        );
        assert_eq!(consent.status, 201, "{:?}", consent.body);
        let order = server.post(
            &app,
            "/v1/track",
            &json!({"userId": user, "event": "Order Completed", "properties": {"total": 12.5, "currency": "USD"}}),
        );
        assert_eq!(order.status, 200);
    }
    let kpis = server.get(&app, "/v1/analytics/kpis");
    assert_eq!(kpis.status, 200, "{:?}", kpis.body);
    assert_eq!(kpis.body["customers"], 6);
    assert_eq!(kpis.body["excluded_for_consent"], 0);
    assert_eq!(kpis.body["average_order_value"]["by_currency"]["USD"], 12.5);

    let withdrawn = server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "k0", "purpose": "analytics", "decision": "withdrawn", "source": {"channel": "web"}}),
    );
    assert_eq!(withdrawn.status, 201);
    let kpis = server.get(&app, "/v1/analytics/kpis");
    assert_eq!(kpis.body["customers"], 5);
    assert_eq!(kpis.body["excluded_for_consent"], 1);
    let withdrawn = server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "k1", "purpose": "analytics", "decision": "withdrawn", "source": {"channel": "web"}}),
    );
    assert_eq!(withdrawn.status, 201);
    let kpis = server.get(&app, "/v1/analytics/kpis");
    assert!(kpis.body["customers"].is_null(), "4 < k = 5: suppressed");

    let bad = server.get(&app, "/v1/analytics/kpis?from=yesterday");
    assert_eq!(bad.status, 422);
    assert_eq!(bad.body["field"], "from");
    let segments = server.get(&app, "/v1/analytics/segments");
    assert_eq!(segments.status, 200);
    assert_eq!(segments.body["excluded_for_consent"], 2);
    let stages: Vec<&str> = segments.body["funnel"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "awareness",
            "consideration",
            "purchase",
            "retention",
            "advocacy"
        ]
    );
}

#[test]
fn the_dashboard_in_one_call() {
    let site = Site::new();
    let app = site.create_key("app");
    let server = site.serve(&[]);
    for i in 0..5 {
        let user = format!("d{i}");
        server.post(&app, "/v1/identify", &json!({"userId": user, "traits": {}}));
        let consent = server.post(
            &app,
            "/v1/consents",
            &json!({"user_id": user, "purpose": "analytics", "decision": "granted", "source": {"channel": "web"}}),
        );
        assert_eq!(consent.status, 201, "{:?}", consent.body);
        for (day, total) in [("2024-01-10", 10), ("2024-02-14", 30)] {
            let order = server.post(
                &app,
                "/v1/track",
                &json!({"userId": user, "event": "Order Completed", "timestamp": format!("{day}T12:00:00Z"), "properties": {"total": total, "currency": "EUR"}}),
            );
            assert_eq!(order.status, 200, "{:?}", order.body);
        }
    }
    let period = "from=2024-02-01T00:00:00Z&to=2024-03-01T00:00:00Z";
    // Without the new parameters the answer is today's, with no new member.
    let plain = server.get(&app, &format!("/v1/analytics/kpis?{period}"));
    assert_eq!(plain.status, 200, "{:?}", plain.body);
    assert!(plain.body.get("previous").is_none() && plain.body.get("series").is_none());

    let dashboard = server.get(
        &app,
        &format!("/v1/analytics/kpis?{period}&compare=previous&series=week"),
    );
    assert_eq!(dashboard.status, 200, "{:?}", dashboard.body);
    let body = &dashboard.body;
    for member in ["customers", "retention_rate", "average_order_value", "nps"] {
        assert_eq!(body[member], plain.body[member], "{member}");
    }
    assert_eq!(body["customers"], 5);
    assert_eq!(body["retention_rate"], 1.0);
    // February 2024 has 29 days: the previous period starts 29 days before it.
    assert_eq!(body["previous"]["period"]["from"], "2024-01-03T00:00:00Z");
    assert_eq!(body["previous"]["customers"], 5);
    assert_eq!(
        body["previous"]["average_order_value"]["by_currency"]["EUR"],
        10.0
    );
    assert_eq!(body["series"]["interval"], "week");
    let points = body["series"]["points"].as_array().unwrap();
    // Thursday 1 February, then the Mondays 5, 12, 19 and 26 February; the orders of the 14th
    // are in the third week.
    assert_eq!(points.len(), 5);
    assert_eq!(points[1]["period"]["from"], "2024-02-05T00:00:00Z");
    let customers: Vec<_> = points.iter().map(|p| p["customers"].clone()).collect();
    assert_eq!(
        customers,
        [json!(null), json!(null), json!(5), json!(null), json!(null)]
    );

    for (query, field) in [
        ("compare=next", "compare"),
        ("series=year", "series"),
        (
            "series=day&from=2020-01-01T00:00:00Z&to=2024-01-01T00:00:00Z",
            "series",
        ),
        (
            "compare=previous&from=0001-06-01T00:00:00Z&to=0002-01-01T00:00:00Z",
            "compare",
        ),
    ] {
        let bad = server.get(&app, &format!("/v1/analytics/kpis?{query}"));
        assert_eq!(bad.status, 422, "{query}: {:?}", bad.body);
        assert_eq!(bad.body["field"], field, "{query}");
    }
}

/// `name` from `/metrics`.
fn metric(server: &crate::harness::Server, key: &str, name: &str) -> f64 {
    let metrics = server.get(key, "/metrics");
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_in_memory_copy_shows_a_withdrawal_and_an_erasure_in_the_next_query() {
    let site = Site::new();
    let app = site.create_key("app");
    let admin = site.create_key("admin");
    let server = site.serve(&[]);
    let mut subjects = Vec::new();
    for i in 0..7 {
        let user = format!("m{i}");
        let identify = server.post(&app, "/v1/identify", &json!({"userId": user, "traits": {}}));
        subjects.push(identify.body["subject_id"].as_str().unwrap().to_owned());
        server.post(
            &app,
            "/v1/consents",
            &json!({"user_id": user, "purpose": "analytics", "decision": "granted", "source": {"channel": "web"}}),
        );
        server.post(
            &app,
            "/v1/track",
            &json!({"userId": user, "event": "Order Completed", "properties": {"total": 5, "currency": "EUR"}}),
        );
    }
    // The first query starts building the copy; wait until /metrics shows it holds the facts
    // (7 identified + 7 orders), so the queries below are answered from it.
    assert_eq!(server.get(&app, "/v1/analytics/kpis").body["customers"], 7);
    let started = std::time::Instant::now();
    while metric(&server, &app, "custodia_analytics_copy_facts") < 14.0 {
        assert!(started.elapsed().as_secs() < 30, "the copy was not built");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(metric(&server, &app, "custodia_analytics_copy_bytes") > 0.0);

    server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "m0", "purpose": "analytics", "decision": "withdrawn", "source": {"channel": "web"}}),
    );
    let kpis = server.get(&app, "/v1/analytics/kpis");
    assert_eq!(kpis.body["customers"], 6);
    assert_eq!(kpis.body["excluded_for_consent"], 1);

    let erased = server.post(
        &admin,
        &format!("/v1/subjects/{}/erasure", subjects[1]),
        &json!({}),
    );
    assert_eq!(erased.status, 200, "{:?}", erased.body);
    let kpis = server.get(&app, "/v1/analytics/kpis");
    assert_eq!(kpis.body["customers"], 5);
    assert_eq!(kpis.body["excluded_for_consent"], 1);
    assert_eq!(metric(&server, &app, "custodia_analytics_copy_facts"), 12.0);
}
