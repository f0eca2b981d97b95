//! The API reference at `/docs` in a real browser (Debian's Chromium over the DevTools protocol,
//! as in `privacy_center.rs`): Redoc renders the served document, request bodies and answers
//! with their schemas, with no console error and no request to another origin. Screenshots at
//! 1280 px and 360 px go to `target/screenshots/docs-*.png`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel};
use chromiumoxide::cdp::browser_protocol::network::{
    self, BlockedReason, EventLoadingFailed, EventRequestWillBeSent,
};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::StreamExt;
use serde_json::{Value, json};

use crate::browser::launch;
use crate::harness::{Site, repo_root};

const REDOCLY_LOGO: &str = "https://cdn.redoc.ly/redoc/logo-mini.svg";

/// Every request the page made (id and URL), those the CSP blocked, and every error it reported.
#[derive(Default)]
struct Watch {
    requests: Vec<(String, String)>,
    blocked_by_csp: Vec<String>,
    errors: Vec<String>,
}

/// Records the page's requests, console errors, uncaught exceptions and error log entries.
async fn watch(page: &Page) -> Arc<Mutex<Watch>> {
    page.execute(network::EnableParams::default())
        .await
        .unwrap();
    page.enable_log().await.unwrap();
    page.enable_runtime().await.unwrap();
    let watch = Arc::new(Mutex::new(Watch::default()));
    let mut requests = page
        .event_listener::<EventRequestWillBeSent>()
        .await
        .unwrap();
    let w = Arc::clone(&watch);
    tokio::spawn(async move {
        while let Some(event) = requests.next().await {
            let request = (event.request_id.inner().clone(), event.request.url.clone());
            w.lock().unwrap().requests.push(request);
        }
    });
    let mut failures = page.event_listener::<EventLoadingFailed>().await.unwrap();
    let w = Arc::clone(&watch);
    tokio::spawn(async move {
        while let Some(event) = failures.next().await {
            if event.blocked_reason == Some(BlockedReason::Csp) {
                let id = event.request_id.inner().clone();
                w.lock().unwrap().blocked_by_csp.push(id);
            }
        }
    });
    let mut console = page
        .event_listener::<EventConsoleApiCalled>()
        .await
        .unwrap();
    let w = Arc::clone(&watch);
    tokio::spawn(async move {
        while let Some(event) = console.next().await {
            if event.r#type == ConsoleApiCalledType::Error {
                let error = format!("console: {:?}", event.args);
                w.lock().unwrap().errors.push(error);
            }
        }
    });
    let mut exceptions = page.event_listener::<EventExceptionThrown>().await.unwrap();
    let w = Arc::clone(&watch);
    tokio::spawn(async move {
        while let Some(event) = exceptions.next().await {
            let error = format!("exception: {}", event.exception_details.text);
            w.lock().unwrap().errors.push(error);
        }
    });
    let mut log = page.event_listener::<EventEntryAdded>().await.unwrap();
    let w = Arc::clone(&watch);
    tokio::spawn(async move {
        while let Some(event) = log.next().await {
            // The CSP's refusal of the Redocly logo is the browser doing its job (see below).
            let logo_refused = event.entry.text.contains(REDOCLY_LOGO)
                && event.entry.text.contains("Content Security Policy");
            if event.entry.level == LogEntryLevel::Error && !logo_refused {
                let error = format!("log: {} ({:?})", event.entry.text, event.entry.url);
                w.lock().unwrap().errors.push(error);
            }
        }
    });
    watch
}

async fn eval(page: &Page, expression: &str) -> Value {
    page.evaluate(expression)
        .await
        .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
        .value()
        .cloned()
        .unwrap_or(Value::Null)
}

async fn wait_for(page: &Page, condition: &str) {
    let started = Instant::now();
    while eval(page, &format!("Boolean({condition})")).await != json!(true) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "waited 60 s for {condition}; page text: {}",
            eval(page, "document.body.innerText.slice(0, 600)").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn width(page: &Page, width: i64) {
    page.execute(SetDeviceMetricsOverrideParams::new(
        width,
        900,
        1.0,
        width < 600,
    ))
    .await
    .unwrap();
}

/// How many times the page's text holds `words`, case aside (Redoc upper-cases headings in CSS).
async fn count(page: &Page, words: &str) -> u64 {
    let quoted = serde_json::to_string(words).unwrap();
    eval(
        page,
        &format!("document.body.textContent.toLowerCase().split({quoted}).length - 1"),
    )
    .await
    .as_u64()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_renders_every_schema_from_this_origin_alone() {
    let site = Site::new();
    let server = site.serve(&[]);
    let base = server.base.clone();
    let doc: Value = ureq::get(&format!("{base}/openapi.json"))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap();
    let n_bodies = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter(|op| op["requestBody"].is_object())
        .count() as u64;

    let shots = repo_root().join("target").join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (mut browser, driver) = launch(profile.path()).await;
    let page = browser.new_page("about:blank").await.expect("a new tab");
    let watch = watch(&page).await;
    width(&page, 1280).await;
    page.goto(format!("{base}/docs"))
        .await
        .expect("the page loads");
    // Redoc has rendered the operations once the middle column lists them.
    wait_for(
        &page,
        "document.querySelectorAll('[data-section-id*=\"/paths/\"]').length >= 40",
    )
    .await;
    assert_eq!(eval(&page, "document.title").await, json!("Custodia API"));
    // Each body is shown with its schema, not as a bare media type.
    let shown_bodies = count(&page, "request body schema").await;
    assert!(
        shown_bodies >= n_bodies,
        "{shown_bodies} request body schemas shown, the document has {n_bodies} bodies"
    );
    // Answers are collapsed under their status; the right column shows a sample built from each
    // operation's answer schemas (none for an answer without one).
    let samples = count(&page, "response samples").await;
    assert!(samples >= 40, "{samples} response samples shown");
    // Members of typed answers and bodies are on the page.
    for member in [
        "subject_id",
        "inclusion_proof",
        "repeat_purchase_rate",
        "decision_id",
    ] {
        assert!(count(&page, member).await > 0, "{member} is not shown");
    }

    // The shots show an operation with a request body schema and its answer's sample.
    let identify = "document.querySelector('[data-section-id$=\"/paths/~1v1~1identify/post\"]')";
    for px in [1280, 360] {
        width(&page, px).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        eval(&page, &format!("{identify}.scrollIntoView()")).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        page.save_screenshot(
            ScreenshotParams::builder().full_page(false).build(),
            shots.join(format!("docs-{px}.png")),
        )
        .await
        .unwrap();
    }

    {
        let watch = watch.lock().unwrap();
        // Redoc 2.5.0 always puts the Redocly logo from its CDN in the sidebar's footer (an
        // `<img>` that hides itself when it fails to load); the page's CSP (`img-src 'self'
        // data:`) stops it in the browser. Every other request stays on this origin.
        let foreign: Vec<_> = watch
            .requests
            .iter()
            .filter(|(_, u)| {
                !(u.starts_with(&base)
                    || u.starts_with("about:")
                    || u.starts_with("blob:")
                    || u.starts_with("data:"))
            })
            .collect();
        for (id, url) in &foreign {
            assert!(
                url == REDOCLY_LOGO && watch.blocked_by_csp.contains(id),
                "a request to another origin that the CSP did not stop: {url}"
            );
        }
        assert!(
            watch
                .requests
                .iter()
                .any(|(_, u)| u.ends_with("/openapi.json")),
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
}
