//! The compliance console: the officer's screens, at `/console`.
//!
//! Like the privacy center, everything is embedded in the binary (`assets/console/`, plus the
//! proof-checking script `assets/shared/proof.js`): one HTML shell, one stylesheet, two scripts and
//! a catalogue of strings per language. The page holds no data of its own: it signs in with a
//! compliance or admin API key kept in the tab's `sessionStorage` and calls the same API as any
//! client, so every read it makes is checked and logged like any other. It can never be framed.
//! These are web pages, not API operations, so they are not in `ROUTES` or the OpenAPI document:
//! `/console`, `/console/assets/{file}` and `/console/i18n/{lang}.json`.

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::privacy::{localized_page, secure_page};
use crate::AppState;
use crate::extract::Params;

const INDEX: &str = include_str!("../../assets/console/index.html");
const SCRIPT: &str = include_str!("../../assets/console/console.js");
const STYLE: &str = include_str!("../../assets/console/console.css");
/// Checks signed checkpoints and RFC 9162 proofs with Web Crypto.
pub(crate) const PROOF_SCRIPT: &str = include_str!("../../assets/shared/proof.js");
/// The page helpers both pages share (text, elements, dates, error lines).
pub(crate) const PAGE_SCRIPT: &str = include_str!("../../assets/shared/page.js");
const CATALOGUES: &[(&str, &str)] = &[
    ("en", include_str!("../../assets/console/i18n/en.json")),
    ("fr", include_str!("../../assets/console/i18n/fr.json")),
];

/// The console's Content-Security-Policy: everything from this origin only, nothing inline,
/// never framed (a signed-in officer's screen must not be clickjacked).
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                       connect-src 'self'; form-action 'none'; base-uri 'none'; \
                       frame-ancestors 'none'";

/// The console's routes.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/assets/{file}", get(asset))
        .route("/console/i18n/{file}", get(catalogue))
}

fn page(content_type: &'static str, cache: &'static str, body: impl IntoResponse) -> Response {
    secure_page(CSP, true, content_type, cache, body)
}

/// `GET /console`: the page, in the negotiated language.
async fn index(headers: HeaderMap, params: Params) -> Response {
    localized_page(INDEX, &headers, &params, |html| {
        page("text/html; charset=utf-8", "no-store", html)
    })
}

/// `GET /console/assets/{file}`: the scripts and the stylesheet.
async fn asset(Path(file): Path<String>) -> Response {
    match file.as_str() {
        "console.js" => page("text/javascript; charset=utf-8", "no-cache", SCRIPT),
        "proof.js" => page("text/javascript; charset=utf-8", "no-cache", PROOF_SCRIPT),
        "page.js" => page("text/javascript; charset=utf-8", "no-cache", PAGE_SCRIPT),
        "console.css" => page("text/css; charset=utf-8", "no-cache", STYLE),
        _ => page(
            "text/plain; charset=utf-8",
            "no-store",
            (StatusCode::NOT_FOUND, "not found"),
        ),
    }
}

/// `GET /console/i18n/{lang}.json`: the strings of one language.
async fn catalogue(Path(file): Path<String>) -> Response {
    let found = file
        .strip_suffix(".json")
        .and_then(|lang| CATALOGUES.iter().find(|(l, _)| *l == lang));
    match found {
        Some((_, text)) => page("application/json", "no-cache", *text),
        None => page(
            "text/plain; charset=utf-8",
            "no-store",
            (StatusCode::NOT_FOUND, "not found"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::privacy::{assert_catalogues_cover, assert_no_inline_code};
    use super::*;

    #[test]
    fn every_catalogue_has_the_same_keys_and_covers_the_page() {
        let english = assert_catalogues_cover(CATALOGUES, INDEX, SCRIPT);
        // Every request type and status the engine has is named.
        for kind in [
            "access",
            "portability",
            "rectification",
            "erasure",
            "restriction",
            "objection",
            "consent",
        ] {
            assert!(english.contains_key(&format!("type_{kind}")), "type_{kind}");
        }
        for status in [
            "pending_verification",
            "verified",
            "in_progress",
            "awaiting_compliance",
            "completed",
            "rejected",
        ] {
            assert!(
                english.contains_key(&format!("status_{status}")),
                "status_{status}"
            );
        }
        for part in SCRIPT.split("'reason_").skip(1) {
            let key = format!("reason_{}", part.split('\'').next().unwrap());
            assert!(english.contains_key(&key), "console.js names {key}");
        }
    }

    #[test]
    fn the_console_has_no_inline_script_or_style_and_builds_no_html() {
        assert_no_inline_code(INDEX, &[SCRIPT, PROOF_SCRIPT]);
        // The key is kept for the tab only, never in a cookie or in localStorage.
        assert!(!SCRIPT.contains("document.cookie"));
        assert!(SCRIPT.contains("sessionStorage.setItem(KEY_STORE"));
        assert!(!SCRIPT.contains("localStorage.setItem(KEY_STORE"));
    }
}
