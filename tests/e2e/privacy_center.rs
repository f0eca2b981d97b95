//! The privacy center in a real browser: Debian's Chromium, driven over the DevTools protocol,
//! against the real binary. Screenshots of each step at 1280 px and 360 px go to
//! `target/screenshots/`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::network::{Headers, SetExtraHttpHeadersParams};
use chromiumoxide::cdp::browser_protocol::page::AddScriptToEvaluateOnNewDocumentParams;
use serde_json::{Value, json};

use crate::browser::{
    Tab, assert_only_this_origin_and_no_errors, change_next_response, check_accessibility, launch,
    screenshots, unlabelled_fields,
};
use crate::harness::{Server, Site, headers_of};

const REQUEST_KEY: &str = "custodia.privacy.request";

impl Tab {
    fn request_id(value: &Value) -> String {
        let stored: Value =
            serde_json::from_str(value.as_str().expect("a stored request")).unwrap();
        stored["requestId"].as_str().unwrap().to_owned()
    }

    async fn stored_request_id(&self) -> String {
        Tab::request_id(
            &self
                .eval(&format!("sessionStorage.getItem('{REQUEST_KEY}')"))
                .await,
        )
    }
}

/// The one-time code the outbox holds for a request.
fn outbox_code(site: &Site, request_id: &str) -> String {
    let path = site
        .dir
        .path()
        .join("outbox")
        .join(format!("{request_id}-dsr_verification.json"));
    let started = Instant::now();
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            let message: Value = serde_json::from_str(&text).unwrap();
            return message["code"].as_str().unwrap().to_owned();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no code in the outbox"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A customer with an order, a review and a consent, created through the API.
fn seed_customer(server: &Server, app: &str) {
    let identify = server.post(
        app,
        "/v1/identify",
        &json!({"userId": "c-100", "traits": {"email": "claire.martin@example.fr", "firstName": "Claire", "lastName": "Martin", "address": {"city": "Lyon", "country": "FR"}}}),
    );
    assert_eq!(identify.status, 200, "{:?}", identify.body);
    for (event, properties) in [
        (
            "Order Completed",
            json!({"order_id": "F-2026-0042", "total": 59.9, "currency": "EUR"}),
        ),
        (
            "Review Submitted",
            json!({"product_id": "sku-teapot", "rating": 5}),
        ),
    ] {
        let track = server.post(
            app,
            "/v1/track",
            &json!({"userId": "c-100", "event": event, "properties": properties}),
        );
        assert_eq!(track.status, 200, "{:?}", track.body);
    }
    let consent = server.post(
        app,
        "/v1/consents",
        &json!({"user_id": "c-100", "purpose": "marketing_email", "decision": "granted", "source": {"channel": "checkout"}}),
    );
    assert_eq!(consent.status, 201, "{:?}", consent.body);
}

/// Flips one character of the first consent entry's proof in an export answer.
fn tamper(export: &mut Value) {
    let hash = &mut export["consent_history"]["entries"][0]["inclusion_proof"]["hashes"][0];
    let text = hash.as_str().expect("the entry has a proof").to_owned();
    let flipped = if text.starts_with('0') { "1" } else { "0" };
    *hash = Value::String(format!("{flipped}{}", &text[1..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_sees_verified_data_erases_it_and_reads_the_page_in_french() {
    let site = Site::new();
    let app = site.create_key("app");
    let server = site.serve(&[]);
    seed_customer(&server, &app);
    let base = server.base.clone();

    // Headers: a strict CSP and friends on the page and its assets.
    for path in [
        "/privacy",
        "/privacy/assets/privacy.js",
        "/privacy/assets/privacy.css",
        "/privacy/assets/brand.css",
        "/privacy/assets/logo.svg",
        "/privacy/i18n/fr.json",
        "/privacy/config.json",
    ] {
        let header = headers_of(&format!("{base}{path}"));
        assert!(
            header("content-security-policy").contains("default-src 'none'")
                && header("content-security-policy").contains("script-src 'self'"),
            "{path}: {}",
            header("content-security-policy")
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert!(header("set-cookie").is_empty(), "{path} sets a cookie");
    }

    let shots = screenshots();
    let profile = tempfile::tempdir().unwrap();
    let (mut browser, driver) = launch(profile.path()).await;
    let tab = Tab::open(&browser, &shots, "privacy").await;
    tab.width(1280).await;

    // The rights, in English.
    tab.goto(&format!("{base}/privacy?lang=en")).await;
    assert_eq!(tab.eval("document.documentElement.lang").await, json!("en"));
    assert_eq!(tab.text("h1").await, "Your rights over your data");
    assert_eq!(
        tab.eval("document.querySelectorAll('.tile').length").await,
        json!(6)
    );
    // The demo policies' branding: the shop's logo and colour.
    tab.wait_for("!document.getElementById('shop-logo').hidden && document.getElementById('shop-logo').complete")
        .await;
    assert_eq!(
        tab.eval("document.getElementById('shop-logo').naturalWidth > 0")
            .await,
        json!(true),
        "the logo loads"
    );
    assert_eq!(
        tab.eval("getComputedStyle(document.querySelector('.tile button')).backgroundColor")
            .await,
        json!("rgb(138, 45, 82)"),
        "the accent colour comes from brand.css"
    );
    tab.shoot("1-rights").await;

    // Access: the form, the code from the outbox, the status.
    tab.click("button[data-right='access']").await;
    tab.wait_for("!document.getElementById('view-form').hidden")
        .await;
    assert_eq!(
        tab.eval("['field-user', 'suppress-box', 'rectify-fields'].map(id => getComputedStyle(document.getElementById(id)).display)")
            .await,
        json!(["none", "none", "none"]),
        "an access request asks only for the e-mail address"
    );
    tab.type_into("#email", "claire.martin@example.fr").await;
    tab.shoot("2-access-form").await;
    tab.click("#request-form button[type='submit']").await;
    tab.wait_for("!document.getElementById('view-code').hidden")
        .await;
    tab.shoot("3-code").await;
    let request_id = tab.stored_request_id().await;
    assert_eq!(
        tab.eval("location.href.includes('code') || location.href.includes('token')")
            .await,
        json!(false),
        "no code or token in the URL"
    );
    tab.type_into("#code", "000000").await;
    tab.click("#code-form button[type='submit']").await;
    tab.wait_for("!document.getElementById('code-error').hidden")
        .await;
    assert!(tab.text("#code-error").await.contains("not right"));
    tab.eval("document.getElementById('code').value = ''").await;
    tab.type_into("#code", &outbox_code(&site, &request_id))
        .await;
    tab.click("#code-form button[type='submit']").await;
    tab.wait_for("!document.getElementById('view-status').hidden")
        .await;
    assert!(tab.text("#status-facts").await.contains("Completed"));

    // The export, rendered, each consent entry verified in the browser.
    tab.click("#show-data").await;
    tab.wait_for("document.querySelectorAll('[data-verified]').length > 0")
        .await;
    let export_text = tab.text("#export-view").await;
    for expected in [
        "claire.martin@example.fr",
        "Lyon",
        "Order Completed",
        "Review Submitted",
        "Marketing e-mails",
    ] {
        assert!(
            export_text
                .to_lowercase()
                .contains(&expected.to_lowercase()),
            "the export shows {expected}: {export_text}"
        );
    }
    // Profile fields are named in words, not by their keys.
    let fields = tab
        .eval("[...document.querySelectorAll('#export-view table')][0].innerText")
        .await;
    let fields = fields.as_str().unwrap_or_default();
    for label in ["First name", "Last name", "City", "Country"] {
        assert!(
            fields.contains(label),
            "the profile names {label}: {fields}"
        );
    }
    assert!(
        !fields.contains("firstName") && !fields.contains("address.city"),
        "no raw keys: {fields}"
    );
    // In French, the purposes, categories, recipients and rights read as the policies word them
    // in French.
    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    let export_fr = tab.text("#export-view").await;
    for expected in [
        "Exécution des commandes",
        "Historique d'achats",
        "Prestataires de transport et de logistique",
        "Vous pouvez retirer votre consentement à tout moment",
        "Prénom",
        "Recueillies auprès de vous par la boutique",
        "Aucune : aucune décision",
    ] {
        assert!(export_fr.contains(expected), "{expected}: {export_fr}");
    }
    assert!(!export_fr.contains("Order fulfilment"), "{export_fr}");
    tab.click("button[data-lang='en']").await;
    tab.wait_for("document.documentElement.lang === 'en'").await;
    assert_eq!(
        tab.eval("[...document.querySelectorAll('[data-verified]')].every(b => b.dataset.verified === 'true')")
            .await,
        json!(true),
        "every consent entry verifies: {} {export_text}",
        tab.eval("JSON.stringify([...document.querySelectorAll('[data-verified]')].map(b => b.dataset.reason || 'ok'))").await
    );
    tab.shoot("4-export-verified").await;

    // The JSON download is the bundle.
    let downloads = tempfile::tempdir().unwrap();
    browser
        .execute(
            chromiumoxide::cdp::browser_protocol::browser::SetDownloadBehaviorParams::builder()
                .behavior(chromiumoxide::cdp::browser_protocol::browser::SetDownloadBehaviorBehavior::Allow)
                .download_path(downloads.path().to_str().unwrap())
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    tab.click("#download-json").await;
    let downloaded = downloads.path().join("my-data.json");
    let started = Instant::now();
    while !downloaded.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "no download");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bundle: Value = serde_json::from_slice(&std::fs::read(&downloaded).unwrap()).unwrap();
    assert_eq!(bundle["request_id"], json!(request_id));
    assert_eq!(bundle["data"]["user_id"], json!("c-100"));

    // A proof changed on the way shows "not verified".
    let interceptor = change_next_response(&tab, "*/export", tamper).await;
    tab.click("#show-data").await;
    tab.wait_for("document.querySelector('[data-verified=\"false\"]')")
        .await;
    interceptor.await.unwrap();
    assert!(tab.text("#export-view").await.contains("Not verified"));
    tab.shoot("5-export-tampered").await;

    // Erasure with suppression: what was erased, what the law keeps, and no new data.
    tab.click("#view-status .back").await;
    tab.wait_for("!document.getElementById('view-rights').hidden")
        .await;
    tab.click("button[data-right='erasure']").await;
    tab.wait_for("!document.getElementById('suppress-box').hidden")
        .await;
    tab.click("#id-user").await;
    tab.type_into("#user_id", "c-100").await;
    tab.click("#suppress").await;
    tab.shoot("6-erasure-form").await;
    tab.click("#request-form button[type='submit']").await;
    tab.wait_for("!document.getElementById('view-code').hidden")
        .await;
    let erasure_id = tab.stored_request_id().await;
    assert_ne!(erasure_id, request_id);
    tab.type_into("#code", &outbox_code(&site, &erasure_id))
        .await;
    tab.click("#code-form button[type='submit']").await;
    tab.wait_for("!document.getElementById('view-status').hidden")
        .await;
    let outcome = tab.text("#outcome").await;
    assert!(outcome.contains("Your data has been erased"), "{outcome}");
    assert!(
        outcome.contains("What the law makes the shop keep"),
        "{outcome}"
    );
    assert!(
        outcome.contains("will not store data about you again"),
        "{outcome}"
    );
    assert!(outcome.contains("Tax and commercial law"), "{outcome}");
    tab.shoot("7-erasure-outcome").await;
    // In French, the reason the law keeps the invoices is the policies' French wording.
    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    let outcome_fr = tab.text("#outcome").await;
    assert!(
        outcome_fr.contains("Le droit fiscal et commercial"),
        "{outcome_fr}"
    );
    assert!(
        !outcome_fr.contains("Tax and commercial law"),
        "{outcome_fr}"
    );
    tab.shoot("7-erasure-outcome-fr").await;
    tab.click("button[data-lang='en']").await;
    tab.wait_for("document.documentElement.lang === 'en'").await;
    let again = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "c-100", "traits": {"firstName": "Claire"}}),
    );
    assert!(
        (400..500).contains(&again.status),
        "a suppressed person is not stored again: {} {:?}",
        again.status,
        again.body
    );

    // French, chosen from Accept-Language; the switch goes back to English.
    let fr = browser.new_page("about:blank").await.unwrap();
    let tab_fr = Tab {
        page: fr,
        watch: Arc::clone(&tab.watch),
        shots: shots.clone(),
        name: "privacy",
    };
    tab_fr
        .page
        .execute(SetExtraHttpHeadersParams::new(Headers::new(
            json!({"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"}),
        )))
        .await
        .unwrap();
    tab_fr.width(1280).await;
    tab_fr.goto(&format!("{base}/privacy")).await;
    assert_eq!(
        tab_fr.eval("document.documentElement.lang").await,
        json!("fr")
    );
    assert_eq!(tab_fr.text("h1").await, "Vos droits sur vos données");
    tab_fr.shoot("8-rights-fr").await;
    tab_fr.click("button[data-lang='en']").await;
    tab_fr
        .wait_for("document.documentElement.lang === 'en'")
        .await;
    assert_eq!(tab_fr.text("h1").await, "Your rights over your data");

    // Accessibility basics: every input labelled, one h1 per view, lang set.
    assert_eq!(
        unlabelled_fields(&tab_fr).await,
        json!([]),
        "fields without a label"
    );

    // Nothing but this origin, and not one console error.
    {
        let watch = tab.watch.lock().unwrap();
        let foreign: Vec<_> = watch
            .urls
            .iter()
            .filter(|u| {
                !(u.starts_with(&base) || u.starts_with("about:") || u.starts_with("blob:"))
            })
            .collect();
        assert!(foreign.is_empty(), "requests to other origins: {foreign:?}");
        assert!(
            watch
                .urls
                .iter()
                .any(|u| u.ends_with("/privacy/assets/privacy.js")),
            "the request log works"
        );
        assert!(
            watch.errors.is_empty(),
            "console errors: {:?}",
            watch.errors
        );
    }

    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    // The requests made through the page leave no plaintext in the log.
    let log = std::fs::read_to_string(site.log_path()).unwrap();
    assert!(!log.contains("claire.martin@example.fr") && !log.contains("Claire"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_free_text_rectification_goes_to_a_person_and_leaves_no_plaintext() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    seed_customer(&server, &app);
    let base = server.base.clone();
    let note = "Canary-Note-my maiden name Quenelle-4471 is wrong";

    let shots = screenshots();
    let profile = tempfile::tempdir().unwrap();
    let (mut browser, driver) = launch(profile.path()).await;
    let tab = Tab::open(&browser, &shots, "privacy").await;
    tab.width(1280).await;
    tab.goto(&format!("{base}/privacy?lang=en")).await;
    check_accessibility(&tab).await;

    tab.click("button[data-right='rectification']").await;
    tab.wait_for("!document.getElementById('rectify-fields').hidden")
        .await;
    tab.click("#id-user").await;
    tab.type_into("#user_id", "c-100").await;
    tab.type_into("#r-note", note).await;
    check_accessibility(&tab).await;
    tab.shoot("9-rectification-note").await;
    tab.click("#request-form button[type='submit']").await;
    tab.wait_for("!document.getElementById('view-code').hidden")
        .await;
    let request_id = tab.stored_request_id().await;
    tab.type_into("#code", &outbox_code(&site, &request_id))
        .await;
    tab.click("#code-form button[type='submit']").await;
    tab.wait_for("!document.getElementById('view-status').hidden")
        .await;
    assert!(
        tab.text("#status-facts")
            .await
            .contains("With a person at the shop")
    );
    let outcome = tab.text("#outcome").await;
    assert!(
        outcome.contains("A person at the shop will read your request"),
        "{outcome}"
    );
    check_accessibility(&tab).await;
    tab.shoot("10-rectification-queued").await;

    // The compliance queue holds it, without the note.
    let queue = server.get(&compliance, "/v1/dsr?status=awaiting_compliance");
    assert_eq!(queue.status, 200, "{:?}", queue.body);
    let requests = queue.body["requests"].as_array().unwrap();
    assert!(
        requests
            .iter()
            .any(|r| r["request_id"] == json!(request_id) && r["status"] == "awaiting_compliance"),
        "{requests:?}"
    );
    assert!(!queue.body.to_string().contains("Quenelle"));

    // A person at the shop refuses it with a reason; back on the page, the requester reads it
    // with their right to complain, in English and in French.
    let reason = "Canary-Reason-our records match your ID card 5523";
    let refused = server.post(
        &compliance,
        &format!("/v1/dsr/{request_id}/reject"),
        &json!({ "reason": reason }),
    );
    assert_eq!(refused.status, 200, "{:?}", refused.body);
    tab.goto(&format!("{base}/privacy?lang=en")).await;
    tab.wait_for("document.querySelector('#notices [data-notice=rejected]')")
        .await;
    let outcome = tab.text("#outcome").await;
    assert!(
        outcome.contains("The shop refused your request"),
        "{outcome}"
    );
    assert!(outcome.contains(reason), "{outcome}");
    assert!(outcome.contains("lodge a complaint"), "{outcome}");
    assert!(tab.text("#status-facts").await.contains("Refused"));
    check_accessibility(&tab).await;
    tab.shoot("11-rectification-refused").await;
    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    assert!(
        tab.text("#outcome")
            .await
            .contains("Votre demande a été refusée")
    );

    {
        let watch = tab.watch.lock().unwrap();
        let foreign: Vec<_> = watch
            .urls
            .iter()
            .filter(|u| !(u.starts_with(&base) || u.starts_with("about:")))
            .collect();
        assert!(foreign.is_empty(), "requests to other origins: {foreign:?}");
        assert!(
            watch.errors.is_empty(),
            "console errors: {:?}",
            watch.errors
        );
    }
    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();

    // P1 through the page: the note is nowhere on disk or in the log, in any encoding.
    assert!(server.stop().success());
    let (hits, n_bytes) = site.plaintext_hits(&[note, "Quenelle-4471", "ID card 5523"]);
    assert!(n_bytes > 10_000, "scanned {n_bytes} bytes only");
    assert!(hits.is_empty(), "plaintext on disk:\n{}", hits.join("\n"));
}

/// Asks for a "manage my consent" session on the page and enters the code from the outbox.
async fn open_consent_session(tab: &Tab, site: &Site, identify: (&str, &str)) {
    tab.click("#open-consent").await;
    tab.wait_for("!document.getElementById('view-form').hidden")
        .await;
    assert_eq!(
        tab.eval("['suppress-box', 'rectify-fields'].map(id => getComputedStyle(document.getElementById(id)).display)")
            .await,
        json!(["none", "none"]),
        "a consent request asks only who the person is"
    );
    let (field, value) = identify;
    if field == "user_id" {
        tab.click("#id-user").await;
    }
    tab.type_into(&format!("#{field}"), value).await;
    tab.click("#request-form button[type='submit']").await;
    tab.wait_for("!document.getElementById('view-code').hidden")
        .await;
    let request_id = tab.stored_request_id().await;
    tab.type_into("#code", &outbox_code(site, &request_id))
        .await;
    tab.click("#code-form button[type='submit']").await;
    // The list is drawn before the view is shown.
    tab.wait_for("!document.getElementById('view-consent').hidden")
        .await;
}

/// The consent-ledger entries about `purpose` recorded from the privacy center, read through
/// the API with a compliance key.
fn privacy_center_entries(server: &Server, compliance: &str, purpose: &str) -> Vec<Value> {
    let answer = server.get(compliance, "/v1/ledger/entries?from=0&limit=1000");
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    answer.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["purpose"] == json!(purpose) && e["source"]["channel"] == "privacy_center")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_turns_a_consent_off_and_the_ledger_records_it_from_the_privacy_center() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    seed_customer(&server, &app);
    let base = server.base.clone();

    let shots = screenshots();
    let profile = tempfile::tempdir().unwrap();
    let (mut browser, driver) = launch(profile.path()).await;
    let tab = Tab::open(&browser, &shots, "privacy").await;
    tab.width(1280).await;
    tab.goto(&format!("{base}/privacy?lang=en")).await;
    check_accessibility(&tab).await;
    assert!(
        tab.text("#consent-entry")
            .await
            .contains("Manage my consent")
    );
    tab.shoot("11-consent-entry").await;

    open_consent_session(&tab, &site, ("email", "claire.martin@example.fr")).await;
    assert_eq!(tab.text("#view-consent h1").await, "Your consent choices");
    // The consent-based purposes with their descriptions, the checkout grant shown as on.
    assert_eq!(
        tab.eval(
            "[...document.querySelectorAll('#consent-list li')].map(li => li.dataset.purpose)"
        )
        .await,
        json!([
            "marketing_email",
            "personalization",
            "analytics",
            "third_party_sharing"
        ])
    );
    let list = tab.text("#consent-list").await;
    assert!(
        list.contains("Marketing e-mails") && list.contains("advertising partners"),
        "{list}"
    );
    assert_eq!(
        tab.eval("document.getElementById('sw-marketing_email').checked")
            .await,
        json!(true)
    );
    assert!(
        tab.text("#ps-marketing_email")
            .await
            .contains("You agreed on")
    );
    assert!(
        tab.eval("document.getElementById('gpc-notice').hidden")
            .await
            == json!(true)
    );
    check_accessibility(&tab).await;
    tab.shoot("12-consent-switches").await;

    // Off with the mouse, then analytics on with the keyboard alone.
    tab.click("#sw-marketing_email").await;
    tab.wait_for("document.getElementById('ps-marketing_email').classList.contains('just-saved')")
        .await;
    assert!(
        tab.text("#ps-marketing_email")
            .await
            .starts_with("Saved: Off")
    );
    tab.page
        .find_element("#sw-analytics")
        .await
        .unwrap()
        .focus()
        .await
        .unwrap()
        .press_key(" ")
        .await
        .unwrap();
    tab.wait_for("document.getElementById('ps-analytics').classList.contains('just-saved')")
        .await;
    assert_eq!(
        tab.eval("document.getElementById('sw-analytics').checked")
            .await,
        json!(true)
    );
    tab.shoot("13-consent-saved").await;

    // The withdrawal is in the ledger, from the privacy center, and is the subject's state.
    let withdrawals: Vec<Value> = privacy_center_entries(&server, &compliance, "marketing_email")
        .into_iter()
        .filter(|e| e["kind"] == "consent.withdrawn")
        .collect();
    assert_eq!(withdrawals.len(), 1, "{withdrawals:?}");
    assert_eq!(withdrawals[0]["source"]["app"], "custodia");
    assert_eq!(
        withdrawals[0]["evidence"], true,
        "browser evidence sealed with it"
    );
    let found = server.get(&app, "/v1/subjects?user_id=c-100&purpose=customer_support");
    let subject_id = found.body["subjects"][0]["subject_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = server.get(&compliance, &format!("/v1/subjects/{subject_id}/consents"));
    assert_eq!(state.status, 200, "{:?}", state.body);
    let row = |purpose: &str| {
        state.body["purposes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["purpose"] == json!(purpose))
            .cloned()
            .unwrap()
    };
    assert_eq!(row("marketing_email")["state"], "withdrawn");
    assert_eq!(row("marketing_email")["seq"], withdrawals[0]["seq"]);
    assert_eq!(row("analytics")["state"], "granted");

    // The same screen in French.
    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    assert_eq!(
        tab.text("#view-consent h1").await,
        "Vos choix de consentement"
    );
    assert!(
        tab.text("#consent-session")
            .await
            .contains("Vous pouvez faire des modifications")
    );
    // The purposes in the policies' own French wording.
    let screen = tab.text("#view-consent").await;
    assert!(
        screen.contains("E-mails promotionnels")
            && screen.contains("Avec votre accord, nous vous envoyons des e-mails")
            && !screen.contains("Marketing e-mails"),
        "{screen}"
    );
    check_accessibility(&tab).await;
    tab.shoot("14-consent-fr").await;

    // Someone the shop does not know learns only that: no switches, nothing recorded.
    let n_entries = server
        .get(&compliance, "/v1/ledger/entries?from=0&limit=1000")
        .body["entries"]
        .as_array()
        .unwrap()
        .len();
    tab.click("#view-consent .back").await;
    tab.wait_for("!document.getElementById('view-rights').hidden")
        .await;
    open_consent_session(&tab, &site, ("email", "personne@example.fr")).await;
    assert_eq!(
        tab.eval("document.querySelectorAll('#consent-list input').length")
            .await,
        json!(0)
    );
    assert!(
        tab.text("#consent-empty")
            .await
            .contains("La boutique ne détient aucune donnée vous concernant")
    );
    check_accessibility(&tab).await;
    tab.shoot("17-consent-no-data-fr").await;
    let entries = server.get(&compliance, "/v1/ledger/entries?from=0&limit=1000");
    let kinds: Vec<&str> = entries.body["entries"].as_array().unwrap()[n_entries..]
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["dsr.received", "dsr.verified", "dsr.completed"],
        "only the request's own steps"
    );

    assert_only_this_origin_and_no_errors(&tab, &base);
    let user_agent = tab.eval("navigator.userAgent").await;
    let user_agent = user_agent.as_str().unwrap().to_owned();
    assert!(user_agent.len() > 20, "{user_agent}");
    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
    let log = std::fs::read_to_string(site.log_path()).unwrap();
    assert!(!log.contains("claire.martin@example.fr"));

    // P1: the browser's user agent, kept as evidence with each decision, is sealed on disk.
    assert!(server.stop().success());
    let (hits, n_bytes) = site.plaintext_hits(&[&user_agent]);
    assert!(n_bytes > 10_000, "scanned {n_bytes} bytes only");
    assert!(hits.is_empty(), "plaintext on disk:\n{}", hits.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sending_gpc_gets_third_party_sharing_recorded_off_and_told_so() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    seed_customer(&server, &app);
    let base = server.base.clone();
    let granted = server.post(
        &app,
        "/v1/consents",
        &json!({"user_id": "c-100", "purpose": "third_party_sharing", "decision": "granted", "source": {"channel": "checkout"}}),
    );
    assert_eq!(granted.status, 201, "{:?}", granted.body);

    let shots = screenshots();
    let profile = tempfile::tempdir().unwrap();
    let (mut browser, driver) = launch(profile.path()).await;
    let tab = Tab::open(&browser, &shots, "privacy").await;
    // The browser's Global Privacy Control: the header on every request, the property in pages.
    tab.page
        .execute(SetExtraHttpHeadersParams::new(Headers::new(
            json!({"Sec-GPC": "1"}),
        )))
        .await
        .unwrap();
    tab.page
        .execute(AddScriptToEvaluateOnNewDocumentParams::new(
            "Object.defineProperty(Navigator.prototype, 'globalPrivacyControl', { get: () => true, configurable: true });",
        ))
        .await
        .unwrap();
    tab.width(1280).await;
    tab.goto(&format!("{base}/privacy?lang=en")).await;
    assert_eq!(
        tab.eval("navigator.globalPrivacyControl").await,
        json!(true)
    );
    check_accessibility(&tab).await;

    open_consent_session(&tab, &site, ("user_id", "c-100")).await;
    let notice = tab.text("#gpc-notice").await;
    assert!(
        notice.contains("Global Privacy Control")
            && notice.contains("Sharing with advertising partners"),
        "{notice}"
    );
    assert_eq!(
        tab.eval("[document.getElementById('sw-third_party_sharing').checked, document.getElementById('sw-third_party_sharing').disabled]")
            .await,
        json!([false, true]),
        "sharing is off and cannot be turned on while the signal is sent"
    );
    assert!(
        tab.text("#ps-third_party_sharing")
            .await
            .contains("Global Privacy Control")
    );
    check_accessibility(&tab).await;
    tab.shoot("15-consent-gpc").await;

    // Recorded as a GPC decision from the privacy center.
    let entries = privacy_center_entries(&server, &compliance, "third_party_sharing");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["kind"], "consent.withdrawn");
    assert_eq!(entries[0]["source"]["gpc"], true);
    // Another decision from this browser carries the signal too.
    tab.click("#sw-personalization").await;
    tab.wait_for("document.getElementById('ps-personalization').classList.contains('just-saved')")
        .await;
    let personalization = privacy_center_entries(&server, &compliance, "personalization");
    assert_eq!(personalization.len(), 1, "{personalization:?}");
    assert_eq!(personalization[0]["kind"], "consent.granted");
    assert_eq!(personalization[0]["source"]["gpc"], true);

    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    assert!(
        tab.text("#gpc-notice")
            .await
            .contains("Votre navigateur envoie un signal Global Privacy Control")
    );
    tab.shoot("16-consent-gpc-fr").await;

    assert_only_this_origin_and_no_errors(&tab, &base);
    browser.close().await.unwrap();
    let _ = browser.wait().await;
    driver.abort();
}
