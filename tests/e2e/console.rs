//! The compliance console at `/console`, in Debian's Chromium: sign-in with a compliance key (an
//! app key is refused), the request queue with the days left, the ledgers checked in the browser
//! (signature, consistency with the checkpoint seen before, inclusion of each entry shown), a
//! proof changed on the way caught, a 401 returning to sign-in, sign-out forgetting the key, the
//! page in French; no console error and no request to another origin; screenshots.

use serde_json::{Value, json};

use crate::browser::{
    Session, Tab, assert_only_this_origin_and_no_errors, change_next_response, check_accessibility,
    screenshots, unlabelled_fields,
};
use crate::harness::{Site, headers_of};

const KEY_STORE: &str = "custodia.console.key";

/// Opens the console in English, checks it as a keyboard user first meets it, and signs in with
/// `key` (a role that may see the request queue).
/// A browser of its own on the console, signed in with `key` (see [`sign_in`]).
pub(crate) async fn signed_in(name: &'static str, base: &str, key: &str) -> Session {
    let session = Session::start(name).await;
    sign_in(&session.tab, base, key).await;
    session
}

pub(crate) async fn sign_in(tab: &Tab, base: &str, key: &str) {
    tab.goto(&format!("{base}/console?lang=en")).await;
    check_accessibility(tab).await;
    tab.type_into("#api-key", key).await;
    tab.click("#signin-form button[type=submit]").await;
    tab.wait_for("!document.getElementById('view-requests').hidden")
        .await;
}

