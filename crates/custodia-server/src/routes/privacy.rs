//! The privacy center: the customers' own page for their GDPR rights, at `/privacy`.
//!
//! Everything it needs is embedded in the binary (`assets/privacy/`): one HTML shell, one
//! stylesheet, one script and a catalogue of strings per language. The page talks only to the
//! public data-subject-request routes (`/v1/dsr…`) of the same origin. Every answer carries a
//! strict Content-Security-Policy (no inline script or style, nothing from another origin), and
//! the page sets no cookie and loads nothing from elsewhere. These are web pages, not API
//! operations, so they are not in `ROUTES` or the OpenAPI document: `/privacy`,
//! `/privacy/config.json`, `/privacy/assets/{file}` and `/privacy/i18n/{lang}.json`.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use custodia_policy::PrivacyCenter;
use serde_json::json;

use crate::AppState;
use crate::extract::Params;

/// The languages the page is written in; the first is the default.
pub const LANGUAGES: &[&str] = &["en", "fr"];

const INDEX: &str = include_str!("../../assets/privacy/index.html");
const SCRIPT: &str = include_str!("../../assets/privacy/privacy.js");
const STYLE: &str = include_str!("../../assets/privacy/privacy.css");
/// The example shop's logo, named by the default policies' `[privacy_center]` table.
const LOGO: &str = include_str!("../../assets/privacy/logo.svg");
const CATALOGUES: &[(&str, &str)] = &[
    ("en", include_str!("../../assets/privacy/i18n/en.json")),
    ("fr", include_str!("../../assets/privacy/i18n/fr.json")),
];

/// The Content-Security-Policy of every privacy-center answer: scripts, styles and requests from
/// this origin only, no inline code, no plugins; images from this origin and, when the shop's logo
/// is an `https://` URL, from that origin too; framing only by the sites `[privacy_center]`
/// names (none by default). Every value in it was checked by the policy loader.
pub fn content_security_policy(branding: &PrivacyCenter) -> String {
    let mut img = String::from("'self'");
    if let Some(origin) = branding.logo_url.as_deref().and_then(logo_origin) {
        img.push(' ');
        img.push_str(origin);
    }
    let ancestors = if branding.frame_ancestors.is_empty() {
        "'none'".to_owned()
    } else {
        branding.frame_ancestors.join(" ")
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src {img}; \
         connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors {ancestors}"
    )
}

/// The origin of an `https://` logo URL (`https://host[:port]`); `None` for a path on this server.
fn logo_origin(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&url[.."https://".len() + end])
}

/// The privacy center's routes.
pub fn pages() -> Router<AppState> {
    Router::new()
        .route("/privacy", get(index))
        .route("/privacy/", get(index))
        .route("/privacy/config.json", get(config))
        .route("/privacy/assets/{file}", get(asset))
        .route("/privacy/i18n/{file}", get(catalogue))
}

/// The headers every privacy-center answer carries.
fn hardened(
    branding: &PrivacyCenter,
    content_type: &'static str,
    cache: &'static str,
    body: impl IntoResponse,
) -> Response {
    secure_page(
        &content_security_policy(branding),
        branding.frame_ancestors.is_empty(),
        content_type,
        cache,
        body,
    )
}

/// An answer of one of the binary's own web pages (the privacy center, the console) with its
/// Content-Security-Policy and the hardening headers they share; `deny_framing` adds
/// `X-Frame-Options: DENY` (left out when the CSP names sites that may frame the page).
pub(crate) fn secure_page(
    csp: &str,
    deny_framing: bool,
    content_type: &'static str,
    cache: &'static str,
    body: impl IntoResponse,
) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    // Every CSP here is built from checked values; fail closed rather than serve without one.
    let csp = HeaderValue::from_str(csp).unwrap_or(HeaderValue::from_static(
        "default-src 'none'; frame-ancestors 'none'",
    ));
    headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    let mut set = |name: HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(header::CONTENT_TYPE, content_type);
    set(header::CACHE_CONTROL, cache);
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "no-referrer");
    // X-Frame-Options cannot name other sites; browsers that know CSP follow frame-ancestors.
    if deny_framing {
        set(header::X_FRAME_OPTIONS, "DENY");
    }
    set(
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    );
    set(
        HeaderName::from_static("permissions-policy"),
        "camera=(), microphone=(), geolocation=(), payment=(), interest-cohort=()",
    );
    response
}

fn not_found(branding: &PrivacyCenter) -> Response {
    hardened(
        branding,
        "text/plain; charset=utf-8",
        "no-store",
        (StatusCode::NOT_FOUND, "not found"),
    )
}

