//! The projection as the engine keeps it: filled on ingest, consent-filtered on query, moved on
//! merge, emptied on erasure; the figures themselves are tested in custodia-analytics.

use custodia_analytics::Currency;
use custodia_core::{Operation, Personal};
use serde_json::json;

use crate::tests::{Fixture, fixture};
use crate::*;

fn grant_analytics(f: &Fixture, app: &Caller, user: &str, decision: &str) {
    let body = json!({"user_id": user, "purpose": "analytics", "decision": decision, "source": {"channel": "web"}});
    f.engine
        .record_consent(app, &ConsentInput::from_json(&body).unwrap())
        .unwrap();
}

/// Six customers with analytics consent, each with one order of 10 EUR; u0 orders twice.
fn shop(f: &Fixture, app: &Caller) {
    for i in 0..6 {
        let user = format!("u{i}");
        f.identify(
            app,
            json!({"userId": user, "traits": {"name": format!("Person {i}")}}),
        );
        grant_analytics(f, app, &user, "granted");
        f.track(app, json!({"userId": user, "event": "Order Completed", "properties": {"order_id": format!("o-{i}"), "total": 10, "currency": "EUR"}}));
    }
    f.track(app, json!({"userId": "u0", "event": "Order Completed", "properties": {"total": 20, "currency": "EUR"}}));
}

fn period(f: &Fixture) -> (custodia_core::Timestamp, custodia_core::Timestamp) {
    let now = f.clock.now();
    (now.plus_days(-30), now.plus_days(1))
}

#[test]
fn kpis_count_consenting_customers_and_drop_a_withdrawal_on_the_next_query() {
    let f = fixture();
    let app = f.caller("app");
    shop(&f, &app);
    // A seventh customer without consent is left out and counted.
    f.identify(&app, json!({"userId": "nc", "traits": {}}));
    f.track(&app, json!({"userId": "nc", "event": "Order Completed", "properties": {"total": 999, "currency": "EUR"}}));

    let (from, to) = period(&f);
    let kpis = f.engine.kpis(&app, from, to).unwrap();
    assert_eq!(kpis.customers, Some(6));
    assert_eq!(kpis.excluded_for_consent, 1);
    // 7 orders, 80 EUR: AOV 80/7, frequency 7/6.
    let aov = kpis.average_order_value.by_currency[&Currency::EUR].unwrap();
    assert!((aov - 80.0 / 7.0).abs() < 0.01, "{aov}");
    assert!((kpis.purchase_frequency.unwrap() - 7.0 / 6.0).abs() < 0.001);

    grant_analytics(&f, &app, "u5", "withdrawn");
    let kpis = f.engine.kpis(&app, from, to).unwrap();
    assert_eq!(kpis.excluded_for_consent, 2);
    // Five customers is still k = 5; one more withdrawal and the count is suppressed.
    assert_eq!(kpis.customers, Some(5));
    grant_analytics(&f, &app, "u4", "withdrawn");
    let kpis = f.engine.kpis(&app, from, to).unwrap();
    assert_eq!(kpis.customers, None);
    assert!(kpis.suppressed.contains(&"customers".to_owned()));
}

#[test]
fn segments_need_the_analytics_operation_and_count_journey_stages() {
    let f = fixture();
    let app = f.caller("app");
    // Six with one order, five with two, five with one order and a promoter's NPS answer.
    for i in 0..16 {
        let user = format!("s{i}");
        f.identify(&app, json!({"userId": user, "traits": {}}));
        grant_analytics(&f, &app, &user, "granted");
        let order = json!({"userId": user, "event": "Order Completed", "properties": {"total": 5, "currency": "EUR"}});
        f.track(&app, order.clone());
        if (6..11).contains(&i) {
            f.track(&app, order);
        }
        if i >= 11 {
            f.track(
                &app,
                json!({"userId": user, "event": "NPS Answered", "properties": {"score": 10}}),
            );
        }
    }
    // Segments look at history strictly before now.
    f.clock.set(f.clock.now().plus_days(1));
    let segments = f.engine.segments(&app).unwrap();
    let value = serde_json::to_value(&segments).unwrap();
    assert_eq!(value["journey"]["purchase"], json!(6), "{value}");
    assert_eq!(value["journey"]["retention"], json!(5));
    assert_eq!(value["journey"]["advocacy"], json!(5));
    let support = f.caller("support");
    assert_eq!(
        f.engine.segments(&support).unwrap_err().code(),
        custodia_core::ErrorCode::RoleNotPermitted
    );
}

#[test]
fn erasure_and_merges_keep_the_projection_in_step() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    shop(&f, &app);
    let tenant = app.tenant.clone();
    let n_facts = || f.engine.store.facts(&tenant, None, 10_000).unwrap().len();
    // 6 identified + 7 orders.
    assert_eq!(n_facts(), 13);

    // An anonymous visitor's view moves to the customer when they sign in.
    f.track(
        &app,
        json!({"anonymousId": "a-1", "event": "Product Viewed"}),
    );
    assert_eq!(n_facts(), 15, "an identified fact and a view");
    f.identify(
        &app,
        json!({"userId": "u1", "anonymousId": "a-1", "traits": {}}),
    );
    let u1 = f
        .engine
        .lookup(&f.support(&app), &Lookup::UserId(Personal("u1".to_owned())))
        .unwrap()[0]
        .subject_id;
    let u1_p = f.engine.keys(&tenant).unwrap().pseudonym(u1);
    assert_eq!(
        n_facts(),
        14,
        "the anonymous identified fact went, the view moved"
    );
    assert_eq!(
        f.engine
            .store
            .subject_fact_ids(&tenant, &u1_p)
            .unwrap()
            .len(),
        3
    );

    f.engine
        .erase(&admin, u1, &ErasureOptions::default())
        .unwrap();
    assert!(
        f.engine
            .store
            .subject_fact_ids(&tenant, &u1_p)
            .unwrap()
            .is_empty()
    );
    assert_eq!(n_facts(), 11);
    let _ = Operation::Analytics;
}
