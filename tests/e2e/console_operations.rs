//! The console's operations screen, in Debian's Chromium: the policies in force as the server
//! read them, the retention sweep run with its report, the root key's age, and an admin creating
//! a key (shown once) and revoking another (which then opens nothing); a compliance key sees the
//! policies and the sweep but not the keys; the page in French; screenshots.

use serde_json::json;

use crate::browser::{
    assert_only_this_origin_and_no_errors, check_accessibility, unlabelled_fields,
};
use crate::console::signed_in;
use crate::harness::Site;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_reads_the_policies_runs_the_sweep_and_manages_keys() {
    let site = Site::new();
    let admin = site.create_key("admin");
    let app = site.create_key("app");
    let compliance = site.create_key("compliance");
    let server = site.serve(&[]);
    let base = server.base.clone();
    assert_eq!(server.get(&app, "/v1/me").status, 200);

    let session = signed_in("console-operations", &base, &admin).await;
    let tab = &session.tab;
    tab.click(".tab[data-view='operations']").await;
    tab.wait_for("document.querySelectorAll('#keys-table tbody tr').length === 3")
        .await;

    // The policies as the server read them: the same purposes, categories and roles.
    let policies = server.get(&admin, "/v1/policies");
    assert_eq!(policies.status, 200);
    let shown = tab.text("#policies").await;
    for purpose in policies.body["purposes"].as_array().unwrap() {
        assert!(
            shown.contains(purpose["name"].as_str().unwrap()),
            "{purpose} in {shown}"
        );
    }
    for role in ["app", "compliance", "admin"] {
        assert!(shown.contains(role), "{role} in {shown}");
    }
    assert!(shown.contains(policies.body["policy_version"].as_str().unwrap()));
    let invoices = policies.body["categories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["legal_hold"].is_object())
        .expect("the demo policies keep a category under a legal hold");
    assert!(shown.contains(invoices["legal_hold"]["reason"].as_str().unwrap()));
    // The root key was made a moment ago: not due.
    assert_eq!(
        tab.eval("document.querySelector('[data-rotation-due]').dataset.rotationDue")
            .await,
        json!("false")
    );
    // The keys: this one marked, never a secret on the screen.
    let keys = tab.text("#keys-table").await;
    assert!(keys.contains("The key you are using"), "{keys}");
    assert!(!keys.contains(&app[app.len() - 12..]), "no secret listed");
    tab.shoot("1-policies-and-keys").await;

    // The retention sweep, with its report.
    tab.eval("window.confirm = () => true").await;
    tab.click("#run-retention").await;
    tab.wait_for("document.getElementById('retention-facts')")
        .await;
    assert!(
        tab.text("#retention-report")
            .await
            .contains("The sweep ran")
    );

    // A new compliance key, shown once, that works.
    tab.eval("document.getElementById('k-role').value = 'compliance'")
        .await;
    tab.click("#key-form button[type=submit]").await;
    tab.wait_for("document.getElementById('new-key-value')")
        .await;
    let secret = tab
        .eval("document.getElementById('new-key-value').value")
        .await
        .as_str()
        .unwrap()
        .to_owned();
    let me = server.get(&secret, "/v1/me");
    assert_eq!(
        (me.status, me.body["role"].as_str()),
        (200, Some("compliance"))
    );
    tab.wait_for("document.querySelectorAll('#keys-table tbody tr').length === 4")
        .await;
    tab.shoot("2-key-created").await;
    // The notice follows a change of language, and the secret stays in its field.
    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    let notice = tab.text("#new-key").await;
    assert!(
        notice.contains("a été créée") && notice.contains("La nouvelle clé"),
        "{notice}"
    );
    assert!(!notice.contains("was created"), "{notice}");
    let kept = tab
        .eval("document.getElementById('new-key-value').value")
        .await;
    assert_eq!(kept.as_str(), Some(secret.as_str()));
    tab.click("button[data-lang='en']").await;
    tab.wait_for("document.documentElement.lang === 'en'").await;

    // Revoking the app key: from the next request on it opens nothing.
    let app_id = app.split('_').nth(1).unwrap().to_owned();
    tab.click(&format!("button[data-revoke='{app_id}']")).await;
    tab.wait_for("!document.querySelector('button[data-revoke]') || document.querySelectorAll('#keys-table .badge.bad').length === 1")
        .await;
    assert_eq!(server.get(&app, "/v1/me").status, 401);
    let listed = server.get(&admin, "/v1/admin/keys");
    let revoked: Vec<_> = listed.body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["revoked"] == json!(true))
        .map(|k| k["key_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(revoked, [app_id]);
    // The key that asks cannot revoke itself.
    let admin_id = admin.split('_').nth(1).unwrap();
    let own = server.delete(&admin, &format!("/v1/admin/keys/{admin_id}"));
    assert_eq!(own.status, 409);

    // In French.
    tab.click("button[data-lang='fr']").await;
    tab.wait_for("document.documentElement.lang === 'fr'").await;
    assert_eq!(tab.text("#operations-title").await, "Exploitation");
    assert!(tab.text("#policies").await.contains("Finalités"));
    tab.shoot("3-french").await;
    assert_eq!(unlabelled_fields(tab).await, json!([]));
    check_accessibility(tab).await;
    assert_only_this_origin_and_no_errors(tab, &base);

    // A compliance key: the policies and the sweep, not the keys nor the root key.
    tab.click("#sign-out").await;
    tab.wait_for("!document.getElementById('view-signin').hidden")
        .await;
    tab.click("button[data-lang='en']").await;
    tab.type_into("#api-key", &compliance).await;
    tab.click("#signin-form button[type=submit]").await;
    tab.wait_for("!document.getElementById('view-requests').hidden")
        .await;
    tab.click(".tab[data-view='operations']").await;
    tab.wait_for("document.querySelectorAll('#policies table').length === 3")
        .await;
    assert_eq!(
        tab.eval("[document.getElementById('keys-card').hidden, document.getElementById('rootkey-card').hidden, document.getElementById('retention-card').hidden]")
            .await,
        json!([true, true, false])
    );
    assert_eq!(server.get(&compliance, "/v1/admin/keys").status, 403);
    session.close().await;
}
