//! The browser tests' harness: Debian's Chromium started headless over the DevTools protocol (no
//! browser download), a tab that records every request and every error of its page, full-page
//! screenshots at 1280 px and 360 px into `target/screenshots/`, and an answer changed on the way
//! to prove a page catches tampering. Shared by the privacy center's, the console's and the API
//! reference's tests.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::fetch::{
    self, EventRequestPaused, FulfillRequestParams, GetResponseBodyParams, HeaderEntry,
    RequestPattern, RequestStage,
};
use chromiumoxide::cdp::browser_protocol::log::{EventEntryAdded, LogEntryLevel, LogEntrySource};
use chromiumoxide::cdp::browser_protocol::network::{self, EventRequestWillBeSent};
use chromiumoxide::cdp::js_protocol::runtime::{
    ConsoleApiCalledType, EventConsoleApiCalled, EventExceptionThrown,
};
use chromiumoxide::page::{Page, ScreenshotParams};
use futures::StreamExt;
use serde_json::{Value, json};

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";

/// What the page did that a test checks at the end: every URL it asked for, every console error.
#[derive(Default)]
pub(crate) struct Watch {
    pub(crate) urls: Vec<String>,
    pub(crate) errors: Vec<String>,
}

/// A browser tab with its request and error log (shared with the console's tests).
pub(crate) struct Tab {
    pub(crate) page: Page,
    pub(crate) watch: Arc<Mutex<Watch>>,
    pub(crate) shots: PathBuf,
    /// What the screenshots are named after (`privacy`, `console`).
    pub(crate) name: &'static str,
}