/// The language for a request: `?lang=` if it names one we have, else the best match of
/// `Accept-Language` (RFC 9110 §12.5.4: highest weight first, then order), else English.
pub fn negotiate_language(query: Option<&str>, accept_language: Option<&str>) -> &'static str {
    if let Some(asked) = query.and_then(|q| LANGUAGES.iter().find(|l| **l == q)) {
        return asked;
    }
    let mut best: Option<(&'static str, u16)> = None;
    for item in accept_language.unwrap_or_default().split(',') {
        let mut parts = item.split(';');
        let tag = parts.next().unwrap_or_default().trim();
        let primary = tag.split('-').next().unwrap_or_default();
        let weight = parts
            .find_map(|p| p.trim().strip_prefix("q="))
            .map_or(1000, parse_weight);
        let Some(lang) = LANGUAGES.iter().find(|l| l.eq_ignore_ascii_case(primary)) else {
            continue;
        };
        if weight > 0 && best.is_none_or(|(_, w)| weight > w) {
            best = Some((lang, weight));
        }
    }
    best.map_or(LANGUAGES[0], |(lang, _)| lang)
}

/// A quality value (`0`, `0.5`, `1.000`) in thousandths; anything malformed counts as 0.
fn parse_weight(text: &str) -> u16 {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    let thousandths = format!("{fraction:0<3}").parse::<u16>().unwrap_or(0);
    match whole {
        "0" => thousandths,
        "1" if thousandths == 0 => 1000,
        _ => 0,
    }
}

/// `GET /privacy`: the page, in the negotiated language.
async fn index(State(state): State<AppState>, headers: HeaderMap, params: Params) -> Response {
    let branding = state.engine().policies().privacy_center();
    localized_page(INDEX, &headers, &params, |html| {
        hardened(branding, "text/html; charset=utf-8", "no-store", html)
    })
}

/// A page shell with `{{lang}}` filled from `?lang=` or `Accept-Language`, answered by `answer`
/// (which sets the page's security headers), and marked as varying by language. Shared by the
/// privacy center and the console.
pub(crate) fn localized_page(
    shell: &str,
    headers: &HeaderMap,
    params: &Params,
    answer: impl FnOnce(String) -> Response,
) -> Response {
    let lang = negotiate_language(
        params.get("lang"),
        headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok()),
    );
    let mut response = answer(shell.replace("{{lang}}", lang));
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept-Language"));
    response
}

/// `GET /privacy/config.json`: who is responsible and how the shop presents itself (from the
/// policies), and the names of the data categories, for the page's texts. Nothing here is
/// personal data.
async fn config(State(state): State<AppState>) -> Response {
    let policies = state.engine().policies();
    let controller = policies.controller();
    let branding = policies.privacy_center();
    let categories: Vec<_> = policies
        .categories()
        .iter()
        .map(|c| json!({"id": c.id, "name": c.name, "translations": c.translations}))
        .collect();
    let body = json!({
        "shop_name": branding.shop_name,
        "logo_url": branding.logo_url,
        "privacy_policy_url": branding.privacy_policy_url,
        "contact": branding.contact,
        "controller": controller.name,
        "supervisory_authority": {
            "name": controller.supervisory_authority,
            "url": controller.supervisory_authority_url,
        },
        "categories": categories,
        "languages": LANGUAGES,
    });
    hardened(branding, "application/json", "no-store", body.to_string())
}

/// `GET /privacy/assets/{file}`: the script, the stylesheet, the shop's colour as a stylesheet
/// (so that no style is inline) and the example shop's logo.
async fn asset(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let branding = state.engine().policies().privacy_center();
    match file.as_str() {
        "privacy.js" => hardened(
            branding,
            "text/javascript; charset=utf-8",
            "no-cache",
            SCRIPT,
        ),
        "privacy.css" => hardened(branding, "text/css; charset=utf-8", "no-cache", STYLE),
        "proof.js" => hardened(
            branding,
            "text/javascript; charset=utf-8",
            "no-cache",
            super::console::PROOF_SCRIPT,
        ),
        "page.js" => hardened(
            branding,
            "text/javascript; charset=utf-8",
            "no-cache",
            super::console::PAGE_SCRIPT,
        ),
        "brand.css" => hardened(
            branding,
            "text/css; charset=utf-8",
            "no-cache",
            brand_css(branding),
        ),
        "logo.svg" => hardened(branding, "image/svg+xml", "no-cache", LOGO),
        _ => not_found(branding),
    }
}

/// The shop's colour as CSS custom properties; the policy loader checked it is `#rrggbb` with
/// AA contrast for white text.
fn brand_css(branding: &PrivacyCenter) -> String {
    format!(
        "/* From [privacy_center] in policy.toml. */\n:root {{ --accent: {}; }}\n",
        branding.accent_colour
    )
}

/// `GET /privacy/i18n/{lang}.json`: the strings of one language.
async fn catalogue(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    let branding = state.engine().policies().privacy_center();
    let found = file
        .strip_suffix(".json")
        .and_then(|lang| CATALOGUES.iter().find(|(l, _)| *l == lang));
    match found {
        Some((_, text)) => hardened(branding, "application/json", "no-cache", *text),
        None => not_found(branding),
    }
}