/// Flips the first hex digit of the first hash of a proof.
fn flip_first_hash(proof: &mut Value) {
    let hash = &mut proof["hashes"][0];
    let text = hash.as_str().expect("the proof has a hash").to_owned();
    let flipped = if text.starts_with('0') { "1" } else { "0" };
    *hash = Value::String(format!("{flipped}{}", &text[1..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_signs_in_sees_the_queue_and_checks_the_ledgers_in_the_browser() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let witness = format!("dir:{}", site.dir.path().join("witness").display());
    let server = site.serve(&["--checkpoint-witness", &witness]);
    let base = server.base.clone();

    // The page and its assets: a strict CSP, never framed.
    for path in [
        "/console",
        "/console/assets/console.js",
        "/console/assets/proof.js",
        "/console/assets/page.js",
        "/console/assets/console.css",
        "/console/i18n/fr.json",
    ] {
        let header = headers_of(&format!("{base}{path}"));
        let csp = header("content-security-policy");
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("script-src 'self'")
                && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert!(header("set-cookie").is_empty(), "{path} sets a cookie");
    }

    // Data for the screens: a customer with consents, and two requests.
    let identify = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "c-7", "traits": {"email": "jeanne.roux@example.fr"}}),
    );
    assert_eq!(identify.status, 200, "{:?}", identify.body);
    let consent = server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "c-7", "purpose": "marketing_email", "decision": "granted", "source": {"channel": "checkout"}}),
    );
    assert_eq!(consent.status, 201, "{:?}", consent.body);
    let mut request_ids = Vec::new();
    for (kind, email) in [
        ("access", "jeanne.roux@example.fr"),
        ("erasure", "nobody@example.org"),
    ] {
        let answer = server.post("none", "/v1/dsr", &json!({"type": kind, "email": email}));
        assert_eq!(answer.status, 202, "{:?}", answer.body);
        request_ids.push(answer.body["request_id"].as_str().unwrap().to_owned());
    }

    let session = Session::start("console").await;
    let tab = &session.tab;

    // Sign-in: an app key is refused, naming its role; nothing is kept.
    tab.goto(&format!("{base}/console?lang=en")).await;
    // First, as a keyboard user meets the page (the focus check needs that).
    check_accessibility(tab).await;
    assert_eq!(tab.text("#signin-title").await, "Sign in");
    assert!(
        !tab.eval("document.getElementById('view-signin').hidden")
            .await
            .as_bool()
            .unwrap()
    );
    tab.type_into("#api-key", &app).await;
    tab.click("#signin-form button[type=submit]").await;
    tab.wait_for("!document.getElementById('signin-error').hidden")
        .await;
    assert!(
        tab.text("#signin-error").await.contains("(app)"),
        "{}",
        tab.text("#signin-error").await
    );
    assert_eq!(
        tab.eval(&format!("sessionStorage.getItem('{KEY_STORE}')"))
            .await,
        Value::Null
    );
    tab.shoot("1-signin-refused").await;

    // A compliance key: the queue, earliest deadline first, with the days left.
    tab.eval("document.getElementById('api-key').value = ''")
        .await;
    tab.type_into("#api-key", &compliance).await;
    tab.click("#signin-form button[type=submit]").await;
    tab.wait_for("document.querySelectorAll('#requests-table tbody tr').length === 2")
        .await;
    assert!(tab.text("#whoami").await.contains("compliance"));
    assert_eq!(
        tab.eval(&format!("sessionStorage.getItem('{KEY_STORE}') !== null"))
            .await,
        json!(true)
    );
    assert_eq!(
        tab.eval(&format!("localStorage.getItem('{KEY_STORE}')"))
            .await,
        Value::Null,
        "the key is never kept beyond the tab"
    );
    let queue = tab.text("#requests-table").await;
    for id in &request_ids {
        assert!(queue.contains(&id[..8]), "{id} in {queue}");
    }
    assert!(queue.contains("Waiting for the code"), "{queue}");
    // One month from today: 27 to 30 whole days, whatever the month.
    let days: Vec<i64> = tab
        .eval("[...document.querySelectorAll('#requests-table .days')].map(d => parseInt(d.textContent, 10))")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_i64().unwrap())
        .collect();
    assert_eq!(days.len(), 2);
    assert!(days.iter().all(|d| (27..=30).contains(d)), "{days:?}");
    assert_eq!(
        tab.eval("document.querySelectorAll('[data-overdue]').length")
            .await,
        json!(0)
    );
    // The screens this role may use are offered.
    assert_eq!(
        tab.eval(
            "[...document.querySelectorAll('.tab')].filter(t => !t.hidden).map(t => t.dataset.view)"
        )
        .await,
        json!(["requests", "customer", "ledgers", "dashboard", "operations"])
    );
    tab.shoot("2-requests").await;

    // Filters: by right, client-side; the summary follows.
    tab.eval("document.getElementById('f-type').value = 'erasure'; document.getElementById('f-type').dispatchEvent(new Event('change'))")
        .await;
    tab.wait_for("document.querySelectorAll('#requests-table tbody tr').length === 1")
        .await;
    assert!(
        tab.text("#requests-summary")
            .await
            .starts_with("1 request shown,")
    );
    tab.eval("document.getElementById('f-type').value = ''; document.getElementById('f-type').dispatchEvent(new Event('change'))")
        .await;

    // A request's details.
    tab.click(&format!("button[data-request='{}']", request_ids[0]))
        .await;
    tab.wait_for("!document.getElementById('request-detail').hidden")
        .await;
    let detail = tab.text("#request-detail").await;
    assert!(
        detail.contains(&request_ids[0]) && detail.contains("Access"),
        "{detail}"
    );
    tab.shoot("3-request-detail").await;

    // The ledgers: each checkpoint's signature checked in the browser, first sight remembered.
    tab.click(".tab[data-view='ledgers']").await;
    tab.wait_for("document.querySelectorAll('#logs [data-verified]').length === 2")
        .await;
    assert_eq!(
        tab.eval(
            "[...document.querySelectorAll('#logs [data-verified]')].map(n => n.dataset.verified)"
        )
        .await,
        json!(["true", "true"]),
        "{}",
        tab.text("#logs").await
    );
    let seen_before: u64 = {
        let raw = tab
            .eval(
                "localStorage.getItem(Object.keys(localStorage).find(k => k.endsWith('.ledger')))",
            )
            .await;
        let stored: Value = serde_json::from_str(raw.as_str().unwrap()).unwrap();
        stored["size"].as_u64().unwrap()
    };
    assert!(
        seen_before >= 2,
        "policy and consent entries: {seen_before}"
    );

    // The ledger grows; "verify now" proves the new checkpoint extends the one seen.
    for purpose in ["personalization", "analytics"] {
        let consent = server.post(
            &app,
            "/v1/consents",
            &json!({"user_id": "c-7", "purpose": purpose, "decision": "granted", "source": {"channel": "checkout"}}),
        );
        assert_eq!(consent.status, 201, "{:?}", consent.body);
    }
    tab.click("button[data-verify='ledger']").await;
    tab.wait_for("document.querySelector('[data-log=ledger] [data-verified]')")
        .await;
    let card = tab.text("[data-log=ledger]").await;
    assert_eq!(
        tab.eval("document.querySelector('[data-log=ledger] [data-verified]').dataset.verified")
            .await,
        json!("true"),
        "{card}"
    );
    assert!(
        card.contains(&format!("extend the {seen_before} entries")),
        "{card}"
    );
    // When the latest checkpoint was signed: a moment ago.
    assert_eq!(
        tab.eval("document.querySelector('[data-log=ledger] [data-checkpoint-age]').dataset.checkpointAge")
            .await,
        json!("0")
    );
    // The witness directory holds the checkpoint the browser just checked.
    assert!(
        card.contains("Witness directory") && card.contains("holds the checkpoint of"),
        "{card}"
    );
    tab.shoot("4-ledgers").await;

    // Entries by position, each one's inclusion proven against the signed checkpoint.
    tab.click("#browse-form button[type=submit]").await;
    tab.wait_for("document.querySelectorAll('#browse-table tbody tr').length > 0")
        .await;
    assert_eq!(
        tab.eval("[...document.querySelectorAll('#browse-table [data-verified]')].every(b => b.dataset.verified === 'true')")
            .await,
        json!(true),
        "{}",
        tab.text("#browse-table").await
    );
    assert!(tab.text("#browse-table").await.contains("consent.granted"));

    // A consistency proof changed on the way: not verified, and the last good checkpoint stays.
    server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "c-7", "purpose": "personalization", "decision": "withdrawn", "source": {"channel": "account"}}),
    );
    let interceptor = change_next_response(tab, "*/proof/consistency*", flip_first_hash).await;
    tab.click("button[data-verify='ledger']").await;
    tab.wait_for("document.querySelector('[data-log=ledger] [data-verified]')")
        .await;
    interceptor.await.unwrap();
    assert_eq!(
        tab.eval("document.querySelector('[data-log=ledger] [data-verified]').dataset.verified")
            .await,
        json!("false")
    );
    assert!(tab.text("[data-log=ledger]").await.contains("Not verified"));
    tab.shoot("5-ledger-tampered").await;
    // Unchanged, it verifies again against the last good checkpoint.
    tab.click("button[data-verify='ledger']").await;
    tab.wait_for("document.querySelector('[data-log=ledger] [data-verified]')")
        .await;
    assert_eq!(
        tab.eval("document.querySelector('[data-log=ledger] [data-verified]').dataset.verified")
            .await,
        json!("true")
    );

    // A key the server no longer accepts: the next call returns to sign-in and forgets it.
    tab.eval(&format!(
        "sessionStorage.setItem('{KEY_STORE}', 'cust_live_not_a_key')"
    ))
    .await;
    tab.click(".tab[data-view='requests']").await;
    tab.wait_for("!document.getElementById('view-signin').hidden")
        .await;
    assert!(
        tab.text("#signin-error")
            .await
            .contains("no longer accepts")
    );
    assert_eq!(
        tab.eval(&format!("sessionStorage.getItem('{KEY_STORE}')"))
            .await,
        Value::Null
    );

    // Sign in again, then sign out: the key is gone.
    tab.type_into("#api-key", &compliance).await;
    tab.click("#signin-form button[type=submit]").await;
    tab.wait_for("!document.getElementById('view-requests').hidden")
        .await;
    tab.click("#sign-out").await;
    tab.wait_for("!document.getElementById('view-signin').hidden")
        .await;
    assert_eq!(
        tab.eval(&format!("sessionStorage.getItem('{KEY_STORE}')"))
            .await,
        Value::Null
    );
    assert_eq!(
        tab.eval("document.getElementById('tabs').hidden").await,
        json!(true)
    );

    // French, from the browser's language.
    let tab_fr = Tab::open(&session.browser, &screenshots(), "console").await;
    tab_fr
        .page
        .execute(
            chromiumoxide::cdp::browser_protocol::network::SetExtraHttpHeadersParams::new(
                chromiumoxide::cdp::browser_protocol::network::Headers::new(
                    json!({"Accept-Language": "fr-FR,fr;q=0.9"}),
                ),
            ),
        )
        .await
        .unwrap();
    tab_fr.width(1280).await;
    tab_fr.goto(&format!("{base}/console")).await;
    check_accessibility(&tab_fr).await;
    assert_eq!(
        tab_fr.eval("document.documentElement.lang").await,
        json!("fr")
    );
    assert_eq!(tab_fr.text("#signin-title").await, "Connexion");
    tab_fr.type_into("#api-key", &compliance).await;
    tab_fr.click("#signin-form button[type=submit]").await;
    tab_fr
        .wait_for("document.querySelectorAll('#requests-table tbody tr').length === 2")
        .await;
    assert!(
        tab_fr
            .text("#requests-table")
            .await
            .contains("En attente du code")
    );
    assert!(
        tab_fr
            .text("#requests-table")
            .await
            .contains("jours restants")
    );
    tab_fr.shoot("6-requests-fr").await;
    tab_fr.click(".tab[data-view='ledgers']").await;
    tab_fr
        .wait_for("document.querySelectorAll('#logs [data-verified]').length === 2")
        .await;
    assert!(tab_fr.text("#logs").await.contains("Vérifié"));
    tab_fr.shoot("7-ledgers-fr").await;

    // Accessibility basics: every input and select labelled, one h1 per view, lang set.
    for t in [tab, &tab_fr] {
        assert_eq!(
            unlabelled_fields(t).await,
            json!([]),
            "fields without a label"
        );
        check_accessibility(t).await;
        assert_eq!(
            t.eval("[...document.querySelectorAll('main > section')].every(s => s.querySelectorAll('h1').length === 1)")
                .await,
            json!(true)
        );
    }

    // Nothing but this origin, and not one console error.
    for t in [tab, &tab_fr] {
        assert_only_this_origin_and_no_errors(t, &base);
        assert!(
            t.watch
                .lock()
                .unwrap()
                .urls
                .iter()
                .any(|u| u.ends_with("/console/assets/proof.js"))
        );
    }

    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_looks_up_a_customer_for_a_purpose_and_a_legal_hold_stops_an_erasure() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let base = server.base.clone();
    let identify = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "c-9", "traits": {"email": "lea.moreau@example.fr", "firstName": "Léa", "phone": "+33 6 12 34 56 78"}}),
    );
    assert_eq!(identify.status, 200, "{:?}", identify.body);
    // An anonymous visit before she signed in: one merge.
    let visit = server.post(
        &app,
        "/v1/track",
        &json!({"anonymousId": "visit-9", "event": "Product Viewed", "properties": {"product_id": "p-1"}}),
    );
    assert_eq!(visit.status, 200, "{:?}", visit.body);
    let linked = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "c-9", "anonymousId": "visit-9"}),
    );
    assert_eq!(linked.status, 200, "{:?}", linked.body);
    for (purpose, decision) in [
        ("marketing_email", "granted"),
        ("analytics", "granted"),
        ("marketing_email", "withdrawn"),
    ] {
        let answer = server.post(
            &app,
            "/v1/consents",
            &json!({"user_id": "c-9", "purpose": purpose, "decision": decision, "source": {"channel": "account"}}),
        );
        assert_eq!(answer.status, 201, "{:?}", answer.body);
    }

    let session = signed_in("console", &base, &compliance).await;
    let tab = &session.tab;

    // The look-up needs a purpose, chosen among those of the compliance role.
    tab.click(".tab[data-view='customer']").await;
    tab.wait_for("document.querySelectorAll('#l-purpose option').length > 0")
        .await;
    let offered = tab
        .eval("[...document.querySelectorAll('#l-purpose option')].map(o => o.value)")
        .await;
    assert_eq!(
        offered,
        json!([
            "customer_support",
            "fraud_prevention",
            "accounting",
            "analytics"
        ]),
        "only the role's purposes, in policy order"
    );
    tab.click("#lookup-form button[type=submit]").await;
    tab.wait_for("!document.getElementById('lookup-error').hidden")
        .await;
    tab.type_into("#l-value", "lea.moreau@example.fr").await;
    tab.click("#lookup-form button[type=submit]").await;
    tab.wait_for("document.querySelector('[data-section=section_history]')")
        .await;

    // The merge identity resolution made, with the anonymous visitor's id.
    let merges = tab.text("[data-section=section_merges]").await;
    assert!(
        merges.contains(visit.body["subject_id"].as_str().unwrap()),
        "{merges}"
    );

    // Masked until revealed; every consent entry proven in the browser.
    let masked = tab.text("[data-section=section_profile]").await;
    assert!(masked.contains("l•••@e•••.fr"), "{masked}");
    assert!(!masked.contains("lea.moreau"), "{masked}");
    assert!(!masked.contains("56 78"), "{masked}");
    let proofs = tab
        .eval("[...document.querySelectorAll('[data-section=section_history] [data-verified]')].map(b => b.dataset.verified)")
        .await;
    // The merge and the three decisions.
    assert_eq!(
        proofs,
        json!(["true", "true", "true", "true"]),
        "{}",
        tab.text("#customer-panel").await
    );
    let consents = tab.text("[data-section=section_consents]").await;
    assert!(
        consents.contains("Withdrawn")
            && consents.contains("Granted")
            && consents.contains("Not needed: contract"),
        "{consents}"
    );
    tab.shoot("8-customer-masked").await;

    tab.click("#reveal").await;
    tab.wait_for("document.querySelector('[data-section=section_profile]').innerText.includes('lea.moreau@example.fr')")
        .await;
    // The look-up and the reveal are two reads in the access log, under this key and purpose.
    tab.wait_for("document.querySelectorAll('[data-section=section_access] tbody tr').length >= 2")
        .await;
    let access = tab.text("[data-section=section_access]").await;
    assert!(
        access.contains("compliance") && access.contains("customer_support"),
        "{access}"
    );
    let log = server.get(&compliance, "/v1/audit/access?limit=100");
    assert!(
        log.body["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["purpose"] == json!("customer_support"))
            .count()
            >= 2,
        "{:?}",
        log.body
    );
    tab.shoot("9-customer-revealed").await;

    // A legal hold from the console refuses a later erasure, with the reason on screen.
    tab.eval("window.confirm = () => true").await;
    tab.click("#toggle-hold").await;
    tab.wait_for("document.querySelector('[data-flag=legal_hold]') && document.querySelector('[data-flag=legal_hold]').innerText === 'Yes'")
        .await;
    tab.click("#erase").await;
    tab.wait_for("!document.getElementById('flags-error').hidden")
        .await;
    let refusal = tab.text("#flags-error").await;
    assert!(refusal.contains("legal hold"), "{refusal}");
    tab.shoot("10-customer-hold-refuses-erasure").await;
    let flags = server.get(
        &compliance,
        &format!(
            "/v1/subjects/{}/flags",
            identify.body["subject_id"].as_str().unwrap()
        ),
    );
    assert_eq!(flags.body["legal_hold"], json!(true));

    // Lifted, the erasure goes through and the page says where its receipt is.
    tab.click("#toggle-hold").await;
    tab.wait_for("document.querySelector('[data-flag=legal_hold]') && document.querySelector('[data-flag=legal_hold]').innerText === 'No'")
        .await;
    // First what the erasure would do, as the API's preview says it; then the erasure.
    tab.click("#erase").await;
    tab.wait_for("document.getElementById('erase-preview')")
        .await;
    let preview = tab.text("#erase-preview").await;
    assert!(preview.contains("the profile"), "{preview}");
    tab.shoot("10b-erasure-preview").await;
    tab.click("#erase-confirm").await;
    tab.wait_for("document.querySelector('#customer-panel .result.ok')")
        .await;
    assert!(
        tab.text("#customer-panel")
            .await
            .contains("Receipt at ledger position")
    );

    // French labels on the same screen.
    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    assert_eq!(tab.text("#customer-title").await, "Un client");

    assert_eq!(unlabelled_fields(tab).await, json!([]));
    check_accessibility(tab).await;
    assert_only_this_origin_and_no_errors(tab, &base);
    session.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loyalty_dashboard_shows_the_apis_figures_with_suppressed_cells_marked() {
    let site = Site::new();
    let server = site.serve_demo();
    let compliance = site.demo_key("compliance");
    let base = server.base.clone();

    let session = signed_in("console", &base, &compliance).await;
    let tab = &session.tab;
    tab.click(".tab[data-view='dashboard']").await;
    tab.wait_for("document.querySelectorAll('#kpis [data-kpi]').length === 8 && document.querySelectorAll('#rfm [data-segment]').length === 11")
        .await;

    // The same period through the API: the page's days, the end day included.
    let from = tab
        .eval("new Date(document.getElementById('p-from').value + 'T00:00:00Z').toISOString()")
        .await;
    let to = tab
        .eval("new Date(new Date(document.getElementById('p-to').value + 'T00:00:00Z').getTime() + 86400000).toISOString()")
        .await;
    let kpis = server.get(
        &compliance,
        &format!(
            "/v1/analytics/kpis?from={}&to={}",
            from.as_str().unwrap(),
            to.as_str().unwrap()
        ),
    );
    assert_eq!(kpis.status, 200, "{:?}", kpis.body);
    let segments = server.get(&compliance, "/v1/analytics/segments");
    assert_eq!(segments.status, 200, "{:?}", segments.body);
    let figure = |name: &str| {
        let name = name.to_owned();
        let tab = &tab;
        async move { tab.text(&format!("[data-kpi='{name}'] .figure")).await }
    };
    let digits = |text: &str| {
        text.chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
    };
    assert_eq!(
        digits(&figure("customers").await),
        kpis.body["customers"].to_string(),
        "customers"
    );
    assert!(
        kpis.body["customers"].as_u64().unwrap() > 0,
        "the demo has customers"
    );
    if let Some(nps) = kpis.body["nps"].as_f64() {
        assert_eq!(
            figure("nps").await,
            format!("{nps:.1}").trim_end_matches(".0")
        );
    }
    let frequency = kpis.body["purchase_frequency"].as_f64().unwrap();
    assert_eq!(
        figure("purchase_frequency").await,
        format!("{:.2}", frequency)
            .trim_end_matches('0')
            .trim_end_matches('.')
    );
    for (currency, amount) in kpis.body["average_order_value"]["by_currency"]
        .as_object()
        .unwrap()
    {
        let shown = figure("average_order_value").await;
        assert!(
            shown.contains(&format!("{:.2}", amount.as_f64().unwrap())),
            "{currency} {amount} in {shown}"
        );
    }
    let summary = tab.text("#dashboard-summary").await;
    assert!(
        summary.contains(&kpis.body["excluded_for_consent"].to_string()),
        "{summary}"
    );

    // Segments and journey stages: each count as the API gives it, suppressed ones marked as
    // such and never as 0.
    let suppressed: Vec<String> = segments.body["suppressed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert!(!suppressed.is_empty(), "the demo has small cells");
    for (group, attribute, selector) in [
        ("rfm", "data-segment", "#rfm"),
        ("journey", "data-stage", "#funnel"),
    ] {
        for (name, count) in segments.body[group].as_object().unwrap() {
            let cell = format!("{selector} [{attribute}='{name}']");
            let marked = tab
                .eval(&format!(
                    "document.querySelector(\"{cell}\").dataset.suppressed"
                ))
                .await;
            let text = tab.text(&cell).await;
            if suppressed.contains(&format!("{group}.{name}")) {
                assert_eq!(count, &Value::Null);
                assert_eq!(marked, json!("true"), "{cell}");
                assert!(
                    text.contains("Suppressed") && !text.contains('0'),
                    "{cell}: {text}"
                );
            } else {
                assert_eq!(marked, json!("false"), "{cell}");
                assert!(
                    text.contains(&count.to_string()),
                    "{cell}: {text} vs {count}"
                );
            }
        }
    }
    // The trend: one point per month of the API's series (the default period is a year),
    // suppressed points said as such.
    let series = server.get(
        &compliance,
        &format!(
            "/v1/analytics/kpis?from={}&to={}&series=month",
            from.as_str().unwrap(),
            to.as_str().unwrap()
        ),
    );
    assert_eq!(series.status, 200, "{:?}", series.body);
    let points = series.body["series"]["points"].as_array().unwrap();
    tab.wait_for("document.querySelectorAll('#trend tbody tr').length > 0")
        .await;
    let shown: Vec<Value> = tab
        .eval("[...document.querySelectorAll('#trend tbody tr td:last-child span')].map(s => s.dataset.suppressed === 'true' ? null : parseInt(s.textContent.replace(/\\D/g, ''), 10))")
        .await
        .as_array()
        .unwrap()
        .clone();
    let expected: Vec<Value> = points.iter().map(|p| p["customers"].clone()).collect();
    assert_eq!(shown, expected, "customers per month");
    check_accessibility(tab).await;
    tab.shoot("11-dashboard").await;

    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    assert_eq!(tab.text("#dashboard-title").await, "Fidélité");
    assert!(tab.text("#rfm").await.contains("Masqué"));
    tab.shoot("12-dashboard-fr").await;
    // Nothing sticks out of a phone's screen (the visually hidden table heads aside).
    tab.width(360).await;
    let wide = tab
        .eval("[...document.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !e.closest('thead')).map(e => e.tagName + '#' + e.id + '.' + e.className)")
        .await;
    assert_eq!(wide, json!([]), "wider than 360 px");
    tab.width(1280).await;
    assert_only_this_origin_and_no_errors(tab, &base);
    session.close().await;
}
