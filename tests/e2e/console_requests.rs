//! The console's request screen, in Debian's Chromium: an officer opens a free-text
//! rectification's case file for a stated purpose (its timeline's proofs checked in the
//! browser), extends the deadline and then carries the request out with the corrected field,
//! each with a reason; the requester reads both reasons; the page in French; screenshots.

use serde_json::json;

use crate::browser::{
    Tab, assert_only_this_origin_and_no_errors, check_accessibility, unlabelled_fields,
};
use crate::console::signed_in;
use crate::harness::Site;
use crate::p2_dsr::outbox_code;

/// Chooses `value` in the select `id` as a person would (the page listens for `change`).
async fn choose(tab: &Tab, id: &str, value: &str) {
    tab.eval(&format!(
        "(() => {{ const s = document.getElementById('{id}'); s.value = '{value}'; s.dispatchEvent(new Event('change')); }})()"
    ))
    .await;
}

/// Writes `text` into the field `selector` (the driver's typing knows no accented letters).
async fn fill(tab: &Tab, selector: &str, text: &str) {
    tab.eval(&format!(
        "document.querySelector({}).value = {}",
        json!(selector),
        json!(text)
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_officer_extends_then_carries_out_a_rectification_with_reasons_from_the_case_file() {
    let site = Site::new();
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let base = server.base.clone();
    let identify = server.post(
        &app,
        "/v1/identify",
        &json!({"userId": "c-12", "traits": {"email": "remi.dupont@example.fr", "lastName": "Dupont"}}),
    );
    assert_eq!(identify.status, 200, "{:?}", identify.body);
    let received = server.post(
        "none",
        "/v1/dsr",
        &json!({"type": "rectification", "email": "remi.dupont@example.fr",
                "details": "Mon nom s'écrit Dupond, avec un d"}),
    );
    let id = received.body["request_id"].as_str().unwrap().to_owned();
    let verified = server.post(
        "none",
        &format!("/v1/dsr/{id}/verify"),
        &json!({"code": outbox_code(&site, &id)}),
    );
    assert_eq!(verified.body["status"], "awaiting_compliance");
    let token = verified.body["access_token"].as_str().unwrap().to_owned();

    let session = signed_in("console-requests", &base, &compliance).await;
    let tab = &session.tab;
    tab.wait_for("document.querySelectorAll('#requests-table tbody tr').length === 1")
        .await;

    // The case file, read for the purpose chosen (customer support by default).
    tab.click(&format!("button[data-request='{id}']")).await;
    tab.wait_for("document.getElementById('c-purpose').options.length > 0")
        .await;
    assert_eq!(
        tab.eval("document.getElementById('c-purpose').value").await,
        json!("customer_support")
    );
    tab.click("#open-case").await;
    tab.wait_for("document.getElementById('case-heading')")
        .await;
    tab.wait_for("document.querySelectorAll('#case-panel [data-verified=true]').length === 3")
        .await;
    let case = tab.text("#case-panel").await;
    assert!(case.contains("Mon nom s'écrit Dupond"), "{case}");
    assert!(
        !case.contains("remi.dupont@example.fr") && case.contains("r•••@e•••.fr"),
        "the requester's address is masked until revealed: {case}"
    );
    assert!(case.contains("Waiting for a person"), "{case}");
    tab.shoot("1-case-file").await;

    // Extend by a month, with a reason.
    tab.eval("window.confirm = () => true").await;
    choose(tab, "d-action", "extend").await;
    assert_eq!(
        tab.eval("document.getElementById('d-months-field').hidden")
            .await,
        json!(false)
    );
    assert_eq!(
        tab.eval("document.getElementById('d-traits').hidden").await,
        json!(true)
    );
    // No reason: said on the page, nothing sent.
    tab.click("#d-submit").await;
    tab.wait_for("!document.getElementById('decide-error').hidden")
        .await;
    fill(tab, "#d-reason", "Nous attendons la copie de l'état civil").await;
    tab.click("#d-submit").await;
    tab.wait_for("document.getElementById('decided')").await;
    tab.wait_for("document.querySelectorAll('#case-panel [data-verified=true]').length === 4")
        .await;
    let case = tab.text("#case-panel").await;
    assert!(case.contains("Deadline extended"), "{case}");
    assert!(case.contains("Nous attendons la copie"), "{case}");
    tab.shoot("2-extended").await;

    // Carry it out with the corrected field.
    choose(tab, "d-action", "carry_out").await;
    assert_eq!(
        tab.eval("document.getElementById('d-traits').hidden").await,
        json!(false)
    );
    tab.type_into("#d-traits [data-trait=name]", "lastName")
        .await;
    tab.type_into("#d-traits [data-trait=value]", "Dupond")
        .await;
    fill(tab, "#d-reason", "Copie de l'état civil reçue").await;
    tab.click("#d-submit").await;
    tab.wait_for("document.querySelectorAll('#case-panel [data-verified=true]').length === 5")
        .await;
    let detail = tab.text("#request-detail").await;
    assert!(detail.contains("Completed"), "{detail}");
    assert!(detail.contains("nothing is left to decide"), "{detail}");
    // The outcome in words, not the server's field names.
    let facts = tab.text("#detail-facts").await;
    assert!(
        facts.contains("Profile corrected") && facts.contains("A person (compliance)"),
        "{facts}"
    );
    assert!(
        !facts.contains("rectified") && !facts.contains("handled by"),
        "{facts}"
    );
    tab.shoot("3-carried-out").await;

    // What the API and the requester now see.
    let profile = server.get(&app, "/v1/subjects?user_id=c-12&purpose=customer_support");
    assert_eq!(profile.body["subjects"][0]["traits"]["lastName"], "Dupond");
    let status = server.get(&token, &format!("/v1/dsr/{id}"));
    let reasons: Vec<&str> = status.body["notices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        [
            "Nous attendons la copie de l'état civil",
            "Copie de l'état civil reçue"
        ]
    );
    // Both case readings are in the access log under the purpose named.
    let log = server.get(&compliance, "/v1/audit/access?limit=100");
    let case_reads = log.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["attributes"]["what"] == "dsr_case" && e["purpose"] == "customer_support")
        .count();
    assert!(case_reads >= 3, "{:?}", log.body);

    // The same screen in French.
    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    tab.wait_for("document.getElementById('case-heading') && document.getElementById('case-heading').textContent === 'Dossier de la demande'")
        .await;
    assert!(tab.text("#case-panel").await.contains("Délai prolongé"));
    let facts = tab.text("#detail-facts").await;
    assert!(
        facts.contains("Traitée") && !facts.contains("Completed"),
        "the request's facts follow the language: {facts}"
    );
    assert!(
        facts.contains("Profil corrigé") && facts.contains("Attributs corrigés"),
        "{facts}"
    );
    tab.shoot("4-french").await;

    assert_eq!(unlabelled_fields(tab).await, json!([]));
    check_accessibility(tab).await;
    assert_only_this_origin_and_no_errors(tab, &base);
    session.close().await;
}
