//! The projection as the engine keeps it: filled on ingest, consent-filtered on query, moved on
//! merge, emptied on erasure; the figures themselves are tested in custodia-analytics.

use custodia_analytics::Currency;
use custodia_core::{Operation, Personal};
use serde_json::json;

use super::{ANALYTICS_PURPOSE, AllowedFacts};
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

/// One step of a random shop's life.
#[derive(Clone, Debug)]
enum ShopOp {
    Identify(u8),
    Consent(u8, bool),
    Order(u8, u32, &'static str),
    Refund(u8, u32, &'static str),
    Nps(u8, u8),
    /// An anonymous visitor's product view, then (with `Some(user)`) their sign-in: a merge.
    Visit(u8, Option<u8>),
    Restrict(u8, bool),
    Erase(u8),
    Retention,
    Days(i64),
}

fn shop_op() -> impl proptest::strategy::Strategy<Value = ShopOp> {
    use proptest::prelude::*;
    let user = 0u8..8;
    let currency = prop_oneof![Just("EUR"), Just("USD"), Just("JPY")];
    prop_oneof![
        2 => user.clone().prop_map(ShopOp::Identify),
        3 => (user.clone(), any::<bool>()).prop_map(|(u, granted)| ShopOp::Consent(u, granted)),
        4 => (user.clone(), 0u32..50_000, currency.clone()).prop_map(|(u, a, c)| ShopOp::Order(u, a, c)),
        1 => (user.clone(), 0u32..20_000, currency).prop_map(|(u, a, c)| ShopOp::Refund(u, a, c)),
        2 => (user.clone(), 0u8..=10).prop_map(|(u, s)| ShopOp::Nps(u, s)),
        1 => (0u8..3, proptest::option::of(user.clone())).prop_map(|(a, u)| ShopOp::Visit(a, u)),
        1 => (user.clone(), any::<bool>()).prop_map(|(u, on)| ShopOp::Restrict(u, on)),
        1 => user.prop_map(ShopOp::Erase),
        1 => Just(ShopOp::Retention),
        1 => (1i64..400).prop_map(ShopOp::Days),
    ]
}

fn subject_of(f: &Fixture, app: &Caller, user: u8) -> Option<custodia_core::SubjectId> {
    f.engine
        .lookup(
            &f.support(app),
            &Lookup::UserId(Personal(format!("u{user}"))),
        )
        .ok()?
        .first()
        .map(|profile| profile.subject_id)
}

fn run_op(f: &Fixture, app: &Caller, admin: &Caller, op: &ShopOp) {
    let user = |u: &u8| format!("u{u}");
    match op {
        ShopOp::Identify(u) => {
            f.identify(app, json!({"userId": user(u), "traits": {}}));
        }
        ShopOp::Consent(u, granted) => {
            if subject_of(f, app, *u).is_some() {
                grant_analytics(
                    f,
                    app,
                    &user(u),
                    if *granted { "granted" } else { "withdrawn" },
                );
            }
        }
        ShopOp::Order(u, amount, currency) | ShopOp::Refund(u, amount, currency) => {
            let event = if matches!(op, ShopOp::Order(..)) {
                "Order Completed"
            } else {
                "Order Refunded"
            };
            let total = f64::from(*amount) / 100.0;
            f.track(app, json!({"userId": user(u), "event": event, "properties": {"total": total, "currency": currency}}));
        }
        ShopOp::Nps(u, score) => {
            f.track(
                app,
                json!({"userId": user(u), "event": "NPS Answered", "properties": {"score": score}}),
            );
        }
        ShopOp::Visit(anon, sign_in) => {
            let anonymous_id = format!("a{anon}");
            f.track(
                app,
                json!({"anonymousId": anonymous_id, "event": "Product Viewed"}),
            );
            if let Some(u) = sign_in {
                f.identify(
                    app,
                    json!({"userId": user(u), "anonymousId": anonymous_id, "traits": {}}),
                );
            }
        }
        ShopOp::Restrict(u, on) => {
            if let Some(subject) = subject_of(f, app, *u) {
                let change = if *on {
                    FlagChange::Restrict
                } else {
                    FlagChange::LiftRestriction
                };
                f.engine.change_flags(admin, subject, change, None).unwrap();
            }
        }
        ShopOp::Erase(u) => {
            if let Some(subject) = subject_of(f, app, *u) {
                f.engine
                    .erase(admin, subject, &ErasureOptions::default())
                    .unwrap();
            }
        }
        ShopOp::Retention => {
            f.engine.retention_sweep(admin).unwrap();
        }
        ShopOp::Days(days) => f.clock.set(f.clock.now().plus_days(*days)),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// The in-memory copy answers exactly as the store: the same subjects with the same facts
    /// and the same count left out for consent, so the same KPIs and segments, whatever the
    /// shop did (orders, refunds, NPS in three currencies, consents granted and withdrawn,
    /// restrictions, merges, erasures, retention sweeps) and whenever in its life the copy was
    /// built (the writes made while it was built are replayed onto it).
    #[test]
    fn the_copy_answers_as_the_store(
        ops in proptest::collection::vec(shop_op(), 1..40),
        build_at in 0usize..40,
    ) {
        let f = fixture();
        let app = f.caller("app");
        let admin = f.caller("admin");
        let copies = &f.engine.analytics_copies.0;
        for (op_idx, op) in ops.iter().enumerate() {
            if op_idx == build_at {
                f.engine.start_analytics_copies().unwrap();
                copies.start(&app.tenant);
            }
            run_op(&f, &app, &admin, op);
        }
        f.engine.start_analytics_copies().unwrap();
        copies.start(&app.tenant);
        assert!(copies.wait_until_built(std::time::Duration::from_secs(10)));
        proptest::prop_assert!(copies.is_ready(&app.tenant));

        let purpose = f.engine.policies.purpose(&ANALYTICS_PURPOSE.parse().unwrap()).unwrap().clone();
        let from_copy = f.engine.allowed_facts(&app).unwrap();
        let from_store = f.engine.facts_from_store(&app, &purpose).unwrap();
        proptest::prop_assert_eq!(&from_copy, &from_store);

        let now = f.clock.now();
        let request = custodia_analytics::DashboardRequest {
            compare_previous: true,
            series: Some(custodia_analytics::Interval::Month),
        };
        let params = f.engine.analytics_params(now.plus_days(-365), now.plus_days(1)).unwrap();
        let dashboard = |(subjects, excluded): &(AllowedFacts, u64)| {
            custodia_analytics::compute_dashboard(
                subjects.iter(),
                *excluded,
                &params,
                request,
            )
            .unwrap()
        };
        proptest::prop_assert_eq!(dashboard(&from_copy), dashboard(&from_store));
        proptest::prop_assert_eq!(
            f.engine.dashboard(&app, now.plus_days(-365), now.plus_days(1), request).unwrap(),
            dashboard(&from_store)
        );
    }
}

/// Turns the in-memory copies on and waits until the caller's tenant's is built.
fn copy_built(f: &Fixture, app: &Caller) {
    f.engine.start_analytics_copies().unwrap();
    let copies = &f.engine.analytics_copies.0;
    copies.start(&app.tenant);
    assert!(copies.wait_until_built(std::time::Duration::from_secs(10)));
    assert!(copies.is_ready(&app.tenant));
}

#[test]
fn a_withdrawal_and_an_erasure_leave_the_copy_at_once() {
    let f = fixture();
    let app = f.caller("app");
    let admin = f.caller("admin");
    shop(&f, &app);
    copy_built(&f, &app);
    let (n_facts, bytes) = f.engine.analytics_copy_footprint();
    // 6 identified + 7 orders.
    assert_eq!(n_facts, 13);
    assert!(bytes > 0);

    let (from, to) = period(&f);
    assert_eq!(f.engine.kpis(&app, from, to).unwrap().customers, Some(6));
    grant_analytics(&f, &app, "u5", "withdrawn");
    let kpis = f.engine.kpis(&app, from, to).unwrap();
    assert_eq!((kpis.customers, kpis.excluded_for_consent), (Some(5), 1));
    let u4 = subject_of(&f, &app, 4).unwrap();
    f.engine
        .erase(&admin, u4, &ErasureOptions::default())
        .unwrap();
    let kpis = f.engine.kpis(&app, from, to).unwrap();
    // u4 is gone altogether (neither counted nor excluded); 4 customers are below k.
    assert_eq!((kpis.customers, kpis.excluded_for_consent), (None, 1));
    assert_eq!(f.engine.analytics_copy_footprint().0, 11);
}

#[test]
fn a_write_during_a_query_does_not_wait_for_it_and_shows_in_the_next_query() {
    let f = fixture();
    let app = f.caller("app");
    shop(&f, &app);
    copy_built(&f, &app);
    let copies = &f.engine.analytics_copies.0;
    let (from, to) = period(&f);
    assert_eq!(f.engine.kpis(&app, from, to).unwrap().customers, Some(6));

    // A query that holds the copy until told to let go.
    let (holding_tx, holding) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|scope| {
        let tenant = app.tenant.clone();
        scope.spawn(move || {
            copies.query(&tenant, |_| {
                holding_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
        });
        holding.recv().unwrap();
        // A withdrawal and a new customer's order, written while the query holds the copy.
        let (done_tx, done) = std::sync::mpsc::channel();
        let (f, app) = (&f, &app);
        scope.spawn(move || {
            grant_analytics(f, app, "u5", "withdrawn");
            f.identify(app, json!({"userId": "late", "traits": {}}));
            grant_analytics(f, app, "late", "granted");
            f.track(app, json!({"userId": "late", "event": "Order Completed", "properties": {"total": 7, "currency": "EUR"}}));
            done_tx.send(()).unwrap();
        });
        let in_time = done
            .recv_timeout(std::time::Duration::from_secs(10))
            .is_ok();
        // Let go of the query either way, so that a failure does not hang the test.
        release.send(()).unwrap();
        assert!(in_time, "the writes waited for the query");
    });
    // The next query sees every write acknowledged before it.
    let kpis = f.engine.kpis(&app, from, to).unwrap();
    assert_eq!((kpis.customers, kpis.excluded_for_consent), (Some(6), 1));
    assert_eq!(
        f.engine.analytics_copy_footprint().0,
        15,
        "13 + identified + order"
    );
}

/// Opens a sled store directory whose previous handle was just dropped.
fn open_raw_store(dir: &std::path::Path) -> custodia_store::SledBackend {
    custodia_store::SledBackend::open_when_released(dir, std::time::Duration::from_secs(10))
        .unwrap()
}

#[test]
fn a_store_of_the_first_unpacked_layout_is_repacked_when_the_engine_opens() {
    use custodia_store::KvBackend;
    let dir = tempfile::tempdir().unwrap();
    let clock = std::sync::Arc::new(FixedClock::new(
        custodia_core::Timestamp::parse_rfc3339("2026-11-24T12:00:00Z").unwrap(),
    ));
    let open = || {
        Engine::open(EngineConfig {
            data_dir: dir.path().join("data"),
            keys_dir: dir.path().join("keys"),
            store_cache_bytes: custodia_store::DEFAULT_STORE_CACHE_BYTES,
            store_engine: custodia_store::StoreEngine::Sled,
            store_url: None,
            keyring: custodia_vault::Keyring::new(
                custodia_vault::RootKey::from_base64(&base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    [7u8; 32],
                ))
                .unwrap(),
            ),
            policies: custodia_policy::Policies::builtin(),
            clock: clock.clone(),
            ledger: LedgerConfig::default(),
            min_free_bytes: 0,
        })
        .unwrap()
    };
    let f = crate::tests::fixture_with(open(), clock.clone());
    let app = f.caller("app");
    shop(&f, &app);
    let tenant = app.tenant.clone();
    let (from, to) = period(&f);
    let kpis = serde_json::to_value(f.engine.kpis(&app, from, to).unwrap()).unwrap();
    let decoded = |engine: &Engine| -> Vec<(
        custodia_core::Pseudonym,
        custodia_core::EventId,
        custodia_analytics::Fact,
    )> {
        engine
            .store
            .facts(&tenant, None, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(p, e, bytes)| {
                (
                    p,
                    e,
                    custodia_analytics::Fact::decode_stored(p, &bytes).unwrap(),
                )
            })
            .collect()
    };
    let facts = decoded(&f.engine);
    assert_eq!(facts.len(), 13);
    drop(f);

    // Rewrite the projection as the first version stored it: one 'A' record per fact, in the
    // fact's first encoding, and no chunk.
    let store_dir = dir.path().join("data").join("store");
    let raw = open_raw_store(&store_dir);
    let chunks = raw.scan_prefix(b"N", None, usize::MAX).unwrap();
    assert!(!chunks.is_empty());
    let tenant_bytes = tenant.as_str().as_bytes();
    let mut ops: Vec<custodia_store::KvOp> = chunks
        .into_iter()
        .map(|(key, _)| custodia_store::KvOp::Delete { key })
        .collect();
    for (p, e, fact) in &facts {
        let mut key = vec![b'A'];
        key.extend_from_slice(&(tenant_bytes.len() as u32).to_be_bytes());
        key.extend_from_slice(tenant_bytes);
        key.extend_from_slice(&p.0);
        key.extend_from_slice(&e.to_bytes());
        ops.push(custodia_store::KvOp::Put {
            key,
            value: fact.encode(),
        });
    }
    raw.apply(ops).unwrap();
    raw.flush().unwrap();
    drop(raw);
    let _ = open_raw_store(&store_dir);

    let f = crate::tests::fixture_with(open(), clock);
    assert_eq!(decoded(&f.engine), facts, "every fact back, in order");
    assert_eq!(
        serde_json::to_value(f.engine.kpis(&app, from, to).unwrap()).unwrap(),
        kpis
    );
    // Old and new encodings side by side: a new order lands beside the repacked ones.
    f.track(&app, json!({"userId": "u3", "event": "Order Completed", "properties": {"total": 30, "currency": "EUR"}}));
    let after = f.engine.kpis(&app, from, to).unwrap();
    assert!((after.purchase_frequency.unwrap() - 8.0 / 6.0).abs() < 0.001);
}

/// The copy's shares cover every subject once, in order, for any number of shares (more
/// shares than subjects included).
#[test]
fn the_copy_s_shares_cover_every_subject_once_in_order() {
    use super::copy::{Columns, Flags, SubjectRow};
    for n_subjects in [0u8, 1, 2, 5, 9] {
        let columns = Columns::from_sorted((0..n_subjects).map(|s| {
            (
                custodia_core::Pseudonym([s * 3; 16]),
                SubjectRow {
                    consent: None,
                    flags: Flags::default(),
                    facts: Vec::new(),
                },
            )
        }));
        let mut all = Vec::new();
        columns.for_each_subject(|view| all.push(view.pseudonym));
        assert_eq!(all.len(), usize::from(n_subjects));
        for n_shares in 1..=12 {
            let shares = columns.shares(n_shares);
            assert!(!shares.is_empty() && shares.len() <= n_shares.max(1));
            let mut seen = Vec::new();
            for share in &shares {
                let mut in_share = Vec::new();
                columns.for_each_subject_in(share, |view| in_share.push(view.pseudonym));
                if n_subjects > 0 {
                    assert!(!in_share.is_empty(), "an empty share of {n_shares}");
                }
                seen.extend(in_share);
            }
            assert_eq!(seen, all, "{n_subjects} subjects in {n_shares} shares");
        }
    }
}