/// Checks a page's catalogues (the same keys in every language, no empty string) and that every
/// key its HTML (`data-i18n="…"`) and script (`tr('…')`) name is in them; returns the English one.
/// Shared by the privacy center's and the console's tests.
#[cfg(test)]
pub(crate) fn assert_catalogues_cover(
    catalogues: &[(&str, &str)],
    index: &str,
    script: &str,
) -> serde_json::Map<String, serde_json::Value> {
    let parse = |text: &str| -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_str(text).expect("a catalogue is a JSON object")
    };
    assert_eq!(catalogues.len(), LANGUAGES.len());
    let english = parse(catalogues[0].1);
    for (lang, text) in catalogues {
        let keys: Vec<_> = parse(text).keys().cloned().collect();
        let expected: Vec<_> = english.keys().cloned().collect();
        assert_eq!(keys, expected, "{lang} has other keys than en");
        assert!(
            parse(text)
                .values()
                .all(|v| v.as_str().is_some_and(|s| !s.trim().is_empty())),
            "{lang} has an empty string"
        );
    }
    for part in index.split("data-i18n=\"").skip(1) {
        let key = part.split('"').next().unwrap();
        assert!(english.contains_key(key), "the page names {key}");
    }
    for part in script.split("tr('").skip(1) {
        let key = part.split('\'').next().unwrap();
        if !key.ends_with('_') {
            assert!(english.contains_key(key), "the script names {key}");
        }
    }
    english
}

/// Checks a page has no inline script, style or event handler, and its scripts build no HTML
/// from strings. Shared by the privacy center's and the console's tests.
#[cfg(test)]
pub(crate) fn assert_no_inline_code(index: &str, scripts: &[&str]) {
    assert!(!index.contains("<script>"));
    assert!(!index.contains("style="));
    assert!(!index.contains("<style"));
    // No inline event handler (` onclick=` and the like).
    for (at, _) in index.match_indices(" on") {
        let rest = &index[at + 3..];
        let name_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        assert!(
            !rest[name_len..].starts_with('='),
            "inline handler at byte {at}"
        );
    }
    for script in scripts {
        for banned in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!script.contains(banned), "{banned}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_language_follows_the_query_then_the_weights_of_accept_language() {
        assert_eq!(negotiate_language(None, None), "en");
        assert_eq!(
            negotiate_language(None, Some("fr-FR,fr;q=0.9,en;q=0.8")),
            "fr"
        );
        assert_eq!(negotiate_language(None, Some("en-US,fr;q=0.5")), "en");
        assert_eq!(
            negotiate_language(None, Some("de-DE,fr;q=0.7,en;q=0.3")),
            "fr"
        );
        assert_eq!(negotiate_language(None, Some("en;q=0.2, FR;q=0.9")), "fr");
        assert_eq!(negotiate_language(None, Some("fr;q=0")), "en");
        assert_eq!(negotiate_language(None, Some("de, *;q=0.5")), "en");
        assert_eq!(negotiate_language(None, Some("fr;q=2")), "en");
        assert_eq!(negotiate_language(Some("fr"), Some("en")), "fr");
        assert_eq!(negotiate_language(Some("xx"), Some("fr")), "fr");
    }

    #[test]
    fn every_catalogue_has_the_same_keys_and_covers_the_page() {
        let english = assert_catalogues_cover(CATALOGUES, INDEX, SCRIPT);
        for right in [
            "access",
            "portability",
            "rectification",
            "erasure",
            "restriction",
            "objection",
            "consent",
        ] {
            for suffix in ["title", "what", "long", "action"] {
                assert!(english.contains_key(&format!("right_{right}_{suffix}")));
            }
        }
    }

    #[test]
    fn the_csp_allows_the_logo_origin_and_the_framing_sites_and_nothing_else() {
        let mut branding = custodia_policy::Policies::builtin()
            .privacy_center()
            .clone();
        branding.logo_url = Some("/privacy/assets/logo.svg".to_owned());
        branding.frame_ancestors.clear();
        assert_eq!(
            content_security_policy(&branding),
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
        );
        branding.logo_url = Some("https://cdn.shop.example:8443/a/logo.png?v=2".to_owned());
        branding.frame_ancestors = vec!["'self'".to_owned(), "https://shop.example".to_owned()];
        let csp = content_security_policy(&branding);
        assert!(
            csp.contains("img-src 'self' https://cdn.shop.example:8443;"),
            "{csp}"
        );
        assert!(
            csp.ends_with("frame-ancestors 'self' https://shop.example"),
            "{csp}"
        );
        assert!(csp.contains("script-src 'self';"), "{csp}");
    }

    #[test]
    fn the_exports_fixed_statements_are_the_servers_in_english() {
        let english: serde_json::Value = serde_json::from_str(CATALOGUES[0].1).unwrap();
        assert_eq!(english["export_source"], custodia_engine::EXPORT_SOURCE);
        assert_eq!(
            english["export_automated"],
            custodia_engine::EXPORT_AUTOMATED_DECISIONS
        );
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert_no_inline_code(INDEX, &[SCRIPT, crate::routes::console::PROOF_SCRIPT]);
    }
}
