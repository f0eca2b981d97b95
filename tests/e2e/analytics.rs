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
}