impl Tab {
    pub(crate) async fn open(browser: &Browser, shots: &Path, name: &'static str) -> Tab {
        let page = browser.new_page("about:blank").await.expect("a new tab");
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
                w.lock().unwrap().urls.push(event.request.url.clone());
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
                    w.lock()
                        .unwrap()
                        .errors
                        .push(format!("console: {:?}", event.args));
                }
            }
        });
        let mut exceptions = page.event_listener::<EventExceptionThrown>().await.unwrap();
        let w = Arc::clone(&watch);
        tokio::spawn(async move {
            while let Some(event) = exceptions.next().await {
                w.lock()
                    .unwrap()
                    .errors
                    .push(format!("exception: {}", event.exception_details.text));
            }
        });
        let mut log = page.event_listener::<EventEntryAdded>().await.unwrap();
        let w = Arc::clone(&watch);
        tokio::spawn(async move {
            while let Some(event) = log.next().await {
                // A 4xx answer the page expects (a wrong code) is logged by the network stack,
                // not by the page: only the page's own errors count.
                if event.entry.level == LogEntryLevel::Error
                    && event.entry.source != LogEntrySource::Network
                {
                    w.lock()
                        .unwrap()
                        .errors
                        .push(format!("log: {}", event.entry.text));
                }
            }
        });
        Tab {
            page,
            watch,
            shots: shots.to_path_buf(),
            name,
        }
    }

    pub(crate) async fn width(&self, width: i64) {
        self.page
            .execute(SetDeviceMetricsOverrideParams::new(
                width,
                900,
                1.0,
                width < 600,
            ))
            .await
            .unwrap();
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.page.goto(url).await.expect("the page loads");
        self.wait_for("document.body && document.body.dataset.ready === 'true'")
            .await;
    }

    pub(crate) async fn eval(&self, expression: &str) -> Value {
        self.page
            .evaluate(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluating {expression}: {e}"))
            .value()
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub(crate) async fn wait_for(&self, condition: &str) {
        let started = Instant::now();
        loop {
            if self.eval(&format!("Boolean({condition})")).await == json!(true) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "waited 30 s for {condition}; page text: {}",
                self.eval("document.body.innerText").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn text(&self, selector: &str) -> String {
        let quoted = serde_json::to_string(selector).unwrap();
        self.eval(&format!(
            "(document.querySelector({quoted}) || {{}}).innerText || ''"
        ))
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    pub(crate) async fn click(&self, selector: &str) {
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .click()
            .await
            .unwrap();
    }

    pub(crate) async fn type_into(&self, selector: &str, text: &str) {
        self.page
            .find_element(selector)
            .await
            .unwrap_or_else(|e| panic!("{selector}: {e}"))
            .click()
            .await
            .unwrap()
            .type_str(text)
            .await
            .unwrap();
    }

    /// Full-page screenshots `{page}-{name}-{width}.png` of the current state at 1280 px and
    /// 360 px, `page` being what the tab was opened for.
    pub(crate) async fn shoot(&self, name: &str) {
        for width in [1280, 360] {
            self.width(width).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
            // Nothing may push the page sideways (a person at 360 px would have to scroll).
            let wide = self
                .eval("document.documentElement.scrollWidth")
                .await
                .as_i64()
                .unwrap_or(0);
            assert!(
                wide <= width,
                "{}-{name} at {width} px is {wide} px wide: something overflows sideways",
                self.name
            );
            let path = self.shots.join(format!("{}-{name}-{width}.png", self.name));
            self.page
                .save_screenshot(ScreenshotParams::builder().full_page(true).build(), &path)
                .await
                .unwrap();
        }
        self.width(1280).await;
    }
}

/// The folder the browser tests write their screenshots to (`target/screenshots/`), made.
pub(crate) fn screenshots() -> PathBuf {
    let shots = crate::harness::repo_root()
        .join("target")
        .join("screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

/// Asserts the page asked nothing of another origin than `base` (`data:`, `blob:` and
/// `about:` are no requests to anyone) and reported no error of its own.
pub(crate) fn assert_only_this_origin_and_no_errors(tab: &Tab, base: &str) {
    let watch = tab.watch.lock().unwrap();
    let foreign: Vec<_> = watch
        .urls
        .iter()
        .filter(|u| {
            !(u.starts_with(base)
                || u.starts_with("about:")
                || u.starts_with("blob:")
                || u.starts_with("data:"))
        })
        .collect();
    assert!(foreign.is_empty(), "requests to other origins: {foreign:?}");
    assert!(
        watch.urls.iter().any(|u| u.starts_with(base)),
        "the request log works"
    );
    assert!(
        watch.errors.is_empty(),
        "console errors: {:?}",
        watch.errors
    );
}

/// The ids of the page's inputs and selects that have no label.
pub(crate) async fn unlabelled_fields(tab: &Tab) -> Value {
    tab.eval("[...document.querySelectorAll('input, select, textarea')].filter(i => !i.labels || i.labels.length === 0).map(i => i.id)")
        .await
}

/// Accessibility checks of the visible view: `lang` set, every field labelled, headings in order
/// without a skipped level, every button with an accessible name, and a visible focus ring.
pub(crate) async fn check_accessibility(tab: &Tab) {
    let report = tab
        .eval(
            r#"(() => {
  const visible = (e) => e.offsetParent !== null || getComputedStyle(e).position === 'fixed';
  const out = [];
  if (!document.documentElement.lang) out.push('no lang on <html>');
  for (const f of document.querySelectorAll('input, textarea, select')) {
    if (!f.labels || f.labels.length === 0) out.push('unlabelled field #' + f.id);
  }
  let last = 0;
  for (const h of [...document.querySelectorAll('h1, h2, h3, h4')].filter(visible)) {
    const level = Number(h.tagName[1]);
    if (level > last + 1) out.push('heading ' + h.tagName + ' after h' + last + ': ' + h.innerText);
    last = level;
  }
  for (const b of [...document.querySelectorAll('button')].filter(visible)) {
    if (!(b.innerText.trim() || b.getAttribute('aria-label'))) out.push('button without a name');
  }
  // Focus rings show for keyboard focus (`:focus-visible`); a script's focus() counts as such only
  // before the first mouse click, so this part checks the page as a keyboard user first meets it.
  const first = [...document.querySelectorAll('button, input, textarea')].filter(visible)[0];
  if (first && !window.__clicked) {
    first.focus();
    const style = getComputedStyle(first);
    if (style.outlineStyle === 'none' && style.boxShadow === 'none') out.push('no visible focus on #' + first.id);
    first.blur();
  }
  window.__clicked = true;
  return out;
})()"#,
        )
        .await;
    assert_eq!(report, json!([]), "accessibility");
}

/// Answers the next response whose URL matches `pattern` with `change` applied to its JSON body.
/// Returns the task; await it after the action that makes the request.
pub(crate) async fn change_next_response(
    tab: &Tab,
    pattern: &str,
    change: fn(&mut Value),
) -> tokio::task::JoinHandle<()> {
    tab.page
        .execute(
            fetch::EnableParams::builder()
                .pattern(
                    RequestPattern::builder()
                        .url_pattern(pattern)
                        .request_stage(RequestStage::Response)
                        .build(),
                )
                .build(),
        )
        .await
        .unwrap();
    let mut paused = tab
        .page
        .event_listener::<EventRequestPaused>()
        .await
        .unwrap();
    let page = tab.page.clone();
    tokio::spawn(async move {
        if let Some(event) = paused.next().await {
            let body = page
                .execute(GetResponseBodyParams::new(event.request_id.clone()))
                .await
                .unwrap();
            let raw = if body.base64_encoded {
                base64::engine::general_purpose::STANDARD
                    .decode(&body.body)
                    .unwrap()
            } else {
                body.body.clone().into_bytes()
            };
            let mut value: Value = serde_json::from_slice(&raw).unwrap();
            change(&mut value);
            let changed = base64::engine::general_purpose::STANDARD.encode(value.to_string());
            page.execute(
                FulfillRequestParams::builder()
                    .request_id(event.request_id.clone())
                    .response_code(200)
                    .response_header(HeaderEntry::new("Content-Type", "application/json"))
                    .body(changed)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
            page.execute(fetch::DisableParams::default()).await.unwrap();
        }
    })
}

pub(crate) async fn launch(profile: &Path) -> (Browser, tokio::task::JoinHandle<()>) {
    assert!(
        Path::new(CHROMIUM).exists(),
        "the browser tests need Debian's chromium at {CHROMIUM}: run `bash tests/setup.sh` \
         (the README's test command does)"
    );
    let config = BrowserConfig::builder()
        .chrome_executable(CHROMIUM)
        .new_headless_mode()
        .no_sandbox()
        .user_data_dir(profile)
        .window_size(1280, 900)
        .viewport(None)
        .launch_timeout(Duration::from_secs(60))
        .request_timeout(Duration::from_secs(60))
        .args([
            "disable-gpu",
            "disable-quic",
            "disable-component-update",
            "disable-background-networking",
            "no-default-browser-check",
        ])
        .build()
        .expect("a browser configuration");
    let (browser, mut handler) = Browser::launch(config).await.expect("chromium starts");
    let driver = tokio::spawn(async move {
        while let Some(event) = handler.next().await {
            if event.is_err() {
                break;
            }
        }
    });
    (browser, driver)
}

/// A browser of its own (fresh profile) with one watched tab at 1280 px, for one test.
pub(crate) struct Session {
    pub(crate) browser: Browser,
    pub(crate) tab: Tab,
    driver: tokio::task::JoinHandle<()>,
    _profile: tempfile::TempDir,
}

impl Session {
    /// Starts Chromium and opens a tab whose screenshots are named after `name`.
    pub(crate) async fn start(name: &'static str) -> Session {
        let shots = screenshots();
        let profile = tempfile::tempdir().unwrap();
        let (browser, driver) = launch(profile.path()).await;
        let tab = Tab::open(&browser, &shots, name).await;
        tab.width(1280).await;
        Session {
            browser,
            tab,
            driver,
            _profile: profile,
        }
    }

    /// Closes the browser and waits (a little) for its driver to end.
    pub(crate) async fn close(mut self) {
        self.browser.close().await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.driver).await;
    }
}
